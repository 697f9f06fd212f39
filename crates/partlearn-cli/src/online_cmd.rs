//! `partlearn fit nmf --solver online`: online (mini-batch) NMF on rows streamed from the data
//! (METHODS.md §11.3). A `.npy` file, a folder of `.npy` shards, a CSR `.npz` or a MatrixMarket
//! `.mtx[.gz]` is read block by block, never loaded whole (an `.mtx` not grouped by row is first
//! sorted by row into a temporary copy at bounded memory, in `--temp-dir`, by default the folder
//! of `--out`); other data (named sets, CSV, CSC/COO `.npz`) are loaded as usual and fed by
//! blocks. The run's codes come from a second streaming pass, written block by block to
//! `codes.npy` (n × k, float32 or float64 as --dtype).

use std::path::Path;

use anyhow::Result;
use clap::Args;
use partlearn::data::mtx::{MtxRows, MtxRowsOptions};
use partlearn::data::npz::{npz_format, NpzRows};
use partlearn::data::rows::{CsrRows, DenseRows, NpyRows, NpyShards, RowSource};
use partlearn::engine::StopReason;
use partlearn::io::record::{self, NmfPart};
use partlearn::io::{self, DataSpec, FitSummary, MethodPart, RunRecord};
use partlearn::nmf::online::{self, MiniBatchParams};
use partlearn::nmf::{InitMethod, Solver};
use partlearn::Real;

use crate::args::Exit;
use crate::fit::NmfArgs;
use crate::progress::EpochProgress;

/// The file the online solver writes its codes to, in the run folder.
pub use partlearn::io::run::CODES_FILE;

/// `--solver`: a batch solver of the library, or online.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolverArg {
    Batch(Solver),
    Online,
}

impl SolverArg {
    /// The name `--solver` takes.
    pub fn name(self) -> &'static str {
        match self {
            SolverArg::Batch(Solver::Mu) => "mu",
            SolverArg::Batch(Solver::Hals) => "hals",
            SolverArg::Batch(Solver::Anls) => "anls",
            SolverArg::Online => "online",
        }
    }
}

impl std::str::FromStr for SolverArg {
    type Err = partlearn::Error;
    fn from_str(s: &str) -> partlearn::Result<Self> {
        match s {
            "online" | "minibatch" => Ok(SolverArg::Online),
            _ => s
                .parse()
                .map(SolverArg::Batch)
                .map_err(|_| partlearn::Error::invalid("solver", s, "use mu, hals, anls or online")),
        }
    }
}

/// The flags of the online solver (`fit nmf --solver online`); given with another solver they
/// are refused ([`OnlineArgs::refuse_unused`]).
#[derive(Args, Debug, Clone)]
pub struct OnlineArgs {
    /// With --solver online: rows per mini-batch (default 1024).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// With --solver online: weight of the past statistics after one pass, in (0, 1] (default 0.7).
    #[arg(long)]
    pub forget_factor: Option<f64>,
    /// With --solver online: solve every batch's codes to --tol (at most --fresh-restarts-max-iter sweeps) instead of a few sweeps; slower per batch, closer to the batch solution.
    #[arg(long)]
    pub fresh_restarts: bool,
    /// With --solver online and --fresh-restarts: sweep limit of a batch's codes (default 30).
    #[arg(long)]
    pub fresh_restarts_max_iter: Option<usize>,
    /// With --solver online: stop after N batches without improvement of the smoothed batch cost (0 disables; default 10).
    #[arg(long, value_name = "N")]
    pub max_no_improvement: Option<usize>,
    /// With --solver online and a .mtx[.gz] not grouped by row: folder for its row-sorted temporary copy (16 bytes per entry; default: the folder of --out).
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<std::path::PathBuf>,
}

impl OnlineArgs {
    /// Refuses these flags with a `solver` other than online: they would have no effect.
    pub fn refuse_unused(&self, solver: SolverArg) -> Result<()> {
        if solver == SolverArg::Online {
            return Ok(());
        }
        use crate::args::given;
        crate::args::refuse_outside(
            &[
                given("--batch-size", self.batch_size),
                given("--forget-factor", self.forget_factor),
                ("--fresh-restarts".into(), self.fresh_restarts),
                given("--fresh-restarts-max-iter", self.fresh_restarts_max_iter),
                given("--max-no-improvement", self.max_no_improvement),
                given("--temp-dir", self.temp_dir.as_ref().map(|d| d.display())),
            ],
            "--solver online",
            &format!("--solver {}", solver.name()),
        )
    }
}

/// Where the rows come from.
enum Source<T: Real> {
    File(NpyRows),
    Npz(NpzRows),
    Mtx(MtxRows),
    Shards(NpyShards),
    Dense(partlearn::data::Dataset<T>),
    Sparse(partlearn::data::Csr<T>),
}

impl<T: Real> Source<T> {
    fn open(a: &NmfArgs) -> Result<Self> {
        let d = &a.data;
        let path = Path::new(&d.spec);
        let lower = d.spec.to_ascii_lowercase();
        // A CSR .npz streams its rows too (other sparse formats are loaded and converted).
        let npz_csr = lower.ends_with(".npz") && path.is_file() && npz_format(path)? == "csr";
        let mtx = (lower.ends_with(".mtx") || lower.ends_with(".mtx.gz")) && path.is_file();
        let streamed = npz_csr
            || mtx
            || (!d.is_sparse() && (path.is_dir() || (lower.ends_with(".npy") && path.is_file())));
        if streamed {
            if d.first.is_some() || d.subset.is_some() || d.labels.is_some() {
                anyhow::bail!(
                    "--first, --subset and --labels are not applied to streamed data ({}); write the rows you want to an .npy file, or drop them",
                    d.spec
                );
            }
            return Ok(if npz_csr {
                Source::Npz(NpzRows::open(path)?)
            } else if mtx {
                Source::Mtx(open_mtx(path, a)?)
            } else if path.is_dir() {
                Source::Shards(NpyShards::open(path)?)
            } else {
                Source::File(NpyRows::open(path)?)
            });
        }
        Ok(if d.is_sparse() {
            Source::Sparse(d.load_csr::<T>()?)
        } else {
            Source::Dense(d.load::<T>()?)
        })
    }

    fn rows(&mut self) -> Box<dyn RowSource<T> + '_> {
        match self {
            Source::File(f) => Box::new(&mut *f),
            Source::Npz(f) => Box::new(&mut *f),
            Source::Mtx(f) => Box::new(&mut *f),
            Source::Shards(s) => Box::new(&mut *s),
            Source::Dense(d) => Box::new(DenseRows::new(d.x())),
            Source::Sparse(x) => Box::new(CsrRows::new(x)),
        }
    }

    fn record(&self, a: &NmfArgs, n: usize, m: usize) -> DataSpec {
        match self {
            Source::Dense(d) => a.data.record(d),
            Source::Sparse(x) => a.data.record_csr(x),
            Source::File(_) | Source::Npz(_) | Source::Mtx(_) | Source::Shards(_) => DataSpec {
                name: a.data.spec.clone(),
                n_samples: n,
                n_features: m,
                dtype: T::NAME.into(),
                image_shape: None,
                spec: Some(a.data.spec.clone()),
                first: None,
                subset: None,
                data_seed: 0,
            },
        }
    }

    fn image_shape(&self) -> Option<(usize, usize)> {
        match self {
            Source::Dense(d) => d.image_shape,
            _ => None,
        }
    }
}

/// Opens a `.mtx[.gz]` for streaming; one not grouped by row is sorted into a temporary copy in
/// `--temp-dir`, by default the folder that receives the run folder (not the system's temporary
/// folder, often a RAM-backed tmpfs), and a note says so.
pub(crate) fn open_mtx(path: &Path, a: &NmfArgs) -> Result<MtxRows> {
    let out = crate::nmf_cmd::nmf_out(a);
    open_mtx_beside(path, a.online.temp_dir.as_deref(), &out, a.run.quiet)
}

/// Opens a `.mtx[.gz]` for streaming, sorting one not grouped by row into a temporary copy in
/// `temp_dir`, by default the existing folder nearest above `out` (the command's output), with
/// a note on stderr unless `quiet`.
pub(crate) fn open_mtx_beside(
    path: &Path,
    temp_dir: Option<&Path>,
    out: &Path,
    quiet: bool,
) -> Result<MtxRows> {
    let dir = match temp_dir {
        Some(d) => d.to_path_buf(),
        None => {
            let out = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
            out.ancestors()
                .skip(1)
                .find(|p| p.is_dir())
                .map_or_else(|| ".".into(), Path::to_path_buf)
        }
    };
    let opts = MtxRowsOptions {
        temp_dir: Some(dir),
        ..MtxRowsOptions::default()
    };
    let rows = MtxRows::open_with(path, &opts)?;
    if let (Some(r), false) = (rows.reordered(), quiet) {
        errln!("{}", reorder_note(path, r));
    }
    Ok(rows)
}

pub fn reorder_note(path: &Path, r: &partlearn::data::mtx::Reordered) -> String {
    format!(
        "note: {} is not grouped by row ({}); it was sorted once by row into a temporary copy of {:.1} MB in {} ({} run(s) sorted in memory), deleted at exit. Write it row by row (e.g. scipy.io.mmwrite of a CSR matrix) to skip this step",
        path.display(),
        r.reason,
        r.temp_bytes as f64 / 1e6,
        r.temp_dir.display(),
        r.runs
    )
}

/// Runs `fit nmf --solver online` and writes the run folder.
pub fn fit<T: Real>(a: &NmfArgs) -> Result<()> {
    if a.mask.is_some() {
        anyhow::bail!(
            "--mask is not supported by --solver online; use --solver hals, mu or anls for masked data"
        );
    }
    if a.init == InitMethod::Custom {
        anyhow::bail!("--init custom is not supported by --solver online (it starts from its first batch); use auto, random or an nndsvd variant");
    }
    let (o, d) = (&a.online, MiniBatchParams::default());
    let opts = MiniBatchParams {
        nmf: crate::nmf_cmd::nmf_params(a, Solver::Hals),
        batch_size: o.batch_size.unwrap_or(d.batch_size),
        forget_factor: o.forget_factor.unwrap_or(d.forget_factor),
        fresh_restarts: o.fresh_restarts,
        fresh_restarts_max_iter: o.fresh_restarts_max_iter.unwrap_or(d.fresh_restarts_max_iter),
        max_no_improvement: match o.max_no_improvement {
            Some(0) => None,
            Some(n) => Some(n),
            None => d.max_no_improvement,
        },
    };
    let valid = opts.check()?;
    let mut source = Source::<T>::open(a)?;
    let (n, m) = {
        let r = source.rows();
        (r.n_rows(), r.n_cols())
    };
    valid.check_shape(n, m)?;
    let run_dir = crate::nmf_cmd::nmf_run_dir(a, &crate::nmf_cmd::nmf_out(a))?;
    let mut progress = EpochProgress::new(a.run.quiet);
    let fit = online::fit_rows(source.rows().as_mut(), &valid, &mut progress);
    progress.finish();
    let fit = fit?;
    // The codes: a second streaming pass, written block by block.
    let t = std::time::Instant::now();
    let mut eval = None;
    let threads = a.run.threads;
    run_dir.write_with(CODES_FILE, |w| {
        let e = crate::transform::write_codes_rows(w, n, fit.model.k(), |sink| {
            online::transform_rows(&fit.model, source.rows().as_mut(), opts.batch_size, threads, sink)
        })?;
        eval = Some(e);
        Ok(())
    })?;
    let transform_seconds = t.elapsed().as_secs_f64();
    let eval = eval.ok_or_else(|| anyhow::anyhow!("the codes were not computed"))?;
    let (tensors, meta) = fit.model.to_tensors(None, source.image_shape())?;
    run_dir.write(
        io::run::MODEL_FILE,
        &io::tensors::safetensors_bytes(&tensors, &meta)?,
    )?;
    let rel_error = eval.rel_error();
    let sq = eval.sq_error.max(0.0);
    let summary = FitSummary::new(fit.stop_reason, fit.n_iter, fit.seconds, &fit.warnings)
        .objective(0.5 * sq)
        .rel_error(rel_error);
    let part = MethodPart::Nmf(NmfPart {
        options: record::to_value(&opts)?,
        reconstruction_err: Some(sq.sqrt()),
        stats: fit.stats,
        resumed_from_iter: None,
        redone_iters: None,
    });
    RunRecord::new("nmf", source.record(a, n, m), summary, part)
        .seed(a.run.seed)
        .threads(a.run.threads)
        .command(std::env::args().collect())
        .write(&run_dir, &fit.history)?;
    let path = run_dir.commit()?;
    let flags = crate::args::Flags::iterations();
    crate::progress::print_warnings(&fit.warnings, &flags);
    if a.run.json {
        let summary = serde_json::json!({
            "run": path,
            "method": "nmf",
            "solver": "online",
            "n_iter": fit.n_iter,
            "n_steps": fit.n_steps,
            "stop_reason": fit.stop_reason,
            "objective": 0.5 * sq,
            "reconstruction_err": sq.sqrt(),
            "rel_error": rel_error,
            "seconds": fit.seconds,
            "transform_seconds": transform_seconds,
            "rows_per_second": fit.stats.rows_per_second,
            "warnings": crate::args::warning_texts(&fit.warnings, &flags),
        });
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !a.run.quiet {
        outln!(
            "nmf (online) k={} on {} ({n} × {m}): {} passes, {} batches ({}), rel. error {:.5}, {:.2} s ({:.0} rows/s) + codes {:.2} s",
            a.k,
            a.data.spec,
            fit.n_iter,
            fit.n_steps,
            fit.stop_reason,
            rel_error,
            fit.seconds,
            fit.stats.rows_per_second,
            transform_seconds
        );
        outln!("wrote {}", path.display());
    }
    if fit.stop_reason == StopReason::Interrupted {
        errln!("interrupted: the run so far was saved to {}", path.display());
        return Err(Exit::Interrupted.into());
    }
    Ok(())
}
