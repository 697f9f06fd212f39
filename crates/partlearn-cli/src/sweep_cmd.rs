//! `partlearn sweep <METHOD>`: fits and evaluates one run per point of a parameter grid, each in
//! its own folder under --out (a folder that already has metrics.json, fitted and evaluated with
//! the same settings as recorded in its sweep-point.json, is kept, so an interrupted sweep resumes
//! where it stopped; other settings are an error), then writes sweep.csv, sweep.json and the charts of the
//! library's `sweep` module into --out/figures (SVG).
//!
//! Each point is run through the same code path as `partlearn fit …` and `partlearn eval …`
//! (the arguments are built and parsed like a command line), so a sweep point and a hand-made
//! run are identical.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use partlearn::eval::evaluate::Metrics;
use partlearn::sweep::{plots, table_csv, SweepPoint};

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The method to sweep: nmf, sparse-nmf, ae or asym-ae.
    pub method: String,
    /// Training data (as for `fit`).
    #[arg(long = "data", value_name = "DATA")]
    pub data: String,
    /// Use only the first N training samples.
    #[arg(long, value_name = "N")]
    pub first: Option<usize>,
    /// Evaluation data (default: the training data; sparse-nmf points are then evaluated on their stored codes).
    #[arg(long, value_name = "DATA")]
    pub eval_data: Option<String>,
    /// With --eval-data: use only its first N samples (without it the points are evaluated on the training data, --first).
    #[arg(long, value_name = "N")]
    pub eval_first: Option<usize>,
    /// Comma-separated values of k.
    #[arg(short = 'k', long = "k", value_delimiter = ',', default_value = "10")]
    pub k: Vec<usize>,
    /// sparse-nmf: comma-separated code sparseness targets.
    #[arg(long, value_delimiter = ',')]
    pub code_sparsity: Vec<f64>,
    /// sparse-nmf: comma-separated atom sparseness targets.
    #[arg(long, value_delimiter = ',')]
    pub atom_sparsity: Vec<f64>,
    /// nmf: comma-separated penalty weights alpha_W (with --l1-ratio).
    #[arg(long, value_delimiter = ',')]
    pub alpha_w: Vec<f64>,
    /// nmf: L1 share of the penalty.
    #[arg(long, default_value_t = 1.0)]
    pub l1_ratio: f64,
    /// ae, asym-ae: comma-separated target mean activations p.
    #[arg(long, value_delimiter = ',')]
    pub p: Vec<f64>,
    /// ae, asym-ae: comma-separated sparsity weights β.
    #[arg(long, value_delimiter = ',')]
    pub beta: Vec<f64>,
    /// nmf, sparse-nmf: iterations per point.
    #[arg(long, default_value_t = 200)]
    pub max_iter: usize,
    /// ae, asym-ae: epochs per point.
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// More flags for every fit, e.g. "--optimizer adam --reduction sum".
    #[arg(long, value_name = "FLAGS", allow_hyphen_values = true)]
    pub fit_args: Option<String>,
    /// Skip the SVM protocol in the evaluations.
    #[arg(long)]
    pub no_svm: bool,
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sweep folder (one sub-folder per point, plus sweep.csv, sweep.json, figures/).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Write the sweep into an existing folder that is not a sweep folder (its sweep.csv,
    /// sweep.json and figures/ are replaced; its other files are kept).
    #[arg(long)]
    pub force: bool,
}

/// The hidden file that marks a folder as a sweep's (written when the sweep starts, so that an
/// interrupted sweep is continued, and a user's folder is never written into by mistake).
const SWEEP_MARK: &str = ".partlearn-sweep";

/// Makes `--out` the sweep's folder: a new or empty folder, a sweep's folder (its mark, or the
/// sweep.json of a finished sweep), or any folder with `--force`; a file is refused.
fn claim_out(a: &SweepArgs) -> Result<()> {
    claim_folder(&a.out, a.force, SWEEP_MARK, "sweep.json", "sweep")
}

/// Makes `out` the folder of a multi-run command (`what`: sweep, study): a new or empty folder,
/// one of its own (its hidden `mark`, or the `result` file of a finished one), or any folder
/// with `force`; a file is refused. Writes the mark, so an interrupted run is continued, and a
/// user's folder is never written into by mistake.
pub fn claim_folder(out: &Path, force: bool, mark: &str, result: &str, what: &str) -> Result<()> {
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(partlearn::Error::io(out, e).into()),
        Ok(meta) if !meta.is_dir() && !out.is_dir() => anyhow::bail!(
            "--out {} exists and is not a folder: give a folder for the {what} (it holds one run folder per point)",
            out.display()
        ),
        Ok(_) => {
            let empty = std::fs::read_dir(out)
                .map_err(|e| partlearn::Error::io(out, e))?
                .next()
                .is_none();
            let own = out.join(mark).is_file() || out.join(result).is_file();
            if !empty && !own && !force {
                anyhow::bail!(
                    "--out {} is a folder that is not a partlearn {what} (no {result}): give a new --out, or pass --force to write the {what} into it",
                    out.display()
                );
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|e| {
        partlearn::Error::io(
            out,
            std::io::Error::new(
                e.kind(),
                format!("cannot create the {what} folder: {e}; choose a writable --out"),
            ),
        )
    })?;
    partlearn::io::write_atomic(&out.join(mark), format!("partlearn {what}\n").as_bytes())?;
    Ok(())
}

/// One grid point: parameters (name, value, flag) in a fixed order.
type Point = Vec<(&'static str, f64)>;

fn grid(a: &SweepArgs) -> Result<Vec<Point>> {
    // Every swept option: its flag, its values, and the methods it belongs to.
    let options: [(&'static str, &Vec<f64>, &[&str]); 5] = [
        ("alpha-w", &a.alpha_w, &["nmf"]),
        ("code-sparsity", &a.code_sparsity, &["sparse-nmf"]),
        ("atom-sparsity", &a.atom_sparsity, &["sparse-nmf"]),
        ("p", &a.p, &["ae", "asym-ae"]),
        ("beta", &a.beta, &["ae", "asym-ae"]),
    ];
    let method = a.method.as_str();
    if !["nmf", "sparse-nmf", "ae", "asym-ae"].contains(&method) {
        anyhow::bail!("cannot sweep '{method}': use nmf, sparse-nmf, ae or asym-ae");
    }
    let mut axes: Vec<(&'static str, Vec<f64>)> = vec![("k", a.k.iter().map(|&k| k as f64).collect())];
    for (flag, values, methods) in options {
        if values.is_empty() {
            continue;
        }
        if !methods.contains(&method) {
            let own: Vec<String> = options
                .iter()
                .filter(|o| o.2.contains(&method))
                .map(|o| format!("--{}", o.0))
                .collect();
            anyhow::bail!(
                "--{flag} belongs to {}, not {method}; sweep {method} over -k and {}",
                methods.join(" and "),
                own.join(" and ")
            );
        }
        axes.push((flag, values.clone()));
    }
    let mut points: Vec<Point> = vec![vec![]];
    for (name, vals) in &axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                vals.iter().map(move |&v| {
                    let mut q = p.clone();
                    q.push((*name, v));
                    q
                })
            })
            .collect();
    }
    Ok(points)
}

fn folder_name(method: &str, p: &Point) -> String {
    let mut s = method.to_string();
    for (n, v) in p {
        s.push_str(&format!("-{n}{v}"));
    }
    s
}

pub fn run(a: SweepArgs) -> Result<()> {
    let points = grid(&a)?;
    check_points(&a, &points)?;
    let new = std::fs::read_dir(&a.out).map_or(true, |mut d| d.next().is_none());
    claim_out(&a)?;
    let mut done = Vec::new();
    let result = run_points(&a, &points, &mut done);
    if result
        .as_ref()
        .is_err_and(|e| e.downcast_ref::<crate::Exit>().is_none())
        && new
        && done.is_empty()
    {
        abandon(&a, &points);
    }
    result?;
    write_outputs(&a, &points, &done)
}

/// Checks, before the first fit, what can be checked of every point without fitting: the
/// evaluation flags, the evaluation data against the training data, and each point's options
/// against the training data's shape (e.g. `k` in range).
fn check_points(a: &SweepArgs, points: &[Point]) -> Result<()> {
    match (a.eval_first, &a.eval_data) {
        (Some(n), None) => anyhow::bail!(
            "--eval-first {n} applies to --eval-data, which is not given (the points are evaluated on their training data, with --first): add --eval-data, or drop --eval-first"
        ),
        (Some(0), Some(_)) => anyhow::bail!("invalid --eval-first 0: give at least 1 evaluation sample, or drop it"),
        _ => {}
    }
    let (n, m) = data_shape(&a.data, a.first, "--data")?;
    if let Some(spec) = &a.eval_data {
        let (_, m_eval) = data_shape(spec, a.eval_first, "--eval-data")?;
        if m_eval != m {
            anyhow::bail!(
                "--eval-data {spec} has {m_eval} features and --data {} has {m}: give evaluation data with the training data's features",
                a.data
            );
        }
    }
    for p in points {
        let value = |name: &str| p.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let k = value("k").unwrap_or(0.0) as usize;
        let checked = match a.method.as_str() {
            "nmf" => partlearn::nmf::NmfParams {
                k,
                alpha_w: value("alpha-w").unwrap_or(0.0),
                l1_ratio: a.l1_ratio,
                max_iter: a.max_iter,
                ..Default::default()
            }
            .validate(n, m)
            .map(drop),
            "sparse-nmf" => partlearn::nmf::sparse::SparseNmfParams::new(k)
                .code_sparsity(value("code-sparsity"))
                .atom_sparsity(value("atom-sparsity"))
                .max_iter(a.max_iter)
                .validate(n, m)
                .map(drop),
            _ => {
                let mut ae = partlearn::autoencoder::AeParams::new(k).epochs(a.epochs);
                if let Some(v) = value("p") {
                    ae = ae.p(v);
                }
                if let Some(v) = value("beta") {
                    ae = ae.beta(v);
                }
                ae.check().map(drop)
            }
        };
        checked.with_context(|| format!("grid point {}", folder_name(&a.method, p)))?;
    }
    Ok(())
}

/// `n_samples × n_features` of `spec` with its first `first` samples (`flag` names it in errors).
fn data_shape(spec: &str, first: Option<usize>, flag: &str) -> Result<(usize, usize)> {
    let d = crate::DataArgs {
        spec: spec.to_string(),
        sparse: false,
        first,
        subset: None,
        data_seed: 0,
        labels: None,
    };
    let shape = if d.is_sparse() {
        d.load_csr::<f32>().map(|x| (x.nrows(), x.ncols()))
    } else {
        d.load::<f32>().map(|x| (x.n_samples(), x.n_features()))
    };
    shape.with_context(|| format!("{flag} {spec}"))
}

/// Fits and evaluates every point not yet evaluated (in order), collecting each into `done`.
fn run_points(a: &SweepArgs, points: &[Point], done: &mut Vec<SweepPoint>) -> Result<()> {
    let eval_spec = a.eval_data.clone().unwrap_or_else(|| a.data.clone());
    let same_data =
        a.eval_data.is_none() || (a.eval_data.as_deref() == Some(a.data.as_str()) && a.eval_first == a.first);
    for (i, p) in points.iter().enumerate() {
        let dir = a.out.join(folder_name(&a.method, p));
        let metrics_path = dir.join(partlearn::io::run::METRICS_FILE);
        let (fit, eval) = (fit_args(a, p, &dir), eval_args(a, &eval_spec, same_data, &dir));
        let want = settings(&fit, &eval);
        let record = dir.join(POINT_FILE);
        if !metrics_path.is_file() {
            if !a.quiet {
                errln!("[{}/{}] {}", i + 1, points.len(), dir.display());
            }
            crate::dispatch(fit).with_context(|| format!("sweep point {}", dir.display()))?;
            crate::dispatch(eval).with_context(|| format!("evaluating {}", dir.display()))?;
            partlearn::io::write_atomic(&record, &partlearn::io::to_json_pretty(&want)?)?;
        } else if record.is_file() && partlearn::io::read_json::<Vec<String>>(&record)? != want {
            anyhow::bail!(
                "{} was fitted and evaluated with other settings than this sweep's (see its {POINT_FILE}); give another --out, or delete the folder to redo it",
                dir.display()
            );
        } else if !a.quiet {
            errln!(
                "[{}/{}] {} (already evaluated, kept)",
                i + 1,
                points.len(),
                dir.display()
            );
        }
        let metrics: Metrics = partlearn::io::read_json(&metrics_path)?;
        done.push(SweepPoint {
            params: p
                .iter()
                .map(|(n, v)| (n.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
            run: dir.display().to_string(),
            metrics,
        });
    }
    Ok(())
}

/// After a sweep that this invocation started in a new folder failed before any point was
/// evaluated: removes what it wrote there (the points' unevaluated runs, which a new sweep would
/// refit anyway, and the mark), and the folder when that leaves it empty.
fn abandon(a: &SweepArgs, points: &[Point]) {
    for p in points {
        let dir = a.out.join(folder_name(&a.method, p));
        if dir.join(partlearn::io::run::RUN_FILE).is_file()
            && !dir.join(partlearn::io::run::METRICS_FILE).exists()
        {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let _ = std::fs::remove_file(a.out.join(SWEEP_MARK));
    let _ = std::fs::remove_dir(&a.out);
}

/// Each point's record of the settings it was fitted and evaluated with ([`settings`]): a point
/// already evaluated is kept only when the sweep asks for the same.
use partlearn::io::run::SWEEP_POINT_FILE as POINT_FILE;

/// Both command lines of a point, without `--threads` (which does not change the result).
fn settings(fit: &[String], eval: &[String]) -> Vec<String> {
    let strip = |v: &[String]| -> Vec<String> {
        let mut out = Vec::new();
        let mut it = v.iter();
        while let Some(s) = it.next() {
            if s == "--threads" {
                it.next();
            } else {
                out.push(s.clone());
            }
        }
        out
    };
    let mut s = strip(fit);
    s.push("then".into());
    s.extend(strip(eval));
    s
}

/// The `partlearn fit` command line of a point.
fn fit_args(a: &SweepArgs, p: &Point, dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec!["partlearn", "fit", &a.method, "--data", &a.data]
        .into_iter()
        .map(String::from)
        .collect();
    if let Some(n) = a.first {
        args.extend(["--first".into(), n.to_string()]);
    }
    for (name, v) in p {
        args.extend([format!("--{name}"), v.to_string()]);
    }
    if a.method == "nmf" && p.iter().any(|(n, _)| *n == "alpha-w") {
        args.extend(["--l1-ratio".into(), a.l1_ratio.to_string()]);
    }
    if a.method.ends_with("ae") {
        args.extend(["--epochs".into(), a.epochs.to_string()]);
    } else {
        args.extend(["--max-iter".into(), a.max_iter.to_string()]);
    }
    if let Some(extra) = &a.fit_args {
        args.extend(extra.split_whitespace().map(String::from));
    }
    args.extend([
        "--threads".into(),
        a.threads.to_string(),
        "--seed".into(),
        a.seed.to_string(),
        "--quiet".into(),
        // A folder without metrics.json is an unfinished point: refit it.
        "--force".into(),
        "--out".into(),
        dir.display().to_string(),
    ]);
    args
}

/// The `partlearn eval` command line of a point.
fn eval_args(a: &SweepArgs, eval_spec: &str, same_data: bool, dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "partlearn".into(),
        "eval".into(),
        dir.display().to_string(),
        "--data".into(),
        eval_spec.into(),
    ];
    let first = if a.eval_data.is_some() {
        a.eval_first
    } else {
        a.first
    };
    if let Some(n) = first {
        args.extend(["--first".into(), n.to_string()]);
    }
    // Sparse NMF has no per-sample transform of its constrained codes (METHODS.md §2.4):
    // evaluated on its own training data, it uses the codes it learned.
    if a.method == "sparse-nmf" && same_data {
        args.push("--stored-codes".into());
    }
    if a.no_svm {
        args.push("--no-svm".into());
    }
    args.extend([
        "--threads".into(),
        a.threads.to_string(),
        "--seed".into(),
        a.seed.to_string(),
        "--quiet".into(),
        "--force".into(),
    ]);
    args
}

fn write_outputs(a: &SweepArgs, grid: &[Point], done: &[SweepPoint]) -> Result<()> {
    let io = |p: PathBuf, bytes: &[u8]| partlearn::io::write_atomic(&p, bytes);
    io(a.out.join("sweep.csv"), table_csv(done).as_bytes())?;
    io(a.out.join("sweep.json"), &partlearn::io::to_json_pretty(done)?)?;
    // x axis: the first varying parameter among (sparsity, penalty, β, p, k); curves: the next one.
    let order = ["code-sparsity", "atom-sparsity", "alpha-w", "beta", "p", "k"];
    let varying: Vec<&str> = order
        .iter()
        .copied()
        .filter(|n| {
            let mut v: Vec<f64> = grid
                .iter()
                .filter_map(|p| p.iter().find(|(m, _)| m == n).map(|x| x.1))
                .collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            v.len() > 1
        })
        .collect();
    let x = varying.first().copied().unwrap_or("k");
    for (name, svg) in plots(done, x, varying.get(1).copied())? {
        io(a.out.join("figures").join(name), &svg)?;
    }
    if !a.quiet {
        outln!(
            "{} points; wrote {}/sweep.csv, sweep.json and figures/",
            done.len(),
            a.out.display()
        );
    }
    Ok(())
}
