//! Charts as SVG, drawn with `plotters` (SVG backend only: the browser renders the text, so no
//! font file or font library is needed, and Greek letters and symbols such as β, λ, ‖·‖ show as
//! text): metric-vs-parameter curves, trade-off scatters (METHODS.md §7.5, the report's Figure 8)
//! and bar charts of codes.
//!
//! A [`Chart`] holds series of `(x, y)` points (optionally with a ± error per point and a label
//! per point) and axis settings; [`Chart::to_svg`] draws axes with their labels, a log scale where
//! asked, lines and/or markers in a fixed colour cycle, error bars, and a legend beside the plot.
//! The output is deterministic: the same chart gives the same bytes. Image figures (atom grids,
//! panels) stay exact-pixel PNG ([`crate::figures`]).

use faer::MatRef;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::real::Real;

/// One named series of a chart.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// The points, drawn in this order.
    pub points: Vec<(f64, f64)>,
    /// ± error of each point's y (drawn as a vertical error bar); empty = none.
    pub errors: Vec<f64>,
    /// Text drawn beside each point (e.g. a run number); empty = none.
    pub point_labels: Vec<String>,
    /// Reference values (e.g. published numbers): hollow diamonds, never joined by a line.
    pub reference: bool,
    /// Colour as an index into the palette (default: the series' position), so that a reference
    /// series can take the colour of the curve it is compared with.
    pub color: Option<usize>,
}

impl Series {
    /// A series of points without error bars or point labels.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            points,
            ..Series::default()
        }
    }
}

/// How the points of a series are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Points joined in the given order, with markers.
    Lines,
    /// Markers only.
    Markers,
}

/// A 2-d chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// Title drawn above the plot (empty: none, e.g. when the page gives the title).
    pub title: String,
    /// Axis labels, with units.
    pub x_label: String,
    /// See `x_label`.
    pub y_label: String,
    /// Logarithmic x axis.
    pub x_log: bool,
    /// Logarithmic y axis.
    pub y_log: bool,
    /// Lines or markers only.
    pub style: Style,
    /// The series, one legend entry each.
    pub series: Vec<Series>,
    /// Canvas size in pixels (default 800 × 500).
    pub size: (usize, usize),
}

/// Font family of every text (resolved by the browser). Font sizes given to plotters are 1.24×
/// the CSS size its SVG backend writes.
const FONT: &str = "sans-serif";
/// Width of one character, in pixels per pixel of font size, used to reserve room for text
/// (generous for a sans-serif font, so that labels never overflow their area).
const CHAR_WIDTH: f64 = 0.5;

impl Chart {
    /// An empty line chart with the given title and axis labels.
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Self {
        Chart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_log: false,
            y_log: false,
            style: Style::Lines,
            series: Vec::new(),
            size: (800, 500),
        }
    }

    /// Whether point `(x, y)` can be drawn on this chart's axes.
    fn drawable(&self, (x, y): (f64, f64)) -> bool {
        x.is_finite() && y.is_finite() && (!self.x_log || x > 0.0) && (!self.y_log || y > 0.0)
    }

    /// The chart as an SVG document. Points that are not finite, or not positive on a log axis,
    /// are skipped (an error bar reaching below zero on a log axis is cut at the axis); a chart
    /// with no drawable point is an error.
    pub fn to_svg(&self) -> Result<String> {
        let (w, h) = self.size;
        if !(200..=8000).contains(&w) || !(150..=8000).contains(&h) {
            return Err(Error::invalid(
                "size",
                format!("{w}×{h}"),
                "give a size between 200×150 and 8000×8000 pixels",
            ));
        }
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for s in &self.series {
            for (i, &p) in s.points.iter().enumerate() {
                if !self.drawable(p) {
                    continue;
                }
                xs.push(p.0);
                ys.push(p.1);
                if let Some(&e) = s.errors.get(i).filter(|e| e.is_finite() && **e > 0.0) {
                    ys.push(p.1 + e);
                    if !self.y_log || p.1 - e > 0.0 {
                        ys.push(p.1 - e);
                    }
                }
            }
        }
        if xs.is_empty() {
            return Err(Error::invalid(
                "chart",
                &self.title,
                "no finite point to draw (log axes need positive values)",
            ));
        }
        let (x_lo, x_hi) = padded_range(&xs, self.x_log);
        let (y_lo, y_hi) = padded_range(&ys, self.y_log);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w as u32, h as u32)).into_drawing_area();
            let drawn = match (self.x_log, self.y_log) {
                (false, false) => self.draw(&root, x_lo..x_hi, y_lo..y_hi),
                (true, false) => self.draw(&root, (x_lo..x_hi).log_scale(), y_lo..y_hi),
                (false, true) => self.draw(&root, x_lo..x_hi, (y_lo..y_hi).log_scale()),
                (true, true) => self.draw(&root, (x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale()),
            };
            drawn
                .and_then(|()| root.present())
                .map_err(|e| draw_error(&self.title, e))?;
        }
        Ok(svg)
    }

    fn draw<X, Y>(&self, root: &DrawingArea<SVGBackend<'_>, Shift>, xr: X, yr: Y) -> DrawResult
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        root.fill(&WHITE)?;
        let (w, _) = self.size;
        let legend_w = self
            .series
            .iter()
            .map(|s| text_width(&s.label, 17.0) + 50)
            .max()
            .unwrap_or(0)
            .min(w as u32 / 3);
        let (plot_area, legend_area) = root.split_horizontally(w as u32 - legend_w);
        let mut builder = ChartBuilder::on(&plot_area);
        builder
            .margin(12)
            .margin_right(20)
            .x_label_area_size(56)
            .y_label_area_size(86);
        if !self.title.is_empty() {
            builder.caption(&self.title, (FONT, 24));
        }
        let mut cc = builder.build_cartesian_2d(xr, yr)?;
        let x_fmt = |v: &f64| format_tick(*v, self.x_log);
        let y_fmt = |v: &f64| format_tick(*v, self.y_log);
        cc.configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .axis_desc_style((FONT, 19))
            .label_style((FONT, 16))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .x_labels(8)
            .y_labels(8)
            .bold_line_style(RGBColor(225, 225, 225))
            .light_line_style(RGBColor(245, 245, 245))
            .draw()?;
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[s.color.unwrap_or(i) % PALETTE.len()];
            let pts: Vec<(usize, (f64, f64))> = s
                .points
                .iter()
                .copied()
                .enumerate()
                .filter(|&(_, p)| self.drawable(p))
                .collect();
            if self.style == Style::Lines && !s.reference {
                cc.draw_series(LineSeries::new(pts.iter().map(|p| p.1), color.stroke_width(2)))?;
            }
            let y_floor = if self.y_log {
                f64::MIN_POSITIVE
            } else {
                f64::NEG_INFINITY
            };
            cc.draw_series(pts.iter().filter_map(|&(j, (x, y))| {
                let e = *s.errors.get(j)?;
                (e.is_finite() && e > 0.0).then(|| {
                    ErrorBar::new_vertical(x, (y - e).max(y_floor), y, y + e, color.stroke_width(1), 8)
                })
            }))?;
            if s.reference {
                cc.draw_series(pts.iter().map(|&(_, p)| {
                    EmptyElement::at(p) + PathElement::new(DIAMOND.to_vec(), color.stroke_width(2))
                }))?;
            } else {
                cc.draw_series(pts.iter().map(|&(_, p)| Circle::new(p, 4, color.filled())))?;
            }
            cc.draw_series(pts.iter().filter_map(|&(j, p)| {
                let text = s.point_labels.get(j)?;
                Some(EmptyElement::at(p) + Text::new(text.clone(), (6, -16), (FONT, 15).into_font()))
            }))?;
        }
        // Legend to the right of the plot, so it never hides a point.
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[s.color.unwrap_or(i) % PALETTE.len()];
            let y = 40 + 24 * i as i32;
            if s.reference {
                let d = DIAMOND
                    .iter()
                    .map(|&(dx, dy)| (18 + dx, y + dy))
                    .collect::<Vec<_>>();
                legend_area.draw(&PathElement::new(d, color.stroke_width(2)))?;
            } else {
                if self.style == Style::Lines {
                    legend_area.draw(&PathElement::new(vec![(6, y), (30, y)], color.stroke_width(2)))?;
                }
                legend_area.draw(&Circle::new((18, y), 4, color.filled()))?;
            }
            let style = TextStyle::from((FONT, 17).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
            legend_area.draw(&Text::new(s.label.clone(), (38, y), style))?;
        }
        Ok(())
    }
}

type DrawResult = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// The outline of a hollow diamond of radius 7 pixels (the marker of a reference value).
const DIAMOND: [(i32, i32); 5] = [(0, -7), (7, 0), (0, 7), (-7, 0), (0, -7)];

fn draw_error(what: &str, e: DrawingAreaErrorKind<std::io::Error>) -> Error {
    Error::invalid("chart", what, format!("drawing failed ({e})"))
}

/// Pixels reserved for `text` at font size `size`.
fn text_width(text: &str, size: f64) -> u32 {
    (text.chars().count() as f64 * size * CHAR_WIDTH).ceil() as u32
}

/// Bar charts of the codes of selected samples (one panel per sample, one bar per atom, each
/// panel scaled to its own largest code, with axes "atom j" and "code h"): the "histograms of
/// codes" of the report, as an SVG document.
pub fn code_bars<T: Real>(codes: MatRef<'_, T>, samples: &[usize]) -> Result<String> {
    let k = codes.ncols();
    if k == 0 || samples.is_empty() {
        return Err(Error::invalid(
            "samples",
            format!("{} samples × {k} codes", samples.len()),
            "give at least one sample with at least one code",
        ));
    }
    if let Some(&bad) = samples.iter().find(|&&i| i >= codes.nrows()) {
        return Err(Error::invalid(
            "samples",
            bad,
            format!("there are only {} samples", codes.nrows()),
        ));
    }
    let cols = samples.len().min(4);
    let rows = samples.len().div_ceil(cols);
    let (panel_w, panel_h) = (280u32, 210u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (cols as u32 * panel_w, rows as u32 * panel_h))
            .into_drawing_area();
        let drawn = (|| -> DrawResult {
            root.fill(&WHITE)?;
            let panels = root.split_evenly((rows, cols));
            for (&i, panel) in samples.iter().zip(panels.iter()) {
                let values: Vec<f64> = (0..k)
                    .map(|j| Real::to_f64(codes[(i, j)]))
                    .map(|v| if v.is_finite() { v.max(0.0) } else { 0.0 })
                    .collect();
                let peak = values.iter().copied().fold(0.0f64, f64::max);
                let top = if peak > 0.0 { peak * 1.08 } else { 1.0 };
                let mut cc = ChartBuilder::on(panel)
                    .caption(format!("sample {i}"), (FONT, 17))
                    .margin(6)
                    .margin_right(14)
                    .x_label_area_size(38)
                    .y_label_area_size(62)
                    .build_cartesian_2d(-0.5..(k as f64 - 0.5), 0.0..top)?;
                let x_fmt = |v: &f64| format!("{v:.0}");
                let y_fmt = |v: &f64| format_tick(*v, false);
                cc.configure_mesh()
                    .x_desc("atom j")
                    .y_desc("code h")
                    .axis_desc_style((FONT, 15))
                    .label_style((FONT, 14))
                    .x_labels(6)
                    .y_labels(4)
                    .x_label_formatter(&x_fmt)
                    .y_label_formatter(&y_fmt)
                    .disable_x_mesh()
                    .bold_line_style(RGBColor(230, 230, 230))
                    .light_line_style(WHITE)
                    .draw()?;
                cc.draw_series(
                    values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| **v > 0.0)
                        .map(|(j, &v)| {
                            let x = j as f64;
                            Rectangle::new([(x - 0.4, 0.0), (x + 0.4, v)], PALETTE[0].filled())
                        }),
                )?;
            }
            root.present()
        })();
        drawn.map_err(|e| draw_error("code histograms", e))?;
    }
    Ok(svg)
}

/// A colour cycle that stays distinguishable when printed in grey.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];

/// The range of `v` widened by 5% (on the log10 scale on log axes), or around a single value.
fn padded_range(v: &[f64], log: bool) -> (f64, f64) {
    let t: Vec<f64> = v.iter().map(|&x| if log { x.log10() } else { x }).collect();
    let (lo, hi) = t.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
        (a.min(x), b.max(x))
    });
    let (lo, hi) = if hi - lo <= 1e-12 * hi.abs().max(1.0) {
        let d = if log { 0.5 } else { lo.abs().max(1.0) * 0.5 };
        (lo - d, hi + d)
    } else {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    };
    if log {
        (10f64.powf(lo), 10f64.powf(hi))
    } else {
        (lo, hi)
    }
}

/// Short label of a tick value: powers of ten as `10⁻⁴` on log axes, plain for moderate
/// magnitudes, `2.5×10⁶` otherwise.
fn format_tick(v: f64, log: bool) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { v.to_string() };
    }
    let a = v.abs();
    let e = a.log10().round() as i32;
    if log && (a / 10f64.powi(e) - 1.0).abs() < 1e-9 {
        return format!("{}10{}", if v < 0.0 { "−" } else { "" }, superscript(e));
    }
    if (1e-3..1e5).contains(&a) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        let e = a.log10().floor() as i32;
        let m = v / 10f64.powi(e);
        let m = if (m.round() - m).abs() < 1e-9 {
            format!("{}", m.round())
        } else {
            format!("{m:.1}")
        };
        format!("{m}×10{}", superscript(e))
    }
}

/// `e` in superscript digits (`-4` → `⁻⁴`).
fn superscript(e: i32) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let mut out = String::new();
    if e < 0 {
        out.push('⁻');
    }
    for d in e.unsigned_abs().to_string().bytes() {
        out.push(DIGITS[usize::from(d - b'0')]);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks that `svg` is well-formed XML with an `<svg>` root (a small parser: tags nest and
    /// close, attributes are quoted, entities are the XML ones) and returns its text contents.
    pub(crate) fn parse_svg(svg: &str) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut texts = Vec::new();
        let mut rest = svg.trim_start();
        if let Some(after) = rest.strip_prefix("<?xml") {
            rest = &after[after.find("?>").expect("XML declaration closes") + 2..];
        }
        let mut root_seen = false;
        while !rest.is_empty() {
            if let Some(tag_body) = rest.strip_prefix('<') {
                let end = tag_body.find('>').expect("tag closes");
                let tag = &tag_body[..end];
                rest = &tag_body[end + 1..];
                if let Some(name) = tag.strip_prefix('/') {
                    assert_eq!(stack.pop().as_deref(), Some(name.trim()), "closing tag matches");
                    continue;
                }
                let self_closing = tag.ends_with('/');
                let tag = tag.trim_end_matches('/');
                let name = tag.split_whitespace().next().expect("tag name");
                if !root_seen {
                    assert_eq!(name, "svg", "root element");
                    root_seen = true;
                }
                // Attributes: name="value" pairs.
                let attrs = tag[name.len()..].trim();
                let quotes = attrs.matches('"').count();
                assert!(quotes % 2 == 0, "attribute quotes balance in <{tag}>");
                if !self_closing {
                    stack.push(name.to_string());
                }
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                let text = &rest[..end];
                for (i, _) in text.match_indices('&') {
                    let ent = &text[i..];
                    assert!(
                        ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"]
                            .iter()
                            .any(|e| ent.starts_with(e)),
                        "bare & in text: {text}"
                    );
                }
                if !text.trim().is_empty() {
                    assert!(!stack.is_empty(), "text outside the root element");
                    texts.push(text.trim().to_string());
                }
                rest = &rest[end..];
            }
        }
        assert!(root_seen && stack.is_empty(), "unclosed elements: {stack:?}");
        texts
    }

    fn beta_chart() -> Chart {
        let mut chart = Chart::new(
            "MSE vs β",
            "β (sparsity-penalty weight)",
            "reconstruction MSE (per pixel)",
        );
        chart.x_log = true;
        chart.series = vec![
            Series::new("p = 0.01", vec![(1e-4, 0.01), (1e-3, 0.02), (1e-2, 0.04)]),
            Series {
                label: "p = 0.05 & more".into(),
                points: vec![(1e-4, 0.015), (1e-3, f64::NAN), (1e-2, 0.03)],
                errors: vec![0.002, 0.0, 0.001],
                point_labels: vec!["1".into(), "2".into(), "3".into()],
                ..Series::default()
            },
        ];
        chart
    }

    #[test]
    fn ticks_are_short_and_powers_of_ten_on_log_axes() {
        assert_eq!(format_tick(1e-4, true), "10⁻⁴");
        assert_eq!(format_tick(0.01, true), "10⁻²");
        assert_eq!(format_tick(100.0, true), "10²");
        assert_eq!(format_tick(0.01, false), "0.01");
        assert_eq!(format_tick(0.2, false), "0.2");
        assert_eq!(format_tick(5e-5, false), "5×10⁻⁵");
        assert_eq!(format_tick(12345.0, false), "12345");
        assert_eq!(format_tick(2.5e6, false), "2.5×10⁶");
        assert_eq!(padded_range(&[1e-4, 1e-2], true).0.log10(), -4.1);
    }

    #[test]
    fn chart_svg_has_axes_legend_greek_log_ticks_and_error_bars() {
        let chart = beta_chart();
        let svg = chart.to_svg().unwrap();
        if let Ok(dir) = std::env::var("PARTLEARN_FIGURE_DIR") {
            // For looking at the figure by eye.
            std::fs::write(std::path::Path::new(&dir).join("chart.svg"), &svg).unwrap();
        }
        let texts = parse_svg(&svg);
        for want in [
            "MSE vs β",
            "β (sparsity-penalty weight)",
            "reconstruction MSE (per pixel)",
            "p = 0.01",
            "p = 0.05 &amp; more",
            "10⁻⁴",
            "10⁻³",
            "10⁻²",
            "3",
        ] {
            assert!(texts.iter().any(|t| t == want), "{want} missing in {texts:?}");
        }
        // A linear x axis has no power-of-ten ticks.
        let mut linear = chart.clone();
        linear.x_log = false;
        let texts = parse_svg(&linear.to_svg().unwrap());
        assert!(!texts.iter().any(|t| t.starts_with("10⁻")), "{texts:?}");
        // Two error bars (the zero error draws none): each has a vertical line.
        assert!(
            svg.matches("<polyline").count() >= 3,
            "curves and error bars drawn"
        );
        // Both series in their colours.
        assert!(
            svg.contains("#1F77B4") && svg.contains("#D62728"),
            "palette colours"
        );
    }

    #[test]
    fn chart_svg_is_deterministic_and_refuses_empty_charts() {
        let chart = beta_chart();
        assert_eq!(chart.to_svg().unwrap(), chart.to_svg().unwrap());
        let mut other = chart.clone();
        other.series[0].points[0].1 = 0.011;
        assert_ne!(chart.to_svg().unwrap(), other.to_svg().unwrap());
        // Log axis with a non-positive x: that point is skipped, not an error.
        other.series[0].points.push((0.0, 1.0));
        assert!(other.to_svg().is_ok());
        other.y_log = true;
        assert!(other.to_svg().is_ok());
        other.series.clear();
        assert!(other.to_svg().is_err());
        let mut tiny = chart;
        tiny.size = (10, 10);
        assert!(tiny.to_svg().is_err());
    }

    #[test]
    fn reference_series_are_hollow_diamonds_in_the_colour_they_are_given() {
        let mut chart = beta_chart();
        let plain = chart.to_svg().unwrap();
        let mut reference = Series::new("report, p = 0.01", vec![(1e-3, 0.025), (1e-2, 0.05)]);
        reference.reference = true;
        reference.color = Some(0);
        chart.series.push(reference);
        let svg = chart.to_svg().unwrap();
        assert!(parse_svg(&svg).iter().any(|t| t == "report, p = 0.01"));
        // Two diamonds and one legend diamond: closed 5-point outlines in the first colour; no
        // third colour is used and no line joins the reference points.
        let diamonds = |s: &str| {
            s.split("<polyline")
                .skip(1)
                .filter(|p| {
                    p.contains("#1F77B4")
                        && p.split("points=\"").nth(1).map_or(0, |q| {
                            q.split('"').next().unwrap_or("").split_whitespace().count()
                        }) == 5
                })
                .count()
        };
        assert_eq!(diamonds(&svg) - diamonds(&plain), 3, "{svg}");
        assert!(
            !svg.contains("#2CA02C"),
            "the reference takes colour 0, not its own"
        );
    }

    #[test]
    fn code_bars_one_panel_per_sample_with_axes() {
        let codes = faer::Mat::<f32>::from_fn(3, 10, |i, j| if i == 1 { 0.0 } else { j as f32 });
        let svg = code_bars(codes.as_ref(), &[0, 1, 2]).unwrap();
        let texts = parse_svg(&svg);
        for want in ["sample 0", "sample 1", "sample 2", "atom j", "code h"] {
            assert!(texts.iter().any(|t| t == want), "{want} missing");
        }
        assert_eq!(
            texts.iter().filter(|t| *t == "atom j").count(),
            3,
            "one x axis per panel"
        );
        // 9 + 9 positive codes → 18 bars (filled rectangles in the first palette colour).
        assert_eq!(svg.matches("fill=\"#1F77B4\"").count(), 18, "{svg}");
        assert_eq!(svg, code_bars(codes.as_ref(), &[0, 1, 2]).unwrap());
        assert!(code_bars(codes.as_ref(), &[3]).is_err());
        assert!(code_bars(codes.as_ref(), &[]).is_err());
    }
}
