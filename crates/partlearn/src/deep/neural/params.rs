//! Neural NMF's parameters (METHODS.md §4.3), checked into [`ValidNeuralParams`] (STYLE.md,
//! "Options"): the only form [`train`](fn@super::train) accepts.

use serde::{Deserialize, Serialize};

use crate::engine::StopRules;
use crate::error::{Error, Result};
use crate::params;

/// The unsupervised part of the cost (METHODS.md §4.3, "Costs").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Cost {
    /// `(1/N)‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖²` ("Recon Loss", the unsupervised default).
    Reconstruction,
    /// `Σ_i (1/N_i)‖S⁽ⁱ⁻¹⁾ − A⁽ⁱ⁾S⁽ⁱ⁾‖²` ("Energy Loss").
    Energy,
}

impl std::str::FromStr for Cost {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "recon" | "reconstruction" => Ok(Cost::Reconstruction),
            "energy" => Ok(Cost::Energy),
            _ => Err(Error::invalid("cost", s, "use recon (reconstruction) or energy")),
        }
    }
}

/// Classification loss on the last layer (METHODS.md §4.3, "(Semi-)supervised").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ClassLoss {
    /// `(1/n_ℓ) Σ_j ‖y_j − B s_j‖²` over the labeled columns (one-hot `y`).
    L2,
    /// `(1/n_ℓ) Σ_j −log softmax(B s_j)[y_j]` over the labeled columns.
    CrossEntropy,
}

/// The short name that [`FromStr`](std::str::FromStr) reads: `l2` or `ce`.
impl std::fmt::Display for ClassLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClassLoss::L2 => "l2",
            ClassLoss::CrossEntropy => "ce",
        })
    }
}

impl std::str::FromStr for ClassLoss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "l2" => Ok(ClassLoss::L2),
            "ce" | "cross-entropy" => Ok(ClassLoss::CrossEntropy),
            _ => Err(Error::invalid("class_loss", s, "use l2 or ce (cross-entropy)")),
        }
    }
}

/// Parameters of a Neural NMF training (METHODS.md §4.3; defaults are the synthetic demo's,
/// §5.1). Build with [`NeuralParams::new`] and the setters, then
/// [`check`](NeuralParams::check).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NeuralParams {
    /// `k₀ > k₁ > … ≥ 1`: one NNLS layer per rank; `k₀ ≤ min(n_samples, n_features)`.
    pub ranks: Vec<usize>,
    /// The unsupervised part of the cost (default reconstruction).
    pub cost: Cost,
    /// Epochs (an epoch is one iteration of the engine; default 10,000).
    pub epochs: usize,
    /// Step `> 0` of the projected gradient on the `A`'s (default 1).
    pub lr: f64,
    /// Multiply the learning rates by `decay > 0` every `decay_every ≥ 1` epochs (default 1:
    /// no decay).
    pub decay: f64,
    /// See `decay` (default 1).
    pub decay_every: usize,
    /// Adam steps (then the projection) instead of plain gradient steps (default off).
    pub adam: bool,
    /// Weight `λ ≥ 0` of the classification term (supervised runs; default 1e-4).
    pub lambda: f64,
    /// Classification loss (supervised runs; default L2).
    pub class_loss: ClassLoss,
    /// Step `> 0` of the gradient steps on the classifier `B` (default 0.01).
    pub lr_class: f64,
    /// Gradient steps on `B` per epoch (default 30, the reference's).
    pub class_steps: usize,
    /// Independent starts `≥ 1` (seeds `seed`, `seed + 1`, …); the one with the lowest final cost
    /// is kept (random starts can stall in a local minimum, METHODS.md §5.3 used 10).
    #[serde(default = "one")]
    pub restarts: usize,
    /// Seed of the first start.
    pub seed: u64,
    /// Worker threads (1 = sequential, 0 = all cores).
    #[serde(skip)]
    pub threads: usize,
    /// Time budget in seconds (of every start).
    #[serde(skip)]
    pub max_seconds: Option<f64>,
    /// Windowed relative-decrease rule of [`StopRules::tol`] on the cost (0, the default, disables
    /// it: the reference trains for a fixed number of epochs).
    #[serde(default)]
    pub tol: f64,
}

fn one() -> usize {
    1
}

impl Default for NeuralParams {
    fn default() -> Self {
        NeuralParams {
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

params::setters!(NeuralParams {
    ranks: Vec<usize>,
    cost: Cost,
    epochs: usize,
    lr: f64,
    decay: f64,
    decay_every: usize,
    adam: bool,
    lambda: f64,
    class_loss: ClassLoss,
    lr_class: f64,
    class_steps: usize,
    restarts: usize,
    seed: u64,
    threads: usize,
    max_seconds: Option<f64>,
    tol: f64,
});

impl NeuralParams {
    /// The defaults with the given ranks.
    pub fn new(ranks: Vec<usize>) -> Self {
        NeuralParams {
            ranks,
            ..NeuralParams::default()
        }
    }

    /// Checks every parameter that does not depend on the data; the first rank is checked
    /// against the data when training ([`ValidNeuralParams::check_shape`]).
    pub fn check(&self) -> Result<ValidNeuralParams> {
        params::check_ranks(&self.ranks)?;
        let stop = params::stop_rules("epochs", self.epochs, self.tol, self.max_seconds)?;
        params::check_positive("lr", self.lr, "the step on the layers")?;
        params::check_positive("lr_class", self.lr_class, "the step on the classifier")?;
        params::check_positive("decay", self.decay, "the factor on the steps")?;
        params::check_at_least_one("decay_every", self.decay_every, "epochs between decays")?;
        params::check_weight("lambda", self.lambda)?;
        params::check_at_least_one("restarts", self.restarts, "starts to run")?;
        Ok(ValidNeuralParams {
            params: self.clone(),
            stop,
        })
    }

    /// [`NeuralParams::check`] and [`ValidNeuralParams::check_shape`] in one call.
    pub fn validate(&self, n_samples: usize, n_features: usize) -> Result<ValidNeuralParams> {
        let v = self.check()?;
        v.check_shape(n_samples, n_features)?;
        Ok(v)
    }
}

/// [`NeuralParams`] that passed [`NeuralParams::check`]. The fields are private;
/// [`ValidNeuralParams::params`] reads them.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidNeuralParams {
    params: NeuralParams,
    stop: StopRules,
}

impl ValidNeuralParams {
    /// The checked parameters.
    pub fn params(&self) -> &NeuralParams {
        &self.params
    }

    /// The engine's stopping rules of these parameters (an epoch is an iteration).
    pub fn stop_rules(&self) -> &StopRules {
        &self.stop
    }

    /// Checks the ranks against a data shape: `k₀ ≤ min(n_samples, n_features)`.
    pub fn check_shape(&self, n_samples: usize, n_features: usize) -> Result<()> {
        params::check_not_empty(n_samples, n_features)?;
        crate::deep::hnmf::check_ranks(&self.params.ranks, n_samples, n_features)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each bad parameter is refused by `check` (or `check_shape`) under its library name.
    #[test]
    fn each_bad_parameter_is_named() {
        let ok = NeuralParams::new(vec![4, 2]);
        assert!(ok.validate(6, 5).is_ok());
        let cases: Vec<(NeuralParams, &str)> = vec![
            (ok.clone().ranks(vec![]), "ranks"),
            (ok.clone().ranks(vec![4, 4]), "ranks"),
            (ok.clone().ranks(vec![3, 0]), "ranks"),
            (ok.clone().epochs(0), "epochs"),
            (ok.clone().tol(-1.0), "tol"),
            (ok.clone().tol(f64::NAN), "tol"),
            (ok.clone().max_seconds(Some(0.0)), "max_seconds"),
            (ok.clone().lr(0.0), "lr"),
            (ok.clone().lr(f64::INFINITY), "lr"),
            (ok.clone().lr_class(-1.0), "lr_class"),
            (ok.clone().decay(0.0), "decay"),
            (ok.clone().decay_every(0), "decay_every"),
            (ok.clone().lambda(-1.0), "lambda"),
            (ok.clone().lambda(f64::NAN), "lambda"),
            (ok.clone().restarts(0), "restarts"),
        ];
        for (p, name) in cases {
            match p.check() {
                Err(Error::InvalidOption { option, .. }) => assert_eq!(option, name, "{p:?}"),
                other => panic!("{p:?}: {other:?}"),
            }
        }
        // The first rank must fit the data (min(6, 5) = 5).
        let big = ok.clone().ranks(vec![6]);
        assert!(big.check().is_ok());
        assert!(matches!(
            big.validate(6, 5),
            Err(Error::InvalidOption { option: "ranks", .. })
        ));
        assert!(matches!(
            "kl".parse::<Cost>(),
            Err(Error::InvalidOption { option: "cost", .. })
        ));
        assert_eq!("recon".parse::<Cost>().unwrap(), Cost::Reconstruction);
        for c in [ClassLoss::L2, ClassLoss::CrossEntropy] {
            assert_eq!(c.to_string().parse::<ClassLoss>().unwrap(), c);
        }
        assert_eq!(
            "cross-entropy".parse::<ClassLoss>().unwrap(),
            ClassLoss::CrossEntropy
        );
        assert!(matches!(
            "hinge".parse::<ClassLoss>(),
            Err(Error::InvalidOption {
                option: "class_loss",
                ..
            })
        ));
    }

    #[test]
    fn an_epoch_is_an_iteration_of_the_stopping_rules() {
        let v = NeuralParams::new(vec![2])
            .epochs(7)
            .tol(1e-3)
            .max_seconds(Some(1.0))
            .check()
            .unwrap();
        let s = v.stop_rules();
        assert_eq!((s.max_iter, s.tol, s.max_seconds), (7, 1e-3, Some(1.0)));
    }
}
