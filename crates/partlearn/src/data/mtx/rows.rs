//! [`MtxRows`]: a MatrixMarket file read by blocks of rows, at constant memory.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::sort::{RowSorter, SortedFile, SortedReader};
use super::{open_text, read_header, Entries, Header, Lines};
use crate::data::rows::{check_range, RowBlock, RowSource};
use crate::data::Csr;
use crate::error::{Error, Result};
use crate::real::Real;

/// Settings of [`MtxRows::open_with`].
#[derive(Clone, Debug)]
pub struct MtxRowsOptions {
    /// Folder for the row-sorted temporary copy of a file not grouped by row (default: the
    /// system's temporary folder). It needs about 32 bytes per entry while sorting, 16 after.
    pub temp_dir: Option<PathBuf>,
    /// Memory for the sort's runs, in bytes (default 64 MiB).
    pub sort_memory: usize,
}

impl Default for MtxRowsOptions {
    fn default() -> Self {
        MtxRowsOptions {
            temp_dir: None,
            sort_memory: 64 << 20,
        }
    }
}

/// How a file not grouped by row was made streamable.
#[derive(Clone, Debug, PartialEq)]
pub struct Reordered {
    /// Why the file cannot be streamed as it is (e.g. `line 4: row 1 after row 3`).
    pub reason: String,
    /// The folder of the temporary copy.
    pub temp_dir: PathBuf,
    /// The copy's size in bytes (16 per entry).
    pub temp_bytes: u64,
    /// Runs sorted in memory and merged (1: the file fitted in one).
    pub runs: usize,
}

/// A MatrixMarket coordinate file (`.mtx`, or `.mtx.gz`) read block of rows by block of rows
/// for online NMF: the blocks are exactly the rows of [`super::read_mtx`] (the same values,
/// duplicates summed in the same order, the same bits in f32 and f64), and memory is one block
/// whatever the number of rows.
///
/// [`open`](Self::open) reads the file once, checking every entry as [`super::read_mtx`] does
/// (the same one-line errors, before any block is read) and whether the entries are grouped by
/// row in non-decreasing row order (what `write_mtx`, scipy's `mmwrite` of a CSR matrix and
/// most tools write). Such a file is then streamed as it is: each pass re-reads (and, for
/// `.gz`, re-inflates) the text. A file that is not (column-major order, as 10x Genomics writes,
/// or a `symmetric` file) is **not** loaded whole: it is sorted once by row into a temporary
/// binary copy by an external sort of bounded memory ([`MtxRowsOptions::sort_memory`]), in
/// [`MtxRowsOptions::temp_dir`], which the passes then read; [`reordered`](Self::reordered) says
/// why and how large. The copy is deleted when the value is dropped (on Unix its name is
/// removed at once, so a killed process leaves nothing behind).
///
/// Reading rows before the current position rewinds (a new pass). Unlike the whole-file
/// reader, the declared entry count is not checked against memory (it is never held).
pub struct MtxRows {
    path: PathBuf,
    h: Header,
    sorted: Option<SortedFile>,
    reordered: Option<Reordered>,
    at: Option<Cursor>,
}

impl std::fmt::Debug for MtxRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MtxRows({}, {} × {})", self.path.display(), self.h.n, self.h.m)
    }
}

type Text = Entries<BufReader<Box<dyn Read + Send>>>;

/// Where the entries come from, from the first one.
enum Source {
    Text(Box<Text>),
    Sorted(SortedReader),
}

impl Source {
    fn next_entry(&mut self) -> Result<Option<(usize, usize, f64)>> {
        match self {
            Source::Text(t) => t.next_entry(),
            Source::Sorted(s) => Ok(s.next_entry()?.map(|(i, j, v)| (i as usize, j as usize, v))),
        }
    }
}

/// A pass in progress: the rows before `row` were read; `pending` is the first entry of a
/// later row, read ahead; `last` the row of the last entry read.
struct Cursor {
    src: Source,
    row: usize,
    last: usize,
    pending: Option<(usize, usize, f64)>,
}

fn text(path: &Path) -> Result<(Header, Text)> {
    let mut lines = Lines::new(open_text(path)?, path);
    let h = read_header(&mut lines)?;
    Ok((h, Entries::new(lines, h)))
}

impl MtxRows {
    /// Opens `path` with the default settings (the system's temporary folder for a sort).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, &MtxRowsOptions::default())
    }

    /// Opens `path`: reads it once to check it, and sorts it by row into a temporary file if
    /// its entries are not grouped by row.
    pub fn open_with(path: &Path, opts: &MtxRowsOptions) -> Result<Self> {
        let (h, mut entries) = text(path)?;
        let mut reason = h
            .symmetric
            .then(|| "a 'symmetric' file lists each mirrored entry (j, i) under row i".to_string());
        if reason.is_none() {
            let mut last = 0;
            while let Some((i, _, _)) = entries.next_entry()? {
                if i < last {
                    reason = Some(format!(
                        "line {}: row {} after row {}",
                        entries.line_no(),
                        i + 1,
                        last + 1
                    ));
                    break;
                }
                last = i;
            }
        }
        drop(entries);
        let (sorted, reordered) = match reason {
            None => (None, None),
            Some(reason) => {
                let dir = opts.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
                let s = sort_file(path, h, &dir, opts.sort_memory)?;
                let r = Reordered {
                    reason,
                    temp_dir: dir,
                    temp_bytes: s.bytes(),
                    runs: s.runs(),
                };
                (Some(s), Some(r))
            }
        };
        if h.n == 0 || h.m == 0 {
            return Err(Error::EmptyData {
                n_samples: h.n,
                n_features: h.m,
            });
        }
        Ok(MtxRows {
            path: path.into(),
            h,
            sorted,
            reordered,
            at: None,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entries the size line declares (before duplicates are summed; a `symmetric` file's
    /// mirrored entries not counted).
    pub fn declared_entries(&self) -> usize {
        self.h.declared
    }

    /// `Some` when the file was not grouped by row and is read from a sorted temporary copy.
    pub fn reordered(&self) -> Option<&Reordered> {
        self.reordered.as_ref()
    }

    fn changed(&self) -> Error {
        Error::format(
            &self.path,
            "the file changed while it was being read (its entries are no longer those checked when it was opened); open it again",
        )
    }

    /// A new pass from the first entry.
    fn restart(&self) -> Result<Cursor> {
        let src = match &self.sorted {
            Some(s) => Source::Sorted(s.reader()?),
            None => {
                let (h, t) = text(&self.path)?;
                if (h.n, h.m, h.declared, h.pattern, h.symmetric)
                    != (
                        self.h.n,
                        self.h.m,
                        self.h.declared,
                        self.h.pattern,
                        self.h.symmetric,
                    )
                {
                    return Err(self.changed());
                }
                Source::Text(Box::new(t))
            }
        };
        Ok(Cursor {
            src,
            row: 0,
            last: 0,
            pending: None,
        })
    }

    /// Reads the next `len` rows; `keep` false only skips them.
    fn next_rows<T: Real>(&mut self, len: usize, keep: bool) -> Result<Option<Csr<T>>> {
        let changed = self.changed();
        let (n, m) = (self.h.n, self.h.m);
        let Some(c) = self.at.as_mut() else {
            return Err(Error::format(
                &self.path,
                "the stream was lost after an error; open the file again",
            ));
        };
        let (first, end) = (c.row, c.row + len);
        let mut t: Vec<(usize, usize, T)> = Vec::new();
        loop {
            let e = match c.pending.take() {
                Some(e) => e,
                None => match c.src.next_entry()? {
                    Some(e) if e.0 < c.last => return Err(changed),
                    Some(e) => {
                        c.last = e.0;
                        e
                    }
                    None => break,
                },
            };
            if e.0 >= end {
                c.pending = Some(e);
                break;
            }
            if keep {
                t.push((e.0 - first, e.1, T::from_f64(e.2)));
            }
        }
        c.row = end;
        if end == n && c.pending.is_some() {
            return Err(changed);
        }
        if !keep {
            return Ok(None);
        }
        Csr::from_triplets(len, m, &t).map(Some)
    }
}

/// Every entry of `path` (a `symmetric` file's mirrored ones too, after their entry, as the
/// whole-file reader adds them) sorted by row into a temporary file in `dir`. An entry outside
/// the matrix (a mirrored one of a non-square file) is the whole-file reader's error, reported
/// after the whole text was checked, as there.
fn sort_file(path: &Path, h: Header, dir: &Path, budget: usize) -> Result<SortedFile> {
    let (_, mut entries) = text(path)?;
    let expected = h.declared.saturating_mul(if h.symmetric { 2 } else { 1 });
    let mut s = RowSorter::new(path, dir, budget, expected);
    let (mut count, mut outside) = (0usize, None);
    let mut push = |s: &mut RowSorter, i: usize, j: usize, v: f64| -> Result<()> {
        if i >= h.n || j >= h.m {
            outside.get_or_insert_with(|| crate::data::csr::outside_error(h.n, h.m, count, i, j));
        } else {
            s.push((i as u32, j as u32, v))?;
        }
        count += 1;
        Ok(())
    };
    while let Some((i, j, v)) = entries.next_entry()? {
        push(&mut s, i, j, v)?;
        if h.symmetric && i != j {
            push(&mut s, j, i, v)?;
        }
    }
    if let Some(e) = outside {
        return Err(e);
    }
    s.finish()
}

impl<T: Real> RowSource<T> for MtxRows {
    fn n_rows(&self) -> usize {
        self.h.n
    }
    fn n_cols(&self) -> usize {
        self.h.m
    }
    fn read(&mut self, start: usize, len: usize) -> Result<RowBlock<T>> {
        check_range(start, len, self.h.n)?;
        let row = self.at.as_ref().map_or(usize::MAX, |c| c.row);
        if self.at.is_none() || start < row {
            self.at = None;
            self.at = Some(self.restart()?);
        }
        let out = (|| {
            let skip = start - self.at.as_ref().map_or(start, |c| c.row);
            if skip > 0 {
                self.next_rows::<T>(skip, false)?;
            }
            self.next_rows(len, true)
        })();
        match out {
            Ok(Some(x)) => Ok(RowBlock::Sparse(x)),
            Ok(None) => Err(Error::format(&self.path, "no rows were read")),
            Err(e) => {
                self.at = None;
                Err(e)
            }
        }
    }
}
