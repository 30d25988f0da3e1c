//! Product-based audiences: which users are most likely to engage with a target (one item,
//! or every item whose column matches a value, e.g. brand = Acme) within the next
//! `horizon_days`?
//!
//! The score is a *learned* propensity, trained on the store's own past:
//!
//! 1. [`PropensityContext::build`] (once per training run) fixes a backtest time
//!    `T_b = as_of − horizon`, fits two ALS models — one on the interactions up to `T_b`
//!    ("past"), one on everything ("now") — and precomputes per-user activity statistics at
//!    both times plus an item-major index of interactions, so per-target work only touches
//!    the target's own interactions. In stores of up to 250 000 users it does the same one
//!    horizon before `T_b` (the earlier cut), whose rows the learners fit on too.
//! 2. [`PropensityContext::audience`] (per target) computes features of every user at `T_b`
//!    with the past model, labels them by whether they engaged with the target in
//!    `(T_b, as_of]`, fits gradient-boosted trees and a logistic regression (on these rows
//!    and the ones `lent_rows` borrows: related targets', the earlier cut's) with and
//!    without the time-anchored features (`learner`), measures them honestly by 2-fold
//!    cross-fitting (fit on one seeded half, rank the other), refits the chosen one on all
//!    users eligible at `T_b`, and applies the refit at `as_of` with the now-model to every
//!    user, unless a heuristic or the blend of the two ranks the held-out users better
//!    (`guard`).
//!
//! Everything is deterministic for the inputs and seeds, whatever the number of threads:
//! parallel loops write disjoint rows and every reduction sums fixed blocks in a fixed order.

mod audience;
mod backtest;
mod boosting;
mod content;
mod context;
mod features;
mod guard;
mod horizon;
mod learner;
mod lent_rows;
mod logistic;

pub use affinity_core::audience::AudienceQuestion;
use serde::{Deserialize, Serialize};

use crate::als::AlsParams;
use crate::error::{ModelError, Result};

pub use backtest::FRACTIONS;
pub use boosting::{BoostParams, Ensemble, Node, Tree};
pub use context::PropensityContext;
pub use features::FEATURE_NAMES;
pub use horizon::{FALLBACK_HORIZON_DAYS, HORIZON_CANDIDATES, HorizonChoice, choose_horizon};
pub use learner::LearnerChoice;

/// Parameters of [`PropensityContext::build`]: fixed per training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PropensityParams {
    /// The question's horizon: "engages within the next `horizon_days`". Also the length of
    /// the backtest window the model learns from.
    pub horizon_days: u32,
    /// The collaborative-filtering models (of every cut, and now) share these.
    pub als: AlsParams,
    /// Learn from an earlier cut too, one horizon before the backtest time, in stores of up
    /// to 250 000 users (see `context.rs`). Off: the backtest time's rows only.
    pub earlier_cut: bool,
}

impl Default for PropensityParams {
    fn default() -> Self {
        PropensityParams {
            horizon_days: 30,
            // A strong confidence and a strong ridge give smooth user vectors for ranking
            // users against a *set* of items. On the MovieLens benchmark's own pre-cutoff
            // backtest, the recommendation defaults (alpha 1, λ 0.01), 16 or 32 factors and
            // λ 10 all scored within noise of these, so the brief's defaults stay.
            als: AlsParams {
                factors: 64,
                regularization: 1.0,
                alpha: 10.0,
                iterations: 15,
                cg_steps: 3,
                seed: 0,
            },
            earlier_cut: true,
        }
    }
}

impl PropensityParams {
    pub fn validate(&self) -> Result<()> {
        if self.horizon_days == 0 {
            return Err(ModelError::InvalidParameter {
                name: "horizon_days",
                reason: "must be at least 1".to_string(),
            });
        }
        self.als.validate()
    }
}

/// Per-audience options of [`PropensityContext::audience`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AudienceOptions {
    /// Seeds the 2-fold split and the sampling of negatives.
    pub seed: u64,
    /// L2 penalty on the standardized coefficients, relative to the mean log-loss. 0.01 beat
    /// 0.1, 0.03, 0.001 and 0.0001 on the MovieLens benchmark's pre-cutoff backtest (mean
    /// over 10 split seeds; the test window was not used).
    pub l2: f64,
    /// Fewer backtest positives than this and no model is fitted (too little to learn
    /// from, and the honest estimate would be noise): the ranking falls back to the
    /// collaborative-filtering affinity.
    pub min_positives: usize,
    /// Cap on the users a logistic fit sees (the context's `EARLIER_CUT_MAX_USERS` matches
    /// the default: the earlier cut lends rows only to unsampled folds). Above it, all positives are kept and negatives
    /// are sampled and up-weighted, so the fit and the estimate stay unbiased while an
    /// audience over millions of users stays fast.
    pub max_training_users: usize,
    /// The "best of" guard: serve a heuristic ranking when it beat the learned one on the
    /// backtest. Off, the learned ranking always serves (the competitors are still measured
    /// and reported): for benchmarks that score the learner itself.
    pub best_of_heuristics: bool,
    /// Which learners compete for the learned ranking (both by default).
    pub learner: LearnerChoice,
    /// The gradient-boosted trees' knobs.
    pub boosting: BoostParams,
    /// The catalog event (its index in the catalog config) the audience predicts: "who will
    /// order it", while every interaction still informs the features. `None`: any of the
    /// catalog's interactions (the spec's "engages with").
    pub event: Option<u8>,
    /// Targets of the same kind as the audience's (the other values of its column, or other
    /// items), each its catalog item indices: their rows, for the same training users,
    /// train the learned rankings too (see `lent_rows.rs`). Empty: the target's own rows only
    /// (and, in stores with an earlier cut, the target's rows there).
    pub related: Vec<Vec<u32>>,
    /// The question the ranking answers (the audience's `question`). Balanced: where
    /// enough users come back, the next-visit question is asked beside the first (who
    /// engages within the horizon), a ranking learned for it competes, and every ranking is
    /// judged on both alike. Within the horizon: the first question alone. Next visit: that
    /// one alone, where it can be measured (else the first), and the figures are of it.
    /// Balanced by default here, for the model's tests and harness; the product resolves an
    /// audience's question from its request (core's `AudienceQuestion::unasked`).
    pub question: AudienceQuestion,
}

impl Default for AudienceOptions {
    fn default() -> Self {
        AudienceOptions {
            seed: 0,
            l2: 1e-2,
            min_positives: 10,
            max_training_users: 250_000,
            best_of_heuristics: true,
            learner: LearnerChoice::Auto,
            boosting: BoostParams::default(),
            event: None,
            related: Vec::new(),
            question: AudienceQuestion::Balanced,
        }
    }
}

impl AudienceOptions {
    pub fn validate(&self) -> Result<()> {
        let bad = |name, reason: &str| {
            Err(ModelError::InvalidParameter {
                name,
                reason: reason.to_string(),
            })
        };
        if !(self.l2.is_finite() && self.l2 > 0.0) {
            return bad("l2", "must be finite and > 0");
        }
        if self.min_positives < 2 {
            return bad("min_positives", "must be at least 2 (one per fold)");
        }
        if self.max_training_users < 100 {
            return bad("max_training_users", "must be at least 100");
        }
        self.boosting.validate()
    }
}

/// The expected outcome of targeting the best `size` users (a `fraction` of scored users),
/// estimated on held-out users of the backtest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub fraction: f64,
    pub size: usize,
    pub expected_precision: f64,
    pub expected_recall: f64,
    pub expected_engaged: f64,
    /// Precision over the base rate: how many times better than a random audience.
    /// 0 when the backtest had no positives (lift is undefined then).
    pub lift: f64,
}

/// One feature's weight in the fitted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureWeight {
    pub name: String,
    /// On the standardized feature: the change in log-odds per standard deviation.
    pub coefficient: f64,
    /// Standardization of the raw (transformed) feature, measured on the training users.
    pub mean: f64,
    pub std: f64,
}

/// A fitted propensity model: `logistic_regression` on standardized features, or
/// `gradient_boosted_trees` (then `trees` holds the ensemble, `intercept` is the log-odds
/// every user starts from, each feature's `coefficient` is its share of the splits and `l2`
/// the penalty on leaf values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropensityModel {
    pub family: String,
    pub intercept: f64,
    pub features: Vec<FeatureWeight>,
    pub l2: f64,
    /// Users the final fit saw (after any sampling of negatives) and positives among them.
    pub training_users: usize,
    pub training_positives: usize,
    /// The trees of a `gradient_boosted_trees` model (absent in models stored before them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trees: Option<Ensemble>,
    /// Why this learner: the cross-fitted figures of the learners that competed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen_because: Option<String>,
    /// The weighted share of positives among the users it was fitted on, for a model of the
    /// next-visit question: it predicts a visit's probability, whose scale this is (a floor
    /// on meaningful scores is taken from it). Equal to the audience's `base_rate` where the
    /// audience asks the next visit alone; `None` for the first question's models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_rate: Option<f64>,
}

/// One feature's part in one user's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub feature: String,
    /// The transformed feature (e.g. log(1 + count)), before standardization.
    pub value: f64,
    pub standardized: f64,
    /// coefficient × standardized value: its share of the log-odds.
    pub contribution: f64,
}

impl PropensityModel {
    /// Each of the model's features' contribution to the log-odds of a user with these raw
    /// features (all of [`FEATURE_NAMES`], in order, as [`PropensityContext::features`]
    /// returns them). Fewer are accepted when the model uses none of the missing ones: the
    /// features are only ever appended, so a member's explanation stored before one was
    /// added still explains under the model it was stored with.
    pub fn contributions(&self, raw: &[f32]) -> Result<Vec<Contribution>> {
        let position = |name: &str| FEATURE_NAMES.iter().position(|n| *n == name);
        // Trees read columns by position, whatever the list of features says.
        let uses_missing = self
            .features
            .iter()
            .any(|f| position(&f.name).is_some_and(|k| k >= raw.len()))
            || self
                .trees
                .as_ref()
                .is_some_and(|t| t.columns_read() > raw.len());
        if raw.len() > FEATURE_NAMES.len() || uses_missing {
            return Err(ModelError::DimensionMismatch {
                what: "propensity features",
                expected: FEATURE_NAMES.len(),
                got: raw.len(),
            });
        }
        let mut full = raw.to_vec();
        full.resize(FEATURE_NAMES.len(), 0.0);
        let raw = &full[..];
        if let Some(trees) = &self.trees {
            // Path attribution: each split's change of the node value goes to its feature.
            let parts = trees.contributions(raw, FEATURE_NAMES.len());
            return Ok(self
                .features
                .iter()
                .filter_map(|f| {
                    let k = position(&f.name)?;
                    let x = f64::from(raw[k]);
                    Some(Contribution {
                        feature: f.name.clone(),
                        value: x,
                        standardized: (x - f.mean) / f.std,
                        contribution: parts[k],
                    })
                })
                .collect());
        }
        // By name, not position: a model stored before features were added still explains.
        self.features
            .iter()
            .map(|f| {
                let k = position(&f.name).ok_or_else(|| ModelError::InvalidParameter {
                    name: "features",
                    reason: format!("the model uses an unknown feature {:?}", f.name),
                })?;
                let x = raw[k];
                let standardized = (f64::from(x) - f.mean) / f.std;
                Ok(Contribution {
                    feature: f.name.clone(),
                    value: f64::from(x),
                    standardized,
                    contribution: f.coefficient * standardized,
                })
            })
            .collect()
    }

    /// The predicted probability for a user with these raw features.
    pub fn predict(&self, raw: &[f32]) -> Result<f64> {
        let z: f64 = self.intercept
            + self
                .contributions(raw)?
                .iter()
                .map(|c| c.contribution)
                .sum::<f64>();
        Ok(logistic::sigmoid(z))
    }
}

/// A scored audience with its honest, backtested expectations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudienceScores {
    /// Every user of the catalog with their score (the predicted probability of engaging
    /// within the horizon, or of engaging on the next visit for a next-visit model; ranks
    /// for a heuristic, a blend or the mean rank; the CF affinity in a fallback), best
    /// first, ties by user index.
    pub ranked: Vec<(u32, f32)>,
    /// Expected precision / recall / engaged users / lift by audience size.
    pub curve: Vec<CurvePoint>,
    /// Share of backtest-eligible users who engaged with the target in the backtest window
    /// (for an audience asked the next visit alone: of the users who came back in it, the
    /// share whose first visit held the target; the curve and counts are of those users too).
    pub base_rate: f64,
    /// Average precision of the held-out backtest ranking over all eligible users.
    pub average_precision: f64,
    pub positives_in_backtest: usize,
    pub eligible_in_backtest: usize,
    /// The refit model; `None` when the ranking fell back to CF affinity.
    pub model: Option<PropensityModel>,
    /// Why no model was fitted, when none was.
    pub fallback_reason: Option<String>,
    /// Which ranking serves (the learned one or a heuristic that beat it on the backtest),
    /// why, and every competitor's backtest figures. `curve` and `average_precision` are the
    /// served ranking's.
    pub ranking: RankingChoice,
}

/// One ranking's figures on the backtest's held-out users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Competitor {
    /// `learned`, `cf_affinity` (the fallback) or a heuristic's name (e.g. `past_count`).
    pub name: String,
    pub average_precision: f64,
    /// Lift of the best 20% (precision over the base rate).
    pub lift_at_20: f64,
    /// The same figures on the backtest's second question, "what does the user's next
    /// visit hold" (among users who came back after the backtest time); absent when too
    /// few did to measure it, and in estimates stored before it was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_visit_average_precision: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_visit_lift_at_20: Option<f64>,
}

/// The "best of" guard's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingChoice {
    /// `learned`, `learned_next_visit`, `learned_both` (the mean rank of the two),
    /// `cf_affinity`, `heuristic:<name>`, `blend:<heuristic>` or
    /// `blend_next_visit:<heuristic>`.
    pub served: String,
    pub reason: String,
    /// The learned rankings (or the CF affinity) first, then each heuristic, then the
    /// blends.
    pub competitors: Vec<Competitor>,
    /// The question the rankings were judged on, which the estimate's figures (base rate,
    /// average precision, curve, counts) are of: `next_visit` only where the next visit was
    /// measured; `balanced` where both were (the figures are then the first question's, the
    /// next visit's beside each competitor); else `within_horizon`, also where an audience
    /// asked the next visit and too few came back to measure it. `None` in estimates
    /// stored before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered: Option<AudienceQuestion>,
}

impl AudienceScores {
    /// The best `fraction` of scored users (rounded, at least one when there are users).
    pub fn top_fraction(&self, fraction: f64) -> &[(u32, f32)] {
        let n = backtest::size_for(fraction, self.ranked.len());
        &self.ranked[..n]
    }
}
