//! Neural NMF (METHODS.md §4.3): a stack of NNLS layers `S⁽ⁱ⁾ = q(S⁽ⁱ⁻¹⁾, A⁽ⁱ⁾)`,
//! `q(X, A) = argmin_{S ≥ 0} ‖X − AS‖²` (block principal pivoting, supports warm-started from
//! the previous epoch), trained by projected gradient descent on the `A`'s with the exact
//! derivative of `q`.
//!
//! - [`NeuralParams`]: the parameters, checked into [`ValidNeuralParams`].
//! - [`model`]: the network ([`NeuralNmf`]) and its forward pass ([`Forward`]).
//! - `grad`: the exact backward pass through the NNLS layers and the costs (internal).
//! - [`start`]: the top-down start (products of the layers at NMFs of `X`).
//! - [`train`](mod@train): the epochs as an [`engine`](crate::engine) method (history, stopping
//!   rules, warnings, Ctrl-C), plain projected gradient or Adam ([`crate::optim`]).
//!
//! Costs follow the reference code's scaling (METHODS.md §4.3, §10: the paper writes ½‖·‖²,
//! the code a mean over entries; the mean is used here so that its learning rates carry over):
//! reconstruction `(1/N)‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖²`, energy `Σ_i (1/N_i)‖S⁽ⁱ⁻¹⁾ − A⁽ⁱ⁾S⁽ⁱ⁾‖²`, plus
//! `λ·ℓ(B S⁽ᴸ⁾)` on the labeled columns (mean squared error against one-hot labels, or
//! cross-entropy of the softmax). The computation keeps METHODS.md's layout (`X` is `m × n`,
//! samples as columns); the public functions take `X` as `n × m` and give codes `n × k_i`.
//!
//! The reference code's three bugs (§4.3) are avoided: the projection onto `A ≥ 0` is applied in
//! every mode, the epoch count is the caller's in every mode, and the L2 classification loss
//! compares with one-hot labels.

pub mod checkpoint;
mod grad;
pub mod model;
mod params;
pub mod start;
pub mod train;

pub use checkpoint::NeuralCheckpoint;
pub use model::{Forward, NeuralNmf};
pub use params::{ClassLoss, Cost, NeuralParams, ValidNeuralParams};
pub use start::{top_down_start, TOP_DOWN_START_ITERATIONS};
pub use train::{
    hnmf_start, resume, train, train_checkpointed, train_from, NeuralFit, HNMF_START_ITERATIONS,
};
