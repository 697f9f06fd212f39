//! The data as the NMF solvers see it: dense (`m × n`, samples as columns) or sparse (a CSR of
//! the samples and its transpose), behind the few operations the Frobenius solvers need
//! (METHODS.md §11.1): `P = WᵀX`, `R = HXᵀ`, `‖X‖²`, and the samples themselves for re-seeding
//! dead atoms. Dense data keeps its GEMMs unchanged (same bits as before sparse support).

use faer::{Accum, Mat, MatMut, MatRef, Par};

use crate::data::Csr;
use crate::error::Result;
use crate::linalg::{self, spmm};
use crate::real::Real;

/// Sparse samples and, built on first use, their transpose (the CSC view): only KL's products,
/// NNDSVD's range finder and `R = HXᵀ` on very wide data ([`scatter_fits`]) read it, so a
/// Frobenius fit from a random start, an encode or an online batch never holds the copy.
pub(crate) struct SparseX<'a, T> {
    /// `n × m`, samples as rows.
    pub rows: &'a Csr<T>,
    /// `m × n`, features as rows.
    cols: std::sync::OnceLock<Csr<T>>,
}

impl<'a, T: Real> SparseX<'a, T> {
    /// The samples; fails if they could not be transposed (more samples than a column index
    /// holds), so that [`cols`](SparseX::cols) cannot.
    pub fn new(rows: &'a Csr<T>) -> Result<Self> {
        crate::data::csr::check_ncols(rows.nrows())?;
        Ok(SparseX {
            rows,
            cols: std::sync::OnceLock::new(),
        })
    }

    /// The transpose, built at the first call.
    pub fn cols(&self) -> &Csr<T> {
        self.cols.get_or_init(|| self.rows.transpose_checked())
    }
}

/// Whether `R = HXᵀ` is scattered from the samples' rows ([`spmm::spmm_scatter`], faster: its
/// random accesses go to a `k × m` partial rather than to the `k × n` codes) — when its
/// partials take at most 256 MB; otherwise it is gathered through the transpose.
pub(crate) fn scatter_fits<T>(k: usize, m: usize) -> bool {
    (spmm::SCATTER_BLOCKS * k * m * std::mem::size_of::<T>()) as f64 <= 256.0 * (1u64 << 20) as f64
}

/// `X` (`m × n`, samples as columns) for the solvers.
#[derive(Clone, Copy)]
pub(crate) enum XRef<'a, T> {
    /// A dense matrix.
    Dense(MatRef<'a, T>),
    /// A sparse one.
    Sparse(&'a SparseX<'a, T>),
}

impl<'a, T: Real> From<MatRef<'a, T>> for XRef<'a, T> {
    fn from(x: MatRef<'a, T>) -> Self {
        XRef::Dense(x)
    }
}

impl<'a, T: Real> XRef<'a, T> {
    /// Features `m`.
    pub fn nrows(&self) -> usize {
        match self {
            XRef::Dense(x) => x.nrows(),
            XRef::Sparse(s) => s.rows.ncols(),
        }
    }

    /// Samples `n`.
    pub fn ncols(&self) -> usize {
        match self {
            XRef::Dense(x) => x.ncols(),
            XRef::Sparse(s) => s.rows.nrows(),
        }
    }

    /// The dense matrix, if dense.
    pub fn dense(&self) -> Option<MatRef<'a, T>> {
        match self {
            XRef::Dense(x) => Some(*x),
            XRef::Sparse(_) => None,
        }
    }

    /// `‖X‖²` in f64.
    pub fn frob_sq(&self) -> f64 {
        match self {
            XRef::Dense(x) => linalg::frob_sq(*x),
            XRef::Sparse(s) => s.rows.frob_sq(),
        }
    }

    /// Mean of all entries (zeros included), in f64.
    pub fn mean(&self) -> f64 {
        match self {
            XRef::Dense(x) => super::init::mean(*x),
            XRef::Sparse(s) => s.rows.sum() / (s.rows.nrows() * s.rows.ncols()).max(1) as f64,
        }
    }

    /// `dst ← WᵀX` (`k × n`) from `wt` (`k × m`): a GEMM, or an SpMM over the samples.
    pub fn codes_cross(&self, dst: MatMut<'_, T>, wt: MatRef<'_, T>, par: Par) {
        match self {
            XRef::Dense(x) => linalg::matmul(dst, Accum::Replace, wt, *x, T::one(), par),
            XRef::Sparse(s) => spmm::spmm_rows(dst, wt, s.rows, par),
        }
    }

    /// `dst ← HXᵀ` (`k × m`) from `h` (`k × n`): a GEMM, or an SpMM over the features.
    pub fn atoms_cross(&self, dst: MatMut<'_, T>, h: MatRef<'_, T>, par: Par) {
        match self {
            XRef::Dense(x) => linalg::matmul(dst, Accum::Replace, h, x.transpose(), T::one(), par),
            XRef::Sparse(s) if scatter_fits::<T>(h.nrows(), s.rows.ncols()) => {
                spmm::spmm_scatter(dst, h, s.rows, par)
            }
            XRef::Sparse(s) => spmm::spmm_rows(dst, h, s.cols(), par),
        }
    }

    /// `‖x_i‖²` of sample `i`.
    pub fn sample_sq(&self, i: usize) -> f64 {
        match self {
            XRef::Dense(x) => (0..x.nrows()).map(|p| x[(p, i)].to_f64().powi(2)).sum(),
            XRef::Sparse(s) => s.rows.row(i).1.iter().map(|&v| v.to_f64().powi(2)).sum(),
        }
    }

    /// Writes sample `i` into row `j` of `wt` (`k × m`).
    pub fn sample_into_row(&self, i: usize, wt: &mut Mat<T>, j: usize) {
        match self {
            XRef::Dense(x) => {
                for p in 0..x.nrows() {
                    wt[(j, p)] = x[(p, i)];
                }
            }
            XRef::Sparse(s) => {
                for p in 0..wt.ncols() {
                    wt[(j, p)] = T::zero();
                }
                let (cols, vals) = s.rows.row(i);
                for (&c, &v) in cols.iter().zip(vals) {
                    wt[(j, c as usize)] = v;
                }
            }
        }
    }
}
