//! Train/test splits for offline evaluation.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{ModelError, Result};
use crate::interactions::Triplet;

/// One timestamped observation: `(user, item, weight, timestamp)`. The
/// timestamp unit is the caller's (seconds, days, an event counter…).
pub type TimedEvent = (u32, u32, f32, i64);

/// A two-way split.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Holdout {
    pub train: Vec<Triplet>,
    pub test: Vec<Triplet>,
}

/// A three-way split.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainValidTest {
    pub train: Vec<Triplet>,
    pub valid: Vec<Triplet>,
    pub test: Vec<Triplet>,
}

/// Global temporal holdout: events strictly before `cutoff` train, the rest
/// (`timestamp ≥ cutoff`) test. This is the split that matches deployment (the
/// model never sees the future). Input order is preserved on both sides.
///
/// A pair seen on both sides (a re-consumption) stays in both; `evaluate`
/// excludes training items from recommendations, so such test entries cannot
/// be hit. Filter them out first if you want to measure only new items.
pub fn time_holdout(events: &[TimedEvent], cutoff: i64) -> Holdout {
    let mut out = Holdout::default();
    for &(u, i, w, t) in events {
        let side = if t < cutoff {
            &mut out.train
        } else {
            &mut out.test
        };
        side.push((u, i, w));
    }
    out
}

/// Per-user random split by `ratios` (train, valid, test; normalized), seeded.
///
/// Follows RecBole's `split_by_ratio(group_by=user)` with random ordering
/// ("RS"): each user's interactions are shuffled, valid and test get
/// `floor(ratio · n)` each, train gets the rest, and then, while train keeps at
/// least two, a part whose share `ratio · n` lies strictly between 0 and 1 gets
/// one interaction taken from train, so light users still appear in every part
/// when they can. Users are processed in ascending id order with one RNG stream,
/// so the result depends only on the input (its per-user order) and `seed`.
pub fn random_split_per_user(
    triplets: &[Triplet],
    ratios: [f64; 3],
    seed: u64,
) -> Result<TrainValidTest> {
    let total: f64 = ratios.iter().sum();
    if ratios.iter().any(|r| !r.is_finite() || *r < 0.0) || total <= 0.0 {
        return Err(ModelError::InvalidParameter {
            name: "ratios",
            reason: format!("{ratios:?} must be finite, non-negative, with a positive sum"),
        });
    }
    let ratios = ratios.map(|r| r / total);

    // Group by user, keeping input order within a user.
    let n_users = triplets.iter().map(|t| t.0 as usize + 1).max().unwrap_or(0);
    let mut by_user: Vec<Vec<Triplet>> = vec![Vec::new(); n_users];
    for &t in triplets {
        by_user[t.0 as usize].push(t);
    }

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = TrainValidTest::default();
    for mut events in by_user {
        if events.is_empty() {
            continue;
        }
        events.shuffle(&mut rng);
        let [n_train, n_valid, _] = recbole_counts(events.len(), ratios);
        let (train, rest) = events.split_at(n_train);
        let (valid, test) = rest.split_at(n_valid);
        out.train.extend_from_slice(train);
        out.valid.extend_from_slice(valid);
        out.test.extend_from_slice(test);
    }
    Ok(out)
}

/// RecBole's `_calcu_split_ids`, as counts per part.
fn recbole_counts(total: usize, ratios: [f64; 3]) -> [usize; 3] {
    let floor = |r: f64| (r * total as f64) as usize;
    let mut cnt = [0, floor(ratios[1]), floor(ratios[2])];
    cnt[0] = total - cnt[1] - cnt[2];
    // RecBole walks the non-train parts from the last one backwards.
    for part in [2, 1] {
        if cnt[0] <= 1 {
            break;
        }
        let share = ratios[part] * total as f64;
        if 0.0 < share && share < 1.0 {
            cnt[part] += 1;
            cnt[0] -= 1;
        }
    }
    cnt
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn recbole_counts_match_hand_computed() {
        let r = [0.8, 0.1, 0.1];
        for (n, want) in [
            (1, [1, 0, 0]),
            (2, [1, 0, 1]),  // test takes one, then train is down to 1: stop
            (3, [1, 1, 1]),  // 0.3 < 1 for test and valid: each takes one
            (10, [8, 1, 1]), // exact
            (25, [21, 2, 2]),
        ] {
            assert_eq!(recbole_counts(n, r), want, "n = {n}");
        }
    }
}
