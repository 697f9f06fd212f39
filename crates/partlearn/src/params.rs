//! Checked parameters (linfa's pattern, STYLE.md "Options"): each method has an `XParams`
//! struct built with a builder, whose `check()` returns a `ValidX` with private fields — the only
//! form its fit accepts. The checks several methods share are written here once.

use std::fmt::Display;

use crate::engine::StopRules;
use crate::error::{Error, Result};

/// Builder setters `fn field(mut self, v) -> Self` for public fields of a params struct; the
/// form `T => inner { … }` sets the fields of its struct field `inner` (`fn beta` sets
/// `loss.beta`).
macro_rules! setters {
    ($t:ty { $($f:ident : $ty:ty),* $(,)? }) => {
        impl $t {
            $(
                #[doc = concat!("Sets `", stringify!($f), "` (see the field).")]
                #[must_use]
                pub fn $f(mut self, value: $ty) -> Self {
                    self.$f = value;
                    self
                }
            )*
        }
    };
    ($t:ty => $inner:ident { $($f:ident : $ty:ty),* $(,)? }) => {
        impl $t {
            $(
                #[doc = concat!("Sets `", stringify!($inner), ".", stringify!($f), "` (see that field).")]
                #[must_use]
                pub fn $f(mut self, value: $ty) -> Self {
                    self.$inner.$f = value;
                    self
                }
            )*
        }
    };
}
pub(crate) use setters;

/// `k ≥ 1`: at least one component.
pub fn check_k_positive(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::invalid(
            "k",
            0,
            "the number of components must be at least 1",
        ));
    }
    Ok(())
}

/// A weight that must be finite and `≥ 0` (penalties, λ of a label term).
pub fn check_weight(name: &'static str, value: f64) -> Result<()> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(Error::invalid(name, value, "must be a finite number ≥ 0"));
    }
    Ok(())
}

/// A fraction in `[0, 1]` (L1 ratio, Hoyer sparseness).
pub fn check_unit(name: &'static str, value: f64, meaning: &str) -> Result<()> {
    if !(0.0..=1.0).contains(&value) {
        return Err(Error::invalid(
            name,
            value,
            format!("must lie in [0, 1] ({meaning})"),
        ));
    }
    Ok(())
}

/// A count that must be at least 1 (`max_iter`, `epochs`, restarts, …); `what` says what it
/// counts.
pub fn check_at_least_one(name: &'static str, value: usize, what: &str) -> Result<()> {
    if value == 0 {
        return Err(Error::invalid(name, 0, format!("must be at least 1 ({what})")));
    }
    Ok(())
}

/// A number that must be finite and `> 0` (learning rate, schedule factors, ε).
pub fn check_positive(name: &'static str, value: f64, meaning: &str) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(Error::invalid(
            name,
            value,
            format!("must be a finite number > 0 ({meaning})"),
        ));
    }
    Ok(())
}

/// The engine's stopping rules of an iterative method, checked ([`StopRules::validate`]):
/// `max_iter ≥ 1` iterations (named `max_iter_name`, e.g. `epochs`), the windowed `tol`, an
/// optional time budget.
pub fn stop_rules(
    max_iter_name: &'static str,
    max_iter: usize,
    tol: f64,
    max_seconds: Option<f64>,
) -> Result<StopRules> {
    check_at_least_one(max_iter_name, max_iter, "iterations to run")?;
    let stop = StopRules::max_iter(max_iter)
        .with_tol(tol)
        .with_max_seconds(max_seconds);
    stop.validate()?;
    Ok(stop)
}

/// The ranks of a layer model (METHODS.md §4): at least one, each `≥ 1`, strictly decreasing.
pub fn check_ranks(ranks: &[usize]) -> Result<()> {
    if ranks.is_empty() {
        return Err(Error::invalid(
            "ranks",
            "[]",
            "give at least one rank, e.g. [9, 4, 2]",
        ));
    }
    if ranks[0] == 0 || ranks.windows(2).any(|w| w[1] == 0 || w[1] >= w[0]) {
        return Err(Error::invalid(
            "ranks",
            format!("{ranks:?}"),
            "ranks must decrease, each at least 1 (e.g. [9, 4, 2])",
        ));
    }
    Ok(())
}

/// A largest rank `k` (SSNMF's `k`, a layer model's first rank, shown as `value`) that data of
/// `n_samples × n_features` can carry: `k ≤ min(n_samples, n_features)`.
pub fn check_rank_fits(
    name: &'static str,
    value: impl Display,
    k: usize,
    n_samples: usize,
    n_features: usize,
) -> Result<()> {
    let min = n_samples.min(n_features);
    if k > min {
        return Err(Error::invalid(
            name,
            value,
            format!(
                "the largest rank must be at most min(n_samples = {n_samples}, n_features = {n_features}) = {min}; lower it"
            ),
        ));
    }
    Ok(())
}

/// A fraction in `[0, 1)` (held-out share, momentum, decay rates, leaky slope).
pub fn check_unit_below_one(name: &'static str, value: f64, meaning: &str) -> Result<()> {
    if !(0.0..1.0).contains(&value) {
        return Err(Error::invalid(
            name,
            value,
            format!("must lie in [0, 1) ({meaning})"),
        ));
    }
    Ok(())
}

/// A fraction in the open interval `(0, 1)` (a target mean activation or sparseness).
pub fn check_unit_open(name: &'static str, value: f64, meaning: &str) -> Result<()> {
    if !(value > 0.0 && value < 1.0) {
        return Err(Error::invalid(
            name,
            value,
            format!("must lie in (0, 1) ({meaning})"),
        ));
    }
    Ok(())
}

/// `e` (an [`Error::InvalidOption`] of one of the checks above) showing `value` instead: the
/// whole setting (`hoyer:2`) rather than the number inside it.
pub(crate) fn with_value(e: Error, value: impl std::fmt::Display) -> Error {
    match e {
        Error::InvalidOption { option, reason, .. } => Error::InvalidOption {
            option,
            value: value.to_string(),
            reason,
        },
        e => e,
    }
}

/// A data shape with at least one sample and one feature.
pub fn check_not_empty(n_samples: usize, n_features: usize) -> Result<()> {
    if n_samples == 0 || n_features == 0 {
        return Err(Error::EmptyData {
            n_samples,
            n_features,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_checks_name_the_parameter() {
        assert!(check_k_positive(1).is_ok());
        assert!(matches!(
            check_k_positive(0),
            Err(Error::InvalidOption { option: "k", .. })
        ));
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                check_weight("lambda", bad),
                Err(Error::InvalidOption { option: "lambda", .. })
            ));
        }
        assert!(check_weight("lambda", 0.0).is_ok());
        assert!(check_unit("l1_ratio", 1.0, "L1 share").is_ok());
        assert!(check_unit("l1_ratio", 1.5, "L1 share")
            .unwrap_err()
            .to_string()
            .contains("L1 share"));
        assert!(matches!(check_not_empty(0, 3), Err(Error::EmptyData { .. })));
        assert!(check_at_least_one("epochs", 1, "").is_ok());
        assert!(matches!(
            check_at_least_one("epochs", 0, ""),
            Err(Error::InvalidOption { option: "epochs", .. })
        ));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(check_positive("learning_rate", bad, "").is_err(), "{bad}");
        }
        assert!(check_positive("learning_rate", 1e-9, "").is_ok());
        assert!(check_unit_below_one("val_fraction", 0.0, "").is_ok());
        assert!(check_unit_below_one("val_fraction", 1.0, "").is_err());
        assert!(check_unit_below_one("val_fraction", f64::NAN, "").is_err());
        assert!(check_unit_open("p", 0.5, "").is_ok());
        for bad in [0.0, 1.0, f64::NAN] {
            assert!(check_unit_open("p", bad, "").is_err(), "{bad}");
        }
        assert!(matches!(
            check_at_least_one("epochs", 0, "epochs to train"),
            Err(Error::InvalidOption { option: "epochs", .. })
        ));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                check_positive("lr", bad, "step"),
                Err(Error::InvalidOption { option: "lr", .. })
            ));
        }
        assert!(check_positive("lr", 1e-3, "step").is_ok());
    }

    #[test]
    fn stop_rules_are_checked_once_with_library_names() {
        let s = stop_rules("max_iter", 5, 1e-4, Some(2.0)).unwrap();
        assert_eq!((s.max_iter, s.tol, s.max_seconds), (5, 1e-4, Some(2.0)));
        let name = |r: Result<StopRules>| match r {
            Err(Error::InvalidOption { option, .. }) => option,
            other => panic!("{other:?}"),
        };
        assert_eq!(name(stop_rules("epochs", 0, 0.0, None)), "epochs");
        assert_eq!(name(stop_rules("max_iter", 1, -1.0, None)), "tol");
        assert_eq!(name(stop_rules("max_iter", 1, f64::NAN, None)), "tol");
        assert_eq!(name(stop_rules("max_iter", 1, 0.0, Some(0.0))), "max_seconds");
    }

    #[test]
    fn ranks_decrease_and_fit_the_data() {
        assert!(check_ranks(&[9, 4, 2]).is_ok() && check_ranks(&[1]).is_ok());
        for bad in [&[][..], &[4, 4], &[4, 9], &[3, 0], &[0]] {
            assert!(
                matches!(
                    check_ranks(bad),
                    Err(Error::InvalidOption { option: "ranks", .. })
                ),
                "{bad:?}"
            );
        }
        assert!(check_rank_fits("k", 5, 5, 5, 6).is_ok());
        let e = check_rank_fits("ranks", "[6]", 6, 5, 6).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidOption { option: "ranks", .. })
                && e.to_string().contains("min(n_samples = 5, n_features = 6) = 5"),
            "{e}"
        );
    }
}
