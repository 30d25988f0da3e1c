//! The learned ranking of one audience: gradient-boosted trees and logistic regression, each
//! cross-fitted on the same two folds, and the one whose held-out rankings were better
//! refitted on every backtest user.
//!
//! Trees can express interactions (a share of past orders that matters only for users
//! active lately); logistic regression is smoother when there is little to learn from (a
//! genre with forty positives). Neither wins everywhere, so each audience measures both.

use serde::{Deserialize, Serialize};

use super::backtest::{self, Evaluation, Folds, Scored};
use super::boosting::{self, BoostParams, BoostSample, Ensemble};
use super::features::{FEATURE_NAMES, N_FEATURES, TIME_ANCHORED, without_time_anchored};
use super::logistic::{Logistic, Sample};
use super::{FeatureWeight, PropensityModel};

/// Which learners an audience may use. `auto` (the default) cross-fits both and keeps the
/// better; the others force one (for benchmarks that score a learner on its own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LearnerChoice {
    #[default]
    Auto,
    Logistic,
    Boosted,
}

pub(super) const LOGISTIC_FAMILY: &str = "logistic_regression";
pub(super) const BOOSTED_FAMILY: &str = "gradient_boosted_trees";

/// A fitted learner.
pub(super) enum Learner {
    Logistic(Logistic),
    Boosted(Ensemble),
}

impl Learner {
    pub(super) fn predict(&self, row: &[f32]) -> f64 {
        match self {
            Learner::Logistic(m) => m.predict(row),
            Learner::Boosted(m) => m.predict(row),
        }
    }
}

/// The cross-fitted, chosen and refitted learner.
pub(super) struct Learned {
    pub learner: Learner,
    /// The chosen learner's held-out evaluations (one per fold with positives).
    pub evaluations: Vec<Evaluation>,
    /// The chosen learner's held-out scores, one list per fold (every fold, in fold order):
    /// what a blend with a heuristic is measured on.
    pub held_out: Vec<Vec<Scored>>,
    pub model: PropensityModel,
}

pub(super) fn row(x: &[f32], user: u32) -> &[f32] {
    let u = user as usize;
    &x[u * N_FEATURES..(u + 1) * N_FEATURES]
}

fn held_out_scores(
    x: &[f32],
    labels: &[bool],
    members: &[(u32, f64)],
    predict: impl Fn(&[f32]) -> f64,
) -> Vec<Scored> {
    members
        .iter()
        .map(|&(user, weight)| Scored {
            user,
            score: predict(row(x, user)),
            positive: labels[user as usize],
            weight,
        })
        .collect()
}

/// Each fold's evaluation, skipping folds without positives.
fn evaluations(held_out: &[Vec<Scored>]) -> Vec<Evaluation> {
    held_out
        .iter()
        .filter_map(|s| backtest::evaluate(s.clone()))
        .collect()
}

/// How much held-out average precision (relative) the time-anchored features must add for
/// the learned ranking that uses them to serve. A ranking of who engages with the target
/// "when", not only "how much", is right for the question asked at `as_of` but wrong for
/// anyone whose next visit is later than their recency suggests (a shopper on a long cycle,
/// or the next order of a shopper who went quiet for a while: past count and past share
/// beat a recency-led ranking there by 10–20% on the repeat shop's per-shopper next order,
/// while on its common-cut window they scored within 1% of it). So the learned ranking
/// without them serves unless timing buys a clear margin; on MovieLens, where recency is
/// most of the signal, it does.
pub(super) const TIMING_MARGIN: f64 = 0.02;

/// [`learn`] twice: on every feature and without the [`TIME_ANCHORED`] ones, on the same
/// folds (`x` without the next-visit question's features: the caller zeroes them); the
/// timeless one serves unless the other's mean held-out average precision is better by
/// more than [`TIMING_MARGIN`]. The served one's `chosen_because` says both.
pub(super) fn learn_robust(
    x: &[f32],
    labels: &[bool],
    folds: &Folds,
    borrowed: &Borrowed,
    l2: f64,
    choice: LearnerChoice,
    boost: &BoostParams,
) -> Learned {
    let full = learn(x, labels, folds, borrowed, l2, choice, boost);
    let x_timeless = without_time_anchored(x);
    let timeless = learn(&x_timeless, labels, folds, borrowed, l2, choice, boost);
    let ap_full = backtest::mean_average_precision(&full.evaluations);
    let ap_timeless = backtest::mean_average_precision(&timeless.evaluations);
    let anchored: Vec<&str> = TIME_ANCHORED.iter().map(|&k| FEATURE_NAMES[k]).collect();
    let use_timeless = ap_timeless >= (1.0 - TIMING_MARGIN) * ap_full;
    let mut served = if use_timeless { timeless } else { full };
    let why = if use_timeless {
        format!(
            "without the time-anchored features ({}) the held-out average precision was {ap_timeless:.4}, with them {ap_full:.4}: within {:.0}%, so the ranking that does not depend on when the question is asked serves",
            anchored.join(", "),
            TIMING_MARGIN * 100.0
        )
    } else {
        format!(
            "with the time-anchored features the held-out average precision was {ap_full:.4}, without them {ap_timeless:.4}: more than {:.0}% better, so they are used",
            TIMING_MARGIN * 100.0
        )
    };
    add_reason(&mut served.model, why, Place::After);
    served
}

/// Where a reason goes beside the learners' comparison already in `chosen_because`.
pub(super) enum Place {
    Before,
    After,
}

pub(super) fn add_reason(model: &mut PropensityModel, why: String, place: Place) {
    model.chosen_because = Some(match (model.chosen_because.take(), place) {
        (Some(learners), Place::Before) => format!("{why}; {learners}"),
        (Some(learners), Place::After) => format!("{learners}; {why}"),
        (None, _) => why,
    });
}

/// The learned ranking of the backtest's second question, "what does the user's next visit
/// hold" (`labels` of the users who came back, the others weighted 0 in `folds`): without
/// the time-anchored features, since when that visit comes is not known when the audience
/// is served. Its held-out scores cover every member of `folds`, so it can be measured on
/// the first question too.
pub(super) fn learn_next_visit(
    x: &[f32],
    labels: &[bool],
    folds: &Folds,
    borrowed: &Borrowed,
    l2: f64,
    choice: LearnerChoice,
    boost: &BoostParams,
) -> Learned {
    let x_timeless = without_time_anchored(x);
    let mut learned = learn(&x_timeless, labels, folds, borrowed, l2, choice, boost);
    let why = "trained on whether the target was in each user's first visit after the backtest time, among the users who came back, without the time-anchored features";
    add_reason(&mut learned.model, why.to_string(), Place::Before);
    learned
}

/// Rows of `x` past the target's own users that train with each fold's users (borrowed
/// from related targets and the earlier cut: `lent_rows.rs`), with their weights; both
/// empty for none.
pub(super) type Borrowed = [Vec<(u32, f64)>; 2];

/// Cross-fits the learners `choice` allows on `folds` (with the `borrowed` rows of each
/// fold in its fits), keeps the one with the better mean held-out average precision (trees
/// on a tie), and refits it on both folds. Held-out scores are of the folds' own members.
pub(super) fn learn(
    x: &[f32],
    labels: &[bool],
    folds: &Folds,
    borrowed: &Borrowed,
    l2: f64,
    choice: LearnerChoice,
    boost: &BoostParams,
) -> Learned {
    // Members of weight 0 (users a question does not ask about) are scored, not trained on:
    // they would only move the trees' bin edges and cost time.
    let own = folds
        .members
        .clone()
        .map(|m| m.into_iter().filter(|m| m.1 > 0.0).collect::<Vec<_>>());
    let train: [Vec<(u32, f64)>; 2] = std::array::from_fn(|f| {
        let mut v = own[f].clone();
        v.extend(borrowed[f].iter().filter(|m| m.1 > 0.0));
        v
    });
    let sorted = |v: &mut Vec<(u32, f64)>| v.sort_unstable_by_key(|&(u, _)| u);
    let all: Vec<(u32, f64)> = {
        let mut v: Vec<(u32, f64)> = train.iter().flatten().copied().collect();
        sorted(&mut v);
        v
    };
    // What the model shows (training users and positives; for trees, the feature means
    // an explanation compares a user with) is of the target's own users. A logistic
    // regression's means and spreads are its fit's, borrowed rows included: its
    // coefficients are on that scale.
    let own_all: Vec<(u32, f64)> = {
        let mut v: Vec<(u32, f64)> = own.iter().flatten().copied().collect();
        sorted(&mut v);
        v
    };
    let linear = (choice != LearnerChoice::Boosted).then(|| {
        let held_out: Vec<Vec<Scored>> = (0..2)
            .map(|held_out| {
                let m = fit_logistic(x, labels, &train[1 - held_out], l2);
                held_out_scores(x, labels, &folds.members[held_out], |r| m.predict(r))
            })
            .collect();
        (evaluations(&held_out), held_out)
    });
    let trees = (choice != LearnerChoice::Logistic)
        .then(|| cross_fit_trees(x, labels, &train, &folds.members, boost));

    let mean_ap = |e: &[Evaluation]| backtest::mean_average_precision(e);
    let use_trees = match (&linear, &trees) {
        (Some((l, _)), Some((t, _, _, _))) => mean_ap(t) >= mean_ap(l),
        (None, _) => true,
        (_, None) => false,
    };
    let compared = match (&linear, &trees) {
        (Some((l, _)), Some((t, _, n, _))) => format!(
            "cross-fitted average precision: gradient-boosted trees ({n} trees) {:.4}, logistic regression {:.4}",
            mean_ap(t),
            mean_ap(l)
        ),
        _ => "the only learner allowed for this audience".to_string(),
    };
    if use_trees {
        let (evaluations, held_out, n_trees, params) = trees.expect("trees were cross-fitted");
        let rows: Vec<u32> = all.iter().map(|m| m.0).collect();
        let w: Vec<f64> = all.iter().map(|m| m.1).collect();
        let ensemble = boosting::fit(
            &BoostSample {
                x,
                d: N_FEATURES,
                rows: &rows,
                y: labels,
                w: &w,
                held_out: &[],
            },
            &params,
            n_trees,
        )
        .ensemble;
        let model = describe_trees(&ensemble, x, &own_all, labels, &params, compared);
        Learned {
            learner: Learner::Boosted(ensemble),
            evaluations,
            held_out,
            model,
        }
    } else {
        let m = fit_logistic(x, labels, &all, l2);
        let model = describe_logistic(&m, &own_all, labels, l2, compared);
        let (evaluations, held_out) = linear.expect("logistic was cross-fitted");
        Learned {
            learner: Learner::Logistic(m),
            evaluations,
            held_out,
            model,
        }
    }
}

/// Both folds' trees, stopped at the one number of trees that minimizes their summed
/// held-out log-loss (so the refit can use it); the held-out evaluations and scores at that
/// number.
fn cross_fit_trees(
    x: &[f32],
    labels: &[bool],
    train: &[Vec<(u32, f64)>; 2],
    members: &[Vec<(u32, f64)>; 2],
    params: &BoostParams,
) -> (Vec<Evaluation>, Vec<Vec<Scored>>, usize, BoostParams) {
    let params = params.clone();
    let fitted: Vec<boosting::Fitted> = (0..2)
        .map(|held_out| {
            let fit_on = &train[1 - held_out];
            let rows: Vec<u32> = fit_on.iter().map(|m| m.0).collect();
            let w: Vec<f64> = fit_on.iter().map(|m| m.1).collect();
            boosting::fit(
                &BoostSample {
                    x,
                    d: N_FEATURES,
                    rows: &rows,
                    y: labels,
                    w: &w,
                    held_out: &train[held_out],
                },
                &params,
                params.max_trees,
            )
        })
        .collect();
    let steps = fitted
        .iter()
        .map(|f| f.held_out_loss.len())
        .min()
        .unwrap_or(0);
    let n_trees = (0..steps)
        .min_by(|&a, &b| {
            let loss = |t: usize| fitted.iter().map(|f| f.held_out_loss[t]).sum::<f64>();
            loss(a).total_cmp(&loss(b)).then(a.cmp(&b))
        })
        .unwrap_or(0);
    let held_out: Vec<Vec<Scored>> = fitted
        .iter()
        .enumerate()
        .map(|(held_out, f)| {
            let m = f.ensemble.truncated(n_trees);
            held_out_scores(x, labels, &members[held_out], |r| m.predict(r))
        })
        .collect();
    (evaluations(&held_out), held_out, n_trees, params)
}

fn fit_logistic(x: &[f32], labels: &[bool], members: &[(u32, f64)], l2: f64) -> Logistic {
    let rows: Vec<u32> = members.iter().map(|m| m.0).collect();
    let w: Vec<f64> = members.iter().map(|m| m.1).collect();
    Logistic::fit(
        &Sample {
            x,
            d: N_FEATURES,
            rows: &rows,
            y: labels,
            w: &w,
        },
        l2,
    )
}

fn positives(members: &[(u32, f64)], labels: &[bool]) -> usize {
    members.iter().filter(|m| labels[m.0 as usize]).count()
}

fn describe_logistic(
    m: &Logistic,
    members: &[(u32, f64)],
    labels: &[bool],
    l2: f64,
    chosen_because: String,
) -> PropensityModel {
    PropensityModel {
        family: LOGISTIC_FAMILY.to_string(),
        intercept: m.intercept,
        features: FEATURE_NAMES
            .iter()
            .enumerate()
            .map(|(k, name)| FeatureWeight {
                name: (*name).to_string(),
                coefficient: m.coef[k],
                mean: m.mean[k],
                std: m.std[k],
            })
            .collect(),
        l2,
        training_users: members.len(),
        training_positives: positives(members, labels),
        trees: None,
        chosen_because: Some(chosen_because),
        base_rate: None,
    }
}

/// Trees have no coefficients: each feature's `coefficient` is its share of the ensemble's
/// splits (by the spread of the children's values), and mean / std describe the training
/// users' values, so an explanation can still say how unusual a user is.
fn describe_trees(
    ensemble: &Ensemble,
    x: &[f32],
    members: &[(u32, f64)],
    labels: &[bool],
    params: &BoostParams,
    chosen_because: String,
) -> PropensityModel {
    let importance = ensemble.importance(N_FEATURES);
    let n = members.len().max(1) as f64;
    let mut mean = [0f64; N_FEATURES];
    let mut square = [0f64; N_FEATURES];
    for &(u, _) in members {
        for (k, &v) in row(x, u).iter().enumerate() {
            mean[k] += f64::from(v);
            square[k] += f64::from(v) * f64::from(v);
        }
    }
    PropensityModel {
        family: BOOSTED_FAMILY.to_string(),
        intercept: ensemble.bias(),
        features: FEATURE_NAMES
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let m = mean[k] / n;
                let var = (square[k] / n - m * m).max(0.0);
                FeatureWeight {
                    name: (*name).to_string(),
                    coefficient: importance[k],
                    mean: m,
                    // A constant feature still divides cleanly when explained.
                    std: if var > 0.0 { var.sqrt() } else { 1.0 },
                }
            })
            .collect(),
        l2: params.lambda,
        training_users: members.len(),
        training_positives: positives(members, labels),
        trees: Some(ensemble.clone()),
        chosen_because: Some(chosen_because),
        base_rate: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propensity::features::col;

    /// 2000 users with a past count and a recency, both spread over their ranges; who
    /// engages is decided by `rule` on them, with one in ten labels flipped.
    fn sample(rule: impl Fn(f32, f32) -> bool) -> (Vec<f32>, Vec<bool>, Folds) {
        let n = 2000;
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as f32 / (1u64 << 31) as f32
        };
        let mut x = vec![0f32; n * N_FEATURES];
        let mut labels = vec![false; n];
        for u in 0..n {
            let (count, days) = ((next() * 4.0).floor(), next() * 5.0);
            x[u * N_FEATURES + col::TARGET_COUNT] = count;
            x[u * N_FEATURES + col::DAYS_SINCE_ACTIVE] = days;
            labels[u] = rule(count, days) != (next() < 0.1);
        }
        let (pos, neg): (Vec<u32>, Vec<u32>) = (0..n as u32).partition(|&u| labels[u as usize]);
        let folds = Folds::new(&pos, &neg, 1_000_000, 1);
        (x, labels, folds)
    }

    fn learned(rule: impl Fn(f32, f32) -> bool) -> String {
        let (x, labels, folds) = sample(rule);
        let l = learn_robust(
            &x,
            &labels,
            &folds,
            &Borrowed::default(),
            1e-2,
            LearnerChoice::Auto,
            &BoostParams::default(),
        );
        l.model.chosen_because.expect("a reason")
    }

    #[test]
    fn borrowed_rows_teach_the_rule_through_their_own_labels() {
        // 2000 rows that follow one rule (10% flipped): the first 150 are the target's own
        // users, the rest are borrowed, half with each fold.
        let (x, labels, _) = sample(|count, days| count >= 2.0 && days < 2.5);
        let own = 150u32;
        let (pos, neg): (Vec<u32>, Vec<u32>) = (0..own).partition(|&u| labels[u as usize]);
        let folds = Folds::new(&pos, &neg, 1_000_000, 3);
        let borrowed: Borrowed = std::array::from_fn(|f| {
            (own..2000)
                .filter(|u| u % 2 == f as u32)
                .map(|u| (u, 1.0))
                .collect()
        });
        let ap = |labels: &[bool], borrowed: &Borrowed| {
            let l = learn(
                &x,
                labels,
                &folds,
                borrowed,
                1e-2,
                LearnerChoice::Boosted,
                &BoostParams::default(),
            );
            backtest::mean_average_precision(&l.evaluations)
        };
        let alone = ap(&labels, &Borrowed::default());
        let helped = ap(&labels, &borrowed);
        // The same rows with their labels turned over teach the opposite rule.
        let mut misled = labels.clone();
        for l in &mut misled[own as usize..] {
            *l = !*l;
        }
        let misled = ap(&misled, &borrowed);
        assert!(helped > alone, "alone {alone:.4}, helped {helped:.4}");
        assert!(misled < alone, "alone {alone:.4}, misled {misled:.4}");
    }

    #[test]
    fn the_ranking_that_ignores_when_serves_unless_timing_clearly_helps() {
        // Only the past count matters: recency adds nothing, the timeless ranking serves.
        let why = learned(|count, _| count >= 2.0);
        assert!(why.contains("does not depend on when"), "{why}");
        // Only recency matters: without it there is nothing to rank by.
        let why = learned(|_, days| days < 1.5);
        assert!(why.contains("so they are used"), "{why}");
    }
}
