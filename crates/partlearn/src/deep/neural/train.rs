//! Training Neural NMF (METHODS.md §4.3, the slides' Algorithm 1) inside the shared fit
//! loop, [`crate::engine`]: an epoch is one iteration (forward pass, exact gradient, a projected
//! step on every layer at once, the classifier's own steps), so that history, the stopping rules
//! (epochs, `tol`, the time budget), the max-iter warning, the observer and Ctrl-C are the
//! engine's.
//!
//! The cost at the start (iteration 0) is the value the first gradient computes; the gradient at
//! the forward pass that ended an epoch is computed by the next epoch.

use std::path::Path;
use std::time::Instant;

use faer::{Mat, MatRef, Par};

use super::checkpoint::{Current, DataPrint, NeuralCheckpoint, Saver};
use super::grad::{classification, Gradient};
use super::{ClassLoss, Forward, NeuralNmf, NeuralParams, ValidNeuralParams};
use crate::data::labels::Labels;
use crate::engine::{
    self, Clock, Eval, IterRecord, Observer, Progress, Resume, Step, StopReason, StopRules, Warning, Within,
};
use crate::error::{Error, Result};
use crate::linalg;
use crate::optim::{Optimizer, OptimizerSpec};
use crate::real::Real;
use crate::rng::Rng;

/// How a training run ended.
#[derive(Clone, Debug)]
pub struct NeuralFit<T: Real> {
    /// The trained network.
    pub model: NeuralNmf<T>,
    /// The forward pass of the training data through it (every layer's codes,
    /// [`Forward::codes`], `n × k_i`).
    pub forward: Forward<T>,
    /// Iteration 0 (the start) and every epoch.
    pub history: Vec<IterRecord>,
    /// Epochs completed.
    pub n_iter: usize,
    /// Why training stopped.
    pub stop_reason: StopReason,
    /// E.g. the epochs ran out before the tolerance was met.
    pub warnings: Vec<Warning>,
    /// Wall-clock seconds of the kept start (the restart with the lowest cost).
    pub seconds: f64,
}

/// Trains Neural NMF (METHODS.md §4.3) on `x` (`n × m`, samples as rows): every epoch one
/// forward pass, the exact gradient, a projected step `A ← [A − lr·∂C/∂A]₊` (or an Adam step,
/// then the projection) on all layers at once, and, when supervised by `sup` (one label per
/// sample), `class_steps` gradient steps on `B` (not projected). Reports iteration 0 and every
/// epoch to `observer` (objective = cost, rel. error of the reconstruction). Runs on
/// `params.threads` threads.
///
/// ```
/// use partlearn::deep::neural::{train, NeuralParams};
/// use partlearn::engine::Silent;
/// use partlearn::faer::Mat;
///
/// // 20 samples (rows) of 8 features, two NNLS layers trained for 30 epochs.
/// let x = Mat::<f64>::from_fn(20, 8, |j, i| ((i + 3 * j) % 5) as f64 + 0.5);
/// let params = NeuralParams::new(vec![4, 2]).epochs(30).lr(0.1).check()?;
/// let fit = train(x.as_ref(), &params, None, &mut Silent)?;
/// assert_eq!((fit.n_iter, fit.forward.codes(1).map(|s| s.shape())), (30, Some((20, 2))));
/// assert!(fit.history[30].objective < fit.history[0].objective);
/// // New samples are encoded by the same forward pass.
/// assert_eq!(fit.model.top_codes(x.as_ref(), 1)?, fit.forward.top_codes());
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn train<T: Real>(
    x: MatRef<'_, T>,
    params: &ValidNeuralParams,
    sup: Option<&Labels>,
    observer: &mut (dyn Observer + Send),
) -> Result<NeuralFit<T>> {
    train_from(x, None, params, sup, observer)
}

/// [`train`] from given starting layers `A⁽ⁱ⁾` (`k_{i−1} × k_i`, e.g. a hierarchical NMF's
/// [`LayerStack::a`](crate::deep::hnmf::LayerStack::a)) instead of random ones; the classifier
/// (if supervised) starts random. `restarts` then only vary `B`. `x` is `n × m`, samples as rows.
pub fn train_from<T: Real>(
    x: MatRef<'_, T>,
    start: Option<&[Mat<T>]>,
    params: &ValidNeuralParams,
    sup: Option<&Labels>,
    observer: &mut (dyn Observer + Send),
) -> Result<NeuralFit<T>> {
    train_impl(x, start, params, sup, None, None, observer)
}

/// [`train_from`] saving a checkpoint ([`super::checkpoint`]) at `save` whenever `observer`
/// says one is due ([`Observer::checkpoint_due`]) and when training ends interrupted or out of
/// time.
pub fn train_checkpointed<T: Real>(
    x: MatRef<'_, T>,
    start: Option<&[Mat<T>]>,
    params: &ValidNeuralParams,
    sup: Option<&Labels>,
    save: &Path,
    observer: &mut (dyn Observer + Send),
) -> Result<NeuralFit<T>> {
    train_impl(x, start, params, sup, Some(save), None, observer)
}

/// Continues the training of `from` on `x` (the data and labels it was taken on: checked) with
/// the same bits as the uninterrupted run, saving further checkpoints at `save`. The result's
/// history starts at epoch 0 of the kept restart; its seconds count every invocation.
pub fn resume<T: Real>(
    x: MatRef<'_, T>,
    from: &NeuralCheckpoint<T>,
    sup: Option<&Labels>,
    save: Option<&Path>,
    observer: &mut (dyn Observer + Send),
) -> Result<NeuralFit<T>> {
    let params = from.params().check()?;
    train_impl(x, None, &params, sup, save, Some(from), observer)
}

fn train_impl<T: Real>(
    x: MatRef<'_, T>,
    start: Option<&[Mat<T>]>,
    params: &ValidNeuralParams,
    sup: Option<&Labels>,
    save: Option<&Path>,
    from: Option<&NeuralCheckpoint<T>>,
    observer: &mut (dyn Observer + Send),
) -> Result<NeuralFit<T>> {
    // METHODS.md's layout, samples as columns (a view), in which the network computes.
    let x = x.transpose();
    // A resumed run starts every restart from the layers it stored.
    let start = match from {
        Some(f) => f.start.as_deref(),
        None => start,
    };
    let (m, n) = (x.nrows(), x.ncols());
    params.check_shape(n, m)?;
    if let Some(s) = sup {
        s.check(n)?;
    }
    let opts = params.params();
    if let Some(layers) = start {
        let ok = layers.len() == opts.ranks.len()
            && layers.iter().zip(&opts.ranks).enumerate().all(|(i, (a, &k))| {
                a.ncols() == k && a.nrows() == if i == 0 { m } else { opts.ranks[i - 1] }
            });
        if !ok {
            return Err(Error::ShapeMismatch {
                what: "starting layers".into(),
                expected: format!("layers chaining from {m} rows through the ranks {:?}", opts.ranks),
                found: format!("{:?}", layers.iter().map(|a| a.shape()).collect::<Vec<_>>()),
                hint: "give one layer per rank, fitted on the same data".into(),
            });
        }
    }
    crate::data::validate_nonnegative(x)?;
    let print = DataPrint::of(x, sup);
    if let Some(f) = from {
        f.check_data(&print)?;
    }
    let mut saver = save.map(|p| Saver::new(p, opts, print, start));
    linalg::with_threads(opts.threads, || {
        let mut best: Option<NeuralFit<T>> = from.and_then(|f| f.best.clone());
        let first = from.map_or(0, |f| f.meta.restart);
        // `max_seconds` bounds all the restarts (of this invocation) together: each gets what is
        // left.
        let begun = Instant::now();
        for r in first..opts.restarts as u64 {
            let seed = opts.seed.wrapping_add(r);
            let mut stop = *params.stop_rules();
            if let Some(budget) = stop.max_seconds {
                let left = budget - begun.elapsed().as_secs_f64();
                if r > first && left <= 0.0 {
                    break;
                }
                stop.max_seconds = Some(left.max(1e-9));
            }
            if let Some(sv) = saver.as_mut() {
                sv.begin_restart(r, best.as_ref());
            }
            let cont = from.filter(|_| r == first);
            let fit = train_one(x, start, opts, &stop, seed, sup, cont, saver.as_mut(), observer)?;
            let cost = |f: &NeuralFit<T>| f.history.last().map_or(f64::INFINITY, |h| h.objective);
            let interrupted = matches!(fit.stop_reason, StopReason::Interrupted | StopReason::TimeLimit);
            if best.as_ref().is_none_or(|b| cost(&fit) < cost(b)) {
                best = Some(fit);
            }
            if interrupted {
                break;
            }
        }
        best.ok_or_else(|| Error::invalid("restarts", 0, "must be at least 1 (starts to run)"))
    })?
}

/// Iterations of each layer of [`hnmf_start`].
pub const HNMF_START_ITERATIONS: usize = 200;

/// Starting layers from a hierarchical NMF of `x` (`n × m`, samples as rows; METHODS.md §4.1) instead of random ones
/// (`partlearn fit neural-nmf --init hnmf`): HALS, [`HNMF_START_ITERATIONS`] iterations per
/// layer, the ranks, seed and threads of `params`; for [`train_from`]. Reports every layer's
/// iterations to `observer` ([`crate::deep::hnmf::hierarchical_with`]).
pub fn hnmf_start<T: Real>(
    x: MatRef<'_, T>,
    params: &ValidNeuralParams,
    observer: &mut (dyn Observer + Send),
) -> Result<Vec<Mat<T>>> {
    let o = params.params();
    // k is replaced by each layer's rank.
    let base = crate::nmf::NmfParams::new(o.ranks[0])
        .solver(crate::nmf::Solver::Hals)
        .max_iter(HNMF_START_ITERATIONS)
        .seed(o.seed)
        .threads(o.threads)
        .check()?;
    Ok(
        crate::deep::hnmf::hierarchical_with(x, &o.ranks, &base, observer)?
            .stack
            .a,
    )
}

/// The Adam of the reference's optional optimizer: β = (0.9, 0.999), ε = 1e-8; the learning rate
/// (with its decay) is passed as the step's factor.
const ADAM: OptimizerSpec = OptimizerSpec::Adam {
    lr: 1.0,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
};

/// One start of the training as an engine method.
struct Epochs<'a, 's, T: Real> {
    x: MatRef<'a, T>,
    opts: &'a NeuralParams,
    sup: Option<&'a Labels>,
    model: NeuralNmf<T>,
    fwd: Option<Forward<T>>,
    /// The gradient at `fwd`, when the start computed it for its cost.
    pending: Option<Gradient<T>>,
    adam: Option<Optimizer<T>>,
    lr: f64,
    lr_class: f64,
    par: Par,
    /// Continues a checkpoint: no epoch 0, the forward pass is the checkpoint's.
    resumed: bool,
    /// Writes checkpoints, with the records of the restart before this invocation.
    saver: Option<&'a mut Saver<'s>>,
    earlier: &'a [IterRecord],
}

impl<T: Real> Epochs<'_, '_, T> {
    fn sup_args(&self) -> Option<(&Labels, ClassLoss, f64)> {
        self.sup.map(|s| (s, self.opts.class_loss, self.opts.lambda))
    }

    fn forward(&self) -> Result<&Forward<T>> {
        self.fwd
            .as_ref()
            .ok_or_else(|| Error::invalid("epochs", 0, "the training has not started"))
    }
}

impl<T: Real> engine::Method for Epochs<'_, '_, T> {
    fn name(&self) -> &'static str {
        "Neural NMF"
    }

    fn non_finite_hint(&self) -> &'static str {
        "lower `lr`"
    }

    fn checkpoints(&self) -> bool {
        self.saver.is_some()
    }

    fn checkpoint(&mut self, progress: &Progress<'_>) -> Result<()> {
        let Some(saver) = self.saver.as_mut() else {
            return Ok(());
        };
        let Some(fwd) = self.fwd.as_ref() else {
            return Ok(());
        };
        let cur = Current {
            model: &self.model,
            fwd,
            adam: self.adam.as_ref(),
            lr: self.lr,
            lr_class: self.lr_class,
        };
        saver.save(progress, self.earlier, cur)
    }

    fn start(&mut self) -> Result<Option<Eval>> {
        if self.resumed {
            return Ok(None);
        }
        let fwd = self.model.forward(self.x, None, self.par)?;
        let grad = self
            .model
            .gradient(self.x, &fwd, self.opts.cost, self.sup_args(), self.par);
        let e = Eval::new(grad.cost, self.model.rel_error_par(self.x, &fwd, self.par));
        self.fwd = Some(fwd);
        self.pending = Some(grad);
        Ok(Some(e))
    }

    fn step(&mut self, epoch: usize, _within: &mut Within<'_>) -> Result<Step> {
        let (x, opts, par) = (self.x, self.opts, self.par);
        let sup_args = self.sup.map(|s| (s, opts.class_loss, opts.lambda));
        let grad = match self.pending.take() {
            Some(g) => g,
            None => self.model.gradient(x, self.forward()?, opts.cost, sup_args, par),
        };
        if let Some(adam) = self.adam.as_mut() {
            adam.begin_step();
        }
        for (i, (a, g)) in self.model.a.iter_mut().zip(&grad.da).enumerate() {
            match self.adam.as_mut() {
                Some(adam) => {
                    adam.update_mat(i, a, g, self.lr);
                    for j in 0..a.ncols() {
                        for v in a.col_as_slice_mut(j) {
                            *v = v.max(T::zero());
                        }
                    }
                }
                None => {
                    let lr_t = T::from_f64(self.lr);
                    for j in 0..a.ncols() {
                        for r in 0..a.nrows() {
                            a[(r, j)] = (a[(r, j)] - lr_t * g[(r, j)]).max(T::zero());
                        }
                    }
                }
            }
        }
        let fwd = self.fwd.take();
        if let (Some((s, loss, _)), Some(b), Some(f)) = (sup_args, self.model.b.as_mut(), fwd.as_ref()) {
            // B's own gradient steps on ℓ (unweighted: λ only weighs ℓ against the layers'
            // cost) at this epoch's codes, as the reference's 30 classifier steps.
            let lr_b = T::from_f64(self.lr_class);
            let s_top = f.s[f.s.len() - 1].as_ref();
            for _ in 0..opts.class_steps {
                let (_, _, db) = classification(b.as_ref(), s_top, s, loss, 1.0, par);
                for j in 0..b.ncols() {
                    for r in 0..b.nrows() {
                        b[(r, j)] = b[(r, j)] - lr_b * db[(r, j)];
                    }
                }
            }
        }
        if epoch % opts.decay_every == 0 {
            self.lr *= opts.decay;
            self.lr_class *= opts.decay;
        }
        // A step too long for the data makes the layers (and their Gram matrices) overflow,
        // which the forward NNLS reports; name the step, not the dictionary, as the cause.
        let fwd = self.model.forward(x, fwd, par).map_err(|e| match e {
            Error::Numerical { .. } => Error::Numerical {
                what: format!("Neural NMF at epoch {epoch}"),
                reason: "the layers overflowed after a step; lower `lr`".into(),
            },
            e => e,
        })?;
        let cost = self.model.cost_value(x, &fwd, opts.cost, sup_args, par);
        let e = Eval::new(cost, self.model.rel_error_par(x, &fwd, par));
        self.fwd = Some(fwd);
        Ok(Step::Done(e))
    }
}

/// One start (seed `seed`) of [`train_from`], inside its thread pool, or its continuation from
/// the checkpoint `from`.
#[allow(clippy::too_many_arguments)]
fn train_one<T: Real>(
    x: MatRef<'_, T>,
    start_layers: Option<&[Mat<T>]>,
    opts: &NeuralParams,
    stop: &StopRules,
    seed: u64,
    sup: Option<&Labels>,
    from: Option<&NeuralCheckpoint<T>>,
    saver: Option<&mut Saver<'_>>,
    observer: &mut (dyn Observer + Send),
) -> Result<NeuralFit<T>> {
    let start = Instant::now();
    let par = linalg::par(opts.threads);
    let method = match from {
        Some(c) => Epochs {
            x,
            opts,
            sup,
            model: c.model.clone(),
            fwd: Some(c.fwd.clone()),
            pending: None,
            adam: c.adam.as_ref().map(|buffers| Optimizer {
                spec: ADAM,
                t: c.meta.adam_t.unwrap_or(0),
                buffers: buffers.clone(),
            }),
            lr: c.meta.lr,
            lr_class: c.meta.lr_class,
            par,
            resumed: true,
            saver,
            earlier: &c.meta.history,
        },
        None => {
            let mut rng = Rng::new(seed);
            let mut model =
                NeuralNmf::<T>::init(x.nrows(), &opts.ranks, sup.map(|s| s.n_classes()), &mut rng);
            if let Some(layers) = start_layers {
                model.a = layers.to_vec();
            }
            let adam = opts.adam.then(|| {
                let sizes: Vec<usize> = model.a.iter().map(|a| a.nrows() * a.ncols()).collect();
                Optimizer::new(ADAM, &sizes)
            });
            Epochs {
                x,
                opts,
                sup,
                model,
                fwd: None,
                pending: None,
                adam,
                lr: opts.lr,
                lr_class: opts.lr_class,
                par,
                resumed: false,
                saver,
                earlier: &[],
            }
        }
    };
    let mut method = method;
    let (resume, offset) = from.map_or((Resume::default(), 0.0), |c| (c.resume(), c.meta.seconds));
    let clock = Clock::since(start).with_offset(offset);
    let out = engine::run(&mut method, stop, resume, clock, observer)?;
    let forward = match method.fwd {
        Some(f) => f,
        None => method.model.forward(x, None, par)?,
    };
    let mut history = method.earlier.to_vec();
    history.extend(out.history);
    Ok(NeuralFit {
        model: method.model,
        forward,
        history,
        n_iter: out.n_iter,
        stop_reason: out.stop_reason,
        warnings: out.warnings,
        seconds: clock.total(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deep::neural::Cost;
    use crate::engine::Silent;

    /// [`train`] with the parameters checked first.
    fn tr(
        x: MatRef<'_, f64>,
        o: &NeuralParams,
        sup: Option<&Labels>,
        observer: &mut (dyn Observer + Send),
    ) -> Result<NeuralFit<f64>> {
        train(x, &o.check()?, sup, observer)
    }

    #[test]
    fn unsupervised_training_lowers_the_cost_and_approaches_the_svd_bounds() {
        let d = crate::data::named::toy_hierarchy::<f64>(0);
        let x = d.x();
        let opts = NeuralParams {
            ranks: vec![9, 4, 2],
            epochs: 2000,
            ..NeuralParams::default()
        };
        let fit = tr(x, &opts, None, &mut Silent).unwrap();
        let h = &fit.history;
        assert!(
            h.last().unwrap().objective < 0.5 * h[0].objective,
            "{} → {}",
            h[0].objective,
            h.last().unwrap().objective
        );
        let rel = fit.model.rel_error(x, &fit.forward);
        // The 3-layer SVD bound is 0.467561 (METHODS.md §9.1).
        assert!(rel >= 0.4675 && rel < 0.55, "3-layer relative error {rel}");
        assert!(fit
            .model
            .a
            .iter()
            .all(|a| a.col_iter().all(|c| c.iter().all(|v| *v >= 0.0))));
    }

    #[test]
    fn bad_options_are_refused() {
        // 6 samples (rows) of 5 features.
        let x = Mat::<f64>::from_fn(6, 5, |j, i| (i + j) as f64);
        let bad = |ranks: Vec<usize>| {
            NeuralParams {
                ranks,
                ..NeuralParams::default()
            }
            .validate(6, 5)
        };
        assert!(bad(vec![4, 4]).is_err());
        assert!(bad(vec![6]).is_err());
        assert!(bad(vec![]).is_err());
        assert!(bad(vec![3, 0]).is_err());
        assert!(bad(vec![4, 2]).is_ok());
        // Labels of another length than the samples, starting layers of other shapes.
        let sup = Labels::all_known(vec![0; 5]);
        let o = NeuralParams {
            ranks: vec![2],
            epochs: 1,
            ..NeuralParams::default()
        };
        assert!(matches!(
            tr(x.as_ref(), &o, Some(&sup), &mut Silent),
            Err(Error::ShapeMismatch { .. })
        ));
        let wrong = [Mat::<f64>::zeros(4, 2)];
        assert!(matches!(
            train_from(x.as_ref(), Some(&wrong), &o.check().unwrap(), None, &mut Silent),
            Err(Error::ShapeMismatch { .. })
        ));
        let mut neg = x.clone();
        neg[(2, 1)] = -1.0;
        assert!(tr(neg.as_ref(), &o, None, &mut Silent).is_err());
        for (tol, max_seconds) in [(-1.0, None), (f64::NAN, None), (0.0, Some(0.0))] {
            let o = NeuralParams {
                ranks: vec![2],
                tol,
                max_seconds,
                ..NeuralParams::default()
            };
            assert!(o.check().is_err(), "{tol} {max_seconds:?}");
        }
    }

    /// toy-hierarchy, samples as rows (`90 × 87`).
    fn toy() -> Mat<f64> {
        crate::data::named::toy_hierarchy::<f64>(0).x().to_owned()
    }

    /// The engine's rules: a time budget ends a long run, the epochs end a run with a tolerance
    /// with the max-iter warning (none without one), a loose tolerance converges; the observer
    /// sees iteration 0 and every epoch.
    #[test]
    fn stopping_rules_warnings_and_iteration_zero() {
        let x = toy();
        // The time budget bounds all the restarts together (it was per restart).
        let o = NeuralParams {
            ranks: vec![9, 4],
            epochs: 100_000_000,
            max_seconds: Some(0.3),
            restarts: 1_000_000_000,
            ..NeuralParams::default()
        };
        let t = Instant::now();
        let f = tr(x.as_ref(), &o, None, &mut Silent).unwrap();
        assert_eq!(f.stop_reason, StopReason::TimeLimit);
        assert!(t.elapsed().as_secs_f64() < 5.0, "{:?}", t.elapsed());
        let o = NeuralParams {
            ranks: vec![9, 4],
            epochs: 100_000_000,
            max_seconds: Some(0.3),
            ..NeuralParams::default()
        };
        let t = Instant::now();
        let f = tr(x.as_ref(), &o, None, &mut Silent).unwrap();
        assert_eq!(f.stop_reason, StopReason::TimeLimit);
        assert!(t.elapsed().as_secs_f64() < 30.0 && f.n_iter > 0);
        assert!(f.warnings.is_empty());
        let mut seen = Vec::new();
        let mut obs = |r: &IterRecord| {
            seen.push(r.iter);
            crate::engine::Control::Continue
        };
        let o = NeuralParams {
            ranks: vec![9, 4],
            epochs: 20,
            tol: 1e-12,
            ..NeuralParams::default()
        };
        let f = tr(x.as_ref(), &o, None, &mut obs).unwrap();
        assert_eq!(seen, (0..=20).collect::<Vec<_>>());
        assert_eq!(f.history.len(), 21);
        assert_eq!(f.stop_reason, StopReason::MaxIter);
        assert!(
            matches!(
                f.warnings.as_slice(),
                [Warning::MaxIterReached { max_iter: 20, .. }]
            ),
            "{:?}",
            f.warnings
        );
        let quiet = tr(
            x.as_ref(),
            &NeuralParams {
                tol: 0.0,
                ..o.clone()
            },
            None,
            &mut Silent,
        )
        .unwrap();
        assert!(quiet.warnings.is_empty() && quiet.stop_reason == StopReason::MaxIter);
        // The tolerance off (the default) leaves the trajectory alone.
        assert_eq!(quiet.model.a, f.model.a);
        let loose = tr(x.as_ref(), &NeuralParams { tol: 0.5, ..o }, None, &mut Silent).unwrap();
        assert_eq!((loose.stop_reason, loose.n_iter), (StopReason::Converged, 10));
    }

    /// Same seed, same bits with 1 and 2 threads (unsupervised and supervised, GD and Adam).
    #[test]
    fn one_and_two_threads_give_the_same_bits() {
        let x = toy();
        let classes: Vec<u32> = (0..90).map(|j| (j % 4) as u32).collect();
        let labels = Labels::new(classes, (0..90).map(|j| j % 3 == 0).collect()).unwrap();
        for (sup, adam) in [(None, false), (Some(&labels), true)] {
            let o = NeuralParams {
                ranks: vec![9, 4],
                epochs: 40,
                adam,
                lr: if adam { 0.01 } else { 1.0 },
                cost: if sup.is_some() {
                    Cost::Energy
                } else {
                    Cost::Reconstruction
                },
                ..NeuralParams::default()
            };
            let one = tr(
                x.as_ref(),
                &NeuralParams {
                    threads: 1,
                    ..o.clone()
                },
                sup,
                &mut Silent,
            )
            .unwrap();
            let two = tr(x.as_ref(), &NeuralParams { threads: 2, ..o }, sup, &mut Silent).unwrap();
            assert_eq!(one.model.a, two.model.a);
            assert_eq!(one.model.b, two.model.b);
            let obj = |f: &NeuralFit<f64>| f.history.iter().map(|h| h.objective).collect::<Vec<_>>();
            assert_eq!(obj(&one), obj(&two));
        }
    }

    /// Adam (the shared optimizer): the first step moves every weight by about `lr` against the
    /// sign of its gradient, then projects onto `A ≥ 0`; training with it lowers the cost.
    #[test]
    fn adam_steps_by_lr_and_projects() {
        let x = toy();
        let lr = 0.01;
        let o = NeuralParams {
            ranks: vec![9, 4],
            epochs: 1,
            adam: true,
            lr,
            ..NeuralParams::default()
        };
        let start = NeuralNmf::<f64>::init(x.ncols(), &o.ranks, None, &mut Rng::new(o.seed));
        let f0 = start.forward(x.transpose(), None, Par::Seq).unwrap();
        let g = start.gradient(x.transpose(), &f0, o.cost, None, Par::Seq);
        let fit = tr(x.as_ref(), &o, None, &mut Silent).unwrap();
        for l in 0..2 {
            for j in 0..start.a[l].ncols() {
                for i in 0..start.a[l].nrows() {
                    let (a0, gv) = (start.a[l][(i, j)], g.da[l][(i, j)]);
                    let expect = (a0 - lr * gv / (gv.abs() + 1e-8)).max(0.0);
                    let got = fit.model.a[l][(i, j)];
                    assert!(
                        (got - expect).abs() <= 1e-12,
                        "layer {l} ({i},{j}): {got} vs {expect}"
                    );
                }
            }
        }
        let long = tr(x.as_ref(), &NeuralParams { epochs: 300, ..o }, None, &mut Silent).unwrap();
        let h = &long.history;
        assert!(h.last().unwrap().objective < 0.5 * h[0].objective);
        assert!(long
            .model
            .a
            .iter()
            .all(|a| a.col_iter().all(|c| c.iter().all(|v| *v >= 0.0))));
    }
}
