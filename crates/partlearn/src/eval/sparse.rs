//! Metrics of a model on sparse data (METHODS.md §11.1): the reconstruction error by the sparse
//! identity `‖X − CW‖² = ‖X‖² − 2⟨X, CW⟩ + ⟨CᵀC, WWᵀ⟩` (never forming `CW`) and the Hoyer
//! sparseness of the codes (§7.2; all-zero codes counted apart, as in [`super::evaluate`]). The
//! image metrics and the SVM protocol need dense image data with labels and are not computed.
//!
//! [`evaluate_rows`] streams a row source (a CSR `.npz`, a `.mtx`) by blocks with an NMF model,
//! at the memory of one block; [`CodeStats`] accumulates the codes' part for any encoder.

use faer::MatRef;
use serde::Serialize;

use crate::data::rows::{RowBlock, RowSource};
use crate::error::Result;
use crate::nmf::NmfModel;
use crate::real::Real;

/// What `eval` measures on sparse data.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SparseMetrics {
    /// Samples of the data.
    pub n_samples: usize,
    /// Features of the data.
    pub n_features: usize,
    /// Stored non-zero entries.
    pub nnz: u64,
    /// `‖X − CW‖²_F`.
    pub sq_error: f64,
    /// `‖X‖²_F`.
    pub x_sq: f64,
    /// `‖X − CW‖_F / ‖X‖_F` (0 for all-zero data).
    pub rel_error: f64,
    /// `‖X − CW‖²_F / (n·m)`.
    pub mse: f64,
    /// Mean Hoyer sparseness of the codes that are not all zero.
    pub hoyer_mean: f64,
    /// Samples whose codes are all zero.
    pub zero_codes: usize,
}

/// The codes' part of [`SparseMetrics`], accumulated block by block.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CodeStats {
    hoyer_sum: f64,
    hoyer_count: usize,
    zero_codes: usize,
}

impl CodeStats {
    /// Adds the codes of a block of samples (`len × k`).
    pub fn add<T: Real>(&mut self, codes: MatRef<'_, T>) {
        let mut row = vec![0.0f64; codes.ncols()];
        for i in 0..codes.nrows() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = codes[(i, j)].to_f64();
            }
            if row.iter().all(|&v| v == 0.0) {
                self.zero_codes += 1;
            }
            if let Some(h) = crate::sparseness::hoyer(&row) {
                self.hoyer_sum += h;
                self.hoyer_count += 1;
            }
        }
    }

    /// The metrics of `n × m` data with `nnz` non-zeros and these codes, given the error terms.
    pub fn metrics(&self, (n, m): (usize, usize), nnz: u64, sq_error: f64, x_sq: f64) -> SparseMetrics {
        let cells = (n as f64 * m as f64).max(1.0);
        SparseMetrics {
            n_samples: n,
            n_features: m,
            nnz,
            sq_error,
            x_sq,
            rel_error: if x_sq > 0.0 { (sq_error / x_sq).sqrt() } else { 0.0 },
            mse: sq_error / cells,
            hoyer_mean: self.hoyer_sum / self.hoyer_count.max(1) as f64,
            zero_codes: self.zero_codes,
        }
    }
}

/// A row source that counts the stored non-zeros of the blocks it hands out.
struct Counting<'a, T: Real> {
    inner: &'a mut dyn RowSource<T>,
    nnz: u64,
}

impl<T: Real> RowSource<T> for Counting<'_, T> {
    fn n_rows(&self) -> usize {
        self.inner.n_rows()
    }
    fn n_cols(&self) -> usize {
        self.inner.n_cols()
    }
    fn read(&mut self, start: usize, len: usize) -> Result<RowBlock<T>> {
        let b = self.inner.read(start, len)?;
        self.nnz += match &b {
            RowBlock::Sparse(x) => x.nnz() as u64,
            RowBlock::Dense(x) => (0..x.ncols())
                .map(|j| x.col(j).iter().filter(|v| **v != T::zero()).count() as u64)
                .sum(),
        };
        Ok(b)
    }
}

/// [`SparseMetrics`] of NMF `model` on every row of `src`, `batch` rows at a time with the
/// model's own encode (the codes `transform` gives: [`crate::nmf::online::transform_rows`]).
/// Memory: one block and its codes.
pub fn evaluate_rows<T: Real>(
    model: &NmfModel<T>,
    src: &mut dyn RowSource<T>,
    batch: usize,
    threads: usize,
) -> Result<SparseMetrics> {
    let shape = (src.n_rows(), src.n_cols());
    let mut counting = Counting { inner: src, nnz: 0 };
    let mut stats = CodeStats::default();
    let e = crate::nmf::online::transform_rows(model, &mut counting, batch, threads, &mut |_, codes| {
        stats.add(codes);
        Ok(())
    })?;
    Ok(stats.metrics(shape, counting.nnz, e.sq_error, e.x_sq))
}

#[cfg(test)]
mod tests {
    use faer::Mat;

    use super::*;
    use crate::data::rows::CsrRows;
    use crate::data::Csr;
    use crate::nmf::{self, NmfParams};
    use crate::rng::Rng;

    #[test]
    fn streamed_metrics_equal_the_whole_matrix_metrics_for_any_block_size() {
        let mut r = Rng::new(4);
        let x = Mat::<f64>::from_fn(203, 37, |_, _| if r.uniform() < 0.2 { r.uniform() } else { 0.0 });
        let csr = Csr::from_dense(x.as_ref()).unwrap();
        let fit = nmf::factorize(x.as_ref(), &NmfParams::new(4).max_iter(50).check().unwrap()).unwrap();
        let model = &fit.model;
        // The whole matrix, dense: codes by transform, error and Hoyer from their definitions.
        let codes = model.encode(x.as_ref(), 1).unwrap();
        let recon = &codes * model.components();
        let sq: f64 = (0..203)
            .flat_map(|i| (0..37).map(move |j| (i, j)))
            .map(|(i, j)| (x[(i, j)] - recon[(i, j)]).powi(2))
            .sum();
        let mut whole = CodeStats::default();
        whole.add(codes.as_ref());
        let x_sq = csr.frob_sq();
        for batch in [1, 16, 50, 203, 1000] {
            let mut src = CsrRows::new(&csr);
            let m = evaluate_rows(model, &mut src, batch, 1).unwrap();
            assert_eq!(m.nnz, csr.nnz() as u64);
            assert_eq!((m.n_samples, m.n_features), (203, 37));
            assert!(
                (m.sq_error - sq).abs() < 1e-9 * x_sq,
                "batch {batch}: {} vs {sq}",
                m.sq_error
            );
            assert!((m.x_sq - x_sq).abs() < 1e-12 * x_sq);
            let w = whole.metrics((203, 37), csr.nnz() as u64, sq, x_sq);
            assert!((m.hoyer_mean - w.hoyer_mean).abs() < 1e-9, "batch {batch}");
            assert_eq!(m.zero_codes, w.zero_codes);
            assert!((m.mse - sq / (203.0 * 37.0)).abs() < 1e-12);
        }
    }

    #[test]
    fn all_zero_codes_are_counted_apart_from_the_hoyer_mean() {
        let codes = Mat::<f64>::from_fn(3, 4, |i, j| {
            if i == 1 {
                0.0
            } else if j == 0 {
                1.0
            } else {
                0.0
            }
        });
        let mut s = CodeStats::default();
        s.add(codes.as_ref());
        let m = s.metrics((3, 10), 5, 1.0, 4.0);
        assert_eq!(m.zero_codes, 1);
        assert!((m.hoyer_mean - 1.0).abs() < 1e-12, "one-hot codes have Hoyer 1");
        assert!((m.rel_error - 0.5).abs() < 1e-12);
    }
}
