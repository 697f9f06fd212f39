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
//!
//! [`MtxRows`] streams a file by blocks of rows at constant memory (online NMF), with the same
//! rows and the same errors as [`read_mtx`].

mod rows;
mod sort;
#[cfg(test)]
mod tests_rows;

pub use rows::{MtxRows, MtxRowsOptions, Reordered};

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::Csr;
use crate::error::{Error, Result};
use crate::real::Real;

/// Reads a MatrixMarket coordinate file (gzipped if its name ends in `.gz`).
pub fn read_mtx<T: Real>(path: &Path) -> Result<Csr<T>> {
    parse_mtx(open_text(path)?, path)
}

/// The text of `path`, inflated when its name ends in `.gz`.
pub(crate) fn open_text(path: &Path) -> Result<BufReader<Box<dyn Read + Send>>> {
    let file = crate::io::open_regular(path)?;
    let gz = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    let reader: Box<dyn Read + Send> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(BufReader::with_capacity(1 << 16, reader))
}

/// Parses MatrixMarket text (`path` only names the source in errors).
pub fn parse_mtx<T: Real>(r: impl BufRead, path: &Path) -> Result<Csr<T>> {
    let mut lines = Lines::new(r, path);
    let h = read_header(&mut lines)?;
    let per = std::mem::size_of::<(usize, usize, T)>() as f64 * if h.symmetric { 2.0 } else { 1.0 };
    crate::linalg::check_file_memory(
        path,
        format!("its {} entries", h.declared),
        h.declared as f64 * per * 2.0,
    )?;
    let mut entries: Vec<(usize, usize, T)> = Vec::new();
    entries
        .try_reserve_exact(h.declared)
        .map_err(|_| lines.bad(format!("{} entries cannot be allocated", h.declared)))?;
    let mut src = Entries::new(lines, h);
    while let Some((i, j, v)) = src.next_entry()? {
        entries.push((i, j, T::from_f64(v)));
        if h.symmetric && i != j {
            entries.push((j, i, T::from_f64(v)));
        }
    }
    Csr::from_triplets(h.n, h.m, &entries)
}

/// The lines of a MatrixMarket text, numbered from 1 for the errors.
pub(crate) struct Lines<R> {
    r: R,
    line: String,
    no: usize,
    path: PathBuf,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(r: R, path: &Path) -> Self {
        Lines {
            r,
            line: String::new(),
            no: 0,
            path: path.into(),
        }
    }

    /// The next line into `self.line`; false at the end of the text.
    fn advance(&mut self) -> Result<bool> {
        self.line.clear();
        self.no += 1;
        let got = self.r.read_line(&mut self.line).map_err(|e| {
            Error::format(
                &self.path,
                format!("line {}: {e}; the file is corrupt or truncated", self.no),
            )
        })?;
        Ok(got > 0)
    }

    /// An error naming the current line.
    pub(crate) fn bad(&self, what: String) -> Error {
        bad_line(&self.path, self.no, what)
    }

    /// The number of the current line (1-based).
    pub(crate) fn line_no(&self) -> usize {
        self.no
    }
}

fn bad_line(path: &Path, line: usize, what: String) -> Error {
    Error::format(path, format!("line {line}: {what}"))
}

/// What the header and the size line declare.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub n: usize,
    pub m: usize,
    pub declared: usize,
    pub pattern: bool,
    pub symmetric: bool,
}

/// Reads the `%%MatrixMarket` line, the comments and the size line.
pub(crate) fn read_header<R: BufRead>(l: &mut Lines<R>) -> Result<Header> {
    if !l.advance()? {
        return Err(bad_line(
            &l.path,
            1,
            "empty file; expected a %%MatrixMarket header".into(),
        ));
    }
    let head: Vec<String> = l
        .line
        .split_whitespace()
        .map(|w| w.to_ascii_lowercase())
        .collect();
    if head.first().map(String::as_str) != Some("%%matrixmarket") || head.len() < 5 || head[1] != "matrix" {
        return Err(bad_line(
            &l.path,
            1,
            "not a MatrixMarket file: the first line must be '%%MatrixMarket matrix coordinate real general'"
                .into(),
        ));
    }
    if head[2] != "coordinate" {
        return Err(bad_line(
            &l.path,
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
            return Err(bad_line(
                &l.path,
                1,
                format!("field '{other}' is not supported; use real, integer or pattern"),
            ))
        }
    };
    let symmetric = match head[4].as_str() {
        "general" => false,
        "symmetric" => true,
        other => {
            return Err(bad_line(
                &l.path,
                1,
                format!("symmetry '{other}' is not supported; use general or symmetric"),
            ))
        }
    };
    // Comments, then the size line.
    let (n, m, declared) = loop {
        if !l.advance()? {
            return Err(l.bad("no size line 'rows cols entries'; the file is truncated".into()));
        }
        let t = l.line.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let v: Vec<&str> = t.split_whitespace().collect();
        let parse = |s: &str| s.parse::<usize>().ok();
        match v[..] {
            [a, b, c] => match (parse(a), parse(b), parse(c)) {
                (Some(a), Some(b), Some(c)) => break (a, b, c),
                _ => {
                    return Err(l.bad(format!(
                        "size line '{t}' must be three non-negative integers 'rows cols entries'"
                    )))
                }
            },
            _ => return Err(l.bad(format!("size line '{t}' must be 'rows cols entries'"))),
        }
    };
    if n > u32::MAX as usize || m > u32::MAX as usize {
        return Err(l.bad(format!(
            "size {n} × {m} is too large: at most {} rows and columns",
            u32::MAX
        )));
    }
    Ok(Header {
        n,
        m,
        declared,
        pattern,
        symmetric,
    })
}

/// The entries after the size line, in file order, 0-based, each checked (indices in range,
/// a finite value); at the end, their count against the size line.
pub(crate) struct Entries<R> {
    lines: Lines<R>,
    h: Header,
    seen: usize,
}

impl<R: BufRead> Entries<R> {
    pub(crate) fn new(lines: Lines<R>, h: Header) -> Self {
        Entries { lines, h, seen: 0 }
    }

    /// The line of the last entry read (1-based).
    pub(crate) fn line_no(&self) -> usize {
        self.lines.line_no()
    }

    /// The next entry `(row, col, value)` (`pattern`: value 1), or `None` after the last one.
    pub(crate) fn next_entry(&mut self) -> Result<Option<(usize, usize, f64)>> {
        let (h, l) = (&self.h, &mut self.lines);
        loop {
            if !l.advance()? {
                if self.seen < h.declared {
                    return Err(Error::format(
                        &l.path,
                        format!(
                            "truncated file: the size line declares {} entries but only {} are present; re-download or re-export it",
                            h.declared, self.seen
                        ),
                    ));
                }
                return Ok(None);
            }
            let t = l.line.trim();
            if t.is_empty() || t.starts_with('%') {
                continue;
            }
            if self.seen == h.declared {
                return Err(l.bad(format!(
                    "more entries than the {} the size line declares; the file is corrupt",
                    h.declared
                )));
            }
            let (path, no) = (&l.path, l.no);
            let bad = |what: String| bad_line(path, no, what);
            let mut w = t.split_whitespace();
            let mut index = |what: &str, bound: usize| -> Result<usize> {
                let s = w.next().ok_or_else(|| bad(format!("missing {what} index")))?;
                let i = s
                    .parse::<usize>()
                    .map_err(|_| bad(format!("{what} index '{s}' is not a positive integer")))?;
                if i == 0 || i > bound {
                    return Err(bad(format!(
                        "{what} index {i} is outside 1..={bound} (indices are 1-based)"
                    )));
                }
                Ok(i - 1)
            };
            let (i, j) = (index("row", h.n)?, index("column", h.m)?);
            let v = if h.pattern {
                1.0
            } else {
                let s = w.next().ok_or_else(|| bad("missing value".into()))?;
                let v = s
                    .parse::<f64>()
                    .map_err(|_| bad(format!("value '{s}' is not a number")))?;
                if !v.is_finite() {
                    return Err(bad(format!(
                        "value {s} is not finite; remove or impute missing values"
                    )));
                }
                v
            };
            self.seen += 1;
            return Ok(Some((i, j, v)));
        }
    }
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
