//! Exact squared Euclidean distances of small-integer data with AVX-512 VNNI or AVX2.
//!
//! Many data sets hold small integers stored as floats: images with a few grey levels (the
//! digits data: 0..16), counts, binary and one-hot features. When every feature's values are
//! integers spanning at most 127, the data shifted by each feature's minimum fits in a byte,
//! every norm and dot product is an exact `i32`, and every distance `||q - t||^2` (which the
//! shift leaves unchanged) is an integer below `2^24`, so exactly representable in `f32`.
//! The float paths compute these same integers exactly (scikit-learn's float64 GEMM too), so
//! the distances, and therefore the neighbours and their tie order, are bit-identical.
//!
//! Why hand-written: the GEMM crate has no integer kernels, and `vpdpbusd` multiplies and
//! sums 64 byte pairs per instruction where an `f32` FMA does 16, so the distance tile costs
//! a quarter of the float32 GEMM's arithmetic. The kernel writes the distances themselves
//! (norms added, no clipping needed), fused with the GEMM epilogue.
//!
//! Without VNNI, AVX2's `vpmaddubsw` multiplies 32 byte pairs and adds them in pairs into
//! 16-bit lanes. When the data's values are small (the digits' 0..16), those 16-bit sums
//! can be added up over many groups of features before they could overflow (see
//! [`i16_run`]), and widened to 32 bits once per run, so a group of four features costs one
//! multiply and one add per 32 byte pairs: twice an `f32` FMA's work per instruction, and
//! no float32 screening with an exact recheck after it.

use ndarray::ArrayView2;

use super::Metric;
use super::engine::{Fill, TileNorms};
use crate::platform::{Cpu, SimdLevel, multiversion};
use crate::real::Real;

/// Query rows per micro-tile.
const MR: usize = 6;
/// Training rows per panel: one 512-bit vector of `i32` lanes.
const PANEL: usize = 16;
/// Panels per micro-tile (`MR x NP` accumulators: 24 of the 32 vector registers).
const NP: usize = 4;

/// Queries and training rows converted, packed and normed for [`SmallIntFill::tile`].
pub(crate) struct SmallIntFill {
    /// Shifted queries as bytes, `dp` per row, `MR` zero rows of padding at the end.
    q: Vec<u8>,
    /// Shifted training rows in panels of [`PANEL`] rows: panel `p`, group of four features
    /// `g`, lane `j` hold the four bytes of row `PANEL p + j`, features `4g..4g + 4`.
    t: Vec<i8>,
    /// Squared norms of the shifted query rows.
    qn: Vec<i32>,
    /// Squared norms of the shifted training rows (padded with zeros to whole panels).
    tn: Vec<i32>,
    /// Features per row, padded to a multiple of 4.
    dp: usize,
    /// Groups of four features whose 16-bit products the AVX2 kernel may add up before it
    /// widens them (see [`i16_run`]).
    run: usize,
    /// The kernel that fills the tiles.
    kernel: Kernel,
}

/// The instructions a tile is computed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// AVX-512 F, BW and VNNI (`vpdpbusd`).
    Vnni,
    /// AVX2 (`vpmaddubsw`, `vpmaddwd`).
    Avx2,
}

/// The kernels this CPU can run, the fastest first; empty off x86-64.
///
/// VNNI on top of the `Avx512` level ([`Cpu::avx512_vnni`]), so that the packing may run
/// its `Avx512` build; the AVX2 kernel needs the `Avx2` level.
pub(crate) fn kernels() -> &'static [Kernel] {
    let cpu = Cpu::get();
    match cpu.level() {
        SimdLevel::Avx512 if cpu.avx512_vnni() => &[Kernel::Vnni, Kernel::Avx2],
        SimdLevel::Avx512 | SimdLevel::Avx2 => &[Kernel::Avx2],
        SimdLevel::Portable => &[],
    }
}

/// Groups of four features over which the AVX2 kernel can add its 16-bit lanes without
/// overflow, when every value of feature `f` (queries and training rows) lies in
/// `0..=bound[f]`: a lane holds the products of two features of a group, at most
/// `bound[a]^2 + bound[b]^2`, and `i16::MAX` over the largest such sum of any group is how
/// many groups' lanes can be added up (at least one: `2 * 127^2 < i16::MAX`). The saturating
/// `vpmaddubsw` never saturates either, for the same reason.
fn i16_run(bound: &[i32]) -> usize {
    let pair = |a: usize, b: usize| {
        let at = |f: usize| bound.get(f).map_or(0, |&v| v * v);
        at(a) + at(b)
    };
    let widest = (0..bound.len().div_ceil(4))
        .map(|g| pair(4 * g, 4 * g + 1).max(pair(4 * g + 2, 4 * g + 3)))
        .max()
        .unwrap_or(0);
    (i32::from(i16::MAX) / widest.max(1)) as usize
}

/// Per-feature minimum over both arrays when every value is an integer, every feature spans
/// at most 127 and the largest possible squared distance is below `2^24`; else `None`.
#[inline(always)] // compiled into each build of `pack_simd`
#[allow(clippy::inline_always)]
fn feature_minima<T: Real>(query: &[T], train: &[T], d: usize) -> Option<(Vec<f64>, Vec<i32>)> {
    // `(x + 1.5 * 2^52) - 1.5 * 2^52 == x` exactly when `x` (of magnitude below 2^30, checked
    // alongside) is an integer; NaN and infinities fail the magnitude test. No early exit
    // inside a row, so that the loop vectorises.
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    const BOUND: f64 = 1_073_741_824.0;
    let mut lo = vec![BOUND; d];
    let mut hi = vec![-BOUND; d];
    let mut ok = true;
    for r in query.chunks_exact(d).chain(train.chunks_exact(d)) {
        for ((&v, l), h) in r.iter().zip(lo.iter_mut()).zip(hi.iter_mut()) {
            let x = v.to_f64_lossless();
            ok &= x.abs() < BOUND;
            ok &= (x + MAGIC) - MAGIC == x;
            *l = if x < *l { x } else { *l };
            *h = if x > *h { x } else { *h };
        }
        if !ok {
            return None;
        }
    }
    let mut max_dist = 0.0f64;
    let mut spans = Vec::with_capacity(d);
    for (&l, &h) in lo.iter().zip(&hi) {
        let span = h - l;
        if span > 127.0 {
            return None;
        }
        max_dist += span * span;
        // An integer in 0..=127 (checked above; both ends are integers).
        spans.push(span as i32);
    }
    (max_dist < f64::from(1u32 << 24)).then_some((lo, spans))
}

/// Row `r` shifted by `lo` into `out` (values in `0..=127`, checked by [`feature_minima`]),
/// returning its squared norm.
#[inline(always)] // compiled into each build of `pack_simd`
#[allow(clippy::inline_always)]
fn shift_row<T: Real>(r: &[T], lo: &[f64], out: &mut [u8]) -> i32 {
    let mut s = 0i32;
    for ((o, &x), &l) in out.iter_mut().zip(r).zip(lo) {
        // SAFETY: `x - l` is an integer in 0..=127 (so finite and in range of i32), checked
        // by `feature_minima`; the unchecked conversion vectorises where `as` does not.
        let v: i32 = unsafe { (x.to_f64_lossless() - l).to_int_unchecked() };
        s += v * v;
        *o = v as u8;
    }
    s
}

/// Row `r` as bytes in `out` when every value is an integer in `0..=127` (then no shift is
/// needed): returns its squared norm and whether the row qualified, and raises `hi` to the
/// row's values. One pass with no early exit inside the row, so that it vectorises.
#[inline(always)] // compiled into each build of `pack_simd`
#[allow(clippy::inline_always)]
fn direct_row<T: Real>(r: &[T], out: &mut [u8], hi: &mut [i32]) -> (i32, bool) {
    let mut ok = true;
    let mut s = 0i32;
    for ((o, &v), h) in out.iter_mut().zip(r).zip(hi.iter_mut()) {
        let x = v.to_f64_lossless();
        let in_range = (0.0..=127.0).contains(&x); // false for NaN
        ok &= in_range;
        // SAFETY: the converted value is in 0..=127 (out-of-range values were replaced by 0).
        let i: i32 = unsafe { (if in_range { x } else { 0.0 }).to_int_unchecked() };
        ok &= f64::from(i) == x;
        s += i * i;
        *o = i as u8;
        *h = (*h).max(i);
    }
    (s, ok)
}

/// Packs `q` and `t` (rows of `d` values) for [`SmallIntFill::tile`], each row converted by
/// `convert(row, bytes)` into its `d` bytes and its squared norm, or `None` (then so is the
/// result) when the row cannot be.
#[inline(always)] // compiled into each build of `pack_simd`
#[allow(clippy::inline_always)]
fn pack_rows<T: Real>(
    q: &[T],
    t: &[T],
    d: usize,
    mut convert: impl FnMut(&[T], &mut [u8]) -> Option<i32>,
) -> Option<SmallIntFill> {
    let dp = d.next_multiple_of(4);
    let (n_q, n_t) = (q.len() / d, t.len() / d);
    // Without room for the packed copies, the search takes another path (the same
    // answers) instead of aborting.
    let mut qb: Vec<u8> = crate::try_filled((n_q + MR).checked_mul(dp)?, 0, "").ok()?;
    let mut qn = crate::try_vec(n_q, "").ok()?;
    for (r, out) in q.chunks_exact(d).zip(qb.chunks_exact_mut(dp)) {
        qn.push(convert(r, out)?);
    }
    let groups = dp / 4;
    let n_panels = n_t.div_ceil(PANEL);
    let mut tb: Vec<i8> = crate::try_filled(n_panels * groups * PANEL * 4, 0, "").ok()?;
    let mut tn: Vec<i32> = crate::try_filled(n_panels * PANEL, 0, "").ok()?;
    let mut row = vec![0u8; dp];
    for (i, (r, norm)) in t.chunks_exact(d).zip(tn.iter_mut()).enumerate() {
        *norm = convert(r, &mut row)?;
        // Row `i` is lane `i % PANEL` of panel `i / PANEL`: 4 bytes in every 64 of the panel.
        let base = (i / PANEL) * groups * PANEL * 4 + (i % PANEL) * 4;
        for (g, four) in row.chunks_exact(4).enumerate() {
            let at = base + g * PANEL * 4;
            for (o, &b) in tb[at..at + 4].iter_mut().zip(four) {
                *o = b.cast_signed();
            }
        }
    }
    Some(SmallIntFill {
        q: qb,
        t: tb,
        qn,
        tn,
        dp,
        run: 1,
        kernel: Kernel::Vnni,
    })
}

/// The packed data of inputs whose values are all integers in `0..=127` and whose largest
/// possible squared distance is below `2^24`, converted as they are read: one pass over each
/// array instead of the per-feature minima's pass and then the shifting one (the conversion
/// is memory-bound on the float64 inputs, and a visible share of a small search). The distances are the same integers as with the shift (a shift
/// changes no difference), so the results are too. `None` when a value does not qualify
/// (checked row by row, so other data leaves after its first row).
#[inline(always)] // compiled into each build of `pack_simd`
#[allow(clippy::inline_always)]
fn pack_direct<T: Real>(q: &[T], t: &[T], d: usize) -> Option<SmallIntFill> {
    // A row's squared norm, summed before the distance bound is checked, must fit an `i32`
    // (wider rows leave for the shifted path, which checks its bound first).
    if d > (i32::MAX / (127 * 127)) as usize {
        return None;
    }
    let mut hi = vec![0i32; d];
    // The first row of each array first, before the packed arrays are allocated: other
    // data (floats, negative values) leaves here, having touched no new memory.
    let mut row = vec![0u8; d];
    for first in [q.get(..d)?, t.get(..d)?] {
        if !direct_row(first, &mut row, &mut hi).1 {
            return None;
        }
    }
    let mut packed = pack_rows(q, t, d, |r, out| {
        let (norm, ok) = direct_row(r, out, &mut hi);
        ok.then_some(norm)
    })?;
    packed.run = i16_run(&hi);
    // Every value lies in 0..=hi, so no squared distance exceeds sum(hi^2).
    let max_dist: f64 = hi.iter().map(|&h| f64::from(h * h)).sum();
    (max_dist < f64::from(1u32 << 24)).then_some(packed)
}

/// [`SmallIntFill::new`]'s conversion and packing: [`pack_direct`] when the values are bytes
/// already, else shifted by each feature's minimum. Compiled for the CPUs that can run the
/// kernels (`pack_simd`: its passes over the inputs vectorise 4 to 8 times wider
/// than at the baseline).
#[inline(always)] // compiled into each build of `pack_simd`
#[allow(clippy::inline_always)]
fn pack<T: Real>(q: &[T], t: &[T], d: usize) -> Option<SmallIntFill> {
    if let Some(direct) = pack_direct(q, t, d) {
        return Some(direct);
    }
    let (lo, spans) = feature_minima(q, t, d)?;
    let mut packed = pack_rows(q, t, d, |r, out| Some(shift_row(r, &lo, out)))?;
    packed.run = i16_run(&spans);
    Some(packed)
}

multiversion! {
    /// [`pack`] compiled for `level`: `Avx512` for [`Kernel::Vnni`], `Avx2` for
    /// [`Kernel::Avx2`].
    fn pack_simd<T: Real>(q: &[T], t: &[T], d: usize) -> Option<SmallIntFill> => full: pack
}

impl SmallIntFill {
    /// The packed data, or `None` when the search is not a Euclidean one on small-integer
    /// data (see the module documentation) or the CPU has neither AVX-512 VNNI nor AVX2.
    pub(crate) fn new<T: Real>(
        query: ArrayView2<'_, T>,
        train: ArrayView2<'_, T>,
        metric: &Metric,
    ) -> Option<Self> {
        Self::with_kernel(query, train, metric, *kernels().first()?)
    }

    /// [`SmallIntFill::new`] for a given kernel, one of [`kernels`] (the tests run each).
    pub(crate) fn with_kernel<T: Real>(
        query: ArrayView2<'_, T>,
        train: ArrayView2<'_, T>,
        metric: &Metric,
        kernel: Kernel,
    ) -> Option<Self> {
        let d = train.ncols();
        if !matches!(metric, Metric::Euclidean | Metric::SqEuclidean)
            || query.ncols() != d
            || d == 0
            || !kernels().contains(&kernel)
        {
            return None;
        }
        let (q, t) = (query.as_slice()?, train.as_slice()?);
        #[cfg(target_arch = "x86_64")]
        {
            let level = match kernel {
                Kernel::Vnni => SimdLevel::Avx512,
                Kernel::Avx2 => SimdLevel::Avx2,
            };
            let packed = pack_simd(level, q, t, d);
            packed.map(|p| Self { kernel, ..p })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (q, t);
            None
        }
    }

    /// Fills `buf` (row-major, `(qe - qs) x (te - ts)`) with the squared distances between
    /// queries `qs..qe` and training rows `ts..te`; `ts` is a multiple of [`PANEL`].
    pub(crate) fn tile(&self, qs: usize, qe: usize, ts: usize, te: usize, buf: &mut [f32]) {
        debug_assert!(ts.is_multiple_of(PANEL) && qe <= self.qn.len());
        #[cfg(target_arch = "x86_64")]
        if kernels().contains(&self.kernel)
            && ts.is_multiple_of(PANEL)
            && qe <= self.qn.len()
            && te <= self.tn.len()
        {
            let tt = te - ts;
            if buf.len() >= (qe - qs) * tt {
                // SAFETY: the CPU has the kernel's instructions (checked); the kernels stay
                // inside the packed arrays (rows padded by `MR`, panels to whole vectors) and
                // write only `buf[..(qe - qs) * tt]`, whose length was checked.
                unsafe {
                    match self.kernel {
                        Kernel::Vnni => vnni::tile_vnni(self, qs, qe, ts, te, buf),
                        Kernel::Avx2 => avx2::tile_avx2(self, qs, qe, ts, te, buf),
                    }
                }
            }
        }
    }
}

impl Fill<f32> for SmallIntFill {
    /// The squared distances themselves (no norms left to add).
    fn fill_tile(
        &self,
        qs: usize,
        qe: usize,
        ts: usize,
        te: usize,
        buf: &mut [f32],
    ) -> TileNorms<'_, f32> {
        self.tile(qs, qe, ts, te, buf);
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{MR, NP, PANEL, SmallIntFill};
    use std::arch::x86_64::{
        __m512i, _mm512_add_epi32, _mm512_cvtepi32_ps, _mm512_dpbusd_epi32, _mm512_loadu_si512,
        _mm512_mask_storeu_ps, _mm512_set1_epi32, _mm512_setzero_si512, _mm512_slli_epi32,
        _mm512_sub_epi32,
    };

    /// See [`SmallIntFill::tile`]. Every micro-tile is `MR` query rows by `NPB` panels.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VNNI; `ts` must be a multiple of [`PANEL`],
    /// `qe <= n_queries`, `te <= ` the padded training rows, `buf.len() >= (qe - qs) * (te - ts)`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(crate) unsafe fn tile_vnni(
        data: &SmallIntFill,
        qs: usize,
        qe: usize,
        ts: usize,
        te: usize,
        buf: &mut [f32],
    ) {
        let tt = te - ts;
        let panels = tt.div_ceil(PANEL);
        let mut i = qs;
        while i < qe {
            let rows = (qe - i).min(MR);
            let mut p = 0;
            while p < panels {
                let np = (panels - p).min(NP);
                // SAFETY: forwarded from this function's contract.
                unsafe {
                    match np {
                        4 => block::<4>(data, i, rows, qs, ts, p, tt, buf),
                        3 => block::<3>(data, i, rows, qs, ts, p, tt, buf),
                        2 => block::<2>(data, i, rows, qs, ts, p, tt, buf),
                        _ => block::<1>(data, i, rows, qs, ts, p, tt, buf),
                    }
                }
                p += np;
            }
            i += rows;
        }
    }

    /// Distances of queries `i..i + rows` (`rows <= MR`) to the training rows of panels
    /// `ts / PANEL + p ..` (`NPB` of them), written to `buf` row `i - qs`, column `p * PANEL`.
    ///
    /// # Safety
    /// As [`tile_vnni`]; `i + MR` rows of packed queries exist (the padding).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    // The casts to `*const __m512i` feed unaligned loads (`loadu`), which need no alignment.
    #[allow(clippy::cast_ptr_alignment)]
    unsafe fn block<const NPB: usize>(
        data: &SmallIntFill,
        i: usize,
        rows: usize,
        qs: usize,
        ts: usize,
        p: usize,
        tt: usize,
        buf: &mut [f32],
    ) {
        let dp = data.dp;
        let groups = dp / 4;
        let panel0 = ts / PANEL + p;
        let qp = data.q.as_ptr();
        let tp = data.t.as_ptr();
        let mut acc = [[_mm512_setzero_si512(); NPB]; MR];
        for g in 0..groups {
            // SAFETY: panel `panel0 + NPB - 1` and group `g` lie inside `t` (panels padded
            // to whole vectors), query rows `i..i + MR` inside `q` (padded by `MR` rows).
            unsafe {
                let b: [__m512i; NPB] = std::array::from_fn(|n| {
                    _mm512_loadu_si512(
                        tp.add(((panel0 + n) * groups + g) * PANEL * 4)
                            .cast::<__m512i>(),
                    )
                });
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let a = _mm512_set1_epi32(
                        qp.add((i + r) * dp + 4 * g).cast::<i32>().read_unaligned(),
                    );
                    for (acc_rn, &b_n) in acc_r.iter_mut().zip(&b) {
                        *acc_rn = _mm512_dpbusd_epi32(*acc_rn, a, b_n);
                    }
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate().take(rows) {
            let qn = _mm512_set1_epi32(data.qn[i + r]);
            let out_row = (i + r - qs) * tt;
            for (n, &acc_rn) in acc_r.iter().enumerate() {
                let col = (p + n) * PANEL;
                if col >= tt {
                    break;
                }
                let valid = (tt - col).min(PANEL);
                let mask: u16 = if valid == PANEL {
                    u16::MAX
                } else {
                    (1u16 << valid) - 1
                };
                // SAFETY: `tn` is padded to whole panels; the masked store writes columns
                // `col..col + valid` of row `out_row`, inside `buf` (its length was checked).
                unsafe {
                    let tn = _mm512_loadu_si512(data.tn.as_ptr().add(ts + col).cast::<__m512i>());
                    let dist =
                        _mm512_sub_epi32(_mm512_add_epi32(qn, tn), _mm512_slli_epi32::<1>(acc_rn));
                    _mm512_mask_storeu_ps(
                        buf.as_mut_ptr().add(out_row + col),
                        mask,
                        _mm512_cvtepi32_ps(dist),
                    );
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, PANEL, SmallIntFill};
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi16, _mm256_add_epi32, _mm256_cvtepi32_ps, _mm256_loadu_si256,
        _mm256_madd_epi16, _mm256_maddubs_epi16, _mm256_set1_epi16, _mm256_set1_epi32,
        _mm256_setzero_si256, _mm256_slli_epi32, _mm256_storeu_ps, _mm256_sub_epi32,
    };

    /// Query rows per micro-tile: `MR2 x 2` accumulators of each width (16 vector registers).
    const MR2: usize = 4;
    /// `i32` lanes of a 256-bit vector: half a panel.
    const HALF: usize = PANEL / 2;
    const _: () = assert!(MR2 <= MR, "the queries are padded by MR rows");

    /// See [`SmallIntFill::tile`]. Every micro-tile is `MR2` query rows by one panel.
    ///
    /// # Safety
    /// The CPU must support AVX2; `ts` must be a multiple of [`PANEL`], `qe <= n_queries`,
    /// `te <= ` the padded training rows, `buf.len() >= (qe - qs) * (te - ts)`.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn tile_avx2(
        data: &SmallIntFill,
        qs: usize,
        qe: usize,
        ts: usize,
        te: usize,
        buf: &mut [f32],
    ) {
        let tt = te - ts;
        let panels = tt.div_ceil(PANEL);
        let mut i = qs;
        while i < qe {
            let rows = (qe - i).min(MR2);
            for p in 0..panels {
                // SAFETY: forwarded from this function's contract.
                unsafe { block(data, i, rows, qs, ts, p, tt, buf) };
            }
            i += rows;
        }
    }

    /// Distances of queries `i..i + rows` (`rows <= MR2`) to the training rows of panel
    /// `ts / PANEL + p`, written to `buf` row `i - qs`, column `p * PANEL`.
    ///
    /// # Safety
    /// As [`tile_avx2`]; `i + MR2` rows of packed queries exist (the padding).
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    // The casts to `*const __m256i` feed unaligned loads (`loadu`), which need no alignment.
    #[allow(clippy::cast_ptr_alignment)]
    unsafe fn block(
        data: &SmallIntFill,
        i: usize,
        rows: usize,
        qs: usize,
        ts: usize,
        p: usize,
        tt: usize,
        buf: &mut [f32],
    ) {
        let dp = data.dp;
        let groups = dp / 4;
        let panel = ts / PANEL + p;
        let qp = data.q.as_ptr();
        let tp = data.t.as_ptr();
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 2]; MR2];
        let run = data.run.max(1);
        let mut g0 = 0;
        while g0 < groups {
            let g1 = (g0 + run).min(groups);
            // 16-bit sums of the run's products: they cannot overflow (see `i16_run`).
            let mut acc16 = [[_mm256_setzero_si256(); 2]; MR2];
            for g in g0..g1 {
                // SAFETY: panel `panel` and group `g` lie inside `t` (panels padded to whole
                // vectors), query rows `i..i + MR2` inside `q` (padded by `MR` rows).
                unsafe {
                    let at = tp.add((panel * groups + g) * PANEL * 4);
                    let b = [
                        _mm256_loadu_si256(at.cast::<__m256i>()),
                        _mm256_loadu_si256(at.add(4 * HALF).cast::<__m256i>()),
                    ];
                    for (r, acc_r) in acc16.iter_mut().enumerate() {
                        let a = _mm256_set1_epi32(
                            qp.add((i + r) * dp + 4 * g).cast::<i32>().read_unaligned(),
                        );
                        for (acc_rh, &b_h) in acc_r.iter_mut().zip(&b) {
                            *acc_rh = _mm256_add_epi16(*acc_rh, _mm256_maddubs_epi16(a, b_h));
                        }
                    }
                }
            }
            for (acc_r, acc16_r) in acc.iter_mut().zip(&acc16) {
                for (a32, &a16) in acc_r.iter_mut().zip(acc16_r) {
                    *a32 = _mm256_add_epi32(*a32, _mm256_madd_epi16(a16, ones));
                }
            }
            g0 = g1;
        }
        for (r, acc_r) in acc.iter().enumerate().take(rows) {
            let qn = _mm256_set1_epi32(data.qn[i + r]);
            let out_row = (i + r - qs) * tt;
            for (h, &acc_rh) in acc_r.iter().enumerate() {
                let col = p * PANEL + h * HALF;
                if col >= tt {
                    break;
                }
                let valid = (tt - col).min(HALF);
                // SAFETY: `tn` is padded to whole panels; the stores write columns
                // `col..col + valid` of row `out_row`, inside `buf` (its length was checked).
                unsafe {
                    let tn = _mm256_loadu_si256(data.tn.as_ptr().add(ts + col).cast::<__m256i>());
                    let dist = _mm256_cvtepi32_ps(_mm256_sub_epi32(
                        _mm256_add_epi32(qn, tn),
                        _mm256_slli_epi32::<1>(acc_rh),
                    ));
                    let out = buf.as_mut_ptr().add(out_row + col);
                    if valid == HALF {
                        _mm256_storeu_ps(out, dist);
                    } else {
                        let mut lanes = [0.0f32; HALF];
                        _mm256_storeu_ps(lanes.as_mut_ptr(), dist);
                        std::ptr::copy_nonoverlapping(lanes.as_ptr(), out, valid);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Kernel, SmallIntFill, feature_minima, i16_run, kernels, pack_direct};
    use crate::neighbors::Metric;
    use ndarray::Array2;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        *seed >> 33
    }

    #[test]
    fn eligibility() {
        let ok = [0.0f64, 127.0, -5.0, 122.0];
        assert!(feature_minima(&ok[..2], &ok[2..], 2).is_some());
        assert!(feature_minima(&[0.0f64, 0.0], &[128.0, 0.0], 2).is_none());
        assert!(feature_minima(&[0.5f64], &[1.0], 1).is_none());
        assert!(feature_minima(&[f64::NAN], &[1.0], 1).is_none());
        assert!(feature_minima(&[f64::INFINITY], &[1.0], 1).is_none());
        // 1041 features spanning 127: distances can reach 2^24.
        let wide = vec![127.0f32; 1041];
        assert!(feature_minima(&wide, &vec![0.0f32; 1041], 1041).is_none());
        assert!(feature_minima(&wide[..1040], &vec![0.0f32; 1040], 1040).is_some());
    }

    #[test]
    fn direct_packing_takes_bytes_only() {
        assert!(pack_direct(&[0.0f64, 127.0], &[-0.0, 5.0], 2).is_some());
        assert!(pack_direct(&[0.0f32, 127.0], &[3.0, 5.0], 2).is_some());
        for bad in [
            -1.0,
            128.0,
            0.5,
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
            1e300,
        ] {
            assert!(pack_direct(&[bad, 1.0], &[1.0, 1.0], 2).is_none(), "{bad}");
            assert!(pack_direct(&[1.0, 1.0], &[1.0, bad], 2).is_none(), "{bad}");
        }
        // The largest possible distance must stay below 2^24 (1041 * 127^2 does not).
        assert!(pack_direct(&[127.0f32; 1041], &[0.0f32; 1041], 1041).is_none());
        assert!(pack_direct(&[127.0f32; 1040], &[0.0f32; 1040], 1040).is_some());
    }

    #[test]
    fn i16_runs_stay_below_the_lane_limit() {
        // Two features per 16-bit lane: 127^2 + 127^2 = 32258, one group per run.
        assert_eq!(i16_run(&[127; 8]), 1);
        // The digits' 0..16: 16^2 + 16^2 = 512 per group, 63 groups.
        assert_eq!(i16_run(&[16; 64]), 63);
        // The widest pair sets the run; a missing fourth feature counts as 0.
        assert_eq!(i16_run(&[1, 1, 100, 2, 3]), 32767 / 10_004);
        assert_eq!(i16_run(&[0; 3]), 32767);
        for bound in [vec![127, 126, 1, 0, 5], vec![40; 9], vec![16; 67]] {
            let run = i16_run(&bound);
            let widest = (0..bound.len().div_ceil(4))
                .flat_map(|g| [(4 * g, 4 * g + 1), (4 * g + 2, 4 * g + 3)])
                .map(|(a, b)| {
                    let sq = |f: usize| bound.get(f).map_or(0, |&v: &i32| v * v);
                    sq(a) + sq(b)
                })
                .max()
                .unwrap();
            assert!(run >= 1 && run as i32 * widest <= i32::from(i16::MAX));
            assert!((run as i32 + 1) * widest > i32::from(i16::MAX));
        }
    }

    /// Every shape edge (rows not a multiple of the micro-tile, columns not of a panel, odd
    /// feature counts), for data packed as it is (bytes already) and data shifted by each
    /// feature's minimum (negative values, an offset), with values up to 127 (one group per
    /// 16-bit run of the AVX2 kernel), up to 40 (runs of 10 groups) and up to 16 (every
    /// group in one run): the distances are the exact integers, with every kernel the CPU
    /// has.
    #[test]
    fn tiles_are_exact_squared_distances() {
        let mut seed = 7u64;
        let cases = [
            (1, 1, 1),
            (7, 33, 5),
            (13, 70, 64),
            (6, 16, 3),
            (25, 300, 67),
            (9, 40, 130),
        ];
        let kinds = [(0, 128), (1, 128), (2, 128), (0, 17), (1, 41), (2, 17)];
        for (&(n_q, n_t, d), (kind, top)) in cases
            .iter()
            .flat_map(|c| kinds.iter().map(move |&k| (c, k)))
        {
            let mut draw = |n: usize| {
                Array2::from_shape_fn((n, d), |(_, f)| {
                    let v = (lcg(&mut seed) % top) as f64;
                    match kind {
                        0 => v,
                        1 => v - f as f64,
                        _ => v + 1000.0,
                    }
                })
            };
            let (q, t) = (draw(n_q), draw(n_t));
            let (qs, ts) = (q.as_slice().unwrap(), t.as_slice().unwrap());
            // Bytes already exactly when no value is negative (the offset data never is).
            let bytes = q.iter().chain(&t).all(|&v| (0.0..=127.0).contains(&v));
            assert_eq!(pack_direct(qs, ts, d).is_some(), bytes);
            match kind {
                0 => assert!(bytes),
                2 => assert!(!bytes),
                _ => {}
            }
            let best = SmallIntFill::new(q.view(), t.view(), &Metric::SqEuclidean);
            // Only a CPU with neither kernel declines this data.
            assert_eq!(best.is_some(), !kernels().is_empty());
            for &kernel in kernels() {
                let tiles =
                    SmallIntFill::with_kernel(q.view(), t.view(), &Metric::SqEuclidean, kernel)
                        .expect("every kernel takes this data");
                assert_eq!(tiles.kernel, kernel);
                if kernel == Kernel::Avx2 && top <= 17 {
                    assert!(tiles.run >= d.div_ceil(4), "one run for every group");
                }
                exact_tiles(&tiles, &q, &t);
            }
        }
    }

    fn exact_tiles(tiles: &SmallIntFill, q: &Array2<f64>, t: &Array2<f64>) {
        let (n_q, n_t, d) = (q.nrows(), t.nrows(), q.ncols());
        for (qs, qe) in [(0, n_q), (n_q / 2, n_q)] {
            for ts in (0..n_t).step_by(32) {
                let te = (ts + 48).min(n_t);
                let mut buf = vec![f32::NAN; (qe - qs) * (te - ts)];
                tiles.tile(qs, qe, ts, te, &mut buf);
                for i in qs..qe {
                    for j in ts..te {
                        let exact: f64 = (0..d).map(|f| (q[[i, f]] - t[[j, f]]).powi(2)).sum();
                        let got = buf[(i - qs) * (te - ts) + (j - ts)];
                        assert_eq!(f64::from(got), exact, "({n_q},{n_t},{d}) {i} {j}");
                    }
                }
            }
        }
    }
}
