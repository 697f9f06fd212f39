//! JSON files: pretty JSON, JSON lines, and reading with a one-line error naming the file.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Pretty-printed JSON with a trailing newline.
pub fn to_json_pretty<S: Serialize + ?Sized>(value: &S) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| json_error::<S>(e))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// JSON lines: one compact JSON object per item, each followed by a newline.
pub fn to_json_lines<S: Serialize>(items: &[S]) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    for item in items {
        serde_json::to_writer(&mut bytes, item).map_err(|e| json_error::<S>(e))?;
        bytes.push(b'\n');
    }
    Ok(bytes)
}

fn json_error<S: ?Sized>(e: serde_json::Error) -> Error {
    Error::invalid(
        "value",
        std::any::type_name::<S>(),
        format!("cannot be written as JSON ({e})"),
    )
}

/// Reads and parses a JSON file; a parse error becomes [`Error::BadFormat`] with serde's message.
pub fn read_json<D: DeserializeOwned>(path: &Path) -> Result<D> {
    let bytes = crate::io::read_regular(path, crate::io::input::SMALL_FILE_CAP)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::format(
            path,
            format!("invalid JSON ({e}): fix the file or re-create the run"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::test_dir;
    use std::collections::BTreeMap;
    use std::fs;

    #[test]
    fn json_helpers() {
        let dir = test_dir("run-json");
        let path = dir.path().join("m.json");
        let bytes = to_json_pretty(&BTreeMap::from([("a", 1.5)])).unwrap();
        assert!(bytes.ends_with(b"\n"));
        fs::write(&path, &bytes).unwrap();
        let back: BTreeMap<String, f64> = read_json(&path).unwrap();
        assert_eq!(back["a"], 1.5);
        fs::write(&path, b"{\"a\": ").unwrap();
        let err = read_json::<BTreeMap<String, f64>>(&path).unwrap_err();
        assert!(matches!(err, Error::BadFormat { .. }), "{err:?}");
        assert!(err.to_string().contains("EOF"), "{err}");
        let lines = to_json_lines(&[1, 2, 3]).unwrap();
        assert_eq!(lines, b"1\n2\n3\n");
    }
}
