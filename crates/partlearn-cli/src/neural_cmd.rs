//! `partlearn fit neural-nmf`: flags → `deep::neural::NeuralParams`, the run folder, and the
//! post-hoc accuracy of METHODS.md §5.1.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use partlearn::deep::neural::checkpoint::neural_checkpoint_dtype;
use partlearn::deep::neural::{self, ClassLoss, Cost, NeuralCheckpoint, NeuralParams};
use partlearn::deep::table::NeuralSettings;
use partlearn::deep::DeepModel;
use partlearn::engine::StopReason;
use partlearn::io::record::{self, LayersPart};
use partlearn::io::{self, FitSummary, MethodPart, RunRecord};
use partlearn::Real;

use crate::args::{accuracies, DataArgs, Dtype, Exit, Flags, RunArgs, SupervisionArgs, TestArgs};
use crate::output::default_out;
use crate::progress::{self, FitProgress, HistoryLog};
use crate::resume::{self, Placement, Resumed};

/// Epochs of every restart when `--epochs` is not given.
pub const DEFAULT_EPOCHS: usize = 10_000;

/// Flags (argument ids) a resumed training cannot honour: its options are the checkpoint's.
const RESUME_CONFLICTS: [&str; 15] = [
    "ranks",
    "cost",
    "class_loss",
    "lambda",
    "lr",
    "lr_class",
    "class_steps",
    "decay",
    "decay_every",
    "optimizer",
    "restarts",
    "init",
    "tol",
    "seed",
    "dtype",
];

#[derive(Args, Debug, Clone)]
pub struct NeuralArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Ranks of the layers, decreasing (e.g. 9,4,2).
    #[arg(long, value_delimiter = ',', default_value = "9,4,2")]
    pub ranks: Vec<usize>,
    #[command(flatten)]
    pub sup: SupervisionArgs,
    /// Unsupervised cost: recon (reconstruction) or energy.
    #[arg(long, default_value = "recon")]
    pub cost: Cost,
    /// Classification loss: l2 or ce (cross-entropy) (with --supervision semi or full; default l2).
    #[arg(long)]
    pub class_loss: Option<ClassLoss>,
    /// Weight λ of the classification term (with --supervision semi or full; default 1e-4).
    #[arg(long)]
    pub lambda: Option<f64>,
    /// Epochs of every restart (default 10000; with --resume: the new total).
    #[arg(long)]
    pub epochs: Option<usize>,
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
    #[arg(long, value_enum, default_value = "gd")]
    pub optimizer: Optimizer,
    /// Independent random starts; the lowest final cost is kept.
    #[arg(long, default_value_t = 1)]
    pub restarts: usize,
    /// Starting layers: random (U[0,1), the reference), hnmf (a hierarchical NMF by HALS, 200 iterations per layer) or top-down (every layer fitted to an NMF of the data at its rank, 200 HALS iterations each; not the reference's).
    #[arg(long, value_enum, default_value = "random")]
    pub init: StartLayers,
    /// Time budget in seconds of all the restarts together (the fit stops after the epoch that exceeds it).
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// Every 10 epochs, stop when the error sqrt(2·cost) fell by less than tol × its initial value (0, the default, disables: the reference trains for a fixed number of epochs).
    #[arg(long, default_value_t = 0.0)]
    pub tol: f64,
    /// Keep a checkpoint (RUN/checkpoint.safetensors while training) whenever this many minutes passed since the last one, and when training is interrupted or out of time; 0 = only then.
    #[arg(long, value_name = "MINUTES", default_value_t = 10.0)]
    pub checkpoint_minutes: f64,
    /// Continue the interrupted, out-of-time or killed training in this folder, in place, from its checkpoint with its stored options (same bits as uninterrupted training); give the same --data and supervision flags; of the training flags only --epochs, --max-seconds and --threads apply.
    #[arg(long, value_name = "RUN", conflicts_with_all = RESUME_CONFLICTS)]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub test: TestArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `--optimizer`: the step on the layers (the library's `NeuralParams::adam`). The variants have
/// no doc comments: clap would show them as a long help of the whole command.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    // Projected gradient descent.
    Gd,
    // Adam, then the projection.
    Adam,
}

/// `--init`: where the layers start (no variant doc comments, as [`Optimizer`]).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLayers {
    // U[0, 1) entries (the reference).
    Random,
    // A hierarchical NMF by HALS, 200 iterations per layer.
    Hnmf,
    // Every layer fitted to an NMF of the data at its rank.
    TopDown,
}

impl NeuralArgs {
    /// The library's parameters of these flags (unchecked; options of the label term refused
    /// without supervision).
    pub fn params(&self) -> Result<NeuralParams> {
        let (d, sup) = (NeuralParams::default(), &self.sup);
        Ok(NeuralParams::new(self.ranks.clone())
            .cost(self.cost)
            .epochs(self.epochs.unwrap_or(DEFAULT_EPOCHS))
            .lr(self.lr)
            .decay(self.decay)
            .decay_every(self.decay_every)
            .adam(self.optimizer == Optimizer::Adam)
            .lambda(sup.label_flag(self.lambda, "lambda", d.lambda)?)
            .class_loss(sup.label_flag(self.class_loss, "class-loss", d.class_loss)?)
            .lr_class(sup.label_flag(self.lr_class, "lr-class", d.lr_class)?)
            .class_steps(class_steps(sup.label_flag(
                self.class_steps,
                "class-steps",
                d.class_steps,
            )?)?)
            .restarts(self.restarts)
            .seed(self.run.seed)
            .threads(self.run.threads)
            .max_seconds(self.max_seconds)
            .tol(self.tol))
    }
}

/// `--class-steps`: 0 would leave the classifier at its random start, its label term meaningless.
fn class_steps(n: usize) -> Result<usize> {
    if n == 0 {
        anyhow::bail!(
            "invalid --class-steps 0: the classifier would never train and keep its random start; give at least 1 (default 30)"
        );
    }
    Ok(n)
}

pub fn run(a: &NeuralArgs) -> Result<()> {
    if let Some(dir) = &a.resume {
        let r = Resumed::locate(dir, a.run.out.as_deref(), "fit neural-nmf")?;
        return match neural_checkpoint_dtype(&r.bytes, &r.path())?.as_str() {
            "f32" => fit::<f32>(a, Some((dir, r))),
            _ => fit::<f64>(a, Some((dir, r))),
        };
    }
    match a.run.dtype {
        Dtype::F32 => fit::<f32>(a, None),
        Dtype::F64 => fit::<f64>(a, None),
    }
}

fn fit<T: Real>(a: &NeuralArgs, resumed: Option<(&PathBuf, Resumed)>) -> Result<()> {
    let checkpoint_every = resume::checkpoint_interval(a.checkpoint_minutes)?;
    let data = a.data.load::<T>()?;
    let mut from = match &resumed {
        Some((_, r)) => Some(NeuralCheckpoint::<T>::from_bytes(&r.bytes, &r.path())?),
        None => None,
    };
    if let Some(ck) = from.as_mut() {
        ck.continue_with(a.epochs, a.max_seconds, a.run.threads);
    }
    let params = match &from {
        Some(ck) => ck.params().check()?,
        None => a.params()?.validate(data.n_samples(), data.n_features())?,
    };
    let opts = params.params();
    let last = *opts.ranks.last().unwrap_or(&1);
    let sup = a.sup.labels(&data, last, opts.seed)?;
    if let Some(s) = &sup {
        s.check(data.n_samples())?;
    }
    let test = a.test.load(&data, a.sup.label_set.as_deref(), last)?;
    let out = match &resumed {
        Some((dir, _)) => (*dir).clone(),
        None => a
            .run
            .out
            .clone()
            .unwrap_or_else(|| default_out("neural-nmf", &a.data.spec, opts.ranks[0])),
    };
    let mut redone = None;
    let placement = match (&resumed, &from) {
        (Some((dir, r)), Some(ck)) => {
            let (restart, epoch) = ck.position();
            if epoch >= opts.epochs && restart + 1 >= opts.restarts as u64 && r.adopted.is_none() {
                io::run::clean_stale_stages(dir);
                anyhow::bail!(
                    "the training in {} has done all its {} epochs; give a larger --epochs to go on",
                    dir.display(),
                    opts.epochs
                );
            }
            let n = r.redone("iter", epoch);
            if (n > 0 || r.adopted.is_some()) && !a.run.quiet {
                errln!(
                    "resuming {} from its checkpoint at epoch {epoch} of restart {}: {n} epoch{} done after it by the stopped process {} redone",
                    dir.display(),
                    restart + 1,
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "is" } else { "are" },
                );
            }
            redone = Some((epoch, n));
            resume::place(dir, Some(r), || Ok(io::RunDir::create(dir, true)?))?
        }
        _ => {
            let again = format!(
                "partlearn fit neural-nmf --data {} --resume {}",
                a.data.spec,
                out.display()
            );
            resume::refuse_unfinished(&out, a.run.force, &again)?;
            resume::place(&out, None, || a.data.run_dir(&out, a.run.force, &a.test.inputs()))?
        }
    };
    let _guard = crate::fit::NewRunGuard::new(&placement, resumed.is_none());
    let initial = match &from {
        Some(ck) => io::to_json_lines(ck.history())?,
        None => Vec::new(),
    };
    let history = HistoryLog::new(
        placement.state_dir.join(io::run::HISTORY_FILE),
        std::time::Duration::ZERO,
        initial,
    );
    let mut progress = FitProgress::new(opts.epochs, a.run.quiet)
        .with_history(history)
        .checkpoint_every(checkpoint_every);
    let checkpoint = placement.checkpoint();
    let fit = match &from {
        Some(ck) => neural::resume(data.x(), ck, sup.as_ref(), Some(&checkpoint), &mut progress),
        None => {
            let start = match a.init {
                StartLayers::Random => None,
                StartLayers::Hnmf => Some(neural::hnmf_start(
                    data.x(),
                    &params,
                    &mut partlearn::engine::Silent,
                )?),
                StartLayers::TopDown => Some(neural::top_down_start(
                    data.x(),
                    &params,
                    &mut partlearn::engine::Silent,
                )?),
            };
            neural::train_checkpointed(
                data.x(),
                start.as_deref(),
                &params,
                sup.as_ref(),
                &checkpoint,
                &mut progress,
            )
        }
    };
    progress.finish();
    drop(progress);
    let fit = fit?;
    let Placement { run_dir, .. } = placement;
    let top = fit.forward.top_codes();
    let rel_error = fit.model.rel_error(data.x(), &fit.forward);
    let reference = a.sup.reference(&data, sup.as_ref(), last);
    let acc = accuracies(top, reference.as_ref(), test.as_ref(), &fit.model, a.run.threads)?;
    let (accuracy, accuracy_unlabeled, test_accuracy) = (acc.all, acc.unlabeled, acc.test);
    let last_rec = fit.history.last().copied();
    let model = DeepModel::new("neural-nmf", fit.model)?;
    let (tensors, meta) = model.to_tensors(data.image_shape)?;
    run_dir.write(
        io::run::MODEL_FILE,
        &io::tensors::safetensors_bytes(&tensors, &meta)?,
    )?;
    let cost = last_rec.map_or(f64::NAN, |r| r.objective);
    let summary = FitSummary::new(fit.stop_reason, fit.n_iter, fit.seconds, &fit.warnings)
        .objective(cost)
        .rel_error(rel_error);
    let part = MethodPart::Layers(LayersPart {
        options: record::to_value(&opts)?,
        ranks: opts.ranks.clone(),
        supervision: a.sup.name().into(),
        n_labeled: sup.as_ref().map(|s| s.n_known()),
        level_errors: Vec::new(),
        accuracy,
        accuracy_unlabeled,
        test_accuracy,
        resumed_from_epoch: redone.map(|(e, _)| e),
        redone_epochs: redone.map(|(_, n)| n),
    });
    RunRecord::new("neural-nmf", a.data.record(&data), summary, part)
        .seed(opts.seed)
        .threads(a.run.threads)
        .command(std::env::args().collect())
        .write(&run_dir, &fit.history)?;
    if let Some(shape) = data.image_shape {
        let codes = partlearn::protocol::PartModel::encode(
            &model,
            data.first(data.n_samples().min(2000)).x(),
            a.run.threads,
        )?;
        crate::output::write_figures(&run_dir, &model, codes.as_ref(), &data, shape)?;
    }
    // Training interrupted or out of time keeps its checkpoint: `--resume` continues it.
    let resumable = matches!(fit.stop_reason, StopReason::Interrupted | StopReason::TimeLimit);
    resume::settle_checkpoint(&run_dir, &checkpoint, resumable)?;
    let path = run_dir.commit()?;
    let hint = if resumable {
        format!(
            "; continue with `partlearn fit neural-nmf --data {} --resume {}`",
            a.data.spec,
            path.display()
        )
    } else {
        String::new()
    };
    // An epoch is an iteration: max_iter is --epochs here.
    let flags = Flags::epochs();
    progress::print_warnings(&fit.warnings, &flags);
    if a.run.json {
        let summary = serde_json::json!({
            "run": path, "method": "neural-nmf", "epochs": fit.n_iter, "stop_reason": fit.stop_reason,
            "cost": cost, "rel_error": rel_error, "accuracy": accuracy,
            "accuracy_unlabeled": accuracy_unlabeled, "test_accuracy": test_accuracy, "seconds": fit.seconds,
            "warnings": crate::args::warning_texts(&fit.warnings, &flags),
        });
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !a.run.quiet {
        outln!(
            "neural-nmf ranks {:?} on {} ({} × {}): {} epochs ({}), rel. error {:.5}{}, {:.2} s",
            opts.ranks,
            data.name,
            data.n_samples(),
            data.n_features(),
            fit.n_iter,
            fit.stop_reason,
            rel_error,
            accuracy.map_or(String::new(), |v| format!(", post-hoc accuracy {v:.3}"))
                + &test_accuracy.map_or(String::new(), |v| format!(", test accuracy {v:.3}")),
            fit.seconds
        );
        outln!("wrote {}", path.display());
    }
    if fit.stop_reason == StopReason::Interrupted {
        errln!(
            "interrupted: the run so far was saved to {}{hint}",
            path.display()
        );
        return Err(Exit::Interrupted.into());
    }
    if fit.stop_reason == StopReason::TimeLimit && !a.run.quiet {
        errln!("out of time (--max-seconds){hint}");
    }
    Ok(())
}

/// `partlearn reproduce …`: the published tables, side by side with partlearn's numbers.
#[derive(clap::Subcommand, Debug)]
pub enum ReproduceCommand {
    /// The Neural NMF table (METHODS.md §5.2) on toy-hierarchy: hierarchical, Deep and Neural NMF, 1–3 layers, unsupervised / semi-supervised / supervised.
    NeuralNmfTable(TableArgs),
    /// The internship report's study (METHODS.md §6.7): sparse NMF, the shallow NN-AE with each sparsity penalty over the β grid, the asymmetric AE; one HTML page beside the report's table. Resumable.
    PartBasedStudy(crate::study_cmd::StudyArgs),
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
    /// Neural NMF starts per run (the lowest cost is kept; from the top-down start of the tuned settings they differ only in the classifier).
    #[arg(long, default_value_t = 1)]
    pub restarts: usize,
    /// Neural NMF settings: tuned (reconstruction cost in every row, layers started top-down from NMFs of the data at each rank) or demo (the reference demo's: energy cost when supervised, random starts); both keep the demo's label term (L2, λ = 1e-4, lr (A, B) = (1, 0.01)).
    #[arg(long, value_enum, default_value = "tuned")]
    pub settings: TableSettings,
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

/// `reproduce neural-nmf-table --settings` (the library's `NeuralSettings`; no variant doc
/// comments, as [`Optimizer`]).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableSettings {
    // partlearn's: every cell at the SVD bound.
    Tuned,
    // The reference demo's.
    Demo,
}

pub fn reproduce(cmd: ReproduceCommand) -> Result<()> {
    let a = match cmd {
        ReproduceCommand::NeuralNmfTable(a) => a,
        ReproduceCommand::PartBasedStudy(a) => return crate::study_cmd::run(a),
    };
    let o = partlearn::deep::table::TableParams::new()
        .seeds(a.seeds)
        .epochs(a.epochs)
        .iterations(a.iterations)
        .restarts(a.restarts)
        .settings(match a.settings {
            TableSettings::Tuned => NeuralSettings::Tuned,
            TableSettings::Demo => NeuralSettings::Demo,
        })
        .threads(a.threads)
        .check()?;
    let data = partlearn::data::named::toy_hierarchy::<f64>(a.data_seed);
    let quiet = a.quiet || a.json;
    let t = partlearn::deep::table::neural_nmf_table(&data, &o, &mut |done, total| {
        if !quiet {
            crate::output::stderr_text(format_args!("\r{done}/{total} runs"));
        }
    })?;
    if !quiet {
        errln!("");
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(());
    }
    let bounds: Vec<String> = t
        .svd_bounds
        .iter()
        .map(|(k, e)| format!("rank {k}: {e:.6}"))
        .collect();
    outln!(
        "toy-hierarchy (90 × 87, noise seed {}); truncated-SVD bounds {}; {} seed(s), Neural NMF {} epochs, best of {} start(s)",
        a.data_seed,
        bounds.join(", "),
        a.seeds,
        a.epochs,
        a.restarts
    );
    let n = &t.neural;
    let cost = |c: Cost| format!("{c:?}").to_lowercase();
    outln!(
        "Neural NMF settings {}: {} start, cost {} (unsupervised) / {} (supervised), {} λ = {:e}, lr (A, B) = ({}, {})",
        match a.settings {
            TableSettings::Tuned => "tuned",
            TableSettings::Demo => "demo",
        },
        n.start,
        cost(n.cost_unsupervised),
        cost(n.cost_supervised),
        n.class_loss,
        n.lambda,
        n.lr,
        n.lr_class
    );
    outln!("rel. error ± std / post-hoc accuracy ± std   [slides' Table 1]");
    let methods = ["hierarchical NMF", "Deep NMF", "Neural NMF"];
    outln!(
        "{:<24} {:>2}  {:<38} {:<38} {:<38}",
        "",
        "L",
        methods[0],
        methods[1],
        methods[2]
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
            outln!("{line}");
        }
    }
    let nn3: Vec<f64> = t
        .cells
        .iter()
        .filter(|c| c.method == "Neural NMF" && c.layers == 3)
        .map(|c| c.seconds)
        .collect();
    if let Some(s) = nn3.first() {
        outln!("Neural NMF, 3 layers, {} epochs: {:.2} s per run", a.epochs, s);
    }
    Ok(())
}
