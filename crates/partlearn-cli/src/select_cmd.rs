//! `partlearn select-k`: scores candidate ranks by the stability of seeded NMF runs
//! (`partlearn::select`) and writes the table, the scores as JSON and one chart per criterion.

use anyhow::Result;
use clap::Args;
use partlearn::engine::StopReason;
use partlearn::io::run::RunDir;
use partlearn::nmf::{NmfParams, Solver};
use partlearn::select::{self, SelectParams};
use partlearn::Real;

use crate::args::{DataArgs, Dtype, Exit, RunArgs};
use crate::progress::FitProgress;

#[derive(Args, Debug)]
pub struct SelectArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Candidate ranks, at most 10000: a list (5,8,10) or a range FIRST..LAST:STEP (5..50:5; the step defaults to 1).
    #[arg(short = 'k', long = "k", value_parser = parse_ks, default_value = "2..10")]
    pub ks: Ks,
    /// Seeded runs per rank (random starts, seeds --seed, --seed + 1, …).
    #[arg(long, default_value_t = select::DEFAULT_RUNS)]
    pub runs: usize,
    /// Most samples in the consensus matrix (more are subsampled with --seed).
    #[arg(long, default_value_t = select::DEFAULT_SAMPLES)]
    pub samples: usize,
    /// NMF solver of every run: hals, mu or anls.
    #[arg(long, default_value = "hals")]
    pub solver: Solver,
    /// Iterations of every run.
    #[arg(long, default_value_t = 200)]
    pub max_iter: usize,
    /// Tolerance of every run (as `fit nmf --tol`).
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    /// Also score every rank by cross-validation: hide this share of the entries (seeded by --seed), fit on the rest with the masked solver, and measure the error on the hidden ones (0.05–0.1 is usual).
    #[arg(long, value_name = "FRACTION")]
    pub holdout: Option<f64>,
    /// Cross-validation: hold-out replicates per rank (the same masks for every rank).
    #[arg(long, default_value_t = select::DEFAULT_REPLICATES, requires = "holdout")]
    pub replicates: usize,
    /// Output (--out: the folder for select-k.csv, select-k.json and figures/, default
    /// runs/select-k), verbosity, threads, float type and first seed (runs and subsample).
    #[command(flatten)]
    pub run: RunArgs,
}

/// The candidate ranks of `-k`.
#[derive(Clone, Debug)]
pub struct Ks(pub Vec<usize>);

/// The most candidate ranks one `select-k` scores (each is `--runs` fits).
const MAX_RANKS: usize = 10_000;

/// `5,8,10` or `FIRST..LAST[:STEP]` (inclusive), at most [`MAX_RANKS`] ranks (a range is
/// counted before it is built).
fn parse_ks(s: &str) -> std::result::Result<Ks, String> {
    let bad = || format!("'{s}' is not a list of ranks (5,8,10) or a range FIRST..LAST:STEP (5..50:5)");
    let too_many = |count: String| {
        format!("'{s}' names {count} ranks, more than the {MAX_RANKS} select-k scores: narrow the range or give a step (e.g. 2..50:2)")
    };
    if let Some((first, rest)) = s.split_once("..") {
        let (last, step) = rest.split_once(':').unwrap_or((rest, "1"));
        let num = |t: &str| t.trim().parse::<usize>().map_err(|_| bad());
        let (a, b, st) = (num(first)?, num(last)?, num(step)?);
        if st == 0 || a > b {
            return Err(bad());
        }
        // (b − a) / st + 1 ranks, compared without overflowing.
        if (b - a) / st >= MAX_RANKS {
            let count = ((b - a) / st) as u128 + 1;
            return Err(too_many(count.to_string()));
        }
        return Ok(Ks((a..=b).step_by(st).collect()));
    }
    let ks = s
        .split(',')
        .map(|t| t.trim().parse::<usize>().map_err(|_| bad()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if ks.len() > MAX_RANKS {
        return Err(too_many(ks.len().to_string()));
    }
    Ok(Ks(ks))
}

pub fn run(a: SelectArgs) -> Result<()> {
    match a.run.dtype {
        Dtype::F32 => run_t::<f32>(&a),
        Dtype::F64 => run_t::<f64>(&a),
    }
}

fn run_t<T: Real>(a: &SelectArgs) -> Result<()> {
    let mut params = SelectParams::new(a.ks.0.clone())
        .runs(a.runs)
        .samples(a.samples)
        .seed(a.run.seed)
        .replicates(a.replicates);
    if let Some(h) = a.holdout {
        params = params.holdout(h);
    }
    let params = params.check()?;
    let base = NmfParams::new(1)
        .solver(a.solver)
        .max_iter(a.max_iter)
        .tol(a.tol)
        .threads(a.run.threads)
        .check()?;
    let out = a.run.out.clone().unwrap_or_else(|| "runs/select-k".into());
    a.data.check_not_input(&out, "--out")?;
    let data = a.data.load::<T>()?;
    let dir = RunDir::create(&out, a.run.force)?;
    let mut progress = FitProgress::new(a.max_iter, a.run.quiet);
    let sel = select::select_k(data.x(), &params, &base, &mut progress);
    progress.finish();
    let sel = sel?;
    if sel.scores.is_empty() {
        return Err(Exit::Interrupted.into());
    }
    dir.write(select::TABLE_FILE, select::table_csv(&sel).as_bytes())?;
    dir.write_json(select::RESULT_FILE, &sel)?;
    for (name, bytes) in select::charts(&sel)? {
        dir.write(
            &format!("{}/{name}", partlearn::io::run::FIGURES_DIR),
            bytes.as_bytes(),
        )?;
    }
    let out = dir.commit()?;
    if a.run.json {
        outln!("{}", serde_json::to_string(&sel)?);
    } else if !a.run.quiet {
        for s in &sel.scores {
            let cv = match (s.cv_error, s.cv_error_std) {
                (Some(e), Some(sd)) => format!(", held-out error {e:.4} ± {sd:.4}"),
                _ => String::new(),
            };
            errln!(
                "k = {:>3}: rel. error {:.4} ± {:.4}, cophenetic {:.4}, dispersion {:.4}, silhouette {:.4}{cv}",
                s.k,
                s.rel_error,
                s.rel_error_std,
                s.cophenetic,
                s.dispersion,
                s.silhouette
            );
        }
        if let Some(k) = sel.k_cv {
            errln!("suggested k: {k} by cross-validation (smallest k within one standard error of the least held-out error)");
        }
        errln!(
            "suggested k: {} by the atoms' silhouette, {} by the cophenetic correlation; written to {}",
            sel.k_silhouette,
            sel.k_cophenetic,
            out.display()
        );
    }
    if sel.stop_reason == StopReason::Interrupted {
        return Err(Exit::Interrupted.into());
    }
    Ok(())
}
