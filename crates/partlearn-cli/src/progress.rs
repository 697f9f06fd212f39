//! Progress bars, warnings and the process's Ctrl-C handler. A leaf module: it imports only the
//! argument groups.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use partlearn::engine::{interrupt, Control, IterRecord, Observer, Warning};

use crate::args::Flags;

/// Installs the process's one Ctrl-C handler, also for SIGTERM and SIGHUP (a `kill`, a closed
/// terminal or SSH session): the first signal asks every fit to stop after its current iteration
/// (or mini-batch) and save ([`interrupt::request`]), which also ends a sweep; a second one
/// exits at once with code 130. Installed only for the commands that check the request
/// (`honours_interrupt` in main.rs): any other would swallow the first signal and run on.
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

/// `history.jsonl` kept on disk while a fit runs, so that a killed process leaves the
/// iterations it did: every line is appended with one `write` (no user-space buffer: the OS has
/// it when the line is done, which is all a SIGKILL needs). Lines wait in memory until the fit
/// has run `after` (short fits touch no file); the file starts with `initial` (the history a
/// resumed run continues). The end-of-run writer replaces the file atomically with the run's
/// history, so the final file is exactly what it writes. A failing write stops the log with one
/// warning (the history is still written at the end).
pub struct HistoryLog {
    path: PathBuf,
    file: Option<File>,
    pending: Vec<u8>,
    start: Instant,
    after: Duration,
    failed: bool,
}

impl HistoryLog {
    /// A log at `path` that starts writing once the fit has run `after`, beginning with `initial`
    /// (whole JSON lines).
    pub fn new(path: PathBuf, after: Duration, initial: Vec<u8>) -> Self {
        let mut log = HistoryLog {
            path,
            file: None,
            pending: initial,
            start: Instant::now(),
            after,
            failed: false,
        };
        log.flush_due();
        log
    }

    /// Appends one history line (without its newline).
    pub fn push(&mut self, line: &str) {
        if self.failed {
            return;
        }
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        self.flush_due();
    }

    /// Writes what waits once the delay is over (creating or truncating the file the first time).
    fn flush_due(&mut self) {
        if self.failed || (self.file.is_none() && self.start.elapsed() < self.after) {
            return;
        }
        let result = match &mut self.file {
            Some(f) => f.write_all(&self.pending),
            None => File::create(&self.path).and_then(|mut f| {
                f.write_all(&self.pending)?;
                self.file = Some(f);
                Ok(())
            }),
        };
        self.pending.clear();
        if let Err(e) = result {
            self.failed = true;
            errln!(
                "warning: cannot keep {} up to date while the fit runs ({e}); it is written at the end",
                self.path.display()
            );
        }
    }
}

/// Seconds after which an NMF fit starts keeping `history.jsonl` on disk (`--history-after`).
pub const HISTORY_AFTER: f64 = 120.0;

/// The [`HistoryLog`] of a fit in the stage of `run_dir`, written once the fit has run
/// `after_seconds` (NMF fits: only long ones keep their history on disk as they go).
pub fn staged_history(run_dir: &partlearn::io::RunDir, after_seconds: f64) -> HistoryLog {
    HistoryLog::new(
        run_dir.path_of(partlearn::io::run::HISTORY_FILE),
        Duration::try_from_secs_f64(after_seconds).unwrap_or(Duration::MAX),
        Vec::new(),
    )
}

/// Answers [`Observer::checkpoint_due`] from a wall-clock interval (`None`: never).
#[derive(Clone, Copy, Debug)]
pub struct CheckpointTimer {
    every: Option<Duration>,
    last: Instant,
}

impl CheckpointTimer {
    pub fn new(every: Option<Duration>) -> Self {
        CheckpointTimer {
            every,
            last: Instant::now(),
        }
    }

    /// True once `every` passed since the last `true` (or the start).
    pub fn due(&mut self) -> bool {
        let due = self.every.is_some_and(|every| self.last.elapsed() >= every);
        if due {
            self.last = Instant::now();
        }
        due
    }
}

/// Draws the objective and relative error of each iteration; silent when stderr is not a
/// terminal or with --quiet. With a [`HistoryLog`], appends each iteration's record to it; with
/// a checkpoint interval, asks for a checkpoint whenever that much time passed since the last.
pub struct FitProgress {
    bar: ProgressBar,
    history: Option<HistoryLog>,
    checkpoints: CheckpointTimer,
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
        FitProgress {
            bar,
            history: None,
            checkpoints: CheckpointTimer::new(None),
        }
    }

    /// Keeps `history.jsonl` on disk as the fit goes ([`HistoryLog`]).
    pub fn with_history(mut self, log: HistoryLog) -> Self {
        self.history = Some(log);
        self
    }

    /// Asks for a checkpoint every `every` of wall-clock time (`None`: never).
    pub fn checkpoint_every(mut self, every: Option<Duration>) -> Self {
        self.checkpoints = CheckpointTimer::new(every);
        self
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
        if let Some(log) = &mut self.history {
            if let Ok(line) = serde_json::to_string(r) {
                log.push(&line);
            }
        }
        Control::Continue
    }

    fn checkpoint_due(&mut self) -> bool {
        self.checkpoints.due()
    }
}

/// Progress of mini-batch training: a bar over all batches of the run with its ETA, and the last
/// epoch's loss; silent when stderr is not a terminal or with --quiet. With a [`HistoryLog`],
/// appends each epoch's record to it; with a checkpoint interval, asks for a checkpoint whenever
/// that much wall-clock time passed since the last one ([`Observer::checkpoint_due`]).
pub struct EpochProgress {
    bar: ProgressBar,
    history: Option<HistoryLog>,
    checkpoints: CheckpointTimer,
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
        EpochProgress {
            bar,
            history: None,
            checkpoints: CheckpointTimer::new(None),
        }
    }

    /// Keeps `history.jsonl` on disk as training goes ([`HistoryLog`]).
    pub fn with_history(mut self, log: HistoryLog) -> Self {
        self.history = Some(log);
        self
    }

    /// Asks for a checkpoint every `every` of wall-clock time (`None`: never).
    pub fn checkpoint_every(mut self, every: Option<Duration>) -> Self {
        self.checkpoints = CheckpointTimer::new(every);
        self
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

    fn on_history(&mut self, line: &str) {
        if let Some(log) = &mut self.history {
            log.push(line);
        }
    }

    fn checkpoint_due(&mut self) -> bool {
        self.checkpoints.due()
    }
}
