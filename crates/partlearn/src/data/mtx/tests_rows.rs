//! [`MtxRows`] against [`read_mtx`]: the same rows, passes and errors.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;
use crate::data::rows::{RowBlock, RowSource};

/// Random entries of an `n × m` matrix, about a third of the cells, some rows empty, some
/// entries repeated (to be summed); values of the `field` ("real", "integer" or "pattern").
fn entries(n: usize, m: usize, field: &str, seed: u64) -> Vec<(usize, usize, String)> {
    let mut r = crate::Rng::new(seed);
    let mut t = Vec::new();
    for i in 0..n {
        if i % 7 == 3 {
            continue;
        }
        for j in 0..m {
            if r.uniform() < 0.33 {
                let v = match field {
                    "integer" => format!("{}", (r.uniform() * 9.0) as u32),
                    "pattern" => String::new(),
                    _ => format!("{}", r.uniform() * 3.0 + 1e-3),
                };
                t.push((i, j, v.clone()));
                if r.uniform() < 0.1 {
                    // A duplicate, right after or at the end of its row.
                    t.push((i, j, if field == "real" { "0.1".into() } else { v }));
                }
            }
        }
    }
    t
}

/// The MatrixMarket text of `t` in the order given.
fn text(n: usize, m: usize, field: &str, t: &[(usize, usize, String)]) -> String {
    let mut s = format!(
        "%%MatrixMarket matrix coordinate {field} general\n% a comment\n{n} {m} {}\n",
        t.len()
    );
    for (i, j, v) in t {
        s.push_str(&format!("{} {} {}\n", i + 1, j + 1, v).replace(" \n", "\n"));
    }
    s
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    if name.ends_with(".gz") {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(body.as_bytes()).unwrap();
        std::fs::write(&p, e.finish().unwrap()).unwrap();
    } else {
        std::fs::write(&p, body).unwrap();
    }
    p
}

fn block<T: Real>(src: &mut MtxRows, start: usize, len: usize) -> Csr<T> {
    match RowSource::<T>::read(src, start, len).unwrap() {
        RowBlock::Sparse(x) => x,
        RowBlock::Dense(_) => panic!("a sparse file gives sparse blocks"),
    }
}

/// Two passes in blocks of `b`, a jump ahead and one back: each block equals the whole read's.
fn check_passes<T: Real>(src: &mut MtxRows, whole: &Csr<T>, b: usize) {
    let n = whole.nrows();
    let want = |s: usize, l: usize| whole.select_rows(&(s..s + l).collect::<Vec<_>>()).unwrap();
    for _ in 0..2 {
        for s in (0..n).step_by(b) {
            let l = b.min(n - s);
            assert_eq!(
                block::<T>(src, s, l),
                want(s, l),
                "rows {s}.. of {}",
                src.path().display()
            );
        }
    }
    assert_eq!(block::<T>(src, n - 3, 2), want(n - 3, 2));
    assert_eq!(block::<T>(src, 1, 3), want(1, 3));
    assert_eq!(block::<T>(src, 0, n), *whole);
    assert!(RowSource::<T>::read(src, n - 1, 2).is_err());
}

#[test]
fn row_ordered_files_stream_the_whole_readers_rows() {
    let dir = crate::data::test_dir("mtx-rows");
    for field in ["real", "integer", "pattern"] {
        let t = entries(120, 30, field, 5);
        let body = text(120, 30, field, &t);
        for name in ["x.mtx", "x.mtx.gz"] {
            let p = write(dir.path(), name, &body);
            let mut src = MtxRows::open(&p).unwrap();
            assert!(src.reordered().is_none());
            assert_eq!(src.declared_entries(), t.len());
            assert_eq!(
                (RowSource::<f32>::n_rows(&src), RowSource::<f32>::n_cols(&src)),
                (120, 30)
            );
            let w64 = read_mtx::<f64>(&p).unwrap();
            let w32 = read_mtx::<f32>(&p).unwrap();
            assert!(w64.nnz() < t.len(), "duplicates were summed");
            for b in [1, 7, 64, 120] {
                check_passes(&mut src, &w64, b);
                check_passes(&mut src, &w32, b);
            }
        }
    }
    // What write_mtx writes streams as it is.
    let a = read_mtx::<f64>(&write(
        dir.path(),
        "y.mtx",
        &text(120, 30, "real", &entries(120, 30, "real", 6)),
    ))
    .unwrap();
    let p = dir.path().join("w.mtx.gz");
    write_mtx(&p, &a).unwrap();
    let mut src = MtxRows::open(&p).unwrap();
    assert!(src.reordered().is_none());
    check_passes(&mut src, &a, 50);
}

#[test]
fn files_not_grouped_by_row_are_sorted_once_at_bounded_memory() {
    let dir = crate::data::test_dir("mtx-rows-sort");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // Column-major order (as 10x Genomics writes), duplicates kept in their file order.
    let mut t = entries(300, 40, "real", 7);
    t.sort_by_key(|e| e.1);
    assert!(t.len() > 3000);
    for (name, memory) in [("c.mtx", 0), ("c.mtx.gz", 0), ("d.mtx", 64 << 20)] {
        let p = write(dir.path(), name, &text(300, 40, "real", &t));
        let opts = MtxRowsOptions {
            temp_dir: Some(tmp.clone()),
            sort_memory: memory,
        };
        let mut src = MtxRows::open_with(&p, &opts).unwrap();
        let r = src.reordered().unwrap().clone();
        // The first entry of column 1 in a row above the last one of column 0.
        assert!(
            r.reason.starts_with("line ") && r.reason.contains("after row"),
            "{r:?}"
        );
        assert_eq!(
            (r.temp_dir.as_path(), r.temp_bytes),
            (tmp.as_path(), 16 * t.len() as u64)
        );
        // Runs of 1024 entries with the smallest memory, one with the default.
        assert_eq!(r.runs, if memory == 0 { t.len().div_ceil(1024) } else { 1 });
        check_passes(&mut src, &read_mtx::<f64>(&p).unwrap(), 64);
        check_passes(&mut src, &read_mtx::<f32>(&p).unwrap(), 33);
        drop(src);
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "the sorted copy is removed"
        );
    }
    // A symmetric file: its mirrored entries are out of row order.
    let p = write(
        dir.path(),
        "s.mtx",
        "%%MatrixMarket matrix coordinate real symmetric\n4 4 4\n1 1 1\n3 1 2.5\n4 2 1\n4 4 3\n",
    );
    let mut src = MtxRows::open(&p).unwrap();
    assert!(src.reordered().unwrap().reason.contains("symmetric"));
    let whole = read_mtx::<f64>(&p).unwrap();
    assert_eq!(whole.nnz(), 6);
    check_passes(&mut src, &whole, 2);
}

/// The error of the whole reader and of the stream for the same file (both must fail).
fn both_errors(p: &Path) -> (String, String) {
    let whole = read_mtx::<f64>(p).map(|_| ()).unwrap_err().to_string();
    let stream = match MtxRows::open(p) {
        Err(e) => e.to_string(),
        Ok(mut s) => {
            let n = RowSource::<f64>::n_rows(&s);
            RowSource::<f64>::read(&mut s, 0, n)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        }
    };
    (whole, stream)
}

#[test]
fn bad_files_are_the_whole_readers_one_line_errors() {
    let dir = crate::data::test_dir("mtx-rows-bad");
    let h = "%%MatrixMarket matrix coordinate real general\n";
    let cases = [
        ("", "empty file"),
        ("hello\n", "not a MatrixMarket file"),
        ("%%MatrixMarket matrix array real general\n2 2\n", "dense"),
        ("%%MatrixMarket matrix coordinate complex general\n", "complex"),
        ("%%MatrixMarket matrix coordinate real hermitian\n", "hermitian"),
        (&format!("{h}2 2\n"), "size line"),
        (&format!("{h}% only a comment\n"), "no size line"),
        (&format!("{h}2 x 1\n"), "size line"),
        (&format!("{h}2 2 1\n3 1 1.0\n"), "row index 3 is outside 1..=2"),
        (&format!("{h}2 2 1\n1 0 1.0\n"), "column index 0"),
        (&format!("{h}2 2 1\n1 1 nan\n"), "not finite"),
        (&format!("{h}2 2 1\n1 1 -inf\n"), "not finite"),
        (&format!("{h}2 2 1\n1 1 abc\n"), "not a number"),
        (&format!("{h}2 2 1\n1\n"), "missing column"),
        (&format!("{h}2 2 3\n1 1 1\n"), "truncated file"),
        (&format!("{h}2 2 1\n1 1 1\n2 2 1\n"), "more entries"),
        (&format!("{h}2 2 1\n1 1\n"), "missing value"),
        (&format!("{h}99999999999 2 1\n"), "too large"),
        // Out of row order, then a bad entry: the same error after the sort's full check.
        (&format!("{h}3 3 3\n2 1 1\n1 1 1\n3 9 1\n"), "column index 9"),
        (&format!("{h}3 3 3\n2 1 1\n1 1 1\n"), "truncated file"),
        (
            "%%MatrixMarket matrix coordinate real symmetric\n2 3 2\n1 1 1\n1 3 1\n",
            "outside the matrix",
        ),
    ];
    for (k, (body, want)) in cases.iter().enumerate() {
        for gz in [false, true] {
            let p = write(
                dir.path(),
                &format!("b{k}.mtx{}", if gz { ".gz" } else { "" }),
                body,
            );
            let (whole, stream) = both_errors(&p);
            assert_eq!(whole, stream, "{body:?}");
            assert!(
                stream.contains(want) && !stream.contains('\n'),
                "{body:?}: {stream}"
            );
        }
    }
    // A truncated or corrupted .gz: one-line errors, never a panic.
    let body = text(200, 30, "real", &entries(200, 30, "real", 8));
    let p = write(dir.path(), "t.mtx.gz", &body);
    let bytes = std::fs::read(&p).unwrap();
    for cut in [10, bytes.len() / 3, bytes.len() - 5] {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let (_, stream) = both_errors(&p);
        assert!(!stream.contains('\n') && stream.contains("t.mtx.gz"), "{stream}");
    }
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x55;
    std::fs::write(&p, &flipped).unwrap();
    if let Err(e) = MtxRows::open(&p) {
        assert!(!e.to_string().contains('\n'));
    }
    // No rows: the stream refuses it (online NMF needs data), after the same checks.
    let p = write(dir.path(), "e.mtx", &format!("{h}0 3 0\n"));
    assert!(matches!(MtxRows::open(&p), Err(Error::EmptyData { .. })));
    // Negative values stream as stored; the fits refuse them naming the entry.
    let p = write(dir.path(), "n.mtx", &format!("{h}3 2 2\n1 1 1\n3 2 -4\n"));
    let mut src = MtxRows::open(&p).unwrap();
    let b = RowSource::<f64>::read(&mut src, 1, 2).unwrap();
    assert!(matches!(
        b.validate_nonnegative(1),
        Err(Error::NegativeEntry {
            sample: 2,
            feature: 1,
            ..
        })
    ));
}

#[test]
fn a_file_changed_after_opening_is_an_error_not_wrong_rows() {
    let dir = crate::data::test_dir("mtx-rows-changed");
    let h = "%%MatrixMarket matrix coordinate real general\n";
    let p = write(dir.path(), "x.mtx", &format!("{h}3 2 3\n1 1 1\n2 2 1\n3 1 1\n"));
    let mut src = MtxRows::open(&p).unwrap();
    assert!(RowSource::<f32>::read(&mut src, 0, 3).is_ok());
    for body in [
        format!("{h}3 2 3\n2 2 1\n1 1 1\n3 1 1\n"),
        format!("{h}4 2 3\n1 1 1\n2 2 1\n3 1 1\n"),
        format!("{h}3 2 3\n1 1 1\n"),
    ] {
        std::fs::write(&p, &body).unwrap();
        let e = RowSource::<f32>::read(&mut src, 0, 3).unwrap_err().to_string();
        assert!(
            !e.contains('\n') && (e.contains("changed") || e.contains("truncated")),
            "{e}"
        );
    }
}
