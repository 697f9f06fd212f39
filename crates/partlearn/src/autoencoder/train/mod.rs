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
mod update;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use batch::PARTS as BATCH_PARTS;
pub use checkpoint::{checkpoint_bytes, checkpoint_from_bytes, load_checkpoint, CHECKPOINT_KEY};

use super::loss::LossTerms;
use super::model::{AeSpec, Autoencoder};
use super::params::{n_validation, ValidAeParams};
use crate::data::Dataset;
use crate::engine::{Observer, Plateau, StopReason, Warning};
use crate::error::{Error, Result};
use crate::linalg;
use crate::optim::Optimizer;
use crate::real::Real;
use crate::rng::Rng;

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
    /// Its reconstruction term (METHODS.md §6.2).
    pub reconstruction: f64,
    /// Its sparsity term, `β` times the penalty (§6.3).
    pub sparsity: f64,
    /// Its weight-decay term (§6.5).
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
pub(crate) struct EpochSums {
    /// Samples seen.
    pub samples: usize,
    /// Loss terms, each weighted by its batch's size.
    pub terms: LossTerms,
    /// Code activations summed over samples and units.
    pub activation: f64,
}

/// Everything a training run needs to continue: the model, the optimizer's state, the checked
/// parameters, where it stands, and the history.
#[derive(Clone, Debug)]
pub struct TrainState<T: Real> {
    /// The model as trained so far.
    pub model: Autoencoder<T>,
    /// The optimizer's state (moments, step count).
    pub(crate) optimizer: Optimizer<T>,
    params: ValidAeParams,
    /// Completed epochs.
    pub epoch: usize,
    /// Batches done in the epoch in progress.
    pub batch: usize,
    /// Sums over the batches done in the epoch in progress.
    pub(crate) sums: EpochSums,
    /// One record per completed epoch.
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
    /// Why training stopped.
    pub stop_reason: StopReason,
    /// E.g. the epochs ran out before the tolerance was met.
    pub warnings: Vec<Warning>,
    /// Seconds of training (all invocations).
    pub seconds: f64,
}

impl<T: Real> TrainState<T> {
    /// A fresh state for training on `data`: the model of `params` (its architecture, `k` and
    /// decoder activation, for `data`'s number of features and image shape) initialized from
    /// `params.seed` (Glorot-uniform weights, zero biases), zero optimizer state.
    pub fn init(params: ValidAeParams, data: &Dataset<T>) -> Result<Self> {
        let p = params.params();
        let spec = AeSpec::new(
            p.architecture,
            p.k,
            data.n_features(),
            data.image_shape,
            p.decoder_activation,
        )?;
        // Before allocating: the weights, their gradients, the optimizer's moments, the best
        // epoch's copy and the model file's tensors are about 16 weight-sized buffers (measured:
        // `-k 100000` on 1,024 features reached 7.7 GB after 19 buffers of 0.41 GB).
        let values = spec
            .n_values()
            .ok_or_else(|| Error::invalid("k", p.k, "the network's size overflows; lower it"))?;
        let bytes = 16.0 * values as f64 * std::mem::size_of::<T>() as f64;
        crate::linalg::check_memory("k", p.k, bytes)?;
        let model = Autoencoder::new(spec, data.image_shape, &mut Rng::new(p.seed))?;
        TrainState::new(model, params)
    }

    /// A fresh state from a given model (e.g. initialized otherwise), zero optimizer state. The
    /// model must have the architecture, `k` and decoder activation of `params`.
    pub fn new(model: Autoencoder<T>, params: ValidAeParams) -> Result<Self> {
        let (p, spec) = (params.params(), &model.spec);
        let mismatch = |name: &'static str, ours: String, model: String| {
            Err(Error::invalid(
                name,
                ours,
                format!("the model has {model}; build the model from these parameters (TrainState::init)"),
            ))
        };
        if spec.architecture != p.architecture {
            return mismatch(
                "architecture",
                p.architecture.kind().into(),
                spec.architecture.kind().into(),
            );
        }
        if spec.k != p.k {
            return mismatch("k", p.k.to_string(), spec.k.to_string());
        }
        if spec.decoder_activation != p.decoder_activation {
            return mismatch(
                "decoder_activation",
                p.decoder_activation.name(),
                spec.decoder_activation.name(),
            );
        }
        let sizes: Vec<usize> = trainable(&model).map(|t| t.len()).collect();
        Ok(TrainState {
            optimizer: Optimizer::new(p.optimizer, &sizes),
            model,
            params,
            epoch: 0,
            batch: 0,
            sums: EpochSums::default(),
            history: Vec::new(),
            plateau: None,
            best_weights: None,
            seconds: 0.0,
        })
    }

    /// The parameters of this run.
    pub fn params(&self) -> &ValidAeParams {
        &self.params
    }

    /// Continues the run with `params`, which may differ from the run's only in what a resumed
    /// invocation chooses (`epochs`, `tol`, `threads`, `max_seconds`); any other difference is
    /// refused, naming the parameter.
    pub fn set_params(&mut self, params: ValidAeParams) -> Result<()> {
        if let Some(e) = params.fixed_difference(&self.params) {
            return Err(e);
        }
        self.params = params;
        Ok(())
    }

    /// Checks `data` for training this state: the model's number of features, then
    /// [`ValidAeParams::check_data`].
    pub fn check_data(&self, data: &Dataset<T>) -> Result<()> {
        let m = self.model.spec.n_features;
        if data.n_features() != m {
            return Err(Error::ShapeMismatch {
                what: "data".into(),
                expected: format!("n × {m}"),
                found: format!("{} × {}", data.n_samples(), data.n_features()),
                hint: "train (or resume) on data with the model's number of features".into(),
            });
        }
        self.params.check_data(data)
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

/// Trains `state` on `data` (checked by [`TrainState::check_data`]) until its epochs are done or
/// a stopping rule of [`ValidAeParams::stop_rules`] fires, reporting every batch (`on_progress`) and epoch
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
    state.check_data(data)?;
    linalg::with_threads(state.params.params().threads, || {
        epochs::train_inner(state, data, checkpoint, None, observer)
    })?
}

/// [`train`] for at most `epochs` more epochs (an epoch in progress counts as the first): the
/// incremental training of a `partial_fit`, one call per batch of epochs, without a checkpoint
/// file. The run's total number of epochs (the horizon of the cosine schedule) stays as it is
/// while these epochs fit in it, and otherwise grows to the epochs done at the end of the call.
/// So `n` calls of one epoch give the same bits as one [`train`] of `n` epochs from the same
/// state, whatever the optimizer and schedule. Reaching `epochs` is not the end of the run: it
/// gives no `max_iter` warning (the run's total still does).
pub fn train_epochs<T: Real>(
    state: &mut TrainState<T>,
    data: &Dataset<T>,
    epochs: usize,
    observer: &mut (dyn Observer + Send),
) -> Result<TrainOutcome> {
    crate::params::check_at_least_one("epochs", epochs, "train for at least one epoch")?;
    state.check_data(data)?;
    let end = state.epoch + epochs;
    if end > state.params.params().epochs {
        state.params = state.params.params().clone().epochs(end).check()?;
    }
    linalg::with_threads(state.params.params().threads, || {
        epochs::train_inner(state, data, None, Some(end), observer)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoencoder::layers::Act;
    use crate::autoencoder::loss::{RecLoss, Reduction, Sparsity};
    use crate::autoencoder::model::{AeSpec, Architecture};
    use crate::autoencoder::params::{AeParams, NonNeg};
    use crate::engine::{Control, IterRecord, Silent};
    use crate::optim::OptimizerSpec;
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

    pub(super) fn opts(epochs: usize) -> AeParams {
        AeParams::default()
            .epochs(epochs)
            .batch_size(16)
            .optimizer(OptimizerSpec::named("adam", Some(0.01)).unwrap())
    }

    /// A fresh state for `model` trained with `p` (its model parameters taken from `model`).
    pub(super) fn state<T: Real>(model: Autoencoder<T>, p: AeParams) -> TrainState<T> {
        let s = &model.spec;
        let p = p
            .architecture(s.architecture)
            .k(s.k)
            .decoder_activation(s.decoder_activation);
        TrainState::new(model, p.check().unwrap()).unwrap()
    }

    #[test]
    fn projection_keeps_the_decoder_non_negative_and_training_lowers_the_loss() {
        let data = tiny_data(100, 12, 3);
        for nonneg in [NonNeg::Project, NonNeg::None] {
            let o = opts(20).nonneg(nonneg);
            let mut st = state(shallow(5, 12, Act::LeakyRelu { slope: 0.1 }, 1), o);
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
            let mut st = state(model, opts(3).threads(threads));
            train(&mut st, &data, None, &mut Silent).unwrap();
            st.model.to_tensors().unwrap().0
        };
        assert_eq!(run(1), run(2));
    }

    /// At the reference sizes (28 × 28 images, the shallow 784-100-784 and the asymmetric AE)
    /// the parallel passes split the large tensors (optimizer steps, gradient sums, activations,
    /// biases, batch normalization): 1 and 2 threads still give the same bits, with every
    /// optimizer.
    #[test]
    fn one_and_two_threads_give_the_same_bits_at_the_reference_sizes() {
        let mut data = tiny_data(40, 784, 13).cast::<f32>();
        data.image_shape = Some((28, 28));
        for (arch, k, optimizer) in [
            (Architecture::Shallow, 100, "adadelta"),
            (Architecture::Shallow, 100, "sgd"),
            (Architecture::Asymmetric, 8, "adam"),
        ] {
            let spec = AeSpec::new(arch, k, 784, Some((28, 28)), Act::LeakyRelu { slope: 0.1 }).unwrap();
            let run = |threads| {
                let model = Autoencoder::<f32>::new(spec.clone(), Some((28, 28)), &mut Rng::new(5)).unwrap();
                let o = opts(1)
                    .batch_size(20)
                    .optimizer(OptimizerSpec::named(optimizer, None).unwrap())
                    .threads(threads);
                let mut st = state(model, o);
                train(&mut st, &data, None, &mut Silent).unwrap();
                (st.model.to_tensors().unwrap().0, st.history[0].loss.to_bits())
            };
            let (one, two) = (run(1), run(2));
            assert!(one == two, "{arch:?} with {optimizer}: 1 and 2 threads differ");
        }
    }

    /// f32 and f64 training agree (same seed, same initial weights up to rounding).
    #[test]
    fn f32_and_f64_training_agree() {
        let d64 = tiny_data(64, 12, 11);
        let d32 = d64.cast::<f32>();
        let o = opts(5);
        let spec = AeSpec::new(Architecture::Shallow, 4, 12, None, Act::LeakyRelu { slope: 0.1 }).unwrap();
        let mut s64 = state(
            Autoencoder::<f64>::new(spec.clone(), None, &mut Rng::new(3)).unwrap(),
            o.clone(),
        );
        let mut s32 = state(Autoencoder::<f32>::new(spec, None, &mut Rng::new(3)).unwrap(), o);
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
        let mut st = state(shallow(2, 6, Act::Sigmoid, 0), opts(1));
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

    /// Bad parameters are refused before training, by `check` or (those that depend on the data)
    /// by `train`, with a message that names the parameter and the fix.
    #[test]
    fn bad_options_are_refused_with_a_fix() {
        let data = tiny_data(20, 6, 1);
        let model = shallow(2, 6, Act::LeakyRelu { slope: 0.1 }, 0);
        let cases: Vec<(AeParams, &str)> = vec![
            (opts(1).epochs(0), "epochs"),
            (opts(1).batch_size(0), "batch_size"),
            (opts(1).val_fraction(1.0), "val_fraction"),
            (opts(1).patience(Some(3)), "`val_fraction`"),
            (opts(1).reconstruction(RecLoss::Bce), "sigmoid"),
        ];
        for (o, needle) in cases {
            let e = o
                .k(2)
                .check()
                .and_then(|v| train(&mut TrainState::new(model.clone(), v)?, &data, None, &mut Silent))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let mut st = state(model, opts(1));
        let wrong = tiny_data(20, 7, 1);
        assert!(train(&mut st, &wrong, None, &mut Silent).is_err());
        let mut neg = Mat::<f64>::zeros(6, 3);
        neg[(2, 1)] = -1.0;
        let neg = Dataset::from_columns(neg, "neg");
        let e = train(&mut st, &neg, None, &mut Silent).unwrap_err().to_string();
        assert!(e.contains("sample 1"), "{e}");
        assert!(st.history.is_empty());
        // A model that does not match the parameters is refused.
        let e = TrainState::new(shallow(3, 6, Act::Sigmoid, 0), opts(1).k(2).check().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid k") && e.contains("TrainState::init"), "{e}");
    }

    /// `init` builds the model of the parameters from their seed: the same state as building it
    /// by hand.
    #[test]
    fn init_builds_the_model_of_the_parameters() {
        let data = tiny_data(30, 6, 2);
        let p = opts(2).k(3).decoder_activation(Act::Sigmoid).seed(5);
        let mut a = TrainState::init(p.check().unwrap(), &data).unwrap();
        let mut b = state(shallow(3, 6, Act::Sigmoid, 5), p);
        train(&mut a, &data, None, &mut Silent).unwrap();
        train(&mut b, &data, None, &mut Silent).unwrap();
        assert_eq!(a.model.to_tensors().unwrap().0, b.model.to_tensors().unwrap().0);
        // The asymmetric encoder needs images of n_features pixels.
        let e = TrainState::<f64>::init(
            opts(1).architecture(Architecture::Asymmetric).check().unwrap(),
            &data,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.contains("invalid architecture") && e.contains("image data"),
            "{e}"
        );
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
        let o = opts(400)
            .sparsity(sparsity)
            .reduction(Reduction::Sum)
            .p(0.25)
            .beta(1.0);
        let mut st = state(model, o);
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
