//! Checkpoints of Neural NMF training: everything a resumed run needs to go on with the same
//! bits as the uninterrupted one — the restart being trained (its layers `A⁽ⁱ⁾`, classifier
//! `B`, the forward pass it warm-starts from, Adam's buffers, the decayed learning rates, the
//! stopping rule's references and its history), the best earlier restart (its network, forward
//! pass and history) and the starting layers every restart begins from (`--init hnmf`). A
//! safetensors file: tensors `a.i`, `b`, `s.i`, `g.i` (Grams), `adam.i.j`, `best.a.i`, `best.b`,
//! `best.s.i`, `best.g.i`, `start.i`, and a JSON description under
//! [`NEURAL_CHECKPOINT_KEY`]. The data are identified by their shape, `‖X‖²_F` and the labels.
//!
//! The warnings of the best earlier restart are not stored: they are derived again from its
//! stop reason (a restart's only warning is `max_iter` reached before the tolerance).

use std::collections::BTreeMap;
use std::path::Path;

use faer::Mat;
use serde::{Deserialize, Serialize};

use super::model::{Forward, NeuralNmf};
use super::params::NeuralParams;
use super::train::NeuralFit;
use crate::data::Labels;
use crate::engine::{IterRecord, Progress, Resume, StopReason};
use crate::error::{Error, Result};
use crate::io::Tensor;
use crate::optim::Optimizer;
use crate::real::Real;

/// Metadata key of a Neural NMF checkpoint's JSON description.
pub const NEURAL_CHECKPOINT_KEY: &str = "partlearn.neural_checkpoint";

/// What identifies the data (and labels) of a training run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct DataPrint {
    pub n_samples: usize,
    pub n_features: usize,
    pub x_sq: f64,
    /// `(known labels, Σ of their classes)`, when supervised.
    pub labels: Option<(usize, u64)>,
}

impl DataPrint {
    pub fn of<T: Real>(x: faer::MatRef<'_, T>, sup: Option<&Labels>) -> Self {
        DataPrint {
            n_samples: x.ncols(),
            n_features: x.nrows(),
            x_sq: crate::linalg::frob_sq(x),
            labels: sup.map(|s| {
                let sum = s
                    .classes()
                    .iter()
                    .zip(s.known())
                    .filter(|(_, &k)| k)
                    .map(|(&c, _)| c as u64)
                    .sum();
                (s.n_known(), sum)
            }),
        }
    }
}

/// The best earlier restart's record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BestMeta {
    pub history: Vec<IterRecord>,
    pub n_iter: usize,
    pub stop_reason: StopReason,
    pub seconds: f64,
}

/// The JSON description of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub options: NeuralParams,
    pub dtype: String,
    pub data: DataPrint,
    pub restart: u64,
    pub done: usize,
    pub first: Option<f64>,
    pub window: Option<f64>,
    pub seconds: f64,
    pub history: Vec<IterRecord>,
    pub lr: f64,
    pub lr_class: f64,
    pub adam_t: Option<u64>,
    pub best: Option<BestMeta>,
    pub has_start: bool,
}

/// The state of a Neural NMF training between two epochs (see the module's documentation).
#[derive(Clone, Debug)]
pub struct NeuralCheckpoint<T: Real> {
    pub(crate) meta: Meta,
    pub(crate) model: NeuralNmf<T>,
    pub(crate) fwd: Forward<T>,
    pub(crate) adam: Option<Vec<Vec<Vec<T>>>>,
    pub(crate) best: Option<NeuralFit<T>>,
    pub(crate) start: Option<Vec<Mat<T>>>,
}

impl<T: Real> NeuralCheckpoint<T> {
    /// The training's options (with those of [`NeuralCheckpoint::continue_with`]).
    pub fn params(&self) -> &NeuralParams {
        &self.meta.options
    }

    /// The records of the restart being trained, up to the checkpoint (epoch 0 first).
    pub fn history(&self) -> &[IterRecord] {
        &self.meta.history
    }

    /// The restart being trained (0 for the first) and its epochs done.
    pub fn position(&self) -> (u64, usize) {
        (self.meta.restart, self.meta.done)
    }

    /// What a resumed run may change: the epochs (the new total of every restart), the time
    /// budget of the resumed invocation, and the threads (which do not change the bits).
    pub fn continue_with(&mut self, epochs: Option<usize>, max_seconds: Option<f64>, threads: usize) {
        let mut o = self.meta.options.clone();
        if let Some(e) = epochs {
            o = o.epochs(e);
        }
        self.meta.options = o.max_seconds(max_seconds).threads(threads);
    }

    /// The engine's state of the restart being trained.
    pub(crate) fn resume(&self) -> Resume {
        Resume {
            done: self.meta.done,
            plateau: None,
            first: self.meta.first,
            window: self.meta.window,
        }
    }

    /// Reads the bytes of a checkpoint file; `source` names it in errors. The values are
    /// converted to `T` when the file holds the other float type.
    pub fn from_bytes(bytes: &[u8], source: &Path) -> Result<Self> {
        let (tensors, meta) = crate::io::parse_safetensors(bytes, source)?;
        let meta = describe(&meta, source)?;
        let damaged = |what: String| Error::format(source, format!("{what}; the checkpoint is damaged"));
        let valid = meta
            .options
            .check()
            .map_err(|e| damaged(format!("it holds invalid options ({e})")))?;
        let o = valid.params();
        let (n, m) = (meta.data.n_samples, meta.data.n_features);
        let mat = |name: String, shape: (usize, usize)| -> Result<Mat<T>> {
            let a = crate::io::tensor_by_name(&tensors, &name, source)?.to_mat::<T>()?;
            if a.shape() != shape {
                return Err(damaged(format!(
                    "tensor {name} is {:?}, not {shape:?}",
                    a.shape()
                )));
            }
            if !(0..a.ncols()).all(|j| (0..a.nrows()).all(|i| a[(i, j)].is_finite())) {
                return Err(damaged(format!("tensor {name} holds non-finite values")));
            }
            Ok(a)
        };
        let rows = |i: usize| if i == 0 { m } else { o.ranks[i - 1] };
        let classes = meta.data.labels.map(|_| ());
        let network = |prefix: &str| -> Result<(NeuralNmf<T>, Forward<T>)> {
            let a = (0..o.ranks.len())
                .map(|i| mat(format!("{prefix}a.{i}"), (rows(i), o.ranks[i])))
                .collect::<Result<Vec<_>>>()?;
            let b = match classes {
                Some(()) => {
                    let t = crate::io::tensor_by_name(&tensors, &format!("{prefix}b"), source)?;
                    let c = t.shape.first().copied().unwrap_or(0);
                    Some(mat(format!("{prefix}b"), (c, *o.ranks.last().unwrap_or(&0)))?)
                }
                None => None,
            };
            let s = (0..o.ranks.len())
                .map(|i| mat(format!("{prefix}s.{i}"), (o.ranks[i], n)))
                .collect::<Result<Vec<_>>>()?;
            let grams = (0..o.ranks.len())
                .map(|i| mat(format!("{prefix}g.{i}"), (o.ranks[i], o.ranks[i])))
                .collect::<Result<Vec<_>>>()?;
            Ok((NeuralNmf { a, b }, Forward { s, grams }))
        };
        let (model, fwd) = network("")?;
        let adam = match meta.adam_t {
            Some(_) => Some(
                (0..o.ranks.len())
                    .map(|i| {
                        (0..2)
                            .map(|j| {
                                let t =
                                    crate::io::tensor_by_name(&tensors, &format!("adam.{i}.{j}"), source)?;
                                let v = t.to_mat::<T>()?;
                                if v.nrows() != rows(i) * o.ranks[i] || v.ncols() != 1 {
                                    return Err(damaged(format!("Adam buffer {i}.{j} has the wrong size")));
                                }
                                Ok(v.col_as_slice(0).to_vec())
                            })
                            .collect::<Result<Vec<_>>>()
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let best = match &meta.best {
            Some(b) => {
                let (model, forward) = network("best.")?;
                Some(NeuralFit {
                    model,
                    forward,
                    history: b.history.clone(),
                    n_iter: b.n_iter,
                    stop_reason: b.stop_reason,
                    warnings: valid.stop_rules().warning(b.stop_reason).into_iter().collect(),
                    seconds: b.seconds,
                })
            }
            None => None,
        };
        let start = if meta.has_start {
            Some(
                (0..o.ranks.len())
                    .map(|i| mat(format!("start.{i}"), (rows(i), o.ranks[i])))
                    .collect::<Result<Vec<_>>>()?,
            )
        } else {
            None
        };
        if meta.restart >= o.restarts as u64
            || meta.done > o.epochs.max(meta.done)
            || meta.history.len() > meta.done + 1
        {
            return Err(damaged(format!(
                "it records restart {} of {} at epoch {} with {} history records",
                meta.restart,
                o.restarts,
                meta.done,
                meta.history.len()
            )));
        }
        Ok(NeuralCheckpoint {
            meta,
            model,
            fwd,
            adam,
            best,
            start,
        })
    }

    /// Reads a checkpoint file ([`NeuralCheckpoint::from_bytes`]).
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_bytes(&crate::io::read_regular(path, u64::MAX)?, path)
    }

    /// Errors unless `data` is what the checkpoint was taken on.
    pub(crate) fn check_data(&self, data: &DataPrint) -> Result<()> {
        let d = &self.meta.data;
        if (d.n_samples, d.n_features) != (data.n_samples, data.n_features) {
            return Err(Error::invalid(
                "resume",
                "the data",
                format!(
                    "the checkpoint was taken on {} × {} data, these are {} × {}; resume on the run's data",
                    d.n_samples, d.n_features, data.n_samples, data.n_features
                ),
            ));
        }
        if d.x_sq.to_bits() != data.x_sq.to_bits() || d.labels != data.labels {
            return Err(Error::invalid(
                "resume",
                "the data",
                "the data (or their labels) differ from those the checkpoint was taken on; resume on the run's data with its supervision flags",
            ));
        }
        Ok(())
    }
}

/// The dtype (`"f32"` / `"f64"`) of the training a checkpoint's bytes hold.
pub fn neural_checkpoint_dtype(bytes: &[u8], source: &Path) -> Result<String> {
    let (_, meta) = crate::io::parse_safetensors(bytes, source)?;
    Ok(describe(&meta, source)?.dtype)
}

fn describe(meta: &BTreeMap<String, String>, source: &Path) -> Result<Meta> {
    let s = meta.get(NEURAL_CHECKPOINT_KEY).ok_or_else(|| {
        Error::format(
            source,
            "not a partlearn Neural NMF checkpoint (no training state in it); give the checkpoint.safetensors of a `partlearn fit neural-nmf` run",
        )
    })?;
    serde_json::from_str(s)
        .map_err(|e| Error::format(source, format!("unreadable checkpoint description ({e})")))
}

fn network_tensors<T: Real>(prefix: &str, model: &NeuralNmf<T>, fwd: &Forward<T>, out: &mut Vec<Tensor>) {
    for (i, a) in model.a.iter().enumerate() {
        out.push(Tensor::from_mat(format!("{prefix}a.{i}"), a.as_ref()));
    }
    if let Some(b) = &model.b {
        out.push(Tensor::from_mat(format!("{prefix}b"), b.as_ref()));
    }
    for (i, s) in fwd.s.iter().enumerate() {
        out.push(Tensor::from_mat(format!("{prefix}s.{i}"), s.as_ref()));
    }
    for (i, g) in fwd.grams.iter().enumerate() {
        out.push(Tensor::from_mat(format!("{prefix}g.{i}"), g.as_ref()));
    }
}

/// Writes the checkpoints of a training: the parts that change only between restarts (`meta`'s
/// options, data, restart, best; the best restart's and the starting layers' tensors), completed
/// at each save by the restart being trained.
pub(crate) struct Saver<'a> {
    pub path: &'a Path,
    pub meta: Meta,
    /// Tensors of the best earlier restart and of the starting layers.
    pub fixed: Vec<Tensor>,
}

/// The restart being trained, as [`Saver::save`] needs it.
pub(crate) struct Current<'a, T: Real> {
    pub model: &'a NeuralNmf<T>,
    pub fwd: &'a Forward<T>,
    pub adam: Option<&'a Optimizer<T>>,
    pub lr: f64,
    pub lr_class: f64,
}

impl<'a> Saver<'a> {
    pub fn new<T: Real>(
        path: &'a Path,
        options: &NeuralParams,
        data: DataPrint,
        start: Option<&[Mat<T>]>,
    ) -> Self {
        let mut fixed = Vec::new();
        for (i, a) in start.into_iter().flatten().enumerate() {
            fixed.push(Tensor::from_mat(format!("start.{i}"), a.as_ref()));
        }
        Saver {
            path,
            meta: Meta {
                options: options.clone(),
                dtype: T::NAME.to_string(),
                data,
                restart: 0,
                done: 0,
                first: None,
                window: None,
                seconds: 0.0,
                history: Vec::new(),
                lr: 0.0,
                lr_class: 0.0,
                adam_t: None,
                best: None,
                has_start: start.is_some(),
            },
            fixed,
        }
    }

    /// A new restart `r` begins, `best` the best of the earlier ones.
    pub fn begin_restart<T: Real>(&mut self, r: u64, best: Option<&NeuralFit<T>>) {
        self.meta.restart = r;
        self.fixed.retain(|t| !t.name.starts_with("best."));
        self.meta.best = best.map(|b| {
            network_tensors("best.", &b.model, &b.forward, &mut self.fixed);
            BestMeta {
                history: b.history.clone(),
                n_iter: b.n_iter,
                stop_reason: b.stop_reason,
                seconds: b.seconds,
            }
        });
    }

    /// Saves the restart being trained after a recorded epoch (`earlier`: its records before
    /// this invocation), atomically.
    pub fn save<T: Real>(
        &mut self,
        progress: &Progress<'_>,
        earlier: &[IterRecord],
        cur: Current<'_, T>,
    ) -> Result<()> {
        let m = &mut self.meta;
        m.done = progress.done;
        m.first = progress.first;
        m.window = progress.window;
        m.seconds = progress.seconds;
        m.history.clear();
        m.history.extend_from_slice(earlier);
        m.history.extend_from_slice(progress.history);
        m.lr = cur.lr;
        m.lr_class = cur.lr_class;
        m.adam_t = cur.adam.map(|a| a.t);
        let mut tensors = self.fixed.clone();
        network_tensors("", cur.model, cur.fwd, &mut tensors);
        if let Some(adam) = cur.adam {
            for (i, bufs) in adam.buffers.iter().enumerate() {
                for (j, b) in bufs.iter().enumerate() {
                    let col = faer::MatRef::from_column_major_slice(b, b.len(), 1);
                    tensors.push(Tensor::from_mat(format!("adam.{i}.{j}"), col));
                }
            }
        }
        let desc = serde_json::to_string(&self.meta)
            .map_err(|e| Error::invalid("checkpoint", "state", e.to_string()))?;
        let meta = [(NEURAL_CHECKPOINT_KEY.to_string(), desc)].into_iter().collect();
        crate::io::write_atomic(self.path, &crate::io::safetensors_bytes(&tensors, &meta)?)
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
