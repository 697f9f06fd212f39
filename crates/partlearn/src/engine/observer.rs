//! What a fit tells the outside world: every iteration goes to an [`Observer`] as an
//! [`IterRecord`] (objective, relative error, elapsed seconds), and the observer may ask the fit
//! to stop (a GUI button, a notebook callback). The library never prints: the CLI's observer
//! draws the progress bar.

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

    /// The method's own history record of the iteration just done, as one compact JSON object
    /// (a line of `history.jsonl`, without the newline), for methods whose history holds more
    /// than the [`IterRecord`] (auto-encoder epochs). Lets a front end keep the history on disk
    /// as the fit goes. Called before [`Observer::on_iter`] of the same iteration.
    fn on_history(&mut self, _line: &str) {}

    /// Asked between mini-batches by methods that write checkpoints: `true` asks for one now (at
    /// the next point where the state can be saved: after this mini-batch, or at the end of the
    /// epoch). A front end answers from a wall-clock interval, so that a killed process loses at
    /// most that much work.
    fn checkpoint_due(&mut self) -> bool {
        false
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
