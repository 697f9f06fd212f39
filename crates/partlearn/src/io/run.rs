//! Run folders: `run.json`, `model.safetensors`, `history.jsonl`, `metrics.json`, `figures/*.png`.
//!
//! A run is staged in a hidden sibling folder `.<name>.partial-<pid>-<n>` and moved into place
//! by [`RunDir::commit`], so the target folder never holds a half-written run: it holds the
//! complete old run, or the complete new one (on Linux the replacement with `force` is one atomic
//! swap; elsewhere, for the instant between two renames, the folder is missing). Dropping an uncommitted [`RunDir`] (e.g. on an error)
//! removes the stage; the stages (and set-aside old runs) of killed processes are removed by the
//! next [`RunDir::create`] for the same target.
//!
//! `force` only ever replaces a run folder (one holding a `run.json` that partlearn wrote, see
//! [`RunRecord::read`](crate::io::record::RunRecord::read), or only files a run writes): a user's
//! own folder or file at `out` is refused, never deleted. [`check_output_outside_run`] keeps commands that read a run
//! (`transform`) from writing their output over its files.

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::io::atomic::{
    clean_stale, parent_dir, sibling, stale_siblings, sync_dir, unique_suffix, write_atomic,
    write_atomic_with,
};
pub use crate::io::json::{read_json, to_json_lines, to_json_pretty};
use crate::io::record::read_partlearn_value;

/// File name of the model inside a run folder.
pub const MODEL_FILE: &str = "model.safetensors";
/// File name of the run description (options, seed, versions, timings, stop reason).
pub const RUN_FILE: &str = "run.json";
/// File name of the per-iteration history (one JSON object per line).
pub const HISTORY_FILE: &str = "history.jsonl";
/// File name of the evaluation metrics.
pub const METRICS_FILE: &str = "metrics.json";
/// Sub-folder holding the PNG figures.
pub const FIGURES_DIR: &str = "figures";
/// File name of the training checkpoint of an auto-encoder run.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// File name of the codes an online NMF fit writes into its run folder.
pub const CODES_FILE: &str = "codes.npy";
/// File name of the predicted labels a (semi-)supervised fit writes into its run folder.
pub const LABELS_PRED_FILE: &str = "labels_pred.npy";
/// File name of a sweep point's settings, written into the point's run folder.
pub const SWEEP_POINT_FILE: &str = "sweep-point.json";
/// Everything a run folder can hold: the files above and the training checkpoint of
/// `partlearn fit ae` (`checkpoint.safetensors`, written into the target while training), and
/// the outputs of a rank selection (a `select-k` folder is replaced as a run is). Anything else
/// in a run folder is the user's, and `force` refuses to replace the folder.
const RUN_ENTRIES: [&str; 11] = [
    RUN_FILE,
    MODEL_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    FIGURES_DIR,
    CHECKPOINT_FILE,
    CODES_FILE,
    LABELS_PRED_FILE,
    SWEEP_POINT_FILE,
    crate::select::TABLE_FILE,
    crate::select::RESULT_FILE,
];
/// A run folder being written: files go to a stage, [`commit`](RunDir::commit) moves it into place.
#[derive(Debug)]
pub struct RunDir {
    target: PathBuf,
    stage: PathBuf,
    force: bool,
    committed: bool,
}

/// True when `path` exists and is not an empty directory.
fn occupied(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => Ok(fs::read_dir(path)?.next().is_some()),
        Ok(_) => Ok(true),
    }
}

/// The error for a run folder that cannot be created at `path`: it names the user's path (not
/// the hidden stage the failing call was about) and what to do.
fn cannot_create(path: &Path, e: io::Error) -> Error {
    let reason = format!("cannot create the run folder: {e}; choose a writable `out` folder");
    Error::io(path, io::Error::new(e.kind(), reason))
}

/// Checks that the existing `path` may be replaced by a new run (with `force`): it is a folder
/// that holds nothing but entries a run writes (an empty folder, the checkpoint of an
/// interrupted `fit ae`), and whose `run.json`, when it has one, partlearn wrote (in any
/// format). Anything else is the user's (a `run.json` of another program, notes or an exported
/// file beside a run's files) and is refused, naming it.
fn check_replaceable(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
        Ok(meta) => meta,
    };
    let refuse = |what: &str| {
        Err(Error::invalid(
            "out",
            path.display(),
            format!("{what}; `force` only replaces partlearn run folders: choose another `out`"),
        ))
    };
    if !meta.is_dir() {
        return refuse("it is a file, not a partlearn run folder");
    }
    let has_record = fs::symlink_metadata(path.join(RUN_FILE)).is_ok();
    if has_record && read_partlearn_value(path).is_err() {
        return refuse(&format!(
            "not a partlearn run folder (its {RUN_FILE} was not written by partlearn)"
        ));
    }
    let mut entries = Vec::new();
    for entry in fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let name = entry.map_err(|e| Error::io(path, e))?.file_name();
        if !RUN_ENTRIES.iter().any(|r| name == *r) && !is_run_temp(&name.to_string_lossy()) {
            entries.push(name.to_string_lossy().into_owned());
        }
    }
    entries.sort();
    match entries.first() {
        None => Ok(()),
        Some(name) if has_record => refuse(&format!(
            "the run folder also holds {name}, which partlearn did not write and `force` would \
             delete: move it out of the folder{}",
            if entries.len() > 1 {
                format!(" (and {} more)", entries.len() - 1)
            } else {
                String::new()
            }
        )),
        Some(name) => refuse(&format!(
            "not a partlearn run folder (no {RUN_FILE}, and it holds {name})"
        )),
    }
}

/// True for the temporary file `.<entry>.tmp-<pid>-<n>` of an atomic write of a run's file (a
/// checkpoint being written when its process was killed).
pub fn is_run_temp(name: &str) -> bool {
    RUN_ENTRIES.iter().any(|r| {
        name.strip_prefix('.')
            .and_then(|n| n.strip_prefix(*r))
            .and_then(|n| n.strip_prefix(".tmp-"))
            .is_some()
    })
}

/// The error of a rename at `target` in [`RunDir::commit`]: when the target appeared, vanished
/// or filled meanwhile, another process is writing the same run folder, and the error says so.
fn raced(target: &Path, e: io::Error) -> Error {
    let raced = matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
    );
    if raced {
        let reason = format!(
            "{e}: another process wrote or moved this run folder at the same time; give each fit its own `out`"
        );
        Error::io(target, io::Error::new(e.kind(), reason))
    } else {
        Error::io(target, e)
    }
}

/// Swaps the entries at `a` and `b` in one step (Linux `renameat2` with `RENAME_EXCHANGE`); an
/// error where the system or file system lacks it (the caller then renames twice).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: two NUL-terminated paths that outlive the call; the call only renames.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Removes a file, symlink or folder tree; a missing path is fine.
fn remove_any(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Checks that `rel` is a relative path that stays inside the run folder.
fn check_rel(rel: &str) -> Result<()> {
    let p = Path::new(rel);
    let ok = !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "run_file",
            rel,
            "give a relative path inside the run folder (no '..', no leading '/')",
        ))
    }
}

impl RunDir {
    /// Starts a run folder at `out` (the output path), staged in a fresh hidden sibling.
    ///
    /// Errors with [`Error::AlreadyExists`] when `out` exists and is not an empty folder, unless
    /// `force` is set (the old run is then replaced at [`commit`](RunDir::commit)). Even with
    /// `force`, a file or a folder that is not a run is refused ([`Error::InvalidOption`]). A
    /// folder that cannot be made there is an [`Error::Io`] naming `out`, never the stage.
    pub fn create(out: &Path, force: bool) -> Result<RunDir> {
        if occupied(out).map_err(|e| cannot_create(out, e))? {
            if !force {
                return Err(Error::AlreadyExists {
                    path: out.to_path_buf(),
                });
            }
            check_replaceable(out)?;
        }
        let parent = parent_dir(out);
        fs::create_dir_all(&parent).map_err(|e| cannot_create(out, e))?;
        // Stages and set-aside old runs of killed processes writing to the same place.
        clean_stale(out, &["partial", "old"]);
        let stage = sibling(out, &format!("partial-{}", unique_suffix()))?;
        remove_any(&stage).map_err(|e| cannot_create(out, e))?;
        fs::create_dir(&stage).map_err(|e| cannot_create(out, e))?;
        Ok(RunDir {
            target: out.to_path_buf(),
            stage,
            force,
            committed: false,
        })
    }

    /// Continues, for `out`, the `stage` a killed process left (one [`resumable_stage`] found):
    /// its files move into a fresh stage of this process (the checkpoint first, so that it is
    /// never lost in between), the other stale stages of `out` are removed, and the run commits
    /// over `out` as with `force` (only a run folder is replaced).
    pub fn adopt(out: &Path, stage: &Path) -> Result<RunDir> {
        if occupied(out).map_err(|e| cannot_create(out, e))? {
            check_replaceable(out)?;
        }
        let fresh = sibling(out, &format!("partial-{}", unique_suffix()))?;
        remove_any(&fresh).map_err(|e| cannot_create(out, e))?;
        fs::create_dir(&fresh).map_err(|e| cannot_create(out, e))?;
        let run = RunDir {
            target: out.to_path_buf(),
            stage: fresh,
            force: true,
            committed: false,
        };
        let mut names: Vec<_> = fs::read_dir(stage)
            .map_err(|e| Error::io(stage, e))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort_by_key(|n| *n != CHECKPOINT_FILE);
        for name in names {
            fs::rename(stage.join(&name), run.stage.join(&name)).map_err(|e| Error::io(stage, e))?;
        }
        let _ = fs::remove_dir(stage);
        clean_stale(out, &["partial", "old"]);
        Ok(run)
    }

    /// The final location of the run.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The staging folder where files are written until [`commit`](RunDir::commit).
    pub fn stage(&self) -> &Path {
        &self.stage
    }

    /// Where `rel` (e.g. `"figures/atoms.png"`) lives in the stage now; after commit it is at
    /// `target().join(rel)`. `rel` must be relative without `..` ([`write`](RunDir::write)
    /// checks this).
    pub fn path_of(&self, rel: &str) -> PathBuf {
        self.stage.join(rel)
    }

    /// Writes `rel` in the stage atomically, creating sub-folders such as `figures/`.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        check_rel(rel)?;
        write_atomic(&self.path_of(rel), bytes).map_err(|e| self.at_target(rel, e))
    }

    /// Streams `rel` in the stage atomically (e.g. `history.jsonl`).
    pub fn write_with<F>(&self, rel: &str, write: F) -> Result<()>
    where
        F: FnOnce(&mut dyn Write) -> io::Result<()>,
    {
        check_rel(rel)?;
        write_atomic_with(&self.path_of(rel), write).map_err(|e| self.at_target(rel, e))
    }

    /// An I/O error met writing `rel` in the stage, told about `target/rel`: the hidden stage
    /// means nothing to the user.
    fn at_target(&self, rel: &str, e: Error) -> Error {
        match e {
            Error::Io { source, .. } => Error::io(self.target.join(rel), source),
            other => other,
        }
    }

    /// Serializes `value` as pretty JSON into `rel`.
    pub fn write_json<S: Serialize + ?Sized>(&self, rel: &str, value: &S) -> Result<()> {
        self.write(rel, &to_json_pretty(value)?)
    }

    /// Moves the staged run to its target and returns the target path.
    ///
    /// An existing target (allowed only with `force`, and only if it is a run) is swapped with the
    /// stage in one step (Linux `RENAME_EXCHANGE`), then the old run, now under the stage's name,
    /// deleted; elsewhere it is first renamed to `.<name>.old-<pid>-<n>`, the stage renamed into
    /// place, then the old run deleted (if the second rename fails the old run is put back).
    pub fn commit(mut self) -> Result<PathBuf> {
        let target = self.target.clone();
        let mut old = None;
        if occupied(&target).map_err(|e| Error::io(&target, e))? {
            if !self.force {
                return Err(Error::AlreadyExists { path: target });
            }
            // Checked again: something else may have appeared there while the run was computed.
            check_replaceable(&target)?;
            // One atomic swap where the system has it: the stage's name then holds the old run
            // (removed below, or as a stale stage if this process is killed first), and `target`
            // is never missing.
            if exchange(&self.stage, &target).is_ok() {
                self.committed = true;
                let _ = remove_any(&self.stage);
                sync_dir(&parent_dir(&target));
                return Ok(target);
            }
            let aside = sibling(&target, &format!("old-{}", unique_suffix()))?;
            fs::rename(&target, &aside).map_err(|e| raced(&target, e))?;
            old = Some(aside);
        } else if target.is_dir() {
            // An empty folder: replace it (rename over a directory is not portable).
            match fs::remove_dir(&target) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::io(&target, e));
                }
                _ => {}
            }
        }
        if let Err(e) = fs::rename(&self.stage, &target) {
            if let Some(aside) = &old {
                let _ = fs::rename(aside, &target);
            }
            return Err(raced(&target, e));
        }
        self.committed = true;
        if let Some(aside) = old {
            // Best effort: the new run is in place; a left-over hidden folder is harmless.
            let _ = remove_any(&aside);
        }
        sync_dir(&parent_dir(&target));
        Ok(target)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = remove_any(&self.stage);
        }
    }
}

/// The stage `.<name>.partial-<pid>-<n>` of `out` that a killed process left holding a training
/// checkpoint newer than `out`'s own (the newest when there are several), from which a run can resume with
/// [`RunDir::adopt`]; `None` when there is none. Such a stage is the resumable state of a run
/// that was replacing `out` (or continuing it) when it was killed: it stays until the next run
/// written to `out` takes it over (a resume) or removes it (any other run).
pub fn resumable_stage(out: &Path) -> Option<PathBuf> {
    // Only a checkpoint newer than the run's own: a stage killed just after the swap of a commit
    // holds the old run.
    let own = fs::metadata(out.join(CHECKPOINT_FILE))
        .and_then(|m| m.modified())
        .ok();
    stale_siblings(out, &["partial"])
        .into_iter()
        .filter_map(|stage| {
            let meta = fs::metadata(stage.join(CHECKPOINT_FILE)).ok()?;
            let modified = meta.modified().ok();
            let newer = own.is_none() || modified > own;
            (meta.is_file() && newer).then_some((modified, stage))
        })
        .max()
        .map(|(_, stage)| stage)
}

/// Removes the stages and set-aside runs that killed processes left for `out` (what
/// [`RunDir::create`] does first), for a command that ends without writing `out`.
pub fn clean_stale_stages(out: &Path) {
    clean_stale(out, &["partial", "old"]);
}

/// Checks that `path` is a run folder (a folder holding `model.safetensors`) and returns it.
pub fn open_existing(path: &Path) -> Result<PathBuf> {
    if path.join(MODEL_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    let reason = if path.is_dir() {
        "is not a partlearn run folder (no model.safetensors): give the folder a fit saved"
    } else {
        "no such run folder: give the folder a fit saved"
    };
    Err(Error::format(path, reason))
}

/// Where `path` points once written: its folder resolved (absolute, symlinks and `..` followed,
/// as far as it exists; the missing rest appended as given) plus its file name. That is the file
/// an atomic write replaces, so two paths with the same resolution are the same output.
pub fn resolve_path(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(d) => d.join(path),
            Err(_) => path.to_path_buf(),
        }
    };
    let (dir, name) = match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => (dir.to_path_buf(), Some(name.to_os_string())),
        _ => (abs.clone(), None),
    };
    let parts: Vec<Component> = dir.components().collect();
    // The longest prefix that exists, canonicalized; the rest applied lexically.
    let mut resolved = None;
    let mut split = parts.len();
    while split > 0 {
        let prefix: PathBuf = parts[..split].iter().collect();
        if let Ok(c) = fs::canonicalize(&prefix) {
            resolved = Some(c);
            break;
        }
        split -= 1;
    }
    let mut out = resolved.unwrap_or_default();
    for c in &parts[split..] {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    if let Some(name) = name {
        out.push(name);
    }
    out
}

/// Refuses an output path `out` that would overwrite the model being read from `run` (a run
/// folder or a model file) or any file of its run folder (`model.safetensors`, `run.json`,
/// `history.jsonl`, figures, …) — whatever `force` says.
pub fn check_output_outside_run(run: &Path, out: &Path) -> Result<()> {
    let target = resolve_path(out);
    let refuse = |what: String| {
        Err(Error::invalid(
            "out",
            out.display(),
            format!(
                "{what}; `force` never overwrites the run being read: choose an `out` outside the run folder"
            ),
        ))
    };
    // The run folder: `run` itself, or the folder of a model file when that folder is a run.
    let run_dir = if run.is_dir() {
        Some(run.to_path_buf())
    } else {
        if run.is_file() && target == resolve_path(run) {
            return refuse(format!("it is the model file {} being read", run.display()));
        }
        let parent = parent_dir(run);
        parent.join(RUN_FILE).is_file().then_some(parent)
    };
    let Some(dir) = run_dir else {
        return Ok(());
    };
    let Ok(dir_resolved) = fs::canonicalize(&dir) else {
        return Ok(());
    };
    if let Ok(rel) = target.strip_prefix(&dir_resolved) {
        let first = rel.components().next();
        let reserved = first.is_some_and(|c| RUN_ENTRIES.iter().any(|r| c.as_os_str() == *r));
        if first.is_none() || reserved || fs::symlink_metadata(&target).is_ok() {
            return refuse(format!("it lies in the run folder {} being read", dir.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
