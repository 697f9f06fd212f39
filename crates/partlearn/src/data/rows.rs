//! Row sources for streaming fits (online NMF, METHODS.md §11.3): a matrix's samples read as
//! blocks of consecutive rows, so that a fit holds one block at a time, never the whole matrix.
//!
//! - [`DenseRows`]: an in-memory dense matrix (`n × m`, samples as rows);
//! - [`CsrRows`]: an in-memory sparse matrix ([`Csr`]); its blocks stay sparse;
//! - [`NpyRows`]: a 2-D C-order `.npy` file, each block read at its byte offset (plain file
//!   reads: memory is the block, whatever the file's size);
//! - [`NpyShards`]: a folder of such files with the same number of columns, concatenated in
//!   the order of their names.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use faer::{Mat, MatRef};

use super::Csr;
use crate::error::{Error, Result};
use crate::npy::{self, NpyInfo};
use crate::real::Real;

/// A block of consecutive rows.
#[derive(Clone, Debug)]
pub enum RowBlock<T> {
    /// Dense, `m × len`: samples as columns (the solvers' layout; a C-order row is a column).
    Dense(Mat<T>),
    /// Sparse, `len × m`: samples as rows.
    Sparse(Csr<T>),
}

impl<T: Real> RowBlock<T> {
    /// Rows in the block.
    pub fn len(&self) -> usize {
        match self {
            RowBlock::Dense(x) => x.ncols(),
            RowBlock::Sparse(x) => x.nrows(),
        }
    }

    /// Whether the block has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that every entry is finite and ≥ 0 and that the block's scale fits `T` (as
    /// [`super::Dataset::validate_nonnegative`]); `first` is the block's first row in the whole
    /// matrix (the error names that row).
    pub fn validate_nonnegative(&self, first: usize) -> Result<()> {
        let shift = |e: Error| match e {
            Error::NegativeEntry {
                sample,
                feature,
                value,
            } => Error::NegativeEntry {
                sample: sample + first,
                feature,
                value,
            },
            Error::NonFinite {
                sample,
                feature,
                value,
            } => Error::NonFinite {
                sample: sample + first,
                feature,
                value,
            },
            e => e,
        };
        match self {
            RowBlock::Dense(x) => super::validate_nonnegative(x.as_ref())
                .map_err(shift)
                .and_then(|()| super::validate_scale(x.as_ref())),
            RowBlock::Sparse(x) => x.validate_nonnegative().map_err(shift),
        }
    }
}

/// Rows of an `n × m` matrix, read block by block.
pub trait RowSource<T: Real>: Send {
    /// Rows `n` (samples).
    fn n_rows(&self) -> usize;
    /// Columns `m` (features).
    fn n_cols(&self) -> usize;
    /// Rows `start .. start + len` (the caller keeps them within `n_rows`).
    fn read(&mut self, start: usize, len: usize) -> Result<RowBlock<T>>;
}

impl<T: Real, S: RowSource<T> + ?Sized> RowSource<T> for &mut S {
    fn n_rows(&self) -> usize {
        (**self).n_rows()
    }
    fn n_cols(&self) -> usize {
        (**self).n_cols()
    }
    fn read(&mut self, start: usize, len: usize) -> Result<RowBlock<T>> {
        (**self).read(start, len)
    }
}

pub(crate) fn check_range(start: usize, len: usize, n: usize) -> Result<()> {
    if start.checked_add(len).is_none_or(|e| e > n) {
        return Err(Error::invalid(
            "rows",
            format!("{start}..{}", start.saturating_add(len)),
            format!("the source has {n} rows"),
        ));
    }
    Ok(())
}

/// An in-memory dense matrix as a row source.
#[derive(Clone, Copy, Debug)]
pub struct DenseRows<'a, T> {
    x: MatRef<'a, T>,
}

impl<'a, T: Real> DenseRows<'a, T> {
    /// `x`: `n × m`, samples as rows.
    pub fn new(x: MatRef<'a, T>) -> Self {
        DenseRows { x }
    }
}

impl<T: Real> RowSource<T> for DenseRows<'_, T> {
    fn n_rows(&self) -> usize {
        self.x.nrows()
    }
    fn n_cols(&self) -> usize {
        self.x.ncols()
    }
    fn read(&mut self, start: usize, len: usize) -> Result<RowBlock<T>> {
        check_range(start, len, self.x.nrows())?;
        Ok(RowBlock::Dense(self.x.subrows(start, len).transpose().to_owned()))
    }
}

/// An in-memory sparse matrix as a row source (blocks stay sparse).
#[derive(Clone, Copy, Debug)]
pub struct CsrRows<'a, T> {
    x: &'a Csr<T>,
}

impl<'a, T: Real> CsrRows<'a, T> {
    /// `x`: `n × m`, samples as rows.
    pub fn new(x: &'a Csr<T>) -> Self {
        CsrRows { x }
    }
}

impl<T: Real> RowSource<T> for CsrRows<'_, T> {
    fn n_rows(&self) -> usize {
        self.x.nrows()
    }
    fn n_cols(&self) -> usize {
        self.x.ncols()
    }
    fn read(&mut self, start: usize, len: usize) -> Result<RowBlock<T>> {
        check_range(start, len, self.x.nrows())?;
        let rows: Vec<usize> = (start..start + len).collect();
        Ok(RowBlock::Sparse(self.x.select_rows(&rows)?))
    }
}

/// A 2-D `.npy` file read block by block at byte offsets (memory: one block).
#[derive(Debug)]
pub struct NpyRows {
    path: PathBuf,
    file: File,
    info: NpyInfo,
    n: usize,
    m: usize,
    buf: Vec<u8>,
}

impl NpyRows {
    /// Opens `path` and checks its header (2-D, C order, a supported dtype, the declared size
    /// equal to the file's).
    pub fn open(path: &Path) -> Result<Self> {
        let info = npy::read_npy_info(path)?;
        let (n, m) = match info.shape[..] {
            [n, m] => (n, m),
            _ => {
                return Err(Error::format(
                    path,
                    format!(
                        "streaming needs a 2-D array (n_samples × n_features), found shape {:?}; reshape it with numpy first",
                        info.shape
                    ),
                ))
            }
        };
        if n == 0 || m == 0 {
            return Err(Error::EmptyData {
                n_samples: n,
                n_features: m,
            });
        }
        let file = crate::io::open_regular(path)?;
        Ok(NpyRows {
            path: path.into(),
            file,
            info,
            n,
            m,
            buf: Vec::new(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads rows `start .. start + len` into columns `col .. col + len` of `dst` (`m × ·`).
    fn fill<T: Real>(&mut self, start: usize, len: usize, dst: &mut Mat<T>, col: usize) -> Result<()> {
        let row_bytes = self.m * self.info.itemsize();
        let off = self.info.data_offset + (start as u64) * row_bytes as u64;
        self.buf.resize(len * row_bytes, 0);
        let io = |e| Error::io(&self.path, e);
        self.file.seek(SeekFrom::Start(off)).map_err(io)?;
        self.file.read_exact(&mut self.buf).map_err(io)?;
        for (j, chunk) in self.buf.chunks_exact(row_bytes).enumerate() {
            self.info.decode_into(chunk, dst.col_as_slice_mut(col + j));
        }
        Ok(())
    }
}

impl<T: Real> RowSource<T> for NpyRows {
    fn n_rows(&self) -> usize {
        self.n
    }
    fn n_cols(&self) -> usize {
        self.m
    }
    fn read(&mut self, start: usize, len: usize) -> Result<RowBlock<T>> {
        check_range(start, len, self.n)?;
        let mut x = Mat::<T>::zeros(self.m, len);
        self.fill(start, len, &mut x, 0)?;
        Ok(RowBlock::Dense(x))
    }
}

/// A folder of 2-D `.npy` files with the same number of columns, one matrix whose rows are
/// those of the files in the order of their names.
#[derive(Debug)]
pub struct NpyShards {
    shards: Vec<NpyRows>,
    /// First row of each shard, then `n`.
    offsets: Vec<usize>,
    m: usize,
}

impl NpyShards {
    /// Opens every `*.npy` file of `dir` (sorted by name) and checks their headers.
    pub fn open(dir: &Path) -> Result<Self> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("npy")))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(Error::format(
                dir,
                "the folder holds no .npy file; put the row blocks there as 2-D .npy shards",
            ));
        }
        let mut shards = Vec::with_capacity(paths.len());
        let mut offsets = vec![0];
        for p in &paths {
            let s = NpyRows::open(p)?;
            if let Some(first) = shards.first() {
                let first: &NpyRows = first;
                if s.m != first.m {
                    return Err(Error::ShapeMismatch {
                        what: format!("shard {}", p.display()),
                        expected: format!("n × {} (as {})", first.m, first.path.display()),
                        found: format!("{} × {}", s.n, s.m),
                        hint: "every shard must have the same features (columns)".into(),
                    });
                }
            }
            offsets.push(offsets[offsets.len() - 1] + s.n);
            shards.push(s);
        }
        let m = shards[0].m;
        Ok(NpyShards { shards, offsets, m })
    }

    /// Number of files.
    pub fn n_shards(&self) -> usize {
        self.shards.len()
    }
}

impl<T: Real> RowSource<T> for NpyShards {
    fn n_rows(&self) -> usize {
        self.offsets[self.offsets.len() - 1]
    }
    fn n_cols(&self) -> usize {
        self.m
    }
    fn read(&mut self, start: usize, len: usize) -> Result<RowBlock<T>> {
        check_range(start, len, <Self as RowSource<T>>::n_rows(self))?;
        let mut x = Mat::<T>::zeros(self.m, len);
        let (mut row, mut col) = (start, 0);
        // The shard holding `row`: the last offset ≤ row.
        let mut s = self.offsets.partition_point(|&o| o <= row) - 1;
        while col < len {
            let local = row - self.offsets[s];
            let take = (self.offsets[s + 1] - row).min(len - col);
            self.shards[s].fill(local, take, &mut x, col)?;
            row += take;
            col += take;
            s += 1;
        }
        Ok(RowBlock::Dense(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_npy(path: &Path, x: MatRef<'_, f32>) {
        let data: Vec<f32> = (0..x.nrows())
            .flat_map(|i| (0..x.ncols()).map(move |j| x[(i, j)]))
            .collect();
        let bytes = npy::npy_bytes(&[x.nrows(), x.ncols()], npy::NpyDataRef::F32(&data));
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn file_shards_and_memory_give_the_same_blocks() {
        let dir = crate::data::test_dir("rows");
        let x = Mat::<f32>::from_fn(23, 5, |i, j| (i * 5 + j) as f32);
        write_npy(&dir.path().join("all.npy"), x.as_ref());
        let shards = dir.path().join("shards");
        std::fs::create_dir(&shards).unwrap();
        write_npy(&shards.join("a.npy"), x.subrows(0, 10));
        write_npy(&shards.join("b.npy"), x.subrows(10, 3));
        write_npy(&shards.join("c.npy"), x.subrows(13, 10));
        let mut mem = DenseRows::new(x.as_ref());
        let mut file = NpyRows::open(&dir.path().join("all.npy")).unwrap();
        let mut sh = NpyShards::open(&shards).unwrap();
        assert_eq!(RowSource::<f32>::n_rows(&sh), 23);
        for (start, len) in [(0, 23), (4, 9), (9, 5), (12, 11), (22, 1)] {
            let RowBlock::Dense(a) = RowSource::<f32>::read(&mut mem, start, len).unwrap() else {
                panic!()
            };
            let RowBlock::Dense(b) = RowSource::<f32>::read(&mut file, start, len).unwrap() else {
                panic!()
            };
            let RowBlock::Dense(c) = RowSource::<f32>::read(&mut sh, start, len).unwrap() else {
                panic!()
            };
            assert_eq!(a, b);
            assert_eq!(a, c);
            assert_eq!(a[(2, 0)], x[(start, 2)]);
        }
        assert!(RowSource::<f32>::read(&mut file, 20, 4).is_err());
        // A 1-D file is refused with a one-line error.
        std::fs::write(
            dir.path().join("v.npy"),
            npy::npy_bytes(&[3], npy::NpyDataRef::F32(&[1.0, 2.0, 3.0])),
        )
        .unwrap();
        let e = NpyRows::open(&dir.path().join("v.npy")).unwrap_err().to_string();
        assert!(e.contains("2-D") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn block_errors_name_the_row_of_the_whole_matrix() {
        let x = Mat::<f64>::from_fn(10, 3, |i, j| if (i, j) == (7, 1) { -1.0 } else { 1.0 });
        let mut s = DenseRows::new(x.as_ref());
        let b = s.read(5, 5).unwrap();
        match b.validate_nonnegative(5) {
            Err(Error::NegativeEntry {
                sample: 7,
                feature: 1,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }
}
