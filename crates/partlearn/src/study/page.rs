//! The study's page (`study.html`, self-contained): the report's table with partlearn's numbers
//! beside the report's (difference, and whether the SVM accuracy is within the report's ± std),
//! the four metric-vs-β curves of every penalty (one curve per p, sparse NMF as the baseline,
//! the report's values as hollow diamonds), trade-off charts of every point, and all points in
//! one table. Charts are drawn by [`crate::plot`] (SVG, inline).

use crate::error::Result;
use crate::plot::{Chart, Series, Style};
use crate::report::{escape, html_head};

use super::{penalty_label, Budget, Model, Published, PublishedRow, StudyResult};

/// What the page says about the run of the study.
#[derive(Clone, Debug, PartialEq)]
pub struct PageInfo {
    /// Page title.
    pub title: String,
    /// The budget the points were planned with.
    pub budget: Budget,
    /// Epochs of the shallow and of the asymmetric AE.
    pub epochs: (usize, usize),
    /// Training data and evaluation data.
    pub data: String,
    /// See `data`.
    pub eval_data: String,
    /// Points of the plan not evaluated yet (their ids).
    pub missing: Vec<String>,
}

/// One metric of the study: title, axis label with units, value of a result, value of a
/// published row, and the caption of its chart against β.
struct Metric {
    key: &'static str,
    title: &'static str,
    axis: &'static str,
    of: fn(&StudyResult) -> Option<f64>,
    published: fn(&PublishedRow) -> f64,
    caption: &'static str,
}

const METRICS: [Metric; 4] = [
    Metric {
        key: "reconstruction_mse",
        title: "Reconstruction error",
        axis: "reconstruction MSE (per pixel)",
        of: |r| Some(r.mse()),
        published: |r| r.mse,
        caption: "Mean squared error per pixel of the test images' reconstructions: a stronger \
                  penalty (larger β) or a lower target p buys sparsity with reconstruction accuracy.",
    },
    Metric {
        key: "hoyer",
        title: "Sparsity of the codes",
        axis: "Hoyer sparsity of the codes (0 dense … 1 one-hot)",
        of: |r| Some(r.hoyer()),
        published: |r| r.hoyer,
        caption: "Mean Hoyer sparsity of the test codes (METHODS.md §7.2): 0 when all code units \
                  are equal, 1 when one unit carries the image; the report's good trade-offs sit near 0.6.",
    },
    Metric {
        key: "max_approx",
        title: "Max-approximation error",
        axis: "max-approximation MSE vs dilated originals (per pixel)",
        of: StudyResult::max_approx,
        published: |r| r.max_approx,
        caption: "How far the sum of the dilated atoms, weighted by the codes, is from the dilated \
                  image (METHODS.md §7.5): low only when the atoms are parts with little overlap — \
                  the measure of how part-based the representation is. Lower is better.",
    },
    Metric {
        key: "svm_accuracy",
        title: "Linear-SVM accuracy",
        axis: "linear-SVM accuracy on the codes (fraction, ± std)",
        of: |r| r.svm().map(|s| s.0),
        published: |r| r.svm,
        caption: "Accuracy of a linear SVM trained on the test codes (METHODS.md §7.3), with the \
                  standard deviation over its test splits as error bars: how much of the class \
                  information the codes keep. Higher is better.",
    },
];

/// Whether positive values spanning two decades or more are better read on a log axis.
fn spans_decades(v: &[f64]) -> bool {
    let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
        (a.min(x), b.max(x))
    });
    lo > 0.0 && hi.is_finite() && hi / lo >= 100.0
}

/// The charts against β of one penalty: `(file name, title, caption, SVG)` per metric measured.
fn beta_charts(
    results: &[StudyResult],
    published: &Published,
    penalty: &str,
) -> Result<Vec<(String, String, String, String)>> {
    let points: Vec<&StudyResult> = results
        .iter()
        .filter(|r| {
            r.point.model == Model::Ae
                && r.point.beta.is_some()
                && r.point.penalty.as_ref().map(super::penalty_name).as_deref() == Some(penalty)
        })
        .collect();
    let Some(first) = points.first() else {
        return Ok(Vec::new());
    };
    let label = first.point.penalty.as_ref().map_or("", penalty_label);
    let mut ps: Vec<f64> = points.iter().filter_map(|r| r.point.p).collect();
    ps.sort_by(f64::total_cmp);
    ps.dedup();
    let betas: Vec<f64> = points.iter().filter_map(|r| r.point.beta).collect();
    let (b_lo, b_hi) = betas
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let baseline = results.iter().find(|r| r.point.model == Model::SparseNmf);
    let mut out = Vec::new();
    for m in &METRICS {
        let mut chart = Chart::new("", "β (sparsity-penalty weight, log scale)", m.axis);
        chart.x_log = true;
        chart.size = (760, 470);
        let mut ys = Vec::new();
        for (ci, &p) in ps.iter().enumerate() {
            let mut pts: Vec<(f64, f64, f64)> = points
                .iter()
                .filter(|r| r.point.p == Some(p))
                .filter_map(|r| {
                    let err = if m.key == "svm_accuracy" {
                        r.svm().map_or(0.0, |s| s.1)
                    } else {
                        0.0
                    };
                    Some((r.point.beta?, (m.of)(r)?, err))
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            ys.extend(pts.iter().map(|q| q.1));
            let mut s = Series::new(format!("p = {p}"), pts.iter().map(|q| (q.0, q.1)).collect());
            if m.key == "svm_accuracy" {
                s.errors = pts.iter().map(|q| q.2).collect();
            }
            s.color = Some(ci);
            chart.series.push(s);
            let refs: Vec<&PublishedRow> = published
                .rows
                .iter()
                .filter(|r| r.model == "ae" && r.penalty.as_deref() == Some(penalty) && r.p == Some(p))
                .collect();
            if !refs.is_empty() {
                let mut s = Series::new(
                    format!("report, p = {p}"),
                    refs.iter()
                        .filter_map(|r| Some((r.beta?, (m.published)(r))))
                        .collect(),
                );
                if m.key == "svm_accuracy" {
                    s.errors = refs.iter().map(|r| r.svm_std).collect();
                }
                ys.extend(s.points.iter().map(|q| q.1));
                s.reference = true;
                s.color = Some(ci);
                chart.series.push(s);
            }
        }
        if let Some(v) = baseline.and_then(|b| (m.of)(b)) {
            let mut s = Series::new("sparse NMF (baseline)", vec![(b_lo, v), (b_hi, v)]);
            s.color = Some(7);
            ys.push(v);
            chart.series.push(s);
        }
        if !chart
            .series
            .iter()
            .any(|s| !s.reference && s.label.starts_with("p =") && !s.points.is_empty())
        {
            continue;
        }
        chart.y_log = m.key != "svm_accuracy" && m.key != "hoyer" && spans_decades(&ys);
        out.push((
            format!("{}_vs_beta_{penalty}.svg", m.key),
            format!("{} vs β — shallow NN-AE, {label} penalty", m.title),
            format!(
                "{} One curve per target activation p; hollow diamonds are the report's values \
                 (trained {} epochs), the grey line sparse NMF.",
                m.caption, published.epochs
            ),
            chart.to_svg()?,
        ));
    }
    Ok(out)
}

/// The group a point is drawn in on the trade-off charts.
fn group(r: &StudyResult) -> String {
    match (r.point.model, &r.point.penalty, r.point.beta) {
        (Model::SparseNmf, _, _) => "sparse NMF".into(),
        (Model::Ae, Some(p), Some(_)) => format!("shallow NN-AE, {}", penalty_label(p)),
        (Model::Ae, _, _) => "shallow AE, unconstrained".into(),
        (Model::AsymAe, _, Some(_)) => "asymmetric NN-AE, KL".into(),
        (Model::AsymAe, _, _) => "asymmetric AE, unconstrained".into(),
    }
}

/// Trade-off charts of every point: `(file name, title, caption, SVG)`.
fn tradeoff_charts(
    results: &[StudyResult],
    published: &Published,
) -> Result<Vec<(String, String, String, String)>> {
    let mut groups: Vec<String> = Vec::new();
    for r in results {
        let g = group(r);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut out = Vec::new();
    for m in METRICS.iter().filter(|m| m.key != "hoyer") {
        let mut chart = Chart::new("", METRICS[1].axis, m.axis);
        chart.style = Style::Markers;
        chart.size = (860, 480);
        let mut ys = Vec::new();
        for g in &groups {
            let mut s = Series::new(g.clone(), Vec::new());
            for r in results.iter().filter(|r| &group(r) == g) {
                if let Some(y) = (m.of)(r) {
                    s.points.push((r.hoyer(), y));
                    ys.push(y);
                    if m.key == "svm_accuracy" {
                        s.errors.push(r.svm().map_or(0.0, |v| v.1));
                    }
                }
            }
            chart.series.push(s);
        }
        let mut refs = Series::new(
            "report: table rows",
            published
                .rows
                .iter()
                .map(|r| (r.hoyer, (m.published)(r)))
                .collect(),
        );
        ys.extend(refs.points.iter().map(|q| q.1));
        refs.reference = true;
        refs.color = Some(7);
        chart.series.push(refs);
        chart.y_log = m.key != "svm_accuracy" && spans_decades(&ys);
        let caption = format!(
            "Every point of the study at its code sparsity (x) and {} (y), coloured by model and \
             penalty; the hollow grey diamonds are the rows of the report's table. {}",
            m.title.to_lowercase(),
            match m.key {
                "max_approx" => "Part-based models sit at the bottom right: sparse codes whose dilated parts add up to the dilated image.",
                "reconstruction_mse" => "Sparser codes cost reconstruction accuracy: the points trace the price of sparsity.",
                _ => "Error bars: the standard deviation over the SVM's test splits.",
            }
        );
        out.push((
            format!("{}_vs_hoyer.svg", m.key),
            format!("Trade-off: {} vs sparsity", m.title.to_lowercase()),
            caption,
            chart.to_svg()?,
        ));
    }
    Ok(out)
}

/// Every chart of the page: `(file name, title, caption, SVG)`, the β curves of each penalty
/// first, then the trade-offs.
pub fn charts(
    results: &[StudyResult],
    published: &Published,
) -> Result<Vec<(String, String, String, String)>> {
    let mut penalties: Vec<String> = Vec::new();
    for r in results
        .iter()
        .filter(|r| r.point.model == Model::Ae && r.point.beta.is_some())
    {
        if let Some(name) = r.point.penalty.as_ref().map(super::penalty_name) {
            if !penalties.contains(&name) {
                penalties.push(name);
            }
        }
    }
    let mut out = Vec::new();
    for p in &penalties {
        out.extend(beta_charts(results, published, p)?);
    }
    if !results.is_empty() {
        out.extend(tradeoff_charts(results, published)?);
    }
    Ok(out)
}

fn num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else if v.abs() >= 0.1 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

fn signed(v: f64) -> String {
    if v >= 0.0 {
        format!("+{}", num(v))
    } else {
        format!("−{}", num(-v))
    }
}

/// The report's table with partlearn's numbers beside it: each cell holds partlearn's value,
/// and under it the report's and the difference.
fn comparison_table(results: &[StudyResult], published: &Published) -> String {
    let mut h = String::from(
        "<div class=\"scroll\"><table><tr><th>model</th><th>p</th><th>β</th>\
         <th>rec. MSE<br><small>ours; report · Δ</small></th>\
         <th>Hoyer<br><small>ours; report · Δ</small></th>\
         <th>max-approx<br><small>ours; report · Δ</small></th>\
         <th>linear SVM<br><small>ours; report</small></th><th>SVM Δ<br><small>within the report's ± std?</small></th>\
         <th>epochs</th></tr>\n",
    );
    let opt = |v: Option<f64>| v.map_or("–".to_string(), |x| x.to_string());
    let mut notes = Vec::new();
    for row in &published.rows {
        let ours = results.iter().find(|r| r.point.matches(row));
        let pair = |mine: Option<f64>, theirs: f64| match mine {
            Some(m) => format!(
                "{}<br><small>{} · {}</small>",
                num(m),
                num(theirs),
                signed(m - theirs)
            ),
            None => format!("–<br><small>{}</small>", num(theirs)),
        };
        let theirs_svm = format!("{:.3} ± {:.3}", row.svm, row.svm_std);
        let (svm_cell, verdict) = match ours.and_then(StudyResult::svm) {
            Some((acc, sd)) => {
                let d = acc - row.svm;
                let within = d.abs() <= row.svm_std;
                (
                    format!("{acc:.3} ± {sd:.3}<br><small>{theirs_svm}</small>"),
                    format!(
                        "<td class=\"{}\">{}<br><small>{}</small></td>",
                        if within { "yes" } else { "no" },
                        signed(d),
                        if within { "within" } else { "outside" }
                    ),
                )
            }
            None => (
                format!("–<br><small>{theirs_svm}</small>"),
                "<td>–</td>".to_string(),
            ),
        };
        let mut label = escape(&row.label);
        if !row.note.is_empty() {
            notes.push(escape(&row.note));
            label.push_str(&format!("<sup>{}</sup>", notes.len()));
        }
        h.push_str(&format!(
            "<tr><td>{label}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{verdict}<td>{}</td></tr>\n",
            opt(row.p),
            opt(row.beta),
            pair(ours.map(StudyResult::mse), row.mse),
            pair(ours.map(StudyResult::hoyer), row.hoyer),
            pair(ours.and_then(StudyResult::max_approx), row.max_approx),
            svm_cell,
            ours.map_or("not run yet".to_string(), |r| match r.point.model {
                Model::SparseNmf => format!("{} iterations", r.trained),
                _ => format!("{} / {}", r.trained, published.epochs),
            }),
        ));
    }
    h.push_str("</table></div>\n");
    for (i, n) in notes.iter().enumerate() {
        h.push_str(&format!("<p><small><sup>{}</sup> {n}</small></p>\n", i + 1));
    }
    h
}

/// Every point in one table.
fn points_table(results: &[StudyResult]) -> String {
    let mut h = String::from(
        "<details><summary>All points (the study's run folders; study.csv has the same)</summary>\
         <div class=\"scroll\"><table><tr><th>point</th><th>epochs</th><th>rec. MSE</th><th>Hoyer</th>\
         <th>max-approx</th><th>linear SVM</th><th>fit s</th><th>eval s</th><th>run folder</th></tr>\n",
    );
    for r in results {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{:.5}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td></tr>\n",
            escape(&r.point.describe()),
            r.trained,
            r.mse(),
            r.hoyer(),
            r.max_approx().map_or("–".into(), num),
            r.svm().map_or("–".into(), |s| format!("{:.3} ± {:.3}", s.0, s.1)),
            r.fit_seconds,
            r.eval_seconds,
            escape(&r.run)
        ));
    }
    h.push_str("</table></div></details>\n");
    h
}

fn figure(title: &str, caption: &str, svg: &str) -> String {
    format!(
        "<figure><figcaption><strong>{}</strong> — {}</figcaption>{svg}</figure>\n",
        escape(title),
        escape(caption)
    )
}

/// The study's page.
pub fn render(results: &[StudyResult], published: &Published, info: &PageInfo) -> Result<String> {
    let mut h = html_head(&info.title);
    h.push_str(&format!("<h1>{}</h1>\n", escape(&info.title)));
    let (e, ea) = info.epochs;
    let share = |x: usize| 100.0 * x as f64 / published.epochs as f64;
    let fit: f64 = results.iter().map(|r| r.fit_seconds).sum();
    let eval: f64 = results.iter().map(|r| r.eval_seconds).sum();
    h.push_str(&format!(
        "<p>The internship report's study (METHODS.md §6.7): sparse NMF as the baseline, the shallow \
         non-negative auto-encoder with each sparsity penalty over the β grid, and the asymmetric \
         auto-encoder, k = 100, trained on {} and measured on {} by one protocol (METHODS.md §7). \
         Budget <strong>{}</strong>: {e} epochs of the shallow AEs ({:.1} % of the report's {}), \
         {ea} of the asymmetric AE ({:.1} %){}. {} points evaluated; training took {:.0} s \
         and evaluation {:.0} s in all. partlearn {}.</p>\n",
        escape(&info.data),
        escape(&info.eval_data),
        match info.budget {
            Budget::Fast => "fast",
            Budget::Full => "full",
        },
        share(e),
        published.epochs,
        share(ea),
        match info.budget {
            Budget::Fast => ", so the auto-encoders are far from converged and the differences from the report below are mostly that; <code>--budget full</code> trains the report's schedule",
            Budget::Full => "",
        },
        results.len(),
        fit,
        eval,
        env!("CARGO_PKG_VERSION")
    ));
    if !info.missing.is_empty() {
        h.push_str(&format!(
            "<p><em>{} point(s) not evaluated yet (the study was interrupted or ran out of time; \
             running the same command again continues it): {}</em></p>\n",
            info.missing.len(),
            escape(&info.missing.join(", "))
        ));
    }
    h.push_str(&format!(
        "<h2>The report's table, side by side</h2>\n<p>Each row of the report's table ({}) with \
         partlearn's value on top and, below it, the report's and the difference (ours − report's); \
         the SVM column says whether the difference is within the report's standard deviation.</p>\n",
        escape(&published.section)
    ));
    h.push_str(&comparison_table(results, published));
    let charts = charts(results, published)?;
    let (beta, trade): (Vec<_>, Vec<_>) = charts.iter().partition(|c| c.0.contains("_vs_beta_"));
    if !beta.is_empty() {
        h.push_str("<h2>Metrics against β</h2>\n<div class=\"pair\">\n");
        for (_, t, c, svg) in &beta {
            h.push_str(&figure(t, c, svg));
        }
        h.push_str("</div>\n");
    }
    if !trade.is_empty() {
        h.push_str("<h2>Trade-offs</h2>\n<div class=\"pair\">\n");
        for (_, t, c, svg) in &trade {
            h.push_str(&figure(t, c, svg));
        }
        h.push_str("</div>\n");
    }
    h.push_str(&points_table(results));
    h.push_str(&format!(
        "<p><small>Source of the published values: {}.</small></p>\n",
        escape(&published.source)
    ));
    h.push_str("</body></html>\n");
    Ok(h)
}
