//! Semi-supervised NMF (METHODS.md §3): fit and predict on numpy arrays, run without the GIL.
//! The Python estimator (`partlearn.SSNMF`) turns scikit-learn's labels (any values, `-1` for
//! unlabeled samples) into class indices and a mask of known samples; the library's SSNMF does
//! the rest, as `partlearn fit ssnmf` calls it.

use std::path::Path;

use numpy::PyReadonlyArray2;
use partlearn::data::labels::Labels;
use partlearn::io;
use partlearn::nmf::ssnmf::{fit_ssnmf, predict_from_codes, Divergence, SsnmfParams, CLASSIFIER_TENSOR};
use partlearn::protocol::model_from_bytes;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::convert::{self, error, to_numpy, view, Array, Float};

/// A library `FromStr` parse as a Python `ValueError`.
pub fn parse<T: std::str::FromStr<Err = partlearn::Error>>(s: &str) -> PyResult<T> {
    s.parse().map_err(error)
}

/// The snake_case name of a stop reason (`max_iter`, `converged`, …).
pub fn reason(r: partlearn::engine::StopReason) -> String {
    r.to_string().replace('-', "_")
}

/// The labels of a fit: class indices (`0..c`, any value where unknown) and which are known.
pub fn labels(classes: Vec<u32>, known: Vec<bool>) -> PyResult<Labels> {
    Labels::new(classes, known).map_err(error)
}

/// The bytes of a model file from its tensors and metadata.
pub fn model_bytes<'py>(
    py: Python<'py>,
    parts: (Vec<io::Tensor>, std::collections::BTreeMap<String, String>),
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = io::safetensors_bytes(&parts.0, &parts.1).map_err(error)?;
    Ok(PyBytes::new(py, &bytes))
}

fn fit_t<'py, T: Float>(
    py: Python<'py>,
    a: &PyReadonlyArray2<'py, T>,
    mask: Option<&Bound<'py, PyAny>>,
    labels: &Labels,
    params: &SsnmfParams,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let x = view(a)?;
    let valid = params.check().map_err(error)?;
    let mask: Option<PyReadonlyArray2<'py, T>> = mask
        .map(|m| {
            m.extract()
                .map_err(|_| PyValueError::new_err("data_mask must be a 2-D array of the same dtype as X"))
        })
        .transpose()?;
    let mask_view = mask.as_ref().map(view).transpose()?;
    let fit = convert::run_detached(py, callback, |obs| fit_ssnmf(x, mask_view, labels, &valid, obs))?
        .map_err(error)?;
    let d = PyDict::new(py);
    d.set_item("codes", to_numpy(py, fit.codes()))?;
    d.set_item("components", to_numpy(py, fit.components()))?;
    d.set_item("transduction", fit.predict_in_sample())?;
    d.set_item("history", convert::history(py, &fit.history)?)?;
    d.set_item("n_iter", fit.history.len().saturating_sub(1))?;
    d.set_item("stop_reason", reason(fit.stop_reason))?;
    d.set_item("warnings", convert::warnings(py, &fit.warnings)?)?;
    let last = fit.history.last();
    d.set_item("objective", last.map_or(f64::NAN, |r| r.objective))?;
    d.set_item("rel_error", last.map_or(f64::NAN, |r| r.rel_error))?;
    d.set_item("seconds", last.map_or(0.0, |r| r.seconds))?;
    d.set_item(
        "model",
        model_bytes(py, fit.to_tensors(false, None).map_err(error)?)?,
    )?;
    Ok(d)
}

/// Fits SSNMF (METHODS.md §3) to `x` (`n_samples × n_features`, float32 or float64) with class
/// indices `classes` (one per sample, `0..c`) of which `known` are used, and an optional
/// `data_mask` of X's shape (1 = observed, 0 = missing). Returns a dict: `codes` (`Sᵀ`, the
/// fit's codes), `components` (`Aᵀ`), `transduction` (the
/// in-sample predictions `argmax BS`), `history`, `n_iter`, `stop_reason`, `warnings`,
/// `objective`, `rel_error`, `seconds`, `model` (the bytes of the model file `partlearn fit
/// ssnmf` writes, without the training codes).
#[pyfunction]
#[pyo3(signature = (
    x, classes, known, *, n_components, lam = 1.0, data_loss = "frobenius",
    label_loss = "frobenius", max_iter = 1000, tol = 1e-4, max_seconds = None, seed = 0,
    threads = 1, data_mask = None, callback = None
))]
#[allow(clippy::too_many_arguments)]
pub fn ssnmf_fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    classes: Vec<u32>,
    known: Vec<bool>,
    n_components: usize,
    lam: f64,
    data_loss: &str,
    label_loss: &str,
    max_iter: usize,
    tol: f64,
    max_seconds: Option<f64>,
    seed: u64,
    threads: usize,
    data_mask: Option<&Bound<'py, PyAny>>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let params = SsnmfParams::new(n_components)
        .lambda(lam)
        .data_loss(parse::<Divergence>(data_loss)?)
        .label_loss(parse::<Divergence>(label_loss)?)
        .max_iter(max_iter)
        .tol(tol)
        .max_seconds(max_seconds)
        .seed(seed)
        .threads(threads);
    let labels = labels(classes, known)?;
    match Array::extract(x, "X")? {
        Array::F32(a) => fit_t(py, &a, data_mask, &labels, &params, callback),
        Array::F64(a) => fit_t(py, &a, data_mask, &labels, &params, callback),
    }
}

fn predict_t<'py, T: Float>(
    py: Python<'py>,
    bytes: &[u8],
    a: &PyReadonlyArray2<'py, T>,
    threads: usize,
) -> PyResult<Vec<u32>> {
    let x = view(a)?;
    let source = Path::new("the estimator's model");
    let loaded = model_from_bytes::<T>(bytes, source).map_err(error)?;
    let (tensors, _) = io::parse_safetensors(bytes, source).map_err(error)?;
    let b = io::tensor_by_name(&tensors, CLASSIFIER_TENSOR, source)
        .and_then(|t| t.to_mat::<T>())
        .map_err(error)?;
    if loaded.model.n_features() != x.ncols() {
        return Err(PyValueError::new_err(format!(
            "X has {} features, but the model was fitted with {} features",
            x.ncols(),
            loaded.model.n_features()
        )));
    }
    let codes = convert::run_detached(py, None, |_| loaded.model.encode(x, threads))?.map_err(error)?;
    predict_from_codes(b.as_ref(), codes.as_ref()).map_err(error)
}

/// Class indices `argmax_c (B s)` of the samples `x` (`n × n_features`), each encoded by the
/// SSNMF model file `model` (its dictionary as an NMF model) and classified by the model's
/// classifier `B` (METHODS.md §3, "Out-of-sample").
#[pyfunction]
#[pyo3(signature = (model, x, *, threads = 1))]
pub fn ssnmf_predict<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyBytes>,
    x: &Bound<'py, PyAny>,
    threads: usize,
) -> PyResult<Vec<u32>> {
    let bytes = model.as_bytes();
    match Array::extract(x, "X")? {
        Array::F32(a) => predict_t(py, bytes, &a, threads),
        Array::F64(a) => predict_t(py, bytes, &a, threads),
    }
}

/// The classifier `B` (`c × k`) of an SSNMF model file, as `dtype` ("float32" or "float64").
#[pyfunction]
#[pyo3(signature = (model, *, dtype = "float64"))]
pub fn ssnmf_classifier<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyBytes>,
    dtype: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let source = Path::new("the estimator's model");
    let (tensors, _) = io::parse_safetensors(model.as_bytes(), source).map_err(error)?;
    let t = io::tensor_by_name(&tensors, CLASSIFIER_TENSOR, source).map_err(error)?;
    match dtype {
        "float32" => Ok(to_numpy(py, t.to_mat::<f32>().map_err(error)?.as_ref()).into_any()),
        "float64" => Ok(to_numpy(py, t.to_mat::<f64>().map_err(error)?.as_ref()).into_any()),
        other => Err(PyValueError::new_err(format!(
            "dtype must be 'float32' or 'float64', got {other:?}"
        ))),
    }
}
