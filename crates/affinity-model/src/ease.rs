//! EASE: an item-item linear model with a closed-form solution (Steck 2019,
//! "Embarrassingly Shallow Autoencoders for Sparse Data").
//!
//! The model learns an `n_items × n_items` weight matrix B minimizing
//! `|X − XB|² + λ|B|²` subject to `diag(B) = 0`, where X is the user × item
//! matrix. The solution is
//!
//! ```text
//!   P = (XᵀX + λI)⁻¹,   B = I − P · diag(1 / diag(P))   (so B_ij = −P_ij / P_jj, B_ii = 0)
//! ```
//!
//! and a user's scores are `x_u · B`. The only real work is the dense inverse
//! of the (symmetric positive-definite) regularized Gram matrix, which this
//! module does itself rather than pulling in a linear-algebra crate: a blocked
//! Cholesky factorization `A = LLᵀ`, then `U = L⁻ᵀ`, then `P = UUᵀ`, about n³
//! flops in total. All three steps are written as dot products of contiguous
//! row segments (row-major storage), computed 4 × 4 at a time by one register
//! tile kernel, and parallelized with rayon over fixed row chunks.
//!
//! Memory is the limit: B alone takes `n_items² · 4` bytes and the fit briefly
//! holds two such matrices, so [`EaseParams::max_items`] refuses large
//! catalogues up front ([`ModelError::TooManyItems`]).
//!
//! Determinism: every output element is computed by exactly one task with a
//! fixed formula (the chunking is by constants, not by the thread count), so
//! results are bit-identical for any number of threads.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cpu::{self, Isa};
use crate::dense::{cholesky_lower, dot, fmadd};
use crate::error::{ModelError, Result};
use crate::interactions::{Csr, Interactions};
use crate::low_pass::low_pass_weights;
use crate::recommender::{Recommender, check_user};

/// Hyper-parameters of [`EaseModel::fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EaseParams {
    /// λ, the L2 penalty added to the Gram matrix's diagonal. It has the scale
    /// of item counts: larger values shrink rare items' weights harder.
    pub lambda: f32,
    /// Refuse catalogues larger than this (the dense matrices grow as n²).
    pub max_items: usize,
    /// Rank of the ideal low-pass filter of the normalized item graph added to the weights
    /// (see [`crate::low_pass`]); 0: plain EASE.
    pub low_pass_rank: usize,
    /// The filter's weight, relative to EASE's own score scale: the filter is scaled so that
    /// its scores have the same root mean square as EASE's over (a sample of) the training
    /// users, then multiplied by this.
    pub low_pass_weight: f32,
}

impl Default for EaseParams {
    fn default() -> Self {
        EaseParams {
            // Validation on MovieLens 100K (bench/movielens.sh) picks 200–500
            // depending on the split; the penalty competes with co-occurrence
            // counts, so data with more users per item wants a larger λ.
            lambda: 500.0,
            max_items: 10_000,
            low_pass_rank: 0,
            // MovieLens 100K validation (RecBole's protocol, rank 64): 0.15 and 0.25 alike,
            // 0.5 and above worse.
            low_pass_weight: 0.25,
        }
    }
}

impl EaseParams {
    pub fn validate(&self) -> Result<()> {
        if !(self.lambda.is_finite() && self.lambda > 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "lambda",
                reason: "must be finite and > 0".to_string(),
            });
        }
        if !(self.low_pass_weight.is_finite() && self.low_pass_weight >= 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "low_pass_weight",
                reason: "must be finite and >= 0".to_string(),
            });
        }
        Ok(())
    }
}

/// A fitted EASE model: the dense item-item weights plus each user's training
/// row (scoring is `x_u · B`, so the model needs the user's history).
#[derive(Debug, Clone, PartialEq)]
pub struct EaseModel {
    n_items: usize,
    /// B, row-major `n_items × n_items`, zero diagonal.
    weights: Vec<f32>,
    /// The training rows of each user, the history their scores are built from.
    users: Csr,
}

impl EaseModel {
    /// Fits EASE on `data` (weights are used as the entries of X).
    ///
    /// Runs on the current rayon pool; wrap the call in `pool.install(..)` to
    /// choose the thread count.
    pub fn fit(data: &Interactions, params: &EaseParams) -> Result<EaseModel> {
        params.validate()?;
        let n = data.n_items();
        if n > params.max_items {
            return Err(ModelError::TooManyItems {
                n_items: n,
                max_items: params.max_items,
            });
        }
        let mut gram = gram_matrix(data, None);
        for i in 0..n {
            gram[i * n + i] += params.lambda;
        }
        cholesky_in_place(&mut gram, n)?;
        let u = inverse_transposed_factor(&gram, n);
        drop(gram);
        let mut weights = ease_weights(&u, n);
        drop(u);
        if params.low_pass_rank > 0 && params.low_pass_weight > 0.0 {
            let filter = low_pass_weights(data, params.low_pass_rank);
            let users = data.user_rows();
            let scale = relative_scale(&users, &weights, &filter, n);
            let c = params.low_pass_weight * scale;
            weights
                .par_iter_mut()
                .zip(filter.par_iter())
                .for_each(|(b, f)| *b += c * f);
            return Ok(EaseModel {
                n_items: n,
                weights,
                users,
            });
        }

        Ok(EaseModel {
            n_items: n,
            weights,
            users: data.user_rows(),
        })
    }

    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    /// B, row-major `n_items × n_items`: `B[i * n_items + j]` is how much
    /// having item i raises item j's score. The diagonal is zero.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }
}

impl EaseModel {
    /// `(n_items, weights, users)`, for saving.
    pub(crate) fn raw(&self) -> (usize, &[f32], &Csr) {
        (self.n_items, &self.weights, &self.users)
    }

    pub(crate) fn from_raw(
        n_items: usize,
        weights: Vec<f32>,
        users: Csr,
    ) -> std::result::Result<EaseModel, String> {
        if Some(weights.len()) != n_items.checked_mul(n_items) {
            return Err("EASE weights are not n_items × n_items".to_string());
        }
        Ok(EaseModel {
            n_items,
            weights,
            users,
        })
    }
}

impl Recommender for EaseModel {
    fn fitted(&self) -> Option<crate::snapshot::Fitted<'_>> {
        Some(crate::snapshot::Fitted::Ease(self))
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    /// `x_u · B`: the weighted sum of B's rows for the user's training items.
    /// Errors for a user outside the training matrix; a user without training
    /// interactions scores 0 everywhere.
    fn score_items(&self, user: u32) -> Result<Vec<f32>> {
        let u = check_user(user, self.n_users())?;
        let n = self.n_items;
        let history = self.users.row(u);
        let mut scores = vec![0f32; n];
        cpu::fast(
            #[inline(always)]
            |isa| {
                for (&i, &w) in history.ids.iter().zip(history.weights) {
                    let row = &self.weights[i as usize * n..(i as usize + 1) * n];
                    for (s, b) in scores.iter_mut().zip(row) {
                        *s = fmadd(isa, w, *b, *s);
                    }
                }
            },
        );
        Ok(scores)
    }
}

/// Users sampled (evenly spaced) to compare two item-item matrices' score scales.
const SCALE_USERS: usize = 512;

/// `rms(x_u · B) / rms(x_u · W)` over an evenly spaced sample of at most [`SCALE_USERS`]
/// users with history (1 when W scores nothing): what makes W's scores as large as B's.
fn relative_scale(users: &Csr, b: &[f32], w: &[f32], n: usize) -> f32 {
    let with_history: Vec<usize> = (0..users.len())
        .filter(|&u| !users.row(u).ids.is_empty())
        .collect();
    let step = with_history.len().div_ceil(SCALE_USERS).max(1);
    // Per-user sums in parallel, added up in user order: the same total for any thread count.
    let sums: Vec<(f64, f64)> = with_history
        .par_iter()
        .step_by(step)
        .map(|&u| {
            let row = users.row(u);
            let score = |m: &[f32]| -> f64 {
                let mut s = vec![0f32; n];
                for (&i, &x) in row.ids.iter().zip(row.weights) {
                    for (s, v) in s.iter_mut().zip(&m[i as usize * n..(i as usize + 1) * n]) {
                        *s += x * v;
                    }
                }
                s.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
            };
            (score(b), score(w))
        })
        .collect();
    let (sum_b, sum_w) = sums.iter().fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    if sum_w > 0.0 {
        (sum_b / sum_w).sqrt() as f32
    } else {
        1.0
    }
}

/// Rows per rayon task in the parallel passes. A constant, so the work split,
/// and with it every rounding, is independent of the thread count.
const TASK_ROWS: usize = 16;

/// Columns per Cholesky panel.
const PANEL: usize = 64;

/// Dense XᵀX (row-major, both triangles), from the sparse co-occurrences:
/// row i sums `w_ui · x_u` over i's users, in ascending user order; with `user_scale`,
/// each user's row is weighted by it (`Xᵀ D X`, the low-pass filter's graph).
pub(crate) fn gram_matrix(data: &Interactions, user_scale: Option<&[f32]>) -> Vec<f32> {
    let n = data.n_items();
    let mut gram = vec![0f32; n * n];
    gram.par_chunks_mut(n.max(1) * TASK_ROWS)
        .enumerate()
        .for_each(|(task, rows)| {
            cpu::fast(
                #[inline(always)]
                |isa| {
                    for (k, out) in rows.chunks_exact_mut(n).enumerate() {
                        let item = task * TASK_ROWS + k;
                        for (user, w_ui) in data.item_row(item).iter() {
                            let c = match user_scale {
                                Some(scale) => w_ui * scale[user as usize],
                                None => w_ui,
                            };
                            for (j, w_uj) in data.user_row(user as usize).iter() {
                                out[j as usize] = fmadd(isa, c, w_uj, out[j as usize]);
                            }
                        }
                    }
                },
            )
        });
    gram
}

/// Accumulator width of [`dots`]: one 256-bit register (compilers targeting
/// AVX-512 parts still prefer 256-bit vectors for FMA-heavy code).
const LANES: usize = 8;
// The reduction at the end of `dots` is written out for exactly 8 lanes.
const _: () = assert!(LANES == 8);

/// All R × S dot products `x[r] · y[s]` (all slices of one length), computed
/// together so each loaded chunk is reused R or S times from registers.
///
/// Each product is accumulated the same way whatever R and S are (LANES
/// partial sums, a fixed reduction, then the tail), so tile shape never changes
/// a result.
#[inline(always)]
fn dots<const R: usize, const S: usize>(isa: Isa, x: [&[f32]; R], y: [&[f32]; S]) -> [[f32; S]; R] {
    let len = x.first().map_or(0, |s| s.len());
    let body = len - len % LANES;
    let mut acc = [[[0f32; LANES]; S]; R];
    let mut o = 0;
    while o < body {
        let xv: [[f32; LANES]; R] = std::array::from_fn(|r| chunk(x[r], o));
        let yv: [[f32; LANES]; S] = std::array::from_fn(|s| chunk(y[s], o));
        // The lane loop lives in its own function so it becomes one vector
        // FMA; a single R·S·LANES loop nest is too long for LLVM to unroll
        // fully, and then the accumulators get spilled to memory.
        for (acc_r, xr) in acc.iter_mut().zip(&xv) {
            for (acc_rs, ys) in acc_r.iter_mut().zip(&yv) {
                fma_lanes(isa, acc_rs, xr, ys);
            }
        }
        o += LANES;
    }
    // Reduce the lanes before touching the tail: a reduction with only
    // constant indices lets LLVM keep `acc` in registers through the loop
    // (otherwise it stores every accumulator on every iteration).
    let mut out = acc
        .map(|row| row.map(|a| ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))));
    if body < len {
        for (out_r, xr) in out.iter_mut().zip(&x) {
            for (out_rs, ys) in out_r.iter_mut().zip(&y) {
                let mut tail = 0f32;
                for t in body..len {
                    tail = fmadd(isa, xr[t], ys[t], tail);
                }
                *out_rs += tail;
            }
        }
    }
    out
}

#[inline(always)]
fn fma_lanes(isa: Isa, acc: &mut [f32; LANES], a: &[f32; LANES], b: &[f32; LANES]) {
    for l in 0..LANES {
        acc[l] = fmadd(isa, a[l], b[l], acc[l]);
    }
}

#[inline(always)]
fn chunk(s: &[f32], o: usize) -> [f32; LANES] {
    let mut v = [0f32; LANES];
    v.copy_from_slice(&s[o..o + LANES]);
    v
}

/// Lower Cholesky factor of the symmetric positive-definite row-major `n × n`
/// matrix `a`, written over its lower triangle (the strict upper triangle is
/// left as it was and must be ignored).
///
/// Left-looking by panels of [`PANEL`] columns: a panel's columns first get
/// the contributions of all earlier columns (row `r` · row `c` over the
/// columns already factored, which are contiguous in row-major storage), then
/// its diagonal block is factored (by the crate's one unblocked Cholesky,
/// [`cholesky_lower`]), then the rows below are solved against it.
/// The rows below the diagonal block are independent, hence the parallelism.
fn cholesky_in_place(a: &mut [f32], n: usize) -> Result<()> {
    let mut panel = Vec::new();
    let mut diag = Vec::new();
    for kb in (0..n).step_by(PANEL) {
        let ke = (kb + PANEL).min(n);
        let w = ke - kb;
        // The panel's rows restricted to the factored columns 0..kb, copied
        // out so the row updates below can borrow `a` mutably.
        panel.clear();
        for c in kb..ke {
            panel.extend_from_slice(&a[c * n..c * n + kb]);
        }
        let panel_row = |c: usize| &panel[(c - kb) * kb..(c - kb + 1) * kb];

        // Diagonal block: update, then factor it (small, sequential).
        let (_, below) = a.split_at_mut(kb * n);
        let (block, rest) = below.split_at_mut(w * n);
        cpu::fast(
            #[inline(always)]
            |isa| {
                update_rows(isa, block, n, kb, ke, kb, &panel_row);
                cholesky_lower(isa, &mut block[kb..], w, n)
            },
        )
        .map_err(|e| ModelError::NotPositiveDefinite {
            pivot: kb + e.pivot,
            value: e.value,
        })?;
        diag.clear();
        for r in 0..w {
            diag.extend_from_slice(&block[r * n + kb..r * n + ke]);
        }

        // Rows below: update with the earlier columns, then solve
        // x · L_kkᵀ = a_r[kb..ke] by forward substitution.
        rest.par_chunks_mut(n * TASK_ROWS)
            .enumerate()
            .for_each(|(task, rows)| {
                cpu::fast(
                    #[inline(always)]
                    |isa| {
                        let first = ke + task * TASK_ROWS;
                        update_rows(isa, rows, n, kb, ke, first, &panel_row);
                        for row in rows.chunks_exact_mut(n) {
                            let x = &mut row[kb..ke];
                            for c in 0..w {
                                let l = &diag[c * w..c * w + c];
                                x[c] = (x[c] - dot(isa, &x[..c], l)) / diag[c * w + c];
                            }
                        }
                    },
                )
            });
    }
    Ok(())
}

/// `rows[r][kb..ke] -= rows[r][..kb] · panel_row(c)` for c in kb..ke, on
/// whole rows of `a` whose first global row index is `first`; entries above
/// the diagonal (c > global row) are left alone.
#[inline(always)]
fn update_rows<'p>(
    isa: Isa,
    rows: &mut [f32],
    n: usize,
    kb: usize,
    ke: usize,
    first: usize,
    panel_row: &impl Fn(usize) -> &'p [f32],
) {
    if kb == 0 {
        return;
    }
    let n_rows = rows.len() / n;
    for r0 in (0..n_rows).step_by(4) {
        let rn = (n_rows - r0).min(4);
        for c0 in (kb..ke).step_by(4) {
            let cn = (ke - c0).min(4);
            let mut t = [[0f32; 4]; 4];
            // Full 4 × 4 tiles take the register kernel; edges go one by one
            // (same arithmetic per product, see `dots`).
            if rn == 4 && cn == 4 {
                let x = std::array::from_fn(|i| &rows[(r0 + i) * n..(r0 + i) * n + kb]);
                let y = std::array::from_fn(|j| panel_row(c0 + j));
                t = dots::<4, 4>(isa, x, y);
            } else {
                for (i, ti) in t.iter_mut().enumerate().take(rn) {
                    for (j, tij) in ti.iter_mut().enumerate().take(cn) {
                        let x = &rows[(r0 + i) * n..(r0 + i) * n + kb];
                        *tij = dots::<1, 1>(isa, [x], [panel_row(c0 + j)])[0][0];
                    }
                }
            }
            for (i, ti) in t.iter().enumerate().take(rn) {
                for (j, tij) in ti.iter().enumerate().take(cn) {
                    if c0 + j <= first + r0 + i {
                        rows[(r0 + i) * n + c0 + j] -= tij;
                    }
                }
            }
        }
    }
}

/// `U = L⁻ᵀ` (upper triangular, row-major) from the Cholesky factor in the
/// lower triangle of `l`.
///
/// Row s of U is column s of L⁻¹, i.e. the solution of `L y = e_s`, so
/// `U[s][r] = (δ_rs − Σ_{r' < r} L[r][r'] U[s][r']) / L[r][r]` for r ≥ s. Each
/// task owns [`TASK_ROWS`] rows of U and walks r in blocks of [`PANEL`]: the
/// part of the sum over earlier blocks is a tile of row-by-row dot products,
/// the part inside the current block is done sequentially.
fn inverse_transposed_factor(l: &[f32], n: usize) -> Vec<f32> {
    let mut u = vec![0f32; n * n];
    u.par_chunks_mut(n.max(1) * TASK_ROWS)
        .enumerate()
        .for_each(|(task, rows)| {
            cpu::fast(
                #[inline(always)]
                |isa| {
                    let s0 = task * TASK_ROWS;
                    let n_rows = rows.len() / n;
                    let mut t = vec![0f32; PANEL * TASK_ROWS];
                    for ib in (s0..n).step_by(PANEL) {
                        let ie = (ib + PANEL).min(n);
                        // t[r − ib][s] = Σ_{r' ∈ [s0, ib)} L[r][r'] U[s][r'] (zeros
                        // of U below its diagonal make the lower bound s0 exact).
                        t.fill(0.0);
                        if ib > s0 {
                            for r0 in (ib..ie).step_by(4) {
                                for q0 in (0..n_rows).step_by(4) {
                                    let (rn, qn) = ((ie - r0).min(4), (n_rows - q0).min(4));
                                    let x = |i: usize| &l[(r0 + i) * n + s0..(r0 + i) * n + ib];
                                    let y = |j: usize| &rows[(q0 + j) * n + s0..(q0 + j) * n + ib];
                                    if rn == 4 && qn == 4 {
                                        let d = dots::<4, 4>(
                                            isa,
                                            std::array::from_fn(x),
                                            std::array::from_fn(y),
                                        );
                                        for (i, di) in d.iter().enumerate() {
                                            for (j, dij) in di.iter().enumerate() {
                                                t[(r0 + i - ib) * TASK_ROWS + q0 + j] = *dij;
                                            }
                                        }
                                    } else {
                                        for i in 0..rn {
                                            for j in 0..qn {
                                                t[(r0 + i - ib) * TASK_ROWS + q0 + j] =
                                                    dots::<1, 1>(isa, [x(i)], [y(j)])[0][0];
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        for r in ib..ie {
                            let l_r = &l[r * n + ib..r * n + r];
                            let pivot = l[r * n + r];
                            for (q, row) in rows.chunks_exact_mut(n).enumerate() {
                                let s = s0 + q;
                                if r < s {
                                    continue; // U is upper triangular: stays 0
                                }
                                let delta = if r == s { 1.0 } else { 0.0 };
                                let inner = dot(isa, l_r, &row[ib..r]);
                                row[r] = (delta - t[(r - ib) * TASK_ROWS + q] - inner) / pivot;
                            }
                        }
                    }
                },
            )
        });
    u
}

/// B from `U = L⁻ᵀ`: first `P = UUᵀ` (upper triangle, tile by tile, each
/// product over the columns where both rows can be non-zero), then
/// `B_ij = −P_ij / P_jj` with a zero diagonal, filling both triangles.
fn ease_weights(u: &[f32], n: usize) -> Vec<f32> {
    let mut p = vec![0f32; n * n];
    p.par_chunks_mut(n.max(1) * TASK_ROWS)
        .enumerate()
        .for_each(|(task, rows)| {
            cpu::fast(
                #[inline(always)]
                |isa| {
                    let a0 = task * TASK_ROWS;
                    let n_rows = rows.len() / n;
                    // Column tiles outside, row tiles inside: the four rows of U a
                    // column tile reads are then reused by all of this task's row
                    // tiles while in cache, instead of streaming U once per row tile.
                    for b0 in (a0..n).step_by(4) {
                        let bn = (n - b0).min(4);
                        for r0 in (0..n_rows).step_by(4) {
                            // Only tiles from the row's own diagonal on: P is
                            // symmetric, the lower triangle comes from the mirror pass.
                            if b0 < a0 + r0 {
                                continue;
                            }
                            let rn = (n_rows - r0).min(4);
                            // Row b of U is zero before column b, so columns < b0
                            // contribute nothing to any product in this tile.
                            let x = |i: usize| &u[(a0 + r0 + i) * n + b0..(a0 + r0 + i + 1) * n];
                            let y = |j: usize| &u[(b0 + j) * n + b0..(b0 + j + 1) * n];
                            if rn == 4 && bn == 4 {
                                let d = dots::<4, 4>(
                                    isa,
                                    std::array::from_fn(x),
                                    std::array::from_fn(y),
                                );
                                for (i, di) in d.iter().enumerate() {
                                    rows[(r0 + i) * n + b0..(r0 + i) * n + b0 + 4]
                                        .copy_from_slice(di);
                                }
                            } else {
                                for i in 0..rn {
                                    for j in 0..bn {
                                        rows[(r0 + i) * n + b0 + j] =
                                            dots::<1, 1>(isa, [x(i)], [y(j)])[0][0];
                                    }
                                }
                            }
                        }
                    }
                },
            )
        });

    let diag: Vec<f32> = (0..n).map(|i| p[i * n + i]).collect();
    for a in 0..n {
        p[a * n + a] = 0.0;
        for b in a + 1..n {
            let v = p[a * n + b];
            p[a * n + b] = -v / diag[b];
            p[b * n + a] = -v / diag[a];
        }
    }
    p
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    /// A symmetric positive-definite matrix with some structure.
    fn spd(n: usize) -> Vec<f32> {
        let m = n + 3;
        let x: Vec<f32> = (0..m * n)
            .map(|k| if (k * 7919) % 13 < 4 { 1.0 } else { 0.0 })
            .collect();
        let mut a = vec![0f32; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..m).map(|r| x[r * n + i] * x[r * n + j]).sum::<f32>();
            }
            a[i * n + i] += 2.0;
        }
        a
    }

    #[test]
    fn inverse_of_spd_matrix_times_matrix_is_identity() {
        // sizes around the panel and tile widths, to exercise every edge
        for n in [1, 3, 4, 17, 64, 65, 130] {
            let a = spd(n);
            let mut l = a.clone();
            cholesky_in_place(&mut l, n).unwrap();
            let u = inverse_transposed_factor(&l, n);
            // P = UUᵀ, computed naively in f64
            for i in 0..n {
                for j in 0..n {
                    let ap: f64 = (0..n)
                        .map(|k| {
                            let p_kj: f64 =
                                (0..n).map(|c| (u[k * n + c] * u[j * n + c]) as f64).sum();
                            a[i * n + k] as f64 * p_kj
                        })
                        .sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((ap - want).abs() < 1e-3, "n {n}: (AP)[{i}][{j}] = {ap}");
                }
            }
        }
    }

    #[test]
    fn not_positive_definite_is_an_error() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert!(matches!(
            cholesky_in_place(&mut a, 2),
            Err(ModelError::NotPositiveDefinite { pivot: 1, .. })
        ));
    }
}
