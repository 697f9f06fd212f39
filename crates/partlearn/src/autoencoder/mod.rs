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
//! - [`params`]: [`AeParams`] (model, loss, optimizer, training loop), checked into
//!   [`ValidAeParams`], the only form training accepts.
//! - [`train`](mod@train): the training epochs on the [engine](crate::engine), history, early
//!   stopping, checkpoints and resumption.
//!
//! # Examples
//!
//! A shallow AE (§6.1) with a code of 4 units, trained for 2 epochs on 40 samples of 16 values,
//! then encoding them:
//!
//! ```
//! use partlearn::autoencoder::{self, AeParams, TrainState};
//! use partlearn::data::Dataset;
//! use partlearn::engine::Silent;
//! use partlearn::protocol::PartModel;
//!
//! let values: Vec<f64> = (0..40 * 16).map(|i| (i * 7 % 11) as f64 / 10.0).collect();
//! let data = Dataset::from_row_major(40, 16, &values, "tiny")?;
//! let params = AeParams::new(4).epochs(2).batch_size(8).check()?;
//! let mut state = TrainState::init(params, &data)?;
//! let outcome = autoencoder::train(&mut state, &data, None, &mut Silent)?;
//! assert_eq!(state.history.len(), 2);
//! let codes = state.model.encode(data.x(), 1)?; // sigmoid codes, 40 × 4
//! assert_eq!((codes.nrows(), codes.ncols()), (40, 4));
//! assert!(outcome.warnings.is_empty());
//! # Ok::<(), partlearn::Error>(())
//! ```
//!
//! The asymmetric AE (§6.6): the convolutional encoder needs images (here 24 of 8 × 8 pixels);
//! Adam, a held-out fifth for the validation MSE, and one epoch:
//!
//! ```
//! use partlearn::autoencoder::{self, AeParams, Architecture, OptimizerKind, OptimizerSpec, TrainState};
//! use partlearn::data::Dataset;
//! use partlearn::engine::Silent;
//! use partlearn::protocol::PartModel;
//!
//! let values: Vec<f32> = (0..24 * 64).map(|i| (i * 5 % 13) as f32 / 12.0).collect();
//! let images = Dataset::from_row_major(24, 64, &values, "tiny")?.with_image_shape(8, 8)?;
//! let params = AeParams::new(3)
//!     .architecture(Architecture::Asymmetric)
//!     .optimizer(OptimizerSpec::new(OptimizerKind::Adam, Some(0.01)))
//!     .val_fraction(0.2)
//!     .epochs(1)
//!     .batch_size(8)
//!     .check()?;
//! let mut state = TrainState::init(params, &images)?;
//! autoencoder::train(&mut state, &images, None, &mut Silent)?;
//! assert!(state.history[0].val_mse.is_some());
//! let codes = state.model.encode(images.x(), 1)?;
//! assert_eq!((codes.nrows(), codes.ncols()), (24, 3));
//! # Ok::<(), partlearn::Error>(())
//! ```
//!
//! Invalid parameters are refused by `check`, naming the parameter:
//!
//! ```
//! use partlearn::autoencoder::AeParams;
//!
//! let e = AeParams::new(4).val_fraction(1.0).check().unwrap_err();
//! assert!(matches!(e, partlearn::Error::InvalidOption { option: "val_fraction", .. }));
//! ```

pub mod layers;
pub mod loss;
pub mod model;
pub mod params;
pub mod train;

pub use crate::optim::{OptimizerKind, OptimizerSpec, Schedule};
pub use layers::Act;
pub use loss::{LossSpec, RecLoss, Reduction, Sparsity};
pub use model::{AeSpec, Architecture, Autoencoder};
pub use params::{AeParams, NonNeg, ValidAeParams};
pub use train::{
    checkpoint_bytes, checkpoint_from_bytes, load_checkpoint, train, train_epochs, EpochRecord, TrainOutcome,
    TrainState,
};
