//! Progress reporting and the stopping rules shared by every iterative solver.
//!
//! A solver reports each iteration to an [`Observer`] as an [`IterRecord`] (objective, relative
//! error, elapsed seconds); the observer can ask it to stop (Ctrl-C, a GUI button). The library
//! never prints: the CLI's observer draws the progress bar. [`StopRules`] and [`StopReason`] are
//! the one implementation of max_iter / tol / time-budget stopping (METHODS.md §1.6).

use serde::{Deserialize, Serialize};

/// One iteration as seen by the observer and stored in the history.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterRecord {
    /// Iteration number; 0 is the initialization.
    pub iter: usize,
    /// The (penalized) objective the solver minimizes.
    pub objective: f64,
    /// Relative reconstruction error `‖X − WH‖_F / ‖X‖_F`.
    pub rel_error: f64,
    /// Seconds since the solver started (initialization included).
    pub seconds: f64,
    /// `‖[∇ᴾ_W, ∇ᴾ_H]‖_F` (METHODS.md §1.6), when the projected-gradient rule is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected_gradient: Option<f64>,
}

/// What an observer tells the solver after an iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop now, keeping what was learned so far.
    Stop,
}

/// Receives every iteration of a fit.
pub trait Observer {
    /// Called after the initialization (`iter = 0`) and after every iteration (an epoch, for
    /// models trained by mini-batches).
    fn on_iter(&mut self, rec: &IterRecord) -> Control;

    /// Called during long iterations (after each mini-batch): `done` of `total` steps of the
    /// whole fit. Lets a progress bar move and Ctrl-C act within an epoch.
    fn on_progress(&mut self, _done: usize, _total: usize) -> Control {
        Control::Continue
    }
}

/// An observer that never stops anything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Observer for Silent {
    fn on_iter(&mut self, _rec: &IterRecord) -> Control {
        Control::Continue
    }
}

impl<F: FnMut(&IterRecord) -> Control> Observer for F {
    fn on_iter(&mut self, rec: &IterRecord) -> Control {
        self(rec)
    }
}

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
}

/// The tolerance rule compares objectives this many iterations apart.
pub const TOL_EVERY: usize = 10;

impl StopRules {
    /// The reason to stop after iteration `iter` (≥ 1), if any; `f0`, `window`, `cur` are the
    /// objectives at the initialization, at iteration `iter − TOL_EVERY` and now (the tolerance is
    /// only tested when `iter` is a multiple of [`TOL_EVERY`]).
    pub fn check(&self, iter: usize, f0: f64, window: f64, cur: f64, seconds: f64) -> Option<StopReason> {
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

    /// The warning scikit-learn users expect when max_iter ends a fit that had a tolerance.
    pub fn warning(&self, reason: StopReason) -> Option<String> {
        (reason == StopReason::MaxIter && (self.tol > 0.0 || self.pg_tol > 0.0)).then(|| {
            if self.tol > 0.0 {
                format!(
                    "maximum number of iterations {} reached before convergence (tol = {:e}); increase --max-iter or --tol",
                    self.max_iter, self.tol
                )
            } else {
                format!(
                    "maximum number of iterations {} reached before convergence (pg-tol = {:e}); increase --max-iter or --pg-tol",
                    self.max_iter, self.pg_tol
                )
            }
        })
    }

    /// Whether the projected gradient `pg` (initially `pg0`) is small enough to stop.
    pub fn pg_converged(&self, pg0: f64, pg: f64) -> bool {
        self.pg_tol > 0.0 && pg <= self.pg_tol * pg0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_rules_order_and_warning() {
        let r = StopRules {
            pg_tol: 0.0,
            max_iter: 10,
            tol: 1e-3,
            max_seconds: Some(5.0),
        };
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
