//! `report.html`: one self-contained HTML page comparing run folders — a metrics table (from each
//! run's metrics.json), trade-off charts of all runs (max-approximation error, reconstruction MSE
//! and SVM accuracy against Hoyer sparsity, one numbered marker per run), the figures of every run
//! with a title and a caption saying how to read them (charts as inline SVG, images as PNG data
//! URIs, panels with their rows named, so the file can be mailed or archived alone) and the
//! options each run was fitted with, as a table (from run.json, [`RunRecord`]).
//!
//! Folders written by `partlearn select-k` ([`ReportSelection`]) get a "Choosing k" section: the
//! suggested ranks, the scores table and the charts of every criterion against k.
//!
//! [`ReportRun::load`] reads a run folder, [`ReportSelection::load`] a selection; [`render`]
//! turns runs into the page, [`render_with`] runs and selections.

use std::path::Path;

use serde_json::Value;

use crate::engine::StopReason;
use crate::error::{Error, Result};
use crate::io::record::RunRecord;
use crate::plot::{Chart, Series, Style};
use crate::select::{self, Selection};

/// What the report shows of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportRun {
    /// Display name (the folder name).
    pub name: String,
    /// The run's run.json.
    pub run: RunRecord,
    /// The run's metrics.json, if `partlearn eval` was run on it.
    pub metrics: Option<Value>,
    /// `(file name, bytes)` of figures/*.png and figures/*.svg, sorted by name.
    pub figures: Vec<(String, Vec<u8>)>,
}

impl ReportRun {
    /// Reads `dir/run.json`, `dir/metrics.json` (optional) and `dir/figures/*.{png,svg}`; a run.json
    /// that partlearn did not write, or wrote in another layout, is refused ([`RunRecord::read`]).
    pub fn load(dir: &Path) -> Result<Self> {
        let dir = crate::io::open_existing(dir)?;
        let run = RunRecord::read(&dir)?;
        let metrics_path = dir.join(crate::io::run::METRICS_FILE);
        let metrics = if metrics_path.is_file() {
            Some(crate::io::read_json(&metrics_path)?)
        } else {
            None
        };
        let mut figures = Vec::new();
        let fig_dir = dir.join(crate::io::run::FIGURES_DIR);
        if fig_dir.is_dir() {
            let entries = std::fs::read_dir(&fig_dir).map_err(|e| Error::io(&fig_dir, e))?;
            for entry in entries {
                let path = entry.map_err(|e| Error::io(&fig_dir, e))?.path();
                if matches!(path.extension().and_then(|e| e.to_str()), Some("png" | "svg")) {
                    let bytes = crate::io::read_regular(&path, crate::io::input::SMALL_FILE_CAP)?;
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    figures.push((name, bytes));
                }
            }
        }
        figures.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(ReportRun {
            name: folder_name(&dir),
            run,
            metrics,
            figures,
        })
    }
}

/// What the report shows of a rank selection (`partlearn select-k`'s folder).
#[derive(Clone, Debug, PartialEq)]
pub struct ReportSelection {
    /// Display name (the folder name).
    pub name: String,
    /// The folder's select-k.json.
    pub selection: Selection,
}

impl ReportSelection {
    /// Whether `dir` is a selection's folder: it holds select-k.json and no run.json.
    pub fn is_selection(dir: &Path) -> bool {
        dir.join(select::RESULT_FILE).is_file() && !dir.join(crate::io::run::RUN_FILE).exists()
    }

    /// Reads `dir/select-k.json`; a file that is not a selection partlearn wrote is refused.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(select::RESULT_FILE);
        let selection: Selection = crate::io::read_json(&path)?;
        if selection.scores.is_empty() {
            return Err(Error::format(
                &path,
                "a selection without scores; rerun `partlearn select-k` (with --force) to score the ranks",
            ));
        }
        Ok(ReportSelection {
            name: folder_name(dir),
            selection,
        })
    }
}

fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// The "Choosing k" section of one selection: what each criterion suggests, the scores and one
/// chart per criterion ([`select::charts`], drawn again from the scores).
fn selection_html(r: &ReportSelection) -> Result<String> {
    let sel = &r.selection;
    let mut h = format!(
        "<div class=\"run\"><h2>Choosing k: {}</h2>\n<ul>",
        escape(&r.name)
    );
    if let (Some(k), Some(hold)) = (sel.k_cv, sel.holdout) {
        h.push_str(&format!(
            "<li>by cross-validation: <strong>k = {k}</strong> — the smallest k whose error on the \
             {:.0} % held-out entries is within one standard error (over {} replicates) of the lowest</li>",
            100.0 * hold,
            sel.replicates
        ));
    }
    h.push_str(&format!(
        "<li>by the atoms' stability: <strong>k = {}</strong> — the largest k whose mean silhouette \
         of the runs' atoms is within {} of the best</li>\
         <li>by the consensus of the samples: <strong>k = {}</strong> — Brunet's rule, the last k \
         before the cophenetic correlation drops by more than {} (on data where every sample has one \
         dominant part it plateaus instead, and bounds k from below only)</li></ul>\n",
        sel.k_silhouette,
        select::SILHOUETTE_TOL,
        sel.k_cophenetic,
        select::COPHENETIC_TOL
    ));
    if sel.stop_reason == StopReason::Interrupted {
        h.push_str("<p><em>interrupted: only the ranks listed were scored</em></p>\n");
    }
    let cv = sel.holdout.is_some();
    h.push_str("<div class=\"scroll\"><table><tr><th>k</th><th>rel. error (± std)</th><th>cophenetic</th><th>dispersion</th><th>silhouette</th>");
    if cv {
        h.push_str("<th>held-out error (± std)</th>");
    }
    h.push_str("<th>seconds</th></tr>\n");
    for s in &sel.scores {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{:.4} ± {:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td>",
            s.k, s.rel_error, s.rel_error_std, s.cophenetic, s.dispersion, s.silhouette
        ));
        if cv {
            match (s.cv_error, s.cv_error_std) {
                (Some(e), Some(sd)) => h.push_str(&format!("<td>{e:.4} ± {sd:.4}</td>")),
                _ => h.push_str("<td>–</td>"),
            }
        }
        h.push_str(&format!("<td>{:.1}</td></tr>\n", s.seconds));
    }
    h.push_str("</table></div>\n");
    for (file, svg) in select::charts(sel)? {
        let caption = match file.as_str() {
            "consensus_vs_k.svg" => "Cophenetic correlation and dispersion of the consensus matrix of the runs' sample labels (largest code entry): 1 means every run groups the samples the same way.",
            "silhouette_vs_k.svg" => "Mean silhouette of the atoms of all runs clustered into k groups: near 1 when every run finds the same parts; it drops past the rank the data support.",
            "error_vs_k.svg" => "Relative reconstruction error of the runs (mean ± std): it always falls with k, so alone it does not choose k.",
            _ => "Relative error on the held-out entries (mean ± std over the replicates): it stops falling, or rises, once extra components fit noise.",
        };
        h.push_str(&format!(
            "<figure><figcaption>{}</figcaption>{svg}</figure>\n",
            escape(caption)
        ));
    }
    h.push_str("</div>\n");
    Ok(h)
}

/// The columns of the metrics table: header and JSON pointer into run.json (`run:`) or
/// metrics.json (`metrics:`) (`n_iter` counts epochs for mini-batch training), with the number
/// of decimals shown.
const COLUMNS: &[(&str, &str, usize)] = &[
    ("method", "run:/method", 0),
    ("data (eval)", "metrics:/data", 0),
    ("k", "metrics:/k", 0),
    ("rec. MSE", "metrics:/reconstruction/mse", 5),
    ("rec. MSE clip", "metrics:/reconstruction/mse_clipped", 5),
    ("rel. error", "metrics:/reconstruction/rel_error", 4),
    ("Hoyer", "metrics:/hoyer/mean", 3),
    ("max-approx", "metrics:/max_approx/vs_dilated_originals", 4),
    (
        "max-approx clip",
        "metrics:/max_approx/vs_dilated_originals_clipped",
        4,
    ),
    ("SVM acc.", "metrics:/svm/mean_accuracy", 3),
    ("SVM std", "metrics:/svm/std_accuracy", 3),
    ("iters / epochs", "run:/n_iter", 0),
    ("fit s", "run:/seconds", 1),
];

/// Title, one-sentence caption and (for panels of image rows) the label of each row, of a
/// figure file partlearn writes; other files get their name as title.
fn describe(file: &str, evaluated_dilation: bool) -> (String, String, Vec<&'static str>) {
    let (title, caption, rows): (&str, &str, Vec<&'static str>) = match file {
        "atoms.png" => (
            "Atoms after fitting",
            "Each tile is one atom (a part the model learned), white on black and scaled to its own \
             maximum; the atoms the training data use most come first.",
            vec![],
        ),
        "reconstructions.png" => (
            "Reconstructions after fitting",
            "Each column is one training sample: the original above its reconstruction by the fitted \
             model (values clipped to [0, 1], white = 1); the closer the rows, the lower the error.",
            vec!["originals", "reconstructions"],
        ),
        "eval_panel.png" if evaluated_dilation => (
            "Evaluation panel",
            "Each column is one evaluation sample, shown as original, reconstruction, dilated original \
             and max-approximation (its codes decoded with the dilated atoms); the max-approximation \
             error compares the last two rows, which look alike when the atoms are parts.",
            vec![
                "originals",
                "reconstructions",
                "dilated originals",
                "max-approximations",
            ],
        ),
        "eval_panel.png" => (
            "Evaluation panel",
            "Each column is one evaluation sample: the original above its reconstruction (values \
             clipped to [0, 1]); no dilation was evaluated for these data.",
            vec!["originals", "reconstructions"],
        ),
        "eval_code_histograms.svg" => (
            "Codes of the panel's samples",
            "One chart per sample of the evaluation panel: bar j is the sample's code for atom j (its \
             weight in the reconstruction), each chart scaled to its largest code; a sparse, part-based \
             code has a few tall bars.",
            vec![],
        ),
        "eval_atoms.png" => (
            "Atoms ordered by use",
            "Each tile is one atom, scaled to its own maximum, ordered by its total contribution to the \
             evaluation data (most used first, left to right, top to bottom).",
            vec![],
        ),
        "eval_dilated_atoms.png" => (
            "Dilated atoms",
            "The atoms in the same order after a grey-scale dilation (a max filter with the evaluation's \
             structuring element); the max-approximations are the codes decoded with these atoms.",
            vec![],
        ),
        _ => {
            let stem = file.rsplit_once('.').map_or(file, |p| p.0).replace('_', " ");
            return (
                stem,
                format!("A figure found in the run folder ({file})."),
                vec![],
            );
        }
    };
    (title.to_string(), caption.to_string(), rows)
}

/// `(width, height)` of a PNG from its header, if it is one.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || !png.starts_with(b"\x89PNG\r\n\x1a\n") || &png[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&png[16..20]), be(&png[20..24])))
}

/// Width of the row-label column beside a labelled panel, in SVG units.
const ROW_LABEL_W: u32 = 170;

/// A figure as HTML: inline SVG, or the PNG as a data URI; a PNG panel whose rows are named is
/// wrapped in an SVG that writes each row's name beside it.
fn figure_html(file: &str, bytes: &[u8], evaluated_dilation: bool) -> String {
    let (title, caption, rows) = describe(file, evaluated_dilation);
    let mut h = format!(
        "<figure><figcaption><strong>{}</strong> — {}</figcaption>",
        escape(&title),
        escape(&caption)
    );
    if file.ends_with(".svg") {
        let svg = String::from_utf8_lossy(bytes);
        let start = svg.find("<svg").unwrap_or(0);
        h.push_str(&svg[start..]);
    } else {
        let uri = format!("data:image/png;base64,{}", base64(bytes));
        let labelled = png_size(bytes).filter(|&(_, ht)| {
            let n = rows.len() as u32;
            n > 0 && ht > 1 && (ht - 1) % n == 0
        });
        match labelled {
            Some((w, ht)) => {
                let row_h = (ht - 1) as f64 / rows.len() as f64;
                h.push_str(&format!(
                    "<svg class=\"panel\" width=\"{}\" height=\"{ht}\" viewBox=\"0 0 {} {ht}\" \
                     xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{}\">",
                    ROW_LABEL_W + w,
                    ROW_LABEL_W + w,
                    escape(&title)
                ));
                for (r, label) in rows.iter().enumerate() {
                    h.push_str(&format!(
                        "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" dominant-baseline=\"middle\" \
                         font-family=\"sans-serif\" font-size=\"15\">{label}</text>",
                        ROW_LABEL_W - 8,
                        1.0 + row_h * (r as f64 + 0.5)
                    ));
                }
                h.push_str(&format!(
                    "<image x=\"{ROW_LABEL_W}\" y=\"0\" width=\"{w}\" height=\"{ht}\" href=\"{uri}\" \
                     style=\"image-rendering:pixelated\"/></svg>"
                ));
            }
            None => h.push_str(&format!("<img alt=\"{}\" src=\"{uri}\">", escape(&title))),
        }
    }
    h.push_str("</figure>\n");
    h
}

/// The value at a JSON pointer of a run's metrics, as a finite number.
fn metric(r: &ReportRun, pointer: &str) -> Option<f64> {
    r.metrics
        .as_ref()?
        .pointer(pointer)?
        .as_f64()
        .filter(|v| v.is_finite())
}

/// The trade-off charts of all runs (METHODS.md §7.5): max-approximation error, reconstruction
/// MSE and SVM accuracy (± std) against the Hoyer sparsity of the codes; one series per method,
/// each marker labelled with the run's number in the table. Charts without a point are left out.
fn tradeoff_charts(runs: &[ReportRun]) -> Result<Vec<(String, String, String)>> {
    let specs = [
        (
            "/max_approx/vs_dilated_originals",
            "max-approximation MSE vs dilated originals (per pixel)",
            "Max-approximation error vs sparsity",
            "Each marker is one run (its number in the table), coloured by method: lower is better on \
             this axis, and part-based models reach low errors at high sparsity (towards the bottom right).",
        ),
        (
            "/reconstruction/mse",
            "reconstruction MSE (per pixel)",
            "Reconstruction error vs sparsity",
            "Each marker is one run (its number in the table), coloured by method: sparser codes usually \
             cost reconstruction accuracy, so the runs trace the price of sparsity.",
        ),
        (
            "/svm/mean_accuracy",
            "linear-SVM accuracy on the codes (fraction, ± std)",
            "Linear-SVM accuracy vs sparsity",
            "Each marker is one run (its number in the table), coloured by method, with the standard \
             deviation over the SVM's test splits as an error bar: higher is better.",
        ),
    ];
    let mut methods: Vec<&str> = runs.iter().map(|r| r.run.method.as_str()).collect();
    methods.sort_unstable();
    methods.dedup();
    let mut out = Vec::new();
    for (pointer, y_label, title, caption) in specs {
        let mut chart = Chart::new("", "Hoyer sparsity of the codes (0 dense … 1 one-hot)", y_label);
        chart.style = Style::Markers;
        chart.size = (860, 460);
        for m in &methods {
            let mut series = Series::new(*m, vec![]);
            for (i, r) in runs.iter().enumerate().filter(|(_, r)| r.run.method == *m) {
                let (Some(x), Some(y)) = (metric(r, "/hoyer/mean"), metric(r, pointer)) else {
                    continue;
                };
                series.points.push((x, y));
                series.point_labels.push((i + 1).to_string());
                if pointer.starts_with("/svm") {
                    series.errors.push(metric(r, "/svm/std_accuracy").unwrap_or(0.0));
                }
            }
            chart.series.push(series);
        }
        if chart.series.iter().any(|s| !s.points.is_empty()) {
            out.push((title.to_string(), caption.to_string(), chart.to_svg()?));
        }
    }
    Ok(out)
}

/// The rows of the options table: run.json flattened to `(dotted key, value)`; lists of up to
/// 12 numbers or strings are written out, longer ones summarised.
fn option_rows(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                option_rows(&key(k), x, out);
            }
        }
        Value::Array(items) if items.iter().all(|x| !x.is_object() && !x.is_array()) => {
            let text = if items.len() <= 12 {
                items
                    .iter()
                    .map(|x| format_value(Some(x), 6))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                format!("{} values", items.len())
            };
            out.push((prefix.to_string(), text));
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                option_rows(&key(&i.to_string()), x, out);
            }
        }
        other => out.push((prefix.to_string(), format_value(Some(other), 6))),
    }
}

/// The report page for `runs` (at least one).
pub fn render(runs: &[ReportRun], title: &str) -> Result<String> {
    render_with(runs, &[], title)
}

/// The report page for `runs` and rank `selections` (at least one of either).
pub fn render_with(runs: &[ReportRun], selections: &[ReportSelection], title: &str) -> Result<String> {
    if runs.is_empty() && selections.is_empty() {
        return Err(Error::invalid(
            "runs",
            0,
            "give at least one run folder or select-k folder",
        ));
    }
    let mut h = String::with_capacity(1 << 20);
    h.push_str(&html_head(title));
    h.push_str(&format!("<h1>{}</h1>\n", escape(title)));
    h.push_str(&format!(
        "<p>{} run(s){}; partlearn {}. Metrics follow METHODS.md §7: reconstruction MSE per pixel, mean \
         per-sample Hoyer sparsity of the codes (0 = dense, 1 = one non-zero), max-approximation error \
         against the dilated originals (per pixel) and the linear-SVM protocol on the codes (accuracy \
         as a fraction, ± its standard deviation over the test splits). Runs are numbered as in the \
         charts.</p>\n",
        runs.len(),
        if selections.is_empty() {
            String::new()
        } else {
            format!(", {} rank selection(s)", selections.len())
        },
        env!("CARGO_PKG_VERSION")
    ));
    if !runs.is_empty() {
        h.push_str("<h2>Metrics</h2>\n<div class=\"scroll\"><table><tr><th>#</th><th>run</th>");
        for (name, _, _) in COLUMNS {
            h.push_str(&format!("<th>{}</th>", escape(name)));
        }
        h.push_str("</tr>\n");
    }
    for (i, r) in runs.iter().enumerate() {
        h.push_str(&format!("<tr><td>{}</td><td>{}</td>", i + 1, escape(&r.name)));
        let run = serde_json::to_value(&r.run).unwrap_or_default();
        for (_, path, decimals) in COLUMNS {
            let v = lookup(&run, r.metrics.as_ref(), path);
            h.push_str(&format!("<td>{}</td>", escape(&format_value(v, *decimals))));
        }
        h.push_str("</tr>\n");
    }
    if !runs.is_empty() {
        h.push_str("</table></div>\n");
    }
    let charts = tradeoff_charts(runs)?;
    if !charts.is_empty() {
        h.push_str("<h2>Trade-offs across runs</h2>\n");
        for (t, caption, svg) in &charts {
            h.push_str(&format!(
                "<figure><figcaption><strong>{}</strong> — {}</figcaption>{svg}</figure>\n",
                escape(t),
                escape(caption)
            ));
        }
    }
    for sel in selections {
        h.push_str(&selection_html(sel)?);
    }
    for (i, r) in runs.iter().enumerate() {
        h.push_str(&format!(
            "<div class=\"run\"><h2>{}. {} <small>({})</small></h2>\n",
            i + 1,
            escape(&r.name),
            escape(&r.run.method)
        ));
        if r.metrics.is_none() {
            h.push_str(
                "<p><em>not evaluated: no metrics.json in this folder; evaluating the run adds it</em></p>\n",
            );
        }
        let dilation = r
            .metrics
            .as_ref()
            .and_then(|m| m.get("max_approx"))
            .is_some_and(|v| !v.is_null());
        for (name, bytes) in &r.figures {
            h.push_str(&figure_html(name, bytes, dilation));
        }
        h.push_str("<h3>Options</h3>\n<table class=\"options\">");
        let mut rows = Vec::new();
        option_rows("", &serde_json::to_value(&r.run).unwrap_or_default(), &mut rows);
        for (k, v) in rows {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(&k),
                escape(&v)
            ));
        }
        h.push_str("</table></div>\n");
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

/// The start of a self-contained page (doctype, title, the shared style sheet) up to `<body>`.
pub(crate) fn html_head(title: &str) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!("<title>{}</title>", escape(title)));
    h.push_str(
        "<style>body{font-family:sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#222;background:#fff}\
         .scroll{overflow-x:auto}table{border-collapse:collapse;margin:12px 0}\
         td,th{border:1px solid #bbb;padding:4px 8px;text-align:right;white-space:nowrap}\
         th{background:#eee}td:first-child,th:first-child{text-align:left}\
         .run{border:1px solid #ccc;padding:12px;margin:18px 0}\
         figure{margin:14px 0}figcaption{margin:4px 0 6px;max-width:900px}\
         img,svg{max-width:100%;height:auto;display:block}img{image-rendering:pixelated}\
         table.options td{text-align:left;font-size:13px;white-space:normal;overflow-wrap:anywhere}table.options td:first-child{font-family:monospace;white-space:nowrap}\
         .pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:8px 18px}\
         td.yes{color:#1a7f37}td.no{color:#b42318}small{color:#555}\
         </style></head><body>\n",
    );
    h
}

/// The value at `path` (`source:/pointer`, alternatives separated by `|`, first found wins) in
/// the run record `run` (as JSON) or the `metrics`.
fn lookup<'a>(run: &'a Value, metrics: Option<&'a Value>, path: &str) -> Option<&'a Value> {
    path.split('|').find_map(|alt| {
        let (source, pointer) = alt.split_once(':')?;
        match source {
            "run" => run.pointer(pointer),
            _ => metrics?.pointer(pointer),
        }
    })
}

fn format_value(v: Option<&Value>, decimals: usize) -> String {
    match v {
        None | Some(Value::Null) => "–".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if n.is_f64() => format!("{x:.decimals$}"),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

/// HTML-escapes text.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Standard base64 (RFC 4648) with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn report_has_table_figures_and_escaped_options() {
        let run = ReportRun {
            name: "nmf<1>".into(),
            // n_iter 12, 1.5 s, options {"k": 3}.
            run: crate::io::record::sample(),
            metrics: Some(
                serde_json::json!({"data": "swimmer", "k": 3, "reconstruction": {"mse": 0.012345678}}),
            ),
            figures: vec![("atoms.png".into(), vec![137, 80, 78, 71])],
        };
        let other = ReportRun {
            name: "unevaluated".into(),
            run: crate::io::record::sample(),
            metrics: None,
            figures: vec![],
        };
        let html = render(&[run, other], "Comparison & more").unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>Comparison &amp; more</title>"));
        assert!(html.contains("<td>nmf&lt;1&gt;</td>"));
        assert!(html.contains("<td>0.01235</td>"), "MSE with 5 decimals");
        assert!(html.contains("<td>12</td>"));
        assert!(html.contains("data:image/png;base64,iVBORw=="));
        assert!(
            html.contains("<strong>Atoms after fitting</strong>"),
            "a title, not a file name"
        );
        assert!(!html.contains(">atoms.png<"));
        assert!(html.contains("not evaluated"));
        // Options as a table, not JSON.
        assert!(
            html.contains("<tr><td>part.options.k</td><td>3</td></tr>"),
            "options table"
        );
        assert!(html.contains("<tr><td>seed</td><td>7</td></tr>"));
        assert!(!html.contains("&quot;k&quot;"));
        // No Hoyer sparsity measured: no trade-off chart.
        assert!(!html.contains("Trade-offs across runs"));
        assert!(!html.contains("src=\"http"), "self-contained");
        assert!(render(&[], "x").is_err());
    }

    fn evaluated(name: &str, hoyer: f64, svm: bool) -> ReportRun {
        let mut metrics = serde_json::json!({
            "data": "swimmer", "k": 3,
            "reconstruction": {"mse": 0.01 + hoyer / 10.0},
            "hoyer": {"mean": hoyer},
            "max_approx": {"vs_dilated_originals": 0.3 - hoyer / 4.0},
        });
        if svm {
            metrics["svm"] = serde_json::json!({"mean_accuracy": 0.9, "std_accuracy": 0.02});
        }
        ReportRun {
            name: name.into(),
            run: crate::io::record::sample(),
            metrics: Some(metrics),
            figures: vec![],
        }
    }

    #[test]
    fn report_draws_tradeoffs_of_all_runs_with_numbered_markers() {
        let runs = [
            evaluated("a", 0.2, true),
            evaluated("b", 0.5, false),
            evaluated("c", 0.7, true),
        ];
        let html = render(&runs, "t").unwrap();
        assert!(html.contains("Trade-offs across runs"));
        for t in [
            "Max-approximation error vs sparsity",
            "Reconstruction error vs sparsity",
            "Linear-SVM accuracy vs sparsity",
        ] {
            assert!(html.contains(&format!("<strong>{t}</strong>")), "{t}");
        }
        let charts = tradeoff_charts(&runs).unwrap();
        assert_eq!(charts.len(), 3);
        for (_, _, svg) in &charts {
            let texts = crate::plot::tests::parse_svg(svg);
            assert!(texts
                .iter()
                .any(|t| t == "Hoyer sparsity of the codes (0 dense … 1 one-hot)"));
            assert!(texts.iter().any(|t| t == "nmf"), "legend: the method");
        }
        // Every run is a labelled marker on the first two charts; runs 1 and 3 on the SVM chart.
        let labels = |svg: &str| -> Vec<String> {
            crate::plot::tests::parse_svg(svg)
                .into_iter()
                .filter(|t| ["1", "2", "3"].contains(&t.as_str()))
                .collect()
        };
        assert!(["1", "2", "3"]
            .iter()
            .all(|n| labels(&charts[0].2).iter().any(|t| t == n)));
        let svm = labels(&charts[2].2);
        assert!(svm.contains(&"1".to_string()) && svm.contains(&"3".to_string()));
        assert_eq!(tradeoff_charts(&runs).unwrap(), charts, "deterministic");
    }

    #[test]
    fn panels_name_their_rows_and_charts_are_inline() {
        // A 4-row panel of 1×1 images at scale 1: 2 columns → 5 × 9 pixels.
        let m = faer::Mat::<f64>::from_fn(2, 1, |i, _| i as f64);
        let png = crate::figures::panel_rows(
            &[m.as_ref(); 4],
            (1, 1),
            &crate::figures::GridOptions {
                scale: 1,
                separator: 9,
            },
        )
        .unwrap();
        assert_eq!(png_size(&png), Some((5, 9)));
        let html = figure_html("eval_panel.png", &png, true);
        for row in [
            "originals",
            "reconstructions",
            "dilated originals",
            "max-approximations",
        ] {
            assert!(html.contains(&format!(">{row}</text>")), "{row} labelled");
        }
        assert!(html.contains("<strong>Evaluation panel</strong>"));
        // Without the dilation the panel has 2 rows; a row count that does not divide the image
        // falls back to a plain image.
        let two = crate::figures::panel_rows(&[m.as_ref(); 2], (1, 1), &Default::default()).unwrap();
        assert!(figure_html("eval_panel.png", &two, false).contains(">reconstructions</text>"));
        assert!(figure_html("eval_panel.png", &two, true).contains("<img"));
        let codes = faer::Mat::<f32>::from_fn(2, 4, |i, j| (i + j) as f32);
        let svg = crate::plot::code_bars(codes.as_ref(), &[0, 1]).unwrap();
        let html = figure_html("eval_code_histograms.svg", svg.as_bytes(), true);
        assert!(html.contains("<strong>Codes of the panel&#39;s samples</strong>"));
        assert!(html.contains("<svg") && html.contains("atom j") && !html.contains("base64"));
        let (title, caption, _) = describe("loss_curve.png", true);
        assert_eq!(title, "loss curve");
        assert!(caption.contains("loss_curve.png"));
    }

    #[test]
    fn load_reads_a_run_folder() {
        let dir = std::env::temp_dir().join(format!("partlearn-report-{}", std::process::id()));
        let run = crate::io::RunDir::create(&dir, true).unwrap();
        run.write_json(crate::io::run::RUN_FILE, &crate::io::record::sample())
            .unwrap();
        run.write(crate::io::run::MODEL_FILE, b"m").unwrap();
        run.write("figures/b.png", b"B").unwrap();
        run.write("figures/a.png", b"A").unwrap();
        let path = run.commit().unwrap();
        let r = ReportRun::load(&path).unwrap();
        assert_eq!(
            r.figures.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
            ["a.png", "b.png"]
        );
        assert!(r.metrics.is_none());
        assert_eq!(r.run, crate::io::record::sample());
        let _ = std::fs::remove_dir_all(&path);
    }

    #[test]
    fn load_refuses_a_run_json_partlearn_did_not_write() {
        let dir = std::env::temp_dir().join(format!("partlearn-report-foreign-{}", std::process::id()));
        let run = crate::io::RunDir::create(&dir, true).unwrap();
        run.write(crate::io::run::MODEL_FILE, b"m").unwrap();
        let path = run.commit().unwrap();
        for json in ["[1,2,3]", "{}", r#"{"a": 1}"#] {
            std::fs::write(path.join(crate::io::run::RUN_FILE), json).unwrap();
            let e = ReportRun::load(&path).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, Error::BadFormat { .. }), "{json}: {e:?}");
            assert!(
                msg.contains("run.json") && msg.contains("not a partlearn run"),
                "{json}: {msg}"
            );
        }
        // A run.json of the layout before the common header: refused, with the way out.
        let old = r#"{"method": "nmf", "partlearn_version": "0.1.0", "n_iter": 3}"#;
        std::fs::write(path.join(crate::io::run::RUN_FILE), old).unwrap();
        let msg = ReportRun::load(&path).unwrap_err().to_string();
        assert!(
            msg.contains("run.json") && msg.contains("re-run the fit"),
            "{msg}"
        );
        let _ = std::fs::remove_dir_all(&path);
    }
}
