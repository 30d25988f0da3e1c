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
use super::features::{FEATURE_NAMES, N_FEATURES};
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
    pub model: PropensityModel,
}

pub(super) fn row(x: &[f32], user: u32) -> &[f32] {
    let u = user as usize;
    &x[u * N_FEATURES..(u + 1) * N_FEATURES]
}

fn held_out_evaluation(
    x: &[f32],
    labels: &[bool],
    members: &[(u32, f64)],
    predict: impl Fn(&[f32]) -> f64,
) -> Option<Evaluation> {
    let scored = members
        .iter()
        .map(|&(user, weight)| Scored {
            user,
            score: predict(row(x, user)),
            positive: labels[user as usize],
            weight,
        })
        .collect();
    backtest::evaluate(scored)
}

/// Cross-fits the learners `choice` allows on `folds`, keeps the one with the better mean
/// held-out average precision (trees on a tie), and refits it on both folds.
pub(super) fn learn(
    x: &[f32],
    labels: &[bool],
    folds: &Folds,
    l2: f64,
    choice: LearnerChoice,
    boost: &BoostParams,
) -> Learned {
    let all: Vec<(u32, f64)> = {
        let mut v: Vec<(u32, f64)> = folds.members.iter().flatten().copied().collect();
        v.sort_unstable_by_key(|&(u, _)| u);
        v
    };
    let linear = (choice != LearnerChoice::Boosted).then(|| {
        (0..2)
            .filter_map(|held_out| {
                let m = fit_logistic(x, labels, &folds.members[1 - held_out], l2);
                held_out_evaluation(x, labels, &folds.members[held_out], |r| m.predict(r))
            })
            .collect::<Vec<_>>()
    });
    let trees =
        (choice != LearnerChoice::Logistic).then(|| cross_fit_trees(x, labels, folds, boost));

    let mean_ap = |e: &[Evaluation]| backtest::mean_average_precision(e);
    let use_trees = match (&linear, &trees) {
        (Some(l), Some((t, _, _))) => mean_ap(t) >= mean_ap(l),
        (None, _) => true,
        (_, None) => false,
    };
    let compared = match (&linear, &trees) {
        (Some(l), Some((t, n, _))) => format!(
            "cross-fitted average precision: gradient-boosted trees ({n} trees) {:.4}, logistic regression {:.4}",
            mean_ap(t),
            mean_ap(l)
        ),
        _ => "the only learner allowed for this audience".to_string(),
    };
    if use_trees {
        let (evaluations, n_trees, params) = trees.expect("trees were cross-fitted");
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
        let model = describe_trees(&ensemble, x, &all, labels, &params, compared);
        Learned {
            learner: Learner::Boosted(ensemble),
            evaluations,
            model,
        }
    } else {
        let m = fit_logistic(x, labels, &all, l2);
        let model = describe_logistic(&m, &all, labels, l2, compared);
        Learned {
            learner: Learner::Logistic(m),
            evaluations: linear.expect("logistic was cross-fitted"),
            model,
        }
    }
}

/// Both folds' trees, stopped at the one number of trees that minimizes their summed
/// held-out log-loss (so the refit can use it); the held-out evaluations at that number.
fn cross_fit_trees(
    x: &[f32],
    labels: &[bool],
    folds: &Folds,
    params: &BoostParams,
) -> (Vec<Evaluation>, usize, BoostParams) {
    let params = params.clone();
    let fitted: Vec<boosting::Fitted> = (0..2)
        .map(|held_out| {
            let train = &folds.members[1 - held_out];
            let rows: Vec<u32> = train.iter().map(|m| m.0).collect();
            let w: Vec<f64> = train.iter().map(|m| m.1).collect();
            boosting::fit(
                &BoostSample {
                    x,
                    d: N_FEATURES,
                    rows: &rows,
                    y: labels,
                    w: &w,
                    held_out: &folds.members[held_out],
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
    let evaluations = fitted
        .iter()
        .enumerate()
        .filter_map(|(held_out, f)| {
            let m = f.ensemble.truncated(n_trees);
            held_out_evaluation(x, labels, &folds.members[held_out], |r| m.predict(r))
        })
        .collect();
    (evaluations, n_trees, params)
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
    }
}
