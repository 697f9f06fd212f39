//! A fitted NMF dictionary and how it encodes data (METHODS.md §1.7): Frobenius models solve the
//! non-negative least-squares problem of each sample by coordinate descent to convergence (with
//! the codes' penalties of the fit); other β-divergences run MU on the codes with the atoms fixed.
//! `fit` computes its returned codes with this same routine, so `transform` of the training data
//! agrees with them (the bug of scikit-learn's #18663 cannot happen).

use faer::{Accum, Mat, MatRef, Par};
use serde::{Deserialize, Serialize};

use super::beta::BetaMu;
use super::cd::{self, SweepRule};
use super::data_op::{SparseX, XRef};
use super::fit_loop::Iterate;
use super::init::Factors;
use super::options::{EncodeMethod, EncodeOptions, Penalty};
use super::sparse_kl::SparseKl;
use crate::data::{validate_nonnegative, Csr};
use crate::error::{Error, Result};
use crate::linalg;
use crate::real::Real;

/// What a saved NMF model needs besides its atoms to encode data exactly as `fit` did.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncodeSpec {
    /// β of the divergence the model was fitted with.
    pub beta_loss: f64,
    /// Penalty on the codes (already scaled by n_features).
    pub codes_penalty: Penalty,
    /// Solver settings.
    pub encode: EncodeOptions,
}

impl EncodeSpec {
    /// A finite `beta_loss`, finite non-negative penalties and valid encode options: what a
    /// fit produces, checked again where a model file is read ([`NmfModel::new`]).
    pub fn check(&self) -> Result<()> {
        if !self.beta_loss.is_finite() {
            return Err(Error::invalid(
                "beta_loss",
                self.beta_loss,
                "give a finite number",
            ));
        }
        self.codes_penalty.check("codes_penalty")?;
        self.encode.check()
    }
}

/// An NMF dictionary: `k` atoms of `n_features` each.
#[derive(Clone, Debug)]
pub struct NmfModel<T: Real> {
    /// `k × n_features`, one atom per row (scikit-learn's `components_`).
    wt: Mat<T>,
    /// How [`NmfModel::encode`] computes codes (the settings of the fit).
    pub spec: EncodeSpec,
}

impl<T: Real> NmfModel<T> {
    /// A model from atoms (`k × n_features`); they must be finite and ≥ 0, and `spec` valid
    /// ([`EncodeSpec::check`]).
    pub fn new(atoms: Mat<T>, spec: EncodeSpec) -> Result<Self> {
        spec.check()?;
        if atoms.nrows() == 0 || atoms.ncols() == 0 {
            return Err(Error::invalid(
                "atoms",
                format!("{} × {}", atoms.nrows(), atoms.ncols()),
                "a model needs at least one atom of at least one feature",
            ));
        }
        // Atoms as columns of a features × k matrix, checked like data (sample = atom).
        validate_nonnegative(atoms.transpose()).map_err(|e| match e {
            Error::NegativeEntry {
                sample,
                feature,
                value,
            }
            | Error::NonFinite {
                sample,
                feature,
                value,
            } => Error::invalid(
                "atoms",
                format!("{value} at atom {sample}, feature {feature}"),
                "atoms must be finite and ≥ 0",
            ),
            other => other,
        })?;
        Ok(NmfModel { wt: atoms, spec })
    }

    /// `k × n_features`, one atom per row.
    pub fn components(&self) -> MatRef<'_, T> {
        self.wt.as_ref()
    }

    /// Number of atoms.
    pub fn k(&self) -> usize {
        self.wt.nrows()
    }

    /// Number of features of each atom.
    pub fn n_features(&self) -> usize {
        self.wt.ncols()
    }

    /// Codes (`n × k`) of samples given as rows (`n × n_features`), computed with `threads`
    /// worker threads (1 = sequential, 0 = all cores): scikit-learn's `transform`, by the
    /// [`EncodeSpec`] of the fit (METHODS.md §1.7; for the training data it gives the fit's
    /// [`codes`](super::NmfFit::codes)).
    ///
    /// Errors when `x` has another number of features than the atoms, or entries that are
    /// negative or not finite.
    ///
    /// ```
    /// use partlearn::faer::Mat;
    /// use partlearn::nmf::{self, NmfParams};
    ///
    /// let x = Mat::<f64>::from_fn(40, 12, |i, j| ((i + 2 * j) % 5) as f64);
    /// let fit = nmf::factorize(x.as_ref(), &NmfParams::new(3).max_iter(50).check()?)?;
    /// // Transform new samples with the fitted atoms (here: the first 5 rows, doubled).
    /// let new = Mat::<f64>::from_fn(5, 12, |i, j| 2.0 * x[(i, j)]);
    /// let codes = fit.model.encode(new.as_ref(), 1)?; // 5 × 3, ≥ 0
    /// let recon = fit.model.decode(codes.as_ref())?; // 5 × 12
    /// assert_eq!((codes.nrows(), codes.ncols(), recon.ncols()), (5, 3, 12));
    /// assert!(fit.model.encode(Mat::<f64>::zeros(1, 7).as_ref(), 1).is_err()); // 7 ≠ 12 features
    /// # Ok::<(), partlearn::Error>(())
    /// ```
    pub fn encode(&self, x: MatRef<'_, T>, threads: usize) -> Result<Mat<T>> {
        let xt = x.transpose();
        self.check_data(xt)?;
        let h = linalg::with_threads(threads, || self.encode_columns(xt, None, linalg::par(threads)))?;
        Ok(h.transpose().to_owned())
    }

    /// [`Self::encode`] for sparse samples (`n × n_features` CSR), never densified: the cross
    /// term `WᵀX` is an SpMM (`O(nnz·k)`); KL models run MU on the codes with `WH` at the
    /// non-zeros only. Same codes as `encode` of the dense matrix up to rounding.
    pub fn encode_csr(&self, x: &Csr<T>, threads: usize) -> Result<Mat<T>> {
        if x.ncols() != self.n_features() {
            return Err(Error::ShapeMismatch {
                what: "data for this model".into(),
                expected: format!("n_samples × {} features", self.n_features()),
                found: format!("{} × {}", x.nrows(), x.ncols()),
                hint: "encode data with the same features as the training data".into(),
            });
        }
        x.validate_nonnegative()?;
        super::check_sparse_beta(self.spec.beta_loss)?;
        let sx = SparseX::new(x)?;
        let h = linalg::with_threads(threads, || {
            self.encode_columns(XRef::Sparse(&sx), None, linalg::par(threads))
        })?;
        Ok(h.transpose().to_owned())
    }

    /// `‖X − codes·atoms‖²` of sparse samples without forming the reconstruction (METHODS.md
    /// §11.1): `‖X‖² − 2⟨X, CW⟩ + ⟨WWᵀ, CᵀC⟩` (`C` = codes `n × k`, `W` = atoms `k × m`),
    /// every term summed in f64, `O(nnz·k + (n + m)·k²)`.
    pub fn sq_error_csr(&self, x: &Csr<T>, codes: MatRef<'_, T>, threads: usize) -> Result<f64> {
        if codes.nrows() != x.nrows() || codes.ncols() != self.k() || x.ncols() != self.n_features() {
            return Err(Error::ShapeMismatch {
                what: "codes and data".into(),
                expected: format!(
                    "{} × {} codes for {} × {} data",
                    x.nrows(),
                    self.k(),
                    x.nrows(),
                    self.n_features()
                ),
                found: format!(
                    "{} × {} codes, {} × {} data",
                    codes.nrows(),
                    codes.ncols(),
                    x.nrows(),
                    x.ncols()
                ),
                hint: "give the codes this model computed for this data".into(),
            });
        }
        let par = linalg::par(threads);
        linalg::with_threads(threads, || {
            let ht = codes.transpose().to_owned();
            let cross = linalg::spmm::inner_at_nonzeros(x, self.wt.as_ref(), ht.as_ref(), par);
            let (mut q, mut t) = (
                Mat::<T>::zeros(self.k(), self.k()),
                Mat::<T>::zeros(self.k(), self.k()),
            );
            linalg::gram(q.as_mut(), self.wt.as_ref(), par);
            linalg::gram(t.as_mut(), ht.as_ref(), par);
            (x.frob_sq() - 2.0 * cross + linalg::inner(q.as_ref(), t.as_ref())).max(0.0)
        })
    }

    /// Reconstruction `codes · atoms` (`n × n_features`) from codes `n × k`.
    pub fn decode(&self, codes: MatRef<'_, T>) -> Result<Mat<T>> {
        if codes.ncols() != self.k() {
            return Err(Error::ShapeMismatch {
                what: "codes".into(),
                expected: format!("n × {}", self.k()),
                found: format!("{} × {}", codes.nrows(), codes.ncols()),
                hint: "give codes computed by this model".into(),
            });
        }
        let mut out = Mat::<T>::zeros(codes.nrows(), self.n_features());
        linalg::matmul(
            out.as_mut(),
            Accum::Replace,
            codes,
            self.wt.as_ref(),
            T::one(),
            Par::Seq,
        );
        Ok(out)
    }

    pub(crate) fn check_data(&self, xt: MatRef<'_, T>) -> Result<()> {
        if xt.nrows() != self.n_features() {
            return Err(Error::ShapeMismatch {
                what: "data for this model".into(),
                expected: format!("n_samples × {} features", self.n_features()),
                found: format!("{} × {}", xt.ncols(), xt.nrows()),
                hint: "encode data with the same features (e.g. image size) as the training data".into(),
            });
        }
        validate_nonnegative(xt)?;
        if self.spec.beta_loss <= 0.0 {
            check_positive(xt)?;
        }
        Ok(())
    }

    /// Codes `k × n` of `xt` (`m × n`, samples as columns), warm-started from `h0` if given.
    /// Frobenius: coordinate descent from 0 (or `h0`) until `‖Δh‖ ≤ tol·‖h‖` per block of
    /// columns; other β: MU on the codes from `sqrt(mean(X)/k)` (or `h0`).
    pub(crate) fn encode_columns<'a>(
        &self,
        xt: impl Into<XRef<'a, T>>,
        h0: Option<Mat<T>>,
        par: Par,
    ) -> Mat<T> {
        let xt = xt.into();
        let (k, n) = (self.k(), xt.ncols());
        if self.spec.beta_loss == 2.0 {
            let mut p = Mat::<T>::zeros(k, n);
            xt.codes_cross(p.as_mut(), self.wt.as_ref(), par);
            return self.encode_cross(p, h0, par);
        }
        self.encode_beta(xt, h0, par)
    }

    /// The Frobenius encode of [`Self::encode_columns`] from the cross term `P = WᵀX`
    /// (`k × n`; e.g. summed over the processes holding the samples' other features).
    pub(crate) fn encode_cross(&self, mut p: Mat<T>, h0: Option<Mat<T>>, par: Par) -> Mat<T> {
        let (k, n) = (self.k(), p.ncols());
        let enc = self.spec.encode;
        let warm = h0.is_some();
        let mut h = h0.unwrap_or_else(|| Mat::zeros(k, n));
        let mut q = Mat::<T>::zeros(k, k);
        linalg::gram(q.as_mut(), self.wt.as_ref(), par);
        let pen = self.spec.codes_penalty;
        if enc.method == EncodeMethod::Exact {
            // min ½hᵀQh − hᵀp + l1·Σh + ½l2‖h‖²: NNLS with Q + l2·I and p − l1.
            for i in 0..k {
                q[(i, i)] = q[(i, i)] + T::from_f64(pen.l2);
            }
            if pen.l1 != 0.0 {
                let l1 = T::from_f64(pen.l1);
                super::beta::for_cols(p.as_mut(), !matches!(par, Par::Seq), |_, col| {
                    col.iter_mut().for_each(|v| *v = *v - l1)
                });
            }
            // Errors only come from non-finite inputs, excluded by `check_data`.
            let _ = linalg::nnls::solve_gram(
                q.as_ref(),
                p.as_ref(),
                h.as_mut(),
                warm,
                &linalg::nnls::NnlsOptions::default(),
                par,
            );
            return h;
        }
        let rule = SweepRule {
            max_sweeps: enc.max_iter,
            delta: 0.0,
            tol: enc.tol,
            floor: 0.0,
        };
        cd::sweep(
            h.as_mut(),
            q.as_ref(),
            p.as_ref(),
            pen.l1,
            pen.l2,
            rule,
            !matches!(par, Par::Seq),
        );
        h
    }

    /// The β ≠ 2 encode of [`Self::encode_columns`] (codes-only multiplicative updates).
    fn encode_beta(&self, xt: XRef<'_, T>, h0: Option<Mat<T>>, par: Par) -> Mat<T> {
        let (k, n) = (self.k(), xt.ncols());
        let enc = self.spec.encode;
        let h = h0.unwrap_or_else(|| {
            let v0 = T::from_f64((xt.mean() / k as f64).sqrt().max(1e-12));
            Mat::from_fn(k, n, |_, _| v0)
        });
        let mut f = Factors {
            wt: self.wt.clone(),
            h,
        };
        let mut mu: Box<dyn Iterate<T>> = match xt {
            XRef::Dense(xt) => {
                let mut mu = BetaMu::new(
                    xt,
                    k,
                    self.spec.beta_loss,
                    self.spec.codes_penalty,
                    Penalty::default(),
                    par,
                );
                mu.codes_only = true;
                Box::new(mu)
            }
            XRef::Sparse(s) => {
                let mut mu = SparseKl::new(s, k, self.spec.codes_penalty, Penalty::default(), par);
                mu.codes_only = true;
                Box::new(mu)
            }
        };
        let mut prev = mu.initial(&mut f).objective;
        let first = prev;
        for _ in 0..enc.max_iter {
            let cur = mu.iterate(&mut f).objective;
            if !(first > 0.0) || (prev - cur) / first < enc.tol {
                break;
            }
            prev = cur;
        }
        f.h
    }
}

/// Itakura–Saito (β ≤ 0) divides by the data: every entry must be > 0.
pub(crate) fn check_positive<T: Real>(xt: MatRef<'_, T>) -> Result<()> {
    for j in 0..xt.ncols() {
        for i in 0..xt.nrows() {
            if xt[(i, j)] <= T::zero() {
                return Err(Error::invalid(
                    "beta_loss",
                    "≤ 0",
                    format!("needs strictly positive data, but sample {j}, feature {i} is 0; add a small offset to the data or use beta-loss > 0"),
                ));
            }
        }
    }
    Ok(())
}

/// Metadata key naming the kind of model in a safetensors file.
pub(crate) const KIND_KEY: &str = "partlearn.model";
/// Metadata key holding the [`EncodeSpec`] as JSON.
pub(crate) const SPEC_KEY: &str = "partlearn.encode_spec";
/// Metadata key holding the image shape `"h×w"`, when the data were images.
pub(crate) const IMAGE_SHAPE_KEY: &str = "partlearn.image_shape";

/// The image shape recorded in a model file's metadata, if any.
pub(crate) fn image_shape_of(meta: &std::collections::BTreeMap<String, String>) -> Option<(usize, usize)> {
    let (h, w) = meta.get(IMAGE_SHAPE_KEY)?.split_once('x')?;
    Some((h.parse().ok()?, w.parse().ok()?))
}

impl<T: Real> NmfModel<T> {
    /// Tensors (`atoms` `k × n_features`; `codes` `n × k` when given) and metadata of a model
    /// file; numpy users read them with `safetensors.numpy.load_file`.
    pub fn to_tensors(
        &self,
        codes: Option<MatRef<'_, T>>,
        image_shape: Option<(usize, usize)>,
    ) -> Result<(Vec<crate::io::Tensor>, std::collections::BTreeMap<String, String>)> {
        let mut tensors = vec![crate::io::Tensor::from_mat("atoms", self.wt.as_ref())];
        if let Some(c) = codes {
            tensors.push(crate::io::Tensor::from_mat("codes", c));
        }
        let mut meta = std::collections::BTreeMap::new();
        meta.insert(KIND_KEY.to_string(), "nmf".to_string());
        meta.insert(
            SPEC_KEY.to_string(),
            serde_json::to_string(&self.spec).map_err(|e| Error::invalid("model", "spec", e.to_string()))?,
        );
        if let Some((h, w)) = image_shape {
            meta.insert(IMAGE_SHAPE_KEY.to_string(), format!("{h}x{w}"));
        }
        Ok((tensors, meta))
    }

    /// Loads a model written by [`NmfModel::to_tensors`] (converting to `T` if needed); also
    /// returns the image shape when recorded.
    pub fn load(path: &std::path::Path) -> Result<(Self, Option<(usize, usize)>)> {
        let (tensors, meta) = crate::io::read_safetensors(path)?;
        Self::from_file_parts(&tensors, &meta, path)
    }

    /// The model in the tensors and metadata of a model file already read or parsed
    /// ([`crate::io::parse_safetensors`]; `path` names it in messages), with its image shape.
    pub fn from_file_parts(
        tensors: &[crate::io::Tensor],
        meta: &std::collections::BTreeMap<String, String>,
        path: &std::path::Path,
    ) -> Result<(Self, Option<(usize, usize)>)> {
        match meta.get(KIND_KEY).map(String::as_str) {
            Some("nmf") => {}
            other => {
                return Err(Error::format(
                    path,
                    format!(
                        "not a partlearn NMF model (model kind {:?}); give the model file an NMF fit saved (model.safetensors of its run folder)",
                        other.unwrap_or("missing")
                    ),
                ))
            }
        }
        let spec_json = meta.get(SPEC_KEY).ok_or_else(|| {
            Error::format(
                path,
                "the model metadata lacks its encode settings; re-run the fit",
            )
        })?;
        let spec: EncodeSpec = serde_json::from_str(spec_json)
            .map_err(|e| Error::format(path, format!("unreadable encode settings ({e}); re-run the fit")))?;
        let atoms = crate::io::tensor_by_name(tensors, "atoms", path)?.to_mat::<T>()?;
        let image_shape = image_shape_of(meta);
        let model = NmfModel::new(atoms, spec)
            .map_err(|e| Error::format(path, format!("{e}; the model file is damaged: refit the model")))?;
        Ok((model, image_shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_file_round_trip() {
        let atoms = Mat::<f32>::from_fn(3, 4, |i, j| (i * 4 + j) as f32);
        let spec = EncodeSpec {
            beta_loss: 1.0,
            codes_penalty: Penalty { l1: 0.5, l2: 0.0 },
            encode: EncodeOptions::default(),
        };
        let m = NmfModel::new(atoms.clone(), spec).unwrap();
        let codes = Mat::<f32>::ones(5, 3);
        let (t, meta) = m.to_tensors(Some(codes.as_ref()), Some((2, 2))).unwrap();
        let dir = std::env::temp_dir().join(format!("partlearn-model-{}", std::process::id()));
        let path = dir.join("model.safetensors");
        crate::io::write_safetensors(&path, &t, &meta).unwrap();
        let (back, shape) = NmfModel::<f64>::load(&path).unwrap();
        assert_eq!(shape, Some((2, 2)));
        assert_eq!(back.spec, spec);
        assert_eq!(back.components()[(2, 3)], 11.0);
        // A file that is not an NMF model is refused with a hint.
        crate::io::write_safetensors(&path, &t, &Default::default()).unwrap();
        let e = NmfModel::<f32>::load(&path).unwrap_err().to_string();
        assert!(e.contains("not a partlearn NMF model"), "{e}");
        // A damaged atom is reported as such, not as bad data.
        let mut bad = atoms.clone();
        bad[(1, 2)] = -2.0;
        let (t, meta) = NmfModel { wt: bad, spec }.to_tensors(None, None).unwrap();
        crate::io::write_safetensors(&path, &t, &meta).unwrap();
        let e = NmfModel::<f32>::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("-2 at atom 1, feature 2") && e.contains("damaged") && !e.contains("clip the data"),
            "{e}"
        );
        // Damaged encode settings are refused, not used: codes from them would be all zero.
        let damaged = [
            EncodeSpec {
                encode: EncodeOptions {
                    max_iter: 0,
                    ..EncodeOptions::default()
                },
                ..spec
            },
            EncodeSpec {
                codes_penalty: Penalty { l1: 0.0, l2: -100.0 },
                ..spec
            },
            EncodeSpec {
                beta_loss: f64::NAN,
                ..spec
            },
            EncodeSpec {
                encode: EncodeOptions {
                    tol: -1.0,
                    ..EncodeOptions::default()
                },
                ..spec
            },
        ];
        for bad in damaged {
            let (t, mut meta) = m.to_tensors(None, None).unwrap();
            meta.insert(SPEC_KEY.into(), serde_json::to_string(&bad).unwrap());
            crate::io::write_safetensors(&path, &t, &meta).unwrap();
            let e = NmfModel::<f32>::load(&path).unwrap_err().to_string();
            // (A NaN `beta_loss` is written as `null`, which the reader already refuses.)
            assert!(e.contains("damaged") || e.contains("unreadable"), "{bad:?}: {e}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
