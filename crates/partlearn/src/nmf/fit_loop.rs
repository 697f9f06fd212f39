//! The one fit loop shared by every NMF solver (STYLE.md, "Solvers"): initialize → evaluate →
//! iterate → observe → stop. A solver only provides [`Iterate`]; history, stopping rules
//! (max_iter, tol, time budget), the max_iter warning and interruption are handled here once.

use std::time::Instant;

use super::init::Factors;
use crate::error::{Error, Result};
use crate::observe::{Control, IterRecord, Observer, StopReason, StopRules};
use crate::real::Real;

/// Objective pieces after an iteration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Eval {
    /// The penalized objective being minimized.
    pub objective: f64,
    /// `‖X − WH‖²_F`.
    pub sq_error: f64,
}

/// One solver's update rule inside the shared loop.
pub trait Iterate<T: Real> {
    /// Evaluates the starting factors (may prepare caches for the first iteration).
    fn initial(&mut self, f: &mut Factors<T>) -> Eval;
    /// One outer iteration (codes, then atoms); returns the evaluation after it.
    fn iterate(&mut self, f: &mut Factors<T>) -> Eval;
    /// `‖[∇ᴾ_W, ∇ᴾ_H]‖_F` at the current factors (METHODS.md §1.6), for the projected-gradient
    /// stopping rule; `None` if this solver cannot compute it.
    fn projected_gradient(&mut self, _f: &Factors<T>) -> Option<f64> {
        None
    }
}

/// What the loop did.
#[derive(Clone, Debug)]
pub struct LoopOutcome {
    pub history: Vec<IterRecord>,
    pub n_iter: usize,
    pub stop_reason: StopReason,
    pub warnings: Vec<String>,
}

/// Runs `solver` on `factors` until a stopping rule fires. `x_norm` = `‖X‖_F`; `start` is when
/// the fit began (initialization time counts against the budget).
pub fn run<T: Real>(
    solver: &mut dyn Iterate<T>,
    factors: &mut Factors<T>,
    stop: &StopRules,
    x_norm: f64,
    start: Instant,
    observer: &mut (dyn Observer + Send),
) -> Result<LoopOutcome> {
    let rel = |e: &Eval| {
        if x_norm > 0.0 {
            e.sq_error.max(0.0).sqrt() / x_norm
        } else {
            0.0
        }
    };
    let e0 = solver.initial(factors);
    check_finite(&e0, 0)?;
    let use_pg = stop.pg_tol > 0.0;
    let pg0 = if use_pg {
        let pg = solver.projected_gradient(factors).ok_or_else(|| {
            Error::invalid(
                "pg-tol",
                stop.pg_tol,
                "this solver cannot compute the projected gradient; use --tol instead",
            )
        })?;
        Some(pg)
    } else {
        None
    };
    let rec0 = IterRecord {
        iter: 0,
        objective: e0.objective,
        rel_error: rel(&e0),
        seconds: start.elapsed().as_secs_f64(),
        projected_gradient: pg0,
    };
    let mut history = vec![rec0];
    if observer.on_iter(&rec0) == Control::Stop {
        return Ok(LoopOutcome {
            history,
            n_iter: 0,
            stop_reason: StopReason::Interrupted,
            warnings: vec![],
        });
    }
    if stop.max_iter == 0 {
        return Ok(LoopOutcome {
            history,
            n_iter: 0,
            stop_reason: StopReason::MaxIter,
            warnings: vec![],
        });
    }
    let (f0, mut window) = (e0.objective, e0.objective);
    let mut iter = 0;
    loop {
        iter += 1;
        let e = solver.iterate(factors);
        check_finite(&e, iter)?;
        let pg = if use_pg {
            solver.projected_gradient(factors)
        } else {
            None
        };
        let rec = IterRecord {
            iter,
            objective: e.objective,
            rel_error: rel(&e),
            seconds: start.elapsed().as_secs_f64(),
            projected_gradient: pg,
        };
        history.push(rec);
        let mut reason = stop.check(iter, f0, window, e.objective, rec.seconds);
        if let (Some(p0), Some(p)) = (pg0, pg) {
            if stop.pg_converged(p0, p) {
                reason = Some(StopReason::Converged);
            }
        }
        if observer.on_iter(&rec) == Control::Stop {
            reason = Some(StopReason::Interrupted);
        }
        if iter % crate::observe::TOL_EVERY == 0 {
            window = e.objective;
        }
        if let Some(stop_reason) = reason {
            let warnings = stop.warning(stop_reason).into_iter().collect();
            return Ok(LoopOutcome {
                history,
                n_iter: iter,
                stop_reason,
                warnings,
            });
        }
    }
}

fn check_finite(e: &Eval, iter: usize) -> Result<()> {
    if e.objective.is_finite() && e.sq_error.is_finite() {
        Ok(())
    } else {
        Err(Error::Numerical {
            what: "NMF fit".into(),
            reason: format!(
                "the objective became {} at iteration {iter}; rescale the data (e.g. divide by its maximum) or use --dtype f64",
                e.objective
            ),
        })
    }
}
