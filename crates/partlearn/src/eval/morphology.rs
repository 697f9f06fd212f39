//! Flat grey-scale morphology on images (METHODS.md §7.4): dilation `δ(f)(p) = max_{z∈B} f(p+z)`
//! and erosion `ε(f)(p) = min_{z∈B} f(p−z)` by a structuring element `B` of pixel offsets.
//! Pixels outside the image are ignored (the max/min runs over the in-image neighbours only),
//! which for a symmetric `B` containing the origin equals scikit-image's reflect padding.
//!
//! With these conventions `(ε, δ)` is an adjunction (`δf ≤ g ⇔ f ≤ εg`) for every `B` that
//! contains the origin.
//! Images are rows of a matrix (`n × (h·w)`, row-major pixels); [`dilate_rows`] works on all
//! of them in parallel.

use faer::{Mat, MatRef};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::real::Real;

/// Largest disk radius [`StructuringElement::parse`] accepts (squares: side `2·MAX_RADIUS + 1`).
pub const MAX_RADIUS: usize = 1024;

/// A flat structuring element: a set of `(dy, dx)` offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructuringElement {
    offsets: Vec<(isize, isize)>,
    name: String,
}

impl StructuringElement {
    /// `disk(r)`: offsets with `dy² + dx² ≤ r²` (scikit-image's `disk`): `disk(1)` is the 3×3
    /// cross, `disk(2)` the 13-pixel diamond.
    pub fn disk(r: usize) -> Self {
        let r = r as isize;
        let offsets = (-r..=r)
            .flat_map(|dy| (-r..=r).map(move |dx| (dy, dx)))
            .filter(|&(dy, dx)| dy * dy + dx * dx <= r * r)
            .collect();
        StructuringElement {
            offsets,
            name: format!("disk:{r}"),
        }
    }

    /// A `side × side` square centred on the origin (`side` odd).
    pub fn square(side: usize) -> Result<Self> {
        if side == 0 || side % 2 == 0 {
            return Err(Error::invalid(
                "structuring_element",
                format!("square:{side}"),
                "a square needs an odd side ≥ 1 so that it is centred (e.g. square:3)",
            ));
        }
        let r = (side / 2) as isize;
        let offsets = (-r..=r).flat_map(|dy| (-r..=r).map(move |dx| (dy, dx))).collect();
        Ok(StructuringElement {
            offsets,
            name: format!("square:{side}"),
        })
    }

    /// A custom element from a mask of `rows` strings of `#` (in) and `.` (out), centred on
    /// the middle cell (odd sizes), e.g. `["...", ".##", "..."]` (origin and right neighbour).
    pub fn custom(rows: &[&str]) -> Result<Self> {
        let bad = |why: &str| Error::invalid("structuring_element", rows.join("/"), why.to_string());
        let h = rows.len();
        let w = rows.first().map_or(0, |r| r.chars().count());
        if h % 2 == 0 || w % 2 == 0 || rows.iter().any(|r| r.chars().count() != w) {
            return Err(bad(
                "a custom mask needs equal-length rows and odd height and width, e.g. .#./###/.#.",
            ));
        }
        let (cy, cx) = ((h / 2) as isize, (w / 2) as isize);
        let mut offsets = Vec::new();
        for (y, row) in rows.iter().enumerate() {
            for (x, c) in row.chars().enumerate() {
                match c {
                    '#' => offsets.push((y as isize - cy, x as isize - cx)),
                    '.' => {}
                    _ => return Err(bad("use only '#' (in) and '.' (out) in a custom mask")),
                }
            }
        }
        if offsets.is_empty() {
            return Err(bad("the mask selects no pixel"));
        }
        Ok(StructuringElement {
            offsets,
            name: format!("custom:{}", rows.join("/")),
        })
    }

    /// Parses `disk:R`, `square:S` or `custom:ROW/ROW/...` (e.g. `custom:.#./###/.#.`).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "structuring_element",
                s,
                "use disk:R (disk:1 is the 3×3 cross), square:S (odd S) or custom:ROW/ROW/… with # and .",
            )
        };
        let (kind, arg) = s.split_once(':').ok_or_else(bad)?;
        let size = |limit: usize| -> Result<usize> {
            let v: usize = arg.parse().map_err(|_| bad())?;
            if v > limit {
                return Err(Error::invalid(
                    "structuring_element",
                    s,
                    format!("at most {limit} (an element wider than the image acts like the whole image)"),
                ));
            }
            Ok(v)
        };
        match kind {
            "disk" => Ok(Self::disk(size(MAX_RADIUS)?)),
            "square" => Self::square(size(2 * MAX_RADIUS + 1)?),
            "custom" => Self::custom(&arg.split('/').collect::<Vec<_>>()),
            _ => Err(bad()),
        }
    }

    /// The offsets `(dy, dx)`.
    pub fn offsets(&self) -> &[(isize, isize)] {
        &self.offsets
    }

    /// The element reflected through the origin (`−B`).
    pub fn reflected(&self) -> Self {
        StructuringElement {
            offsets: self.offsets.iter().map(|&(y, x)| (-y, -x)).collect(),
            name: format!("reflected {}", self.name),
        }
    }

    /// The name it was built from (e.g. `disk:1`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `out(p) = max_{z∈B, p+z inside} img(p+z)` (dilation) or `min_{z∈B, p−z inside} img(p−z)`
/// (erosion). A pixel with no in-image neighbour (possible only when `B` lacks the origin)
/// keeps its own value rather than becoming ∓∞; the adjunction is exact for elements that
/// contain the origin, which every element of the report does.
fn morph<T: Real>(img: &[T], h: usize, w: usize, se: &StructuringElement, erode: bool, out: &mut [T]) {
    let sign: isize = if erode { -1 } else { 1 };
    for y in 0..h {
        for x in 0..w {
            let mut acc: Option<T> = None;
            for &(dy, dx) in &se.offsets {
                let (yy, xx) = (y as isize + sign * dy, x as isize + sign * dx);
                if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                    continue;
                }
                let v = img[yy as usize * w + xx as usize];
                acc = Some(match acc {
                    None => v,
                    Some(a) if erode => a.min(v),
                    Some(a) => a.max(v),
                });
            }
            out[y * w + x] = acc.unwrap_or(img[y * w + x]);
        }
    }
}

/// Dilation of one `h × w` image (row-major) by `se`, into `out`.
pub fn dilate<T: Real>(img: &[T], h: usize, w: usize, se: &StructuringElement, out: &mut [T]) {
    morph(img, h, w, se, false, out);
}

/// Erosion of one `h × w` image (row-major) by `se`, into `out`.
pub fn erode<T: Real>(img: &[T], h: usize, w: usize, se: &StructuringElement, out: &mut [T]) {
    morph(img, h, w, se, true, out);
}

/// Dilates every row of `images` (`n × (h·w)`), in parallel over images with `threads`
/// workers (0 = all cores). Bitwise the same for any thread count.
pub fn dilate_rows<T: Real>(
    images: MatRef<'_, T>,
    h: usize,
    w: usize,
    se: &StructuringElement,
    threads: usize,
) -> Result<Mat<T>> {
    morph_rows(images, h, w, se, false, threads)
}

/// Erodes every row of `images` (`n × (h·w)`); see [`dilate_rows`].
pub fn erode_rows<T: Real>(
    images: MatRef<'_, T>,
    h: usize,
    w: usize,
    se: &StructuringElement,
    threads: usize,
) -> Result<Mat<T>> {
    morph_rows(images, h, w, se, true, threads)
}

fn morph_rows<T: Real>(
    images: MatRef<'_, T>,
    h: usize,
    w: usize,
    se: &StructuringElement,
    erode: bool,
    threads: usize,
) -> Result<Mat<T>> {
    let (n, p) = (images.nrows(), images.ncols());
    if h.checked_mul(w) != Some(p) || p == 0 {
        return Err(Error::ShapeMismatch {
            what: "images".into(),
            expected: format!("{h}×{w} = {} pixels per image", h.saturating_mul(w)),
            found: format!("{p} features"),
            hint: "give the image shape of the data".into(),
        });
    }
    // Offsets that reach past the image's size never land inside it: dropped once here (a
    // disk:1000 on 28×28 images would otherwise visit 3 million offsets per pixel).
    let (hi, wi) = (h as isize, w as isize);
    let se = &StructuringElement {
        offsets: se
            .offsets
            .iter()
            .copied()
            .filter(|&(dy, dx)| dy.abs() < hi && dx.abs() < wi)
            .collect(),
        name: se.name.clone(),
    };
    // Row-major buffers per image: gather, transform, scatter (rows of a faer matrix are strided).
    let work = |i: usize| -> Vec<T> {
        let img: Vec<T> = (0..p).map(|j| images[(i, j)]).collect();
        let mut out = vec![T::zero(); p];
        morph(&img, h, w, se, erode, &mut out);
        out
    };
    let results: Vec<Vec<T>> =
        crate::linalg::with_threads(threads, || (0..n).into_par_iter().map(work).collect())?;
    Ok(Mat::from_fn(n, p, |i, j| results[i][j]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn disk_shapes_match_scikit_image() {
        assert_eq!(StructuringElement::disk(1).offsets().len(), 5);
        assert_eq!(StructuringElement::disk(2).offsets().len(), 13);
        assert_eq!(StructuringElement::square(3).unwrap().offsets().len(), 9);
        assert!(StructuringElement::square(2).is_err());
        assert_eq!(
            StructuringElement::parse("disk:1").unwrap(),
            StructuringElement::disk(1)
        );
        assert_eq!(
            StructuringElement::parse("custom:.#./###/.#.")
                .unwrap()
                .offsets()
                .len(),
            5
        );
        for bad in [
            "disk",
            "disk:x",
            "ball:1",
            "custom:##/##",
            "custom:.x./...",
            "custom:.../.../...",
        ] {
            let e = StructuringElement::parse(bad).unwrap_err().to_string();
            assert!(e.contains("structuring_element"), "{bad}: {e}");
        }
    }

    #[test]
    fn corner_pixel_spreads_to_its_two_4_neighbours() {
        // METHODS.md §9 item 9.
        let mut img = vec![0.0f64; 25];
        img[0] = 1.0;
        let mut out = vec![0.0; 25];
        dilate(&img, 5, 5, &StructuringElement::disk(1), &mut out);
        let on: Vec<usize> = (0..25).filter(|&i| out[i] == 1.0).collect();
        assert_eq!(on, vec![0, 1, 5]);
    }

    #[test]
    fn rows_in_parallel_equal_single_images() {
        let mut r = crate::rng::Rng::new(1);
        let m = Mat::<f32>::from_fn(37, 28 * 28, |_, _| r.uniform() as f32);
        let se = StructuringElement::disk(1);
        let one = dilate_rows(m.as_ref(), 28, 28, &se, 1).unwrap();
        let two = dilate_rows(m.as_ref(), 28, 28, &se, 2).unwrap();
        assert_eq!(one, two);
        let img: Vec<f32> = (0..784).map(|j| m[(5, j)]).collect();
        let mut out = vec![0.0; 784];
        dilate(&img, 28, 28, &se, &mut out);
        assert!((0..784).all(|j| one[(5, j)] == out[j]));
        assert!(dilate_rows(m.as_ref(), 27, 28, &se, 1).is_err());
    }

    #[test]
    fn oversized_elements_are_refused_or_clipped_without_changing_the_result() {
        let e = StructuringElement::parse("square:99999").unwrap_err().to_string();
        assert!(e.contains("square:99999") && e.contains("at most 2049"), "{e}");
        assert!(StructuringElement::parse("disk:1025").is_err());
        // A disk far wider than 6×5 images equals the image's maximum everywhere, as the same
        // disk applied image by image without the clipping of the row version.
        let mut r = crate::rng::Rng::new(2);
        let m = Mat::<f64>::from_fn(3, 30, |_, _| r.uniform());
        let big = StructuringElement::parse("disk:1024").unwrap();
        let rows = dilate_rows(m.as_ref(), 6, 5, &big, 1).unwrap();
        for i in 0..3 {
            let img: Vec<f64> = (0..30).map(|j| m[(i, j)]).collect();
            let top = img.iter().copied().fold(0.0, f64::max);
            let mut out = vec![0.0; 30];
            dilate(&img, 6, 5, &big, &mut out);
            assert!((0..30).all(|j| rows[(i, j)] == out[j] && out[j] == top));
        }
    }

    fn image() -> impl Strategy<Value = (usize, usize, Vec<f64>, Vec<f64>)> {
        (1usize..7, 1usize..7).prop_flat_map(|(h, w)| {
            (
                Just(h),
                Just(w),
                proptest::collection::vec(0.0f64..1.0, h * w),
                proptest::collection::vec(0.0f64..1.0, h * w),
            )
        })
    }

    fn elements() -> Vec<StructuringElement> {
        vec![
            StructuringElement::disk(1),
            StructuringElement::disk(2),
            StructuringElement::square(3).unwrap(),
            // Not symmetric and without the origin.
            StructuringElement::custom(&["...", "..#", ".#."]).unwrap(),
        ]
    }

    proptest! {
        #[test]
        fn morphology_laws((h, w, f, g) in image(), c in 0.0f64..3.0) {
            for se in elements() {
                let d = |x: &[f64]| { let mut o = vec![0.0; h * w]; dilate(x, h, w, &se, &mut o); o };
                let e = |x: &[f64]| { let mut o = vec![0.0; h * w]; erode(x, h, w, &se, &mut o); o };
                let has_origin = se.offsets().contains(&(0, 0));
                let (df, ef) = (d(&f), e(&f));
                if has_origin {
                    // Extensive / anti-extensive.
                    prop_assert!(df.iter().zip(&f).all(|(a, b)| a >= b));
                    prop_assert!(ef.iter().zip(&f).all(|(a, b)| a <= b));
                }
                // Increasing: f ≤ f ∨ g ⇒ δf ≤ δ(f ∨ g).
                let fg: Vec<f64> = f.iter().zip(&g).map(|(a, b)| a.max(*b)).collect();
                let dfg = d(&fg);
                prop_assert!(df.iter().zip(&dfg).all(|(a, b)| a <= b));
                // Commutes with the pointwise max.
                let dg = d(&g);
                prop_assert!(dfg.iter().zip(df.iter().zip(&dg)).all(|(a, (b, c))| *a == b.max(*c)));
                // Commutes with non-negative scaling.
                let cf: Vec<f64> = f.iter().map(|v| c * v).collect();
                prop_assert!(d(&cf).iter().zip(&df).all(|(a, b)| (a - c * b).abs() < 1e-12));
                if has_origin {
                    // Adjunction: δf ≤ g ⇔ f ≤ εg (g = δf makes the left side true).
                    for target in [g.clone(), df.clone()] {
                        let left = df.iter().zip(&target).all(|(a, b)| a <= b);
                        let right = f.iter().zip(e(&target)).all(|(a, b)| *a <= b);
                        prop_assert_eq!(left, right);
                    }
                }
            }
        }
    }
}
