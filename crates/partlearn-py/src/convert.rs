//! What crosses the boundary: numpy arrays as borrowed faer views (no copy; any strides), faer
//! matrices back as new numpy arrays, library errors as Python exceptions, and the observer that
//! lets Ctrl-C and a Python callback stop a fit running without the GIL ([`run_detached`]).

use numpy::ndarray::Array2;
use numpy::{Element, IntoPyArray, PyArray2, PyReadonlyArray2};
use partlearn::engine::{Control, IterRecord, Observer, Param, Warning};
use partlearn::faer::{Mat, MatRef};
use partlearn::Real;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// A float type that crosses between numpy and partlearn unchanged.
pub trait Float: Real + Element {}
impl Float for f32 {}
impl Float for f64 {}

/// A 2-D numpy array of either float type, borrowed read-only.
pub enum Array<'py> {
    F32(PyReadonlyArray2<'py, f32>),
    F64(PyReadonlyArray2<'py, f64>),
}

impl<'py> Array<'py> {
    /// Borrows `obj` as a 2-D float32 or float64 array; other types are the caller's to convert
    /// (the Python layer does, with scikit-learn's `validate_data`).
    pub fn extract(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Self> {
        if let Ok(a) = obj.extract::<PyReadonlyArray2<'py, f32>>() {
            return Ok(Array::F32(a));
        }
        if let Ok(a) = obj.extract::<PyReadonlyArray2<'py, f64>>() {
            return Ok(Array::F64(a));
        }
        Err(PyTypeError::new_err(format!(
            "{what} must be a 2-D numpy array of float32 or float64"
        )))
    }
}

/// A faer view of a numpy array, without copying: numpy's strides (C, Fortran or any other
/// order, negative included) become the view's.
pub fn view<'a, T: Float>(a: &'a PyReadonlyArray2<'_, T>) -> PyResult<MatRef<'a, T>> {
    let v = a.as_array();
    let (rows, cols) = v.dim();
    if rows == 0 || cols == 0 {
        return Err(PyValueError::new_err(format!(
            "Found array with {rows} sample(s) and {cols} feature(s) while a minimum of 1 is required."
        )));
    }
    let s = v.strides();
    // SAFETY: the pointer and strides describe the live, read-only borrowed numpy array `a`,
    // which outlives `'a`; numpy's borrow tracking refuses writers from Rust while it lives.
    Ok(unsafe { MatRef::from_raw_parts(v.as_ptr(), rows, cols, s[0], s[1]) })
}

/// A new numpy array holding `m`.
pub fn to_numpy<'py, T: Float>(py: Python<'py>, m: MatRef<'_, T>) -> Bound<'py, PyArray2<T>> {
    Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)]).into_pyarray(py)
}

/// An owned faer copy of an optional array of the same float type as the data (custom starts).
pub fn owned<T: Float>(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<Mat<T>>> {
    let Some(obj) = obj else { return Ok(None) };
    let a: PyReadonlyArray2<'_, T> = obj.extract().map_err(|_| {
        PyTypeError::new_err(format!("{what} must be a 2-D numpy array of the same dtype as X"))
    })?;
    Ok(Some(view(&a)?.to_owned()))
}

/// The Python exception of a library error: invalid input and options are `ValueError`s (as
/// scikit-learn raises them; a size too large for memory is an invalid option too), files
/// `OSError`, the rest `RuntimeError`.
pub fn error(e: partlearn::Error) -> PyErr {
    use partlearn::Error as E;
    let msg = match &e {
        E::InvalidOption {
            option,
            value,
            reason,
        } => format!("invalid {} = {value}: {reason}", py_name(option)),
        e => e.to_string(),
    };
    match e {
        E::NegativeEntry { .. }
        | E::NonFinite { .. }
        | E::EmptyData { .. }
        | E::InvalidOption { .. }
        | E::ShapeMismatch { .. }
        | E::UnknownDataset { .. }
        | E::BadFormat { .. }
        | E::Truncated { .. } => PyValueError::new_err(msg),
        E::Io { .. } | E::AlreadyExists { .. } | E::MissingData { .. } => PyOSError::new_err(msg),
        _ => PyRuntimeError::new_err(msg),
    }
}

/// The estimators' keyword for a library parameter name (scikit-learn's names where they
/// differ: `k` is `n_components`, `seed` is `random_state`, …).
fn py_name(option: &str) -> &str {
    match option {
        "k" => "n_components",
        "alpha_w" => "alpha_W",
        "alpha_h" => "alpha_H",
        "threads" => "n_threads",
        "seed" => "random_state",
        "structuring_element" => "se",
        "lambda" => "lam",
        other => other,
    }
}

/// Warnings as `(kind, message)` pairs: kind `"convergence"` for scikit-learn's
/// `ConvergenceWarning` (max_iter ended the fit first), `"user"` otherwise. Parameters are named
/// by their library names, which are the estimators' keyword arguments.
pub fn warnings<'py>(py: Python<'py>, ws: &[Warning]) -> PyResult<Bound<'py, PyList>> {
    warnings_named(py, ws, |p| p.name().to_string())
}

/// [`warnings`] with each parameter spelled by `name` (an estimator whose keyword differs from
/// the library's name, e.g. `epochs` for `max_iter`).
pub fn warnings_named<'py>(
    py: Python<'py>,
    ws: &[Warning],
    name: impl Fn(Param) -> String,
) -> PyResult<Bound<'py, PyList>> {
    let items: Vec<(&str, String)> = ws
        .iter()
        .map(|w| {
            let kind = match w {
                Warning::MaxIterReached { .. } => "convergence",
                _ => "user",
            };
            (kind, w.describe(&name))
        })
        .collect();
    PyList::new(py, items)
}

/// The history as a list of `(iter, objective, rel_error, seconds)` tuples.
pub fn history<'py>(py: Python<'py>, h: &[IterRecord]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(
        py,
        h.iter().map(|r| (r.iter, r.objective, r.rel_error, r.seconds)),
    )
}

/// The observer of a fit running without the GIL on a worker thread: after every iteration
/// (and mini-batch) it stops the fit when Ctrl-C was seen on the main thread, and otherwise
/// takes the GIL briefly to call the user's `callback(dict)`, which stops the fit by returning
/// `False` or raising. The error is kept and raised once the fit has returned. A stop is final:
/// a fit of several stages (the layers of a hierarchical NMF, then SSNMF or the fine-tuning)
/// stops in every later stage too, without calling the callback again.
pub struct PyObserver<'a> {
    callback: Option<Py<PyAny>>,
    interrupted: &'a AtomicBool,
    /// The callback asked to stop (returned `False` or raised).
    stopped: bool,
    /// Why the fit was stopped from Python, raised after it returns.
    error: Option<PyErr>,
}

impl PyObserver<'_> {
    fn check(&mut self, rec: Option<&IterRecord>) -> Control {
        if self.stopped || self.interrupted.load(Ordering::Relaxed) {
            return Control::Stop;
        }
        let (Some(cb), Some(rec)) = (&self.callback, rec) else {
            return Control::Continue;
        };
        let control = Python::attach(|py| {
            let call = || -> PyResult<bool> {
                let d = PyDict::new(py);
                d.set_item("iter", rec.iter)?;
                d.set_item("objective", rec.objective)?;
                d.set_item("rel_error", rec.rel_error)?;
                d.set_item("seconds", rec.seconds)?;
                let out = cb.call1(py, (d,))?;
                // `None` (no return statement) goes on; only an explicit False stops.
                Ok(!matches!(out.extract::<bool>(py), Ok(false)))
            };
            match call() {
                Ok(true) => Control::Continue,
                Ok(false) => Control::Stop,
                Err(e) => {
                    self.error = Some(e);
                    Control::Stop
                }
            }
        });
        self.stopped = control == Control::Stop;
        control
    }
}

impl Observer for PyObserver<'_> {
    fn on_iter(&mut self, rec: &IterRecord) -> Control {
        self.check(Some(rec))
    }

    fn on_progress(&mut self, _done: usize, _total: usize) -> Control {
        self.check(None)
    }
}

/// Runs `fit` without the GIL on a worker thread while the calling (main) thread watches for
/// Ctrl-C: Python runs signal handlers only on the main thread, so the main thread checks them
/// every 50 ms and tells the fit's observer to stop. `KeyboardInterrupt`, or the exception of
/// the user's callback, is raised after the fit has returned.
pub fn run_detached<R: Send>(
    py: Python<'_>,
    callback: Option<Py<PyAny>>,
    fit: impl FnOnce(&mut PyObserver<'_>) -> R + Send,
) -> PyResult<R> {
    let interrupted = AtomicBool::new(false);
    let (result, signal, error) = py.detach(|| {
        std::thread::scope(|scope| {
            let (done_tx, done_rx) = mpsc::channel::<()>();
            let interrupted = &interrupted;
            let worker = scope.spawn(move || {
                let mut observer = PyObserver {
                    callback,
                    interrupted,
                    stopped: false,
                    error: None,
                };
                let out = fit(&mut observer);
                let _ = done_tx.send(());
                (out, observer.error)
            });
            let mut signal = None;
            while let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(Duration::from_millis(50)) {
                if signal.is_none() {
                    if let Err(e) = Python::attach(|py| py.check_signals()) {
                        signal = Some(e);
                        interrupted.store(true, Ordering::Relaxed);
                    }
                }
            }
            match worker.join() {
                Ok((out, error)) => (Some(out), signal, error),
                Err(_) => (None, signal, None),
            }
        })
    });
    if let Some(e) = signal.or(error) {
        return Err(e);
    }
    result.ok_or_else(|| PyRuntimeError::new_err("the fit panicked; please report this as a bug"))
}
