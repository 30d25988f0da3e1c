//! One audience: learn the target's propensity on the backtest, estimate it honestly by
//! 2-fold cross-fitting, refit, and score everyone as of now.

use std::borrow::Cow;

use affinity_core::audience::AudienceQuestion;

use rayon::prelude::*;

use super::backtest::{self, Evaluation, Folds, Scored};
use super::context::{NO_VISIT, PropensityContext};
use super::features::{
    EVENT_ONLY, FEATURE_NAMES, N_FEATURES, TargetView, col, engaged_between, engaged_on_next_visit,
    zero_next_visit_only,
};
use super::guard::{
    self, BLEND_NEXT_VISIT_PREFIX, BLEND_PREFIX, CF_AFFINITY, Heuristic, LEARNED, LEARNED_BOTH,
    LEARNED_NEXT_VISIT, Question,
};
use super::learner::{self, Borrowed, row};
use super::lent_rows::LentRows;
use super::{AudienceOptions, AudienceScores, Contribution, PropensityModel, RankingChoice};
use crate::error::{ModelError, Result};

/// Users per parallel scoring task.
const USERS_PER_TASK: usize = 4096;

/// The ranking the guard chose.
enum Served {
    /// A learned ranking (by its index among the guard's own rankings, as given), or the
    /// CF affinity of a fallback.
    Own(usize),
    Heuristic(&'static Heuristic),
    /// The mean of a learned ranking's and the heuristic's ranks.
    Blend(&'static Heuristic, usize),
}

/// What serving one of the guard's own rankings scores users with (its index in `Served`
/// is into these): one learned model, or the mean rank of the two questions' models.
#[derive(Clone, Copy)]
enum OwnRanking<'a> {
    One(&'a learner::Learned),
    MeanRank(&'a learner::Learned, &'a learner::Learned),
}

/// The share of the backtest's users who must have come back within the horizon for the
/// next-visit question to be asked. Where fewer come back, who comes back is most of the
/// answer to "who engages within the horizon" and the next visit speaks for a small
/// minority, on few users: the first question decides alone. (Chosen between the two kinds
/// of data benchmarked: 6–13% came back on MovieLens, where the next-visit question
/// misleads, and 38–53% in the repeat-purchase shop, where it is most of the answer.)
const NEXT_VISIT_MIN_SHARE: f64 = 0.25;

/// The backtest's second question: what the first visit after the backtest time held, for
/// the users who came back (the others weigh 0 in `folds`, which are the first question's).
struct NextVisit {
    labels: Vec<bool>,
    folds: Folds,
    base_rate: f64,
    /// The weight of the users who came back over all users' in the folds: the share of
    /// the first question's users this one speaks about (at least [`NEXT_VISIT_MIN_SHARE`]).
    share: f64,
    /// Of the backtest's users who came back: how many, and how many engaged on that visit
    /// (the folds' weights summed, so sampled negatives count as the users they stand for).
    eligible: usize,
    positives: usize,
}

/// The model as the estimate shows it: for an audience of any event, without the event
/// features (always 0 there: no split and no weight, so every score and contribution is
/// the same without them).
fn described(model: &PropensityModel, options: &AudienceOptions) -> PropensityModel {
    let mut model = model.clone();
    if options.event.is_none() {
        model
            .features
            .retain(|f| !EVENT_ONLY.iter().any(|&k| FEATURE_NAMES[k] == f.name));
    }
    model
}

impl PropensityContext {
    /// Scores every user of the catalog for engaging with any of `target_items` within the
    /// horizon (doing the options' `event` with them, when it names one), with the
    /// backtested expectations of the ranking. Item indices are the catalog's; duplicates are
    /// ignored; an index out of range is an error.
    pub fn audience(
        &self,
        target_items: &[u32],
        options: &AudienceOptions,
    ) -> Result<AudienceScores> {
        options.validate()?;
        // With one event in the catalog, an audience of it is an audience of any.
        let options = &AudienceOptions {
            event: self.checked_event(options.event)?,
            ..options.clone()
        };
        let target = self.checked_target(target_items)?;
        let related: Vec<Vec<u32>> = options
            .related
            .iter()
            .map(|r| self.checked_target(r))
            .collect::<Result<_>>()?;

        let past = TargetView::new(self, &self.past.snapshot, &target, None, options.event);
        let x_past = past.matrix();
        drop(past);
        let labels = engaged_between(
            self,
            &target,
            self.past.time(),
            self.past.until,
            options.event,
        );
        let (mut positives, mut negatives) = (Vec::new(), Vec::new());
        let known = &self.past.snapshot.activity.count;
        for (u, (&count, &engaged)) in known.iter().zip(&labels).enumerate() {
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

        let engaged = match options.event {
            Some(_) => "did the audience's event with",
            None => "engaged with",
        };
        let reason = if target.is_empty() {
            Some("the target has no items".to_string())
        } else if positives.len() < options.min_positives {
            Some(format!(
                "only {} of {eligible} users {engaged} the target in the {}-day backtest window (at least {} are needed to learn from)",
                positives.len(),
                self.params.horizon_days,
                options.min_positives
            ))
        } else {
            None
        };
        let few_did_not = (negatives.len() < options.min_positives).then(|| {
            format!(
                "{} of {eligible} users {engaged} the target in the backtest window: too few did not to learn from",
                positives.len()
            )
        });
        let fall_back = |reason: String| {
            Ok(self.fallback(
                &target, &x_past, &labels, &positives, &negatives, base_rate, reason, options,
            ))
        };
        // An audience asked the next visit alone learns and is judged on what the users who
        // came back did on that visit, not on who engaged within the horizon: a staple nearly
        // everyone buys within it still has next visits to rank. It falls back only if that
        // question cannot be measured either.
        let few_did_not = match (reason, few_did_not) {
            (Some(reason), _) => return fall_back(reason),
            (None, Some(reason)) if options.question != AudienceQuestion::NextVisit => {
                return fall_back(reason);
            }
            (None, few_did_not) => few_did_not,
        };

        let folds = Folds::new(
            &positives,
            &negatives,
            options.max_training_users,
            options.seed,
        );
        // Asked of the same users on the same folds: the next-visit question's ranking
        // learns what a shopper's next order holds, whenever it comes; the guard weighs
        // every ranking on both questions (balanced), or on it alone (next_visit).
        let next = match options.question {
            AudienceQuestion::WithinHorizon => None,
            AudienceQuestion::Balanced | AudienceQuestion::NextVisit => {
                self.next_visit_question(&target, &folds, options)
            }
        };
        let only_next = options.question == AudienceQuestion::NextVisit && next.is_some();
        if let Some(reason) = few_did_not.filter(|_| !only_next) {
            return fall_back(reason);
        }
        // The learners also fit on rows lent by related targets and the earlier cut, of the
        // same users (after the target's own `n` rows of `x_past`); everything else reads
        // the own rows only.
        let n = self.n_users;
        let lent = (!related.is_empty() || self.earlier.is_some())
            .then(|| LentRows::new(self, &related, &target, &folds, options.event))
            .filter(|r| r.rows() > 0);
        let mut x_past = match &lent {
            Some(r) => r.matrix(x_past),
            None => x_past,
        };
        // Says what the fits borrowed: the rows of weight > 0 on the learner's question.
        let borrowed_note = |learned: &mut learner::Learned, borrowed: &Borrowed| {
            if let Some(why) = lent.as_ref().and_then(|r| r.note(borrowed, n)) {
                learner::add_reason(&mut learned.model, why, learner::Place::After);
            }
        };
        let learned_next = next.as_ref().map(|q| {
            let (labels, borrowed) = match &lent {
                Some(r) => (
                    Cow::Owned(r.labels(&q.labels, true)),
                    r.extra(&q.folds, n, true),
                ),
                None => (Cow::Borrowed(&q.labels), Borrowed::default()),
            };
            let mut learned = learner::learn_next_visit(
                &x_past,
                &labels,
                &q.folds,
                &borrowed,
                options.l2,
                options.learner,
                &options.boosting,
            );
            // Its probabilities are of a visit, not of the horizon: their scale is this.
            learned.model.base_rate = Some(q.base_rate);
            borrowed_note(&mut learned, &borrowed);
            learned
        });
        // The first question's learner does without the next visit's features; no heuristic
        // reads them.
        zero_next_visit_only(&mut x_past);
        // Not fitted where only the next visit is asked: nothing would measure or serve it.
        let learned = (!only_next).then(|| {
            let (labels, borrowed) = match &lent {
                Some(r) => (
                    Cow::Owned(r.labels(&labels, false)),
                    r.extra(&folds, n, false),
                ),
                None => (Cow::Borrowed(&labels), Borrowed::default()),
            };
            let mut learned = learner::learn_robust(
                &x_past,
                &labels,
                &folds,
                &borrowed,
                options.l2,
                options.learner,
                &options.boosting,
            );
            borrowed_note(&mut learned, &borrowed);
            learned
        });
        drop(lent);
        // The question the figures are of: the next visit's where only it is asked (among
        // the users who came back: its base rate, positives and users).
        let (base_rate, positives_in_backtest, eligible) = match &next {
            Some(q) if only_next => (q.base_rate, q.positives, q.eligible),
            _ => (base_rate, positives.len(), eligible),
        };
        x_past.truncate(n * N_FEATURES);
        let (served, mut ranking, served_evaluations, own_sources) = {
            let both: Option<Vec<Vec<Scored>>> = match (&learned, &learned_next) {
                (Some(first), Some(l)) => Some(
                    first
                        .held_out
                        .iter()
                        .zip(&l.held_out)
                        .map(|(a, b)| guard::mean_rank(a, b))
                        .collect(),
                ),
                _ => None,
            };
            // Each ranking of our own the guard may serve, and what serving it means.
            let mut owns: Vec<(&'static str, &[Vec<Scored>])> = Vec::new();
            let mut sources: Vec<OwnRanking<'_>> = Vec::new();
            if let Some(l) = &learned {
                owns.push((LEARNED, &l.held_out));
                sources.push(OwnRanking::One(l));
            }
            if let Some(l) = &learned_next {
                owns.push((LEARNED_NEXT_VISIT, &l.held_out));
                sources.push(OwnRanking::One(l));
            }
            // A mean of ranks, like the blends: only where the guard may serve one (off, a
            // fitted model serves).
            if let (Some(both), Some(first), Some(next)) = (
                both.as_ref().filter(|_| options.best_of_heuristics),
                &learned,
                &learned_next,
            ) {
                owns.push((LEARNED_BOTH, both));
                sources.push(OwnRanking::MeanRank(first, next));
            }
            let first = Question {
                labels: &labels,
                folds: &folds.members,
            };
            let next = next.as_ref().map(|n| {
                (
                    Question {
                        labels: &n.labels,
                        folds: &n.folds.members,
                    },
                    n.base_rate,
                    n.share,
                )
            });
            let (first, next) = match next {
                // The next visit's question is the only one.
                Some((q, _, _)) if only_next => (q, None),
                next => (first, next),
            };
            let (served, ranking, evaluations) = self.guard(
                &owns,
                true,
                &x_past,
                &first,
                next.as_ref().map(|(q, rate, share)| (q, *rate, *share)),
                base_rate,
                options,
            );
            (served, ranking, evaluations, sources)
        };
        // Which question the figures are of, and where the audience asked one question only,
        // its reason says which was answered. The guard says where it weighed both; one
        // question alone is the next visit where that was swapped in as the guard's only
        // one, else the first.
        let (answered, asked) = match (options.question, &next) {
            (AudienceQuestion::Balanced, _) => (
                ranking.answered.unwrap_or(AudienceQuestion::WithinHorizon),
                None,
            ),
            (AudienceQuestion::WithinHorizon, _) => (
                AudienceQuestion::WithinHorizon,
                Some("the audience asks only who engages within the horizon (question \"within_horizon\"), so no ranking was measured on what users' next visit holds".to_string()),
            ),
            (AudienceQuestion::NextVisit, Some(q)) => (
                AudienceQuestion::NextVisit,
                Some(format!(
                    "the audience asks only what users' next visit holds (question \"next_visit\"): {:.0}% of the backtest's users came back within the horizon, every ranking was measured on what their first visit held, and the figures are of those users",
                    q.share * 100.0
                )),
            ),
            (AudienceQuestion::NextVisit, None) => (
                AudienceQuestion::WithinHorizon,
                Some("the audience asks what users' next visit holds (question \"next_visit\"), but too few of the backtest's users came back within the horizon, or too few of those did or did not engage on that visit, to measure it: the ranking answers who engages within the horizon".to_string()),
            ),
        };
        ranking.answered = Some(answered);
        if let Some(asked) = asked {
            ranking.reason = format!("{asked}; {}", ranking.reason);
        }
        drop(x_past);

        let now = TargetView::new(self, &self.now, &target, None, options.event);
        let x_now = now.matrix();
        drop(now);
        let (own, blend) = match served {
            Served::Own(i) => (i, None),
            Served::Heuristic(h) => {
                // A heuristic serves: no model to describe or explain (and its scores are
                // ranks, not probabilities, so no propensity floor applies downstream).
                return Ok(AudienceScores {
                    ranked: h.ranked(&x_now),
                    curve: backtest::curve(&served_evaluations, base_rate, self.n_users),
                    base_rate,
                    average_precision: backtest::mean_average_precision(&served_evaluations),
                    positives_in_backtest,
                    eligible_in_backtest: eligible,
                    model: None,
                    fallback_reason: None,
                    ranking,
                });
            }
            Served::Blend(h, i) => (i, Some(h)),
        };
        let predicted = |model: &learner::Learner| {
            let mut ranked: Vec<(u32, f32)> = x_now
                .par_chunks(N_FEATURES * USERS_PER_TASK)
                .enumerate()
                .flat_map_iter(|(task, block)| {
                    block
                        .chunks_exact(N_FEATURES)
                        .enumerate()
                        .map(move |(j, r)| {
                            ((task * USERS_PER_TASK + j) as u32, model.predict(r) as f32)
                        })
                })
                .collect();
            backtest::sort_ranking(&mut ranked, |&(u, s)| (f64::from(s), u));
            ranked
        };
        let (ranked, description) = match own_sources[own] {
            OwnRanking::MeanRank(first, next) => {
                // Ranks, like a blend's: no one model to show.
                let a = predicted(&first.learner);
                let b = predicted(&next.learner);
                (guard::mean_rank_ranked(&a, &b, self.n_users), None)
            }
            OwnRanking::One(l) => (predicted(&l.learner), Some(described(&l.model, options))),
        };
        // A blend's scores are ranks, like a heuristic's: no model is shown for them.
        let (ranked, model) = match blend {
            Some(h) => (h.blend_ranked(&x_now, &ranked), None),
            None => (ranked, description),
        };
        Ok(AudienceScores {
            ranked,
            curve: backtest::curve(&served_evaluations, base_rate, self.n_users),
            base_rate,
            average_precision: backtest::mean_average_precision(&served_evaluations),
            positives_in_backtest,
            eligible_in_backtest: eligible,
            model,
            fallback_reason: None,
            ranking,
        })
    }

    /// The next-visit question on the first question's folds, when enough of the users who
    /// came back after the backtest time did and did not engage with the target on that
    /// visit, in each fold, to measure it.
    fn next_visit_question(
        &self,
        target: &[u32],
        folds: &Folds,
        options: &AudienceOptions,
    ) -> Option<NextVisit> {
        let min_positives = options.min_positives;
        let labels = engaged_on_next_visit(self, &self.past, target, options.event);
        let next_visit = self.past.next_visits(self, options.event);
        let came_back = |u: u32| next_visit[u as usize] != NO_VISIT;
        let members = folds.members.clone().map(|fold| {
            fold.into_iter()
                .map(|(u, w)| (u, if came_back(u) { w } else { 0.0 }))
                .collect::<Vec<_>>()
        });
        let all_w: f64 = folds.members.iter().flatten().map(|m| m.1).sum();
        let (mut positive_w, mut total_w) = (0.0, 0.0);
        let (mut positives, mut negatives) = (0, 0);
        for fold in &members {
            let mut fold_positives = 0;
            for &(u, w) in fold.iter().filter(|m| m.1 > 0.0) {
                total_w += w;
                if labels[u as usize] {
                    positive_w += w;
                    fold_positives += 1;
                } else {
                    negatives += 1;
                }
            }
            if fold_positives == 0 {
                return None;
            }
            positives += fold_positives;
        }
        let share = total_w / all_w;
        (share >= NEXT_VISIT_MIN_SHARE && positives >= min_positives && negatives >= min_positives)
            .then(|| NextVisit {
                labels,
                folds: Folds { members },
                base_rate: positive_w / total_w,
                share,
                // Weighted, like the base rate: the folds sample negatives in large stores.
                eligible: total_w.round() as usize,
                positives: positive_w.round() as usize,
            })
    }

    /// Measures every ranking on the same held-out folds, on the first question and on the
    /// next-visit one when it was asked: the `owns` (each one's held-out scores, one list
    /// per fold in the folds' member order), every heuristic, and (`blends`) the blend of
    /// each own ranking with the heuristic of the best mean average precision. Then picks
    /// the one that serves. Returns the served ranking's first-question evaluations too.
    #[allow(clippy::too_many_arguments)]
    fn guard(
        &self,
        owns: &[(&str, &[Vec<Scored>])],
        blends: bool,
        x_past: &[f32],
        first: &Question,
        next: Option<(&Question, f64, f64)>,
        base_rate: f64,
        options: &AudienceOptions,
    ) -> (Served, RankingChoice, Vec<Evaluation>) {
        let questions: Vec<&Question> = std::iter::once(first)
            .chain(next.map(|(q, _, _)| q))
            .collect();
        let evaluate = |held_out: Vec<Vec<Scored>>| -> Vec<Evaluation> {
            held_out
                .into_iter()
                .filter_map(backtest::evaluate)
                .collect()
        };
        // all[i][q]: competitor i's held-out evaluations on question q.
        let mut all: Vec<Vec<Vec<Evaluation>>> = owns
            .iter()
            .map(|(_, held_out)| {
                questions
                    .iter()
                    .map(|q| evaluate(q.relabel(held_out)))
                    .collect()
            })
            .collect();
        let mut names: Vec<String> = owns.iter().map(|(name, _)| name.to_string()).collect();
        let listed = guard::heuristics(options.event.is_some());
        // Independent of each other, so in parallel; each result is the same on any thread.
        let heuristics: Vec<Vec<Vec<Evaluation>>> = listed
            .par_iter()
            .map(|h| {
                questions
                    .iter()
                    .map(|q| h.evaluate(x_past, q.labels, q.folds))
                    .collect()
            })
            .collect();
        all.extend(heuristics);
        names.extend(listed.iter().map(|h| h.name.to_string()));
        // The learned ranking and the best heuristic often know different things (the model
        // where the target says little, the heuristic how loyal a user is); their mean rank
        // competes too, measured on the same held-out users. The best heuristic by its mean
        // average precision over the questions' best; the first listed of equals.
        let partner = blends.then(|| {
            let ap = |k: usize, q: usize| backtest::mean_average_precision(&all[owns.len() + k][q]);
            let best_q: Vec<f64> = (0..questions.len())
                .map(|q| (0..listed.len()).map(|k| ap(k, q)).fold(0.0, f64::max))
                .collect();
            let relative = |k: usize| -> f64 {
                (0..questions.len())
                    .map(|q| {
                        if best_q[q] > 0.0 {
                            ap(k, q) / best_q[q]
                        } else {
                            0.0
                        }
                    })
                    .sum()
            };
            (0..listed.len())
                .rev()
                .max_by(|&a, &b| relative(a).total_cmp(&relative(b)))
        });
        let partner = partner.flatten().map(|k| &listed[k]);
        if let Some(h) = partner {
            // The two learned rankings' own blends; the mean of both learned is one already.
            for (name, held_out) in owns.iter().take(2) {
                all.push(
                    questions
                        .iter()
                        .map(|q| h.evaluate_blend(x_past, &q.relabel(held_out)))
                        .collect(),
                );
                let prefix = if *name == LEARNED_NEXT_VISIT {
                    BLEND_NEXT_VISIT_PREFIX
                } else {
                    BLEND_PREFIX
                };
                names.push(format!("{prefix}{}", h.name));
            }
        }
        // The next-visit question counts only where every ranking was measured on the same
        // folds as on the first.
        let asked_next = questions.len() > 1 && all.iter().all(|e| e[1].len() == e[0].len());
        let competitors = names
            .iter()
            .zip(&all)
            .map(|(name, e)| {
                let next = match next {
                    Some((_, rate, _)) if asked_next => Some((e[1].as_slice(), rate)),
                    _ => None,
                };
                guard::figures(name, &e[0], base_rate, next, self.n_users)
            })
            .collect();
        let fold_ap: Vec<Vec<Vec<f64>>> = all
            .iter()
            .map(|e| {
                e.iter()
                    .take(if asked_next { 2 } else { 1 })
                    .map(|q| q.iter().map(|e| e.average_precision).collect())
                    .collect()
            })
            .collect();
        let (best, mut choice) = guard::choose(
            competitors,
            &fold_ap,
            owns.len(),
            options.best_of_heuristics,
        );
        if let Some((_, _, share)) = next.filter(|_| asked_next) {
            choice.answered = Some(AudienceQuestion::Balanced);
            choice.reason = format!(
                "{:.0}% of the backtest's users came back within the horizon, so every ranking was also measured on what their first visit held (the next-visit question), and both questions count alike; {}",
                share * 100.0,
                choice.reason
            );
        }
        let n_own = owns.len();
        let served = match partner {
            _ if best < n_own => Served::Own(best),
            Some(h) if best >= n_own + listed.len() => {
                Served::Blend(h, best - n_own - listed.len())
            }
            _ => Served::Heuristic(&listed[best - n_own]),
        };
        let evaluations = all.swap_remove(best).swap_remove(0);
        (served, choice, evaluations)
    }

    /// The raw (transformed, unstandardized) features of one user for a target as of now,
    /// in [`FEATURE_NAMES`] order: the input of [`PropensityModel::contributions`]. `event`
    /// is the audience's ([`AudienceOptions::event`]).
    pub fn features(&self, target_items: &[u32], user: u32, event: Option<u8>) -> Result<Vec<f32>> {
        let target = self.checked_target(target_items)?;
        if user as usize >= self.n_users {
            return Err(ModelError::UserOutOfRange {
                user,
                n_users: self.n_users,
            });
        }
        let event = self.checked_event(event)?;
        Ok(TargetView::new(self, &self.now, &target, Some(user), event).row(user))
    }

    /// The features of many users at once, as [`Self::features`] gives them one by one: the
    /// target's statistics are gathered once (one user at a time would scan the target's
    /// interactions and allocate full-length arrays per user).
    pub fn feature_rows(
        &self,
        target_items: &[u32],
        users: &[u32],
        event: Option<u8>,
    ) -> Result<Vec<Vec<f32>>> {
        let target = self.checked_target(target_items)?;
        if let Some(&user) = users.iter().find(|&&u| u as usize >= self.n_users) {
            return Err(ModelError::UserOutOfRange {
                user,
                n_users: self.n_users,
            });
        }
        let event = self.checked_event(event)?;
        let view = TargetView::new(self, &self.now, &target, None, event);
        Ok(users.iter().map(|&u| view.row(u)).collect())
    }

    /// Why a user scored as they did: each feature's contribution to the log-odds under the
    /// audience's model. `None` for a fallback audience (no model to explain).
    pub fn explain(
        &self,
        target_items: &[u32],
        scores: &AudienceScores,
        user: u32,
        event: Option<u8>,
    ) -> Result<Option<Vec<Contribution>>> {
        let Some(model) = &scores.model else {
            return Ok(None);
        };
        let raw = self.features(target_items, user, event)?;
        model.contributions(&raw).map(Some)
    }

    /// The audience's event as the features and labels use it: `None` when the catalog has
    /// one event (an audience of it is an audience of any); an index past the catalog's
    /// events is an error.
    fn checked_event(&self, event: Option<u8>) -> Result<Option<u8>> {
        let n_events = self.event_weights.len();
        match event {
            Some(e) if usize::from(e) >= n_events => Err(ModelError::InvalidParameter {
                name: "event",
                reason: format!(
                    "event index {e} is out of range: the catalog has {n_events} events"
                ),
            }),
            Some(_) if n_events == 1 => Ok(None),
            event => Ok(event),
        }
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
        let members: Vec<(u32, f64)> = {
            let mut v: Vec<(u32, f64)> = positives
                .iter()
                .chain(negatives)
                .map(|&u| (u, 1.0))
                .collect();
            v.sort_unstable_by_key(|&(u, _)| u);
            v
        };
        let scored: Vec<Scored> = members
            .iter()
            .map(|&(user, weight)| Scored {
                user,
                score: f64::from(row(x_past, user)[cf]),
                positive: labels[user as usize],
                weight,
            })
            .collect();
        let folds = std::slice::from_ref(&members);
        let (served, mut ranking, served_evaluations) = self.guard(
            &[(CF_AFFINITY, std::slice::from_ref(&scored))],
            false,
            x_past,
            &Question { labels, folds },
            None,
            base_rate,
            options,
        );
        // Measured on the first question only, whichever was asked.
        ranking.answered = Some(AudienceQuestion::WithinHorizon);
        let now = TargetView::new(self, &self.now, target, None, options.event);
        let x_now = now.matrix();
        let ranked = match served {
            Served::Heuristic(heuristic) | Served::Blend(heuristic, _) => heuristic.ranked(&x_now),
            Served::Own(_) => {
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
