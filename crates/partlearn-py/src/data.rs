//! Data sets as the CLI's `--data` reads them (Fashion-MNIST, Swimmer, toy-hierarchy, NPY, CSV,
//! IDX files), loaded by the library and handed to Python as numpy arrays.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1};
use partlearn::data::{load, Dataset, LoadOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{error, Float};

fn dict_of<'py, T: Float>(py: Python<'py>, d: Dataset<T>) -> PyResult<Bound<'py, PyDict>> {
    let (n, m) = (d.n_samples(), d.n_features());
    // The samples are stored contiguously (one column each), so rows of numpy's C order are
    // copied one slice at a time.
    let mut flat = Vec::with_capacity(n * m);
    for i in 0..n {
        flat.extend_from_slice(d.sample(i));
    }
    let x = Array2::from_shape_vec((n, m), flat)
        .map_err(|e| PyValueError::new_err(format!("cannot shape the data as {n} × {m}: {e}")))?;
    let out = PyDict::new(py);
    out.set_item("X", x.into_pyarray(py))?;
    let labels = |l: &[u32]| PyArray1::from_iter(py, l.iter().map(|&v| i64::from(v)));
    out.set_item("y", d.labels.as_deref().map(labels))?;
    let extra = PyDict::new(py);
    for (name, l) in &d.extra_labels {
        extra.set_item(name, labels(l))?;
    }
    out.set_item("extra_labels", extra)?;
    out.set_item("image_shape", d.image_shape)?;
    out.set_item("name", &d.name)?;
    Ok(out)
}

/// Loads a data spec (a name such as `fashion-mnist:train`, `swimmer`, `toy-hierarchy:SEED`, or
/// a `.npy` / `.csv` / IDX file) as the CLI's `--data` does. Returns a dict: `X` (`n × features`,
/// `dtype`), `y` (int64 labels or None), `extra_labels` (name → labels), `image_shape`, `name`.
#[pyfunction]
#[pyo3(signature = (spec, *, first = None, subset = None, seed = 0, labels = None, dtype = "float32"))]
pub fn load_data<'py>(
    py: Python<'py>,
    spec: &str,
    first: Option<usize>,
    subset: Option<usize>,
    seed: u64,
    labels: Option<std::path::PathBuf>,
    dtype: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = LoadOptions {
        first,
        subset,
        seed,
        labels,
    };
    match dtype {
        "float32" => {
            let d = py.detach(|| load::<f32>(spec, &opts)).map_err(error)?;
            dict_of(py, d)
        }
        "float64" => {
            let d = py.detach(|| load::<f64>(spec, &opts)).map_err(error)?;
            dict_of(py, d)
        }
        other => Err(PyValueError::new_err(format!(
            "dtype must be 'float32' or 'float64', got {other:?}"
        ))),
    }
}
