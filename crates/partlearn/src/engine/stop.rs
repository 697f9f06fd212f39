//! The stopping rules every iterative method shares (METHODS.md §1.6): max_iter, the windowed
//! relative-decrease tolerance, the time budget, Lin's projected-gradient rule and early stopping
//! on a validation score, and the reasons a fit stops.

use serde::{Deserialize, Serialize};

use super::warning::{Rule, Warning};
use crate::error::{Error, Result};

/// Why a fit stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The relative decrease of the objective fell below `tol`.
    Converged,
    /// `max_iter` iterations were run.
    MaxIter,
    /// The time budget was used up.
    TimeLimit,
    /// The observer asked to stop (e.g. Ctrl-C).
    Interrupted,
    /// The validation error stopped improving for `patience` epochs (mini-batch training).
    EarlyStopped,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::Converged => "converged",
            StopReason::MaxIter => "max-iter",
            StopReason::TimeLimit => "time-limit",
            StopReason::Interrupted => "interrupted",
            StopReason::EarlyStopped => "early-stopped",
        })
    }
}

/// Stopping rules of the shared fit loop (METHODS.md §1.6).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StopRules {
    /// Maximum number of iterations.
    pub max_iter: usize,
    /// Every [`TOL_EVERY`] iterations, stop when `(e_{t−10} − e_t) / e_0 < tol` with
    /// `e = sqrt(2·objective)` (scikit-learn's MU rule; `e_0` at the initialization; 0 disables).
    /// Checking over a window keeps one short step (e.g. a rejected extrapolation) from ending a fit.
    pub tol: f64,
    /// Wall-clock budget in seconds (initialization included).
    pub max_seconds: Option<f64>,
    /// Projected-gradient rule of Lin (2007), METHODS.md §1.6: stop when
    /// `‖[∇ᴾ_W, ∇ᴾ_H]‖_F ≤ pg_tol · ‖[∇ᴾ_W, ∇ᴾ_H]‖_F` at the initialization (0 disables).
    #[serde(default)]
    pub pg_tol: f64,
    /// Early stopping: stop when the validation score (lower is better) has not improved for
    /// this many iterations, and return the best iteration's state (`None` disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
}

impl StopRules {
    /// Only `max_iter`: no tolerance, budget, projected-gradient rule or early stopping.
    pub fn max_iter(max_iter: usize) -> Self {
        StopRules {
            max_iter,
            tol: 0.0,
            max_seconds: None,
            pg_tol: 0.0,
            patience: None,
        }
    }

    /// The same rules with the windowed tolerance `tol`.
    pub fn with_tol(self, tol: f64) -> Self {
        StopRules { tol, ..self }
    }

    /// The same rules with a time budget in seconds.
    pub fn with_max_seconds(self, max_seconds: Option<f64>) -> Self {
        StopRules { max_seconds, ..self }
    }

    /// Checks the rules themselves, the same way for every method: `tol ≥ 0` and finite,
    /// `pg_tol` in `[0, 1)`, a budget `> 0`, a patience `≥ 1`.
    pub fn validate(&self) -> Result<()> {
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(Error::invalid("tol", self.tol, "must be a finite number ≥ 0"));
        }
        if !(self.pg_tol >= 0.0 && self.pg_tol < 1.0) {
            return Err(Error::invalid(
                "pg_tol",
                self.pg_tol,
                "must be in [0, 1): the fraction of the initial projected gradient at which to stop (0 disables)",
            ));
        }
        if let Some(s) = self.max_seconds {
            if !(s > 0.0) {
                return Err(Error::invalid("max_seconds", s, "must be > 0"));
            }
        }
        if self.patience == Some(0) {
            return Err(Error::invalid("patience", 0, "must be ≥ 1 (or off)"));
        }
        Ok(())
    }
}

/// The tolerance rule compares objectives this many iterations apart.
pub const TOL_EVERY: usize = 10;

impl StopRules {
    /// The reason to stop after iteration `iter` (≥ 1), if any; `f0`, `window`, `cur` are the
    /// objectives at the initialization, at iteration `iter − TOL_EVERY` and now (the tolerance is
    /// only tested when `iter` is a multiple of [`TOL_EVERY`]).
    pub(crate) fn check(
        &self,
        iter: usize,
        f0: f64,
        window: f64,
        cur: f64,
        seconds: f64,
    ) -> Option<StopReason> {
        let e = |f: f64| (2.0 * f.max(0.0)).sqrt();
        if self.tol > 0.0 && iter % TOL_EVERY == 0 && f0 > 0.0 && (e(window) - e(cur)) / e(f0) < self.tol {
            return Some(StopReason::Converged);
        }
        if let Some(limit) = self.max_seconds {
            if seconds >= limit {
                return Some(StopReason::TimeLimit);
            }
        }
        if iter >= self.max_iter {
            return Some(StopReason::MaxIter);
        }
        None
    }

    /// The reason to stop after an iteration without an evaluation ([`super::Step::Unevaluated`]):
    /// the budget and `max_iter`, as in [`Self::check`].
    pub(crate) fn check_unevaluated(&self, iter: usize, seconds: f64) -> Option<StopReason> {
        self.check(iter, 0.0, f64::NAN, f64::NAN, seconds)
    }

    /// The warning scikit-learn users expect (`ConvergenceWarning`) when max_iter ends a fit that
    /// had a tolerance.
    pub(crate) fn warning(&self, reason: StopReason) -> Option<Warning> {
        if reason != StopReason::MaxIter {
            return None;
        }
        let (rule, value) = if self.tol > 0.0 {
            (Rule::Tol, self.tol)
        } else if self.pg_tol > 0.0 {
            (Rule::PgTol, self.pg_tol)
        } else {
            return None;
        };
        Some(Warning::MaxIterReached {
            max_iter: self.max_iter,
            rule,
            value,
        })
    }

    /// Whether the projected gradient `pg` (initially `pg0`) is small enough to stop.
    pub(crate) fn pg_converged(&self, pg0: f64, pg: f64) -> bool {
        self.pg_tol > 0.0 && pg <= self.pg_tol * pg0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_rules_order_and_warning() {
        let r = StopRules::max_iter(10).with_tol(1e-3).with_max_seconds(Some(5.0));
        assert_eq!(r.check(1, 100.0, 50.0, 40.0, 0.1), None);
        // Tiny decrease, but only tested every TOL_EVERY iterations.
        assert_eq!(r.check(2, 100.0, 40.0, 39.999, 0.1), None);
        assert_eq!(r.check(20, 100.0, 40.0, 39.999, 0.1), Some(StopReason::Converged));
        assert_eq!(r.check(3, 100.0, 40.0, 30.0, 6.0), Some(StopReason::TimeLimit));
        let r = StopRules { max_iter: 20, ..r };
        assert_eq!(r.check(20, 100.0, 40.0, 30.0, 1.0), Some(StopReason::MaxIter));
        assert!(r.warning(StopReason::MaxIter).is_some());
        assert!(r.warning(StopReason::Converged).is_none());
        let no_tol = StopRules { tol: 0.0, ..r };
        assert!(no_tol.warning(StopReason::MaxIter).is_none());
        assert_eq!(no_tol.check(2, 100.0, 40.0, 40.0, 0.1), None);
    }
}
