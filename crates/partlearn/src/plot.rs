//! Charts as PNG, drawn by hand so that no font or system library is needed: metric-vs-parameter
//! curves, trade-off scatters (METHODS.md §7.5, the report's Figure 8) and bar charts of codes.
//!
//! A [`Chart`] holds series of `(x, y)` points and axis settings; [`Chart::to_png`] lays out
//! axes with "nice" ticks (decades on log axes), draws lines and/or markers in a fixed colour
//! cycle, a legend, and text in a built-in 5×7 bitmap font (upper-case letters, digits and
//! common punctuation; lower-case letters are drawn as capitals).

use faer::MatRef;

use crate::error::{Error, Result};
use crate::real::Real;

/// One named series of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
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
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    pub style: Style,
    pub series: Vec<Series>,
    /// Canvas size in pixels (default 800 × 500).
    pub size: (usize, usize),
}

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

    /// The chart as PNG bytes (RGB). Points that are not finite, or not positive on a log axis,
    /// are skipped; a chart with no drawable point is an error.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let (w, h) = self.size;
        if !(200..=8000).contains(&w) || !(150..=8000).contains(&h) {
            return Err(Error::invalid(
                "size",
                format!("{w}×{h}"),
                "give a size between 200×150 and 8000×8000 pixels",
            ));
        }
        let tx = |v: f64| if self.x_log { v.log10() } else { v };
        let ty = |v: f64| if self.y_log { v.log10() } else { v };
        let ok = |(x, y): (f64, f64)| {
            x.is_finite() && y.is_finite() && (!self.x_log || x > 0.0) && (!self.y_log || y > 0.0)
        };
        let drawable: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&p| ok(p))
            .map(|(x, y)| (tx(x), ty(y)))
            .collect();
        if drawable.is_empty() {
            return Err(Error::invalid(
                "chart",
                &self.title,
                "no finite point to draw (log axes need positive values)",
            ));
        }
        let (x_lo, x_hi) = padded_range(drawable.iter().map(|p| p.0), self.x_log);
        let (y_lo, y_hi) = padded_range(drawable.iter().map(|p| p.1), self.y_log);

        let mut c = Canvas::new(w, h);
        let scale = 2;
        let legend_w = self
            .series
            .iter()
            .map(|s| text_width(&s.label, scale) + 40)
            .max()
            .unwrap_or(0)
            .min(w / 3);
        let (left, right, top, bottom) = (16 + 9 * 6 * scale, w - 20 - legend_w, 40, h - 56);
        let px = |x: f64| left as f64 + (x - x_lo) / (x_hi - x_lo) * (right - left) as f64;
        let py = |y: f64| bottom as f64 - (y - y_lo) / (y_hi - y_lo) * (bottom - top) as f64;

        // Frame, ticks and grid.
        let grey = [220, 220, 220];
        for (v, label) in ticks(x_lo, x_hi, self.x_log) {
            let x = px(v).round() as i64;
            c.line(x, top as i64, x, bottom as i64, grey, 1);
            c.line(x, bottom as i64, x, bottom as i64 + 5, BLACK, 1);
            let tw = text_width(&label, scale) as i64;
            c.text(x - tw / 2, bottom as i64 + 9, &label, scale, BLACK);
        }
        for (v, label) in ticks(y_lo, y_hi, self.y_log) {
            let y = py(v).round() as i64;
            c.line(left as i64, y, right as i64, y, grey, 1);
            c.line(left as i64 - 5, y, left as i64, y, BLACK, 1);
            let tw = text_width(&label, scale) as i64;
            c.text(left as i64 - 8 - tw, y - 7, &label, scale, BLACK);
        }
        c.rect_outline(left as i64, top as i64, right as i64, bottom as i64, BLACK);
        let tw = text_width(&self.title, scale) as i64;
        c.text((w as i64 - tw) / 2, 12, &self.title, scale, BLACK);
        let xw = text_width(&self.x_label, scale) as i64;
        c.text(
            (left + right) as i64 / 2 - xw / 2,
            h as i64 - 22,
            &self.x_label,
            scale,
            BLACK,
        );
        c.text(8, top as i64 - 20, &self.y_label, scale, BLACK);

        // Series and legend.
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let pts: Vec<(i64, i64)> = s
                .points
                .iter()
                .copied()
                .filter(|&p| ok(p))
                .map(|(x, y)| (px(tx(x)).round() as i64, py(ty(y)).round() as i64))
                .collect();
            if self.style == Style::Lines {
                for pair in pts.windows(2) {
                    c.line(pair[0].0, pair[0].1, pair[1].0, pair[1].1, color, 2);
                }
            }
            for &(x, y) in &pts {
                c.marker(x, y, color);
            }
            let ly = top as i64 + 10 + 24 * i as i64;
            let lx = right as i64 + 14;
            c.line(lx, ly + 6, lx + 18, ly + 6, color, 2);
            c.marker(lx + 9, ly + 6, color);
            c.text(lx + 26, ly, &s.label, scale, BLACK);
        }
        c.to_png()
    }
}

/// Bar charts of the codes of selected samples side by side (one panel per sample, one bar per
/// atom, each panel scaled to its own largest code): the "histograms of codes" of the report.
pub fn code_bars<T: Real>(codes: MatRef<'_, T>, samples: &[usize]) -> Result<Vec<u8>> {
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
    let bar = if k <= 64 { 3 } else { 2 };
    let (panel_w, panel_h, gap) = (k * bar + 4, 80, 6);
    let w = samples.len() * (panel_w + gap) + gap;
    let h = panel_h + 2 * gap;
    let mut c = Canvas::new(w, h);
    for (p, &i) in samples.iter().enumerate() {
        let x0 = (gap + p * (panel_w + gap)) as i64;
        let y0 = gap as i64;
        c.rect_outline(
            x0,
            y0,
            x0 + panel_w as i64 - 1,
            y0 + panel_h as i64 - 1,
            [160, 160, 160],
        );
        let peak = (0..k)
            .map(|j| Real::to_f64(codes[(i, j)]))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        if peak <= 0.0 {
            continue;
        }
        for j in 0..k {
            let v = Real::to_f64(codes[(i, j)]);
            if !(v > 0.0 && v.is_finite()) {
                continue;
            }
            let bh = ((v / peak) * (panel_h - 4) as f64).round() as i64;
            let bx = x0 + 2 + (j * bar) as i64;
            let base = y0 + panel_h as i64 - 2;
            c.fill_rect(bx, base - bh, bx + bar as i64 - 2, base, PALETTE[0]);
        }
    }
    c.to_png()
}

const BLACK: [u8; 3] = [0, 0, 0];
/// A colour cycle that stays distinguishable when printed in grey.
const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [255, 127, 14],
    [148, 103, 189],
    [23, 190, 207],
    [140, 86, 75],
    [127, 127, 127],
];

/// The data range of `v` widened by 5% (or to a unit interval around a single value).
fn padded_range(v: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if hi - lo <= 1e-12 * hi.abs().max(1.0) {
        let d = if log { 0.5 } else { lo.abs().max(1.0) * 0.5 };
        return (lo - d, hi + d);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

/// Tick positions (in axis units: log10 of the value on log axes) and their labels.
fn ticks(lo: f64, hi: f64, log: bool) -> Vec<(f64, String)> {
    if log {
        let (a, b) = (lo.ceil() as i64, hi.floor() as i64);
        if b >= a && b - a <= 12 {
            let stride = ((b - a) / 6 + 1) as usize;
            return (a..=b)
                .step_by(stride)
                .map(|e| (e as f64, format_tick(10f64.powi(e as i32))))
                .collect();
        }
        // Less than a decade: linear ticks placed on the log scale.
        return ticks(10f64.powf(lo), 10f64.powf(hi), false)
            .into_iter()
            .filter(|(v, _)| *v > 0.0)
            .map(|(v, s)| (v.log10(), s))
            .collect();
    }
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut out = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 && out.len() < 20 {
        let snapped = if v.abs() < step * 1e-9 { 0.0 } else { v };
        out.push((snapped, format_tick(snapped)));
        v += step;
    }
    out
}

/// Short label of a tick value: plain for moderate magnitudes, `1E-4` style otherwise.
fn format_tick(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e5).contains(&a) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        let e = a.log10().floor() as i32;
        let m = v / 10f64.powi(e);
        if (m.round() - m).abs() < 1e-9 {
            format!("{}E{e}", m.round())
        } else {
            format!("{m:.1}E{e}")
        }
    }
}

/// An RGB raster with clipping primitives.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: vec![255; w * h * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        for y in y0.min(y1)..=y0.max(y1) {
            for x in x0.min(x1)..=x0.max(x1) {
                self.set(x, y, c);
            }
        }
    }

    fn rect_outline(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        self.line(x0, y0, x1, y0, c, 1);
        self.line(x0, y1, x1, y1, c, 1);
        self.line(x0, y0, x0, y1, c, 1);
        self.line(x1, y0, x1, y1, c, 1);
    }

    /// Bresenham line of the given thickness (square pen).
    fn line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3], thick: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        // Guard against absurd coordinates from degenerate scales.
        let mut budget = 4 * (self.w + self.h) as i64 + dx - dy;
        loop {
            self.fill_rect(x, y, x + thick - 1, y + thick - 1, c);
            if (x == x1 && y == y1) || budget <= 0 {
                break;
            }
            budget -= 1;
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn marker(&mut self, x: i64, y: i64, c: [u8; 3]) {
        for dy in -3i64..=3 {
            for dx in -3i64..=3 {
                if dx * dx + dy * dy <= 10 {
                    self.set(x + dx, y + dy, c);
                }
            }
        }
    }

    /// Draws `s` with its top-left corner at `(x, y)`, each font pixel a `scale × scale` block.
    fn text(&mut self, x: i64, y: i64, s: &str, scale: usize, c: [u8; 3]) {
        let sc = scale as i64;
        for (n, ch) in s.chars().enumerate() {
            let rows = glyph(ch);
            let gx = x + n as i64 * 6 * sc;
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        let (px, py) = (gx + col * sc, y + r as i64 * sc);
                        self.fill_rect(px, py, px + sc - 1, py + sc - 1, c);
                    }
                }
            }
        }
    }

    fn to_png(&self) -> Result<Vec<u8>> {
        let fail = |e: png::EncodingError| Error::invalid("chart", "PNG", format!("encoding failed ({e})"));
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.w as u32, self.h as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().map_err(fail)?;
            writer.write_image_data(&self.px).map_err(fail)?;
            writer.finish().map_err(fail)?;
        }
        Ok(out)
    }
}

/// Width in pixels of `s` drawn at `scale` (6 font columns per character, the last one blank).
fn text_width(s: &str, scale: usize) -> usize {
    s.chars().count() * 6 * scale
}

/// The 5×7 bitmap of a character: 7 rows, bit 4 = leftmost column. Lower-case letters use the
/// capitals; characters without a glyph are drawn as a hollow box.
fn glyph(ch: char) -> [u8; 7] {
    let ch = ch.to_ascii_uppercase();
    let rows: &str = match ch {
        ' ' => ".....|.....|.....|.....|.....|.....|.....",
        '0' => ".###.|#...#|#..##|#.#.#|##..#|#...#|.###.",
        '1' => "..#..|.##..|..#..|..#..|..#..|..#..|.###.",
        '2' => ".###.|#...#|....#|...#.|..#..|.#...|#####",
        '3' => "#####|...#.|..#..|...#.|....#|#...#|.###.",
        '4' => "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.",
        '5' => "#####|#....|####.|....#|....#|#...#|.###.",
        '6' => "..##.|.#...|#....|####.|#...#|#...#|.###.",
        '7' => "#####|....#|...#.|..#..|.#...|.#...|.#...",
        '8' => ".###.|#...#|#...#|.###.|#...#|#...#|.###.",
        '9' => ".###.|#...#|#...#|.####|....#|...#.|.##..",
        'A' => ".###.|#...#|#...#|#####|#...#|#...#|#...#",
        'B' => "####.|#...#|#...#|####.|#...#|#...#|####.",
        'C' => ".###.|#...#|#....|#....|#....|#...#|.###.",
        'D' => "###..|#..#.|#...#|#...#|#...#|#..#.|###..",
        'E' => "#####|#....|#....|####.|#....|#....|#####",
        'F' => "#####|#....|#....|####.|#....|#....|#....",
        'G' => ".###.|#...#|#....|#.###|#...#|#...#|.####",
        'H' => "#...#|#...#|#...#|#####|#...#|#...#|#...#",
        'I' => ".###.|..#..|..#..|..#..|..#..|..#..|.###.",
        'J' => "..###|...#.|...#.|...#.|...#.|#..#.|.##..",
        'K' => "#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#",
        'L' => "#....|#....|#....|#....|#....|#....|#####",
        'M' => "#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#",
        'N' => "#...#|#...#|##..#|#.#.#|#..##|#...#|#...#",
        'O' => ".###.|#...#|#...#|#...#|#...#|#...#|.###.",
        'P' => "####.|#...#|#...#|####.|#....|#....|#....",
        'Q' => ".###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#",
        'R' => "####.|#...#|#...#|####.|#.#..|#..#.|#...#",
        'S' => ".####|#....|#....|.###.|....#|....#|####.",
        'T' => "#####|..#..|..#..|..#..|..#..|..#..|..#..",
        'U' => "#...#|#...#|#...#|#...#|#...#|#...#|.###.",
        'V' => "#...#|#...#|#...#|#...#|#...#|.#.#.|..#..",
        'W' => "#...#|#...#|#...#|#.#.#|#.#.#|#.#.#|.#.#.",
        'X' => "#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#",
        'Y' => "#...#|#...#|.#.#.|..#..|..#..|..#..|..#..",
        'Z' => "#####|....#|...#.|..#..|.#...|#....|#####",
        '.' => ".....|.....|.....|.....|.....|.##..|.##..",
        ',' => ".....|.....|.....|.....|.##..|..#..|.#...",
        '-' => ".....|.....|.....|#####|.....|.....|.....",
        '+' => ".....|..#..|..#..|#####|..#..|..#..|.....",
        '(' => "...#.|..#..|.#...|.#...|.#...|..#..|...#.",
        ')' => ".#...|..#..|...#.|...#.|...#.|..#..|.#...",
        '[' => ".###.|.#...|.#...|.#...|.#...|.#...|.###.",
        ']' => ".###.|...#.|...#.|...#.|...#.|...#.|.###.",
        '=' => ".....|.....|#####|.....|#####|.....|.....",
        ':' => ".....|.##..|.##..|.....|.##..|.##..|.....",
        '/' => ".....|....#|...#.|..#..|.#...|#....|.....",
        '_' => ".....|.....|.....|.....|.....|.....|#####",
        '%' => "##...|##..#|...#.|..#..|.#...|#..##|...##",
        '*' | '·' | '×' => ".....|..#..|#.#.#|.###.|#.#.#|..#..|.....",
        '\'' => "..#..|..#..|.#...|.....|.....|.....|.....",
        '<' => "...#.|..#..|.#...|#....|.#...|..#..|...#.",
        '>' => ".#...|..#..|...#.|....#|...#.|..#..|.#...",
        '|' => "..#..|..#..|..#..|..#..|..#..|..#..|..#..",
        _ => "#####|#...#|#...#|#...#|#...#|#...#|#####",
    };
    let mut out = [0u8; 7];
    for (r, row) in rows.split('|').enumerate() {
        out[r] = row.bytes().fold(0u8, |acc, b| (acc << 1) | u8::from(b == b'#'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
        let mut reader = png::Decoder::new(bytes).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width as usize, info.height as usize, buf)
    }

    #[test]
    fn every_glyph_row_has_five_columns() {
        for ch in (32u8..127).map(char::from).chain(['·', '×']) {
            let g = glyph(ch);
            assert!(g.iter().all(|r| *r < 32), "{ch}");
        }
        assert_eq!(glyph('1'), glyph('1'));
        assert_eq!(glyph('a'), glyph('A'));
        assert_ne!(glyph('A'), glyph('B'));
    }

    #[test]
    fn nice_ticks_cover_the_range() {
        let t = ticks(0.0, 1.0, false);
        let v: Vec<f64> = t.iter().map(|p| p.0).collect();
        assert_eq!(v, vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        assert_eq!(t[1].1, "0.2");
        let t = ticks(-4.2, -0.1, true);
        let labels: Vec<&str> = t.iter().map(|p| p.1.as_str()).collect();
        assert_eq!(labels, vec!["1E-4", "0.001", "0.01", "0.1"]);
        assert_eq!(format_tick(5e-5), "5E-5");
        assert_eq!(format_tick(12345.0), "12345");
        assert_eq!(format_tick(2.5e6), "2.5E6");
    }

    #[test]
    fn chart_draws_series_in_their_colours() {
        let mut chart = Chart::new("MSE vs beta", "beta", "mse");
        chart.x_log = true;
        chart.series = vec![
            Series {
                label: "p=0.01".into(),
                points: vec![(1e-4, 0.01), (1e-3, 0.02), (1e-2, 0.04)],
            },
            Series {
                label: "p=0.05".into(),
                points: vec![(1e-4, 0.015), (1e-3, f64::NAN), (1e-2, 0.03)],
            },
        ];
        let png = chart.to_png().unwrap();
        if let Ok(dir) = std::env::var("PARTLEARN_FIGURE_DIR") {
            // For looking at the figure by eye.
            std::fs::write(std::path::Path::new(&dir).join("chart.png"), &png).unwrap();
        }
        let (w, h, px) = decode(&png);
        assert_eq!((w, h), (800, 500));
        let count = |c: [u8; 3]| px.chunks_exact(3).filter(|p| *p == c).count();
        assert!(count(PALETTE[0]) > 200, "first series drawn");
        assert!(count(PALETTE[1]) > 100, "second series drawn");
        assert!(count(BLACK) > 500, "axes and text drawn");
        // Log axis with a non-positive x: that point is skipped, not an error.
        chart.series[0].points.push((0.0, 1.0));
        assert!(chart.to_png().is_ok());
        chart.series.clear();
        assert!(chart.to_png().is_err());
    }

    #[test]
    fn code_bars_one_panel_per_sample() {
        let codes = faer::Mat::<f32>::from_fn(3, 10, |i, j| if i == 1 { 0.0 } else { j as f32 });
        let (w, h, px) = decode(&code_bars(codes.as_ref(), &[0, 1, 2]).unwrap());
        assert_eq!(w, 3 * (10 * 3 + 4 + 6) + 6);
        assert_eq!(h, 92);
        assert!(px.chunks_exact(3).any(|p| p == PALETTE[0]));
        assert!(code_bars(codes.as_ref(), &[3]).is_err());
        assert!(code_bars(codes.as_ref(), &[]).is_err());
    }
}
