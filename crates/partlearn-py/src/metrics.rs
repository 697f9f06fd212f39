//! `partlearn.metrics`: the evaluation protocol of METHODS.md §7 on numpy arrays and fitted
//! models (as the bytes of their model file): Hoyer sparsity (§7.2), dilation and erosion
//! (§7.4), max-approximation errors (§7.5), the linear-SVM protocol (§7.3) and the whole
//! evaluation, each one call of the library's `sparseness` and `eval`. Results the library
//! serializes (metrics, the SVM protocol) cross as JSON text that the Python side reads with
//! `json.loads`, so `evaluate` returns the dict `partlearn eval` writes as metrics.json.

use std::path::Path;

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2};
use partlearn::data::Dataset;
use partlearn::eval::evaluate::{evaluate_codes, max_approx_errors, EvalOptions};
use partlearn::eval::morphology::{dilate_rows, erode_rows, StructuringElement};
use partlearn::eval::svm::{svm_protocol as protocol, SvmProtocolOptions};
use partlearn::protocol::{model_from_bytes, LoadedModel};
use partlearn::sparseness::{hoyer, hoyer_reference};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::convert::{self, error, to_numpy, view, Array, Float};

fn load<T: Float>(bytes: &[u8]) -> PyResult<LoadedModel<T>> {
    model_from_bytes::<T>(bytes, Path::new("the estimator's model")).map_err(error)
}

/// A value the library serialized, as JSON text.
fn json<S: serde::Serialize>(value: &S) -> PyResult<String> {
    serde_json::to_string(value)
        .map_err(|e| PyValueError::new_err(format!("cannot write the result as JSON ({e})")))
}

/// Options given as JSON text by the Python side.
fn from_json<O: serde::de::DeserializeOwned>(text: &str, what: &str) -> PyResult<O> {
    serde_json::from_str(text).map_err(|e| PyValueError::new_err(format!("invalid {what}: {e}")))
}

fn hoyer_t<T: Float>(a: &PyReadonlyArray2<'_, T>, reference: bool) -> PyResult<Vec<f64>> {
    let x = view(a)?;
    let mut row = vec![T::zero(); x.ncols()];
    Ok((0..x.nrows())
        .map(|i| {
            for (j, r) in row.iter_mut().enumerate() {
                *r = x[(i, j)];
            }
            if reference {
                hoyer_reference(&row)
            } else {
                hoyer(&row).unwrap_or(f64::NAN)
            }
        })
        .collect())
}

/// Hoyer's sparseness `S` (METHODS.md §2.1) of every row of `x`, as float64; NaN where it is
/// undefined (a zero row, or rows of one entry). `reference`: the reference implementation's
/// variant with `‖x‖₂ + 1e-7` (§7.2), defined everywhere.
#[pyfunction]
#[pyo3(signature = (x, *, reference = false))]
pub fn hoyer_rows<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    reference: bool,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let values = match Array::extract(x, "X")? {
        Array::F32(a) => hoyer_t(&a, reference)?,
        Array::F64(a) => hoyer_t(&a, reference)?,
    };
    Ok(values.into_pyarray(py))
}

fn morph_t<'py, T: Float>(
    py: Python<'py>,
    a: &PyReadonlyArray2<'py, T>,
    shape: (usize, usize),
    se: &StructuringElement,
    erode: bool,
    threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let x = view(a)?;
    let (h, w) = shape;
    let out = convert::run_detached(py, None, |_| {
        if erode {
            erode_rows(x, h, w, se, threads)
        } else {
            dilate_rows(x, h, w, se, threads)
        }
    })?
    .map_err(error)?;
    Ok(to_numpy(py, out.as_ref()).into_any())
}

/// Flat grey-scale dilation (or erosion, `erode=True`) of every row of `images`
/// (`n × height·width`, row-major pixels) by the structuring element `se` (`disk:R`,
/// `square:S`, `custom:ROW/ROW/…`; METHODS.md §7.4), with `threads` workers.
#[pyfunction]
#[pyo3(signature = (images, height, width, *, se = "disk:1", erode = false, threads = 1))]
pub fn morphology<'py>(
    py: Python<'py>,
    images: &Bound<'py, PyAny>,
    height: usize,
    width: usize,
    se: &str,
    erode: bool,
    threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let se = StructuringElement::parse(se).map_err(error)?;
    match Array::extract(images, "images")? {
        Array::F32(a) => morph_t(py, &a, (height, width), &se, erode, threads),
        Array::F64(a) => morph_t(py, &a, (height, width), &se, erode, threads),
    }
}

fn max_approx_t<T: Float>(
    py: Python<'_>,
    bytes: &[u8],
    a: &PyReadonlyArray2<'_, T>,
    shape: (usize, usize),
    se: &str,
    threads: usize,
) -> PyResult<String> {
    let x = view(a)?;
    let loaded = load::<T>(bytes)?;
    let errors = convert::run_detached(py, None, |_| {
        max_approx_errors(loaded.model.as_ref(), x, shape, se, threads)
    })?
    .map_err(error)?;
    json(&errors)
}

/// The max-approximation errors (METHODS.md §7.5) of the model in `model` (model-file bytes) on
/// the images `x` (`n × height·width`), as the JSON of the library's `MaxApproxErrors`.
#[pyfunction]
#[pyo3(signature = (model, x, height, width, *, se = "disk:1", threads = 1))]
pub fn max_approximation_error(
    py: Python<'_>,
    model: &Bound<'_, PyBytes>,
    x: &Bound<'_, PyAny>,
    height: usize,
    width: usize,
    se: &str,
    threads: usize,
) -> PyResult<String> {
    let bytes = model.as_bytes();
    match Array::extract(x, "X")? {
        Array::F32(a) => max_approx_t(py, bytes, &a, (height, width), se, threads),
        Array::F64(a) => max_approx_t(py, bytes, &a, (height, width), se, threads),
    }
}

/// The linear-SVM protocol of METHODS.md §7.3 on the rows of `codes` with class indices `y`
/// (`0..C`); `options`: the JSON of the library's `SvmProtocolOptions` (missing fields take
/// their defaults). Returns the JSON of its `SvmProtocolResult`.
#[pyfunction]
#[pyo3(signature = (codes, y, *, options = "{}"))]
pub fn svm_protocol(
    py: Python<'_>,
    codes: &Bound<'_, PyAny>,
    y: Vec<usize>,
    options: &str,
) -> PyResult<String> {
    let opts: SvmProtocolOptions = from_json(options, "SVM protocol options")?;
    let result = match Array::extract(codes, "codes")? {
        Array::F32(a) => {
            let x = view(&a)?;
            convert::run_detached(py, None, |_| protocol(x, &y, &opts))?
        }
        Array::F64(a) => {
            let x = view(&a)?;
            convert::run_detached(py, None, |_| protocol(x, &y, &opts))?
        }
    };
    json(&result.map_err(error)?)
}

/// What [`evaluate`] takes besides the model and the data.
struct EvalInput<'a, 'py> {
    labels: Option<Vec<u32>>,
    image_shape: Option<(usize, usize)>,
    opts: EvalOptions,
    codes: Option<&'a Bound<'py, PyAny>>,
    name: &'a str,
}

fn evaluate_t<T: Float>(
    py: Python<'_>,
    bytes: &[u8],
    a: &PyReadonlyArray2<'_, T>,
    input: EvalInput<'_, '_>,
) -> PyResult<String> {
    let x = view(a)?;
    let loaded = load::<T>(bytes)?;
    let mut data = Dataset::from_rows(x, input.name);
    if let Some(labels) = input.labels {
        data = data.with_labels(labels).map_err(error)?;
    }
    let codes = convert::owned::<T>(input.codes, "codes")?;
    let ev = convert::run_detached(py, None, |_| {
        evaluate_codes(
            loaded.model.as_ref(),
            &data,
            input.image_shape,
            &input.opts,
            codes,
        )
    })?
    .map_err(error)?;
    json(&ev.metrics)
}

/// Every metric of METHODS.md §7 of the model in `model` (model-file bytes) on the samples `x`
/// (the library's `eval::evaluate_codes`): labels (class indices) enable the SVM protocol
/// (`svm`: the JSON of its options, None to skip it), `image_shape` the max-approximation
/// errors; `codes` replaces the model's encoding of `x` (a fit's stored codes). Returns the JSON
/// of the library's `Metrics`, as `partlearn eval` writes it to metrics.json.
#[pyfunction]
#[pyo3(signature = (
    model, x, *, labels = None, image_shape = None, se = "disk:1", threads = 1, svm = None,
    codes = None, name = "X"
))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyBytes>,
    x: &Bound<'py, PyAny>,
    labels: Option<Vec<u32>>,
    image_shape: Option<(usize, usize)>,
    se: &str,
    threads: usize,
    svm: Option<&str>,
    codes: Option<&Bound<'py, PyAny>>,
    name: &str,
) -> PyResult<String> {
    let svm = match svm {
        Some(text) => Some(from_json::<SvmProtocolOptions>(text, "SVM protocol options")?),
        None => None,
    };
    let input = EvalInput {
        labels,
        image_shape,
        opts: EvalOptions {
            threads,
            structuring_element: se.to_string(),
            svm,
        },
        codes,
        name,
    };
    let bytes = model.as_bytes();
    match Array::extract(x, "X")? {
        Array::F32(a) => evaluate_t(py, bytes, &a, input),
        Array::F64(a) => evaluate_t(py, bytes, &a, input),
    }
}
