//! Typed warnings of a fit: what went less well than asked, without failing (scikit-learn's
//! `ConvergenceWarning` and its kin). A front end decides how to show them; [`Warning::describe`]
//! lets it name parameters its own way (the CLI as flags, Python as keyword arguments).

use serde::{Serialize, Serializer};

/// A parameter named in a warning, so that each front end can spell it its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Param {
    /// `max_iter` (the CLI's `--max-iter`; epochs for mini-batch training).
    MaxIter,
    /// `tol`.
    Tol,
    /// `pg_tol`.
    PgTol,
    /// `init`.
    Init,
    /// `max_seconds`.
    MaxSeconds,
    /// `decoder_activation`.
    DecoderActivation,
}

impl Param {
    /// The library's (and Python's) name: `max_iter`, `tol`, …
    pub fn name(self) -> &'static str {
        match self {
            Param::MaxIter => "max_iter",
            Param::Tol => "tol",
            Param::PgTol => "pg_tol",
            Param::Init => "init",
            Param::MaxSeconds => "max_seconds",
            Param::DecoderActivation => "decoder_activation",
        }
    }
}

/// Which tolerance a fit ended without meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The windowed relative decrease of the objective ([`super::StopRules::tol`]).
    Tol,
    /// Lin's projected-gradient rule ([`super::StopRules::pg_tol`]).
    PgTol,
}

/// Something the user should know about a finished fit.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Warning {
    /// `max_iter` ended a fit before its tolerance `rule` (of `value`) was met.
    MaxIterReached {
        /// The iteration limit that ended the fit.
        max_iter: usize,
        /// The tolerance rule that was not met.
        rule: Rule,
        /// Its tolerance.
        value: f64,
    },
    /// Multiplicative updates cannot move the zeros of an NNDSVD start.
    MuKeepsNndsvdZeros,
    /// A projected-gradient step size of sparse NMF fell below 1e-200: no further progress is
    /// possible at this sparseness; the factors are those of the last successful step.
    StepSizeUnderflow,
    /// Early stopping returned the state of iteration `best` (validation score `score`), not of
    /// the last iteration `last`.
    RestoredBest {
        /// The iteration whose state was restored.
        best: usize,
        /// Its validation score.
        score: f64,
        /// The last iteration run.
        last: usize,
    },
    /// The time budget ended iteration `iter` (an epoch) after `done` of its `total` steps
    /// (mini-batches); resuming continues it.
    PartialIteration {
        /// The incomplete iteration.
        iter: usize,
        /// Steps of it that were done.
        done: usize,
        /// Steps it has.
        total: usize,
    },
    /// The data reach `data_max` but a sigmoid output stays below 1.
    SigmoidBelowData {
        /// The largest value of the data.
        data_max: f64,
    },
}

impl Warning {
    /// The message, with each parameter spelled by `name` (e.g. `|p| format!("--{}", …)`).
    pub fn describe(&self, name: impl Fn(Param) -> String) -> String {
        match self {
            Warning::MaxIterReached { max_iter, rule, value } => {
                let p = match rule {
                    Rule::Tol => Param::Tol,
                    Rule::PgTol => Param::PgTol,
                };
                format!(
                    "maximum number of iterations {max_iter} reached before convergence ({} = {value:e}); increase {} or {}",
                    name(p),
                    name(Param::MaxIter),
                    name(p)
                )
            }
            Warning::MuKeepsNndsvdZeros => format!(
                "multiplicative updates cannot move the zeros of an NNDSVD start; prefer {} nndsvda or nndsvdar",
                name(Param::Init)
            ),
            Warning::StepSizeUnderflow => "a projected-gradient step size fell below 1e-200 (no further progress possible at this sparseness); the factors are those of the last successful step".into(),
            Warning::RestoredBest { best, score, last } => format!(
                "kept the weights of epoch {best} (best validation MSE {score:.6}); the last epoch was {last}"
            ),
            Warning::PartialIteration { iter, done, total } => format!(
                "the time budget ended epoch {iter} after {done} of {total} batches; resuming continues it"
            ),
            Warning::SigmoidBelowData { data_max } => format!(
                "the data reach {data_max:.3} but a sigmoid decoder outputs values below 1; scale the data to [0, 1] or use {} leaky-relu",
                name(Param::DecoderActivation)
            ),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(|p| p.name().to_string()))
    }
}

/// Warnings are stored (run.json, `--json`) as their messages in the library's terms.
impl Serialize for Warning {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_named_by_the_front_end() {
        let w = Warning::MaxIterReached {
            max_iter: 200,
            rule: Rule::Tol,
            value: 1e-4,
        };
        assert_eq!(
            w.to_string(),
            "maximum number of iterations 200 reached before convergence (tol = 1e-4); increase max_iter or tol"
        );
        let flags = w.describe(|p| format!("--{}", p.name().replace('_', "-")));
        assert!(flags.ends_with("increase --max-iter or --tol"), "{flags}");
        assert_eq!(
            serde_json::to_value(&w).unwrap(),
            serde_json::Value::String(w.to_string())
        );
    }
}
