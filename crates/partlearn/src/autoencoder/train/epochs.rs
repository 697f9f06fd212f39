//! The epochs of a training run as an [`engine::Method`]: one step is one epoch of shuffled
//! mini-batches (an optimizer step and the decoder's projection, §6.4, after each), reported to
//! the engine batch by batch so that Ctrl-C, the observer and the time budget act between
//! batches. The engine owns the stopping rules, early stopping and the warnings; this module
//! keeps the epoch's record, the best weights and the checkpoints.

use std::path::Path;

use faer::Par;

use super::batch::{gradients, Workspace};
use super::checkpoint::save_checkpoint;
use super::update::update;
use super::{epoch_seed, restore, snapshot, split, EpochRecord, EpochSums, TrainOutcome, TrainState};
use crate::autoencoder::layers::{Act, Cache};
use crate::autoencoder::model::Autoencoder;
use crate::autoencoder::params::{AeParams, NonNeg};
use crate::data::Dataset;
use crate::engine::{
    self, Clock, Eval, IterRecord, Observer, Plateau, Resume, Step, StopReason, Warning, Within,
};
use crate::error::{Error, Result};
use crate::linalg;
use crate::real::Real;
use crate::rng::Rng;

/// Per-pixel MSE of `model` on the samples `idx` of `data` (inference mode).
fn validation_mse<T: Real>(model: &Autoencoder<T>, data: &Dataset<T>, idx: &[usize], par: Par) -> f64 {
    let m = data.n_features();
    let (mut cache, mut dcache) = (Cache::default(), Cache::default());
    let mut sq = 0.0f64;
    let mut buf = Vec::new();
    for chunk in idx.chunks(512) {
        buf.clear();
        for &i in chunk {
            buf.extend_from_slice(data.sample(i));
        }
        model.encoder.forward(&buf, chunk.len(), false, &mut cache, par);
        let h = cache.outs.last().map(Vec::as_slice).unwrap_or(&[]);
        model.decoder.forward(h, chunk.len(), false, &mut dcache, par);
        let xhat = dcache.outs.last().map(Vec::as_slice).unwrap_or(&[]);
        sq += xhat
            .iter()
            .zip(&buf)
            .map(|(a, b)| (*a - *b).to_f64().powi(2))
            .sum::<f64>();
    }
    sq / (idx.len() * m) as f64
}

/// A training state and its data as an engine method: iteration `e` is epoch `e`.
struct Epochs<'a, T: Real> {
    state: &'a mut TrainState<T>,
    data: &'a Dataset<T>,
    opts: AeParams,
    train_idx: Vec<usize>,
    val_idx: Vec<usize>,
    /// `‖X‖_F` of the training samples (the relative error's denominator).
    x_norm: f64,
    batches_per_epoch: usize,
    ws: Workspace<T>,
    /// The epoch's sample order, reused.
    order: Vec<usize>,
    par: Par,
    checkpoint: Option<&'a Path>,
    clock: Clock,
    /// The validation MSE of the last epoch (what [`engine::Method::keep_best`] keeps).
    last_val: Option<f64>,
    /// The engine returned to the best epoch; applied after the final checkpoint, which keeps the
    /// last epoch's weights so that a resumed run continues from them.
    restore_best: bool,
    /// The observer asked for a checkpoint after the last batch of an epoch: written once the
    /// epoch is recorded ([`engine::Method::after_iter`]).
    checkpoint_at_epoch_end: bool,
}

impl<T: Real> Epochs<'_, T> {
    /// The mini-batches of epoch `state.epoch` from batch `state.batch` on; `Ok(false)` when
    /// `within` said to stop after one of them.
    fn batches(&mut self, within: &mut Within<'_>) -> Result<bool> {
        let (opts, state) = (&self.opts, &mut *self.state);
        let epoch = state.epoch;
        let lr_factor = opts.schedule.factor(epoch, opts.epochs);
        self.order.clear();
        self.order.extend_from_slice(&self.train_idx);
        if opts.shuffle {
            Rng::new(epoch_seed(opts.seed, epoch)).shuffle(&mut self.order);
        }
        let total_batches = self.batches_per_epoch * opts.epochs;
        while state.batch < self.batches_per_epoch {
            let first = state.batch * opts.batch_size;
            let idx = &self.order[first..(first + opts.batch_size).min(self.order.len())];
            let b = idx.len();
            let data = self.data;
            // Each sample is asked for while the one before it is copied.
            let gather = |r: std::ops::Range<usize>, x: &mut Vec<T>| {
                let rows = &idx[r];
                for (j, &i) in rows.iter().enumerate() {
                    if let Some(&next) = rows.get(j + 1) {
                        crate::linalg::kernels::prefetch(data.sample(next));
                    }
                    x.extend_from_slice(data.sample(i));
                }
            };
            let model = &mut state.model;
            let mut t = gradients(model, &opts.loss, &gather, b, &mut self.ws, self.par);
            if let [part] = self.ws.parts() {
                model.encoder.update_running(&part.enc);
            }
            let total = t.terms.total();
            if !total.is_finite() {
                return Err(Error::Numerical {
                    what: format!("training at epoch {}, batch {}", epoch + 1, state.batch + 1),
                    reason: format!("the loss became {total}; lower the learning rate `lr` or `beta`"),
                });
            }
            state.optimizer.begin_step();
            let project = opts.nonneg == NonNeg::Project;
            let parts = self.ws.parts();
            t.terms.decay = update(model, &mut state.optimizer, parts, &opts.loss, project, lr_factor);
            let w = b as f64;
            let s = &mut state.sums;
            s.samples += b;
            s.terms.reconstruction += t.terms.reconstruction * w;
            s.terms.sparsity += t.terms.sparsity * w;
            s.terms.decay += t.terms.decay * w;
            s.terms.sq_error += t.terms.sq_error;
            s.activation += t.activation;
            state.batch += 1;
            if let Some(path) = self.checkpoint {
                if within.checkpoint_due() {
                    if state.batch < self.batches_per_epoch {
                        save_checkpoint(state, path, self.clock.total())?;
                    } else {
                        self.checkpoint_at_epoch_end = true;
                    }
                }
            }
            if !within.go_on(epoch * self.batches_per_epoch + state.batch, total_batches) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl<T: Real> engine::Method for Epochs<'_, T> {
    fn name(&self) -> &'static str {
        "auto-encoder training"
    }

    fn non_finite_hint(&self) -> &'static str {
        "lower the learning rate or beta"
    }

    /// No iteration 0: evaluating the initial weights would take an extra forward pass over the
    /// training split (a sizeable fraction of an epoch, which `bench ae` would count as training
    /// time), and an epoch's loss is the mean over batches while the weights move, which has no
    /// exact counterpart at the initialization. The tolerance's reference is therefore the
    /// first epoch of this invocation.
    fn start(&mut self) -> Result<Option<Eval>> {
        Ok(None)
    }

    fn step(&mut self, iter: usize, within: &mut Within<'_>) -> Result<Step> {
        debug_assert_eq!(iter, self.state.epoch + 1);
        if !self.batches(within)? {
            return Ok(Step::Stopped);
        }
        let state = &mut *self.state;
        let (m, k) = (state.model.spec.n_features, state.model.spec.k);
        let s = state.sums;
        let n = s.samples.max(1) as f64;
        let val_mse = (!self.val_idx.is_empty())
            .then(|| validation_mse(&state.model, self.data, &self.val_idx, self.par));
        let rec = EpochRecord {
            epoch: state.epoch + 1,
            loss: s.terms.total() / n,
            reconstruction: s.terms.reconstruction / n,
            sparsity: s.terms.sparsity / n,
            decay: s.terms.decay / n,
            train_mse: s.terms.sq_error / (n * m as f64),
            val_mse,
            mean_activation: s.activation / (n * k as f64),
            negative_decoder_fraction: state.model.negative_decoder_fraction(),
            lr: self.opts.optimizer.lr() * self.opts.schedule.factor(state.epoch, self.opts.epochs),
            seconds: within.seconds(),
        };
        if let Ok(line) = serde_json::to_string(&rec) {
            within.history(&line);
        }
        state.history.push(rec);
        state.epoch += 1;
        state.batch = 0;
        state.sums = EpochSums::default();
        self.last_val = val_mse;
        let rel_error = if self.x_norm > 0.0 {
            s.terms.sq_error.sqrt() / self.x_norm
        } else {
            0.0
        };
        Ok(Step::Done(Eval {
            objective: rec.loss,
            rel_error,
            validation: val_mse,
        }))
    }

    fn keep_best(&mut self, iter: usize) {
        let best = self.last_val.unwrap_or(f64::NAN);
        self.state.plateau = Some(Plateau {
            best,
            best_iter: iter,
            wait: 0,
        });
        self.state.best_weights = Some(snapshot(&self.state.model));
    }

    fn restore_best(&mut self) {
        self.restore_best = true;
    }

    /// Keeps the state's early-stopping counter in step with the engine's (epochs since the best)
    /// and writes the checkpoint every `checkpoint_every` epochs, or when the observer asked for
    /// one during the epoch's last batch (not after the last epoch: the final checkpoint follows
    /// the run).
    fn after_iter(&mut self, _rec: &IterRecord) -> Result<()> {
        let state = &mut *self.state;
        if self.opts.patience.is_some() {
            if let Some(p) = &mut state.plateau {
                p.wait = state.epoch - p.best_iter;
            }
        }
        if let Some(path) = self.checkpoint {
            let every = self
                .opts
                .checkpoint_every
                .is_some_and(|every| state.epoch % every == 0);
            let due = std::mem::take(&mut self.checkpoint_at_epoch_end);
            if (every || due) && state.epoch < self.opts.epochs {
                save_checkpoint(state, path, self.clock.total())?;
            }
        }
        Ok(())
    }
}

/// Runs the epochs of `state` through [`engine::run`] (inside the caller's thread pool), up to
/// epoch `end` when given (below the run's total: no `max_iter` warning then), then writes the
/// final checkpoint and only then returns to the best epoch's weights, so that the checkpoint
/// resumes from where training stopped.
pub(super) fn train_inner<T: Real>(
    state: &mut TrainState<T>,
    data: &Dataset<T>,
    checkpoint: Option<&Path>,
    end: Option<usize>,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome> {
    let clock = Clock::start().with_offset(state.seconds);
    let opts = state.params.params().clone();
    let mut rules = *state.params.stop_rules();
    let capped = end.is_some_and(|end| end < rules.max_iter);
    if let (true, Some(end)) = (capped, end) {
        rules.max_iter = end;
    }
    let (train_idx, val_idx) = split(data.n_samples(), opts.val_fraction, opts.seed);
    let x_norm = train_idx
        .iter()
        .map(|&i| data.sample(i).iter().map(|&v| v.to_f64().powi(2)).sum::<f64>())
        .sum::<f64>()
        .sqrt();
    let batches_per_epoch = train_idx.len().div_ceil(opts.batch_size);
    if state.batch > batches_per_epoch {
        return Err(Error::invalid(
            "batch",
            state.batch,
            format!(
                "the training state stops at batch {} of an epoch that has {batches_per_epoch} batches on this data: the checkpoint is damaged or was saved on other data; resume on the run's data, or start a new run",
                state.batch
            ),
        ));
    }
    let mut warnings = Vec::new();
    let (_, data_max, _) = data.value_range();
    if state.model.spec.decoder_activation == Act::Sigmoid && data_max > 1.0 {
        warnings.push(Warning::SigmoidBelowData { data_max });
    }
    let resume = Resume {
        done: state.epoch,
        plateau: state.plateau,
        ..Resume::default()
    };
    let mut method = Epochs {
        ws: Workspace::new(&state.model),
        state: &mut *state,
        data,
        par: linalg::par(opts.threads),
        opts,
        train_idx,
        val_idx,
        x_norm,
        batches_per_epoch,
        order: Vec::new(),
        checkpoint,
        clock,
        last_val: None,
        restore_best: false,
        checkpoint_at_epoch_end: false,
    };
    let outcome = engine::run(&mut method, &rules, resume, clock, observer)?;
    let restore_best = method.restore_best;
    let seconds = clock.total();
    state.plateau = outcome.plateau;
    if let Some(path) = checkpoint {
        save_checkpoint(state, path, seconds)?;
    }
    state.seconds = seconds;
    if restore_best {
        if let Some(best) = state.best_weights.take() {
            restore(&mut state.model, &best);
            state.best_weights = Some(best);
        }
    }
    warnings.extend(
        outcome
            .warnings
            .into_iter()
            .filter(|w| !(capped && matches!(w, Warning::MaxIterReached { .. }))),
    );
    if outcome.stop_reason == StopReason::TimeLimit && state.batch > 0 {
        warnings.push(Warning::PartialIteration {
            iter: state.epoch + 1,
            done: state.batch,
            total: batches_per_epoch,
        });
    }
    Ok(TrainOutcome {
        stop_reason: outcome.stop_reason,
        warnings,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{opts, shallow, state, tiny_data};
    use super::super::{load_checkpoint, train};
    use super::*;
    use crate::autoencoder::loss::Sparsity;
    use crate::engine::{Rule, Silent};
    use crate::optim::OptimizerSpec;

    fn temp_checkpoint(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("partlearn-ae-{name}-{}", std::process::id()));
        dir.join("checkpoint.safetensors")
    }

    /// Settings under which the validation error gets worse after the first epochs (a huge
    /// learning rate), so that early stopping fires.
    fn diverging(epochs: usize) -> AeParams {
        opts(epochs)
            .val_fraction(0.25)
            .patience(Some(2))
            .optimizer(OptimizerSpec::named("sgd", Some(3.0)).unwrap())
            .sparsity(Sparsity::None)
    }

    #[test]
    fn early_stopping_keeps_the_best_validation_epoch() {
        let data = tiny_data(80, 10, 8);
        let mut st = state(shallow(3, 10, Act::Identity, 3), diverging(60));
        let out = train(&mut st, &data, None, &mut Silent).unwrap_or_else(|e| panic!("{e}"));
        if out.stop_reason == StopReason::EarlyStopped {
            let best = st.plateau.unwrap();
            let min = st
                .history
                .iter()
                .filter_map(|r| r.val_mse)
                .fold(f64::INFINITY, f64::min);
            assert_eq!(best.best, min);
            assert!(st.history.len() < 60);
            let (_, val) = split(80, 0.25, 0);
            let v = validation_mse(&st.model, &data, &val, Par::Seq);
            assert!(
                (v - min).abs() < 1e-12,
                "restored weights give {v}, best was {min}"
            );
            assert_eq!(
                out.warnings,
                vec![Warning::RestoredBest {
                    best: best.best_iter,
                    score: min,
                    last: st.history.len()
                }]
            );
        } else {
            panic!("expected early stopping, got {:?}", out.stop_reason);
        }
    }

    /// The returned model has the best epoch's weights, but the final checkpoint keeps the last
    /// epoch's (the best ones beside them): a resumed run continues where training stopped.
    #[test]
    fn the_final_checkpoint_keeps_the_last_weights_after_early_stopping() {
        let data = tiny_data(80, 10, 8);
        let path = temp_checkpoint("early");
        let mut st = state(shallow(3, 10, Act::Identity, 3), diverging(60));
        let out = train(&mut st, &data, Some(&path), &mut Silent).unwrap();
        assert_eq!(out.stop_reason, StopReason::EarlyStopped);
        let ck = load_checkpoint::<f64>(&path, 1, None).unwrap();
        assert_eq!((ck.epoch, ck.batch, ck.plateau), (st.epoch, 0, st.plateau));
        assert_eq!(ck.plateau.unwrap().wait, 2);
        assert_eq!(ck.best_weights, st.best_weights);
        let tensors = |m: &Autoencoder<f64>| m.to_tensors().unwrap().0;
        assert_ne!(tensors(&ck.model), tensors(&st.model));
        let mut last = ck.model.clone();
        restore(&mut last, ck.best_weights.as_ref().unwrap());
        assert_eq!(tensors(&last), tensors(&st.model));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// A time budget ends training between two batches: `TimeLimit`, the epoch in progress kept
    /// (not recorded), a warning that says so, and a final checkpoint from which a resumed run
    /// gives the same bits as an uninterrupted one.
    #[test]
    fn a_time_budget_stops_between_batches_and_the_run_resumes_exactly() {
        // 90 samples in batches of 16: 6 batches per epoch.
        let data = tiny_data(90, 10, 6);
        let mut straight = state(shallow(3, 10, Act::Sigmoid, 2), opts(3));
        train(&mut straight, &data, None, &mut Silent).unwrap();

        let path = temp_checkpoint("budget");
        let o = opts(3).max_seconds(Some(1e-9));
        let mut st = state(shallow(3, 10, Act::Sigmoid, 2), o);
        let out = train(&mut st, &data, Some(&path), &mut Silent).unwrap();
        assert_eq!(out.stop_reason, StopReason::TimeLimit);
        assert_eq!((st.epoch, st.batch, st.history.len()), (0, 1, 0));
        assert_eq!(
            out.warnings,
            vec![Warning::PartialIteration {
                iter: 1,
                done: 1,
                total: 6
            }]
        );
        let mut resumed = load_checkpoint::<f64>(&path, 1, None).unwrap();
        assert_eq!((resumed.epoch, resumed.batch), (0, 1));
        let out = train(&mut resumed, &data, None, &mut Silent).unwrap();
        assert_eq!((out.stop_reason, resumed.epoch), (StopReason::MaxIter, 3));
        assert_eq!(
            resumed.model.to_tensors().unwrap().0,
            straight.model.to_tensors().unwrap().0
        );
        assert_eq!(resumed.optimizer.buffers, straight.optimizer.buffers);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// Epochs that end a fit with a tolerance give the engine's max_iter warning (scikit-learn's
    /// ConvergenceWarning), none without one; a tolerance every decrease meets (1) stops at the
    /// first window, epoch 10.
    #[test]
    fn a_tolerance_warns_when_the_epochs_end_the_fit_and_stops_a_flat_loss() {
        let data = tiny_data(64, 10, 4);
        let fit = |o: AeParams| {
            let mut st = state(shallow(3, 10, Act::Sigmoid, 1), o);
            let out = train(&mut st, &data, None, &mut Silent).unwrap();
            (out, st.epoch)
        };
        let (out, epochs) = fit(opts(5).tol(1e-4));
        assert_eq!((out.stop_reason, epochs), (StopReason::MaxIter, 5));
        assert_eq!(
            out.warnings,
            vec![Warning::MaxIterReached {
                max_iter: 5,
                rule: Rule::Tol,
                value: 1e-4
            }]
        );
        assert!(fit(opts(5)).0.warnings.is_empty());
        let (out, epochs) = fit(opts(60).tol(1.0));
        assert_eq!((out.stop_reason, epochs), (StopReason::Converged, 10));
        assert!(out.warnings.is_empty());
    }

    /// `train_epochs` one epoch at a time gives the bits of one run (the cosine schedule keeps
    /// the run's horizon), warns only when the run's own total ends it, and grows the total
    /// beyond it.
    #[test]
    fn epochs_one_at_a_time_give_the_bits_of_one_run() {
        let data = tiny_data(50, 8, 9);
        let o = opts(4)
            .tol(1e-4)
            .schedule(crate::optim::Schedule::Cosine)
            .optimizer(OptimizerSpec::named("adam", Some(0.02)).unwrap());
        let mut straight = state(shallow(3, 8, Act::Sigmoid, 1), o.clone());
        let out = train(&mut straight, &data, None, &mut Silent).unwrap();
        assert!(matches!(
            out.warnings[..],
            [Warning::MaxIterReached { max_iter: 4, .. }]
        ));

        let mut st = state(shallow(3, 8, Act::Sigmoid, 1), o);
        for epoch in 1..=4 {
            let out = super::super::train_epochs(&mut st, &data, 1, &mut Silent).unwrap();
            assert_eq!((out.stop_reason, st.epoch), (StopReason::MaxIter, epoch));
            assert_eq!(
                out.warnings.is_empty(),
                epoch < 4,
                "epoch {epoch}: {:?}",
                out.warnings
            );
        }
        assert_eq!(
            st.model.to_tensors().unwrap().0,
            straight.model.to_tensors().unwrap().0
        );
        assert_eq!(st.optimizer.buffers, straight.optimizer.buffers);
        let strip = |h: &[super::super::EpochRecord]| {
            h.iter()
                .map(|r| super::super::EpochRecord { seconds: 0.0, ..*r })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&st.history), strip(&straight.history));
        // Past the run's total, the total grows with the epochs done.
        super::super::train_epochs(&mut st, &data, 2, &mut Silent).unwrap();
        assert_eq!(
            (st.epoch, st.params().params().epochs, st.history.len()),
            (6, 6, 6)
        );
        assert!(super::super::train_epochs(&mut st, &data, 0, &mut Silent).is_err());
    }

    /// A checkpoint the observer asks for (`checkpoint_due`, the CLI's wall-clock interval) is
    /// written at once in the middle of an epoch, or after the epoch when asked at its last batch;
    /// resumed from the mid-epoch one, training gives the bits of an uninterrupted run.
    #[test]
    fn checkpoints_the_observer_asks_for_resume_exactly() {
        struct Ask {
            at: Vec<usize>,
            done: usize,
            path: std::path::PathBuf,
            seen: Vec<(usize, usize, usize)>,
            first: Option<Vec<u8>>,
            lines: usize,
        }
        impl Observer for Ask {
            fn on_iter(&mut self, _: &IterRecord) -> engine::Control {
                engine::Control::Continue
            }
            fn on_progress(&mut self, done: usize, _: usize) -> engine::Control {
                // A checkpoint asked after the previous batch is on disk by now.
                if let Ok(bytes) = std::fs::read(&self.path) {
                    let ck = super::super::checkpoint_from_bytes::<f64>(&bytes, &self.path, 1, None).unwrap();
                    self.seen.push((done, ck.epoch, ck.batch));
                    self.first.get_or_insert(bytes);
                }
                self.done = done;
                engine::Control::Continue
            }
            fn on_history(&mut self, _line: &str) {
                self.lines += 1;
            }
            fn checkpoint_due(&mut self) -> bool {
                // Asked after batch `done + 1` of the run.
                self.at.contains(&(self.done + 1))
            }
        }
        // 90 samples in batches of 16: 6 batches per epoch.
        let data = tiny_data(90, 10, 6);
        let mut straight = state(shallow(3, 10, Act::Sigmoid, 2), opts(3));
        train(&mut straight, &data, None, &mut Silent).unwrap();
        let path = temp_checkpoint("asked");
        let mut ask = Ask {
            at: vec![2, 6],
            done: 0,
            path: path.clone(),
            seen: Vec::new(),
            first: None,
            lines: 0,
        };
        let mut st = state(shallow(3, 10, Act::Sigmoid, 2), opts(3));
        train(&mut st, &data, Some(&path), &mut ask).unwrap();
        // Asked after batch 2: saved at once (epoch 0, batch 2); asked after batch 6 (the epoch's
        // last): saved once epoch 1 was recorded (epoch 1, batch 0).
        assert_eq!(ask.seen.first(), Some(&(2, 0, 2)));
        assert!(ask.seen.contains(&(7, 1, 0)), "{:?}", ask.seen);
        assert!(!ask.seen.iter().any(|s| s.1 == 2), "{:?}", ask.seen);
        assert_eq!(ask.lines, 3);
        // Resumed from the mid-epoch checkpoint: the same bits.
        let bytes = ask.first.unwrap();
        let mut resumed = super::super::checkpoint_from_bytes::<f64>(&bytes, &path, 1, None).unwrap();
        train(&mut resumed, &data, None, &mut Silent).unwrap();
        assert_eq!(
            resumed.model.to_tensors().unwrap().0,
            straight.model.to_tensors().unwrap().0
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
