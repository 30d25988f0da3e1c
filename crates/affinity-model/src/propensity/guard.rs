//! The "best of" guard: every audience's backtest also measures the rankings a marketer
//! would build by hand, on the same held-out users with the same weights, and the audience
//! serves whichever ranking did best. A learned model that cannot beat "who bought it most
//! often" on the store's own past has no business replacing it.

use super::backtest::{self, Evaluation, Scored};
use super::features::{N_FEATURES, col};
use super::{Competitor, RankingChoice};

/// The name of the learned ranking among the competitors (or of the CF affinity, when too
/// few positives left nothing to learn from).
pub(super) const LEARNED: &str = "learned";
pub(super) const CF_AFFINITY: &str = "cf_affinity";
/// The learned ranking of the backtest's second question (the user's next visit).
pub(super) const LEARNED_NEXT_VISIT: &str = "learned_next_visit";
/// The mean rank of the two learned rankings.
pub(super) const LEARNED_BOTH: &str = "learned_both";
/// A blend competitor is named `blend:<heuristic>` (with [`LEARNED`]) or
/// `blend_next_visit:<heuristic>` (with [`LEARNED_NEXT_VISIT`]), and served under that name.
pub(super) const BLEND_PREFIX: &str = "blend:";
pub(super) const BLEND_NEXT_VISIT_PREFIX: &str = "blend_next_visit:";

/// A hand-made ranking: by `primary`, ties by `secondary`, then by user index. Both read
/// the feature row (transformed features are monotone in the raw ones, so the order is the
/// raw heuristic's).
pub(super) struct Heuristic {
    pub name: &'static str,
    primary: fn(&[f32]) -> f64,
    secondary: fn(&[f32]) -> f64,
}

fn recency(row: &[f32]) -> f64 {
    -f64::from(row[col::DAYS_SINCE_ACTIVE])
}

/// The competitors, in the order the estimate lists them.
pub(super) const HEURISTICS: [Heuristic; 8] = [
    // "How often did they buy it": count of past engagements with the target.
    Heuristic {
        name: "past_count",
        primary: |r| f64::from(r[col::TARGET_COUNT]),
        secondary: recency,
    },
    // "Share of their visits (days) that included it": loyalty, whatever the activity.
    Heuristic {
        name: "past_share",
        primary: |r| f64::from(r[col::TARGET_DAY_SHARE]),
        secondary: |r| f64::from(r[col::TARGET_COUNT]),
    },
    // "Who engaged with it most recently".
    Heuristic {
        name: "target_recency",
        primary: |r| -f64::from(r[col::DAYS_SINCE_TARGET]),
        secondary: |r| f64::from(r[col::TARGET_COUNT]),
    },
    // Count decayed with a half-life of the horizon.
    Heuristic {
        name: "decayed_count",
        primary: |r| f64::from(r[col::TARGET_DECAYED]),
        secondary: recency,
    },
    // Overall activity, and overall recency: what works when the target says little.
    Heuristic {
        name: "most_active",
        primary: |r| f64::from(r[col::ACTIVITY]),
        secondary: recency,
    },
    Heuristic {
        name: "most_recent",
        primary: recency,
        secondary: |r| f64::from(r[col::ACTIVITY]),
    },
    // An audience of one event ("who will order it"): how often they did that with the
    // target, and its share of their days with that event (share of their orders).
    Heuristic {
        name: "event_count",
        primary: |r| f64::from(r[col::EVENT_COUNT]),
        secondary: recency,
    },
    Heuristic {
        name: "event_share",
        primary: |r| f64::from(r[col::EVENT_SHARE]),
        secondary: |r| f64::from(r[col::EVENT_COUNT]),
    },
];

/// How many of [`HEURISTICS`] compete for an audience of any event: the rest read the
/// columns of an audience's event, which are 0 without one.
const ANY_EVENT_HEURISTICS: usize = 6;

/// The heuristics that compete for an audience (of one event, or of any).
pub(super) fn heuristics(event: bool) -> &'static [Heuristic] {
    if event {
        &HEURISTICS
    } else {
        &HEURISTICS[..ANY_EVENT_HEURISTICS]
    }
}

impl Heuristic {
    /// `members` (user, weight) ordered best first: by primary, then secondary (both
    /// descending), then index. The keys are computed once per user, not per comparison.
    fn order(&self, x: &[f32], members: impl Iterator<Item = (u32, f64)>) -> Vec<(u32, f64)> {
        let row = |u: u32| &x[u as usize * N_FEATURES..(u as usize + 1) * N_FEATURES];
        let mut keyed: Vec<(f64, f64, u32, f64)> = members
            .map(|(u, w)| {
                let r = row(u);
                ((self.primary)(r), (self.secondary)(r), u, w)
            })
            .collect();
        keyed.sort_unstable_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then(b.1.total_cmp(&a.1))
                .then(a.2.cmp(&b.2))
        });
        keyed.into_iter().map(|(_, _, u, w)| (u, w)).collect()
    }

    /// Everyone of `x` (n × [`N_FEATURES`]) ranked, with a score of 1 at the top falling
    /// linearly to 1/n: a heuristic's own values (a log count, a share) mean little out of
    /// context, its rank does.
    pub(super) fn ranked(&self, x: &[f32]) -> Vec<(u32, f32)> {
        let n = x.len() / N_FEATURES;
        self.order(x, (0..n as u32).map(|u| (u, 1.0)))
            .into_iter()
            .enumerate()
            .map(|(i, (u, _))| (u, rank_score(i as f64, n) as f32))
            .collect()
    }

    /// Everyone of `x` ranked by the blend of `learned` (every user of `x`, best first) and
    /// this heuristic: the mean of the two rank scores, best first, ties by user index.
    pub(super) fn blend_ranked(&self, x: &[f32], learned: &[(u32, f32)]) -> Vec<(u32, f32)> {
        let n = x.len() / N_FEATURES;
        let own = learned_rank_scores(learned.iter().map(|&(u, s)| (u, f64::from(s))), n);
        let mut ranked: Vec<(u32, f32)> = self
            .order(x, (0..n as u32).map(|u| (u, 1.0)))
            .into_iter()
            .enumerate()
            .map(|(i, (u, _))| {
                let blended = (rank_score(i as f64, n) + own[u as usize]) / 2.0;
                (u, blended as f32)
            })
            .collect();
        backtest::sort_ranking(&mut ranked, |&(u, s)| (f64::from(s), u));
        ranked
    }

    /// The blend's held-out evaluations: on each fold, the learned ranking's held-out
    /// scores (`held_out`, one list per fold) and this heuristic's order of the same users,
    /// both as rank scores within the fold, averaged.
    pub(super) fn evaluate_blend(&self, x: &[f32], held_out: &[Vec<Scored>]) -> Vec<Evaluation> {
        held_out
            .iter()
            .filter_map(|scored| {
                let n = scored.len();
                // Indexed by user: a fold holds users of the whole catalog.
                let size = scored
                    .iter()
                    .map(|s| s.user as usize + 1)
                    .max()
                    .unwrap_or(0);
                let mut own = vec![0f64; size];
                let mut sorted: Vec<(u32, f64)> =
                    scored.iter().map(|s| (s.user, s.score)).collect();
                backtest::sort_ranking(&mut sorted, |&(u, s)| (s, u));
                for_each_mid_rank(&sorted, |u, r| own[u as usize] = rank_score(r, n));
                let positive: Vec<(u32, bool)> = {
                    let mut v: Vec<(u32, bool)> =
                        scored.iter().map(|s| (s.user, s.positive)).collect();
                    v.sort_unstable_by_key(|p| p.0);
                    v
                };
                let is_positive = |u: u32| {
                    positive
                        .binary_search_by_key(&u, |p| p.0)
                        .is_ok_and(|k| positive[k].1)
                };
                let blended = self
                    .order(x, scored.iter().map(|s| (s.user, s.weight)))
                    .into_iter()
                    .enumerate()
                    .map(|(i, (user, weight))| Scored {
                        user,
                        score: (rank_score(i as f64, n) + own[user as usize]) / 2.0,
                        positive: is_positive(user),
                        weight,
                    })
                    .collect();
                backtest::evaluate(blended)
            })
            .collect()
    }

    /// The held-out evaluations of this heuristic on the backtest's folds (`x` at the
    /// backtest time), like the learned model's.
    pub(super) fn evaluate(
        &self,
        x: &[f32],
        labels: &[bool],
        folds: &[Vec<(u32, f64)>],
    ) -> Vec<Evaluation> {
        folds
            .iter()
            .filter_map(|members| {
                let ordered = self.order(x, members.iter().copied());
                let n = ordered.len() as f64;
                let scored = ordered
                    .into_iter()
                    .enumerate()
                    .map(|(i, (user, weight))| Scored {
                        user,
                        // The position as a score: evaluate() re-sorts by it, ties impossible.
                        score: n - i as f64,
                        positive: labels[user as usize],
                        weight,
                    })
                    .collect();
                backtest::evaluate(scored)
            })
            .collect()
    }
}

/// Position `i` (0 = best; fractional for a tie's mean position) of `n` as a score: 1 at the
/// top falling linearly to 1/n.
fn rank_score(i: f64, n: usize) -> f64 {
    1.0 - i / n.max(1) as f64
}

/// Calls `f(user, mean position of its tie)` for a ranking sorted best first. Tied learned
/// scores (a tree's leaves give many) share their mean position, so the heuristic of a blend
/// decides within a tie rather than the user index.
fn for_each_mid_rank(sorted: &[(u32, f64)], mut f: impl FnMut(u32, f64)) {
    let mut start = 0;
    while start < sorted.len() {
        let mut end = start + 1;
        while end < sorted.len() && sorted[end].1 == sorted[start].1 {
            end += 1;
        }
        let mid = (start + end - 1) as f64 / 2.0;
        for &(u, _) in &sorted[start..end] {
            f(u, mid);
        }
        start = end;
    }
}

/// The mean rank score of two rankings of the same held-out users (`a` and `b` list the
/// same users in the same order, as two learners' held-out scores of one fold do); the
/// labels and weights are `a`'s.
pub(super) fn mean_rank(a: &[Scored], b: &[Scored]) -> Vec<Scored> {
    let n = a.len();
    let size = a.iter().map(|s| s.user as usize + 1).max().unwrap_or(0);
    let mut mean = vec![0f64; size];
    for list in [a, b] {
        let mut sorted: Vec<(u32, f64)> = list.iter().map(|s| (s.user, s.score)).collect();
        backtest::sort_ranking(&mut sorted, |&(u, s)| (s, u));
        for_each_mid_rank(&sorted, |u, r| mean[u as usize] += rank_score(r, n) / 2.0);
    }
    a.iter()
        .map(|s| Scored {
            score: mean[s.user as usize],
            ..*s
        })
        .collect()
}

/// Every user ranked by the mean rank score of two rankings of all `n` users (each best
/// first), best first, ties by user index.
pub(super) fn mean_rank_ranked(a: &[(u32, f32)], b: &[(u32, f32)], n: usize) -> Vec<(u32, f32)> {
    let own_a = learned_rank_scores(a.iter().map(|&(u, s)| (u, f64::from(s))), n);
    let own_b = learned_rank_scores(b.iter().map(|&(u, s)| (u, f64::from(s))), n);
    let mut ranked: Vec<(u32, f32)> = (0..n)
        .map(|u| (u as u32, ((own_a[u] + own_b[u]) / 2.0) as f32))
        .collect();
    backtest::sort_ranking(&mut ranked, |&(u, s)| (f64::from(s), u));
    ranked
}

/// Rank scores of a learned ranking (best first) of all `n` users, indexed by user.
fn learned_rank_scores(ranked: impl Iterator<Item = (u32, f64)>, n: usize) -> Vec<f64> {
    let sorted: Vec<(u32, f64)> = ranked.collect();
    let mut own = vec![0f64; n];
    for_each_mid_rank(&sorted, |u, r| own[u as usize] = rank_score(r, n));
    own
}

/// One competitor's backtest figures: on the first question, and on the next-visit
/// question when it was measured (its base rate and evaluations).
pub(super) fn figures(
    name: &str,
    evaluations: &[Evaluation],
    base_rate: f64,
    next_visit: Option<(&[Evaluation], f64)>,
    n_scored: usize,
) -> Competitor {
    let lift_at_20 = |evaluations: &[Evaluation], base_rate: f64| {
        backtest::curve(evaluations, base_rate, n_scored)
            .iter()
            .find(|p| (p.fraction - 0.20).abs() < 1e-9)
            .map_or(0.0, |p| p.lift)
    };
    Competitor {
        name: name.to_string(),
        average_precision: backtest::mean_average_precision(evaluations),
        lift_at_20: lift_at_20(evaluations, base_rate),
        next_visit_average_precision: next_visit.map(|(e, _)| backtest::mean_average_precision(e)),
        next_visit_lift_at_20: next_visit.map(|(e, rate)| lift_at_20(e, rate)),
    }
}

/// One question the backtest asks of every ranking: its labels and, per fold, the members
/// with their weights, in the folds' order (weight 0: a user this question does not ask
/// about).
pub(super) struct Question<'a> {
    pub labels: &'a [bool],
    pub folds: &'a [Vec<(u32, f64)>],
}

impl Question<'_> {
    /// Held-out scores (one list per fold, in the folds' member order, as the learners give
    /// them) with this question's labels and weights.
    pub(super) fn relabel(&self, held_out: &[Vec<Scored>]) -> Vec<Vec<Scored>> {
        held_out
            .iter()
            .zip(self.folds)
            .map(|(scored, members)| {
                debug_assert_eq!(scored.len(), members.len(), "one score per member");
                scored
                    .iter()
                    .zip(members)
                    .map(|(s, &(user, weight))| {
                        debug_assert_eq!(s.user, user, "held-out scores follow the folds");
                        Scored {
                            positive: self.labels[user as usize],
                            weight,
                            ..*s
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

/// Which competitor serves, given `fold_ap[i][q][k]`: competitor i's average precision on
/// question q's held-out fold k. The first `n_own` competitors are the learned rankings
/// (or the CF affinity); the rest are challengers (heuristics, blends).
///
/// Each competitor's *relative* figure is its mean average precision on each question over
/// the best competitor's on that question, averaged over the questions: a ranking that is
/// best on one question and poor on the other does not serve where one that is near the
/// best on both exists. Where both questions are measured and the mean rank of the two
/// learned rankings ([`LEARNED_BOTH`]) is among them, it is the reference unless another
/// does at least as well on every fold and on each question's mean; otherwise the own
/// ranking with the best relative figure is. A challenger replaces the reference only if it
/// is better on *every* held-out fold (its average precision minus the reference's, over
/// the question's best, averaged over the questions, is positive on each fold) and no worse
/// on either question's mean, and then the best relative figure among such challengers
/// serves. Average precision, not lift at one size, because it scores the whole ranking and
/// the audience's size is the user's choice; every fold, because on a small store one
/// fold's difference is often noise (on the MovieLens genres, "better on the mean" switched
/// five genres to a heuristic and lost on the test window). With one question this is "the
/// best mean average precision among the challengers that beat the learned ranking on every
/// fold". Returns the index of the winner and the choice as the estimate states it.
pub(super) fn choose(
    competitors: Vec<Competitor>,
    fold_ap: &[Vec<Vec<f64>>],
    n_own: usize,
    enabled: bool,
) -> (usize, RankingChoice) {
    let n_q = fold_ap.first().map_or(0, Vec::len);
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let best_q: Vec<f64> = (0..n_q)
        .map(|q| fold_ap.iter().map(|c| mean(&c[q])).fold(0.0, f64::max))
        .collect();
    let scale = |q: usize| if best_q[q] > 0.0 { best_q[q] } else { 1.0 };
    let relative = |i: usize| {
        (0..n_q)
            .map(|q| mean(&fold_ap[i][q]) / scale(q))
            .sum::<f64>()
            / n_q.max(1) as f64
    };
    // `i` better than `j` on every held-out fold, on the questions' mean (`or_equal`: at
    // least as good).
    let better_on_every_fold = |i: usize, j: usize, or_equal: bool| {
        let folds = fold_ap[j].first().map_or(0, Vec::len);
        folds > 0
            && (0..n_q).all(|q| fold_ap[i][q].len() == fold_ap[j][q].len())
            && (0..folds).all(|k| {
                let d: f64 = (0..n_q)
                    .map(|q| (fold_ap[i][q][k] - fold_ap[j][q][k]) / scale(q))
                    .sum();
                d > 0.0 || (or_equal && d == 0.0)
            })
    };
    // The first question on which `i`'s mean average precision is below `j`'s: where the
    // two questions disagree, a ranking that wins their mean by being much better at one
    // answers the other question, not ours. None with one question (winning every fold
    // implies a better mean).
    let worse_on =
        |i: usize, j: usize| (0..n_q).find(|&q| mean(&fold_ap[i][q]) < mean(&fold_ap[j][q]));
    let n_own = n_own.min(fold_ap.len());
    // The best relative figure among the `candidates` that do better than `reference` on
    // every fold (`or_equal`: at least as well) and no worse on either question's mean;
    // `reference` when none does.
    let replacing = |reference: usize, candidates: std::ops::Range<usize>, or_equal: bool| {
        candidates
            .filter(|&i| {
                i != reference
                    && better_on_every_fold(i, reference, or_equal)
                    && worse_on(i, reference).is_none()
            })
            .fold(reference, |b, i| {
                if b == reference || relative(i) > relative(b) {
                    i
                } else {
                    b
                }
            })
    };
    // Where both questions are asked, the mean rank of their two learned rankings answers
    // both; one learned for a single question replaces it only where it does at least as
    // well on every fold and on each question's mean (then it serves with its model:
    // explanations, and the propensity floor that keeps an audience from filling up with
    // users it has no case for; so a tie goes to it). Picking whichever is nearest the best
    // on the mean followed differences of a percent, which on a shop's two folds are noise,
    // and where the first question's ranking won that way on the repeat-purchase benchmark,
    // its held-out next orders' average precision was up to a quarter below the mean
    // rank's. With one question, the own ranking nearest the best serves.
    let compromise = (0..n_own)
        .find(|&i| competitors[i].name == LEARNED_BOTH)
        .filter(|_| n_q > 1);
    let own = match compromise {
        Some(c) => replacing(c, 0..n_own, true),
        None => (0..n_own).fold(0, |b, i| if relative(i) > relative(b) { i } else { b }),
    };
    // A challenger (a hand-made ranking or a blend) must win every fold, strictly.
    let best = if enabled {
        replacing(own, n_own..competitors.len(), false)
    } else {
        own
    };
    let both = if n_q > 1 {
        " on the two questions' mean"
    } else {
        ""
    };
    let question = |q: usize| {
        if q == 0 {
            "the first question's (engaged within the horizon)"
        } else {
            "the next-visit question's"
        }
    };
    let figure = |i: usize| {
        if n_q > 1 {
            format!(
                "average precision {:.4}, {:.0}% of the best on the questions' mean",
                competitors[i].average_precision,
                relative(i) * 100.0
            )
        } else {
            format!("average precision {:.4}", competitors[i].average_precision)
        }
    };
    let mut reason = String::new();
    if n_own > 1 {
        let others: Vec<String> = (0..n_own)
            .filter(|&i| i != own)
            .map(|i| format!("{} {:.0}%", competitors[i].name, relative(i) * 100.0))
            .collect();
        let what = match compromise {
            Some(c) if c == own => format!(
                "{} is the learned ranking: the mean rank of the two questions' learned rankings, which neither matched on every fold and on each question's mean",
                competitors[own].name
            ),
            Some(c) => format!(
                "{} is the learned ranking: it did at least as well as {} on every fold{both} and on each question's mean",
                competitors[own].name, competitors[c].name
            ),
            None => format!(
                "{} is the learned ranking nearest the best{both}",
                competitors[own].name
            ),
        };
        reason.push_str(&format!(
            "{what} ({:.0}% of the best on the questions' mean; {}); ",
            relative(own) * 100.0,
            others.join(", ")
        ));
    }
    let own_name = competitors.get(own).map_or(LEARNED, |c| c.name.as_str());
    reason.push_str(&match competitors.get(own) {
        None => "no ranking was measured".to_string(),
        Some(first) if !enabled => format!(
            "{} serves: the best-of-heuristics guard is off for this audience",
            first.name
        ),
        Some(first) if best == own => {
            let runner_up = (n_own..competitors.len())
                .rev() // max_by keeps the last of equals: reversed, the first listed
                .max_by(|&a, &b| relative(a).total_cmp(&relative(b)));
            match runner_up {
                Some(r) if relative(r) > relative(own) => {
                    let why_not = match worse_on(r, own) {
                        Some(q) if better_on_every_fold(r, own, false) => format!(
                            "won every fold{both} but was worse on {} mean, {:.4} vs {:.4}",
                            question(q),
                            mean(&fold_ap[r][q]),
                            mean(&fold_ap[own][q])
                        ),
                        _ => "did not win every fold".to_string(),
                    };
                    format!(
                        "{} serves: no heuristic or blend ranked every held-out fold of the backtest better{both} and no worse on each question ({}; the best of them on the mean, {}, {}, {why_not})",
                        first.name,
                        figure(own),
                        competitors[r].name,
                        figure(r)
                    )
                }
                Some(r) => format!(
                    "{} ranked the held-out backtest users best{both} ({}; the best heuristic or blend, {}, {})",
                    first.name,
                    figure(own),
                    competitors[r].name,
                    figure(r)
                ),
                None => format!("{} is the only ranking", first.name),
            }
        }
        Some(first) => {
            let name = &competitors[best].name;
            let what = match blend_parts(name) {
                Some((learned, h)) => format!(
                    "the blend of the {learned} ranking and the heuristic {h} (the mean of their ranks)"
                ),
                None => format!("the heuristic {name}"),
            };
            format!(
                "{what} ranked the held-out backtest users better than the {} ranking on every fold{both} ({} vs {}), so it serves",
                first.name,
                figure(best),
                figure(own)
            )
        }
    });
    let served = competitors
        .get(best)
        .map_or_else(|| own_name.to_string(), |c| c.name.clone());
    let served = if best < n_own || blend_parts(&served).is_some() {
        served
    } else {
        format!("heuristic:{served}")
    };
    (
        best,
        RankingChoice {
            served,
            reason,
            competitors,
            // The guard is handed its questions, not told which the audience asked: the
            // caller, which knows, says.
            answered: None,
        },
    )
}

/// A blend competitor's learned ranking and heuristic: `blend:<h>` blends [`LEARNED`],
/// `blend_next_visit:<h>` blends [`LEARNED_NEXT_VISIT`].
pub(super) fn blend_parts(name: &str) -> Option<(&'static str, &str)> {
    if let Some(h) = name.strip_prefix(BLEND_PREFIX) {
        Some((LEARNED, h))
    } else {
        name.strip_prefix(BLEND_NEXT_VISIT_PREFIX)
            .map(|h| (LEARNED_NEXT_VISIT, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, ap: f64) -> Competitor {
        Competitor {
            name: name.into(),
            average_precision: ap,
            lift_at_20: 1.0,
            next_visit_average_precision: None,
            next_visit_lift_at_20: None,
        }
    }

    #[test]
    fn a_heuristic_serves_only_when_it_wins_every_fold() {
        let competitors = vec![
            c(LEARNED, 0.30),
            c("past_count", 0.35),
            c("past_share", 0.40),
        ];
        // past_share has the best mean but loses one fold; past_count wins both.
        let folds = [
            vec![vec![0.3, 0.3]],
            vec![vec![0.34, 0.36]],
            vec![vec![0.6, 0.2]],
        ];
        let (best, choice) = choose(competitors.clone(), &folds, 1, true);
        assert_eq!((best, choice.served.as_str()), (1, "heuristic:past_count"));
        // Off: learned serves whatever the figures.
        let (best, choice) = choose(competitors.clone(), &folds, 1, false);
        assert_eq!((best, choice.served.as_str()), (0, LEARNED));
        // Ties go to the learned ranking.
        let tied = [
            vec![vec![0.3, 0.3]],
            vec![vec![0.3, 0.3]],
            vec![vec![0.3, 0.3]],
        ];
        let (best, choice) = choose(competitors, &tied, 1, true);
        assert_eq!((best, choice.served.as_str()), (0, LEARNED));
    }

    #[test]
    fn with_two_questions_the_ranking_near_the_best_on_both_serves() {
        // fold_ap[i][q][k]. `learned` is best on the first question and poor on the next
        // visit; past_share the reverse; learned_next_visit is near the best on both.
        let competitors = vec![
            c(LEARNED, 0.40),
            c(LEARNED_NEXT_VISIT, 0.38),
            c("past_share", 0.30),
        ];
        let folds = [
            vec![vec![0.40, 0.40], vec![0.20, 0.20]],
            vec![vec![0.38, 0.38], vec![0.29, 0.29]],
            vec![vec![0.30, 0.30], vec![0.30, 0.30]],
        ];
        let (best, choice) = choose(competitors.clone(), &folds, 2, true);
        assert_eq!((best, choice.served.as_str()), (1, LEARNED_NEXT_VISIT));
        assert!(
            choice.reason.contains("the two questions' mean"),
            "{}",
            choice.reason
        );
        // past_share much better on the next visit and as good on the first: it wins every
        // fold on the questions' mean against the nearer learned ranking, so it serves.
        let folds = [
            vec![vec![0.40, 0.40], vec![0.20, 0.20]],
            vec![vec![0.38, 0.38], vec![0.25, 0.25]],
            vec![vec![0.38, 0.38], vec![0.40, 0.40]],
        ];
        let (best, choice) = choose(competitors.clone(), &folds, 2, true);
        assert_eq!((best, choice.served.as_str()), (2, "heuristic:past_share"));
        // A little worse on the first: it still wins every fold on the mean, but by answering
        // the other question; it does not serve.
        let folds = [
            vec![vec![0.40, 0.40], vec![0.20, 0.20]],
            vec![vec![0.38, 0.38], vec![0.25, 0.25]],
            vec![vec![0.37, 0.37], vec![0.40, 0.40]],
        ];
        let (best, choice) = choose(competitors.clone(), &folds, 2, true);
        assert_eq!(best, 1);
        assert!(
            choice.reason.contains(
                "won every fold on the two questions' mean but was worse on the first question's"
            ),
            "{}",
            choice.reason
        );
        // ... nor if it loses one fold on the mean.
        let folds = [
            vec![vec![0.40, 0.40], vec![0.20, 0.20]],
            vec![vec![0.38, 0.38], vec![0.25, 0.25]],
            vec![vec![0.40, 0.36], vec![0.40, 0.26]],
        ];
        let (best, _) = choose(competitors, &folds, 2, true);
        assert_eq!(best, 1);
    }

    #[test]
    fn the_mean_rank_serves_unless_matched_on_every_fold_and_question() {
        let competitors = vec![
            c(LEARNED, 0.405),
            c(LEARNED_NEXT_VISIT, 0.36),
            c(LEARNED_BOTH, 0.39),
        ];
        // `learned` is nearest the best on the questions' mean, but worse than the mean rank
        // on fold 1: the mean rank serves.
        let folds = [
            vec![vec![0.44, 0.37], vec![0.30, 0.30]],
            vec![vec![0.36, 0.36], vec![0.31, 0.31]],
            vec![vec![0.39, 0.39], vec![0.30, 0.30]],
        ];
        let (best, choice) = choose(competitors.clone(), &folds, 3, true);
        assert_eq!((best, choice.served.as_str()), (2, LEARNED_BOTH));
        assert!(
            choice.reason.contains("neither matched on every fold"),
            "{}",
            choice.reason
        );
        // Better on both folds: it serves, and says so.
        let folds = [
            vec![vec![0.44, 0.41], vec![0.30, 0.30]],
            vec![vec![0.36, 0.36], vec![0.31, 0.31]],
            vec![vec![0.39, 0.39], vec![0.30, 0.30]],
        ];
        let (best, choice) = choose(competitors.clone(), &folds, 3, true);
        assert_eq!((best, choice.served.as_str()), (0, LEARNED));
        assert!(
            choice
                .reason
                .contains("did at least as well as learned_both on every fold"),
            "{}",
            choice.reason
        );
        // Equal on every fold and question: the ranking with a model serves.
        let tied = [
            vec![vec![0.39, 0.39], vec![0.30, 0.30]],
            vec![vec![0.36, 0.36], vec![0.31, 0.31]],
            vec![vec![0.39, 0.39], vec![0.30, 0.30]],
        ];
        let (best, _) = choose(competitors.clone(), &tied, 3, true);
        assert_eq!(best, 0);
        // Better on every fold of the mean, worse on the next visit's mean: the mean rank.
        let lopsided = [
            vec![vec![0.45, 0.45], vec![0.29, 0.29]],
            vec![vec![0.36, 0.36], vec![0.31, 0.31]],
            vec![vec![0.39, 0.39], vec![0.30, 0.30]],
        ];
        let (best, _) = choose(competitors.clone(), &lopsided, 3, true);
        assert_eq!(best, 2);
        // One question measured (the mean rank listed all the same): the own ranking
        // nearest the best serves, as without it.
        let one = [
            vec![vec![0.44, 0.37]],
            vec![vec![0.36, 0.36]],
            vec![vec![0.39, 0.39]],
        ];
        let (best, _) = choose(competitors, &one, 3, true);
        assert_eq!(best, 0);
    }

    /// Eight users; users 4 and 5 engage. The learned ranking only knows 6 and 7 will not
    /// (everyone else tied); past_count puts 6 and 7 first, then 4 and 5. Each alone ranks
    /// the engaged users below others; their mean rank puts them first.
    #[test]
    fn the_blend_of_learned_and_a_heuristic_can_beat_both_and_serves_under_its_name() {
        let n = 8;
        let mut x = vec![0f32; n * N_FEATURES];
        for (u, count) in [(4, 2.0), (5, 2.0), (6, 3.0), (7, 3.0)] {
            x[u * N_FEATURES + col::TARGET_COUNT] = count;
        }
        let learned: Vec<Scored> = (0..n as u32)
            .map(|user| Scored {
                user,
                score: if user >= 6 { 0.1 } else { 0.5 },
                positive: user == 4 || user == 5,
                weight: 1.0,
            })
            .collect();
        let labels: Vec<bool> = learned.iter().map(|s| s.positive).collect();
        let past_count = &HEURISTICS[0];
        assert_eq!(past_count.name, "past_count");
        let ap = |e: Vec<Evaluation>| e[0].average_precision;
        let own = ap(vec![
            backtest::evaluate(learned.clone()).expect("positives"),
        ]);
        let members: Vec<(u32, f64)> = (0..n as u32).map(|u| (u, 1.0)).collect();
        let heuristic = ap(past_count.evaluate(&x, &labels, &[members]));
        let blend = ap(past_count.evaluate_blend(&x, std::slice::from_ref(&learned)));
        assert!(own < 0.3 && heuristic < 0.5, "{own} {heuristic}");
        assert!((blend - 1.0).abs() < 1e-12, "{blend}");

        // Served now, the same order.
        let mut ranked: Vec<(u32, f32)> =
            learned.iter().map(|s| (s.user, s.score as f32)).collect();
        backtest::sort_ranking(&mut ranked, |&(u, s)| (f64::from(s), u));
        let blended = past_count.blend_ranked(&x, &ranked);
        let top: Vec<u32> = blended[..2].iter().map(|&(u, _)| u).collect();
        assert_eq!(top, [4, 5], "{blended:?}");

        // The guard serves it by its own name, and says what it is.
        let competitors = vec![
            c(LEARNED, own),
            c("past_count", heuristic),
            c("blend:past_count", blend),
        ];
        let folds = [vec![vec![own]], vec![vec![heuristic]], vec![vec![blend]]];
        let (best, choice) = choose(competitors, &folds, 1, true);
        assert_eq!((best, choice.served.as_str()), (2, "blend:past_count"));
        assert!(choice.reason.contains("blend"), "{}", choice.reason);
    }
}
