//! The external sort behind [`super::MtxRows`] for files whose entries are not grouped by row
//! (column-major files such as 10x Genomics', `symmetric` files): entries are gathered in runs
//! of bounded size, each run sorted by row in memory and spilled to a temporary file, and the
//! runs merged into one row-ordered temporary file of 16-byte records (row `u32`, column `u32`,
//! value `f64`, little-endian). The sort is stable — entries of one row keep their order in the
//! file — so duplicates are later summed in the order the whole-file reader sums them.
//!
//! Memory: one run (`budget` bytes) while gathering; `budget` bytes of read buffers, shared by
//! the runs, while merging. Disk: 16 bytes per entry for the runs, then as much for the sorted
//! copy (the runs are freed once merged).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One entry: row, column, value (0-based indices).
pub(crate) type Entry = (u32, u32, f64);

/// Bytes of an entry on disk.
const REC: usize = 16;

fn encode(e: &Entry, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.0.to_le_bytes());
    out.extend_from_slice(&e.1.to_le_bytes());
    out.extend_from_slice(&e.2.to_le_bytes());
}

fn decode(b: &[u8]) -> Entry {
    let mut r = [0u8; 4];
    let mut c = [0u8; 4];
    let mut v = [0u8; 8];
    r.copy_from_slice(&b[0..4]);
    c.copy_from_slice(&b[4..8]);
    v.copy_from_slice(&b[8..16]);
    (
        u32::from_le_bytes(r),
        u32::from_le_bytes(c),
        f64::from_le_bytes(v),
    )
}

/// Names the source file and the temporary folder in an I/O error of the sort.
#[derive(Clone, Debug)]
pub(crate) struct Where {
    pub src: PathBuf,
    pub dir: PathBuf,
}

impl Where {
    fn err(&self, what: &str, e: std::io::Error) -> Error {
        Error::format(
            &self.src,
            format!(
                "{what} its row-sorted temporary copy in {}: {e}; free disk space there or choose another temporary folder",
                self.dir.display()
            ),
        )
    }
}

/// A temporary file. On Unix its name is removed as soon as it is created (the space is freed
/// when the last handle closes, even if the process is killed); elsewhere when it is dropped.
pub(crate) struct TempFile {
    file: File,
    path: PathBuf,
    named: bool,
}

impl TempFile {
    fn create(dir: &Path, tag: &str, at: &Where) -> Result<Self> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let mut last = None;
        for _ in 0..64 {
            let k = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".partlearn-{tag}-{}-{k}.tmp", std::process::id()));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    let named = !(cfg!(unix) && std::fs::remove_file(&path).is_ok());
                    return Ok(TempFile { file, path, named });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(at.err("creating", e)),
            }
        }
        Err(at.err(
            "creating",
            last.unwrap_or_else(|| std::io::Error::other("no free temporary name")),
        ))
    }

    /// A second handle on the file (for a buffered writer or reader).
    fn handle(&self, at: &Where) -> Result<File> {
        self.file.try_clone().map_err(|e| at.err("opening", e))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.named {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Entries sorted by row in a temporary file.
pub(crate) struct SortedFile {
    file: TempFile,
    count: u64,
    runs: usize,
    at: Where,
}

impl SortedFile {
    /// Bytes of the temporary file.
    pub(crate) fn bytes(&self) -> u64 {
        self.count * REC as u64
    }

    /// Runs sorted in memory (1 when everything fitted in one).
    pub(crate) fn runs(&self) -> usize {
        self.runs
    }

    /// A reader from the first entry.
    pub(crate) fn reader(&self) -> Result<SortedReader> {
        let mut f = self.file.handle(&self.at)?;
        f.seek(SeekFrom::Start(0))
            .map_err(|e| self.at.err("rewinding", e))?;
        Ok(SortedReader {
            r: BufReader::with_capacity(1 << 16, f),
            left: self.count,
            at: self.at.clone(),
        })
    }
}

/// The entries of a [`SortedFile`], front to back.
pub(crate) struct SortedReader {
    r: BufReader<File>,
    left: u64,
    at: Where,
}

impl SortedReader {
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut b = [0u8; REC];
        self.r.read_exact(&mut b).map_err(|e| self.at.err("reading", e))?;
        self.left -= 1;
        Ok(Some(decode(&b)))
    }
}

/// Gathers entries in file order and sorts them by row (stable) within `budget` bytes.
pub(crate) struct RowSorter {
    at: Where,
    chunk: Vec<Entry>,
    cap: usize,
    /// The spilled runs: the file, its writer, and each run's first entry and length.
    spill: Option<(TempFile, BufWriter<File>)>,
    runs: Vec<(u64, u64)>,
    spilled: u64,
    budget: usize,
    buf: Vec<u8>,
}

impl RowSorter {
    /// `budget`: bytes of memory for a run (a run holds `budget / 24` entries: 16 bytes each
    /// plus the stable sort's buffer); `expected`: entries announced (the first run's
    /// allocation is at most that).
    pub(crate) fn new(src: &Path, dir: &Path, budget: usize, expected: usize) -> Self {
        let cap = (budget / 24).max(1024);
        RowSorter {
            at: Where {
                src: src.into(),
                dir: dir.into(),
            },
            chunk: Vec::with_capacity(cap.min(expected)),
            cap,
            spill: None,
            runs: Vec::new(),
            spilled: 0,
            budget,
            buf: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, e: Entry) -> Result<()> {
        if self.chunk.len() == self.cap {
            self.spill_chunk()?;
        }
        self.chunk.push(e);
        Ok(())
    }

    /// Sorts the gathered run and appends it to the runs' file.
    fn spill_chunk(&mut self) -> Result<()> {
        self.chunk.sort_by_key(|e| e.0);
        if self.spill.is_none() {
            let f = TempFile::create(&self.at.dir, "mtx-runs", &self.at)?;
            let w = BufWriter::with_capacity(1 << 16, f.handle(&self.at)?);
            self.spill = Some((f, w));
        }
        let Some((_, w)) = self.spill.as_mut() else {
            return Err(Error::format(&self.at.src, "the sort lost its runs file"));
        };
        write_entries(&self.chunk, w, &mut self.buf, &self.at)?;
        self.runs.push((self.spilled, self.chunk.len() as u64));
        self.spilled += self.chunk.len() as u64;
        self.chunk.clear();
        Ok(())
    }

    /// The sorted file of everything pushed.
    pub(crate) fn finish(mut self) -> Result<SortedFile> {
        let out = TempFile::create(&self.at.dir, "mtx-sorted", &self.at)?;
        let mut w = BufWriter::with_capacity(1 << 16, out.handle(&self.at)?);
        let count;
        let runs;
        if self.spill.is_none() {
            self.chunk.sort_by_key(|e| e.0);
            write_entries(&self.chunk, &mut w, &mut self.buf, &self.at)?;
            count = self.chunk.len() as u64;
            runs = 1;
        } else {
            if !self.chunk.is_empty() {
                self.spill_chunk()?;
            }
            self.chunk = Vec::new();
            let Some((spill, mut sw)) = self.spill.take() else {
                return Err(Error::format(&self.at.src, "the sort lost its runs file"));
            };
            sw.flush().map_err(|e| self.at.err("writing", e))?;
            drop(sw);
            count = merge(&spill, &self.runs, &mut w, self.budget, &self.at)?;
            runs = self.runs.len();
        }
        w.flush().map_err(|e| self.at.err("writing", e))?;
        Ok(SortedFile {
            file: out,
            count,
            runs,
            at: self.at,
        })
    }
}

fn write_entries(es: &[Entry], w: &mut impl Write, buf: &mut Vec<u8>, at: &Where) -> Result<()> {
    for block in es.chunks(4096) {
        buf.clear();
        for e in block {
            encode(e, buf);
        }
        w.write_all(buf).map_err(|e| at.err("writing", e))?;
    }
    Ok(())
}

/// One run being merged: its next entries in a buffer, refilled from the runs' file.
struct Run {
    /// Offset (in entries) of the first entry not yet in the buffer, and how many are left.
    next: u64,
    left: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl Run {
    /// The next entry, refilling the buffer from `f` when it is used up.
    fn pop(&mut self, f: &mut File, cap: usize, at: &Where) -> Result<Option<Entry>> {
        if self.pos == self.buf.len() {
            if self.left == 0 {
                return Ok(None);
            }
            let take = self.left.min((cap / REC) as u64);
            self.buf.resize(take as usize * REC, 0);
            f.seek(SeekFrom::Start(self.next * REC as u64))
                .and_then(|_| f.read_exact(&mut self.buf))
                .map_err(|e| at.err("reading", e))?;
            self.next += take;
            self.left -= take;
            self.pos = 0;
        }
        let e = decode(&self.buf[self.pos..self.pos + REC]);
        self.pos += REC;
        Ok(Some(e))
    }
}

/// Merges the sorted runs of `spill` into `w`; returns the number of entries. Equal rows come
/// from the earlier run first, which keeps the sort stable.
fn merge(
    spill: &TempFile,
    runs: &[(u64, u64)],
    w: &mut impl Write,
    budget: usize,
    at: &Where,
) -> Result<u64> {
    let mut f = spill.handle(at)?;
    let cap = (budget / runs.len().max(1) / REC * REC).clamp(64 * REC, 1 << 20);
    let mut rs: Vec<Run> = runs
        .iter()
        .map(|&(next, left)| Run {
            next,
            left,
            buf: Vec::new(),
            pos: 0,
        })
        .collect();
    let mut head: Vec<Option<Entry>> = Vec::with_capacity(rs.len());
    let mut heap = BinaryHeap::with_capacity(rs.len());
    for (k, r) in rs.iter_mut().enumerate() {
        let e = r.pop(&mut f, cap, at)?;
        if let Some(e) = e {
            heap.push(Reverse((e.0, k)));
        }
        head.push(e);
    }
    let mut buf = Vec::with_capacity(4096 * REC);
    let mut count = 0u64;
    while let Some(Reverse((_, k))) = heap.pop() {
        let Some(e) = head[k].take() else { continue };
        encode(&e, &mut buf);
        count += 1;
        if buf.len() >= 4096 * REC {
            w.write_all(&buf).map_err(|e| at.err("writing", e))?;
            buf.clear();
        }
        if let Some(next) = rs[k].pop(&mut f, cap, at)? {
            heap.push(Reverse((next.0, k)));
            head[k] = Some(next);
        }
    }
    w.write_all(&buf).map_err(|e| at.err("writing", e))?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_by_row_stably_across_runs() {
        let dir = crate::data::test_dir("mtx-sort");
        let mut r = crate::Rng::new(4);
        // 10,000 entries in runs of 1024 (the smallest): rows in random order, the value
        // recording the position in the input.
        let input: Vec<Entry> = (0..10_000)
            .map(|p| ((r.uniform() * 50.0) as u32, (r.uniform() * 7.0) as u32, p as f64))
            .collect();
        for budget in [0, 1 << 30] {
            let mut s = RowSorter::new(Path::new("x.mtx"), dir.path(), budget, input.len());
            for &e in &input {
                s.push(e).unwrap();
            }
            let sorted = s.finish().unwrap();
            assert_eq!(sorted.runs(), if budget == 0 { 10 } else { 1 });
            assert_eq!(sorted.bytes(), 160_000);
            let mut want = input.clone();
            want.sort_by_key(|e| e.0);
            for _ in 0..2 {
                let mut rd = sorted.reader().unwrap();
                let mut got = Vec::new();
                while let Some(e) = rd.next_entry().unwrap() {
                    got.push(e);
                }
                assert_eq!(got, want);
            }
        }
        // Nothing is left in the folder (the names are removed at once on Unix, else on drop).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
