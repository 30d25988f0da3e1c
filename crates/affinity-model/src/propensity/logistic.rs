//! Weighted, L2-regularized logistic regression on standardized features, fitted by damped
//! Newton steps (IRLS).
//!
//! With a dozen features the Hessian is tiny, so Newton converges in a handful of passes
//! over the data and needs no learning rate to tune. Each pass sums fixed blocks of rows in
//! parallel and adds the block sums in block order, so the fit is bit-identical whatever
//! the number of threads.

use rayon::prelude::*;

/// Rows per partial sum: fixed so the summation order does not depend on the thread count.
const BLOCK_ROWS: usize = 4096;
const MAX_ITERATIONS: usize = 50;
/// Converged when no standardized coefficient moves more than this in a step.
const STEP_TOLERANCE: f64 = 1e-7;

/// The training rows: indices into a row-major feature matrix, with labels and weights.
pub(super) struct Sample<'a> {
    pub x: &'a [f32],
    pub d: usize,
    pub rows: &'a [u32],
    pub y: &'a [bool],
    pub w: &'a [f64],
}

impl Sample<'_> {
    fn row(&self, j: usize) -> &[f32] {
        let r = self.rows[j] as usize;
        &self.x[r * self.d..(r + 1) * self.d]
    }
}

/// A fitted model: `p = σ(b₀ + Σ β_k (x_k − μ_k) / σ_k)`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Logistic {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub coef: Vec<f64>,
    pub intercept: f64,
}

pub(super) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// log(1 + e^z) without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

impl Logistic {
    pub(super) fn log_odds(&self, row: &[f32]) -> f64 {
        let terms = self.coef.iter().zip(&self.mean).zip(&self.std).zip(row);
        terms.fold(self.intercept, |z, (((c, m), s), &x)| {
            z + c * (f64::from(x) - m) / s
        })
    }

    pub(super) fn predict(&self, row: &[f32]) -> f64 {
        sigmoid(self.log_odds(row))
    }

    /// Minimizes `(1/W) Σ w·logloss + (l2/2)|β|²` (the intercept is not penalized).
    pub(super) fn fit(sample: &Sample<'_>, l2: f64) -> Logistic {
        let d = sample.d;
        let (mean, std) = standardization(sample);
        let total_w: f64 = sample.w.iter().sum();
        let pos_w: f64 = (0..sample.rows.len())
            .filter(|&j| sample.y[sample.rows[j] as usize])
            .map(|j| sample.w[j])
            .sum();
        // Start at the base rate: the right answer when features say nothing.
        let base = (pos_w / total_w).clamp(1e-9, 1.0 - 1e-9);
        let mut model = Logistic {
            mean,
            std,
            coef: vec![0.0; d],
            intercept: (base / (1.0 - base)).ln(),
        };
        let mut loss = objective(sample, &model, l2, total_w);
        for _ in 0..MAX_ITERATIONS {
            let (g, h) = gradient_hessian(sample, &model, l2, total_w);
            let Some(step) = cholesky_solve(h, g, d + 1) else {
                break;
            };
            // Backtracking: a full Newton step can overshoot far from the optimum.
            let mut t = 1.0;
            let mut accepted = None;
            for _ in 0..30 {
                let candidate = Logistic {
                    intercept: model.intercept - t * step[0],
                    coef: (0..d).map(|k| model.coef[k] - t * step[k + 1]).collect(),
                    ..model.clone()
                };
                let l = objective(sample, &candidate, l2, total_w);
                if l <= loss {
                    accepted = Some((candidate, l));
                    break;
                }
                t *= 0.5;
            }
            let Some((next, l)) = accepted else { break };
            let moved = step.iter().fold(0f64, |m, s| m.max((t * s).abs()));
            model = next;
            loss = l;
            if moved < STEP_TOLERANCE {
                break;
            }
        }
        model
    }
}

/// Weighted mean and standard deviation of each feature over the sample. A constant feature
/// gets std 1 so it standardizes to 0 (its coefficient then stays 0 under the L2 penalty).
fn standardization(sample: &Sample<'_>) -> (Vec<f64>, Vec<f64>) {
    let d = sample.d;
    let mut sw = 0f64;
    let mut s1 = vec![0f64; d];
    for j in 0..sample.rows.len() {
        let w = sample.w[j];
        sw += w;
        for (k, &x) in sample.row(j).iter().enumerate() {
            s1[k] += w * f64::from(x);
        }
    }
    let mean: Vec<f64> = s1.iter().map(|s| s / sw.max(f64::MIN_POSITIVE)).collect();
    let mut s2 = vec![0f64; d];
    for j in 0..sample.rows.len() {
        let w = sample.w[j];
        for (k, &x) in sample.row(j).iter().enumerate() {
            let c = f64::from(x) - mean[k];
            s2[k] += w * c * c;
        }
    }
    let std = s2
        .iter()
        .map(|s| {
            let v = (s / sw.max(f64::MIN_POSITIVE)).sqrt();
            if v > 1e-12 { v } else { 1.0 }
        })
        .collect();
    (mean, std)
}

fn block_ranges(n: usize) -> Vec<(usize, usize)> {
    (0..n.div_ceil(BLOCK_ROWS))
        .map(|b| (b * BLOCK_ROWS, ((b + 1) * BLOCK_ROWS).min(n)))
        .collect()
}

fn objective(sample: &Sample<'_>, m: &Logistic, l2: f64, total_w: f64) -> f64 {
    let partials: Vec<f64> = block_ranges(sample.rows.len())
        .into_par_iter()
        .map(|(a, b)| {
            let mut s = 0f64;
            for j in a..b {
                let z = m.log_odds(sample.row(j));
                let y = if sample.y[sample.rows[j] as usize] {
                    1.0
                } else {
                    0.0
                };
                s += sample.w[j] * (softplus(z) - y * z);
            }
            s
        })
        .collect();
    let data: f64 = partials.iter().sum();
    data / total_w + 0.5 * l2 * m.coef.iter().map(|c| c * c).sum::<f64>()
}

/// Gradient and Hessian (row-major, `(d+1)²`) of the objective; index 0 is the intercept.
fn gradient_hessian(
    sample: &Sample<'_>,
    m: &Logistic,
    l2: f64,
    total_w: f64,
) -> (Vec<f64>, Vec<f64>) {
    let n = sample.d + 1;
    let partials: Vec<(Vec<f64>, Vec<f64>)> = block_ranges(sample.rows.len())
        .into_par_iter()
        .map(|(a, b)| {
            let mut g = vec![0f64; n];
            let mut h = vec![0f64; n * n];
            let mut z = vec![0f64; n];
            for j in a..b {
                let row = sample.row(j);
                z[0] = 1.0;
                for k in 0..sample.d {
                    z[k + 1] = (f64::from(row[k]) - m.mean[k]) / m.std[k];
                }
                let p = m.predict(row);
                let y = if sample.y[sample.rows[j] as usize] {
                    1.0
                } else {
                    0.0
                };
                let w = sample.w[j];
                let r = w * (p - y);
                let c = w * p * (1.0 - p);
                for a in 0..n {
                    g[a] += r * z[a];
                    let ca = c * z[a];
                    for b in a..n {
                        h[a * n + b] += ca * z[b];
                    }
                }
            }
            (g, h)
        })
        .collect();
    let mut g = vec![0f64; n];
    let mut h = vec![0f64; n * n];
    for (pg, ph) in &partials {
        for (x, y) in g.iter_mut().zip(pg) {
            *x += y;
        }
        for (x, y) in h.iter_mut().zip(ph) {
            *x += y;
        }
    }
    for a in 0..n {
        g[a] /= total_w;
        for b in a..n {
            h[a * n + b] /= total_w;
            h[b * n + a] = h[a * n + b];
        }
    }
    for k in 1..n {
        g[k] += l2 * m.coef[k - 1];
        h[k * n + k] += l2;
    }
    // The intercept is unpenalized; a whisper of ridge keeps the solve defined when every
    // label is equal.
    h[0] += 1e-12;
    (g, h)
}

/// Solves `A x = b` for a small symmetric positive definite `A`; `None` if it is not.
fn cholesky_solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    for k in 0..n {
        let d = a[k * n + k] - (0..k).map(|j| a[k * n + j] * a[k * n + j]).sum::<f64>();
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let d = d.sqrt();
        a[k * n + k] = d;
        for i in k + 1..n {
            let s: f64 = (0..k).map(|j| a[i * n + j] * a[k * n + j]).sum();
            a[i * n + k] = (a[i * n + k] - s) / d;
        }
    }
    for i in 0..n {
        let s: f64 = (0..i).map(|j| a[i * n + j] * b[j]).sum();
        b[i] = (b[i] - s) / a[i * n + i];
    }
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|j| a[j * n + i] * b[j]).sum();
        b[i] = (b[i] - s) / a[i * n + i];
    }
    Some(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn recovers_the_coefficients_of_a_known_model() {
        // x ~ a fixed grid; y = 1 exactly where the true probability σ(−1 + 2x) exceeds a
        // deterministic pseudo-random threshold, so the data follows that model.
        let n = 20_000;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 / n as f32) * 4.0 - 2.0).collect();
        let y: Vec<bool> = (0..n)
            .map(|i| {
                let u = ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64
                    / (1u64 << 53) as f64;
                u < sigmoid(-1.0 + 2.0 * f64::from(x[i]))
            })
            .collect();
        let rows: Vec<u32> = (0..n as u32).collect();
        let w = vec![1.0; n];
        let m = Logistic::fit(
            &Sample {
                x: &x,
                d: 1,
                rows: &rows,
                y: &y,
                w: &w,
            },
            1e-9,
        );
        // Back to the raw scale: β_raw = β / σ, b_raw = b − β μ / σ.
        let slope = m.coef[0] / m.std[0];
        let intercept = m.intercept - m.coef[0] * m.mean[0] / m.std[0];
        assert!((slope - 2.0).abs() < 0.15, "slope {slope}");
        assert!((intercept + 1.0).abs() < 0.15, "intercept {intercept}");
    }
}
