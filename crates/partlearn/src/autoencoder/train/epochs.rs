//! The epochs of a training run: shuffled mini-batches, optimizer steps and the decoder's
//! projection (§6.4), the epoch's record and validation MSE, early stopping, progress, the time
//! budget and checkpoints.

use std::path::Path;
use std::time::Instant;

use faer::Par;

use super::batch::{gradients, Workspace};
use super::checkpoint::save_checkpoint;
use super::{
    epoch_seed, restore, snapshot, split, Best, EpochRecord, EpochSums, NonNeg, TrainOutcome, TrainState,
};
use crate::autoencoder::layers::{Act, Cache};
use crate::autoencoder::model::Autoencoder;
use crate::data::Dataset;
use crate::engine::{Control, IterRecord, Observer, StopReason};
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
pub(super) fn train_inner<T: Real>(
    state: &mut TrainState<T>,
    data: &Dataset<T>,
    checkpoint: Option<&Path>,
    observer: &mut (dyn Observer + Send),
) -> Result<TrainOutcome> {
    let start = Instant::now();
    let opts = state.options.clone();
    let par = linalg::par(opts.threads);
    let (m, k) = (state.model.spec.n_features, state.model.spec.k);
    let (train_idx, val_idx) = split(data.n_samples(), opts.val_fraction, opts.seed);
    let x_norm = train_idx
        .iter()
        .map(|&i| data.sample(i).iter().map(|&v| v.to_f64().powi(2)).sum::<f64>())
        .sum::<f64>()
        .sqrt();
    let batches_per_epoch = train_idx.len().div_ceil(opts.batch_size);
    let total_batches = batches_per_epoch * opts.epochs;
    let mut ws = Workspace::new(&state.model);
    let mut xb = Vec::new();
    let mut warnings = Vec::new();
    let (_, data_max, _) = data.value_range();
    if state.model.spec.decoder_activation == Act::Sigmoid && data_max > 1.0 {
        warnings.push(format!(
            "the data reach {data_max:.3} but a sigmoid decoder outputs values below 1; scale the data to [0, 1] or use --decoder-activation leaky-relu"
        ));
    }
    let elapsed = |state: &TrainState<T>| state.seconds + start.elapsed().as_secs_f64();
    let mut stop_reason = StopReason::MaxIter;

    'epochs: while state.epoch < opts.epochs {
        let epoch = state.epoch;
        let lr_factor = opts.schedule.factor(epoch, opts.epochs);
        let mut order = train_idx.clone();
        if opts.shuffle {
            Rng::new(epoch_seed(opts.seed, epoch)).shuffle(&mut order);
        }
        let batches: Vec<&[usize]> = order.chunks(opts.batch_size).collect();
        while state.batch < batches.len() {
            let idx = batches[state.batch];
            let b = idx.len();
            xb.clear();
            for &i in idx {
                xb.extend_from_slice(data.sample(i));
            }
            let model = &mut state.model;
            let t = gradients(model, &opts.loss, &xb, b, &mut ws, par);
            if let [part] = ws.parts.as_slice() {
                model.encoder.update_running(&part.enc);
            }
            let total = t.terms.total();
            if !total.is_finite() {
                return Err(Error::Numerical {
                    what: format!("training at epoch {}, batch {}", epoch + 1, state.batch + 1),
                    reason: format!("the loss became {total}; lower the learning rate (--lr) or beta"),
                });
            }
            state.optimizer.begin_step();
            let params = model
                .encoder
                .params
                .iter_mut()
                .chain(model.decoder.params.iter_mut());
            for (i, (p, g)) in params.zip(&ws.grads).enumerate() {
                state.optimizer.update(i, &mut p.data, g, lr_factor);
            }
            if opts.nonneg == NonNeg::Project {
                model.project_decoder();
            }
            let w = b as f64;
            let s = &mut state.sums;
            s.samples += b;
            s.terms.reconstruction += t.terms.reconstruction * w;
            s.terms.sparsity += t.terms.sparsity * w;
            s.terms.decay += t.terms.decay * w;
            s.terms.sq_error += t.terms.sq_error;
            s.activation += t.activation;
            state.batch += 1;
            let done = epoch * batches_per_epoch + state.batch;
            if observer.on_progress(done, total_batches) == Control::Stop
                || crate::engine::interrupt::requested()
            {
                stop_reason = StopReason::Interrupted;
                break 'epochs;
            }
            if opts
                .max_seconds
                .is_some_and(|limit| start.elapsed().as_secs_f64() >= limit)
            {
                stop_reason = StopReason::TimeLimit;
                break 'epochs;
            }
        }

        // End of the epoch.
        let s = state.sums;
        let n = s.samples.max(1) as f64;
        let val_mse = (!val_idx.is_empty()).then(|| validation_mse(&state.model, data, &val_idx, par));
        let rec = EpochRecord {
            epoch: epoch + 1,
            loss: s.terms.total() / n,
            reconstruction: s.terms.reconstruction / n,
            sparsity: s.terms.sparsity / n,
            decay: s.terms.decay / n,
            train_mse: s.terms.sq_error / (n * m as f64),
            val_mse,
            mean_activation: s.activation / (n * k as f64),
            negative_decoder_fraction: state.model.negative_decoder_fraction(),
            lr: opts.optimizer.lr() * lr_factor,
            seconds: elapsed(state),
        };
        state.history.push(rec);
        state.epoch += 1;
        state.batch = 0;
        state.sums = EpochSums::default();
        if let (Some(patience), Some(v)) = (opts.patience, val_mse) {
            if state.best.as_ref().is_none_or(|b| v < b.val_mse) {
                state.best = Some(Best {
                    val_mse: v,
                    epoch: epoch + 1,
                    tensors: snapshot(&state.model),
                });
                state.wait = 0;
            } else {
                state.wait += 1;
                if state.wait >= patience {
                    stop_reason = StopReason::EarlyStopped;
                }
            }
        }
        let control = observer.on_iter(&IterRecord {
            iter: epoch + 1,
            objective: rec.loss,
            rel_error: if x_norm > 0.0 {
                s.terms.sq_error.sqrt() / x_norm
            } else {
                0.0
            },
            seconds: rec.seconds,
            projected_gradient: None,
        });
        if let (Some(path), Some(every)) = (checkpoint, opts.checkpoint_every) {
            if state.epoch % every == 0 && state.epoch < opts.epochs {
                save_checkpoint(state, path, elapsed(state))?;
            }
        }
        if stop_reason == StopReason::EarlyStopped {
            break;
        }
        if control == Control::Stop || crate::engine::interrupt::requested() {
            stop_reason = StopReason::Interrupted;
            break;
        }
        if opts
            .max_seconds
            .is_some_and(|limit| start.elapsed().as_secs_f64() >= limit)
        {
            stop_reason = StopReason::TimeLimit;
            break;
        }
    }
    let seconds = elapsed(state);
    if let Some(path) = checkpoint {
        save_checkpoint(state, path, seconds)?;
    }
    state.seconds = seconds;
    if stop_reason != StopReason::Interrupted && opts.patience.is_some() {
        if let Some(best) = &state.best {
            if best.epoch != state.epoch {
                warnings.push(format!(
                    "kept the weights of epoch {} (best validation MSE {:.6}); the last epoch was {}",
                    best.epoch, best.val_mse, state.epoch
                ));
                let t = best.tensors.clone();
                restore(&mut state.model, &t);
            }
        }
    }
    if stop_reason == StopReason::TimeLimit && state.batch > 0 {
        warnings.push(format!(
            "the time budget ended epoch {} after {} of {} batches; `--resume` continues it",
            state.epoch + 1,
            state.batch,
            batches_per_epoch
        ));
    }
    Ok(TrainOutcome {
        stop_reason,
        warnings,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{opts, shallow, tiny_data};
    use super::super::{train, TrainOptions};
    use super::*;
    use crate::autoencoder::layers::Act;
    use crate::autoencoder::loss::{LossSpec, Sparsity};
    use crate::autoencoder::optim::OptimizerSpec;
    use crate::engine::Silent;

    #[test]
    fn early_stopping_keeps_the_best_validation_epoch() {
        let data = tiny_data(80, 10, 8);
        // A huge learning rate makes the validation error worse after the first epochs.
        let o = TrainOptions {
            val_fraction: 0.25,
            patience: Some(2),
            optimizer: OptimizerSpec::named("sgd", Some(3.0)).unwrap(),
            loss: LossSpec {
                sparsity: Sparsity::None,
                ..LossSpec::default()
            },
            ..opts(60)
        };
        let mut st = TrainState::new(shallow(3, 10, Act::Identity, 3), o);
        let out = train(&mut st, &data, None, &mut Silent).unwrap_or_else(|e| panic!("{e}"));
        if out.stop_reason == StopReason::EarlyStopped {
            let best = st.best.as_ref().unwrap();
            let min = st
                .history
                .iter()
                .filter_map(|r| r.val_mse)
                .fold(f64::INFINITY, f64::min);
            assert_eq!(best.val_mse, min);
            assert!(st.history.len() < 60);
            let (_, val) = split(80, 0.25, 0);
            let v = validation_mse(&st.model, &data, &val, Par::Seq);
            assert!(
                (v - min).abs() < 1e-12,
                "restored weights give {v}, best was {min}"
            );
        } else {
            panic!("expected early stopping, got {:?}", out.stop_reason);
        }
    }
}
