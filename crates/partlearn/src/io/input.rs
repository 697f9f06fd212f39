//! Opening inputs: only regular files are read (symlinks followed), so that a FIFO never blocks
//! a command forever and a device such as `/dev/zero` is never read without end; whole-file
//! reads are checked against a cap and the memory available before anything is allocated.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The largest JSON file, history or figure a run folder may hold (256 MiB).
pub const SMALL_FILE_CAP: u64 = 256 << 20;

/// Opens `path` for reading if it is a regular file; a FIFO, socket, device or folder is refused
/// with a one-line error (checked before opening: opening a FIFO blocks until a writer comes).
pub fn open_regular(path: &Path) -> Result<File> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // The path may have been swapped between the two calls: check what was opened.
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    Ok(file)
}

/// The whole regular file `path`, refused when longer than `cap` bytes or than the memory
/// available.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > cap {
        return Err(Error::format(
            path,
            format!(
                "{len} bytes, more than the {cap} bytes such a file may hold; give the file partlearn wrote"
            ),
        ));
    }
    crate::linalg::check_file_memory(path, format_args!("its {len} bytes"), len as f64)?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len as usize)
        .map_err(|e| Error::format(path, format!("cannot allocate {len} bytes ({e}); free memory")))?;
    // At most `cap` bytes even if the file grows meanwhile.
    file.take(cap)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

fn not_regular(path: &Path, meta: &std::fs::Metadata) -> Error {
    let what = crate::io::atomic::kind_of(meta);
    Error::format(
        path,
        format!("is {what}, not a regular file; partlearn reads only regular files: give a file"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifos_devices_and_folders_and_caps_sizes() {
        let dir = crate::io::test_dir("input");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // Before the fix this open blocked forever.
            let e = open_regular(&fifo).unwrap_err().to_string();
            assert!(e.contains("FIFO"), "{e}");
        }
        let e = read_regular(Path::new("/dev/zero"), u64::MAX)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a device"), "{e}");
        let e = open_regular(dir.path()).unwrap_err().to_string();
        assert!(e.contains("a folder"), "{e}");
        let f = dir.path().join("f");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read_regular(&f, 5).unwrap(), b"12345");
        let e = read_regular(&f, 4).unwrap_err().to_string();
        assert!(e.contains("more than the 4 bytes"), "{e}");
    }
}
