//! `partlearn reproduce part-based-study`: the report's study in one command (the library's
//! `study` module says which points; this fits and evaluates each through the same code path as
//! `partlearn fit …` and `partlearn eval …`, then writes study.csv, study.json, study.html and
//! the charts into --out/figures).
//!
//! Resumable: each point lives in `--out/points/<id>` with a record of the settings it was fitted
//! and evaluated with beside it (`points/<id>.study-point.json`). Run again, the command keeps every point already
//! evaluated with the same settings, evaluates a fitted one, continues an interrupted, killed or
//! shorter auto-encoder from its checkpoint (`fit … --resume`, so `--budget fast` followed by
//! `--budget full` trains the fast points on to 500 epochs instead of anew) and fits the rest.
//! A sparse-NMF point has no checkpoint: interrupted, it is fitted again (about 150 s).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use partlearn::autoencoder::Sparsity;
use partlearn::engine::StopReason;
use partlearn::eval::evaluate::Metrics;
use partlearn::io::record::RunRecord;
use partlearn::study::page::{self, PageInfo};
use partlearn::study::{self, Budget, Model, PlanOptions, StudyPoint, StudyResult};
use serde::{Deserialize, Serialize};

#[derive(Args, Debug)]
pub struct StudyArgs {
    /// fast: 12 of the report's 500 epochs for the shallow AEs and 3 for the asymmetric AE, the
    /// other penalties at p = 0.05 only and a lighter SVM selection (52.7 min measured on 2 cores);
    /// full: the report's 500 epochs over the whole (β, p) grid of every penalty.
    #[arg(long, default_value = "fast")]
    pub budget: String,
    /// Epochs of every auto-encoder (overrides the budget's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Epochs of the asymmetric auto-encoder (overrides --epochs and the budget's).
    #[arg(long)]
    pub asym_epochs: Option<usize>,
    /// Sparsity penalties of the shallow AE, comma-separated (default: kl,l2,eps-l1,log).
    #[arg(long, value_delimiter = ',')]
    pub penalties: Vec<String>,
    /// β values, comma-separated (default: the report's grid 1e-4 … 0.5).
    #[arg(long, value_delimiter = ',')]
    pub beta: Vec<f64>,
    /// Target mean activations p, comma-separated (default: 0.01,0.05,0.1,0.2).
    #[arg(long, value_delimiter = ',')]
    pub p: Vec<f64>,
    /// Leave out the asymmetric auto-encoder's rows.
    #[arg(long)]
    pub no_asym: bool,
    /// Training images of the auto-encoders.
    #[arg(long, default_value = "fashion-mnist:train")]
    pub data: String,
    /// Use only the first N training images.
    #[arg(long, value_name = "N")]
    pub first: Option<usize>,
    /// Images every point is measured on (and sparse NMF is fitted on, as in the report).
    #[arg(long, default_value = "fashion-mnist:test")]
    pub eval_data: String,
    /// Use only the first N evaluation images.
    #[arg(long, value_name = "N")]
    pub eval_first: Option<usize>,
    /// Skip the SVM protocol in the evaluations.
    #[arg(long)]
    pub no_svm: bool,
    /// Print the points of the plan and exit.
    #[arg(long)]
    pub list: bool,
    /// Worker threads of every fit and evaluation (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Seed of every fit and of the SVM splits.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The study's folder (points/<id>/ run folders, study.csv, study.json, study.html, figures/).
    #[arg(long, value_name = "DIR", default_value = "runs/part-based-study")]
    pub out: PathBuf,
    /// Write the study into an existing folder that is not a study's.
    #[arg(long)]
    pub force: bool,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The hidden file that marks a folder as a study's.
const STUDY_MARK: &str = ".partlearn-study";
/// Each point's record of its settings, `points/<id>.study-point.json` beside its run folder.
const POINT_FILE: &str = "study-point.json";

/// The settings a point was fitted and evaluated with: both command lines without `--threads`,
/// `--epochs` and `--quiet`/`--force` (which do not change what is learned; epochs are compared
/// with what the run trained).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PointRecord {
    fit: Vec<String>,
    eval: Option<Vec<String>>,
    /// Wall-clock seconds of every fit invocation of the point (a resumed run's included).
    #[serde(default)]
    fit_seconds: f64,
}

fn plan_options(a: &StudyArgs) -> Result<PlanOptions> {
    let mut o = PlanOptions {
        epochs: a.epochs,
        asym_epochs: a.asym_epochs,
        asym: !a.no_asym,
        ..PlanOptions::default()
    };
    if !a.penalties.is_empty() {
        o.penalties = a
            .penalties
            .iter()
            .map(|s| Sparsity::parse(s))
            .collect::<partlearn::Result<_>>()?;
    }
    if !a.beta.is_empty() {
        o.betas = a.beta.clone();
    }
    if !a.p.is_empty() {
        o.ps = a.p.clone();
    }
    Ok(o)
}

pub fn run(a: StudyArgs) -> Result<()> {
    let budget = Budget::parse(&a.budget)?;
    let points = study::plan(budget, &plan_options(&a)?)?;
    if a.list {
        for p in &points {
            outln!("{}\t{}\t{}", p.id, p.epochs, p.describe());
        }
        return Ok(());
    }
    crate::sweep_cmd::claim_folder(&a.out, a.force, STUDY_MARK, "study.json", "study")?;
    let published = study::published()?;
    let started = std::time::Instant::now();
    let mut done = Vec::new();
    let mut stopped = None;
    for (i, pt) in points.iter().enumerate() {
        match run_point(&a, budget, pt, i, points.len()) {
            Ok(r) => done.push(r),
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    let missing: Vec<String> = points
        .iter()
        .filter(|p| !done.iter().any(|r: &StudyResult| r.point.id == p.id))
        .map(|p| p.id.clone())
        .collect();
    if !done.is_empty() {
        let epochs = points
            .iter()
            .find(|p| p.model == Model::Ae)
            .map_or(0, |p| p.epochs);
        let asym = points
            .iter()
            .find(|p| p.model == Model::AsymAe)
            .map_or(0, |p| p.epochs);
        let info = PageInfo {
            title: "The report's study: part-based representations of Fashion-MNIST".into(),
            budget,
            epochs: (epochs, asym),
            data: with_first(&a.data, a.first),
            eval_data: with_first(&a.eval_data, a.eval_first),
            missing: missing.clone(),
        };
        write_outputs(&a.out, &done, &published, &info)?;
    }
    if let Some(e) = stopped {
        if !a.quiet && !done.is_empty() {
            errln!(
                "wrote the {} point(s) evaluated so far to {}/study.html; the same command continues the study",
                done.len(),
                a.out.display()
            );
        }
        return Err(e);
    }
    if !a.quiet {
        outln!(
            "{} points in {:.0} s; wrote {}/study.html, study.csv, study.json and figures/",
            done.len(),
            started.elapsed().as_secs_f64(),
            a.out.display()
        );
    }
    Ok(())
}

fn with_first(data: &str, first: Option<usize>) -> String {
    match first {
        Some(n) => format!("{data} (first {n})"),
        None => data.to_string(),
    }
}

/// Fits (or resumes) and evaluates one point unless its folder already holds the result.
fn run_point(a: &StudyArgs, budget: Budget, pt: &StudyPoint, i: usize, n: usize) -> Result<StudyResult> {
    let rel = Path::new("points").join(&pt.id);
    let dir = a.out.join(&rel);
    let mut want = PointRecord {
        fit: settings(&fit_args(a, pt, &dir)),
        eval: Some(settings(&eval_args(a, budget, pt, &dir))),
        fit_seconds: 0.0,
    };
    let record_path = a.out.join("points").join(format!("{}.{POINT_FILE}", pt.id));
    let record: Option<PointRecord> = if record_path.is_file() {
        Some(partlearn::io::read_json(&record_path)?)
    } else {
        None
    };
    if let Some(r) = &record {
        want.fit_seconds = r.fit_seconds;
        if r.fit != want.fit {
            anyhow::bail!(
                "{} was fitted with other settings than this study's (see {}); give another --out, or delete both to redo the point",
                dir.display(),
                record_path.display()
            );
        }
    }
    let t0 = std::time::Instant::now();
    let run_file = dir.join(partlearn::io::run::RUN_FILE);
    let run: Option<RunRecord> = if record.is_some() && run_file.is_file() {
        Some(RunRecord::read(&dir)?)
    } else {
        None
    };
    let progress = |what: &str| {
        if !a.quiet {
            errln!("[{}/{n}] {}: {what}", i + 1, pt.id);
        }
    };
    let fitted = match (&run, pt.model) {
        (Some(r), Model::SparseNmf) => r.fit.stop_reason != StopReason::Interrupted,
        (Some(r), _) if r.fit.n_iter > pt.epochs => anyhow::bail!(
            "{} was trained for {} epochs, more than the {} asked; give --epochs {} (or more), or another --out",
            dir.display(),
            r.fit.n_iter,
            pt.epochs,
            r.fit.n_iter
        ),
        (Some(r), _) => r.fit.n_iter == pt.epochs,
        (None, _) => false,
    };
    let mut evaluated = fitted
        && record.as_ref().and_then(|r| r.eval.as_ref()) == want.eval.as_ref()
        && dir.join(partlearn::io::run::METRICS_FILE).is_file();
    if !fitted {
        let resumable = record.is_some()
            && pt.model != Model::SparseNmf
            && (run.is_some()
                || dir.join(crate::resume::CHECKPOINT_FILE).is_file()
                || partlearn::io::run::resumable_stage(&dir).is_some());
        let args = if resumable {
            progress(&format!("continuing from its checkpoint to {} epochs", pt.epochs));
            resume_args(a, pt, &dir)
        } else {
            progress(&match pt.model {
                Model::SparseNmf => "fitting sparse NMF".to_string(),
                _ => format!("fitting {} epochs", pt.epochs),
            });
            // The record first: a folder killed mid-fit is then known to be this point's.
            want.fit_seconds = 0.0;
            let fresh = PointRecord {
                fit: want.fit.clone(),
                eval: None,
                fit_seconds: 0.0,
            };
            partlearn::io::write_atomic(&record_path, &partlearn::io::to_json_pretty(&fresh)?)?;
            fit_args(a, pt, &dir)
        };
        let t = std::time::Instant::now();
        let fitted = crate::dispatch(args).with_context(|| format!("study point {}", dir.display()));
        want.fit_seconds += t.elapsed().as_secs_f64();
        if fitted.is_err() {
            // An interrupted fit's time counts when it is continued.
            let partial = PointRecord {
                eval: None,
                ..want.clone()
            };
            partlearn::io::write_atomic(&record_path, &partlearn::io::to_json_pretty(&partial)?)?;
        }
        fitted?;
        evaluated = false;
    }
    if !evaluated {
        if fitted {
            progress("evaluating");
        }
        crate::dispatch(eval_args(a, budget, pt, &dir))
            .with_context(|| format!("evaluating {}", dir.display()))?;
        partlearn::io::write_atomic(&record_path, &partlearn::io::to_json_pretty(&want)?)?;
        progress(&format!("done in {:.1} s", t0.elapsed().as_secs_f64()));
    } else if !a.quiet {
        progress("already evaluated, kept");
    }
    let run = RunRecord::read(&dir)?;
    let metrics: Metrics = partlearn::io::read_json(&dir.join(partlearn::io::run::METRICS_FILE))?;
    Ok(StudyResult {
        point: pt.clone(),
        run: rel.display().to_string(),
        trained: run.fit.n_iter,
        fit_seconds: if want.fit_seconds > 0.0 {
            want.fit_seconds
        } else {
            run.fit.seconds
        },
        eval_seconds: metrics.seconds.total,
        metrics,
    })
}

/// A command line without the flags that do not change the result (`--threads N`, `--quiet`,
/// `--force`) and without `--epochs N` (compared with the run's own count instead).
fn settings(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(s) = it.next() {
        match s.as_str() {
            "--threads" | "--epochs" => {
                it.next();
            }
            "--quiet" | "--force" => {}
            _ => out.push(s.clone()),
        }
    }
    out
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `--data D [--first N]` of the training data (sparse NMF: of the evaluation data).
fn data_flags(a: &StudyArgs, pt: &StudyPoint) -> Vec<String> {
    let (data, first) = match pt.model {
        Model::SparseNmf => (&a.eval_data, a.eval_first),
        _ => (&a.data, a.first),
    };
    let mut v = vec!["--data".to_string(), data.clone()];
    if let Some(n) = first {
        v.extend(["--first".into(), n.to_string()]);
    }
    v
}

/// The `partlearn fit` command line of a point (METHODS.md §6.5: Adadelta, batch 128, MSE with
/// the per-pixel mean, decoder projected onto W ≥ 0; the unconstrained AEs neither penalise nor
/// project; sparse NMF as in docs/reproduction.md).
fn fit_args(a: &StudyArgs, pt: &StudyPoint, dir: &Path) -> Vec<String> {
    let mut v = strings(&["partlearn", "fit", pt.model.name()]);
    v.extend(data_flags(a, pt));
    v.extend(["-k".into(), study::K.to_string()]);
    match pt.model {
        Model::SparseNmf => v.extend(strings(&[
            "--code-sparsity",
            &study::SPARSE_NMF_S_H.to_string(),
            "--max-iter",
            "3000",
            "--tol",
            "1e-4",
        ])),
        _ => {
            match (&pt.penalty, pt.p, pt.beta) {
                (Some(pen), Some(p), Some(b)) => v.extend([
                    "--sparsity".into(),
                    pen.to_string(),
                    "--p".into(),
                    p.to_string(),
                    "--beta".into(),
                    b.to_string(),
                    "--nonneg".into(),
                    "project".into(),
                ]),
                _ => v.extend(strings(&["--sparsity", "none", "--nonneg", "none"])),
            }
            v.extend(strings(&["--optimizer", "adadelta", "--batch-size", "128"]));
            v.extend(["--epochs".into(), pt.epochs.to_string()]);
        }
    }
    v.extend([
        "--threads".into(),
        a.threads.to_string(),
        "--seed".into(),
        a.seed.to_string(),
        "--quiet".into(),
        // A folder without a finished fit is this point's unfinished one: fit it again.
        "--force".into(),
        "--out".into(),
        dir.display().to_string(),
    ]);
    v
}

/// `partlearn fit <ae|asym-ae> --resume DIR --epochs E`: continues the point's run.
fn resume_args(a: &StudyArgs, pt: &StudyPoint, dir: &Path) -> Vec<String> {
    let mut v = strings(&["partlearn", "fit", pt.model.name()]);
    v.extend(data_flags(a, pt));
    v.extend([
        "--resume".into(),
        dir.display().to_string(),
        "--epochs".into(),
        pt.epochs.to_string(),
        "--threads".into(),
        a.threads.to_string(),
        "--quiet".into(),
    ]);
    v
}

/// The `partlearn eval` command line of a point: on the evaluation images (sparse NMF on the
/// codes it learned from them), with the budget's SVM protocol.
fn eval_args(a: &StudyArgs, budget: Budget, pt: &StudyPoint, dir: &Path) -> Vec<String> {
    let mut v = strings(&[
        "partlearn",
        "eval",
        &dir.display().to_string(),
        "--data",
        &a.eval_data,
    ]);
    if let Some(n) = a.eval_first {
        v.extend(["--first".into(), n.to_string()]);
    }
    if pt.model == Model::SparseNmf {
        v.push("--stored-codes".into());
    }
    if a.no_svm {
        v.push("--no-svm".into());
    } else {
        let s = budget.svm();
        v.extend([
            "--svm-grid".into(),
            s.grid.to_string(),
            "--svm-select-splits".into(),
            s.select_splits.to_string(),
            "--svm-eval-splits".into(),
            s.eval_splits.to_string(),
        ]);
    }
    v.extend([
        "--threads".into(),
        a.threads.to_string(),
        "--seed".into(),
        a.seed.to_string(),
        "--quiet".into(),
        "--force".into(),
    ]);
    v
}

fn write_outputs(
    out: &Path,
    done: &[StudyResult],
    published: &study::Published,
    info: &PageInfo,
) -> Result<()> {
    let io = |p: PathBuf, bytes: &[u8]| partlearn::io::write_atomic(&p, bytes);
    io(out.join("study.csv"), study::table_csv(done).as_bytes())?;
    io(out.join("study.json"), &partlearn::io::to_json_pretty(done)?)?;
    for (name, _, _, svg) in page::charts(done, published)? {
        io(out.join("figures").join(name), svg.as_bytes())?;
    }
    io(
        out.join("study.html"),
        page::render(done, published, info)?.as_bytes(),
    )?;
    Ok(())
}
