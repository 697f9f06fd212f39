//! Auto-encoder parameters (METHODS.md §6), checked into [`ValidAeParams`] (STYLE.md,
//! "Options"): the model (encoder architecture §6.1/§6.6, code size `k`, decoder activation),
//! the loss (§6.2–§6.4), the optimizer and its schedule, and the training loop (epochs,
//! mini-batches, validation split, early stopping, checkpoints, §6.5). What depends on the data
//! is checked when training starts ([`ValidAeParams::check_data`]).

use serde::{Deserialize, Serialize};

use super::layers::Act;
use super::loss::{LossSpec, RecLoss, Reduction, Sparsity};
use super::model::Architecture;
use crate::data::Dataset;
use crate::engine::StopRules;
use crate::error::{Error, Result};
use crate::optim::{OptimizerSpec, Schedule};
use crate::params;
use crate::real::Real;

/// How the decoder is kept non-negative (§6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
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

/// Parameters of a shallow (§6.1) or asymmetric (§6.6) non-negative auto-encoder and of its
/// training. One type serves both: they share every loss, optimizer and training parameter and
/// differ only in the encoder, chosen by `architecture` (a pair of types would repeat all the
/// rest). Build with [`AeParams::new`] and the setters, then [`AeParams::check`]; the serialized
/// form is the `options` of `run.json` and of checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AeParams {
    /// The encoder: one dense layer (§6.1, default) or the convolutional encoder (§6.6, needs
    /// image data).
    pub architecture: Architecture,
    /// Code size (number of atoms), `≥ 1`.
    pub k: usize,
    /// Decoder activation `σ_d` (default LeakyReLU with slope 0.1, the reference).
    pub decoder_activation: Act,
    /// Epochs of the run in total (default 50); the engine's `max_iter`.
    pub epochs: usize,
    /// Samples per mini-batch (default 128, the reference).
    pub batch_size: usize,
    /// Optimizer and learning rate (default Adadelta with learning rate 1.0, the reference).
    pub optimizer: OptimizerSpec,
    /// Learning-rate schedule (default constant).
    pub schedule: Schedule,
    /// Reconstruction loss, sparsity penalty and weight decay (§6.2–§6.4); set its parts with
    /// [`AeParams::reconstruction`], [`AeParams::sparsity`], [`AeParams::p`], [`AeParams::beta`], ….
    pub loss: LossSpec,
    /// How the decoder is kept non-negative (default: projection after every step, §6.4).
    pub nonneg: NonNeg,
    /// Fraction of the samples held out (a seeded random subset) for the validation MSE, in
    /// `[0, 1)` (default 0).
    pub val_fraction: f64,
    /// Stop when the validation MSE has not improved for this many epochs (`≥ 1`, needs
    /// `val_fraction > 0`); the trained model then has the weights of the best epoch.
    pub patience: Option<usize>,
    /// Every [`TOL_EVERY`](crate::engine::TOL_EVERY) epochs, stop when `sqrt(2·loss)` (the mean
    /// loss of an epoch) fell by less than `tol` times its value at the first epoch of this
    /// invocation ([`StopRules::tol`]; 0, the default, disables).
    pub tol: f64,
    /// Shuffle the training samples every epoch (seeded by the seed and the epoch; default on).
    pub shuffle: bool,
    /// Seed of the initialization, the validation split and every epoch's order.
    pub seed: u64,
    /// Worker threads (0 = all cores); not part of the result (same bits for any count).
    #[serde(skip)]
    pub threads: usize,
    /// Wall-clock budget in seconds for this invocation.
    #[serde(skip)]
    pub max_seconds: Option<f64>,
    /// Write a checkpoint every this many epochs (`≥ 1`; when a checkpoint path is given).
    pub checkpoint_every: Option<usize>,
}

impl Default for AeParams {
    fn default() -> Self {
        AeParams {
            architecture: Architecture::Shallow,
            k: 100,
            decoder_activation: Act::LeakyRelu { slope: 0.1 },
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

params::setters!(AeParams {
    architecture: Architecture,
    k: usize,
    decoder_activation: Act,
    epochs: usize,
    batch_size: usize,
    optimizer: OptimizerSpec,
    schedule: Schedule,
    loss: LossSpec,
    nonneg: NonNeg,
    val_fraction: f64,
    patience: Option<usize>,
    tol: f64,
    shuffle: bool,
    seed: u64,
    threads: usize,
    max_seconds: Option<f64>,
    checkpoint_every: Option<usize>,
});

params::setters!(AeParams => loss {
    reconstruction: RecLoss,
    reduction: Reduction,
    sparsity: Sparsity,
    p: f64,
    beta: f64,
    decay_lambda: f64,
    decay_alpha: f64,
});

impl AeParams {
    /// The reference settings (§6.1: Adadelta, KL sparsity `p = 0.05`, `β = 1e-3`, projection,
    /// batches of 128, 50 epochs) with a code of `k` units.
    pub fn new(k: usize) -> Self {
        AeParams {
            k,
            ..AeParams::default()
        }
    }

    /// Checks every parameter that does not depend on the data (the data are checked when
    /// training starts, [`ValidAeParams::check_data`]); errors name the parameter
    /// ([`Error::InvalidOption`]).
    pub fn check(&self) -> Result<ValidAeParams> {
        let p = self;
        params::check_k_positive(p.k)?;
        p.decoder_activation.check("decoder_activation")?;
        params::check_at_least_one("epochs", p.epochs, "train for at least one epoch")?;
        params::check_at_least_one("batch_size", p.batch_size, "the reference uses 128")?;
        p.optimizer.validate()?;
        p.schedule.validate()?;
        p.loss.validate()?;
        if p.loss.reconstruction == RecLoss::Bce && p.decoder_activation != Act::Sigmoid {
            return Err(Error::invalid(
                "reconstruction",
                "bce",
                "binary cross-entropy needs outputs in (0, 1): set `decoder_activation` to sigmoid",
            ));
        }
        params::check_unit_below_one("val_fraction", p.val_fraction, "the held-out share")?;
        if let Some(every) = p.checkpoint_every {
            params::check_at_least_one("checkpoint_every", every, "epochs between checkpoints")?;
        }
        let stop = StopRules {
            patience: p.patience,
            ..StopRules::max_iter(p.epochs)
                .with_tol(p.tol)
                .with_max_seconds(p.max_seconds)
        };
        stop.validate()?;
        Ok(ValidAeParams {
            params: p.clone(),
            stop,
        })
    }
}

/// [`AeParams`] that passed [`AeParams::check`]: the only form training accepts
/// ([`TrainState`](super::TrainState)). The fields are private; [`ValidAeParams::params`] reads
/// them.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidAeParams {
    params: AeParams,
    stop: StopRules,
}

impl ValidAeParams {
    /// The checked parameters.
    pub fn params(&self) -> &AeParams {
        &self.params
    }

    /// The engine's stopping rules: `epochs` iterations, the tolerance, this invocation's time
    /// budget and early stopping.
    pub fn stop_rules(&self) -> &StopRules {
        &self.stop
    }

    /// Checks the parameters against training data: at least one sample and one feature, a
    /// validation split that leaves training samples (and holds out some when `patience` is
    /// set), non-negative values, and values in `[0, 1]` for binary cross-entropy.
    pub fn check_data<T: Real>(&self, data: &Dataset<T>) -> Result<()> {
        let p = &self.params;
        let n = data.n_samples();
        params::check_not_empty(n, data.n_features())?;
        let n_val = n_validation(n, p.val_fraction);
        if n_val >= n {
            return Err(Error::invalid(
                "val_fraction",
                p.val_fraction,
                format!("holds out all {n} samples and leaves none to train on; lower it"),
            ));
        }
        if let (Some(patience), 0) = (p.patience, n_val) {
            return Err(Error::invalid(
                "patience",
                patience,
                "early stopping watches the validation MSE, but no sample is held out: set `val_fraction` (e.g. 0.1)",
            ));
        }
        data.validate_nonnegative()?;
        if p.loss.reconstruction == RecLoss::Bce {
            let (_, hi, _) = data.value_range();
            if hi > 1.0 {
                return Err(Error::invalid(
                    "reconstruction",
                    "bce",
                    format!("binary cross-entropy needs data in [0, 1], the maximum is {hi}; scale the data or set `reconstruction` to mse"),
                ));
            }
        }
        Ok(())
    }

    /// The first parameter (with its value here) in which `self` differs from `started`, other
    /// than those a resumed run may change (`epochs`, `tol`, `threads`, `max_seconds`).
    pub(crate) fn fixed_difference(&self, started: &ValidAeParams) -> Option<Error> {
        let (a, b) = (&self.params, &started.params);
        macro_rules! first_difference {
            ($a:expr, $b:expr; $($f:ident),*) => {
                $(
                    if $a.$f != $b.$f {
                        return Some(Error::invalid(
                            stringify!($f),
                            format!("{:?}", $a.$f),
                            format!(
                                "differs from the {:?} the run started with; a resumed run keeps its parameters, only `epochs`, `tol`, `threads` and `max_seconds` change",
                                $b.$f
                            ),
                        ));
                    }
                )*
            };
        }
        first_difference!(a, b; architecture, k, decoder_activation, batch_size, optimizer, schedule);
        first_difference!(a.loss, b.loss; reconstruction, reduction, sparsity, p, beta, decay_lambda, decay_alpha);
        first_difference!(a, b; nonneg, val_fraction, patience, shuffle, seed, checkpoint_every);
        debug_assert_eq!(
            AeParams {
                epochs: b.epochs,
                tol: b.tol,
                threads: b.threads,
                max_seconds: b.max_seconds,
                ..a.clone()
            },
            *b,
            "a parameter is missing from the lists above"
        );
        None
    }
}

/// Samples held out by a validation fraction: `round(n · fraction)`.
pub(crate) fn n_validation(n: usize, fraction: f64) -> usize {
    (n as f64 * fraction).round() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option_of(p: AeParams) -> &'static str {
        match p.check() {
            Err(Error::InvalidOption { option, .. }) => option,
            other => panic!("{p:?} gave {other:?}"),
        }
    }

    /// Each invalid parameter is refused by `check` with its own name (linfa's one test per
    /// variant), and the message names no command-line flag.
    #[test]
    fn each_bad_parameter_is_refused_with_its_name() {
        let base = || AeParams::new(4);
        let cases: Vec<(AeParams, &str)> = vec![
            (AeParams::new(0), "k"),
            (base().epochs(0), "epochs"),
            (base().batch_size(0), "batch_size"),
            (
                base().optimizer(OptimizerSpec::Adam {
                    lr: -1.0,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                }),
                "learning_rate",
            ),
            (
                base().optimizer(OptimizerSpec::Sgd {
                    lr: f64::NAN,
                    momentum: 0.9,
                    nesterov: false,
                }),
                "learning_rate",
            ),
            (
                base().optimizer(OptimizerSpec::Sgd {
                    lr: 0.1,
                    momentum: 1.0,
                    nesterov: false,
                }),
                "momentum",
            ),
            (
                base().schedule(Schedule::Step {
                    every: 0,
                    factor: 0.5,
                }),
                "schedule",
            ),
            (base().schedule(Schedule::Exponential { gamma: -1.0 }), "schedule"),
            (base().val_fraction(1.0), "val_fraction"),
            (base().val_fraction(-0.1), "val_fraction"),
            (base().val_fraction(f64::NAN), "val_fraction"),
            (base().patience(Some(0)), "patience"),
            (base().checkpoint_every(Some(0)), "checkpoint_every"),
            (base().tol(-1.0), "tol"),
            (base().tol(f64::INFINITY), "tol"),
            (base().p(0.0), "p"),
            (base().p(1.0), "p"),
            (base().beta(-1.0), "beta"),
            (base().beta(f64::NAN), "beta"),
            (base().decay_lambda(-1.0), "decay_lambda"),
            (base().decay_alpha(f64::INFINITY), "decay_alpha"),
            (base().sparsity(Sparsity::EpsL1 { eps: 0.0 }), "sparsity"),
            (base().sparsity(Sparsity::Hoyer { target: 1.0 }), "sparsity"),
            (
                base().decoder_activation(Act::LeakyRelu { slope: 1.5 }),
                "decoder_activation",
            ),
            (base().reconstruction(RecLoss::Bce), "reconstruction"),
        ];
        for (p, name) in cases {
            let e = p.check().unwrap_err().to_string();
            assert_eq!(option_of(p.clone()), name, "{e}");
            assert!(!e.contains("--"), "{name}: the message names a flag: {e}");
        }
        // The time budget is one of the engine's rules (its name is the engine's).
        assert!(base().max_seconds(Some(0.0)).check().is_err());
        // p only matters for the penalties on the mean activation.
        assert!(base().p(0.0).sparsity(Sparsity::L1).check().is_ok());
        assert!(base()
            .reconstruction(RecLoss::Bce)
            .decoder_activation(Act::Sigmoid)
            .check()
            .is_ok());
    }

    fn data(n: usize, m: usize, max: f64) -> Dataset<f64> {
        let v: Vec<f64> = (0..n * m).map(|i| max * (i % 5) as f64 / 4.0).collect();
        Dataset::from_row_major(n, m, &v, "d").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn data_checks_name_the_parameter_and_the_fix() {
        let ok = |p: AeParams| p.check().unwrap_or_else(|e| panic!("{e}"));
        let option = |r: Result<()>| match r {
            Err(Error::InvalidOption { option, reason, .. }) => {
                assert!(!reason.contains("--"), "{reason}");
                option
            }
            other => panic!("{other:?}"),
        };
        let d = data(10, 4, 1.0);
        assert!(ok(AeParams::new(2)).check_data(&d).is_ok());
        // 0.96 of 10 samples rounds to all of them.
        assert_eq!(
            option(ok(AeParams::new(2).val_fraction(0.96)).check_data(&d)),
            "val_fraction"
        );
        let e = ok(AeParams::new(2).patience(Some(3))).check_data(&d);
        assert!(format!("{e:?}").contains("`val_fraction`"), "{e:?}");
        assert_eq!(option(e), "patience");
        // 0.04 of 10 samples rounds to none.
        assert_eq!(
            option(ok(AeParams::new(2).patience(Some(3)).val_fraction(0.04)).check_data(&d)),
            "patience"
        );
        assert!(ok(AeParams::new(2).patience(Some(3)).val_fraction(0.1))
            .check_data(&d)
            .is_ok());
        let bce = ok(AeParams::new(2)
            .reconstruction(RecLoss::Bce)
            .decoder_activation(Act::Sigmoid));
        assert!(bce.check_data(&d).is_ok());
        assert_eq!(option(bce.check_data(&data(10, 4, 2.0))), "reconstruction");
        assert!(matches!(
            ok(AeParams::new(2)).check_data(&data(0, 4, 1.0)),
            Err(Error::EmptyData { .. })
        ));
    }

    /// A resumed run may change only the per-invocation parameters.
    #[test]
    fn resuming_refuses_other_parameters() {
        let ok = |p: AeParams| p.check().unwrap_or_else(|e| panic!("{e}"));
        let started = ok(AeParams::new(3));
        let later = ok(AeParams::new(3)
            .epochs(80)
            .tol(1e-3)
            .threads(2)
            .max_seconds(Some(5.0)));
        assert!(later.fixed_difference(&started).is_none());
        for (p, name) in [
            (AeParams::new(4), "k"),
            (AeParams::new(3).beta(0.5), "beta"),
            (AeParams::new(3).sparsity(Sparsity::L1), "sparsity"),
            (AeParams::new(3).val_fraction(0.1), "val_fraction"),
            (AeParams::new(3).seed(1), "seed"),
            (AeParams::new(3).batch_size(7), "batch_size"),
            (
                AeParams::new(3)
                    .optimizer(OptimizerSpec::named("adam", None).unwrap_or_else(|e| panic!("{e}"))),
                "optimizer",
            ),
        ] {
            match ok(p).fixed_difference(&started) {
                Some(Error::InvalidOption { option, .. }) => assert_eq!(option, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    /// The serialized form keeps the layout of earlier run.json and checkpoint options (nested
    /// `loss` and `optimizer`), and a description without the model fields loads with defaults.
    #[test]
    fn serialized_form_is_nested_and_tolerates_missing_fields() {
        let p = AeParams::new(7)
            .beta(0.5)
            .optimizer(OptimizerSpec::named("adam", None).unwrap_or_else(|e| panic!("{e}")));
        let v = serde_json::to_value(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["loss"]["beta"], 0.5);
        assert_eq!(v["optimizer"]["kind"], "adam");
        assert_eq!(v["k"], 7);
        assert!(v.get("threads").is_none());
        let back: AeParams = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, p);
        let old: AeParams =
            serde_json::from_str(r#"{"epochs":3,"batch_size":16}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old, AeParams::default().epochs(3).batch_size(16));
    }
}
