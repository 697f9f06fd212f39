//! NPY files (numpy's `.npy` format, versions 1.0, 2.0 and 3.0), C order only.
//!
//! Reading accepts the little-endian dtypes `<f4 <f8 |u1 <i4 <i8 <u4`; the declared size is checked
//! against the real file length before anything is allocated, so a forged header cannot cause a
//! huge allocation. Writing produces exactly the bytes `numpy.save` writes (version 1.0, header
//! padded so the data starts at a multiple of 64 bytes); putting them on disk is [`crate::io`]'s job.

use std::io::{BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};
use crate::real::Real;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy's `ARRAY_ALIGN`: the data starts at a multiple of this.
const ALIGN: usize = 64;
/// numpy's `GROWTH_AXIS_MAX_DIGITS`: spare header room for growing the first axis in place.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;
const SUPPORTED: &str = "<f4, <f8, |u1, <i4, <i8, <u4";

/// The elements of an NPY array, by dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// `<f4`
    F32(Vec<f32>),
    /// `<f8`
    F64(Vec<f64>),
    /// `|u1`
    U8(Vec<u8>),
    /// `<i4`
    I32(Vec<i32>),
    /// `<i8`
    I64(Vec<i64>),
    /// `<u4`
    U32(Vec<u32>),
}

/// Borrowed elements to write with [`npy_bytes`].
#[derive(Clone, Copy, Debug)]
pub enum NpyDataRef<'a> {
    /// `<f4`
    F32(&'a [f32]),
    /// `<f8`
    F64(&'a [f64]),
    /// `|u1`
    U8(&'a [u8]),
    /// `<i4`
    I32(&'a [i32]),
    /// `<i8`
    I64(&'a [i64]),
    /// `<u4`
    U32(&'a [u32]),
}

/// A C-order array read from an NPY file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The shape; empty for a 0-d (scalar) array.
    pub shape: Vec<usize>,
    /// The elements in C (row-major) order.
    pub data: NpyData,
}

impl NpyData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::U8(v) => v.len(),
            NpyData::I32(v) => v.len(),
            NpyData::I64(v) => v.len(),
            NpyData::U32(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The numpy dtype string (`<f4`, `|u1`, …).
    pub fn descr(&self) -> &'static str {
        self.as_ref().descr()
    }

    /// A borrowed view, for writing.
    pub fn as_ref(&self) -> NpyDataRef<'_> {
        match self {
            NpyData::F32(v) => NpyDataRef::F32(v),
            NpyData::F64(v) => NpyDataRef::F64(v),
            NpyData::U8(v) => NpyDataRef::U8(v),
            NpyData::I32(v) => NpyDataRef::I32(v),
            NpyData::I64(v) => NpyDataRef::I64(v),
            NpyData::U32(v) => NpyDataRef::U32(v),
        }
    }

    /// The elements as `f64` (64-bit integers beyond 2^53 are rounded).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.map(|x| x)
    }

    /// The elements converted to `T` (rounded when `T` is narrower).
    pub fn to_real<T: Real>(&self) -> Vec<T> {
        self.map(T::from_f64)
    }

    fn map<U>(&self, f: impl Fn(f64) -> U) -> Vec<U> {
        match self {
            NpyData::F32(v) => v.iter().map(|&x| f(x as f64)).collect(),
            NpyData::F64(v) => v.iter().map(|&x| f(x)).collect(),
            NpyData::U8(v) => v.iter().map(|&x| f(x as f64)).collect(),
            NpyData::I32(v) => v.iter().map(|&x| f(x as f64)).collect(),
            NpyData::I64(v) => v.iter().map(|&x| f(x as f64)).collect(),
            NpyData::U32(v) => v.iter().map(|&x| f(x as f64)).collect(),
        }
    }
}

impl NpyDataRef<'_> {
    /// The numpy dtype string.
    pub fn descr(&self) -> &'static str {
        match self {
            NpyDataRef::F32(_) => "<f4",
            NpyDataRef::F64(_) => "<f8",
            NpyDataRef::U8(_) => "|u1",
            NpyDataRef::I32(_) => "<i4",
            NpyDataRef::I64(_) => "<i8",
            NpyDataRef::U32(_) => "<u4",
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyDataRef::F32(v) => v.len(),
            NpyDataRef::F64(v) => v.len(),
            NpyDataRef::U8(v) => v.len(),
            NpyDataRef::I32(v) => v.len(),
            NpyDataRef::I64(v) => v.len(),
            NpyDataRef::U32(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write_le(&self, out: &mut Vec<u8>) {
        match self {
            NpyDataRef::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyDataRef::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyDataRef::U8(v) => out.extend_from_slice(v),
            NpyDataRef::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyDataRef::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyDataRef::U32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
    }
}

impl NpyArray {
    /// Number of elements (the product of the shape).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements as `f64`, in C order.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.data.to_f64_vec()
    }

    /// The elements converted to `T`, in C order.
    pub fn to_real<T: Real>(&self) -> Vec<T> {
        self.data.to_real()
    }

    /// The elements as class labels: integers, or floats holding integers, all in `0..=u32::MAX`.
    /// `path` only names the file in the error.
    pub fn to_labels(&self, path: &Path) -> Result<Vec<u32>> {
        let bad = |i: usize, v: String| {
            Error::format(
                path,
                format!(
                    "label {i} is {v}, not a non-negative integer; save labels as integers \
                     0, 1, 2, … (e.g. np.save(path, y.astype('int64')))"
                ),
            )
        };
        // A whole number beyond u32: a class number, just far too large.
        let too_large = |i: usize, v: String| {
            Error::format(
                path,
                format!(
                    "label {i} is {v}, too large a class number: labels number the classes 0, 1, 2, … \
                     (at most 10,000 classes); renumber them (e.g. np.unique(y, return_inverse=True)[1])"
                ),
            )
        };
        let from_i64 = |i: usize, x: i64| {
            u32::try_from(x).map_err(|_| {
                if x < 0 {
                    bad(i, x.to_string())
                } else {
                    too_large(i, x.to_string())
                }
            })
        };
        let from_f64 = |i: usize, x: f64| {
            if x.is_finite() && x >= 0.0 && x <= u32::MAX as f64 && x.fract() == 0.0 {
                Ok(x as u32)
            } else if x.is_finite() && x > 0.0 && x.fract() == 0.0 {
                Err(too_large(i, format!("{x:e}")))
            } else {
                Err(bad(i, crate::real::short_number(x)))
            }
        };
        match &self.data {
            NpyData::U8(v) => Ok(v.iter().map(|&x| x as u32).collect()),
            NpyData::U32(v) => Ok(v.clone()),
            NpyData::I32(v) => v
                .iter()
                .enumerate()
                .map(|(i, &x)| from_i64(i, x as i64))
                .collect(),
            NpyData::I64(v) => v.iter().enumerate().map(|(i, &x)| from_i64(i, x)).collect(),
            NpyData::F32(v) => v
                .iter()
                .enumerate()
                .map(|(i, &x)| from_f64(i, x as f64))
                .collect(),
            NpyData::F64(v) => v.iter().enumerate().map(|(i, &x)| from_f64(i, x)).collect(),
        }
    }
}

/// Reads an NPY file. The data size the header declares is checked against the file length
/// before anything is allocated.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let file = crate::io::open_regular(path)?;
    let total = file.metadata().map_err(|e| Error::io(path, e))?.len();
    read_from(&mut BufReader::new(file), total, path)
}

/// Parses NPY bytes (`path_for_errors` only names the source in errors).
pub fn parse_npy(bytes: &[u8], path_for_errors: &Path) -> Result<NpyArray> {
    let mut r = bytes;
    read_from(&mut r, bytes.len() as u64, path_for_errors)
}

/// The header of an NPY file, for readers that stream its rows ([`crate::data::rows`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyInfo {
    /// The shape.
    pub shape: Vec<usize>,
    /// Byte offset of the first element.
    pub data_offset: u64,
    dtype: Dtype,
}

impl NpyInfo {
    /// The numpy dtype string of the stored elements (`<f8`, `|u1`, …).
    pub fn descr(&self) -> &'static str {
        match self.dtype {
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
            Dtype::U8 => "|u1",
            Dtype::I32 => "<i4",
            Dtype::I64 => "<i8",
            Dtype::U32 => "<u4",
        }
    }

    /// Bytes per element.
    pub fn itemsize(&self) -> usize {
        self.dtype.itemsize() as usize
    }

    /// Converts little-endian elements of this file's dtype (`bytes.len() = out.len() · itemsize`)
    /// to `T` (rounded when `T` is narrower).
    pub fn decode_into<T: Real>(&self, bytes: &[u8], out: &mut [T]) {
        fn go<T: Real, const N: usize>(bytes: &[u8], out: &mut [T], f: impl Fn([u8; N]) -> f64) {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(N)) {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                *o = T::from_f64(f(a));
            }
        }
        match self.dtype {
            Dtype::F32 => go::<T, 4>(bytes, out, |a| f32::from_le_bytes(a) as f64),
            Dtype::F64 => go::<T, 8>(bytes, out, f64::from_le_bytes),
            Dtype::U8 => go::<T, 1>(bytes, out, |a| a[0] as f64),
            Dtype::I32 => go::<T, 4>(bytes, out, |a| i32::from_le_bytes(a) as f64),
            Dtype::I64 => go::<T, 8>(bytes, out, |a| i64::from_le_bytes(a) as f64),
            Dtype::U32 => go::<T, 4>(bytes, out, |a| u32::from_le_bytes(a) as f64),
        }
    }
}

/// Reads and checks only the header of an NPY file (the data size it declares must match the
/// file length), without reading the data.
pub fn read_npy_info(path: &Path) -> Result<NpyInfo> {
    let file = crate::io::open_regular(path)?;
    let total = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let (header, count) = read_head(&mut BufReader::new(file), total, path)?;
    // The declared size matches the file length exactly (checked): the data end the file.
    let data_offset = total - count as u64 * header.dtype.itemsize();
    Ok(NpyInfo {
        shape: header.shape,
        data_offset,
        dtype: header.dtype,
    })
}

/// The supported dtypes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    F32,
    F64,
    U8,
    I32,
    I64,
    U32,
}

impl Dtype {
    fn parse(descr: &str) -> Option<Self> {
        Some(match descr {
            "<f4" => Dtype::F32,
            "<f8" => Dtype::F64,
            "|u1" => Dtype::U8,
            "<i4" => Dtype::I32,
            "<i8" => Dtype::I64,
            "<u4" => Dtype::U32,
            _ => return None,
        })
    }

    fn itemsize(self) -> u64 {
        match self {
            Dtype::U8 => 1,
            Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
            Dtype::F64 | Dtype::I64 => 8,
        }
    }
}

struct Header {
    dtype: Dtype,
    shape: Vec<usize>,
}

fn read_from<R: Read>(r: &mut R, total: u64, path: &Path) -> Result<NpyArray> {
    let io = |e| Error::io(path, e);
    let (header, count) = read_head(r, total, path)?;
    let data = read_data(r, header.dtype, count).map_err(io)?;
    Ok(NpyArray {
        shape: header.shape,
        data,
    })
}

/// An NPY array read front to back from a stream (an inflating zip member): the header first,
/// then the elements in C order, a chunk at a time (memory: one chunk).
pub(crate) struct NpyStream<R> {
    r: R,
    dtype: Dtype,
    shape: Vec<usize>,
    left: usize,
    path: std::path::PathBuf,
}

impl<R: Read> NpyStream<R> {
    /// Reads and checks the header; `total` is the stream's declared length.
    pub(crate) fn new(mut r: R, total: u64, path: &Path) -> Result<Self> {
        let (header, count) = read_head(&mut r, total, path)?;
        Ok(NpyStream {
            r,
            dtype: header.dtype,
            shape: header.shape,
            left: count,
            path: path.into(),
        })
    }

    /// The array's shape.
    pub(crate) fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The underlying reader.
    pub(crate) fn get_ref(&self) -> &R {
        &self.r
    }

    /// The next `count` elements (at most those left).
    pub(crate) fn read(&mut self, count: usize) -> Result<NpyData> {
        let count = count.min(self.left);
        self.left -= count;
        read_data(&mut self.r, self.dtype, count)
            .map_err(|e| Error::format(&self.path, format!("{e}; the archive is corrupt or truncated")))
    }
}

/// Reads `count` elements of `dtype`.
fn read_data<R: Read>(r: &mut R, dtype: Dtype, count: usize) -> std::io::Result<NpyData> {
    Ok(match dtype {
        Dtype::F32 => NpyData::F32(read_elems(r, count, f32::from_le_bytes)?),
        Dtype::F64 => NpyData::F64(read_elems(r, count, f64::from_le_bytes)?),
        Dtype::U8 => NpyData::U8(read_elems(r, count, u8::from_le_bytes)?),
        Dtype::I32 => NpyData::I32(read_elems(r, count, i32::from_le_bytes)?),
        Dtype::I64 => NpyData::I64(read_elems(r, count, i64::from_le_bytes)?),
        Dtype::U32 => NpyData::U32(read_elems(r, count, u32::from_le_bytes)?),
    })
}

/// The shape of the array in an NPY file, from its header alone (the declared size is
/// checked against the file length).
pub fn npy_shape(path: &Path) -> Result<Vec<usize>> {
    let file = crate::io::open_regular(path)?;
    let total = file.metadata().map_err(|e| Error::io(path, e))?.len();
    Ok(read_head(&mut BufReader::new(file), total, path)?.0.shape)
}

/// The rows `rows` (along the first axis) of an NPY file of at least 2 dimensions, read by
/// byte offset (the rest of the file is never read): what one process of a distributed fit
/// loads ([`crate::dist`]). The result keeps the trailing dimensions: `[rows.len(), …]`.
pub fn read_npy_rows(path: &Path, rows: std::ops::Range<usize>) -> Result<NpyArray> {
    use std::io::{Seek, SeekFrom};
    let io = |e| Error::io(path, e);
    let file = crate::io::open_regular(path)?;
    let total = file.metadata().map_err(io)?.len();
    let mut r = BufReader::new(file);
    let (header, _) = read_head(&mut r, total, path)?;
    let (n, m) = match header.shape.as_slice() {
        [n, rest @ ..] if !rest.is_empty() => (*n, rest.iter().product::<usize>()),
        _ => {
            return Err(Error::format(
                path,
                format!(
                    "shape {:?}: rows are read from an array of at least 2 dimensions (samples first); save X as n_samples × n_features",
                    header.shape
                ),
            ))
        }
    };
    if rows.start > rows.end || rows.end > n {
        return Err(Error::invalid(
            "rows",
            format!("{}..{}", rows.start, rows.end),
            format!("the file has {n} rows; read a range inside 0..{n}"),
        ));
    }
    let data_start = r.stream_position().map_err(io)?;
    let item = header.dtype.itemsize();
    r.seek(SeekFrom::Start(data_start + (rows.start * m) as u64 * item))
        .map_err(io)?;
    let data = read_data(&mut r, header.dtype, rows.len() * m).map_err(io)?;
    let mut shape = header.shape;
    shape[0] = rows.len();
    Ok(NpyArray { shape, data })
}

/// Reads and checks the magic, version and header; returns the header and the element count
/// (checked against `total`, the file length). The reader is left at the data.
fn read_head<R: Read>(r: &mut R, total: u64, path: &Path) -> Result<(Header, usize)> {
    let io = |e| Error::io(path, e);
    let not_npy = || {
        Error::format(
            path,
            "not an NPY file (it does not start with \\x93NUMPY); save arrays with numpy.save",
        )
    };
    // Magic and version.
    if total < 8 {
        let mut head = vec![0u8; total as usize];
        r.read_exact(&mut head).map_err(io)?;
        if head.len() < 6 || head[..6] != MAGIC[..] {
            return Err(not_npy());
        }
        return Err(Error::Truncated {
            part: "header",
            path: path.into(),
            declared: 10,
            actual: total,
        });
    }
    let mut head = [0u8; 8];
    r.read_exact(&mut head).map_err(io)?;
    if head[..6] != MAGIC[..] {
        return Err(not_npy());
    }
    let (major, minor) = (head[6], head[7]);
    let len_size: u64 = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(Error::format(
                path,
                format!(
                    "unsupported NPY format version {major}.{minor} (partlearn reads 1.0, 2.0 and \
                     3.0); re-save the array with numpy.save"
                ),
            ))
        }
    };
    let prefix = 8 + len_size;
    if total < prefix {
        return Err(Error::Truncated {
            part: "header",
            path: path.into(),
            declared: prefix,
            actual: total,
        });
    }
    let mut len_bytes = [0u8; 4];
    r.read_exact(&mut len_bytes[..len_size as usize]).map_err(io)?;
    let header_len = u32::from_le_bytes(len_bytes) as u64;
    let data_start = prefix + header_len;
    if total < data_start {
        return Err(Error::Truncated {
            part: "header",
            path: path.into(),
            declared: data_start,
            actual: total,
        });
    }
    // header_len ≤ total: bounded by the real file size.
    let mut header = vec![0u8; header_len as usize];
    r.read_exact(&mut header).map_err(io)?;
    let header = parse_header(&header).map_err(|reason| {
        Error::format(
            path,
            format!("invalid NPY header: {reason}; re-save the array with numpy.save"),
        )
    })?;
    // Declared size, checked against the file before allocating.
    let count = header.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let nbytes = count.and_then(|c| (c as u64).checked_mul(header.dtype.itemsize()));
    let (Some(count), Some(nbytes)) = (count, nbytes) else {
        return Err(Error::format(
            path,
            format!(
                "the header declares shape {:?}, more elements than can be addressed; the file is \
                 corrupt, re-export it",
                header.shape
            ),
        ));
    };
    let available = total - data_start;
    if available < nbytes {
        return Err(Error::Truncated {
            part: "data",
            path: path.into(),
            declared: nbytes,
            actual: available,
        });
    }
    if available > nbytes {
        return Err(Error::format(
            path,
            format!(
                "{} unexpected bytes after the {nbytes} bytes of data that shape {:?} declares; \
                 the file is corrupt or not a single array, re-save it with numpy.save",
                available - nbytes,
                header.shape
            ),
        ));
    }
    Ok((header, count))
}

/// Reads `count` little-endian elements of `N` bytes each, through a small buffer.
fn read_elems<R: Read, E, const N: usize>(
    r: &mut R,
    count: usize,
    conv: fn([u8; N]) -> E,
) -> std::io::Result<Vec<E>> {
    let mut out = Vec::with_capacity(count);
    let mut buf = vec![0u8; (1 << 16) / N * N];
    let mut left = count;
    while left > 0 {
        let k = left.min(buf.len() / N);
        let chunk = &mut buf[..k * N];
        r.read_exact(chunk)?;
        out.extend(chunk.chunks_exact(N).map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            conv(a)
        }));
        left -= k;
    }
    Ok(out)
}

/// Parses the header dict, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
fn parse_header(bytes: &[u8]) -> std::result::Result<Header, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the header is not ASCII text".to_string())?;
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect(b'{')?;
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let dup = match key.as_str() {
            "descr" => {
                if p.peek() == Some(b'[') {
                    return Err("structured dtypes are not supported; save a plain numeric array".into());
                }
                descr.replace(p.string()?).is_some()
            }
            "fortran_order" => fortran.replace(p.boolean()?).is_some(),
            "shape" => shape.replace(p.shape()?).is_some(),
            other => return Err(format!("unexpected key '{other}'")),
        };
        if dup {
            return Err(format!("key '{key}' appears twice"));
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    if p.s[p.i..].iter().any(|c| !c.is_ascii_whitespace()) {
        return Err("unexpected text after the header dict".into());
    }
    let descr = descr.ok_or("the key 'descr' is missing")?;
    let fortran = fortran.ok_or("the key 'fortran_order' is missing")?;
    let shape = shape.ok_or("the key 'shape' is missing")?;
    let Some(dtype) = Dtype::parse(&descr) else {
        return Err(format!(
            "dtype '{descr}' is not supported (supported: {SUPPORTED}); convert it first, e.g. \
             np.save(path, a.astype('<f4'))"
        ));
    };
    if fortran {
        return Err(
            "the array is in Fortran order (fortran_order: True); save it in C order with \
             np.save(path, np.ascontiguousarray(a))"
                .into(),
        );
    }
    Ok(Header { dtype, shape })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected '{}' at byte {} of the header dict",
                c as char, self.i
            ))
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let q = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    "expected a quoted string at byte {} of the header dict",
                    self.i
                ))
            }
        };
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == q {
                let s = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                return Ok(s);
            }
            self.i += 1;
        }
        Err("unterminated string in the header dict".into())
    }

    fn word(&mut self) -> &str {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or("")
    }

    fn boolean(&mut self) -> std::result::Result<bool, String> {
        let start = self.i;
        match self.word() {
            "True" => Ok(true),
            "False" => Ok(false),
            _ => {
                // Quote what stands there (e.g. 'yes'), up to the next ',' or '}'.
                let rest = &self.s[start..];
                let end = rest
                    .iter()
                    .position(|&c| c == b',' || c == b'}')
                    .unwrap_or(rest.len());
                let shown = String::from_utf8_lossy(&rest[..end.min(40)]);
                Err(format!(
                    "fortran_order must be True or False, found {}",
                    shown.trim()
                ))
            }
        }
    }

    fn shape(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            // The entry is everything up to the next ',' or ')', so a bad one ('-5', '2.5') is
            // quoted whole rather than as the digits a word would stop before.
            let start = self.i;
            while self.peek().is_some_and(|c| c != b',' && c != b')') {
                self.i += 1;
            }
            let entry = String::from_utf8_lossy(&self.s[start..self.i]);
            let w = entry.trim();
            // Python 2 wrote longs as `3L`.
            let digits = w.strip_suffix('L').unwrap_or(w);
            let d = digits.parse::<usize>().map_err(|_| {
                let shown: String = w.chars().take(40).collect();
                let more = if shown.len() < w.len() { "…" } else { "" };
                format!("shape entry '{shown}{more}' is not a non-negative integer that fits in memory")
            })?;
            dims.push(d);
            if !self.eat(b',') {
                self.ws();
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

/// The bytes of an NPY file (version 1.0, or 2.0 if the header does not fit) holding `data` with
/// `shape` in C order, exactly as `numpy.save` writes them.
///
/// # Panics
/// If the product of `shape` differs from the number of elements (a caller bug, not user data).
pub fn npy_bytes(shape: &[usize], data: NpyDataRef<'_>) -> Vec<u8> {
    let count: usize = shape.iter().product();
    assert_eq!(
        count,
        data.len(),
        "npy_bytes: shape {shape:?} does not match {} elements",
        data.len()
    );
    let mut out = npy_header(shape, data.descr());
    out.reserve(data.len() * 8);
    data.write_le(&mut out);
    out
}

/// The header bytes [`npy_bytes`] writes for `shape` and dtype `descr` (e.g. `"<f4"`): a
/// streaming writer appends the elements in C order after them.
pub fn npy_header(shape: &[usize], descr: &str) -> Vec<u8> {
    let shape_repr = match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_repr}, }}");
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        dict.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    // numpy: hlen = len(header) + 1 (the '\n'); pad = ALIGN - (prefix + hlen) % ALIGN (never 0).
    let hlen = dict.len() + 1;
    let padded = |prefix: usize| hlen + ALIGN - (prefix + hlen) % ALIGN;
    let (version, len_size) = if padded(MAGIC.len() + 4) <= u16::MAX as usize {
        (1u8, 2usize)
    } else {
        (2u8, 4usize)
    };
    let prefix = MAGIC.len() + 2 + len_size;
    let header_len = padded(prefix);
    let pad = header_len - hlen;
    let mut out = Vec::with_capacity(prefix + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if len_size == 2 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + pad, b' ');
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests;
