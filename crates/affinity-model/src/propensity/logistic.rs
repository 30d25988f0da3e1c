//! Weighted, L2-regularized logistic regression on standardized features, fitted by damped
//! Newton steps (IRLS).
//!
//! With a dozen features the Hessian is tiny, so Newton converges in a handful of passes
//! over the data and needs no learning rate to tune. Each pass sums fixed blocks of rows in
//! parallel and adds the block sums in block order, so the fit is bit-identical whatever
//! the number of threads.

use rayon::prelude::*;

use crate::dense::cholesky_solve;

/// Rows per partial sum: fixed so the summation order does not depend on the thread count.
const BLOCK_ROWS: usize = 4096;
const MAX_ITERATIONS: usize = 50;
/// Converged when a Newton step would lower the objective (a mean log-loss) by less than this.
const DECREMENT_TOLERANCE: f64 = 1e-10;

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
        // Standardize once, with a leading 1 for the intercept: every pass is then plain
        // dot products.
        let n = d + 1;
        let mut z = vec![0f64; sample.rows.len() * n];
        for (j, zr) in z.chunks_exact_mut(n).enumerate() {
            zr[0] = 1.0;
            for (k, &x) in sample.row(j).iter().enumerate() {
                zr[k + 1] = (f64::from(x) - mean[k]) / std[k];
            }
        }
        let y: Vec<f64> = sample
            .rows
            .iter()
            .map(|&r| if sample.y[r as usize] { 1.0 } else { 0.0 })
            .collect();
        let data = Standardized {
            z: &z,
            n,
            y: &y,
            w: sample.w,
            total_w: sample.w.iter().sum(),
        };
        let pos_w: f64 = y.iter().zip(sample.w).map(|(y, w)| y * w).sum();
        // Start at the base rate: the right answer when features say nothing.
        let base = (pos_w / data.total_w).clamp(1e-9, 1.0 - 1e-9);
        let mut beta = vec![0f64; n];
        beta[0] = (base / (1.0 - base)).ln();
        let mut loss = data.objective(&beta, l2);
        for _ in 0..MAX_ITERATIONS {
            let (g, h) = data.gradient_hessian(&beta, l2);
            let Some(step) = cholesky_solve(h, g.clone(), n) else {
                break;
            };
            // Newton decrement: the predicted decrease of the objective. Below the tolerance
            // the fit is done (and rounding would make further line searches fail).
            let decrement: f64 = g.iter().zip(&step).map(|(a, b)| a * b).sum();
            if decrement.is_nan() || decrement <= DECREMENT_TOLERANCE {
                break;
            }
            // Backtracking (Armijo): a full Newton step can overshoot far from the optimum.
            let mut t = 1.0;
            let mut accepted = None;
            for _ in 0..20 {
                let candidate: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b - t * s).collect();
                let l = data.objective(&candidate, l2);
                if l <= loss - 1e-4 * t * decrement {
                    accepted = Some((candidate, l));
                    break;
                }
                t *= 0.5;
            }
            let Some((next, l)) = accepted else { break };
            beta = next;
            loss = l;
        }
        Logistic {
            mean,
            std,
            coef: beta[1..].to_vec(),
            intercept: beta[0],
        }
    }
}

/// The training rows standardized, row-major with the intercept's 1 first.
struct Standardized<'a> {
    z: &'a [f64],
    n: usize,
    y: &'a [f64],
    w: &'a [f64],
    total_w: f64,
}

impl Standardized<'_> {
    fn blocks(&self) -> Vec<(usize, usize)> {
        let rows = self.y.len();
        (0..rows.div_ceil(BLOCK_ROWS))
            .map(|b| (b * BLOCK_ROWS, ((b + 1) * BLOCK_ROWS).min(rows)))
            .collect()
    }

    fn log_odds(&self, j: usize, beta: &[f64]) -> f64 {
        let zr = &self.z[j * self.n..(j + 1) * self.n];
        zr.iter().zip(beta).map(|(a, b)| a * b).sum()
    }

    fn objective(&self, beta: &[f64], l2: f64) -> f64 {
        let partials: Vec<f64> = self
            .blocks()
            .into_par_iter()
            .map(|(a, b)| {
                (a..b)
                    .map(|j| {
                        let t = self.log_odds(j, beta);
                        self.w[j] * (softplus(t) - self.y[j] * t)
                    })
                    .sum::<f64>()
            })
            .collect();
        let data: f64 = partials.iter().sum();
        data / self.total_w + 0.5 * l2 * beta[1..].iter().map(|c| c * c).sum::<f64>()
    }

    /// Gradient and Hessian (row-major, `n²`) of the objective; index 0 is the intercept.
    fn gradient_hessian(&self, beta: &[f64], l2: f64) -> (Vec<f64>, Vec<f64>) {
        let n = self.n;
        let partials: Vec<(Vec<f64>, Vec<f64>)> = self
            .blocks()
            .into_par_iter()
            .map(|(a, b)| {
                let mut g = vec![0f64; n];
                let mut h = vec![0f64; n * n];
                for j in a..b {
                    let zr = &self.z[j * n..(j + 1) * n];
                    let p = sigmoid(self.log_odds(j, beta));
                    let r = self.w[j] * (p - self.y[j]);
                    let c = self.w[j] * p * (1.0 - p);
                    for (k, &zk) in zr.iter().enumerate() {
                        g[k] += r * zk;
                        let ck = c * zk;
                        let hk = &mut h[k * n..(k + 1) * n];
                        for (hkl, &zl) in hk[k..].iter_mut().zip(&zr[k..]) {
                            *hkl += ck * zl;
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
            g[a] /= self.total_w;
            for b in a..n {
                h[a * n + b] /= self.total_w;
                h[b * n + a] = h[a * n + b];
            }
        }
        for k in 1..n {
            g[k] += l2 * beta[k];
            h[k * n + k] += l2;
        }
        // The intercept is unpenalized; a whisper of ridge keeps the solve defined when
        // every label is equal.
        h[0] += 1e-12;
        (g, h)
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
