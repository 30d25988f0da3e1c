//! The scoring interface every model implements, and the shared top-k selection.
//!
//! Fitting is deliberately not part of the trait: models take different
//! parameters and training data, but once fitted they all answer the same
//! question ("score these items for this user"), which is what serving and the
//! evaluation code need.

use std::cmp::Ordering;

use crate::error::{ModelError, Result};

/// A fitted model that can score and rank items for a user.
pub trait Recommender: Sync {
    /// The concrete model, for saving it (see [`crate::snapshot`]). None: this kind cannot be
    /// saved (models outside this crate, say), and a server retrains it after a restart.
    fn fitted(&self) -> Option<crate::snapshot::Fitted<'_>> {
        None
    }

    /// Number of items the model scores; item ids are `0..n_items()`.
    fn n_items(&self) -> usize;

    /// One score per item (index = item id); higher is better.
    fn score_items(&self, user: u32) -> Result<Vec<f32>>;

    /// Scores for several users, streamed: `sink(row, first_item, scores)` receives
    /// consecutive item ranges of row `row` (the user `users[row]`), every item of every row
    /// exactly once, with the same numbers as [`Recommender::score_items`]. Streaming keeps
    /// memory at one block instead of users × items (a trait over 1M users), and lets models
    /// with a faster batched form (ALS: a cache-blocked product) override it.
    fn score_users_with(
        &self,
        users: &[u32],
        sink: &mut dyn FnMut(usize, usize, &[f32]),
    ) -> Result<()> {
        for (row, &u) in users.iter().enumerate() {
            sink(row, 0, &self.score_items(u)?);
        }
        Ok(())
    }

    /// The `k` best items for `user`, best first, never including an item in
    /// `exclude` (ids outside the catalogue in `exclude` are ignored). Ties are
    /// broken by ascending item id so results are fully deterministic.
    fn recommend(&self, user: u32, k: usize, exclude: &[u32]) -> Result<Vec<(u32, f32)>> {
        let scores = self.score_items(user)?;
        Ok(top_k_excluding(&scores, k, exclude))
    }
}

/// Best-first order: higher score first, then lower id. `total_cmp` makes this a
/// total order (even with NaN), which is what makes top-k unique and therefore
/// independent of the selection algorithm.
pub(crate) fn rank_order(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Top `k` of `scores` (index = item id) skipping `exclude`.
pub(crate) fn top_k_excluding(scores: &[f32], k: usize, exclude: &[u32]) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut excluded = vec![false; scores.len()];
    for &e in exclude {
        if let Some(flag) = excluded.get_mut(e as usize) {
            *flag = true;
        }
    }
    let candidates = scores
        .iter()
        .enumerate()
        .filter(|&(i, _)| !excluded[i])
        .map(|(i, &s)| (i as u32, s));
    top_k(candidates, k)
}

/// Top `k` of arbitrary `(id, score)` candidates in [`rank_order`].
pub(crate) fn top_k(candidates: impl Iterator<Item = (u32, f32)>, k: usize) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut all: Vec<(u32, f32)> = candidates.collect();
    if all.len() > k {
        // O(n) partition instead of a full sort; only the head gets sorted.
        all.select_nth_unstable_by(k - 1, rank_order);
        // Copy the head out rather than truncating: a truncated Vec keeps its
        // full capacity (n entries), which callers storing many top-k lists
        // would pay for per list.
        let mut head = all[..k].to_vec();
        head.sort_unstable_by(rank_order);
        return head;
    }
    all.sort_unstable_by(rank_order);
    all
}

/// Shared bounds check for per-user models.
pub(crate) fn check_user(user: u32, n_users: usize) -> Result<usize> {
    if (user as usize) < n_users {
        Ok(user as usize)
    } else {
        Err(ModelError::UserOutOfRange { user, n_users })
    }
}

/// A model that gives every user the same fixed scores: the base under test of the layers
/// over a model (`blend`, `repeat`).
#[cfg(test)]
pub(crate) struct Fixed(pub Vec<f32>);

#[cfg(test)]
impl Recommender for Fixed {
    fn n_items(&self) -> usize {
        self.0.len()
    }
    fn score_items(&self, _: u32) -> Result<Vec<f32>> {
        Ok(self.0.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn top_k_breaks_ties_by_id_and_skips_excluded() {
        let scores = [1.0, 3.0, 3.0, 2.0, 3.0];
        assert_eq!(
            top_k_excluding(&scores, 3, &[2, 99]),
            vec![(1, 3.0), (4, 3.0), (3, 2.0)]
        );
        assert_eq!(top_k_excluding(&scores, 10, &[]).len(), 5);
        assert!(top_k_excluding(&scores, 0, &[]).is_empty());
    }
}
