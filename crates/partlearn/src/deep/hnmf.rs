//! Hierarchical NMF (METHODS.md §4.1) and the layer stack every deep model shares.
//!
//! Hierarchical NMF factors `X ≈ A⁽⁰⁾S⁽⁰⁾`, then `S⁽⁰⁾ ≈ A⁽¹⁾S⁽¹⁾`, …, each layer an independent NMF
//! (any solver of [`crate::nmf::factorize`], through the engine: each layer has its history, stopping
//! rules and Ctrl-C) of the previous layer's codes, so errors accumulate. Supervised, the last
//! layer is SSNMF (model 3) of the previous layer's codes ([`ssnmf_last_layer`], §4.1: "supervision
//! only on the last layer"). Deep NMF fine-tunes such a stack jointly ([`super::deep_nmf`]).

use std::time::Instant;

use faer::{Mat, MatRef, Par};

use super::neural::NeuralNmf;
use crate::data::labels::Labels;
use crate::engine::{Control, IterRecord, Observer, Silent, StopReason, Warning};
use crate::error::{Error, Result};
use crate::linalg;
use crate::nmf::ssnmf::{self, SsnmfFit, ValidSsnmfParams};
use crate::nmf::{self, ValidNmfParams};
use crate::params;
use crate::real::Real;

/// A stack of layers `A⁽ⁱ⁾` (`k_{i−1} × k_i`) and the codes of every layer, `S⁽ⁱ⁾`: built by
/// [`hierarchical`], refined by [`fine_tune`](super::deep_nmf::fine_tune). The layers are
/// public in METHODS.md's layout; the codes are read as samples-as-rows views
/// ([`codes`](LayerStack::codes), `n × k_i`).
#[derive(Clone, Debug)]
pub struct LayerStack<T: Real> {
    /// The layers `A⁽ⁱ⁾` (`k_{i−1} × k_i`, `A⁽⁰⁾` is `m × k₀`), first layer first.
    pub a: Vec<Mat<T>>,
    /// Codes of every layer (`S⁽ⁱ⁾`, `k_i × n`, samples as columns); as many as layers, at least
    /// one (every constructor fits at least one layer).
    pub(crate) s: Vec<Mat<T>>,
}

impl<T: Real> LayerStack<T> {
    /// The codes of layer `level` (`S⁽ⁱ⁾ᵀ`, `n × k_i`, a view), if the stack has that layer.
    pub fn codes(&self, level: usize) -> Option<MatRef<'_, T>> {
        self.s.get(level).map(|s| s.transpose())
    }

    /// The last layer's codes (`S⁽ᴸ⁾ᵀ`, `n × k_L`, a view): what the classifier and the post-hoc
    /// accuracy see.
    pub fn top_codes(&self) -> MatRef<'_, T> {
        // Every stack holds at least one layer (field doc).
        self.s[self.s.len() - 1].transpose()
    }

    /// `A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾`, samples as columns (`m × n`).
    fn reconstruction_columns(&self) -> Mat<T> {
        let mut z = self.s[self.s.len() - 1].clone();
        for a in self.a.iter().rev() {
            z = linalg::mul(a.as_ref(), z.as_ref(), Par::Seq);
        }
        z
    }

    /// The reconstruction `(A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾)ᵀ`, samples as rows (`n × m`).
    pub fn reconstruction(&self) -> Mat<T> {
        self.reconstruction_columns().transpose().to_owned()
    }

    /// `‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖ / ‖X‖` for `x` (`n × m`, samples as rows).
    pub fn rel_error(&self, x: MatRef<'_, T>) -> f64 {
        self.rel_error_columns(x.transpose())
    }

    /// [`rel_error`](Self::rel_error) of `xt` given as samples as columns (`m × n`).
    pub(crate) fn rel_error_columns(&self, xt: MatRef<'_, T>) -> f64 {
        let z = self.reconstruction_columns();
        let r = Mat::<T>::from_fn(xt.nrows(), xt.ncols(), |i, j| xt[(i, j)] - z[(i, j)]);
        (linalg::frob_sq(r.as_ref()) / linalg::frob_sq(xt).max(f64::MIN_POSITIVE)).sqrt()
    }

    /// `‖X − A⁽⁰⁾⋯A⁽ⁱ⁾S⁽ⁱ⁾‖/‖X‖` for every level `i` (the stack cut after layer `i`), `x`
    /// (`n × m`) as rows.
    pub fn level_errors(&self, x: MatRef<'_, T>) -> Vec<f64> {
        (0..self.a.len())
            .map(|i| {
                let partial = LayerStack {
                    a: self.a[..=i].to_vec(),
                    s: self.s[..=i].to_vec(),
                };
                partial.rel_error(x)
            })
            .collect()
    }

    /// The layers as a network whose forward pass encodes new data by NNLS layer by layer.
    pub fn into_net(self) -> NeuralNmf<T> {
        NeuralNmf { a: self.a, b: None }
    }

    /// Checks that the layers chain from `xt`'s rows (samples as columns, `m × n`) and that
    /// every layer has codes of its rank for the `n` samples.
    pub(crate) fn check_columns(&self, xt: MatRef<'_, T>) -> Result<()> {
        let (m, n) = (xt.nrows(), xt.ncols());
        let mut rows = m;
        let chained = !self.a.is_empty()
            && self.a.len() == self.s.len()
            && self.a.iter().zip(&self.s).all(|(a, s)| {
                let ok = a.nrows() == rows && s.shape() == (a.ncols(), n);
                rows = a.ncols();
                ok
            });
        if chained {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                what: "layer stack".into(),
                expected: format!("layers chaining from {m} features, codes of {n} samples"),
                found: format!(
                    "layers {:?}, codes {:?}",
                    self.a.iter().map(|a| a.shape()).collect::<Vec<_>>(),
                    self.s.iter().map(|s| (s.ncols(), s.nrows())).collect::<Vec<_>>()
                ),
                hint: "fit the stack on the same data (hnmf::hierarchical)".into(),
            })
        }
    }
}

/// Checks layer ranks against data of `n_samples × n_features` (METHODS.md §4.1): at least one,
/// each `≥ 1`, strictly decreasing, the first at most `min(n_samples, n_features)`.
pub fn check_ranks(ranks: &[usize], n_samples: usize, n_features: usize) -> Result<()> {
    params::check_ranks(ranks)?;
    params::check_rank_fits("ranks", format!("{ranks:?}"), ranks[0], n_samples, n_features)
}

/// How one layer's fit ended.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerFit {
    /// Iteration 0 and every iteration of the layer's NMF.
    pub history: Vec<IterRecord>,
    /// Iterations run.
    pub n_iter: usize,
    /// Why the layer's fit stopped.
    pub stop_reason: StopReason,
    /// E.g. max_iter reached before the tolerance was met.
    pub warnings: Vec<Warning>,
}

/// A hierarchical NMF: the stack and how each layer's fit ended.
#[derive(Clone, Debug)]
pub struct Hierarchy<T: Real> {
    /// The fitted layers and codes.
    pub stack: LayerStack<T>,
    /// How each layer's fit ended, first layer first.
    pub layers: Vec<LayerFit>,
}

impl<T: Real> Hierarchy<T> {
    /// Why the hierarchy stopped: interrupted or out of time if a layer was, else as its last
    /// layer.
    pub fn stop_reason(&self) -> StopReason {
        let any = |r| self.layers.iter().any(|l| l.stop_reason == r);
        if any(StopReason::Interrupted) {
            StopReason::Interrupted
        } else if any(StopReason::TimeLimit) {
            StopReason::TimeLimit
        } else {
            self.layers.last().map_or(StopReason::MaxIter, |l| l.stop_reason)
        }
    }

    /// Every layer's warnings, first layer first.
    pub fn warnings(&self) -> Vec<Warning> {
        self.layers.iter().flat_map(|l| l.warnings.clone()).collect()
    }
}

/// What is left of a time budget of `budget` seconds started at `start` (never 0, so that a
/// fit given it still runs one iteration and then stops on the budget).
pub(crate) fn remaining(budget: Option<f64>, start: Instant) -> Option<f64> {
    budget.map(|b| (b - start.elapsed().as_secs_f64()).max(f64::MIN_POSITIVE))
}

/// Hierarchical NMF (METHODS.md §4.1) of `x` (`n × m`, samples as rows, entries ≥ 0) with the
/// checked NMF parameters `base` for every layer: `k` replaced by the ranks (checked here
/// against the data), layer `i` seeded by `base.seed + i`; `base.max_seconds` is the budget of
/// all layers together. Each layer's input (the data, then the previous layer's codes) is
/// checked as [`Dataset::validate_nonnegative`](crate::data::Dataset::validate_nonnegative)
/// checks data.
///
/// ```
/// use partlearn::deep::hnmf::hierarchical;
/// use partlearn::faer::Mat;
/// use partlearn::nmf::NmfParams;
///
/// // 20 samples (rows) of 8 features.
/// let x = Mat::<f64>::from_fn(20, 8, |j, i| ((i + 3 * j) % 5) as f64 + 0.5);
/// let layer = NmfParams::new(1).max_iter(100).check()?;
/// let h = hierarchical(x.as_ref(), &[4, 2], &layer)?;
/// assert_eq!((h.stack.a[0].shape(), h.stack.a[1].shape()), ((8, 4), (4, 2)));
/// assert_eq!(h.stack.top_codes().shape(), (20, 2));
/// assert!(h.stack.rel_error(x.as_ref()) < 1.0);
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn hierarchical<T: Real>(
    x: MatRef<'_, T>,
    ranks: &[usize],
    base: &ValidNmfParams,
) -> Result<Hierarchy<T>> {
    hierarchical_with(x, ranks, base, &mut Silent)
}

/// [`hierarchical`], reporting iteration 0 and every iteration of each layer's NMF to
/// `observer` (the iteration count restarts at 0 with each layer). When the observer stops a
/// layer, the later layers keep their starting point (iteration 0 only) and the hierarchy's
/// stop reason is `Interrupted`, as for Ctrl-C.
pub fn hierarchical_with<T: Real>(
    x: MatRef<'_, T>,
    ranks: &[usize],
    base: &ValidNmfParams,
    observer: &mut (dyn Observer + Send),
) -> Result<Hierarchy<T>> {
    check_ranks(ranks, x.nrows(), x.ncols())?;
    let start = Instant::now();
    let base = base.params();
    let mut a = Vec::new();
    let mut s: Vec<Mat<T>> = Vec::new();
    let mut layers: Vec<LayerFit> = Vec::new();
    for (i, &k) in ranks.iter().enumerate() {
        // The layer's input, samples as rows: the data, then the previous layer's codes (a view
        // of `S⁽ⁱ⁻¹⁾`, `k × n`).
        let input = if i == 0 { x } else { s[i - 1].transpose() };
        crate::data::validate_nonnegative(input.transpose())?;
        crate::data::validate_scale(input.transpose())?;
        let opts = base
            .clone()
            .k(k)
            .seed(base.seed.wrapping_add(i as u64))
            .max_seconds(remaining(base.max_seconds, start));
        let stopped = layers.iter().any(|l| l.stop_reason == StopReason::Interrupted);
        let mut stop_at_start = |_: &IterRecord| Control::Stop;
        let obs: &mut (dyn Observer + Send) = if stopped {
            &mut stop_at_start
        } else {
            &mut *observer
        };
        let fit = nmf::factorize_with(input, &opts.check()?, None, obs)?;
        a.push(fit.model.components().transpose().to_owned());
        s.push(fit.codes().transpose().to_owned());
        layers.push(LayerFit {
            history: fit.history,
            n_iter: fit.n_iter,
            stop_reason: fit.stop_reason,
            warnings: fit.warnings,
        });
    }
    Ok(Hierarchy {
        stack: LayerStack { a, s },
        layers,
    })
}

/// Supervision on the last layer of a hierarchy (§4.1): SSNMF (checked parameters `params`, its
/// `k` replaced by the last layer's rank) of the previous layer's codes (of `x`, `n × m` as rows,
/// for one layer) with `labels` replaces the last layer's `A` and `S`; returns the new stack and
/// the SSNMF fit (its classifier `B`, history, stop reason, warnings). The stack must have been
/// fitted on `x`.
pub fn ssnmf_last_layer<T: Real>(
    x: MatRef<'_, T>,
    mut stack: LayerStack<T>,
    labels: &Labels,
    params: &ValidSsnmfParams,
    observer: &mut (dyn Observer + Send),
) -> Result<(LayerStack<T>, SsnmfFit<T>)> {
    // The stack's layout, samples as columns (a view).
    let xt = x.transpose();
    stack.check_columns(xt)?;
    let depth = stack.a.len();
    let k = stack.a[depth - 1].ncols();
    let params = params.for_layer(k, params.params().max_seconds)?;
    let input = if depth == 1 {
        xt
    } else {
        stack.s[depth - 2].as_ref()
    };
    let f = ssnmf::fit_columns(input, None, labels, &params, observer)?;
    stack.a[depth - 1] = f.a.clone();
    stack.s[depth - 1] = f.s.clone();
    Ok((stack, f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::deep::deep_nmf::dense_objective;
    use crate::nmf::ssnmf::SsnmfParams;
    use crate::nmf::{NmfParams, Solver};

    fn toy() -> Dataset<f64> {
        crate::data::named::toy_hierarchy::<f64>(0)
    }

    fn base() -> NmfParams {
        NmfParams {
            solver: Solver::Hals,
            max_iter: 500,
            tol: 1e-6,
            ..NmfParams::default()
        }
    }

    #[test]
    fn one_layer_hierarchy_is_plain_nmf() {
        let d = toy();
        let h = hierarchical(d.x(), &[9], &base().check().unwrap()).unwrap();
        let st = &h.stack;
        let f = nmf::fit(&d, &NmfParams { k: 9, ..base() }, None, &mut Silent).unwrap();
        assert_eq!(st.a[0], f.model.components().transpose().to_owned());
        assert_eq!(st.top_codes(), f.codes());
        assert_eq!(st.codes(0), Some(f.codes()));
        assert!(st.codes(1).is_none());
        assert!((st.rel_error(d.x()) - f.rel_error).abs() < 1e-9);
        let z = st.reconstruction();
        let direct = f.codes() * f.model.components();
        assert!(linalg::frob_sq((&z - &direct).as_ref()) <= 1e-20 * linalg::frob_sq(direct.as_ref()));
        assert_eq!(h.layers[0].n_iter, f.n_iter);
        assert_eq!(h.stop_reason(), f.stop_reason);
    }

    #[test]
    fn hierarchy_errors_are_above_the_svd_bounds_and_fine_tuning_lowers_them() {
        use crate::deep::deep_nmf::{fine_tune, FineTuneParams, LabelTerm};
        let d = toy();
        let x = d.xt();
        let svd = linalg::truncated_svd(x, 9, &mut crate::rng::Rng::new(0), faer::Par::Seq).unwrap();
        let total = linalg::frob_sq(x);
        let bound =
            |k: usize| ((total - svd.s[..k].iter().map(|s| s * s).sum::<f64>()).max(0.0) / total).sqrt();
        let mut prev = 0.0;
        for (depth, ranks) in [vec![9], vec![9, 4], vec![9, 4, 2]].iter().enumerate() {
            let st = hierarchical(d.x(), ranks, &base().check().unwrap())
                .unwrap()
                .stack;
            let rel = st.rel_error(d.x());
            let b = bound(*ranks.last().unwrap());
            assert!(
                rel >= b - 1e-9 && rel < b + 0.3,
                "depth {}: {rel} vs bound {b}",
                depth + 1
            );
            assert!(rel >= prev - 1e-9, "errors grow with depth");
            prev = rel;
            let o = FineTuneParams {
                max_iter: 300,
                ..FineTuneParams::default()
            };
            let labels = (depth > 0).then(|| {
                let classes = d.extra_labels[depth].1.clone();
                let known: Vec<bool> = (0..90).map(|j| j % 2 == 0).collect();
                LabelTerm::new(
                    &Labels::new(classes, known).unwrap(),
                    *ranks.last().unwrap(),
                    0.5,
                    &mut crate::rng::Rng::new(1),
                )
            });
            // The objective recomputed densely from the factors after every sweep (each run
            // restarts from the previous one's output) never rises.
            let (mut st, mut labels) = (st, labels);
            let mut prev = dense_objective(x, &st, labels.as_ref());
            for sweep in 1..=o.max_iter {
                let one = FineTuneParams {
                    max_iter: 1,
                    ..o.clone()
                };
                let ft = fine_tune(d.x(), st, labels, &one.check().unwrap(), &mut Silent).unwrap();
                let cur = dense_objective(x, &ft.stack, ft.labels.as_ref());
                assert!(
                    cur <= prev * (1.0 + 1e-12),
                    "depth {}: sweep {sweep}: {prev} → {cur}",
                    depth + 1
                );
                (prev, st, labels) = (cur, ft.stack, ft.labels);
            }
            if depth == 0 {
                assert!(st.rel_error(d.x()) <= rel + 1e-12);
            }
        }
        assert!(check_ranks(&[4, 9], 90, 87).is_err());
        assert!(check_ranks(&[100], 90, 87).is_err());
        assert!(check_ranks(&[87], 90, 87).is_ok());
    }

    /// The layers share one time budget: a tiny one stops every layer after its first iteration.
    #[test]
    fn layers_share_the_time_budget() {
        let d = toy();
        let o = NmfParams {
            max_iter: 100_000_000,
            tol: 0.0,
            max_seconds: Some(1e-9),
            ..base()
        };
        let h = hierarchical(d.x(), &[9, 4, 2], &o.check().unwrap()).unwrap();
        assert_eq!(h.stop_reason(), StopReason::TimeLimit);
        assert!(h
            .layers
            .iter()
            .all(|l| l.stop_reason == StopReason::TimeLimit && l.n_iter == 1));
    }

    /// The observer sees every layer's iterations; when it stops a layer, the later layers keep
    /// their start and the hierarchy is interrupted.
    #[test]
    fn the_observer_sees_and_stops_every_layer() {
        let d = toy();
        let layer = NmfParams {
            max_iter: 20,
            tol: 0.0,
            ..base()
        }
        .check()
        .unwrap();
        let mut seen = Vec::new();
        let h = hierarchical_with(d.x(), &[9, 4, 2], &layer, &mut |r: &IterRecord| {
            seen.push(r.iter);
            Control::Continue
        })
        .unwrap();
        assert_eq!(seen.len(), 3 * 21);
        assert_eq!(h.stop_reason(), StopReason::MaxIter);
        let quiet = hierarchical(d.x(), &[9, 4, 2], &layer).unwrap();
        assert_eq!(quiet.stack.a, h.stack.a);

        let mut calls = 0;
        let h = hierarchical_with(d.x(), &[9, 4, 2], &layer, &mut |r: &IterRecord| {
            calls += 1;
            if r.iter == 3 {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
        assert_eq!(calls, 4, "the later layers do not call the observer");
        assert_eq!(h.stop_reason(), StopReason::Interrupted);
        let iters: Vec<usize> = h.layers.iter().map(|l| l.n_iter).collect();
        assert_eq!(iters, vec![3, 0, 0]);
        assert_eq!(h.stack.a[2].shape(), (4, 2));
    }

    /// Supervision on the last layer: SSNMF of the previous codes replaces the last layer.
    #[test]
    fn ssnmf_on_the_last_layer_replaces_it() {
        let d = toy();
        let x = d.x();
        let h = hierarchical(x, &[9, 4], &base().check().unwrap()).unwrap();
        let labels = Labels::new(d.extra_labels[1].1.clone(), (0..90).map(|j| j % 3 == 0).collect()).unwrap();
        let o = SsnmfParams {
            lambda: 1e-5,
            max_iter: 200,
            ..SsnmfParams::default()
        };
        let (st, f) =
            ssnmf_last_layer(x, h.stack.clone(), &labels, &o.check().unwrap(), &mut Silent).unwrap();
        assert_eq!(st.a[0], h.stack.a[0]);
        assert_eq!(st.a[1], f.a);
        assert_eq!(f.params.k, 4);
        // The public SSNMF on the first layer's codes (samples as rows) gives the same layer.
        let direct = crate::nmf::ssnmf::fit_ssnmf(
            h.stack.codes(0).unwrap(),
            None,
            &labels,
            &SsnmfParams { k: 4, ..o }.check().unwrap(),
            &mut Silent,
        )
        .unwrap();
        assert_eq!(direct.codes(), st.top_codes());
        assert_eq!(direct.components(), st.a[1].transpose());
        assert!(ssnmf_last_layer(
            x.subrows(0, 10),
            h.stack,
            &labels,
            &SsnmfParams::default().check().unwrap(),
            &mut Silent
        )
        .is_err());
    }
}
