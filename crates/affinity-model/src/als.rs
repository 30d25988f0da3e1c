//! Implicit-feedback matrix factorization by alternating least squares.
//!
//! Model (Hu, Koren & Volinsky 2008): every user u and item i get a vector of
//! `factors` numbers, and the loss is
//!
//! ```text
//!   Σ_{u,i} c_ui (p_ui − x_u·y_i)²  +  λ (Σ_u |x_u|² + Σ_i |y_i|²)
//! ```
//!
//! over *all* user–item pairs, where unobserved pairs have confidence 1 and
//! preference 0. Fixing the item factors Y, each user's vector is the solution of
//! `(YᵀY + Yᵀ(C_u − I)Y + λI) x_u = Yᵀ C_u p_u`, and the YᵀY part is shared by
//! every user, so it is computed once per half-iteration.
//!
//! Solver (Takács, Pilászy & Tikk 2011): instead of forming and factorizing that
//! matrix per user (O(f²·n_u + f³)), run a few conjugate-gradient steps warm
//! started from the previous iteration's vector. A CG step only needs the
//! product of the matrix with a vector, which costs O(f² + f·n_u) using the
//! shared YᵀY. This is the algorithm of Python `implicit`'s
//! `AlternatingLeastSquares(use_cg=True)` (its `least_squares_cg`), followed
//! step for step here, with the same initial distribution (U[0, 0.01), from
//! our own seeded generator, so not the same numbers) and stopping tolerance.
//!
//! Confidence: like `implicit` 0.7, the stored weight *is* the confidence of an
//! observed pair, scaled by `alpha`: `c_ui = alpha · w_ui` (not `1 + alpha·w`).
//! The "1 +" of the paper is the confidence every pair already gets from YᵀY,
//! so to reproduce the paper's `c = 1 + α·r` pass weights `1 + α·r` with
//! `alpha = 1`. A negative weight means "disliked with confidence |c|"
//! (preference 0), as in `implicit`.
//!
//! Determinism: initialization draws from a ChaCha8 stream in a fixed order,
//! each row's solve is sequential arithmetic that reads only the other side's
//! factors, and YᵀY is summed over fixed row blocks in a fixed order. Rayon only
//! decides *which thread* runs a row, so factors are bit-identical for a given
//! seed and build regardless of the number of threads.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cpu::{self, Isa};
use crate::dense::{
    PANEL, axpy, dot, gram_upper_accumulate, mirror_upper, score_panel, symv, to_panels,
};
use crate::error::{ModelError, Result};
use crate::interactions::{Interactions, Row};
use crate::recommender::{Recommender, check_user, top_k};

/// Hyper-parameters of [`AlsModel::fit`]. Defaults follow `implicit` 0.7 except
/// `factors` (implicit: 100), which the project standardizes at 64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlsParams {
    /// Length of each user/item vector.
    pub factors: usize,
    /// λ, the L2 penalty on every vector.
    pub regularization: f32,
    /// Multiplier from stored weight to confidence: `c = alpha · weight`.
    pub alpha: f32,
    /// Number of full (users then items) sweeps.
    pub iterations: usize,
    /// Conjugate-gradient steps per row per sweep.
    pub cg_steps: usize,
    /// Seed for the initial factors.
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        AlsParams {
            factors: 64,
            regularization: 0.01,
            alpha: 1.0,
            iterations: 15,
            cg_steps: 3,
            seed: 0,
        }
    }
}

impl AlsParams {
    pub fn validate(&self) -> Result<()> {
        let bad = |name, reason: &str| {
            Err(ModelError::InvalidParameter {
                name,
                reason: reason.to_string(),
            })
        };
        if self.factors == 0 {
            return bad("factors", "must be at least 1");
        }
        if !(self.regularization.is_finite() && self.regularization >= 0.0) {
            return bad("regularization", "must be finite and ≥ 0");
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad("alpha", "must be finite and > 0");
        }
        if self.cg_steps == 0 {
            return bad("cg_steps", "must be at least 1");
        }
        Ok(())
    }
}

/// A fitted ALS model: one `factors`-long vector per user and per item, stored
/// as flat row-major `Vec<f32>`s (`user_factors[u * factors..(u + 1) * factors]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlsModel {
    factors: usize,
    n_users: usize,
    n_items: usize,
    user_factors: Vec<f32>,
    item_factors: Vec<f32>,
    /// `item_factors` again, in [`to_panels`] layout for scoring (25 MiB at 100k items):
    /// serving ranks every item for every request, so the layout is built once here.
    item_panels: Vec<f32>,
}

/// Rows handed to one rayon task. Large enough that per-task overhead and the
/// scratch allocation vanish, small enough to balance power-law row lengths.
const ROWS_PER_TASK: usize = 64;

/// Rows per partial YᵀY sum. Fixed (not derived from the thread count) so the
/// summation order, and hence every bit of the result, is thread-independent.
const GRAM_BLOCK_ROWS: usize = 2048;

/// Below this squared residual norm a row counts as solved; `implicit`'s value.
const CG_TOLERANCE: f32 = 1e-20;

impl AlsModel {
    /// Fits the model on `data` (users × items, weights = confidences).
    ///
    /// Runs on the current rayon pool; wrap the call in `pool.install(..)` to
    /// choose the thread count.
    pub fn fit(data: &Interactions, params: &AlsParams) -> Result<AlsModel> {
        params.validate()?;
        let f = params.factors;
        let (n_users, n_items) = (data.n_users(), data.n_items());

        // `implicit` draws U[0, 1) · 0.01 for both sides; the values only need
        // to be small, non-zero and not all equal.
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let mut user_factors: Vec<f32> = (0..n_users * f)
            .map(|_| rng.random::<f32>() * 0.01)
            .collect();
        let mut item_factors: Vec<f32> = (0..n_items * f)
            .map(|_| rng.random::<f32>() * 0.01)
            .collect();

        let solve = Solve {
            factors: f,
            regularization: params.regularization,
            alpha: params.alpha,
            cg_steps: params.cg_steps,
        };
        for _ in 0..params.iterations {
            solve.half_iteration(&mut user_factors, &item_factors, |u| data.user_row(u));
            solve.half_iteration(&mut item_factors, &user_factors, |i| data.item_row(i));
        }

        Ok(AlsModel {
            factors: f,
            n_users,
            n_items,
            item_panels: to_panels(&item_factors, f),
            user_factors,
            item_factors,
        })
    }

    /// Heap bytes of its factors (users', items', and the items' scoring panels).
    pub fn heap_bytes(&self) -> usize {
        use crate::interactions::vec_bytes;
        vec_bytes(&self.user_factors) + vec_bytes(&self.item_factors) + vec_bytes(&self.item_panels)
    }

    pub fn factors(&self) -> usize {
        self.factors
    }

    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// All user vectors, row-major.
    pub fn user_factors(&self) -> &[f32] {
        &self.user_factors
    }

    /// All item vectors, row-major.
    pub fn item_factors(&self) -> &[f32] {
        &self.item_factors
    }

    pub fn user_vector(&self, user: u32) -> Result<&[f32]> {
        let u = check_user(user, self.n_users)?;
        Ok(&self.user_factors[u * self.factors..(u + 1) * self.factors])
    }

    pub fn item_vector(&self, item: u32) -> Result<&[f32]> {
        if item as usize >= self.n_items {
            return Err(ModelError::ItemOutOfRange {
                item,
                n_items: self.n_items,
            });
        }
        let i = item as usize;
        Ok(&self.item_factors[i * self.factors..(i + 1) * self.factors])
    }

    /// The `k` items whose vectors have the highest cosine similarity with
    /// `item`'s, best first, ties by ascending id. The query item itself is
    /// left out (unlike `implicit`, which returns it first), since a caller
    /// asking for similar items never wants the item back. Items with an
    /// all-zero vector (never seen in training) score 0.
    pub fn similar_items(&self, item: u32, k: usize) -> Result<Vec<(u32, f32)>> {
        let query = self.item_vector(item)?;
        let f = self.factors;
        let cosines = cpu::fast(
            #[inline(always)]
            |isa| {
                let query_norm = dot(isa, query, query).sqrt();
                self.item_factors
                    .chunks_exact(f)
                    .map(|v| {
                        let denom = query_norm * dot(isa, v, v).sqrt();
                        if denom > 0.0 {
                            dot(isa, query, v) / denom
                        } else {
                            0.0
                        }
                    })
                    .collect::<Vec<f32>>()
            },
        );
        let candidates = cosines
            .into_iter()
            .enumerate()
            .filter(|&(i, _)| i != item as usize)
            .map(|(i, cos)| (i as u32, cos));
        Ok(top_k(candidates, k))
    }
}

impl AlsModel {
    /// `(factors, n_users, n_items, user_factors, item_factors)`, for saving.
    pub(crate) fn raw(&self) -> (usize, usize, usize, &[f32], &[f32]) {
        (
            self.factors,
            self.n_users,
            self.n_items,
            &self.user_factors,
            &self.item_factors,
        )
    }

    /// Rebuilds a saved model. The scoring panels are derived again rather than saved: they
    /// are a pure re-layout of `item_factors` (the same bits), and saving them would double
    /// the item side of the file.
    pub(crate) fn from_raw(
        factors: usize,
        n_users: usize,
        n_items: usize,
        user_factors: Vec<f32>,
        item_factors: Vec<f32>,
    ) -> std::result::Result<AlsModel, String> {
        if Some(user_factors.len()) != n_users.checked_mul(factors)
            || Some(item_factors.len()) != n_items.checked_mul(factors)
        {
            return Err("ALS factor arrays do not match their dimensions".to_string());
        }
        Ok(AlsModel {
            factors,
            n_users,
            n_items,
            item_panels: to_panels(&item_factors, factors),
            user_factors,
            item_factors,
        })
    }
}

impl Recommender for AlsModel {
    fn fitted(&self) -> Option<crate::snapshot::Fitted<'_>> {
        Some(crate::snapshot::Fitted::Als(self))
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    /// Dot product of the user's vector with every item's. Errors for a user
    /// outside the training matrix (a cold user has no vector; fall back to
    /// popularity). A user with no training interactions has a zero vector, so
    /// every score is 0 and ranking falls to the id tie-break.
    fn score_items(&self, user: u32) -> Result<Vec<f32>> {
        let mut scores = vec![0f32; self.n_items];
        self.score_users_with(&[user], &mut |_, start, block| {
            scores[start..start + block.len()].copy_from_slice(block);
        })?;
        Ok(scores)
    }

    /// A panel of items (see [`to_panels`]) stays in cache while every user of the batch is
    /// scored against it, four users at a time: each item vector is read from memory once
    /// per batch, and each loaded value feeds four users' multiply-adds.
    fn score_users_with(
        &self,
        users: &[u32],
        sink: &mut dyn FnMut(usize, usize, &[f32]),
    ) -> Result<()> {
        let xs: Vec<&[f32]> = users
            .iter()
            .map(|&u| self.user_vector(u))
            .collect::<Result<_>>()?;
        let mut out = vec![[0f32; PANEL]; 4];
        cpu::fast(
            #[inline(always)]
            |isa| {
                for (p, panel) in self
                    .item_panels
                    .chunks_exact(self.factors * PANEL)
                    .enumerate()
                {
                    let start = p * PANEL;
                    let len = PANEL.min(self.n_items - start);
                    let mut groups = xs.chunks_exact(4);
                    for (g, group) in groups.by_ref().enumerate() {
                        let group = [group[0], group[1], group[2], group[3]];
                        score_panel::<4, 16>(isa, group, panel, &mut out);
                        for (u, scores) in out.iter().enumerate() {
                            sink(g * 4 + u, start, &scores[..len]);
                        }
                    }
                    let first = xs.len() - groups.remainder().len();
                    for (r, &x) in groups.remainder().iter().enumerate() {
                        score_panel::<1, 64>(isa, [x], panel, &mut out);
                        sink(first + r, start, &out[0][..len]);
                    }
                }
            },
        );
        Ok(())
    }
}

/// Everything one half-iteration needs besides the data.
struct Solve {
    factors: usize,
    regularization: f32,
    alpha: f32,
    cg_steps: usize,
}

/// Per-task buffers for the CG recurrences (residual, direction, A·direction).
struct Scratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
}

impl Solve {
    /// Updates every row of `xs` against the fixed `ys`; `row(r)` gives row r's
    /// observed (other-side id, weight) pairs.
    fn half_iteration<'d>(
        &self,
        xs: &mut [f32],
        ys: &[f32],
        row: impl Fn(usize) -> Row<'d> + Sync,
    ) {
        // Common sizes get a copy of the solver in which the vector length is a
        // compile-time constant, so every kernel loop is fully unrolled; other
        // sizes take the same code with a run-time length (FIXED = 0).
        match self.factors {
            16 => self.half_iteration_for::<16, _>(xs, ys, row),
            32 => self.half_iteration_for::<32, _>(xs, ys, row),
            64 => self.half_iteration_for::<64, _>(xs, ys, row),
            128 => self.half_iteration_for::<128, _>(xs, ys, row),
            _ => self.half_iteration_for::<0, _>(xs, ys, row),
        }
    }

    fn half_iteration_for<'d, const FIXED: usize, R>(&self, xs: &mut [f32], ys: &[f32], row: R)
    where
        R: Fn(usize) -> Row<'d> + Sync,
    {
        let f = if FIXED == 0 { self.factors } else { FIXED };
        let a = self.gram_plus_ridge(ys);
        xs.par_chunks_mut(f * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(task, block)| {
                let mut s = Scratch {
                    r: vec![0.0; f],
                    p: vec![0.0; f],
                    ap: vec![0.0; f],
                };
                cpu::fast(
                    #[inline(always)]
                    |isa| {
                        for (j, x) in block.chunks_exact_mut(f).enumerate() {
                            let observed = row(task * ROWS_PER_TASK + j);
                            self.solve_row(isa, f, &a, ys, observed, x, &mut s);
                        }
                    },
                );
            });
    }

    /// YᵀY + λI, computed in parallel over fixed blocks and summed in order.
    fn gram_plus_ridge(&self, ys: &[f32]) -> Vec<f32> {
        let f = self.factors;
        let partials: Vec<Vec<f32>> = ys
            .par_chunks(f * GRAM_BLOCK_ROWS)
            .map(|block| {
                let mut g = vec![0f32; f * f];
                cpu::fast(
                    #[inline(always)]
                    |isa| gram_upper_accumulate(isa, block, f, &mut g),
                );
                g
            })
            .collect();
        let mut g = vec![0f32; f * f];
        for p in &partials {
            for (gi, pi) in g.iter_mut().zip(p) {
                *gi += pi;
            }
        }
        mirror_upper(&mut g, f);
        for k in 0..f {
            g[k * f + k] += self.regularization;
        }
        g
    }

    /// A few CG steps on `(A + Yᵀ(C−I)Y) x = YᵀCp` for one row, from the current
    /// `x`. `a` = YᵀY + λI. Mirrors `implicit`'s `_least_squares_cg`.
    ///
    /// `f` equals `self.factors`; it is passed in so that callers with a
    /// constant length get that constant propagated through the inlined body.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)] // one call site, in the hot loop
    fn solve_row(
        &self,
        isa: Isa,
        f: usize,
        a: &[f32],
        ys: &[f32],
        row: Row<'_>,
        x: &mut [f32],
        s: &mut Scratch,
    ) {
        if row.is_empty() {
            // No observations: the minimizer of λ|x|² + Σ_i (x·y_i)² is 0.
            x.fill(0.0);
            return;
        }
        // Re-slicing to `f` tells LLVM the exact (possibly constant) length.
        let (x, r, p, ap) = (&mut x[..f], &mut s.r[..f], &mut s.p[..f], &mut s.ap[..f]);
        let a = &a[..f * f];

        // r = YᵀC p − (YᵀCY + λI) x, using the shared A and a sparse correction.
        symv(isa, a, x, r);
        for v in r.iter_mut() {
            *v = -*v;
        }
        for (id, w) in row.iter() {
            let y = &ys[id as usize * f..(id as usize + 1) * f];
            let c = self.alpha * w;
            let yx = dot(isa, y, x);
            // Observed-and-liked: pref 1, conf c. Disliked: pref 0, conf |c|.
            let t = if c > 0.0 {
                c - (c - 1.0) * yx
            } else {
                -(-c - 1.0) * yx
            };
            axpy(isa, t, y, r);
        }
        p.copy_from_slice(r);
        let mut rs_old = dot(isa, r, r);
        if rs_old < CG_TOLERANCE {
            return;
        }

        for _ in 0..self.cg_steps {
            // ap = (YᵀCY + λI) p without forming YᵀCY.
            symv(isa, a, p, ap);
            for (id, w) in row.iter() {
                let y = &ys[id as usize * f..(id as usize + 1) * f];
                let c = (self.alpha * w).abs();
                axpy(isa, (c - 1.0) * dot(isa, y, p), y, ap);
            }
            let step = rs_old / dot(isa, p, ap);
            axpy(isa, step, p, x);
            axpy(isa, -step, ap, r);
            let rs_new = dot(isa, r, r);
            if rs_new < CG_TOLERANCE {
                break;
            }
            let beta = rs_new / rs_old;
            for (pi, ri) in p.iter_mut().zip(r.iter()) {
                *pi = ri + beta * *pi;
            }
            rs_old = rs_new;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    /// Dense Cholesky solve, for checking CG against the exact least-squares
    /// solution on a tiny problem.
    fn solve_dense(mut m: Vec<f64>, mut b: Vec<f64>, n: usize) -> Vec<f64> {
        for k in 0..n {
            let d =
                (m[k * n + k] - (0..k).map(|j| m[k * n + j] * m[k * n + j]).sum::<f64>()).sqrt();
            m[k * n + k] = d;
            for i in k + 1..n {
                let s: f64 = (0..k).map(|j| m[i * n + j] * m[k * n + j]).sum();
                m[i * n + k] = (m[i * n + k] - s) / d;
            }
        }
        for i in 0..n {
            let s: f64 = (0..i).map(|j| m[i * n + j] * b[j]).sum();
            b[i] = (b[i] - s) / m[i * n + i];
        }
        for i in (0..n).rev() {
            let s: f64 = (i + 1..n).map(|j| m[j * n + i] * b[j]).sum();
            b[i] = (b[i] - s) / m[i * n + i];
        }
        b
    }

    #[test]
    fn cg_with_enough_steps_reaches_the_exact_solution() {
        let f = 5;
        let n_items = 9;
        let ys: Vec<f32> = (0..n_items * f)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 10.0)
            .collect();
        let data =
            Interactions::from_triplets(1, n_items, &[(0, 1, 3.0), (0, 4, 1.0), (0, 7, 0.5)])
                .unwrap();
        let row = data.user_row(0);
        let solve = Solve {
            factors: f,
            regularization: 0.1,
            alpha: 2.0,
            cg_steps: 50,
        };
        let a = solve.gram_plus_ridge(&ys);
        let mut x = vec![0.01f32; f];
        let mut s = Scratch {
            r: vec![0.0; f],
            p: vec![0.0; f],
            ap: vec![0.0; f],
        };
        solve.solve_row(Isa::Baseline, f, &a, &ys, row, &mut x, &mut s);

        // Exact: (YᵀY + λI + Σ (c−1) y yᵀ) x = Σ c·p·y, p = 1 for c > 0.
        let mut m: Vec<f64> = a.iter().map(|&v| v as f64).collect();
        let mut b = vec![0f64; f];
        for (id, w) in row.iter() {
            let c = (2.0 * w) as f64;
            let y = &ys[id as usize * f..(id as usize + 1) * f];
            for j in 0..f {
                b[j] += c * y[j] as f64;
                for k in 0..f {
                    m[j * f + k] += (c - 1.0) * (y[j] * y[k]) as f64;
                }
            }
        }
        let want = solve_dense(m, b, f);
        for (got, want) in x.iter().zip(&want) {
            assert!((*got as f64 - want).abs() < 1e-3, "{x:?} vs {want:?}");
        }
    }

    #[test]
    fn rejects_bad_params() {
        let data = Interactions::from_triplets(1, 1, &[(0, 0, 1.0)]).unwrap();
        for p in [
            AlsParams {
                factors: 0,
                ..Default::default()
            },
            AlsParams {
                alpha: 0.0,
                ..Default::default()
            },
            AlsParams {
                regularization: f32::NAN,
                ..Default::default()
            },
            AlsParams {
                cg_steps: 0,
                ..Default::default()
            },
        ] {
            assert!(matches!(
                AlsModel::fit(&data, &p),
                Err(ModelError::InvalidParameter { .. })
            ));
        }
    }
}
