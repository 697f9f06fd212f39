//! `partlearn fit nmf`: maps flags to the library's checkpointed fit on dense, sparse or
//! incomplete data (`nmf::factorize_checkpointed`), and `--resume RUN` to `nmf::resume`. The
//! checkpoint and the growing history live where [`crate::resume`] places them; a fit that ends
//! interrupted or out of time keeps its checkpoint in the run folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use partlearn::io::{self, RunDir};
use partlearn::nmf::checkpoint::checkpoint_dtype;
use partlearn::nmf::{
    self, CustomInit, EncodeOptions, InitMethod, NmfCheckpoint, NmfInput, NmfParams, Solver,
};
use partlearn::Real;

use crate::args::Dtype;
use crate::fit::{finish_run, has_nan, load_mask, refuse_mask_on_sparse, FitData, NewRunGuard, NmfArgs};
use crate::online_cmd::SolverArg;
use crate::output::{default_out, read_matrix};
use crate::progress::{FitProgress, HistoryLog};
use crate::resume::{self, Placement, Resumed};

/// `fit nmf --max-iter` when not given.
pub const DEFAULT_MAX_ITER: usize = 200;

/// Flags (argument ids) a resumed fit cannot honour: its options are the checkpoint's. clap
/// refuses them next to --resume, so they are never silently ignored.
pub const RESUME_CONFLICTS: [&str; 23] = [
    "k",
    "solver",
    "beta_loss",
    "init",
    "init_atoms",
    "init_codes",
    "tol",
    "pg_tol",
    "alpha_w",
    "alpha_h",
    "l1_ratio",
    "hals_inner_max",
    "no_extrapolate",
    "encode",
    "encode_max_iter",
    "encode_tol",
    "compress",
    "oversample",
    "power_iters",
    "polish",
    "compress_samples",
    "seed",
    "dtype",
];

/// The checkpoint of a fit and, when it resumed one, the iteration it continued from and the
/// iterations the stopped process had done after it.
pub struct FitState {
    pub checkpoint: PathBuf,
    pub resumed: Option<(usize, usize)>,
}

pub fn run(a: &NmfArgs) -> Result<()> {
    refuse_unused_flags(a)?;
    if let Some(dir) = &a.resume {
        let r = Resumed::locate(dir, a.run.out.as_deref(), "fit nmf")?;
        return match checkpoint_dtype(&r.bytes, &r.path())?.as_str() {
            "f32" => resume_as::<f32>(a, dir, r),
            _ => resume_as::<f64>(a, dir, r),
        };
    }
    let online = matches!(a.solver, SolverArg::Online);
    match (a.run.dtype, online) {
        (Dtype::F32, true) => crate::online_cmd::fit::<f32>(a),
        (Dtype::F64, true) => crate::online_cmd::fit::<f64>(a),
        (Dtype::F32, false) => fit_new::<f32>(a),
        (Dtype::F64, false) => fit_new::<f64>(a),
    }
}

/// Refuses `--max-iter 0` and the flags of another solver or mode than the chosen one, which
/// would have no effect.
fn refuse_unused_flags(a: &NmfArgs) -> Result<()> {
    if let Some(n) = a.max_iter {
        crate::fit::refuse_zero_iterations(n, "--max-iter")?;
    }
    a.online.refuse_unused(a.solver)?;
    a.compress.refuse_unused()?;
    if let (Some(n), false) = (a.hals_inner_max, a.solver == SolverArg::Batch(Solver::Hals)) {
        return Err(crate::args::only_with(
            &format!("--hals-inner-max {n}"),
            "--solver hals",
            &format!("--solver {}", a.solver.name()),
        ));
    }
    Ok(())
}

/// The library's NMF parameters of the flags, with `solver`.
pub(crate) fn nmf_params(a: &NmfArgs, solver: Solver) -> NmfParams {
    NmfParams {
        k: a.k,
        solver,
        beta_loss: a.beta_loss,
        init: a.init,
        max_iter: a.max_iter.unwrap_or(DEFAULT_MAX_ITER),
        tol: a.tol,
        max_seconds: a.max_seconds,
        pg_tol: a.pg_tol,
        alpha_w: a.alpha_w,
        alpha_h: a.alpha_h,
        l1_ratio: a.l1_ratio,
        hals_inner_max: a.hals_inner_max,
        extrapolate: !a.no_extrapolate,
        seed: a.run.seed,
        threads: a.run.threads,
        encode: EncodeOptions {
            method: a.encode,
            max_iter: a.encode_max_iter,
            tol: a.encode_tol,
        },
        compress: a.compress.setting(),
        polish: a.compress.polish,
        compress_samples: a.compress.compress_samples,
        ..Default::default()
    }
}

/// The data of a fit as loaded: dense (with its mask) or sparse.
enum Loaded<T: Real> {
    Dense(partlearn::data::Dataset<T>, Option<nmf::Mask>),
    Sparse(partlearn::data::Csr<T>),
}

impl<T: Real> Loaded<T> {
    fn load(a: &NmfArgs) -> Result<Self> {
        if a.data.is_sparse() {
            refuse_mask_on_sparse(a.mask.as_deref())?;
            return Ok(Loaded::Sparse(a.data.load_csr::<T>()?));
        }
        let data = a.data.load::<T>()?;
        let mask = a.mask.as_deref().map(|p| load_mask(p, &a.data)).transpose()?;
        if mask.is_none() && !has_nan(&data) {
            // Entries ≥ 0 and a scale whose squares f32 can hold (the fit's own check names
            // no fix for the scale).
            data.validate_nonnegative()?;
        }
        Ok(Loaded::Dense(data, mask))
    }

    fn shape(&self) -> (usize, usize) {
        match self {
            Loaded::Dense(d, _) => (d.n_samples(), d.n_features()),
            Loaded::Sparse(x) => (x.nrows(), x.ncols()),
        }
    }

    /// The library's input: NaN entries or a mask make the data incomplete.
    fn input(&self) -> NmfInput<'_, T> {
        match self {
            Loaded::Dense(d, mask) if mask.is_some() || has_nan(d) => NmfInput::Masked(d.x(), mask.as_ref()),
            Loaded::Dense(d, _) => NmfInput::Dense(d.x()),
            Loaded::Sparse(x) => NmfInput::Sparse(x),
        }
    }

    fn fit_data(&self) -> FitData<'_, T> {
        match self {
            Loaded::Dense(d, _) => FitData::Dense(d),
            Loaded::Sparse(x) => FitData::Sparse(x),
        }
    }
}

fn fit_new<T: Real>(a: &NmfArgs) -> Result<()> {
    let solver = match a.solver {
        SolverArg::Batch(s) => s,
        SolverArg::Online => Solver::Hals,
    };
    let opts = nmf_params(a, solver);
    if opts.init != InitMethod::Custom && (a.init_atoms.is_some() || a.init_codes.is_some()) {
        anyhow::bail!("--init-atoms/--init-codes are only used with --init custom; add --init custom");
    }
    if a.dist.distributed {
        return crate::dist_cmd::fit_nmf::<T>(a, opts);
    }
    let checkpoint_every = resume::checkpoint_interval(a.checkpoint_minutes)?;
    let data = Loaded::<T>::load(a)?;
    // Check the options before any long work, and the output folder before the fit.
    let (n, m) = data.shape();
    opts.validate(n, m)?;
    let params = opts.check()?;
    let custom = custom_init::<T>(a)?;
    let placement = place_new(a)?;
    let _guard = NewRunGuard::new(&placement, true);
    let mut progress = fit_progress(a, &placement, opts.max_iter, Vec::new(), checkpoint_every);
    let checkpoint = placement.checkpoint();
    let fit = nmf::factorize_checkpointed(data.input(), &params, custom.as_ref(), &checkpoint, &mut progress);
    progress.finish();
    drop(progress);
    let fit = fit?;
    let state = FitState {
        checkpoint,
        resumed: None,
    };
    let Placement { run_dir, .. } = placement;
    finish_run(
        &a.run,
        &a.data,
        data.fit_data(),
        "nmf",
        a.k,
        &opts,
        fit,
        a.save_codes,
        run_dir,
        Some(&state),
    )
}

fn resume_as<T: Real>(a: &NmfArgs, dir: &Path, r: Resumed) -> Result<()> {
    if a.dist.distributed {
        return crate::dist_cmd::resume_nmf::<T>(a, dir, r);
    }
    let checkpoint_every = resume::checkpoint_interval(a.checkpoint_minutes)?;
    let ck = checkpoint_to_resume::<T>(a, dir, &r)?;
    let max_iter = ck.params().max_iter;
    let data = Loaded::<T>::load(a)?;
    let (placement, redone) = place_resumed(a, dir, &r, ck.done())?;
    let mut progress = fit_progress(
        a,
        &placement,
        max_iter,
        io::to_json_lines(ck.history())?,
        checkpoint_every,
    );
    let checkpoint = placement.checkpoint();
    let fit = nmf::resume(data.input(), &ck, Some(&checkpoint), &mut progress);
    progress.finish();
    drop(progress);
    let fit = fit?;
    let state = FitState {
        checkpoint,
        resumed: Some((ck.done(), redone)),
    };
    let Placement { run_dir, .. } = placement;
    let k = ck.params().k;
    finish_run(
        &a.run,
        &a.data,
        data.fit_data(),
        "nmf",
        k,
        ck.params(),
        fit,
        a.save_codes,
        run_dir,
        Some(&state),
    )
}

/// Where a new fit keeps its state and writes its run ([`resume::place`]), after refusing to
/// replace the state of an unfinished fit without `--force`.
pub(crate) fn place_new(a: &NmfArgs) -> Result<Placement> {
    let out = nmf_out(a);
    let again = format!(
        "partlearn fit nmf --data {} --resume {}",
        a.data.spec,
        out.display()
    );
    resume::refuse_unfinished(&out, a.run.force, &again)?;
    resume::place(&out, None, || nmf_run_dir(a, &out))
}

/// The checkpoint of `r` with the flags a resumed fit may change; an error when it has
/// already done every iteration asked for.
pub(crate) fn checkpoint_to_resume<T: Real>(
    a: &NmfArgs,
    dir: &Path,
    r: &Resumed,
) -> Result<NmfCheckpoint<T>> {
    let mut ck = NmfCheckpoint::<T>::from_bytes(&r.bytes, &r.path())?;
    ck.continue_with(a.max_iter, a.max_seconds, a.run.threads);
    let max_iter = ck.params().max_iter;
    if ck.done() >= max_iter && r.adopted.is_none() {
        io::run::clean_stale_stages(dir);
        anyhow::bail!(
            "the fit in {} has done all its {max_iter} iterations; give a larger --max-iter to go on",
            dir.display()
        );
    }
    Ok(ck)
}

/// Where a resumed fit keeps its state ([`resume::place`]), and the iterations a stopped
/// process had done after the checkpoint at `done` (said on stderr when there are some).
pub(crate) fn place_resumed(a: &NmfArgs, dir: &Path, r: &Resumed, done: usize) -> Result<(Placement, usize)> {
    let redone = r.redone("iter", done);
    let placement = resume::place(dir, Some(r), || Ok(RunDir::create(dir, true)?))?;
    if (redone > 0 || r.adopted.is_some()) && !a.run.quiet {
        errln!(
            "resuming {} from its checkpoint at iteration {done}: {redone} iteration{} done after it by the stopped process {} redone",
            dir.display(),
            if redone == 1 { "" } else { "s" },
            if redone == 1 { "is" } else { "are" },
        );
    }
    Ok((placement, redone))
}

/// The progress bar of a fit, with its growing `history.jsonl` beside the checkpoint
/// (starting with `initial`, a resumed fit's earlier records) and the checkpoint clock.
pub(crate) fn fit_progress(
    a: &NmfArgs,
    placement: &Placement,
    max_iter: usize,
    initial: Vec<u8>,
    checkpoint_every: Option<std::time::Duration>,
) -> FitProgress {
    let after = if initial.is_empty() {
        std::time::Duration::try_from_secs_f64(a.history_after).unwrap_or(std::time::Duration::MAX)
    } else {
        std::time::Duration::ZERO
    };
    let history = HistoryLog::new(placement.state_dir.join(io::run::HISTORY_FILE), after, initial);
    FitProgress::new(max_iter, a.run.quiet)
        .with_history(history)
        .checkpoint_every(checkpoint_every)
}

/// `--out` or the default folder of `fit nmf`.
pub(crate) fn nmf_out(a: &NmfArgs) -> PathBuf {
    a.run
        .out
        .clone()
        .unwrap_or_else(|| default_out("nmf", &a.data.spec, a.k))
}

/// The output folder `out` of `fit nmf` (checked before the fit), never one holding the fit's
/// own inputs.
pub(crate) fn nmf_run_dir(a: &NmfArgs, out: &Path) -> Result<RunDir> {
    a.data.run_dir(
        out,
        a.run.force,
        &[
            ("--init-atoms", a.init_atoms.as_deref()),
            ("--init-codes", a.init_codes.as_deref()),
            ("--mask", a.mask.as_deref()),
        ],
    )
}

/// `--init-atoms` / `--init-codes`.
fn custom_init<T: Real>(a: &NmfArgs) -> Result<Option<CustomInit<T>>> {
    Ok(match &a.init_atoms {
        Some(p) => Some(CustomInit {
            atoms: read_matrix::<T>(p).with_context(|| "reading --init-atoms")?,
            codes: a
                .init_codes
                .as_deref()
                .map(read_matrix::<T>)
                .transpose()
                .with_context(|| "reading --init-codes")?,
        }),
        None => None,
    })
}
