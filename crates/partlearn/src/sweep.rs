//! Tables and plots of a parameter sweep (METHODS.md §7.5, the report's Figure 8): every grid
//! point is a fitted and evaluated run; this module turns their parameters and
//! [`Metrics`] into a CSV table and PNG charts — each metric against the first varying
//! parameter (one curve per value of the second; log axis when the values span a decade or
//! more) and the trade-off scatters max-approximation error vs Hoyer sparsity and vs
//! reconstruction error.

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

fn label(name: &str, v: f64) -> String {
    format!("{name}={v}")
}

/// The charts of a sweep as `(file name, PNG)`: one per metric against `x_param` (one curve per
/// value of `series_param`, if any), and the two trade-off scatters.
pub fn plots(
    points: &[SweepPoint],
    x_param: &str,
    series_param: Option<&str>,
) -> Result<Vec<(String, Vec<u8>)>> {
    if points.is_empty() {
        return Err(Error::invalid("sweep", "no points", "nothing was evaluated"));
    }
    let xs = values(points, x_param);
    let x_log =
        xs.first().is_some_and(|&a| a > 0.0) && xs.last().zip(xs.first()).is_some_and(|(b, a)| b / a >= 10.0);
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
        None => vec![(x_param.to_string(), points.iter().collect())],
    };
    let mut out = Vec::new();
    let metric_names: Vec<&'static str> = columns(&points[0].metrics).iter().map(|c| c.0).collect();
    for (mi, metric) in metric_names.iter().enumerate() {
        if metric.ends_with("_std") || metric.ends_with("_clipped") {
            continue;
        }
        let mut chart = Chart::new(format!("{metric} vs {x_param}"), x_param, *metric);
        chart.x_log = x_log;
        for (name, members) in &groups {
            let mut pts: Vec<(f64, f64)> = members
                .iter()
                .filter_map(|p| Some((*p.params.get(x_param)?, columns(&p.metrics)[mi].1?)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart.series.push(Series {
                label: name.clone(),
                points: pts,
            });
        }
        // A metric nobody measured (e.g. no labels → no SVM) has no chart.
        if chart.series.iter().any(|s| !s.points.is_empty()) {
            out.push((format!("{metric}_vs_{x_param}.png"), chart.to_png()?));
        }
    }
    for (x_metric, file) in [
        ("hoyer", "max_approx_vs_hoyer.png"),
        ("reconstruction_mse", "max_approx_vs_reconstruction.png"),
    ] {
        let xi = metric_names.iter().position(|m| *m == x_metric).unwrap_or(0);
        let yi = metric_names.iter().position(|m| *m == "max_approx").unwrap_or(0);
        let mut chart = Chart::new(format!("max-approx vs {x_metric}"), x_metric, "max_approx");
        chart.style = Style::Markers;
        for (name, members) in &groups {
            chart.series.push(Series {
                label: name.clone(),
                points: members
                    .iter()
                    .filter_map(|p| {
                        let c = columns(&p.metrics);
                        Some((c[xi].1?, c[yi].1?))
                    })
                    .collect(),
            });
        }
        if chart.series.iter().any(|s| !s.points.is_empty()) {
            out.push((file.to_string(), chart.to_png()?));
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
        assert!(names.contains(&"hoyer_vs_code-sparsity.png"));
        assert!(names.contains(&"max_approx_vs_hoyer.png"));
        assert!(names.contains(&"max_approx_vs_reconstruction.png"));
        assert!(
            !names.iter().any(|n| n.starts_with("svm")),
            "SVM not measured: no chart"
        );
        assert!(charts.iter().all(|c| c.1.starts_with(b"\x89PNG")));
        assert!(plots(&[], "k", None).is_err());
    }
}
