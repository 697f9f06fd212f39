//! The report's study (METHODS.md §6.7 and §9): sparse NMF (s_H = 0.6) as the baseline, the
//! shallow non-negative auto-encoder with each sparsity penalty (KL, L2, εL1, log; §6.3) over the
//! report's β grid and target activations p, the unconstrained shallow AE, and the asymmetric
//! AE's rows — every point fitted and evaluated by the one protocol of §7.
//!
//! This module holds what the study is, not how it runs: [`plan`] lists the points of a
//! [`Budget`], [`published`] the report's numbers (from `published.json` in this folder, with the
//! section they come from), [`StudyResult`] one evaluated point, and [`page`] the HTML page with
//! the table beside the report's and the metric-vs-β curves. The command line fits and evaluates
//! each point in its own run folder (`partlearn reproduce part-based-study`).

pub mod page;

use serde::{Deserialize, Serialize};

use crate::autoencoder::Sparsity;
use crate::error::{Error, Result};
use crate::eval::evaluate::Metrics;

/// The report's β grid (METHODS.md §6.5).
pub const BETAS: [f64; 8] = [1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5];
/// The report's target mean activations p (METHODS.md §6.5).
pub const PS: [f64; 4] = [0.01, 0.05, 0.1, 0.2];
/// The report's epochs for every auto-encoder (METHODS.md §6.5).
pub const REPORT_EPOCHS: usize = 500;
/// The code size of every model of the study.
pub const K: usize = 100;
/// Hoyer sparseness of the sparse-NMF baseline's codes (METHODS.md §6.7, first row).
pub const SPARSE_NMF_S_H: f64 = 0.6;
/// The sparsity penalties of the shallow AE the study sweeps (METHODS.md §6.3).
pub const PENALTIES: [Sparsity; 4] = [
    Sparsity::Kl,
    Sparsity::L2,
    Sparsity::EpsL1 { eps: 1e-6 },
    Sparsity::Log,
];

/// How long the study trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Budget {
    /// A schedule that finishes within an hour on two cores: [`FAST_EPOCHS`] epochs of the shallow
    /// AEs and [`FAST_ASYM_EPOCHS`] of the asymmetric AE (of the report's 500), the full KL grid,
    /// the other penalties at p = 0.05, and a lighter SVM selection ([`Budget::svm`]).
    Fast,
    /// The report's schedule: 500 epochs, every penalty over the whole (β, p) grid.
    Full,
}

/// Shallow-AE epochs of the fast budget.
pub const FAST_EPOCHS: usize = 12;
/// Asymmetric-AE epochs of the fast budget (an epoch of it costs about 20 of the shallow AE's).
pub const FAST_ASYM_EPOCHS: usize = 3;
/// The target p of the non-KL penalties under the fast budget (the report's "chosen" p).
pub const FAST_P: f64 = 0.05;

/// The linear-SVM protocol's sizes (METHODS.md §7.3): C values, selection splits, test splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SvmSizes {
    /// C values on the log grid [1e-2, 1e3].
    pub grid: usize,
    /// Stratified shuffle splits that choose C.
    pub select_splits: usize,
    /// Stratified shuffle splits of the held-out 20 % for the mean ± std.
    pub eval_splits: usize,
}

impl Budget {
    /// Parses `fast` or `full`.
    pub fn parse(s: &str) -> Result<Budget> {
        match s {
            "fast" => Ok(Budget::Fast),
            "full" => Ok(Budget::Full),
            _ => Err(Error::invalid(
                "budget",
                s,
                "use fast (within an hour on two cores) or full (the report's 500 epochs)",
            )),
        }
    }

    /// Epochs of the shallow and of the asymmetric AE.
    pub fn epochs(self) -> (usize, usize) {
        match self {
            Budget::Fast => (FAST_EPOCHS, FAST_ASYM_EPOCHS),
            Budget::Full => (REPORT_EPOCHS, REPORT_EPOCHS),
        }
    }

    /// The SVM protocol's sizes: the fast budget chooses C among 5 values on one split and
    /// averages 10 test splits (about a third of the default protocol's time); the full budget
    /// uses `partlearn eval`'s defaults (10 × 3, 25), whose accuracies agree with the report's
    /// 30 × 20 selection within 0.003 (docs/reproduction.md, "The SVM protocol").
    pub fn svm(self) -> SvmSizes {
        match self {
            Budget::Fast => SvmSizes {
                grid: 5,
                select_splits: 1,
                eval_splits: 10,
            },
            Budget::Full => SvmSizes {
                grid: 10,
                select_splits: 3,
                eval_splits: 25,
            },
        }
    }
}

/// The model of a study point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    /// Hoyer's sparse NMF, fitted on the evaluation images themselves (its constrained codes
    /// have no per-sample transform, METHODS.md §2.4, so the report measured the codes it learned).
    SparseNmf,
    /// The shallow auto-encoder (§6.1).
    Ae,
    /// The asymmetric auto-encoder (§6.6).
    AsymAe,
}

impl Model {
    /// The name of the `partlearn fit` subcommand and of the published rows.
    pub fn name(self) -> &'static str {
        match self {
            Model::SparseNmf => "sparse-nmf",
            Model::Ae => "ae",
            Model::AsymAe => "asym-ae",
        }
    }
}

/// One point of the study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyPoint {
    /// Folder name of its run, unique in the study (e.g. `ae-kl-p0.05-beta0.001`).
    pub id: String,
    /// The model.
    pub model: Model,
    /// The AE's sparsity penalty; [`Sparsity::None`] for the unconstrained AE (no penalty and no
    /// projection of the decoder); `None` for sparse NMF.
    pub penalty: Option<Sparsity>,
    /// Target mean activation (AEs with a penalty).
    pub p: Option<f64>,
    /// Penalty weight (AEs with a penalty).
    pub beta: Option<f64>,
    /// Epochs (AEs); 0 for sparse NMF.
    pub epochs: usize,
}

impl StudyPoint {
    fn ae(model: Model, penalty: Sparsity, p: f64, beta: f64, epochs: usize) -> Self {
        StudyPoint {
            id: format!("{}-{}-p{p}-beta{beta}", model.name(), penalty_name(&penalty)),
            model,
            penalty: Some(penalty),
            p: Some(p),
            beta: Some(beta),
            epochs,
        }
    }

    fn unconstrained(model: Model, epochs: usize) -> Self {
        StudyPoint {
            id: format!("{}-unconstrained", model.name()),
            model,
            penalty: Some(Sparsity::None),
            p: None,
            beta: None,
            epochs,
        }
    }

    /// Whether this point is a published row's setting.
    pub fn matches(&self, row: &PublishedRow) -> bool {
        let same = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * a.abs().max(1.0),
            _ => false,
        };
        self.model.name() == row.model
            && self.penalty.as_ref().map(penalty_name).as_deref() == row.penalty.as_deref()
            && same(self.p, row.p)
            && same(self.beta, row.beta)
    }

    /// A one-line description, e.g. `shallow AE, KL, p = 0.05, β = 0.001`.
    pub fn describe(&self) -> String {
        let model = match self.model {
            Model::SparseNmf => return format!("sparse NMF, s_H = {SPARSE_NMF_S_H}"),
            Model::Ae => "shallow AE",
            Model::AsymAe => "asymmetric AE",
        };
        match (&self.penalty, self.p, self.beta) {
            (Some(pen), Some(p), Some(b)) => format!("{model}, {}, p = {p}, β = {b}", penalty_label(pen)),
            _ => format!("{model}, unconstrained"),
        }
    }
}

/// The penalty's name as `--sparsity` takes it, without parameters (`eps-l1`, not `eps-l1:1e-6`).
pub fn penalty_name(s: &Sparsity) -> String {
    match s {
        Sparsity::EpsL1 { .. } => "eps-l1".into(),
        Sparsity::Hoyer { .. } => "hoyer".into(),
        other => other.to_string(),
    }
}

/// How a penalty is named on the page (METHODS.md §6.3).
pub fn penalty_label(s: &Sparsity) -> &'static str {
    match s {
        Sparsity::Kl => "KL",
        Sparsity::L2 => "L2",
        Sparsity::EpsL1 { .. } => "εL1",
        Sparsity::Log => "log",
        Sparsity::L1 => "L1",
        Sparsity::Hoyer { .. } => "Hoyer",
        Sparsity::None => "none",
    }
}

/// What to run, besides the budget.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanOptions {
    /// Epochs of every AE (overrides the budget's).
    pub epochs: Option<usize>,
    /// Epochs of the asymmetric AE (overrides `epochs` and the budget's).
    pub asym_epochs: Option<usize>,
    /// The penalties of the shallow AE (default: all four of [`PENALTIES`]).
    pub penalties: Vec<Sparsity>,
    /// β values (default: the report's grid [`BETAS`]).
    pub betas: Vec<f64>,
    /// p values of the KL penalty (default: [`PS`]); of the others too under the full budget.
    pub ps: Vec<f64>,
    /// Whether the asymmetric AE's rows are run.
    pub asym: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            epochs: None,
            asym_epochs: None,
            penalties: PENALTIES.to_vec(),
            betas: BETAS.to_vec(),
            ps: PS.to_vec(),
            asym: true,
        }
    }
}

/// The points of the study, in the order they are run: sparse NMF, the unconstrained shallow
/// AE, each penalty over β × p (KL over every p; the others over every p under the full budget
/// and at [`FAST_P`] under the fast one, or every p given when [`FAST_P`] is not among them),
/// then the asymmetric AE's rows of the report's table.
pub fn plan(budget: Budget, opts: &PlanOptions) -> Result<Vec<StudyPoint>> {
    check_values("beta", &opts.betas, "a positive penalty weight such as 0.001")?;
    check_values("p", &opts.ps, "a target activation in (0, 1) such as 0.05")?;
    if let Some(&p) = opts.ps.iter().find(|&&p| p >= 1.0) {
        return Err(Error::invalid("p", p, "a target mean activation lies in (0, 1)"));
    }
    if opts.penalties.is_empty() {
        return Err(Error::invalid(
            "penalties",
            "none",
            "give at least one of kl, l2, eps-l1, log",
        ));
    }
    if let Some(bad) = opts.penalties.iter().find(|s| !s.uses_target()) {
        return Err(Error::invalid(
            "penalties",
            bad,
            "the study sweeps the penalties on the mean activation: kl, l2, eps-l1, log",
        ));
    }
    // A value given twice is one point.
    let distinct = |v: &[f64]| {
        let mut out: Vec<f64> = Vec::new();
        for &x in v {
            if !out.contains(&x) {
                out.push(x);
            }
        }
        out
    };
    let (betas, ps) = (distinct(&opts.betas), distinct(&opts.ps));
    let (e, ea) = budget.epochs();
    let epochs = opts.epochs.unwrap_or(e);
    let asym_epochs = opts.asym_epochs.or(opts.epochs).unwrap_or(ea);
    if epochs == 0 || asym_epochs == 0 {
        return Err(Error::invalid("epochs", 0, "train for at least one epoch"));
    }
    let mut penalties: Vec<Sparsity> = Vec::new();
    for pen in &opts.penalties {
        if !penalties.contains(pen) {
            penalties.push(*pen);
        }
    }
    let mut points = vec![
        StudyPoint {
            id: format!("sparse-nmf-sH{SPARSE_NMF_S_H}"),
            model: Model::SparseNmf,
            penalty: None,
            p: None,
            beta: None,
            epochs: 0,
        },
        StudyPoint::unconstrained(Model::Ae, epochs),
    ];
    for pen in &penalties {
        let ps: Vec<f64> = if *pen == Sparsity::Kl || budget == Budget::Full || !ps.contains(&FAST_P) {
            ps.clone()
        } else {
            vec![FAST_P]
        };
        for &p in &ps {
            for &b in &betas {
                points.push(StudyPoint::ae(Model::Ae, *pen, p, b, epochs));
            }
        }
    }
    if opts.asym {
        points.push(StudyPoint::unconstrained(Model::AsymAe, asym_epochs));
        for row in published()?.rows.iter().filter(|r| r.model == "asym-ae") {
            if let (Some(p), Some(b)) = (row.p, row.beta) {
                points.push(StudyPoint::ae(Model::AsymAe, Sparsity::Kl, p, b, asym_epochs));
            }
        }
    }
    Ok(points)
}

fn check_values(name: &'static str, v: &[f64], hint: &str) -> Result<()> {
    if v.is_empty() {
        return Err(Error::invalid(
            name,
            "none",
            format!("give at least one value: {hint}"),
        ));
    }
    match v.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
        Some(&bad) => Err(Error::invalid(name, bad, format!("give {hint}"))),
        None => Ok(()),
    }
}

/// One row of the report's table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedRow {
    /// How the report names the model.
    pub label: String,
    /// `sparse-nmf`, `ae` or `asym-ae`.
    pub model: String,
    /// The AE's penalty (`none` = unconstrained), as `--sparsity` names it.
    pub penalty: Option<String>,
    /// Target mean activation.
    pub p: Option<f64>,
    /// Penalty weight.
    pub beta: Option<f64>,
    /// Reconstruction MSE per pixel.
    pub mse: f64,
    /// Mean Hoyer sparsity of the codes.
    pub hoyer: f64,
    /// Max-approximation error against the dilated originals.
    pub max_approx: f64,
    /// Linear-SVM mean accuracy.
    pub svm: f64,
    /// Its standard deviation over the test splits.
    pub svm_std: f64,
    /// A remark on the value (e.g. another figure of the same source).
    pub note: String,
}

/// The report's numbers with their source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// Where the numbers come from.
    pub source: String,
    /// The section of METHODS.md that quotes them.
    pub section: String,
    /// Epochs the report trained every AE for.
    pub epochs: usize,
    /// The table's rows.
    pub rows: Vec<PublishedRow>,
}

/// The report's table (`published.json`, compiled in).
pub fn published() -> Result<Published> {
    serde_json::from_str(include_str!("published.json")).map_err(|e| {
        Error::invalid(
            "published.json",
            e,
            "the compiled-in table of the report is malformed",
        )
    })
}

/// One evaluated point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyResult {
    /// The point.
    pub point: StudyPoint,
    /// Its run folder, relative to the study's folder.
    pub run: String,
    /// Epochs (AEs) or iterations (sparse NMF) trained.
    pub trained: usize,
    /// Seconds of training (all invocations) and of the evaluation.
    pub fit_seconds: f64,
    /// See `fit_seconds`.
    pub eval_seconds: f64,
    /// The evaluation on the test images.
    pub metrics: Metrics,
}

impl StudyResult {
    /// Reconstruction MSE per pixel.
    pub fn mse(&self) -> f64 {
        self.metrics.reconstruction.mse
    }
    /// Mean Hoyer sparsity of the codes.
    pub fn hoyer(&self) -> f64 {
        self.metrics.hoyer.mean
    }
    /// Max-approximation error against the dilated originals (image data).
    pub fn max_approx(&self) -> Option<f64> {
        self.metrics.max_approx.as_ref().map(|m| m.vs_dilated_originals)
    }
    /// Linear-SVM mean accuracy and its std (labelled data).
    pub fn svm(&self) -> Option<(f64, f64)> {
        self.metrics
            .svm
            .as_ref()
            .map(|s| (s.mean_accuracy, s.std_accuracy))
    }
}

/// The study as CSV: one row per point (empty cell = not measured).
pub fn table_csv(results: &[StudyResult]) -> String {
    let mut out = String::from(
        "id,model,penalty,p,beta,epochs,reconstruction_mse,hoyer,max_approx,svm_accuracy,svm_std,fit_seconds,eval_seconds,run\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    for r in results {
        let pt = &r.point;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.1},\"{}\"\n",
            pt.id,
            pt.model.name(),
            pt.penalty.as_ref().map(penalty_name).unwrap_or_default(),
            opt(pt.p),
            opt(pt.beta),
            r.trained,
            r.mse(),
            r.hoyer(),
            opt(r.max_approx()),
            opt(r.svm().map(|s| s.0)),
            opt(r.svm().map(|s| s.1)),
            r.fit_seconds,
            r.eval_seconds,
            r.run.replace('"', "\"\"")
        ));
    }
    out
}

#[cfg(test)]
mod tests;
