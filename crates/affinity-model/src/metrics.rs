//! Top-k ranking metrics with binary relevance.
//!
//! Definitions (per user, `rec` = first k recommended ids, `rel` = held-out ids):
//! - precision@k = |rec ∩ rel| / k (divides by k even if fewer than k were
//!   recommended, so a model cannot gain by returning short lists);
//! - recall@k    = |rec ∩ rel| / |rel|;
//! - NDCG@k      = DCG / IDCG with DCG = Σ_{pos<k, rec[pos] ∈ rel} 1/log2(pos + 2)
//!   and IDCG the DCG of a perfect list, i.e. over min(k, |rel|) hits;
//! - coverage    = |∪ rec over evaluated users| / n_items.
//!
//! Averages are over users with at least one test item; such a user with no
//! recommendations still counts (as zero), for the same reason.
//! A recommended id repeated in one list counts once.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::interactions::Interactions;
use crate::recommender::Recommender;

/// Averaged metrics over the evaluated users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingReport {
    pub k: usize,
    /// Users with ≥ 1 test item, i.e. the denominator of the averages.
    pub users: usize,
    pub precision: f64,
    pub recall: f64,
    pub ndcg: f64,
    pub coverage: f64,
}

/// Hit positions (0-based) within the first `k` of `recommended`.
fn hit_positions(recommended: &[u32], relevant: &[u32], k: usize) -> Vec<usize> {
    let mut rel = relevant.to_vec();
    rel.sort_unstable();
    rel.dedup();
    let mut seen = Vec::with_capacity(k);
    let mut hits = Vec::new();
    for (pos, id) in recommended.iter().take(k).enumerate() {
        if seen.contains(id) {
            continue;
        }
        seen.push(*id);
        if rel.binary_search(id).is_ok() {
            hits.push(pos);
        }
    }
    hits
}

fn distinct_len(ids: &[u32]) -> usize {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    v.len()
}

/// precision@k for one user; 0 when `k` is 0.
pub fn precision_at_k(recommended: &[u32], relevant: &[u32], k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    hit_positions(recommended, relevant, k).len() as f64 / k as f64
}

/// recall@k for one user; 0 when there is nothing relevant.
pub fn recall_at_k(recommended: &[u32], relevant: &[u32], k: usize) -> f64 {
    let n_rel = distinct_len(relevant);
    if n_rel == 0 {
        return 0.0;
    }
    hit_positions(recommended, relevant, k).len() as f64 / n_rel as f64
}

/// NDCG@k for one user; 0 when there is nothing relevant or `k` is 0.
pub fn ndcg_at_k(recommended: &[u32], relevant: &[u32], k: usize) -> f64 {
    let ideal_hits = distinct_len(relevant).min(k);
    if ideal_hits == 0 {
        return 0.0;
    }
    let discount = |pos: usize| 1.0 / ((pos + 2) as f64).log2();
    let dcg: f64 = hit_positions(recommended, relevant, k)
        .into_iter()
        .map(discount)
        .sum();
    let idcg: f64 = (0..ideal_hits).map(discount).sum();
    dcg / idcg
}

/// Evaluates `model` on `test`, excluding each user's `train` items from their
/// recommendations (they are known, so recommending them is no prediction).
pub fn evaluate<R: Recommender + ?Sized>(
    model: &R,
    train: &Interactions,
    test: &Interactions,
    k: usize,
) -> Result<RankingReport> {
    Ok(evaluate_per_user(model, train, test, k)?.0)
}

/// As [`evaluate`], also returning each evaluated user's NDCG@k in ascending user order
/// (the users of the report: those with at least one test item), so that two models scored
/// on the same `test` can be compared user by user.
pub fn evaluate_per_user<R: Recommender + ?Sized>(
    model: &R,
    train: &Interactions,
    test: &Interactions,
    k: usize,
) -> Result<(RankingReport, Vec<f64>)> {
    same_dims("train/test users", test.n_users(), train.n_users())?;
    same_dims("train/test items", test.n_items(), train.n_items())?;
    same_dims("model items", test.n_items(), model.n_items())?;
    lists_per_user(test, k, |user| {
        let seen = train.user_items(user)?;
        let recs = model.recommend(user, k, seen.ids)?;
        Ok(recs.into_iter().map(|(item, _)| item).collect())
    })
}

/// As [`evaluate_per_user`] with the user's known items *allowed* in the lists: what the
/// recommendations endpoint serves by default (`exclude_interacted=false`). Measured against
/// held-out engagements that may include items the user had before (re-engagements), it
/// answers "what will this person engage with next", where [`evaluate`] answers "what will
/// they discover next".
pub fn evaluate_next_per_user<R: Recommender + ?Sized>(
    model: &R,
    test: &Interactions,
    k: usize,
) -> Result<(RankingReport, Vec<f64>)> {
    same_dims("model items", test.n_items(), model.n_items())?;
    lists_per_user(test, k, |user| {
        let recs = model.recommend(user, k, &[])?;
        Ok(recs.into_iter().map(|(item, _)| item).collect())
    })
}

/// Evaluates arbitrary recommendation lists: `lists(user)` returns the ranked
/// ids for a user of `test`. Used to score another system's output (e.g. the
/// Python baseline in the benchmark) with exactly the same definitions.
pub fn evaluate_lists<F>(test: &Interactions, k: usize, lists: F) -> Result<RankingReport>
where
    F: Fn(u32) -> Result<Vec<u32>> + Sync,
{
    Ok(lists_per_user(test, k, lists)?.0)
}

fn lists_per_user<F>(test: &Interactions, k: usize, lists: F) -> Result<(RankingReport, Vec<f64>)>
where
    F: Fn(u32) -> Result<Vec<u32>> + Sync,
{
    if k == 0 {
        return Err(ModelError::InvalidParameter {
            name: "k",
            reason: "must be at least 1".to_string(),
        });
    }
    let users: Vec<u32> = (0..test.n_users() as u32)
        .filter(|&u| test.user_items(u).is_ok_and(|r| !r.is_empty()))
        .collect();
    // Per-user results come back in user order, so the sums below are
    // deterministic regardless of how rayon split the work.
    let per_user: Vec<(f64, f64, f64, Vec<u32>)> = users
        .par_iter()
        .map(|&u| {
            let relevant = test.user_items(u)?.ids;
            let mut rec = lists(u)?;
            rec.truncate(k);
            rec.shrink_to_fit(); // kept until the end; don't hold the caller's capacity
            Ok((
                precision_at_k(&rec, relevant, k),
                recall_at_k(&rec, relevant, k),
                ndcg_at_k(&rec, relevant, k),
                rec,
            ))
        })
        .collect::<Result<_>>()?;

    let mut covered = vec![false; test.n_items()];
    let (mut p, mut r, mut n) = (0f64, 0f64, 0f64);
    for (pu, ru, nu, rec) in &per_user {
        p += pu;
        r += ru;
        n += nu;
        for &id in rec {
            if let Some(c) = covered.get_mut(id as usize) {
                *c = true;
            }
        }
    }
    let m = users.len().max(1) as f64;
    let report = RankingReport {
        k,
        users: users.len(),
        precision: p / m,
        recall: r / m,
        ndcg: n / m,
        coverage: covered.iter().filter(|&&c| c).count() as f64 / test.n_items().max(1) as f64,
    };
    Ok((report, per_user.into_iter().map(|x| x.2).collect()))
}

fn same_dims(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(ModelError::DimensionMismatch {
            what,
            expected,
            got,
        })
    }
}
