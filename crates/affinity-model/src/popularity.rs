//! The popularity baseline: every user gets the most-interacted-with items.
//!
//! It is the floor any personalized model must beat, and the fallback for
//! users the personalized model has never seen.

use crate::error::Result;
use crate::interactions::Interactions;
use crate::recommender::Recommender;

/// Item scores = number of distinct training users who interacted with the
/// item. Counting users rather than summing weights keeps one heavy user from
/// making an item "popular".
#[derive(Debug, Clone, PartialEq)]
pub struct Popularity {
    scores: Vec<f32>,
}

impl Popularity {
    pub fn fit(data: &Interactions) -> Popularity {
        let scores = (0..data.n_items())
            .map(|i| data.item_row(i).len() as f32)
            .collect();
        Popularity { scores }
    }

    /// The per-item scores (index = item id).
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }

    /// A saved model's scores (see [`crate::snapshot`]).
    pub(crate) fn from_scores(scores: Vec<f32>) -> Popularity {
        Popularity { scores }
    }
}

impl Recommender for Popularity {
    fn fitted(&self) -> Option<crate::snapshot::Fitted<'_>> {
        Some(crate::snapshot::Fitted::Popularity(self))
    }

    fn n_items(&self) -> usize {
        self.scores.len()
    }

    /// The same scores for everyone, including users never seen in training:
    /// serving unknown users is what this baseline is for.
    fn score_items(&self, _user: u32) -> Result<Vec<f32>> {
        Ok(self.scores.clone())
    }
}
