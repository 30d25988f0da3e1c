//! The trending baseline: popularity where each interaction counts less the older it is, so
//! items rising now outrank items that were popular long ago.

use crate::error::{ModelError, Result};
use crate::recommender::Recommender;
use crate::split::TimedEvent;

const DAY_MS: f64 = 86_400_000.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Trending {
    scores: Vec<f32>,
}

impl Trending {
    /// Scores items by Σ weight · 0.5^(age / half_life) over interactions up to `as_of`.
    pub fn fit(
        n_items: usize,
        events: &[TimedEvent],
        as_of: i64,
        half_life_days: f64,
    ) -> Result<Trending> {
        if !(half_life_days.is_finite() && half_life_days > 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "half_life_days",
                reason: format!("must be a positive number, got {half_life_days}"),
            });
        }
        let mut scores = vec![0f64; n_items];
        for &(_, item, weight, ts) in events {
            if ts > as_of {
                continue;
            }
            let slot = scores
                .get_mut(item as usize)
                .ok_or(ModelError::ItemOutOfRange { item, n_items })?;
            let age_days = (as_of - ts) as f64 / DAY_MS;
            *slot += f64::from(weight) * 0.5f64.powf(age_days / half_life_days);
        }
        Ok(Trending {
            scores: scores.into_iter().map(|s| s as f32).collect(),
        })
    }

    pub fn scores(&self) -> &[f32] {
        &self.scores
    }

    /// A saved model's scores (see [`crate::snapshot`]).
    pub(crate) fn from_scores(scores: Vec<f32>) -> Trending {
        Trending { scores }
    }
}

impl Recommender for Trending {
    fn fitted(&self) -> Option<crate::snapshot::Fitted<'_>> {
        Some(crate::snapshot::Fitted::Trending(self))
    }

    fn n_items(&self) -> usize {
        self.scores.len()
    }

    fn score_items(&self, _user: u32) -> Result<Vec<f32>> {
        Ok(self.scores.clone())
    }
}
