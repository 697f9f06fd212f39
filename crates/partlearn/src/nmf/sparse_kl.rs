//! KL multiplicative updates (β = 1, METHODS.md §1.2) on sparse data without forming `WH`
//! (§11.1): `V = WH` is needed only at the stored entries of `X`, where the ratios `X ⊘ V` are
//! formed; then `num_h = Wᵀ(X ⊘ V)` and `num_w = H(X ⊘ V)ᵀ` are SpMMs with those values, and
//! the denominators are the atoms' and codes' row sums (`Wᵀ1`, `1Hᵀ`). The divergence is
//! `Σ_{nz} x log(x/v) − x + 1ᵀWH1`, with `1ᵀWH1 = Σ_a (Σ_p W_pa)(Σ_i H_ai)`. Per half-step:
//! `O(nnz·k)` for the ratios and `O(nnz·k)` for the SpMM, like the dense solver's two `m×n`
//! products but on the non-zeros only.
//!
//! The ratios are computed in the samples' order before a codes update and in the features'
//! order before an atoms update (each is one pass at the current factors), so no permutation
//! between the two orders is stored. Sums run over fixed row chunks added in chunk order: the
//! same bits for any thread count.

use faer::{Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::beta::{for_cols, mu_step};
use super::data_op::SparseX;
use super::fit_loop::{Eval, Iterate};
use super::frobenius::sums;
use super::init::Factors;
use super::options::Penalty;
use crate::data::Csr;
use crate::linalg::{self, spmm};
use crate::real::Real;

/// Rows per parallel task of the ratio passes.
const ROWS: usize = 256;

/// Workspaces of a sparse KL fit.
pub(crate) struct SparseKl<'a, T: Real> {
    x: &'a SparseX<'a, T>,
    codes_pen: Penalty,
    atoms_pen: Penalty,
    par: Par,
    /// `X ⊘ V` in the samples' (CSR) order and in the features' (CSC) order.
    ratio_rows: Vec<T>,
    ratio_cols: Vec<T>,
    num: Mat<T>,
    den: Mat<T>,
    num_w: Mat<T>,
    den_w: Mat<T>,
    q: Mat<T>,
    t: Mat<T>,
    /// Whether only the codes are updated (`encode`).
    pub codes_only: bool,
    /// `ratio_rows` holds the ratios of the current factors, and `sums` their `(Σ x log(x/v) −
    /// x, Σ x·v)`.
    rows_fresh: bool,
    sums: (f64, f64),
    x_sq: f64,
}

impl<'a, T: Real> SparseKl<'a, T> {
    pub fn new(x: &'a SparseX<'a, T>, k: usize, codes_pen: Penalty, atoms_pen: Penalty, par: Par) -> Self {
        let (n, m, nnz) = (x.rows.nrows(), x.rows.ncols(), x.rows.nnz());
        SparseKl {
            x,
            codes_pen,
            atoms_pen,
            par,
            ratio_rows: vec![T::zero(); nnz],
            ratio_cols: vec![T::zero(); nnz],
            num: Mat::zeros(k, n),
            den: Mat::zeros(k, n),
            num_w: Mat::zeros(k, m),
            den_w: Mat::zeros(k, m),
            q: Mat::zeros(k, k),
            t: Mat::zeros(k, k),
            codes_only: false,
            rows_fresh: false,
            sums: (0.0, 0.0),
            x_sq: x.rows.frob_sq(),
        }
    }

    fn parallel(&self) -> bool {
        !matches!(self.par, Par::Seq)
    }

    /// The ratios `x/v` at the stored entries of `a` (rows of `a` index `g`'s columns, its
    /// columns index `f`'s columns: `v_rc = ⟨f[:, c], g[:, r]⟩`), and `(Σ x log(x/v) − x, Σ x·v)`.
    fn ratios(a: &Csr<T>, f: MatRef<'_, T>, g: MatRef<'_, T>, out: &mut [T], parallel: bool) -> (f64, f64) {
        let (indptr, indices, data) = a.parts();
        let tiny = T::min_positive_value();
        let k = f.nrows();
        let chunk = |r0: usize, out: &mut [T]| -> (f64, f64) {
            let base = indptr[r0];
            let (mut d, mut xv) = (0.0, 0.0);
            for r in r0..(r0 + ROWS).min(a.nrows()) {
                let gr = g.col(r);
                for p in indptr[r]..indptr[r + 1] {
                    let fc = f.col(indices[p] as usize);
                    let mut v = T::zero();
                    for i in 0..k {
                        v += fc[i] * gr[i];
                    }
                    let v = v.max(tiny);
                    let x = data[p];
                    out[p - base] = x / v;
                    let (x64, v64) = (x.to_f64(), v.to_f64());
                    if x64 > 0.0 {
                        d += x64 * (x64 / v64).ln() - x64;
                    }
                    xv += x64 * v64;
                }
            }
            (d, xv)
        };
        // Split `out` at the chunk boundaries (fixed: thread-independent sums).
        let starts: Vec<usize> = (0..a.nrows()).step_by(ROWS).collect();
        let mut pieces: Vec<(usize, &mut [T])> = Vec::with_capacity(starts.len());
        let mut rest = out;
        for (t, &r0) in starts.iter().enumerate() {
            let end = starts.get(t + 1).map_or(a.nnz(), |&r1| indptr[r1]);
            let (head, tail) = rest.split_at_mut(end - indptr[r0]);
            pieces.push((r0, head));
            rest = tail;
        }
        let parts: Vec<(f64, f64)> = if parallel {
            pieces.into_par_iter().map(|(r0, o)| chunk(r0, o)).collect()
        } else {
            pieces.into_iter().map(|(r0, o)| chunk(r0, o)).collect()
        };
        parts.into_iter().fold((0.0, 0.0), |s, p| (s.0 + p.0, s.1 + p.1))
    }

    fn rows_pass(&mut self, f: &Factors<T>) {
        let parallel = self.parallel();
        self.sums = Self::ratios(
            self.x.rows,
            f.wt.as_ref(),
            f.h.as_ref(),
            &mut self.ratio_rows,
            parallel,
        );
        self.rows_fresh = true;
    }

    fn update_codes(&mut self, f: &mut Factors<T>) {
        if !std::mem::take(&mut self.rows_fresh) {
            self.rows_pass(f);
        }
        spmm::spmm_rows_with(
            self.num.as_mut(),
            f.wt.as_ref(),
            self.x.rows,
            &self.ratio_rows,
            self.par,
        );
        fill_row_sums(self.den.as_mut(), f.wt.as_ref());
        mu_step(
            f.h.as_mut(),
            self.num.as_ref(),
            self.den.as_ref(),
            self.codes_pen,
            1.0,
            self.parallel(),
        );
    }

    fn update_atoms(&mut self, f: &mut Factors<T>) {
        let parallel = self.parallel();
        Self::ratios(
            self.x.cols(),
            f.h.as_ref(),
            f.wt.as_ref(),
            &mut self.ratio_cols,
            parallel,
        );
        spmm::spmm_rows_with(
            self.num_w.as_mut(),
            f.h.as_ref(),
            self.x.cols(),
            &self.ratio_cols,
            self.par,
        );
        fill_row_sums(self.den_w.as_mut(), f.h.as_ref());
        mu_step(
            f.wt.as_mut(),
            self.num_w.as_ref(),
            self.den_w.as_ref(),
            self.atoms_pen,
            1.0,
            parallel,
        );
    }

    /// Divergence, `‖X − WH‖² = ‖X‖² − 2⟨X, WH⟩ + ⟨WᵀW, HHᵀ⟩` and penalties, from the sums of
    /// the last rows pass (at the current factors).
    fn eval(&mut self, f: &Factors<T>) -> Eval {
        let (k, wt, h) = (f.wt.nrows(), f.wt.as_ref(), f.h.as_ref());
        let total: f64 = (0..k)
            .map(|a| {
                let sw: f64 = (0..wt.ncols()).map(|p| wt[(a, p)].to_f64()).sum();
                let sh: f64 = (0..h.ncols()).map(|i| h[(a, i)].to_f64()).sum();
                sw * sh
            })
            .sum();
        linalg::gram(self.q.as_mut(), wt, self.par);
        linalg::gram(self.t.as_mut(), h, self.par);
        let sq_error =
            (self.x_sq - 2.0 * self.sums.1 + linalg::inner(self.q.as_ref(), self.t.as_ref())).max(0.0);
        let mut objective = self.sums.0 + total;
        if !self.codes_pen.is_zero() {
            let (s, s2) = sums(h);
            objective += self.codes_pen.value(s, s2);
        }
        if !self.codes_only && !self.atoms_pen.is_zero() {
            let (s, s2) = sums(wt);
            objective += self.atoms_pen.value(s, s2);
        }
        Eval { objective, sq_error }
    }
}

/// Every column of `den` (`k × N`) ← the row sums of `f` (`k × M`).
fn fill_row_sums<T: Real>(den: MatMut<'_, T>, f: MatRef<'_, T>) {
    let s: Vec<T> = (0..f.nrows())
        .map(|a| (0..f.ncols()).map(|p| f[(a, p)]).sum())
        .collect();
    for_cols(den, false, |_, col| col.copy_from_slice(&s));
}

impl<T: Real> Iterate<T> for SparseKl<'_, T> {
    fn initial(&mut self, f: &mut Factors<T>) -> Eval {
        self.rows_pass(f);
        self.eval(f)
    }

    fn iterate(&mut self, f: &mut Factors<T>) -> Eval {
        self.update_codes(f);
        if !self.codes_only {
            self.update_atoms(f);
        }
        self.rows_pass(f);
        self.eval(f)
    }
}
