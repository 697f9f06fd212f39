//! Neural NMF (METHODS.md §4.3): a stack of NNLS layers `S⁽ⁱ⁾ = q(S⁽ⁱ⁻¹⁾, A⁽ⁱ⁾)`,
//! `q(X, A) = argmin_{S ≥ 0} ‖X − AS‖²` (block principal pivoting, supports warm-started from
//! the previous epoch), trained by projected gradient descent on the `A`'s with the exact
//! derivative of `q`.
//!
//! - [`model`]: the network ([`NeuralNmf`]) and its forward pass ([`Forward`]).
//! - [`grad`]: the exact backward pass through the NNLS layers and the costs.
//! - [`train`](mod@train): the epochs as an [`engine`](crate::engine) method (history, stopping
//!   rules, warnings, Ctrl-C), plain projected gradient or Adam ([`crate::optim`]).
//!
//! Costs follow the reference code's scaling (METHODS.md §4.3, §10: the paper writes ½‖·‖²,
//! the code a mean over entries; the mean is used here so that its learning rates carry over):
//! reconstruction `(1/N)‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖²`, energy `Σ_i (1/N_i)‖S⁽ⁱ⁻¹⁾ − A⁽ⁱ⁾S⁽ⁱ⁾‖²`, plus
//! `λ·ℓ(B S⁽ᴸ⁾)` on the labeled columns (mean squared error against one-hot labels, or
//! cross-entropy of the softmax). Samples are columns here (`X` is `m × n`), as in METHODS.md.
//!
//! The reference code's three bugs (§4.3) are avoided: the projection onto `A ≥ 0` is applied in
//! every mode, the epoch count is the caller's in every mode, and the L2 classification loss
//! compares with one-hot labels.

pub mod grad;
pub mod model;
pub mod train;

use serde::{Deserialize, Serialize};

pub use grad::{layer_backward, Gradient};
pub use model::{Forward, NeuralNmf};
pub use train::{train, train_from, NeuralFit};

use crate::data::labels::Labels;
use crate::engine::StopRules;
use crate::error::{Error, Result};

/// The unsupervised part of the cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cost {
    /// `(1/N)‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖²` ("Recon Loss", the unsupervised default).
    Reconstruction,
    /// `Σ_i (1/N_i)‖S⁽ⁱ⁻¹⁾ − A⁽ⁱ⁾S⁽ⁱ⁾‖²` ("Energy Loss").
    Energy,
}

/// Classification loss on the last layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassLoss {
    /// `(1/n_ℓ) Σ_j ‖y_j − B s_j‖²` over the labeled columns (one-hot `y`).
    L2,
    /// `(1/n_ℓ) Σ_j −log softmax(B s_j)[y_j]` over the labeled columns.
    CrossEntropy,
}

/// Training options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuralOptions {
    /// `k₀ > k₁ > …`: one NNLS layer per rank.
    pub ranks: Vec<usize>,
    pub cost: Cost,
    pub epochs: usize,
    /// Step of the projected gradient on the `A`'s.
    pub lr: f64,
    /// Multiply the learning rates by `decay` every `decay_every` epochs.
    pub decay: f64,
    pub decay_every: usize,
    /// Adam steps (then the projection) instead of plain gradient steps.
    pub adam: bool,
    /// Weight `λ` of the classification term (supervised runs).
    pub lambda: f64,
    pub class_loss: ClassLoss,
    /// Step and number of gradient steps on the classifier `B` per epoch (the reference: 30).
    pub lr_class: f64,
    pub class_steps: usize,
    /// Independent starts (seeds `seed`, `seed + 1`, …); the one with the lowest final cost is
    /// kept (random starts can stall in a local minimum, METHODS.md §5.3 used 10).
    #[serde(default = "one")]
    pub restarts: usize,
    pub seed: u64,
    #[serde(skip)]
    pub threads: usize,
    #[serde(skip)]
    pub max_seconds: Option<f64>,
    /// Windowed relative-decrease rule of [`StopRules`] on the cost (0, the default, disables
    /// it: the reference trains for a fixed number of epochs).
    #[serde(default)]
    pub tol: f64,
}

impl Default for NeuralOptions {
    fn default() -> Self {
        NeuralOptions {
            ranks: vec![9, 4, 2],
            cost: Cost::Reconstruction,
            epochs: 10_000,
            lr: 1.0,
            decay: 1.0,
            decay_every: 1,
            adam: false,
            lambda: 1e-4,
            class_loss: ClassLoss::L2,
            lr_class: 0.01,
            class_steps: 30,
            restarts: 1,
            seed: 0,
            threads: 1,
            max_seconds: None,
            tol: 0.0,
        }
    }
}

impl NeuralOptions {
    /// The engine's stopping rules of these options (an epoch is an iteration).
    pub fn stop_rules(&self) -> StopRules {
        StopRules::max_iter(self.epochs)
            .with_tol(self.tol)
            .with_max_seconds(self.max_seconds)
    }

    /// Checks the options for data with `m` features and `n` samples (and the labels, if
    /// supervised).
    pub fn validate(&self, m: usize, n: usize, sup: Option<&Labels>) -> Result<()> {
        if self.ranks.is_empty() {
            return Err(Error::invalid(
                "ranks",
                "[]",
                "give at least one rank, e.g. `ranks = 9,4,2`",
            ));
        }
        let mut prev = m.min(n);
        for (i, &k) in self.ranks.iter().enumerate() {
            if k == 0 || k > prev || (i > 0 && k >= self.ranks[i - 1]) {
                return Err(Error::invalid(
                    "ranks",
                    format!("{:?}", self.ranks),
                    format!(
                        "ranks must decrease and start at most min(n_samples, n_features) = {}",
                        m.min(n)
                    ),
                ));
            }
            prev = k;
        }
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", 0, "train for at least one epoch"));
        }
        for (name, v) in [
            ("lr", self.lr),
            ("lr_class", self.lr_class),
            ("decay", self.decay),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(name, v, "must be a finite number > 0"));
            }
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(Error::invalid("lambda", self.lambda, "must be ≥ 0"));
        }
        if self.decay_every == 0 || self.restarts == 0 {
            let name = if self.decay_every == 0 {
                "decay_every"
            } else {
                "restarts"
            };
            return Err(Error::invalid(name, 0, "must be ≥ 1"));
        }
        self.stop_rules().validate()?;
        if let Some(s) = sup {
            s.check(n)?;
        }
        Ok(())
    }
}

fn one() -> usize {
    1
}
