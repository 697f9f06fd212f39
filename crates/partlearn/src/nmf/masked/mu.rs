//! Weighted multiplicative updates for any β-divergence with missing entries (METHODS.md §11.2,
//! §1.2; Févotte & Idier 2011): with `V = WH` and the mask `M`,
//! `H ← max(ε, H ⊙ [Wᵀ(M ⊙ X ⊙ V^{β−2}) ⊘ (Wᵀ(M ⊙ V^{β−1}) + l1 + l2·H)]^γ(β))`, and the same
//! for the atoms with `Hᵀ`. Hidden entries contribute nothing, so the update is the unmasked one
//! on the weighted divergence `Σ M ⊙ d_β(X | V)`, monotone under the same γ. `V` is formed
//! explicitly (three products of `X`'s shape per half-step, all GEMMs).

use faer::{Accum, Mat, MatRef, Par};

use super::super::beta::{beta_div, for_cols, gamma};
use super::super::fit_loop::{Eval, Iterate};
use super::super::frobenius::{sums, MU_FLOOR};
use super::super::init::Factors;
use super::super::options::Penalty;
use super::mask::Mask;
use crate::linalg;
use crate::real::Real;

/// Masked β-MU workspaces.
pub(crate) struct MaskedMu<'a, T: Real> {
    x0: MatRef<'a, T>,
    mask: &'a Mask,
    beta: f64,
    codes_pen: Penalty,
    atoms_pen: Penalty,
    par: Par,
    /// `V = WH`, valid for the current factors when `v_fresh`.
    v: Mat<T>,
    v_fresh: bool,
    /// `M ⊙ X ⊙ V^{β−2}` (unused for β = 2, where it is `X₀`) and `M ⊙ V^{β−1}`.
    a: Mat<T>,
    b: Mat<T>,
    num_h: Mat<T>,
    den_h: Mat<T>,
    num_w: Mat<T>,
    den_w: Mat<T>,
    /// Update the codes only (the masked `encode` for β ≠ 2).
    pub codes_only: bool,
}

impl<'a, T: Real> MaskedMu<'a, T> {
    /// `x0` is `m × n` (samples as columns, hidden entries 0).
    pub fn new(
        x0: MatRef<'a, T>,
        mask: &'a Mask,
        k: usize,
        beta: f64,
        codes_pen: Penalty,
        atoms_pen: Penalty,
        par: Par,
    ) -> Self {
        let (m, n) = (x0.nrows(), x0.ncols());
        MaskedMu {
            x0,
            mask,
            beta,
            codes_pen,
            atoms_pen,
            par,
            v: Mat::zeros(m, n),
            v_fresh: false,
            a: if beta == 2.0 {
                Mat::zeros(0, 0)
            } else {
                Mat::zeros(m, n)
            },
            b: Mat::zeros(m, n),
            num_h: Mat::zeros(k, n),
            den_h: Mat::zeros(k, n),
            num_w: Mat::zeros(k, m),
            den_w: Mat::zeros(k, m),
            codes_only: false,
        }
    }

    fn parallel(&self) -> bool {
        !matches!(self.par, Par::Seq)
    }

    fn product(&mut self, f: &Factors<T>) {
        linalg::matmul(
            self.v.as_mut(),
            Accum::Replace,
            f.wt.transpose(),
            f.h.as_ref(),
            T::one(),
            self.par,
        );
    }

    /// `a`, `b` from `V` and the mask.
    fn ratios(&mut self) {
        let (beta, mask, v, x0) = (self.beta, self.mask, &self.v, self.x0);
        let par = self.parallel();
        for_cols(self.b.as_mut(), par, |j, col| {
            let (fl, vc) = (mask.sample_flags(j), v.col_as_slice(j));
            for i in 0..col.len() {
                col[i] = if !fl[i] {
                    T::zero()
                } else if beta == 2.0 {
                    vc[i]
                } else if beta == 1.0 {
                    T::one()
                } else {
                    vc[i].powf(T::from_f64(beta - 1.0))
                };
            }
        });
        if beta != 2.0 {
            for_cols(self.a.as_mut(), par, |j, col| {
                let (fl, vc) = (mask.sample_flags(j), v.col_as_slice(j));
                for i in 0..col.len() {
                    col[i] = if !fl[i] {
                        T::zero()
                    } else if beta == 1.0 {
                        x0[(i, j)] / vc[i]
                    } else {
                        x0[(i, j)] * vc[i].powf(T::from_f64(beta - 2.0))
                    };
                }
            });
        }
    }

    /// The evaluation at `f` (forms `V = WH`).
    pub fn evaluate(&mut self, f: &Factors<T>) -> Eval {
        self.product(f);
        self.eval(f)
    }

    fn eval(&self, f: &Factors<T>) -> Eval {
        let (mut obj, mut sq) = (0.0, 0.0);
        for j in 0..self.x0.ncols() {
            let (fl, vc) = (self.mask.sample_flags(j), self.v.col_as_slice(j));
            let (mut o, mut s) = (0.0, 0.0);
            for i in 0..vc.len() {
                if fl[i] {
                    let (x, y) = (self.x0[(i, j)].to_f64(), vc[i].to_f64());
                    o += beta_div(x, y, self.beta);
                    s += (x - y) * (x - y);
                }
            }
            obj += o;
            sq += s;
        }
        let pen = |p: Penalty, m: MatRef<'_, T>| {
            if p.is_zero() {
                0.0
            } else {
                let (s, s2) = sums(m);
                p.value(s, s2)
            }
        };
        Eval {
            objective: obj + pen(self.codes_pen, f.h.as_ref()) + pen(self.atoms_pen, f.wt.as_ref()),
            sq_error: sq,
        }
    }
}

/// `F ← max(ε, F ⊙ [num ⊘ (den + l1 + l2·F)]^γ)`, column by column.
fn step<T: Real>(f: &mut Mat<T>, num: &Mat<T>, den: &Mat<T>, pen: Penalty, g: f64, parallel: bool) {
    let (l1, l2) = (T::from_f64(pen.l1), T::from_f64(pen.l2));
    let (floor, tiny, gt) = (T::from_f64(MU_FLOOR), T::min_positive_value(), T::from_f64(g));
    for_cols(f.as_mut(), parallel, |j, col| {
        let (nc, dc) = (num.col_as_slice(j), den.col_as_slice(j));
        for i in 0..col.len() {
            let r = nc[i] / (dc[i] + l1 + l2 * col[i]).max(tiny);
            let r = if g == 1.0 { r } else { r.powf(gt) };
            col[i] = (col[i] * r).max(floor);
        }
    });
}

impl<T: Real> Iterate<T> for MaskedMu<'_, T> {
    fn initial(&mut self, f: &mut Factors<T>) -> Eval {
        self.product(f);
        self.v_fresh = true;
        self.eval(f)
    }

    fn iterate(&mut self, f: &mut Factors<T>) -> Eval {
        let (g, par) = (gamma(self.beta), self.par);
        if !std::mem::take(&mut self.v_fresh) {
            self.product(f);
        }
        self.ratios();
        let a = if self.beta == 2.0 {
            self.x0
        } else {
            self.a.as_ref()
        };
        linalg::matmul(
            self.num_h.as_mut(),
            Accum::Replace,
            f.wt.as_ref(),
            a,
            T::one(),
            par,
        );
        linalg::matmul(
            self.den_h.as_mut(),
            Accum::Replace,
            f.wt.as_ref(),
            self.b.as_ref(),
            T::one(),
            par,
        );
        step(
            &mut f.h,
            &self.num_h,
            &self.den_h,
            self.codes_pen,
            g,
            self.parallel(),
        );
        self.product(f);
        if !self.codes_only {
            self.ratios();
            let a = if self.beta == 2.0 {
                self.x0
            } else {
                self.a.as_ref()
            };
            linalg::matmul(
                self.num_w.as_mut(),
                Accum::Replace,
                f.h.as_ref(),
                a.transpose(),
                T::one(),
                par,
            );
            linalg::matmul(
                self.den_w.as_mut(),
                Accum::Replace,
                f.h.as_ref(),
                self.b.as_ref().transpose(),
                T::one(),
                par,
            );
            step(
                &mut f.wt,
                &self.num_w,
                &self.den_w,
                self.atoms_pen,
                g,
                self.parallel(),
            );
            self.product(f);
        }
        self.v_fresh = true;
        self.eval(f)
    }
}
