//! Numeric CSV files: one sample per row.
//!
//! The delimiter is taken from the first row: comma, else semicolon, else tab, else runs of spaces
//! (what `np.savetxt` writes). A first row whose every field is a non-numeric name is a header.
//! Blank lines and lines starting with `#` are skipped; fields may be wrapped in double quotes.

use std::path::Path;

use super::Dataset;
use crate::error::{Error, Result};
use crate::real::Real;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delim {
    Char(char),
    Whitespace,
}

impl Delim {
    fn detect(line: &str) -> Self {
        [',', ';', '\t']
            .into_iter()
            .find(|&c| line.contains(c))
            .map_or(Delim::Whitespace, Delim::Char)
    }

    fn split(self, line: &str) -> Vec<&str> {
        let fields: Vec<&str> = match self {
            Delim::Char(c) => line.split(c).collect(),
            Delim::Whitespace => line.split_whitespace().collect(),
        };
        fields
            .into_iter()
            .map(|f| {
                let f = f.trim();
                f.strip_prefix('"')
                    .and_then(|g| g.strip_suffix('"'))
                    .unwrap_or(f)
                    .trim()
            })
            .collect()
    }
}

/// Loads a numeric CSV file as an `n_rows × n_columns` data set (rows are samples).
pub fn load_csv<T: Real>(path: &Path) -> Result<Dataset<T>> {
    let bytes = crate::io::read_regular(path, u64::MAX)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| Error::format(path, format!("not UTF-8 text ({e}); save the CSV file as UTF-8")))?;
    parse_csv(text, path)
}

/// Parses CSV text (`path` only names the source in errors).
pub fn parse_csv<T: Real>(text: &str, path: &Path) -> Result<Dataset<T>> {
    // Line ends: `\n`, `\r\n`, or a lone `\r` (classic Mac; it used to land, raw, in messages).
    let normalized;
    let text = if text.contains('\r') {
        normalized = text.replace("\r\n", "\n").replace('\r', "\n");
        normalized.as_str()
    } else {
        text
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((first_no, first)) = lines.next() else {
        return Err(Error::format(
            path,
            "no data rows found; write one sample per line with numbers separated by commas",
        ));
    };
    let delim = Delim::detect(first);
    let first_fields = delim.split(first);
    let ncols = first_fields.len();
    // A header names every column: a first row mixing numbers with text or empty fields is data
    // (and its bad field is reported), not silently dropped.
    let is_header = first_fields
        .iter()
        .all(|f| !f.is_empty() && f.parse::<f64>().is_err());
    let mut values: Vec<T> = Vec::new();
    let mut n_rows = 0usize;
    let rows = (!is_header).then_some((first_no, first)).into_iter().chain(lines);
    for (no, line) in rows {
        let fields = delim.split(line);
        if fields.len() != ncols {
            return Err(Error::format(
                path,
                format!(
                    "line {no} has {} fields but line {first_no} has {ncols}; give every row the same number of columns",
                    fields.len()
                ),
            ));
        }
        for (c, f) in fields.iter().enumerate() {
            let v = f.parse::<f64>().map_err(|_| {
                let reason = if f.is_empty() {
                    format!("line {no}, column {}: empty field; fill in missing values", c + 1)
                } else {
                    format!(
                        "line {no}, column {}: '{f}' is not a number; remove text columns (only a first header row may hold names)",
                        c + 1
                    )
                };
                Error::format(path, reason)
            })?;
            values.push(T::from_f64(v));
        }
        n_rows += 1;
    }
    if n_rows == 0 {
        return Err(Error::format(
            path,
            "the file has a header but no data rows; write one sample per line below the header",
        ));
    }
    Dataset::from_row_major(n_rows, ncols, &values, path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parse(s: &str) -> Result<Dataset<f64>> {
        parse_csv(s, &PathBuf::from("t.csv"))
    }

    #[test]
    fn parses_delimiters_headers_and_blank_lines() {
        for text in [
            "1,2,3\n4,5,6\n",
            "a,b,c\r\n1, 2 ,3\r\n\r\n4,5,6",
            "\u{feff}\"a\";\"b\";\"c\"\n1;2;3\n4;5;6\n",
            "# x y z\n1\t2\t3\n\n4\t5\t6\n",
            "1.0e0 2.000 3\n  4   5  6  \n",
            "x,y,z\n\"1\",\"2\",\"3\"\n4,5,+6\n\n",
        ] {
            let d = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!((d.n_samples(), d.n_features()), (2, 3), "{text:?}");
            assert_eq!(d.sample(0), &[1.0, 2.0, 3.0]);
            assert_eq!(d.sample(1), &[4.0, 5.0, 6.0]);
        }
        let d = parse("0.5\n1.5\n").unwrap();
        assert_eq!((d.n_samples(), d.n_features()), (2, 1));
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("1,2,3\n4,5\n").unwrap_err().to_string();
        assert!(e.contains("line 2 has 2 fields but line 1 has 3"), "{e}");
        let e = parse("a,b\n1,2\n\n3,x\n").unwrap_err().to_string();
        assert!(e.contains("line 4, column 2: 'x'"), "{e}");
        let e = parse("1,2\n3,\n").unwrap_err().to_string();
        assert!(e.contains("line 2, column 2: empty"), "{e}");
        let e = parse("a,b,c\n1,2,3,4\n").unwrap_err().to_string();
        assert!(e.contains("line 2 has 4 fields but line 1 has 3"), "{e}");
        // A first row mixing numbers and text (or empty fields) is data, not a header.
        for (text, want) in [
            ("1,,3\n4,5,6\n", "line 1, column 2: empty"),
            ("1,abc,3\n4,5,6\n", "line 1, column 2: 'abc'"),
            ("0x10,2\n3,4\n", "line 1, column 1: '0x10'"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        assert!(matches!(parse("\n\n"), Err(Error::BadFormat { .. })));
        assert!(matches!(parse("a,b\n"), Err(Error::BadFormat { .. })));
    }

    #[test]
    fn loads_files() {
        let dir = crate::data::test_dir("csv");
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "f1,f2\n0.25,1\n2,3\n").unwrap();
        let d = load_csv::<f32>(&p).unwrap();
        assert_eq!(d.x()[(0, 0)], 0.25);
        assert_eq!(d.name, p.display().to_string());
        std::fs::write(&p, [0xff, 0xfe, 0x31]).unwrap();
        assert!(matches!(load_csv::<f32>(&p), Err(Error::BadFormat { .. })));
        assert!(matches!(
            load_csv::<f32>(&dir.path().join("none.csv")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn cr_only_line_ends_are_lines() {
        let d = parse("1,2\r3,4\r").unwrap();
        assert_eq!((d.n_samples(), d.n_features()), (2, 2));
        let e = parse("1,2\r3,x\r").unwrap_err().to_string();
        assert!(!e.contains('\r') && e.contains("x"), "{e:?}");
    }
}
