//! Any fitted model as the bytes of its model file (what `partlearn fit` writes as
//! `model.safetensors`): the estimators that are not plain NMF keep those bytes, and encode,
//! decode and read their atoms through the library's one model protocol (`PartModel`).

use std::path::Path;

use numpy::PyReadonlyArray2;
use partlearn::protocol::{model_from_bytes, LoadedModel};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::convert::{self, error, to_numpy, view, Array, Float};

/// The model behind `bytes`, with its float type chosen by the caller.
fn load<T: Float>(bytes: &[u8]) -> PyResult<LoadedModel<T>> {
    model_from_bytes::<T>(bytes, Path::new("the estimator's model")).map_err(error)
}

fn transform_t<'py, T: Float>(
    py: Python<'py>,
    bytes: &[u8],
    a: &PyReadonlyArray2<'py, T>,
    threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let x = view(a)?;
    let loaded = load::<T>(bytes)?;
    check_features(loaded.model.n_features(), x.ncols(), "X")?;
    let codes = convert::run_detached(py, None, |_| loaded.model.encode(x, threads))?.map_err(error)?;
    Ok(to_numpy(py, codes.as_ref()).into_any())
}

fn check_features(expected: usize, found: usize, what: &str) -> PyResult<()> {
    if expected == found {
        return Ok(());
    }
    Err(PyValueError::new_err(format!(
        "{what} has {found} features, but the model was fitted with {expected} features"
    )))
}

/// Codes (`n × k`, of X's dtype) of the samples `x` (`n × n_features`) by the model in `model`
/// (the bytes of a model file).
#[pyfunction]
#[pyo3(signature = (model, x, *, threads = 1))]
pub fn model_transform<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyBytes>,
    x: &Bound<'py, PyAny>,
    threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let bytes = model.as_bytes();
    match Array::extract(x, "X")? {
        Array::F32(a) => transform_t(py, bytes, &a, threads),
        Array::F64(a) => transform_t(py, bytes, &a, threads),
    }
}

fn decode_t<'py, T: Float>(
    py: Python<'py>,
    bytes: &[u8],
    a: &PyReadonlyArray2<'py, T>,
) -> PyResult<Bound<'py, PyAny>> {
    let codes = view(a)?;
    let loaded = load::<T>(bytes)?;
    check_features(loaded.model.k(), codes.ncols(), "the codes")?;
    let out = loaded.model.decode(codes).map_err(error)?;
    Ok(to_numpy(py, out.as_ref()).into_any())
}

/// Reconstructions (`n × n_features`) from codes (`n × k`) by the model in `model`.
#[pyfunction]
pub fn model_decode<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyBytes>,
    codes: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let bytes = model.as_bytes();
    match Array::extract(codes, "codes")? {
        Array::F32(a) => decode_t(py, bytes, &a),
        Array::F64(a) => decode_t(py, bytes, &a),
    }
}

fn info_t<'py, T: Float>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let loaded = load::<T>(bytes)?;
    let d = PyDict::new(py);
    d.set_item("kind", loaded.model.kind())?;
    d.set_item("components", to_numpy(py, loaded.model.atoms()))?;
    d.set_item("image_shape", loaded.image_shape)?;
    Ok(d)
}

/// What a model is: `kind` (`nmf`, `ae`, `asym-ae`, `hnmf`, `deep-nmf`, `neural-nmf`),
/// `components` (its atoms, `k × n_features`, as `dtype`: "float32" or "float64") and
/// `image_shape` (`(height, width)` of its training images, or None).
#[pyfunction]
#[pyo3(signature = (model, *, dtype = "float64"))]
pub fn model_info<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyBytes>,
    dtype: &str,
) -> PyResult<Bound<'py, PyDict>> {
    match dtype {
        "float32" => info_t::<f32>(py, model.as_bytes()),
        "float64" => info_t::<f64>(py, model.as_bytes()),
        other => Err(PyValueError::new_err(format!(
            "dtype must be 'float32' or 'float64', got {other:?}"
        ))),
    }
}
