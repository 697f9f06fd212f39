//! Choosing k (`partlearn::select`): the stability scores of candidate ranks on a numpy array,
//! computed without the GIL.

use partlearn::nmf::{NmfParams, Solver};
use partlearn::select::{select_k as select, SelectParams};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert::{self, error, view, Array, Float};

fn select_t<T: Float>(
    py: Python<'_>,
    a: &numpy::PyReadonlyArray2<'_, T>,
    params: &SelectParams,
    base: &NmfParams,
    callback: Option<Py<PyAny>>,
) -> PyResult<String> {
    let x = view(a)?;
    let (params, base) = (params.check().map_err(error)?, base.check().map_err(error)?);
    let sel = convert::run_detached(py, callback, |obs| select(x, &params, &base, obs))?.map_err(error)?;
    serde_json::to_string(&sel).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Scores the candidate ranks `ks` on `x` (`n_samples × n_features`, float32 or float64, entries
/// ≥ 0) by `runs` seeded NMF runs each (METHODS.md §11.4); returns the library's `Selection` as
/// JSON text (`scores`, `k_silhouette`, `k_cophenetic`, `consensus_samples`, `stop_reason`; with
/// `holdout`, the cross-validation scores and `k_cv`).
#[pyfunction]
#[pyo3(signature = (
    x, *, ks, runs = 10, samples = 2000, solver = "hals", max_iter = 200, tol = 1e-4, seed = 0,
    threads = 1, holdout = None, replicates = 3, callback = None
))]
#[allow(clippy::too_many_arguments)]
pub fn select_k(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    ks: Vec<usize>,
    runs: usize,
    samples: usize,
    solver: &str,
    max_iter: usize,
    tol: f64,
    seed: u64,
    threads: usize,
    holdout: Option<f64>,
    replicates: usize,
    callback: Option<Py<PyAny>>,
) -> PyResult<String> {
    let mut params = SelectParams::new(ks)
        .runs(runs)
        .samples(samples)
        .seed(seed)
        .replicates(replicates);
    if let Some(h) = holdout {
        params = params.holdout(h);
    }
    let base = NmfParams::new(1)
        .solver(solver.parse::<Solver>().map_err(error)?)
        .max_iter(max_iter)
        .tol(tol)
        .threads(threads);
    match Array::extract(x, "X")? {
        Array::F32(a) => select_t(py, &a, &params, &base, callback),
        Array::F64(a) => select_t(py, &a, &params, &base, callback),
    }
}
