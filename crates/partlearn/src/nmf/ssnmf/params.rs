//! SSNMF's parameters (METHODS.md §3), checked into [`ValidSsnmfParams`] (STYLE.md, "Options"):
//! the only form [`super::fit_ssnmf`] accepts.

use serde::{Deserialize, Serialize};

use crate::engine::StopRules;
use crate::error::{Error, Result};
use crate::params;

/// The divergence of one SSNMF term (METHODS.md §3: models 3–6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Divergence {
    /// `‖P − Q‖²_F`.
    Frobenius,
    /// `Σ P log(P/Q) − P + Q` (generalized Kullback–Leibler, the I-divergence).
    Kl,
}

impl std::str::FromStr for Divergence {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "frobenius" | "fro" => Ok(Divergence::Frobenius),
            "kl" | "i-divergence" | "kullback-leibler" => Ok(Divergence::Kl),
            _ => Err(Error::invalid("divergence", s, "use frobenius or kl")),
        }
    }
}

/// Parameters of an SSNMF fit, `min D₁(W⊙X ‖ W⊙AS) + λ·D₂(L⊙Y ‖ L⊙BS)` (METHODS.md §3; defaults
/// are the reference ssnmf code's). Build with [`SsnmfParams::new`] and the setters, then
/// [`check`](SsnmfParams::check).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SsnmfParams {
    /// Rank `k` of the dictionary `A` (`1 ≤ k ≤ min(n_samples, n_features)`).
    pub k: usize,
    /// Weight `λ ≥ 0` of the label term (default 1).
    pub lambda: f64,
    /// `D₁`, the divergence of the data term (default Frobenius).
    pub data_loss: Divergence,
    /// `D₂`, the divergence of the label term (default Frobenius).
    pub label_loss: Divergence,
    /// Maximum number of iterations (each updates A, B, S once; default 1000).
    pub max_iter: usize,
    /// Windowed relative-decrease rule of [`StopRules::tol`] (default 1e-4, ssnmf's; 0 disables).
    pub tol: f64,
    /// Time budget in seconds.
    #[serde(default)]
    pub max_seconds: Option<f64>,
    /// Seed of the starting factors `A, S, B ~ U[0, 1)`.
    pub seed: u64,
    /// Worker threads of the products (1 = sequential, 0 = all cores).
    #[serde(skip)]
    pub threads: usize,
}

impl Default for SsnmfParams {
    fn default() -> Self {
        SsnmfParams {
            k: 10,
            lambda: 1.0,
            data_loss: Divergence::Frobenius,
            label_loss: Divergence::Frobenius,
            max_iter: 1000,
            tol: 1e-4,
            max_seconds: None,
            seed: 0,
            threads: 1,
        }
    }
}

params::setters!(SsnmfParams {
    k: usize,
    lambda: f64,
    data_loss: Divergence,
    label_loss: Divergence,
    max_iter: usize,
    tol: f64,
    max_seconds: Option<f64>,
    seed: u64,
    threads: usize,
});

impl SsnmfParams {
    /// The defaults with rank `k`.
    pub fn new(k: usize) -> Self {
        SsnmfParams {
            k,
            ..SsnmfParams::default()
        }
    }

    /// Checks every parameter that does not depend on the data; the shape is checked when
    /// fitting ([`ValidSsnmfParams::check_shape`]).
    pub fn check(&self) -> Result<ValidSsnmfParams> {
        params::check_k_positive(self.k)?;
        params::check_weight("lambda", self.lambda)?;
        let stop = params::stop_rules("max_iter", self.max_iter, self.tol, self.max_seconds)?;
        Ok(ValidSsnmfParams {
            params: self.clone(),
            stop,
        })
    }

    /// [`SsnmfParams::check`] and [`ValidSsnmfParams::check_shape`] in one call.
    pub fn validate(&self, n_samples: usize, n_features: usize) -> Result<ValidSsnmfParams> {
        let v = self.check()?;
        v.check_shape(n_samples, n_features)?;
        Ok(v)
    }
}

/// [`SsnmfParams`] that passed [`SsnmfParams::check`]. The fields are private;
/// [`ValidSsnmfParams::params`] reads them.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidSsnmfParams {
    params: SsnmfParams,
    stop: StopRules,
}

impl ValidSsnmfParams {
    /// The checked parameters.
    pub fn params(&self) -> &SsnmfParams {
        &self.params
    }

    /// The engine's stopping rules of these parameters.
    pub fn stop_rules(&self) -> &StopRules {
        &self.stop
    }

    /// Checks the parameters against a data shape: `k ≤ min(n_samples, n_features)`.
    pub fn check_shape(&self, n_samples: usize, n_features: usize) -> Result<()> {
        params::check_not_empty(n_samples, n_features)?;
        params::check_rank_fits("k", self.params.k, self.params.k, n_samples, n_features)
    }

    /// The same parameters with another rank `k ≥ 1` (the rank of the layer SSNMF replaces,
    /// [`crate::deep::hnmf::ssnmf_last_layer`]) and time budget.
    pub(crate) fn for_layer(&self, k: usize, max_seconds: Option<f64>) -> Result<ValidSsnmfParams> {
        self.params.clone().k(k).max_seconds(max_seconds).check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option_of(r: Result<ValidSsnmfParams>) -> &'static str {
        match r {
            Err(Error::InvalidOption { option, .. }) => option,
            other => panic!("expected an invalid option, got {other:?}"),
        }
    }

    /// Each bad parameter is refused by `check` (or `check_shape`) under its library name.
    #[test]
    fn each_bad_parameter_is_named() {
        let ok = SsnmfParams::new(4);
        assert!(ok.validate(90, 87).is_ok());
        assert_eq!(option_of(ok.clone().k(0).check()), "k");
        assert_eq!(option_of(ok.clone().k(88).validate(90, 87)), "k");
        for lambda in [-1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(option_of(ok.clone().lambda(lambda).check()), "lambda");
        }
        assert_eq!(option_of(ok.clone().max_iter(0).check()), "max_iter");
        for tol in [-1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(option_of(ok.clone().tol(tol).check()), "tol");
        }
        assert_eq!(
            option_of(ok.clone().max_seconds(Some(0.0)).check()),
            "max_seconds"
        );
        assert!(matches!(ok.validate(0, 87), Err(Error::EmptyData { .. })));
        assert!(matches!(
            "hellinger".parse::<Divergence>(),
            Err(Error::InvalidOption {
                option: "divergence",
                ..
            })
        ));
    }

    #[test]
    fn the_stopping_rules_are_the_parameters() {
        let v = SsnmfParams::new(3)
            .max_iter(7)
            .tol(0.0)
            .max_seconds(Some(2.0))
            .check()
            .unwrap();
        let s = v.stop_rules();
        assert_eq!((s.max_iter, s.tol, s.max_seconds), (7, 0.0, Some(2.0)));
        assert_eq!(v.params().k, 3);
        let l = v.for_layer(2, None).unwrap();
        assert_eq!((l.params().k, l.stop_rules().max_seconds), (2, None));
    }
}
