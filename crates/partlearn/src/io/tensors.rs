//! Model tensors in safetensors files.
//!
//! Matrices are stored row-major (C order, numpy's convention): a `rows × cols` matrix becomes a
//! tensor of shape `[rows, cols]` whose element `(i, j)` is at flat index `i * cols + j`, little
//! endian, so `safetensors.numpy.load_file` and PyTorch read it directly. Free-form string
//! metadata (options, versions) goes into the file's `__metadata__` header. Only `F32` and `F64`
//! tensors are written or read.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use faer::{Mat, MatRef};
use safetensors::{Dtype, SafeTensors, View};

use crate::error::{Error, Result};
use crate::io::atomic::write_atomic;
use crate::real::Real;

/// The flat, row-major values of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// 32-bit floats (safetensors `F32`).
    F32(Vec<f32>),
    /// 64-bit floats (safetensors `F64`).
    F64(Vec<f64>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dtype name as safetensors spells it (`"F32"` / `"F64"`).
    pub fn dtype_name(&self) -> &'static str {
        match self {
            TensorData::F32(_) => "F32",
            TensorData::F64(_) => "F64",
        }
    }

    /// Element `i` as `f64`, if in range.
    fn get_f64(&self, i: usize) -> Option<f64> {
        match self {
            TensorData::F32(v) => v.get(i).map(|&x| x as f64),
            TensorData::F64(v) => v.get(i).copied(),
        }
    }

    fn dtype(&self) -> Dtype {
        match self {
            TensorData::F32(_) => Dtype::F32,
            TensorData::F64(_) => Dtype::F64,
        }
    }

    fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// A named tensor: shape plus row-major values.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Name in the file (e.g. `"atoms"`).
    pub name: String,
    /// Shape, outermost first (`[rows, cols]` for a matrix).
    pub shape: Vec<usize>,
    /// Row-major values; their count is the product of `shape`.
    pub data: TensorData,
}

impl Tensor {
    /// A tensor from a shape and row-major values; errors when the counts disagree.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: TensorData) -> Result<Self> {
        let t = Tensor {
            name: name.into(),
            shape,
            data,
        };
        t.check_len()?;
        Ok(t)
    }

    /// A `[nrows, ncols]` tensor holding `m` row-major, in `T`'s dtype.
    pub fn from_mat<T: Real>(name: impl Into<String>, m: MatRef<'_, T>) -> Self {
        let (r, c) = (m.nrows(), m.ncols());
        let row_major = (0..r).flat_map(|i| (0..c).map(move |j| m[(i, j)].to_f64()));
        let data = if T::NAME == "f32" {
            // Exact: T is f32, so the round trip through f64 loses nothing.
            TensorData::F32(row_major.map(|x| x as f32).collect())
        } else {
            TensorData::F64(row_major.collect())
        };
        Tensor {
            name: name.into(),
            shape: vec![r, c],
            data,
        }
    }

    /// The 2-d tensor as a matrix, converting the dtype to `T` if needed.
    pub fn to_mat<T: Real>(&self) -> Result<Mat<T>> {
        let &[r, c] = self.shape.as_slice() else {
            return Err(Error::ShapeMismatch {
                what: format!("tensor '{}'", self.name),
                expected: "a 2-d [rows, cols] matrix".into(),
                found: format!("shape {:?}", self.shape),
                hint: "this tensor is not a matrix; re-save the model with partlearn".into(),
            });
        };
        self.check_len()?;
        let mut m = Mat::<T>::zeros(r, c);
        for i in 0..r {
            for j in 0..c {
                // In range: check_len proved len == r * c.
                let v = self.data.get_f64(i * c + j).unwrap_or(f64::NAN);
                m[(i, j)] = T::from_f64(v);
            }
        }
        Ok(m)
    }

    /// Number of elements the shape declares (`None` on overflow).
    fn declared_len(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    fn check_len(&self) -> Result<()> {
        if self.declared_len() == Some(self.data.len()) {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                what: format!("tensor '{}'", self.name),
                expected: format!("{:?} elements for shape {:?}", self.declared_len(), self.shape),
                found: format!("{} values", self.data.len()),
                hint: "make the shape match the data".into(),
            })
        }
    }
}

/// The tensor called `name`, or an error naming the file and the tensors it does hold.
pub fn tensor_by_name<'a>(tensors: &'a [Tensor], name: &str, path: &Path) -> Result<&'a Tensor> {
    tensors.iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        Error::format(
            path,
            format!(
                "no tensor '{name}' (found: {}); save the model again with this partlearn (refit it)",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        )
    })
}

/// Raw view handed to `safetensors::serialize`.
struct RawView {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &RawView {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Serializes tensors and string metadata to the bytes of a safetensors file.
///
/// Tensor names must be unique and must not be `__metadata__`.
pub fn safetensors_bytes(tensors: &[Tensor], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut seen = BTreeSet::new();
    let mut views = Vec::with_capacity(tensors.len());
    for t in tensors {
        if t.name == "__metadata__" {
            return Err(Error::invalid(
                "tensor_name",
                &t.name,
                "this name is reserved by safetensors; rename the tensor",
            ));
        }
        if !seen.insert(t.name.as_str()) {
            return Err(Error::invalid(
                "tensor_name",
                &t.name,
                "two tensors have this name; give each tensor a unique name",
            ));
        }
        t.check_len()?;
        views.push((
            t.name.clone(),
            RawView {
                dtype: t.data.dtype(),
                shape: t.shape.clone(),
                bytes: t.data.to_le_bytes(),
            },
        ));
    }
    let info: Option<HashMap<String, String>> = if metadata.is_empty() {
        None
    } else {
        Some(metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    };
    let bytes = safetensors::serialize(views.iter().map(|(n, v)| (n.as_str(), v)), info).map_err(|e| {
        Error::invalid(
            "tensors",
            format!("{} tensors", tensors.len()),
            format!("cannot serialize them: {e}"),
        )
    })?;
    Ok(sorted_header(bytes))
}

/// The same file with its JSON header's keys sorted: the safetensors crate writes the metadata
/// from a `HashMap`, whose order changes from run to run, and the same model must give the same
/// bytes. The header (8-byte little-endian length, then JSON padded with spaces) keeps its length,
/// since only the order of its members changes, so the data offsets stay valid.
fn sorted_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let Some(len) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as usize)
    else {
        return bytes;
    };
    let Some(header) = bytes.get(8..8 + len) else {
        return bytes;
    };
    // serde_json's map is a BTreeMap here (no `preserve_order`), so re-serializing sorts the keys.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(header) else {
        return bytes;
    };
    let Ok(sorted) = serde_json::to_vec(&value) else {
        return bytes;
    };
    let trimmed = header.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    if sorted.len() == trimmed {
        bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    }
    bytes
}

/// Writes tensors and metadata to `path` as a safetensors file, atomically.
pub fn write_safetensors(path: &Path, tensors: &[Tensor], metadata: &BTreeMap<String, String>) -> Result<()> {
    let bytes = safetensors_bytes(tensors, metadata)?;
    write_atomic(path, &bytes)
}

/// Reads a safetensors file: its tensors (sorted by name) and its string metadata.
///
/// The whole file is validated first (header, offsets against the file length), so a truncated
/// or forged file is rejected before any tensor is allocated; only `F32` and `F64` are accepted.
pub fn read_safetensors(path: &Path) -> Result<(Vec<Tensor>, BTreeMap<String, String>)> {
    let buffer = crate::io::read_regular(path, u64::MAX)?;
    parse_safetensors(&buffer, path)
}

/// Parses the bytes of a safetensors file; `path` is only used in error messages.
pub fn parse_safetensors(buffer: &[u8], path: &Path) -> Result<(Vec<Tensor>, BTreeMap<String, String>)> {
    let bad = |e: safetensors::SafeTensorError| {
        Error::format(
            path,
            format!(
                "not a valid safetensors file ({e}); it may be truncated or corrupt: save it again (refit)"
            ),
        )
    };
    let (_, header) = SafeTensors::read_metadata(buffer).map_err(bad)?;
    let file = SafeTensors::deserialize(buffer).map_err(bad)?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();

    let mut tensors = Vec::with_capacity(file.len());
    for (name, view) in file.iter() {
        let bytes = view.data();
        let data = match view.dtype() {
            Dtype::F32 => TensorData::F32(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            Dtype::F64 => TensorData::F64(
                bytes
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect(),
            ),
            other => {
                return Err(Error::format(
                    path,
                    format!(
                        "tensor '{name}' has dtype {other:?}, but partlearn reads only F32 and F64: convert it (e.g. numpy .astype('float32')) and re-save the file"
                    ),
                ))
            }
        };
        let tensor = Tensor {
            name: name.to_string(),
            shape: view.shape().to_vec(),
            data,
        };
        // The crate already checked shape × dtype size against the offsets; keep the invariant
        // explicit so a future crate change cannot hand us an inconsistent tensor.
        tensor
            .check_len()
            .map_err(|e| Error::format(path, format!("{e}; re-save the file")))?;
        tensors.push(tensor);
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((tensors, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::test_dir;

    fn sample_mat<T: Real>(r: usize, c: usize) -> Mat<T> {
        Mat::from_fn(r, c, |i, j| T::from_f64(i as f64 * 10.0 + j as f64 + 0.25))
    }

    fn meta() -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("model".to_string(), "nmf".to_string());
        m.insert("k".to_string(), "3".to_string());
        m
    }

    #[test]
    fn same_tensors_and_metadata_give_the_same_bytes() {
        let mut meta = BTreeMap::new();
        for i in 0..40 {
            meta.insert(format!("key{i}"), format!("value {i}"));
        }
        let tensors = vec![
            Tensor::from_mat("b", sample_mat::<f32>(3, 2).as_ref()),
            Tensor::from_mat("a", sample_mat::<f64>(2, 5).as_ref()),
        ];
        let first = safetensors_bytes(&tensors, &meta).unwrap();
        for _ in 0..5 {
            assert_eq!(safetensors_bytes(&tensors, &meta).unwrap(), first);
        }
        let (back, m) = parse_safetensors(&first, Path::new("mem")).unwrap();
        assert_eq!(m, meta);
        assert_eq!(back[0].to_mat::<f64>().unwrap(), sample_mat::<f64>(2, 5));
        assert_eq!(back[1].to_mat::<f32>().unwrap(), sample_mat::<f32>(3, 2));
    }

    #[test]
    fn round_trip_f32_f64_with_metadata() {
        let dir = test_dir("tensors-roundtrip");
        let path = dir.path().join("model.safetensors");
        let a32 = sample_mat::<f32>(3, 5);
        let b64 = sample_mat::<f64>(4, 2);
        let tensors = vec![
            Tensor::from_mat("atoms", a32.as_ref()),
            Tensor::from_mat("bias", b64.as_ref()),
        ];
        write_safetensors(&path, &tensors, &meta()).unwrap();
        let (back, m) = read_safetensors(&path).unwrap();
        assert_eq!(m, meta());
        assert_eq!(back, tensors);
        assert_eq!(back[0].data.dtype_name(), "F32");
        assert_eq!(back[1].data.dtype_name(), "F64");
        let a = back[0].to_mat::<f32>().unwrap();
        assert_eq!(a, a32);
        let b = tensor_by_name(&back, "bias", &path)
            .unwrap()
            .to_mat::<f64>()
            .unwrap();
        assert_eq!(b, b64);
        // dtype conversion
        let a64 = back[0].to_mat::<f64>().unwrap();
        assert_eq!(a64[(2, 4)], 24.25);
        let missing = tensor_by_name(&back, "codes", &path).unwrap_err().to_string();
        assert!(missing.contains("atoms, bias"), "{missing}");
    }

    #[test]
    fn empty_metadata_and_transposed_view() {
        let m = sample_mat::<f64>(2, 3);
        // A transposed view is stored as the 3 × 2 matrix it represents.
        let t = Tensor::from_mat("t", m.as_ref().transpose());
        assert_eq!(t.shape, vec![3, 2]);
        let bytes = safetensors_bytes(std::slice::from_ref(&t), &BTreeMap::new()).unwrap();
        let (back, meta) = parse_safetensors(&bytes, Path::new("x")).unwrap();
        assert!(meta.is_empty());
        assert_eq!(
            back[0].to_mat::<f64>().unwrap(),
            m.as_ref().transpose().to_owned()
        );
    }

    #[test]
    fn bytes_are_little_endian_row_major() {
        let m = Mat::<f32>::from_fn(2, 3, |i, j| (i * 3 + j) as f32);
        let bytes = safetensors_bytes(&[Tensor::from_mat("w", m.as_ref())], &BTreeMap::new()).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
        assert!(header.contains("\"shape\":[2,3]"), "{header}");
        let data = &bytes[8 + n..];
        assert_eq!(data.len(), 6 * 4);
        let mut expected = Vec::new();
        for v in [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0] {
            expected.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(data, &expected[..]);
        // 1.0f32 = 0x3f800000, little endian
        assert_eq!(&data[4..8], &[0x00, 0x00, 0x80, 0x3f]);
    }

    #[test]
    fn truncated_file_is_rejected() {
        let dir = test_dir("tensors-truncated");
        let path = dir.path().join("model.safetensors");
        let m = sample_mat::<f32>(4, 4);
        let bytes = safetensors_bytes(&[Tensor::from_mat("atoms", m.as_ref())], &meta()).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let err = read_safetensors(&path).unwrap_err();
        assert!(matches!(err, Error::BadFormat { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("model.safetensors") && msg.contains("save it again"),
            "{msg}"
        );
        // Header cut short too.
        assert!(parse_safetensors(&bytes[..20], &path).is_err());
        assert!(parse_safetensors(&bytes[..3], &path).is_err());
    }

    #[test]
    fn garbage_and_forged_headers_are_rejected() {
        let p = Path::new("junk.safetensors");
        assert!(parse_safetensors(b"this is not a safetensors file at all", p).is_err());
        assert!(parse_safetensors(&[], p).is_err());
        // Header length far beyond the file.
        let mut forged = (1u64 << 40).to_le_bytes().to_vec();
        forged.extend_from_slice(b"{}");
        assert!(parse_safetensors(&forged, p).is_err());
        // A header declaring a huge tensor that the file does not hold.
        let header = br#"{"w":{"dtype":"F32","shape":[100000,100000],"data_offsets":[0,40000000000]}}"#;
        let mut forged = (header.len() as u64).to_le_bytes().to_vec();
        forged.extend_from_slice(header);
        forged.extend_from_slice(&[0u8; 16]);
        let err = parse_safetensors(&forged, p).unwrap_err();
        assert!(matches!(err, Error::BadFormat { .. }), "{err:?}");
    }

    #[test]
    fn unsupported_dtype_is_rejected() {
        let header = br#"{"w":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 8]);
        let err = parse_safetensors(&bytes, Path::new("m.safetensors")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("I32") && msg.contains("F32"), "{msg}");
    }

    #[test]
    fn non_matrix_and_inconsistent_tensors() {
        let t = Tensor::new("v", vec![2, 2, 2], TensorData::F64(vec![0.0; 8])).unwrap();
        assert!(matches!(t.to_mat::<f64>(), Err(Error::ShapeMismatch { .. })));
        assert!(Tensor::new("v", vec![3], TensorData::F32(vec![0.0; 2])).is_err());
        let bad = Tensor {
            name: "x".into(),
            shape: vec![2, 2],
            data: TensorData::F32(vec![1.0]),
        };
        assert!(safetensors_bytes(&[bad], &BTreeMap::new()).is_err());
        let a = Tensor::new("a", vec![1], TensorData::F32(vec![1.0])).unwrap();
        assert!(safetensors_bytes(&[a.clone(), a], &BTreeMap::new()).is_err());
    }
}
