//! Online (mini-batch) NMF for `partlearn.MiniBatchNMF`: `fit` streams the rows of an in-memory
//! array through the library's `fit_rows` (METHODS.md §11.3); `partial_fit` runs one step on one
//! batch from a state the Python object keeps (atoms, the statistics `A`, `B`, `ρ`, steps).

use partlearn::data::rows::{CsrRows, DenseRows, RowSource};
use partlearn::nmf::online::{self, MiniBatchParams, OnlineNmf, ValidMiniBatchParams};
use partlearn::nmf::{InitMethod, NmfParams};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{self, error, to_numpy, view, Array, Float};
use crate::nmf::{Input, Sparse};

/// The library parameters of the keyword arguments.
#[allow(clippy::too_many_arguments)]
fn params(
    n_components: usize,
    init: &str,
    batch_size: usize,
    max_iter: usize,
    tol: f64,
    max_no_improvement: Option<usize>,
    forget_factor: f64,
    fresh_restarts: bool,
    fresh_restarts_max_iter: usize,
    max_seconds: Option<f64>,
    seed: u64,
    threads: usize,
) -> PyResult<(MiniBatchParams, ValidMiniBatchParams)> {
    let p = MiniBatchParams {
        nmf: NmfParams::new(n_components)
            .init(init.parse::<InitMethod>().map_err(error)?)
            .max_iter(max_iter)
            .tol(tol)
            .max_seconds(max_seconds)
            .seed(seed)
            .threads(threads),
        batch_size,
        forget_factor,
        fresh_restarts,
        fresh_restarts_max_iter,
        max_no_improvement,
    };
    let v = p.check().map_err(error)?;
    Ok((p, v))
}

fn state_dict<'py, T: Float>(py: Python<'py>, s: &OnlineNmf<T>) -> PyResult<Bound<'py, PyDict>> {
    let (w, a, b, rho, steps) = s.parts();
    let d = PyDict::new(py);
    d.set_item("components", to_numpy(py, w))?;
    d.set_item("stat_a", to_numpy(py, a))?;
    d.set_item("stat_b", to_numpy(py, b))?;
    d.set_item("rho", rho)?;
    d.set_item("n_steps", steps)?;
    Ok(d)
}

/// The data of a fit or a step as the library reads it.
#[derive(Clone, Copy)]
enum Rows<'a, T> {
    Dense(partlearn::faer::MatRef<'a, T>),
    Sparse(&'a partlearn::data::Csr<T>),
}

impl<'a, T: Float> Rows<'a, T> {
    fn of(input: &'a Input<'_, '_, T>) -> PyResult<Self> {
        Ok(match input {
            Input::Dense(a) => Rows::Dense(view(a)?),
            Input::Sparse(c) => Rows::Sparse(c),
        })
    }
}

fn fit_t<'py, T: Float>(
    py: Python<'py>,
    input: Input<'_, 'py, T>,
    p: &MiniBatchParams,
    v: &ValidMiniBatchParams,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let threads = p.nmf.threads;
    // The rows as a stream: an array's rows, or a CSR matrix's (blocks stay sparse).
    let rows = Rows::of(&input)?;
    let source = || -> Box<dyn RowSource<T> + '_> {
        match rows {
            Rows::Dense(x) => Box::new(DenseRows::new(x)),
            Rows::Sparse(c) => Box::new(CsrRows::new(c)),
        }
    };
    let (fit, codes, eval) = convert::run_detached(py, callback, |obs| {
        let fit = online::fit_rows(source().as_mut(), v, obs)?;
        let mut src = source();
        let mut codes = partlearn::faer::Mat::<T>::zeros(src.n_rows(), p.nmf.k);
        let eval = online::transform_rows(&fit.model, src.as_mut(), p.batch_size, threads, &mut |s, c| {
            codes.as_mut().subrows_mut(s, c.nrows()).copy_from(c);
            Ok(())
        })?;
        Ok((fit, codes, eval))
    })?
    .map_err(error)?;
    let d = PyDict::new(py);
    d.set_item("codes", to_numpy(py, codes.as_ref()))?;
    d.set_item("components", to_numpy(py, fit.model.components()))?;
    d.set_item("history", convert::history(py, &fit.history)?)?;
    d.set_item("n_iter", fit.n_iter)?;
    d.set_item("n_steps", fit.n_steps)?;
    d.set_item("stop_reason", fit.stop_reason.to_string().replace('-', "_"))?;
    d.set_item("warnings", convert::warnings(py, &fit.warnings)?)?;
    d.set_item("reconstruction_err", eval.sq_error.max(0.0).sqrt())?;
    d.set_item("rel_error", eval.rel_error())?;
    d.set_item("seconds", fit.seconds)?;
    d.set_item("rows_per_second", fit.stats.rows_per_second)?;
    d.set_item("objective", 0.5 * eval.sq_error.max(0.0))?;
    d.set_item("encode", crate::run::encode_dict(py, &fit.model.spec)?)?;
    let json = |v: serde_json::Result<String>| v.map_err(|e| PyValueError::new_err(e.to_string()));
    d.set_item("options", json(serde_json::to_string(p))?)?;
    d.set_item("stats", json(serde_json::to_string(&fit.stats))?)?;
    Ok(d)
}

/// Fits online NMF to `x` (`n × m`, float32 or float64) and computes its codes by a streaming
/// pass. Returns a dict: `codes`, `components`, `history`, `n_iter` (passes), `n_steps`
/// (batches), `stop_reason`, `warnings`, `reconstruction_err`, `rel_error`, `seconds`,
/// `rows_per_second`.
#[pyfunction]
#[pyo3(signature = (
    x, *, n_components, init = "auto", batch_size = 1024, max_iter = 200, tol = 1e-4,
    max_no_improvement = Some(10), forget_factor = 0.7, fresh_restarts = false,
    fresh_restarts_max_iter = 30, max_seconds = None, seed = 0, threads = 1, callback = None
))]
#[allow(clippy::too_many_arguments)]
pub fn minibatch_nmf_fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    n_components: usize,
    init: &str,
    batch_size: usize,
    max_iter: usize,
    tol: f64,
    max_no_improvement: Option<usize>,
    forget_factor: f64,
    fresh_restarts: bool,
    fresh_restarts_max_iter: usize,
    max_seconds: Option<f64>,
    seed: u64,
    threads: usize,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (p, v) = params(
        n_components,
        init,
        batch_size,
        max_iter,
        tol,
        max_no_improvement,
        forget_factor,
        fresh_restarts,
        fresh_restarts_max_iter,
        max_seconds,
        seed,
        threads,
    )?;
    match Sparse::extract(x)? {
        Some(Sparse::F32(c)) => return fit_t(py, Input::Sparse(&c), &p, &v, callback),
        Some(Sparse::F64(c)) => return fit_t(py, Input::Sparse(&c), &p, &v, callback),
        None => {}
    }
    match Array::extract(x, "X")? {
        Array::F32(a) => fit_t(py, Input::Dense(&a), &p, &v, callback),
        Array::F64(a) => fit_t(py, Input::Dense(&a), &p, &v, callback),
    }
}

fn partial_t<'py, T: Float>(
    py: Python<'py>,
    input: Input<'_, 'py, T>,
    v: &ValidMiniBatchParams,
    state: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let rows = Rows::of(&input)?;
    let mut s = match state {
        // scikit-learn: the first call sets ρ = forget_factor^{batch_size / len(X)}.
        None => convert::run_detached(py, None, |_| match rows {
            Rows::Dense(x) => OnlineNmf::init(x, x.nrows(), v),
            Rows::Sparse(c) => OnlineNmf::init_csr(c, c.nrows(), v),
        })?
        .map_err(error)?,
        Some(d) => {
            let get = |key: &str| -> PyResult<partlearn::faer::Mat<T>> {
                let item = d
                    .get_item(key)?
                    .ok_or_else(|| PyValueError::new_err(format!("the state lacks {key}")))?;
                convert::owned::<T>(Some(&item), key)?
                    .ok_or_else(|| PyValueError::new_err(format!("the state lacks {key}")))
            };
            let rho: f64 = d
                .get_item("rho")?
                .ok_or_else(|| PyValueError::new_err("the state lacks rho"))?
                .extract()?;
            let steps: usize = d
                .get_item("n_steps")?
                .ok_or_else(|| PyValueError::new_err("the state lacks n_steps"))?
                .extract()?;
            OnlineNmf::from_parts(v, get("components")?, get("stat_a")?, get("stat_b")?, rho, steps)
                .map_err(error)?
        }
    };
    convert::run_detached(py, None, |_| match rows {
        Rows::Dense(x) => s.partial_fit(x),
        Rows::Sparse(c) => s.partial_fit_csr(c),
    })?
    .map_err(error)?;
    state_dict(py, &s)
}

/// One mini-batch step on `x` (scikit-learn's `partial_fit`): from `state` (the dict this
/// function returned last time), or, without it, from atoms initialized on `x`. Returns the new
/// state: `components`, `stat_a`, `stat_b`, `rho`, `n_steps`.
#[pyfunction]
#[pyo3(signature = (
    x, *, n_components, state = None, init = "auto", batch_size = 1024, tol = 1e-4,
    forget_factor = 0.7, fresh_restarts = false, fresh_restarts_max_iter = 30, seed = 0, threads = 1
))]
#[allow(clippy::too_many_arguments)]
pub fn minibatch_nmf_partial_fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    n_components: usize,
    state: Option<&Bound<'py, PyDict>>,
    init: &str,
    batch_size: usize,
    tol: f64,
    forget_factor: f64,
    fresh_restarts: bool,
    fresh_restarts_max_iter: usize,
    seed: u64,
    threads: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let (_, v) = params(
        n_components,
        init,
        batch_size,
        1,
        tol,
        None,
        forget_factor,
        fresh_restarts,
        fresh_restarts_max_iter,
        None,
        seed,
        threads,
    )?;
    match Sparse::extract(x)? {
        Some(Sparse::F32(c)) => return partial_t(py, Input::Sparse(&c), &v, state),
        Some(Sparse::F64(c)) => return partial_t(py, Input::Sparse(&c), &v, state),
        None => {}
    }
    match Array::extract(x, "X")? {
        Array::F32(a) => partial_t(py, Input::Dense(&a), &v, state),
        Array::F64(a) => partial_t(py, Input::Dense(&a), &v, state),
    }
}
