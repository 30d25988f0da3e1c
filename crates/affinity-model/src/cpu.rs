//! The instruction set the hot loops run with, chosen when they run.
//!
//! One build serves every x86-64 machine: the crate is compiled for the x86-64 baseline
//! (SSE2), which every such CPU runs, and the hot loops (ALS's solves and scoring, EASE's
//! Gram matrix, factorization and products, item-kNN's similarities and scoring) are
//! compiled a second time for AVX2 with FMA and take that copy when the CPU has both. The
//! loops are written with fixed-width chunks and `#[inline(always)]` kernels (see
//! [`crate::dense`]); inlined into an AVX2+FMA function, they are vectorized 8 lanes wide and
//! their multiply-adds fused, as a build for the machine's own CPU would do.
//!
//! Why not `-C target-cpu=native` for the whole build: a binary or container image built on
//! one machine may then not start on an older one. Why not a crate (`multiversion`): the one
//! dispatch point below is all the crate needs, and its kernels choose fusion themselves.
//!
//! Results: the AVX2 copy fuses multiply-adds, the baseline copy does not, so a model fitted
//! on an AVX2 machine can differ in the last bits from one fitted on an older machine. On one
//! machine the choice never changes, and every result stays independent of the thread count.

/// Runs `work` with the best instruction set this CPU has. `work` should be an
/// `#[inline(always)]` closure whose loops call `#[inline(always)]` kernels: only code
/// inlined into the AVX2 copy is compiled for AVX2. Cheap to call often (the CPU's features
/// are read once and cached by the standard library), so callers wrap each parallel task.
#[inline(always)]
pub(crate) fn fast<R>(work: impl FnOnce(Isa) -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        #[allow(unsafe_code)]
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { avx2_fma(work) };
    }
    work(Isa::Baseline)
}

/// Which copy is running, for kernels whose arithmetic depends on it (fused multiply-add is
/// one instruction with FMA, and a slow library call without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    Baseline,
    Avx2Fma,
}

impl Isa {
    /// The instruction set [`fast`] chooses on this CPU.
    pub(crate) fn detected() -> Isa {
        fast(|isa| isa)
    }

    /// A short name for logs and benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Baseline => "x86-64 baseline",
            Isa::Avx2Fma => "avx2+fma",
        }
    }
}

/// The instruction set the hot loops run with on this machine (`avx2+fma` or the baseline),
/// for logs and benchmark reports.
pub fn instruction_set() -> &'static str {
    Isa::detected().name()
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(unsafe_code)]
unsafe fn avx2_fma<R>(work: impl FnOnce(Isa) -> R) -> R {
    work(Isa::Avx2Fma)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dispatch_matches_the_cpu() {
        #[cfg(target_arch = "x86_64")]
        let want = if has_avx2_fma() {
            Isa::Avx2Fma
        } else {
            Isa::Baseline
        };
        #[cfg(not(target_arch = "x86_64"))]
        let want = Isa::Baseline;
        assert_eq!(Isa::detected(), want);
    }
}
