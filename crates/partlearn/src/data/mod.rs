//! Data sets: the `Dataset` type, its validation, and the loaders.
//!
//! A `Dataset` is an `n_samples × n_features` matrix (samples are rows, as in numpy and
//! scikit-learn) with optional labels and an optional image shape. It is stored as a faer matrix
//! of shape `n_features × n_samples` in column-major order, i.e. each sample's features are
//! contiguous, which is exactly numpy's C order for `n_samples × n_features`. `x()` gives the
//! samples-as-rows view, `xt()` the samples-as-columns view that METHODS.md's formulas use.
//!
//! Sparse data is a [`Csr`] matrix (samples as rows), read from scipy `.npz` and MatrixMarket
//! `.mtx[.gz]` files by [`load_csr`] and never densified by the NMF fits.
//!
//! Loaders (IDX, NPY, CSV) and the named sets (`fashion-mnist:train|test`, `swimmer`,
//! `toy-hierarchy`) turn a data spec string into a `Dataset`; see [`load`]. [`labels`] holds the
//! labels of the (semi-)supervised methods and the choice of which samples they see.

pub mod csr;
pub mod csv;
pub mod generate;
pub mod idx;
pub mod labels;
pub mod mtx;
pub mod named;
pub mod npz;
pub mod rows;
pub mod sparse_spec;
pub mod spec;

pub use csr::Csr;
pub use labels::{Labels, Supervision};
pub use sparse_spec::{is_sparse_file, load_csr};
pub use spec::{known_names, load, LoadOptions};

use faer::{Mat, MatRef};

use crate::error::{Error, Result};
use crate::real::Real;
use crate::rng::Rng;

/// An `n_samples × n_features` data matrix with optional labels and image shape.
#[derive(Clone, Debug)]
pub struct Dataset<T: Real = f32> {
    /// `n_features × n_samples`, column-major: column `i` is sample `i`.
    xt: Mat<T>,
    /// One class label per sample (e.g. the Fashion-MNIST class), if known.
    pub labels: Option<Vec<u32>>,
    /// Further label sets by name (e.g. the three levels of `toy-hierarchy`).
    pub extra_labels: Vec<(String, Vec<u32>)>,
    /// `(height, width)` when each sample is an image, row-major pixels.
    pub image_shape: Option<(usize, usize)>,
    /// Human-readable origin ("fashion-mnist:train", a path, …).
    pub name: String,
}

impl<T: Real> Dataset<T> {
    /// A data set from a `n_features × n_samples` matrix (samples as columns).
    pub fn from_columns(xt: Mat<T>, name: impl Into<String>) -> Self {
        Dataset {
            xt,
            labels: None,
            extra_labels: Vec::new(),
            image_shape: None,
            name: name.into(),
        }
    }

    /// A data set from an `n_samples × n_features` matrix (samples as rows; copied once into the
    /// samples-as-columns storage).
    ///
    /// ```
    /// use partlearn::data::Dataset;
    /// use partlearn::faer::Mat;
    ///
    /// // Six 2 × 3 images (6 features each), two classes.
    /// let x = Mat::<f32>::from_fn(6, 6, |i, j| ((i + j) % 3) as f32 / 2.0);
    /// let data = Dataset::from_rows(x.as_ref(), "in-memory")
    ///     .with_labels(vec![0, 1, 0, 1, 0, 1])?
    ///     .with_image_shape(2, 3)?;
    /// data.validate_nonnegative()?;
    /// assert_eq!((data.n_samples(), data.n_features()), (6, 6));
    /// assert_eq!(data.sample(1), &[0.5, 1.0, 0.0, 0.5, 1.0, 0.0]);
    /// assert_eq!(data.first(4).n_samples(), 4);
    /// // The same data from a flat row-major buffer (numpy's C order).
    /// let flat: Vec<f32> = (0..6).flat_map(|i| data.sample(i).to_vec()).collect();
    /// let same = Dataset::from_row_major(6, 6, &flat, "flat")?;
    /// assert_eq!(same.x(), data.x());
    /// # Ok::<(), partlearn::Error>(())
    /// ```
    pub fn from_rows(x: MatRef<'_, T>, name: impl Into<String>) -> Self {
        Self::from_columns(x.transpose().to_owned(), name)
    }

    /// The same data set with labels (one class per sample; checked against the sample count).
    pub fn with_labels(mut self, labels: Vec<u32>) -> Result<Self> {
        if labels.len() != self.n_samples() {
            return Err(Error::ShapeMismatch {
                what: "labels".into(),
                expected: format!("{} labels (one per sample)", self.n_samples()),
                found: format!("{} labels", labels.len()),
                hint: "give one label per sample".into(),
            });
        }
        self.labels = Some(labels);
        Ok(self)
    }

    /// The same data set with each sample an image of `height × width` pixels (row-major).
    pub fn with_image_shape(mut self, height: usize, width: usize) -> Result<Self> {
        if height * width != self.n_features() {
            return Err(Error::ShapeMismatch {
                what: "image shape".into(),
                expected: format!("height × width = {} (the number of features)", self.n_features()),
                found: format!("{height} × {width}"),
                hint: "give the images' height and width".into(),
            });
        }
        self.image_shape = Some((height, width));
        Ok(self)
    }

    /// A data set from row-major values (`values[i * n_features + j]` = sample i, feature j).
    pub fn from_row_major(
        n_samples: usize,
        n_features: usize,
        values: &[T],
        name: impl Into<String>,
    ) -> Result<Self> {
        if values.len() != n_samples * n_features {
            return Err(Error::ShapeMismatch {
                what: "row-major values".into(),
                expected: format!("{n_samples}×{n_features} = {} values", n_samples * n_features),
                found: format!("{} values", values.len()),
                hint: "check the declared shape".into(),
            });
        }
        let mut xt = Mat::<T>::zeros(n_features, n_samples);
        for i in 0..n_samples {
            xt.col_as_slice_mut(i)
                .copy_from_slice(&values[i * n_features..(i + 1) * n_features]);
        }
        Ok(Self::from_columns(xt, name))
    }

    /// Number of samples (rows of `x()`).
    pub fn n_samples(&self) -> usize {
        self.xt.ncols()
    }

    /// Number of features (columns of `x()`).
    pub fn n_features(&self) -> usize {
        self.xt.nrows()
    }

    /// Samples as rows: `n_samples × n_features`.
    pub fn x(&self) -> MatRef<'_, T> {
        self.xt.as_ref().transpose()
    }

    /// Samples as columns: `n_features × n_samples` (METHODS.md's `X`).
    pub fn xt(&self) -> MatRef<'_, T> {
        self.xt.as_ref()
    }

    /// The features of sample `i`, contiguous.
    pub fn sample(&self, i: usize) -> &[T] {
        self.xt.col_as_slice(i)
    }

    /// Consumes the data set, returning the `n_features × n_samples` matrix.
    pub fn into_columns(self) -> Mat<T> {
        self.xt
    }

    /// Checks that the data is non-empty and every entry finite and ≥ 0 (what every model in
    /// partlearn needs; the error names the first offending sample and feature), and that its
    /// scale fits the float type: the Gram products sum `n_features` squares, so
    /// `max² · n_features` must stay below `T`'s largest value and `max²` above its smallest
    /// normal one (f32: data near 1e19 or 1e-19 overflows or underflows silently otherwise).
    pub fn validate_nonnegative(&self) -> Result<()> {
        validate_nonnegative(self.xt.as_ref())?;
        validate_scale(self.xt.as_ref())
    }

    /// `(min, max, mean)` over all entries, accumulated in f64; NaNs are skipped.
    pub fn value_range(&self) -> (f64, f64, f64) {
        let (mut lo, mut hi, mut sum, mut count) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
        for i in 0..self.n_samples() {
            for &v in self.sample(i) {
                let v = v.to_f64();
                if v.is_nan() {
                    continue;
                }
                lo = lo.min(v);
                hi = hi.max(v);
                sum += v;
                count += 1;
            }
        }
        (lo, hi, if count > 0 { sum / count as f64 } else { f64::NAN })
    }

    /// The samples at `indices` (in that order), with their labels.
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.n_samples()) {
            return Err(Error::invalid(
                "indices",
                bad,
                format!("the data has only {} samples", self.n_samples()),
            ));
        }
        let mut xt = Mat::<T>::zeros(self.n_features(), indices.len());
        for (c, &i) in indices.iter().enumerate() {
            xt.col_as_slice_mut(c).copy_from_slice(self.sample(i));
        }
        let pick = |l: &Vec<u32>| indices.iter().map(|&i| l[i]).collect::<Vec<_>>();
        Ok(Dataset {
            xt,
            labels: self.labels.as_ref().map(pick),
            extra_labels: self
                .extra_labels
                .iter()
                .map(|(n, l)| (n.clone(), pick(l)))
                .collect(),
            image_shape: self.image_shape,
            name: self.name.clone(),
        })
    }

    /// The first `n` samples (all of them when `n ≥ n_samples`).
    pub fn first(&self, n: usize) -> Self {
        let idx: Vec<usize> = (0..n.min(self.n_samples())).collect();
        // Indices are in range by construction.
        self.select(&idx).expect("indices in range")
    }

    /// A seeded random subset of `n` distinct samples, kept in their original order.
    pub fn random_subset(&self, n: usize, rng: &mut Rng) -> Self {
        let idx = rng.sample_indices(self.n_samples(), n);
        self.select(&idx).expect("indices in range")
    }

    /// Errors when these values, read in the float type `U` (a file of f64 values fitted in
    /// f32), overflow or underflow its products: [`check_scale`] in `U` on the largest finite
    /// entry, the check such a file gets when it is read in `U` ([`stored_to_real`]).
    pub fn check_scale_in<U: Real>(&self) -> Result<()> {
        let top = (0..self.n_samples())
            .flat_map(|i| self.sample(i).iter().map(|&v| Real::to_f64(v)))
            .filter(|v| v.is_finite())
            .fold(0.0f64, |a, v| a.max(v.abs()));
        check_scale::<U>(top, self.n_features(), self.n_samples() * self.n_features())
    }

    /// The same data in another float type.
    pub fn cast<U: Real>(&self) -> Dataset<U> {
        let xt = Mat::<U>::from_fn(self.n_features(), self.n_samples(), |i, j| {
            U::from_f64(self.xt[(i, j)].to_f64())
        });
        Dataset {
            xt,
            labels: self.labels.clone(),
            extra_labels: self.extra_labels.clone(),
            image_shape: self.image_shape,
            name: self.name.clone(),
        }
    }
}

/// The scale check of [`Dataset::validate_nonnegative`] on a samples-as-columns matrix
/// (`n_features × n_samples`, entries finite and ≥ 0), by [`check_scale`].
pub(crate) fn validate_scale<T: Real>(xt: MatRef<'_, T>) -> Result<()> {
    let top = xt
        .col_iter()
        .flat_map(|c| c.iter().map(|&v| Real::to_f64(v)))
        .fold(0.0f64, |a, v| a.max(v));
    check_scale::<T>(top, xt.nrows(), xt.nrows() * xt.ncols())
}

/// Stored values converted to `T` ([`crate::npy::NpyData::to_real`]), refusing f64 values that
/// `T` cannot hold ([`check_scale`] on the values as stored): converted first, f64 data near
/// 1e-50 would read as all zeros in f32 and fit silently, and data near 1e50 as infinite
/// entries.
pub(crate) fn stored_to_real<T: Real>(data: &crate::npy::NpyData, n_features: usize) -> Result<Vec<T>> {
    if let crate::npy::NpyData::F64(v) = data {
        if T::MAX_F64 < f64::MAX {
            let top = v
                .iter()
                .filter(|x| x.is_finite())
                .fold(0.0f64, |a, x| a.max(x.abs()));
            check_scale::<T>(top, n_features, v.len())?;
        }
    }
    Ok(data.to_real())
}

/// Whether data whose largest entry is `top` fits the float type `T`: the Gram products sum
/// `n_features` squares in `T` (`top² · n_features` below `T`'s largest value, `top²` above its
/// smallest normal one), and the objectives sum the squares of all `entries` (stored entries of
/// sparse data) in f64 (`top² · entries` below f64's largest value: past it `‖X‖²` is infinite
/// and every relative error reads 0).
pub(crate) fn check_scale<T: Real>(top: f64, n_features: usize, entries: usize) -> Result<()> {
    let sq = top * top;
    let fix = |what: &str| {
        format!(
            "products of values up to {top:e} {what}; rescale the data (e.g. divide it by its maximum){}",
            if T::NAME == "f32" {
                " or use `dtype = f64`"
            } else {
                ""
            }
        )
    };
    if sq * n_features as f64 > T::MAX_F64 {
        return Err(Error::invalid(
            "data_scale",
            format!("{top:e}"),
            fix(&format!("overflow in {}", T::NAME)),
        ));
    }
    if sq * entries as f64 > f64::MAX {
        return Err(Error::invalid(
            "data_scale",
            format!("{top:e}"),
            fix("overflow the sum of squares over all entries (in f64)"),
        ));
    }
    if top > 0.0 && sq < T::MIN_POSITIVE_F64 {
        return Err(Error::invalid(
            "data_scale",
            format!("{top:e}"),
            fix(&format!("underflow in {}", T::NAME)),
        ));
    }
    Ok(())
}

/// Checks a samples-as-columns matrix (`n_features × n_samples`) for emptiness, non-finite and
/// negative entries; errors name the first offending sample (column) and feature (row).
pub fn validate_nonnegative<T: Real>(xt: MatRef<'_, T>) -> Result<()> {
    let (m, n) = (xt.nrows(), xt.ncols());
    if m == 0 || n == 0 {
        return Err(Error::EmptyData {
            n_samples: n,
            n_features: m,
        });
    }
    for j in 0..n {
        for i in 0..m {
            let v = xt[(i, j)];
            if !v.is_finite() {
                return Err(Error::NonFinite {
                    sample: j,
                    feature: i,
                    value: v.to_f64(),
                });
            }
            if v < T::zero() {
                return Err(Error::NegativeEntry {
                    sample: j,
                    feature: i,
                    value: v.to_f64(),
                });
            }
        }
    }
    Ok(())
}

/// A fresh temporary folder for a test, removed when dropped.
#[cfg(test)]
pub(crate) struct TestDir(std::path::PathBuf);

#[cfg(test)]
impl TestDir {
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Creates a unique temporary folder (`tag`, process id and a counter in its name).
#[cfg(test)]
pub(crate) fn test_dir(tag: &str) -> TestDir {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("partlearn-test-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TestDir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_major_round_trip_and_views() {
        let v: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let d = Dataset::from_row_major(2, 3, &v, "t").unwrap();
        assert_eq!(d.n_samples(), 2);
        assert_eq!(d.n_features(), 3);
        assert_eq!(d.x()[(1, 2)], 5.0);
        assert_eq!(d.xt()[(2, 1)], 5.0);
        assert_eq!(d.sample(1), &[3.0, 4.0, 5.0]);
    }

    #[test]
    fn data_beyond_the_float_range_is_refused() {
        // f32: 1e19² · 20 features overflows, 1e-20² underflows; f64 takes both.
        for (v, what) in [(1e19f64, "overflow"), (1e-20, "underflow")] {
            let vals = vec![v; 40];
            let d = Dataset::<f32>::from_row_major(
                2,
                20,
                &vals.iter().map(|&x| x as f32).collect::<Vec<_>>(),
                "t",
            )
            .unwrap();
            let e = d.validate_nonnegative().unwrap_err().to_string();
            assert!(e.contains(what) && e.contains("`dtype = f64`"), "{e}");
            assert!(Dataset::<f64>::from_row_major(2, 20, &vals, "t")
                .unwrap()
                .validate_nonnegative()
                .is_ok());
        }
        // Ordinary scales and all-zero data pass.
        for v in [0.0f32, 1e-10, 1.0, 255.0, 1e15] {
            assert!(
                Dataset::from_row_major(2, 20, &[v; 40], "t")
                    .unwrap()
                    .validate_nonnegative()
                    .is_ok(),
                "{v}"
            );
        }
    }

    /// f64 data whose squares fit a Gram product but not the sum over all entries (values
    /// near 1.6e153 in 150 × 64: `‖X‖²` would be infinite and every relative error read 0) are
    /// refused, dense and sparse alike, without the f32 advice; 1e150 passes.
    #[test]
    fn f64_data_whose_sum_of_squares_overflows_is_refused() {
        let (n, m) = (150, 64);
        for (v, ok) in [(1.6e153f64, false), (1e150, true)] {
            let vals = vec![v; n * m];
            let dense = Dataset::<f64>::from_row_major(n, m, &vals, "t").unwrap();
            let triplets: Vec<_> = (0..n * m).map(|e| (e / m, e % m, v)).collect();
            let sparse = csr::Csr::<f64>::from_triplets(n, m, &triplets).unwrap();
            for r in [dense.validate_nonnegative(), sparse.validate_nonnegative()] {
                match (ok, r) {
                    (true, r) => assert!(r.is_ok(), "{v}: {r:?}"),
                    (false, Err(e)) => {
                        let e = e.to_string();
                        assert!(e.contains("all entries") && !e.contains("dtype"), "{e}");
                    }
                    (false, Ok(())) => panic!("{v} accepted"),
                }
            }
        }
    }

    /// `check_scale_in::<f32>` on f64 values decides as reading a file of those values in f32
    /// does ([`stored_to_real`]), so that `data info` need not read the file twice.
    #[test]
    fn the_f32_scale_of_f64_values_is_checked_as_an_f32_read_checks_it() {
        for v in [0.0, 1e-50, 1e-19, 1e-18, 1.0, 1e18, 1e19, 1e30] {
            let vals = vec![v; 40];
            let d = Dataset::<f64>::from_row_major(2, 20, &vals, "t").unwrap();
            let read = stored_to_real::<f32>(&crate::npy::NpyData::F64(vals.clone()), 20);
            assert_eq!(d.check_scale_in::<f32>().is_ok(), read.is_ok(), "{v}");
            assert!(d.check_scale_in::<f64>().is_ok(), "{v}");
        }
        let d = Dataset::<f64>::from_row_major(1, 2, &[1e-50, 1.0], "t").unwrap();
        assert!(d.check_scale_in::<f32>().is_ok(), "the largest entry decides");
    }

    #[test]
    fn validation_names_first_offender() {
        let d = Dataset::from_row_major(2, 2, &[0.0f32, 1.0, -2.0, f32::NAN], "t").unwrap();
        match d.validate_nonnegative() {
            Err(Error::NegativeEntry {
                sample: 1,
                feature: 0,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let d = Dataset::from_row_major(1, 2, &[0.0f32, f32::INFINITY], "t").unwrap();
        assert!(matches!(
            d.validate_nonnegative(),
            Err(Error::NonFinite {
                sample: 0,
                feature: 1,
                ..
            })
        ));
        let d = Dataset::<f32>::from_columns(Mat::zeros(3, 0), "t");
        assert!(matches!(d.validate_nonnegative(), Err(Error::EmptyData { .. })));
    }

    #[test]
    fn subsets_keep_labels() {
        let v: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let mut d = Dataset::from_row_major(5, 2, &v, "t").unwrap();
        d.labels = Some(vec![0, 1, 2, 3, 4]);
        let s = d.select(&[4, 1]).unwrap();
        assert_eq!(s.labels.as_deref(), Some(&[4u32, 1][..]));
        assert_eq!(s.sample(0), &[8.0, 9.0]);
        assert!(d.select(&[5]).is_err());
        let r = d.random_subset(3, &mut Rng::new(0));
        assert_eq!(r.n_samples(), 3);
        assert_eq!(d.first(10).n_samples(), 5);
    }
}
