//! Data specs: a name (`fashion-mnist:train`, `swimmer`, `toy-hierarchy[:SEED]`, …) or a file path
//! (`.npy`, `.csv`, IDX `.gz`/`-ubyte`/`.idx`) turned into a [`Dataset`], with optional labels and
//! sample selection.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::csv::load_csv;
use super::idx::{load_idx_rows, read_idx_labels};
use super::named::{load_fashion_mnist, swimmer, toy_hierarchy, Split};
use super::Dataset;
use crate::error::{Error, Result};
use crate::npy::{read_npy, read_npy_info};
use crate::real::Real;
use crate::rng::Rng;
use faer::Mat;

const KNOWN: [&str; 4] = [
    "fashion-mnist:train",
    "fashion-mnist:test",
    "swimmer",
    "toy-hierarchy",
];

/// The named data sets (`toy-hierarchy` also accepts `toy-hierarchy:SEED`).
pub fn known_names() -> &'static [&'static str] {
    &KNOWN
}

/// How to load a data spec.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Keep only the first N samples.
    pub first: Option<usize>,
    /// Keep a random subset of N samples (seeded by `seed`, original order kept).
    pub subset: Option<usize>,
    /// Seed of the random subset.
    pub seed: u64,
    /// Labels file (`.npy` of n integers, or a 1-d IDX label file), replacing any built-in labels.
    pub labels: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Npy,
    Csv,
    Idx,
}

impl Kind {
    fn from_name(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".npy") {
            Some(Kind::Npy)
        } else if [".csv", ".tsv", ".txt"].iter().any(|e| name.ends_with(e)) {
            Some(Kind::Csv)
        } else if [".gz", "ubyte", ".idx"].iter().any(|e| name.ends_with(e)) {
            Some(Kind::Idx)
        } else {
            None
        }
    }

    /// Guesses the kind of an existing file from its first bytes.
    fn sniff(path: &Path) -> Result<Option<Self>> {
        let mut head = Vec::with_capacity(6);
        crate::io::open_regular(path)?
            .take(6)
            .read_to_end(&mut head)
            .map_err(|e| Error::io(path, e))?;
        Ok(if head.starts_with(b"\x93NUMPY") {
            Some(Kind::Npy)
        } else if head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0, 0, 8]) {
            Some(Kind::Idx)
        } else {
            None
        })
    }
}

/// Loads a data spec: a named set (see [`known_names`]) or a `.npy`, `.csv` or IDX file.
///
/// A 2-d `.npy` array is `samples × features`; a 3-d one is `n × height × width` images (also
/// `n × h × w × 1` and `n × 1 × h × w`). Values are kept as stored, except that `uint8` images are
/// divided by 255 (as IDX images are). Labels from `opts.labels` are attached before `first` /
/// `subset` pick samples.
pub fn load<T: Real>(spec: &str, opts: &LoadOptions) -> Result<Dataset<T>> {
    if opts.first.is_some() && opts.subset.is_some() {
        return Err(Error::invalid(
            "subset",
            opts.subset.unwrap_or_default(),
            "`first` and `subset` cannot be combined; give only one of them",
        ));
    }
    for (option, value) in [("first", opts.first), ("subset", opts.subset)] {
        if value == Some(0) {
            return Err(Error::invalid(option, 0, "must be at least 1 sample"));
        }
    }
    // An IDX file inflates only the first samples; `n` is what the file declares.
    let (mut d, n) = load_spec::<T>(spec, opts.first)?;
    if let Some(path) = &opts.labels {
        let mut labels = load_labels(path, n)?;
        labels.truncate(d.n_samples());
        d.labels = Some(labels);
    }
    for (option, value) in [("first", opts.first), ("subset", opts.subset)] {
        if let Some(k) = value.filter(|&k| k > n) {
            return Err(Error::invalid(
                option,
                k,
                format!("{spec} has only {n} samples; give at most {n}"),
            ));
        }
    }
    if let Some(k) = opts.first.filter(|&k| k < d.n_samples()) {
        d = d.first(k);
    }
    if let Some(k) = opts.subset {
        d = d.random_subset(k, &mut Rng::new(opts.seed));
    }
    Ok(d)
}

/// The data set `spec` names and its number of samples (an IDX file: only the `first` ones
/// are read, and the number is the one the file declares).
fn load_spec<T: Real>(spec: &str, first: Option<usize>) -> Result<(Dataset<T>, usize)> {
    let all = |d: Dataset<T>| {
        let n = d.n_samples();
        (d, n)
    };
    match spec {
        "fashion-mnist:train" => return load_fashion_mnist(Split::Train).map(all),
        "fashion-mnist:test" => return load_fashion_mnist(Split::Test).map(all),
        "swimmer" => return Ok(all(swimmer().0)),
        "toy-hierarchy" => return Ok(all(toy_hierarchy(0))),
        _ => {}
    }
    if let Some(seed) = spec.strip_prefix("toy-hierarchy:") {
        let seed = seed.parse::<u64>().map_err(|_| {
            Error::invalid(
                "data",
                spec,
                "the seed after 'toy-hierarchy:' must be a non-negative integer, e.g. toy-hierarchy:1",
            )
        })?;
        return Ok(all(toy_hierarchy(seed)));
    }
    if spec.trim().is_empty() {
        return Err(Error::invalid(
            "data",
            "''",
            format!(
                "give a .npy, .csv or IDX file, or a named data set ({})",
                KNOWN.join(", ")
            ),
        ));
    }
    if super::is_sparse_file(spec) {
        return Err(Error::invalid(
            "data",
            spec,
            "is a sparse matrix file and this needs dense data: densify it (e.g. np.save(out, scipy.sparse.load_npz(f).toarray())), or use NMF (mu, hals, anls), transform, eval or data info, which read it as sparse",
        ));
    }
    let path = Path::new(spec);
    let kind = Kind::from_name(path);
    if !path.exists() {
        if kind.is_none() && path.extension().is_none() && path.components().count() == 1 {
            return Err(Error::UnknownDataset {
                name: spec.into(),
                known: KNOWN.join(", "),
            });
        }
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "no such file; check the path, or use a named data set ({})",
                    KNOWN.join(", ")
                ),
            ),
        ));
    }
    if path.is_dir() {
        return Err(Error::format(
            path,
            "is a folder, not a data file; give a .npy, .csv or IDX (.gz) file",
        ));
    }
    let kind = match kind {
        Some(k) => k,
        None => Kind::sniff(path)?.ok_or_else(|| {
            Error::format(
                path,
                "unrecognized file type; give a .npy, .csv or IDX (.gz, -ubyte) file",
            )
        })?,
    };
    match kind {
        Kind::Npy => load_npy_data(path).map(all),
        Kind::Csv => load_csv(path).map(all),
        Kind::Idx => load_idx_rows(path, first),
    }
}

/// A `.npy` array as a data set (see [`load`] for the accepted shapes), read block by block
/// into the matrix (memory: the data once, in `T`, and a 1 MiB buffer). Values convert as
/// [`crate::npy::NpyData::to_real`] does (`u8` images to `[0, 1]`); f64 values read in a narrower `T` are
/// checked against its range first, as [`super::stored_to_real`] does, on the values as stored.
pub fn load_npy_data<T: Real>(path: &Path) -> Result<Dataset<T>> {
    use std::io::{Seek, SeekFrom};
    let info = read_npy_info(path)?;
    let name = path.display().to_string();
    let (n, h, w, image) = match info.shape[..] {
        [n, f] => (n, 1, f, false),
        [n, h, w] | [n, h, w, 1] | [n, 1, h, w] => (n, h, w, true),
        _ => {
            return Err(Error::ShapeMismatch {
                what: format!("data {name}"),
                expected: "2 dimensions (samples × features) or 3 (n × height × width)".into(),
                found: format!("{:?}", info.shape),
                hint: "reshape before saving, e.g. np.save(path, a.reshape(len(a), -1))".into(),
            })
        }
    };
    let m = h * w;
    let io = |e| Error::io(path, e);
    let mut file = crate::io::open_regular(path)?;
    file.seek(SeekFrom::Start(info.data_offset)).map_err(io)?;
    let mut r = std::io::BufReader::new(file);
    // Values that need more than a conversion to `T`: u8 images (÷ 255) and f64 values read in
    // a narrower type (their largest magnitude, as stored, is checked below).
    let (pixels, narrowed) = (
        image && info.descr() == "|u1",
        info.descr() == "<f8" && T::MAX_F64 < f64::MAX,
    );
    let row_bytes = m * info.itemsize();
    let rows = ((1 << 20) / row_bytes.max(1)).clamp(1, n.max(1));
    let mut buf = vec![0u8; rows * row_bytes];
    let mut wide = vec![0.0f64; if pixels || narrowed { m } else { 0 }];
    let mut xt = Mat::<T>::zeros(m, n);
    let mut top = 0.0f64;
    for first in (0..n).step_by(rows) {
        let len = rows.min(n - first);
        let block = &mut buf[..len * row_bytes];
        r.read_exact(block).map_err(io)?;
        for (j, bytes) in block.chunks_exact(row_bytes.max(1)).enumerate() {
            let col = xt.col_as_slice_mut(first + j);
            if wide.is_empty() {
                info.decode_into(bytes, col);
                continue;
            }
            info.decode_into(bytes, &mut wide);
            if pixels {
                col.iter_mut()
                    .zip(&wide)
                    .for_each(|(c, &b)| *c = T::from_f64(b / 255.0));
            } else {
                top = wide
                    .iter()
                    .filter(|v| v.is_finite())
                    .fold(top, |a, v| a.max(v.abs()));
                col.iter_mut().zip(&wide).for_each(|(c, &v)| *c = T::from_f64(v));
            }
        }
    }
    if narrowed {
        super::check_scale::<T>(top, m, n * m)?;
    }
    let mut d = Dataset::from_columns(xt, name);
    if image {
        d.image_shape = Some((h, w));
    }
    Ok(d)
}

/// Reads `n` labels from a `.npy` file (1-d, integers or integral floats, non-negative) or a
/// 1-d IDX label file.
pub fn load_labels(path: &Path, n: usize) -> Result<Vec<u32>> {
    let kind = match Kind::from_name(path) {
        Some(k) => Some(k),
        None if path.is_file() => Kind::sniff(path)?,
        None => None,
    };
    match kind {
        Some(Kind::Npy) => {
            let a = read_npy(path)?;
            if a.shape.len() != 1 || a.shape[0] != n {
                return Err(Error::ShapeMismatch {
                    what: format!("labels {}", path.display()),
                    expected: format!("[{n}] (one label per sample)"),
                    found: format!("{:?}", a.shape),
                    hint: "save a 1-d array with one integer label per sample, e.g. np.save(path, y.ravel())".into(),
                });
            }
            a.to_labels(path)
        }
        Some(Kind::Idx) => read_idx_labels(path, n),
        _ if !path.exists() => Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such labels file; check the `labels` path"),
        )),
        _ => Err(Error::format(
            path,
            "unsupported labels file; give a .npy array of integers or an IDX label file (…-labels-idx1-ubyte.gz)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::idx::idx_bytes;
    use super::*;
    use crate::npy::{npy_bytes, NpyDataRef};

    fn opts() -> LoadOptions {
        LoadOptions::default()
    }

    #[test]
    fn named_sets() {
        assert_eq!(known_names().len(), 4);
        let d = load::<f32>("swimmer", &opts()).unwrap();
        assert_eq!((d.n_samples(), d.n_features()), (256, 1024));
        let t0 = load::<f64>("toy-hierarchy", &opts()).unwrap();
        let t0b = load::<f64>("toy-hierarchy:0", &opts()).unwrap();
        let t7 = load::<f64>("toy-hierarchy:7", &opts()).unwrap();
        assert_eq!((t0.n_samples(), t0.n_features()), (90, 87));
        assert_eq!(t0.sample(3), t0b.sample(3));
        assert_ne!(t0.sample(3), t7.sample(3));
        let e = load::<f64>("toy-hierarchy:x", &opts()).unwrap_err();
        assert!(matches!(e, Error::InvalidOption { .. }), "{e}");
        for name in ["fashion-mnist", "fashion-mnist:tain", "swimer"] {
            let e = load::<f32>(name, &opts()).unwrap_err();
            let msg = e.to_string();
            assert!(
                matches!(e, Error::UnknownDataset { .. })
                    && msg.contains("fashion-mnist:train, fashion-mnist:test, swimmer, toy-hierarchy"),
                "{msg}"
            );
        }
        for empty in ["", "  "] {
            let msg = load::<f32>(empty, &opts()).unwrap_err().to_string();
            assert!(
                msg.contains("invalid data = ''") && msg.contains("fashion-mnist:train"),
                "{msg}"
            );
        }
    }

    #[test]
    fn missing_and_unsupported_files() {
        let dir = crate::data::test_dir("spec-missing");
        for name in ["x.npy", "x.csv", "x.gz", "x.bin", "sub/x"] {
            let p = dir.path().join(name);
            let e = load::<f32>(p.to_str().unwrap(), &opts()).unwrap_err();
            assert!(
                matches!(e, Error::Io { .. }) && e.to_string().contains(&p.display().to_string()),
                "{e}"
            );
        }
        let e = load::<f32>(dir.path().to_str().unwrap(), &opts()).unwrap_err();
        assert!(matches!(e, Error::BadFormat { .. }), "{e}");
        let p = dir.path().join("x.bin");
        std::fs::write(&p, b"hello").unwrap();
        assert!(matches!(
            load::<f32>(p.to_str().unwrap(), &opts()),
            Err(Error::BadFormat { .. })
        ));
        // An .npy under another name is recognized by its magic.
        std::fs::write(&p, npy_bytes(&[1, 2], NpyDataRef::F64(&[1.0, 2.0]))).unwrap();
        assert_eq!(
            load::<f32>(p.to_str().unwrap(), &opts()).unwrap().sample(0),
            &[1.0, 2.0]
        );
    }

    #[test]
    fn npy_data_and_labels() {
        let dir = crate::data::test_dir("spec-npy");
        let path = |n: &str| dir.path().join(n);
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let vals: Vec<f32> = (0..12).map(|i| i as f32).collect();
        std::fs::write(path("m.npy"), npy_bytes(&[4, 3], NpyDataRef::F32(&vals))).unwrap();
        let d = load::<f64>(&s(&path("m.npy")), &opts()).unwrap();
        assert_eq!((d.n_samples(), d.n_features(), d.image_shape), (4, 3, None));
        assert_eq!(d.sample(3), &[9.0, 10.0, 11.0]);
        // 3-d uint8 images are scaled to [0, 1]; 3-d floats are kept.
        let px: Vec<u8> = (0..2 * 2 * 3).map(|i| (i * 20) as u8).collect();
        std::fs::write(path("i.npy"), npy_bytes(&[2, 2, 3], NpyDataRef::U8(&px))).unwrap();
        let d = load::<f32>(&s(&path("i.npy")), &opts()).unwrap();
        assert_eq!(
            (d.n_samples(), d.n_features(), d.image_shape),
            (2, 6, Some((2, 3)))
        );
        assert_eq!(d.sample(1)[0], 120.0 / 255.0);
        std::fs::write(path("f.npy"), npy_bytes(&[2, 2, 3, 1], NpyDataRef::F32(&vals))).unwrap();
        let d = load::<f32>(&s(&path("f.npy")), &opts()).unwrap();
        assert_eq!((d.image_shape, d.sample(1)[5]), (Some((2, 3)), 11.0));
        std::fs::write(path("v.npy"), npy_bytes(&[12], NpyDataRef::F32(&vals))).unwrap();
        assert!(matches!(
            load::<f32>(&s(&path("v.npy")), &opts()),
            Err(Error::ShapeMismatch { .. })
        ));
        // Labels: .npy integers, wrong length, 2-d, non-integral.
        std::fs::write(path("l.npy"), npy_bytes(&[4], NpyDataRef::I64(&[3, 1, 0, 1]))).unwrap();
        std::fs::write(path("l3.npy"), npy_bytes(&[3], NpyDataRef::I64(&[3, 1, 0]))).unwrap();
        std::fs::write(
            path("l2d.npy"),
            npy_bytes(&[4, 1], NpyDataRef::I64(&[3, 1, 0, 1])),
        )
        .unwrap();
        std::fs::write(
            path("lf.npy"),
            npy_bytes(&[4], NpyDataRef::F64(&[0.0, 1.5, 0.0, 1.0])),
        )
        .unwrap();
        let with = |l: &str| LoadOptions {
            labels: Some(path(l)),
            ..opts()
        };
        let d = load::<f32>(&s(&path("m.npy")), &with("l.npy")).unwrap();
        assert_eq!(d.labels, Some(vec![3, 1, 0, 1]));
        for (l, shape) in [
            ("l3.npy", true),
            ("l2d.npy", true),
            ("lf.npy", false),
            ("none.npy", false),
        ] {
            let e = load::<f32>(&s(&path("m.npy")), &with(l)).unwrap_err();
            assert_eq!(matches!(e, Error::ShapeMismatch { .. }), shape, "{l}: {e}");
        }
        // Labels override built-in ones.
        let d = load::<f32>(
            "toy-hierarchy",
            &LoadOptions {
                labels: Some(path("l.npy")),
                ..opts()
            },
        );
        assert!(matches!(d, Err(Error::ShapeMismatch { .. })));
    }

    /// The block-by-block reader gives the bits of reading the whole array and converting it
    /// ([`NpyData::to_real`](crate::npy::NpyData::to_real), u8 images ÷ 255, the f64 range check
    /// of [`super::super::stored_to_real`]), across dtypes, over several 1 MiB blocks and a
    /// partial last one, and for empty arrays.
    #[test]
    fn npy_blocks_give_the_whole_array_bits() {
        use crate::npy::NpyData;
        let dir = crate::data::test_dir("spec-npy-blocks");
        let (n, m) = (1500, 100); // 1,500 rows of 800 bytes in f64: 1,310 rows per block.
        let f: Vec<f64> = (0..n * m)
            .map(|i| ((i * 7919) % 1013) as f64 * 0.37 + 1e-3)
            .collect();
        let files: Vec<(&str, Vec<usize>, Vec<u8>)> = vec![
            ("f64", vec![n, m], npy_bytes(&[n, m], NpyDataRef::F64(&f))),
            (
                "f32",
                vec![n, m],
                npy_bytes(
                    &[n, m],
                    NpyDataRef::F32(&f.iter().map(|&v| v as f32).collect::<Vec<_>>()),
                ),
            ),
            (
                "u8",
                vec![n, 10, 10],
                npy_bytes(
                    &[n, 10, 10],
                    NpyDataRef::U8(&f.iter().map(|&v| v as u8).collect::<Vec<_>>()),
                ),
            ),
            (
                "i64",
                vec![n, m],
                npy_bytes(
                    &[n, m],
                    NpyDataRef::I64(&f.iter().map(|&v| v as i64).collect::<Vec<_>>()),
                ),
            ),
            ("empty", vec![0, m], npy_bytes(&[0, m], NpyDataRef::F32(&[]))),
        ];
        for (tag, shape, bytes) in files {
            let path = dir.path().join(format!("{tag}.npy"));
            std::fs::write(&path, bytes).unwrap();
            let whole = read_npy(&path).unwrap();
            let features = shape[1..].iter().product::<usize>();
            let want: Vec<f32> = match &whole.data {
                NpyData::U8(v) if shape.len() == 3 => {
                    v.iter().map(|&b| f32::from_f64(b as f64 / 255.0)).collect()
                }
                data => super::super::stored_to_real(data, features).unwrap(),
            };
            let got = load_npy_data::<f32>(&path).unwrap();
            assert_eq!((got.n_samples(), got.n_features()), (shape[0], features), "{tag}");
            let got: Vec<f32> = (0..got.n_samples())
                .flat_map(|i| got.sample(i).to_vec())
                .collect();
            assert!(
                got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()) && got.len() == want.len(),
                "{tag}"
            );
        }
        // f64 values beyond f32's range: refused in f32 (checked on the values as stored), read in f64.
        let path = dir.path().join("tiny.npy");
        std::fs::write(&path, npy_bytes(&[3, 2], NpyDataRef::F64(&[1e-50; 6]))).unwrap();
        let e = load_npy_data::<f32>(&path).unwrap_err().to_string();
        assert!(e.contains("underflow in f32"), "{e}");
        assert_eq!(load_npy_data::<f64>(&path).unwrap().sample(2), &[1e-50, 1e-50]);
    }

    #[test]
    fn csv_and_idx_files() {
        let dir = crate::data::test_dir("spec-files");
        let path = |n: &str| dir.path().join(n);
        std::fs::write(path("a.csv"), "a,b\n1,2\n3,4\n5,6\n").unwrap();
        let d = load::<f32>(path("a.csv").to_str().unwrap(), &opts()).unwrap();
        assert_eq!((d.n_samples(), d.n_features()), (3, 2));
        let px: Vec<u8> = (0..3 * 4).map(|i| i as u8).collect();
        std::fs::write(path("img-ubyte"), idx_bytes(&[3, 2, 2], &px)).unwrap();
        std::fs::write(path("lab-ubyte"), idx_bytes(&[3], &[2, 0, 1])).unwrap();
        let o = LoadOptions {
            labels: Some(path("lab-ubyte")),
            ..opts()
        };
        let d = load::<f32>(path("img-ubyte").to_str().unwrap(), &o).unwrap();
        assert_eq!(
            (d.n_samples(), d.image_shape, d.labels.clone()),
            (3, Some((2, 2)), Some(vec![2, 0, 1]))
        );
        let o = LoadOptions {
            labels: Some(path("a.csv")),
            ..opts()
        };
        assert!(matches!(
            load::<f32>(path("img-ubyte").to_str().unwrap(), &o),
            Err(Error::BadFormat { .. })
        ));
    }

    #[test]
    fn first_and_subset() {
        let all = load::<f64>("toy-hierarchy", &opts()).unwrap();
        let d = load::<f64>(
            "toy-hierarchy",
            &LoadOptions {
                first: Some(5),
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(d.n_samples(), 5);
        assert_eq!(d.sample(4), all.sample(4));
        assert_eq!(d.extra_labels[0].1.len(), 5);
        let o = LoadOptions {
            subset: Some(20),
            seed: 4,
            ..opts()
        };
        let a = load::<f64>("toy-hierarchy", &o).unwrap();
        let b = load::<f64>("toy-hierarchy", &o).unwrap();
        assert_eq!(a.n_samples(), 20);
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.sample(7), b.sample(7));
        let c = load::<f64>(
            "toy-hierarchy",
            &LoadOptions {
                subset: Some(20),
                seed: 5,
                ..opts()
            },
        )
        .unwrap();
        assert!((0..20).any(|i| a.sample(i) != c.sample(i)));
        assert_eq!(
            load::<f64>(
                "swimmer",
                &LoadOptions {
                    first: Some(256),
                    ..opts()
                }
            )
            .unwrap()
            .n_samples(),
            256
        );
        for o in [
            LoadOptions {
                first: Some(1),
                subset: Some(1),
                ..opts()
            },
            LoadOptions {
                first: Some(0),
                ..opts()
            },
            LoadOptions {
                subset: Some(0),
                ..opts()
            },
            LoadOptions {
                first: Some(91),
                ..opts()
            },
            LoadOptions {
                subset: Some(1000),
                ..opts()
            },
        ] {
            let e = load::<f64>("toy-hierarchy", &o).unwrap_err();
            assert!(matches!(e, Error::InvalidOption { .. }), "{o:?}: {e}");
        }
        let e = load::<f64>(
            "toy-hierarchy",
            &LoadOptions {
                first: Some(91),
                ..opts()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("only 90 samples"), "{e}");
    }
}
