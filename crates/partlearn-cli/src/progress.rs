//! Progress bars, warnings and the process's Ctrl-C handler. A leaf module: it imports only the
//! argument groups.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use partlearn::engine::{interrupt, Control, IterRecord, Observer, Warning};

use crate::args::Flags;

/// Installs the process's one Ctrl-C handler, also for SIGTERM and SIGHUP (a `kill`, a closed
/// terminal or SSH session): the first signal asks every fit to stop after its current iteration
/// (or mini-batch) and save ([`interrupt::request`]), which also ends a sweep; a second one
/// exits at once with code 130.
pub fn install_interrupt_handler() {
    // Failing to install the handler only loses graceful Ctrl-C (the default then kills the
    // process, which never leaves a half-written run folder in place).
    let _ = ctrlc::set_handler(|| {
        if interrupt::request() {
            errln!("\ninterrupted again: exiting without saving");
            std::process::exit(130);
        }
        errln!(
            "\ninterrupt: stopping after this iteration and saving what was learned (Ctrl-C again to abort)"
        );
    });
}

/// Prints each warning on stderr, its parameters named as the command's flags (`flags`: e.g.
/// [`Flags::epochs`] where `max_iter` is `--epochs`).
pub fn print_warnings(warnings: &[Warning], flags: &Flags) {
    for w in warnings {
        errln!("warning: {}", w.describe(|p| flags.param(p)));
    }
}

/// Draws the objective and relative error of each iteration; silent when stderr is not a
/// terminal or with --quiet.
pub struct FitProgress {
    bar: ProgressBar,
}

impl FitProgress {
    pub fn new(max_iter: usize, quiet: bool) -> Self {
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
        FitProgress { bar }
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
        Control::Continue
    }
}

/// Progress of mini-batch training: a bar over all batches of the run with its ETA, and the last
/// epoch's loss; silent when stderr is not a terminal or with --quiet.
pub struct EpochProgress {
    bar: ProgressBar,
}

impl EpochProgress {
    pub fn new(quiet: bool) -> Self {
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
        EpochProgress { bar }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for EpochProgress {
    fn on_iter(&mut self, r: &IterRecord) -> Control {
        self.bar.set_message(format!(
            "epoch {}  loss {:.6}  rel. error {:.5}",
            r.iter, r.objective, r.rel_error
        ));
        Control::Continue
    }

    fn on_progress(&mut self, done: usize, total: usize) -> Control {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        Control::Continue
    }
}
