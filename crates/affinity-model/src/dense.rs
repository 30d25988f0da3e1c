//! Small dense kernels on `f32` slices: the only linear algebra ALS needs; and the crate's
//! one Cholesky factorization ([`cholesky_lower`]), used in `f32` by EASE (inside its blocked
//! driver) and in `f64` by the propensity model's Newton steps ([`cholesky_solve`]).
//!
//! They are written so that LLVM vectorizes them without `unsafe` or
//! intrinsics: fixed-width chunks, several independent accumulators (a single
//! accumulator would serialize every add on the previous one), and a fixed
//! reduction order so results are bit-for-bit reproducible for a given build.
//! Vector width and fusion follow the instruction set the caller runs with: every kernel
//! takes the [`Isa`] that [`crate::cpu::fast`] passed in, and is `#[inline(always)]`, so
//! inside the AVX2 copy of a hot loop it is compiled for AVX2 with fused multiply-adds.

use crate::cpu::Isa;

/// Elements processed per loop step; 16 f32 = two AVX registers or four SSE
/// registers of independent accumulators.
const LANES: usize = 16;

/// `a * b + c`, fused when the running copy has FMA. `f32::mul_add` without hardware FMA
/// is a slow library call, so the baseline copy multiplies and adds. `isa` is a constant in
/// each copy of an inlined loop, so the branch folds away.
#[inline(always)]
pub(crate) fn fmadd(isa: Isa, a: f32, b: f32, c: f32) -> f32 {
    if isa == Isa::Avx2Fma || cfg!(target_feature = "fma") {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Pairwise sum of the accumulators in a fixed order.
#[inline(always)]
fn reduce(acc: [f32; LANES]) -> f32 {
    let mut half = [0f32; LANES / 2];
    for (h, (lo, hi)) in half
        .iter_mut()
        .zip(acc[..LANES / 2].iter().zip(&acc[LANES / 2..]))
    {
        *h = lo + hi;
    }
    let q = [
        half[0] + half[4],
        half[1] + half[5],
        half[2] + half[6],
        half[3] + half[7],
    ];
    (q[0] + q[2]) + (q[1] + q[3])
}

/// Σ a[i]·b[i]. Slices must have equal length.
///
/// `inline(always)` (here and below) matters: ALS calls these with a length
/// that is a compile-time constant in its specialized paths, and only inlining
/// lets LLVM see that constant and unroll the loops completely.
#[inline(always)]
pub(crate) fn dot(isa: Isa, a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let ac = a.chunks_exact(LANES);
    let bc = b.chunks_exact(LANES);
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for (s, (xi, yi)) in acc.iter_mut().zip(x.iter().zip(y)) {
            *s = fmadd(isa, *xi, *yi, *s);
        }
    }
    let mut tail = 0f32;
    for (xi, yi) in ar.iter().zip(br) {
        tail = fmadd(isa, *xi, *yi, tail);
    }
    reduce(acc) + tail
}

/// y += alpha · x.
#[inline(always)]
pub(crate) fn axpy(isa: Isa, alpha: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = fmadd(isa, alpha, *xi, *yi);
    }
}

/// out = A·v for a symmetric row-major `n × n` matrix `a` (so rows = columns).
///
/// Accumulates four rows of A per pass over `out`: `out` lives in L1 and each
/// pass loads and stores it once, so batching rows cuts that traffic 4×.
#[inline(always)]
pub(crate) fn symv(isa: Isa, a: &[f32], v: &[f32], out: &mut [f32]) {
    let n = v.len();
    debug_assert_eq!(a.len(), n * n);
    debug_assert_eq!(out.len(), n);
    out.fill(0.0);
    let mut rows = a.chunks_exact(n);
    let mut coefs = v.chunks_exact(4);
    for c in coefs.by_ref() {
        let (r0, r1, r2, r3) = match (rows.next(), rows.next(), rows.next(), rows.next()) {
            (Some(r0), Some(r1), Some(r2), Some(r3)) => (r0, r1, r2, r3),
            _ => return, // unreachable: a has n rows and v has n entries
        };
        let (c0, c1, c2, c3) = (c[0], c[1], c[2], c[3]);
        for ((((o, x0), x1), x2), x3) in out.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
            *o = fmadd(
                isa,
                c3,
                *x3,
                fmadd(isa, c2, *x2, fmadd(isa, c1, *x1, fmadd(isa, c0, *x0, *o))),
            );
        }
    }
    for (c, r) in coefs.remainder().iter().zip(rows) {
        axpy(isa, *c, r, out);
    }
}

/// g += Σ_r y_r y_rᵀ over the rows of `ys` (row-major, `n` columns), updating
/// only the upper triangle (`j ≥ k`); the caller mirrors it at the end.
///
/// Four rows are folded in per pass over `g` for the same reason as in
/// [`symv`]: `g` is the memory traffic, the rows are in registers.
#[inline(always)]
pub(crate) fn gram_upper_accumulate(isa: Isa, ys: &[f32], n: usize, g: &mut [f32]) {
    debug_assert_eq!(g.len(), n * n);
    let mut quads = ys.chunks_exact(4 * n);
    for q in quads.by_ref() {
        let (y0, rest) = q.split_at(n);
        let (y1, rest) = rest.split_at(n);
        let (y2, y3) = rest.split_at(n);
        for (k, grow) in g.chunks_exact_mut(n).enumerate() {
            let (c0, c1, c2, c3) = (y0[k], y1[k], y2[k], y3[k]);
            let grow = &mut grow[k..];
            for ((((gj, a0), a1), a2), a3) in grow
                .iter_mut()
                .zip(&y0[k..])
                .zip(&y1[k..])
                .zip(&y2[k..])
                .zip(&y3[k..])
            {
                *gj = fmadd(
                    isa,
                    c3,
                    *a3,
                    fmadd(isa, c2, *a2, fmadd(isa, c1, *a1, fmadd(isa, c0, *a0, *gj))),
                );
            }
        }
    }
    for y in quads.remainder().chunks_exact(n) {
        for (k, grow) in g.chunks_exact_mut(n).enumerate() {
            axpy(isa, y[k], &y[k..], &mut grow[k..]);
        }
    }
}

/// Copies the upper triangle of a row-major `n × n` matrix onto the lower one.
pub(crate) fn mirror_upper(g: &mut [f32], n: usize) {
    for k in 0..n {
        for j in 0..k {
            g[k * n + j] = g[j * n + k];
        }
    }
}

/// Items per panel of [`to_panels`]: 512 items × 64 factors × 4 B = 128 KiB, so a panel
/// stays in L2 while a whole batch of users is scored against it.
pub(crate) const PANEL: usize = 512;

/// Row-major `n × f` vectors laid out for [`score_panel`]: consecutive panels of [`PANEL`]
/// rows, each stored factor-major (`f` runs of `PANEL` values, zero-padded past `n`), so the
/// scoring loop reads contiguous runs of items and vectorizes across them without a
/// horizontal sum per score.
pub(crate) fn to_panels(rows: &[f32], f: usize) -> Vec<f32> {
    if f == 0 {
        return Vec::new();
    }
    let n = rows.len() / f;
    let mut panels = vec![0f32; n.div_ceil(PANEL) * f * PANEL];
    for (p, panel) in panels.chunks_exact_mut(f * PANEL).enumerate() {
        for (j, row) in rows.chunks_exact(f).skip(p * PANEL).take(PANEL).enumerate() {
            for (k, &v) in row.iter().enumerate() {
                panel[k * PANEL + j] = v;
            }
        }
    }
    panels
}

/// `out[u][j] = xs[u] · item j` for the [`PANEL`] items of one panel of [`to_panels`].
///
/// A tile of `U` users × `W` items is accumulated in registers (U·W/8 AVX registers: 8 for
/// the 4 × 16 and 1 × 64 shapes used), so each loaded item value feeds `U` multiply-adds.
/// Every score is the same sequential multiply-add chain over the factors whatever `U` and
/// `W`, so batched and single-user scores are bit-identical.
#[inline(always)]
pub(crate) fn score_panel<const U: usize, const W: usize>(
    isa: Isa,
    xs: [&[f32]; U],
    panel: &[f32],
    out: &mut [[f32; PANEL]],
) {
    debug_assert!(PANEL.is_multiple_of(W) && out.len() >= U);
    let f = xs.first().map_or(0, |x| x.len());
    // Equal lengths, known to the compiler, so the factor loop has no bounds checks.
    let xs = xs.map(|x| &x[..f]);
    for j in (0..PANEL).step_by(W) {
        let mut acc = [[0f32; W]; U];
        for k in 0..f {
            let y = &panel[k * PANEL + j..k * PANEL + j + W];
            for (a, x) in acc.iter_mut().zip(&xs) {
                let xk = x[k];
                for (s, &yl) in a.iter_mut().zip(y) {
                    *s = fmadd(isa, xk, yl, *s);
                }
            }
        }
        for (o, a) in out.iter_mut().zip(&acc) {
            o[j..j + W].copy_from_slice(a);
        }
    }
}

/// The float types [`cholesky_lower`] runs on: `f32` for EASE's large Gram matrices (memory
/// bound), `f64` for the small, possibly ill-conditioned Newton systems of logistic regression.
pub(crate) trait Real:
    Copy + PartialOrd + std::ops::Sub<Output = Self> + std::ops::Div<Output = Self>
{
    const ZERO: Self;
    fn sqrt(self) -> Self;
    fn is_finite(self) -> bool;
    /// Σ a[i]·b[i] over slices of equal length.
    fn dot(isa: Isa, a: &[Self], b: &[Self]) -> Self;
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    #[inline(always)]
    fn dot(isa: Isa, a: &[f32], b: &[f32]) -> f32 {
        dot(isa, a, b)
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    /// Sequential, unfused: the systems are small (one row per feature) and this is the
    /// arithmetic the propensity model's results were checked with.
    fn dot(_: Isa, a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).fold(0.0, |s, (x, y)| s + x * y)
    }
}

/// Where [`cholesky_lower`] stopped: the first pivot that is not positive and finite, i.e.
/// the matrix is not (numerically) positive definite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NotPositiveDefinite<T> {
    pub pivot: usize,
    pub value: T,
}

/// Lower Cholesky factor `L` (`A = LLᵀ`) of the symmetric positive-definite `n × n` matrix
/// stored row-major in `a` with row stride `stride` (`a[r * stride + c]`, so a diagonal block
/// of a larger matrix can be factored in place), written over the lower triangle; the strict
/// upper triangle is neither read nor written.
///
/// Row by row, `L[r][c] = (A[r][c] − L[r][..c]·L[c][..c]) / L[c][c]`: both dot products run
/// over contiguous row prefixes. O(n³) without blocking or threads, so for small matrices;
/// EASE factors large ones by panels and calls this for each diagonal block.
#[inline(always)]
pub(crate) fn cholesky_lower<T: Real>(
    isa: Isa,
    a: &mut [T],
    n: usize,
    stride: usize,
) -> Result<(), NotPositiveDefinite<T>> {
    debug_assert!(n <= stride && (n == 0 || a.len() >= (n - 1) * stride + n));
    for r in 0..n {
        for c in 0..=r {
            let s = a[r * stride + c]
                - T::dot(
                    isa,
                    &a[r * stride..r * stride + c],
                    &a[c * stride..c * stride + c],
                );
            if c == r {
                if !(s > T::ZERO && s.is_finite()) {
                    return Err(NotPositiveDefinite { pivot: r, value: s });
                }
                a[r * stride + r] = s.sqrt();
            } else {
                a[r * stride + c] = s / a[c * stride + c];
            }
        }
    }
    Ok(())
}

/// Solves `A x = b` for a small symmetric positive-definite row-major `n × n` `A`; `None` if
/// it is not positive definite.
pub(crate) fn cholesky_solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    cholesky_lower(Isa::Baseline, &mut a, n, n).ok()?;
    // L y = b, then Lᵀ x = y, both in place in b.
    for i in 0..n {
        let s = <f64 as Real>::dot(Isa::Baseline, &a[i * n..i * n + i], &b[..i]);
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
    fn kernels_match_naive_loops() {
        for isa in [Isa::Baseline, Isa::detected()] {
            kernels_match_naive_loops_with(isa);
        }
    }

    fn kernels_match_naive_loops_with(isa: Isa) {
        let n = 21; // not a multiple of the chunk sizes, to exercise remainders
        let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(isa, &a, &b) - naive).abs() < 1e-5);

        // symmetric matrix from a Gram of 7 rows (7 = one quad + remainder 3)
        let rows: Vec<f32> = (0..7 * n).map(|i| ((i * 7 % 13) as f32) - 6.0).collect();
        let mut g = vec![0f32; n * n];
        gram_upper_accumulate(isa, &rows, n, &mut g);
        mirror_upper(&mut g, n);
        for j in 0..n {
            for k in 0..n {
                let want: f32 = (0..7).map(|r| rows[r * n + j] * rows[r * n + k]).sum();
                assert_eq!(g[j * n + k], want, "g[{j}][{k}]");
            }
        }
        let mut out = vec![0f32; n];
        symv(isa, &g, &a, &mut out);
        for j in 0..n {
            let want: f32 = (0..n).map(|k| g[j * n + k] * a[k]).sum();
            assert!(
                (out[j] - want).abs() < 1e-2 * want.abs().max(1.0),
                "row {j}"
            );
        }
    }

    #[test]
    fn panel_scores_match_dot_products_and_agree_across_tile_shapes() {
        for isa in [Isa::Baseline, Isa::detected()] {
            panel_scores_with(isa);
        }
    }

    fn panel_scores_with(isa: Isa) {
        let (f, n) = (21, PANEL + 37); // a partial second panel
        let items: Vec<f32> = (0..n * f)
            .map(|i| ((i * 7 % 29) as f32) * 0.1 - 1.3)
            .collect();
        let users: Vec<Vec<f32>> = (0..4)
            .map(|u| (0..f).map(|k| ((u * f + k) as f32 * 0.31).sin()).collect())
            .collect();
        let panels = to_panels(&items, f);
        assert_eq!(panels.len(), 2 * f * PANEL);
        for (p, panel) in panels.chunks_exact(f * PANEL).enumerate() {
            let mut four = vec![[0f32; PANEL]; 4];
            score_panel::<4, 16>(
                isa,
                [&users[0], &users[1], &users[2], &users[3]],
                panel,
                &mut four,
            );
            for (u, x) in users.iter().enumerate() {
                let mut one = vec![[0f32; PANEL]; 1];
                score_panel::<1, 64>(isa, [x], panel, &mut one);
                assert_eq!(one[0], four[u], "user {u} panel {p}: tile shapes disagree");
                for (j, &got) in four[u].iter().enumerate() {
                    let item = p * PANEL + j;
                    let want = if item < n {
                        dot(isa, x, &items[item * f..(item + 1) * f])
                    } else {
                        0.0 // padding
                    };
                    assert!((got - want).abs() < 1e-4, "user {u} item {item}");
                }
            }
        }
    }

    #[test]
    fn cholesky_factors_in_place_and_solves() {
        // A = MMᵀ + I for a fixed M: symmetric positive definite.
        let n = 5;
        let m: Vec<f64> = (0..n * n)
            .map(|i| ((i * 7 % 11) as f64) * 0.3 - 1.2)
            .collect();
        let mut a = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| m[i * n + k] * m[j * n + k]).sum::<f64>();
            }
            a[i * n + i] += 1.0;
        }
        let want: Vec<f64> = (0..n).map(|i| i as f64 - 2.0).collect();
        let b: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| a[i * n + j] * want[j]).sum())
            .collect();
        let x = cholesky_solve(a.clone(), b, n).unwrap();
        for (got, want) in x.iter().zip(&want) {
            assert!((got - want).abs() < 1e-9, "{x:?}");
        }

        // The same matrix as the diagonal block of a larger f32 one (row stride n + 3): the
        // factor reproduces the block, and nothing outside its lower triangle is touched.
        let stride = n + 3;
        let mut big = vec![-7f32; stride * stride];
        for i in 0..n {
            for j in 0..n {
                big[i * stride + j] = a[i * n + j] as f32;
            }
        }
        let before = big.clone();
        cholesky_lower(Isa::Baseline, &mut big, n, stride).unwrap();
        for i in 0..stride {
            for j in 0..stride {
                if i >= n || j > i {
                    assert_eq!(big[i * stride + j], before[i * stride + j], "({i}, {j})");
                } else {
                    let llt: f32 = (0..=j)
                        .map(|k| big[i * stride + k] * big[j * stride + k])
                        .sum();
                    assert!((llt - before[i * stride + j]).abs() < 1e-3, "({i}, {j})");
                }
            }
        }

        let mut indefinite = vec![1.0, 2.0, 2.0, 1.0];
        assert_eq!(
            cholesky_lower(Isa::Baseline, &mut indefinite, 2, 2),
            Err(NotPositiveDefinite {
                pivot: 1,
                value: -3.0
            })
        );
        assert_eq!(cholesky_solve(indefinite, vec![1.0, 1.0], 2), None);
    }
}
