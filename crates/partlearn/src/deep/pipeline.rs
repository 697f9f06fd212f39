//! The layer pipelines (METHODS.md §4.1–§4.2) as one call: a hierarchical NMF, then, with
//! labels, SSNMF on its last layer ([`LayerMethod::Hierarchical`]), or the joint fine-tuning with
//! the label term ([`LayerMethod::DeepNmf`]). One time budget covers every stage; a stage that
//! the budget or Ctrl-C cut short ends the pipeline (later stages do not start).

use std::time::Instant;

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use super::deep_nmf::{fine_tune, FineTuneParams, LabelTerm};
use super::hnmf::{check_ranks, hierarchical_with, remaining, ssnmf_last_layer, LayerFit, LayerStack};
use crate::data::labels::Labels;
use crate::engine::{IterRecord, Observer, StopReason, Warning};
use crate::error::Result;
use crate::nmf::ssnmf::SsnmfParams;
use crate::nmf::{NmfParams, Solver, ValidNmfParams};
use crate::params;
use crate::real::Real;
use crate::rng::Rng;

/// Which layer model [`fit_layers`] fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LayerMethod {
    /// Hierarchical NMF; with labels, SSNMF (model 3) on the last layer (§4.1).
    Hierarchical,
    /// Hierarchical NMF, then the joint fine-tuning, with the label term when labeled (§4.2).
    DeepNmf,
}

impl LayerMethod {
    /// The model's kind: `hnmf` or `deep-nmf` (as [`crate::deep::DeepModel`] records it).
    pub fn name(self) -> &'static str {
        match self {
            LayerMethod::Hierarchical => "hnmf",
            LayerMethod::DeepNmf => "deep-nmf",
        }
    }
}

/// Parameters of [`fit_layers`]: the hierarchical NMF layers (METHODS.md §4.1), SSNMF on the last
/// layer or the Deep NMF fine-tuning (§4.2). Build with [`LayersParams::new`] and the setters,
/// then [`check`](LayersParams::check).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LayersParams {
    /// `k₀ > k₁ > … ≥ 1`, one layer per rank; `k₀ ≤ min(n_samples, n_features)`.
    pub ranks: Vec<usize>,
    /// NMF solver of every layer (default HALS).
    pub solver: Solver,
    /// Iterations of each layer, of SSNMF and of the fine-tuning (default 2000).
    pub max_iter: usize,
    /// Tolerance ([`StopRules::tol`](crate::engine::StopRules::tol)) of each layer, of SSNMF and of the fine-tuning
    /// (default 1e-6).
    pub tol: f64,
    /// Time budget of the whole pipeline, in seconds.
    #[serde(default)]
    pub max_seconds: Option<f64>,
    /// Weight `λ ≥ 0` of the label term (SSNMF's, or the fine-tuning's; default 1e-5, the
    /// Neural NMF demo's).
    pub lambda: f64,
    /// Seed of every stage (layer `i` uses `seed + i`).
    pub seed: u64,
    /// Worker threads (1 = sequential, 0 = all cores).
    #[serde(skip)]
    pub threads: usize,
}

impl Default for LayersParams {
    fn default() -> Self {
        LayersParams {
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

params::setters!(LayersParams {
    ranks: Vec<usize>,
    solver: Solver,
    max_iter: usize,
    tol: f64,
    max_seconds: Option<f64>,
    lambda: f64,
    seed: u64,
    threads: usize,
});

impl LayersParams {
    /// The defaults with the given ranks.
    pub fn new(ranks: Vec<usize>) -> Self {
        LayersParams {
            ranks,
            ..LayersParams::default()
        }
    }

    /// Checks every parameter that does not depend on the data; the first rank is checked
    /// against the data when fitting ([`ValidLayersParams::check_shape`]).
    pub fn check(&self) -> Result<ValidLayersParams> {
        params::check_ranks(&self.ranks)?;
        params::stop_rules("max_iter", self.max_iter, self.tol, self.max_seconds)?;
        params::check_weight("lambda", self.lambda)?;
        let layer = NmfParams::new(self.ranks[0])
            .solver(self.solver)
            .max_iter(self.max_iter)
            .tol(self.tol)
            .max_seconds(self.max_seconds)
            .seed(self.seed)
            .threads(self.threads)
            .check()?;
        Ok(ValidLayersParams {
            params: self.clone(),
            layer,
        })
    }

    /// [`LayersParams::check`] and [`ValidLayersParams::check_shape`] in one call.
    pub fn validate(&self, n_samples: usize, n_features: usize) -> Result<ValidLayersParams> {
        let v = self.check()?;
        v.check_shape(n_samples, n_features)?;
        Ok(v)
    }
}

/// [`LayersParams`] that passed [`LayersParams::check`]: the only form [`fit_layers`] accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidLayersParams {
    params: LayersParams,
    /// The NMF parameters of every layer (`k` set per layer).
    layer: ValidNmfParams,
}

impl ValidLayersParams {
    /// The checked parameters.
    pub fn params(&self) -> &LayersParams {
        &self.params
    }

    /// The NMF parameters of every layer ([`hierarchical`]; `k` is set per layer).
    pub fn layer_params(&self) -> &ValidNmfParams {
        &self.layer
    }

    /// Checks the ranks against a data shape: `k₀ ≤ min(n_samples, n_features)`.
    pub fn check_shape(&self, n_samples: usize, n_features: usize) -> Result<()> {
        params::check_not_empty(n_samples, n_features)?;
        check_ranks(&self.params.ranks, n_samples, n_features)
    }
}

/// A fitted layer pipeline.
#[derive(Clone, Debug)]
pub struct LayersFit<T: Real> {
    /// The fitted layers and codes (the last layer SSNMF's or fine-tuned, when supervised).
    pub stack: LayerStack<T>,
    /// The classifier `B` (`c × k_L`) of the label term, when labeled.
    pub classifier: Option<Mat<T>>,
    /// How each layer-wise fit ended.
    pub layers: Vec<LayerFit>,
    /// The last stage's history: SSNMF, the fine-tuning, or the last layer's NMF (every layer's
    /// own is in `layers`).
    pub history: Vec<IterRecord>,
    /// Iterations of the last stage.
    pub n_iter: usize,
    /// Why the pipeline stopped (a stage cut short by the budget or Ctrl-C ends it).
    pub stop_reason: StopReason,
    /// Every stage's warnings, first layer first.
    pub warnings: Vec<Warning>,
    /// Wall-clock seconds of the whole pipeline.
    pub seconds: f64,
}

/// Fits `method` to `x` (`n × m`, samples as rows, entries ≥ 0; module doc), reporting the
/// iterations of every stage to `observer` (each layer's NMF, then SSNMF or the fine-tuning; the
/// count restarts at 0 with each stage); `labels` (one per sample) supervise the last stage. The
/// ranks and the labels are checked against the data before any fitting.
///
/// ```
/// use partlearn::data::labels::Labels;
/// use partlearn::deep::pipeline::{fit_layers, LayerMethod, LayersParams};
/// use partlearn::engine::Silent;
/// use partlearn::faer::Mat;
///
/// // 20 samples (rows) of 8 features in two classes, half of them labeled.
/// let x = Mat::<f64>::from_fn(20, 8, |j, i| if (i < 4) == (j % 2 == 0) { 1.0 + (i * j % 3) as f64 } else { 0.1 });
/// let labels = Labels::new((0..20).map(|j| j % 2).collect(), (0..20).map(|j| j < 10).collect())?;
/// let params = LayersParams::new(vec![4, 2]).max_iter(100).lambda(0.1).check()?;
/// // Hierarchical NMF with SSNMF on the last layer (§4.1), and Deep NMF (§4.2).
/// let h = fit_layers(x.as_ref(), LayerMethod::Hierarchical, &params, Some(&labels), &mut Silent)?;
/// let d = fit_layers(x.as_ref(), LayerMethod::DeepNmf, &params, Some(&labels), &mut Silent)?;
/// assert_eq!((h.stack.a.len(), h.stack.top_codes().shape()), (2, (20, 2)));
/// assert_eq!(d.classifier.map(|b| b.shape()), Some((2, 2)));
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn fit_layers<T: Real>(
    x: MatRef<'_, T>,
    method: LayerMethod,
    params: &ValidLayersParams,
    labels: Option<&Labels>,
    observer: &mut (dyn Observer + Send),
) -> Result<LayersFit<T>> {
    let start = Instant::now();
    let (n, m) = (x.nrows(), x.ncols());
    params.check_shape(n, m)?;
    if let Some(l) = labels {
        l.check(n)?;
    }
    let o = params.params();
    let h = hierarchical_with(x, &o.ranks, params.layer_params(), observer)?;
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
                let so = SsnmfParams::new(k)
                    .lambda(o.lambda)
                    .max_iter(o.max_iter)
                    .tol(o.tol)
                    .max_seconds(max_seconds)
                    .seed(o.seed)
                    .threads(o.threads)
                    .check()?;
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
                let fo = FineTuneParams::new()
                    .max_iter(o.max_iter)
                    .tol(o.tol)
                    .max_seconds(max_seconds)
                    .threads(o.threads)
                    .check()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Silent;
    use crate::error::Error;

    /// Each bad parameter is refused by `check` (or, for the first rank, `check_shape`) under its
    /// library name; labels of another length are refused before any layer is fitted.
    #[test]
    fn each_bad_parameter_is_named() {
        let ok = LayersParams::new(vec![9, 4]);
        assert!(ok.validate(90, 87).is_ok());
        let cases: Vec<(LayersParams, &str)> = vec![
            (ok.clone().ranks(vec![]), "ranks"),
            (ok.clone().ranks(vec![4, 9]), "ranks"),
            (ok.clone().ranks(vec![4, 0]), "ranks"),
            (ok.clone().max_iter(0), "max_iter"),
            (ok.clone().tol(-1.0), "tol"),
            (ok.clone().tol(f64::INFINITY), "tol"),
            (ok.clone().max_seconds(Some(0.0)), "max_seconds"),
            (ok.clone().lambda(-1.0), "lambda"),
            (ok.clone().lambda(f64::NAN), "lambda"),
        ];
        for (p, name) in cases {
            assert!(
                matches!(p.check(), Err(Error::InvalidOption { option, .. }) if option == name),
                "{p:?}"
            );
        }
        let big = ok.clone().ranks(vec![88, 4]);
        assert!(big.check().is_ok());
        assert!(matches!(
            big.validate(90, 87),
            Err(Error::InvalidOption { option: "ranks", .. })
        ));
        // The layers' NMF parameters follow the pipeline's.
        let v = ok
            .clone()
            .solver(Solver::Mu)
            .max_iter(7)
            .tol(0.0)
            .seed(3)
            .check()
            .unwrap();
        let l = v.layer_params().params();
        assert_eq!((l.solver, l.max_iter, l.tol, l.seed), (Solver::Mu, 7, 0.0, 3));

        let d = crate::data::named::toy_hierarchy::<f64>(0);
        let short = Labels::all_known(vec![0; 10]);
        let v = ok.check().unwrap();
        for method in [LayerMethod::Hierarchical, LayerMethod::DeepNmf] {
            assert!(matches!(
                fit_layers(d.x(), method, &v, Some(&short), &mut Silent),
                Err(Error::ShapeMismatch { .. })
            ));
        }
        let big = big.check().unwrap();
        assert!(fit_layers(d.x(), LayerMethod::Hierarchical, &big, None, &mut Silent).is_err());
    }
}
