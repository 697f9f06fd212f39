//! IDX files (the MNIST format), gzip-compressed or raw.
//!
//! Layout: two zero bytes, a type byte (only `0x08`, unsigned byte, is supported), the number of
//! dimensions, one big-endian `u32` per dimension, then the data in C order. The declared size is
//! checked before allocating: against the memory available (what the caller will hold per
//! value included) before anything is read or inflated, then against the file length for raw
//! files, and by reading at most one byte more than declared for gzip files (all members of a
//! multi-member gzip file, RFC 1952), so a forged header or a decompression bomb never causes a
//! huge allocation. A caller that needs only the first rows reads ([`read_idx_rows`]) and inflates
//! only those.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::Dataset;
use crate::error::{Error, Result};
use crate::real::Real;

/// An unsigned-byte IDX array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, as declared in the header.
    pub shape: Vec<usize>,
    /// The elements in C (row-major) order.
    pub data: Vec<u8>,
}

/// Reads an IDX file, gzip-compressed (detected by its magic bytes) or raw.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    Ok(read_idx_rows(path, None, 0)?.0)
}

/// Reads the first `rows` rows (entries of the first dimension) of an IDX file, or all of them
/// (`None`, or more rows than declared), and the number of rows the file declares. The returned
/// shape is the declared one with its first dimension cut to the rows read. `extra_bytes` is what the caller will allocate per value
/// read (e.g. 4 for an `f32` copy): the declared size is checked against the memory available
/// before anything is read. With fewer rows than declared, only those rows are inflated; a raw
/// file's length is still checked against the whole declared size.
pub fn read_idx_rows(path: &Path, rows: Option<usize>, extra_bytes: usize) -> Result<(IdxArray, usize)> {
    let io = |e| Error::io(path, e);
    let mut file = crate::io::open_regular(path)?;
    let total = file.metadata().map_err(io)?.len();
    let mut magic = [0u8; 2];
    if total >= 2 {
        file.read_exact(&mut magic).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
    }
    let limit = Limit { rows, extra_bytes };
    if magic == [0x1f, 0x8b] {
        read_from(MultiGzDecoder::new(BufReader::new(file)), None, limit, path)
    } else {
        read_from(BufReader::new(file), Some(total), limit, path)
    }
}

/// What [`read_from`] reads: at most `rows` rows, for a caller holding `extra_bytes` per value.
#[derive(Clone, Copy)]
struct Limit {
    rows: Option<usize>,
    extra_bytes: usize,
}

/// Reads the IDX stream `r`; `raw_len` is the file length for raw files (`None` for gzip).
fn read_from<R: Read>(
    mut r: R,
    raw_len: Option<u64>,
    limit: Limit,
    path: &Path,
) -> Result<(IdxArray, usize)> {
    let gz = raw_len.is_none();
    // Errors while decoding: a gzip stream that ends early is a truncated file.
    let stream_err = |e: std::io::Error, what: &str| -> Error {
        if gz && e.kind() != std::io::ErrorKind::UnexpectedEof {
            Error::format(
                path,
                format!("corrupt gzip data in the {what} ({e}); re-download the file"),
            )
        } else if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::format(
                path,
                format!("the file ends inside the IDX {what}; re-download it"),
            )
        } else {
            Error::io(path, e)
        }
    };
    let mut head = [0u8; 4];
    r.read_exact(&mut head).map_err(|e| stream_err(e, "header"))?;
    if head[0] != 0 || head[1] != 0 {
        return Err(Error::format(
            path,
            format!(
                "not an IDX file (it starts with {:02x} {:02x}, IDX files start with 00 00); give an \
                 MNIST-style file such as train-images-idx3-ubyte.gz, or a .npy or .csv file",
                head[0], head[1]
            ),
        ));
    }
    let type_name = match head[2] {
        0x08 => None,
        0x09 => Some("signed byte"),
        0x0B => Some("int16"),
        0x0C => Some("int32"),
        0x0D => Some("float32"),
        0x0E => Some("float64"),
        other => {
            return Err(Error::format(
                path,
                format!("not an IDX file (unknown type byte 0x{other:02x}); give an MNIST-style IDX file, or a .npy or .csv file"),
            ))
        }
    };
    if let Some(name) = type_name {
        return Err(Error::format(
            path,
            format!(
                "IDX data type 0x{:02x} ({name}) is not supported, only unsigned bytes (0x08); \
                 convert the data to .npy",
                head[2]
            ),
        ));
    }
    let ndim = head[3] as usize;
    if ndim == 0 {
        return Err(Error::format(
            path,
            "the IDX header declares 0 dimensions; re-download or re-export the file",
        ));
    }
    let mut dims_bytes = vec![0u8; 4 * ndim];
    r.read_exact(&mut dims_bytes)
        .map_err(|e| stream_err(e, "header"))?;
    let mut shape: Vec<usize> = dims_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    let Some(count) = count.filter(|&c| usize::try_from(c).is_ok()) else {
        return Err(Error::format(
            path,
            format!("the IDX header declares dimensions {shape:?}, more bytes than can be addressed; the file is corrupt, re-download it"),
        ));
    };
    // The rows to read, and their bytes (`count` when all are read).
    let rows = limit.rows.map_or(shape[0], |k| k.min(shape[0]));
    let row_len: u64 = shape[1..].iter().map(|&d| d as u64).product();
    let wanted = row_len * rows as u64;
    crate::linalg::check_file_memory(
        path,
        format_args!("{rows} rows of the IDX dimensions {shape:?}"),
        wanted as f64 * (1 + limit.extra_bytes) as f64,
    )?;
    let mut data: Vec<u8> = Vec::new();
    data.try_reserve_exact(wanted as usize + usize::from(wanted == count))
        .map_err(|e| {
            Error::format(
                path,
                format!("cannot allocate {wanted} bytes ({e}); free memory or read fewer samples"),
            )
        })?;
    let header_len = 4 + 4 * ndim as u64;
    match raw_len {
        Some(total) => {
            let available = total.saturating_sub(header_len);
            if available < count {
                return Err(Error::Truncated {
                    part: "data",
                    path: path.into(),
                    declared: count,
                    actual: available,
                });
            }
            if available > count {
                return Err(trailing(path, Some(available - count), &shape));
            }
            data.resize(wanted as usize, 0);
            r.read_exact(&mut data).map_err(|e| Error::io(path, e))?;
        }
        None => {
            // All declared bytes and one more (to find trailing data), or only the rows wanted.
            let probe = if wanted == count { 1 } else { 0 };
            let res = r.take(wanted.saturating_add(probe)).read_to_end(&mut data);
            match res {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
                Err(e) => return Err(stream_err(e, "data")),
            }
            let got = data.len() as u64;
            if got < wanted {
                return Err(Error::Truncated {
                    part: "data",
                    path: path.into(),
                    declared: count,
                    actual: got,
                });
            }
            if got > wanted {
                return Err(trailing(path, None, &shape));
            }
        }
    }
    let declared = std::mem::replace(&mut shape[0], rows);
    Ok((IdxArray { shape, data }, declared))
}

/// Extra bytes after the declared data (`extra` is `None` when only "some" is known).
fn trailing(path: &Path, extra: Option<u64>, shape: &[usize]) -> Error {
    let count = extra.map(|e| format!("{e} ")).unwrap_or_default();
    Error::format(
        path,
        format!(
            "{count}unexpected bytes after the data that dimensions {shape:?} declare; the file is corrupt, re-download it"
        ),
    )
}

/// Reads an IDX image file (`n × height × width` bytes) as an `n × (height·width)` data set with
/// pixels scaled to [0, 1] (divided by 255) and `image_shape = Some((height, width))`; a 2-d file
/// (`n × features`) is read the same way without an image shape. `labels`, if given, is a 1-d IDX
/// file with one label per image.
pub fn load_idx_images<T: Real>(images: &Path, labels: Option<&Path>) -> Result<Dataset<T>> {
    let (mut d, n) = load_idx_rows::<T>(images, None)?;
    if let Some(lp) = labels {
        d.labels = Some(read_idx_labels(lp, n)?);
    }
    Ok(d)
}

/// [`load_idx_images`] of the first `first` images only (all with `None`): only those are
/// inflated. Also returns the number of images the file declares.
pub(crate) fn load_idx_rows<T: Real>(images: &Path, first: Option<usize>) -> Result<(Dataset<T>, usize)> {
    let (img, total) = read_idx_rows(images, first, std::mem::size_of::<T>())?;
    let (n, h, w) = match img.shape[..] {
        [n, h, w] => (n, h, w),
        [n, f] => (n, 1, f),
        _ => {
            let hint = if img.shape.len() == 1 {
                "this looks like a label file: give the image file as data and this one as `labels`"
            } else {
                "give an image file (n × height × width), e.g. train-images-idx3-ubyte.gz"
            };
            return Err(Error::ShapeMismatch {
                what: format!("IDX images {}", images.display()),
                expected: "n × height × width".into(),
                found: format!("{:?}", img.shape),
                hint: hint.into(),
            });
        }
    };
    let f = h * w;
    let scale = 1.0 / 255.0;
    let xt = crate::linalg::try_mat_from_fn(
        f,
        n,
        |i, j| T::from_f64(img.data[j * f + i] as f64 * scale),
        "reading IDX images",
    )?;
    let mut d = Dataset::from_columns(xt, images.display().to_string());
    if img.shape.len() == 3 {
        d.image_shape = Some((h, w));
    }
    Ok((d, total))
}

/// Reads a 1-d IDX label file and checks it holds `n` labels.
pub fn read_idx_labels(path: &Path, n: usize) -> Result<Vec<u32>> {
    let l = read_idx(path)?;
    if l.shape.len() != 1 || l.shape[0] != n {
        return Err(Error::ShapeMismatch {
            what: format!("labels {}", path.display()),
            expected: format!("[{n}] (one label per sample)"),
            found: format!("{:?}", l.shape),
            hint: "give the label file that belongs to the data (e.g. t10k-labels-idx1-ubyte.gz for t10k-images)".into(),
        });
    }
    Ok(l.data.into_iter().map(u32::from).collect())
}

/// The bytes of a raw IDX file of unsigned bytes (for tests and exports).
pub fn idx_bytes(shape: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, shape.len() as u8];
    for d in shape {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn images() -> (Vec<u8>, Vec<u8>) {
        let pixels: Vec<u8> = (0..3 * 2 * 4).map(|i| (i * 11 % 256) as u8).collect();
        (idx_bytes(&[3, 2, 4], &pixels), idx_bytes(&[3], &[7, 0, 9]))
    }

    #[test]
    fn reads_raw_and_gz() {
        let dir = crate::data::test_dir("idx");
        let (img, lab) = images();
        for (name, bytes) in [("a-ubyte", img.clone()), ("a.gz", gz(&img))] {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let a = read_idx(&p).unwrap();
            assert_eq!(a.shape, vec![3, 2, 4]);
            assert_eq!(a.data, img[16..]);
        }
        std::fs::write(dir.path().join("l.gz"), gz(&lab)).unwrap();
        let d = load_idx_images::<f32>(&dir.path().join("a.gz"), Some(&dir.path().join("l.gz"))).unwrap();
        assert_eq!(
            (d.n_samples(), d.n_features(), d.image_shape),
            (3, 8, Some((2, 4)))
        );
        assert_eq!(d.labels, Some(vec![7, 0, 9]));
        assert_eq!(d.sample(1)[0], img[16 + 8] as f32 / 255.0);
        let (_, hi, _) = d.value_range();
        assert!(hi <= 1.0);
        // Label count mismatch, and a label file given as images.
        std::fs::write(dir.path().join("l2"), idx_bytes(&[2], &[1, 2])).unwrap();
        let e = load_idx_images::<f32>(&dir.path().join("a.gz"), Some(&dir.path().join("l2"))).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
        let e = load_idx_images::<f32>(&dir.path().join("l2"), None).unwrap_err();
        assert!(e.to_string().contains("as `labels`"), "{e}");
    }

    #[test]
    fn truncated_and_forged() {
        let dir = crate::data::test_dir("idx-bad");
        let p = dir.path().join("x");
        let (img, _) = images();
        // Raw, truncated.
        std::fs::write(&p, &img[..img.len() - 5]).unwrap();
        match read_idx(&p) {
            Err(Error::Truncated {
                declared: 24,
                actual: 19,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        // Gzip of a truncated stream (complete gzip, short content).
        std::fs::write(&p, gz(&img[..img.len() - 5])).unwrap();
        assert!(matches!(
            read_idx(&p),
            Err(Error::Truncated {
                declared: 24,
                actual: 19,
                ..
            })
        ));
        // A cut gzip file.
        let big: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        let full = gz(&idx_bytes(&[200_000], &big));
        std::fs::write(&p, &full[..full.len() / 2]).unwrap();
        let e = read_idx(&p).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Truncated {
                    declared: 200_000,
                    ..
                }
            ),
            "{e}"
        );
        // Trailing bytes, raw and gz.
        let mut long = img.clone();
        long.push(1);
        std::fs::write(&p, &long).unwrap();
        assert!(matches!(read_idx(&p), Err(Error::BadFormat { .. })));
        std::fs::write(&p, gz(&long)).unwrap();
        assert!(matches!(read_idx(&p), Err(Error::BadFormat { .. })));
        // Forged dimensions: huge but addressable, and overflowing.
        for forged in [
            idx_bytes(&[60000, 28000, 28000], &[1, 2, 3]),
            idx_bytes(&[u32::MAX; 3], &[1]),
        ] {
            std::fs::write(&p, &forged).unwrap();
            assert!(read_idx(&p).is_err());
            std::fs::write(&p, gz(&forged)).unwrap();
            assert!(read_idx(&p).is_err());
        }
        // Refused from the header alone (47 TB), before inflating.
        std::fs::write(&p, gz(&idx_bytes(&[60000, 28000, 28000], &[1, 2, 3]))).unwrap();
        if crate::linalg::available_memory().is_some() {
            let e = read_idx(&p).unwrap_err().to_string();
            assert!(e.contains("GB of memory"), "{e}");
        }
        std::fs::write(&p, gz(&idx_bytes(&[6, 20, 20], &[1, 2, 3]))).unwrap();
        assert!(matches!(read_idx(&p), Err(Error::Truncated { actual: 3, .. })));
        // Not IDX / unsupported type / too short / corrupt gzip.
        for bad in [
            &b"hello world"[..],
            &[0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0],
            &[0, 0],
            &[],
            &[0, 0, 8, 0],
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(matches!(read_idx(&p), Err(Error::BadFormat { .. })), "{bad:?}");
        }
        let mut corrupt = gz(&img);
        corrupt[12] ^= 0xff;
        corrupt[13] ^= 0xff;
        std::fs::write(&p, &corrupt).unwrap();
        assert!(read_idx(&p).is_err());
        assert!(matches!(
            read_idx(&dir.path().join("nope")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn decompression_bomb_is_refused_before_inflating() {
        let dir = crate::data::test_dir("idx-bomb");
        let p = dir.path().join("bomb-images-idx3-ubyte.gz");
        // A header declaring 2^40 bytes, then 8 MiB of zeros (8 KiB compressed): refused from the
        // header (memory), not after inflating everything there is.
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(&idx_bytes(&[1 << 30, 32, 32], &[])).unwrap();
        e.write_all(&vec![0u8; 8 << 20]).unwrap();
        std::fs::write(&p, e.finish().unwrap()).unwrap();
        if crate::linalg::available_memory().is_some() {
            let msg = read_idx(&p).unwrap_err().to_string();
            assert!(msg.contains("GB of memory") && msg.contains("first"), "{msg}");
        }
        // The first rows alone are read (and only they are inflated).
        let (a, _) = read_idx_rows(&p, Some(3), 4).unwrap();
        assert_eq!((a.shape, a.data.len()), (vec![3, 32, 32], 3 * 1024));
        let (d, n) = load_idx_rows::<f32>(&p, Some(2)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((d.n_samples(), n), (2, 1 << 30));
    }

    #[test]
    fn multi_member_gzip_is_read_whole() {
        // `cat a.gz b.gz`: valid gzip (RFC 1952), its content the concatenation.
        let dir = crate::data::test_dir("idx-multi");
        let (img, _) = images();
        let (a, b) = img.split_at(10);
        let mut bytes = gz(a);
        bytes.extend(gz(b));
        let p = dir.path().join("multi.gz");
        std::fs::write(&p, bytes).unwrap();
        let arr = read_idx(&p).unwrap();
        assert_eq!((arr.shape, &arr.data[..]), (vec![3, 2, 4], &img[16..]));
    }
}
