//! [`Mask`]: which entries of a data matrix are observed (METHODS.md §11.2, `M ∈ {0,1}`,
//! 1 = observed), kept in both layouts (samples as columns and features as columns) so that the
//! per-sample codes and the per-feature atom rows each read their observed set contiguously.

use faer::{Mat, MatRef};

use crate::error::{Error, Result};
use crate::real::Real;
use crate::rng::Rng;

/// Observed (`true`) and hidden (`false`) entries of an `n_samples × n_features` matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    n: usize,
    m: usize,
    /// Sample `j`'s flags at `by_sample[j·m .. (j+1)·m]` (feature order).
    by_sample: Vec<bool>,
    /// Feature `i`'s flags at `by_feature[i·n .. (i+1)·n]` (sample order).
    by_feature: Vec<bool>,
    /// Hidden entries per sample and per feature.
    hidden_per_sample: Vec<usize>,
    hidden_per_feature: Vec<usize>,
}

impl Mask {
    /// A mask from a predicate `observed(sample, feature)`.
    pub fn from_fn(n_samples: usize, n_features: usize, observed: impl Fn(usize, usize) -> bool) -> Self {
        let (n, m) = (n_samples, n_features);
        let mut by_sample = vec![false; n * m];
        let mut by_feature = vec![false; n * m];
        let mut hidden_per_sample = vec![0; n];
        let mut hidden_per_feature = vec![0; m];
        for j in 0..n {
            for i in 0..m {
                let o = observed(j, i);
                by_sample[j * m + i] = o;
                by_feature[i * n + j] = o;
                if !o {
                    hidden_per_sample[j] += 1;
                    hidden_per_feature[i] += 1;
                }
            }
        }
        Mask {
            n,
            m,
            by_sample,
            by_feature,
            hidden_per_sample,
            hidden_per_feature,
        }
    }

    /// A mask from a dense `n_samples × n_features` matrix of 0 (hidden) and 1 (observed), e.g.
    /// read from an NPY or CSV file; any other value is an error naming its entry.
    pub fn from_matrix<T: Real>(m: MatRef<'_, T>) -> Result<Self> {
        for j in 0..m.nrows() {
            for i in 0..m.ncols() {
                let v = m[(j, i)];
                if v != T::zero() && v != T::one() {
                    return Err(Error::invalid(
                        "mask",
                        format!("{} at sample {j}, feature {i}", v.to_f64()),
                        "mask entries must be 0 (hidden) or 1 (observed)",
                    ));
                }
            }
        }
        Ok(Mask::from_fn(m.nrows(), m.ncols(), |j, i| m[(j, i)] == T::one()))
    }

    /// A mask from a sparse `n_samples × n_features` matrix (e.g. a scipy `.npz` or a `.mtx`
    /// file): its stored entries equal to 1 are observed, every other entry — absent, or stored
    /// as 0 — hidden (the same convention as [`Mask::from_matrix`], 1 = observed: the file lists
    /// the observed entries, as a ratings matrix does). Any other stored value is an error naming
    /// its entry.
    pub fn from_csr<T: Real>(a: &crate::data::Csr<T>) -> Result<Self> {
        let (n, m) = (a.nrows(), a.ncols());
        let mut dense = vec![false; n * m];
        for j in 0..n {
            let (cols, vals) = a.row(j);
            for (&c, &v) in cols.iter().zip(vals) {
                if v != T::zero() && v != T::one() {
                    return Err(Error::invalid(
                        "mask",
                        format!("{} at sample {j}, feature {c}", v.to_f64()),
                        "mask entries must be 0 (hidden) or 1 (observed)",
                    ));
                }
                dense[j * m + c as usize] = v == T::one();
            }
        }
        Ok(Mask::from_fn(n, m, |j, i| dense[j * m + i]))
    }

    /// The entries of `x` (`n_samples × n_features`) that are not NaN.
    pub fn from_nan<T: Real>(x: MatRef<'_, T>) -> Self {
        Mask::from_fn(x.nrows(), x.ncols(), |j, i| !x[(j, i)].is_nan())
    }

    /// Number of observed entries.
    pub fn observed_count(&self) -> u64 {
        let hidden: usize = self.hidden_per_sample.iter().sum();
        (self.n * self.m - hidden) as u64
    }

    /// Every entry observed.
    pub fn full(n_samples: usize, n_features: usize) -> Self {
        Mask::from_fn(n_samples, n_features, |_, _| true)
    }

    /// A seeded random hold-out (cross-validation, METHODS.md §11.4): every entry observed by
    /// `base` is hidden with probability `fraction`, except that each sample and each feature
    /// keeps at least one observed entry (an entry whose hiding would leave its sample or
    /// feature empty stays observed). Returns the training mask; the held-out entries are those
    /// observed by `base` and hidden by it.
    pub fn holdout(base: &Mask, fraction: f64, rng: &mut Rng) -> Self {
        let (n, m) = (base.n, base.m);
        let mut keep = base.by_sample.clone();
        let mut left_s: Vec<usize> = (0..n).map(|j| m - base.hidden_per_sample[j]).collect();
        let mut left_f: Vec<usize> = (0..m).map(|i| n - base.hidden_per_feature[i]).collect();
        for j in 0..n {
            for i in 0..m {
                // One draw per entry, in a fixed order (the seed contract).
                let u = rng.uniform();
                if keep[j * m + i] && u < fraction && left_s[j] > 1 && left_f[i] > 1 {
                    keep[j * m + i] = false;
                    left_s[j] -= 1;
                    left_f[i] -= 1;
                }
            }
        }
        Mask::from_fn(n, m, |j, i| keep[j * m + i])
    }

    /// `n_samples`.
    pub fn n_samples(&self) -> usize {
        self.n
    }

    /// `n_features`.
    pub fn n_features(&self) -> usize {
        self.m
    }

    /// Whether feature `feature` of sample `sample` is observed.
    pub fn observed(&self, sample: usize, feature: usize) -> bool {
        self.by_sample[sample * self.m + feature]
    }

    /// Number of hidden entries.
    pub fn n_hidden(&self) -> usize {
        self.hidden_per_sample.iter().sum()
    }

    /// Whether every entry is observed.
    pub fn is_full(&self) -> bool {
        self.n_hidden() == 0
    }

    /// The mask as a dense `n_samples × n_features` matrix of 0 and 1.
    pub fn to_matrix<T: Real>(&self) -> Mat<T> {
        Mat::from_fn(self.n, self.m, |j, i| {
            if self.observed(j, i) {
                T::one()
            } else {
                T::zero()
            }
        })
    }

    /// Sample `j`'s flags over the features.
    pub(crate) fn sample_flags(&self, j: usize) -> &[bool] {
        &self.by_sample[j * self.m..(j + 1) * self.m]
    }

    /// Feature `i`'s flags over the samples.
    pub(crate) fn feature_flags(&self, i: usize) -> &[bool] {
        &self.by_feature[i * self.n..(i + 1) * self.n]
    }

    pub(crate) fn hidden_per_sample(&self) -> &[usize] {
        &self.hidden_per_sample
    }

    pub(crate) fn hidden_per_feature(&self) -> &[usize] {
        &self.hidden_per_feature
    }

    /// Errors unless the mask has `x`'s shape (`n_samples × n_features`).
    pub fn check_shape(&self, n_samples: usize, n_features: usize) -> Result<()> {
        if (self.n, self.m) != (n_samples, n_features) {
            return Err(Error::ShapeMismatch {
                what: "mask".into(),
                expected: format!("{n_samples} × {n_features} (the data's shape)"),
                found: format!("{} × {}", self.n, self.m),
                hint: "give a mask with one 0/1 entry per data entry".into(),
            });
        }
        Ok(())
    }

    /// Errors when a sample or a feature has no observed entry: its code (or its entry of every
    /// atom) would be undetermined. Names the first such sample, else the first such feature
    /// (features are checked only with `features`: `transform` needs observed samples only).
    pub fn check_coverage(&self, features: bool) -> Result<()> {
        if let Some(j) = (0..self.n).find(|&j| self.hidden_per_sample[j] == self.m) {
            return Err(Error::invalid(
                "mask",
                format!("sample {j} has no observed entry"),
                "its code is undetermined: drop the sample or observe at least one of its features",
            ));
        }
        if let Some(i) = (0..self.m).find(|&i| features && self.hidden_per_feature[i] == self.n) {
            return Err(Error::invalid(
                "mask",
                format!("feature {i} has no observed entry"),
                "its entry of every atom is undetermined: drop the feature or observe it in at least one sample",
            ));
        }
        Ok(())
    }
}

/// The data for a masked fit, samples as columns (`m × n`): hidden entries set to 0 (so that
/// `Wᵀ(M ⊙ X)` is a plain product), after checking that `mask` (or, without one, the NaN
/// pattern of `x`) has `x`'s shape, that no observed entry is NaN, negative or infinite, and
/// that every sample (and, with `features`, every feature) has an observed entry.
pub(crate) fn masked_columns<T: Real>(
    x: MatRef<'_, T>,
    mask: Option<&Mask>,
    features: bool,
) -> Result<(Mat<T>, Mask)> {
    let mask = match mask {
        Some(m) => {
            m.check_shape(x.nrows(), x.ncols())?;
            m.clone()
        }
        None => Mask::from_nan(x),
    };
    let (n, m) = (x.nrows(), x.ncols());
    if n == 0 || m == 0 {
        return Err(Error::EmptyData {
            n_samples: n,
            n_features: m,
        });
    }
    for j in 0..n {
        for i in 0..m {
            let v = x[(j, i)];
            if !mask.observed(j, i) {
                continue;
            }
            if v.is_nan() {
                return Err(Error::invalid(
                    "mask",
                    format!("NaN at sample {j}, feature {i}, which the mask marks observed"),
                    "mark the entry hidden (0) in the mask, or give its value",
                ));
            }
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
    mask.check_coverage(features)?;
    let x0 = Mat::from_fn(
        m,
        n,
        |i, j| {
            if mask.observed(j, i) {
                x[(j, i)]
            } else {
                T::zero()
            }
        },
    );
    crate::data::validate_scale(x0.as_ref())?;
    Ok((x0, mask))
}
