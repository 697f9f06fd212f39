//! `partlearn fit ae` and `partlearn fit asym-ae`: clap parses the flags into the library's
//! auto-encoder parameters ([`AeParams`], its enums through their `FromStr`), which the library
//! checks (its errors are reworded with the flags, [`AE_FLAG_NAMES`]); trains with a progress bar
//! (batches, ETA), keeps the checkpoint (every `--checkpoint-every` epochs and `--checkpoint-minutes`
//! of wall-clock) and `history.jsonl` (every epoch) on disk for `--resume`, and writes the run
//! folder. The training state lives in `RUN/` for a new run in a free folder (and its resume),
//! otherwise in the run's stage (`--force` over a run, `--resume` of a finished run), so that a
//! finished run stays whole; `--resume` takes over the stage a killed process left.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use partlearn::autoencoder::{
    self, checkpoint_from_bytes, Act, AeParams, Architecture, NonNeg, OptimizerKind, OptimizerSpec, RecLoss,
    Reduction, Schedule, Sparsity, TrainState,
};
use partlearn::data::Dataset;
use partlearn::engine::StopReason;
use partlearn::io::record::{self, AePart};
use partlearn::io::{self, FitSummary, MethodPart, RunDir, RunRecord};
use partlearn::protocol::PartModel;
use partlearn::Real;

use crate::args::{DataArgs, Dtype, Exit, Flags, RunArgs};
use crate::output::{default_out, write_figures};
use crate::progress::{print_warnings, EpochProgress, HistoryLog};
use crate::resume::{self, Placement, Resumed};

/// Flags (argument ids) that a resumed run cannot honour: its model, loss, optimizer, data
/// split and seed are those stored in the checkpoint. clap refuses them next to --resume, so
/// they are never silently ignored. (--out is checked in `fit_ae`: after the checkpoint, and it
/// may name the resumed folder itself.)
const RESUME_CONFLICTS: [&str; 19] = [
    "k",
    "decoder_activation",
    "loss",
    "reduction",
    "sparsity",
    "p",
    "beta",
    "nonneg",
    "decay_lambda",
    "decay_alpha",
    "optimizer",
    "lr",
    "lr_schedule",
    "batch_size",
    "val_fraction",
    "patience",
    "no_shuffle",
    "checkpoint_every",
    "seed",
];

#[derive(Args, Debug, Clone)]
pub struct AeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Code size (number of atoms).
    #[arg(short = 'k', long = "k", default_value_t = 100)]
    pub k: usize,
    /// Decoder activation: leaky-relu (slope 0.1, the reference), leaky-relu:SLOPE, sigmoid, relu, identity.
    #[arg(long, default_value = "leaky-relu")]
    pub decoder_activation: Act,
    /// Reconstruction loss: mse or bce (needs --decoder-activation sigmoid).
    #[arg(long, default_value = "mse")]
    pub loss: RecLoss,
    /// Per-image reduction of the reconstruction loss: mean over pixels (Keras, the reference) or sum.
    #[arg(long, default_value = "mean")]
    pub reduction: Reduction,
    /// Sparsity penalty: kl, l2, eps-l1[:EPS], log (on the mean activation, target --p), l1 (on the codes), hoyer[:TARGET], none.
    #[arg(long, default_value = "kl")]
    pub sparsity: Sparsity,
    /// Target mean activation of the code units.
    #[arg(long, default_value_t = 0.05)]
    pub p: f64,
    /// Weight of the sparsity penalty.
    #[arg(long, default_value_t = 1e-3)]
    pub beta: f64,
    /// Non-negativity of the decoder: project (clip at 0 after every step) or none.
    #[arg(long, default_value = "project")]
    pub nonneg: NonNeg,
    /// Asymmetric weight decay λ on the decoder weights (NCAE; 0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub decay_lambda: f64,
    /// Decay factor α of the positive decoder weights (0: only negative weights decay).
    #[arg(long, default_value_t = 0.0)]
    pub decay_alpha: f64,
    /// Optimizer: adadelta (the reference; lr 1.0), adam (lr 1e-3) or sgd (momentum 0.9, lr 0.01).
    #[arg(long, default_value = "adadelta")]
    pub optimizer: OptimizerKind,
    /// Learning rate (default: the optimizer's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule: constant, step:EVERY:FACTOR, exp:GAMMA, cosine.
    #[arg(long, default_value = "constant")]
    pub lr_schedule: Schedule,
    /// Epochs (with --resume: the new total; default 50, or the checkpoint's).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Fraction of the samples held out for the validation MSE (seeded random subset).
    #[arg(long, default_value_t = 0.0)]
    pub val_fraction: f64,
    /// Early stopping: stop when the validation MSE has not improved for this many epochs (keeps the best epoch's weights).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Do not shuffle the samples between epochs.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Update RUN/checkpoint.safetensors every N epochs (it is always written at the end and on Ctrl-C).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Also update the checkpoint whenever this many minutes of training passed since the last one (mid-epoch if need be); 0 = off.
    #[arg(long, value_name = "MINUTES", default_value_t = 10.0)]
    pub checkpoint_minutes: f64,
    /// Continue the interrupted (or finished) run in this folder, in place, with its stored options; of the training flags only --epochs, --tol, --threads and --max-seconds apply, the others (and --out) are refused.
    #[arg(long, value_name = "RUN", conflicts_with_all = RESUME_CONFLICTS)]
    pub resume: Option<PathBuf>,
    /// Time budget of this invocation in seconds (the run can be resumed).
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// Every 10 epochs, stop when sqrt(2·loss) fell by less than tol × its value at this invocation's first epoch (default 0 = off, or the checkpoint's).
    #[arg(long)]
    pub tol: Option<f64>,
    #[command(flatten)]
    pub run: RunArgs,
}

impl AeArgs {
    /// The parameters the flags describe, unchecked (the library's defaults where a flag is
    /// absent: 50 epochs, no tolerance).
    pub fn params(&self, arch: Architecture) -> AeParams {
        let mut p = AeParams::new(self.k)
            .architecture(arch)
            .decoder_activation(self.decoder_activation)
            .reconstruction(self.loss)
            .reduction(self.reduction)
            .sparsity(self.sparsity)
            .p(self.p)
            .beta(self.beta)
            .decay_lambda(self.decay_lambda)
            .decay_alpha(self.decay_alpha)
            .nonneg(self.nonneg)
            .optimizer(OptimizerSpec::new(self.optimizer, self.lr))
            .schedule(self.lr_schedule)
            .batch_size(self.batch_size)
            .val_fraction(self.val_fraction)
            .patience(self.patience)
            .shuffle(!self.no_shuffle)
            .seed(self.run.seed)
            .threads(self.run.threads)
            .max_seconds(self.max_seconds)
            .checkpoint_every(self.checkpoint_every);
        if let Some(epochs) = self.epochs {
            p = p.epochs(epochs);
        }
        if let Some(tol) = self.tol {
            p = p.tol(tol);
        }
        p
    }
}

pub fn run(arch: Architecture, a: &AeArgs) -> Result<()> {
    match a.run.dtype {
        Dtype::F32 => fit_ae::<f32>(arch, a),
        Dtype::F64 => fit_ae::<f64>(arch, a),
    }
}

fn fit_ae<T: Real>(arch: Architecture, a: &AeArgs) -> Result<()> {
    let checkpoint_interval = resume::checkpoint_interval(a.checkpoint_minutes)?;
    let data = a.data.load::<T>()?;
    // A resumed run: its state, the stage a killed process left (taken over), and the bytes of
    // its checkpoint.
    let mut resumed = None;
    let (mut state, out, resumed_from) = match &a.resume {
        Some(dir) => {
            let r = Resumed::locate(dir, a.run.out.as_deref(), &format!("fit {}", arch.kind()))?;
            let (bytes, path) = (&r.bytes, r.path());
            let mut st = checkpoint_from_bytes::<T>(bytes, &path, a.run.threads, a.max_seconds)?;
            if st.model.spec.architecture != arch {
                anyhow::bail!(
                    "{} holds a {} model; resume it with `partlearn fit {}`",
                    dir.display(),
                    st.model.spec.architecture.kind(),
                    st.model.spec.architecture.kind()
                );
            }
            // Of the parameters only those of this invocation change (clap refuses the others).
            let mut p = st.params().params().clone();
            if let Some(e) = a.epochs {
                p = p.epochs(e);
            }
            if let Some(tol) = a.tol {
                p = p.tol(tol);
            }
            st.set_params(p.check()?)?;
            let epochs = st.params().params().epochs;
            // (A killed stage may hold the final checkpoint of a run killed while it committed:
            // it then only needs writing out.)
            if st.epoch >= epochs && r.adopted.is_none() {
                // Nothing to resume in a stage a killed process left (e.g. one killed just after
                // it committed this run): removed, as a new run would.
                io::run::clean_stale_stages(dir);
                anyhow::bail!(
                    "the run in {} has done all its {epochs} epochs; give a larger --epochs to train longer",
                    dir.display(),
                );
            }
            let from = st.epoch;
            resumed = Some(r);
            (st, dir.clone(), Some(from))
        }
        None => {
            let params = a.params(arch).check()?;
            let state = TrainState::init(params, &data).map_err(|e| ae_for_vectors(e, &a.data.spec))?;
            let out = a
                .run
                .out
                .clone()
                .unwrap_or_else(|| default_out(arch.kind(), &a.data.spec, a.k));
            (state, out, None)
        }
    };
    state
        .check_data(&data)
        .map_err(|e| too_few_held_out(e, a, data.n_samples()))?;
    if let (Some(dir), Some(None)) = (&a.resume, resumed.as_ref().map(|r| &r.adopted)) {
        check_same_data(dir, &a.data, &data)?;
    }
    // Epochs a killed process had done after the checkpoint.
    let redone = resumed.as_ref().map(|r| r.redone("epoch", state.epoch));
    if resumed_from.is_none() {
        let cmd = format!(
            "partlearn fit {} --data {} --resume {}",
            arch.kind(),
            a.data.spec,
            out.display()
        );
        resume::refuse_unfinished(&out, a.run.force, &cmd)?;
    }
    let placement = resume::place(&out, resumed.as_ref(), || a.data.run_dir(&out, a.run.force, &[]))?;
    let _guard = crate::fit::NewRunGuard::new(&placement, resumed.is_none());
    let adopted = resumed.as_ref().is_some_and(|r| r.adopted.is_some());
    if let (Some(from), Some(n)) = (resumed_from, redone) {
        if (n > 0 || adopted) && !a.run.quiet {
            errln!(
                "resuming {} from its checkpoint at epoch {from}{}: {n} epoch{} done after it by the stopped process {} redone",
                out.display(),
                if state.batch > 0 { format!(" (+{} batches)", state.batch) } else { String::new() },
                if n == 1 { "" } else { "s" },
                if n == 1 { "is" } else { "are" },
            );
        }
    }
    let checkpoint = placement.checkpoint();
    let Placement { run_dir, state_dir } = placement;
    let history = HistoryLog::new(
        state_dir.join(io::run::HISTORY_FILE),
        std::time::Duration::ZERO,
        io::to_json_lines(&state.history)?,
    );
    let mut progress = EpochProgress::new(a.run.quiet)
        .with_history(history)
        .checkpoint_every(checkpoint_interval);
    let result = autoencoder::train(&mut state, &data, Some(&checkpoint), &mut progress);
    progress.finish();
    drop(progress);
    let outcome = result?;
    let resumed = resumed_from.map(|from| (from, redone.unwrap_or(0)));
    finish(a, arch, &data, state, outcome, run_dir, &checkpoint, resumed)
}

/// The library's refusal of the asymmetric architecture for data without an image shape, naming
/// the command that takes such data.
fn ae_for_vectors(e: partlearn::Error, spec: &str) -> anyhow::Error {
    match e {
        partlearn::Error::InvalidOption {
            option: "architecture",
            ..
        } => anyhow::anyhow!(
            "fit asym-ae needs image data (its encoder is convolutional; e.g. fashion-mnist:train), and --data {spec} has no image shape: use `partlearn fit ae` for other data"
        ),
        e => e.into(),
    }
}

/// The library's error for `--patience` without held-out samples, reworded when
/// `--val-fraction` is given but rounds to no sample of the `n`.
fn too_few_held_out(e: partlearn::Error, a: &AeArgs, n: usize) -> anyhow::Error {
    match (&e, a.patience) {
        (partlearn::Error::InvalidOption { option: "patience", .. }, Some(p)) if a.val_fraction > 0.0 => anyhow::anyhow!(
            "--val-fraction {} holds out no sample of the {n} (fewer than half of one), so early stopping (--patience {p}) has nothing to watch: give --val-fraction {} or more (1 sample)",
            a.val_fraction,
            1.0 / n as f64
        ),
        _ => e.into(),
    }
}

/// Errors when the run in `dir` (its run.json, when a fit finished or was interrupted there) was
/// trained on other data than `data`, loaded from `args`: resuming would continue on data the
/// run never saw and rewrite its record. The difference is named.
fn check_same_data<T: Real>(dir: &Path, args: &DataArgs, data: &Dataset<T>) -> Result<()> {
    if !dir.join(io::run::RUN_FILE).is_file() {
        return Ok(());
    }
    let was = RunRecord::read(dir)?.data;
    let now = args.record(data);
    let differences: Vec<String> = [
        ("--data", format!("{:?}", was.spec), format!("{:?}", now.spec)),
        ("--first", format!("{:?}", was.first), format!("{:?}", now.first)),
        (
            "--subset",
            format!("{:?}", was.subset),
            format!("{:?}", now.subset),
        ),
        ("samples", was.n_samples.to_string(), now.n_samples.to_string()),
    ]
    .into_iter()
    .filter(|(_, w, n)| w != n)
    .map(|(what, w, n)| format!("{what} {} (now {})", w.replace('"', ""), n.replace('"', "")))
    .collect();
    if !differences.is_empty() {
        anyhow::bail!(
            "{} was trained on other data: {}; resume with the run's data (its run.json), or start a new run",
            dir.display(),
            differences.join(", ")
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn finish<T: Real>(
    a: &AeArgs,
    arch: Architecture,
    data: &Dataset<T>,
    state: TrainState<T>,
    outcome: autoencoder::TrainOutcome,
    run_dir: RunDir,
    checkpoint: &Path,
    resumed: Option<(usize, usize)>,
) -> Result<()> {
    let resumed_from = resumed.map(|(from, _)| from);
    let model = &state.model;
    let (tensors, meta) = model.to_tensors()?;
    run_dir.write(
        io::run::MODEL_FILE,
        &io::tensors::safetensors_bytes(&tensors, &meta)?,
    )?;
    let last = state.history.last();
    let invocation_epochs = state.epoch - resumed_from.unwrap_or(0);
    let mut summary = FitSummary::new(
        outcome.stop_reason,
        state.epoch,
        outcome.seconds,
        &outcome.warnings,
    );
    if let Some(r) = last {
        summary = summary.objective(r.loss);
    }
    let part = MethodPart::Autoencoder(AePart {
        architecture: record::to_value(&model.spec)?,
        n_params: model.n_params(),
        options: record::to_value(state.params().params())?,
        train_mse: last.map(|r| r.train_mse),
        val_mse: last.and_then(|r| r.val_mse),
        seconds_per_epoch: (state.epoch > 0).then(|| outcome.seconds / state.epoch as f64),
        resumed_from_epoch: resumed_from,
        redone_epochs: resumed.map(|(_, redone)| redone),
    });
    RunRecord::new(arch.kind(), a.data.record(data), summary, part)
        .seed(state.params().params().seed)
        .threads(a.run.threads)
        .command(std::env::args().collect())
        .write(&run_dir, &state.history)?;
    if let Some(shape) = data.image_shape {
        // Usage order and reconstructions from (at most) the first 2,000 samples.
        let sample = data.first(data.n_samples().min(2000));
        let codes = model.encode(sample.x(), a.run.threads)?;
        write_figures(&run_dir, model, codes.as_ref(), &sample, shape)?;
    }
    resume::settle_checkpoint(&run_dir, checkpoint, true)?;
    let path = run_dir.commit()?;

    let flags = Flags::epochs();
    print_warnings(&outcome.warnings, &flags);
    if a.run.json {
        let summary = serde_json::json!({
            "run": path,
            "method": arch.kind(),
            "epochs": state.epoch,
            "stop_reason": outcome.stop_reason,
            "loss": last.map(|r| r.loss),
            "train_mse": last.map(|r| r.train_mse),
            "val_mse": last.and_then(|r| r.val_mse),
            "seconds": outcome.seconds,
            "warnings": crate::args::warning_texts(&outcome.warnings, &flags),
        });
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !a.run.quiet {
        outln!(
            "{} k={} on {} ({} × {}): {} epochs{} ({}), loss {:.6}, train MSE {:.5}{}, {:.1} s",
            arch.kind(),
            model.spec.k,
            data.name,
            data.n_samples(),
            data.n_features(),
            state.epoch,
            resumed_from.map_or(String::new(), |e| format!(
                " (resumed at {e}, {invocation_epochs} now)"
            )),
            outcome.stop_reason,
            last.map_or(f64::NAN, |r| r.loss),
            last.map_or(f64::NAN, |r| r.train_mse),
            last.and_then(|r| r.val_mse)
                .map_or(String::new(), |v| format!(", validation MSE {v:.5}")),
            outcome.seconds
        );
        outln!("wrote {}", path.display());
    }
    if outcome.stop_reason == StopReason::Interrupted {
        errln!(
            "interrupted: saved to {}; continue with `partlearn fit {} --data {} --resume {}`",
            path.display(),
            arch.kind(),
            a.data.spec,
            path.display()
        );
        return Err(Exit::Interrupted.into());
    }
    Ok(())
}
