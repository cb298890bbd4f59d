//! The CPU: which vector instructions this process may use (detected once), and the one
//! macro, `multiversion!`, that compiles a kernel for each level and runs
//! the build the CPU supports. Every kernel of the crate dispatches through here, and no
//! other file calls `is_x86_feature_detected!` (the Python binding's `build_info` reports
//! [`Cpu::feature_names`]).
//!
//! Why this exists: the wheel is built for the portable x86-64 baseline (SSE2), so plain
//! loops are vectorised two `f64` lanes at a time, while the GEMMs (the `gemm` crate, which
//! dispatches on its own) already use AVX-512. The MLP's element-wise passes (bias + ReLU,
//! the ReLU derivative with its column sums, the gradient reduction, the Adam update, the
//! squared-weight sum, the narrow-network register tiles) and the neighbour search's passes
//! (norms, the exact-float32 test and conversion, the direct-metric tiles, the top-k
//! reduction, the screening, the small-integer packing) are therefore compiled again inside
//! `#[target_feature]` functions, one per level.
//!
//! # Levels
//!
//! | [`SimdLevel`] | the CPU must have | why |
//! |---|---|---|
//! | `Avx512` | all of `Avx2`, and `avx512f`, `avx512vl`, `avx512bw`, `avx512dq` | 512-bit float lanes with mask registers (F), the same on 256/128-bit vectors (VL), 64-bit byte masks and `kmovq` (BW) and 64-bit integer/float conversions and logic (DQ), used by the neighbour search's candidate masks and packing |
//! | `Avx2` | `avx2`, `fma`, `bmi1`, `popcnt` | 256-bit lanes; FMA for the register tiles' `mul_add`; `tzcnt`/`blsr` and `popcnt` to walk the candidate bit masks |
//! | `Portable` | nothing | the build target's baseline |
//!
//! These are the x86-64-v4 and x86-64-v3 levels reduced to what the kernels use; every CPU
//! with AVX-512 VL (Skylake-SP and later, Zen 4 and later) also has BW and DQ, and every CPU
//! with AVX2 and FMA has BMI1 and POPCNT, so requiring the whole set costs no CPU a level.
//! Optional extensions are separate queries on the same detected-once [`Cpu`]: so far only
//! AVX-512 VNNI ([`Cpu::avx512_vnni`], for the small-integer distance kernel, `neighbors::small_int`), which is reported only
//! on top of the `Avx512` level, so a VNNI kernel may also use every `Avx512` feature.
//!
//! # What each build enables
//!
//! A build enables a subset of its level's features (so it is safe wherever the level was
//! detected), and the subsets are written only in `multiversion!`:
//!
//! * `=> inner` (and `=> v4: a, v3: b, portable: c`): the float loops of the MLP enable
//!   `avx512f,avx512vl,avx2,fma` and `avx2,fma`. Enabling the whole level there changes
//!   their code (other instruction choices and vector widths in the `f32` passes) for no
//!   use, so they keep the subset they were measured with.
//! * `=> full: inner` (optionally with a per-build extra argument, see the macro): the
//!   neighbour passes enable the whole level, `avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,
//!   bmi1,popcnt` and `avx2,fma,bmi1,popcnt`.
//!
//! Hand-written intrinsic kernels (the small-integer VNNI and AVX2 tiles, the MLP's AVX-512 register
//! tiles, the neighbour search's AVX2 compare-to-mask) enable exactly what their intrinsics
//! need, and run only inside a build, or behind a query, that guarantees it.
//!
//! # Same bits at every level
//!
//! The loops are plain Rust arithmetic with no fused multiply-add unless written as
//! `mul_add` (Rust never contracts `a * b + c`) and no reassociation, so every level gives
//! the same bits; `tests/mlp_simd.rs` and the neighbour tests check that against
//! [`SimdLevel::Portable`]. The level also picks which MLP products use the narrow-network
//! tiles ([`crate::mlp::tiled::applies`]), a choice that does depend on it.
//!
//! Why our own macro rather than the `multiversion` or `pulp` crates: the kernels need two
//! feature subsets per level, a level argument that tests can force, and a closure compiled
//! inside the `#[target_feature]` copy (see the macro); `multiversion` builds its own
//! detection and function-pointer dispatch around each function and `pulp` would rewrite
//! the kernels around its SIMD types, both a change of code for no gain here.

use std::sync::OnceLock;

/// Which build of the dispatched kernels runs (see the module docs for each level's
/// features).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdLevel {
    /// AVX-512 F, VL, BW, DQ with every `Avx2` feature, x86-64 only.
    Avx512,
    /// AVX2, FMA, BMI1 and POPCNT, x86-64 only.
    Avx2,
    /// The build target's baseline.
    Portable,
}

impl SimdLevel {
    /// The best level this CPU supports (detected once).
    pub fn detected() -> Self {
        Cpu::get().level
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

/// What this CPU offers, detected once per process by [`Cpu::get`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    level: SimdLevel,
    avx512_vnni: bool,
    /// `(name, present)` for [`Cpu::feature_names`].
    reported: [(&'static str, bool); 5],
}

impl Cpu {
    /// The CPU this process runs on.
    pub fn get() -> &'static Self {
        static CPU: OnceLock<Cpu> = OnceLock::new();
        CPU.get_or_init(detect)
    }

    /// The best [`SimdLevel`] it supports.
    pub fn level(&self) -> SimdLevel {
        self.level
    }

    /// Whether it has AVX-512 VNNI (`vpdpbusd`) on top of the [`SimdLevel::Avx512`] level.
    pub fn avx512_vnni(&self) -> bool {
        self.avx512_vnni
    }

    /// The instruction sets it has among `sse4.2`, `avx2`, `fma`, `avx512f` (x86-64) and
    /// `neon` (aarch64), for reports.
    pub fn feature_names(&self) -> Vec<&'static str> {
        self.reported
            .iter()
            .filter_map(|&(name, present)| present.then_some(name))
            .collect()
    }
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Cpu {
    use std::arch::is_x86_feature_detected as has;
    let avx2 = has!("avx2") && has!("fma") && has!("bmi1") && has!("popcnt");
    let avx512 =
        avx2 && has!("avx512f") && has!("avx512vl") && has!("avx512bw") && has!("avx512dq");
    let level = if avx512 {
        SimdLevel::Avx512
    } else if avx2 {
        SimdLevel::Avx2
    } else {
        SimdLevel::Portable
    };
    Cpu {
        level,
        avx512_vnni: avx512 && has!("avx512vnni"),
        reported: [
            ("sse4.2", has!("sse4.2")),
            ("avx2", has!("avx2")),
            ("fma", has!("fma")),
            ("avx512f", has!("avx512f")),
            ("neon", false),
        ],
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Cpu {
    #[cfg(target_arch = "aarch64")]
    let neon = std::arch::is_aarch64_feature_detected!("neon");
    #[cfg(not(target_arch = "aarch64"))]
    let neon = false;
    Cpu {
        level: SimdLevel::Portable,
        avx512_vnni: false,
        reported: [
            ("sse4.2", false),
            ("avx2", false),
            ("fma", false),
            ("avx512f", false),
            ("neon", neon),
        ],
    }
}

/// Defines `fn name<T: Real>(level: SimdLevel, args...) -> R` that runs the
/// `#[inline(always)]` function `inner(args...)` compiled for `level`: an AVX-512 and an
/// AVX2 copy under `#[target_feature]` (x86-64 only), chosen when the CPU has the level,
/// and the portable build otherwise (a level the CPU lacks also falls back to it, so the
/// generated function is always safe to call). Pass [`SimdLevel::detected`] to run the
/// best build.
///
/// * `=> inner`: the float subset of each level (see the module docs), for the MLP.
/// * `=> v4: a, v3: b, portable: c`: as `=> inner`, with a separate `#[inline(always)]` body
///   per level (the same arithmetic with level-sized register tiles, say).
/// * `=> full: inner`: each level's whole feature set, for the neighbour search.
/// * `=> full: inner, simd_arg: e, portable_arg: p`: as `=> full: inner`, calling
///   `inner(args..., e)` in the AVX-512 and AVX2 builds and `inner(args..., p)` in the
///   portable one. `e` is written out inside each `#[target_feature]` copy, so a closure
///   there inherits its features and may call a `#[target_feature]` helper (intrinsics).
macro_rules! multiversion {
    // The feature subsets of each level's builds (see the module docs), written only here.
    (@emit float $($rest:tt)*) => {
        $crate::platform::multiversion! {
            @emit ["avx512f,avx512vl,avx2,fma"] ["avx2,fma"] $($rest)*
        }
    };
    (@emit full $($rest:tt)*) => {
        $crate::platform::multiversion! {
            @emit ["avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi1,popcnt"]
            ["avx2,fma,bmi1,popcnt"] $($rest)*
        }
    };
    (
        @emit [$f4:tt] [$f3:tt]
        $(#[$meta:meta])*
        $vis:vis fn $name:ident<$t:ident>($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;
        $c4:block $c3:block $cp:block
    ) => {
        $(#[$meta])*
        $vis fn $name<$t: $crate::real::Real>(
            level: $crate::platform::SimdLevel,
            $($arg: $ty),*
        ) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::platform::SimdLevel;
                #[target_feature(enable = $f4)]
                unsafe fn v4<$t: $crate::real::Real>($($arg: $ty),*) $(-> $ret)? $c4
                #[target_feature(enable = $f3)]
                unsafe fn v3<$t: $crate::real::Real>($($arg: $ty),*) $(-> $ret)? $c3
                let best = SimdLevel::detected();
                match level {
                    SimdLevel::Avx512 if best == SimdLevel::Avx512 => {
                        // SAFETY: the CPU has the `Avx512` level, whose features include
                        // every one `v4` enables.
                        return unsafe { v4($($arg),*) };
                    }
                    SimdLevel::Avx2 if best != SimdLevel::Portable => {
                        // SAFETY: the CPU has the `Avx2` level (an `Avx512` CPU has it too),
                        // whose features include every one `v3` enables.
                        return unsafe { v3($($arg),*) };
                    }
                    _ => {}
                }
            }
            let _ = level;
            $cp
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident<$t:ident: Real>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        => v4: $i4:path, v3: $i3:path, portable: $ip:path
    ) => {
        $crate::platform::multiversion! {
            @emit float
            $(#[$meta])*
            $vis fn $name<$t>($($arg: $ty),*) $(-> $ret)?;
            { $i4($($arg),*) } { $i3($($arg),*) } { $ip($($arg),*) }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident<$t:ident: Real>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        => full: $inner:path, simd_arg: $e:expr, portable_arg: $p:expr $(,)?
    ) => {
        $crate::platform::multiversion! {
            @emit full
            $(#[$meta])*
            $vis fn $name<$t>($($arg: $ty),*) $(-> $ret)?;
            { $inner($($arg,)* $e) } { $inner($($arg,)* $e) } { $inner($($arg,)* $p) }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident<$t:ident: Real>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        => full: $inner:path
    ) => {
        $crate::platform::multiversion! {
            @emit full
            $(#[$meta])*
            $vis fn $name<$t>($($arg: $ty),*) $(-> $ret)?;
            { $inner($($arg),*) } { $inner($($arg),*) } { $inner($($arg),*) }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident<$t:ident: Real>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        => $inner:path
    ) => {
        $crate::platform::multiversion! {
            $(#[$meta])*
            $vis fn $name<$t: Real>($($arg: $ty),*) $(-> $ret)?
            => v4: $inner, v3: $inner, portable: $inner
        }
    };
}

pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::{Cpu, SimdLevel};

    #[test]
    fn levels_are_consistent() {
        let cpu = Cpu::get();
        assert_eq!(cpu.level(), SimdLevel::detected());
        assert_eq!(SimdLevel::available().last(), Some(&SimdLevel::Portable));
        assert_eq!(SimdLevel::available()[0], cpu.level());
        assert!(!cpu.avx512_vnni() || cpu.level() == SimdLevel::Avx512);
        let names = cpu.feature_names();
        if cpu.level() != SimdLevel::Portable {
            assert!(names.contains(&"avx2") && names.contains(&"fma"));
        }
        if cpu.level() == SimdLevel::Avx512 {
            assert!(names.contains(&"avx512f"));
        }
    }
}
