//! `partlearn report <RUN...> --out report.html`: one self-contained HTML page comparing runs and
//! showing `select-k` results (the library's `report` module builds it; this only collects the
//! folders and writes the file).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use partlearn::report::{render_with, ReportRun, ReportSelection};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run folders to compare (written by `partlearn fit`, ideally evaluated by `partlearn eval`),
    /// and `partlearn select-k` folders (shown in a "Choosing k" section).
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(long, value_name = "FILE", default_value = "report.html")]
    pub out: PathBuf,
    /// Page title.
    #[arg(long, default_value = "partlearn report")]
    pub title: String,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// No summary line.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: ReportArgs) -> Result<()> {
    partlearn::io::check_output_file(&a.out, a.force, b"<!DOCTYPE html>", "report")?;
    for run in &a.runs {
        partlearn::io::run::check_output_outside_run(run, &a.out)?;
    }
    // Folders that are not runs (e.g. `runs/*` matching a report file) are named in the error.
    let (mut runs, mut selections) = (Vec::new(), Vec::new());
    for p in &a.runs {
        if ReportSelection::is_selection(p) {
            selections.push(ReportSelection::load(p)?);
        } else {
            runs.push(ReportRun::load(p)?);
        }
    }
    let html = render_with(&runs, &selections, &a.title)?;
    partlearn::io::write_atomic(&a.out, html.as_bytes())?;
    if !a.quiet {
        let sel = match selections.len() {
            0 => String::new(),
            n => format!(", {n} rank selection(s)"),
        };
        outln!("wrote {} ({} runs{sel})", a.out.display(), runs.len());
    }
    Ok(())
}
