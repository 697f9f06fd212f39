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
    crate::args::check_out_parent(&a.out, "--out")?;
    partlearn::io::check_output_file(&a.out, a.force, b"<!DOCTYPE html>", "report")?;
    for run in &a.runs {
        crate::args::check_run_folder(run)?;
        partlearn::io::run::check_output_outside_run(run, &a.out)?;
    }
    // Folders that are not runs (e.g. `runs/*` matching a report file) are named in the error.
    let (mut runs, mut selections) = (Vec::new(), Vec::new());
    let mut seen: Vec<(PathBuf, PathBuf)> = Vec::new();
    for p in &a.runs {
        let canonical = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        if let Some((first, _)) = seen.iter().find(|(_, c)| *c == canonical) {
            if !a.quiet {
                errln!("note: {} is {} again; shown once", p.display(), first.display());
            }
            continue;
        }
        seen.push((p.clone(), canonical));
        if ReportSelection::is_selection(p) {
            selections.push(ReportSelection::load(p)?);
        } else {
            runs.push(ReportRun::load(p)?);
            warn_unreadable_model(p);
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

/// A warning (one line on stderr) when the model file of the run `dir` cannot be read: the
/// report shows its record, but `transform` and `eval` of it would fail.
fn warn_unreadable_model(dir: &std::path::Path) {
    let file = dir.join(partlearn::io::run::MODEL_FILE);
    if let Err(e) = partlearn::io::read_safetensors(&file) {
        errln!(
            "warning: run {}: {}; the report shows its record, but transform and eval of it will fail",
            dir.display(),
            e.to_string().replace('\n', " ")
        );
    }
}
