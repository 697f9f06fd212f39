//! The process-wide interrupt request. A front end sets it from its signal handler (the CLI on
//! Ctrl-C, once per process); every fit run by the [`engine`](super) checks it after each
//! iteration and inside long iterations, and then stops with
//! [`StopReason::Interrupted`](super::StopReason::Interrupted), keeping what it has learned.
//! The request stays set until [`clear`] is called, so a sweep of many fits stops as a whole.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks every running and later fit to stop; returns whether a request was already pending.
pub fn request() -> bool {
    REQUESTED.swap(true, Ordering::SeqCst)
}

/// Whether a stop has been requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Withdraws a pending request (e.g. before a new fit in a long-lived process).
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}
