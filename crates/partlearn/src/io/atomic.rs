//! Atomic file writes.
//!
//! A file is written to a temporary sibling `.<name>.tmp-<pid>-<counter>` in the target's own
//! directory (so the final rename never crosses file systems), flushed and synced, then renamed
//! over the target. Readers therefore see either the old file or the complete new one, never a
//! partial write; on any failure the temporary file is removed and the target is left untouched.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
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

/// Removes the hidden siblings `.<name>.<tag>-<pid>-<n>` of `path` (for each of `tags`: stages,
/// temp files, old runs set aside) that processes now gone left behind (a SIGKILL, a reboot).
/// A sibling is stale when its process no longer exists, or when the process of that id started
/// after the sibling was made (the id was reused). Best effort, and only where `/proc` tells.
pub(crate) fn clean_stale(path: &Path, tags: &[&str]) {
    for p in stale_siblings(path, tags) {
        let _ = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
    }
}

/// The hidden siblings `.<name>.<tag>-<pid>-<n>` of `path` that processes now gone left behind
/// (see [`clean_stale`]); none without `/proc`.
pub(crate) fn stale_siblings(path: &Path, tags: &[&str]) -> Vec<PathBuf> {
    let (Ok(name), Some(boot)) = (file_name(path), boot_time()) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(parent_dir(path)) else {
        return Vec::new();
    };
    let mut stale = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        let Some(rest) = file.strip_prefix(&format!(".{name}.")) else {
            continue;
        };
        let Some(pid) = tags.iter().find_map(|t| {
            let ids = rest.strip_prefix(t)?.strip_prefix('-')?;
            let (pid, n) = ids.split_once('-')?;
            n.parse::<u64>().ok()?;
            pid.parse::<u32>().ok()
        }) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let made = entry
            .metadata()
            .ok()
            .and_then(|m| m.created().or_else(|_| m.modified()).ok());
        let dead = match process_start(pid, boot) {
            None => true,
            Some(start) => made.is_some_and(|made| start > made + std::time::Duration::from_secs(2)),
        };
        if dead {
            stale.push(entry.path());
        }
    }
    stale
}

/// When the system booted (`btime` of `/proc/stat`); `None` without `/proc`.
fn boot_time() -> Option<std::time::SystemTime> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let secs: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// When process `pid` started, or `None` when there is no such process (field 22 of
/// `/proc/<pid>/stat`, in clock ticks of 1/100 s, Linux's fixed `USER_HZ`, since boot).
fn process_start(pid: u32, boot: std::time::SystemTime) -> Option<std::time::SystemTime> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: fields are counted after its ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    Some(boot + std::time::Duration::from_millis(ticks * 10))
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

/// What kind of thing `meta` is, for messages ("a folder", "a FIFO (named pipe)", …).
pub(crate) fn kind_of(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a folder";
    }
    if t.is_symlink() {
        return "a symbolic link";
    }
    if t.is_file() {
        return "a file";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Checks that the output file `path` may be written: it does not exist, or `force` is set and
/// it is a regular file that starts with `magic` (what the command writes: `\x93NUMPY` for
/// `.npy`, `<!DOCTYPE html>` for a report). A device, FIFO, socket, folder, symbolic link or a
/// file of other content is refused even with `force` ([`Error::InvalidOption`] of `out`).
pub fn check_output_file(path: &Path, force: bool, magic: &[u8], what: &str) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
        Ok(meta) => meta,
    };
    if !force {
        return Err(Error::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let refuse = |it: String| {
        Err(Error::invalid(
            "out",
            path.display(),
            format!("it is {it}; `force` replaces only a {what} partlearn wrote: choose another `out`"),
        ))
    };
    if !meta.is_file() {
        return refuse(kind_of(&meta).to_string());
    }
    let mut head = Vec::with_capacity(magic.len());
    File::open(path)
        .and_then(|f| io::Read::take(f, magic.len() as u64).read_to_end(&mut head))
        .map_err(|e| Error::io(path, e))?;
    if head != magic {
        return refuse(format!("a file that is not a {what}"));
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically, creating missing parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Writes `path` atomically from a streaming writer (buffered), creating missing parent folders.
///
/// `write` gets the temporary file; if it fails, the temporary file is removed and the target is
/// left as it was. Only a regular file (or a symbolic link, itself replaced) is ever replaced: a
/// folder, device, FIFO or socket at `path` is an error, before anything is written.
pub fn write_atomic_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    if let Ok(meta) = fs::symlink_metadata(path) {
        if !meta.is_file() && !meta.file_type().is_symlink() {
            return Err(Error::io(
                path,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "is {}, which partlearn never replaces; give a file path",
                        kind_of(&meta)
                    ),
                ),
            ));
        }
    }
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    clean_stale(path, &["tmp"]);
    let tmp = sibling(path, &format!("tmp-{}", unique_suffix()))?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        // Named as the user's path: the hidden temp file means nothing to them.
        .map_err(|e| {
            let reason = format!("cannot write here: {e}; choose a writable path");
            Error::io(path, io::Error::new(e.kind(), reason))
        })?;
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

    #[test]
    fn an_unwritable_target_is_named_as_given() {
        // /proc refuses new files even to root.
        let target = Path::new("/proc/partlearn-test-codes.npy");
        if Path::new("/proc/self").exists() {
            let e = write_atomic(target, b"x").unwrap_err().to_string();
            assert!(
                e.starts_with("/proc/partlearn-test-codes.npy: cannot write here") && !e.contains(".tmp-"),
                "{e}"
            );
        }
    }
}
