//! The float types kernels are generic over: `f32` and `f64`.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A floating-point element type oxlearn kernels run on (`f32` or `f64`).
///
/// Inputs keep the dtype the user gave them: float32 data is computed in float32 end to end.
pub trait Real:
    num_traits::Float
    + num_traits::FromPrimitive
    + ndarray::ScalarOperand
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Debug
    + Default
    + Send
    + Sync
    + 'static
{
    /// Converts an `f64` constant (a hyper-parameter, say) to this type.
    fn from_f64_lossy(v: f64) -> Self;
    /// Widens to `f64` (for losses and scores reported to Python).
    fn to_f64_lossless(self) -> f64;
    /// The slice itself when `Self` is `f32` (kernels that can use float32 data as it is).
    fn as_f32_slice(s: &[Self]) -> Option<&[f32]>;
}

impl Real for f32 {
    #[inline]
    fn from_f64_lossy(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn to_f64_lossless(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    fn as_f32_slice(s: &[Self]) -> Option<&[f32]> {
        Some(s)
    }
}

impl Real for f64 {
    #[inline]
    fn from_f64_lossy(v: f64) -> Self {
        v
    }
    #[inline]
    fn to_f64_lossless(self) -> f64 {
        self
    }
    #[inline]
    fn as_f32_slice(_: &[Self]) -> Option<&[f32]> {
        None
    }
}
