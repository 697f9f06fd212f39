//! The one protocol every fitted model follows (DESIGN.md, "One protocol"): atoms, encode,
//! decode, and decode with other atoms. The evaluation ([`crate::eval`]) and the figures use only
//! this trait, so every metric and panel is written once for NMF models, auto-encoders and deep
//! models alike.
//!
//! [`load_model`] opens a model file (or a run folder) and returns the right implementation,
//! chosen by the `partlearn.model` metadata key of the safetensors file.

use std::path::Path;

use faer::{Accum, Mat, MatRef, Par};

use crate::error::{Error, Result};
use crate::linalg;
use crate::nmf::NmfModel;
use crate::real::Real;

/// A fitted part-based model. Samples are rows: `x` is `n × n_features`, codes `n × k`, atoms
/// `k × n_features`.
pub trait PartModel<T: Real>: Send + Sync {
    /// Short name of the model kind as stored in files ("nmf", …).
    fn kind(&self) -> &str;

    /// The dictionary, `k × n_features`, one atom per row.
    fn atoms(&self) -> MatRef<'_, T>;

    /// Codes (`n × k`) of samples given as rows, with `threads` workers (0 = all cores).
    fn encode(&self, x: MatRef<'_, T>, threads: usize) -> Result<Mat<T>>;

    /// Codes (`n × k`) of sparse samples (CSR, samples as rows), never densified. NMF models
    /// implement it ([`NmfModel::encode_csr`]); the others need dense data.
    fn encode_csr(&self, x: &crate::data::Csr<T>, threads: usize) -> Result<Mat<T>> {
        let _ = (x, threads);
        Err(Error::invalid(
            "data",
            "sparse",
            format!(
                "{} models need dense data; densify it (e.g. save x.toarray() as .npy) or use an NMF model",
                self.kind()
            ),
        ))
    }

    /// Reconstructions `n × n_features` from codes `n × k` with the model's own atoms.
    fn decode(&self, codes: MatRef<'_, T>) -> Result<Mat<T>> {
        self.decode_with_atoms(self.atoms(), codes)
    }

    /// Reconstructions from codes with replacement atoms of the same shape as [`atoms`](Self::atoms)
    /// (e.g. dilated atoms, METHODS.md §7.5). For NMF this is `codes · atoms`; an auto-encoder
    /// applies its output bias and activation (the bias itself is not replaced).
    fn decode_with_atoms(&self, atoms: MatRef<'_, T>, codes: MatRef<'_, T>) -> Result<Mat<T>>;

    /// Number of atoms.
    fn k(&self) -> usize {
        self.atoms().nrows()
    }

    /// Number of features of each atom.
    fn n_features(&self) -> usize {
        self.atoms().ncols()
    }

    /// The NMF model, when this is one (for what only NMF offers, e.g.
    /// [`NmfModel::encode_masked`] on data with missing entries).
    fn as_nmf(&self) -> Option<&NmfModel<T>> {
        None
    }
}

/// Checks new samples `x` (`n × m`, samples as rows) to be encoded by a model fitted on `m`
/// features: the width, then every entry finite and ≥ 0.
pub(crate) fn check_encode_input<T: Real>(x: MatRef<'_, T>, m: usize) -> Result<()> {
    if x.ncols() != m {
        return Err(Error::ShapeMismatch {
            what: "data".into(),
            expected: format!("n × {m}"),
            found: format!("{} × {}", x.nrows(), x.ncols()),
            hint: "encode data with as many features as the training data".into(),
        });
    }
    crate::data::validate_nonnegative(x.transpose())
}

/// `codes · atoms` after checking the shapes against a model with `k` atoms of `m` features;
/// the linear decoder of every NMF-type model.
pub(crate) fn linear_decode<T: Real>(
    k: usize,
    m: usize,
    atoms: MatRef<'_, T>,
    codes: MatRef<'_, T>,
    par: Par,
) -> Result<Mat<T>> {
    check_decode_shapes(k, m, atoms, codes)?;
    let mut out = Mat::<T>::zeros(codes.nrows(), m);
    linalg::matmul(out.as_mut(), Accum::Replace, codes, atoms, T::one(), par);
    Ok(out)
}

/// Checks that `atoms` is `k × m` and `codes` is `n × k`.
pub(crate) fn check_decode_shapes<T: Real>(
    k: usize,
    m: usize,
    atoms: MatRef<'_, T>,
    codes: MatRef<'_, T>,
) -> Result<()> {
    if atoms.nrows() != k || atoms.ncols() != m {
        return Err(Error::ShapeMismatch {
            what: "replacement atoms".into(),
            expected: format!("{k} × {m}"),
            found: format!("{} × {}", atoms.nrows(), atoms.ncols()),
            hint: "give one atom per model atom, with the model's number of features".into(),
        });
    }
    if codes.ncols() != k {
        return Err(Error::ShapeMismatch {
            what: "codes".into(),
            expected: format!("n × {k}"),
            found: format!("{} × {}", codes.nrows(), codes.ncols()),
            hint: "give codes computed by this model".into(),
        });
    }
    Ok(())
}

impl<T: Real> PartModel<T> for NmfModel<T> {
    fn kind(&self) -> &str {
        "nmf"
    }

    fn as_nmf(&self) -> Option<&NmfModel<T>> {
        Some(self)
    }

    fn atoms(&self) -> MatRef<'_, T> {
        self.components()
    }

    fn encode(&self, x: MatRef<'_, T>, threads: usize) -> Result<Mat<T>> {
        NmfModel::encode(self, x, threads)
    }

    fn encode_csr(&self, x: &crate::data::Csr<T>, threads: usize) -> Result<Mat<T>> {
        NmfModel::encode_csr(self, x, threads)
    }

    fn decode_with_atoms(&self, atoms: MatRef<'_, T>, codes: MatRef<'_, T>) -> Result<Mat<T>> {
        linear_decode(self.k(), self.n_features(), atoms, codes, Par::Seq)
    }
}

/// A loaded model and the image shape its training data had (if images).
pub struct LoadedModel<T: Real> {
    /// The model, whatever its kind (NMF, auto-encoder, deep model).
    pub model: Box<dyn PartModel<T>>,
    /// `(height, width)` of the training images, when the data were images.
    pub image_shape: Option<(usize, usize)>,
}

impl<T: Real> LoadedModel<T> {
    /// Errors when `data` holds images of another shape than the model's training images
    /// (same pixel count, e.g. 14×56 against 28×28: a convolutional model would encode them
    /// as if they were its own, and every figure would be garbled). Flat data passes.
    pub fn check_images<U: Real>(&self, data: &crate::data::Dataset<U>) -> Result<()> {
        match (self.image_shape, data.image_shape) {
            (Some((h, w)), Some((dh, dw))) if (h, w) != (dh, dw) => Err(Error::ShapeMismatch {
                what: format!("images of {}", data.name),
                expected: format!("{h}×{w} (the model's training images)"),
                found: format!("{dh}×{dw}"),
                hint: "give images of the model's shape".into(),
            }),
            _ => Ok(()),
        }
    }
}

/// Opens a model: a run folder (its `model.safetensors`) or a model file. The kind recorded in
/// the file's metadata picks the implementation. With [`PartModel::encode`] this is
/// `partlearn transform`:
///
/// ```
/// use partlearn::faer::Mat;
/// use partlearn::nmf::{self, NmfParams};
/// use partlearn::{io, protocol};
///
/// let x = Mat::<f32>::from_fn(30, 8, |i, j| ((i * j) % 4) as f32);
/// let fit = nmf::factorize(x.as_ref(), &NmfParams::new(2).max_iter(20).check()?)?;
/// let path = std::env::temp_dir().join(format!("partlearn-doc-{}.safetensors", std::process::id()));
/// let (tensors, meta) = fit.model.to_tensors(None, None)?;
/// io::write_safetensors(&path, &tensors, &meta)?;
///
/// let loaded = protocol::load_model::<f32>(&path)?;
/// let codes = loaded.model.encode(x.as_ref(), 1)?; // n × k, as `fit.codes()`
/// assert_eq!((loaded.model.kind(), codes.ncols()), ("nmf", 2));
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn load_model<T: Real>(path: &Path) -> Result<LoadedModel<T>> {
    let file = if path.is_dir() {
        crate::io::open_existing(path)?.join(crate::io::run::MODEL_FILE)
    } else if path.is_file() {
        path.to_path_buf()
    } else {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such run folder or model file; give a run folder or the model file a fit saved",
            ),
        ));
    };
    let (tensors, meta) = crate::io::read_safetensors(&file)?;
    let loaded = model_from_parts::<T>(&tensors, &meta, &file)?;
    // The run record beside the model must be partlearn's and describe this model.
    let dir = crate::io::atomic::parent_dir(&file);
    if dir.join(crate::io::run::RUN_FILE).exists() {
        let kind = meta.get(crate::nmf::model::KIND_KEY).map_or("", String::as_str);
        check_record(&dir, kind, loaded.model.atoms().nrows())?;
    }
    Ok(loaded)
}

/// Errors unless the run record of `dir` (its run.json) is partlearn's, names a method that
/// saves models of `kind`, and (where it records one `k`) records the model's `k` atoms: a
/// corrupt, edited or foreign run.json, or a model file from another run, is refused.
fn check_record(dir: &Path, kind: &str, k: usize) -> Result<()> {
    let record = crate::io::RunRecord::read(dir)?;
    let file = dir.join(crate::io::run::RUN_FILE);
    let methods: &[&str] = match kind {
        "nmf" => &["nmf", "sparse-nmf", "ssnmf"],
        other => &[other],
    };
    if !methods.contains(&record.method.as_str()) {
        return Err(Error::format(
            file,
            format!(
                "records a {} run but its model.safetensors holds a {kind} model: the run folder mixes two runs; refit",
                record.method
            ),
        ));
    }
    let part = serde_json::to_value(&record.part).unwrap_or_default();
    let recorded = ["options", "architecture"]
        .iter()
        .find_map(|p| part.pointer(&format!("/{p}/k")).and_then(|v| v.as_u64()));
    if let Some(rk) = recorded.filter(|&rk| rk != k as u64) {
        return Err(Error::format(
            file,
            format!("records k = {rk} but its model.safetensors holds {k} atoms: the run folder mixes two runs; refit"),
        ));
    }
    Ok(())
}

/// Errors when the atoms hold a non-finite value or a scale whose products overflow or
/// underflow in `T` (the check the data get, [`crate::data::validate_nonnegative`]): such atoms
/// give all-zero or non-finite codes.
fn check_atoms<T: Real>(atoms: faer::MatRef<'_, T>, file: &Path) -> Result<()> {
    let mut top = 0.0f64;
    for (i, row) in atoms.row_iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            let v = Real::to_f64(*v);
            if !v.is_finite() {
                return Err(Error::format(
                    file,
                    format!("atom {i} holds {v} at feature {j}: the model file is corrupt; refit"),
                ));
            }
            top = top.max(v.abs());
        }
    }
    let sq = top * top;
    if sq * atoms.ncols() as f64 > T::MAX_F64 || (top > 0.0 && sq < T::MIN_POSITIVE_F64) {
        return Err(Error::format(
            file,
            format!(
                "its atoms reach {top:e}, beyond the scale {} computes with: the model file is corrupt or was edited; refit",
                T::NAME
            ),
        ));
    }
    Ok(())
}

/// A model from the bytes of a model file (what [`load_model`] reads from disk; what the Python
/// package keeps in a fitted estimator). `source` names the bytes in error messages.
pub fn model_from_bytes<T: Real>(bytes: &[u8], source: &Path) -> Result<LoadedModel<T>> {
    let (tensors, meta) = crate::io::parse_safetensors(bytes, source)?;
    model_from_parts(&tensors, &meta, source)
}

/// The model the tensors and metadata of a model file describe, chosen by its kind.
fn model_from_parts<T: Real>(
    tensors: &[crate::io::Tensor],
    meta: &std::collections::BTreeMap<String, String>,
    file: &Path,
) -> Result<LoadedModel<T>> {
    let loaded = model_of_kind::<T>(tensors, meta, file)?;
    check_atoms(loaded.model.atoms(), file)?;
    Ok(loaded)
}

fn model_of_kind<T: Real>(
    tensors: &[crate::io::Tensor],
    meta: &std::collections::BTreeMap<String, String>,
    file: &Path,
) -> Result<LoadedModel<T>> {
    match meta.get(crate::nmf::model::KIND_KEY).map(String::as_str) {
        Some("nmf") => {
            let (m, image_shape) = NmfModel::<T>::from_file_parts(tensors, meta, file)?;
            Ok(LoadedModel {
                model: Box::new(m),
                image_shape,
            })
        }
        Some("ae") | Some("asym-ae") => {
            let m = crate::autoencoder::Autoencoder::<T>::from_file_parts(tensors, meta, file)?;
            let image_shape = m.image_shape;
            Ok(LoadedModel {
                model: Box::new(m),
                image_shape,
            })
        }
        Some("neural-nmf") | Some("deep-nmf") | Some("hnmf") => {
            let m = crate::deep::DeepModel::<T>::from_file_parts(tensors, meta, file)?;
            let image_shape = crate::nmf::model::image_shape_of(meta);
            Ok(LoadedModel {
                model: Box::new(m),
                image_shape,
            })
        }
        other => Err(Error::format(
            file,
            format!(
                "unknown model kind {:?}; this partlearn knows: nmf, ae, asym-ae, neural-nmf, deep-nmf, hnmf. Give a model file that partlearn saved (model.safetensors of a run folder)",
                other.unwrap_or("missing")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nmf::{EncodeOptions, EncodeSpec, Penalty};

    fn model() -> NmfModel<f64> {
        let atoms = Mat::<f64>::from_fn(3, 4, |i, j| ((i + 1) * (j + 2) % 5) as f64);
        let spec = EncodeSpec {
            beta_loss: 2.0,
            codes_penalty: Penalty::default(),
            encode: EncodeOptions::default(),
        };
        NmfModel::new(atoms, spec).unwrap()
    }

    #[test]
    fn nmf_decode_is_codes_times_atoms_and_checks_shapes() {
        let m = model();
        let codes = Mat::<f64>::from_fn(2, 3, |i, j| (i + j) as f64);
        let pm: &dyn PartModel<f64> = &m;
        let r = pm.decode(codes.as_ref()).unwrap();
        let expect = &codes * m.components();
        assert_eq!(r, expect);
        let twice = Mat::<f64>::from_fn(3, 4, |i, j| 2.0 * m.components()[(i, j)]);
        let r2 = pm.decode_with_atoms(twice.as_ref(), codes.as_ref()).unwrap();
        assert_eq!(r2, Mat::from_fn(2, 4, |i, j| 2.0 * expect[(i, j)]));
        assert!(pm.decode_with_atoms(codes.as_ref(), codes.as_ref()).is_err());
        assert!(pm.decode(Mat::<f64>::zeros(2, 2).as_ref()).is_err());
    }

    #[test]
    fn load_model_dispatches_on_kind_and_refuses_unknown_kinds() {
        let dir = std::env::temp_dir().join(format!("partlearn-protocol-{}", std::process::id()));
        let path = dir.join("model.safetensors");
        let m = model();
        let (t, meta) = m.to_tensors(None, Some((2, 2))).unwrap();
        crate::io::write_safetensors(&path, &t, &meta).unwrap();
        let loaded = load_model::<f32>(&path).unwrap();
        assert_eq!(loaded.model.kind(), "nmf");
        assert_eq!(loaded.image_shape, Some((2, 2)));
        assert_eq!(loaded.model.k(), 3);
        let mut bad = meta.clone();
        bad.insert(crate::nmf::model::KIND_KEY.into(), "gan".into());
        crate::io::write_safetensors(&path, &t, &bad).unwrap();
        let e = load_model::<f32>(&path).err().unwrap().to_string();
        assert!(e.contains("unknown model kind"), "{e}");
        let e = load_model::<f32>(&dir.join("nope")).err().unwrap().to_string();
        assert!(e.contains("no such run folder"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
