//! The `partlearn` command line. Flags are parsed here into the library's option structs, one
//! library call does the work, and this crate draws progress, writes run folders and maps errors
//! to exit codes (2 for bad input, 130 after Ctrl-C). No algorithm lives here.

mod ae_cmd;
mod args;
mod bench;
mod data_cmd;
mod deep_cmd;
mod eval_cmd;
mod fit;
mod neural_cmd;
mod output;
mod progress;
mod report_cmd;
mod sweep_cmd;
mod transform;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use args::{DataArgs, Dtype, Exit};

/// Part-based representations of non-negative data: NMF and sparse non-negative auto-encoders.
#[derive(Parser, Debug)]
#[command(name = "partlearn", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Inspect or export a data set.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Fit a model and write its run folder.
    #[command(subcommand)]
    Fit(fit::FitCommand),
    /// Encode data with the dictionary of a fitted run; writes the codes as .npy.
    Transform(transform::TransformArgs),
    /// Measure a fitted run (METHODS.md §7): metrics.json and evaluation figures.
    Eval(eval_cmd::EvalArgs),
    /// Fit and evaluate every point of a parameter grid; table and charts of the trade-offs.
    Sweep(sweep_cmd::SweepArgs),
    /// One self-contained HTML page comparing runs: metrics table, figures, options.
    Report(report_cmd::ReportArgs),
    /// Benchmarks against the GEMM bound.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Published tables reproduced side by side with partlearn's numbers.
    #[command(subcommand)]
    Reproduce(neural_cmd::ReproduceCommand),
}

/// Runs a command line given as arguments (used by `sweep` to run its points exactly like
/// hand-typed `fit` and `eval` commands).
pub fn dispatch(args: Vec<String>) -> anyhow::Result<()> {
    let cli = Cli::try_parse_from(args).map_err(|e| anyhow::anyhow!("{}", clap_one_line(&e)))?;
    run_command(cli.command)
}

/// A clap parse error on one line: its message and tips, without the usage block and the
/// "For more information" footer (which point to `--help`, named once at the end).
fn clap_one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    format!("{}; see --help", parts.join("; ").replace(":; ", ": "))
}

/// The error and its causes on one line, each cause only when the text so far does not already
/// contain it (library errors often quote their source's message).
fn error_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if msg.contains(c.trim()) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(c.trim());
    }
    msg.replace('\n', " ")
}

fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Data(c) => data_cmd::run(c),
        Command::Fit(c) => fit::run(c),
        Command::Transform(a) => transform::run(a),
        Command::Bench(c) => bench::run(c),
        Command::Report(a) => report_cmd::run(a),
        Command::Eval(a) => eval_cmd::run(a),
        Command::Sweep(a) => sweep_cmd::run(a),
        Command::Reproduce(c) => neural_cmd::reproduce(c),
    }
}

/// `cmd` and all its subcommands parse `-1` as a value (so `-k -1` is reported as an invalid
/// value of `-k`, not as an unknown argument `-1`).
fn negative_numbers(cmd: clap::Command) -> clap::Command {
    cmd.allow_negative_numbers(true).mut_subcommands(negative_numbers)
}

fn main() -> ExitCode {
    let parsed = negative_numbers(Cli::command())
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: printed as clap renders them, exit 0.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // A bare `partlearn` or `partlearn fit`: the help, on stderr, exit 2.
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {}", clap_one_line(&e));
            return ExitCode::from(2);
        }
    };
    progress::install_interrupt_handler();
    let result = run_command(cli.command);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(Exit::Interrupted) = e.downcast_ref::<Exit>() {
                return ExitCode::from(130);
            }
            // One line: the library's messages already name the problem and the fix.
            eprintln!("error: {}", error_line(&e));
            ExitCode::from(2)
        }
    }
}
