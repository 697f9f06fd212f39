//! Reconstruction metrics of METHODS.md §7.1: per-pixel mean squared error (raw and with the
//! reconstruction clipped to `[0, 1]`, the range image data are scaled to) and the relative
//! Frobenius error `‖X − X̂‖_F / ‖X‖_F`. Sums accumulate in `f64`.

use faer::MatRef;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::real::Real;

/// Errors of a reconstruction `X̂` of `X` (both `n × m`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionError {
    /// `‖X − X̂‖² / (n·m)`: the report's "reconstruction MSE" (per pixel, averaged over images).
    pub mse: f64,
    /// The same with `X̂` clipped to `[0, 1]` first (the authors' "clip" column, §6.7).
    pub mse_clipped: f64,
    /// `‖X − X̂‖_F / ‖X‖_F` (0 when `X = 0` and `X̂ = 0`).
    pub rel_error: f64,
}

/// [`ReconstructionError`] of `recon` against `x`.
pub fn reconstruction_error<T: Real>(x: MatRef<'_, T>, recon: MatRef<'_, T>) -> Result<ReconstructionError> {
    same_shape("reconstruction", x, recon)?;
    let (mut sq, mut sq_clip, mut norm) = (0.0f64, 0.0f64, 0.0f64);
    for j in 0..x.ncols() {
        for (a, b) in x.col(j).iter().zip(recon.col(j).iter()) {
            let (a, b) = (Real::to_f64(*a), Real::to_f64(*b));
            sq += (a - b) * (a - b);
            let c = b.clamp(0.0, 1.0);
            sq_clip += (a - c) * (a - c);
            norm += a * a;
        }
    }
    let count = (x.nrows() * x.ncols()).max(1) as f64;
    Ok(ReconstructionError {
        mse: sq / count,
        mse_clipped: sq_clip / count,
        rel_error: if norm > 0.0 { (sq / norm).sqrt() } else { sq.sqrt() },
    })
}

/// Mean squared error per entry between two `n × m` matrices, raw and with `b` clipped to
/// `[0, 1]` (used by the max-approximation errors of §7.5).
pub fn mse_pair<T: Real>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> Result<(f64, f64)> {
    let r = reconstruction_error(a, b)?;
    Ok((r.mse, r.mse_clipped))
}

pub(crate) fn same_shape<T: Real>(what: &str, a: MatRef<'_, T>, b: MatRef<'_, T>) -> Result<()> {
    if a.nrows() != b.nrows() || a.ncols() != b.ncols() {
        return Err(Error::ShapeMismatch {
            what: what.to_string(),
            expected: format!("{} × {}", a.nrows(), a.ncols()),
            found: format!("{} × {}", b.nrows(), b.ncols()),
            hint: "compare matrices of the same samples and features".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    #[test]
    fn reconstruction_error_matches_hand_computation() {
        let x = Mat::<f64>::from_fn(2, 2, |i, j| (i + j) as f64 * 0.5);
        // X = [[0, .5], [.5, 1]]; X̂ = [[0, 1.5], [.5, 1]] → one error of 1 (clipped: 0.5).
        let mut r = x.clone();
        r[(0, 1)] = 1.5;
        let e = reconstruction_error(x.as_ref(), r.as_ref()).unwrap();
        assert!((e.mse - 0.25).abs() < 1e-15);
        assert!((e.mse_clipped - 0.0625).abs() < 1e-15);
        assert!((e.rel_error - (1.0f64 / 1.5).sqrt()).abs() < 1e-15);
        let zero = Mat::<f64>::zeros(2, 2);
        assert_eq!(
            reconstruction_error(zero.as_ref(), zero.as_ref())
                .unwrap()
                .rel_error,
            0.0
        );
        assert!(reconstruction_error(x.as_ref(), Mat::<f64>::zeros(2, 3).as_ref()).is_err());
    }
}
