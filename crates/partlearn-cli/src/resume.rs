//! Where a long fit keeps its resumable state, shared by `fit ae`/`fit asym-ae`, `fit nmf` and
//! `fit neural-nmf`: the checkpoint (`checkpoint.safetensors`, every `--checkpoint-minutes`) and
//! `history.jsonl` as it grows. A new run in a free folder keeps them in the folder itself (a
//! killed run is resumed from there); a run replacing or continuing a finished run keeps them in
//! its stage, so that the run in `--out` stays whole whatever happens; `--resume` takes over the
//! stage a killed process left when its checkpoint is newer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use partlearn::io::{self, RunDir};

/// File name of the training checkpoint inside a run folder.
pub const CHECKPOINT_FILE: &str = io::run::CHECKPOINT_FILE;

/// The wall-clock interval of `--checkpoint-minutes` (`None` for 0: off).
pub fn checkpoint_interval(minutes: f64) -> Result<Option<Duration>> {
    if !(0.0..=1e6).contains(&minutes) {
        anyhow::bail!(
            "--checkpoint-minutes {minutes} is not a number of minutes in [0, 1e6]; give e.g. 10, or 0 to checkpoint only at the end"
        );
    }
    Ok((minutes > 0.0).then(|| Duration::from_secs_f64(minutes * 60.0)))
}

/// A run to resume: the stage a killed process left (taken over when its
/// checkpoint is there), and the checkpoint's path and bytes.
pub struct Resumed {
    pub adopted: Option<PathBuf>,
    pub source: PathBuf,
    pub bytes: Vec<u8>,
}

impl Resumed {
    /// Finds the checkpoint of the run in `dir` (`fit` names the command, e.g. `fit nmf`); `out`
    /// is the `--out` given, which must be `dir` itself.
    pub fn locate(dir: &Path, out: Option<&Path>, fit: &str) -> Result<Resumed> {
        // A process killed while it replaced or continued this run left its newer state in
        // its stage: that is where the run goes on from.
        let adopted = io::run::resumable_stage(dir);
        let source = adopted.clone().unwrap_or_else(|| dir.to_path_buf());
        let path = source.join(CHECKPOINT_FILE);
        if !path.is_file() {
            anyhow::bail!(
                "{}: no {CHECKPOINT_FILE} to resume from; give the folder of a `partlearn {fit}` run that was interrupted, ran out of time or was killed after its first checkpoint",
                dir.display()
            );
        }
        // The run continues in its own folder: a different --out would be ignored.
        if let Some(out) = out {
            let resolve = io::run::resolve_path;
            if resolve(out) != resolve(dir) {
                anyhow::bail!(
                    "--resume continues {} in place with its stored settings, so --out {} cannot apply; drop --out (or copy the run folder first and resume the copy)",
                    dir.display(),
                    out.display()
                );
            }
        }
        let bytes = io::read_regular(&path, u64::MAX)?;
        Ok(Resumed {
            adopted,
            source,
            bytes,
        })
    }

    /// The path the checkpoint was read from.
    pub fn path(&self) -> PathBuf {
        self.source.join(CHECKPOINT_FILE)
    }

    /// Iterations (epochs) a killed process had done after the checkpoint at `done`: the last
    /// `key` of the history it appended beside the checkpoint.
    pub fn redone(&self, key: &str, done: usize) -> usize {
        last_record(&self.source.join(io::run::HISTORY_FILE), key).saturating_sub(done)
    }
}

/// Where a fit's resumable state lives until the commit ([`place`]).
pub struct Placement {
    pub run_dir: RunDir,
    pub state_dir: PathBuf,
}

impl Placement {
    /// The checkpoint's path while the fit runs.
    pub fn checkpoint(&self) -> PathBuf {
        self.state_dir.join(CHECKPOINT_FILE)
    }
}

/// Chooses where the state of a fit writing to `out` lives (see the module's documentation);
/// `new_run` creates the run folder of a fit that does not resume. A resumed state outside its
/// new place is copied there at once: a kill before the next checkpoint resumes from there.
pub fn place(
    out: &Path,
    resumed: Option<&Resumed>,
    new_run: impl FnOnce() -> Result<RunDir>,
) -> Result<Placement> {
    if resumed.is_none() && only_history(out) {
        // What a fit killed before its first checkpoint leaves: nothing to resume from.
        for entry in std::fs::read_dir(out).into_iter().flatten().flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        let _ = std::fs::remove_dir(out);
    }
    let in_place = match resumed {
        None => !out.exists(),
        Some(r) => r.adopted.is_none() && only_training_state(out),
    };
    let run_dir = match resumed {
        Some(Resumed {
            adopted: Some(stage), ..
        }) => RunDir::adopt(out, stage)?,
        Some(_) => RunDir::create(out, true)?,
        None => new_run()?,
    };
    let state_dir = if in_place {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        out.to_path_buf()
    } else {
        run_dir.stage().to_path_buf()
    };
    if let (Some(r), false) = (resumed, in_place) {
        if r.source != state_dir {
            run_dir.write(CHECKPOINT_FILE, &r.bytes)?;
        }
    }
    Ok(Placement { run_dir, state_dir })
}

/// Errors when `out` holds the state of a fit killed before its end and the new run would
/// replace it without `--force`: it names the `--resume` command (`resume_cmd`).
pub fn refuse_unfinished(out: &Path, force: bool, resume_cmd: &str) -> Result<()> {
    if !force && only_training_state(out) {
        anyhow::bail!(
            "{} holds the checkpoint of a fit stopped before it finished: continue it with `{resume_cmd}`, or start over with --force",
            out.display(),
        );
    }
    Ok(())
}

/// True when `dir` is a folder holding a training checkpoint and nothing a finished run writes
/// beside it (only `history.jsonl`, and temporary files of a write that was killed): the state of
/// a training killed before its end.
pub fn only_training_state(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !io::run::is_run_temp(n))
        .collect();
    names.iter().any(|n| n == CHECKPOINT_FILE)
        && names
            .iter()
            .all(|n| n == CHECKPOINT_FILE || n == io::run::HISTORY_FILE)
}

/// True when `dir` is a folder holding a `history.jsonl` and nothing else (but temporary files
/// of a killed write): the state of a fit killed before its first checkpoint.
fn only_history(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !io::run::is_run_temp(n))
        .collect();
    names == [io::run::HISTORY_FILE]
}

/// The last `key` (`"epoch"`, `"iter"`) recorded in the `history.jsonl` at `path` (0 when there
/// is none): the last whole line that parses (a kill may cut the line being written).
fn last_record(path: &Path, key: &str) -> usize {
    let Ok(bytes) = io::read_regular(path, io::input::SMALL_FILE_CAP) else {
        return 0;
    };
    let whole = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None => return 0,
    };
    whole
        .split(|&b| b == b'\n')
        .rev()
        .find_map(|line| {
            let v: serde_json::Value = serde_json::from_slice(line).ok()?;
            v.get(key)?.as_u64()
        })
        .map_or(0, |e| e as usize)
}

/// Before the commit: the checkpoint moves into the stage when `keep` (the committed run can be
/// resumed) and is deleted otherwise; a folder that held only the state of this fit (a new run
/// in a free folder) is emptied so that the commit replaces it.
pub fn settle_checkpoint(run_dir: &RunDir, checkpoint: &Path, keep: bool) -> Result<()> {
    let staged = run_dir.path_of(CHECKPOINT_FILE);
    if checkpoint == staged {
        if !keep {
            let _ = std::fs::remove_file(checkpoint);
        }
        return Ok(());
    }
    if keep && checkpoint.is_file() {
        std::fs::rename(checkpoint, &staged)
            .with_context(|| format!("moving {} into the run", checkpoint.display()))?;
    } else {
        let _ = std::fs::remove_file(checkpoint);
    }
    if let Some(dir) = checkpoint.parent() {
        // The history kept beside it as training went (the run's own is in the stage), and
        // the temporary file of a checkpoint a killed process was writing.
        let _ = std::fs::remove_file(dir.join(io::run::HISTORY_FILE));
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if io::run::is_run_temp(&entry.file_name().to_string_lossy()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        // Only our checkpoint was there for a new run: an empty folder is replaced by the
        // commit.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}
