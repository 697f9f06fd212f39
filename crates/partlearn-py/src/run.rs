//! Run folders and model files between Python and the CLI: an NMF estimator's model as the bytes
//! of the model file `partlearn fit nmf` writes (and back), a run folder read into what
//! `partlearn.load_run` needs, and a fitted estimator written as a run folder that `partlearn
//! transform`, `eval` and `report` read (through the library's `RunDir`: staged, then moved
//! into place; an existing folder is replaced only when asked).

use std::path::{Path, PathBuf};

use numpy::PyReadonlyArray2;
use partlearn::io::record::{DataSpec, FitSummary, MethodPart, RunRecord};
use partlearn::io::run::{HISTORY_FILE, MODEL_FILE, RUN_FILE};
use partlearn::io::{parse_safetensors, safetensors_bytes, RunDir, Tensor};
use partlearn::nmf::{EncodeMethod, EncodeOptions, EncodeSpec, NmfModel, Penalty};
use partlearn::protocol::model_from_bytes;
use pyo3::exceptions::{PyFileExistsError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use serde::Deserialize;
use serde_json::Value;

use crate::convert::{self, error, to_numpy, Float};

/// How an NMF model encodes, from the keys of an estimator's `_encode` dict.
pub fn encode_spec(
    beta_loss: f64,
    codes_l1: f64,
    codes_l2: f64,
    method: &str,
    max_iter: usize,
    tol: f64,
) -> PyResult<EncodeSpec> {
    Ok(EncodeSpec {
        beta_loss,
        codes_penalty: Penalty {
            l1: codes_l1,
            l2: codes_l2,
        },
        encode: EncodeOptions {
            method: method.parse::<EncodeMethod>().map_err(error)?,
            max_iter,
            tol,
        },
    })
}

/// An estimator's `_encode` dict of a spec (the keys `nmf_transform` takes).
pub fn encode_dict<'py>(py: Python<'py>, spec: &EncodeSpec) -> PyResult<Bound<'py, PyDict>> {
    let e = PyDict::new(py);
    e.set_item("beta_loss", spec.beta_loss)?;
    e.set_item("codes_l1", spec.codes_penalty.l1)?;
    e.set_item("codes_l2", spec.codes_penalty.l2)?;
    e.set_item(
        "method",
        match spec.encode.method {
            EncodeMethod::Exact => "exact",
            EncodeMethod::Cd => "cd",
        },
    )?;
    e.set_item("max_iter", spec.encode.max_iter)?;
    e.set_item("tol", spec.encode.tol)?;
    Ok(e)
}

fn model_bytes_t<'py, T: Float>(
    py: Python<'py>,
    atoms: &PyReadonlyArray2<'py, T>,
    spec: EncodeSpec,
    codes: Option<&Bound<'py, PyAny>>,
    image_shape: Option<(usize, usize)>,
) -> PyResult<Bound<'py, PyBytes>> {
    let model = NmfModel::new(convert::view(atoms)?.to_owned(), spec).map_err(error)?;
    let codes = convert::owned::<T>(codes, "codes")?;
    let (tensors, meta) = model
        .to_tensors(codes.as_ref().map(|c| c.as_ref()), image_shape)
        .map_err(error)?;
    Ok(PyBytes::new(
        py,
        &safetensors_bytes(&tensors, &meta).map_err(error)?,
    ))
}

/// The bytes of the model file of an NMF model (what `partlearn fit nmf` writes as
/// model.safetensors): `components` (`k × n_features`, float32 or float64) and how it encodes;
/// `codes` (`n × k`, same dtype) are stored beside them when given.
#[pyfunction]
#[pyo3(signature = (
    components, *, beta_loss = 2.0, codes_l1 = 0.0, codes_l2 = 0.0, method = "exact",
    max_iter = 1000, tol = 1e-5, codes = None, image_shape = None
))]
#[allow(clippy::too_many_arguments)]
pub fn nmf_model_bytes<'py>(
    py: Python<'py>,
    components: &Bound<'py, PyAny>,
    beta_loss: f64,
    codes_l1: f64,
    codes_l2: f64,
    method: &str,
    max_iter: usize,
    tol: f64,
    codes: Option<&Bound<'py, PyAny>>,
    image_shape: Option<(usize, usize)>,
) -> PyResult<Bound<'py, PyBytes>> {
    let spec = encode_spec(beta_loss, codes_l1, codes_l2, method, max_iter, tol)?;
    match convert::Array::extract(components, "components")? {
        convert::Array::F32(a) => model_bytes_t(py, &a, spec, codes, image_shape),
        convert::Array::F64(a) => model_bytes_t(py, &a, spec, codes, image_shape),
    }
}

fn nmf_parts_t<'py, T: Float>(
    py: Python<'py>,
    tensors: &[Tensor],
    meta: &Meta,
    source: &Path,
) -> PyResult<Bound<'py, PyDict>> {
    let (model, image_shape) = NmfModel::<T>::from_file_parts(tensors, meta, source).map_err(error)?;
    let d = PyDict::new(py);
    d.set_item("components", to_numpy(py, model.components()))?;
    d.set_item("encode", encode_dict(py, &model.spec)?)?;
    d.set_item("image_shape", image_shape)?;
    match tensors.iter().find(|t| t.name == "codes") {
        Some(t) => {
            let codes = t.to_mat::<T>().map_err(error)?;
            d.set_item("codes", to_numpy(py, codes.as_ref()))?;
        }
        None => d.set_item("codes", py.None())?,
    }
    Ok(d)
}

type Meta = std::collections::BTreeMap<String, String>;

/// The parts of an NMF model file: `components` (as `dtype`), `encode` (an estimator's
/// `_encode` dict), `image_shape`, and `codes` (stored training codes, or None).
#[pyfunction]
#[pyo3(signature = (model, *, dtype = "float64"))]
pub fn nmf_model_parts<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyBytes>,
    dtype: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let source = Path::new("the estimator's model");
    let (tensors, meta) = parse_safetensors(model.as_bytes(), source).map_err(error)?;
    match dtype {
        "float32" => nmf_parts_t::<f32>(py, &tensors, &meta, source),
        "float64" => nmf_parts_t::<f64>(py, &tensors, &meta, source),
        other => Err(PyValueError::new_err(format!(
            "dtype must be 'float32' or 'float64', got {other:?}"
        ))),
    }
}

/// The numpy dtype of a model file's tensors: float64 when any tensor is, else float32.
fn file_dtype(tensors: &[Tensor]) -> &'static str {
    if tensors.iter().any(|t| t.data.dtype_name() == "F64") {
        "float64"
    } else {
        "float32"
    }
}

/// Reads a run folder written by `partlearn fit` (or by `save`) or a bare model file (or a
/// folder holding only one): returns `model` (the model file's bytes, checked to load), `kind`
/// (the model's), `dtype` (of its tensors), `record` (run.json as JSON text, checked by the
/// library's `RunRecord::read`; None without run.json), `history` (the non-blank lines of
/// history.jsonl as `(line number, text)`, or an empty list) and `history_file` (its path, or
/// None).
#[pyfunction]
pub fn read_run<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let (file, record, history, history_file) = if path.is_dir() && !path.join(RUN_FILE).exists() {
        // A folder holding only a model (as `partlearn transform` accepts): the model alone.
        let dir = partlearn::io::open_existing(&path).map_err(error)?;
        (dir.join(MODEL_FILE), None, Vec::new(), None)
    } else if path.is_dir() {
        let dir = partlearn::io::open_existing(&path).map_err(error)?;
        let record = RunRecord::read(&dir).map_err(error)?;
        let history_path = dir.join(&record.history.file);
        let has_history = !record.history.file.is_empty() && history_path.is_file();
        let history: Vec<(usize, String)> = if has_history {
            std::fs::read_to_string(&history_path)
                .map_err(|e| error(partlearn::Error::io(&history_path, e)))?
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| (i + 1, l.to_string()))
                .collect()
        } else {
            Vec::new()
        };
        let text = serde_json::to_string(&record)
            .map_err(|e| PyValueError::new_err(format!("cannot write the run record as JSON ({e})")))?;
        let history_file = has_history.then(|| history_path.display().to_string());
        (dir.join(MODEL_FILE), Some(text), history, history_file)
    } else {
        (path.clone(), None, Vec::new(), None)
    };
    let bytes = std::fs::read(&file).map_err(|e| {
        let hint = if record.is_some() {
            "the run folder lacks its model; refit it"
        } else {
            "give a run folder written by partlearn fit (or save), or its model.safetensors"
        };
        error(partlearn::Error::io(
            &file,
            std::io::Error::new(e.kind(), format!("{e}; {hint}")),
        ))
    })?;
    let (tensors, _) = parse_safetensors(&bytes, &file).map_err(error)?;
    let loaded = model_from_bytes::<f64>(&bytes, &file).map_err(error)?;
    let d = PyDict::new(py);
    d.set_item("kind", loaded.model.kind())?;
    d.set_item("dtype", file_dtype(&tensors))?;
    d.set_item("image_shape", loaded.image_shape)?;
    d.set_item("has_codes", tensors.iter().any(|t| t.name == "codes"))?;
    d.set_item("model", PyBytes::new(py, &bytes))?;
    d.set_item("record", record)?;
    d.set_item("history", history)?;
    d.set_item("history_file", history_file)?;
    Ok(d)
}

/// The header fields of a run record that the Python side knows.
#[derive(Deserialize)]
struct Header {
    data: DataSpec,
    fit: FitSummary,
    seed: u64,
    threads: usize,
    #[serde(default)]
    command: Vec<String>,
}

fn parse_json<O: serde::de::DeserializeOwned>(text: &str, what: &str) -> PyResult<O> {
    serde_json::from_str(text)
        .map_err(|e| PyValueError::new_err(format!("invalid {what} of the run record: {e}")))
}

/// Writes the run folder `path` of a fitted estimator: `model` (model-file bytes, checked to
/// load) as model.safetensors, `history` (a JSON array, one record per iteration) as
/// history.jsonl and run.json (format 2) made of `header` (JSON: `data`, `fit`, `seed`,
/// `threads`, `command`), the `method` and its `part` (JSON of the library's `MethodPart`; when
/// None, built from the model with `options` and `supervision`, `MethodPart::of_model`, with a
/// layer model's `level_errors`); `files`, `(name, bytes)` pairs, are written beside them (e.g.
/// `codes.npy`, `checkpoint.safetensors`; not the three files above). An existing `path` is an
/// error unless `overwrite`, which replaces only a partlearn run folder. Returns the folder's
/// path.
#[pyfunction]
#[pyo3(signature = (
    path, model, *, method, header, part = None, options = "null", supervision = "none",
    history = "[]", overwrite = false, level_errors = None, files = Vec::new()
))]
#[allow(clippy::too_many_arguments)]
pub fn save_run(
    path: PathBuf,
    model: &Bound<'_, PyBytes>,
    method: &str,
    header: &str,
    part: Option<&str>,
    options: &str,
    supervision: &str,
    history: &str,
    overwrite: bool,
    level_errors: Option<Vec<f64>>,
    files: Vec<(String, Bound<'_, PyBytes>)>,
) -> PyResult<String> {
    if let Some((name, _)) = files
        .iter()
        .find(|(name, _)| [MODEL_FILE, RUN_FILE, HISTORY_FILE].contains(&name.as_str()))
    {
        return Err(PyValueError::new_err(format!(
            "files: {name} is written from the other arguments of save_run"
        )));
    }
    let bytes = model.as_bytes();
    let source = Path::new("the estimator's model");
    let (tensors, meta) = parse_safetensors(bytes, source).map_err(error)?;
    model_from_bytes::<f64>(bytes, source).map_err(error)?;
    let mut part: MethodPart = match part {
        Some(text) => parse_json(text, "method part")?,
        None => MethodPart::of_model(
            method,
            &tensors,
            &meta,
            source,
            parse_json::<Value>(options, "options")?,
            supervision,
        )
        .map_err(error)?,
    };
    if let (Some(errors), MethodPart::Layers(p)) = (level_errors, &mut part) {
        p.level_errors = errors;
    }
    let h: Header = parse_json(header, "header")?;
    let history: Vec<Value> = parse_json(history, "history")?;
    let mut record = RunRecord::new(method, h.data, h.fit, part)
        .seed(h.seed)
        .threads(h.threads)
        .command(h.command);
    let run = RunDir::create(&path, overwrite).map_err(save_error)?;
    run.write(MODEL_FILE, bytes).map_err(save_error)?;
    for (name, content) in &files {
        run.write(name, content.as_bytes()).map_err(save_error)?;
    }
    record.write(&run, &history).map_err(save_error)?;
    let target = run.commit().map_err(save_error)?;
    Ok(target.display().to_string())
}

/// A library error of `save`, in the keywords of `save` (`path`, `overwrite`): an existing
/// target is a `FileExistsError` that says how to replace it.
fn save_error(e: partlearn::Error) -> PyErr {
    match e {
        partlearn::Error::AlreadyExists { path } => PyFileExistsError::new_err(format!(
            "{} already exists: pass overwrite=True to replace it (only a partlearn run folder is replaced), or choose another path",
            path.display()
        )),
        partlearn::Error::InvalidOption { value, reason, .. } => PyValueError::new_err(format!(
            "invalid path = {value}: {}",
            reason.replace("`force`", "`overwrite=True`").replace("`out`", "`path`")
        )),
        e => error(e),
    }
}
