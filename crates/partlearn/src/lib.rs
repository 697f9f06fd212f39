//! partlearn: part-based representations of non-negative data.
//!
//! The library does all the mathematics and never prints; the `partlearn` binary maps flags to
//! calls of this crate. Data flows as follows:
//!
//! - [`data`] turns a spec (`fashion-mnist:train`, `swimmer`, a `.npy` path…) into a validated
//!   [`data::Dataset`] (samples are rows; stored samples-as-columns for the solvers).
//! - [`nmf`] fits non-negative matrix factorizations (initializations, MU, HALS), reporting each
//!   iteration to an [`engine::Observer`]; the fitted [`nmf::NmfModel`] encodes new data.
//! - [`autoencoder`] trains sparse non-negative auto-encoders (shallow and asymmetric) by
//!   mini-batches; their decoder weights are the atoms.
//! - [`linalg`] is the one place that calls faer's GEMM, SVD and Cholesky.
//! - [`io`] writes and reads model files (safetensors + JSON), `.npy` arrays and run folders,
//!   always atomically; [`figures`] draws atom grids and reconstruction panels as PNG.
//!
//! Conventions: samples are rows in every public API (`X` is `n_samples × n_features`, codes
//! `n × k`, atoms `k × n_features`); METHODS.md writes samples as columns, and the solvers work on
//! that transposed layout internally. One seeded [`rng::Rng`] drives every random choice.

pub mod autoencoder;
pub mod bench;
pub mod data;
pub mod deep;
pub mod engine;
pub mod error;
pub mod eval;
pub mod figures;
pub mod io;
pub mod linalg;
pub mod nmf;
pub mod npy;
pub mod optim;
pub mod plot;
pub mod protocol;
pub mod real;
pub mod report;
pub mod rng;
pub mod sparseness;
pub mod sweep;

pub use error::{Error, Result};
pub use real::Real;
pub use rng::Rng;
