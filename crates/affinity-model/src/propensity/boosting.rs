//! Gradient-boosted decision trees with logistic loss, on histogram bins: the learner that can
//! express interactions a linear model cannot ("share of past orders matters only for users
//! active lately", "due for a repeat only if they have a cycle").
//!
//! Written here rather than taken from a crate: the few pure-Rust GBDT crates are either
//! unmaintained or pull in a dataframe stack, and none promises the same model whatever the
//! number of threads. This one is small because the problem is: about twenty dense features,
//! weighted rows, binary labels.
//!
//! - Each feature is cut into at most [`BoostParams::max_bins`] quantile bins on the training
//!   rows; a split is "feature ≤ an observed value", so the trees apply to raw rows of any
//!   other time (the features at `as_of`) without re-binning.
//! - Trees grow level by level to [`BoostParams::max_depth`]; a split needs
//!   [`BoostParams::min_child_hessian`] on both sides and a positive gain; leaves are shrunk
//!   Newton steps (`−G / (H + λ)` × learning rate).
//! - The number of trees is not fixed in advance: [`fit`] records the held-out log-loss after
//!   every tree, so the caller can stop where the held-out fold stopped improving.
//!
//! Deterministic whatever the number of threads: histograms are built one feature per task,
//! each summing its rows in row order, and every choice breaks ties by the lowest index.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::logistic::sigmoid;

/// A leaf's marker in [`Node::feature`].
const LEAF: u16 = u16::MAX;

/// The boosting knobs. The defaults were chosen on the audience benchmarks' own backtests
/// (the cross-fitted estimate before their cutoffs), never on their evaluation windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BoostParams {
    pub learning_rate: f64,
    pub max_depth: usize,
    pub max_trees: usize,
    pub max_bins: usize,
    /// Sum of Hessians (≈ weighted p(1 − p)) each side of a split must hold: keeps a leaf from
    /// being fitted to a handful of users.
    pub min_child_hessian: f64,
    /// L2 penalty on leaf values.
    pub lambda: f64,
    /// Stop when the held-out log-loss has not improved for this many trees.
    pub patience: usize,
}

impl BoostParams {
    pub fn validate(&self) -> crate::error::Result<()> {
        let bad = |name, reason: &str| {
            Err(crate::error::ModelError::InvalidParameter {
                name,
                reason: reason.to_string(),
            })
        };
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad("learning_rate", "must be in (0, 1]");
        }
        if !(1..=8).contains(&self.max_depth) {
            return bad("max_depth", "must be 1 to 8");
        }
        if self.max_trees == 0 || self.patience == 0 {
            return bad("max_trees", "max_trees and patience must be at least 1");
        }
        // Bins are stored as bytes.
        if !(2..=256).contains(&self.max_bins) {
            return bad("max_bins", "must be 2 to 256");
        }
        if !(self.min_child_hessian >= 0.0 && self.lambda >= 0.0) {
            return bad("min_child_hessian", "it and lambda must be >= 0");
        }
        Ok(())
    }
}

impl Default for BoostParams {
    fn default() -> Self {
        BoostParams {
            learning_rate: 0.1,
            max_depth: 3,
            max_trees: 150,
            max_bins: 32,
            min_child_hessian: 1.0,
            lambda: 1.0,
            patience: 10,
        }
    }
}

/// One node of a tree; the root is node 0. An internal node sends `x[feature] ≤ threshold`
/// left. Every node keeps its (shrunk) Newton value, so a prediction can be split into the
/// parts each feature's splits added ([`Ensemble::contributions`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub feature: u16,
    pub threshold: f32,
    pub left: u32,
    pub right: u32,
    pub value: f64,
    /// The split's gain in the second-order objective (0 for a leaf).
    #[serde(default)]
    pub gain: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// A fitted ensemble: `log-odds = base + Σ trees`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    pub base: f64,
    pub trees: Vec<Tree>,
}

impl Tree {
    fn leaf_of(&self, row: &[f32]) -> usize {
        let mut i = 0;
        loop {
            let n = &self.nodes[i];
            if n.feature == LEAF {
                return i;
            }
            i = if row[usize::from(n.feature)] <= n.threshold {
                n.left as usize
            } else {
                n.right as usize
            };
        }
    }
}

impl Ensemble {
    /// The number of feature columns its splits read (one past the highest split feature;
    /// 0 for trees of leaves only): a row at least this long is one it can score.
    pub(super) fn columns_read(&self) -> usize {
        self.trees
            .iter()
            .flat_map(|t| &t.nodes)
            .filter(|n| n.feature != LEAF)
            .map(|n| usize::from(n.feature) + 1)
            .max()
            .unwrap_or(0)
    }

    pub(super) fn log_odds(&self, row: &[f32]) -> f64 {
        self.trees
            .iter()
            .fold(self.base, |z, t| z + t.nodes[t.leaf_of(row)].value)
    }

    pub(super) fn predict(&self, row: &[f32]) -> f64 {
        sigmoid(self.log_odds(row))
    }

    /// The first `n` trees only.
    pub(super) fn truncated(&self, n: usize) -> Ensemble {
        Ensemble {
            base: self.base,
            trees: self.trees[..n.min(self.trees.len())].to_vec(),
        }
    }

    /// Each feature's part of the log-odds of `row` (Saabas' path attribution): along each
    /// tree's path, the change of the node value at a split is credited to the split's
    /// feature. `base + Σ parts` is the log-odds, up to rounding.
    pub(super) fn contributions(&self, row: &[f32], n_features: usize) -> Vec<f64> {
        let mut parts = vec![0f64; n_features];
        for t in &self.trees {
            let mut i = 0;
            loop {
                let n = &t.nodes[i];
                if n.feature == LEAF {
                    break;
                }
                let f = usize::from(n.feature);
                let next = if row[f] <= n.threshold {
                    n.left
                } else {
                    n.right
                } as usize;
                if let Some(p) = parts.get_mut(f) {
                    *p += t.nodes[next].value - n.value;
                }
                i = next;
            }
            // The root's value is part of the bias, not of any feature.
        }
        parts
    }

    /// The log-odds every row starts from: the base plus each tree's root value.
    pub(super) fn bias(&self) -> f64 {
        self.base + self.trees.iter().map(|t| t.nodes[0].value).sum::<f64>()
    }

    /// Total split gain per feature, as shares summing to 1 (0 everywhere without splits).
    pub(super) fn importance(&self, n_features: usize) -> Vec<f64> {
        let mut used = vec![0f64; n_features];
        for t in &self.trees {
            for n in &t.nodes {
                if n.feature != LEAF
                    && let Some(u) = used.get_mut(usize::from(n.feature))
                {
                    *u += n.gain;
                }
            }
        }
        let total: f64 = used.iter().sum();
        if total > 0.0 {
            used.iter_mut().for_each(|u| *u /= total);
        }
        used
    }
}

/// Training rows (indices into a row-major matrix), their labels and weights, and optionally
/// held-out rows whose log-loss is recorded after every tree.
pub(super) struct BoostSample<'a> {
    pub x: &'a [f32],
    pub d: usize,
    pub rows: &'a [u32],
    pub y: &'a [bool],
    pub w: &'a [f64],
    pub held_out: &'a [(u32, f64)],
}

/// The fitted ensemble and the held-out weighted mean log-loss after each tree (`[0]` is the
/// base alone); empty without held-out rows.
pub(super) struct Fitted {
    pub ensemble: Ensemble,
    pub held_out_loss: Vec<f64>,
}

/// Fits up to `max_trees` trees; with held-out rows, stops `patience` trees after the
/// held-out loss last improved. `max_trees` overrides the parameter (a refit uses the number
/// the cross-fitting chose).
pub(super) fn fit(sample: &BoostSample<'_>, params: &BoostParams, max_trees: usize) -> Fitted {
    let n = sample.rows.len();
    let d = sample.d;
    let value = |r: u32, f: usize| sample.x[r as usize * d + f];
    let label = |r: u32| sample.y[r as usize];

    // Bins: edges per feature from the training rows; bins stored feature-major.
    let edges: Vec<Vec<f32>> = (0..d)
        .into_par_iter()
        .map(|f| {
            let mut v: Vec<f32> = sample.rows.iter().map(|&r| value(r, f)).collect();
            bin_edges(&mut v, params.max_bins)
        })
        .collect();
    // A feature without edges (constant on the training rows: a column a learner does
    // without is zeroed) offers no split; it gets no bins and no histograms.
    let bins: Vec<Vec<u8>> = (0..d)
        .into_par_iter()
        .map(|f| {
            if edges[f].is_empty() {
                return Vec::new();
            }
            sample
                .rows
                .iter()
                .map(|&r| edges[f].partition_point(|&e| e < value(r, f)) as u8)
                .collect()
        })
        .collect();

    let (sw, swy) = sample
        .rows
        .iter()
        .zip(sample.w)
        .fold((0f64, 0f64), |(a, b), (&r, &w)| {
            (a + w, b + if label(r) { w } else { 0.0 })
        });
    let prior = (swy / sw).clamp(1e-6, 1.0 - 1e-6);
    let base = (prior / (1.0 - prior)).ln();
    let mut margin = vec![base; n];
    let mut held_margin = vec![base; sample.held_out.len()];
    let held_loss = |m: &[f64]| -> f64 {
        let (mut loss, mut total) = (0f64, 0f64);
        for (&(r, w), &z) in sample.held_out.iter().zip(m) {
            loss += w * log_loss(z, label(r));
            total += w;
        }
        loss / total.max(f64::MIN_POSITIVE)
    };
    let mut held_out_loss = Vec::new();
    if !sample.held_out.is_empty() {
        held_out_loss.push(held_loss(&held_margin));
    }

    let mut trees = Vec::new();
    let mut best = (f64::INFINITY, 0usize);
    let (mut g, mut h) = (vec![0f64; n], vec![0f64; n]);
    for t in 0..max_trees {
        for j in 0..n {
            let p = sigmoid(margin[j]);
            let w = sample.w[j];
            g[j] = w * (p - if label(sample.rows[j]) { 1.0 } else { 0.0 });
            h[j] = (w * p * (1.0 - p)).max(1e-12);
        }
        let (tree, leaf_of_row) = grow(&bins, &edges, &g, &h, params);
        for j in 0..n {
            margin[j] += tree.nodes[leaf_of_row[j] as usize].value;
        }
        if !sample.held_out.is_empty() {
            for (&(r, _), z) in sample.held_out.iter().zip(&mut held_margin) {
                *z +=
                    tree.nodes[tree.leaf_of(&sample.x[r as usize * d..(r as usize + 1) * d])].value;
            }
            let loss = held_loss(&held_margin);
            held_out_loss.push(loss);
            if loss < best.0 {
                best = (loss, t + 1);
            }
        }
        let single_leaf = tree.nodes.len() == 1;
        trees.push(tree);
        if single_leaf {
            break; // no split helps any more: every further tree would be a constant too
        }
        if !sample.held_out.is_empty() && t + 1 >= best.1 + params.patience {
            break;
        }
    }
    Fitted {
        ensemble: Ensemble { base, trees },
        held_out_loss,
    }
}

fn log_loss(z: f64, y: bool) -> f64 {
    // −log σ(z) for a positive, −log(1 − σ(z)) = −log σ(−z) for a negative.
    let s = if y { -z } else { z };
    if s > 0.0 {
        s + (-s).exp().ln_1p()
    } else {
        s.exp().ln_1p()
    }
}

/// At most `max_bins − 1` edges: the distinct values when there are few, else quantiles.
/// `bin(x)` = number of edges below `x`, so "bin ≤ b" is "x ≤ edges[b]".
fn bin_edges(v: &mut [f32], max_bins: usize) -> Vec<f32> {
    v.sort_unstable_by(f32::total_cmp);
    let mut distinct: Vec<f32> = v.to_vec();
    distinct.dedup();
    if distinct.len() <= max_bins {
        distinct.pop();
        return distinct;
    }
    let n = v.len();
    let mut edges: Vec<f32> = (1..max_bins).map(|k| v[k * n / max_bins]).collect();
    edges.dedup();
    // The largest value as an edge would leave an empty last bin.
    if edges.last() == v.last() {
        edges.pop();
    }
    edges
}

/// Per node of the level being split: its rows' gradient and Hessian sums and its slot.
struct Open {
    node: usize,
    g: f64,
    h: f64,
}

/// Grows one tree on the binned rows; returns it and each training row's leaf.
fn grow(
    bins: &[Vec<u8>],
    edges: &[Vec<f32>],
    g: &[f64],
    h: &[f64],
    params: &BoostParams,
) -> (Tree, Vec<u32>) {
    let n = g.len();
    let d = bins.len();
    let newton = |g: f64, h: f64| -params.learning_rate * g / (h + params.lambda);
    let (g0, h0) = (g.iter().sum::<f64>(), h.iter().sum::<f64>());
    let mut nodes = vec![Node {
        feature: LEAF,
        threshold: 0.0,
        left: 0,
        right: 0,
        value: newton(g0, h0),
        gain: 0.0,
    }];
    // Each row's node; rows in closed leaves keep theirs and are skipped by `slot_of`.
    let mut node_of = vec![0u32; n];
    let mut open = vec![Open {
        node: 0,
        g: g0,
        h: h0,
    }];
    for _depth in 0..params.max_depth {
        if open.is_empty() {
            break;
        }
        // node id → its slot among the open nodes (u32::MAX: closed).
        let mut slot_of = vec![u32::MAX; nodes.len()];
        for (s, o) in open.iter().enumerate() {
            slot_of[o.node] = s as u32;
        }
        let n_bins = params.max_bins;
        // Each row's first histogram cell (its slot's), once per level rather than once per
        // feature; `usize::MAX` for a row in a closed leaf.
        let cell_of: Vec<usize> = node_of
            .iter()
            .map(|&node| match slot_of[node as usize] {
                u32::MAX => usize::MAX,
                s => s as usize * n_bins,
            })
            .collect();
        // hist[f][slot * n_bins + bin] = (g, h); one feature per task, rows in order.
        let hist: Vec<Vec<(f64, f64)>> = (0..d)
            .into_par_iter()
            .map(|f| {
                let bf = &bins[f];
                if bf.is_empty() {
                    return Vec::new(); // constant: no split (see `fit`)
                }
                let mut hf = vec![(0f64, 0f64); open.len() * n_bins];
                for (j, (&cell, &bin)) in cell_of.iter().zip(bf).enumerate() {
                    if cell != usize::MAX {
                        let c = &mut hf[cell + usize::from(bin)];
                        c.0 += g[j];
                        c.1 += h[j];
                    }
                }
                hf
            })
            .collect();

        let mut next_open = Vec::new();
        let mut splits: Vec<Option<(usize, usize)>> = vec![None; open.len()];
        for (s, o) in open.iter().enumerate() {
            let parent = o.g * o.g / (o.h + params.lambda);
            let mut best: Option<(f64, usize, usize)> = None;
            for (f, hf) in hist.iter().enumerate().filter(|(_, hf)| !hf.is_empty()) {
                let cells = &hf[s * n_bins..(s + 1) * n_bins];
                let (mut gl, mut hl) = (0f64, 0f64);
                for (b, &(cg, ch)) in cells.iter().enumerate().take(edges[f].len()) {
                    gl += cg;
                    hl += ch;
                    let (gr, hr) = (o.g - gl, o.h - hl);
                    if hl < params.min_child_hessian || hr < params.min_child_hessian {
                        continue;
                    }
                    let gain =
                        gl * gl / (hl + params.lambda) + gr * gr / (hr + params.lambda) - parent;
                    if gain > 1e-12 && best.is_none_or(|(bg, _, _)| gain > bg) {
                        best = Some((gain, f, b));
                    }
                }
            }
            if let Some((gain, f, b)) = best {
                splits[s] = Some((f, b));
                // Children's sums, from the histogram of the chosen feature.
                let cells = &hist[f][s * n_bins..(s + 1) * n_bins];
                let (gl, hl) = cells[..=b]
                    .iter()
                    .fold((0f64, 0f64), |(a, c), &(x, y)| (a + x, c + y));
                let (left, right) = (nodes.len(), nodes.len() + 1);
                for (cg, ch) in [(gl, hl), (o.g - gl, o.h - hl)] {
                    nodes.push(Node {
                        feature: LEAF,
                        threshold: 0.0,
                        left: 0,
                        right: 0,
                        value: newton(cg, ch),
                        gain: 0.0,
                    });
                }
                let parent = &mut nodes[o.node];
                parent.feature = f as u16;
                parent.threshold = edges[f][b];
                parent.left = left as u32;
                parent.right = right as u32;
                parent.gain = gain;
                next_open.push(Open {
                    node: left,
                    g: gl,
                    h: hl,
                });
                next_open.push(Open {
                    node: right,
                    g: o.g - gl,
                    h: o.h - hl,
                });
            }
        }
        for j in 0..n {
            let s = slot_of[node_of[j] as usize];
            if s == u32::MAX {
                continue;
            }
            if let Some((f, b)) = splits[s as usize] {
                let parent = &nodes[open[s as usize].node];
                node_of[j] = if usize::from(bins[f][j]) <= b {
                    parent.left
                } else {
                    parent.right
                };
            }
        }
        open = next_open;
    }
    (Tree { nodes }, node_of)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propensity::logistic::{Logistic, Sample};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Two features, positive exactly when one is high and the other low (XOR), with label
    /// noise: no linear score ranks it better than chance.
    fn xor_data(n: usize, seed: u64) -> (Vec<f32>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Vec::with_capacity(n * 3);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let (a, b, c): (f32, f32, f32) = (rng.random(), rng.random(), rng.random());
            x.extend([a, b, c]);
            let xor = (a > 0.5) != (b > 0.5);
            y.push(if rng.random::<f64>() < 0.1 { !xor } else { xor });
        }
        (x, y)
    }

    fn average_precision(scores: &[f64], y: &[bool]) -> f64 {
        let mut order: Vec<usize> = (0..y.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let (mut hits, mut ap) = (0f64, 0f64);
        for (i, &j) in order.iter().enumerate() {
            if y[j] {
                hits += 1.0;
                ap += hits / (i + 1) as f64;
            }
        }
        ap / hits
    }

    fn boost(x: &[f32], y: &[bool], n: usize) -> Fitted {
        boost_d(x, 3, y, n)
    }

    fn boost_d(x: &[f32], d: usize, y: &[bool], n: usize) -> Fitted {
        let rows: Vec<u32> = (0..n as u32 / 2).collect();
        let held: Vec<(u32, f64)> = (n as u32 / 2..n as u32).map(|r| (r, 1.0)).collect();
        let w = vec![1.0; rows.len()];
        fit(
            &BoostSample {
                x,
                d,
                rows: &rows,
                y,
                w: &w,
                held_out: &held,
            },
            &BoostParams::default(),
            BoostParams::default().max_trees,
        )
    }

    #[test]
    fn learns_an_interaction_a_linear_model_cannot() {
        let n = 4000;
        let (x, y) = xor_data(n, 7);
        let fitted = boost(&x, &y, n);
        // Where the held-out loss was lowest, as the audiences use it.
        let best = (0..fitted.held_out_loss.len())
            .min_by(|&a, &b| fitted.held_out_loss[a].total_cmp(&fitted.held_out_loss[b]))
            .expect("held-out losses were recorded");
        let ensemble = fitted.ensemble.truncated(best);
        let rows: Vec<u32> = (0..n as u32 / 2).collect();
        let w = vec![1.0; rows.len()];
        let linear = Logistic::fit(
            &Sample {
                x: &x,
                d: 3,
                rows: &rows,
                y: &y,
                w: &w,
            },
            1e-2,
        );
        let held = n / 2..n;
        let row = |j: usize| &x[j * 3..j * 3 + 3];
        let yh = &y[held.clone()];
        let trees: Vec<f64> = held.clone().map(|j| ensemble.predict(row(j))).collect();
        let lin: Vec<f64> = held.map(|j| linear.predict(row(j))).collect();
        let base = yh.iter().filter(|&&b| b).count() as f64 / yh.len() as f64;
        let (ap_trees, ap_lin) = (average_precision(&trees, yh), average_precision(&lin, yh));
        // 10% label noise caps AP near 0.9; chance is the base rate (~0.5).
        assert!(ap_trees > 0.8, "trees AP {ap_trees:.3}");
        assert!(
            ap_lin < base + 0.06,
            "linear AP {ap_lin:.3} vs base {base:.3}"
        );
        // Stopped early: the held-out loss stopped improving well before the cap.
        assert!(fitted.ensemble.trees.len() < BoostParams::default().max_trees);
        // Contributions add up to the log-odds, and the noise feature gets little of them.
        let r = row(n - 1);
        let parts = ensemble.contributions(r, 3);
        let sum = ensemble.bias() + parts.iter().sum::<f64>();
        assert!((sum - ensemble.log_odds(r)).abs() < 1e-9);
        let importance = ensemble.importance(3);
        assert!(importance[2] < 0.1, "noise importance {importance:?}");
    }

    #[test]
    fn the_same_model_whatever_the_number_of_threads() {
        let n = 3000;
        let (x, y) = xor_data(n, 11);
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool")
                .install(|| boost(&x, &y, n))
        };
        let (one, four) = (run(1), run(4));
        assert_eq!(one.ensemble, four.ensemble);
        assert_eq!(one.held_out_loss, four.held_out_loss);
    }

    #[test]
    fn a_constant_feature_changes_nothing() {
        // The noise column (2) zeroed, as audiences zero the columns a learner does without:
        // it gets no bins and no histograms, and the model is exactly the one fitted
        // without the column at all (the zeroed column is last, so indices agree).
        let n = 3000;
        let (mut x, y) = xor_data(n, 13);
        let noisy = boost(&x, &y, n);
        for row in x.chunks_exact_mut(3) {
            row[2] = 0.0;
        }
        let zeroed = boost(&x, &y, n);
        let dropped: Vec<f32> = x.chunks_exact(3).flat_map(|r| [r[0], r[1]]).collect();
        let without = boost_d(&dropped, 2, &y, n);
        assert_eq!(zeroed.ensemble, without.ensemble);
        assert_eq!(zeroed.held_out_loss, without.held_out_loss);
        // Not vacuous: the column was split on while it held noise.
        let splits_on_2 = |e: &Ensemble| {
            e.trees
                .iter()
                .flat_map(|t| &t.nodes)
                .any(|n| n.feature == 2)
        };
        assert!(splits_on_2(&noisy.ensemble));
        assert!(!splits_on_2(&zeroed.ensemble));
    }

    #[test]
    fn bins_cut_at_observed_values() {
        let mut few = vec![3.0, 1.0, 2.0, 1.0];
        assert_eq!(bin_edges(&mut few, 32), vec![1.0, 2.0]);
        let mut many: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let edges = bin_edges(&mut many, 4);
        assert_eq!(edges, vec![250.0, 500.0, 750.0]);
    }
}
