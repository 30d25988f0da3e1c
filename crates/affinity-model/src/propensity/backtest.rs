//! The honest estimate: how good the ranking is on users it was not fitted on, as a curve of
//! expected precision / recall / engaged users by audience size, and average precision.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::CurvePoint;

/// Audience sizes of the curve, as fractions of scored users.
pub const FRACTIONS: [f64; 21] = [
    0.01, 0.02, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70,
    0.75, 0.80, 0.85, 0.90, 1.00,
];

/// The audience size for a fraction of `n` users: rounded, at least 1 when `n > 0`.
pub(super) fn size_for(fraction: f64, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    ((fraction.clamp(0.0, 1.0) * n as f64).round() as usize).clamp(1, n)
}

/// The users a backtest fits and measures on, split into two stratified folds.
pub(super) struct Folds {
    /// Per fold: (user, weight). Weights exceed 1 only for sampled negatives.
    pub members: [Vec<(u32, f64)>; 2],
}

impl Folds {
    /// Positives and negatives are shuffled separately and dealt alternately, so both folds
    /// get (almost) the same number of each. Above `max_users`, positives are kept (up to
    /// half the cap) and negatives are sampled and up-weighted to stand for the rest.
    pub(super) fn new(positives: &[u32], negatives: &[u32], max_users: usize, seed: u64) -> Folds {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut pos = positives.to_vec();
        let mut neg = negatives.to_vec();
        pos.shuffle(&mut rng);
        neg.shuffle(&mut rng);
        let (kp, kn) = if pos.len() + neg.len() <= max_users {
            (pos.len(), neg.len())
        } else {
            let kp = pos.len().min(max_users / 2);
            (kp, (max_users - kp).min(neg.len()))
        };
        let wp = pos.len() as f64 / kp.max(1) as f64;
        let wn = neg.len() as f64 / kn.max(1) as f64;
        let mut members = [Vec::new(), Vec::new()];
        for (i, &u) in pos[..kp].iter().enumerate() {
            members[i % 2].push((u, wp));
        }
        for (i, &u) in neg[..kn].iter().enumerate() {
            // Offset by the positives' parity so the folds' sizes differ by at most one.
            members[(i + kp) % 2].push((u, wn));
        }
        for m in &mut members {
            m.sort_unstable_by_key(|&(u, _)| u);
        }
        Folds { members }
    }
}

/// One held-out user's score.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scored {
    pub user: u32,
    pub score: f64,
    pub positive: bool,
    pub weight: f64,
}

/// Recall at each of [`FRACTIONS`] and average precision of one held-out ranking; `None`
/// when it has no positives (nothing to recall).
pub(super) struct Evaluation {
    pub recall: Vec<f64>,
    pub average_precision: f64,
}

pub(super) fn evaluate(mut scored: Vec<Scored>) -> Option<Evaluation> {
    let positives: f64 = scored.iter().filter(|s| s.positive).map(|s| s.weight).sum();
    let total: f64 = scored.iter().map(|s| s.weight).sum();
    if positives <= 0.0 || total <= 0.0 {
        return None;
    }
    sort_ranking(&mut scored, |s| (s.score, s.user));
    let mut recall = Vec::with_capacity(FRACTIONS.len());
    let mut next = 0;
    let (mut cum_w, mut cum_pos, mut ap) = (0f64, 0f64, 0f64);
    for s in &scored {
        // A fraction's audience is the users before the cumulative weight reaches it.
        while next < FRACTIONS.len() && cum_w >= FRACTIONS[next] * total - 1e-9 {
            recall.push(cum_pos / positives);
            next += 1;
        }
        cum_w += s.weight;
        if s.positive {
            cum_pos += s.weight;
            ap += s.weight * (cum_pos / cum_w);
        }
    }
    while recall.len() < FRACTIONS.len() {
        recall.push(cum_pos / positives);
    }
    Some(Evaluation {
        recall,
        average_precision: ap / positives,
    })
}

/// Best first, ties by ascending user index: the one ordering used everywhere.
pub(super) fn sort_ranking<T>(v: &mut [T], key: impl Fn(&T) -> (f64, u32)) {
    v.sort_unstable_by(|a, b| {
        let (sa, ua) = key(a);
        let (sb, ub) = key(b);
        sb.total_cmp(&sa).then(ua.cmp(&ub))
    });
}

/// The curve for an audience drawn from `n_scored` users, from the held-out evaluations.
/// Expected engaged users come from recall (monotone in size by construction) times the
/// expected number of engaged users overall; precision and lift follow from them.
pub(super) fn curve(
    evaluations: &[Evaluation],
    base_rate: f64,
    n_scored: usize,
) -> Vec<CurvePoint> {
    FRACTIONS
        .iter()
        .enumerate()
        .map(|(k, &fraction)| {
            let recall = if evaluations.is_empty() {
                0.0
            } else {
                evaluations.iter().map(|e| e.recall[k]).sum::<f64>() / evaluations.len() as f64
            };
            let size = size_for(fraction, n_scored);
            let engaged = recall * base_rate * n_scored as f64;
            let precision = if size > 0 { engaged / size as f64 } else { 0.0 };
            CurvePoint {
                fraction,
                size,
                expected_precision: precision,
                expected_recall: recall,
                expected_engaged: engaged,
                lift: if base_rate > 0.0 {
                    precision / base_rate
                } else {
                    0.0
                },
            }
        })
        .collect()
}

pub(super) fn mean_average_precision(evaluations: &[Evaluation]) -> f64 {
    if evaluations.is_empty() {
        return 0.0;
    }
    evaluations.iter().map(|e| e.average_precision).sum::<f64>() / evaluations.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(labels: &[bool]) -> Vec<Scored> {
        labels
            .iter()
            .enumerate()
            .map(|(i, &positive)| Scored {
                user: i as u32,
                score: -(i as f64),
                positive,
                weight: 1.0,
            })
            .collect()
    }

    #[test]
    fn perfect_and_worst_rankings() {
        let mut labels = vec![false; 100];
        labels[..10].fill(true);
        let best = evaluate(scored(&labels)).expect("positives");
        assert!((best.average_precision - 1.0).abs() < 1e-12);
        assert!(
            (best.recall[FRACTIONS.iter().position(|&f| f == 0.10).expect("10%")] - 1.0).abs()
                < 1e-12
        );
        labels.reverse();
        let worst = evaluate(scored(&labels)).expect("positives");
        assert!(worst.average_precision < 0.2);
        assert_eq!(worst.recall[0], 0.0);
        assert!(evaluate(scored(&[false; 5])).is_none());
    }

    #[test]
    fn folds_are_stratified_and_weights_stand_for_the_sampled_out() {
        let pos: Vec<u32> = (0..11).collect();
        let neg: Vec<u32> = (11..1000).collect();
        let f = Folds::new(&pos, &neg, 200, 3);
        let total: f64 = f.members.iter().flatten().map(|m| m.1).sum();
        assert!((total - 1000.0).abs() < 1e-6);
        let pos_in = |k: usize| f.members[k].iter().filter(|m| m.0 < 11).count();
        assert_eq!(pos_in(0) + pos_in(1), 11);
        assert!(pos_in(0).abs_diff(pos_in(1)) <= 1);
        assert!(f.members[0].len().abs_diff(f.members[1].len()) <= 1);
    }
}
