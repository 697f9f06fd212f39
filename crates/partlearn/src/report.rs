//! `report.html`: one self-contained HTML page comparing run folders side by side — a metrics
//! table (from each run's metrics.json), the figures of every run (PNG embedded as base64 data
//! URIs, so the file can be mailed or archived alone) and the options each run was fitted with
//! (from run.json, [`RunRecord`]).
//!
//! [`ReportRun::load`] reads a run folder; [`render`] turns runs into the page.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::io::record::RunRecord;

/// What the report shows of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportRun {
    /// Display name (the folder name).
    pub name: String,
    /// The run's run.json.
    pub run: RunRecord,
    /// The run's metrics.json, if `partlearn eval` was run on it.
    pub metrics: Option<Value>,
    /// `(file name, PNG bytes)` of figures/*.png, sorted by name.
    pub figures: Vec<(String, Vec<u8>)>,
}

impl ReportRun {
    /// Reads `dir/run.json`, `dir/metrics.json` (optional) and `dir/figures/*.png`; a run.json
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
                if path.extension().and_then(|e| e.to_str()) == Some("png") {
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
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(ReportRun {
            name,
            run,
            metrics,
            figures,
        })
    }
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

/// The report page for `runs` (at least one).
pub fn render(runs: &[ReportRun], title: &str) -> Result<String> {
    if runs.is_empty() {
        return Err(Error::invalid("runs", 0, "give at least one run folder"));
    }
    let mut h = String::with_capacity(1 << 20);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!("<title>{}</title>", escape(title)));
    h.push_str(
        "<style>body{font-family:sans-serif;margin:24px;color:#222;background:#fff}\
         table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}\
         th{background:#eee}td:first-child,th:first-child{text-align:left}\
         .runs{display:flex;flex-wrap:wrap;gap:24px}.run{flex:1 1 420px;border:1px solid #ccc;padding:12px}\
         img{max-width:100%;image-rendering:pixelated;display:block;margin:6px 0}\
         pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px;max-height:360px}</style></head><body>\n",
    );
    h.push_str(&format!("<h1>{}</h1>\n", escape(title)));
    h.push_str(&format!(
        "<p>{} run(s); partlearn {}. Metrics follow METHODS.md §7 (per-pixel MSE, mean per-sample Hoyer sparsity, \
         max-approximation error against the dilated originals, linear-SVM protocol on the codes).</p>\n",
        runs.len(),
        env!("CARGO_PKG_VERSION")
    ));
    h.push_str("<table><tr><th>run</th>");
    for (name, _, _) in COLUMNS {
        h.push_str(&format!("<th>{}</th>", escape(name)));
    }
    h.push_str("</tr>\n");
    for r in runs {
        h.push_str(&format!("<tr><td>{}</td>", escape(&r.name)));
        let run = serde_json::to_value(&r.run).unwrap_or_default();
        for (_, path, decimals) in COLUMNS {
            let v = lookup(&run, r.metrics.as_ref(), path);
            h.push_str(&format!("<td>{}</td>", escape(&format_value(v, *decimals))));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n<div class=\"runs\">\n");
    for r in runs {
        h.push_str(&format!("<div class=\"run\"><h2>{}</h2>\n", escape(&r.name)));
        if r.metrics.is_none() {
            h.push_str(
                "<p><em>not evaluated: no metrics.json in this folder; evaluating the run adds it</em></p>\n",
            );
        }
        for (name, png) in &r.figures {
            h.push_str(&format!(
                "<h3>{}</h3><img alt=\"{}\" src=\"data:image/png;base64,{}\">\n",
                escape(name),
                escape(name),
                base64(png)
            ));
        }
        h.push_str("<h3>options</h3><pre>");
        let pretty = serde_json::to_string_pretty(&r.run).unwrap_or_default();
        h.push_str(&escape(&pretty));
        h.push_str("</pre></div>\n");
    }
    h.push_str("</div></body></html>\n");
    Ok(h)
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
fn escape(s: &str) -> String {
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
        assert!(html.contains("not evaluated"));
        assert!(html.contains("&quot;k&quot;: 3"));
        assert!(render(&[], "x").is_err());
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
