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
    /// `eˣ` written so that a loop over it vectorizes (no library call, no branch): `f32` by
    /// range reduction `x = n·ln 2 + r` (`|r| ≤ ½ ln 2`, `ln 2` split in two parts), Cephes'
    /// degree-6 polynomial of `expf` on `r` and `2ⁿ` built from its bits — within 1 ulp of `eˣ`,
    /// `+∞` above 88.72, `0` below −87.33 (where `eˣ` is subnormal), NaN for NaN; made of +, ×
    /// and bit operations only (never fused), so every build gives the same bits. `f64` is the
    /// library's `exp`.
    fn exp_vectorizable(self) -> Self;
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
    #[inline(always)]
    #[allow(clippy::excessive_precision)]
    fn exp_vectorizable(self) -> f32 {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_359_375;
        const LN2_LO: f32 = -2.121_944_40e-4;
        // 1.5·2²³: adding it rounds to an integer held in the low bits of the mantissa.
        const ROUND: f32 = 12_582_912.0;
        const HI: f32 = 88.72;
        const LO: f32 = -87.33;
        // Comparisons, not `clamp`: a NaN passes through unchanged.
        let x = if self > HI {
            HI
        } else if self < LO {
            LO
        } else {
            self
        };
        let t = x * LOG2E + ROUND;
        let n = t - ROUND;
        let r = x - n * LN2_HI - n * LN2_LO;
        let p = ((((1.987_569_150_0e-4 * r + 1.398_199_950_7e-3) * r + 8.333_451_907_3e-3) * r
            + 4.166_579_589_4e-2)
            * r
            + 1.666_666_545_9e-1)
            * r
            + 5.000_000_120_1e-1;
        let e = p * r * r + r + 1.0;
        // n ∈ [−126, 128]: 2ⁿ as 2^⌊n/2⌋·2^⌈n/2⌉, each factor a normal number.
        let n_int = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
        let pow2 = |m: i32| f32::from_bits(((m + 127) as u32) << 23);
        let v = e * pow2(n_int >> 1) * pow2(n_int - (n_int >> 1));
        if self > HI {
            f32::INFINITY
        } else if self < LO {
            0.0
        } else {
            v
        }
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
    #[inline(always)]
    fn exp_vectorizable(self) -> f64 {
        self.exp()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorizable `f32` exponential is within 1 ulp of the correctly rounded `eˣ` over its
    /// whole normal range, saturates outside it and passes NaN through.
    #[test]
    fn vectorizable_exp_is_within_one_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.3f32;
        while x < 88.7 {
            let exact = (x as f64).exp();
            let got = x.exp_vectorizable() as f64;
            let ulp = (exact as f32).abs().max(f32::MIN_POSITIVE) as f64 * f32::EPSILON as f64;
            worst = worst.max((got - exact).abs() / ulp);
            x += 1.7e-3;
        }
        assert!(worst <= 1.0, "worst error {worst} ulp");
        assert_eq!(0.0f32.exp_vectorizable(), 1.0);
        assert_eq!(100.0f32.exp_vectorizable(), f32::INFINITY);
        assert_eq!(f32::INFINITY.exp_vectorizable(), f32::INFINITY);
        assert_eq!((-100.0f32).exp_vectorizable(), 0.0);
        assert_eq!(f32::NEG_INFINITY.exp_vectorizable(), 0.0);
        assert!(f32::NAN.exp_vectorizable().is_nan());
        assert_eq!(1.5f64.exp_vectorizable(), 1.5f64.exp());
    }
}
