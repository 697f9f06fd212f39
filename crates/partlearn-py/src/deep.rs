//! Hierarchical NMF, Deep NMF (METHODS.md §4.1–§4.2) and Neural NMF (§4.3) on numpy arrays, run
//! without the GIL, each as `partlearn fit hnmf | deep-nmf | neural-nmf` calls the library. The
//! fitted stack is returned as the bytes of its model file (a `DeepModel`), which encodes new
//! samples through the library's model protocol.

use std::path::Path;

use numpy::PyReadonlyArray2;
use partlearn::data::labels::Labels;
use partlearn::deep::neural::{self, ClassLoss, Cost, NeuralParams};
use partlearn::deep::pipeline::{fit_layers, LayerMethod, LayersParams};
use partlearn::deep::DeepModel;
use partlearn::engine::{IterRecord, Param, StopReason, Warning};
use partlearn::faer::{Mat, MatRef};
use partlearn::io;
use partlearn::nmf::Solver;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::convert::{self, error, to_numpy, view, Array, Float};
use crate::ssnmf::{labels, model_bytes, parse, reason};

/// The supervision of a fit: `None` without class indices, else the labels with their mask.
fn supervision(classes: Option<Vec<u32>>, known: Option<Vec<bool>>) -> PyResult<Option<Labels>> {
    match (classes, known) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => labels(c, k).map(Some),
        _ => Err(PyValueError::new_err(
            "give both the class indices and the mask of known labels, or neither",
        )),
    }
}

/// What every deep fit returns besides its model file: the training data's top-layer codes
/// (`S⁽ᴸ⁾ᵀ`), the classifier of the label term and how the fit ended.
struct Stack<'a, T: Float> {
    model: DeepModel<T>,
    top: MatRef<'a, T>,
    classifier: Option<Mat<T>>,
    history: &'a [IterRecord],
    n_iter: usize,
    stop_reason: StopReason,
    warnings: &'a [Warning],
    rel_error: f64,
    seconds: f64,
}

fn stack_dict<'py, T: Float>(
    py: Python<'py>,
    s: Stack<'_, T>,
    rename: impl Fn(Param) -> String,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("codes", to_numpy(py, s.top))?;
    d.set_item(
        "classifier",
        s.classifier.as_ref().map(|b| to_numpy(py, b.as_ref())),
    )?;
    d.set_item("history", convert::history(py, s.history)?)?;
    d.set_item("n_iter", s.n_iter)?;
    d.set_item("stop_reason", reason(s.stop_reason))?;
    d.set_item("warnings", convert::warnings_named(py, s.warnings, rename)?)?;
    d.set_item("objective", s.history.last().map_or(f64::NAN, |r| r.objective))?;
    d.set_item("rel_error", s.rel_error)?;
    d.set_item("seconds", s.seconds)?;
    d.set_item(
        "model",
        model_bytes(py, s.model.to_tensors(None).map_err(error)?)?,
    )?;
    Ok(d)
}

fn layers_t<'py, T: Float>(
    py: Python<'py>,
    a: &PyReadonlyArray2<'py, T>,
    method: LayerMethod,
    params: &LayersParams,
    sup: Option<&Labels>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let valid = params.check().map_err(error)?;
    let x = view(a)?;
    let fit =
        convert::run_detached(py, callback, |obs| fit_layers(x, method, &valid, sup, obs))?.map_err(error)?;
    let level_errors = fit.stack.level_errors(x);
    let rel_error = fit.stack.rel_error(x);
    let top = fit.stack.top_codes().to_owned();
    // As `partlearn fit hnmf | deep-nmf`: the model file holds the layers (the classifier of the
    // label term is returned on its own).
    let model = DeepModel::new(method.name(), fit.stack.into_net()).map_err(error)?;
    let d = stack_dict(
        py,
        Stack {
            model,
            top: top.as_ref(),
            classifier: fit.classifier,
            history: &fit.history,
            n_iter: fit.n_iter,
            stop_reason: fit.stop_reason,
            warnings: &fit.warnings,
            rel_error,
            seconds: fit.seconds,
        },
        |p| p.name().to_string(),
    )?;
    d.set_item("level_errors", level_errors)?;
    let per_layer = PyList::empty(py);
    for l in &fit.layers {
        per_layer.append(convert::history(py, &l.history)?)?;
    }
    d.set_item("layer_histories", per_layer)?;
    Ok(d)
}

/// Fits hierarchical NMF (`method="hnmf"`; with labels, SSNMF on the last layer) or Deep NMF
/// (`method="deep-nmf"`: the hierarchy, then the joint fine-tuning, with the label term when
/// labeled) to `x` (`n_samples × n_features`). `classes` (class indices `0..c`, one per sample)
/// and `known` (which of them the fit may use) supervise the last stage. Returns a dict:
/// `codes` (the top layer's training codes), `classifier` (or None), `history` (the last
/// stage's), `layer_histories`,
/// `level_errors`, `n_iter`, `stop_reason`, `warnings`, `objective`, `rel_error`, `seconds`,
/// `model` (the bytes of the model file `partlearn fit` writes).
#[pyfunction]
#[pyo3(signature = (
    x, *, method, ranks, solver = "hals", lam = 1e-5, max_iter = 2000, tol = 1e-6,
    max_seconds = None, seed = 0, threads = 1, classes = None, known = None, callback = None
))]
#[allow(clippy::too_many_arguments)]
pub fn layers_fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    method: &str,
    ranks: Vec<usize>,
    solver: &str,
    lam: f64,
    max_iter: usize,
    tol: f64,
    max_seconds: Option<f64>,
    seed: u64,
    threads: usize,
    classes: Option<Vec<u32>>,
    known: Option<Vec<bool>>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let method = match method {
        "hnmf" => LayerMethod::Hierarchical,
        "deep-nmf" => LayerMethod::DeepNmf,
        other => {
            return Err(PyValueError::new_err(format!(
                "method must be 'hnmf' or 'deep-nmf', got {other:?}"
            )))
        }
    };
    let params = LayersParams::new(ranks)
        .solver(parse::<Solver>(solver)?)
        .max_iter(max_iter)
        .tol(tol)
        .max_seconds(max_seconds)
        .lambda(lam)
        .seed(seed)
        .threads(threads);
    let sup = supervision(classes, known)?;
    match Array::extract(x, "X")? {
        Array::F32(a) => layers_t(py, &a, method, &params, sup.as_ref(), callback),
        Array::F64(a) => layers_t(py, &a, method, &params, sup.as_ref(), callback),
    }
}

/// How Neural NMF's layers start (`fit neural-nmf --init`): U[0,1) draws, a hierarchical NMF,
/// or the top-down start (METHODS.md §4.3).
#[derive(Clone, Copy)]
enum Start {
    Random,
    Hnmf,
    TopDown,
}

fn neural_t<'py, T: Float>(
    py: Python<'py>,
    a: &PyReadonlyArray2<'py, T>,
    params: &NeuralParams,
    init: Start,
    sup: Option<&Labels>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let x = view(a)?;
    let valid = params.check().map_err(error)?;
    let fit = convert::run_detached(py, callback, |obs| {
        let start = match init {
            Start::Random => None,
            Start::Hnmf => Some(neural::hnmf_start(x, &valid, obs)?),
            Start::TopDown => Some(neural::top_down_start(x, &valid, obs)?),
        };
        neural::train_from(x, start.as_deref(), &valid, sup, obs)
    })?
    .map_err(error)?;
    let rel_error = fit.model.rel_error(x, &fit.forward);
    let top = fit.forward.top_codes().to_owned();
    let classifier = fit.model.b.clone();
    let model = DeepModel::new("neural-nmf", fit.model).map_err(error)?;
    // An epoch is an iteration: the engine's max_iter is `epochs` here.
    stack_dict(
        py,
        Stack {
            model,
            top: top.as_ref(),
            classifier,
            history: &fit.history,
            n_iter: fit.n_iter,
            stop_reason: fit.stop_reason,
            warnings: &fit.warnings,
            rel_error,
            seconds: fit.seconds,
        },
        |p| match p {
            Param::MaxIter => "epochs".to_string(),
            p => p.name().to_string(),
        },
    )
}

/// Trains Neural NMF (METHODS.md §4.3) on `x` (`n_samples × n_features`), from random layers or
/// (`init="hnmf"`) a hierarchical NMF, with the classifier on the last layer when `classes` and
/// `known` are given. Returns the dict of [`layers_fit`] without `level_errors` and
/// `layer_histories`.
#[pyfunction]
#[pyo3(signature = (
    x, *, ranks, cost = "recon", epochs = 10_000, lr = 1.0, decay = 1.0, decay_every = 1,
    adam = false, lam = 1e-4, class_loss = "l2", lr_class = 0.01, class_steps = 30,
    restarts = 1, init = "random", max_seconds = None, tol = 0.0, seed = 0, threads = 1,
    classes = None, known = None, callback = None
))]
#[allow(clippy::too_many_arguments)]
pub fn neural_fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    ranks: Vec<usize>,
    cost: &str,
    epochs: usize,
    lr: f64,
    decay: f64,
    decay_every: usize,
    adam: bool,
    lam: f64,
    class_loss: &str,
    lr_class: f64,
    class_steps: usize,
    restarts: usize,
    init: &str,
    max_seconds: Option<f64>,
    tol: f64,
    seed: u64,
    threads: usize,
    classes: Option<Vec<u32>>,
    known: Option<Vec<bool>>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let start = match init {
        "random" => Start::Random,
        "hnmf" => Start::Hnmf,
        "top-down" => Start::TopDown,
        other => {
            return Err(PyValueError::new_err(format!(
                "init must be 'random', 'hnmf' or 'top-down', got {other:?}"
            )))
        }
    };
    let params = NeuralParams::new(ranks)
        .cost(parse::<Cost>(cost)?)
        .epochs(epochs)
        .lr(lr)
        .decay(decay)
        .decay_every(decay_every)
        .adam(adam)
        .lambda(lam)
        .class_loss(parse::<ClassLoss>(class_loss)?)
        .lr_class(lr_class)
        .class_steps(class_steps)
        .restarts(restarts)
        .seed(seed)
        .threads(threads)
        .max_seconds(max_seconds)
        .tol(tol);
    let sup = supervision(classes, known)?;
    match Array::extract(x, "X")? {
        Array::F32(a) => neural_t(py, &a, &params, start, sup.as_ref(), callback),
        Array::F64(a) => neural_t(py, &a, &params, start, sup.as_ref(), callback),
    }
}

fn layer_codes_t<'py, T: Float>(
    py: Python<'py>,
    bytes: &[u8],
    a: &PyReadonlyArray2<'py, T>,
    threads: usize,
) -> PyResult<Bound<'py, PyList>> {
    let x = view(a)?;
    let source = Path::new("the estimator's model");
    let (tensors, meta) = io::parse_safetensors(bytes, source).map_err(error)?;
    let model = DeepModel::<T>::from_file_parts(&tensors, &meta, source).map_err(error)?;
    let m = model.net().a[0].nrows();
    if x.ncols() != m {
        return Err(PyValueError::new_err(format!(
            "X has {} features, but the model was fitted with {m} features",
            x.ncols()
        )));
    }
    let codes = convert::run_detached(py, None, |_| model.layer_codes(x, threads))?.map_err(error)?;
    PyList::new(py, codes.iter().map(|c| to_numpy(py, c.as_ref())))
}

/// The codes of every layer (`n × k_i`, first layer first; the last are the top-layer codes)
/// of the samples `x` by the deep model file `model` (the forward pass through its layers).
#[pyfunction]
#[pyo3(signature = (model, x, *, threads = 1))]
pub fn deep_layer_codes<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyBytes>,
    x: &Bound<'py, PyAny>,
    threads: usize,
) -> PyResult<Bound<'py, PyList>> {
    let bytes = model.as_bytes();
    match Array::extract(x, "X")? {
        Array::F32(a) => layer_codes_t(py, bytes, &a, threads),
        Array::F64(a) => layer_codes_t(py, bytes, &a, threads),
    }
}

fn info_t<'py, T: Float>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let source = Path::new("the estimator's model");
    let (tensors, meta) = io::parse_safetensors(bytes, source).map_err(error)?;
    let model = DeepModel::<T>::from_file_parts(&tensors, &meta, source).map_err(error)?;
    let net = model.net();
    let layers = PyList::empty(py);
    let composed = PyList::empty(py);
    for (i, a) in net.a.iter().enumerate() {
        layers.append(to_numpy(py, a.transpose()))?;
        composed.append(to_numpy(py, net.composed(i).transpose()))?;
    }
    let d = PyDict::new(py);
    d.set_item("kind", partlearn::protocol::PartModel::kind(&model))?;
    d.set_item("layers", layers)?;
    d.set_item("composed", composed)?;
    d.set_item("classifier", net.b.as_ref().map(|b| to_numpy(py, b.as_ref())))?;
    Ok(d)
}

/// The parts of a deep model file (`hnmf`, `deep-nmf`, `neural-nmf`) as `dtype` ("float32" or
/// "float64"): `kind`, `layers` (each layer `A⁽ⁱ⁾ᵀ`, `k_i × k_{i−1}`, `k_{−1}` = n_features),
/// `composed` (each level's atoms in data space, `(A⁽⁰⁾⋯A⁽ⁱ⁾)ᵀ`, `k_i × n_features`) and
/// `classifier` (`B`, `c × k_L`, or None).
#[pyfunction]
#[pyo3(signature = (model, *, dtype = "float64"))]
pub fn deep_model_info<'py>(
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
