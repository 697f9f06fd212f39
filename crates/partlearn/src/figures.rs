//! Figures as PNG: atom grids and reconstruction panels for image data.
//!
//! Every figure is an 8-bit grey-scale PNG returned as bytes (write it with
//! [`crate::io::write_atomic`] or [`crate::io::RunDir::write`]). Images are drawn white on black
//! (0 = black), each pixel upscaled by [`GridOptions::scale`], with 1-pixel separator lines of
//! [`GridOptions::separator`] grey between and around the tiles. Samples and atoms are rows of
//! `h·w` row-major pixels.

use faer::MatRef;

use crate::error::{Error, Result};
use crate::real::Real;

/// Largest figure drawn, in pixels (a guard against absurd `scale` or tile counts).
const MAX_PIXELS: usize = 1 << 28;

/// Layout options shared by all figures.
#[derive(Clone, Debug, PartialEq)]
pub struct GridOptions {
    /// Integer upscale factor of each image pixel (≥ 1; default 2).
    pub scale: usize,
    /// Grey level of separator lines and empty cells (default 128).
    pub separator: u8,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            scale: 2,
            separator: 128,
        }
    }
}

/// How a tile's values map to grey levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intensity {
    /// Values clipped to `[0, 1]` (data scaled to `[0, 1]`, like Fashion-MNIST): 1 is white.
    Clip01,
    /// Each tile divided by its own maximum, so its brightest pixel is white; a tile whose
    /// maximum is ≤ 0 or not finite is drawn black.
    TileMax,
}

/// Atom indices by decreasing total contribution `Σ_i codes[i, j] · max(atom_j)`, ties by index.
///
/// `codes` is `n × k`, `atoms` is `k × (h·w)`. Atoms without a code column count as unused; a
/// non-finite contribution sorts last.
pub fn usage_order<T: Real>(codes: MatRef<'_, T>, atoms: MatRef<'_, T>) -> Vec<usize> {
    let k = atoms.nrows();
    let usage: Vec<f64> = (0..k)
        .map(|j| {
            let peak = (0..atoms.ncols())
                .map(|p| atoms[(j, p)].to_f64())
                .fold(f64::NEG_INFINITY, f64::max);
            if j >= codes.ncols() || !peak.is_finite() {
                return if j >= codes.ncols() {
                    0.0
                } else {
                    f64::NEG_INFINITY
                };
            }
            let total: f64 = (0..codes.nrows()).map(|i| codes[(i, j)].to_f64()).sum();
            let u = total * peak;
            if u.is_finite() {
                u
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| usage[b].total_cmp(&usage[a]).then(a.cmp(&b)));
    order
}

/// A near-square grid of atoms (`k × (h·w)`, one per row), each scaled to its own maximum.
///
/// `order` lists the atoms to draw in display order (all of them, e.g. from [`usage_order`], or
/// a subset); `None` draws all atoms in index order. The grid has `ceil(sqrt(m))` columns for `m`
/// drawn atoms.
pub fn atoms_grid<T: Real>(
    atoms: MatRef<'_, T>,
    image_shape: (usize, usize),
    order: Option<&[usize]>,
    opts: &GridOptions,
) -> Result<Vec<u8>> {
    let k = atoms.nrows();
    if k == 0 {
        return Err(Error::invalid(
            "atoms",
            0,
            "there are no atoms to draw; fit a model with k ≥ 1",
        ));
    }
    check_pixels("atoms", atoms, image_shape)?;
    let all: Vec<usize>;
    let order = match order {
        Some(o) => o,
        None => {
            all = (0..k).collect();
            &all
        }
    };
    if order.is_empty() {
        return Err(Error::invalid(
            "order",
            "[]",
            "the display order lists no atoms; give at least one atom index",
        ));
    }
    if let Some(&bad) = order.iter().find(|&&j| j >= k) {
        return Err(Error::invalid(
            "order",
            bad,
            format!("there are only {k} atoms (indices 0..{k})"),
        ));
    }
    let m = order.len();
    let cols = ceil_sqrt(m);
    let rows = m.div_ceil(cols);
    render(rows, cols, image_shape, opts, |r, c| {
        let idx = r * cols + c;
        (idx < m).then(|| tile(atoms, order[idx], Intensity::TileMax))
    })
}

/// Originals (top row) above their reconstructions (bottom row), one column per sample.
///
/// Both are `n × (h·w)`; values are clipped to `[0, 1]`, the range partlearn scales image data
/// to, so reconstructions overshooting 1 show as white.
pub fn reconstructions<T: Real>(
    originals: MatRef<'_, T>,
    recon: MatRef<'_, T>,
    image_shape: (usize, usize),
    opts: &GridOptions,
) -> Result<Vec<u8>> {
    panel_rows(&[originals, recon], image_shape, opts)
}

/// A panel with one figure row per matrix (each `n × (h·w)`, same `n`), values clipped to
/// `[0, 1]`.
pub fn panel_rows<T: Real>(
    rows: &[MatRef<'_, T>],
    image_shape: (usize, usize),
    opts: &GridOptions,
) -> Result<Vec<u8>> {
    panel_rows_with(rows, image_shape, Intensity::Clip01, opts)
}

/// Like [`panel_rows`], with a chosen [`Intensity`] mapping (e.g. `TileMax` for atoms).
pub fn panel_rows_with<T: Real>(
    rows: &[MatRef<'_, T>],
    image_shape: (usize, usize),
    intensity: Intensity,
    opts: &GridOptions,
) -> Result<Vec<u8>> {
    let Some(first) = rows.first() else {
        return Err(Error::invalid(
            "rows",
            0,
            "a panel needs at least one row of images",
        ));
    };
    let n = first.nrows();
    if n == 0 {
        return Err(Error::invalid(
            "rows",
            0,
            "there are no images to draw; give at least one sample",
        ));
    }
    for (r, m) in rows.iter().enumerate() {
        if m.nrows() != n {
            return Err(Error::ShapeMismatch {
                what: format!("panel row {}", r + 1),
                expected: format!("{n} images (as in row 1)"),
                found: format!("{} images", m.nrows()),
                hint: "give every row of the panel the same samples".into(),
            });
        }
        check_pixels(&format!("panel row {}", r + 1), *m, image_shape)?;
    }
    render(rows.len(), n, image_shape, opts, |r, c| {
        Some(tile(rows[r], c, intensity))
    })
}

/// Smallest `c` with `c² ≥ m`.
fn ceil_sqrt(m: usize) -> usize {
    let mut c = (m as f64).sqrt() as usize;
    while c * c < m {
        c += 1;
    }
    while c > 1 && (c - 1) * (c - 1) >= m {
        c -= 1;
    }
    c.max(1)
}

/// Checks that each row of `m` is an `h × w` image.
fn check_pixels<T: Real>(what: &str, m: MatRef<'_, T>, (h, w): (usize, usize)) -> Result<()> {
    if h == 0 || w == 0 {
        return Err(Error::invalid(
            "image_shape",
            format!("{h}×{w}"),
            "images need at least one pixel in each direction",
        ));
    }
    if h.checked_mul(w) != Some(m.ncols()) {
        return Err(Error::ShapeMismatch {
            what: what.to_string(),
            expected: format!("{h}×{w} = {} pixels per image", h.saturating_mul(w)),
            found: format!("{} features", m.ncols()),
            hint: "give the image shape of the data the model was fitted on".into(),
        });
    }
    Ok(())
}

/// Grey levels of row `i` of `m` under `intensity`.
fn tile<T: Real>(m: MatRef<'_, T>, i: usize, intensity: Intensity) -> Vec<u8> {
    let values = (0..m.ncols()).map(|p| m[(i, p)].to_f64());
    let divisor = match intensity {
        Intensity::Clip01 => 1.0,
        Intensity::TileMax => {
            let peak = values.clone().fold(f64::NEG_INFINITY, f64::max);
            if !(peak > 0.0 && peak.is_finite()) {
                return vec![0; m.ncols()];
            }
            peak
        }
    };
    values
        .map(|v| {
            let x = v / divisor;
            if x.is_nan() {
                0
            } else {
                (x.clamp(0.0, 1.0) * 255.0).round() as u8
            }
        })
        .collect()
}

/// Lays out `rows × cols` tiles of `h × w` pixels (`None` = empty cell) and encodes the PNG.
fn render<F>(
    rows: usize,
    cols: usize,
    (h, w): (usize, usize),
    opts: &GridOptions,
    mut tile_at: F,
) -> Result<Vec<u8>>
where
    F: FnMut(usize, usize) -> Option<Vec<u8>>,
{
    let s = opts.scale;
    if s == 0 {
        return Err(Error::invalid("scale", 0, "the scale must be ≥ 1"));
    }
    let too_big = || {
        Error::invalid(
            "figure",
            format!("{rows}×{cols} tiles of {h}×{w} pixels at scale {s}"),
            "the figure would be too large; lower the scale or draw fewer images",
        )
    };
    let tile_h = h.checked_mul(s).ok_or_else(too_big)?;
    let tile_w = w.checked_mul(s).ok_or_else(too_big)?;
    let span = |n: usize, t: usize| n.checked_mul(t + 1)?.checked_add(1);
    let height = span(rows, tile_h).ok_or_else(too_big)?;
    let width = span(cols, tile_w).ok_or_else(too_big)?;
    let pixels = width.checked_mul(height).ok_or_else(too_big)?;
    if pixels > MAX_PIXELS {
        return Err(too_big());
    }

    let mut img = vec![opts.separator; pixels];
    for r in 0..rows {
        for c in 0..cols {
            let Some(grey) = tile_at(r, c) else { continue };
            let (y0, x0) = (1 + r * (tile_h + 1), 1 + c * (tile_w + 1));
            for y in 0..h {
                for x in 0..w {
                    let v = grey[y * w + x];
                    for dy in 0..s {
                        let start = (y0 + y * s + dy) * width + x0 + x * s;
                        img[start..start + s].fill(v);
                    }
                }
            }
        }
    }
    encode_grey(&img, width, height)
}

/// Encodes 8-bit grey pixels (row-major, `width × height`) as PNG.
fn encode_grey(img: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    let fail = |e: png::EncodingError| {
        Error::invalid(
            "figure",
            format!("{width}×{height} pixels"),
            format!("PNG encoding failed ({e})"),
        )
    };
    let (w32, h32) = match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => {
            return Err(Error::invalid(
                "figure",
                format!("{width}×{height} pixels"),
                "too large for PNG; draw fewer images",
            ))
        }
    };
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w32, h32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(fail)?;
        writer.write_image_data(img).map_err(fail)?;
        writer.finish().map_err(fail)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    /// Decodes a grey PNG into (width, height, pixels).
    fn decode(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
        let mut reader = png::Decoder::new(bytes).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        (info.width as usize, info.height as usize, buf)
    }

    fn px(img: &(usize, usize, Vec<u8>), x: usize, y: usize) -> u8 {
        img.2[y * img.0 + x]
    }

    #[test]
    fn atoms_grid_layout_and_own_max_scaling() {
        // 5 atoms of 2×3 pixels → 3 columns × 2 rows.
        let (h, w) = (2, 3);
        let mut atoms = Mat::<f32>::zeros(5, h * w);
        atoms[(0, 0)] = 0.5; // max 0.5 → renders white
        atoms[(0, 1)] = 0.25; // half of its max → 128
        atoms[(1, 5)] = 2.0;
        atoms[(2, 0)] = -1.0; // max ≤ 0 → black
        atoms[(3, 2)] = f32::INFINITY; // non-finite max → black
        let opts = GridOptions::default();
        let img = decode(&atoms_grid(atoms.as_ref(), (h, w), None, &opts).unwrap());
        let s = opts.scale;
        assert_eq!(img.0, 3 * (w * s + 1) + 1);
        assert_eq!(img.1, 2 * (h * s + 1) + 1);
        // Corner and separators are mid-grey.
        assert_eq!(px(&img, 0, 0), 128);
        assert_eq!(px(&img, w * s + 1, 1), 128);
        // Atom 0, pixel (0,0) scaled by s: all 4 output pixels white.
        for (x, y) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
            assert_eq!(px(&img, x, y), 255);
        }
        assert_eq!(px(&img, 1 + s, 1), 128); // 0.25 / 0.5 → 127.5 → 128
        assert_eq!(px(&img, 1 + 2 * s, 1), 0);
        // Atom 1 (column 1): last pixel (y=1, x=2) white.
        let x0 = 1 + (w * s + 1);
        assert_eq!(px(&img, x0 + 2 * s, 1 + s), 255);
        // Atom 2 (column 2) black everywhere; atom 3 (row 1, column 0) black.
        let x2 = 1 + 2 * (w * s + 1);
        assert_eq!(px(&img, x2, 1), 0);
        let y1 = 1 + (h * s + 1);
        assert_eq!(px(&img, 1 + 2 * s, y1), 0);
        // The sixth cell (row 1, column 2) is empty: separator grey.
        assert_eq!(px(&img, x2, y1), 128);
    }

    #[test]
    fn order_and_usage() {
        let atoms = Mat::<f64>::from_fn(3, 4, |j, p| if p == 0 { (j + 1) as f64 } else { 0.0 });
        // usage: atom0 = 10·1, atom1 = 1·2, atom2 = 5·3 = 15.
        let codes = Mat::<f64>::from_fn(2, 3, |_, j| [5.0, 0.5, 2.5][j]);
        assert_eq!(usage_order(codes.as_ref(), atoms.as_ref()), vec![2, 0, 1]);
        // Ties keep index order.
        let flat = Mat::<f64>::from_fn(2, 3, |_, _| 1.0);
        let same = Mat::<f64>::from_fn(3, 4, |_, _| 1.0);
        assert_eq!(usage_order(flat.as_ref(), same.as_ref()), vec![0, 1, 2]);

        // Drawing a subset in the given order: 2 atoms → 2 columns, 1 row.
        let opts = GridOptions {
            scale: 1,
            separator: 50,
        };
        let img = decode(&atoms_grid(atoms.as_ref(), (2, 2), Some(&[2, 0]), &opts).unwrap());
        assert_eq!((img.0, img.1), (2 * 3 + 1, 2 + 2));
        assert_eq!(px(&img, 0, 0), 50);
        assert_eq!(px(&img, 1, 1), 255);
        assert!(atoms_grid(atoms.as_ref(), (2, 2), Some(&[3]), &opts).is_err());
        assert!(atoms_grid(atoms.as_ref(), (2, 2), Some(&[]), &opts).is_err());
    }

    #[test]
    fn reconstructions_clip_and_layout() {
        let (h, w) = (2, 2);
        let orig = Mat::<f32>::from_fn(3, 4, |i, p| if p == 0 { 0.2 * i as f32 } else { 0.0 });
        let mut rec = orig.clone();
        rec[(0, 3)] = 1.7; // clipped to white
        rec[(1, 3)] = -0.3; // clipped to black
        let opts = GridOptions {
            scale: 3,
            separator: 128,
        };
        let img = decode(&reconstructions(orig.as_ref(), rec.as_ref(), (h, w), &opts).unwrap());
        assert_eq!(img.0, 3 * (w * 3 + 1) + 1);
        assert_eq!(img.1, 2 * (h * 3 + 1) + 1);
        // Top row, sample 2, pixel 0 = 0.4 → 102.
        let x = 1 + 2 * (w * 3 + 1);
        assert_eq!(px(&img, x, 1), 102);
        // Bottom row, sample 0, pixel (1,1) clipped to 255; sample 1 pixel (1,1) = 0.
        let y = 1 + (h * 3 + 1) + 3;
        assert_eq!(px(&img, 1 + 3, y), 255);
        assert_eq!(px(&img, 1 + (w * 3 + 1) + 3, y), 0);
    }

    #[test]
    fn panel_with_four_rows() {
        let m = Mat::<f64>::from_fn(2, 1, |i, _| i as f64);
        let rows = [m.as_ref(); 4];
        let img = decode(
            &panel_rows(
                &rows,
                (1, 1),
                &GridOptions {
                    scale: 1,
                    separator: 9,
                },
            )
            .unwrap(),
        );
        assert_eq!((img.0, img.1), (5, 9));
        assert_eq!(px(&img, 3, 7), 255);
        assert_eq!(px(&img, 1, 7), 0);
        assert_eq!(px(&img, 2, 7), 9);
    }

    #[test]
    fn shape_errors() {
        let opts = GridOptions::default();
        let a = Mat::<f32>::zeros(3, 6);
        let b = Mat::<f32>::zeros(2, 6);
        assert!(matches!(
            atoms_grid(a.as_ref(), (2, 2), None, &opts),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            reconstructions(a.as_ref(), b.as_ref(), (2, 3), &opts),
            Err(Error::ShapeMismatch { .. })
        ));
        let empty = Mat::<f32>::zeros(0, 6);
        assert!(atoms_grid(empty.as_ref(), (2, 3), None, &opts).is_err());
        assert!(reconstructions(empty.as_ref(), empty.as_ref(), (2, 3), &opts).is_err());
        assert!(atoms_grid(a.as_ref(), (0, 6), None, &opts).is_err());
        let zero_scale = GridOptions {
            scale: 0,
            ..opts.clone()
        };
        assert!(atoms_grid(a.as_ref(), (2, 3), None, &zero_scale).is_err());
        let huge = GridOptions {
            scale: 1 << 20,
            ..opts
        };
        assert!(atoms_grid(a.as_ref(), (2, 3), None, &huge).is_err());
        assert!(panel_rows::<f32>(&[], (2, 3), &GridOptions::default()).is_err());
    }

    #[test]
    fn ceil_sqrt_values() {
        for (m, c) in [
            (1, 1),
            (2, 2),
            (4, 2),
            (5, 3),
            (9, 3),
            (10, 4),
            (100, 10),
            (101, 11),
        ] {
            assert_eq!(ceil_sqrt(m), c, "m = {m}");
        }
    }
}
