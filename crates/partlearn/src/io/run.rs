//! Run folders: `run.json`, `model.safetensors`, `history.jsonl`, `metrics.json`, `figures/*.png`.
//!
//! A run is staged in a hidden sibling folder `.<name>.partial-<pid>-<n>` and moved into place
//! by [`RunDir::commit`], so the target folder never holds a half-written run: it holds the
//! complete old run, or the complete new one (or, for the instant between two renames when
//! replacing with `force`, nothing). Dropping an uncommitted [`RunDir`] (e.g. on an error)
//! removes the stage.

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::io::atomic::{parent_dir, sibling, sync_dir, unique_suffix, write_atomic, write_atomic_with};

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

/// A run folder being written: files go to a stage, [`commit`](RunDir::commit) moves it into place.
#[derive(Debug)]
pub struct RunDir {
    target: PathBuf,
    stage: PathBuf,
    force: bool,
    committed: bool,
}

/// True when `path` exists and is not an empty directory.
fn occupied(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
        Ok(meta) if meta.is_dir() => {
            let mut entries = fs::read_dir(path).map_err(|e| Error::io(path, e))?;
            Ok(entries.next().is_some())
        }
        Ok(_) => Ok(true),
    }
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
            "run file",
            rel,
            "give a relative path inside the run folder (no '..', no leading '/')",
        ))
    }
}

impl RunDir {
    /// Starts a run folder at `path`, staged in a fresh hidden sibling.
    ///
    /// Errors with [`Error::AlreadyExists`] when `path` exists and is not an empty folder, unless
    /// `force` is set (the old run is then replaced at [`commit`](RunDir::commit)).
    pub fn create(path: &Path, force: bool) -> Result<RunDir> {
        if !force && occupied(path)? {
            return Err(Error::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        let parent = parent_dir(path);
        fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let stage = sibling(path, &format!("partial-{}", unique_suffix()))?;
        remove_any(&stage).map_err(|e| Error::io(&stage, e))?;
        fs::create_dir(&stage).map_err(|e| Error::io(&stage, e))?;
        Ok(RunDir {
            target: path.to_path_buf(),
            stage,
            force,
            committed: false,
        })
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
        write_atomic(&self.path_of(rel), bytes)
    }

    /// Streams `rel` in the stage atomically (e.g. `history.jsonl`).
    pub fn write_with<F>(&self, rel: &str, write: F) -> Result<()>
    where
        F: FnOnce(&mut dyn Write) -> io::Result<()>,
    {
        check_rel(rel)?;
        write_atomic_with(&self.path_of(rel), write)
    }

    /// Serializes `value` as pretty JSON into `rel`.
    pub fn write_json<S: Serialize + ?Sized>(&self, rel: &str, value: &S) -> Result<()> {
        self.write(rel, &to_json_pretty(value)?)
    }

    /// Moves the staged run to its target and returns the target path.
    ///
    /// An existing target (allowed only with `force`) is first renamed to `.<name>.old-<pid>-<n>`,
    /// the stage renamed into place, then the old run deleted. If the second rename fails the old
    /// run is put back.
    pub fn commit(mut self) -> Result<PathBuf> {
        let target = self.target.clone();
        let mut old = None;
        if occupied(&target)? {
            if !self.force {
                return Err(Error::AlreadyExists { path: target });
            }
            let aside = sibling(&target, &format!("old-{}", unique_suffix()))?;
            fs::rename(&target, &aside).map_err(|e| Error::io(&target, e))?;
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
            return Err(Error::io(&target, e));
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

/// Checks that `path` is a run folder (a folder holding `model.safetensors`) and returns it.
pub fn open_existing(path: &Path) -> Result<PathBuf> {
    if path.join(MODEL_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    let reason = if path.is_dir() {
        "is not a partlearn run folder (no model.safetensors): give the --out folder of a `partlearn fit` run"
    } else {
        "no such run folder: give the --out folder of a `partlearn fit` run"
    };
    Err(Error::format(path, reason))
}

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
        "JSON value",
        std::any::type_name::<S>(),
        format!("cannot be written as JSON ({e})"),
    )
}

/// Reads and parses a JSON file; a parse error becomes [`Error::BadFormat`] with serde's message.
pub fn read_json<D: DeserializeOwned>(path: &Path) -> Result<D> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
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

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn create_write_commit() {
        let dir = test_dir("run-commit");
        let target = dir.path().join("runs/nmf");
        let run = RunDir::create(&target, false).unwrap();
        assert!(!target.exists());
        run.write(MODEL_FILE, b"model").unwrap();
        run.write_json(RUN_FILE, &BTreeMap::from([("seed", 0)])).unwrap();
        run.write("figures/atoms.png", b"png").unwrap();
        run.write_with(HISTORY_FILE, |w| writeln!(w, "{{\"iter\":0}}"))
            .unwrap();
        assert!(run.path_of("figures/atoms.png").is_file());
        assert!(!target.exists(), "nothing at the target before commit");
        let done = run.commit().unwrap();
        assert_eq!(done, target);
        assert_eq!(
            names(&target),
            vec!["figures", "history.jsonl", "model.safetensors", "run.json"]
        );
        assert_eq!(fs::read(target.join("figures/atoms.png")).unwrap(), b"png");
        let meta: BTreeMap<String, i32> = read_json(&target.join(RUN_FILE)).unwrap();
        assert_eq!(meta["seed"], 0);
        // Only the run itself is left in the parent: no stage, no temp files.
        assert_eq!(names(&dir.path().join("runs")), vec!["nmf"]);
        assert_eq!(open_existing(&target).unwrap(), target);
    }

    #[test]
    fn refuses_overwrite_without_force() {
        let dir = test_dir("run-refuse");
        let target = dir.path().join("run");
        let run = RunDir::create(&target, false).unwrap();
        run.write(MODEL_FILE, b"old").unwrap();
        run.commit().unwrap();
        let err = RunDir::create(&target, false).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
        assert!(err.to_string().contains("--force"));
        assert_eq!(fs::read(target.join(MODEL_FILE)).unwrap(), b"old");
        // An empty existing folder is fine.
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let run = RunDir::create(&empty, false).unwrap();
        run.write(MODEL_FILE, b"m").unwrap();
        run.commit().unwrap();
        assert!(empty.join(MODEL_FILE).is_file());
    }

    #[test]
    fn commit_refuses_target_that_appeared_meanwhile() {
        let dir = test_dir("run-race");
        let target = dir.path().join("run");
        let run = RunDir::create(&target, false).unwrap();
        let stage = run.stage().to_path_buf();
        fs::create_dir(&target).unwrap();
        fs::write(target.join("other"), b"x").unwrap();
        assert!(matches!(run.commit(), Err(Error::AlreadyExists { .. })));
        assert!(!stage.exists());
        assert_eq!(names(&target), vec!["other"]);
    }

    #[test]
    fn force_replaces_whole_run() {
        let dir = test_dir("run-force");
        let target = dir.path().join("run");
        let run = RunDir::create(&target, false).unwrap();
        run.write(MODEL_FILE, b"old").unwrap();
        run.write("figures/old.png", b"old").unwrap();
        run.commit().unwrap();

        let run = RunDir::create(&target, true).unwrap();
        run.write(MODEL_FILE, b"new").unwrap();
        // The old run is intact until commit.
        assert_eq!(fs::read(target.join(MODEL_FILE)).unwrap(), b"old");
        run.commit().unwrap();
        assert_eq!(fs::read(target.join(MODEL_FILE)).unwrap(), b"new");
        assert!(
            !target.join("figures").exists(),
            "no file of the old run survives"
        );
        assert_eq!(names(dir.path()), vec!["run"], "no stage or old copy left");

        // A plain file at the target is replaced too.
        let file_target = dir.path().join("file");
        fs::write(&file_target, b"x").unwrap();
        let run = RunDir::create(&file_target, true).unwrap();
        run.write(MODEL_FILE, b"m").unwrap();
        run.commit().unwrap();
        assert!(file_target.join(MODEL_FILE).is_file());
    }

    #[test]
    fn drop_without_commit_leaves_nothing() {
        let dir = test_dir("run-drop");
        let target = dir.path().join("run");
        {
            let run = RunDir::create(&target, false).unwrap();
            run.write(MODEL_FILE, b"half").unwrap();
            run.write("figures/a.png", b"half").unwrap();
            assert!(run.stage().is_dir());
        }
        assert!(names(dir.path()).is_empty());
        // With force, an aborted run leaves the old one untouched.
        let run = RunDir::create(&target, false).unwrap();
        run.write(MODEL_FILE, b"old").unwrap();
        run.commit().unwrap();
        {
            let run = RunDir::create(&target, true).unwrap();
            run.write(MODEL_FILE, b"new").unwrap();
        }
        assert_eq!(fs::read(target.join(MODEL_FILE)).unwrap(), b"old");
        assert_eq!(names(dir.path()), vec!["run"]);
    }

    #[test]
    fn nested_figure_path_and_bad_paths() {
        let dir = test_dir("run-nested");
        let run = RunDir::create(&dir.path().join("r"), false).unwrap();
        run.write("figures/dilation/panel-3.png", b"p").unwrap();
        assert!(run.path_of("figures/dilation/panel-3.png").is_file());
        for bad in ["../escape", "/abs", "", "figures/../../x"] {
            assert!(run.write(bad, b"x").is_err(), "{bad}");
        }
        let target = run.commit().unwrap();
        assert!(target.join("figures/dilation/panel-3.png").is_file());
        assert!(!dir.path().join("escape").exists());
    }

    #[test]
    fn open_existing_errors() {
        let dir = test_dir("run-open");
        let msg = open_existing(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("no model.safetensors") && msg.contains("partlearn fit"),
            "{msg}"
        );
        let msg = open_existing(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(msg.contains("no such run folder"), "{msg}");
    }

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
