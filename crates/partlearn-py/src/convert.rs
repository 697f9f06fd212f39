//! What crosses the boundary: numpy arrays as borrowed faer views (no copy; any strides), faer
//! matrices back as new numpy arrays, library errors as Python exceptions, and the observer that
//! lets Ctrl-C and a Python callback stop a fit running without the GIL.

use numpy::ndarray::Array2;
use numpy::{Element, IntoPyArray, PyArray2, PyReadonlyArray2, PyUntypedArrayMethods};
use partlearn::engine::{Control, IterRecord, Observer, Warning};
use partlearn::faer::{Mat, MatRef};
use partlearn::Real;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

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
        PyTypeError::new_err(format!(
            "{what} must be a 2-D numpy array of the same dtype as X"
        ))
    })?;
    if a.ndim() != 2 {
        return Err(PyValueError::new_err(format!("{what} must be 2-D")));
    }
    Ok(Some(view(&a)?.to_owned()))
}

/// The Python exception of a library error: invalid input and options are `ValueError`s (as
/// scikit-learn raises them; a size too large for memory is an invalid option too), files
/// `OSError`, the rest `RuntimeError`.
pub fn error(e: partlearn::Error) -> PyErr {
    use partlearn::Error as E;
    let msg = e.to_string();
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

/// Warnings as `(kind, message)` pairs: kind `"convergence"` for scikit-learn's
/// `ConvergenceWarning` (max_iter ended the fit first), `"user"` otherwise. Parameters are named
/// by their library names, which are the estimators' keyword arguments.
pub fn warnings<'py>(py: Python<'py>, ws: &[Warning]) -> PyResult<Bound<'py, PyList>> {
    let items: Vec<(&str, String)> = ws
        .iter()
        .map(|w| {
            let kind = match w {
                Warning::MaxIterReached { .. } => "convergence",
                _ => "user",
            };
            (kind, w.to_string())
        })
        .collect();
    PyList::new(py, items)
}

/// The history as a list of `(iter, objective, rel_error, seconds)` tuples.
pub fn history<'py>(py: Python<'py>, h: &[IterRecord]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(
        py,
        h.iter()
            .map(|r| (r.iter, r.objective, r.rel_error, r.seconds)),
    )
}

/// The observer of a fit running without the GIL: after every iteration (and mini-batch) it
/// takes the GIL briefly to check for Ctrl-C (`KeyboardInterrupt`) and to call the user's
/// `callback(dict)`, which stops the fit by returning `False` or raising. The error is kept and
/// raised once the fit has returned what it learned so far.
pub struct PyObserver {
    callback: Option<Py<PyAny>>,
    /// Why the fit was stopped from Python, raised after it returns.
    pub error: Option<PyErr>,
}

impl PyObserver {
    /// An observer calling `callback` (if any) after every iteration.
    pub fn new(callback: Option<Py<PyAny>>) -> Self {
        PyObserver {
            callback,
            error: None,
        }
    }

    fn check(&mut self, rec: Option<&IterRecord>) -> Control {
        Python::attach(|py| {
            if let Err(e) = py.check_signals() {
                self.error = Some(e);
                return Control::Stop;
            }
            let (Some(cb), Some(rec)) = (&self.callback, rec) else {
                return Control::Continue;
            };
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
        })
    }
}

impl Observer for PyObserver {
    fn on_iter(&mut self, rec: &IterRecord) -> Control {
        self.check(Some(rec))
    }

    fn on_progress(&mut self, _done: usize, _total: usize) -> Control {
        self.check(None)
    }
}
