//! `--distributed` (under `mpirun -np P`, with the `mpi` feature): `fit nmf` on row blocks
//! (the library's `nmf::distributed`), `transform` writing one codes shard per process, and the
//! shard folders (`part-00000.npy`, …) that `data shard` writes and both read.
// Without the `mpi` feature only the shard folders are used (by `data shard`).
#![cfg_attr(not(feature = "mpi"), allow(dead_code))]

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use partlearn::dist::{row_block, Grid};
use partlearn::npy::{npy_shape, read_npy_rows, NpyArray};

/// The flags of a distributed run.
#[derive(Args, Debug, Clone)]
pub struct DistArgs {
    /// Run as one of the processes of `mpirun -np P` (build with `--features mpi`): each process reads only its block of --data (a .npy file, read by offset; a sparse .npz or .mtx[.gz], keeping its rows; or a folder of shards part-00000.npy… from `data shard`, one per process), the Grams and cross products are summed over processes each iteration (see --grid); rank 0 writes the run folder and the checkpoints (--resume continues them on any number of processes). Frobenius loss, random or NNDSVD start.
    #[arg(long)]
    pub distributed: bool,
    /// With --distributed (fit nmf): the processor grid ROWSxCOLS, blocks of samples × blocks of features (ROWS·COLS = P; COLSx1 is the 1-D row distribution, every process holding whole samples and all atoms), or `auto`: the grid that moves the fewest words per iteration for the data's shape (1-D for tall data such as images; about √P × √P when samples and features are alike). A folder of shards is 1-D.
    #[arg(
        long,
        value_name = "ROWSxCOLS|auto",
        default_value = "auto",
        requires = "distributed"
    )]
    pub grid: String,
    /// With --distributed: a process that waits this many seconds for the others in one reduction ends the job with an error (a hung or dead process; 0 = wait forever).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 600.0,
        requires = "distributed"
    )]
    pub mpi_timeout: f64,
}

/// The name of shard `r` in a shard folder.
pub fn shard_name(r: usize) -> String {
    format!("part-{r:05}.npy")
}

/// The shards of folder `dir` in order, or an error naming what is wrong.
pub fn shards(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| partlearn::Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-") && n.ends_with(".npy"))
        })
        .collect();
    found.sort();
    for (r, p) in found.iter().enumerate() {
        if p.file_name().and_then(|n| n.to_str()) != Some(shard_name(r).as_str()) {
            anyhow::bail!(
                "{}: shard {} is missing (the shards are part-00000.npy, part-00001.npy, … without gaps); re-shard the data with `partlearn data shard`",
                dir.display(),
                shard_name(r)
            );
        }
    }
    if found.is_empty() {
        anyhow::bail!(
            "{} holds no shards part-00000.npy…; write them with `partlearn data shard --data X.npy --parts P --out {}`",
            dir.display(),
            dir.display()
        );
    }
    Ok(found)
}

/// Prepares the shard folder `dir` for `parts` new shards: created if missing; an existing
/// folder must hold only shards (removed with `force`, refused without).
pub fn prepare_shard_dir(dir: &Path, force: bool) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            anyhow::bail!("--out {} is a file; give a folder for the shards", dir.display());
        }
        let entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| partlearn::Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        let foreign = entries.iter().find(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-") && n.ends_with(".npy"))
        });
        if let Some(f) = foreign {
            anyhow::bail!(
                "--out {} holds {} (not a shard): choose an empty or new folder",
                dir.display(),
                f.display()
            );
        }
        if !entries.is_empty() && !force {
            anyhow::bail!(
                "--out {} already holds shards; add --force to replace them",
                dir.display()
            );
        }
        for e in entries {
            std::fs::remove_file(&e).map_err(|err| partlearn::Error::io(&e, err))?;
        }
    } else {
        std::fs::create_dir_all(dir).map_err(|e| partlearn::Error::io(dir, e))?;
    }
    Ok(())
}

/// Where process `rank` of `ranks` finds its rows of `spec`: a file and its row range, the
/// global offset and the total rows and columns (only NPY headers are read), and the features
/// it keeps (all of them on a 1-D grid).
pub struct BlockPlan {
    pub file: PathBuf,
    pub rows: std::ops::Range<usize>,
    pub offset: usize,
    pub n_total: usize,
    pub m: usize,
    pub features: std::ops::Range<usize>,
}

/// The shape `(n_samples, n_features)` of a dense `spec` from its NPY headers: a `.npy` file
/// or a shard folder.
pub fn data_shape(spec: &str) -> Result<(usize, usize)> {
    let p = if Path::new(spec).is_dir() {
        // A shard folder holds one shard per process: count them for the shape.
        plan(spec, shards(Path::new(spec))?.len(), 0)?
    } else {
        plan(spec, 1, 0)?
    };
    Ok((p.n_total, p.m))
}

/// The processor grid of `--grid` (`auto` or `ROWSxCOLS`) for `p` processes, data of shape
/// `(n, m)` and rank `k`; a shard folder (`sharded`) is 1-D.
pub fn resolve_grid(arg: &str, p: usize, (n, m): (usize, usize), k: usize, sharded: bool) -> Result<Grid> {
    let grid = if arg == "auto" {
        if sharded {
            Grid::rows(p)
        } else {
            Grid::choose(p, n, m, k)
        }
    } else {
        Grid::parse(arg)?
    };
    if grid.size() != p {
        anyhow::bail!(
            "--grid {}x{} has {} places for {p} processes; give ROWSxCOLS with ROWS·COLS = {p}, or --grid auto",
            grid.rows,
            grid.cols,
            grid.size()
        );
    }
    if grid.cols > 1 && sharded {
        anyhow::bail!("--grid {}x{}: a folder of shards holds whole rows, one shard per process (1-D); give the .npy file for a 2-D grid", grid.rows, grid.cols);
    }
    if grid.cols > 1 && grid.cols > m.div_ceil(16) {
        anyhow::bail!(
            "--grid {}x{}: {m} features make at most {} blocks of 16; give fewer COLS",
            grid.rows,
            grid.cols,
            m.div_ceil(16)
        );
    }
    if grid.rows > n.div_ceil(16).max(1) {
        anyhow::bail!(
            "--grid {}x{}: {n} samples make at most {} blocks of 16; give fewer ROWS or run fewer processes",
            grid.rows,
            grid.cols,
            n.div_ceil(16)
        );
    }
    Ok(grid)
}

/// The [`BlockPlan`] of `rank` for a `.npy` file (row blocks of [`row_block`]) or a shard
/// folder (shard `rank`; one shard per process).
pub fn plan(spec: &str, ranks: usize, rank: usize) -> Result<BlockPlan> {
    let path = Path::new(spec);
    let shape2 = |p: &Path| -> Result<(usize, usize)> {
        match npy_shape(p)?.as_slice() {
            [n, rest @ ..] if !rest.is_empty() => Ok((*n, rest.iter().product())),
            s => anyhow::bail!(
                "{}: shape {s:?}; --distributed reads arrays of samples (n_samples × n_features, or images n_samples × h × w)",
                p.display()
            ),
        }
    };
    if path.is_dir() {
        let files = shards(path)?;
        if files.len() != ranks {
            anyhow::bail!(
                "{} holds {} shards for {ranks} processes; run `mpirun -np {}` or re-shard with `partlearn data shard --parts {ranks}`",
                path.display(),
                files.len(),
                files.len()
            );
        }
        let shapes = files.iter().map(|f| shape2(f)).collect::<Result<Vec<_>>>()?;
        let m = shapes[0].1;
        if let Some(i) = shapes.iter().position(|s| s.1 != m) {
            anyhow::bail!(
                "{} has {} columns, {} has {m}: the shards of one matrix have the same columns",
                files[i].display(),
                shapes[i].1,
                files[0].display()
            );
        }
        let offset = shapes[..rank].iter().map(|s| s.0).sum();
        return Ok(BlockPlan {
            file: files[rank].clone(),
            rows: 0..shapes[rank].0,
            offset,
            n_total: shapes.iter().map(|s| s.0).sum(),
            m,
            features: 0..m,
        });
    }
    if spec.ends_with(".npy") {
        let (n, m) = shape2(path)?;
        let rows = row_block(n, ranks, rank);
        return Ok(BlockPlan {
            file: path.to_path_buf(),
            offset: rows.start,
            rows,
            n_total: n,
            m,
            features: 0..m,
        });
    }
    anyhow::bail!(
        "--distributed reads --data as a .npy file (each process reads its rows by offset), a sparse .npz/.mtx[.gz] (each process keeps its rows) or a folder of shards part-00000.npy…; convert {spec} with `partlearn data shard --data {spec} --parts P --out DIR`"
    )
}

/// Reads the rows of a [`BlockPlan`].
pub fn read_block(p: &BlockPlan) -> Result<NpyArray> {
    Ok(read_npy_rows(&p.file, p.rows.clone())?)
}

/// The block of a [`BlockPlan`] as `rows × features` values (row-major), read 4096 rows at a
/// time so that only the kept features are ever held in full.
pub fn read_block_values<T: partlearn::Real>(p: &BlockPlan) -> Result<Vec<T>> {
    if p.features.len() == p.m {
        return Ok(read_block(p)?.data.to_real::<T>());
    }
    let w = p.features.len();
    let mut out = Vec::with_capacity(p.rows.len() * w);
    let mut start = p.rows.start;
    while start < p.rows.end {
        let end = (start + 4096).min(p.rows.end);
        let vals = read_npy_rows(&p.file, start..end)?.data.to_real::<T>();
        for row in vals.chunks_exact(p.m) {
            out.extend_from_slice(&row[p.features.clone()]);
        }
        start = end;
    }
    Ok(out)
}

/// Process `rank`'s block of rows ([`row_block`]) of a sparse `.npz` (CSR, its arrays inflated
/// as they are read, keeping only this block) or `.mtx[.gz]` (read as text; a file not grouped
/// by row is first sorted into a temporary copy by each process, `open_mtx`), and where it sits.
pub fn read_sparse_block<T: partlearn::Real>(
    spec: &str,
    ranks: usize,
    rank: usize,
    open_mtx: impl FnOnce(&Path) -> Result<partlearn::data::mtx::MtxRows>,
) -> Result<(partlearn::data::Csr<T>, BlockPlan)> {
    let (x, plan, _) = read_sparse_grid_block(spec, |_, _| Ok(Grid::rows(ranks)), rank, open_mtx)?;
    Ok((x, plan))
}

/// [`read_sparse_block`] for the block of process `rank` on the grid `choose(n, m)` gives for
/// the file's shape: the rows of its grid row, the features of its grid column.
pub fn read_sparse_grid_block<T: partlearn::Real>(
    spec: &str,
    choose: impl FnOnce(usize, usize) -> Result<Grid>,
    rank: usize,
    open_mtx: impl FnOnce(&Path) -> Result<partlearn::data::mtx::MtxRows>,
) -> Result<(partlearn::data::Csr<T>, BlockPlan, Grid)> {
    use partlearn::data::rows::{RowBlock, RowSource};
    let path = Path::new(spec);
    let mut source: Box<dyn RowSource<T>> = if spec.to_ascii_lowercase().ends_with(".npz") {
        Box::new(partlearn::data::npz::NpzRows::open(path)?)
    } else {
        Box::new(open_mtx(path)?)
    };
    let (n, m) = (source.n_rows(), source.n_cols());
    let grid = choose(n, m)?;
    let (ranks, rank, col) = (grid.rows, rank / grid.cols, rank % grid.cols);
    let rows = row_block(n, ranks, rank);
    let block = match source.read(rows.start, rows.len())? {
        RowBlock::Sparse(x) => x,
        RowBlock::Dense(x) => partlearn::data::Csr::from_dense(x.transpose())?,
    };
    let features = row_block(m, grid.cols, col);
    let block = if features.len() == m {
        block
    } else {
        block.select_cols(features.clone())?
    };
    let plan = BlockPlan {
        file: path.to_path_buf(),
        offset: rows.start,
        rows,
        n_total: n,
        m,
        features,
    };
    Ok((block, plan, grid))
}

/// `--grid` other than `auto` outside `fit nmf` (transform and eval encode whole rows).
pub fn refuse_grid(d: &DistArgs) -> Result<()> {
    if d.grid != "auto" {
        anyhow::bail!("--grid {} is for `fit nmf --distributed`; transform and eval --distributed hold whole rows (1-D): leave --grid out", d.grid);
    }
    Ok(())
}

/// The flags that a distributed run does not take.
pub fn refuse_selection(data: &crate::DataArgs) -> Result<()> {
    if data.first.is_some() || data.subset.is_some() || data.labels.is_some() || data.sparse {
        anyhow::bail!("--first, --subset, --labels and --sparse are not used with --distributed; shard the rows you want with `partlearn data shard` first");
    }
    Ok(())
}

#[cfg(not(feature = "mpi"))]
const NO_MPI: &str = "this partlearn was built without MPI: build it with `cargo build --release --features mpi` (needs libopenmpi-dev and libclang-dev) and run it under `mpirun -np P`";

#[cfg(not(feature = "mpi"))]
#[allow(clippy::extra_unused_type_parameters)]
pub fn fit_nmf<T: partlearn::Real>(_a: &crate::fit::NmfArgs, _opts: partlearn::nmf::NmfParams) -> Result<()> {
    anyhow::bail!(NO_MPI)
}

#[cfg(not(feature = "mpi"))]
#[allow(clippy::extra_unused_type_parameters)]
pub fn resume_nmf<T: partlearn::Real>(
    _a: &crate::fit::NmfArgs,
    _dir: &Path,
    _r: crate::resume::Resumed,
) -> Result<()> {
    anyhow::bail!(NO_MPI)
}

#[cfg(not(feature = "mpi"))]
#[allow(clippy::extra_unused_type_parameters)]
pub fn transform<T: partlearn::Real>(_a: &crate::transform::TransformArgs) -> Result<()> {
    anyhow::bail!(NO_MPI)
}

#[cfg(not(feature = "mpi"))]
#[allow(clippy::extra_unused_type_parameters)]
pub fn eval<T: partlearn::Real>(_a: &crate::eval_cmd::EvalArgs) -> Result<()> {
    anyhow::bail!(NO_MPI)
}

#[cfg(feature = "mpi")]
pub use with_mpi::{eval, fit_nmf, resume_nmf, transform};

#[cfg(feature = "mpi")]
mod with_mpi;
