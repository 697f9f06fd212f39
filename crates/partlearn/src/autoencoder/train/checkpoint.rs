//! Checkpoints (METHODS.md §6.5): the whole training state in one safetensors file (model,
//! optimizer buffers, best weights, a JSON description), written atomically and read back for an
//! exact resumption.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{EpochRecord, EpochSums, TrainState};
use crate::autoencoder::model::{file_tensor, read_into, Autoencoder};
use crate::autoencoder::params::AeParams;
use crate::engine::Plateau;
use crate::error::{Error, Result};
use crate::real::Real;

/// Metadata key of a checkpoint's JSON description.
pub const CHECKPOINT_KEY: &str = "partlearn.checkpoint";

/// The JSON description of a checkpoint. Early stopping is stored as `best` = (validation MSE,
/// epoch) and `wait` = epochs since, the fields of [`Plateau`]. The model's own parameters
/// (architecture, `k`, decoder activation) are read from the model's description, which older
/// checkpoints' `options` lack.
#[derive(Serialize, Deserialize)]
struct CheckpointMeta {
    options: AeParams,
    epoch: usize,
    batch: usize,
    sums: EpochSums,
    history: Vec<EpochRecord>,
    optimizer_t: u64,
    best: Option<(f64, usize)>,
    wait: usize,
    seconds: f64,
}

/// Writes the whole training state atomically to `path` (the bytes of [`checkpoint_bytes`]),
/// `seconds` of training so far.
pub(super) fn save_checkpoint<T: Real>(state: &TrainState<T>, path: &Path, seconds: f64) -> Result<()> {
    crate::io::write_atomic(path, &state_bytes(state, seconds)?)
}

/// The whole training state as the bytes of a checkpoint file (a safetensors file: the model's
/// tensors, `optimizer.<i>.<j>` buffers, `best.<name>` weights, and a JSON description), in the
/// state's float type: what keeps a training run in memory (a Python estimator's pickle) and
/// [`checkpoint_from_bytes`] continues with the same bits.
pub fn checkpoint_bytes<T: Real>(state: &TrainState<T>) -> Result<Vec<u8>> {
    state_bytes(state, state.seconds)
}

fn state_bytes<T: Real>(state: &TrainState<T>, seconds: f64) -> Result<Vec<u8>> {
    let (mut tensors, mut meta) = state.model.to_tensors()?;
    for (i, bufs) in state.optimizer.buffers.iter().enumerate() {
        for (j, b) in bufs.iter().enumerate() {
            tensors.push(file_tensor(format!("optimizer.{i}.{j}"), &[b.len()], b)?);
        }
    }
    let best = match (&state.plateau, &state.best_weights) {
        (Some(p), Some(weights)) => {
            for ((name, t), data) in state.model.named_tensors().into_iter().zip(weights) {
                tensors.push(file_tensor(format!("best.{name}"), &t.shape, data)?);
            }
            Some(*p)
        }
        _ => None,
    };
    let desc = CheckpointMeta {
        options: state.params.params().clone(),
        epoch: state.epoch,
        batch: state.batch,
        sums: state.sums,
        history: state.history.clone(),
        optimizer_t: state.optimizer.t,
        best: best.map(|p| (p.best, p.best_iter)),
        wait: best.map_or(0, |p| p.wait),
        seconds,
    };
    meta.insert(
        CHECKPOINT_KEY.to_string(),
        serde_json::to_string(&desc).map_err(|e| Error::invalid("checkpoint", "state", e.to_string()))?,
    );
    crate::io::safetensors_bytes(&tensors, &meta)
}

/// Reads a checkpoint written by [`train`](fn@super::train); `threads` and `max_seconds` are this
/// invocation's. Its parameters are checked again (a damaged description is refused).
pub fn load_checkpoint<T: Real>(
    path: &Path,
    threads: usize,
    max_seconds: Option<f64>,
) -> Result<TrainState<T>> {
    let bytes = crate::io::read_regular(path, u64::MAX)?;
    checkpoint_from_bytes(&bytes, path, threads, max_seconds)
}

/// The training state in the bytes of a checkpoint ([`checkpoint_bytes`], or a checkpoint file's
/// content); `source` names them in errors, `threads` and `max_seconds` are this invocation's.
/// Values are converted to `T` when the checkpoint holds the other float type.
pub fn checkpoint_from_bytes<T: Real>(
    bytes: &[u8],
    source: &Path,
    threads: usize,
    max_seconds: Option<f64>,
) -> Result<TrainState<T>> {
    let path = source;
    let (tensors, meta) = crate::io::parse_safetensors(bytes, path)?;
    let desc: CheckpointMeta = meta
        .get(CHECKPOINT_KEY)
        .ok_or_else(|| {
            Error::format(
                path,
                "not a partlearn training checkpoint (no training state in it); give the checkpoint.safetensors that an auto-encoder training saved in its run folder",
            )
        })
        .and_then(|s| {
            serde_json::from_str(s).map_err(|e| Error::format(path, format!("unreadable checkpoint description ({e})")))
        })?;
    let model = Autoencoder::<T>::from_file_parts(&tensors, &meta, path)?;
    let spec = &model.spec;
    let stored = desc
        .options
        .architecture(spec.architecture)
        .k(spec.k)
        .decoder_activation(spec.decoder_activation);
    stored.check().map_err(|e| {
        Error::format(
            path,
            format!("the checkpoint holds invalid parameters ({e}); the file is damaged"),
        )
    })?;
    let params = stored.threads(threads).max_seconds(max_seconds).check()?;
    let mut state = TrainState::new(model, params)?;
    for (i, bufs) in state.optimizer.buffers.iter_mut().enumerate() {
        for (j, b) in bufs.iter_mut().enumerate() {
            let t = crate::io::tensor_by_name(&tensors, &format!("optimizer.{i}.{j}"), path)?;
            let len = b.len();
            read_into(t, &[len], b, path)?;
        }
    }
    state.optimizer.t = desc.optimizer_t;
    if let Some((best, best_iter)) = desc.best {
        let mut weights = Vec::new();
        for (name, t) in state.model.named_tensors() {
            let ft = crate::io::tensor_by_name(&tensors, &format!("best.{name}"), path)?;
            let mut v = vec![T::zero(); t.data.len()];
            read_into(ft, &t.shape, &mut v, path)?;
            weights.push(v);
        }
        state.plateau = Some(Plateau {
            best,
            best_iter,
            wait: desc.wait,
        });
        state.best_weights = Some(weights);
    }
    state.epoch = desc.epoch;
    state.batch = desc.batch;
    state.sums = desc.sums;
    state.history = desc.history;
    state.seconds = desc.seconds;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{opts, shallow, state, tiny_data};
    use super::super::train;
    use super::*;
    use crate::autoencoder::layers::Act;
    use crate::engine::{Control, IterRecord, Observer, Silent, StopReason};
    use crate::optim::OptimizerSpec;

    /// Interrupted in the middle of an epoch, checkpointed and resumed: the same bits as an
    /// uninterrupted run (model, history, optimizer state).
    #[test]
    fn resume_from_a_mid_epoch_checkpoint_gives_the_same_bits() {
        let data = tiny_data(90, 10, 6);
        let o = opts(4)
            .val_fraction(0.2)
            .patience(Some(50))
            .optimizer(OptimizerSpec::named("adadelta", None).unwrap());
        let mut straight = state(shallow(3, 10, Act::Sigmoid, 2), o.clone());
        train(&mut straight, &data, None, &mut Silent).unwrap();

        let dir = std::env::temp_dir().join(format!("partlearn-ae-resume-{}", std::process::id()));
        let path = dir.join("checkpoint.safetensors");
        let mut first = state(shallow(3, 10, Act::Sigmoid, 2), o);
        let mut calls = 0;
        let mut stop_mid = |_: &IterRecord| Control::Continue;
        struct StopAt<'a, F>(usize, &'a mut usize, F);
        impl<F: FnMut(&IterRecord) -> Control + Send> Observer for StopAt<'_, F> {
            fn on_iter(&mut self, r: &IterRecord) -> Control {
                (self.2)(r)
            }
            fn on_progress(&mut self, done: usize, _: usize) -> Control {
                *self.1 += 1;
                if done == self.0 {
                    Control::Stop
                } else {
                    Control::Continue
                }
            }
        }
        // 72 training samples, batches of 16 → 5 per epoch; stop after batch 2 of epoch 2.
        let out = train(
            &mut first,
            &data,
            Some(&path),
            &mut StopAt(7, &mut calls, &mut stop_mid),
        )
        .unwrap();
        assert_eq!(out.stop_reason, StopReason::Interrupted);
        assert_eq!((first.epoch, first.batch), (1, 2));
        let mut resumed = load_checkpoint::<f64>(&path, 2, None).unwrap();
        train(&mut resumed, &data, None, &mut Silent).unwrap();
        assert_eq!(
            resumed.model.to_tensors().unwrap().0,
            straight.model.to_tensors().unwrap().0
        );
        assert_eq!(resumed.optimizer.buffers, straight.optimizer.buffers);
        let strip = |h: &[EpochRecord]| {
            h.iter()
                .map(|r| EpochRecord { seconds: 0.0, ..*r })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&resumed.history), strip(&straight.history));
        // A file that is not a checkpoint is refused with a hint.
        let (t, meta) = straight.model.to_tensors().unwrap();
        crate::io::write_safetensors(&path, &t, &meta).unwrap();
        let e = load_checkpoint::<f64>(&path, 1, None).unwrap_err().to_string();
        assert!(e.contains("not a partlearn training checkpoint"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Checkpoints written before the `tol` option existed (no `tol` in their options) still
    /// load, with the tolerance off; early stopping's `best` and `wait` load as the engine's
    /// [`Plateau`].
    #[test]
    fn checkpoints_without_a_tolerance_load_with_it_off() {
        let data = tiny_data(80, 10, 8);
        let dir = std::env::temp_dir().join(format!("partlearn-ae-old-{}", std::process::id()));
        let path = dir.join("checkpoint.safetensors");
        let o = opts(3).val_fraction(0.25).patience(Some(5));
        let mut st = state(shallow(3, 10, Act::Sigmoid, 2), o);
        train(&mut st, &data, Some(&path), &mut Silent).unwrap();
        let (tensors, mut meta) = crate::io::read_safetensors(&path).unwrap();
        let desc = meta.get_mut(CHECKPOINT_KEY).unwrap();
        let without = desc.replace("\"tol\":0.0,", "");
        assert_ne!(&without, desc);
        *desc = without;
        crate::io::write_safetensors(&path, &tensors, &meta).unwrap();
        let old = load_checkpoint::<f64>(&path, 1, None).unwrap();
        assert_eq!(old.params().params().tol, 0.0);
        assert_eq!(old.params().params().k, 3);
        let p = old.plateau.unwrap();
        assert_eq!(Some(p), st.plateau);
        assert_eq!(p.wait, old.epoch - p.best_iter);
        assert_eq!(old.best_weights, st.best_weights);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A state kept as checkpoint bytes (a pickled estimator) continues with the same bits; the
    /// bytes are those of the final checkpoint file.
    #[test]
    fn checkpoint_bytes_round_trip_and_equal_the_file() {
        let data = tiny_data(70, 10, 3);
        let o = opts(4).optimizer(OptimizerSpec::named("adam", Some(0.01)).unwrap());
        let mut straight = state(shallow(3, 10, Act::Sigmoid, 4), o.clone());
        train(&mut straight, &data, None, &mut Silent).unwrap();

        let dir = std::env::temp_dir().join(format!("partlearn-ae-bytes-{}", std::process::id()));
        let path = dir.join("checkpoint.safetensors");
        let mut first = state(shallow(3, 10, Act::Sigmoid, 4), o.epochs(2));
        train(&mut first, &data, Some(&path), &mut Silent).unwrap();
        let bytes = checkpoint_bytes(&first).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        let mut resumed = checkpoint_from_bytes::<f64>(&bytes, Path::new("memory"), 2, None).unwrap();
        assert_eq!(resumed.seconds, first.seconds);
        let p = resumed.params().params().clone().epochs(4);
        resumed.set_params(p.check().unwrap()).unwrap();
        train(&mut resumed, &data, None, &mut Silent).unwrap();
        assert_eq!(
            resumed.model.to_tensors().unwrap().0,
            straight.model.to_tensors().unwrap().0
        );
        assert_eq!(resumed.optimizer.buffers, straight.optimizer.buffers);
        let e = checkpoint_from_bytes::<f64>(b"not a checkpoint", Path::new("memory"), 1, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("memory"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
