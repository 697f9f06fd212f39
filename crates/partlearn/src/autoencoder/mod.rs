//! Sparse non-negative auto-encoders (METHODS.md §6): the shallow AE of §6.1 and the asymmetric
//! AE of §6.6, trained by mini-batches with the sparsity penalties of §6.3 and a non-negative
//! decoder (§6.4).
//!
//! - [`layers`]: dense, convolution, batch normalization, flatten and activations, each with a
//!   hand-derived backward pass (checked against finite differences).
//! - [`loss`]: reconstruction losses, sparsity penalties, asymmetric weight decay.
//! - the optimizers (SGD with momentum, Adam, Adadelta) and schedules are [`crate::optim`],
//!   shared with Neural NMF.
//! - [`model`]: the [`Autoencoder`] (implements [`crate::protocol::PartModel`]) and its files.
//! - [`train`](mod@train): the training epochs on the [engine](crate::engine), history, early
//!   stopping, checkpoints and resumption.

pub mod layers;
pub mod loss;
pub mod model;
pub mod train;

pub use crate::optim::{OptimizerSpec, Schedule};
pub use layers::Act;
pub use loss::{LossSpec, RecLoss, Reduction, Sparsity};
pub use model::{AeSpec, Architecture, Autoencoder};
pub use train::{load_checkpoint, train, EpochRecord, NonNeg, TrainOptions, TrainOutcome, TrainState};
