//! `partlearn fit ssnmf | hnmf | deep-nmf`: flags → the library's SSNMF, hierarchical NMF and
//! Deep NMF, and their run folders (model, run.json, history.jsonl, predicted labels).

use anyhow::{Context, Result};
use clap::Args;
use faer::Mat;
use partlearn::data::labels::{self, Labels};
use partlearn::deep::hnmf::LayerFit;
use partlearn::deep::pipeline::{fit_layers, LayerMethod, LayersParams};
use partlearn::deep::DeepModel;
use partlearn::engine::StopReason;
use partlearn::engine::Warning;
use partlearn::io::record::{self, LayersPart};
use partlearn::io::{self, DataSpec, FitSummary, MethodPart, RunDir, RunRecord};
use partlearn::nmf::ssnmf::{fit_ssnmf, Divergence, SsnmfParams};
use partlearn::nmf::Solver;
use partlearn::npy::{npy_bytes, NpyDataRef};
use partlearn::Real;

use crate::args::{accuracies, DataArgs, Dtype, Exit, Flags, RunArgs, SupervisionArgs, TestArgs};
use crate::output::{default_out, read_matrix, write_figures};
use crate::progress::{print_warnings, FitProgress};

#[derive(Args, Debug, Clone)]
pub struct SsnmfArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    pub k: usize,
    /// Labeled samples: a fraction in (0, 1) or a count (seeded by --seed; on toy-hierarchy 40 is the reference L40 mask).
    #[arg(long, default_value_t = 0.5, conflicts_with = "label_mask")]
    pub labeled: f64,
    /// Which samples are labeled: a .npy of n values (non-zero = labeled).
    #[arg(long, value_name = "FILE")]
    pub label_mask: Option<std::path::PathBuf>,
    /// Which labels: a label set of the data (toy-hierarchy: labels9, labels4, labels2; default: the data's labels).
    #[arg(long)]
    pub label_set: Option<String>,
    /// Missing data: a .npy of the data's shape (n × m), non-zero = observed.
    #[arg(long, value_name = "FILE")]
    pub data_mask: Option<std::path::PathBuf>,
    /// Weight λ of the label term.
    #[arg(long, default_value_t = 1.0)]
    pub lambda: f64,
    /// Data term: frobenius or kl (I-divergence).
    #[arg(long, default_value = "frobenius")]
    pub data_loss: Divergence,
    /// Label term: frobenius or kl.
    #[arg(long, default_value = "frobenius")]
    pub label_loss: Divergence,
    #[arg(long, default_value_t = 1000)]
    pub max_iter: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    /// Time budget in seconds (the fit stops after the iteration that exceeds it).
    #[arg(long, value_name = "SECONDS")]
    pub max_seconds: Option<f64>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug, Clone)]
pub struct HnmfArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Ranks of the layers, decreasing.
    #[arg(long, value_delimiter = ',', default_value = "9,4,2")]
    pub ranks: Vec<usize>,
    /// NMF solver of every layer: hals, mu or anls.
    #[arg(long, default_value = "hals")]
    pub solver: Solver,
    #[command(flatten)]
    pub sup: SupervisionArgs,
    /// Weight λ of the label term (with --supervision semi or full; default 1e-5).
    #[arg(long)]
    pub lambda: Option<f64>,
    /// Iterations of each layer (and of SSNMF / the fine-tuning).
    #[arg(long, default_value_t = 2000)]
    pub max_iter: usize,
    #[arg(long, default_value_t = 1e-6)]
    pub tol: f64,
    /// Time budget in seconds of the whole fit, layer-wise fits included (each stops after the iteration that exceeds it; a stage cut short ends the fit).
    #[arg(long, value_name = "SECONDS")]
    pub max_seconds: Option<f64>,
    #[command(flatten)]
    pub test: TestArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

fn write_predictions(run_dir: &RunDir, pred: &[u32]) -> Result<()> {
    let v: Vec<f64> = pred.iter().map(|&p| p as f64).collect();
    run_dir.write(
        partlearn::io::run::LABELS_PRED_FILE,
        &npy_bytes(&[v.len()], NpyDataRef::F64(&v)),
    )?;
    Ok(())
}

fn summary(
    json: bool,
    quiet: bool,
    method: &str,
    path: &std::path::Path,
    rel: f64,
    acc: Option<f64>,
    secs: f64,
) -> Result<()> {
    if json {
        let s = serde_json::json!({"run": path, "method": method, "rel_error": rel, "accuracy": acc, "seconds": secs});
        outln!("{}", serde_json::to_string_pretty(&s)?);
    } else if !quiet {
        outln!(
            "{method}: rel. error {rel:.5}{}, {secs:.2} s",
            acc.map_or(String::new(), |a| format!(", accuracy {a:.3}"))
        );
        outln!("wrote {}", path.display());
    }
    Ok(())
}

/// The run record of a layer model, written with its history into `run_dir`.
fn write_record<H: serde::Serialize>(
    run_dir: &RunDir,
    method: &str,
    data: DataSpec,
    run: &RunArgs,
    summary: FitSummary,
    part: LayersPart,
    history: &[H],
) -> Result<()> {
    RunRecord::new(method, data, summary, MethodPart::Layers(part))
        .seed(run.seed)
        .threads(run.threads)
        .command(std::env::args().collect())
        .write(run_dir, history)?;
    Ok(())
}

pub fn run_ssnmf(a: &SsnmfArgs) -> Result<()> {
    match a.run.dtype {
        Dtype::F32 => ssnmf::<f32>(a),
        Dtype::F64 => ssnmf::<f64>(a),
    }
}

fn ssnmf<T: Real>(a: &SsnmfArgs) -> Result<()> {
    let data = a.data.load::<T>()?;
    let n = data.n_samples();
    // The parameters, checked against the data before any work.
    let params = SsnmfParams::new(a.k)
        .lambda(a.lambda)
        .data_loss(a.data_loss)
        .label_loss(a.label_loss)
        .max_iter(a.max_iter)
        .tol(a.tol)
        .max_seconds(a.max_seconds)
        .seed(a.run.seed)
        .threads(a.run.threads)
        .validate(n, data.n_features())?;
    let opts = params.params();
    // The labels: the data's (or --label-set's), known on --label-mask or on --labeled samples.
    let classes = labels::label_set(&data, a.label_set.as_deref(), usize::MAX)?;
    let known = match &a.label_mask {
        Some(path) => {
            let m = partlearn::npy::read_npy(path).with_context(|| "reading --label-mask")?;
            let values = m.to_real::<f64>();
            if let Some((i, v)) = values.iter().enumerate().find(|(_, &v)| v != 0.0 && v != 1.0) {
                anyhow::bail!(
                    "--label-mask entry {i} is {v}: give 1 (label known) or 0 (unknown) per sample"
                );
            }
            if values.len() != n {
                anyhow::bail!(
                    "--label-mask has {} entries, the data has {n} samples: give one entry per sample",
                    values.len()
                );
            }
            values.iter().map(|&v| v == 1.0).collect()
        }
        None => labels::semi_supervised_mask(&classes, a.labeled, &data.name, a.run.seed)?,
    };
    let labels = Labels::new(classes, known)?;
    labels.check(n)?;
    let mask = a
        .data_mask
        .as_deref()
        .map(|p| read_matrix::<T>(p).with_context(|| "reading --data-mask"))
        .transpose()?;
    if let Some(m) = &mask {
        if let Some((i, j)) = (0..m.nrows())
            .flat_map(|i| (0..m.ncols()).map(move |j| (i, j)))
            .find(|&(i, j)| !m[(i, j)].to_f64().is_finite())
        {
            anyhow::bail!(
                "--data-mask has a non-finite entry at sample {i}, feature {j}: give 0 (missing) or non-zero (observed)"
            );
        }
    }
    // The library's 0/1 mask, samples as rows as the file.
    let mask = mask.map(|m| {
        Mat::<T>::from_fn(m.nrows(), m.ncols(), |i, j| {
            if m[(i, j)] != T::zero() {
                T::one()
            } else {
                T::zero()
            }
        })
    });
    let out = a
        .run
        .out
        .clone()
        .unwrap_or_else(|| default_out("ssnmf", &a.data.spec, a.k));
    let run_dir = a.data.run_dir(
        &out,
        a.run.force,
        &[
            ("--label-mask", a.label_mask.as_deref()),
            ("--data-mask", a.data_mask.as_deref()),
        ],
    )?;
    let mut progress = FitProgress::new(opts.max_iter, a.run.quiet);
    let fit = fit_ssnmf(
        data.x(),
        mask.as_ref().map(|m| m.as_ref()),
        &labels,
        &params,
        &mut progress,
    );
    progress.finish();
    // Every parameter SSNMF checks when fitting (the mask, the labels) is a flag of this command.
    let fit = fit?;
    let pred = fit.predict_in_sample();
    let acc_on = |sel: &dyn Fn(usize) -> bool| {
        let idx: Vec<usize> = (0..n).filter(|&j| sel(j)).collect();
        (!idx.is_empty()).then(|| {
            idx.iter().filter(|&&j| pred[j] == labels.classes()[j]).count() as f64 / idx.len() as f64
        })
    };
    let accuracy = acc_on(&|_| true);
    let accuracy_unlabeled = acc_on(&|j| !labels.known()[j]);
    // The dictionary as an NMF model (transform/eval encode with it), plus the classifier.
    let model = fit.model()?;
    let codes = fit.codes().to_owned();
    let (tensors, meta) = fit.to_tensors(true, data.image_shape)?;
    run_dir.write(
        io::run::MODEL_FILE,
        &io::tensors::safetensors_bytes(&tensors, &meta)?,
    )?;
    write_predictions(&run_dir, &pred)?;
    let last = fit.history.last().copied();
    let rel = last.map_or(f64::NAN, |r| r.rel_error);
    let secs = last.map_or(0.0, |r| r.seconds);
    let n_iter = fit.history.len().saturating_sub(1);
    let mut ended = FitSummary::new(fit.stop_reason, n_iter, secs, &fit.warnings).rel_error(rel);
    if let Some(r) = last {
        ended = ended.objective(r.objective);
    }
    let part = LayersPart {
        options: record::to_value(&opts)?,
        ranks: vec![a.k],
        supervision: "semi".into(),
        n_labeled: Some(labels.n_known()),
        level_errors: vec![rel],
        accuracy,
        accuracy_unlabeled,
        test_accuracy: None,
        resumed_from_epoch: None,
        redone_epochs: None,
    };
    let spec = a.data.record(&data);
    write_record(&run_dir, "ssnmf", spec, &a.run, ended, part, &fit.history)?;
    if let Some(shape) = data.image_shape {
        write_figures(&run_dir, &model, codes.as_ref(), &data, shape)?;
    }
    let path = run_dir.commit()?;
    print_warnings(&fit.warnings, &Flags::iterations());
    summary(
        a.run.json,
        a.run.quiet,
        "ssnmf",
        &path,
        rel,
        accuracy_unlabeled,
        secs,
    )?;
    if fit.stop_reason == StopReason::Interrupted {
        return Err(Exit::Interrupted.into());
    }
    Ok(())
}

/// Prints the warnings of a layer pipeline (`all`, layers first), each followed by its stage:
/// layer `i` (of rank `ranks[i]`), then SSNMF of the last layer or the fine-tuning.
fn print_stage_warnings(method: LayerMethod, ranks: &[usize], layers: &[LayerFit], all: &[Warning]) {
    let flags = Flags::iterations();
    let last = match method {
        LayerMethod::DeepNmf => "fine-tuning".to_string(),
        _ => "SSNMF of the last layer".to_string(),
    };
    let stages = layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                format!("layer {}, rank {}", i + 1, ranks.get(i).copied().unwrap_or(0)),
                l.warnings.len(),
            )
        })
        .chain(std::iter::once((last, usize::MAX)));
    let mut rest = all;
    for (stage, n) in stages {
        let (mine, after) = rest.split_at(n.min(rest.len()));
        for w in mine {
            errln!("warning: {} ({stage})", w.describe(|p| flags.param(p)));
        }
        rest = after;
    }
}

/// `hnmf` or `deep-nmf`.
pub fn run_layers(method: LayerMethod, a: &HnmfArgs) -> Result<()> {
    match a.run.dtype {
        Dtype::F32 => layers::<f32>(method, a),
        Dtype::F64 => layers::<f64>(method, a),
    }
}

fn layers<T: Real>(method: LayerMethod, a: &HnmfArgs) -> Result<()> {
    let name = method.name();
    let data = a.data.load::<T>()?;
    let x = data.x();
    let (m, n) = (data.n_features(), data.n_samples());
    // Checked before the layer-wise fits, which the fine-tuning or SSNMF would otherwise
    // follow with an error.
    let params = LayersParams::new(a.ranks.clone())
        .solver(a.solver)
        .max_iter(a.max_iter)
        .tol(a.tol)
        .max_seconds(a.max_seconds)
        .lambda(
            a.sup
                .label_flag(a.lambda, "lambda", LayersParams::default().lambda)?,
        )
        .seed(a.run.seed)
        .threads(a.run.threads)
        .validate(n, m)?;
    let last = *a.ranks.last().unwrap_or(&1);
    let labels = a.sup.labels(&data, last, a.run.seed)?;
    if let Some(l) = &labels {
        l.check(n)?;
    }
    let test = a.test.load(&data, a.sup.label_set.as_deref(), last)?;
    let out = a
        .run
        .out
        .clone()
        .unwrap_or_else(|| default_out(name, &a.data.spec, a.ranks[0]));
    let run_dir = a.data.run_dir(&out, a.run.force, &a.test.inputs())?;
    let mut progress = FitProgress::new(a.max_iter, a.run.quiet);
    let fit = fit_layers(x, method, &params, labels.as_ref(), &mut progress);
    progress.finish();
    let fit = fit?;
    let stack = fit.stack;
    let level_errors = stack.level_errors(x);
    let rel = stack.rel_error(x);
    let top = stack.top_codes().to_owned();
    let net = stack.into_net();
    let reference = a.sup.reference(&data, labels.as_ref(), last);
    let acc = accuracies(
        top.as_ref(),
        reference.as_ref(),
        test.as_ref(),
        &net,
        a.run.threads,
    )?;
    let (accuracy, accuracy_unlabeled, test_accuracy) = (acc.all, acc.unlabeled, acc.test);
    let model = DeepModel::new(name, net)?;
    let (tensors, meta) = model.to_tensors(data.image_shape)?;
    run_dir.write(
        io::run::MODEL_FILE,
        &io::tensors::safetensors_bytes(&tensors, &meta)?,
    )?;
    let mut ended = FitSummary::new(fit.stop_reason, fit.n_iter, fit.seconds, &fit.warnings).rel_error(rel);
    if let Some(r) = fit.history.last() {
        ended = ended.objective(r.objective);
    }
    let part = LayersPart {
        options: record::to_value(params.params())?,
        ranks: a.ranks.clone(),
        supervision: a.sup.name().into(),
        n_labeled: labels.as_ref().map(|l| l.n_known()),
        level_errors,
        accuracy,
        accuracy_unlabeled,
        test_accuracy,
        resumed_from_epoch: None,
        redone_epochs: None,
    };
    let spec = a.data.record(&data);
    write_record(&run_dir, name, spec, &a.run, ended, part, &fit.history)?;
    if let Some(shape) = data.image_shape {
        let sample = data.first(n.min(2000));
        let codes = partlearn::protocol::PartModel::encode(&model, sample.x(), a.run.threads)?;
        write_figures(&run_dir, &model, codes.as_ref(), &sample, shape)?;
    }
    let path = run_dir.commit()?;
    print_stage_warnings(method, &a.ranks, &fit.layers, &fit.warnings);
    summary(
        a.run.json,
        a.run.quiet,
        name,
        &path,
        rel,
        test_accuracy.or(accuracy),
        fit.seconds,
    )?;
    if fit.stop_reason == StopReason::Interrupted {
        return Err(Exit::Interrupted.into());
    }
    Ok(())
}
