//! Tables and plots of a parameter sweep (METHODS.md §7.5, the report's Figure 8): every grid
//! point is a fitted and evaluated run; this module turns their parameters and
//! [`Metrics`] into a CSV table and SVG charts — each metric against the first varying
//! parameter (one curve per value of the second; log axis when the values span a decade or
//! more; the SVM accuracy with its ± std as error bars) and the trade-off scatters
//! max-approximation error vs Hoyer sparsity and vs reconstruction error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::eval::evaluate::Metrics;
use crate::plot::{Chart, Series, Style};

/// One evaluated grid point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Parameter name → value (e.g. `k` → 100, `code-sparsity` → 0.6).
    pub params: BTreeMap<String, f64>,
    /// The run folder.
    pub run: String,
    /// Its evaluation (metrics.json).
    pub metrics: Metrics,
}

/// The metrics tabulated and plotted: (column name, value).
fn columns(m: &Metrics) -> Vec<(&'static str, Option<f64>)> {
    vec![
        ("reconstruction_mse", Some(m.reconstruction.mse)),
        ("reconstruction_mse_clipped", Some(m.reconstruction.mse_clipped)),
        ("rel_error", Some(m.reconstruction.rel_error)),
        ("hoyer", Some(m.hoyer.mean)),
        (
            "max_approx",
            m.max_approx.as_ref().map(|x| x.vs_dilated_originals),
        ),
        (
            "max_approx_clipped",
            m.max_approx.as_ref().map(|x| x.vs_dilated_originals_clipped),
        ),
        ("svm_accuracy", m.svm.as_ref().map(|s| s.mean_accuracy)),
        ("svm_std", m.svm.as_ref().map(|s| s.std_accuracy)),
    ]
}

/// The sweep as CSV: one row per point, the parameters then the metrics (empty = not measured).
pub fn table_csv(points: &[SweepPoint]) -> String {
    let names: Vec<String> = param_names(points);
    let mut out = String::new();
    let mut header: Vec<String> = names.clone();
    header.push("run".into());
    if let Some(p) = points.first() {
        header.extend(columns(&p.metrics).iter().map(|c| c.0.to_string()));
    }
    out.push_str(&header.join(","));
    out.push('\n');
    for p in points {
        let mut row: Vec<String> = names
            .iter()
            .map(|n| p.params.get(n).map_or(String::new(), |v| format!("{v}")))
            .collect();
        row.push(format!("\"{}\"", p.run.replace('"', "\"\"")));
        row.extend(
            columns(&p.metrics)
                .iter()
                .map(|c| c.1.map_or(String::new(), |v| format!("{v}"))),
        );
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn param_names(points: &[SweepPoint]) -> Vec<String> {
    let mut names: Vec<String> = points.iter().flat_map(|p| p.params.keys().cloned()).collect();
    names.sort();
    names.dedup();
    names
}

/// Distinct values of parameter `name`, sorted.
fn values(points: &[SweepPoint], name: &str) -> Vec<f64> {
    let mut v: Vec<f64> = points
        .iter()
        .filter_map(|p| p.params.get(name).copied())
        .collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// How a sweep parameter is named on a chart: its symbol (Greek where METHODS.md writes it so)
/// and what it is.
fn param_text(name: &str) -> (&str, &str) {
    match name {
        "beta" => ("β", "sparsity-penalty weight"),
        "p" => ("p", "target mean activation"),
        "lambda" => ("λ", "non-negativity penalty weight"),
        "code-sparsity" => ("s_H", "target Hoyer sparsity of the codes"),
        "atom-sparsity" => ("s_W", "target Hoyer sparsity of the atoms"),
        "alpha-w" => ("α_W", "regularisation weight of the atoms"),
        "k" => ("k", "number of atoms"),
        other => (other, ""),
    }
}

/// Axis label of a sweep parameter, e.g. `β (sparsity-penalty weight)`.
fn param_axis(name: &str) -> String {
    match param_text(name) {
        (sym, "") => sym.to_string(),
        (sym, what) => format!("{sym} ({what})"),
    }
}

/// Legend text of one value of a parameter, e.g. `β = 0.001`.
fn label(name: &str, v: f64) -> String {
    format!("{} = {v}", param_text(name).0)
}

/// Axis label (with units) and chart title of a metric column.
fn metric_text(metric: &str) -> (&'static str, &'static str) {
    match metric {
        "reconstruction_mse" => ("reconstruction MSE (per pixel)", "Reconstruction error"),
        "rel_error" => ("relative error ‖X − X̂‖_F / ‖X‖_F", "Relative error"),
        "hoyer" => (
            "Hoyer sparsity of the codes (0 dense … 1 one-hot)",
            "Sparsity of the codes",
        ),
        "max_approx" => (
            "max-approximation MSE vs dilated originals (per pixel)",
            "Max-approximation error",
        ),
        "svm_accuracy" => ("linear-SVM accuracy (fraction, ± std)", "Linear-SVM accuracy"),
        _ => ("", ""),
    }
}

/// Whether positive values spanning two decades or more are better read on a log axis.
fn spans_decades(v: impl Iterator<Item = f64>, decades: f64) -> bool {
    let (lo, hi) = v
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    lo > 0.0 && hi / lo >= 10f64.powf(decades)
}

/// The charts of a sweep as `(file name, SVG)`: one per metric against `x_param` (one curve per
/// value of `series_param`, if any; the SVM accuracy with ± std error bars; a log x axis when
/// the parameter spans a decade or more, a log y axis when a metric spans two), and the two
/// trade-off scatters.
pub fn plots(
    points: &[SweepPoint],
    x_param: &str,
    series_param: Option<&str>,
) -> Result<Vec<(String, Vec<u8>)>> {
    if points.is_empty() {
        return Err(Error::invalid("sweep", "no points", "nothing was evaluated"));
    }
    let x_log = spans_decades(values(points, x_param).into_iter(), 1.0);
    let groups: Vec<(String, Vec<&SweepPoint>)> = match series_param {
        Some(sp) => values(points, sp)
            .into_iter()
            .map(|v| {
                (
                    label(sp, v),
                    points.iter().filter(|p| p.params.get(sp) == Some(&v)).collect(),
                )
            })
            .collect(),
        None => vec![("all points".to_string(), points.iter().collect())],
    };
    let mut out = Vec::new();
    let metric_names: Vec<&'static str> = columns(&points[0].metrics).iter().map(|c| c.0).collect();
    let col = |p: &SweepPoint, name: &str| {
        columns(&p.metrics)
            .into_iter()
            .find(|c| c.0 == name)
            .and_then(|c| c.1)
    };
    let x_sym = param_text(x_param).0;
    for metric in &metric_names {
        let (y_label, title) = metric_text(metric);
        if y_label.is_empty() {
            continue;
        }
        let mut chart = Chart::new(format!("{title} vs {x_sym}"), param_axis(x_param), y_label);
        chart.x_log = x_log;
        chart.y_log = *metric != "svm_accuracy"
            && *metric != "hoyer"
            && spans_decades(points.iter().filter_map(|p| col(p, metric)), 2.0);
        for (name, members) in &groups {
            let mut pts: Vec<(f64, f64, f64)> = members
                .iter()
                .filter_map(|p| {
                    let err = if *metric == "svm_accuracy" {
                        col(p, "svm_std").unwrap_or(0.0)
                    } else {
                        0.0
                    };
                    Some((*p.params.get(x_param)?, col(p, metric)?, err))
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut series = Series::new(name.clone(), pts.iter().map(|p| (p.0, p.1)).collect());
            if *metric == "svm_accuracy" {
                series.errors = pts.iter().map(|p| p.2).collect();
            }
            chart.series.push(series);
        }
        // A metric nobody measured (e.g. no labels → no SVM) has no chart.
        if chart.series.iter().any(|s| !s.points.is_empty()) {
            out.push((format!("{metric}_vs_{x_param}.svg"), chart.to_svg()?.into_bytes()));
        }
    }
    for (x_metric, file) in [
        ("hoyer", "max_approx_vs_hoyer.svg"),
        ("reconstruction_mse", "max_approx_vs_reconstruction.svg"),
    ] {
        let mut chart = Chart::new(
            format!(
                "Trade-off: max-approximation vs {}",
                metric_text(x_metric).1.to_lowercase()
            ),
            metric_text(x_metric).0,
            metric_text("max_approx").0,
        );
        chart.style = Style::Markers;
        for (name, members) in &groups {
            chart.series.push(Series::new(
                name.clone(),
                members
                    .iter()
                    .filter_map(|p| Some((col(p, x_metric)?, col(p, "max_approx")?)))
                    .collect(),
            ));
        }
        if chart.series.iter().any(|s| !s.points.is_empty()) {
            out.push((file.to_string(), chart.to_svg()?.into_bytes()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::evaluate::{EvalTimings, MaxApproxErrors};
    use crate::eval::metrics::ReconstructionError;
    use crate::sparseness::HoyerSummary;

    fn point(k: f64, s: f64) -> SweepPoint {
        SweepPoint {
            params: BTreeMap::from([("k".to_string(), k), ("code-sparsity".to_string(), s)]),
            run: format!("runs/k{k}-s{s}"),
            metrics: Metrics {
                model_kind: "nmf".into(),
                data: "swimmer".into(),
                n_samples: 10,
                n_features: 4,
                k: k as usize,
                reconstruction: ReconstructionError {
                    mse: 0.01 * s,
                    mse_clipped: 0.01 * s,
                    rel_error: 0.1,
                },
                hoyer: HoyerSummary {
                    mean: s,
                    std: 0.0,
                    zero_codes: 0,
                    mean_reference: s,
                },
                max_approx: Some(MaxApproxErrors {
                    structuring_element: "disk:1".into(),
                    vs_dilated_originals: 1.0 - s,
                    vs_dilated_originals_clipped: 0.5,
                    vs_dilated_reconstructions: 0.1,
                    vs_dilated_reconstructions_clipped: 0.1,
                }),
                svm: None,
                seconds: EvalTimings::default(),
            },
        }
    }

    #[test]
    fn csv_has_one_row_per_point_and_blank_unmeasured_cells() {
        let pts = vec![point(10.0, 0.3), point(20.0, 0.6)];
        let csv = table_csv(&pts);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("code-sparsity,k,run,reconstruction_mse"));
        assert!(lines[1].starts_with("0.3,10,\"runs/k10-s0.3\",0.003"));
        assert!(lines[1].ends_with(",,"), "no SVM: empty cells: {}", lines[1]);
    }

    #[test]
    fn plots_one_chart_per_measured_metric_and_the_tradeoffs() {
        let pts: Vec<SweepPoint> = [10.0, 20.0]
            .iter()
            .flat_map(|&k| [0.2, 0.4, 0.6].map(|s| point(k, s)))
            .collect();
        let charts = plots(&pts, "code-sparsity", Some("k")).unwrap();
        let names: Vec<&str> = charts.iter().map(|c| c.0.as_str()).collect();
        assert!(names.contains(&"hoyer_vs_code-sparsity.svg"));
        assert!(names.contains(&"max_approx_vs_hoyer.svg"));
        assert!(names.contains(&"max_approx_vs_reconstruction.svg"));
        assert!(
            !names.iter().any(|n| n.starts_with("svm")),
            "SVM not measured: no chart"
        );
        assert!(charts.iter().all(|c| c.1.starts_with(b"<svg")));
        let hoyer = String::from_utf8(
            charts[names
                .iter()
                .position(|n| *n == "hoyer_vs_code-sparsity.svg")
                .unwrap()]
            .1
            .clone(),
        )
        .unwrap();
        let texts = crate::plot::tests::parse_svg(&hoyer);
        for want in ["s_H (target Hoyer sparsity of the codes)", "k = 10", "k = 20"] {
            assert!(texts.iter().any(|t| t == want), "{want} missing in {texts:?}");
        }
        assert!(plots(&[], "k", None).is_err());
    }

    #[test]
    fn beta_sweep_has_a_log_axis_greek_labels_and_svm_error_bars() {
        let pts: Vec<SweepPoint> = [1e-4, 1e-3, 1e-2]
            .iter()
            .flat_map(|&b| {
                [0.01, 0.05].map(|p| {
                    let mut pt = point(10.0, 0.3 + b * 10.0);
                    pt.params = BTreeMap::from([("beta".to_string(), b), ("p".to_string(), p)]);
                    pt.metrics.svm = Some(crate::eval::svm::SvmProtocolResult {
                        mean_accuracy: 0.8 + p,
                        std_accuracy: 0.02,
                        best_c: 1.0,
                        best_validation_accuracy: 0.8,
                        validation_curve: vec![],
                        accuracies: vec![],
                        test_samples: 10,
                        classes: 2,
                        options: Default::default(),
                    });
                    pt
                })
            })
            .collect();
        let charts = plots(&pts, "beta", Some("p")).unwrap();
        let svm = charts.iter().find(|c| c.0 == "svm_accuracy_vs_beta.svg").unwrap();
        let svg = String::from_utf8(svm.1.clone()).unwrap();
        let texts = crate::plot::tests::parse_svg(&svg);
        for want in [
            "Linear-SVM accuracy vs β",
            "β (sparsity-penalty weight)",
            "linear-SVM accuracy (fraction, ± std)",
            "p = 0.01",
            "p = 0.05",
            "10⁻⁴",
            "10⁻³",
            "10⁻²",
        ] {
            assert!(texts.iter().any(|t| t == want), "{want} missing in {texts:?}");
        }
        // 6 error bars, a stem and two caps each: 18 lines more than without the std.
        let mut exact = pts.clone();
        for p in &mut exact {
            p.metrics.svm.as_mut().unwrap().std_accuracy = 0.0;
        }
        let find = |c: &[(String, Vec<u8>)], name: &str| {
            String::from_utf8(c.iter().find(|c| c.0 == name).unwrap().1.clone()).unwrap()
        };
        let no_bars = find(
            &plots(&exact, "beta", Some("p")).unwrap(),
            "svm_accuracy_vs_beta.svg",
        );
        let bar_lines = |svg: &str| {
            svg.matches("<line opacity=\"1\" stroke=\"#1F77B4\"").count()
                + svg.matches("<line opacity=\"1\" stroke=\"#D62728\"").count()
        };
        assert_eq!((bar_lines(&svg), bar_lines(&no_bars)), (18, 0));
        let by_p = find(&plots(&pts, "p", Some("beta")).unwrap(), "svm_accuracy_vs_p.svg");
        assert!(!by_p.contains("10⁻"), "p spans less than a decade: linear axis");
        assert!(by_p.contains("β = 0.001"), "legend with the Greek symbol");
        assert_eq!(plots(&pts, "beta", Some("p")).unwrap(), charts, "deterministic");
    }
}
