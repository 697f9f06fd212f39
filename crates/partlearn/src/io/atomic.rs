//! Atomic file writes.
//!
//! A file is written to a temporary sibling `.<name>.tmp-<pid>-<counter>` in the target's own
//! directory (so the final rename never crosses file systems), flushed and synced, then renamed
//! over the target. Readers therefore see either the old file or the complete new one, never a
//! partial write; on any failure the temporary file is removed and the target is left untouched.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Distinguishes temporary names made by one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A process-unique suffix `<pid>-<counter>` for temporary sibling names.
pub(crate) fn unique_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The final component of `path`, or an error when `path` has none (`/`, `..`).
pub(crate) fn file_name(path: &Path) -> Result<String> {
    match path.file_name() {
        Some(name) => Ok(name.to_string_lossy().into_owned()),
        None => Err(Error::io(
            path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file or folder name: give a path that ends in a name",
            ),
        )),
    }
}

/// The hidden sibling `.<name>.<tag>` of `path`, in the same directory.
pub(crate) fn sibling(path: &Path, tag: &str) -> Result<PathBuf> {
    let name = file_name(path)?;
    Ok(parent_dir(path).join(format!(".{name}.{tag}")))
}

/// The directory holding `path` (`.` for a bare relative name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes a completed rename durable by syncing the directory (best effort, Unix only).
pub(crate) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Removes the temporary file unless disarmed (also on panic inside the writer).
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `bytes` to `path` atomically, creating missing parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Writes `path` atomically from a streaming writer (buffered), creating missing parent folders.
///
/// `write` gets the temporary file; if it fails, the temporary file is removed and the target is
/// left as it was.
pub fn write_atomic_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let tmp = sibling(path, &format!("tmp-{}", unique_suffix()))?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    let mut guard = TempGuard {
        path: tmp,
        armed: true,
    };
    let mut out = BufWriter::new(file);
    write(&mut out)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io(path, e))?;
    let file: File = out.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(path, e))?;
    drop(file);
    fs::rename(&guard.path, path).map_err(|e| Error::io(path, e))?;
    guard.armed = false;
    sync_dir(&dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::test_dir;

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn writes_and_replaces() {
        let dir = test_dir("atomic-replace");
        let path = dir.path().join("a/b/file.txt");
        write_atomic(&path, b"first").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert!(leftovers(&dir.path().join("a/b")).is_empty());
    }

    #[test]
    fn streaming_writer() {
        let dir = test_dir("atomic-stream");
        let path = dir.path().join("history.jsonl");
        write_atomic_with(&path, |w| {
            for i in 0..3 {
                writeln!(w, "{{\"iter\":{i}}}")?;
            }
            Ok(())
        })
        .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn failure_keeps_old_file_and_removes_temp() {
        let dir = test_dir("atomic-fail");
        let path = dir.path().join("keep.txt");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
        assert!(err.to_string().contains("keep.txt"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn rejects_pathless_target() {
        assert!(write_atomic(Path::new("/"), b"x").is_err());
    }
}
