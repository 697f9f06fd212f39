//! MatrixMarket coordinate files (`.mtx`, or gzipped `.mtx.gz`), as many corpora and single-cell
//! tools ship sparse data: the header `%%MatrixMarket matrix coordinate real|integer|pattern
//! general|symmetric`, `%` comment lines, a size line `rows cols entries`, then one 1-based
//! `row col [value]` line per entry (`pattern`: value 1). Rows are samples, as everywhere in the
//! public API (10x Genomics' `matrix.mtx` is genes × cells: transpose it to cells × genes first,
//! e.g. `scipy.io.mmwrite(out, scipy.io.mmread(f).T)`). Duplicate entries are summed, as scipy's
//! `mmread(...).tocsr()` does; `symmetric` files are expanded.
//!
//! Every problem is a one-line error naming the line: a wrong header, an index out of range, a
//! non-finite value, a truncated file (fewer entries than declared) or trailing entries; the
//! declared entry count is checked against the available memory before anything is allocated.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use super::Csr;
use crate::error::{Error, Result};
use crate::real::Real;

/// Reads a MatrixMarket coordinate file (gzipped if its name ends in `.gz`).
pub fn read_mtx<T: Real>(path: &Path) -> Result<Csr<T>> {
    let file = crate::io::open_regular(path)?;
    let gz = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    parse_mtx(BufReader::new(reader), path)
}

/// Parses MatrixMarket text (`path` only names the source in errors).
pub fn parse_mtx<T: Real>(mut r: impl BufRead, path: &Path) -> Result<Csr<T>> {
    let bad = |line: usize, what: String| Error::format(path, format!("line {line}: {what}"));
    let mut line = String::new();
    let mut no = 0usize;
    fn next_line(r: &mut impl BufRead, line: &mut String, no: &mut usize, path: &Path) -> Result<bool> {
        line.clear();
        *no += 1;
        let got = r
            .read_line(line)
            .map_err(|e| Error::format(path, format!("line {no}: {e}; the file is corrupt or truncated")))?;
        Ok(got > 0)
    }
    if !next_line(&mut r, &mut line, &mut no, path)? {
        return Err(bad(1, "empty file; expected a %%MatrixMarket header".into()));
    }
    let head: Vec<String> = line.split_whitespace().map(|w| w.to_ascii_lowercase()).collect();
    if head.first().map(String::as_str) != Some("%%matrixmarket") || head.len() < 5 || head[1] != "matrix" {
        return Err(bad(
            1,
            "not a MatrixMarket file: the first line must be '%%MatrixMarket matrix coordinate real general'"
                .into(),
        ));
    }
    if head[2] != "coordinate" {
        return Err(bad(
            1,
            format!(
                "'{}' MatrixMarket files are dense; give a 'coordinate' (sparse) file, or the data as .npy",
                head[2]
            ),
        ));
    }
    let pattern = match head[3].as_str() {
        "real" | "integer" | "double" => false,
        "pattern" => true,
        other => {
            return Err(bad(
                1,
                format!("field '{other}' is not supported; use real, integer or pattern"),
            ))
        }
    };
    let symmetric = match head[4].as_str() {
        "general" => false,
        "symmetric" => true,
        other => {
            return Err(bad(
                1,
                format!("symmetry '{other}' is not supported; use general or symmetric"),
            ))
        }
    };
    // Comments, then the size line.
    let (n, m, declared) = loop {
        if !next_line(&mut r, &mut line, &mut no, path)? {
            return Err(bad(
                no,
                "no size line 'rows cols entries'; the file is truncated".into(),
            ));
        }
        let t = line.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let v: Vec<&str> = t.split_whitespace().collect();
        let parse = |s: &str| s.parse::<usize>().ok();
        match v[..] {
            [a, b, c] => match (parse(a), parse(b), parse(c)) {
                (Some(a), Some(b), Some(c)) => break (a, b, c),
                _ => {
                    return Err(bad(
                        no,
                        format!("size line '{t}' must be three non-negative integers 'rows cols entries'"),
                    ))
                }
            },
            _ => return Err(bad(no, format!("size line '{t}' must be 'rows cols entries'"))),
        }
    };
    if n > u32::MAX as usize || m > u32::MAX as usize {
        return Err(bad(
            no,
            format!(
                "size {n} × {m} is too large: at most {} rows and columns",
                u32::MAX
            ),
        ));
    }
    let per = std::mem::size_of::<(usize, usize, T)>() as f64 * if symmetric { 2.0 } else { 1.0 };
    crate::linalg::check_file_memory(
        path,
        format!("its {declared} entries"),
        declared as f64 * per * 2.0,
    )?;
    let mut entries: Vec<(usize, usize, T)> = Vec::new();
    entries
        .try_reserve_exact(declared)
        .map_err(|_| bad(no, format!("{declared} entries cannot be allocated")))?;
    let mut seen = 0usize;
    while next_line(&mut r, &mut line, &mut no, path)? {
        let t = line.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        if seen == declared {
            return Err(bad(
                no,
                format!("more entries than the {declared} the size line declares; the file is corrupt"),
            ));
        }
        let mut w = t.split_whitespace();
        let mut index = |what: &str, bound: usize| -> Result<usize> {
            let s = w.next().ok_or_else(|| bad(no, format!("missing {what} index")))?;
            let i = s
                .parse::<usize>()
                .map_err(|_| bad(no, format!("{what} index '{s}' is not a positive integer")))?;
            if i == 0 || i > bound {
                return Err(bad(
                    no,
                    format!("{what} index {i} is outside 1..={bound} (indices are 1-based)"),
                ));
            }
            Ok(i - 1)
        };
        let (i, j) = (index("row", n)?, index("column", m)?);
        let v = if pattern {
            1.0
        } else {
            let s = w.next().ok_or_else(|| bad(no, "missing value".into()))?;
            let v = s
                .parse::<f64>()
                .map_err(|_| bad(no, format!("value '{s}' is not a number")))?;
            if !v.is_finite() {
                return Err(bad(
                    no,
                    format!("value {s} is not finite; remove or impute missing values"),
                ));
            }
            v
        };
        entries.push((i, j, T::from_f64(v)));
        if symmetric && i != j {
            entries.push((j, i, T::from_f64(v)));
        }
        seen += 1;
    }
    if seen < declared {
        return Err(Error::format(
            path,
            format!("truncated file: the size line declares {declared} entries but only {seen} are present; re-download or re-export it"),
        ));
    }
    Csr::from_triplets(n, m, &entries)
}

/// Writes `a` as a MatrixMarket `coordinate real general` file (gzipped if the name ends in
/// `.gz`), values with Rust's shortest round-trip formatting.
pub fn write_mtx<T: Real>(path: &Path, a: &Csr<T>) -> Result<()> {
    let gz = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    crate::io::write_atomic_with(path, |w| {
        let body = |w: &mut dyn Write| -> std::io::Result<()> {
            writeln!(w, "%%MatrixMarket matrix coordinate real general")?;
            writeln!(w, "{} {} {}", a.nrows(), a.ncols(), a.nnz())?;
            for i in 0..a.nrows() {
                let (cols, vals) = a.row(i);
                for (&c, &v) in cols.iter().zip(vals) {
                    writeln!(w, "{} {} {}", i + 1, c + 1, v)?;
                }
            }
            Ok(())
        };
        if gz {
            let mut e = flate2::write::GzEncoder::new(w, flate2::Compression::fast());
            body(&mut e)?;
            e.finish().map(|_| ())
        } else {
            let mut b = std::io::BufWriter::new(w);
            body(&mut b)?;
            b.flush()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Csr<f64>> {
        parse_mtx(text.as_bytes(), Path::new("t.mtx"))
    }

    #[test]
    fn mtx_round_trip_plain_and_gz() {
        let dir = crate::data::test_dir("mtx");
        let a = Csr::from_triplets(3, 5, &[(0, 4, 1.25f64), (2, 0, 3.0), (2, 2, 1e-7)]).unwrap();
        for name in ["x.mtx", "x.mtx.gz"] {
            let p = dir.path().join(name);
            write_mtx(&p, &a).unwrap();
            assert_eq!(read_mtx::<f64>(&p).unwrap(), a, "{name}");
        }
    }

    #[test]
    fn duplicates_are_summed_and_pattern_and_symmetric_read() {
        let a = parse("%%MatrixMarket matrix coordinate integer general\n% c\n2 3 3\n1 2 4\n1 2 1\n2 3 7\n")
            .unwrap();
        assert_eq!(a.row(0), (&[1u32][..], &[5.0][..]));
        let p = parse("%%MatrixMarket matrix coordinate pattern general\n2 2 1\n2 1\n").unwrap();
        assert_eq!(p.row(1), (&[0u32][..], &[1.0][..]));
        let s = parse("%%MatrixMarket matrix coordinate real symmetric\n3 3 2\n2 1 2.5\n3 3 1\n").unwrap();
        assert_eq!((s.nnz(), s.row(0)), (3, (&[1u32][..], &[2.5][..])));
    }

    #[test]
    fn bad_mtx_files_are_one_line_errors_naming_the_problem() {
        let h = "%%MatrixMarket matrix coordinate real general\n";
        for (text, want) in [
            ("", "empty file"),
            ("hello\n", "not a MatrixMarket file"),
            ("%%MatrixMarket matrix array real general\n2 2\n", "dense"),
            ("%%MatrixMarket matrix coordinate complex general\n", "complex"),
            (&format!("{h}2 2\n"), "size line"),
            (&format!("{h}2 2 1\n3 1 1.0\n"), "row index 3 is outside 1..=2"),
            (&format!("{h}2 2 1\n1 0 1.0\n"), "column index 0"),
            (&format!("{h}2 2 1\n1 1 nan\n"), "not finite"),
            (&format!("{h}2 2 1\n1 1 abc\n"), "not a number"),
            (&format!("{h}2 2 3\n1 1 1\n"), "truncated file"),
            (&format!("{h}2 2 1\n1 1 1\n2 2 1\n"), "more entries"),
            (&format!("{h}2 2 1\n1 1\n"), "missing value"),
            (&format!("{h}99999999999 2 1\n"), "too large"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        // A declared entry count far beyond memory is refused before allocating.
        let e = parse(&format!("{h}2 2 18446744073709551615\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("memory") || e.contains("cannot be allocated"), "{e}");
        // Negative values load (as scipy does) and are refused by the fits, naming the entry.
        let neg = parse(&format!("{h}2 2 1\n2 1 -3\n")).unwrap();
        assert!(matches!(
            neg.validate_nonnegative(),
            Err(Error::NegativeEntry {
                sample: 1,
                feature: 0,
                ..
            })
        ));
    }
}
