//! NMF and Hoyer's sparse NMF: fit and transform on numpy arrays, run without the GIL.
//! The Python estimators (`partlearn.NMF`, `partlearn.SparseNMF`) check their parameters the
//! scikit-learn way first; the library's checked parameters are the final word.

use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use partlearn::data::Csr;
use partlearn::engine::StopReason;
use partlearn::nmf::sparse::{factorize_sparse, CodeConstraint, SparseNmfParams};
use partlearn::nmf::{self, CustomInit, EncodeSpec, InitMethod, NmfFit, NmfModel, NmfParams, Solver};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::convert::{self, error, to_numpy, view, Array, Float, PyObserver};

/// A library `FromStr` parse as a Python `ValueError`.
fn parse<T: std::str::FromStr<Err = partlearn::Error>>(s: &str) -> PyResult<T> {
    s.parse().map_err(error)
}

/// A scipy CSR matrix as the tuple `(data, indices, indptr, n_rows, n_cols)` the estimators pass
/// (`indices`, `indptr` int32 or int64, as scipy keeps them), in its data's float type.
pub(crate) enum Sparse {
    F32(Csr<f32>),
    F64(Csr<f64>),
}

impl Sparse {
    /// The CSR matrix of `x` when it is such a tuple (`None` for an array).
    pub(crate) fn extract(x: &Bound<'_, PyAny>) -> PyResult<Option<Sparse>> {
        let Ok(t) = x.cast::<PyTuple>() else {
            return Ok(None);
        };
        let bad = || PyValueError::new_err("a sparse X must be a scipy.sparse matrix or array");
        if t.len() != 5 {
            return Err(bad());
        }
        // scipy's int32 or int64 index arrays, converted once (no wider copy).
        fn index<U>(item: &Bound<'_, PyAny>, conv: impl Fn(i64) -> Option<U>) -> Option<PyResult<Vec<U>>> {
            let all = |it: &mut dyn Iterator<Item = i64>| -> PyResult<Vec<U>> {
                it.map(|v| {
                    conv(v).ok_or_else(|| {
                        PyValueError::new_err(
                            "sparse X has negative or out-of-range indices; give scipy's arrays unchanged",
                        )
                    })
                })
                .collect()
            };
            if let Ok(a) = item.extract::<PyReadonlyArray1<'_, i32>>() {
                return Some(all(&mut a.as_array().iter().map(|&v| i64::from(v))));
            }
            let a = item.extract::<PyReadonlyArray1<'_, i64>>().ok()?;
            let r = all(&mut a.as_array().iter().copied());
            Some(r)
        }
        let (n, m): (usize, usize) = (t.get_item(3)?.extract()?, t.get_item(4)?.extract()?);
        let indices: Vec<u32> = index(&t.get_item(1)?, |v| u32::try_from(v).ok()).ok_or_else(bad)??;
        let indptr: Vec<usize> = index(&t.get_item(2)?, |v| usize::try_from(v).ok()).ok_or_else(bad)??;
        let data = t.get_item(0)?;
        if let Ok(d) = data.extract::<PyReadonlyArray1<'_, f32>>() {
            let v = d.as_array().to_vec();
            return Ok(Some(Sparse::F32(
                Csr::from_parts(n, m, indptr, indices, v).map_err(error)?,
            )));
        }
        let d: PyReadonlyArray1<'_, f64> = data.extract().map_err(|_| bad())?;
        let v = d.as_array().to_vec();
        Ok(Some(Sparse::F64(
            Csr::from_parts(n, m, indptr, indices, v).map_err(error)?,
        )))
    }
}

/// The snake_case name of a stop reason (`max_iter`, `converged`, …).
fn reason(r: StopReason) -> String {
    r.to_string().replace('-', "_")
}

/// What every NMF fit returns to Python: factors, history, warnings, how the model encodes, and
/// for run.json the params of the fit (`options`) and its work counters (`stats`), as JSON.
fn fit_dict<'py, T: Float>(
    py: Python<'py>,
    fit: &NmfFit<T>,
    options: String,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("codes", to_numpy(py, fit.codes()))?;
    d.set_item("components", to_numpy(py, fit.model.components()))?;
    d.set_item("history", convert::history(py, &fit.history)?)?;
    d.set_item("n_iter", fit.n_iter)?;
    d.set_item("stop_reason", reason(fit.stop_reason))?;
    d.set_item("warnings", convert::warnings(py, &fit.warnings)?)?;
    d.set_item("objective", fit.objective)?;
    d.set_item("reconstruction_err", fit.reconstruction_err)?;
    d.set_item("rel_error", fit.rel_error)?;
    d.set_item("seconds", fit.seconds)?;
    d.set_item("encode", crate::run::encode_dict(py, &fit.model.spec)?)?;
    d.set_item("options", options)?;
    d.set_item(
        "stats",
        serde_json::to_string(&fit.stats).map_err(|e| PyValueError::new_err(e.to_string()))?,
    )?;
    Ok(d)
}

/// The library params of a fit as JSON text (run.json's `options`).
fn options_json<P: serde::Serialize>(params: &P) -> PyResult<String> {
    serde_json::to_string(params)
        .map_err(|e| PyValueError::new_err(format!("cannot write the options as JSON ({e})")))
}

/// Runs `fit` through [`convert::run_detached`] and returns its dict.
fn run_fit<'py, T: Float>(
    py: Python<'py>,
    callback: Option<Py<PyAny>>,
    options: String,
    fit: impl FnOnce(&mut PyObserver<'_>) -> partlearn::Result<NmfFit<T>> + Send,
) -> PyResult<Bound<'py, PyDict>> {
    let result = convert::run_detached(py, callback, fit)?;
    fit_dict(py, &result.map_err(error)?, options)
}

/// The data of a fit: a dense array or a CSR matrix.
pub(crate) enum Input<'a, 'py, T: Float> {
    Dense(&'a PyReadonlyArray2<'py, T>),
    Sparse(&'a Csr<T>),
}

fn nmf_fit_t<'py, T: Float>(
    py: Python<'py>,
    input: Input<'_, 'py, T>,
    params: &NmfParams,
    w_init: Option<&Bound<'py, PyAny>>,
    h_init: Option<&Bound<'py, PyAny>>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let valid = params.check().map_err(error)?;
    let custom = match convert::owned::<T>(h_init, "H")? {
        Some(atoms) => Some(CustomInit {
            atoms,
            codes: convert::owned::<T>(w_init, "W")?,
        }),
        None if params.init == InitMethod::Custom => {
            return Err(PyValueError::new_err(
                "init='custom' needs the starting components H (and optionally W)",
            ))
        }
        None => None,
    };
    let options = options_json(params)?;
    match input {
        // NaN entries are missing (METHODS.md §11.2): the masked fit, which is the plain one
        // when every entry is observed.
        Input::Dense(a) => {
            let x = view(a)?;
            run_fit(py, callback, options, |obs| {
                nmf::factorize_masked_with(x, None, &valid, custom.as_ref(), obs)
            })
        }
        // Never densified (METHODS.md §11.1).
        Input::Sparse(x) => run_fit(py, callback, options, |obs| {
            nmf::factorize_csr(x, &valid, custom.as_ref(), obs)
        }),
    }
}

/// `compress_samples`: `None` or `"auto"`, `"off"`, or a number of samples.
fn parse_compress_samples(v: Option<&Bound<'_, PyAny>>) -> PyResult<nmf::CompressSamples> {
    let Some(v) = v else {
        return Ok(nmf::CompressSamples::Auto);
    };
    if let Ok(s) = v.extract::<String>() {
        return match s.as_str() {
            "auto" => Ok(nmf::CompressSamples::Auto),
            "off" => Ok(nmf::CompressSamples::Off),
            _ => Err(PyValueError::new_err(format!(
                "invalid compress_samples = {s:?}: use 'auto', 'off' or a number of samples"
            ))),
        };
    }
    v.extract::<usize>()
        .map(nmf::CompressSamples::Count)
        .map_err(|_| {
            PyValueError::new_err("invalid compress_samples: use 'auto', 'off' or a number of samples")
        })
}

/// Fits an NMF of `x` (`n_samples × n_features`, float32 or float64, any memory order; the
/// factors have the dtype of `x`). Returns a dict: `codes` (W), `components` (H), `history`,
/// `n_iter`, `stop_reason`, `warnings`, `objective`, `reconstruction_err`, `rel_error`,
/// `seconds`, `encode` (what `nmf_transform` needs), `options` and `stats` (JSON, for run.json).
#[pyfunction]
#[pyo3(signature = (
    x, *, n_components, solver = "hals", beta_loss = 2.0, init = "auto", max_iter = 200,
    tol = 1e-4, max_seconds = None, alpha_w = 0.0, alpha_h = None, l1_ratio = 0.0, seed = 0,
    threads = 1, extrapolate = true, hals_inner_max = None, compress = None, oversample = nmf::compress::DEFAULT_OVERSAMPLE,
    power_iters = nmf::compress::DEFAULT_POWER_ITERS, polish = 10, compress_samples = None,
    w_init = None, h_init = None, callback = None
))]
#[allow(clippy::too_many_arguments)]
pub fn nmf_fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    n_components: usize,
    solver: &str,
    beta_loss: f64,
    init: &str,
    max_iter: usize,
    tol: f64,
    max_seconds: Option<f64>,
    alpha_w: f64,
    alpha_h: Option<f64>,
    l1_ratio: f64,
    seed: u64,
    threads: usize,
    extrapolate: bool,
    hals_inner_max: Option<usize>,
    compress: Option<&str>,
    oversample: usize,
    power_iters: usize,
    polish: usize,
    compress_samples: Option<&Bound<'py, PyAny>>,
    w_init: Option<&Bound<'py, PyAny>>,
    h_init: Option<&Bound<'py, PyAny>>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let compress = match compress {
        None | Some("off") => nmf::Compress::Off,
        Some("on") => nmf::Compress::On {
            oversample,
            power_iters,
        },
        Some("auto") => nmf::Compress::Auto {
            oversample,
            power_iters,
        },
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "invalid compress = {other:?}: use None, 'on' or 'auto'"
            )))
        }
    };
    let params = NmfParams::new(n_components)
        .solver(parse::<Solver>(solver)?)
        .beta_loss(beta_loss)
        .init(parse::<InitMethod>(init)?)
        .max_iter(max_iter)
        .tol(tol)
        .max_seconds(max_seconds)
        .alpha_w(alpha_w)
        .alpha_h(alpha_h)
        .l1_ratio(l1_ratio)
        .seed(seed)
        .threads(threads)
        .extrapolate(extrapolate)
        .hals_inner_max(hals_inner_max)
        .compress(compress)
        .polish(polish)
        .compress_samples(parse_compress_samples(compress_samples)?);
    match Sparse::extract(x)? {
        Some(Sparse::F32(c)) => return nmf_fit_t(py, Input::Sparse(&c), &params, w_init, h_init, callback),
        Some(Sparse::F64(c)) => return nmf_fit_t(py, Input::Sparse(&c), &params, w_init, h_init, callback),
        None => {}
    }
    match Array::extract(x, "X")? {
        Array::F32(a) => nmf_fit_t(py, Input::Dense(&a), &params, w_init, h_init, callback),
        Array::F64(a) => nmf_fit_t(py, Input::Dense(&a), &params, w_init, h_init, callback),
    }
}

/// Fits Hoyer's NMF with sparseness constraints (METHODS.md §2) to `x`; returns the dict of
/// [`nmf_fit`].
#[pyfunction]
#[pyo3(signature = (
    x, *, n_components, atom_sparsity = None, code_sparsity = None,
    code_constraint = "components", max_iter = 1000, tol = 1e-4, max_seconds = None, seed = 0,
    threads = 1, callback = None
))]
#[allow(clippy::too_many_arguments)]
pub fn sparse_nmf_fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    n_components: usize,
    atom_sparsity: Option<f64>,
    code_sparsity: Option<f64>,
    code_constraint: &str,
    max_iter: usize,
    tol: f64,
    max_seconds: Option<f64>,
    seed: u64,
    threads: usize,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let params = SparseNmfParams::new(n_components)
        .atom_sparsity(atom_sparsity)
        .code_sparsity(code_sparsity)
        .code_constraint(parse::<CodeConstraint>(code_constraint)?)
        .max_iter(max_iter)
        .tol(tol)
        .max_seconds(max_seconds)
        .seed(seed)
        .threads(threads);
    let valid = params.check().map_err(error)?;
    let options = options_json(&params)?;
    match Array::extract(x, "X")? {
        Array::F32(a) => {
            let x = view(&a)?;
            run_fit(py, callback, options, |obs| factorize_sparse(x, &valid, obs))
        }
        Array::F64(a) => {
            let x = view(&a)?;
            run_fit(py, callback, options, |obs| factorize_sparse(x, &valid, obs))
        }
    }
}

fn transform_t<'py, T: Float>(
    py: Python<'py>,
    components: &Bound<'py, PyAny>,
    input: Input<'_, 'py, T>,
    spec: EncodeSpec,
    threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let atoms = convert::owned::<T>(Some(components), "components")?
        .ok_or_else(|| PyValueError::new_err("components are missing"))?;
    let model = NmfModel::new(atoms, spec).map_err(error)?;
    let codes = match input {
        Input::Dense(a) => {
            let x = view(a)?;
            convert::run_detached(py, None, |_| model.encode_masked(x, None, threads))?
        }
        Input::Sparse(x) => convert::run_detached(py, None, |_| model.encode_csr(x, threads))?,
    }
    .map_err(error)?;
    Ok(to_numpy(py, codes.as_ref()).into_any())
}

/// Codes (`n × k`) of the samples `x` for fixed `components` (`k × n_features`, same dtype),
/// computed as the fit computes its final codes (METHODS.md §1.7): exact NNLS or coordinate
/// descent for the Frobenius loss with the codes' penalties `codes_l1`, `codes_l2` (already
/// scaled), MU for other β.
#[pyfunction]
#[pyo3(signature = (
    components, x, *, beta_loss = 2.0, codes_l1 = 0.0, codes_l2 = 0.0, method = "exact",
    max_iter = 1000, tol = 1e-5, threads = 1
))]
#[allow(clippy::too_many_arguments)]
pub fn nmf_transform<'py>(
    py: Python<'py>,
    components: &Bound<'py, PyAny>,
    x: &Bound<'py, PyAny>,
    beta_loss: f64,
    codes_l1: f64,
    codes_l2: f64,
    method: &str,
    max_iter: usize,
    tol: f64,
    threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let spec = crate::run::encode_spec(beta_loss, codes_l1, codes_l2, method, max_iter, tol)?;
    match Sparse::extract(x)? {
        Some(Sparse::F32(c)) => return transform_t(py, components, Input::Sparse(&c), spec, threads),
        Some(Sparse::F64(c)) => return transform_t(py, components, Input::Sparse(&c), spec, threads),
        None => {}
    }
    match Array::extract(x, "X")? {
        Array::F32(a) => transform_t(py, components, Input::Dense(&a), spec, threads),
        Array::F64(a) => transform_t(py, components, Input::Dense(&a), spec, threads),
    }
}
