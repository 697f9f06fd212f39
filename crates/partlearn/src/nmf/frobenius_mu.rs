//! The multiplicative update of one factor for the Frobenius loss (METHODS.md §1.2).

use faer::{MatMut, MatRef};

use super::MU_FLOOR;
use crate::linalg;
use crate::nmf::options::Penalty;
use crate::real::Real;

/// `F ← max(ε, F ⊙ C ⊘ (G F + l1 + l2·F))` (METHODS.md §1.2 with §1.5's penalties); `gf` = `G F`.
pub(super) fn mu_frobenius_step<T: Real>(
    f: MatMut<'_, T>,
    c: MatRef<'_, T>,
    gf: MatRef<'_, T>,
    pen: Penalty,
    parallel: bool,
) {
    let (Some(c), Some(gf)) = (c.try_as_col_major(), gf.try_as_col_major()) else {
        unreachable!("workspaces are column-major")
    };
    let (l1, l2) = (T::from_f64(pen.l1), T::from_f64(pen.l2));
    let (floor, tiny) = (T::from_f64(MU_FLOOR), T::min_positive_value());
    crate::nmf::beta::for_cols(f, parallel, |j, col| {
        linalg::kernels::simd(MuStep {
            f: col,
            c: c.col(j).as_slice(),
            g: gf.col(j).as_slice(),
            l1,
            l2,
            floor,
            tiny,
        })
    });
}

/// One column of [`mu_frobenius_step`]: `f ← max(floor, f·c / max(tiny, g + l1 + l2·f))`, over
/// slices so that it vectorizes (the division dominates a scalar loop over the codes).
struct MuStep<'a, T> {
    f: &'a mut [T],
    c: &'a [T],
    g: &'a [T],
    l1: T,
    l2: T,
    floor: T,
    tiny: T,
}

impl<T: Real> linalg::kernels::Kernel for MuStep<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        let n = self.f.len();
        let (c, g) = (&self.c[..n], &self.g[..n]);
        for i in 0..n {
            let old = self.f[i];
            let den = g[i] + self.l1 + self.l2 * old;
            let new = old * c[i] / den.max(self.tiny);
            self.f[i] = new.max(self.floor);
        }
    }
}
