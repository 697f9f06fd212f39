//! The run record, `run.json`: one layout for every method. A common header — the layout's
//! format version, the partlearn version, the method, the data, seed, threads, when the fit ended
//! and how long it took, why it stopped, the iterations, the final objective and relative error,
//! the warnings (their messages) and the history file beside it — and the method's own part
//! ([`MethodPart`]: its options and the results only it has).
//!
//! Writers build a [`RunRecord`] and [`RunRecord::write`] it (with `history.jsonl`) into a
//! [`RunDir`]; readers (`eval`, `report`, the `force` check) call [`RunRecord::read`], which
//! refuses, in one line that says to re-run the fit, a `run.json` in the layout partlearn wrote
//! before format [`RUN_FORMAT`] (no `format` key) or in a newer one.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::{Dataset, LoadOptions};
use crate::engine::{StopReason, Warning};
use crate::error::{Error, Result};
use crate::io::run::{read_json, to_json_lines, RunDir, HISTORY_FILE, RUN_FILE};
use crate::nmf::FitStats;
use crate::real::Real;

/// The layout version of `run.json` this partlearn writes and reads. Format 1 (no `format`
/// key) was the four per-command layouts of partlearn before the common header.
pub const RUN_FORMAT: u32 = 2;

/// Keys that every `run.json` partlearn ever wrote carries, whatever the method or format: the
/// method fitted and the partlearn version that fitted it.
const RUN_KEYS: [&str; 2] = ["method", "partlearn_version"];

/// What `run.json` says about a fit: the common header, then [`MethodPart`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The layout version, [`RUN_FORMAT`].
    pub format: u32,
    /// The partlearn version that fitted the run.
    pub partlearn_version: String,
    /// The method fitted: `nmf`, `sparse-nmf`, `ssnmf`, `hnmf`, `deep-nmf`, `neural-nmf`, `ae`,
    /// `asym-ae`.
    pub method: String,
    /// The front end's invocation (the command line), when there was one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The data the model was fitted on.
    pub data: DataSpec,
    /// Seed of every random choice.
    pub seed: u64,
    /// Worker threads used (resolved: never 0).
    pub threads: usize,
    /// Unix time, in seconds, when the record was made (the end of the fit).
    pub finished_unix: u64,
    /// How the fit went: stop reason, iterations, seconds, final objective, warnings.
    #[serde(flatten)]
    pub fit: FitSummary,
    /// The per-iteration history written beside `run.json`.
    pub history: HistoryFile,
    /// The method's options and results.
    pub part: MethodPart,
}

/// The data a run was fitted on: its shape and type, and how it was loaded
/// ([`crate::data::load`]'s spec and [`LoadOptions`]) when it was loaded by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// The data set's name ([`Dataset::name`]).
    pub name: String,
    /// Samples (rows of `X`).
    pub n_samples: usize,
    /// Features (columns of `X`).
    pub n_features: usize,
    /// Float type of the computation: `f32` or `f64`.
    pub dtype: String,
    /// `(height, width)` of image samples.
    pub image_shape: Option<(usize, usize)>,
    /// The spec given to [`crate::data::load`] (a named set or a file); `None` for data built in
    /// memory.
    pub spec: Option<String>,
    /// [`LoadOptions::first`].
    pub first: Option<usize>,
    /// [`LoadOptions::subset`].
    pub subset: Option<usize>,
    /// [`LoadOptions::seed`] (of the subset).
    pub data_seed: u64,
}

impl DataSpec {
    /// The shape, type and name of `data` (built in memory: no spec).
    pub fn of<T: Real>(data: &Dataset<T>) -> Self {
        DataSpec {
            name: data.name.clone(),
            n_samples: data.n_samples(),
            n_features: data.n_features(),
            dtype: T::NAME.into(),
            image_shape: data.image_shape,
            spec: None,
            first: None,
            subset: None,
            data_seed: 0,
        }
    }

    /// The same data, as loaded by `crate::data::load(spec, opts)`.
    #[must_use]
    pub fn loaded(self, spec: &str, opts: &LoadOptions) -> Self {
        DataSpec {
            spec: Some(spec.into()),
            first: opts.first,
            subset: opts.subset,
            data_seed: opts.seed,
            ..self
        }
    }
}

/// How a fit ended, in the terms every method shares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitSummary {
    /// Why the fit stopped.
    pub stop_reason: StopReason,
    /// Iterations (epochs for mini-batch training) completed, those of earlier invocations of a
    /// resumed run included.
    pub n_iter: usize,
    /// Wall-clock seconds of the fit (of all its invocations, for a resumed run).
    pub seconds: f64,
    /// The final value of the objective the method minimizes (the auto-encoder's loss, Neural
    /// NMF's cost); `None` when not evaluated.
    pub objective: Option<f64>,
    /// The final `‖X − X̂‖_F / ‖X‖_F`; `None` for methods that do not compute it.
    pub rel_error: Option<f64>,
    /// The fit's warnings, as messages in the library's terms.
    pub warnings: Vec<String>,
}

impl FitSummary {
    /// A fit that ended for `stop_reason` after `n_iter` iterations and `seconds`, with
    /// `warnings`; no objective or error yet (see [`objective`](FitSummary::objective)).
    pub fn new(stop_reason: StopReason, n_iter: usize, seconds: f64, warnings: &[Warning]) -> Self {
        FitSummary {
            stop_reason,
            n_iter,
            seconds,
            objective: None,
            rel_error: None,
            warnings: warnings.iter().map(Warning::to_string).collect(),
        }
    }

    /// Sets the final objective (a non-finite value is recorded as `None`).
    #[must_use]
    pub fn objective(self, value: f64) -> Self {
        FitSummary {
            objective: value.is_finite().then_some(value),
            ..self
        }
    }

    /// Sets the final relative error (a non-finite value is recorded as `None`).
    #[must_use]
    pub fn rel_error(self, value: f64) -> Self {
        FitSummary {
            rel_error: value.is_finite().then_some(value),
            ..self
        }
    }
}

/// The history file of a run: its name inside the run folder and how many records it holds
/// (one JSON object per line: [`crate::engine::IterRecord`]s, or the auto-encoder's epochs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryFile {
    /// File name inside the run folder.
    pub file: String,
    /// Lines (records) it holds.
    pub records: usize,
}

/// The part of `run.json` that belongs to the method, tagged by `kind`.
///
/// A serde-tagged enum rather than free JSON: the results of each family are typed, so a reader
/// matches on the family and gets fields, not lookups. The options, however, are kept as the JSON
/// the method's params serialize to (`options: Value`, typed on demand with
/// [`MethodPart::options_as`]): the params types belong to their methods and may gain fields or
/// checked forms without changing this layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MethodPart {
    /// NMF (MU, HALS, ANLS) and sparse NMF.
    Nmf(NmfPart),
    /// The layer models with labels: SSNMF, hierarchical NMF, Deep NMF, Neural NMF.
    Layers(LayersPart),
    /// The shallow and the asymmetric auto-encoder.
    Autoencoder(AePart),
}

impl MethodPart {
    /// The options the method was fitted with, as JSON.
    pub fn options(&self) -> &Value {
        match self {
            MethodPart::Nmf(p) => &p.options,
            MethodPart::Layers(p) => &p.options,
            MethodPart::Autoencoder(p) => &p.options,
        }
    }

    /// The options as the type `O` they were serialized from; [`Error::InvalidOption`]
    /// (`options`) when they do not fit `O`.
    pub fn options_as<O: DeserializeOwned>(&self) -> Result<O> {
        serde_json::from_value(self.options().clone()).map_err(|e| {
            Error::invalid(
                "options",
                std::any::type_name::<O>(),
                format!("the run's options are not of this type ({e})"),
            )
        })
    }
}

impl MethodPart {
    /// The part of the record of a `method` fit made outside `partlearn fit` (e.g. by the Python
    /// package), whose model file holds `tensors` and `meta` (`file` names it in messages): the
    /// method's family with `options` as given, what the model itself tells (the ranks of a layer
    /// model, the architecture and parameter count of an auto-encoder) and `supervision`
    /// (`none`, `semi` or `full`) for layer models; results the fit did not report stay empty.
    /// Methods: `nmf`, `sparse-nmf`, `ssnmf`, `hnmf`, `deep-nmf`, `neural-nmf`, `ae`, `asym-ae`.
    pub fn of_model(
        method: &str,
        tensors: &[crate::io::Tensor],
        meta: &std::collections::BTreeMap<String, String>,
        file: &Path,
        options: Value,
        supervision: &str,
    ) -> Result<MethodPart> {
        let layers = |ranks: Vec<usize>| {
            MethodPart::Layers(LayersPart {
                options: options.clone(),
                ranks,
                supervision: supervision.to_string(),
                n_labeled: None,
                level_errors: Vec::new(),
                accuracy: None,
                accuracy_unlabeled: None,
                test_accuracy: None,
                resumed_from_epoch: None,
                redone_epochs: None,
            })
        };
        if !["none", "semi", "full"].contains(&supervision) {
            return Err(Error::invalid(
                "supervision",
                supervision,
                "use none, semi or full",
            ));
        }
        // The model file must hold a model of the method's kind.
        let kind_is = |expected: &str| -> Result<()> {
            let kind = meta
                .get(crate::nmf::model::KIND_KEY)
                .map_or("missing", String::as_str);
            if kind == expected {
                return Ok(());
            }
            Err(Error::format(
                file,
                format!(
                    "a {method} run needs a model of kind {expected}, not {kind}; save the model of a {method} fit"
                ),
            ))
        };
        Ok(match method {
            "nmf" | "sparse-nmf" => {
                kind_is("nmf")?;
                MethodPart::Nmf(NmfPart {
                    options,
                    reconstruction_err: None,
                    stats: FitStats::default(),
                    resumed_from_iter: None,
                    redone_iters: None,
                })
            }
            "ssnmf" => {
                kind_is("nmf")?;
                let (model, _) = crate::nmf::NmfModel::<f64>::from_file_parts(tensors, meta, file)?;
                layers(vec![model.k()])
            }
            "hnmf" | "deep-nmf" | "neural-nmf" => {
                kind_is(method)?;
                layers(crate::deep::DeepModel::<f64>::from_file_parts(tensors, meta, file)?.ranks())
            }
            "ae" | "asym-ae" => {
                kind_is(method)?;
                let model = crate::autoencoder::Autoencoder::<f64>::from_file_parts(tensors, meta, file)?;
                MethodPart::Autoencoder(AePart {
                    architecture: to_value(&model.spec)?,
                    n_params: model.n_params(),
                    options,
                    train_mse: None,
                    val_mse: None,
                    seconds_per_epoch: None,
                    resumed_from_epoch: None,
                    redone_epochs: None,
                })
            }
            other => {
                return Err(Error::invalid(
                    "method",
                    other,
                    "use nmf, sparse-nmf, ssnmf, hnmf, deep-nmf, neural-nmf, ae or asym-ae",
                ))
            }
        })
    }
}

/// [`MethodPart::Nmf`]: what an NMF or sparse NMF fit adds to the header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NmfPart {
    /// The params the fit ran with.
    pub options: Value,
    /// `‖X − codes·atoms‖_F` at the returned factors (scikit-learn's `reconstruction_err_`).
    pub reconstruction_err: Option<f64>,
    /// Work counters.
    pub stats: FitStats,
    /// A resumed fit: the iteration of the checkpoint it continued from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from_iter: Option<usize>,
    /// A resumed fit: iterations done after that checkpoint by the stopped process (redone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redone_iters: Option<usize>,
}

/// [`MethodPart::Layers`]: ranks, supervision and accuracies of a layer model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayersPart {
    /// The options the fit ran with.
    pub options: Value,
    /// Ranks of the layers (SSNMF: `[k]`).
    pub ranks: Vec<usize>,
    /// `none`, `semi` or `full`.
    pub supervision: String,
    /// Samples whose label the fit saw.
    pub n_labeled: Option<usize>,
    /// Relative error `‖X − A⁽⁰⁾⋯A⁽ⁱ⁾S⁽ⁱ⁾‖/‖X‖` at each level (empty when not computed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub level_errors: Vec<f64>,
    /// SSNMF: in-sample `argmax(BS)` accuracy on all samples. Layer stacks: the post-hoc
    /// least-squares classifier of METHODS.md §5.1, fitted on all labels.
    pub accuracy: Option<f64>,
    /// The same on the samples whose label the fit did not see.
    pub accuracy_unlabeled: Option<f64>,
    /// Layer stacks with held-out test data: the post-hoc classifier of the training codes on it.
    pub test_accuracy: Option<f64>,
    /// Neural NMF resumed from a checkpoint: the epoch (of its restart) it continued from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from_epoch: Option<usize>,
    /// Neural NMF resumed: epochs done after that checkpoint by the stopped process (redone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redone_epochs: Option<usize>,
}

/// [`MethodPart::Autoencoder`]: architecture, training options and losses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AePart {
    /// The architecture (`AeSpec`).
    pub architecture: Value,
    /// Trainable parameters.
    pub n_params: usize,
    /// The training options.
    pub options: Value,
    /// The last epoch's reconstruction MSE on the training samples.
    pub train_mse: Option<f64>,
    /// The last epoch's validation MSE (with a validation fraction).
    pub val_mse: Option<f64>,
    /// Seconds per epoch, over all invocations.
    pub seconds_per_epoch: Option<f64>,
    /// The epoch a resumed run continued from.
    pub resumed_from_epoch: Option<usize>,
    /// Epochs that a killed process had completed after the checkpoint a resumed run continued
    /// from (known from the `history.jsonl` it left), so done again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redone_epochs: Option<usize>,
}

/// `value` as JSON (for the `options` of a [`MethodPart`]).
pub fn to_value<S: Serialize + ?Sized>(value: &S) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| {
        Error::invalid(
            "options",
            std::any::type_name::<S>(),
            format!("cannot be written as JSON ({e})"),
        )
    })
}

impl RunRecord {
    /// The record of a `method` fit on `data` that ended as `fit` says, made now by this
    /// partlearn; seed 0, one thread, no command and no history until set.
    pub fn new(method: impl Into<String>, data: DataSpec, fit: FitSummary, part: MethodPart) -> Self {
        RunRecord {
            format: RUN_FORMAT,
            partlearn_version: env!("CARGO_PKG_VERSION").into(),
            method: method.into(),
            command: Vec::new(),
            data,
            seed: 0,
            threads: 1,
            finished_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            fit,
            history: HistoryFile::default(),
            part,
        }
    }

    /// Sets the seed.
    #[must_use]
    pub fn seed(self, seed: u64) -> Self {
        RunRecord { seed, ..self }
    }

    /// Sets the worker threads (0 = all cores is resolved to the count).
    #[must_use]
    pub fn threads(self, threads: usize) -> Self {
        RunRecord {
            threads: crate::linalg::resolve_threads(threads),
            ..self
        }
    }

    /// Sets the front end's invocation.
    #[must_use]
    pub fn command(self, command: Vec<String>) -> Self {
        RunRecord { command, ..self }
    }

    /// Writes `history` (one JSON line per record) to `history.jsonl` and this record, pointing
    /// at it, to `run.json` in `run`.
    pub fn write<H: Serialize>(&mut self, run: &RunDir, history: &[H]) -> Result<()> {
        run.write(HISTORY_FILE, &to_json_lines(history)?)?;
        self.history = HistoryFile {
            file: HISTORY_FILE.into(),
            records: history.len(),
        };
        run.write_json(RUN_FILE, self)
    }

    /// Reads `dir/run.json`. A file partlearn did not write, one in the layout before format
    /// [`RUN_FORMAT`] or a newer one, or one that does not parse as this layout is
    /// [`Error::BadFormat`] naming the file and saying what to do (point at a run, re-run the fit
    /// or update partlearn).
    pub fn read(dir: &Path) -> Result<RunRecord> {
        let path = dir.join(RUN_FILE);
        let value = read_partlearn_value(dir)?;
        let version = value["partlearn_version"].as_str().unwrap_or("?").to_string();
        match value.get("format").map(|f| f.as_u64()) {
            None => {
                return Err(Error::format(
                    &path,
                    format!(
                        "written by partlearn {version} in the run.json layout before format \
                         {RUN_FORMAT}, which this partlearn does not read: re-run the fit to \
                         rewrite the run"
                    ),
                ))
            }
            Some(Some(f)) if f > u64::from(RUN_FORMAT) => {
                return Err(Error::format(
                    &path,
                    format!(
                        "written by partlearn {version} in run.json format {f}, newer than this \
                         partlearn reads ({RUN_FORMAT}): update partlearn or re-run the fit"
                    ),
                ))
            }
            _ => {}
        }
        serde_json::from_value(value).map_err(|e| {
            Error::format(
                &path,
                format!("not a valid run record ({e}): re-run the fit to rewrite the run"),
            )
        })
    }
}

/// Reads `dir/run.json` as JSON and checks that partlearn wrote it, in any format: an object
/// with a string under each of the keys every run carries (`method`, `partlearn_version`).
/// Anything else — an array, `{}`, another program's `run.json` — is [`Error::BadFormat`]
/// naming the file.
pub(crate) fn read_partlearn_value(dir: &Path) -> Result<Value> {
    let path = dir.join(RUN_FILE);
    let value: Value = read_json(&path)?;
    let found = match &value {
        Value::Object(o) => match RUN_KEYS
            .iter()
            .find(|k| !o.get(**k).is_some_and(Value::is_string))
        {
            None => return Ok(value),
            Some(k) => format!("an object without a \"{k}\" string"),
        },
        Value::Array(_) => "an array".into(),
        Value::String(_) => "a string".into(),
        Value::Number(_) => "a number".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Null => "null".into(),
    };
    Err(Error::format(
        &path,
        format!(
            "not a partlearn run ({found}, not the record partlearn saves with a fit): point at the \
             folder of a partlearn run, or refit it"
        ),
    ))
}

/// A record as a fit writes it (for tests).
#[cfg(test)]
pub(crate) fn sample() -> RunRecord {
    let data = Dataset::<f32>::from_columns(faer::Mat::zeros(4, 3), "swimmer");
    let fit = FitSummary::new(StopReason::Converged, 12, 1.5, &[])
        .objective(0.25)
        .rel_error(f64::NAN);
    let part = MethodPart::Nmf(NmfPart {
        options: serde_json::json!({"k": 3}),
        reconstruction_err: Some(0.7),
        stats: FitStats::default(),
        resumed_from_iter: None,
        redone_iters: None,
    });
    RunRecord::new("nmf", DataSpec::of(&data), fit, part).seed(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::run::to_json_pretty;
    use crate::io::test_dir;
    use std::fs;

    #[test]
    fn record_round_trips_with_its_history() {
        let dir = test_dir("record-roundtrip");
        let target = dir.path().join("run");
        let run = RunDir::create(&target, false).unwrap();
        let mut record = sample();
        record.write(&run, &[1, 2, 3]).unwrap();
        run.commit().unwrap();
        let back = RunRecord::read(&target).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.history.records, 3);
        assert_eq!(
            fs::read_to_string(target.join(HISTORY_FILE)).unwrap(),
            "1\n2\n3\n"
        );
        // The header is flat JSON; a NaN error is recorded as null, not lost as invalid JSON.
        let v: Value = read_json(&target.join(RUN_FILE)).unwrap();
        assert_eq!(v["format"], RUN_FORMAT);
        assert_eq!(v["n_iter"], 12);
        assert_eq!(v["rel_error"], Value::Null);
        assert_eq!(v["data"]["dtype"], "f32");
        assert_eq!(v["part"]["kind"], "nmf");
        assert_eq!(v["part"]["options"]["k"], 3);
        assert_eq!(
            back.part.options_as::<serde_json::Map<String, Value>>().unwrap()["k"],
            3
        );
        assert!(back.part.options_as::<Vec<u32>>().is_err());
    }

    #[test]
    fn records_of_the_old_layout_or_a_newer_one_are_refused_with_advice() {
        let dir = test_dir("record-old");
        // A run.json of the layout before the common header (fit nmf's).
        let old = serde_json::json!({
            "method": "nmf", "partlearn_version": "0.1.0", "command": ["partlearn"],
            "options": {"k": 3}, "n_iter": 12, "stop_reason": "converged"
        });
        fs::write(dir.path().join(RUN_FILE), to_json_pretty(&old).unwrap()).unwrap();
        let e = RunRecord::read(dir.path()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::BadFormat { .. }), "{e:?}");
        assert!(
            msg.contains(RUN_FILE)
                && msg.contains("0.1.0")
                && msg.contains("re-run the fit")
                && !msg.contains('\n'),
            "{msg}"
        );
        let mut newer = serde_json::to_value(sample()).unwrap();
        newer["format"] = (RUN_FORMAT + 1).into();
        fs::write(dir.path().join(RUN_FILE), to_json_pretty(&newer).unwrap()).unwrap();
        let msg = RunRecord::read(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("newer") && msg.contains("update partlearn"), "{msg}");
        // The current format with a broken part.
        let mut broken = serde_json::to_value(sample()).unwrap();
        broken["part"]["kind"] = "nmf-but-not".into();
        fs::write(dir.path().join(RUN_FILE), to_json_pretty(&broken).unwrap()).unwrap();
        let msg = RunRecord::read(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("not a valid run record") && msg.contains("re-run the fit"),
            "{msg}"
        );
    }

    #[test]
    fn parts_of_models_fitted_elsewhere_take_what_the_model_tells() {
        use crate::deep::neural::model::NeuralNmf;
        use crate::deep::DeepModel;
        use crate::nmf::{EncodeOptions, EncodeSpec, NmfModel, Penalty};
        use faer::Mat;
        let path = Path::new("model");
        let spec = EncodeSpec {
            beta_loss: 2.0,
            codes_penalty: Penalty::default(),
            encode: EncodeOptions::default(),
        };
        let nmf = NmfModel::new(Mat::<f64>::ones(3, 4), spec).unwrap();
        let (t, meta) = nmf.to_tensors(None, None).unwrap();
        let options = serde_json::json!({"k": 3});
        let part = MethodPart::of_model("sparse-nmf", &t, &meta, path, options.clone(), "none").unwrap();
        assert!(
            matches!(&part, MethodPart::Nmf(p) if p.options == options && p.reconstruction_err.is_none())
        );
        match MethodPart::of_model("ssnmf", &t, &meta, path, options.clone(), "semi").unwrap() {
            MethodPart::Layers(p) => assert_eq!((p.ranks, p.supervision.as_str()), (vec![3], "semi")),
            other => panic!("{other:?}"),
        }
        let net = NeuralNmf {
            a: vec![Mat::<f64>::ones(4, 3), Mat::<f64>::ones(3, 2)],
            b: None,
        };
        let (t, meta) = DeepModel::new("deep-nmf", net).unwrap().to_tensors(None).unwrap();
        match MethodPart::of_model("deep-nmf", &t, &meta, path, options.clone(), "none").unwrap() {
            MethodPart::Layers(p) => assert_eq!(p.ranks, vec![3, 2]),
            other => panic!("{other:?}"),
        }
        // The model must be of the method's kind; methods and supervision are checked.
        let e = MethodPart::of_model("hnmf", &t, &meta, path, options.clone(), "none").unwrap_err();
        assert!(e.to_string().contains("model of kind hnmf, not deep-nmf"), "{e}");
        let e = MethodPart::of_model("pca", &t, &meta, path, options.clone(), "none").unwrap_err();
        assert!(e.to_string().contains("invalid method = pca"), "{e}");
        let e = MethodPart::of_model("hnmf", &t, &meta, path, options, "some").unwrap_err();
        assert!(e.to_string().contains("supervision"), "{e}");
    }

    #[test]
    fn run_record_must_carry_partlearns_keys() {
        let dir = test_dir("run-record");
        let record = serde_json::to_value(sample()).unwrap();
        fs::write(dir.path().join(RUN_FILE), to_json_pretty(&record).unwrap()).unwrap();
        assert_eq!(read_partlearn_value(dir.path()).unwrap(), record);
        for (json, found) in [
            ("[1,2,3]", "an array"),
            ("{}", "without a \"method\" string"),
            (r#"{"a":1}"#, "without a \"method\" string"),
            (r#"{"method":"nmf"}"#, "without a \"partlearn_version\" string"),
            ("3", "a number"),
        ] {
            fs::write(dir.path().join(RUN_FILE), json).unwrap();
            for e in [
                read_partlearn_value(dir.path()).unwrap_err(),
                RunRecord::read(dir.path()).unwrap_err(),
            ] {
                let msg = e.to_string();
                assert!(matches!(e, Error::BadFormat { .. }), "{json}: {e:?}");
                assert!(
                    msg.contains(RUN_FILE)
                        && msg.contains("not a partlearn run")
                        && msg.contains(found)
                        && msg.contains("refit"),
                    "{json}: {msg}"
                );
            }
        }
    }
}
