//! scipy's sparse `.npz` files (`scipy.sparse.save_npz` / `load_npz`): a zip archive of NPY
//! arrays `format` (`b'csr'`, `b'csc'` or `b'coo'`, a 0-d string array), `shape`, and `indptr`,
//! `indices`, `data` (CSR/CSC) or `row`, `col`, `data` (COO). Members may be stored or deflated
//! (`compressed=True`, the default), with or without zip64 fields (numpy writes them).
//!
//! The zip reader is a small one of our own (central directory, stored/deflate members through
//! `flate2`, CRC-32 checked): no zip dependency. Every size a file declares is checked against
//! the available memory before anything is inflated, and inflation stops at the declared size,
//! so a forged archive is a one-line error, never an abort.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::rows::{RowBlock, RowSource};
use super::Csr;
use crate::error::{Error, Result};
use crate::npy::{npy_bytes, parse_npy, NpyData, NpyDataRef, NpyStream};
use crate::real::Real;

/// One member of the archive, from the central directory.
struct Member {
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    offset: u64,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The members of the zip file `f` (`len` bytes), by name.
fn members(f: &mut File, len: u64, path: &Path) -> Result<BTreeMap<String, Member>> {
    let io = |e| Error::io(path, e);
    let not_zip = || {
        Error::format(
            path,
            "not a .npz (zip) archive: no end-of-central-directory record; write it with scipy.sparse.save_npz",
        )
    };
    // The end record is in the last 22 + 65535 bytes.
    let tail_len = len.min(22 + 65535);
    let mut tail = vec![0u8; tail_len as usize];
    f.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    f.read_exact(&mut tail).map_err(io)?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| le32(&tail, i) == 0x0605_4b50)
        .ok_or_else(not_zip)?;
    let mut count = le16(&tail, eocd + 10) as u64;
    let mut cd_size = le32(&tail, eocd + 12) as u64;
    let mut cd_offset = le32(&tail, eocd + 16) as u64;
    if (count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF) && eocd >= 20 {
        // Zip64: the locator just before the end record points at the zip64 end record.
        if le32(&tail, eocd - 20) != 0x0706_4b50 {
            return Err(not_zip());
        }
        let at = le64(&tail, eocd - 12);
        let mut rec = [0u8; 56];
        if at.checked_add(56).is_none_or(|end| end > len) {
            return Err(Error::format(
                path,
                "zip64 end record points outside the file; the archive is corrupt",
            ));
        }
        f.seek(SeekFrom::Start(at)).map_err(io)?;
        f.read_exact(&mut rec).map_err(io)?;
        if le32(&rec, 0) != 0x0606_4b50 {
            return Err(not_zip());
        }
        count = le64(&rec, 32);
        cd_size = le64(&rec, 40);
        cd_offset = le64(&rec, 48);
    }
    if cd_offset.checked_add(cd_size).is_none_or(|end| end > len) || cd_size > 1 << 24 {
        return Err(Error::Truncated {
            path: path.into(),
            part: "header",
            declared: cd_offset.saturating_add(cd_size),
            actual: len,
        });
    }
    let mut cd = vec![0u8; cd_size as usize];
    f.seek(SeekFrom::Start(cd_offset)).map_err(io)?;
    f.read_exact(&mut cd).map_err(io)?;
    let corrupt = || Error::format(path, "the zip central directory is corrupt; re-save the file");
    let mut out = BTreeMap::new();
    let mut p = 0usize;
    for _ in 0..count {
        if p + 46 > cd.len() || le32(&cd, p) != 0x0201_4b50 {
            return Err(corrupt());
        }
        let (nlen, xlen, clen) = (
            le16(&cd, p + 28) as usize,
            le16(&cd, p + 30) as usize,
            le16(&cd, p + 32) as usize,
        );
        if p + 46 + nlen + xlen + clen > cd.len() {
            return Err(corrupt());
        }
        let name = String::from_utf8_lossy(&cd[p + 46..p + 46 + nlen]).into_owned();
        let mut m = Member {
            method: le16(&cd, p + 10),
            crc: le32(&cd, p + 16),
            compressed: le32(&cd, p + 20) as u64,
            size: le32(&cd, p + 24) as u64,
            offset: le32(&cd, p + 42) as u64,
        };
        // Zip64 extra field: the 64-bit values of the fields saturated above, in this order.
        let extra = &cd[p + 46 + nlen..p + 46 + nlen + xlen];
        let mut e = 0;
        while e + 4 <= extra.len() {
            let (id, sz) = (le16(extra, e), le16(extra, e + 2) as usize);
            if id == 1 {
                let mut q = e + 4;
                for field in [&mut m.size, &mut m.compressed, &mut m.offset] {
                    if *field == 0xFFFF_FFFF && q + 8 <= (e + 4 + sz).min(extra.len()) {
                        *field = le64(extra, q);
                        q += 8;
                    }
                }
            }
            e += 4 + sz;
        }
        out.insert(name, m);
        p += 46 + nlen + xlen + clen;
    }
    Ok(out)
}

/// Reads and inflates one member (its declared size was checked by the caller).
fn read_member(f: &mut File, len: u64, m: &Member, name: &str, path: &Path) -> Result<Vec<u8>> {
    let start = member_start(f, len, m, name, path)?;
    let io = |e| Error::io(path, e);
    f.seek(SeekFrom::Start(start)).map_err(io)?;
    let raw = Read::by_ref(f).take(m.compressed);
    let mut out = Vec::new();
    out.try_reserve_exact(m.size as usize).map_err(|_| {
        Error::format(
            path,
            format!(
                "member {name} declares {} bytes, which cannot be allocated",
                m.size
            ),
        )
    })?;
    let got = match m.method {
        0 => raw.take(m.size + 1).read_to_end(&mut out),
        8 => flate2::read::DeflateDecoder::new(raw).take(m.size + 1).read_to_end(&mut out),
        other => {
            return Err(Error::format(
                path,
                format!("member {name} uses zip compression method {other}; only stored (0) and deflate (8) are supported, as numpy and scipy write"),
            ))
        }
    }
    .map_err(|e| Error::format(path, format!("member {name}: {e}; the archive is corrupt or truncated")))?;
    if got as u64 != m.size {
        return Err(Error::format(
            path,
            format!(
                "member {name} inflates to {got} bytes but declares {}; the archive is corrupt",
                m.size
            ),
        ));
    }
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    if crc.sum() != m.crc {
        return Err(Error::format(
            path,
            format!("member {name}: CRC-32 mismatch; the archive is corrupt"),
        ));
    }
    Ok(out)
}

/// Opens a member as a stream of its uncompressed bytes (CRC-32 computed as they pass).
fn member_stream(path: &Path, len: u64, m: &Member, name: &str) -> Result<Box<CrcStream>> {
    let mut f = crate::io::open_regular(path)?;
    let start = member_start(&mut f, len, m, name, path)?;
    f.seek(SeekFrom::Start(start)).map_err(|e| Error::io(path, e))?;
    let raw = std::io::BufReader::with_capacity(1 << 16, f).take(m.compressed);
    let inner: Box<dyn Read + Send> = match m.method {
        0 => Box::new(raw),
        8 => Box::new(flate2::read::DeflateDecoder::new(raw)),
        other => {
            return Err(Error::format(
                path,
                format!("member {name} uses zip compression method {other}; only stored (0) and deflate (8) are supported, as numpy and scipy write"),
            ))
        }
    };
    Ok(Box::new(flate2::CrcReader::new(inner.take(m.size))))
}

type CrcStream = flate2::CrcReader<std::io::Take<Box<dyn Read + Send>>>;

/// The local header of member `m` checked; returns the offset of its data.
fn member_start(f: &mut File, len: u64, m: &Member, name: &str, path: &Path) -> Result<u64> {
    let io = |e| Error::io(path, e);
    let mut local = [0u8; 30];
    if m.offset.checked_add(30).is_none_or(|end| end > len) {
        return Err(Error::Truncated {
            path: path.into(),
            part: "data",
            declared: m.offset + 30,
            actual: len,
        });
    }
    f.seek(SeekFrom::Start(m.offset)).map_err(io)?;
    f.read_exact(&mut local).map_err(io)?;
    if le32(&local, 0) != 0x0403_4b50 {
        return Err(Error::format(
            path,
            format!("member {name}: bad local header; the archive is corrupt"),
        ));
    }
    let start = m.offset + 30 + le16(&local, 26) as u64 + le16(&local, 28) as u64;
    if start.checked_add(m.compressed).is_none_or(|end| end > len) {
        return Err(Error::Truncated {
            path: path.into(),
            part: "data",
            declared: start.saturating_add(m.compressed),
            actual: len,
        });
    }
    Ok(start)
}

/// The text of a 0-d numpy string array (`'|Sn'` bytes, as scipy writes `format.npy`, or
/// `'<Un'` UTF-32LE).
fn parse_unicode_scalar(bytes: &[u8], path: &Path) -> Result<String> {
    let bad = || {
        Error::format(path, "format.npy is not a 0-d string array ('csr', 'csc' or 'coo'); re-save with scipy.sparse.save_npz")
    };
    if bytes.len() < 10 || !bytes.starts_with(b"\x93NUMPY") {
        return Err(bad());
    }
    let (hlen, at) = match bytes[6] {
        1 => (le16(bytes, 8) as usize, 10),
        _ if bytes.len() >= 12 => (le32(bytes, 8) as usize, 12),
        _ => return Err(bad()),
    };
    let header = bytes.get(at..at + hlen).ok_or_else(bad)?;
    let header = String::from_utf8_lossy(header);
    if !header.contains("'shape': ()") {
        return Err(bad());
    }
    let body = &bytes[at + hlen..];
    if header.contains("'|S") {
        // scipy writes `np.array(b'csr')`: bytes.
        return Ok(String::from_utf8_lossy(body).trim_end_matches('\0').to_string());
    }
    if !header.contains("'<U") {
        return Err(bad());
    }
    let text: String = body
        .chunks_exact(4)
        .map(|c| le32(c, 0))
        .take_while(|&u| u != 0)
        .filter_map(char::from_u32)
        .collect();
    Ok(text)
}

/// An integer NPY array (indices, pointers, shape) as `i64`s; `what` names it in errors.
fn ints(d: NpyData, what: &str, path: &Path) -> Result<Vec<i64>> {
    Ok(match d {
        NpyData::I32(v) => v.into_iter().map(i64::from).collect(),
        NpyData::I64(v) => v,
        NpyData::U32(v) => v.into_iter().map(i64::from).collect(),
        NpyData::U8(v) => v.into_iter().map(i64::from).collect(),
        other => {
            return Err(Error::format(
                path,
                format!(
                    "{what} has dtype {}; scipy writes integer index arrays",
                    other.descr()
                ),
            ))
        }
    })
}

fn to_index(v: i64, bound: usize, what: &str, path: &Path) -> Result<usize> {
    if v < 0 || v as u64 >= bound as u64 {
        return Err(Error::format(
            path,
            format!("{what} {v} is outside 0..{bound}; the file is corrupt"),
        ));
    }
    Ok(v as usize)
}

/// Reads a sparse matrix written by `scipy.sparse.save_npz` (CSR, CSC or COO; samples as rows).
/// Duplicate entries are summed, as scipy does; the values are returned as stored (the fits
/// check them: finite and ≥ 0).
pub fn read_npz<T: Real>(path: &Path) -> Result<Csr<T>> {
    let mut f = crate::io::open_regular(path)?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let members = members(&mut f, len, path)?;
    let total: u64 = members.values().map(|m| m.size).sum();
    crate::linalg::check_file_memory(path, format!("its arrays ({total} bytes)"), total as f64 * 2.0)?;
    let mut get = |name: &str| -> Result<Vec<u8>> {
        let m = members.get(&format!("{name}.npy")).ok_or_else(|| {
            Error::format(
                path,
                format!("no {name}.npy in the archive; this is not a scipy sparse .npz (write it with scipy.sparse.save_npz)"),
            )
        })?;
        read_member(&mut f, len, m, name, path)
    };
    let format = parse_unicode_scalar(&get("format")?, path)?;
    let shape = ints(parse_npy(&get("shape")?, path)?.data, "shape", path)?;
    let [n, m] = shape[..] else {
        return Err(Error::format(
            path,
            format!(
                "shape has {} entries; only 2-d sparse matrices are supported",
                shape.len()
            ),
        ));
    };
    if n < 0 || m < 0 {
        return Err(Error::format(
            path,
            format!("shape ({n}, {m}) is negative; the file is corrupt"),
        ));
    }
    let (n, m) = (n as usize, m as usize);
    let values: Vec<T> = super::stored_to_real(&parse_npy(&get("data")?, path)?.data, m)?;
    match format.as_str() {
        "csr" | "csc" => {
            let (outer, inner) = if format == "csr" { (n, m) } else { (m, n) };
            let indptr = ints(parse_npy(&get("indptr")?, path)?.data, "indptr", path)?;
            let indices = ints(parse_npy(&get("indices")?, path)?.data, "indices", path)?;
            if indptr.len() != outer + 1 {
                return Err(Error::format(
                    path,
                    format!("indptr has {} entries, a {format} matrix of shape ({n}, {m}) needs {}; the file is corrupt", indptr.len(), outer + 1),
                ));
            }
            let indptr = indptr
                .iter()
                .map(|&p| to_index(p, values.len() + 1, "indptr entry", path))
                .collect::<Result<Vec<_>>>()?;
            let indices = indices
                .iter()
                .map(|&c| to_index(c, inner, "index", path).map(|c| c as u32))
                .collect::<Result<Vec<_>>>()?;
            let a = Csr::from_parts(outer, inner, indptr, indices, values).map_err(|e| Error::format(path, e.to_string()))?;
            if format == "csr" {
                Ok(a)
            } else {
                a.transpose()
            }
        }
        "coo" => {
            let rows = ints(parse_npy(&get("row")?, path)?.data, "row", path)?;
            let cols = ints(parse_npy(&get("col")?, path)?.data, "col", path)?;
            if rows.len() != values.len() || cols.len() != values.len() {
                return Err(Error::format(path, "row, col and data differ in length; the file is corrupt"));
            }
            let mut t = Vec::with_capacity(values.len());
            for ((&r, &c), &v) in rows.iter().zip(&cols).zip(&values) {
                t.push((to_index(r, n, "row", path)?, to_index(c, m, "col", path)?, v));
            }
            Csr::from_triplets(n, m, &t)
        }
        other => Err(Error::format(
            path,
            format!("sparse format '{other}' is not supported; convert it to CSR first (x.tocsr()) and save again"),
        )),
    }
}

/// The sparse format (`csr`, `csc`, `coo`, …) of a scipy `.npz`, from its `format` member alone.
pub fn npz_format(path: &Path) -> Result<String> {
    let mut f = crate::io::open_regular(path)?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let members = members(&mut f, len, path)?;
    let m = members.get("format.npy").ok_or_else(|| {
        Error::format(
            path,
            "no format.npy in the archive; this is not a scipy sparse .npz (write it with scipy.sparse.save_npz)",
        )
    })?;
    parse_unicode_scalar(&read_member(&mut f, len, m, "format", path)?, path)
}

/// A CSR `.npz` (`scipy.sparse.save_npz`) read block of rows by block of rows, front to back:
/// `indptr`, `indices` and `data` are three streams inflated as they are read, so memory is one
/// block whatever the file's size (online NMF over a file larger than memory). Reading rows
/// before the current position restarts the streams (a new pass); after the last row the
/// members' CRC-32 are checked. CSC and COO files cannot be streamed by rows: convert them
/// (`scipy.sparse.save_npz(f, x.tocsr())`).
pub struct NpzRows {
    path: std::path::PathBuf,
    len: u64,
    parts: [Member; 3],
    n: usize,
    m: usize,
    nnz: usize,
    at: Option<Streams>,
}

/// The three streams and the row they are at.
struct Streams {
    indptr: NpyStream<Box<CrcStream>>,
    indices: NpyStream<Box<CrcStream>>,
    data: NpyStream<Box<CrcStream>>,
    row: usize,
    ptr: usize,
}

impl std::fmt::Debug for NpzRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NpzRows({}, {} × {})", self.path.display(), self.n, self.m)
    }
}

impl NpzRows {
    /// Opens a CSR `.npz` and checks its members' headers (the arrays are not read).
    pub fn open(path: &Path) -> Result<Self> {
        let mut f = crate::io::open_regular(path)?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut members = members(&mut f, len, path)?;
        let mut take = |name: &str| {
            members.remove(&format!("{name}.npy")).ok_or_else(|| {
                Error::format(
                    path,
                    format!("no {name}.npy in the archive; this is not a scipy sparse .npz (write it with scipy.sparse.save_npz)"),
                )
            })
        };
        let (format, shape) = (take("format")?, take("shape")?);
        let format = parse_unicode_scalar(&read_member(&mut f, len, &format, "format", path)?, path)?;
        if format != "csr" {
            return Err(Error::format(
                path,
                format!("a '{format}' matrix cannot be streamed by rows; save it as CSR: scipy.sparse.save_npz(f, x.tocsr())"),
            ));
        }
        let shape = ints(
            parse_npy(&read_member(&mut f, len, &shape, "shape", path)?, path)?.data,
            "shape",
            path,
        )?;
        let (n, m) = match shape[..] {
            [n, m] if n > 0 && m > 0 => (n as usize, m as usize),
            _ => {
                return Err(Error::format(
                    path,
                    format!("shape {shape:?}: streaming needs a non-empty 2-d matrix"),
                ))
            }
        };
        super::csr::check_ncols(m)?;
        let parts = [take("indptr")?, take("indices")?, take("data")?];
        let mut rows = NpzRows {
            path: path.into(),
            len,
            parts,
            n,
            m,
            nnz: 0,
            at: None,
        };
        let s = rows.restart()?;
        let nnz = s.data.shape().iter().product::<usize>();
        let bad = |what: String| Err(Error::format(path, format!("{what}; the file is corrupt")));
        if s.indptr.shape() != [n + 1] {
            return bad(format!(
                "indptr has shape {:?}, a CSR matrix with {n} rows needs [{}]",
                s.indptr.shape(),
                n + 1
            ));
        }
        if s.indices.shape() != [nnz] || s.data.shape().len() != 1 {
            return bad(format!(
                "indices {:?} and data {:?} are not 1-d arrays of one length",
                s.indices.shape(),
                s.data.shape()
            ));
        }
        rows.nnz = nnz;
        rows.at = Some(s);
        Ok(rows)
    }

    /// The streams at row 0 (the first `indptr` entry read and checked).
    fn restart(&self) -> Result<Streams> {
        let open = |i: usize, name: &str| -> Result<NpyStream<Box<CrcStream>>> {
            let m = &self.parts[i];
            NpyStream::new(member_stream(&self.path, self.len, m, name)?, m.size, &self.path)
        };
        let mut indptr = open(0, "indptr")?;
        let first = ints(indptr.read(1)?, "indptr", &self.path)?;
        if first != [0] {
            return Err(Error::format(
                &self.path,
                "indptr does not start at 0; the file is corrupt",
            ));
        }
        Ok(Streams {
            indptr,
            indices: open(1, "indices")?,
            data: open(2, "data")?,
            row: 0,
            ptr: 0,
        })
    }

    /// Reads the next `len` rows of the streams; `keep` false only skips them.
    fn next_rows<T: Real>(&mut self, len: usize, keep: bool) -> Result<Option<Csr<T>>> {
        let (path, m, nnz, n) = (self.path.clone(), self.m, self.nnz, self.n);
        let Some(s) = self.at.as_mut() else {
            return Err(Error::format(
                &path,
                "the streams were lost after an error; open the file again",
            ));
        };
        let ptrs = ints(s.indptr.read(len)?, "indptr", &path)?;
        let mut indptr = Vec::with_capacity(len + 1);
        indptr.push(0usize);
        let mut prev = s.ptr;
        for &p in &ptrs {
            let p = to_index(p, nnz + 1, "indptr entry", &path)?;
            if p < prev {
                return Err(Error::format(&path, "indptr decreases; the file is corrupt"));
            }
            indptr.push(p - s.ptr);
            prev = p;
        }
        let count = prev - s.ptr;
        let indices = ints(s.indices.read(count)?, "indices", &path)?;
        let values = s.data.read(count)?;
        s.row += len;
        s.ptr = prev;
        if s.row == n {
            let ok = self
                .parts
                .iter()
                .zip([&s.indptr, &s.indices, &s.data])
                .all(|(m, st)| st.get_ref().crc().sum() == m.crc);
            if !ok {
                return Err(Error::format(&path, "CRC-32 mismatch; the archive is corrupt"));
            }
        }
        if !keep {
            return Ok(None);
        }
        let indices = indices
            .into_iter()
            .map(|c| to_index(c, m, "index", &path).map(|c| c as u32))
            .collect::<Result<Vec<_>>>()?;
        Csr::from_parts(len, m, indptr, indices, values.to_real())
            .map(Some)
            .map_err(|e| Error::format(&path, e.to_string()))
    }
}

impl<T: Real> RowSource<T> for NpzRows {
    fn n_rows(&self) -> usize {
        self.n
    }
    fn n_cols(&self) -> usize {
        self.m
    }
    fn read(&mut self, start: usize, len: usize) -> Result<RowBlock<T>> {
        super::rows::check_range(start, len, self.n)?;
        let row = self.at.as_ref().map_or(usize::MAX, |s| s.row);
        if start < row || self.at.is_none() {
            self.at = None;
            self.at = Some(self.restart()?);
        }
        // Skip to `start` a block at a time.
        while let Some(skip) = self.at.as_ref().map(|s| start - s.row).filter(|&k| k > 0) {
            let step = skip.min(4096);
            if let Err(e) = self.next_rows::<T>(step, false) {
                self.at = None;
                return Err(e);
            }
        }
        match self.next_rows(len, true) {
            Ok(Some(x)) => Ok(RowBlock::Sparse(x)),
            Ok(None) => Err(Error::format(&self.path, "no rows were read")),
            Err(e) => {
                self.at = None;
                Err(e)
            }
        }
    }
}

/// The NPY bytes of a 0-d `'|S3'` array holding the ASCII `s`, as scipy writes
/// `np.array(b'csr')`.
fn bytes_scalar(s: &str) -> Vec<u8> {
    let n = s.len();
    let dict = format!("{{'descr': '|S{n}', 'fortran_order': False, 'shape': (), }}");
    let hlen = dict.len() + 1;
    let header_len = hlen + 64 - (10 + hlen) % 64;
    let mut out = Vec::new();
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(10 + header_len - 1, b' ');
    out.push(b'\n');
    out.extend_from_slice(s.as_bytes());
    out
}

/// Writes `a` as scipy's `save_npz(path, csr_matrix, compressed=True)` does (deflated members
/// `indices`, `indptr`, `format`, `shape`, `data`; indices and pointers as int32 when they fit,
/// else int64), so that `scipy.sparse.load_npz` reads it back. The archive is written to a
/// temporary name and renamed into place.
pub fn write_npz<T: Real>(path: &Path, a: &Csr<T>) -> Result<()> {
    let (indptr, indices, data) = a.parts();
    let wide = a.nnz() > i32::MAX as usize || a.ncols() > i32::MAX as usize;
    let arrays: Vec<(&str, Vec<u8>)> = vec![
        (
            "indices",
            if wide {
                let v: Vec<i64> = indices.iter().map(|&c| c as i64).collect();
                npy_bytes(&[v.len()], NpyDataRef::I64(&v))
            } else {
                let v: Vec<i32> = indices.iter().map(|&c| c as i32).collect();
                npy_bytes(&[v.len()], NpyDataRef::I32(&v))
            },
        ),
        (
            "indptr",
            if wide {
                let v: Vec<i64> = indptr.iter().map(|&c| c as i64).collect();
                npy_bytes(&[v.len()], NpyDataRef::I64(&v))
            } else {
                let v: Vec<i32> = indptr.iter().map(|&c| c as i32).collect();
                npy_bytes(&[v.len()], NpyDataRef::I32(&v))
            },
        ),
        ("format", bytes_scalar("csr")),
        (
            "shape",
            npy_bytes(&[2], NpyDataRef::I64(&[a.nrows() as i64, a.ncols() as i64])),
        ),
        ("data", {
            if T::NAME == "f32" {
                let v: Vec<f32> = data.iter().map(|&x| x.to_f64() as f32).collect();
                npy_bytes(&[v.len()], NpyDataRef::F32(&v))
            } else {
                let v: Vec<f64> = data.iter().map(|&x| x.to_f64()).collect();
                npy_bytes(&[v.len()], NpyDataRef::F64(&v))
            }
        }),
    ];
    let mut out: Vec<u8> = Vec::new();
    let mut central: Vec<u8> = Vec::new();
    for (name, bytes) in &arrays {
        let fname = format!("{name}.npy");
        let mut crc = flate2::Crc::new();
        crc.update(bytes);
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).map_err(|e| Error::io(path, e))?;
        let comp = enc.finish().map_err(|e| Error::io(path, e))?;
        let offset = out.len();
        if comp.len() > u32::MAX as usize || bytes.len() > u32::MAX as usize || offset > u32::MAX as usize {
            return Err(Error::invalid(
                "out",
                path.display(),
                "the matrix is too large for a .npz without zip64; write fewer samples per file",
            ));
        }
        let fixed = |sig: u32, v: &mut Vec<u8>, central: bool| {
            v.extend_from_slice(&sig.to_le_bytes());
            if central {
                v.extend_from_slice(&20u16.to_le_bytes());
            }
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&8u16.to_le_bytes()); // deflate
            v.extend_from_slice(&0u16.to_le_bytes()); // time
            v.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
            v.extend_from_slice(&crc.sum().to_le_bytes());
            v.extend_from_slice(&(comp.len() as u32).to_le_bytes());
            v.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            v.extend_from_slice(&(fname.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        fixed(0x0403_4b50, &mut out, false);
        out.extend_from_slice(fname.as_bytes());
        out.extend_from_slice(&comp);
        fixed(0x0201_4b50, &mut central, true);
        central.extend_from_slice(&[0; 8]); // comment len, disk, internal attrs, external attrs (part)
        central.extend_from_slice(&[0; 2]);
        central.extend_from_slice(&(offset as u32).to_le_bytes());
        central.extend_from_slice(fname.as_bytes());
    }
    let cd_offset = out.len();
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(arrays.len() as u16).to_le_bytes());
    out.extend_from_slice(&(arrays.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&(cd_offset as u32).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    crate::io::write_atomic(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Csr<f64> {
        Csr::from_triplets(
            4,
            6,
            &[(0, 1, 1.5), (0, 5, 2.0), (2, 0, 3.0), (3, 3, 0.25), (3, 3, 0.25)],
        )
        .unwrap()
    }

    #[test]
    fn npz_round_trip() {
        let dir = crate::data::test_dir("npz");
        let p = dir.path().join("x.npz");
        let a = sample();
        write_npz(&p, &a).unwrap();
        let b: Csr<f64> = read_npz(&p).unwrap();
        assert_eq!(a, b);
        assert_eq!(b.row(3), (&[3u32][..], &[0.5][..]));
        let c: Csr<f32> = read_npz(&p).unwrap();
        assert_eq!(c.nnz(), 4);
    }

    #[test]
    fn reads_what_scipy_writes() {
        // scipy.sparse.save_npz of [[0,1.5,0,0,2],[0,0,0,0,0],[3,0,0,0.25,0]] as CSR (deflated),
        // CSC float32 (stored, compressed=False) and COO int64 (×4).
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/data/fixtures");
        let want = Csr::from_triplets(3, 5, &[(0, 1, 1.5), (0, 4, 2.0), (2, 0, 3.0), (2, 3, 0.25)]).unwrap();
        assert_eq!(read_npz::<f64>(&dir.join("scipy_csr.npz")).unwrap(), want);
        assert_eq!(read_npz::<f64>(&dir.join("scipy_csc_stored.npz")).unwrap(), want);
        let four = read_npz::<f64>(&dir.join("scipy_coo_int.npz")).unwrap();
        assert_eq!(four.row(0), (&[1u32, 4][..], &[4.0, 8.0][..]));
        assert_eq!(four.row(2), (&[0u32][..], &[12.0][..]));
    }

    #[test]
    fn bad_npz_files_are_one_line_errors() {
        let dir = crate::data::test_dir("npz-bad");
        let p = dir.path().join("x.npz");
        write_npz(&p, &sample()).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let check = |b: &[u8], want: &str| {
            let q = dir.path().join("bad.npz");
            std::fs::write(&q, b).unwrap();
            let e = read_npz::<f32>(&q).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains('\n'));
        };
        check(&bytes[..bytes.len() / 2], "not a .npz");
        check(b"hello", "not a .npz");
        // A flipped byte inside the first member's compressed data.
        let mut flipped = bytes.clone();
        flipped[45] ^= 0xff;
        let q = dir.path().join("flip.npz");
        std::fs::write(&q, &flipped).unwrap();
        assert!(read_npz::<f32>(&q).is_err());
    }

    /// A `n × m` CSR matrix with about a third of the entries stored, some rows empty.
    fn random_csr(n: usize, m: usize) -> Csr<f64> {
        let mut r = crate::Rng::new(9);
        let mut t = Vec::new();
        for i in 0..n {
            if i % 7 == 3 {
                continue;
            }
            for j in 0..m {
                if r.uniform() < 0.33 {
                    t.push((i, j, r.uniform() + 0.01));
                }
            }
        }
        Csr::from_triplets(n, m, &t).unwrap()
    }

    #[test]
    fn rows_stream_in_blocks_and_match_the_whole_file() {
        let dir = crate::data::test_dir("npz-rows");
        let p = dir.path().join("x.npz");
        let a = random_csr(300, 40);
        write_npz(&p, &a).unwrap();
        let mut src = NpzRows::open(&p).unwrap();
        assert_eq!(
            (RowSource::<f64>::n_rows(&src), RowSource::<f64>::n_cols(&src)),
            (300, 40)
        );
        let block = |src: &mut NpzRows, start: usize, len: usize| match src.read(start, len).unwrap() {
            RowBlock::Sparse(x) => x,
            RowBlock::Dense(_) => panic!("a sparse file gives sparse blocks"),
        };
        let want =
            |start: usize, len: usize| a.select_rows(&(start..start + len).collect::<Vec<_>>()).unwrap();
        // Two passes in blocks of 64 (the last one short), then a jump ahead and one back.
        for _ in 0..2 {
            for start in (0..300).step_by(64) {
                let len = 64.min(300 - start);
                assert_eq!(block(&mut src, start, len), want(start, len), "rows {start}..");
            }
        }
        assert_eq!(block(&mut src, 250, 20), want(250, 20));
        assert_eq!(block(&mut src, 10, 5), want(10, 5));
        assert!(src.read(299, 2).map(|_: RowBlock<f64>| ()).is_err());
        // In f32 too.
        let mut s32 = NpzRows::open(&p).unwrap();
        match RowSource::<f32>::read(&mut s32, 0, 300).unwrap() {
            RowBlock::Sparse(x) => assert_eq!(x, a.cast::<f32>()),
            RowBlock::Dense(_) => panic!("sparse expected"),
        }
    }

    #[test]
    fn streamed_rows_refuse_csc_and_corrupt_members() {
        let dir = crate::data::test_dir("npz-rows-bad");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/data/fixtures");
        let e = NpzRows::open(&fixtures.join("scipy_csc_stored.npz"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'csc'") && e.contains("tocsr()"), "{e}");
        // A stored (uncompressed) archive with one byte of the data member changed: the CRC
        // check after the last row names the corruption.
        let p = dir.path().join("x.npz");
        write_npz(&p, &random_csr(50, 10)).unwrap();
        let mut src = NpzRows::open(&p).unwrap();
        assert!(RowSource::<f64>::read(&mut src, 0, 50).is_ok());
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        let q = dir.path().join("bad.npz");
        std::fs::write(&q, &bytes).unwrap();
        let e = match NpzRows::open(&q) {
            Err(e) => e.to_string(),
            Ok(mut s) => RowSource::<f64>::read(&mut s, 0, 50)
                .map(|_| ())
                .unwrap_err()
                .to_string(),
        };
        assert!(
            !e.contains('\n') && (e.contains("corrupt") || e.contains("truncated")),
            "{e}"
        );
    }
}
