//! NMF solvers inside the [`engine`]: a solver provides `Iterate` on the factors, `run` wraps
//! it as an [`engine::Method`] (relative error from `‖X‖_F`) and hands it to [`engine::run`],
//! which owns history, stopping rules, warnings and interruption.

use std::time::Instant;

use super::checkpoint::Saver;
use super::init::Factors;
use crate::engine::{self, Clock, Eval as EngineEval, Observer, Progress, Resume, Step, StopRules, Within};
use crate::error::Result;
use crate::real::Real;

/// Objective pieces after an iteration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Eval {
    /// The penalized objective being minimized.
    pub objective: f64,
    /// `‖X − WH‖²_F`.
    pub sq_error: f64,
}

/// One solver's update rule inside the shared loop.
pub(crate) trait Iterate<T: Real> {
    /// Evaluates the starting factors (may prepare caches for the first iteration).
    fn initial(&mut self, f: &mut Factors<T>) -> Eval;
    /// One outer iteration (codes, then atoms); returns the evaluation after it (of the
    /// problem the solver iterates on: the compressed one when [`Self::exact_every`] > 1).
    fn iterate(&mut self, f: &mut Factors<T>) -> Eval;
    /// Iterations between exact evaluations: 1 when [`Self::iterate`]'s evaluation is exact;
    /// otherwise [`Self::exact`] gives the record every this many iterations and at the last.
    fn exact_every(&self) -> usize {
        1
    }
    /// The exact evaluation of the current factors (after an iteration).
    fn exact(&mut self, f: &mut Factors<T>) -> Eval {
        self.initial(f)
    }
    /// `‖[∇ᴾ_W, ∇ᴾ_H]‖_F` at the current factors (METHODS.md §1.6), for the projected-gradient
    /// stopping rule; `None` if this solver cannot compute it.
    fn projected_gradient(&mut self, _f: &Factors<T>) -> Option<f64> {
        None
    }
    /// What a checkpoint keeps of the solver besides the factors (state carried from one
    /// iteration to the next that the factors do not determine; work counters).
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Restores [`Self::state`] (before [`Self::initial`] of the resumed run).
    fn set_state(&mut self, _state: &serde_json::Value) -> Result<()> {
        Ok(())
    }
    /// The stopping and checkpoint decisions shared by every process of a distributed fit
    /// ([`engine::Method::agree`]); unchanged in one process.
    fn agree(
        &mut self,
        reason: Option<engine::StopReason>,
        checkpoint_due: bool,
    ) -> (Option<engine::StopReason>, bool) {
        (reason, checkpoint_due)
    }
}

/// A solver and its factors as an engine method.
struct Solve<'a, 'b, T: Real> {
    solver: &'a mut dyn Iterate<T>,
    factors: &'a mut Factors<T>,
    x_norm: f64,
    /// Continues an earlier run: iteration 0 is not recorded again.
    resumed: bool,
    /// Writes checkpoints (`None`: none).
    saver: Option<&'a mut Saver<'b>>,
}

impl<T: Real> Solve<'_, '_, T> {
    fn eval(&self, e: Eval) -> EngineEval {
        let rel = if self.x_norm > 0.0 {
            // `max` would turn a NaN into 0: a NaN error stays NaN (and fails the finite check).
            (if e.sq_error < 0.0 { 0.0 } else { e.sq_error }).sqrt() / self.x_norm
        } else if e.sq_error.is_finite() {
            0.0
        } else {
            e.sq_error
        };
        EngineEval::new(e.objective, rel)
    }
}

impl<T: Real> engine::Method for Solve<'_, '_, T> {
    fn name(&self) -> &'static str {
        "NMF fit"
    }

    fn non_finite_hint(&self) -> &'static str {
        if T::NAME == "f32" {
            "rescale the data (e.g. divide by its maximum) or use `dtype = f64`"
        } else {
            "rescale the data (e.g. divide by its maximum)"
        }
    }

    fn start(&mut self) -> Result<Option<EngineEval>> {
        let e = self.solver.initial(self.factors);
        Ok((!self.resumed).then(|| self.eval(e)))
    }

    fn step(&mut self, iter: usize, _within: &mut Within<'_>) -> Result<Step> {
        let e = self.solver.iterate(self.factors);
        let every = self.solver.exact_every();
        Ok(if every <= 1 {
            Step::Done(self.eval(e))
        } else if iter % every == 0 {
            let e = self.solver.exact(self.factors);
            Step::Done(self.eval(e))
        } else {
            Step::Unevaluated
        })
    }

    fn evaluate(&mut self) -> Result<Option<EngineEval>> {
        let e = self.solver.exact(self.factors);
        Ok(Some(self.eval(e)))
    }

    fn projected_gradient(&mut self) -> Option<f64> {
        self.solver.projected_gradient(self.factors)
    }

    fn checkpoints(&self) -> bool {
        self.saver.is_some()
    }

    fn checkpoint(&mut self, progress: &Progress<'_>) -> Result<()> {
        match self.saver.as_mut() {
            Some(s) => s.save(
                progress,
                self.solver.state(),
                self.factors.wt.as_ref(),
                self.factors.h.as_ref(),
            ),
            None => Ok(()),
        }
    }

    fn agree(
        &mut self,
        reason: Option<engine::StopReason>,
        checkpoint_due: bool,
    ) -> (Option<engine::StopReason>, bool) {
        self.solver.agree(reason, checkpoint_due)
    }
}

/// Runs `solver` on `factors` until a stopping rule fires. `x_norm` = `‖X‖_F`; `start` is when
/// the fit began (initialization time counts against the budget).
pub(crate) fn run<T: Real>(
    solver: &mut dyn Iterate<T>,
    factors: &mut Factors<T>,
    stop: &StopRules,
    x_norm: f64,
    start: Instant,
    observer: &mut dyn Observer,
) -> Result<engine::Outcome> {
    run_from(solver, factors, stop, 0, x_norm, start, observer)
}

/// [`run`] continuing after `done` iterations of an earlier run on the same factors (the
/// polish after compressed iterations): the solver re-evaluates its caches from the factors,
/// iteration `done` is not recorded again, and the records go on from `done + 1`.
pub(crate) fn run_from<T: Real>(
    solver: &mut dyn Iterate<T>,
    factors: &mut Factors<T>,
    stop: &StopRules,
    done: usize,
    x_norm: f64,
    start: Instant,
    observer: &mut dyn Observer,
) -> Result<engine::Outcome> {
    let resume = Resume {
        done,
        ..Resume::default()
    };
    run_resumable(
        solver,
        factors,
        stop,
        resume,
        x_norm,
        Clock::since(start),
        None,
        observer,
    )
}

/// The general form of [`run`]: from `resume` (iteration 0 is recorded only when
/// `resume.done` is 0), on `clock`, with checkpoints written by `saver`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_resumable<T: Real>(
    solver: &mut dyn Iterate<T>,
    factors: &mut Factors<T>,
    stop: &StopRules,
    resume: Resume,
    x_norm: f64,
    clock: Clock,
    saver: Option<&mut Saver<'_>>,
    observer: &mut dyn Observer,
) -> Result<engine::Outcome> {
    let mut method = Solve {
        solver,
        factors,
        x_norm,
        resumed: resume.done > 0,
        saver,
    };
    engine::run(&mut method, stop, resume, clock, observer)
}
