//! Multiplicative updates for a general β-divergence (METHODS.md §1.2; Févotte & Idier 2011):
//! `F ← max(ε, F ⊙ [num ⊘ (den + l1 + l2·F)]^γ(β))` with, for the codes,
//! `num = Wᵀ((WH)^{β−2} ⊙ X)`, `den = Wᵀ(WH)^{β−1}` (for β = 1, `den` is the column sums of `W`),
//! and the same pattern for the atoms. Unlike the Frobenius solvers it needs `V = WH` (`m × n`)
//! explicitly: two products with `X`'s shape per half-step.

use faer::reborrow::ReborrowMut;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::fit_loop::{Eval, Iterate};
use super::frobenius::{sums, MU_FLOOR};
use super::init::Factors;
use super::options::Penalty;
use crate::linalg;
use crate::real::Real;

/// Columns per parallel task of the elementwise passes.
const CHUNK: usize = 64;

/// The exponent `γ(β)` that makes MU monotone (Févotte & Idier 2011).
pub(crate) fn gamma(beta: f64) -> f64 {
    if beta < 1.0 {
        1.0 / (2.0 - beta)
    } else if beta > 2.0 {
        1.0 / (beta - 1.0)
    } else {
        1.0
    }
}

/// `d_β(x | y)` for one entry (METHODS.md §1): β = 1 generalized KL, β = 0 Itakura–Saito.
#[inline]
pub fn beta_div(x: f64, y: f64, beta: f64) -> f64 {
    if beta == 2.0 {
        0.5 * (x - y) * (x - y)
    } else if beta == 1.0 {
        if x > 0.0 {
            x * (x / y).ln() - x + y
        } else {
            y
        }
    } else if beta == 0.0 {
        x / y - (x / y).ln() - 1.0
    } else {
        (x.powf(beta) + (beta - 1.0) * y.powf(beta) - beta * x * y.powf(beta - 1.0)) / (beta * (beta - 1.0))
    }
}

/// Workspaces of a β-MU fit.
pub(crate) struct BetaMu<'a, T: Real> {
    x: MatRef<'a, T>,
    beta: f64,
    codes_pen: Penalty,
    atoms_pen: Penalty,
    par: Par,
    /// `V = WH`, kept valid for the current factors between calls.
    v: Mat<T>,
    /// `X ⊙ V^{β−2}` and `V^{β−1}`.
    a: Mat<T>,
    b: Mat<T>,
    num_h: Mat<T>,
    den_h: Mat<T>,
    num_w: Mat<T>,
    den_w: Mat<T>,
    /// Whether only the codes are updated (`encode`).
    pub codes_only: bool,
    /// `num_h`, `den_h` already hold the terms of the current factors.
    codes_fresh: bool,
}

impl<'a, T: Real> BetaMu<'a, T> {
    pub fn new(
        x: MatRef<'a, T>,
        k: usize,
        beta: f64,
        codes_pen: Penalty,
        atoms_pen: Penalty,
        par: Par,
    ) -> Self {
        let (m, n) = (x.nrows(), x.ncols());
        let need_b = beta != 1.0;
        BetaMu {
            x,
            beta,
            codes_pen,
            atoms_pen,
            par,
            v: Mat::zeros(m, n),
            a: Mat::zeros(m, n),
            b: if need_b {
                Mat::zeros(m, n)
            } else {
                Mat::zeros(0, 0)
            },
            num_h: Mat::zeros(k, n),
            den_h: Mat::zeros(k, n),
            num_w: Mat::zeros(k, m),
            den_w: Mat::zeros(k, m),
            codes_only: false,
            codes_fresh: false,
        }
    }

    fn parallel(&self) -> bool {
        !matches!(self.par, Par::Seq)
    }

    /// `V ← WH`, floored at the smallest positive value so that divisions and logs stay finite.
    fn product(&mut self, f: &Factors<T>) {
        linalg::matmul(
            self.v.as_mut(),
            Accum::Replace,
            f.wt.transpose(),
            f.h.as_ref(),
            T::one(),
            self.par,
        );
        let tiny = T::min_positive_value();
        let parallel = self.parallel();
        for_cols(self.v.as_mut(), parallel, |_, col| {
            for e in col.iter_mut() {
                if *e < tiny {
                    *e = tiny;
                }
            }
        });
    }

    /// `A = X ⊙ V^{β−2}`, `B = V^{β−1}` from the current `V`.
    fn ratios(&mut self) {
        let (x, v, beta) = (self.x, self.v.as_ref(), self.beta);
        let parallel = self.parallel();
        for_cols(self.a.as_mut(), parallel, |j, col| {
            for (i, e) in col.iter_mut().enumerate() {
                let (xv, vv) = (x[(i, j)], v[(i, j)]);
                *e = if beta == 1.0 {
                    xv / vv
                } else if beta == 0.0 {
                    xv / (vv * vv)
                } else {
                    xv * vv.powf(T::from_f64(beta - 2.0))
                };
            }
        });
        if beta != 1.0 {
            for_cols(self.b.as_mut(), parallel, |j, col| {
                for (i, e) in col.iter_mut().enumerate() {
                    let vv = v[(i, j)];
                    *e = if beta == 0.0 {
                        vv.recip()
                    } else {
                        vv.powf(T::from_f64(beta - 1.0))
                    };
                }
            });
        }
    }

    fn update_codes(&mut self, f: &mut Factors<T>) {
        if !std::mem::take(&mut self.codes_fresh) {
            self.codes_terms(f);
        }
        mu_step(
            f.h.as_mut(),
            self.num_h.as_ref(),
            self.den_h.as_ref(),
            self.codes_pen,
            gamma(self.beta),
            self.parallel(),
        );
        self.product(f);
    }

    /// `num_h = Wᵀ(X ⊙ V^{β−2})`, `den_h = Wᵀ V^{β−1}` (∇_H = den_h − num_h).
    fn codes_terms(&mut self, f: &Factors<T>) {
        self.ratios();
        let par = self.par;
        linalg::matmul(
            self.num_h.as_mut(),
            Accum::Replace,
            f.wt.as_ref(),
            self.a.as_ref(),
            T::one(),
            par,
        );
        if self.beta == 1.0 {
            // Wᵀ1: each row j is the sum of atom j.
            let sums: Vec<T> = (0..f.wt.nrows())
                .map(|j| (0..f.wt.ncols()).map(|i| f.wt[(j, i)]).sum())
                .collect();
            for_cols(self.den_h.as_mut(), false, |_, col| col.copy_from_slice(&sums));
        } else {
            linalg::matmul(
                self.den_h.as_mut(),
                Accum::Replace,
                f.wt.as_ref(),
                self.b.as_ref(),
                T::one(),
                par,
            );
        }
    }

    fn update_atoms(&mut self, f: &mut Factors<T>) {
        self.atoms_terms(f);
        mu_step(
            f.wt.as_mut(),
            self.num_w.as_ref(),
            self.den_w.as_ref(),
            self.atoms_pen,
            gamma(self.beta),
            self.parallel(),
        );
        self.product(f);
    }

    /// `num_w = H(X ⊙ V^{β−2})ᵀ`, `den_w = H(V^{β−1})ᵀ` (∇_{Wᵀ} = den_w − num_w).
    fn atoms_terms(&mut self, f: &Factors<T>) {
        self.ratios();
        let par = self.par;
        linalg::matmul(
            self.num_w.as_mut(),
            Accum::Replace,
            f.h.as_ref(),
            self.a.transpose(),
            T::one(),
            par,
        );
        if self.beta == 1.0 {
            // 1Hᵀ: each row j is the sum of code row j.
            let sums: Vec<T> = (0..f.h.nrows())
                .map(|j| (0..f.h.ncols()).map(|i| f.h[(j, i)]).sum())
                .collect();
            for_cols(self.den_w.as_mut(), false, |_, col| col.copy_from_slice(&sums));
        } else {
            linalg::matmul(
                self.den_w.as_mut(),
                Accum::Replace,
                f.h.as_ref(),
                self.b.transpose(),
                T::one(),
                par,
            );
        }
    }

    /// β-divergence, squared Frobenius error and penalties of the current `V`.
    fn eval(&self, f: &Factors<T>) -> Eval {
        let (x, v, beta) = (self.x, self.v.as_ref(), self.beta);
        let per_col = |j: usize| -> (f64, f64) {
            let (mut d, mut e) = (0.0, 0.0);
            for i in 0..x.nrows() {
                let (xv, vv) = (x[(i, j)].to_f64(), v[(i, j)].to_f64());
                d += beta_div(xv, vv, beta);
                e += (xv - vv) * (xv - vv);
            }
            (d, e)
        };
        // Per-column partial sums are combined in column order: same bits for any thread count.
        let parts: Vec<(f64, f64)> = if self.parallel() {
            (0..x.ncols()).into_par_iter().map(per_col).collect()
        } else {
            (0..x.ncols()).map(per_col).collect()
        };
        let (mut div, mut sq_error) = (0.0, 0.0);
        for (d, e) in parts {
            div += d;
            sq_error += e;
        }
        let mut objective = div;
        if !self.codes_pen.is_zero() {
            let (s, s2) = sums(f.h.as_ref());
            objective += self.codes_pen.value(s, s2);
        }
        if !self.codes_only && !self.atoms_pen.is_zero() {
            let (s, s2) = sums(f.wt.as_ref());
            objective += self.atoms_pen.value(s, s2);
        }
        Eval { objective, sq_error }
    }
}

impl<T: Real> Iterate<T> for BetaMu<'_, T> {
    fn initial(&mut self, f: &mut Factors<T>) -> Eval {
        self.product(f);
        self.eval(f)
    }

    fn iterate(&mut self, f: &mut Factors<T>) -> Eval {
        self.update_codes(f);
        if !self.codes_only {
            self.update_atoms(f);
        }
        self.eval(f)
    }

    /// ∇_H = den_h − num_h + l1 + l2·H and ∇_{Wᵀ} likewise, at the current factors; the codes'
    /// terms are reused by the next iteration, so the rule adds the atoms' two GEMMs. Iterates
    /// at the MU floor count as being at the bound.
    fn projected_gradient(&mut self, f: &Factors<T>) -> Option<f64> {
        self.codes_terms(f);
        self.codes_fresh = true;
        let mut sq = projected_sq_split(
            f.h.as_ref(),
            self.num_h.as_ref(),
            self.den_h.as_ref(),
            self.codes_pen,
        );
        if !self.codes_only {
            self.atoms_terms(f);
            sq += projected_sq_split(
                f.wt.as_ref(),
                self.num_w.as_ref(),
                self.den_w.as_ref(),
                self.atoms_pen,
            );
        }
        Some(sq.sqrt())
    }
}

/// `Σ (∇ᴾ)²` with `∇ = den − num + l1 + l2·F` (METHODS.md §1.6), entries at the MU floor at
/// the bound; column partial sums added in column order.
fn projected_sq_split<T: Real>(
    f: MatRef<'_, T>,
    num: MatRef<'_, T>,
    den: MatRef<'_, T>,
    pen: Penalty,
) -> f64 {
    let mut total = 0.0;
    for j in 0..f.ncols() {
        let mut s = 0.0;
        for i in 0..f.nrows() {
            let x = f[(i, j)].to_f64();
            let g = den[(i, j)].to_f64() - num[(i, j)].to_f64() + pen.l1 + pen.l2 * x;
            let p = if x > MU_FLOOR { g } else { g.min(0.0) };
            s += p * p;
        }
        total += s;
    }
    total
}

/// `F ← max(ε, F ⊙ [num ⊘ (den + l1 + l2·F)]^γ)`.
pub(crate) fn mu_step<T: Real>(
    f: MatMut<'_, T>,
    num: MatRef<'_, T>,
    den: MatRef<'_, T>,
    pen: Penalty,
    gamma: f64,
    parallel: bool,
) {
    let (l1, l2) = (T::from_f64(pen.l1), T::from_f64(pen.l2));
    let (floor, tiny, g) = (T::from_f64(MU_FLOOR), T::min_positive_value(), T::from_f64(gamma));
    for_cols(f, parallel, |j, col| {
        for (i, e) in col.iter_mut().enumerate() {
            let d = (den[(i, j)] + l1 + l2 * *e).max(tiny);
            let ratio = num[(i, j)] / d;
            let ratio = if gamma == 1.0 { ratio } else { ratio.powf(g) };
            *e = (*e * ratio).max(floor);
        }
    });
}

/// Runs `op(j, column j as a slice)` over the columns of a column-major matrix, in parallel
/// chunks when asked (each column is handled by one call, so the result is thread-independent).
pub(crate) fn for_cols<T: Real>(mut m: MatMut<'_, T>, parallel: bool, op: impl Fn(usize, &mut [T]) + Sync) {
    let run = |j0: usize, chunk: MatMut<'_, T>| {
        let Some(mut chunk) = chunk.try_as_col_major_mut() else {
            unreachable!("workspaces are column-major")
        };
        for jj in 0..chunk.ncols() {
            op(j0 + jj, chunk.rb_mut().col_mut(jj).as_slice_mut());
        }
    };
    if parallel {
        m.par_col_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(t, c)| run(t * CHUNK, c));
    } else {
        run(0, m.as_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_special_cases() {
        assert!((beta_div(2.0, 1.0, 2.0) - 0.5).abs() < 1e-15);
        assert!((beta_div(2.0, 1.0, 1.0) - (2.0 * 2f64.ln() - 1.0)).abs() < 1e-15);
        assert!((beta_div(0.0, 3.0, 1.0) - 3.0).abs() < 1e-15);
        assert!((beta_div(2.0, 1.0, 0.0) - (2.0 - 2f64.ln() - 1.0)).abs() < 1e-15);
        // The general formula tends to the special cases.
        for (b, eps) in [(1.0, 1e-6), (0.0, 1e-6), (2.0, 1e-6)] {
            let near = beta_div(2.0, 1.3, b + eps);
            assert!((near - beta_div(2.0, 1.3, b)).abs() < 1e-5, "β = {b}");
        }
        assert_eq!(gamma(0.5), 1.0 / 1.5);
        assert_eq!(gamma(3.0), 0.5);
        assert_eq!(gamma(1.5), 1.0);
    }
}
