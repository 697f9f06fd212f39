//! Choosing the rank k by the stability of seeded runs (METHODS.md §11.4).
//!
//! For each candidate k, [`select_k`] fits NMF `runs` times from random starts with seeds
//! `seed, seed + 1, …` (a deterministic start such as NNDSVD would make the runs identical) and
//! scores how much the runs agree:
//! - **consensus** (Brunet et al. 2004): on a seeded subsample of the samples (at most
//!   `samples`, since the consensus matrix is `s × s`), each run labels a sample by its largest
//!   code entry; the consensus matrix `C̄` is the share of runs in which two samples share a
//!   label; its **cophenetic correlation** (average linkage on `1 − C̄`) and **dispersion** are 1
//!   for a perfectly reproducible clustering;
//! - **atom stability** (cNMF, Kotliar et al. 2019): the atoms of all runs (unit norm) clustered
//!   by k-means into k groups; the mean **silhouette** is near 1 when every run found the same
//!   parts. cNMF's outlier filter is not applied: every atom counts.
//!
//! Suggested ranks: by the silhouette, the largest k whose score is within [`SILHOUETTE_TOL`] of
//! the best over the candidates (past the true rank the runs split the parts differently and the
//! silhouette drops); by the cophenetic correlation, Brunet's rule, the last k before the score
//! first drops by more than [`COPHENETIC_TOL`] (the largest candidate if it never does). On data
//! whose samples each have one clearly dominant part the consensus stays reproducible past the
//! rank, so the cophenetic correlation plateaus instead of dropping and only bounds the rank from
//! below; the silhouette is then the sharper criterion.
//!
//! With [`SelectParams::holdout`], every rank is also scored by **cross-validation** on held-out
//! entries ([`cv`]: `replicates` seeded hold-out masks, the masked NMF of §11.2, the relative
//! error on the hidden entries), and the rank suggested by the one-standard-error rule
//! ([`one_se_rule`]). Data with NaN entries are fitted by the masked solver (NaN = missing).

mod atoms;
mod consensus;
pub mod cv;

pub use cv::one_se_rule;

use std::time::Instant;

use faer::MatRef;
use serde::{Deserialize, Serialize};

use crate::engine::{Observer, StopReason};
use crate::error::{Error, Result};
use crate::nmf::{self, InitMethod, ValidNmfParams};
use crate::plot::{Chart, Series};
use crate::real::Real;
use crate::rng::Rng;

/// The drop of the cophenetic correlation between consecutive candidates that ends Brunet's rule.
pub const COPHENETIC_TOL: f64 = 0.01;
/// Tolerance of the silhouette rule: the suggested k is the largest within it of the best.
pub const SILHOUETTE_TOL: f64 = 0.02;
/// The table of a selection in its output folder ([`table_csv`]).
pub const TABLE_FILE: &str = "select-k.csv";
/// The [`Selection`] as JSON in its output folder.
pub const RESULT_FILE: &str = "select-k.json";
/// Default number of seeded runs per k.
pub const DEFAULT_RUNS: usize = 10;
/// Default size of the consensus subsample.
pub const DEFAULT_SAMPLES: usize = 2000;
/// Default hold-out replicates of the cross-validation criterion.
pub const DEFAULT_REPLICATES: usize = 3;

/// Settings of [`select_k`]: the candidate ranks, the runs per rank, the consensus subsample
/// and the NMF of every run (`k` replaced by each candidate, the seed by `seed + run`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SelectParams {
    /// Candidate ranks, each ≥ 1 (tried in the order given).
    pub ks: Vec<usize>,
    /// Seeded runs per rank (≥ 2).
    pub runs: usize,
    /// Most samples in the consensus matrix (≥ 2); more are subsampled with `seed`.
    pub samples: usize,
    /// First seed: run `r` of every rank has seed `seed + r`; the subsample uses `seed`.
    pub seed: u64,
    /// Cross-validation ([`cv`]): the share of the observed entries held out, in (0, 0.5]
    /// (METHODS.md §11.4 suggests 0.05–0.1); `None` = no cross-validation.
    pub holdout: Option<f64>,
    /// Cross-validation: hold-out replicates per rank (≥ 1; ≥ 2 for a standard error).
    pub replicates: usize,
}

impl SelectParams {
    /// The candidates `ks` with [`DEFAULT_RUNS`] runs, [`DEFAULT_SAMPLES`] samples, seed 0.
    pub fn new(ks: Vec<usize>) -> Self {
        SelectParams {
            ks,
            runs: DEFAULT_RUNS,
            samples: DEFAULT_SAMPLES,
            seed: 0,
            holdout: None,
            replicates: DEFAULT_REPLICATES,
        }
    }

    /// Sets [`SelectParams::holdout`] (turns the cross-validation criterion on).
    pub fn holdout(mut self, fraction: f64) -> Self {
        self.holdout = Some(fraction);
        self
    }

    /// Sets [`SelectParams::replicates`].
    pub fn replicates(mut self, replicates: usize) -> Self {
        self.replicates = replicates;
        self
    }

    /// Sets [`SelectParams::runs`].
    pub fn runs(mut self, runs: usize) -> Self {
        self.runs = runs;
        self
    }

    /// Sets [`SelectParams::samples`].
    pub fn samples(mut self, samples: usize) -> Self {
        self.samples = samples;
        self
    }

    /// Sets [`SelectParams::seed`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks what does not depend on the data.
    pub fn check(&self) -> Result<ValidSelectParams> {
        if self.ks.is_empty() {
            return Err(Error::invalid("ks", "none", "give at least one candidate rank"));
        }
        if let Some(&k) = self.ks.iter().find(|&&k| k == 0) {
            return Err(Error::invalid("ks", k, "every candidate rank must be at least 1"));
        }
        if self.runs < 2 {
            return Err(Error::invalid(
                "runs",
                self.runs,
                "at least 2 runs are needed to compare runs",
            ));
        }
        if self.samples < 2 {
            return Err(Error::invalid(
                "samples",
                self.samples,
                "the consensus needs at least 2 samples",
            ));
        }
        if let Some(h) = self.holdout {
            if !(h > 0.0 && h <= 0.5) {
                return Err(Error::invalid(
                    "holdout",
                    h,
                    "the held-out share of the entries must be in (0, 0.5]; 0.05–0.1 is usual",
                ));
            }
        }
        if self.replicates == 0 {
            return Err(Error::invalid(
                "replicates",
                0,
                "at least 1 hold-out replicate is needed",
            ));
        }
        Ok(ValidSelectParams(self.clone()))
    }
}

/// Checked [`SelectParams`].
#[derive(Clone, Debug)]
pub struct ValidSelectParams(SelectParams);

impl ValidSelectParams {
    /// The parameters.
    pub fn params(&self) -> &SelectParams {
        &self.0
    }
}

/// The scores of one candidate rank.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KScore {
    /// The rank.
    pub k: usize,
    /// Mean relative error `‖X − WH‖_F / ‖X‖_F` of the runs.
    pub rel_error: f64,
    /// Its standard deviation over the runs.
    pub rel_error_std: f64,
    /// Cophenetic correlation of the consensus matrix (1 = perfectly reproducible).
    pub cophenetic: f64,
    /// Dispersion of the consensus matrix (1 = perfectly reproducible).
    pub dispersion: f64,
    /// Mean silhouette of the runs' atoms clustered into k groups (near 1 = the same parts).
    pub silhouette: f64,
    /// Seconds for the rank's runs and scores.
    pub seconds: f64,
    /// Cross-validation: mean relative error on the held-out entries over the replicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv_error: Option<f64>,
    /// Its sample standard deviation over the replicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv_error_std: Option<f64>,
}

/// What [`select_k`] found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// One score per candidate rank evaluated, in the order given.
    pub scores: Vec<KScore>,
    /// The suggested rank by the cophenetic correlation, Brunet's rule (module doc).
    pub k_cophenetic: usize,
    /// The suggested rank by the atoms' silhouette.
    pub k_silhouette: usize,
    /// The suggested rank by cross-validation ([`one_se_rule`]); `None` without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k_cv: Option<usize>,
    /// Cross-validation: the held-out share and the replicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<f64>,
    /// Cross-validation replicates per rank (0 without cross-validation).
    #[serde(default)]
    pub replicates: usize,
    /// Samples in the consensus matrix.
    pub consensus_samples: usize,
    /// `Interrupted` when a run was stopped (the ranks before it are scored), else `Converged`.
    pub stop_reason: StopReason,
}

/// Brunet's rule: the last k (in the order given) before the score first drops by more than
/// `tol`; the last candidate if it never does.
fn before_first_drop(scores: &[KScore], value: impl Fn(&KScore) -> f64, tol: f64) -> usize {
    scores
        .windows(2)
        .find(|w| value(&w[1]) < value(&w[0]) - tol)
        .map_or(scores.last().map_or(0, |s| s.k), |w| w[0].k)
}

/// The largest k whose score is within `tol` of the best score.
fn suggest(scores: &[KScore], value: impl Fn(&KScore) -> f64, tol: f64) -> usize {
    let best = scores.iter().map(&value).fold(f64::NEG_INFINITY, f64::max);
    scores
        .iter()
        .filter(|s| value(s) >= best - tol)
        .map(|s| s.k)
        .max()
        .unwrap_or(0)
}

/// Scores every candidate rank of `params` on `x` (`n × m`, samples as rows, entries ≥ 0; module
/// doc), each run an NMF with `base` (its `k`, start and seed replaced) reporting its iterations to
/// `observer`. A run stopped by the observer or Ctrl-C ends the selection with the ranks scored
/// so far (stop reason `Interrupted`; the suggestions are 0 when no rank was scored).
///
/// ```
/// use partlearn::faer::Mat;
/// use partlearn::nmf::NmfParams;
/// use partlearn::select::{select_k, SelectParams};
///
/// let x = Mat::<f64>::from_fn(40, 12, |j, i| ((i + j) % 4 == 0) as u8 as f64 + 0.01);
/// let base = NmfParams::new(1).max_iter(50).check()?;
/// let sel = select_k(x.as_ref(), &SelectParams::new(vec![2, 3, 4]).runs(3).check()?, &base,
///                    &mut partlearn::engine::Silent)?;
/// assert_eq!(sel.scores.len(), 3);
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn select_k<T: Real>(
    x: MatRef<'_, T>,
    params: &ValidSelectParams,
    base: &ValidNmfParams,
    observer: &mut (dyn Observer + Send),
) -> Result<Selection> {
    let p = params.params();
    let n = x.nrows();
    if let Some(&k) = p.ks.iter().find(|&&k| k > n.min(x.ncols())) {
        return Err(Error::invalid(
            "ks",
            k,
            format!(
                "a rank must be at most min(n_samples, n_features) = {}",
                n.min(x.ncols())
            ),
        ));
    }
    let subset: Vec<usize> = if n > p.samples {
        let mut s = Rng::new(p.seed).sample_indices(n, p.samples);
        s.sort_unstable();
        s
    } else {
        (0..n).collect()
    };
    let mut scores = Vec::new();
    let mut stop_reason = StopReason::Converged;
    let cv_masks = p.holdout.map(|h| cv::holdout_masks(x, h, p.replicates, p.seed));
    'ranks: for &k in &p.ks {
        let start = Instant::now();
        let (mut labels, mut atoms, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..p.runs {
            let opts = base
                .params()
                .clone()
                .k(k)
                .init(InitMethod::Random)
                .seed(p.seed.wrapping_add(r as u64))
                .check()?;
            let fit = nmf::factorize_masked_with(x, None, &opts, None, observer)?;
            if fit.stop_reason == StopReason::Interrupted {
                stop_reason = StopReason::Interrupted;
                break 'ranks;
            }
            let codes = fit.codes();
            labels.push(
                subset
                    .iter()
                    .map(|&i| (0..k).fold(0, |b, c| if codes[(i, c)] > codes[(i, b)] { c } else { b }))
                    .collect::<Vec<usize>>(),
            );
            let h = fit.model.components();
            for c in 0..k {
                let v: Vec<f64> = (0..h.ncols()).map(|j| h[(c, j)].to_f64()).collect();
                let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
                atoms.push(
                    v.into_iter()
                        .map(|a| if norm > 0.0 { a / norm } else { 0.0 })
                        .collect::<Vec<f64>>(),
                );
            }
            errors.push(fit.rel_error);
        }
        let cv_score = match &cv_masks {
            Some((base_mask, masks)) => {
                let s = cv::score_rank(x, k, base_mask, masks, base, p.seed, observer)?;
                if !s.complete {
                    stop_reason = StopReason::Interrupted;
                    break 'ranks;
                }
                Some(s)
            }
            None => None,
        };
        let c = consensus::consensus(&labels);
        let mean = errors.iter().sum::<f64>() / errors.len() as f64;
        let var = errors.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / errors.len() as f64;
        let clusters = atoms::kmeans(&atoms, k, 100, &mut Rng::new(p.seed ^ k as u64));
        scores.push(KScore {
            k,
            rel_error: mean,
            rel_error_std: var.sqrt(),
            cophenetic: consensus::cophenetic_correlation(&c),
            dispersion: consensus::dispersion(&c),
            silhouette: if k == 1 {
                1.0
            } else {
                atoms::silhouette(&atoms, &clusters)
            },
            seconds: start.elapsed().as_secs_f64(),
            cv_error: cv_score.as_ref().map(|s| s.mean),
            cv_error_std: cv_score.as_ref().map(|s| s.std),
        });
    }
    let cv_table: Vec<(usize, f64, f64)> = scores
        .iter()
        .filter_map(|s| Some((s.k, s.cv_error?, s.cv_error_std?)))
        .collect();
    Ok(Selection {
        k_cv: p.holdout.map(|_| one_se_rule(&cv_table, p.replicates)),
        holdout: p.holdout,
        replicates: if p.holdout.is_some() { p.replicates } else { 0 },
        k_cophenetic: before_first_drop(&scores, |s| s.cophenetic, COPHENETIC_TOL),
        k_silhouette: suggest(&scores, |s| s.silhouette, SILHOUETTE_TOL),
        scores,
        consensus_samples: subset.len(),
        stop_reason,
    })
}

/// The scores as CSV: one row per rank.
pub fn table_csv(sel: &Selection) -> String {
    let mut out = String::from("k,rel_error,rel_error_std,cophenetic,dispersion,silhouette,seconds");
    let cv = sel.holdout.is_some();
    if cv {
        out.push_str(",cv_error,cv_error_std");
    }
    out.push('\n');
    for s in &sel.scores {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}",
            s.k, s.rel_error, s.rel_error_std, s.cophenetic, s.dispersion, s.silhouette, s.seconds
        ));
        if cv {
            let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
            out.push_str(&format!(",{},{}", opt(s.cv_error), opt(s.cv_error_std)));
        }
        out.push('\n');
    }
    out
}

/// One chart per criterion against k (file name, SVG text): the consensus scores (cophenetic
/// correlation, dispersion), the atoms' silhouette, the relative error (± its spread over
/// the runs), and with cross-validation the held-out error (± its spread over the replicates).
pub fn charts(sel: &Selection) -> Result<Vec<(String, String)>> {
    let points = |f: &dyn Fn(&KScore) -> f64| -> Vec<(f64, f64)> {
        sel.scores.iter().map(|s| (s.k as f64, f(s))).collect()
    };
    let mut out = Vec::new();
    let mut c = Chart::new(
        "Consensus stability of the samples vs k",
        "rank k",
        "score (1 = reproducible)",
    );
    c.series
        .push(Series::new("cophenetic correlation", points(&|s| s.cophenetic)));
    c.series
        .push(Series::new("dispersion", points(&|s| s.dispersion)));
    out.push(("consensus_vs_k.svg".to_string(), c.to_svg()?));
    let mut c = Chart::new("Stability of the atoms vs k", "rank k", "silhouette of the atoms");
    c.series
        .push(Series::new("mean silhouette", points(&|s| s.silhouette)));
    out.push(("silhouette_vs_k.svg".to_string(), c.to_svg()?));
    let mut c = Chart::new("Relative error vs k", "rank k", "‖X − WH‖ / ‖X‖");
    let mut e = Series::new("mean over runs (± std)", points(&|s| s.rel_error));
    e.errors = sel.scores.iter().map(|s| s.rel_error_std).collect();
    c.series.push(e);
    out.push(("error_vs_k.svg".to_string(), c.to_svg()?));
    if let Some(h) = sel.holdout {
        let mut c = Chart::new(
            format!(
                "Cross-validation: error on {:.0} % held-out entries vs k",
                100.0 * h
            ),
            "rank k",
            "‖M̄ ⊙ (X − WH)‖ / ‖M̄ ⊙ X‖ (held out)",
        );
        let mut e = Series::new(
            format!("mean over {} replicates (± std)", sel.replicates),
            sel.scores
                .iter()
                .filter_map(|s| Some((s.k as f64, s.cv_error?)))
                .collect(),
        );
        e.errors = sel.scores.iter().filter_map(|s| s.cv_error_std).collect();
        c.series.push(e);
        out.push(("cv_error_vs_k.svg".to_string(), c.to_svg()?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
