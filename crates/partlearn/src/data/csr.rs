//! Sparse data: a compressed-sparse-row matrix, samples as rows (`n_samples × n_features`, the
//! layout of `scipy.sparse.csr_matrix` and of every public API here). The NMF solvers read it
//! through SpMM kernels ([`crate::linalg::spmm`], METHODS.md §11.1) and never densify it; the
//! transpose (the CSC view, features as rows) is built once per fit by [`Csr::transpose`].
//!
//! Canonical form, enforced by every constructor: column indices sorted within each row, no
//! duplicates (duplicate entries are **summed**, as scipy's `sum_duplicates` does), explicit
//! zeros kept. Values are not checked here (the fits check them: ≥ 0 and finite, naming the
//! sample and feature, as for dense data).

use faer::{Mat, MatRef};

use crate::error::{Error, Result};
use crate::real::Real;

/// An `nrows × ncols` matrix in CSR form: row `i` holds the column indices
/// `indices[indptr[i]..indptr[i+1]]` (sorted, distinct) and their values in `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Csr<T> {
    nrows: usize,
    ncols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<T>,
}

/// Bytes per stored entry of a [`Csr`] with values of `value_bytes` (index + value).
pub(crate) fn bytes_per_entry(value_bytes: usize) -> usize {
    value_bytes + std::mem::size_of::<u32>()
}

impl<T: Real> Csr<T> {
    /// An all-zero `nrows × ncols` matrix.
    pub fn zeros(nrows: usize, ncols: usize) -> Result<Self> {
        check_ncols(ncols)?;
        Ok(Csr {
            nrows,
            ncols,
            indptr: try_zeros(nrows.saturating_add(1), nrows)?,
            indices: Vec::new(),
            data: Vec::new(),
        })
    }

    /// From scipy's three arrays (`indptr` of length `nrows + 1`, non-decreasing from 0 to
    /// `nnz`; `indices` < `ncols`). Rows are sorted and duplicates summed.
    ///
    /// ```
    /// use partlearn::data::Csr;
    /// // [[1, 0, 2], [0, 0, 3]] with a duplicate (0, 2) entry, summed.
    /// let a = Csr::<f32>::from_parts(2, 3, vec![0, 3, 4], vec![2, 0, 2, 2], vec![1.0, 1.0, 1.0, 3.0])?;
    /// assert_eq!((a.nnz(), a.row(0)), (3, (&[0u32, 2][..], &[1.0f32, 2.0][..])));
    /// # Ok::<(), partlearn::Error>(())
    /// ```
    pub fn from_parts(
        nrows: usize,
        ncols: usize,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        data: Vec<T>,
    ) -> Result<Self> {
        check_ncols(ncols)?;
        let bad = |reason: String| Error::invalid("csr", format!("{nrows} × {ncols}"), reason);
        if indptr.len() != nrows + 1 {
            return Err(bad(format!(
                "indptr has {} entries, a matrix with {nrows} rows needs {}; give scipy's indptr unchanged",
                indptr.len(),
                nrows + 1
            )));
        }
        if indices.len() != data.len() {
            return Err(bad(format!(
                "{} indices but {} values; give scipy's indices and data unchanged",
                indices.len(),
                data.len()
            )));
        }
        if indptr[0] != 0 || indptr[nrows] != data.len() || indptr.windows(2).any(|w| w[0] > w[1]) {
            return Err(bad(format!(
                "indptr must rise from 0 to nnz = {} (found {} … {}); the arrays are not a CSR matrix",
                data.len(),
                indptr[0],
                indptr[nrows]
            )));
        }
        if let Some(p) = indices.iter().position(|&c| c as usize >= ncols) {
            let row = indptr.partition_point(|&s| s <= p) - 1;
            return Err(bad(format!(
                "entry {p} (row {row}) has column index {} ≥ {ncols} columns; the file or arrays are corrupt",
                indices[p]
            )));
        }
        let mut a = Csr {
            nrows,
            ncols,
            indptr,
            indices,
            data,
        };
        a.canonicalize();
        Ok(a)
    }

    /// From coordinates `(row, col, value)` (MatrixMarket's form). Duplicates are summed.
    pub fn from_triplets(nrows: usize, ncols: usize, entries: &[(usize, usize, T)]) -> Result<Self> {
        check_ncols(ncols)?;
        let mut indptr = try_zeros(nrows.saturating_add(1), nrows)?;
        for (e, &(r, c, _)) in entries.iter().enumerate() {
            if r >= nrows || c >= ncols {
                return Err(outside_error(nrows, ncols, e, r, c));
            }
            indptr[r + 1] += 1;
        }
        for i in 0..nrows {
            indptr[i + 1] += indptr[i];
        }
        let mut next = try_zeros(nrows.saturating_add(1), nrows)?;
        next.copy_from_slice(&indptr);
        let mut indices = vec![0u32; entries.len()];
        let mut data = vec![T::zero(); entries.len()];
        for &(r, c, v) in entries {
            let p = next[r];
            indices[p] = c as u32;
            data[p] = v;
            next[r] += 1;
        }
        let mut a = Csr {
            nrows,
            ncols,
            indptr,
            indices,
            data,
        };
        a.canonicalize();
        Ok(a)
    }

    /// The non-zeros of a dense `n × m` matrix (samples as rows).
    pub fn from_dense(x: MatRef<'_, T>) -> Result<Self> {
        let (n, m) = (x.nrows(), x.ncols());
        check_ncols(m)?;
        let mut indptr = Vec::with_capacity(n + 1);
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        indptr.push(0);
        for i in 0..n {
            for j in 0..m {
                let v = x[(i, j)];
                if v != T::zero() {
                    indices.push(j as u32);
                    data.push(v);
                }
            }
            indptr.push(data.len());
        }
        Ok(Csr {
            nrows: n,
            ncols: m,
            indptr,
            indices,
            data,
        })
    }

    /// Sorts each row by column and sums duplicates (scipy's `sum_duplicates`).
    fn canonicalize(&mut self) {
        let sorted = (0..self.nrows).all(|i| {
            let s = &self.indices[self.indptr[i]..self.indptr[i + 1]];
            s.windows(2).all(|w| w[0] < w[1])
        });
        if sorted {
            return;
        }
        let mut out_ptr = Vec::with_capacity(self.nrows + 1);
        out_ptr.push(0);
        let mut w = 0;
        let mut row: Vec<(u32, T)> = Vec::new();
        for i in 0..self.nrows {
            let (a, b) = (self.indptr[i], self.indptr[i + 1]);
            row.clear();
            row.extend(
                self.indices[a..b]
                    .iter()
                    .copied()
                    .zip(self.data[a..b].iter().copied()),
            );
            row.sort_by_key(|e| e.0);
            let mut t = 0;
            while t < row.len() {
                let (c, mut v) = row[t];
                t += 1;
                while t < row.len() && row[t].0 == c {
                    v += row[t].1;
                    t += 1;
                }
                self.indices[w] = c;
                self.data[w] = v;
                w += 1;
            }
            out_ptr.push(w);
        }
        self.indices.truncate(w);
        self.data.truncate(w);
        self.indptr = out_ptr;
    }

    /// Rows (samples).
    pub fn nrows(&self) -> usize {
        self.nrows
    }

    /// Columns (features).
    pub fn ncols(&self) -> usize {
        self.ncols
    }

    /// Stored entries.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// `nnz / (nrows·ncols)` (0 for an empty shape).
    pub fn density(&self) -> f64 {
        let size = self.nrows as f64 * self.ncols as f64;
        if size > 0.0 {
            self.nnz() as f64 / size
        } else {
            0.0
        }
    }

    /// Column indices and values of row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> (&[u32], &[T]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// scipy's `indptr`, `indices`, `data`.
    pub fn parts(&self) -> (&[usize], &[u32], &[T]) {
        (&self.indptr, &self.indices, &self.data)
    }

    /// The transpose (`ncols × nrows`, also canonical): the CSC view of `self`. `O(nnz + n + m)`.
    pub fn transpose(&self) -> Result<Csr<T>> {
        check_ncols(self.nrows)?;
        Ok(self.transpose_checked())
    }

    /// [`transpose`](Csr::transpose) once [`check_ncols`]`(self.nrows())` has passed.
    pub(crate) fn transpose_checked(&self) -> Csr<T> {
        let mut indptr = vec![0usize; self.ncols + 1];
        for &c in &self.indices {
            indptr[c as usize + 1] += 1;
        }
        for j in 0..self.ncols {
            indptr[j + 1] += indptr[j];
        }
        let mut next = indptr.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![T::zero(); self.nnz()];
        for i in 0..self.nrows {
            let (cols, vals) = self.row(i);
            for (&c, &v) in cols.iter().zip(vals) {
                let p = &mut next[c as usize];
                indices[*p] = i as u32;
                data[*p] = v;
                *p += 1;
            }
        }
        Csr {
            nrows: self.ncols,
            ncols: self.nrows,
            indptr,
            indices,
            data,
        }
    }

    /// The dense `nrows × ncols` matrix (for tests and small data; [`crate::linalg`] checks the
    /// memory first).
    pub fn to_dense(&self) -> Result<Mat<T>> {
        let bytes = (self.nrows as f64) * (self.ncols as f64) * std::mem::size_of::<T>() as f64;
        crate::linalg::check_memory("densify", format!("{} × {}", self.nrows, self.ncols), bytes)?;
        let mut x = crate::linalg::try_mat_from_fn(
            self.nrows,
            self.ncols,
            |_, _| T::zero(),
            "dense copy of sparse data",
        )?;
        for i in 0..self.nrows {
            let (cols, vals) = self.row(i);
            for (&c, &v) in cols.iter().zip(vals) {
                x[(i, c as usize)] = v;
            }
        }
        Ok(x)
    }

    /// `Σ x²` in f64.
    pub fn frob_sq(&self) -> f64 {
        self.data.iter().map(|&v| v.to_f64() * v.to_f64()).sum()
    }

    /// `Σ x` in f64.
    pub fn sum(&self) -> f64 {
        self.data.iter().map(|&v| v.to_f64()).sum()
    }

    /// Smallest and largest stored value (`(0, 0)` when empty); implicit zeros are not counted.
    pub fn stored_range(&self) -> (f64, f64) {
        let mut r = (f64::INFINITY, f64::NEG_INFINITY);
        for &v in &self.data {
            r.0 = r.0.min(v.to_f64());
            r.1 = r.1.max(v.to_f64());
        }
        if self.data.is_empty() {
            (0.0, 0.0)
        } else {
            r
        }
    }

    /// Errors on an empty shape, a non-finite or a negative stored value (naming its sample =
    /// row and feature = column), as [`super::validate_nonnegative`] does for dense data, and
    /// on a scale the float type cannot hold ([`super::check_scale`] over the stored values).
    pub fn validate_nonnegative(&self) -> Result<()> {
        if self.nrows == 0 || self.ncols == 0 {
            return Err(Error::EmptyData {
                n_samples: self.nrows,
                n_features: self.ncols,
            });
        }
        for i in 0..self.nrows {
            let (cols, vals) = self.row(i);
            for (&c, &v) in cols.iter().zip(vals) {
                let (sample, feature, value) = (i, c as usize, v.to_f64());
                if !v.is_finite() {
                    return Err(Error::NonFinite {
                        sample,
                        feature,
                        value,
                    });
                }
                if v < T::zero() {
                    return Err(Error::NegativeEntry {
                        sample,
                        feature,
                        value,
                    });
                }
            }
        }
        super::check_scale::<T>(self.stored_range().1.max(0.0), self.ncols, self.data.len())
    }

    /// The same matrix in another float type.
    pub fn cast<U: Real>(&self) -> Csr<U> {
        Csr {
            nrows: self.nrows,
            ncols: self.ncols,
            indptr: self.indptr.clone(),
            indices: self.indices.clone(),
            data: self.data.iter().map(|&v| U::from_f64(v.to_f64())).collect(),
        }
    }

    /// The rows `indices` in that order (e.g. a subset of samples).
    pub fn select_rows(&self, rows: &[usize]) -> Result<Csr<T>> {
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        indptr.push(0);
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        for &r in rows {
            if r >= self.nrows {
                return Err(Error::invalid(
                    "rows",
                    r,
                    format!("the matrix has {} rows; give indices below that", self.nrows),
                ));
            }
            let (c, v) = self.row(r);
            indices.extend_from_slice(c);
            data.extend_from_slice(v);
            indptr.push(data.len());
        }
        Ok(Csr {
            nrows: rows.len(),
            ncols: self.ncols,
            indptr,
            indices,
            data,
        })
    }
}

impl<T: Real> Csr<T> {
    /// The columns `cols` (a contiguous range, e.g. one process's block of features on a 2-D
    /// grid), renumbered from 0.
    pub fn select_cols(&self, cols: std::ops::Range<usize>) -> Result<Csr<T>> {
        if cols.start > cols.end || cols.end > self.ncols {
            return Err(Error::invalid(
                "columns",
                format!("{}..{}", cols.start, cols.end),
                format!("the matrix has {} columns; give a range inside it", self.ncols),
            ));
        }
        let mut indptr = Vec::with_capacity(self.nrows + 1);
        indptr.push(0);
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        let (lo, hi) = (cols.start as u32, cols.end as u32);
        for r in 0..self.nrows {
            let (c, v) = self.row(r);
            for (&ci, &vi) in c.iter().zip(v) {
                if ci >= lo && ci < hi {
                    indices.push(ci - lo);
                    data.push(vi);
                }
            }
            indptr.push(data.len());
        }
        Ok(Csr {
            nrows: self.nrows,
            ncols: cols.len(),
            indptr,
            indices,
            data,
        })
    }
}

/// The error of [`Csr::from_triplets`] for entry number `e` at `(r, c)`, outside the matrix.
pub(crate) fn outside_error(nrows: usize, ncols: usize, e: usize, r: usize, c: usize) -> Error {
    Error::invalid(
        "csr",
        format!("{nrows} × {ncols}"),
        format!("entry {e} at ({r}, {c}) is outside the matrix; the file or arrays are corrupt"),
    )
}

/// Column indices are stored as `u32`.
pub(crate) fn check_ncols(ncols: usize) -> Result<()> {
    if ncols > u32::MAX as usize {
        return Err(Error::invalid(
            "csr",
            ncols,
            format!("at most {} columns are supported; split the features", u32::MAX),
        ));
    }
    Ok(())
}

/// `n` zero row pointers, allocated fallibly: a row count read from a file can be huge (a
/// 30-byte `.mtx` may declare 10⁹ empty rows), so a failed allocation is an error naming the fix,
/// never an abort.
fn try_zeros(n: usize, nrows: usize) -> Result<Vec<usize>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Error::invalid(
            "csr",
            format!("{nrows} rows"),
            "the row pointers of that many rows cannot be allocated; the file's size line is corrupt, or the data needs a machine with more memory",
        )
    })?;
    v.resize(n, 0);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_range_keeps_its_entries_renumbered() {
        let d = Mat::<f64>::from_fn(
            5,
            7,
            |i, j| if (i + j) % 3 == 0 { (i * 7 + j) as f64 } else { 0.0 },
        );
        let x = Csr::from_dense(d.as_ref()).unwrap();
        for (a, b) in [(0, 7), (2, 5), (3, 3), (6, 7)] {
            let s = x.select_cols(a..b).unwrap();
            assert_eq!(s.to_dense().unwrap(), d.subcols(a, b - a).to_owned(), "{a}..{b}");
        }
        assert!(x.select_cols(5..8).unwrap_err().to_string().contains("7 columns"));
    }

    #[test]
    fn from_parts_sorts_and_sums_duplicates() {
        let a = Csr::<f64>::from_parts(
            2,
            4,
            vec![0, 4, 5],
            vec![3, 1, 3, 0, 2],
            vec![1.0, 2.0, 4.0, 0.5, 7.0],
        )
        .unwrap();
        assert_eq!(a.nnz(), 4);
        assert_eq!(a.row(0), (&[0u32, 1, 3][..], &[0.5, 2.0, 5.0][..]));
        let d = a.to_dense().unwrap();
        assert_eq!(d[(0, 3)], 5.0);
        assert_eq!(d[(1, 2)], 7.0);
        assert_eq!(Csr::from_dense(d.as_ref()).unwrap(), a);
    }

    #[test]
    fn bad_parts_are_errors() {
        let e = |r: Result<Csr<f32>>| r.unwrap_err().to_string();
        assert!(e(Csr::from_parts(2, 3, vec![0, 1], vec![0], vec![1.0])).contains("indptr has 2"));
        assert!(e(Csr::from_parts(1, 3, vec![0, 1], vec![3], vec![1.0])).contains("column index 3"));
        assert!(e(Csr::from_parts(1, 3, vec![0, 1], vec![0, 1], vec![1.0])).contains("2 indices but"));
        assert!(e(Csr::from_parts(2, 3, vec![0, 1, 0], vec![0], vec![1.0])).contains("indptr must rise"));
        assert!(e(Csr::from_triplets(2, 3, &[(2, 0, 1.0)])).contains("outside"));
        let neg = Csr::from_triplets(2, 3, &[(1, 2, -1.0f32)]).unwrap();
        assert!(matches!(
            neg.validate_nonnegative(),
            Err(Error::NegativeEntry {
                sample: 1,
                feature: 2,
                ..
            })
        ));
        let nan = Csr::from_triplets(2, 3, &[(0, 1, f32::NAN)]).unwrap();
        assert!(matches!(
            nan.validate_nonnegative(),
            Err(Error::NonFinite {
                sample: 0,
                feature: 1,
                ..
            })
        ));
    }

    #[test]
    fn transpose_is_the_dense_transpose() {
        let x = Mat::<f32>::from_fn(
            7,
            5,
            |i, j| if (i * 3 + j) % 4 == 0 { (i + j) as f32 } else { 0.0 },
        );
        let a = Csr::from_dense(x.as_ref()).unwrap();
        let t = a.transpose().unwrap();
        assert_eq!(t.to_dense().unwrap(), x.transpose().to_owned());
        assert_eq!(t.transpose().unwrap(), a);
        assert!((a.density() - a.nnz() as f64 / 35.0).abs() < 1e-15);
    }
}
