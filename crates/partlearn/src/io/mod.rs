//! Files: model files (safetensors tensors + JSON metadata), atomic writes, run folders.
//!
//! - [`atomic`]: every file partlearn writes goes through a temp file + rename.
//! - [`input`]: every file partlearn reads is a regular file, of a checked size.
//! - [`tensors`]: named row-major `F32`/`F64` tensors in safetensors files, with string metadata.
//! - [`run`]: run folders staged aside and moved into place on commit.
//! - [`json`]: JSON and JSON-lines files.
//! - [`record`]: the run record `run.json` — one header for every method, then the method's part.

pub mod atomic;
pub mod input;
pub mod json;
pub mod record;
pub mod run;
pub mod tensors;

pub use atomic::{check_output_file, write_atomic, write_atomic_with};
pub use input::{open_regular, read_regular};
pub use record::{DataSpec, FitSummary, MethodPart, RunRecord};
pub use run::{open_existing, read_json, to_json_lines, to_json_pretty, RunDir};
pub use tensors::{
    parse_safetensors, read_safetensors, safetensors_bytes, tensor_by_name, write_safetensors, Tensor,
    TensorData,
};

/// A fresh temporary folder for a test, removed when dropped.
#[cfg(test)]
pub(crate) struct TestDir(std::path::PathBuf);

#[cfg(test)]
impl TestDir {
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
pub(crate) fn test_dir(tag: &str) -> TestDir {
    let dir = std::env::temp_dir().join(format!("partlearn-test-{tag}-{}", atomic::unique_suffix()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    TestDir(dir)
}
