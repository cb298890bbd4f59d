//! Runtime-dispatched instruction sets for the MLP's element-wise passes.
//!
//! Why this exists: the wheel is built for the portable x86-64 baseline (SSE2), so the
//! compiler vectorises the element-wise passes of training (bias + ReLU, the ReLU derivative
//! with its column sums, the gradient reduction, the Adam update, the squared-weight sum)
//! two `f64` lanes at a time, while the GEMMs around them (the `gemm` crate) already pick
//! AVX-512 at run time. After the GEMMs those passes were the largest part of a training step.
//! The `multiversion!` macro compiles an `#[inline(always)]` loop body again inside
//! `#[target_feature]` functions for AVX-512 and AVX2, chosen once per process with
//! `is_x86_feature_detected!`; every other target, and x86 without AVX2, runs the portable
//! build of the same code.
//!
//! The loops are plain Rust arithmetic with no fused multiply-add (Rust never contracts
//! `a * b + c`) and no reassociation, so every level gives the same bits; the tests in
//! `tests/mlp_simd.rs` check that against [`SimdLevel::Portable`].

use std::sync::OnceLock;

/// Which build of the element-wise loops runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdLevel {
    /// AVX-512 F/VL (with AVX2 and FMA), x86-64 only.
    Avx512,
    /// AVX2 with FMA, x86-64 only.
    Avx2,
    /// The build target's baseline.
    Portable,
}

impl SimdLevel {
    /// The best level this CPU supports (detected once).
    pub fn detected() -> Self {
        static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
        *LEVEL.get_or_init(detect)
    }

    /// Every level this CPU can run, best first (for tests comparing them).
    pub fn available() -> Vec<Self> {
        let mut out = Vec::new();
        let best = Self::detected();
        if best == Self::Avx512 {
            out.push(Self::Avx512);
        }
        if best != Self::Portable {
            out.push(Self::Avx2);
        }
        out.push(Self::Portable);
        out
    }
}

#[cfg(target_arch = "x86_64")]
fn detect() -> SimdLevel {
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
    {
        SimdLevel::Avx512
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        SimdLevel::Avx2
    } else {
        SimdLevel::Portable
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> SimdLevel {
    SimdLevel::Portable
}

/// Defines `pub fn name<T: Real>(level: SimdLevel, args...) -> R` that runs the
/// `#[inline(always)]` function `inner(args...)` compiled for `level`: an AVX-512 and an AVX2
/// copy under `#[target_feature]` (x86-64 only), chosen when the CPU has the features, and
/// the portable build otherwise (a level the CPU lacks also falls back to it, so the
/// generated function is always safe to call).
///
/// `=> v4: a, v3: b, portable: c` names a separate `#[inline(always)]` body per level (the
/// same arithmetic with level-sized register tiles, say).
macro_rules! multiversion {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident<$t:ident: Real>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        => $inner:path
    ) => {
        $crate::mlp::simd::multiversion! {
            $(#[$meta])*
            $vis fn $name<$t: Real>($($arg: $ty),*) $(-> $ret)?
            => v4: $inner, v3: $inner, portable: $inner
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident<$t:ident: Real>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        => v4: $i4:path, v3: $i3:path, portable: $ip:path
    ) => {
        $(#[$meta])*
        $vis fn $name<$t: $crate::real::Real>(
            level: $crate::mlp::simd::SimdLevel,
            $($arg: $ty),*
        ) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::mlp::simd::SimdLevel;
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn v4<$t: $crate::real::Real>($($arg: $ty),*) $(-> $ret)? {
                    $i4($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3<$t: $crate::real::Real>($($arg: $ty),*) $(-> $ret)? {
                    $i3($($arg),*)
                }
                let best = SimdLevel::detected();
                match level {
                    // SAFETY: the features were detected at run time on this CPU.
                    SimdLevel::Avx512 if best == SimdLevel::Avx512 => {
                        return unsafe { v4($($arg),*) };
                    }
                    // SAFETY: as above (an AVX-512 CPU has AVX2 and FMA too).
                    SimdLevel::Avx2 if best != SimdLevel::Portable => {
                        return unsafe { v3($($arg),*) };
                    }
                    _ => {}
                }
            }
            let _ = level;
            $ip($($arg),*)
        }
    };
}

pub(crate) use multiversion;
