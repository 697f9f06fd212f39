//! Mini-batch training of the auto-encoders (METHODS.md §6.2–§6.5): seeded shuffling, the loss of
//! [`super::loss`], back-propagation through [`super::layers`], an optimizer step and the
//! decoder's projection onto `W_d ≥ 0` after every step (§6.4), a validation split with early
//! stopping, a learning-rate schedule, per-epoch history, checkpoints and exact resumption.
//!
//! One epoch is one step of the [engine](crate::engine) (module `epochs`), which owns the
//! stopping rules (epochs, the windowed tolerance, the time budget, early stopping on the
//! validation MSE), Ctrl-C, the observer and the typed warnings; `batch` computes one
//! mini-batch's gradients and `checkpoint` writes and reads the whole state.
//!
//! Everything random is derived from the seed and the epoch number (initialization, validation
//! split, each epoch's order), so a run resumed from a checkpoint, even one written in the middle
//! of an epoch by Ctrl-C, continues with the same bits as an uninterrupted run.

mod batch;
mod checkpoint;
mod epochs;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use checkpoint::{load_checkpoint, CHECKPOINT_KEY};

use super::loss::{LossSpec, LossTerms, RecLoss};
use super::model::Autoencoder;
use crate::data::Dataset;
use crate::engine::{Observer, Plateau, StopReason, StopRules, Warning};
use crate::error::{Error, Result};
use crate::linalg;
use crate::optim::{Optimizer, OptimizerSpec, Schedule};
use crate::real::Real;
use crate::rng::Rng;

/// How the decoder is kept non-negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NonNeg {
    /// `W_d ← max(W_d, 0)` after every optimizer step (the reference; Keras `NonNeg`).
    Project,
    /// No constraint (use the asymmetric weight decay of the loss, or nothing).
    None,
}

impl std::str::FromStr for NonNeg {
    type Err = Error;
    fn from_str(s: &str) -> Result<NonNeg> {
        match s {
            "project" => Ok(NonNeg::Project),
            "none" => Ok(NonNeg::None),
            _ => Err(Error::invalid(
                "nonneg",
                s,
                "use project (clip the decoder weights at 0 after every step) or none",
            )),
        }
    }
}

/// Training options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerSpec,
    pub schedule: Schedule,
    pub loss: LossSpec,
    pub nonneg: NonNeg,
    /// Fraction of the samples held out (a seeded random subset) for the validation MSE.
    pub val_fraction: f64,
    /// Stop when the validation MSE has not improved for this many epochs; the returned model
    /// then has the weights of the best epoch.
    pub patience: Option<usize>,
    /// Every [`TOL_EVERY`](crate::engine::TOL_EVERY) epochs, stop when `sqrt(2·loss)` (the mean
    /// loss of an epoch) fell by less than `tol` times its value at the first epoch of this invocation
    /// ([`StopRules::tol`]; 0 disables).
    #[serde(default)]
    pub tol: f64,
    /// Shuffle the training samples every epoch (seeded by the seed and the epoch).
    pub shuffle: bool,
    pub seed: u64,
    /// Worker threads (0 = all cores); not part of the result (same bits for any count).
    #[serde(skip)]
    pub threads: usize,
    /// Wall-clock budget in seconds for this invocation.
    #[serde(skip)]
    pub max_seconds: Option<f64>,
    /// Write a checkpoint every this many epochs (when a checkpoint path is given).
    pub checkpoint_every: Option<usize>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 50,
            batch_size: 128,
            optimizer: OptimizerSpec::Adadelta {
                lr: 1.0,
                rho: 0.95,
                eps: 1e-7,
            },
            schedule: Schedule::Constant,
            loss: LossSpec::default(),
            nonneg: NonNeg::Project,
            val_fraction: 0.0,
            patience: None,
            tol: 0.0,
            shuffle: true,
            seed: 0,
            threads: 1,
            max_seconds: None,
            checkpoint_every: None,
        }
    }
}

impl TrainOptions {
    /// Checks the options against a model and data set of `n` samples.
    pub fn validate<T: Real>(&self, model: &Autoencoder<T>, data: &Dataset<T>) -> Result<()> {
        let n = data.n_samples();
        if n == 0 || data.n_features() == 0 {
            return Err(Error::EmptyData {
                n_samples: n,
                n_features: data.n_features(),
            });
        }
        if data.n_features() != model.spec.n_features {
            return Err(Error::ShapeMismatch {
                what: "data".into(),
                expected: format!("n × {}", model.spec.n_features),
                found: format!("{} × {}", n, data.n_features()),
                hint: "train (or resume) on data with the model's number of features".into(),
            });
        }
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", 0, "train for at least one epoch"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid(
                "batch_size",
                0,
                "use a positive batch size (the reference: 128)",
            ));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(Error::invalid(
                "val_fraction",
                self.val_fraction,
                "must be in [0, 1)",
            ));
        }
        let n_val = n_validation(n, self.val_fraction);
        if n_val >= n {
            return Err(Error::invalid(
                "val_fraction",
                self.val_fraction,
                "leaves no training sample; lower it",
            ));
        }
        if self.patience.is_some() && n_val == 0 {
            return Err(Error::invalid(
                "patience",
                self.patience.unwrap_or(0),
                "early stopping watches the validation MSE: add `val_fraction` (e.g. 0.1)",
            ));
        }
        self.stop_rules().validate()?;
        if self.checkpoint_every == Some(0) {
            return Err(Error::invalid("checkpoint_every", 0, "must be at least 1"));
        }
        self.optimizer.validate()?;
        self.loss.validate()?;
        data.validate_nonnegative()?;
        if self.loss.reconstruction == RecLoss::Bce {
            if model.spec.decoder_activation != super::layers::Act::Sigmoid {
                return Err(Error::invalid(
                    "loss",
                    "bce",
                    "binary cross-entropy needs outputs in (0, 1): use `decoder_activation = sigmoid`",
                ));
            }
            let (_, hi, _) = data.value_range();
            if hi > 1.0 {
                return Err(Error::invalid(
                    "loss",
                    "bce",
                    format!("binary cross-entropy needs data in [0, 1], the maximum is {hi}; scale the data or use `loss = mse`"),
                ));
            }
        }
        Ok(())
    }
}

impl TrainOptions {
    /// The engine's stopping rules: `epochs` iterations, the tolerance, this invocation's time budget
    /// and early stopping.
    pub fn stop_rules(&self) -> StopRules {
        StopRules {
            patience: self.patience,
            ..StopRules::max_iter(self.epochs)
                .with_tol(self.tol)
                .with_max_seconds(self.max_seconds)
        }
    }
}

fn n_validation(n: usize, fraction: f64) -> usize {
    (n as f64 * fraction).round() as usize
}

/// Seeded split into (training, validation) sample indices, each sorted.
fn split(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let n_val = n_validation(n, fraction);
    let mut perm: Vec<usize> = (0..n).collect();
    if n_val > 0 {
        Rng::new(seed ^ 0x5A11_D0_5E7).shuffle(&mut perm);
    }
    let (val, train) = perm.split_at(n_val);
    let (mut val, mut train) = (val.to_vec(), train.to_vec());
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

/// The seed of epoch `e`'s shuffle.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// One epoch of the history.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean total loss over the epoch's batches (weighted by batch size).
    pub loss: f64,
    pub reconstruction: f64,
    pub sparsity: f64,
    pub decay: f64,
    /// Per-pixel MSE of the training batches during the epoch.
    pub train_mse: f64,
    /// Per-pixel MSE of the validation samples after the epoch (inference mode).
    pub val_mse: Option<f64>,
    /// Mean code activation over the epoch's training batches.
    pub mean_activation: f64,
    /// Fraction of decoder weights below zero after the epoch.
    pub negative_decoder_fraction: f64,
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Seconds of training so far (all invocations).
    pub seconds: f64,
}

/// Sums over the batches of the epoch in progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    pub samples: usize,
    pub terms: LossTerms,
    pub activation: f64,
}

/// Everything a training run needs to continue: the model, the optimizer's state, where it
/// stands, and the history.
#[derive(Clone, Debug)]
pub struct TrainState<T: Real> {
    pub model: Autoencoder<T>,
    pub optimizer: Optimizer<T>,
    pub options: TrainOptions,
    /// Completed epochs.
    pub epoch: usize,
    /// Batches done in the epoch in progress.
    pub batch: usize,
    pub sums: EpochSums,
    pub history: Vec<EpochRecord>,
    /// Early stopping: the best validation MSE, its epoch and the epochs since.
    pub plateau: Option<Plateau>,
    /// The weights of the best validation epoch (every tensor, model-file order).
    pub best_weights: Option<Vec<Vec<T>>>,
    /// Training seconds of earlier invocations.
    pub seconds: f64,
}

/// How a training invocation ended.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOutcome {
    pub stop_reason: StopReason,
    pub warnings: Vec<Warning>,
    /// Seconds of training (all invocations).
    pub seconds: f64,
}

impl<T: Real> TrainState<T> {
    /// A fresh state: the model as initialized, zero optimizer state.
    pub fn new(model: Autoencoder<T>, options: TrainOptions) -> Self {
        let sizes: Vec<usize> = trainable(&model).map(|t| t.len()).collect();
        TrainState {
            optimizer: Optimizer::new(options.optimizer, &sizes),
            model,
            options,
            epoch: 0,
            batch: 0,
            sums: EpochSums::default(),
            history: Vec::new(),
            plateau: None,
            best_weights: None,
            seconds: 0.0,
        }
    }
}

/// The trainable tensors in optimizer order: encoder parameters, then decoder parameters.
fn trainable<T: Real>(model: &Autoencoder<T>) -> impl Iterator<Item = &Vec<T>> {
    model
        .encoder
        .params
        .iter()
        .chain(&model.decoder.params)
        .map(|t| &t.data)
}

/// Every tensor of the model (parameters and running statistics), model-file order.
fn snapshot<T: Real>(model: &Autoencoder<T>) -> Vec<Vec<T>> {
    model
        .named_tensors()
        .into_iter()
        .map(|(_, t)| t.data.clone())
        .collect()
}

fn restore<T: Real>(model: &mut Autoencoder<T>, tensors: &[Vec<T>]) {
    let slots = model
        .encoder
        .params
        .iter_mut()
        .chain(model.encoder.state.iter_mut())
        .chain(model.decoder.params.iter_mut());
    for (slot, t) in slots.zip(tensors) {
        slot.data.copy_from_slice(t);
    }
}

/// Trains `state` on `data` until its epochs are done or a stopping rule of
/// [`TrainOptions::stop_rules`] fires, reporting every batch (`on_progress`) and epoch
/// (`on_iter`, objective = mean loss, relative error `sqrt(Σ‖x̂ − x‖²)/‖X‖` of the epoch's
/// batches) to `observer`; Ctrl-C ([`crate::engine::interrupt`]) and the time budget act between
/// batches. With a `checkpoint` path, the state is saved there every `checkpoint_every` epochs
/// and at the end (also when interrupted or out of time, mid-epoch: `load_checkpoint` and
/// `train` continue it with the same bits).
pub fn train<T: Real>(
    state: &mut TrainState<T>,
    data: &Dataset<T>,
    checkpoint: Option<&Path>,
    observer: &mut (dyn Observer + Send),
) -> Result<TrainOutcome> {
    let opts = state.options.clone();
    opts.validate(&state.model, data)?;
    linalg::with_threads(opts.threads, || {
        epochs::train_inner(state, data, checkpoint, observer)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoencoder::layers::Act;
    use crate::autoencoder::loss::{Reduction, Sparsity};
    use crate::autoencoder::model::{AeSpec, Architecture};
    use crate::engine::{Control, IterRecord, Silent};
    use faer::Mat;

    pub(super) fn shallow(k: usize, m: usize, act: Act, seed: u64) -> Autoencoder<f64> {
        let spec = AeSpec::new(Architecture::Shallow, k, m, None, act).unwrap();
        Autoencoder::new(spec, None, &mut Rng::new(seed)).unwrap()
    }

    pub(super) fn tiny_data(n: usize, m: usize, seed: u64) -> Dataset<f64> {
        let mut rng = Rng::new(seed);
        let v: Vec<f64> = (0..n * m).map(|_| rng.uniform()).collect();
        Dataset::from_row_major(n, m, &v, "tiny").unwrap()
    }

    pub(super) fn opts(epochs: usize) -> TrainOptions {
        TrainOptions {
            epochs,
            batch_size: 16,
            optimizer: OptimizerSpec::named("adam", Some(0.01)).unwrap(),
            ..TrainOptions::default()
        }
    }

    #[test]
    fn projection_keeps_the_decoder_non_negative_and_training_lowers_the_loss() {
        let data = tiny_data(100, 12, 3);
        for nonneg in [NonNeg::Project, NonNeg::None] {
            let o = TrainOptions { nonneg, ..opts(20) };
            let mut st = TrainState::new(shallow(5, 12, Act::LeakyRelu { slope: 0.1 }, 1), o);
            let mut obs = |_: &IterRecord| Control::Continue;
            train(&mut st, &data, None, &mut obs).unwrap();
            let negative_at_end = st.model.negative_decoder_fraction();
            let h = &st.history;
            assert_eq!(h.len(), 20);
            assert!(h[19].loss < h[0].loss, "{:?}", (h[0].loss, h[19].loss));
            match nonneg {
                NonNeg::Project => {
                    assert!(h.iter().all(|r| r.negative_decoder_fraction == 0.0));
                    assert!(st.model.decoder_weights().iter().all(|&w| w >= 0.0));
                }
                // Without the projection some weights do go negative (so the check above can fail).
                NonNeg::None => assert!(negative_at_end > 0.0),
            }
        }
    }

    #[test]
    fn same_seed_same_bits_with_one_and_two_threads() {
        let data = tiny_data(64, 36, 5);
        let spec = AeSpec::new(
            Architecture::Asymmetric,
            4,
            36,
            Some((6, 6)),
            Act::LeakyRelu { slope: 0.1 },
        )
        .unwrap();
        let mut data = data;
        data.image_shape = Some((6, 6));
        let run = |threads| {
            let model = Autoencoder::<f64>::new(spec.clone(), Some((6, 6)), &mut Rng::new(7)).unwrap();
            let mut st = TrainState::new(model, TrainOptions { threads, ..opts(3) });
            train(&mut st, &data, None, &mut Silent).unwrap();
            st.model.to_tensors().unwrap().0
        };
        assert_eq!(run(1), run(2));
    }

    /// f32 and f64 training agree (same seed, same initial weights up to rounding).
    #[test]
    fn f32_and_f64_training_agree() {
        let d64 = tiny_data(64, 12, 11);
        let d32 = d64.cast::<f32>();
        let o = opts(5);
        let spec = AeSpec::new(Architecture::Shallow, 4, 12, None, Act::LeakyRelu { slope: 0.1 }).unwrap();
        let mut s64 = TrainState::new(
            Autoencoder::<f64>::new(spec.clone(), None, &mut Rng::new(3)).unwrap(),
            o.clone(),
        );
        let mut s32 = TrainState::new(Autoencoder::<f32>::new(spec, None, &mut Rng::new(3)).unwrap(), o);
        train(&mut s64, &d64, None, &mut Silent).unwrap();
        train(&mut s32, &d32, None, &mut Silent).unwrap();
        for (a, b) in s64.history.iter().zip(&s32.history) {
            assert!(
                (a.loss - b.loss).abs() <= 1e-4 * a.loss,
                "{} vs {}",
                a.loss,
                b.loss
            );
        }
    }

    #[test]
    fn sigmoid_decoder_on_data_above_one_warns() {
        let mut v: Vec<f64> = (0..40 * 6).map(|i| (i % 7) as f64 / 7.0).collect();
        v[5] = 3.0;
        let data = Dataset::from_row_major(40, 6, &v, "big").unwrap();
        let mut st = TrainState::new(shallow(2, 6, Act::Sigmoid, 0), opts(1));
        let out = train(&mut st, &data, None, &mut Silent).unwrap();
        assert!(
            out.warnings.iter().any(
                |w| matches!(w, Warning::SigmoidBelowData { data_max } if *data_max == 3.0)
                    && w.to_string().contains("sigmoid decoder")
            ),
            "{:?}",
            out.warnings
        );
    }

    #[test]
    fn bad_options_are_refused_with_a_fix() {
        let data = tiny_data(20, 6, 1);
        let model = shallow(2, 6, Act::LeakyRelu { slope: 0.1 }, 0);
        let cases: Vec<(TrainOptions, &str)> = vec![
            (TrainOptions { epochs: 0, ..opts(1) }, "epochs"),
            (
                TrainOptions {
                    batch_size: 0,
                    ..opts(1)
                },
                "batch",
            ),
            (
                TrainOptions {
                    val_fraction: 1.0,
                    ..opts(1)
                },
                "invalid val_fraction",
            ),
            (
                TrainOptions {
                    patience: Some(3),
                    ..opts(1)
                },
                "add `val_fraction`",
            ),
            (
                TrainOptions {
                    loss: LossSpec {
                        reconstruction: RecLoss::Bce,
                        ..LossSpec::default()
                    },
                    ..opts(1)
                },
                "sigmoid",
            ),
        ];
        for (o, needle) in cases {
            let e = o.validate(&model, &data).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let wrong = tiny_data(20, 7, 1);
        assert!(opts(1).validate(&model, &wrong).is_err());
        let mut neg = Mat::<f64>::zeros(6, 3);
        neg[(2, 1)] = -1.0;
        let neg = Dataset::from_columns(neg, "neg");
        let e = opts(1).validate(&model, &neg).unwrap_err().to_string();
        assert!(e.contains("sample 1"), "{e}");
    }

    /// Worst, over the 16 true limb parts of swimmer, of the best cosine between the part and an
    /// atom, after training a shallow AE with the reference's LeakyReLU decoder and `sparsity`.
    fn swimmer_worst_limb_cosine(sparsity: Sparsity) -> f64 {
        let (data, parts) = crate::data::named::swimmer::<f32>();
        let k = 17;
        let spec = AeSpec::new(
            Architecture::Shallow,
            k,
            1024,
            Some((32, 32)),
            Act::LeakyRelu { slope: 0.1 },
        )
        .unwrap();
        let model = Autoencoder::<f32>::new(spec, Some((32, 32)), &mut Rng::new(0)).unwrap();
        // Four of the sixteen limb parts are in each image: target mean activation 1/4.
        let o = TrainOptions {
            epochs: 400,
            batch_size: 16,
            optimizer: OptimizerSpec::named("adam", Some(0.01)).unwrap(),
            loss: LossSpec {
                sparsity,
                reduction: Reduction::Sum,
                p: 0.25,
                beta: 1.0,
                ..LossSpec::default()
            },
            ..TrainOptions::default()
        };
        let mut st = TrainState::new(model, o);
        train(&mut st, &data, None, &mut Silent).unwrap();
        let atoms = crate::protocol::PartModel::atoms(&st.model);
        let cos = |a: &[f64], b: &[f64]| {
            let d: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let n = (a.iter().map(|x| x * x).sum::<f64>() * b.iter().map(|x| x * x).sum::<f64>()).sqrt();
            if n > 0.0 {
                d / n
            } else {
                0.0
            }
        };
        let rows: Vec<Vec<f64>> = (0..k)
            .map(|r| (0..1024).map(|j| atoms[(r, j)] as f64).collect())
            .collect();
        parts
            .limbs
            .iter()
            .map(|limb| {
                let limb: Vec<f64> = limb.iter().map(|&v| v as f64).collect();
                rows.iter().map(|a| cos(a, &limb)).fold(0.0, f64::max)
            })
            .fold(1.0, f64::min)
    }

    /// METHODS.md §6: on swimmer, a sparse auto-encoder with a non-negative decoder learns the
    /// limbs: every true limb part is matched by an atom (the torso, present in every image, goes
    /// to the decoder bias). Without the sparsity penalty the same training does not (measured:
    /// worst limb cosine 0.939 with KL, 0.796 without).
    #[test]
    fn swimmer_limbs_are_learned_by_a_sparse_nonnegative_ae() {
        let sparse = swimmer_worst_limb_cosine(Sparsity::Kl);
        let plain = swimmer_worst_limb_cosine(Sparsity::None);
        assert!(sparse >= 0.92, "worst limb cosine with KL sparsity {sparse:.3}");
        assert!(plain < sparse, "without sparsity {plain:.3}, with {sparse:.3}");
    }
}
