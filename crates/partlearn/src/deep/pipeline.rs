//! The layer pipelines (METHODS.md §4.1–§4.2) as one call: a hierarchical NMF, then, with
//! labels, SSNMF on its last layer ([`LayerMethod::Hierarchical`]), or the joint fine-tuning with
//! the label term ([`LayerMethod::DeepNmf`]). One time budget covers every stage; a stage that
//! the budget or Ctrl-C cut short ends the pipeline (later stages do not start).

use std::time::Instant;

use faer::Mat;
use serde::{Deserialize, Serialize};

use super::deep_nmf::{fine_tune, FineTuneOptions, LabelTerm};
use super::hnmf::{check_ranks, hierarchical, remaining, ssnmf_last_layer, LayerFit, LayerStack};
use crate::data::labels::Labels;
use crate::data::Dataset;
use crate::engine::{IterRecord, Observer, StopReason, StopRules, Warning};
use crate::error::{Error, Result};
use crate::nmf::ssnmf::{check_lambda, SsnmfOptions};
use crate::nmf::{NmfParams, Solver};
use crate::real::Real;
use crate::rng::Rng;

/// Which layer model [`fit_layers`] fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerMethod {
    /// Hierarchical NMF; with labels, SSNMF (model 3) on the last layer (§4.1).
    Hierarchical,
    /// Hierarchical NMF, then the joint fine-tuning, with the label term when labeled (§4.2).
    DeepNmf,
}

/// Options of [`fit_layers`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayersOptions {
    /// `k₀ > k₁ > …`, one layer per rank.
    pub ranks: Vec<usize>,
    /// NMF solver of every layer.
    pub solver: Solver,
    /// Iterations of each layer, of SSNMF and of the fine-tuning.
    pub max_iter: usize,
    /// Tolerance of each layer, of SSNMF and of the fine-tuning.
    pub tol: f64,
    /// Time budget of the whole pipeline, in seconds.
    #[serde(default)]
    pub max_seconds: Option<f64>,
    /// Weight λ of the label term (SSNMF's, or the fine-tuning's).
    pub lambda: f64,
    pub seed: u64,
    #[serde(skip)]
    pub threads: usize,
}

impl Default for LayersOptions {
    fn default() -> Self {
        LayersOptions {
            ranks: vec![9, 4, 2],
            solver: Solver::Hals,
            max_iter: 2000,
            tol: 1e-6,
            max_seconds: None,
            lambda: 1e-5,
            seed: 0,
            threads: 1,
        }
    }
}

impl LayersOptions {
    /// The NMF options of every layer (`k` is set per layer).
    pub fn layer_options(&self) -> NmfParams {
        NmfParams {
            solver: self.solver,
            max_iter: self.max_iter,
            tol: self.tol,
            max_seconds: self.max_seconds,
            seed: self.seed,
            threads: self.threads,
            ..NmfParams::default()
        }
    }

    /// Checks the options for data with `m` features and `n` samples, and the labels if any,
    /// before any fitting.
    pub fn validate(&self, m: usize, n: usize, labels: Option<&Labels>) -> Result<()> {
        check_ranks(&self.ranks, m, n)?;
        if self.max_iter == 0 {
            return Err(Error::invalid("max_iter", 0, "run at least one iteration"));
        }
        StopRules::max_iter(self.max_iter)
            .with_tol(self.tol)
            .with_max_seconds(self.max_seconds)
            .validate()?;
        check_lambda(self.lambda)?;
        if let Some(l) = labels {
            l.check(n)?;
        }
        Ok(())
    }
}

/// A fitted layer pipeline.
#[derive(Clone, Debug)]
pub struct LayersFit<T: Real> {
    pub stack: LayerStack<T>,
    /// The classifier `B` (`c × k_L`) of the label term, when labeled.
    pub classifier: Option<Mat<T>>,
    /// How each layer-wise fit ended.
    pub layers: Vec<LayerFit>,
    /// The last stage's history: SSNMF, the fine-tuning, or the last layer's NMF.
    pub history: Vec<IterRecord>,
    /// Iterations of the last stage.
    pub n_iter: usize,
    /// Why the pipeline stopped (a stage cut short by the budget or Ctrl-C ends it).
    pub stop_reason: StopReason,
    /// Every stage's warnings, first layer first.
    pub warnings: Vec<Warning>,
    pub seconds: f64,
}

/// Fits `method` to `data` (module doc), reporting the last stage's iterations to `observer`.
pub fn fit_layers<T: Real>(
    data: &Dataset<T>,
    method: LayerMethod,
    o: &LayersOptions,
    labels: Option<&Labels>,
    observer: &mut (dyn Observer + Send),
) -> Result<LayersFit<T>> {
    let start = Instant::now();
    let (m, n) = (data.n_features(), data.n_samples());
    o.validate(m, n, labels)?;
    let x = data.xt();
    let h = hierarchical(data, &o.ranks, &o.layer_options())?;
    let mut warnings = h.warnings();
    let reason = h.stop_reason();
    let last = h.layers.last().cloned();
    let mut fit = LayersFit {
        stack: h.stack,
        classifier: None,
        layers: h.layers,
        history: last.as_ref().map(|l| l.history.clone()).unwrap_or_default(),
        n_iter: last.as_ref().map_or(0, |l| l.n_iter),
        stop_reason: reason,
        warnings: Vec::new(),
        seconds: 0.0,
    };
    if !matches!(reason, StopReason::Interrupted | StopReason::TimeLimit) {
        let k = *o.ranks.last().unwrap_or(&1);
        let max_seconds = remaining(o.max_seconds, start);
        match (method, labels) {
            (LayerMethod::Hierarchical, Some(l)) => {
                let so = SsnmfOptions {
                    k,
                    lambda: o.lambda,
                    max_iter: o.max_iter,
                    tol: o.tol,
                    max_seconds,
                    seed: o.seed,
                    threads: o.threads,
                    ..SsnmfOptions::default()
                };
                let (stack, f) = ssnmf_last_layer(x, fit.stack, l, &so, observer)?;
                fit.stack = stack;
                fit.classifier = Some(f.b);
                fit.n_iter = f.history.len().saturating_sub(1);
                (fit.history, fit.stop_reason) = (f.history, f.stop_reason);
                warnings.extend(f.warnings);
            }
            (LayerMethod::Hierarchical, None) => {}
            (LayerMethod::DeepNmf, _) => {
                let term = labels.map(|l| LabelTerm::new(l, k, o.lambda, &mut Rng::new(o.seed)));
                let fo = FineTuneOptions {
                    max_iter: o.max_iter,
                    tol: o.tol,
                    max_seconds,
                    threads: o.threads,
                };
                let f = fine_tune(x, fit.stack, term, &fo, observer)?;
                fit.stack = f.stack;
                fit.classifier = f.labels.map(|t| t.b);
                (fit.history, fit.n_iter, fit.stop_reason) = (f.history, f.n_iter, f.stop_reason);
                warnings.extend(f.warnings);
            }
        }
    }
    fit.warnings = warnings;
    fit.seconds = start.elapsed().as_secs_f64();
    Ok(fit)
}
