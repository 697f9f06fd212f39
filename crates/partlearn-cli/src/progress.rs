//! Progress bars and Ctrl-C handling for long fits.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use partlearn::observe::{Control, IterRecord, Observer};

/// Installs a Ctrl-C handler: the first press sets the returned flag (the fit stops after the
/// current iteration and saves), a second press exits at once.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    // Failing to install the handler (e.g. one is already set) only loses graceful Ctrl-C.
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting without saving");
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: stopping after this iteration and saving what was learned (Ctrl-C again to abort)"
        );
    });
    flag
}

/// Draws the objective and relative error of each iteration; silent when stderr is not a
/// terminal or with --quiet. Stops the fit when the interrupt flag is set.
pub struct FitProgress {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
}

impl FitProgress {
    pub fn new(max_iter: usize, quiet: bool, stop: Arc<AtomicBool>) -> Self {
        let bar = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::new(max_iter.min(u64::MAX as usize) as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} it  {msg}  (eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        };
        FitProgress { bar, stop }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for FitProgress {
    fn on_iter(&mut self, r: &IterRecord) -> Control {
        self.bar.set_position(r.iter as u64);
        self.bar.set_message(format!(
            "objective {:.6e}  rel. error {:.5}",
            r.objective, r.rel_error
        ));
        if self.stop.load(Ordering::SeqCst) {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

/// Progress of mini-batch training: a bar over all batches of the run with its ETA, and the last
/// epoch's loss; silent when stderr is not a terminal or with --quiet. Ctrl-C stops after the
/// current batch (the trainer then saves a checkpoint).
pub struct EpochProgress {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
}

impl EpochProgress {
    pub fn new(quiet: bool, stop: Arc<AtomicBool>) -> Self {
        let bar = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {percent:>3}%  {msg}  (eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        };
        EpochProgress { bar, stop }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn control(&self) -> Control {
        if self.stop.load(Ordering::SeqCst) {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

impl Observer for EpochProgress {
    fn on_iter(&mut self, r: &IterRecord) -> Control {
        self.bar.set_message(format!(
            "epoch {}  loss {:.6}  rel. error {:.5}",
            r.iter, r.objective, r.rel_error
        ));
        self.control()
    }

    fn on_progress(&mut self, done: usize, total: usize) -> Control {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        self.control()
    }
}
