//! The `partlearn` command line. Flags are parsed here into the library's option structs, one
//! library call does the work, and this crate draws progress, writes run folders and maps errors
//! to exit codes (2 for bad input, 130 after Ctrl-C). No algorithm lives here. Errors are printed
//! in one place, [`error_line`], which words the library's errors with the running command's
//! flags ([`args::flag_error`]).

#[macro_use]
mod output;
mod ae_cmd;
mod args;
mod bench;
mod bench_online;
mod data_cmd;
mod deep_cmd;
mod dist_cmd;
mod eval_cmd;
mod fit;
mod neural_cmd;
mod nmf_cmd;
mod online_cmd;
mod progress;
mod report_cmd;
mod resume;
mod select_cmd;
mod study_cmd;
mod sweep_cmd;
mod transform;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use args::{DataArgs, Dtype, Exit, Flags};

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
    /// Choose k: score candidate ranks by the stability of seeded NMF runs (consensus, atoms).
    SelectK(select_cmd::SelectArgs),
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
/// hand-typed `fit` and `eval` commands). A library error comes back worded with that command's
/// flags; a Ctrl-C ([`Exit::Interrupted`]) comes back as it is.
pub fn dispatch(args: Vec<String>) -> anyhow::Result<()> {
    let one_line = |e: clap::Error| anyhow::anyhow!("{}", clap_one_line(&e));
    let matches = negative_numbers(Cli::command())
        .try_get_matches_from(args)
        .map_err(one_line)?;
    let cli = Cli::from_arg_matches(&matches).map_err(one_line)?;
    run_command(cli.command).map_err(|e| {
        let library = e.chain().any(|c| c.downcast_ref::<partlearn::Error>().is_some());
        if library && e.downcast_ref::<Exit>().is_none() {
            anyhow::anyhow!("{}", error_line(&e, &command_flags(&matches)))
        } else {
            e
        }
    })
}

/// The flags of the subcommand that `matches` selected (`fit ae`: its long flags, and
/// `--epochs` for `max_iter`).
fn command_flags(matches: &clap::ArgMatches) -> Flags {
    let root = Cli::command();
    let mut cmd = &root;
    let mut path = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        let Some(c) = cmd.find_subcommand(name) else {
            break;
        };
        cmd = c;
        path.push(name);
        m = sub;
    }
    let longs = cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(String::from)
        .collect();
    Flags::of_command(&path, longs)
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
/// contain it (library errors often quote their source's message). Library errors, and the
/// parameters named in the causes, are worded with the command's `flags`.
fn error_line(e: &anyhow::Error, flags: &Flags) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let c = match cause.downcast_ref::<partlearn::Error>() {
            Some(e) => args::flag_error(e, flags),
            None => flags.rewrite(&cause.to_string()),
        };
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
        Command::SelectK(a) => select_cmd::run(a),
        Command::Reproduce(c) => neural_cmd::reproduce(c),
    }
}

/// Whether `command` checks [`partlearn::engine::interrupt`] and saves its work when asked to
/// stop: fits, sweeps, `select-k` and the part-based study. Every other command (data, transform,
/// eval, report, benchmarks, the Neural NMF table) keeps the default signal handling, so that
/// Ctrl-C, SIGTERM or SIGHUP ends it at once.
fn honours_interrupt(command: &Command) -> bool {
    match command {
        Command::Fit(_) | Command::Sweep(_) | Command::SelectK(_) => true,
        Command::Reproduce(r) => matches!(r, neural_cmd::ReproduceCommand::PartBasedStudy(_)),
        Command::Data(_)
        | Command::Transform(_)
        | Command::Eval(_)
        | Command::Report(_)
        | Command::Bench(_) => false,
    }
}

/// `cmd` and all its subcommands parse `-1` as a value (so `-k -1` is reported as an invalid
/// value of `-k`, not as an unknown argument `-1`).
fn negative_numbers(cmd: clap::Command) -> clap::Command {
    cmd.allow_negative_numbers(true).mut_subcommands(negative_numbers)
}

/// Joins a list or range of numbers that starts with a minus sign (`-1,2`, `-1..5`, which clap
/// would take for a flag) to the flag before it (`--beta=-1,2`, `-k-1..5`), so that it is
/// reported as an invalid value of that flag. Arguments after `--` are left as they are.
fn join_negative_lists(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let is_flag = |a: &str| a.starts_with('-') && a.len() > 1 && !a.contains('=') && a != "--";
    let is_list = |a: &str| {
        let body = a.strip_prefix('-').unwrap_or("");
        body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            && (body.contains(',') || body.contains(".."))
            && body.chars().all(|c| c.is_ascii_digit() || ".,:eE+-".contains(c))
    };
    let mut out: Vec<std::ffi::OsString> = Vec::with_capacity(args.len());
    let mut rest = false;
    for arg in args {
        let s = arg.to_str().unwrap_or("");
        rest |= s == "--";
        let prev = out.last().and_then(|p| p.to_str()).unwrap_or("");
        let joined = (!rest && out.len() > 1 && is_list(s) && is_flag(prev) && !is_list(prev)).then(|| {
            if prev.starts_with("--") {
                format!("{prev}={s}")
            } else {
                format!("{prev}{s}")
            }
        });
        match (joined, out.last_mut()) {
            (Some(joined), Some(last)) => *last = joined.into(),
            _ => out.push(arg),
        }
    }
    out
}

fn main() -> ExitCode {
    let parsed = negative_numbers(Cli::command())
        .try_get_matches_from(join_negative_lists(std::env::args_os().collect()))
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
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
            errln!("error: {}", clap_one_line(&e));
            return ExitCode::from(2);
        }
    };
    if honours_interrupt(&cli.command) {
        progress::install_interrupt_handler();
    }
    let result = run_command(cli.command);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(Exit::Interrupted) = e.downcast_ref::<Exit>() {
                return ExitCode::from(130);
            }
            // A reader that closed the pipe (`| head`) wants no more: end quietly, as ripgrep does.
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<output::StdoutError>()
                    .is_some_and(|s| s.0.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            // One line: the library's messages already name the problem and the fix.
            errln!("error: {}", error_line(&e, &command_flags(&matches)));
            ExitCode::from(2)
        }
    }
}
