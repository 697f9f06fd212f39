//! The MPI side of `--distributed`: one process per rank of `mpirun`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use faer::Mat;
use partlearn::data::Csr;
use partlearn::dist::{Comm, Grid, MpiComm, Part};
use partlearn::engine::Silent;
use partlearn::nmf::{distributed, NmfInput, NmfParams};
use partlearn::Real;

use super::{
    data_shape, plan, prepare_shard_dir, read_block, read_block_values, read_sparse_block,
    read_sparse_grid_block, refuse_grid, refuse_selection, resolve_grid, shard_name, BlockPlan,
};
use crate::fit::{finish_run, FitData, NmfArgs};
use crate::nmf_cmd::{checkpoint_to_resume, fit_progress, place_new, place_resumed, FitState};
use crate::resume::{self, Placement, Resumed};
use crate::transform::{matrix_npy_bytes, sparse_sq_errors, TransformArgs};

/// Joins the MPI job; with `timeout` > 0 a watchdog thread ends this process (and so the job:
/// mpirun stops the others) when one reduction has waited longer than `timeout` seconds.
fn join(timeout: f64) -> Result<MpiComm> {
    let comm = MpiComm::init()?;
    if timeout > 0.0 {
        let probe = comm.pending_probe();
        let rank = comm.rank();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            if let Some(t) = probe().filter(|&t| t > timeout) {
                errln!(
                    "error: process {rank} waited {t:.0} s for the other processes in a reduction (--mpi-timeout {timeout}); one of them hung or died"
                );
                std::process::exit(3);
            }
        });
    }
    Ok(comm)
}

/// `local` on every process when all succeeded; otherwise each failing process returns its own
/// error and the others say how many failed (no process is left waiting in a reduction).
fn agree<V>(comm: &MpiComm, local: Result<V>) -> Result<V> {
    let mut failed = [f64::from(u8::from(local.is_err()))];
    comm.sum(&mut failed);
    match local {
        Err(e) => Err(e),
        Ok(_) if failed[0] > 0.0 => anyhow::bail!(
            "{} other process(es) of the job failed (each printed its error)",
            failed[0]
        ),
        Ok(v) => Ok(v),
    }
}

/// This process's rows as an `n_local × m` matrix, and where they sit.
fn load<T: Real>(spec: &str, comm: &MpiComm) -> Result<(Mat<T>, BlockPlan)> {
    let plan = plan(spec, comm.size(), comm.rank())?;
    let vals = read_block(&plan)?.data.to_real::<T>();
    let (n, m) = (plan.rows.len(), plan.m);
    Ok((Mat::from_fn(n, m, |i, j| vals[i * m + j]), plan))
}

/// This process's rows of a fit's data: dense, or sparse from a `.npz`/`.mtx[.gz]`.
enum Rows<T: Real> {
    Dense(Mat<T>),
    Sparse(Csr<T>),
}

impl<T: Real> Rows<T> {
    /// This process's block of a fit's data on the grid of `--grid` (for rank `k`).
    fn load(a: &NmfArgs, comm: &MpiComm, k: usize) -> Result<(Self, BlockPlan, Grid)> {
        let (p, rank) = (comm.size(), comm.rank());
        if partlearn::data::is_sparse_file(&a.data.spec) {
            let choose = |n, m| resolve_grid(&a.dist.grid, p, (n, m), k, false);
            let (x, plan, grid) = read_sparse_grid_block(&a.data.spec, choose, rank, |path| {
                crate::online_cmd::open_mtx(path, a)
            })?;
            return Ok((Rows::Sparse(x), plan, grid));
        }
        let shape = data_shape(&a.data.spec)?;
        let sharded = Path::new(&a.data.spec).is_dir();
        let grid = resolve_grid(&a.dist.grid, p, shape, k, sharded)?;
        let (i, j) = (rank / grid.cols, rank % grid.cols);
        let mut plan = plan(&a.data.spec, grid.rows, i)?;
        plan.features = partlearn::dist::row_block(plan.m, grid.cols, j);
        let vals = read_block_values::<T>(&plan)?;
        let (n, w) = (plan.rows.len(), plan.features.len());
        Ok((
            Rows::Dense(Mat::from_fn(n, w, |r, c| vals[r * w + c])),
            plan,
            grid,
        ))
    }

    fn input(&self) -> NmfInput<'_, T> {
        match self {
            Rows::Dense(x) => NmfInput::Dense(x.as_ref()),
            Rows::Sparse(x) => NmfInput::Sparse(x),
        }
    }
}

/// `fit nmf --distributed`.
pub fn fit_nmf<T: Real>(a: &NmfArgs, opts: NmfParams) -> Result<()> {
    fit::<T>(a, Start::New(opts))
}

/// `fit nmf --resume RUN --distributed`: every process has read the checkpoint (`r`).
pub fn resume_nmf<T: Real>(a: &NmfArgs, dir: &Path, r: Resumed) -> Result<()> {
    fit::<T>(a, Start::Resume(dir, r))
}

/// A new fit with its options, or the run to resume.
enum Start<'a> {
    New(NmfParams),
    Resume(&'a Path, Resumed),
}

fn fit<T: Real>(a: &NmfArgs, start: Start<'_>) -> Result<()> {
    let comm = join(a.dist.mpi_timeout)?;
    let rank = comm.rank();
    let prepared = (|| -> Result<_> {
        refuse_selection(&a.data)?;
        if a.mask.is_some() {
            anyhow::bail!(
                "--mask is not used with --distributed; fit data with missing entries in one process"
            );
        }
        let every = resume::checkpoint_interval(a.checkpoint_minutes)?;
        let (ck, opts) = match &start {
            Start::Resume(dir, r) => {
                let ck = checkpoint_to_resume::<T>(a, dir, r)?;
                let opts = ck.params().clone();
                (Some(ck), opts)
            }
            Start::New(opts) => (None, opts.clone()),
        };
        let (x, plan, grid) = Rows::<T>::load(a, &comm, opts.k)?;
        let params = opts.validate(plan.n_total, plan.m)?;
        Ok((x, plan, grid, opts, params, ck, every))
    })();
    let (x, plan, grid, opts, params, ck, every) = agree(&comm, prepared)?;
    // Rank 0 writes the run and the checkpoints, where a one-process fit would.
    let placed = agree(
        &comm,
        (rank == 0)
            .then(|| -> Result<_> {
                match (&start, &ck) {
                    (Start::Resume(dir, r), Some(ck)) => {
                        let (placement, redone) = place_resumed(a, dir, r, ck.done())?;
                        let initial = partlearn::io::to_json_lines(ck.history())?;
                        Ok((placement, Some((ck.done(), redone)), initial))
                    }
                    _ => Ok((place_new(a)?, None, Vec::new())),
                }
            })
            .transpose(),
    )?;
    let part = Part::on_grid(&comm, grid, plan.n_total, plan.m)?;
    let run = |save: &Path, observer: &mut (dyn partlearn::engine::Observer + Send)| match &ck {
        Some(ck) => distributed::resume_part(x.input(), ck, part, Some(save), observer),
        None => distributed::factorize_part_checkpointed(x.input(), &params, part, save, observer),
    };
    let Some((placement, resumed, initial)) = placed else {
        // Rank 1…P−1: no output of their own; rank 0 gathers their codes.
        let fit = run(Path::new(""), &mut Silent)?;
        if a.save_codes {
            gather_codes(&comm, fit, part.position().1 == 0)?;
        }
        return Ok(());
    };
    let _guard = crate::fit::NewRunGuard::new(&placement, resumed.is_none());
    let mut progress = fit_progress(a, &placement, opts.max_iter, initial, every);
    let checkpoint = placement.checkpoint();
    let fit = run(&checkpoint, &mut progress);
    progress.finish();
    drop(progress);
    let fit = fit?;
    let fit = if a.save_codes {
        gather_codes(&comm, fit, true)?
    } else {
        fit
    };
    let data = FitData::Distributed {
        n: plan.n_total,
        m: plan.m,
        processes: comm.size(),
    };
    let state = FitState { checkpoint, resumed };
    let Placement { run_dir, .. } = placement;
    finish_run(
        &a.run,
        &a.data,
        data,
        "nmf",
        opts.k,
        &opts,
        fit,
        a.save_codes,
        run_dir,
        Some(&state),
    )
}

/// Rank 0 receives every rank's codes (in rank order) and stores all of them in its fit. On a
/// 2-D grid only the first grid column `sends` (the other ranks of a grid row hold the same
/// codes) and the others send nothing.
fn gather_codes<T: Real>(
    comm: &MpiComm,
    fit: partlearn::nmf::NmfFit<T>,
    sends: bool,
) -> Result<partlearn::nmf::NmfFit<T>> {
    let c = fit.codes();
    if comm.rank() != 0 {
        let rows = if sends { c.nrows() } else { 0 };
        let bytes: Vec<u8> = (0..rows)
            .flat_map(|i| (0..c.ncols()).map(move |j| c[(i, j)].to_f64()))
            .flat_map(f64::to_le_bytes)
            .collect();
        comm.send_bytes(0, &bytes);
        return Ok(fit);
    }
    let k = c.ncols();
    let mut rows: Vec<f64> = (0..c.nrows())
        .flat_map(|i| (0..k).map(move |j| c[(i, j)].to_f64()))
        .collect();
    for r in 1..comm.size() {
        let b = comm.receive_bytes(r);
        rows.extend(
            b.chunks_exact(8)
                .map(|w| f64::from_le_bytes(w.try_into().unwrap_or([0; 8]))),
        );
    }
    let n = rows.len() / k.max(1);
    let all = Mat::<T>::from_fn(n, k, |i, j| T::from_f64(rows[i * k + j]));
    Ok(fit.with_codes(all.as_ref())?)
}

/// `transform --distributed`: each process encodes its rows and writes `--out/part-RRRRR.npy`.
pub fn transform<T: Real>(a: &TransformArgs) -> Result<()> {
    let comm = join(a.dist.mpi_timeout)?;
    let rank = comm.rank();
    let prepared = (|| -> Result<_> {
        refuse_selection(&a.data)?;
        if a.mask.is_some() {
            anyhow::bail!(
                "--mask is not used with --distributed; encode data with missing entries in one process"
            );
        }
        refuse_grid(&a.dist)?;
        partlearn::io::run::check_output_outside_run(&a.run, &a.out)?;
        a.data.check_not_input(&a.out, "--out")?;
        let loaded = partlearn::protocol::load_model::<T>(&a.run)?;
        let (x, plan) = if partlearn::data::is_sparse_file(&a.data.spec) {
            let (x, plan) = read_sparse_block(&a.data.spec, comm.size(), comm.rank(), |p| {
                crate::online_cmd::open_mtx_beside(p, None, &a.out, a.quiet || rank != 0)
            })?;
            (Rows::Sparse(x), plan)
        } else {
            let (x, plan) = load::<T>(&a.data.spec, &comm)?;
            (Rows::Dense(x), plan)
        };
        Ok((loaded, x, plan))
    })();
    let (loaded, x, plan) = agree(&comm, prepared)?;
    agree(
        &comm,
        if rank == 0 {
            prepare_shard_dir(&a.out, a.force)
        } else {
            Ok(())
        },
    )?;
    let start = Instant::now();
    let done = (|| -> Result<_> {
        let codes = match &x {
            Rows::Dense(x) => loaded.model.encode(x.as_ref(), a.threads)?,
            Rows::Sparse(x) => loaded.model.encode_csr(x, a.threads)?,
        };
        partlearn::io::write_atomic(&a.out.join(shard_name(rank)), &matrix_npy_bytes(codes.as_ref()))?;
        let (err, norm) = match &x {
            Rows::Dense(x) => {
                let recon = loaded.model.decode(codes.as_ref())?;
                let (mut err, mut norm) = (0.0, 0.0);
                for j in 0..x.ncols() {
                    for i in 0..x.nrows() {
                        let v = x[(i, j)].to_f64();
                        err += (v - recon[(i, j)].to_f64()).powi(2);
                        norm += v * v;
                    }
                }
                (err, norm)
            }
            Rows::Sparse(x) => sparse_sq_errors(loaded.model.atoms(), x, codes.as_ref(), a.threads)?,
        };
        Ok((codes.ncols(), err, norm))
    })();
    let (k, err, norm) = agree(&comm, done)?;
    let mut sums = [err, norm];
    comm.sum(&mut sums);
    let seconds = start.elapsed().as_secs_f64();
    let rel = if sums[1] > 0.0 {
        (sums[0] / sums[1]).sqrt()
    } else {
        0.0
    };
    if rank == 0 {
        let n = plan.n_total;
        let p = comm.size();
        if a.json {
            let s = serde_json::json!({"out": a.out, "n_samples": n, "k": k, "shards": p, "rel_error": rel, "seconds": seconds});
            outln!("{}", serde_json::to_string_pretty(&s)?);
        } else if !a.quiet {
            outln!(
                "encoded {n} samples with k={k} on {p} processes in {seconds:.2} s (rel. error {rel:.5}); wrote {}/part-*.npy",
                a.out.display()
            );
        }
    }
    Ok(())
}

/// `eval --distributed`: each process encodes and measures its rows; process 0 runs the SVM
/// protocol on the gathered codes (with `--labels`) and writes RUN/metrics.json.
pub fn eval<T: Real>(a: &crate::eval_cmd::EvalArgs) -> Result<()> {
    let comm = join(a.dist.mpi_timeout)?;
    let rank = comm.rank();
    let prepared = (|| -> Result<_> {
        if a.data.first.is_some() || a.data.subset.is_some() || a.data.sparse {
            anyhow::bail!("--first, --subset and --sparse are not used with --distributed; shard the rows you want with `partlearn data shard` first");
        }
        refuse_grid(&a.dist)?;
        if a.mask.is_some() || a.stored_codes {
            anyhow::bail!(
                "--mask and --stored-codes are not used with eval --distributed; evaluate in one process"
            );
        }
        if partlearn::data::is_sparse_file(&a.data.spec) {
            anyhow::bail!("eval --distributed reads dense rows (.npy or shards); evaluate sparse data in one process (`partlearn eval RUN --data {}`)", a.data.spec);
        }
        let dir = partlearn::io::open_existing(&a.run)?;
        let metrics_path = dir.join(partlearn::io::run::METRICS_FILE);
        if metrics_path.exists() && !a.force {
            return Err(partlearn::Error::AlreadyExists { path: metrics_path }.into());
        }
        let loaded = partlearn::protocol::load_model::<T>(&dir)?;
        let (x, plan) = load::<T>(&a.data.spec, &comm)?;
        let labels = match (&a.data.labels, rank, a.no_svm) {
            (Some(p), 0, false) => Some(
                partlearn::data::spec::load_labels(p, plan.n_total)?
                    .into_iter()
                    .map(|c| c as usize)
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        };
        Ok((metrics_path, loaded, x, plan, labels))
    })();
    let (metrics_path, loaded, x, plan, labels) = agree(&comm, prepared)?;
    let data = partlearn::data::Dataset::from_rows(x.as_ref(), a.data.spec.clone());
    let part = Part::rows(&comm, plan.offset, plan.n_total, plan.m);
    let opts = crate::eval_cmd::eval_options(a);
    let m = partlearn::eval::distributed::evaluate_part(
        loaded.model.as_ref(),
        &data,
        labels.as_deref(),
        loaded.image_shape,
        &opts,
        part,
    )?;
    let written = if rank == 0 {
        crate::eval_cmd::write_metrics(a, &m, &metrics_path)
    } else {
        Ok(())
    };
    agree(&comm, written)
}
