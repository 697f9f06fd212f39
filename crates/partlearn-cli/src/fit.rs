//! `partlearn fit <method>`: maps flags to options, runs the library's fit with a progress bar,
//! and writes the run folder (run.json, model.safetensors, history.jsonl, figures/).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use partlearn::data::Dataset;
use partlearn::engine::StopReason;
use partlearn::io::record::{self, NmfPart};
use partlearn::io::{self, FitSummary, MethodPart, RunDir, RunRecord};
use partlearn::nmf::{self, EncodeOptions, InitMethod, NmfParams};
use partlearn::Real;
use serde::Serialize;

use crate::args::{DataArgs, Dtype, Exit, RunArgs};
use crate::output::{default_out, write_figures};
use crate::progress::FitProgress;

#[derive(Subcommand, Debug)]
pub enum FitCommand {
    /// Non-negative matrix factorization (MU, HALS or ANLS).
    Nmf(NmfArgs),
    /// Hoyer's NMF with sparseness constraints on the atoms and/or the codes.
    SparseNmf(SparseNmfArgs),
    /// Shallow sparse auto-encoder: sigmoid code, non-negative decoder (METHODS.md §6.1).
    Ae(crate::ae_cmd::AeArgs),
    /// Asymmetric auto-encoder: convolutional encoder, the shallow non-negative decoder (§6.6).
    AsymAe(crate::ae_cmd::AeArgs),
    /// Neural NMF: NNLS layers trained end to end by projected gradient (METHODS.md §4.3).
    NeuralNmf(crate::neural_cmd::NeuralArgs),
    /// Semi-supervised NMF: data and label terms, Frobenius or I-divergence (METHODS.md §3).
    Ssnmf(crate::deep_cmd::SsnmfArgs),
    /// Hierarchical NMF: one NMF per layer of the previous codes; SSNMF on the last when supervised (§4.1).
    Hnmf(crate::deep_cmd::HnmfArgs),
    /// Deep NMF: hierarchical NMF, then joint multiplicative fine-tuning of all layers (§4.2).
    DeepNmf(crate::deep_cmd::HnmfArgs),
}

#[derive(Args, Debug)]
pub struct NmfArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Number of components (atoms).
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    pub k: usize,
    /// hals or anls (Frobenius only; anls = exact alternating NNLS), mu (any beta-loss), or online (mini-batch HALS on rows streamed from the data, Frobenius; see --batch-size).
    #[arg(long, default_value = "hals")]
    pub solver: crate::online_cmd::SolverArg,
    /// frobenius, kullback-leibler, itakura-saito, or a number β.
    #[arg(long, default_value = "frobenius", value_parser = nmf::options::parse_beta_loss)]
    pub beta_loss: f64,
    /// auto, random, nndsvd, nndsvda, nndsvdar, custom.
    #[arg(long, default_value = "auto")]
    pub init: InitMethod,
    /// Starting atoms for --init custom (.npy, k × n_features).
    #[arg(long, value_name = "FILE")]
    pub init_atoms: Option<PathBuf>,
    /// Starting codes for --init custom (.npy, n_samples × k; optional).
    #[arg(long, value_name = "FILE")]
    pub init_codes: Option<PathBuf>,
    /// Maximum iterations (default 200; with --resume: the new total).
    #[arg(long)]
    pub max_iter: Option<usize>,
    /// Every 10 iterations, stop when the error sqrt(2·objective) fell by less than tol × its initial value (0 disables).
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    /// Time budget of this invocation in seconds (the run can be resumed).
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// Keep a checkpoint of the fit (RUN/checkpoint.safetensors while it runs) whenever this many minutes passed since the last one, and when it is interrupted or out of time; 0 = only then.
    #[arg(long, value_name = "MINUTES", default_value_t = 10.0)]
    pub checkpoint_minutes: f64,
    /// Continue the interrupted, out-of-time or killed fit in this folder, in place, from its checkpoint with its stored options (same bits as an uninterrupted fit); give the same --data (and --mask); of the other flags only --max-iter, --max-seconds, --threads, --save-codes and the output flags apply.
    #[arg(long, value_name = "RUN", conflicts_with_all = crate::nmf_cmd::RESUME_CONFLICTS)]
    pub resume: Option<PathBuf>,
    /// Stop when the projected gradient falls below this fraction of its initial norm (Lin 2007; 0 disables).
    #[arg(long, default_value_t = 0.0)]
    pub pg_tol: f64,
    /// Penalty weight on the codes (scikit-learn's alpha_W).
    #[arg(long, default_value_t = 0.0)]
    pub alpha_w: f64,
    /// Penalty weight on the atoms (scikit-learn's alpha_H; default: same as --alpha-w).
    #[arg(long)]
    pub alpha_h: Option<f64>,
    /// L1 share of the penalties (0 = pure L2, 1 = pure L1).
    #[arg(long, default_value_t = 0.0)]
    pub l1_ratio: f64,
    /// HALS: maximum inner sweeps per factor (default: Gillis–Glineur's rule, the products'
    /// cost counted from every entry of dense data, the stored entries of sparse data).
    #[arg(long)]
    pub hals_inner_max: Option<usize>,
    /// Frobenius solvers: no extrapolation between iterations (plain HALS / MU / ANLS; slower,
    /// but on swimmer plain HALS isolates the torso that extrapolated HALS spreads over the limbs).
    #[arg(long)]
    pub no_extrapolate: bool,
    /// Codes for fixed atoms (Frobenius): exact (NNLS by block principal pivoting) or cd.
    #[arg(long, default_value = "exact")]
    pub encode: nmf::EncodeMethod,
    /// Maximum sweeps (or MU iterations) when computing codes for fixed atoms.
    #[arg(long, default_value_t = EncodeOptions::default().max_iter)]
    pub encode_max_iter: usize,
    /// Tolerance when computing codes for fixed atoms.
    #[arg(long, default_value_t = EncodeOptions::default().tol)]
    pub encode_tol: f64,
    /// Also store the training codes (n × k) in model.safetensors.
    #[arg(long)]
    pub save_codes: bool,
    /// Missing entries: a 0/1 matrix, n_samples × n_features, 1 = observed (dense NPY or CSV, or sparse .npz / .mtx listing the observed entries); NaN entries of the data are missing too. The fit then uses the observed entries only (METHODS.md §11.2).
    #[arg(long, value_name = "FILE")]
    pub mask: Option<PathBuf>,
    #[command(flatten)]
    pub compress: CompressArgs,
    #[command(flatten)]
    pub online: crate::online_cmd::OnlineArgs,
    /// Keep history.jsonl in the run's stage as the fit goes once it has run this many seconds (a killed fit leaves the iterations it did).
    #[arg(long, value_name = "SECONDS", default_value_t = crate::progress::HISTORY_AFTER, hide = true)]
    pub history_after: f64,
    #[command(flatten)]
    pub dist: crate::dist_cmd::DistArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `--compress`: compressed (randomized) NMF for the Frobenius solvers.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressMode {
    Off,
    On,
    Auto,
}

/// The flags of compressed NMF (`fit nmf`, `bench nmf`).
#[derive(Args, Debug, Clone)]
pub struct CompressArgs {
    /// Iterate on a sketch of the data (l = k + oversample columns: the exact leading singular subspace with an NNDSVD start, else a randomized range finder) for both factors, with the exact error every 10 iterations, then --polish exact iterations; on many samples the compressed iterations run on a subset (see --compress-samples); auto = the sketch only where it pays (l·(n_samples + n_features) ≤ n_samples·n_features/2), the subset where there are many samples. Alone, --compress means on.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "on", default_value = "off")]
    pub compress: CompressMode,
    /// With --compress: columns of the sketch beyond k (default 100).
    #[arg(long)]
    pub oversample: Option<usize>,
    /// With --compress: power iterations of the range finder, each costing two passes over the data (default 2).
    #[arg(long)]
    pub power_iters: Option<usize>,
    /// With --compress: exact iterations after the compressed ones (within --max-iter; not with a warm start on a subset, see --compress-samples).
    #[arg(long, default_value_t = NmfParams::default().polish)]
    pub polish: usize,
    /// With --compress on dense data with many samples: run the compressed iterations on a random subset of this many samples, then exact iterations on all samples from the start they give (--max-iter and --tol as in a plain fit). auto: 100·k samples when the data have at least 4 times as many; off: compressed iterations on all samples, then --polish.
    #[arg(long, value_name = "N|auto|off", default_value = "auto", value_parser = parse_compress_samples)]
    pub compress_samples: nmf::CompressSamples,
}

/// `--compress-samples`: `auto`, `off` or a sample count.
fn parse_compress_samples(s: &str) -> std::result::Result<nmf::CompressSamples, String> {
    match s {
        "auto" => Ok(nmf::CompressSamples::Auto),
        "off" => Ok(nmf::CompressSamples::Off),
        _ => s
            .parse::<usize>()
            .map(nmf::CompressSamples::Count)
            .map_err(|_| format!("expected auto, off or a number of samples, got '{s}'")),
    }
}

impl CompressArgs {
    /// The library's setting.
    pub fn setting(&self) -> nmf::Compress {
        let oversample = self.oversample.unwrap_or(nmf::compress::DEFAULT_OVERSAMPLE);
        let power_iters = self.power_iters.unwrap_or(nmf::compress::DEFAULT_POWER_ITERS);
        match self.compress {
            CompressMode::Off => nmf::Compress::Off,
            CompressMode::On => nmf::Compress::On {
                oversample,
                power_iters,
            },
            CompressMode::Auto => nmf::Compress::Auto {
                oversample,
                power_iters,
            },
        }
    }

    /// Refuses the flags of compression without `--compress`: they would have no effect.
    /// (`--polish` is told given by a value other than its default: `bench nmf` reads it as a
    /// number.)
    pub fn refuse_unused(&self) -> Result<()> {
        if self.compress != CompressMode::Off {
            return Ok(());
        }
        use crate::args::given;
        let polish = self.polish != NmfParams::default().polish;
        crate::args::refuse_outside(
            &[
                given("--oversample", self.oversample),
                given("--power-iters", self.power_iters),
                given("--polish", polish.then_some(self.polish)),
            ],
            "--compress",
            "--compress off",
        )
    }
}

#[derive(Args, Debug)]
pub struct SparseNmfArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Number of components (atoms).
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    pub k: usize,
    /// Hoyer sparseness of every atom, in [0, 1] (default: unconstrained).
    #[arg(long, value_name = "S")]
    pub atom_sparsity: Option<f64>,
    /// Hoyer sparseness of the codes, in [0, 1] (default: unconstrained); see --code-constraint.
    #[arg(long, value_name = "S")]
    pub code_sparsity: Option<f64>,
    /// What --code-sparsity constrains: components (each component's activations across all samples, unit L2; Hoyer's reference) or samples (each sample's code).
    #[arg(long, default_value = "components", requires = "code_sparsity")]
    pub code_constraint: partlearn::nmf::sparse::CodeConstraint,
    #[arg(long, default_value_t = 1000)]
    pub max_iter: usize,
    /// Every 10 iterations, stop when the error sqrt(2·objective) fell by less than tol × its initial value (0 disables).
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    /// Time budget in seconds.
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// Do not store the fitted codes in model.safetensors (they are stored by default: they are the constrained codes, which `transform` does not reproduce).
    #[arg(long)]
    pub no_save_codes: bool,
    /// Keep history.jsonl in the run's stage as the fit goes once it has run this many seconds (a killed fit leaves the iterations it did).
    #[arg(long, value_name = "SECONDS", default_value_t = crate::progress::HISTORY_AFTER, hide = true)]
    pub history_after: f64,
    #[command(flatten)]
    pub run: RunArgs,
}

fn fit_sparse_nmf<T: Real>(a: &SparseNmfArgs) -> Result<()> {
    use partlearn::nmf::sparse::{fit_sparse, SparseNmfParams};
    let opts = SparseNmfParams {
        k: a.k,
        atom_sparsity: a.atom_sparsity,
        code_sparsity: a.code_sparsity,
        code_constraint: a.code_constraint,
        max_iter: a.max_iter,
        tol: a.tol,
        max_seconds: a.max_seconds,
        seed: a.run.seed,
        threads: a.run.threads,
    };
    refuse_zero_iterations(a.max_iter, "--max-iter")?;
    let data = a.data.load::<T>()?;
    opts.validate(data.n_samples(), data.n_features())?;
    let out = a
        .run
        .out
        .clone()
        .unwrap_or_else(|| default_out("sparse-nmf", &a.data.spec, a.k));
    let run_dir = a.data.run_dir(&out, a.run.force, &[])?;
    let mut progress = FitProgress::new(opts.max_iter, a.run.quiet)
        .with_history(crate::progress::staged_history(&run_dir, a.history_after));
    let fit = fit_sparse(&data, &opts, &mut progress);
    progress.finish();
    finish_run(
        &a.run,
        &a.data,
        FitData::Dense(&data),
        "sparse-nmf",
        a.k,
        &opts,
        fit?,
        !a.no_save_codes,
        run_dir,
        None,
    )
}

pub fn run(cmd: FitCommand) -> Result<()> {
    match cmd {
        FitCommand::Nmf(a) => crate::nmf_cmd::run(&a),
        FitCommand::SparseNmf(a) => match a.run.dtype {
            Dtype::F32 => fit_sparse_nmf::<f32>(&a),
            Dtype::F64 => fit_sparse_nmf::<f64>(&a),
        },
        FitCommand::Ae(a) => crate::ae_cmd::run(partlearn::autoencoder::Architecture::Shallow, &a),
        FitCommand::AsymAe(a) => crate::ae_cmd::run(partlearn::autoencoder::Architecture::Asymmetric, &a),
        FitCommand::NeuralNmf(a) => crate::neural_cmd::run(&a),
        FitCommand::Ssnmf(a) => crate::deep_cmd::run_ssnmf(&a),
        FitCommand::Hnmf(a) => {
            crate::deep_cmd::run_layers(partlearn::deep::pipeline::LayerMethod::Hierarchical, &a)
        }
        FitCommand::DeepNmf(a) => {
            crate::deep_cmd::run_layers(partlearn::deep::pipeline::LayerMethod::DeepNmf, &a)
        }
    }
}

/// Refuses `flag 0` (iterations or epochs): the fit would return its start, unfitted.
pub fn refuse_zero_iterations(n: usize, flag: &str) -> Result<()> {
    if n == 0 {
        anyhow::bail!("invalid {flag} 0: the fit would return its unfitted start; give at least 1");
    }
    Ok(())
}

/// The state folder of a new fit placed in a free `--out` ([`resume::place`] keeps its
/// `history.jsonl` and checkpoint there): when dropped before the run was committed there, it
/// goes again unless it holds a checkpoint (resumable) or `run.json` (committed), so
/// that no error between the placement and the commit leaves a half-written folder. A folder
/// that existed before (`--force`, `--resume`) is never touched: its state lives in the stage, or
/// it holds the checkpoint.
///
/// [`resume::place`]: crate::resume::place
pub(crate) struct NewRunGuard(Option<PathBuf>);

impl NewRunGuard {
    /// The guard of `placement`, for a new run (`new`; a resumed one is left alone).
    pub fn new(placement: &crate::resume::Placement, new: bool) -> Self {
        let own = new && placement.state_dir != placement.run_dir.stage();
        NewRunGuard(own.then(|| placement.state_dir.clone()))
    }
}

impl Drop for NewRunGuard {
    fn drop(&mut self) {
        let Some(dir) = &self.0 else { return };
        let kept = [io::run::RUN_FILE, crate::resume::CHECKPOINT_FILE];
        if kept.iter().any(|f| dir.join(f).exists()) {
            return;
        }
        let _ = std::fs::remove_file(dir.join(io::run::HISTORY_FILE));
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if io::run::is_run_temp(&entry.file_name().to_string_lossy()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
}

/// Whether the data hold a NaN (a missing entry).
pub fn has_nan<T: Real>(data: &Dataset<T>) -> bool {
    let xt = data.xt();
    (0..xt.ncols()).any(|j| (0..xt.nrows()).any(|i| xt[(i, j)].is_nan()))
}

/// `--mask` with sparse data is refused: a sparse matrix's missing entries are not expressible
/// yet (its absent entries are zeros).
pub fn refuse_mask_on_sparse(mask: Option<&std::path::Path>) -> Result<()> {
    if mask.is_some() {
        anyhow::bail!("--mask works with dense data only (the absent entries of a sparse matrix are zeros); save the data densely (.npy) to mask entries, or drop --mask");
    }
    Ok(())
}

/// Reads `--mask FILE` (`n_samples × n_features`, 1 = observed: dense 0/1 as NPY or CSV, or
/// sparse as `.npz` / `.mtx[.gz]` listing the observed entries) with the data's `--first` /
/// `--subset` selection, so that its rows stay those of the data.
pub fn load_mask(path: &std::path::Path, data: &DataArgs) -> Result<nmf::Mask> {
    let opts = partlearn::data::LoadOptions {
        labels: None,
        ..data.load_options()
    };
    let spec = path.to_string_lossy();
    let context = || format!("reading --mask {spec}");
    if partlearn::data::is_sparse_file(&spec) {
        let a = partlearn::data::load_csr::<f64>(&spec, &opts).with_context(context)?;
        return nmf::Mask::from_csr(&a).with_context(context);
    }
    let m = partlearn::data::load::<f64>(&spec, &opts).with_context(context)?;
    nmf::Mask::from_matrix(m.x()).with_context(context)
}

/// The data a fit ran on, dense or sparse, or spread over processes (`n_samples × n_features`).
pub(crate) enum FitData<'a, T: Real> {
    Dense(&'a Dataset<T>),
    Sparse(&'a partlearn::data::Csr<T>),
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    Distributed {
        n: usize,
        m: usize,
        processes: usize,
    },
}

/// Writes the run folder of an NMF-type fit (model, history, run.json, figures), commits it and
/// prints the summary; exits 130 after an interruption (the run so far is saved).
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish_run<T: Real, O: Serialize>(
    run: &RunArgs,
    data_args: &DataArgs,
    data: FitData<'_, T>,
    method: &'static str,
    k: usize,
    options: &O,
    fit: nmf::NmfFit<T>,
    save_codes: bool,
    run_dir: RunDir,
    state: Option<&crate::nmf_cmd::FitState>,
) -> Result<()> {
    let codes = save_codes.then(|| fit.codes());
    let launcher = match &data {
        FitData::Distributed { processes, .. } => format!("mpirun -np {processes} "),
        _ => String::new(),
    };
    let (record, image, name, (n, m)) = match data {
        FitData::Dense(d) => (
            data_args.record(d),
            d.image_shape.map(|s| (d, s)),
            d.name.clone(),
            (d.n_samples(), d.n_features()),
        ),
        FitData::Sparse(x) => (
            data_args.record_csr(x),
            None,
            format!("{} (sparse, {} non-zeros)", data_args.spec, x.nnz()),
            (x.nrows(), x.ncols()),
        ),
        FitData::Distributed { n, m, processes } => (
            data_args.record_shape::<T>(n, m),
            None,
            format!("{} ({processes} processes)", data_args.spec),
            (n, m),
        ),
    };
    let (tensors, meta) = fit.model.to_tensors(codes, image.map(|(_, s)| s))?;
    run_dir.write(
        io::run::MODEL_FILE,
        &io::tensors::safetensors_bytes(&tensors, &meta)?,
    )?;
    let summary = FitSummary::new(fit.stop_reason, fit.n_iter, fit.seconds, &fit.warnings)
        .objective(fit.objective)
        .rel_error(fit.rel_error);
    let part = MethodPart::Nmf(NmfPart {
        options: record::to_value(options)?,
        reconstruction_err: fit
            .reconstruction_err
            .is_finite()
            .then_some(fit.reconstruction_err),
        stats: fit.stats,
        resumed_from_iter: state.and_then(|s| s.resumed.map(|(from, _)| from)),
        redone_iters: state.and_then(|s| s.resumed.map(|(_, n)| n)),
    });
    RunRecord::new(method, record, summary, part)
        .seed(run.seed)
        .threads(run.threads)
        .command(std::env::args().collect())
        .write(&run_dir, &fit.history)?;
    if let Some((data, shape)) = image {
        write_figures(&run_dir, &fit.model, fit.codes(), data, shape)?;
    }
    // A fit interrupted or out of time keeps its checkpoint: `--resume` continues it. One
    // stopped during its start (before the first iteration) has none.
    let stopped = matches!(fit.stop_reason, StopReason::Interrupted | StopReason::TimeLimit);
    let resumable = stopped && state.is_some_and(|s| s.checkpoint.is_file());
    if let Some(st) = state {
        crate::resume::settle_checkpoint(&run_dir, &st.checkpoint, resumable)?;
    }
    let path = run_dir.commit()?;
    let resume_hint = state.filter(|_| resumable).map(|_| {
        format!(
            "; continue with `{launcher}partlearn fit {method} --data {} --resume {}{}`",
            data_args.spec,
            path.display(),
            if launcher.is_empty() { "" } else { " --distributed" }
        )
    });

    let flags = crate::args::Flags::iterations();
    crate::progress::print_warnings(&fit.warnings, &flags);
    if run.json {
        let summary = serde_json::json!({
            "run": path,
            "method": method,
            "n_iter": fit.n_iter,
            "stop_reason": fit.stop_reason,
            "objective": fit.objective,
            "reconstruction_err": fit.reconstruction_err,
            "rel_error": fit.rel_error,
            "seconds": fit.seconds,
            "warnings": crate::args::warning_texts(&fit.warnings, &flags),
        });
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !run.quiet {
        outln!(
            "{method} k={k} on {} ({} × {}): {} iterations ({}), rel. error {:.5}, {:.2} s",
            name,
            n,
            m,
            fit.n_iter,
            fit.stop_reason,
            fit.rel_error,
            fit.seconds
        );
        outln!("wrote {}", path.display());
    }
    let hint = match resume_hint {
        Some(h) => h,
        None if stopped && state.is_some() => {
            "; it stopped during its start, before the first iteration, so there is nothing to resume: run the command again".to_string()
        }
        None => String::new(),
    };
    if fit.stop_reason == StopReason::Interrupted {
        errln!(
            "interrupted: the run so far was saved to {}{hint}",
            path.display()
        );
        return Err(Exit::Interrupted.into());
    }
    if fit.stop_reason == StopReason::TimeLimit && !run.quiet && !hint.is_empty() {
        errln!("out of time (--max-seconds){hint}");
    }
    Ok(())
}
