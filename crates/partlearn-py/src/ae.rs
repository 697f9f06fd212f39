//! The sparse non-negative auto-encoders (METHODS.md §6): training on numpy arrays without the
//! GIL, one call for a whole fit or for some more epochs of a training run (`partial_fit`). The
//! run itself (model, optimizer state, history, where it stands) lives in an [`AeTrainer`],
//! which pickles as the bytes of the library's training checkpoint, so a run continued after
//! unpickling has the same bits as one that never left memory.

use std::path::Path;

use numpy::PyReadonlyArray2;
use partlearn::autoencoder::{
    self, Act, AeParams, Architecture, EpochRecord, NonNeg, OptimizerKind, OptimizerSpec, RecLoss, Reduction,
    Schedule, Sparsity, TrainOutcome, TrainState,
};
use partlearn::data::Dataset;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::convert::{self, view, Array, Float, PyObserver};

/// A library `FromStr` parse as a Python `ValueError`, the parameter named as the estimator's.
fn parse<T: std::str::FromStr<Err = partlearn::Error>>(s: &str) -> PyResult<T> {
    s.parse().map_err(error)
}

/// The estimator's keyword for a library parameter where `SparseAutoencoder` names it
/// differently from the library (and from the shared table of [`convert::error`]).
const RENAMES: [(&str, &str); 4] = [
    ("epochs", "max_iter"),
    ("reconstruction", "loss"),
    ("lr", "learning_rate"),
    ("threads", "n_threads"),
];

/// A library error as a Python exception, with `SparseAutoencoder`'s keyword names.
fn error(e: partlearn::Error) -> PyErr {
    use partlearn::Error as E;
    let rename = |s: &str| {
        RENAMES.iter().fold(s.to_string(), |s, (lib, py)| {
            s.replace(&format!("`{lib}`"), &format!("`{py}`"))
        })
    };
    let e = match e {
        E::InvalidOption {
            option,
            value,
            reason,
        } => E::InvalidOption {
            option: RENAMES
                .iter()
                .find(|(lib, _)| *lib == option)
                .map_or(option, |(_, py)| py),
            value,
            reason: rename(&reason),
        },
        E::Numerical { what, reason } => E::Numerical {
            what,
            reason: rename(&reason),
        },
        e => e,
    };
    convert::error(e)
}

/// A training run in either float type.
enum Run {
    F32(TrainState<f32>),
    F64(TrainState<f64>),
}

/// A training run kept between calls (`partial_fit`): model, optimizer state, history and
/// where it stands. Pickles as the bytes of the library's training checkpoint.
#[pyclass(module = "partlearn._native")]
pub struct AeTrainer {
    run: Run,
}

impl AeTrainer {
    fn checkpoint(&self) -> PyResult<Vec<u8>> {
        match &self.run {
            Run::F32(s) => autoencoder::checkpoint_bytes(s),
            Run::F64(s) => autoencoder::checkpoint_bytes(s),
        }
        .map_err(error)
    }

    fn dtype_name(&self) -> &'static str {
        match self.run {
            Run::F32(_) => "float32",
            Run::F64(_) => "float64",
        }
    }
}

#[pymethods]
impl AeTrainer {
    /// The float type of the run: "float32" or "float64".
    #[getter]
    fn dtype(&self) -> &'static str {
        self.dtype_name()
    }

    /// Completed epochs.
    #[getter]
    fn epoch(&self) -> usize {
        match &self.run {
            Run::F32(s) => s.epoch,
            Run::F64(s) => s.epoch,
        }
    }

    /// The run as the bytes of a training checkpoint (what `partlearn fit ae` keeps as
    /// `checkpoint.safetensors`).
    fn checkpoint_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.checkpoint()?))
    }

    /// Pickles as `ae_trainer_from_bytes(checkpoint bytes, dtype)`.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let rebuild = py.import("partlearn._native")?.getattr("ae_trainer_from_bytes")?;
        let args = (PyBytes::new(py, &self.checkpoint()?), self.dtype_name());
        PyTuple::new(py, [rebuild, args.into_pyobject(py)?.into_any()])
    }
}

/// The training run in `checkpoint` (bytes of a training checkpoint) as `dtype` ("float32" or
/// "float64"): the inverse of pickling an [`AeTrainer`].
#[pyfunction]
pub fn ae_trainer_from_bytes(checkpoint: &Bound<'_, PyBytes>, dtype: &str) -> PyResult<AeTrainer> {
    let bytes = checkpoint.as_bytes();
    let source = Path::new("the training checkpoint");
    let run = match dtype {
        "float32" => Run::F32(autoencoder::checkpoint_from_bytes(bytes, source, 1, None).map_err(error)?),
        "float64" => Run::F64(autoencoder::checkpoint_from_bytes(bytes, source, 1, None).map_err(error)?),
        other => {
            return Err(PyValueError::new_err(format!(
                "dtype must be 'float32' or 'float64', got {other:?}"
            )))
        }
    };
    Ok(AeTrainer { run })
}

/// A training run that continues the auto-encoder in `model` (the bytes of its model file) as
/// `dtype` with the parameters `params` (of [`ae_params`]; the model must have their
/// architecture, `n_components` and decoder activation): `epoch` epochs done, `history` (JSON
/// text: the list of its epoch records, as history.jsonl holds them) and a fresh optimizer state
/// (moments and step count at zero: the model file keeps none). What `load_run` continues
/// when the run folder has no training checkpoint.
#[pyfunction]
#[pyo3(signature = (model, params, *, dtype, epoch = 0, history = "[]"))]
pub fn ae_trainer_from_model(
    model: &Bound<'_, PyBytes>,
    params: PyRef<'_, AeSpec>,
    dtype: &str,
    epoch: usize,
    history: &str,
) -> PyResult<AeTrainer> {
    fn state<T: Float>(
        bytes: &[u8],
        params: &AeParams,
        epoch: usize,
        history: Vec<EpochRecord>,
    ) -> PyResult<TrainState<T>> {
        let source = Path::new("the estimator's model");
        let (tensors, meta) = partlearn::io::parse_safetensors(bytes, source).map_err(error)?;
        let model = autoencoder::Autoencoder::<T>::from_file_parts(&tensors, &meta, source).map_err(error)?;
        let mut state = TrainState::new(model, params.check().map_err(error)?).map_err(error)?;
        state.seconds = history.last().map_or(0.0, |r| r.seconds);
        state.epoch = epoch;
        state.history = history;
        Ok(state)
    }
    let history: Vec<EpochRecord> = serde_json::from_str(history)
        .map_err(|e| PyValueError::new_err(format!("invalid epoch history ({e})")))?;
    let bytes = model.as_bytes();
    let run = match dtype {
        "float32" => Run::F32(state(bytes, &params.0, epoch, history)?),
        "float64" => Run::F64(state(bytes, &params.0, epoch, history)?),
        other => {
            return Err(PyValueError::new_err(format!(
                "dtype must be 'float32' or 'float64', got {other:?}"
            )))
        }
    };
    Ok(AeTrainer { run })
}

/// The dict a training call returns: the model as model-file bytes, the history of the whole
/// run, and how this call ended.
fn outcome_dict<'py, T: Float>(
    py: Python<'py>,
    state: &TrainState<T>,
    outcome: &TrainOutcome,
) -> PyResult<Bound<'py, PyDict>> {
    let (tensors, meta) = state.model.to_tensors().map_err(error)?;
    let model = partlearn::io::safetensors_bytes(&tensors, &meta).map_err(error)?;
    let d = PyDict::new(py);
    d.set_item("model", PyBytes::new(py, &model))?;
    d.set_item("history", history(py, &state.history)?)?;
    d.set_item("n_iter", state.epoch)?;
    d.set_item("stop_reason", outcome.stop_reason.to_string().replace('-', "_"))?;
    d.set_item("warnings", convert::warnings(py, &outcome.warnings)?)?;
    d.set_item("seconds", outcome.seconds)?;
    d.set_item("n_params", state.model.n_params())?;
    Ok(d)
}

/// The history as a list of `(epoch, loss, reconstruction, sparsity, decay, train_mse, val_mse,
/// mean_activation, negative_decoder_fraction, lr, seconds)` tuples (`val_mse` None without a
/// validation split).
fn history<'py>(py: Python<'py>, h: &[EpochRecord]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(
        py,
        h.iter().map(|r| {
            (
                r.epoch,
                r.loss,
                r.reconstruction,
                r.sparsity,
                r.decay,
                r.train_mse,
                r.val_mse,
                r.mean_activation,
                r.negative_decoder_fraction,
                r.lr,
                r.seconds,
            )
        }),
    )
}

/// Trains `state` on `data` (all its epochs, or `epochs` more) without the GIL.
fn train_t<T: Float>(
    py: Python<'_>,
    state: &mut TrainState<T>,
    data: &Dataset<T>,
    epochs: Option<usize>,
    callback: Option<Py<PyAny>>,
) -> PyResult<TrainOutcome> {
    let result = convert::run_detached(py, callback, |obs: &mut PyObserver<'_>| match epochs {
        Some(n) => autoencoder::train_epochs(state, data, n, obs),
        None => autoencoder::train(state, data, None, obs),
    })?;
    result.map_err(error)
}

/// The run as a `TrainState<T>`; `None` when it has the other float type.
type Unwrap<T> = fn(&mut Run) -> Option<&mut TrainState<T>>;

/// [`ae_fit`] for data of float type `T`: a new run (`trainer` None; `wrap` makes it a
/// [`Run`]) or the run of `trainer` (`unwrap` reads it), trained and returned in the dict.
#[allow(clippy::too_many_arguments)]
fn fit_t<'py, T: Float>(
    py: Python<'py>,
    a: &PyReadonlyArray2<'py, T>,
    trainer: Option<Bound<'py, AeTrainer>>,
    params: &AeParams,
    image_shape: Option<(usize, usize)>,
    epochs: Option<usize>,
    callback: Option<Py<PyAny>>,
    wrap: fn(TrainState<T>) -> Run,
    unwrap: Unwrap<T>,
) -> PyResult<Bound<'py, PyDict>> {
    // The library trains on samples as columns: one copy of X.
    let mut data = Dataset::from_rows(view(a)?, "X");
    let trainer = match trainer {
        Some(t) => t,
        None => {
            if let Some((h, w)) = image_shape {
                data = data.with_image_shape(h, w).map_err(error)?;
            }
            let state = TrainState::init(params.check().map_err(error)?, &data).map_err(error)?;
            Bound::new(py, AeTrainer { run: wrap(state) })?
        }
    };
    let out = {
        let mut guard = trainer.borrow_mut();
        let dtype = guard.dtype_name();
        let state = unwrap(&mut guard.run).ok_or_else(|| {
            PyTypeError::new_err(format!(
                "X must have the dtype of the training run ({dtype}); convert it with X.astype(np.{dtype})"
            ))
        })?;
        // A continued run keeps its seed (the estimator draws one per call for
        // `random_state=None`) and its other parameters: only max_iter, tol, threads and
        // max_seconds may change (the library names any other difference).
        let params = params.clone().seed(state.params().params().seed);
        state.set_params(params.check().map_err(error)?).map_err(error)?;
        data.image_shape = state.model.image_shape;
        let outcome = train_t(py, state, &data, epochs, callback)?;
        outcome_dict(py, state, &outcome)?
    };
    out.set_item("trainer", trainer)?;
    Ok(out)
}

/// The library's auto-encoder parameters ([`AeParams`]), unchecked, behind a Python object.
#[pyclass(module = "partlearn._native", frozen)]
pub struct AeSpec(AeParams);

/// The auto-encoder parameters of `SparseAutoencoder`'s keywords (the library's names where
/// they differ: `max_iter` → epochs, `loss` → reconstruction, `learning_rate` → lr), for
/// [`ae_fit`]. Keyword strings are parsed here (a `ValueError` naming the keyword); the values
/// are checked when a run starts or continues.
#[pyfunction]
#[pyo3(signature = (
    *, n_components, architecture = "shallow", decoder_activation = "leaky-relu",
    negative_slope = 0.1, loss = "mse", reduction = "mean", sparsity = "kl", p = 0.05, beta = 1e-3,
    eps = 1e-6, hoyer_target = 0.6, nonneg = "project", decay_lambda = 0.0, decay_alpha = 0.0,
    optimizer = "adadelta", learning_rate = None, schedule = "constant", max_iter = 50,
    batch_size = 128, tol = 0.0, val_fraction = 0.0, patience = None, shuffle = true, seed = 0,
    threads = 1, max_seconds = None
))]
#[allow(clippy::too_many_arguments)]
pub fn ae_params(
    n_components: usize,
    architecture: &str,
    decoder_activation: &str,
    negative_slope: f64,
    loss: &str,
    reduction: &str,
    sparsity: &str,
    p: f64,
    beta: f64,
    eps: f64,
    hoyer_target: f64,
    nonneg: &str,
    decay_lambda: f64,
    decay_alpha: f64,
    optimizer: &str,
    learning_rate: Option<f64>,
    schedule: &str,
    max_iter: usize,
    batch_size: usize,
    tol: f64,
    val_fraction: f64,
    patience: Option<usize>,
    shuffle: bool,
    seed: u64,
    threads: usize,
    max_seconds: Option<f64>,
) -> PyResult<AeSpec> {
    let decoder_activation = match decoder_activation {
        "leaky-relu" => Act::LeakyRelu {
            slope: negative_slope,
        },
        other => parse::<Act>(other)?,
    };
    let sparsity = match sparsity {
        "eps-l1" => Sparsity::EpsL1 { eps },
        "hoyer" => Sparsity::Hoyer { target: hoyer_target },
        other => parse::<Sparsity>(other)?,
    };
    Ok(AeSpec(
        AeParams::new(n_components)
            .architecture(parse::<Architecture>(architecture)?)
            .decoder_activation(decoder_activation)
            .reconstruction(parse::<RecLoss>(loss)?)
            .reduction(parse::<Reduction>(reduction)?)
            .sparsity(sparsity)
            .p(p)
            .beta(beta)
            .decay_lambda(decay_lambda)
            .decay_alpha(decay_alpha)
            .nonneg(parse::<NonNeg>(nonneg)?)
            .optimizer(OptimizerSpec::new(
                parse::<OptimizerKind>(optimizer)?,
                learning_rate,
            ))
            .schedule(parse::<Schedule>(schedule)?)
            .epochs(max_iter)
            .batch_size(batch_size)
            .tol(tol)
            .val_fraction(val_fraction)
            .patience(patience)
            .shuffle(shuffle)
            .seed(seed)
            .threads(threads)
            .max_seconds(max_seconds),
    ))
}

/// Trains a sparse non-negative auto-encoder (METHODS.md §6) on `x` (`n_samples ×
/// n_features`, float32 or float64, any memory order; the model has the dtype of `x`) with the
/// parameters of [`ae_params`].
///
/// Without `trainer`, a new run of the parameters' epochs starts (the model initialized from
/// their seed); with one (the `trainer` of an earlier call), that run continues on `x`, which
/// must have its dtype; the seed is then the run's, and the parameters other than the epochs,
/// `tol`, `threads` and `max_seconds` must be those it started with. `epochs` trains only that
/// many more epochs (`autoencoder::train_epochs`: a `partial_fit`); otherwise the run goes to
/// the parameters' epochs. `image_shape` (`(height, width)`, `height · width = n_features`) is
/// needed by the asymmetric architecture's convolutional encoder and kept in the model file
/// otherwise.
///
/// Returns a dict: `model` (the model file's bytes), `history` (every epoch of the run),
/// `n_iter` (epochs done), `stop_reason`, `warnings`, `seconds`, `n_params`, `trainer`.
#[pyfunction]
#[pyo3(signature = (x, params, *, trainer = None, epochs = None, image_shape = None, callback = None))]
pub fn ae_fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    params: PyRef<'py, AeSpec>,
    trainer: Option<Bound<'py, AeTrainer>>,
    epochs: Option<usize>,
    image_shape: Option<(usize, usize)>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let params = &params.0;
    match Array::extract(x, "X")? {
        Array::F32(a) => fit_t(
            py,
            &a,
            trainer,
            params,
            image_shape,
            epochs,
            callback,
            Run::F32,
            |r| match r {
                Run::F32(s) => Some(s),
                Run::F64(_) => None,
            },
        ),
        Array::F64(a) => fit_t(
            py,
            &a,
            trainer,
            params,
            image_shape,
            epochs,
            callback,
            Run::F64,
            |r| match r {
                Run::F64(s) => Some(s),
                Run::F32(_) => None,
            },
        ),
    }
}
