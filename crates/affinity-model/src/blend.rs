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

    /// The weighted parts, for saving.
    pub(crate) fn parts(&self) -> &[(f32, Arc<dyn Recommender + Send>)] {
        &self.parts
    }
}

/// Users blended together: each part scores them as one batch (ALS's batched kernel), and
/// their rows (32 × items × 4 B per part: 12.8 MB at 100k items) stay bounded.
const USERS_PER_PASS: usize = 32;

impl Recommender for Blend {
    fn fitted(&self) -> Option<crate::snapshot::Fitted<'_>> {
        Some(crate::snapshot::Fitted::Blend(self))
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn score_items(&self, user: u32) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.n_items);
        self.score_users_with(&[user], &mut |_, _, scores| out.extend_from_slice(scores))?;
        Ok(out)
    }

    /// Each part scores a pass of users through its own batched path; their rows are then
    /// standardized and summed. Single users take the same code, so the same numbers.
    fn score_users_with(
        &self,
        users: &[u32],
        sink: &mut dyn FnMut(usize, usize, &[f32]),
    ) -> Result<()> {
        let n = self.n_items;
        let rows = USERS_PER_PASS.min(users.len());
        let mut part = vec![0f32; rows * n];
        let mut out = vec![0f32; rows * n];
        for (pass, chunk) in users.chunks(USERS_PER_PASS).enumerate() {
            out[..chunk.len() * n].fill(0.0);
            for (weight, model) in &self.parts {
                model.score_users_with(chunk, &mut |row, start, scores| {
                    part[row * n + start..row * n + start + scores.len()].copy_from_slice(scores)
                })?;
                for (o, p) in out
                    .chunks_exact_mut(n)
                    .zip(part.chunks_exact(n))
                    .take(chunk.len())
                {
                    add_standardized(o, p, *weight);
                }
            }
            for (row, o) in out.chunks_exact(n).take(chunk.len()).enumerate() {
                sink(pass * USERS_PER_PASS + row, 0, o);
            }
        }
        Ok(())
    }
}

/// `out += weight · (scores − mean) / std`, over the finite scores; non-finite ones (a model's
/// way of ruling an item out) make the item −∞. A constant row (a user with no signal)
/// contributes nothing.
fn add_standardized(out: &mut [f32], scores: &[f32], weight: f32) {
    let (mean, var) = moments(scores);
    let scale = if var > 0.0 {
        f64::from(weight) / var.sqrt()
    } else {
        0.0
    };
    let (mean, scale) = (mean as f32, scale as f32);
    for (o, &s) in out.iter_mut().zip(scores) {
        *o += if s.is_finite() {
            (s - mean) * scale
        } else {
            f32::NEG_INFINITY
        };
    }
}

/// Mean and variance of the finite values, in one pass with independent lanes (so it
/// vectorizes; the lanes are summed in a fixed order, so the result is reproducible).
fn moments(scores: &[f32]) -> (f64, f64) {
    const LANES: usize = 8;
    let (mut sum, mut squares, mut count) = ([0f64; LANES], [0f64; LANES], [0f64; LANES]);
    let chunks = scores.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for l in 0..LANES {
            let s = chunk[l];
            let (v, c) = if s.is_finite() {
                (f64::from(s), 1.0)
            } else {
                (0.0, 0.0)
            };
            sum[l] += v;
            squares[l] += v * v;
            count[l] += c;
        }
    }
    for &s in tail.iter().filter(|s| s.is_finite()) {
        sum[0] += f64::from(s);
        squares[0] += f64::from(s) * f64::from(s);
        count[0] += 1.0;
    }
    let n = count.iter().sum::<f64>().max(1.0);
    let mean = sum.iter().sum::<f64>() / n;
    let var = (squares.iter().sum::<f64>() / n - mean * mean).max(0.0);
    (mean, var)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    use crate::recommender::Fixed;

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
