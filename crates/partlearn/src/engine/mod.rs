//! The one fit loop of every iterative method (STYLE.md, "Solvers"): NMF with each solver,
//! sparse NMF, SSNMF, each hierarchical layer, Deep NMF fine-tuning, Neural NMF epochs and
//! auto-encoder epochs all run through [`run`].
//!
//! A method supplies its state and one step ([`Method`]); the engine owns what they share:
//! the history ([`IterRecord`] per iteration, iteration 0 included), the stopping rules
//! ([`StopRules`]: max_iter, the windowed tolerance, the time budget, the projected-gradient
//! rule, early stopping on a validation score), typed [`Warning`]s (max_iter reached with a
//! tolerance, a restored best iteration, …), the [`Observer`], the process-wide
//! [`interrupt`] request, and the finite-value checks.

pub mod interrupt;
mod observer;
mod stop;
mod warning;

use std::time::Instant;

pub use observer::{Control, IterRecord, Observer, Silent};
pub use stop::{StopReason, StopRules, TOL_EVERY};
pub use warning::{Param, Rule, Warning};

use crate::error::{Error, Result};

/// A method's view of its state after an iteration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Eval {
    /// The (penalized) objective the method minimizes.
    pub objective: f64,
    /// Relative reconstruction error `‖X − X̂‖_F / ‖X‖_F`.
    pub rel_error: f64,
    /// A validation score, lower is better (early stopping); `None` when there is none.
    pub validation: Option<f64>,
}

impl Eval {
    /// An evaluation without a validation score.
    pub fn new(objective: f64, rel_error: f64) -> Self {
        Eval {
            objective,
            rel_error,
            validation: None,
        }
    }
}

/// What one [`Method::step`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// The iteration completed and was evaluated.
    Done(Eval),
    /// The iteration completed without an evaluation: a method whose exact evaluation costs a
    /// pass it would not otherwise make (compressed NMF: `⟨X, WH⟩` on the full `X`) evaluates
    /// only every [`TOL_EVERY`] iterations, where the tolerance is tested. The engine records
    /// nothing for it and checks only the rules that need no objective (`max_iter`, the budget,
    /// interrupts); if the fit ends on such an iteration, [`Method::evaluate`] gives the last
    /// record.
    Unevaluated,
    /// [`Within::go_on`] said to stop: the iteration is incomplete and not recorded.
    Stopped,
    /// The iteration ended early because the method's own convergence rule fired inside it
    /// (mini-batch NMF's rules between batches, METHODS.md §11.3): recorded, then the run
    /// stops as converged.
    Converged(Eval),
}

/// One iterative method inside [`run`].
pub trait Method {
    /// What the finite-value check calls the method in its error ("NMF fit", "SSNMF", …).
    fn name(&self) -> &'static str;

    /// What the user can do when the objective becomes non-finite.
    fn non_finite_hint(&self) -> &'static str {
        "rescale the data (e.g. divide by its maximum) or use f64"
    }

    /// Evaluates the starting point (iteration 0), preparing what the first step needs.
    /// `None` when the method cannot evaluate it without a pass it would not otherwise make
    /// (mini-batch training) or when it resumes a run.
    fn start(&mut self) -> Result<Option<Eval>>;

    /// Runs iteration `iter` (≥ 1). A long iteration (an epoch of mini-batches) reports its
    /// progress to `within` and returns [`Step::Stopped`] when [`Within::go_on`] said to stop.
    fn step(&mut self, iter: usize, within: &mut Within<'_>) -> Result<Step>;
    /// Evaluates the current state after an iteration that returned [`Step::Unevaluated`]
    /// (the last one of a fit); `None` if the method cannot.
    fn evaluate(&mut self) -> Result<Option<Eval>> {
        Ok(None)
    }

    /// `‖[∇ᴾ_W, ∇ᴾ_H]‖_F` at the current state (METHODS.md §1.6), for the projected-gradient
    /// rule; `None` if the method cannot compute it.
    fn projected_gradient(&mut self) -> Option<f64> {
        None
    }

    /// Early stopping: iteration `iter` has the best validation score so far; keep its state.
    fn keep_best(&mut self, _iter: usize) {}

    /// Early stopping: return to the state kept by the last [`Method::keep_best`].
    fn restore_best(&mut self) {}

    /// Makes the stopping and checkpoint decisions common to every process of a distributed
    /// fit ([`crate::dist`]): the engine calls it once per iteration with its own decisions
    /// (which may differ between processes: the time budget, interrupts, the observer's
    /// checkpoint clock) and follows the answer. One process: both unchanged.
    fn agree(&mut self, reason: Option<StopReason>, checkpoint_due: bool) -> (Option<StopReason>, bool) {
        (reason, checkpoint_due)
    }

    /// Called after each recorded iteration, once the observer has seen it (checkpoints).
    fn after_iter(&mut self, _rec: &IterRecord) -> Result<()> {
        Ok(())
    }

    /// Whether the method saves checkpoints between iterations ([`Method::checkpoint`]): the
    /// engine then asks the observer after every recorded iteration whether one is due
    /// ([`Observer::checkpoint_due`]), and saves one when the run ends interrupted or out of time.
    fn checkpoints(&self) -> bool {
        false
    }

    /// Saves the state after a recorded iteration together with the engine's own `progress`
    /// (what [`Resume`] needs to continue with the same bits).
    fn checkpoint(&mut self, _progress: &Progress<'_>) -> Result<()> {
        Ok(())
    }
}

/// The engine's state after a recorded iteration, for a checkpoint ([`Method::checkpoint`]).
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// Iterations done (earlier runs included).
    pub done: usize,
    /// The tolerance's references: the objective at the first recorded iteration and at the
    /// start of the current window ([`Resume::first`], [`Resume::window`]).
    pub first: Option<f64>,
    /// See `first`.
    pub window: Option<f64>,
    /// Early-stopping state.
    pub plateau: Option<Plateau>,
    /// Seconds of the whole fit so far (earlier runs included).
    pub seconds: f64,
    /// The records of this run (those of earlier runs are the method's to keep).
    pub history: &'a [IterRecord],
}

/// The clock of a run: seconds since `start`, plus `offset` seconds spent before (a resumed
/// run). The time budget counts only this run's seconds.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    offset: f64,
}

impl Clock {
    /// A clock started now (initialization time of the caller then counts in its records).
    pub fn start() -> Self {
        Clock::since(Instant::now())
    }

    /// A clock that started at `start`.
    pub fn since(start: Instant) -> Self {
        Clock { start, offset: 0.0 }
    }

    /// The same clock with `offset` seconds spent before this run.
    pub fn with_offset(self, offset: f64) -> Self {
        Clock { offset, ..self }
    }

    /// Seconds of this run.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Seconds of the whole fit, earlier runs included.
    pub fn total(&self) -> f64 {
        self.offset + self.elapsed()
    }
}

/// Where a run starts: iteration 0 or after `done` iterations of an earlier run (checkpoints).
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// Iterations already done.
    pub done: usize,
    /// Early-stopping state of the earlier run.
    pub plateau: Option<Plateau>,
    /// The tolerance's references of the earlier run ([`Progress::first`]): with them a resumed
    /// run stops at the iteration the uninterrupted run would have (without them the tolerance
    /// restarts from this run's first record).
    pub first: Option<f64>,
    /// See `first`.
    pub window: Option<f64>,
}

/// Early-stopping state: the best validation score, its iteration and the iterations since.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plateau {
    /// The best validation score so far (lower is better).
    pub best: f64,
    /// The iteration that reached it.
    pub best_iter: usize,
    /// Iterations since then without improvement (early stopping fires at `patience`).
    pub wait: usize,
}

/// Progress inside one long iteration: lets the observer move a bar and lets Ctrl-C and the
/// time budget act between mini-batches.
pub struct Within<'a> {
    observer: &'a mut dyn Observer,
    clock: Clock,
    max_seconds: Option<f64>,
    reason: Option<StopReason>,
}

impl Within<'_> {
    /// Reports `done` of `total` steps of the whole fit; `false` means stop now (interrupt,
    /// observer or time budget), and the method should return `Ok(None)`.
    pub fn go_on(&mut self, done: usize, total: usize) -> bool {
        if self.observer.on_progress(done, total) == Control::Stop || interrupt::requested() {
            self.reason = Some(StopReason::Interrupted);
        } else if self.max_seconds.is_some_and(|t| self.clock.elapsed() >= t) {
            self.reason = Some(StopReason::TimeLimit);
        }
        self.reason.is_none()
    }

    /// Passes the method's history record of the iteration just done to the observer
    /// ([`Observer::on_history`]).
    pub fn history(&mut self, line: &str) {
        self.observer.on_history(line);
    }

    /// Whether the observer asks for a checkpoint now ([`Observer::checkpoint_due`]).
    pub fn checkpoint_due(&mut self) -> bool {
        self.observer.checkpoint_due()
    }

    /// Seconds of the whole fit so far.
    pub fn seconds(&self) -> f64 {
        self.clock.total()
    }
}

/// What [`run`] did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Every recorded iteration (iteration 0 first when the method evaluated it).
    pub history: Vec<IterRecord>,
    /// Iterations completed, those of earlier runs included (scikit-learn's `n_iter_`).
    pub n_iter: usize,
    /// Why the run stopped.
    pub stop_reason: StopReason,
    /// What the user should know about the run (typed; the front end words them).
    pub warnings: Vec<Warning>,
    /// Early-stopping state at the end (to resume or report).
    pub plateau: Option<Plateau>,
}

fn check_finite(method: &dyn Method, e: &Eval, iter: usize) -> Result<()> {
    if e.objective.is_finite() && e.rel_error.is_finite() {
        return Ok(());
    }
    let at = if iter == 0 {
        "at the start".to_string()
    } else {
        format!("at iteration {iter}")
    };
    Err(Error::Numerical {
        what: method.name().into(),
        reason: format!(
            "the objective became {} {at}; {}",
            e.objective,
            method.non_finite_hint()
        ),
    })
}

/// Runs `method` from `resume` until a rule of `rules` fires, the observer or the process-wide
/// [`interrupt`] asks to stop, or a step fails.
///
/// The tolerance compares `e = sqrt(2·objective)` over windows of [`TOL_EVERY`] iterations
/// against `e` at the first recorded iteration ([`StopRules::tol`]); early stopping needs
/// [`Eval::validation`]. A step that cannot be evaluated to finite numbers is an
/// [`Error::Numerical`] naming the method and the iteration.
pub fn run(
    method: &mut dyn Method,
    rules: &StopRules,
    resume: Resume,
    clock: Clock,
    observer: &mut dyn Observer,
) -> Result<Outcome> {
    let mut history: Vec<IterRecord> = Vec::new();
    let mut plateau = resume.plateau;
    let use_pg = rules.pg_tol > 0.0;
    let record = |iter: usize, e: &Eval, pg: Option<f64>| IterRecord {
        iter,
        objective: e.objective,
        rel_error: e.rel_error,
        seconds: clock.total(),
        projected_gradient: pg,
    };
    let finish = |history, n_iter, stop_reason, warnings, plateau| Outcome {
        history,
        n_iter,
        stop_reason,
        warnings,
        plateau,
    };
    let e0 = method.start()?;
    let mut pg0 = None;
    if let Some(e0) = &e0 {
        check_finite(method, e0, resume.done)?;
        if use_pg {
            pg0 = Some(method.projected_gradient().ok_or_else(|| {
                Error::invalid(
                    "pg_tol",
                    rules.pg_tol,
                    "this solver cannot compute the projected gradient; use `tol` instead",
                )
            })?);
        }
        let rec = record(resume.done, e0, pg0);
        history.push(rec);
        let stop = observer.on_iter(&rec) == Control::Stop || interrupt::requested();
        let stop = method
            .agree(stop.then_some(StopReason::Interrupted), false)
            .0
            .is_some();
        if stop {
            return Ok(finish(
                history,
                resume.done,
                StopReason::Interrupted,
                vec![],
                plateau,
            ));
        }
    } else if use_pg {
        return Err(Error::invalid(
            "pg_tol",
            rules.pg_tol,
            "this method cannot compute the projected gradient; use `tol` instead",
        ));
    }
    if resume.done >= rules.max_iter {
        return Ok(finish(history, resume.done, StopReason::MaxIter, vec![], plateau));
    }
    // Objectives at the first recorded iteration and at the start of the tolerance window.
    let mut first = e0.map(|e| e.objective).or(resume.first);
    let mut window = match e0 {
        Some(e) => Some(e.objective),
        None => resume.window,
    };
    let checkpoints = method.checkpoints();
    let mut iter = resume.done;
    let mut warnings = Vec::new();
    let stop_reason = loop {
        iter += 1;
        let mut within = Within {
            observer: &mut *observer,
            clock,
            max_seconds: rules.max_seconds,
            reason: None,
        };
        let mut converged = false;
        let e = match method.step(iter, &mut within)? {
            Step::Done(e) => e,
            Step::Converged(e) => {
                converged = true;
                e
            }
            Step::Stopped => {
                iter -= 1;
                break within.reason.unwrap_or(StopReason::Interrupted);
            }
            Step::Unevaluated => {
                let reason = if interrupt::requested() {
                    Some(StopReason::Interrupted)
                } else {
                    rules.check_unevaluated(iter, clock.elapsed())
                };
                let Some(reason) = method.agree(reason, false).0 else {
                    continue;
                };
                if let Some(e) = method.evaluate()? {
                    check_finite(method, &e, iter)?;
                    let rec = record(iter, &e, None);
                    history.push(rec);
                    observer.on_iter(&rec);
                    method.after_iter(&rec)?;
                    if checkpoints && matches!(reason, StopReason::Interrupted | StopReason::TimeLimit) {
                        method.checkpoint(&Progress {
                            done: iter,
                            first,
                            window,
                            plateau,
                            seconds: clock.total(),
                            history: &history,
                        })?;
                    }
                }
                break reason;
            }
        };
        check_finite(method, &e, iter)?;
        let pg = if use_pg { method.projected_gradient() } else { None };
        let rec = record(iter, &e, pg);
        history.push(rec);
        let f0 = *first.get_or_insert(e.objective);
        // Without a window yet (no iteration 0), NaN keeps the tolerance from firing.
        let w = window.unwrap_or(f64::NAN);
        let mut reason = if converged {
            Some(StopReason::Converged)
        } else {
            rules.check(iter, f0, w, e.objective, clock.elapsed())
        };
        if let (Some(p0), Some(p)) = (pg0, pg) {
            if rules.pg_converged(p0, p) {
                reason = Some(StopReason::Converged);
            }
        }
        if let (Some(patience), Some(v)) = (rules.patience, e.validation) {
            match &mut plateau {
                Some(p) if v >= p.best => {
                    p.wait += 1;
                    if p.wait >= patience {
                        reason = Some(StopReason::EarlyStopped);
                    }
                }
                _ => {
                    plateau = Some(Plateau {
                        best: v,
                        best_iter: iter,
                        wait: 0,
                    });
                    method.keep_best(iter);
                }
            }
        }
        if observer.on_iter(&rec) == Control::Stop || interrupt::requested() {
            reason = Some(StopReason::Interrupted);
        }
        method.after_iter(&rec)?;
        if iter % TOL_EVERY == 0 || window.is_none() {
            window = Some(e.objective);
        }
        let due = checkpoints && observer.checkpoint_due();
        let (reason, due) = method.agree(reason, due);
        let save_at_end = matches!(reason, Some(StopReason::Interrupted | StopReason::TimeLimit));
        if checkpoints && (save_at_end || due) {
            method.checkpoint(&Progress {
                done: iter,
                first,
                window,
                plateau,
                seconds: clock.total(),
                history: &history,
            })?;
        }
        if let Some(r) = reason {
            break r;
        }
    };
    warnings.extend(rules.warning(stop_reason));
    if stop_reason != StopReason::Interrupted && rules.patience.is_some() {
        if let Some(p) = plateau {
            if p.best_iter != iter {
                method.restore_best();
                warnings.push(Warning::RestoredBest {
                    best: p.best_iter,
                    score: p.best,
                    last: iter,
                });
            }
        }
    }
    Ok(finish(history, iter, stop_reason, warnings, plateau))
}

#[cfg(test)]
mod tests;
