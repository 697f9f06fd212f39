//! The engine's rules on a toy method: gradient descent on `f(x) = ½‖x − c‖²` (objective
//! `f + 1`, so that the tolerance rule has a positive reference), with a validation score that
//! can be scripted.

use std::cell::Cell;

use super::*;

struct Toy {
    x: Vec<f64>,
    c: Vec<f64>,
    lr: f64,
    /// Validation scores by iteration (cycled); `None`: no validation.
    val: Option<Vec<f64>>,
    /// Mini-batches per step (each reported to `within`).
    batches: usize,
    /// Sleep per step (time-budget tests).
    sleep_ms: u64,
    /// Iteration at which the objective becomes NaN.
    nan_at: Option<usize>,
    kept: Option<(usize, Vec<f64>)>,
    restored: bool,
    after: usize,
    evaluate_start: bool,
    /// Evaluate only every this many iterations ([`Step::Unevaluated`] between).
    eval_every: usize,
}

impl Toy {
    fn new() -> Self {
        Toy {
            x: vec![0.0; 3],
            c: vec![1.0, -2.0, 3.0],
            lr: 0.1,
            val: None,
            batches: 1,
            sleep_ms: 0,
            nan_at: None,
            kept: None,
            restored: false,
            after: 0,
            evaluate_start: true,
            eval_every: 1,
        }
    }

    fn eval(&self, iter: usize) -> Eval {
        let f: f64 = self
            .x
            .iter()
            .zip(&self.c)
            .map(|(x, c)| 0.5 * (x - c).powi(2))
            .sum();
        let norm: f64 = self.c.iter().map(|c| c * c).sum::<f64>().sqrt();
        let mut e = Eval::new(f + 1.0, (2.0 * f).sqrt() / norm);
        if self.nan_at == Some(iter) {
            e.objective = f64::NAN;
        }
        e.validation = self.val.as_ref().map(|v| v[iter % v.len()]);
        e
    }
}

impl Method for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn start(&mut self) -> Result<Option<Eval>> {
        Ok(self.evaluate_start.then(|| self.eval(0)))
    }

    fn step(&mut self, iter: usize, within: &mut Within<'_>) -> Result<Step> {
        for b in 0..self.batches {
            for (x, c) in self.x.iter_mut().zip(&self.c) {
                *x -= self.lr / self.batches as f64 * (*x - c);
            }
            if self.sleep_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(self.sleep_ms));
            }
            // A method that skips evaluations here runs whole iterations (no `within`).
            if self.eval_every == 1 && !within.go_on((iter - 1) * self.batches + b + 1, 1000) {
                return Ok(Step::Stopped);
            }
        }
        if iter % self.eval_every != 0 {
            return Ok(Step::Unevaluated);
        }
        Ok(Step::Done(self.eval(iter)))
    }

    fn projected_gradient(&mut self) -> Option<f64> {
        Some(
            self.x
                .iter()
                .zip(&self.c)
                .map(|(x, c)| (x - c).powi(2))
                .sum::<f64>()
                .sqrt(),
        )
    }

    fn keep_best(&mut self, iter: usize) {
        self.kept = Some((iter, self.x.clone()));
    }

    fn restore_best(&mut self) {
        if let Some((_, x)) = &self.kept {
            self.x = x.clone();
            self.restored = true;
        }
    }

    fn evaluate(&mut self) -> Result<Option<Eval>> {
        Ok(Some(self.eval(usize::MAX)))
    }

    fn after_iter(&mut self, _rec: &IterRecord) -> Result<()> {
        self.after += 1;
        Ok(())
    }
}

fn go(t: &mut Toy, rules: &StopRules) -> Outcome {
    run(t, rules, Resume::default(), Clock::start(), &mut Silent).unwrap()
}

#[test]
fn max_iter_with_a_tolerance_warns_and_records_every_iteration() {
    let mut t = Toy::new();
    let out = go(&mut t, &StopRules::max_iter(5).with_tol(1e-12));
    assert_eq!(out.stop_reason, StopReason::MaxIter);
    assert_eq!(out.n_iter, 5);
    assert_eq!(
        out.history.iter().map(|r| r.iter).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    assert!(matches!(
        out.warnings.as_slice(),
        [Warning::MaxIterReached {
            max_iter: 5,
            rule: Rule::Tol,
            ..
        }]
    ));
    assert_eq!(t.after, 5, "after_iter once per recorded iteration");
    // Without a tolerance, max_iter is what was asked: no warning.
    let out = go(&mut Toy::new(), &StopRules::max_iter(5));
    assert!(out.warnings.is_empty());
    // The objective decreases on this toy: the history says so.
    assert!(out.history.windows(2).all(|w| w[1].objective < w[0].objective));
}

#[test]
fn the_tolerance_stops_on_a_multiple_of_the_window() {
    let out = go(&mut Toy::new(), &StopRules::max_iter(10_000).with_tol(1e-3));
    assert_eq!(out.stop_reason, StopReason::Converged);
    assert_eq!(out.n_iter % TOL_EVERY, 0);
    assert!(out.warnings.is_empty());
}

#[test]
fn the_projected_gradient_rule_converges_and_needs_a_method_that_computes_it() {
    let rules = StopRules {
        pg_tol: 1e-3,
        ..StopRules::max_iter(10_000)
    };
    let out = go(&mut Toy::new(), &rules);
    assert_eq!(out.stop_reason, StopReason::Converged);
    let (p0, p) = (
        out.history[0].projected_gradient.unwrap(),
        out.history.last().unwrap().projected_gradient.unwrap(),
    );
    assert!(p <= 1e-3 * p0 && p0 > 0.0);
    // A method without iteration 0 has no reference gradient: refused.
    let mut t = Toy::new();
    t.evaluate_start = false;
    assert!(run(&mut t, &rules, Resume::default(), Clock::start(), &mut Silent).is_err());
}

#[test]
fn the_time_budget_ends_a_fit_between_and_within_iterations() {
    let mut t = Toy::new();
    t.sleep_ms = 20;
    let out = go(
        &mut t,
        &StopRules::max_iter(1_000_000).with_max_seconds(Some(0.1)),
    );
    assert_eq!(out.stop_reason, StopReason::TimeLimit);
    assert!(out.n_iter >= 1 && out.n_iter < 50, "{}", out.n_iter);
    // Within an iteration of many batches the budget stops the step; it is not recorded.
    let mut t = Toy::new();
    t.sleep_ms = 20;
    t.batches = 100;
    let out = go(&mut t, &StopRules::max_iter(10).with_max_seconds(Some(0.1)));
    assert_eq!(out.stop_reason, StopReason::TimeLimit);
    assert_eq!(out.n_iter, 0);
    assert_eq!(out.history.len(), 1);
}

#[test]
fn the_observer_stops_a_fit_after_an_iteration_or_within_one() {
    let mut seen = Vec::new();
    let mut obs = |r: &IterRecord| {
        seen.push(r.iter);
        if r.iter == 3 {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let out = run(
        &mut Toy::new(),
        &StopRules::max_iter(100).with_tol(1e-9),
        Resume::default(),
        Clock::start(),
        &mut obs,
    )
    .unwrap();
    assert_eq!(out.stop_reason, StopReason::Interrupted);
    assert_eq!(out.n_iter, 3);
    assert!(
        out.warnings.is_empty(),
        "no max_iter warning for an interrupted fit"
    );
    assert_eq!(seen, [0, 1, 2, 3]);

    struct StopInside(Cell<usize>);
    impl Observer for StopInside {
        fn on_iter(&mut self, _: &IterRecord) -> Control {
            Control::Continue
        }
        fn on_progress(&mut self, done: usize, _total: usize) -> Control {
            self.0.set(done);
            if done == 25 {
                Control::Stop
            } else {
                Control::Continue
            }
        }
    }
    let mut t = Toy::new();
    t.batches = 10;
    let mut obs = StopInside(Cell::new(0));
    let out = run(
        &mut t,
        &StopRules::max_iter(100),
        Resume::default(),
        Clock::start(),
        &mut obs,
    )
    .unwrap();
    assert_eq!(
        (out.stop_reason, out.n_iter, obs.0.get()),
        (StopReason::Interrupted, 2, 25)
    );
}

#[test]
fn early_stopping_restores_the_best_iteration() {
    let mut t = Toy::new();
    // Best at iteration 2 (score 1.0), then no improvement.
    t.val = Some(vec![9.0, 3.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]);
    let rules = StopRules {
        patience: Some(3),
        ..StopRules::max_iter(100)
    };
    let out = go(&mut t, &rules);
    assert_eq!(out.stop_reason, StopReason::EarlyStopped);
    assert_eq!(out.n_iter, 5);
    assert!(t.restored);
    assert_eq!(t.kept.as_ref().map(|k| k.0), Some(2));
    assert_eq!(
        out.warnings,
        [Warning::RestoredBest {
            best: 2,
            score: 1.0,
            last: 5
        }]
    );
    // The plateau state resumes: one more non-improving iteration stops at once.
    let mut t = Toy::new();
    t.val = Some(vec![5.0]);
    t.evaluate_start = false;
    let resume = Resume {
        done: 5,
        plateau: Some(Plateau {
            best: 1.0,
            best_iter: 2,
            wait: 2,
        }),
        ..Resume::default()
    };
    let out = run(&mut t, &rules, resume, Clock::start(), &mut Silent).unwrap();
    assert_eq!((out.stop_reason, out.n_iter), (StopReason::EarlyStopped, 6));
    assert_eq!(out.history.iter().map(|r| r.iter).collect::<Vec<_>>(), [6]);
}

#[test]
fn a_non_finite_objective_is_an_error_naming_the_method_and_iteration() {
    let mut t = Toy::new();
    t.nan_at = Some(4);
    let e = run(
        &mut t,
        &StopRules::max_iter(10),
        Resume::default(),
        Clock::start(),
        &mut Silent,
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("toy") && msg.contains("iteration 4"), "{msg}");
    let mut t = Toy::new();
    t.nan_at = Some(0);
    let msg = run(
        &mut t,
        &StopRules::max_iter(10),
        Resume::default(),
        Clock::start(),
        &mut Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("at the start"), "{msg}");
}

#[test]
fn max_iter_zero_evaluates_only_the_start() {
    let out = go(&mut Toy::new(), &StopRules::max_iter(0));
    assert_eq!(
        (out.stop_reason, out.n_iter, out.history.len()),
        (StopReason::MaxIter, 0, 1)
    );
}

#[test]
fn unevaluated_steps_are_not_recorded_and_the_last_one_is_evaluated() {
    // Evaluated every TOL_EVERY: the tolerance still works on its windows.
    let mut t = Toy::new();
    t.eval_every = TOL_EVERY;
    let out = go(&mut t, &StopRules::max_iter(10_000).with_tol(1e-3));
    assert_eq!(out.stop_reason, StopReason::Converged);
    assert_eq!(out.n_iter % TOL_EVERY, 0);
    assert!(out.history.iter().all(|r| r.iter % TOL_EVERY == 0));
    let mut full = Toy::new();
    let plain = go(&mut full, &StopRules::max_iter(10_000).with_tol(1e-3));
    assert_eq!(plain.n_iter, out.n_iter, "the same windows, the same stop");
    // max_iter on an unevaluated iteration: `evaluate` gives the last record.
    let mut t = Toy::new();
    t.eval_every = TOL_EVERY;
    let out = go(&mut t, &StopRules::max_iter(25));
    assert_eq!(out.stop_reason, StopReason::MaxIter);
    let iters: Vec<usize> = out.history.iter().map(|r| r.iter).collect();
    assert_eq!(iters, [0, 10, 20, 25]);
    assert_eq!(t.after, 3, "after_iter once per recorded iteration");
    // The time budget is checked on unevaluated iterations too.
    let mut t = Toy::new();
    t.eval_every = 1000;
    t.sleep_ms = 5;
    let out = go(&mut t, &StopRules::max_iter(100_000).with_max_seconds(Some(0.05)));
    assert_eq!(out.stop_reason, StopReason::TimeLimit);
    assert!(out.n_iter < 1000, "{}", out.n_iter);
    assert_eq!(out.history.last().unwrap().iter, out.n_iter);
}
