//! A weighted mix of two or more models' scores.
//!
//! Models that see different signals (EASE's item-item weights, ALS's low-rank taste) make
//! different mistakes, so their mix often ranks better than either. Raw scores live on
//! unrelated scales, so each model's scores are standardized per user (zero mean, unit
//! variance over the catalogue) before weighting: the weights, not the scales, decide.

use std::sync::Arc;

use crate::error::{ModelError, Result};
use crate::recommender::Recommender;

pub struct Blend {
    parts: Vec<(f32, Arc<dyn Recommender + Send>)>,
    n_items: usize,
}

impl Blend {
    /// Errors when there are no parts, a weight is not finite and positive, or the parts
    /// score different numbers of items.
    pub fn new(parts: Vec<(f32, Arc<dyn Recommender + Send>)>) -> Result<Blend> {
        let n_items = parts.first().map_or(0, |(_, m)| m.n_items());
        if parts.is_empty() {
            return Err(ModelError::InvalidParameter {
                name: "parts",
                reason: "a blend needs at least one model".to_string(),
            });
        }
        if let Some((w, _)) = parts.iter().find(|(w, _)| !(w.is_finite() && *w > 0.0)) {
            return Err(ModelError::InvalidParameter {
                name: "weight",
                reason: format!("must be finite and > 0, got {w}"),
            });
        }
        if let Some((_, m)) = parts.iter().find(|(_, m)| m.n_items() != n_items) {
            return Err(ModelError::DimensionMismatch {
                what: "items scored by the blended models",
                expected: n_items,
                got: m.n_items(),
            });
        }
        Ok(Blend { parts, n_items })
    }
}

impl Recommender for Blend {
    fn n_items(&self) -> usize {
        self.n_items
    }

    fn score_items(&self, user: u32) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.n_items];
        for (weight, model) in &self.parts {
            let scores = model.score_items(user)?;
            // Non-finite scores (a model's way of ruling an item out) stay ruled out.
            let finite = scores.iter().filter(|s| s.is_finite());
            let n = finite.clone().count().max(1) as f64;
            let mean = finite.clone().map(|&s| f64::from(s)).sum::<f64>() / n;
            let var = finite.map(|&s| (f64::from(s) - mean).powi(2)).sum::<f64>() / n;
            // A constant score vector (a user with no signal) contributes nothing.
            let scale = if var > 0.0 {
                *weight as f64 / var.sqrt()
            } else {
                0.0
            };
            for (o, &s) in out.iter_mut().zip(&scores) {
                *o += if s.is_finite() {
                    ((f64::from(s) - mean) * scale) as f32
                } else {
                    f32::NEG_INFINITY
                };
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    /// A model that gives every user the same fixed scores.
    struct Fixed(Vec<f32>);

    impl Recommender for Fixed {
        fn n_items(&self) -> usize {
            self.0.len()
        }
        fn score_items(&self, _: u32) -> Result<Vec<f32>> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn scales_do_not_matter_weights_do() {
        // Same order information at scales 1 and 1000: standardized, they are equal, so
        // a 3:1 weighting follows the heavier model wherever they disagree.
        let a = Fixed(vec![1.0, 2.0, 3.0, 4.0]);
        let b = Fixed(vec![4000.0, 3000.0, 2000.0, 1000.0]);
        let blend = Blend::new(vec![(3.0, Arc::new(a)), (1.0, Arc::new(b))]).unwrap();
        let s = blend.score_items(0).unwrap();
        assert!(s[3] > s[2] && s[2] > s[1] && s[1] > s[0], "{s:?}");
        let even = Blend::new(vec![
            (1.0, Arc::new(Fixed(vec![1.0, 2.0, 3.0]))),
            (1.0, Arc::new(Fixed(vec![3000.0, 2000.0, 1000.0]))),
        ])
        .unwrap();
        assert!(even.score_items(0).unwrap().iter().all(|x| x.abs() < 1e-5));
        // Ruled-out items stay ruled out.
        let ruled = Blend::new(vec![
            (1.0, Arc::new(Fixed(vec![1.0, f32::NEG_INFINITY, 3.0]))),
            (1.0, Arc::new(Fixed(vec![1.0, 2.0, 3.0]))),
        ])
        .unwrap();
        assert_eq!(ruled.score_items(0).unwrap()[1], f32::NEG_INFINITY);
        assert!(Blend::new(vec![(0.0, Arc::new(Fixed(vec![1.0])))]).is_err());
        assert!(
            Blend::new(vec![
                (1.0, Arc::new(Fixed(vec![1.0]))),
                (1.0, Arc::new(Fixed(vec![1.0, 2.0])))
            ])
            .is_err()
        );
    }
}
