//! `partlearn data info|export`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use partlearn::npy::{npy_bytes, NpyDataRef};

use crate::DataArgs;

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Shape, dtype, value range, label counts, and whether NMF can use the data.
    Info {
        /// fashion-mnist:train, fashion-mnist:test, swimmer, toy-hierarchy, or a file.
        data: String,
        #[arg(long)]
        first: Option<usize>,
        #[arg(long)]
        subset: Option<usize>,
        #[arg(long, default_value_t = 0)]
        data_seed: u64,
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Read the data as sparse (CSR): reports non-zeros and density (.npz, .mtx[.gz] always are).
        #[arg(long)]
        sparse: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Generate a data set: a planted topic corpus (sparse .npz/.mtx) or a planted low-rank matrix (.npy).
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Split the data by rows into P shards DIR/part-00000.npy… for `--distributed` runs (one per process; a .npy is read block by block, never whole).
    Shard {
        /// A .npy file (read by offset, its dtype kept) or any dense data set (written as float32).
        #[arg(long)]
        data: String,
        /// Number of shards (the processes of `mpirun -np P`).
        #[arg(long)]
        parts: usize,
        /// Output folder (created; with --force its old shards are replaced).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Write the data (n_samples × n_features, float32) and its labels as .npy.
    Export {
        data: String,
        #[arg(long)]
        first: Option<usize>,
        #[arg(long)]
        subset: Option<usize>,
        #[arg(long, default_value_t = 0)]
        data_seed: u64,
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Output .npy for the data.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Output .npy for the labels (default: <out stem>-labels.npy when the data have labels).
        #[arg(long, value_name = "FILE")]
        labels_out: Option<PathBuf>,
        /// Replace existing files (--out and --labels-out must still differ).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum GenerateCommand {
    /// Term counts of a planted topic model (documents × terms, sparse), written as scipy .npz or .mtx[.gz].
    Topics {
        #[arg(long)]
        docs: usize,
        #[arg(long)]
        terms: usize,
        /// Target fraction of non-zero entries (e.g. 0.001).
        #[arg(long)]
        density: f64,
        #[arg(long, default_value_t = 20)]
        topics: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output file: .npz (scipy.sparse.load_npz reads it) or .mtx[.gz].
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// A dense planted rank-k matrix plus |noise| (n × m, float32 .npy; k ≤ min(n, m)).
    Lowrank {
        #[arg(long)]
        n: usize,
        #[arg(long)]
        m: usize,
        #[arg(long)]
        k: usize,
        #[arg(long, default_value_t = 0.0)]
        noise: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
        /// Write the rows block by block (memory: one block of 1024 rows, whatever n; for files larger than memory). A different matrix than without --stream for the same seed.
        #[arg(long)]
        stream: bool,
    },
}

fn generate(cmd: GenerateCommand) -> Result<()> {
    match cmd {
        GenerateCommand::Topics {
            docs,
            terms,
            density,
            topics,
            seed,
            out,
            force,
        } => {
            let name = out.to_string_lossy().to_ascii_lowercase();
            let npz = name.ends_with(".npz");
            if !npz && !name.ends_with(".mtx") && !name.ends_with(".mtx.gz") {
                anyhow::bail!("--out {}: give a .npz, .mtx or .mtx.gz file", out.display());
            }
            if out.exists() && !force {
                return Err(partlearn::Error::AlreadyExists { path: out }.into());
            }
            let spec = partlearn::data::generate::TopicsSpec {
                docs,
                terms,
                density,
                topics,
                seed,
            };
            let t = std::time::Instant::now();
            let a = partlearn::data::generate::topics::<f32>(&spec)?;
            if npz {
                partlearn::data::npz::write_npz(&out, &a)?;
            } else {
                partlearn::data::mtx::write_mtx(&out, &a)?;
            }
            outln!(
                "wrote {} ({docs} × {terms}, {} non-zeros, density {:.4} %, {topics} topics) in {:.1} s",
                out.display(),
                a.nnz(),
                100.0 * a.density(),
                t.elapsed().as_secs_f64()
            );
        }
        GenerateCommand::Lowrank {
            n,
            m,
            k,
            noise,
            seed,
            out,
            force,
            stream,
        } => {
            if !out.to_string_lossy().to_ascii_lowercase().ends_with(".npy") {
                anyhow::bail!(
                    "--out {}: give a .npy file (generate lowrank writes float32 .npy)",
                    out.display()
                );
            }
            partlearn::data::generate::check_lowrank(n, m, k, noise)?;
            partlearn::io::check_output_file(&out, force, b"\x93NUMPY", ".npy file")?;
            if stream {
                let t = std::time::Instant::now();
                partlearn::io::write_atomic_with(&out, |w| {
                    w.write_all(&partlearn::npy::npy_header(&[n, m], "<f4"))?;
                    let mut buf = Vec::new();
                    partlearn::data::generate::lowrank_blocks::<f32>(n, m, k, noise, seed, &mut |b| {
                        buf.clear();
                        for i in 0..b.nrows() {
                            for j in 0..b.ncols() {
                                buf.extend_from_slice(&b[(i, j)].to_le_bytes());
                            }
                        }
                        w.write_all(&buf).map_err(|e| partlearn::Error::io(&out, e))
                    })
                    .map_err(std::io::Error::other)
                })?;
                outln!(
                    "wrote {} ({n} × {m}, rank {k} + noise {noise}, float32, streamed) in {:.1} s",
                    out.display(),
                    t.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            let x = partlearn::data::generate::lowrank::<f32>(n, m, k, noise, seed)?;
            partlearn::io::write_atomic(&out, &crate::transform::matrix_npy_bytes(x.as_ref()))?;
            outln!(
                "wrote {} ({n} × {m}, rank {k} + noise {noise}, float32)",
                out.display()
            );
        }
    }
    Ok(())
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Generate(g) => generate(g),
        DataCommand::Shard {
            data,
            parts,
            out,
            force,
        } => shard(&data, parts, &out, force),
        DataCommand::Info {
            data,
            first,
            subset,
            data_seed,
            labels,
            sparse,
            json,
        } => {
            let args = DataArgs {
                spec: data,
                first,
                subset,
                data_seed,
                labels,
                sparse,
            };
            if args.is_sparse() {
                return sparse_info(&args, json);
            }
            // Read in f64 (the values exactly as stored); the default `f32` of the fits is
            // checked apart where it can differ (a file of f64 values).
            let d = args.load::<f64>()?;
            let stored = std::path::Path::new(&args.spec)
                .extension()
                .is_some_and(|e| e == "npy")
                .then(|| partlearn::npy::read_npy_info(std::path::Path::new(&args.spec)))
                .transpose()?
                .map(|i| i.descr());
            let (lo, hi, mean) = d.value_range();
            let missing = (0..d.n_samples())
                .map(|i| d.sample(i).iter().filter(|v| v.is_nan()).count())
                .sum::<usize>();
            let valid = validity(&d, missing, || match stored {
                // The whole file is what a fit in f32 checks (before any selection): read once
                // here, it is checked from the f64 values; a selection reads it again in f32.
                Some("<f8") if args.first.is_none() && args.subset.is_none() => d.check_scale_in::<f32>(),
                Some("<f8") => args.load::<f32>().map(|_| ()),
                _ => Ok(()),
            });
            let mut counts = BTreeMap::new();
            if let Some(l) = &d.labels {
                for &c in l {
                    *counts.entry(c).or_insert(0usize) += 1;
                }
            }
            if json {
                let s = serde_json::json!({
                    "name": d.name, "n_samples": d.n_samples(), "n_features": d.n_features(),
                    "stored_dtype": stored, "image_shape": d.image_shape, "min": lo, "max": hi, "mean": mean,
                    "missing_entries": missing,
                    "label_counts": counts, "extra_label_sets": d.extra_labels.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                    "valid_for_nmf": valid.usable(), "valid_in_f32": valid.in_f32(), "problem": valid.problem(),
                });
                outln!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                let stored = stored.map(|t| format!(", stored as {t}")).unwrap_or_default();
                outln!(
                    "{}: {} samples × {} features{stored}",
                    d.name,
                    d.n_samples(),
                    d.n_features()
                );
                if let Some((h, w)) = d.image_shape {
                    outln!("images: {h} × {w}");
                }
                let short = partlearn::real::short_number;
                let mean = if (1e-4..1e15).contains(&mean.abs()) || mean == 0.0 {
                    format!("{mean:.6}")
                } else {
                    format!("{mean:.6e}")
                };
                outln!("values: min {}, max {}, mean {mean}", short(lo), short(hi));
                if missing > 0 {
                    outln!("missing entries (NaN): {missing}");
                }
                if counts.is_empty() {
                    outln!("labels: none");
                } else {
                    let s: Vec<String> = counts.iter().map(|(c, n)| format!("{c}: {n}")).collect();
                    outln!("labels ({} classes): {}", counts.len(), s.join(", "));
                }
                for (name, l) in &d.extra_labels {
                    let classes: std::collections::BTreeSet<_> = l.iter().collect();
                    outln!("label set {name}: {} classes", classes.len());
                }
                outln!("valid for NMF: {}", valid.describe());
            }
            Ok(())
        }
        DataCommand::Export {
            data,
            first,
            subset,
            data_seed,
            labels,
            out,
            labels_out,
            force,
        } => {
            let args = DataArgs {
                spec: data,
                first,
                subset,
                data_seed,
                labels,
                sparse: false,
            };
            args.check_not_input(&out, "--out")?;
            crate::args::check_out_parent(&out, "--out")?;
            if let Some(p) = &labels_out {
                args.check_not_input(p, "--labels-out")?;
                crate::args::check_out_parent(p, "--labels-out")?;
            }
            // Only an explicit --labels-out can name the data file (the default adds -labels).
            if let Some(p) = &labels_out {
                let resolve = partlearn::io::run::resolve_path;
                if resolve(p) == resolve(&out) {
                    anyhow::bail!(
                        "--labels-out {} is the same file as --out {}: the labels would overwrite the data; give two different paths",
                        p.display(),
                        out.display()
                    );
                }
            }
            let d = args.load::<f32>()?;
            if let (Some(p), None) = (&labels_out, &d.labels) {
                anyhow::bail!(
                    "--labels-out {}: {} has no labels to write; drop --labels-out",
                    p.display(),
                    d.name
                );
            }
            let labels_path = labels_out.or_else(|| {
                d.labels.as_ref().map(|_| {
                    let stem = out
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    out.with_file_name(format!("{stem}-labels.npy"))
                })
            });
            // The default --labels-out may land on an input too (e.g. --labels X-labels.npy).
            if let Some(p) = &labels_path {
                args.check_not_input(p, "--labels-out")?;
            }
            for p in std::iter::once(&out).chain(labels_path.as_ref()) {
                partlearn::io::check_output_file(p, force, b"\x93NUMPY", ".npy file")?;
            }
            let flat: Vec<f32> = (0..d.n_samples())
                .flat_map(|i| d.sample(i).iter().copied())
                .collect();
            let shape = match d.image_shape {
                Some((h, w)) => vec![d.n_samples(), h, w],
                None => vec![d.n_samples(), d.n_features()],
            };
            partlearn::io::write_atomic(&out, &npy_bytes(&shape, NpyDataRef::F32(&flat)))?;
            outln!("wrote {} ({:?}, float32)", out.display(), shape);
            if let (Some(p), Some(l)) = (&labels_path, &d.labels) {
                let l64: Vec<i64> = l.iter().map(|&v| v as i64).collect();
                partlearn::io::write_atomic(p, &npy_bytes(&[l64.len()], NpyDataRef::I64(&l64)))?;
                outln!("wrote {} ({} labels, int64)", p.display(), l64.len());
            }
            Ok(())
        }
    }
}

/// `data info` of sparse data: shape, non-zeros, density, stored value range, validity for NMF.
fn sparse_info(args: &DataArgs, json: bool) -> Result<()> {
    let a = args.load_csr::<f32>()?;
    let (lo, hi) = a.stored_range();
    let mean = a.sum() / (a.nrows() as f64 * a.ncols() as f64);
    let valid = a.validate_nonnegative();
    let bytes = a.nnz() * 8 + (a.nrows() + 1) * 8;
    if json {
        let s = serde_json::json!({
            "name": args.spec, "n_samples": a.nrows(), "n_features": a.ncols(), "dtype": "f32",
            "sparse": true, "nnz": a.nnz(), "density": a.density(), "csr_bytes": bytes,
            "min_stored": lo, "max_stored": hi, "mean": mean,
            "valid_for_nmf": valid.is_ok(), "problem": valid.as_ref().err().map(|e| e.to_string()),
        });
        outln!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        outln!(
            "{}: {} samples × {} features, f32, sparse (CSR)",
            args.spec,
            a.nrows(),
            a.ncols()
        );
        outln!(
            "non-zeros: {} (density {:.4} %), {:.1} MB in CSR",
            a.nnz(),
            100.0 * a.density(),
            bytes as f64 / 1e6
        );
        outln!("values: stored min {lo}, max {hi}, mean (zeros included) {mean:.6}");
        match &valid {
            Ok(()) => outln!("valid for NMF: yes"),
            Err(e) => outln!("valid for NMF: no ({e})"),
        }
    }
    Ok(())
}

/// `data shard`: the row blocks of `partlearn::dist::row_block` (boundaries on multiples of 16,
/// so that a distributed HALS fit agrees with the one-process fit), one `.npy` per block.
fn shard(data: &str, parts: usize, out: &std::path::Path, force: bool) -> Result<()> {
    use crate::dist_cmd::{prepare_shard_dir, shard_name};
    if parts == 0 {
        anyhow::bail!("--parts 0: give the number of processes (≥ 1)");
    }
    let path = std::path::Path::new(data);
    let args = DataArgs {
        spec: data.to_string(),
        first: None,
        subset: None,
        data_seed: 0,
        labels: None,
        sparse: false,
    };
    args.check_not_input(out, "--out")?;
    let npy = data.ends_with(".npy") && path.is_file();
    let (n, m, whole) = if npy {
        match partlearn::npy::npy_shape(path)?.as_slice() {
            [n, rest @ ..] if !rest.is_empty() => (*n, rest.iter().product(), None),
            s => anyhow::bail!("{data}: shape {s:?}; shards are cut from an array of samples (n_samples × n_features, or images n_samples × h × w)"),
        }
    } else {
        let d = args.load::<f32>()?;
        (d.n_samples(), d.n_features(), Some(d))
    };
    if n.div_ceil(16) < parts {
        anyhow::bail!(
            "{n} rows make at most {} shards (blocks of 16 rows); lower --parts",
            n.div_ceil(16)
        );
    }
    prepare_shard_dir(out, force)?;
    for r in 0..parts {
        let rows = partlearn::dist::row_block(n, parts, r);
        let bytes = match &whole {
            None => {
                let a = partlearn::npy::read_npy_rows(path, rows)?;
                npy_bytes(&a.shape, a.data.as_ref())
            }
            Some(d) => {
                let x = d.x();
                let flat: Vec<f32> = rows
                    .clone()
                    .flat_map(|i| (0..m).map(move |j| x[(i, j)]))
                    .collect();
                npy_bytes(&[rows.len(), m], NpyDataRef::F32(&flat))
            }
        };
        partlearn::io::write_atomic(&out.join(shard_name(r)), &bytes)?;
    }
    outln!("wrote {parts} shards of {n} × {m} to {}", out.display());
    Ok(())
}

/// What `data info` says of a dense data set's use for NMF.
enum Validity {
    /// Complete, and fits the default `f32`.
    Yes,
    /// Complete and valid, but only in `f64` (the `f32` problem).
    F64Only(String),
    /// Valid apart from `n` NaN entries, which masked NMF takes as missing.
    Missing(usize),
    /// Not usable (the problem).
    No(String),
}

impl Validity {
    fn usable(&self) -> bool {
        !matches!(self, Validity::No(_))
    }

    fn in_f32(&self) -> bool {
        !matches!(self, Validity::F64Only(_) | Validity::No(_))
    }

    fn problem(&self) -> Option<String> {
        match self {
            Validity::Yes => None,
            Validity::F64Only(p) | Validity::No(p) => Some(p.clone()),
            Validity::Missing(n) => Some(format!(
                "{n} NaN {}: fit nmf (mu, hals, anls), transform and eval take NaN as missing; the other methods refuse it",
                if *n == 1 { "entry" } else { "entries" }
            )),
        }
    }

    fn describe(&self) -> String {
        match self {
            Validity::Yes => "yes".into(),
            Validity::F64Only(p) => format!("with --dtype f64 only ({p})"),
            Validity::Missing(_) => format!(
                "yes, with missing entries ({})",
                self.problem().unwrap_or_default()
            ),
            Validity::No(p) => format!("no ({p})"),
        }
    }
}

/// [`Validity`] of `d` (read in f64, `missing` NaN entries); `f32` loads the data in `f32`
/// where that can fail when the f64 values are valid.
fn validity(
    d: &partlearn::data::Dataset<f64>,
    missing: usize,
    f32: impl FnOnce() -> partlearn::Result<()>,
) -> Validity {
    let checked = if missing == 0 {
        d.validate_nonnegative()
    } else {
        // The observed entries: NaN read as 0 for the checks of sign, finiteness and scale.
        let vals: Vec<f64> = (0..d.n_samples())
            .flat_map(|i| d.sample(i).iter().map(|&v| if v.is_nan() { 0.0 } else { v }))
            .collect();
        partlearn::data::Dataset::from_row_major(d.n_samples(), d.n_features(), &vals, d.name.clone())
            .and_then(|c| c.validate_nonnegative())
    };
    match (checked, missing) {
        (Err(e), _) => Validity::No(e.to_string()),
        (Ok(()), 0) => match f32() {
            Ok(()) => Validity::Yes,
            Err(e) => Validity::F64Only(e.to_string().replace("`dtype = f64`", "--dtype f64")),
        },
        (Ok(()), n) => Validity::Missing(n),
    }
}
