//! One audience: learn the target's propensity on the backtest, estimate it honestly by
//! 2-fold cross-fitting, refit, and score everyone as of now.

use rayon::prelude::*;

use super::backtest::{self, Evaluation, Folds, Scored};
use super::context::PropensityContext;
use super::features::{N_FEATURES, TargetView, col, engaged_between};
use super::guard::{self, BLEND_PREFIX, CF_AFFINITY, HEURISTICS, Heuristic, LEARNED};
use super::learner::{self, Learned, row};
use super::{AudienceOptions, AudienceScores, Contribution, RankingChoice};
use crate::error::{ModelError, Result};

/// Users per parallel scoring task.
const USERS_PER_TASK: usize = 4096;

/// The ranking the guard chose.
enum Served {
    /// The learned ranking, or the CF affinity of a fallback.
    Own,
    Heuristic(&'static Heuristic),
    /// The mean of the learned ranking's and the heuristic's ranks.
    Blend(&'static Heuristic),
}

impl PropensityContext {
    /// Scores every user of the catalog for engaging with any of `target_items` within the
    /// horizon, with the backtested expectations of the ranking. Item indices are the
    /// catalog's; duplicates are ignored; an index out of range is an error.
    pub fn audience(
        &self,
        target_items: &[u32],
        options: &AudienceOptions,
    ) -> Result<AudienceScores> {
        options.validate()?;
        let target = self.checked_target(target_items)?;

        let past = TargetView::new(self, &self.past, &target, None);
        let x_past = past.matrix();
        drop(past);
        let labels = engaged_between(self, &target, self.past.time, self.now.time);
        let (mut positives, mut negatives) = (Vec::new(), Vec::new());
        for (u, (&count, &engaged)) in self.past.activity.count.iter().zip(&labels).enumerate() {
            if count == 0 {
                continue; // unknown at the backtest time: nothing to learn from
            }
            if engaged {
                positives.push(u as u32);
            } else {
                negatives.push(u as u32);
            }
        }
        let eligible = positives.len() + negatives.len();
        let base_rate = if eligible > 0 {
            positives.len() as f64 / eligible as f64
        } else {
            0.0
        };

        let reason = if target.is_empty() {
            Some("the target has no items".to_string())
        } else if positives.len() < options.min_positives {
            Some(format!(
                "only {} of {eligible} users engaged with the target in the {}-day backtest window (at least {} are needed to learn from)",
                positives.len(),
                self.params.horizon_days,
                options.min_positives
            ))
        } else if negatives.len() < options.min_positives {
            Some(format!(
                "{} of {eligible} users engaged with the target in the backtest window: too few did not to learn from",
                positives.len()
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Ok(self.fallback(
                &target, &x_past, &labels, &positives, &negatives, base_rate, reason, options,
            ));
        }

        let folds = Folds::new(
            &positives,
            &negatives,
            options.max_training_users,
            options.seed,
        );
        let Learned {
            learner: model,
            evaluations,
            held_out,
            model: description,
        } = learner::learn_robust(
            &x_past,
            &labels,
            &folds,
            options.l2,
            options.learner,
            &options.boosting,
        );
        let (served, ranking, served_evaluations) = self.guard(
            (LEARNED, evaluations),
            Some(&held_out),
            &x_past,
            &labels,
            &folds.members,
            base_rate,
            options,
        );
        drop(x_past);

        let now = TargetView::new(self, &self.now, &target, None);
        let x_now = now.matrix();
        drop(now);
        let blend = match served {
            Served::Own => None,
            Served::Heuristic(h) => {
                // A heuristic serves: no model to describe or explain (and its scores are
                // ranks, not probabilities, so no propensity floor applies downstream).
                return Ok(AudienceScores {
                    ranked: h.ranked(&x_now),
                    curve: backtest::curve(&served_evaluations, base_rate, self.n_users),
                    base_rate,
                    average_precision: backtest::mean_average_precision(&served_evaluations),
                    positives_in_backtest: positives.len(),
                    eligible_in_backtest: eligible,
                    model: None,
                    fallback_reason: None,
                    ranking,
                });
            }
            Served::Blend(h) => Some(h),
        };
        {
            let mut ranked: Vec<(u32, f32)> = x_now
                .par_chunks(N_FEATURES * USERS_PER_TASK)
                .enumerate()
                .flat_map_iter(|(task, block)| {
                    let model = &model;
                    block
                        .chunks_exact(N_FEATURES)
                        .enumerate()
                        .map(move |(j, r)| {
                            ((task * USERS_PER_TASK + j) as u32, model.predict(r) as f32)
                        })
                })
                .collect();
            backtest::sort_ranking(&mut ranked, |&(u, s)| (f64::from(s), u));
            // A blend's scores are ranks, like a heuristic's: no model is shown for them.
            let (ranked, model) = match blend {
                Some(h) => (h.blend_ranked(&x_now, &ranked), None),
                None => (ranked, Some(description)),
            };
            Ok(AudienceScores {
                ranked,
                curve: backtest::curve(&served_evaluations, base_rate, self.n_users),
                base_rate,
                average_precision: backtest::mean_average_precision(&served_evaluations),
                positives_in_backtest: positives.len(),
                eligible_in_backtest: eligible,
                model,
                fallback_reason: None,
                ranking,
            })
        }
    }

    /// Measures every heuristic on the same held-out `folds` as the learned (or CF) ranking
    /// whose evaluations are `own`, and, given the learned ranking's held-out scores, the
    /// blend of it with the heuristic of the best mean average precision; then picks the one
    /// that serves. Returns the served ranking's evaluations too.
    #[allow(clippy::too_many_arguments)]
    fn guard(
        &self,
        (own_name, own): (&str, Vec<Evaluation>),
        held_out: Option<&[Vec<Scored>]>,
        x_past: &[f32],
        labels: &[bool],
        folds: &[Vec<(u32, f64)>],
        base_rate: f64,
        options: &AudienceOptions,
    ) -> (Served, RankingChoice, Vec<Evaluation>) {
        let mut all = vec![own];
        // Independent of each other, so in parallel; each result is the same on any thread.
        let heuristics: Vec<Vec<Evaluation>> = HEURISTICS
            .par_iter()
            .map(|h| h.evaluate(x_past, labels, folds))
            .collect();
        all.extend(heuristics);
        let mut names: Vec<String> = std::iter::once(own_name.to_string())
            .chain(HEURISTICS.iter().map(|h| h.name.to_string()))
            .collect();
        // The learned ranking and the best heuristic often know different things (the model
        // where the target says little, the heuristic how loyal a user is); their mean rank
        // competes too, measured on the same held-out users. The first listed of equals.
        let partner = held_out.and_then(|held_out| {
            let k = (0..HEURISTICS.len()).rev().max_by(|&a, &b| {
                let ap = |k: usize| backtest::mean_average_precision(&all[1 + k]);
                ap(a).total_cmp(&ap(b))
            })?;
            let h = &HEURISTICS[k];
            all.push(h.evaluate_blend(x_past, held_out));
            names.push(format!("{BLEND_PREFIX}{}", h.name));
            Some(h)
        });
        let competitors = names
            .iter()
            .zip(&all)
            .map(|(name, e)| guard::figures(name, e, base_rate, self.n_users))
            .collect();
        let fold_ap: Vec<Vec<f64>> = all
            .iter()
            .map(|e| e.iter().map(|e| e.average_precision).collect())
            .collect();
        let (best, choice) = guard::choose(competitors, &fold_ap, options.best_of_heuristics);
        let served = match (best, partner) {
            (0, _) => Served::Own,
            (k, Some(h)) if k == 1 + HEURISTICS.len() => Served::Blend(h),
            (k, _) => Served::Heuristic(&HEURISTICS[k - 1]),
        };
        let evaluations = all.swap_remove(best.min(all.len() - 1));
        (served, choice, evaluations)
    }

    /// The raw (transformed, unstandardized) features of one user for a target as of now,
    /// in [`FEATURE_NAMES`] order: the input of [`PropensityModel::contributions`].
    pub fn features(&self, target_items: &[u32], user: u32) -> Result<Vec<f32>> {
        let target = self.checked_target(target_items)?;
        if user as usize >= self.n_users {
            return Err(ModelError::UserOutOfRange {
                user,
                n_users: self.n_users,
            });
        }
        Ok(TargetView::new(self, &self.now, &target, Some(user)).row(user))
    }

    /// The features of many users at once, as [`Self::features`] gives them one by one: the
    /// target's statistics are gathered once (one user at a time would scan the target's
    /// interactions and allocate full-length arrays per user).
    pub fn feature_rows(&self, target_items: &[u32], users: &[u32]) -> Result<Vec<Vec<f32>>> {
        let target = self.checked_target(target_items)?;
        if let Some(&user) = users.iter().find(|&&u| u as usize >= self.n_users) {
            return Err(ModelError::UserOutOfRange {
                user,
                n_users: self.n_users,
            });
        }
        let view = TargetView::new(self, &self.now, &target, None);
        Ok(users.iter().map(|&u| view.row(u)).collect())
    }

    /// Why a user scored as they did: each feature's contribution to the log-odds under the
    /// audience's model. `None` for a fallback audience (no model to explain).
    pub fn explain(
        &self,
        target_items: &[u32],
        scores: &AudienceScores,
        user: u32,
    ) -> Result<Option<Vec<Contribution>>> {
        let Some(model) = &scores.model else {
            return Ok(None);
        };
        let raw = self.features(target_items, user)?;
        model.contributions(&raw).map(Some)
    }

    fn checked_target(&self, target_items: &[u32]) -> Result<Vec<u32>> {
        let mut target = target_items.to_vec();
        target.sort_unstable();
        target.dedup();
        if let Some(&item) = target.last()
            && item as usize >= self.n_items
        {
            return Err(ModelError::ItemOutOfRange {
                item,
                n_items: self.n_items,
            });
        }
        Ok(target)
    }

    /// No model: rank everyone by the now-model's CF affinity for the target, and measure
    /// what that ranking did in the backtest (with the past model) so the curve stays honest.
    #[allow(clippy::too_many_arguments)]
    fn fallback(
        &self,
        target: &[u32],
        x_past: &[f32],
        labels: &[bool],
        positives: &[u32],
        negatives: &[u32],
        base_rate: f64,
        reason: String,
        options: &AudienceOptions,
    ) -> AudienceScores {
        let cf = col::CF_AFFINITY;
        let scored: Vec<Scored> = positives
            .iter()
            .chain(negatives)
            .map(|&user| Scored {
                user,
                score: f64::from(row(x_past, user)[cf]),
                positive: labels[user as usize],
                weight: 1.0,
            })
            .collect();
        let evaluations: Vec<Evaluation> = backtest::evaluate(scored).into_iter().collect();
        let members: Vec<(u32, f64)> = {
            let mut v: Vec<(u32, f64)> = positives
                .iter()
                .chain(negatives)
                .map(|&u| (u, 1.0))
                .collect();
            v.sort_unstable_by_key(|&(u, _)| u);
            v
        };
        let (served, ranking, served_evaluations) = self.guard(
            (CF_AFFINITY, evaluations),
            None,
            x_past,
            labels,
            std::slice::from_ref(&members),
            base_rate,
            options,
        );
        let now = TargetView::new(self, &self.now, target, None);
        let x_now = now.matrix();
        let ranked = match served {
            Served::Heuristic(heuristic) | Served::Blend(heuristic) => heuristic.ranked(&x_now),
            Served::Own => {
                let mut ranked: Vec<(u32, f32)> = x_now
                    .chunks_exact(N_FEATURES)
                    .enumerate()
                    .map(|(u, r)| (u as u32, r[cf]))
                    .collect();
                backtest::sort_ranking(&mut ranked, |&(u, s)| (f64::from(s), u));
                ranked
            }
        };
        AudienceScores {
            ranked,
            curve: backtest::curve(&served_evaluations, base_rate, self.n_users),
            base_rate,
            average_precision: backtest::mean_average_precision(&served_evaluations),
            positives_in_backtest: positives.len(),
            eligible_in_backtest: positives.len() + negatives.len(),
            model: None,
            fallback_reason: Some(reason),
            ranking,
        }
    }
}
