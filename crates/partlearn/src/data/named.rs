//! The named data sets: Fashion-MNIST (installed files), `swimmer` and `toy-hierarchy` (generated).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use faer::Mat;

use super::idx::load_idx_images;
use super::Dataset;
use crate::error::{Error, Result};
use crate::real::Real;
use crate::rng::Rng;

// ---------------------------------------------------------------------------------------------
// Fashion-MNIST

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Environment variable naming a folder that holds the IDX files.
pub const DATA_DIR_ENV: &str = "PARTLEARN_DATA_DIR";
const FASHION_HINT: &str = "install it with `sudo apt-get install -y dataset-fashion-mnist` or set \
                            PARTLEARN_DATA_DIR to a folder holding the four IDX files";

/// A Fashion-MNIST split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// 60 000 training images.
    Train,
    /// 10 000 test images.
    Test,
}

impl Split {
    /// `"train"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    /// File stem prefix: `train` or `t10k`.
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// The folders searched for Fashion-MNIST: `$PARTLEARN_DATA_DIR` (and its `fashion-mnist`
/// subfolder) when set, else [`FASHION_MNIST_DIR`].
pub fn data_dir_candidates() -> Vec<PathBuf> {
    candidates_from(std::env::var_os(DATA_DIR_ENV))
}

fn candidates_from(env: Option<OsString>) -> Vec<PathBuf> {
    match env.filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            vec![dir.clone(), dir.join("fashion-mnist")]
        }
        None => vec![PathBuf::from(FASHION_MNIST_DIR)],
    }
}

/// Loads a Fashion-MNIST split from the folders of [`data_dir_candidates`].
pub fn load_fashion_mnist<T: Real>(split: Split) -> Result<Dataset<T>> {
    load_fashion_mnist_from(split, &data_dir_candidates())
}

/// Loads a Fashion-MNIST split from the first of `dirs` holding both its image and label files
/// (`.gz` or uncompressed): `n × 784` pixels in [0, 1], image shape 28 × 28, labels 0..9.
pub fn load_fashion_mnist_from<T: Real>(split: Split, dirs: &[PathBuf]) -> Result<Dataset<T>> {
    let p = split.prefix();
    let (img, lab) = (format!("{p}-images-idx3-ubyte"), format!("{p}-labels-idx1-ubyte"));
    let find = |dir: &Path, stem: &str| {
        [format!("{stem}.gz"), stem.to_string()]
            .into_iter()
            .map(|n| dir.join(n))
            .find(|f| f.is_file())
    };
    for dir in dirs {
        if let (Some(images), Some(labels)) = (find(dir, &img), find(dir, &lab)) {
            let mut d = load_idx_images::<T>(&images, Some(&labels))?;
            d.name = format!("fashion-mnist:{}", split.name());
            return Ok(d);
        }
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(Error::MissingData {
        what: format!("Fashion-MNIST {} files ({img}.gz, {lab}.gz)", split.name()),
        looked: if looked.is_empty() {
            "no folders".into()
        } else {
            looked.join(", ")
        },
        hint: FASHION_HINT.into(),
    })
}

// ---------------------------------------------------------------------------------------------
// Swimmer

/// Side of the square swimmer images.
pub const SWIMMER_SIDE: usize = 32;
/// Torso: columns 15–16, rows 9–22.
const TORSO_ROWS: std::ops::Range<usize> = 9..23;
const TORSO_COLS: std::ops::Range<usize> = 15..17;
/// Angles (degrees, counter-clockwise from "right") of the upper-left limb's 4 positions; the
/// other limbs are its mirror images.
const LIMB_ANGLES: [f64; 4] = [90.0, 128.0, 166.0, 204.0];
/// Limb segments run from 2.5 to 10 pixels from their pivot and are 2 pixels wide.
const LIMB_R0: f64 = 2.5;
const LIMB_R1: f64 = 10.0;
const LIMB_HALF_WIDTH: f64 = 1.0;
/// Names of the 4 limbs, in the order of [`SwimmerParts::limbs`].
pub const SWIMMER_LIMBS: [&str; 4] = ["upper-left", "upper-right", "lower-left", "lower-right"];

/// The true parts of the swimmer set: 32 × 32 row-major 0/1 masks.
#[derive(Clone, Debug)]
pub struct SwimmerParts {
    /// The torso, present in every image.
    pub torso: Vec<f32>,
    /// 16 limb masks: `limbs[4 * limb + position]`, limbs in [`SWIMMER_LIMBS`] order.
    pub limbs: Vec<Vec<f32>>,
}

/// The mask of one limb position: a 2-pixel-wide segment pointing away from the torso end.
fn limb_mask(limb: usize, position: usize) -> Vec<f32> {
    let base = LIMB_ANGLES[position];
    let (pivot_x, angle) = match limb {
        0 => (15.0, base),
        1 => (17.0, 180.0 - base),
        2 => (15.0, -base),
        _ => (17.0, base - 180.0),
    };
    let pivot_y = if limb < 2 {
        TORSO_ROWS.start as f64
    } else {
        TORSO_ROWS.end as f64
    };
    let t = f64::to_radians(angle);
    let (dx, dy) = (t.cos(), -t.sin());
    let (ax, ay) = (pivot_x + LIMB_R0 * dx, pivot_y + LIMB_R0 * dy);
    let (vx, vy) = ((LIMB_R1 - LIMB_R0) * dx, (LIMB_R1 - LIMB_R0) * dy);
    let n = SWIMMER_SIDE;
    let mut m = vec![0.0f32; n * n];
    for i in 0..n {
        for j in 0..n {
            let (cx, cy) = (j as f64 + 0.5, i as f64 + 0.5);
            let s = (((cx - ax) * vx + (cy - ay) * vy) / (vx * vx + vy * vy)).clamp(0.0, 1.0);
            let (qx, qy) = (ax + s * vx - cx, ay + s * vy - cy);
            if qx * qx + qy * qy < LIMB_HALF_WIDTH * LIMB_HALF_WIDTH {
                m[i * n + j] = 1.0;
            }
        }
    }
    m
}

/// The swimmer set: 256 images of 32 × 32 pixels (values 0/1), a fixed torso plus 4 limbs each in
/// one of 4 positions, all 4⁴ combinations. Image `c` has limb positions
/// `(c / 64, c / 16 % 4, c / 4 % 4, c % 4)` (upper-left, upper-right, lower-left, lower-right);
/// these are also given as `extra_labels` named after the limbs. Returns the true parts too: the
/// torso and the 16 limb masks are pairwise disjoint, and each image is their 0/1 sum.
pub fn swimmer<T: Real>() -> (Dataset<T>, SwimmerParts) {
    let n = SWIMMER_SIDE;
    let mut torso = vec![0.0f32; n * n];
    for i in TORSO_ROWS {
        for j in TORSO_COLS {
            torso[i * n + j] = 1.0;
        }
    }
    let limbs: Vec<Vec<f32>> = (0..16).map(|k| limb_mask(k / 4, k % 4)).collect();
    let mut xt = Mat::<T>::zeros(n * n, 256);
    let mut extra: Vec<(String, Vec<u32>)> = SWIMMER_LIMBS
        .iter()
        .map(|s| (s.to_string(), Vec::with_capacity(256)))
        .collect();
    for c in 0..256 {
        let pos = [c / 64, c / 16 % 4, c / 4 % 4, c % 4];
        let col = xt.col_as_slice_mut(c);
        for (f, v) in col.iter_mut().enumerate() {
            let on = torso[f] > 0.0 || (0..4).any(|l| limbs[4 * l + pos[l]][f] > 0.0);
            *v = if on { T::one() } else { T::zero() };
        }
        for (l, (_, labels)) in extra.iter_mut().enumerate() {
            labels.push(pos[l] as u32);
        }
    }
    let mut d = Dataset::from_columns(xt, "swimmer");
    d.image_shape = Some((n, n));
    d.extra_labels = extra;
    (d, SwimmerParts { torso, limbs })
}

// ---------------------------------------------------------------------------------------------
// toy-hierarchy (METHODS.md §5.1)

/// Word-block sizes `R_1..R_9` (features).
pub const TOY_ROW_BLOCKS: [usize; 9] = [10, 5, 10, 12, 13, 4, 11, 8, 14];
/// Document-group sizes `C_1..C_9` (samples).
pub const TOY_COL_GROUPS: [usize; 9] = [10, 10, 5, 7, 5, 20, 10, 9, 14];
/// Supertopic of each subtopic: {1,2}, {3,4}, {5,6}, {7,8,9}.
const TOY_SUPER4: [u32; 9] = [0, 0, 1, 1, 2, 2, 3, 3, 3];
/// Super-supertopic of each subtopic: {1..4}, {5..9}.
const TOY_SUPER2: [u32; 9] = [0, 0, 0, 0, 1, 1, 1, 1, 1];
/// Upper bound (exclusive) of the uniform noise added to every entry.
pub const TOY_NOISE: f64 = 0.15;

/// The reference `L40` mask of METHODS.md §5.1: the 40 labeled documents (0-based).
pub const TOY_HIERARCHY_L40: [usize; 40] = [
    1, 2, 4, 8, 10, 12, 13, 14, 16, 17, 18, 20, 22, 24, 27, 33, 34, 36, 39, 40, 42, 43, 46, 47, 48, 50, 52,
    55, 57, 60, 61, 64, 65, 67, 70, 74, 75, 80, 85, 87,
];

fn block_index(sizes: &[usize; 9]) -> Vec<usize> {
    sizes
        .iter()
        .enumerate()
        .flat_map(|(b, &s)| std::iter::repeat_n(b, s))
        .collect()
}

/// Noise-free value between subtopics `i` (word block) and `j` (document group).
fn toy_value(i: usize, j: usize) -> f64 {
    if i == j {
        4.0
    } else if TOY_SUPER4[i] == TOY_SUPER4[j] {
        2.0
    } else if TOY_SUPER2[i] == TOY_SUPER2[j] {
        1.0
    } else {
        0.0
    }
}

/// The synthetic hierarchical topic data of METHODS.md §5.1 as 90 documents (samples) × 87 words
/// (features): block values 4 / 2 / 1 / 0 by shared subtopic / supertopic / super-supertopic /
/// none, plus i.i.d. U(0, 0.15) noise drawn from `Rng::new(seed)` sample by sample. Labels are the
/// 9 subtopics; `extra_labels` holds `labels9`, `labels4` and `labels2`.
pub fn toy_hierarchy<T: Real>(seed: u64) -> Dataset<T> {
    toy_hierarchy_with_noise(seed, TOY_NOISE)
}

/// [`toy_hierarchy`] without noise (the rank-9 template).
pub fn toy_hierarchy_template<T: Real>() -> Dataset<T> {
    toy_hierarchy_with_noise(0, 0.0)
}

fn toy_hierarchy_with_noise<T: Real>(seed: u64, noise: f64) -> Dataset<T> {
    let words = block_index(&TOY_ROW_BLOCKS);
    let docs = block_index(&TOY_COL_GROUPS);
    let mut rng = Rng::new(seed);
    let mut xt = Mat::<T>::zeros(words.len(), docs.len());
    for (c, &j) in docs.iter().enumerate() {
        for (v, &i) in xt.col_as_slice_mut(c).iter_mut().zip(&words) {
            let e = if noise > 0.0 {
                rng.uniform_in(0.0, noise)
            } else {
                0.0
            };
            *v = T::from_f64(toy_value(i, j) + e);
        }
    }
    let labels9: Vec<u32> = docs.iter().map(|&j| j as u32).collect();
    let labels4: Vec<u32> = docs.iter().map(|&j| TOY_SUPER4[j]).collect();
    let labels2: Vec<u32> = docs.iter().map(|&j| TOY_SUPER2[j]).collect();
    let mut d = Dataset::from_columns(xt, "toy-hierarchy");
    d.labels = Some(labels9.clone());
    d.extra_labels = vec![
        ("labels9".into(), labels9),
        ("labels4".into(), labels4),
        ("labels2".into(), labels2),
    ];
    d
}

/// A seeded choice of exactly `min(count, n)` labeled samples. When `count` is at least the number
/// of classes present, every class gets at least one labeled sample; the rest are drawn uniformly.
pub fn label_mask_by_count(labels: &[u32], count: usize, rng: &mut Rng) -> Vec<bool> {
    let n = labels.len();
    let count = count.min(n);
    let mut mask = vec![false; n];
    let mut classes: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        classes.entry(l).or_default().push(i);
    }
    if count >= classes.len() {
        for members in classes.values() {
            mask[members[rng.below(members.len())]] = true;
        }
    }
    let rest: Vec<usize> = (0..n).filter(|&i| !mask[i]).collect();
    let chosen = count - (n - rest.len());
    for k in rng.sample_indices(rest.len(), chosen) {
        mask[rest[k]] = true;
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_the_environment() {
        assert_eq!(candidates_from(None), vec![PathBuf::from(FASHION_MNIST_DIR)]);
        assert_eq!(
            candidates_from(Some("".into())),
            vec![PathBuf::from(FASHION_MNIST_DIR)]
        );
        assert_eq!(
            candidates_from(Some("/d".into())),
            vec![PathBuf::from("/d"), PathBuf::from("/d/fashion-mnist")]
        );
    }

    #[test]
    fn missing_fashion_mnist_says_how_to_install() {
        let dir = crate::data::test_dir("fm-missing");
        let dirs = vec![dir.path().join("a"), dir.path().to_path_buf()];
        // Only the images: still missing.
        std::fs::write(dir.path().join("t10k-images-idx3-ubyte.gz"), b"").unwrap();
        let e = load_fashion_mnist_from::<f32>(Split::Test, &dirs).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::MissingData { .. }), "{msg}");
        assert!(
            msg.contains("apt-get install -y dataset-fashion-mnist") && msg.contains("PARTLEARN_DATA_DIR"),
            "{msg}"
        );
        assert!(
            msg.contains(&dirs[0].display().to_string()) && msg.contains("t10k-labels-idx1-ubyte.gz"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
        assert!(matches!(
            load_fashion_mnist_from::<f32>(Split::Train, &[]),
            Err(Error::MissingData { .. })
        ));
    }

    #[test]
    fn fashion_mnist_from_uncompressed_files() {
        use super::super::idx::idx_bytes;
        let dir = crate::data::test_dir("fm-raw");
        let px: Vec<u8> = (0..2 * 28 * 28).map(|i| (i % 256) as u8).collect();
        std::fs::write(
            dir.path().join("train-images-idx3-ubyte"),
            idx_bytes(&[2, 28, 28], &px),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            idx_bytes(&[2], &[3, 9]),
        )
        .unwrap();
        let d = load_fashion_mnist_from::<f64>(Split::Train, &[dir.path().to_path_buf()]).unwrap();
        assert_eq!(
            (d.n_samples(), d.n_features(), d.image_shape),
            (2, 784, Some((28, 28)))
        );
        assert_eq!(
            (d.name.as_str(), d.labels.as_deref()),
            ("fashion-mnist:train", Some(&[3u32, 9][..]))
        );
    }

    /// Runs on the installed Debian package; skipped (with a note) only when the files are absent
    /// and PARTLEARN_REQUIRE_DATA is unset.
    #[test]
    fn fashion_mnist_test_split_installed() {
        let d = match load_fashion_mnist::<f32>(Split::Test) {
            Err(Error::MissingData { .. }) if std::env::var_os("PARTLEARN_REQUIRE_DATA").is_none() => {
                eprintln!(
                    "skipping: Fashion-MNIST is not installed (set PARTLEARN_REQUIRE_DATA=1 to fail instead)"
                );
                return;
            }
            r => r.unwrap(),
        };
        assert_eq!(
            (d.n_samples(), d.n_features(), d.image_shape),
            (10000, 784, Some((28, 28)))
        );
        assert_eq!(d.name, "fashion-mnist:test");
        let mut counts = [0usize; 10];
        for &l in d.labels.as_ref().unwrap() {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [1000; 10]);
        let (lo, hi, mean) = d.value_range();
        assert!(
            lo == 0.0 && hi == 1.0 && mean > 0.1 && mean < 0.5,
            "{lo} {hi} {mean}"
        );
    }

    #[test]
    fn swimmer_is_torso_plus_four_limbs() {
        let (d, parts) = swimmer::<f32>();
        assert_eq!(
            (d.n_samples(), d.n_features(), d.image_shape),
            (256, 1024, Some((32, 32)))
        );
        assert_eq!(parts.limbs.len(), 16);
        // Non-empty, pairwise disjoint masks.
        let all: Vec<&Vec<f32>> = std::iter::once(&parts.torso).chain(&parts.limbs).collect();
        for (a, ma) in all.iter().enumerate() {
            let size = ma.iter().filter(|&&v| v > 0.0).count();
            assert!(size >= 10, "mask {a} has {size} pixels");
            for mb in &all[a + 1..] {
                assert!(ma.iter().zip(mb.iter()).all(|(x, y)| x * y == 0.0));
            }
        }
        // Limbs of the same kind are mirror images: same pixel counts.
        for p in 0..4 {
            let c: Vec<usize> = (0..4)
                .map(|l| parts.limbs[4 * l + p].iter().filter(|&&v| v > 0.0).count())
                .collect();
            assert!(c.iter().all(|&x| x == c[0]), "{c:?}");
        }
        // Each image is the torso plus exactly one position of each limb.
        let mut seen = std::collections::HashSet::new();
        for c in 0..256 {
            let img = d.sample(c);
            assert!(img.iter().all(|&v| v == 0.0 || v == 1.0));
            assert!(parts.torso.iter().zip(img).all(|(&t, &v)| t == 0.0 || v == 1.0));
            let mut expect = parts.torso.clone();
            for l in 0..4 {
                let on: Vec<usize> = (0..4)
                    .filter(|&p| {
                        parts.limbs[4 * l + p]
                            .iter()
                            .zip(img)
                            .all(|(&m, &v)| m == 0.0 || v == 1.0)
                    })
                    .collect();
                assert_eq!(on.len(), 1, "image {c}, limb {l}");
                assert_eq!(on[0] as u32, d.extra_labels[l].1[c]);
                for (e, &m) in expect.iter_mut().zip(&parts.limbs[4 * l + on[0]]) {
                    *e += m;
                }
            }
            assert_eq!(expect, img);
            assert!(seen.insert(img.iter().map(|&v| v as u8).collect::<Vec<u8>>()));
        }
        assert_eq!(seen.len(), 256);
    }

    fn rank(mut a: Vec<Vec<f64>>, tol: f64) -> usize {
        let (m, n) = (a.len(), a[0].len());
        let mut r = 0;
        for c in 0..n {
            let Some(p) = (r..m).max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs())) else {
                break;
            };
            if a[p][c].abs() <= tol {
                continue;
            }
            a.swap(r, p);
            let pivot = a[r].clone();
            for row in &mut a[r + 1..] {
                let f = row[c] / pivot[c];
                for (x, &p) in row[c..].iter_mut().zip(&pivot[c..]) {
                    *x -= f * p;
                }
            }
            r += 1;
        }
        r
    }

    #[test]
    fn toy_hierarchy_matches_methods() {
        let t = toy_hierarchy_template::<f64>();
        assert_eq!((t.n_samples(), t.n_features()), (90, 87));
        let x = t.x(); // documents × words
                       // Document 0 (subtopic 1) with word 0 (subtopic 1), word 10 (2), word 15 (3), word 50 (6).
        assert_eq!(
            (x[(0, 0)], x[(0, 10)], x[(0, 15)], x[(0, 50)]),
            (4.0, 2.0, 1.0, 0.0)
        );
        // Document 89 (subtopic 9): word 86 (9), word 65 (8), word 54 (7), word 37 (5), word 0 (1).
        assert_eq!(
            (x[(89, 86)], x[(89, 65)], x[(89, 54)], x[(89, 37)], x[(89, 0)]),
            (4.0, 2.0, 2.0, 1.0, 0.0)
        );
        // Document 37 (first of subtopic 6) with word 50 (first of subtopic 6) and 49 (subtopic 5).
        assert_eq!((x[(37, 50)], x[(37, 49)], x[(36, 50)]), (4.0, 2.0, 2.0));
        let rows: Vec<Vec<f64>> = (0..90).map(|i| t.sample(i).to_vec()).collect();
        assert_eq!(rank(rows, 1e-9), 9);
        // Labels.
        let l9 = t.labels.clone().unwrap();
        let mut sizes = [0usize; 9];
        l9.iter().for_each(|&l| sizes[l as usize] += 1);
        assert_eq!(sizes, TOY_COL_GROUPS);
        assert_eq!(
            t.extra_labels.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["labels9", "labels4", "labels2"]
        );
        let l4 = &t.extra_labels[1].1;
        let l2 = &t.extra_labels[2].1;
        assert_eq!(
            (l4[0], l4[20], l4[31], l4[32], l4[89], l2[31], l2[32]),
            (0, 1, 1, 2, 3, 0, 1)
        );
        // Noise in [0, 0.15), seeded.
        let d = toy_hierarchy::<f64>(0);
        let (mut lo, mut hi, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
        for i in 0..90 {
            for (a, b) in d.sample(i).iter().zip(t.sample(i)) {
                let e = a - b;
                lo = lo.min(e);
                hi = hi.max(e);
                sum += e;
            }
        }
        assert!(lo >= 0.0 && hi < 0.15 && hi > 0.14, "{lo} {hi}");
        assert!((sum / (87.0 * 90.0) - 0.075).abs() < 0.005);
        assert_eq!(toy_hierarchy::<f64>(0).sample(5), d.sample(5));
        assert_ne!(toy_hierarchy::<f64>(1).sample(5), d.sample(5));
        // Template total ≈ ΣX of the reference file minus its noise (8369.75 − 0.0758·87·90).
        let total: f64 = (0..90).map(|i| t.sample(i).iter().sum::<f64>()).sum();
        assert!((total - (8369.75 - 0.0758 * 7830.0)).abs() < 5.0, "{total}");
    }

    #[test]
    fn l40_reference_mask() {
        let l9 = toy_hierarchy_template::<f32>().labels.unwrap();
        assert!(TOY_HIERARCHY_L40.windows(2).all(|w| w[0] < w[1]) && TOY_HIERARCHY_L40[39] < 90);
        let mut per = [0usize; 9];
        TOY_HIERARCHY_L40.iter().for_each(|&c| per[l9[c] as usize] += 1);
        assert_eq!(per, [4, 7, 3, 1, 3, 10, 5, 4, 3]);
    }

    #[test]
    fn label_masks_are_stratified_and_seeded() {
        let l9 = toy_hierarchy_template::<f32>().labels.unwrap();
        for count in [0, 5, 9, 10, 40, 90, 200] {
            let m = label_mask_by_count(&l9, count, &mut Rng::new(3));
            assert_eq!(m.iter().filter(|&&b| b).count(), count.min(90));
            if count >= 9 {
                for c in 0..9 {
                    assert!((0..90).any(|i| m[i] && l9[i] == c), "count {count}, class {c}");
                }
            }
            assert_eq!(m, label_mask_by_count(&l9, count, &mut Rng::new(3)));
        }
        assert_ne!(
            label_mask_by_count(&l9, 40, &mut Rng::new(1)),
            label_mask_by_count(&l9, 40, &mut Rng::new(2))
        );
        assert!(label_mask_by_count(&[], 3, &mut Rng::new(0)).is_empty());
    }
}
