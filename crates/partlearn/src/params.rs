//! Checked parameters (linfa's pattern, STYLE.md "Options"): each method has an `XParams`
//! struct built with a builder, whose `check()` returns a `ValidX` with private fields — the only
//! form its fit accepts. The checks several methods share are written here once.

use crate::error::{Error, Result};

/// Builder setters `fn field(mut self, v) -> Self` for public fields of a params struct.
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
    }
}
