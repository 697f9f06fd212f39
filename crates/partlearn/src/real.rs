//! The float types the library computes in.
//!
//! Numeric code is written once over [`Real`] and instantiated for `f32` (the default for images)
//! and `f64` (for tests of the mathematics and for users who need it). Reductions that decide a
//! stopping rule (objectives, norms) accumulate in `f64` whatever `T` is.

use faer::traits::RealField;

/// A real scalar type partlearn computes in: `f32` or `f64`.
pub trait Real:
    RealField
    + num_traits::Float
    + Copy
    + Default
    + Send
    + Sync
    + std::fmt::Debug
    + std::fmt::Display
    + std::iter::Sum
    + 'static
{
    /// Name used in files and messages ("f32" / "f64").
    const NAME: &'static str;
    /// Machine epsilon of the type.
    const EPSILON: Self;
    /// Largest finite value, as `f64`.
    const MAX_F64: f64;
    /// Smallest positive normal value, as `f64`.
    const MIN_POSITIVE_F64: f64;
    /// Lossy conversion from `f64`.
    fn from_f64(x: f64) -> Self;
    /// Lossless (f32) or identity (f64) conversion to `f64`.
    fn to_f64(self) -> f64;
    /// Conversion from a count or index.
    fn from_usize(x: usize) -> Self {
        Self::from_f64(x as f64)
    }
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    const EPSILON: Self = f32::EPSILON;
    const MAX_F64: f64 = f32::MAX as f64;
    const MIN_POSITIVE_F64: f64 = f32::MIN_POSITIVE as f64;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    const EPSILON: Self = f64::EPSILON;
    const MAX_F64: f64 = f64::MAX;
    const MIN_POSITIVE_F64: f64 = f64::MIN_POSITIVE;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

/// `x` for a message: as Rust prints it for ordinary magnitudes, in scientific notation for very
/// small or very large ones (`-1e-300`, not 303 digits).
pub fn short_number(x: f64) -> String {
    let a = x.abs();
    if a != 0.0 && a.is_finite() && !(1e-4..1e15).contains(&a) {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}
