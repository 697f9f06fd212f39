//! `partlearn fit neural-nmf`: flags → `deep::neural::NeuralOptions`, the run folder, and the
//! post-hoc accuracy of METHODS.md §5.1.

use anyhow::{Context, Result};
use clap::Args;
use partlearn::data::Dataset;
use partlearn::deep::neural::{self, ClassLoss, Cost, NeuralOptions, Supervision};
use partlearn::deep::DeepModel;
use partlearn::engine::StopReason;
use partlearn::io::{self, RunDir};
use partlearn::Real;
use serde::Serialize;

use crate::fit::{default_out, DataRecord, RunArgs};
use crate::progress::FitProgress;
use crate::{DataArgs, Dtype, Exit};

#[derive(Args, Debug, Clone)]
pub struct NeuralArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Ranks of the layers, decreasing (e.g. 9,4,2).
    #[arg(long, value_delimiter = ',', default_value = "9,4,2")]
    pub ranks: Vec<usize>,
    /// none, semi (only --labeled samples have labels) or full.
    #[arg(long, default_value = "none")]
    pub supervision: String,
    /// With --supervision semi: number of labeled samples (or a fraction if < 1; default 40). On toy-hierarchy, 40 is the reference L40 mask.
    #[arg(long)]
    pub labeled: Option<f64>,
    /// Which labels the classifier predicts: a label set of the data (toy-hierarchy: labels9, labels4, labels2); default: the set whose class count equals the last rank, else the data's labels.
    #[arg(long)]
    pub label_set: Option<String>,
    /// Unsupervised cost: recon (reconstruction) or energy.
    #[arg(long, default_value = "recon")]
    pub cost: String,
    /// Classification loss: l2 or ce (cross-entropy) (with --supervision semi or full; default l2).
    #[arg(long)]
    pub class_loss: Option<String>,
    /// Weight λ of the classification term (with --supervision semi or full; default 1e-4).
    #[arg(long)]
    pub lambda: Option<f64>,
    #[arg(long, default_value_t = 10_000)]
    pub epochs: usize,
    /// Learning rate of the projected gradient on the layers.
    #[arg(long, default_value_t = 1.0)]
    pub lr: f64,
    /// Learning rate of the classifier's steps (with --supervision semi or full; default 0.01).
    #[arg(long)]
    pub lr_class: Option<f64>,
    /// Classifier steps per epoch (with --supervision semi or full; default 30).
    #[arg(long)]
    pub class_steps: Option<usize>,
    /// Multiply the learning rates by this every --decay-every epochs.
    #[arg(long, default_value_t = 1.0)]
    pub decay: f64,
    #[arg(long, default_value_t = 1)]
    pub decay_every: usize,
    /// gd (projected gradient descent) or adam (then the projection).
    #[arg(long, default_value = "gd")]
    pub optimizer: String,
    /// Independent random starts; the lowest final cost is kept.
    #[arg(long, default_value_t = 1)]
    pub restarts: usize,
    /// Starting layers: random (U[0,1), the reference) or hnmf (a hierarchical NMF by HALS, 200 iterations per layer).
    #[arg(long, default_value = "random")]
    pub init: String,
    /// Time budget in seconds.
    #[arg(long)]
    pub max_seconds: Option<f64>,
    #[command(flatten)]
    pub test: TestArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Held-out data on which the post-hoc classifier of the training codes is scored.
#[derive(Args, Debug, Clone)]
pub struct TestArgs {
    /// Held-out labeled data (e.g. fashion-mnist:test): its codes (forward through the layers) are classified by the post-hoc classifier fitted on the training codes with the labels supervision saw (all labels when unsupervised).
    #[arg(long, value_name = "DATA")]
    pub test_data: Option<String>,
    /// Use only the first N held-out samples.
    #[arg(long, value_name = "N", requires = "test_data")]
    pub test_first: Option<usize>,
    /// Labels of --test-data (a .npy of one class per sample), for test data that carry none.
    #[arg(long, value_name = "FILE", requires = "test_data")]
    pub test_labels: Option<std::path::PathBuf>,
}

/// `--test-data` loaded and checked before any fitting: its samples and their labels.
pub struct TestSet<T: Real> {
    spec: String,
    data: Dataset<T>,
    labels: Vec<u32>,
}

impl TestArgs {
    /// Loads `--test-data` (`None` without it) and checks, before the fit spends any time, that
    /// it has the training data's width and labels, and that the training data have the labels
    /// the post-hoc classifier is fitted on.
    pub fn load<T: Real>(
        &self,
        train: &Dataset<T>,
        label_set: Option<&str>,
        last_rank: usize,
    ) -> Result<Option<TestSet<T>>> {
        let Some(spec) = &self.test_data else {
            return Ok(None);
        };
        let has_labels = |d: &Dataset<T>| d.labels.is_some() || !d.extra_labels.is_empty();
        if !has_labels(train) {
            anyhow::bail!(
                "--test-data is scored by a classifier of the training codes, which needs the training labels: give --labels FILE.npy with --data"
            );
        }
        let args = DataArgs {
            spec: spec.clone(),
            first: self.test_first,
            subset: None,
            data_seed: 0,
            labels: self.test_labels.clone(),
        };
        let data = args.load::<T>()?;
        if data.n_features() != train.n_features() {
            anyhow::bail!(
                "--test-data {spec} has {} features and the training data {}: give test data of the same width",
                data.n_features(),
                train.n_features()
            );
        }
        if !has_labels(&data) {
            anyhow::bail!(
                "--test-data {spec} has no labels: give --test-labels FILE.npy (one class per sample)"
            );
        }
        let labels = supervision(&data, "full", None, label_set, last_rank, 0)
            .with_context(|| format!("labels of --test-data {spec}"))?
            .map(|s| s.labels)
            .unwrap_or_default();
        Ok(Some(TestSet {
            spec: spec.clone(),
            data,
            labels,
        }))
    }
}

/// Accuracy on `--test-data` (module doc of [`TestArgs`]).
pub fn test_accuracy<T: Real>(
    test: Option<&TestSet<T>>,
    net: &partlearn::deep::neural::NeuralNmf<T>,
    top_train: faer::MatRef<'_, T>,
    train_labels: &[u32],
    fit_mask: &[bool],
    threads: usize,
) -> Result<Option<f64>> {
    let Some(t) = test else {
        return Ok(None);
    };
    let b = neural::posthoc_classifier(top_train, train_labels, fit_mask)?;
    let f = partlearn::linalg::with_threads(threads, || {
        net.forward(t.data.xt(), None, partlearn::linalg::par(threads))
    })?
    .with_context(|| format!("encoding --test-data {}", t.spec))?;
    let all = vec![true; t.data.n_samples()];
    Ok(Some(neural::classifier_accuracy(
        &b,
        f.s[f.s.len() - 1].as_ref(),
        &t.labels,
        &all,
    )))
}

/// Post-hoc accuracies of a layer stack's top codes `top` (METHODS.md §5.1).
pub struct Accuracies {
    /// Classifier fitted on every label, scored on every training sample.
    pub all: Option<f64>,
    /// Fitted on the labels supervision saw, scored on the others (semi-supervised runs).
    pub unlabeled: Option<f64>,
    /// Fitted as supervision allowed (all labels when unsupervised), scored on `--test-data`.
    pub test: Option<f64>,
}

/// The three accuracies against the labels supervision used, or the data's own labels (the
/// set matching the last rank) when unsupervised; `None` where the data have no labels.
#[allow(clippy::too_many_arguments)]
pub fn accuracies<T: Real>(
    data: &Dataset<T>,
    sup: Option<&Supervision>,
    net: &partlearn::deep::neural::NeuralNmf<T>,
    top: faer::MatRef<'_, T>,
    label_set: Option<&str>,
    last_rank: usize,
    test: Option<&TestSet<T>>,
    threads: usize,
) -> Result<Accuracies> {
    let labels = match sup {
        Some(s) => Some((s.labels.clone(), s.known.clone())),
        None => supervision(data, "full", None, label_set, last_rank, 0)
            .ok()
            .flatten()
            .map(|s| (s.labels, s.known)),
    };
    let Some((l, known)) = labels else {
        return Ok(Accuracies {
            all: None,
            unlabeled: None,
            test: None,
        });
    };
    let all = vec![true; data.n_samples()];
    let unlabeled = if known.iter().any(|k| !k) {
        let unknown: Vec<bool> = known.iter().map(|k| !k).collect();
        Some(neural::posthoc_accuracy(top, &l, &known, &unknown)?)
    } else {
        None
    };
    Ok(Accuracies {
        all: Some(neural::posthoc_accuracy(top, &l, &all, &all)?),
        unlabeled,
        test: test_accuracy(test, net, top, &l, &known, threads)?,
    })
}

/// An option of the label term only (`--lambda`, `--class-loss`, …): the value given, else
/// `default`. Without supervision there is no label term, so a given value is refused rather
/// than ignored.
pub fn label_option<V: std::fmt::Display>(
    value: Option<V>,
    flag: &str,
    supervision: &str,
    default: V,
) -> Result<V> {
    match value {
        Some(v) if supervision == "none" => anyhow::bail!(
            "--{flag} {v} belongs to the label term, which --supervision none does not have: add --supervision semi or full, or drop --{flag}"
        ),
        v => Ok(v.unwrap_or(default)),
    }
}

/// Labeled samples of `--supervision semi` when `--labeled` is not given.
const DEFAULT_LABELED: f64 = 40.0;

/// The labels a supervised Neural NMF predicts and which of them it may see. `labeled`
/// (`--labeled`) belongs to `semi` only: given with another mode it is an error, not ignored.
pub fn supervision<T: Real>(
    data: &Dataset<T>,
    mode: &str,
    labeled: Option<f64>,
    label_set: Option<&str>,
    last_rank: usize,
    seed: u64,
) -> Result<Option<Supervision>> {
    if let (Some(v), false) = (labeled, mode == "semi") {
        anyhow::bail!(
            "--labeled {v} applies only to --supervision semi (here: {mode}): add --supervision semi, or drop --labeled"
        );
    }
    if mode == "none" {
        return Ok(None);
    }
    let labels: Vec<u32> = match label_set {
        Some(name) => data
            .extra_labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| l.clone())
            .ok_or_else(|| {
                let known: Vec<&str> = data.extra_labels.iter().map(|(n, _)| n.as_str()).collect();
                anyhow::anyhow!("--label-set {name}: the data has no such label set (it has: {known:?})")
            })?,
        None => data
            .extra_labels
            .iter()
            .find(|(_, l)| l.iter().max().map(|&c| c as usize + 1) == Some(last_rank))
            .map(|(_, l)| l.clone())
            .or_else(|| data.labels.clone())
            .ok_or_else(|| {
                anyhow::anyhow!("supervision needs labels: give --labels FILE.npy with the data")
            })?,
    };
    let n = labels.len();
    let known = match mode {
        "full" => vec![true; n],
        "semi" => {
            let labeled = labeled.unwrap_or(DEFAULT_LABELED);
            let count = if labeled < 1.0 {
                (labeled * n as f64).round()
            } else {
                labeled
            } as usize;
            if !(labeled > 0.0) || count == 0 || count > n {
                anyhow::bail!("--labeled {labeled}: give a count in 1..={n} or a fraction in (0, 1)");
            }
            if data.name == "toy-hierarchy" && count == 40 {
                let mut m = vec![false; n];
                for &j in &partlearn::data::named::TOY_HIERARCHY_L40 {
                    m[j] = true;
                }
                m
            } else {
                partlearn::data::named::label_mask_by_count(&labels, count, &mut partlearn::Rng::new(seed))
            }
        }
        other => anyhow::bail!("invalid --supervision '{other}': use none, semi or full"),
    };
    Ok(Some(Supervision { labels, known }))
}

impl NeuralArgs {
    pub fn options(&self) -> Result<NeuralOptions> {
        let (d, sup) = (NeuralOptions::default(), self.supervision.as_str());
        Ok(NeuralOptions {
            ranks: self.ranks.clone(),
            cost: match self.cost.as_str() {
                "recon" | "reconstruction" => Cost::Reconstruction,
                "energy" => Cost::Energy,
                o => anyhow::bail!("invalid --cost '{o}': use recon or energy"),
            },
            epochs: self.epochs,
            lr: self.lr,
            decay: self.decay,
            decay_every: self.decay_every,
            adam: match self.optimizer.as_str() {
                "gd" => false,
                "adam" => true,
                o => anyhow::bail!("invalid --optimizer '{o}': use gd or adam"),
            },
            lambda: label_option(self.lambda, "lambda", sup, d.lambda)?,
            class_loss: match label_option(self.class_loss.as_deref(), "class-loss", sup, "l2")? {
                "l2" => ClassLoss::L2,
                "ce" | "cross-entropy" => ClassLoss::CrossEntropy,
                o => anyhow::bail!("invalid --class-loss '{o}': use l2 or ce"),
            },
            lr_class: label_option(self.lr_class, "lr-class", sup, d.lr_class)?,
            class_steps: label_option(self.class_steps, "class-steps", sup, d.class_steps)?,
            restarts: self.restarts,
            seed: self.run.seed,
            threads: self.run.threads,
            max_seconds: self.max_seconds,
        })
    }
}

#[derive(Serialize)]
struct NeuralRunRecord<'a> {
    method: &'static str,
    partlearn_version: &'static str,
    command: Vec<String>,
    dtype: &'static str,
    data: DataRecord,
    options: &'a NeuralOptions,
    supervision: &'a str,
    n_labeled: Option<usize>,
    epochs: usize,
    stop_reason: StopReason,
    cost: f64,
    rel_error: f64,
    /// Post-hoc least-squares classifier (§5.1) fitted on all labels, accuracy on all samples.
    accuracy: Option<f64>,
    /// Same classifier fitted on the labeled samples only, accuracy on the unlabeled ones.
    accuracy_unlabeled: Option<f64>,
    /// The classifier of the training codes scored on --test-data.
    test_accuracy: Option<f64>,
    seconds: f64,
}

pub fn run(a: &NeuralArgs) -> Result<()> {
    match a.run.dtype {
        Dtype::F32 => fit::<f32>(a),
        Dtype::F64 => fit::<f64>(a),
    }
}

fn fit<T: Real>(a: &NeuralArgs) -> Result<()> {
    let data = a.data.load::<T>()?;
    let opts = a.options()?;
    opts.validate(data.n_features(), data.n_samples(), None)?;
    let last = *opts.ranks.last().unwrap_or(&1);
    let sup = supervision(
        &data,
        &a.supervision,
        a.labeled,
        a.label_set.as_deref(),
        last,
        a.run.seed,
    )?;
    opts.validate(data.n_features(), data.n_samples(), sup.as_ref())?;
    let test = a.test.load(&data, a.label_set.as_deref(), last)?;
    let out = a
        .run
        .out
        .clone()
        .unwrap_or_else(|| default_out("neural-nmf", &a.data.spec, opts.ranks[0]));
    let run_dir = RunDir::create(&out, a.run.force)?;
    let mut progress = FitProgress::new(opts.epochs, a.run.quiet);
    let start = match a.init.as_str() {
        "random" => None,
        "hnmf" => {
            let base = partlearn::nmf::NmfParams {
                solver: partlearn::nmf::Solver::Hals,
                max_iter: 200,
                seed: a.run.seed,
                threads: a.run.threads,
                ..Default::default()
            };
            Some(partlearn::deep::hnmf::hierarchical(&data, &opts.ranks, &base)?.a)
        }
        o => anyhow::bail!("invalid --init '{o}': use random or hnmf"),
    };
    let fit = neural::train_from(data.xt(), start.as_deref(), &opts, sup.as_ref(), &mut progress);
    progress.finish();
    let fit = fit?;
    let x = data.xt();
    let top = fit.forward.s.last().map(|s| s.as_ref()).unwrap_or(x);
    let rel_error = fit.model.rel_error(x, &fit.forward);
    let acc = accuracies(
        &data,
        sup.as_ref(),
        &fit.model,
        top,
        a.label_set.as_deref(),
        last,
        test.as_ref(),
        a.run.threads,
    )?;
    let (accuracy, accuracy_unlabeled, test_accuracy) = (acc.all, acc.unlabeled, acc.test);
    let last_rec = fit.history.last().copied();
    let model = DeepModel::new("neural-nmf", fit.model)?;
    let (tensors, meta) = model.to_tensors(data.image_shape)?;
    run_dir.write(
        io::run::MODEL_FILE,
        &io::tensors::safetensors_bytes(&tensors, &meta)?,
    )?;
    run_dir.write(io::run::HISTORY_FILE, &io::to_json_lines(&fit.history)?)?;
    let record = NeuralRunRecord {
        method: "neural-nmf",
        partlearn_version: env!("CARGO_PKG_VERSION"),
        command: std::env::args().collect(),
        dtype: T::NAME,
        data: DataRecord::new(&a.data, &data),
        options: &opts,
        supervision: &a.supervision,
        n_labeled: sup.as_ref().map(|s| s.known.iter().filter(|k| **k).count()),
        epochs: fit.history.len().saturating_sub(1),
        stop_reason: fit.stop_reason,
        cost: last_rec.map_or(f64::NAN, |r| r.objective),
        rel_error,
        accuracy,
        accuracy_unlabeled,
        test_accuracy,
        seconds: fit.seconds,
    };
    run_dir.write_json(io::run::RUN_FILE, &record)?;
    if let Some(shape) = data.image_shape {
        let codes = partlearn::protocol::PartModel::encode(
            &model,
            data.first(data.n_samples().min(2000)).x(),
            a.run.threads,
        )?;
        crate::fit::write_figures(&run_dir, &model, codes.as_ref(), &data, shape)?;
    }
    let path = run_dir.commit()?;
    if a.run.json {
        let summary = serde_json::json!({
            "run": path, "method": "neural-nmf", "epochs": record.epochs, "stop_reason": fit.stop_reason,
            "cost": record.cost, "rel_error": rel_error, "accuracy": accuracy,
            "accuracy_unlabeled": accuracy_unlabeled, "test_accuracy": test_accuracy, "seconds": fit.seconds,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !a.run.quiet {
        println!(
            "neural-nmf ranks {:?} on {} ({} × {}): {} epochs ({}), rel. error {:.5}{}, {:.2} s",
            opts.ranks,
            data.name,
            data.n_samples(),
            data.n_features(),
            record.epochs,
            fit.stop_reason,
            rel_error,
            accuracy.map_or(String::new(), |v| format!(", post-hoc accuracy {v:.3}"))
                + &test_accuracy.map_or(String::new(), |v| format!(", test accuracy {v:.3}")),
            fit.seconds
        );
        println!("wrote {}", path.display());
    }
    if fit.stop_reason == StopReason::Interrupted {
        eprintln!("interrupted: the run so far was saved to {}", path.display());
        return Err(Exit::Interrupted.into());
    }
    Ok(())
}

/// `partlearn reproduce …`: the published tables, side by side with partlearn's numbers.
#[derive(clap::Subcommand, Debug)]
pub enum ReproduceCommand {
    /// The Neural NMF table (METHODS.md §5.2) on toy-hierarchy: hierarchical, Deep and Neural NMF, 1–3 layers, unsupervised / semi-supervised / supervised.
    NeuralNmfTable(TableArgs),
}

#[derive(Args, Debug)]
pub struct TableArgs {
    /// Seeds per cell (mean ± std).
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// Neural NMF epochs.
    #[arg(long, default_value_t = 10_000)]
    pub epochs: usize,
    /// Iterations of hierarchical NMF layers, SSNMF and Deep NMF fine-tuning.
    #[arg(long, default_value_t = 2000)]
    pub iterations: usize,
    /// Neural NMF random starts per run (the lowest cost is kept).
    #[arg(long, default_value_t = 1)]
    pub restarts: usize,
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Seed of the data's noise (toy-hierarchy).
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// Print the table as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress line.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn reproduce(cmd: ReproduceCommand) -> Result<()> {
    let ReproduceCommand::NeuralNmfTable(a) = cmd;
    if a.seeds == 0 || a.epochs == 0 || a.iterations == 0 || a.restarts == 0 {
        anyhow::bail!("--seeds, --epochs, --iterations and --restarts must be at least 1");
    }
    let data = partlearn::data::named::toy_hierarchy::<f64>(a.data_seed);
    let o = partlearn::deep::table::TableOptions {
        seeds: a.seeds,
        epochs: a.epochs,
        iterations: a.iterations,
        restarts: a.restarts,
        threads: a.threads,
    };
    let quiet = a.quiet || a.json;
    let t = partlearn::deep::table::neural_nmf_table(&data, &o, &mut |done, total| {
        if !quiet {
            eprint!("\r{done}/{total} runs");
        }
    })?;
    if !quiet {
        eprintln!();
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(());
    }
    let bounds: Vec<String> = t
        .svd_bounds
        .iter()
        .map(|(k, e)| format!("rank {k}: {e:.6}"))
        .collect();
    println!(
        "toy-hierarchy (90 × 87, noise seed {}); truncated-SVD bounds {}; {} seed(s), Neural NMF {} epochs, best of {} start(s)",
        a.data_seed,
        bounds.join(", "),
        a.seeds,
        a.epochs,
        a.restarts
    );
    println!("rel. error ± std / post-hoc accuracy ± std   [slides' Table 1]");
    let methods = ["hierarchical NMF", "Deep NMF", "Neural NMF"];
    println!(
        "{:<24} {:>2}  {:<38} {:<38} {:<38}",
        "", "L", methods[0], methods[1], methods[2]
    );
    let mut sups: Vec<&str> = t.cells.iter().map(|c| c.supervision).collect();
    sups.dedup();
    for sup in sups {
        for layers in 1..=3 {
            let mut line = format!("{:<24} {:>2}", if layers == 1 { sup } else { "" }, layers);
            for m in methods {
                if let Some(c) = t
                    .cells
                    .iter()
                    .find(|c| c.supervision == sup && c.layers == layers && c.method == m)
                {
                    let slides = match c.slides.1 {
                        Some(acc) => format!("{:.3}/{:.3}", c.slides.0, acc),
                        None => format!("{:.3}", c.slides.0),
                    };
                    line.push_str(&format!(
                        "  {:<38}",
                        format!(
                            "{:.4}±{:.4} / {:.3}±{:.3} [{}]",
                            c.rel_error.mean, c.rel_error.std, c.accuracy.mean, c.accuracy.std, slides
                        )
                    ));
                }
            }
            println!("{line}");
        }
    }
    let nn3: Vec<f64> = t
        .cells
        .iter()
        .filter(|c| c.method == "Neural NMF" && c.layers == 3)
        .map(|c| c.seconds)
        .collect();
    if let Some(s) = nn3.first() {
        println!("Neural NMF, 3 layers, {} epochs: {:.2} s per run", a.epochs, s);
    }
    Ok(())
}
