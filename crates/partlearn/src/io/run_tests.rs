//! Tests of the run folder writer ([`super`]): staging, atomic commits, stale-stage cleanup, resumable stages.

use super::*;
use crate::io::test_dir;
use serde_json::Value;
use std::collections::BTreeMap;

/// The keys of a `run.json` as `partlearn fit` writes them.
fn record() -> Value {
    serde_json::json!({"method": "nmf", "partlearn_version": "0.1.0", "options": {"k": 3}})
}

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
    assert!(err.to_string().contains("allow overwriting"), "{err}");
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

    // So is a folder holding only a run's files without run.json (a killed `fit ae`).
    let killed = dir.path().join("killed");
    fs::create_dir(&killed).unwrap();
    fs::write(killed.join("checkpoint.safetensors"), b"c").unwrap();
    let run = RunDir::create(&killed, true).unwrap();
    run.write(MODEL_FILE, b"m").unwrap();
    run.commit().unwrap();
    assert_eq!(names(&killed), vec![MODEL_FILE]);
}

#[test]
fn force_never_replaces_what_is_not_a_run() {
    let dir = test_dir("run-force-user");
    // A plain file at the target.
    let file_target = dir.path().join("notes.txt");
    fs::write(&file_target, b"precious").unwrap();
    let msg = RunDir::create(&file_target, true).unwrap_err().to_string();
    assert!(
        msg.contains("not a partlearn run folder") && msg.contains("invalid out = "),
        "{msg}"
    );
    assert_eq!(fs::read(&file_target).unwrap(), b"precious");
    // A folder of the user's (no run.json).
    let user = dir.path().join("thesis");
    fs::create_dir(&user).unwrap();
    fs::write(user.join("thesis.txt"), b"precious").unwrap();
    fs::write(user.join(MODEL_FILE), b"someone else's").unwrap();
    let msg = RunDir::create(&user, true).unwrap_err().to_string();
    assert!(msg.contains("no run.json") && msg.contains("thesis.txt"), "{msg}");
    assert_eq!(names(&user), vec![MODEL_FILE, "thesis.txt"]);
    // A user folder that appears at the target while the run is computed.
    let later = dir.path().join("later");
    let run = RunDir::create(&later, true).unwrap();
    run.write(MODEL_FILE, b"m").unwrap();
    fs::create_dir(&later).unwrap();
    fs::write(later.join("thesis.txt"), b"precious").unwrap();
    assert!(matches!(run.commit(), Err(Error::InvalidOption { .. })));
    assert_eq!(fs::read(later.join("thesis.txt")).unwrap(), b"precious");
    let mut left = names(dir.path());
    left.retain(|n| n.starts_with('.'));
    assert!(left.is_empty(), "stage left behind: {left:?}");
}

#[test]
fn force_never_replaces_a_folder_whose_run_json_is_not_partlearns() {
    let dir = test_dir("run-force-foreign");
    let foreign = dir.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("precious.txt"), b"precious").unwrap();
    for json in [
        &br#"{"a":1}"#[..],
        b"[1,2,3]",
        b"{}",
        br#"{"method": "nmf"}"#,
        br#"{"method": "nmf", "partlearn_version": 1}"#,
        b"not json",
    ] {
        fs::write(foreign.join(RUN_FILE), json).unwrap();
        let msg = RunDir::create(&foreign, true).unwrap_err().to_string();
        assert!(
            msg.contains("foreign")
                && msg.contains("run.json was not written by partlearn")
                && msg.contains("choose another `out`"),
            "{msg}"
        );
        assert_eq!(names(&foreign), vec!["precious.txt", RUN_FILE]);
    }
    // Nor is a folder with a run.json folder in it.
    fs::remove_file(foreign.join(RUN_FILE)).unwrap();
    fs::create_dir(foreign.join(RUN_FILE)).unwrap();
    assert!(RunDir::create(&foreign, true).is_err());
    assert_eq!(fs::read(foreign.join("precious.txt")).unwrap(), b"precious");
    assert_eq!(names(dir.path()), vec!["foreign"], "no stage left");
}

#[test]
fn force_replaces_a_run_with_the_files_partlearn_writes_beside_its_run_json() {
    // The files other commands write into a run folder (a sweep point's record, an online fit's
    // codes, a semi-supervised fit's predictions) are the run's: the whole folder is replaced.
    let dir = test_dir("run-force-extra");
    let target = dir.path().join("run");
    let run = RunDir::create(&target, false).unwrap();
    run.write_json(RUN_FILE, &record()).unwrap();
    run.commit().unwrap();
    for name in [SWEEP_POINT_FILE, CODES_FILE, LABELS_PRED_FILE] {
        fs::write(target.join(name), b"[]").unwrap();
    }
    fs::write(target.join(".metrics.json.tmp-4194399-3"), b"half").unwrap();
    let run = RunDir::create(&target, true).unwrap();
    run.write(MODEL_FILE, b"new").unwrap();
    run.commit().unwrap();
    assert_eq!(names(&target), vec![MODEL_FILE]);
}

#[test]
fn force_never_deletes_a_users_file_beside_a_runs_files() {
    // A run folder partlearn wrote, to which the user added files (notes, a transform's output
    // inside the folder): `force` refuses, names the first file, and deletes nothing.
    let dir = test_dir("run-force-user-file");
    let target = dir.path().join("run");
    let run = RunDir::create(&target, false).unwrap();
    run.write_json(RUN_FILE, &record()).unwrap();
    run.write(MODEL_FILE, b"old").unwrap();
    run.commit().unwrap();
    fs::write(target.join("notes.txt"), b"precious").unwrap();
    fs::write(target.join("test_codes.npy"), b"precious").unwrap();
    for at_commit in [false, true] {
        let err = if at_commit {
            // The file may also appear while the new run is computed.
            fs::remove_file(target.join("notes.txt")).unwrap();
            fs::remove_file(target.join("test_codes.npy")).unwrap();
            let run = RunDir::create(&target, true).unwrap();
            run.write(MODEL_FILE, b"new").unwrap();
            fs::write(target.join("notes.txt"), b"precious").unwrap();
            run.commit().unwrap_err()
        } else {
            RunDir::create(&target, true).unwrap_err()
        };
        let msg = err.to_string();
        assert!(
            msg.contains("also holds notes.txt, which partlearn did not write")
                && msg.contains("move it out of the folder"),
            "{msg}"
        );
        assert_eq!(!at_commit, msg.contains("(and 1 more)"), "{msg}");
        assert_eq!(fs::read(target.join("notes.txt")).unwrap(), b"precious");
        assert_eq!(fs::read(target.join(MODEL_FILE)).unwrap(), b"old");
    }
    let mut left = names(dir.path());
    left.retain(|n| n.starts_with('.'));
    assert!(left.is_empty(), "stage left behind: {left:?}");
}

#[test]
fn unwritable_out_names_the_users_path() {
    let dir = test_dir("run-unwritable");
    let file = dir.path().join("somefile.txt");
    fs::write(&file, b"x").unwrap();
    let mut targets = vec![file.join("run"), file.join("a/run")];
    // /proc refuses new folders even to root (permissions do not).
    if Path::new("/proc/self").exists() {
        targets.push(PathBuf::from("/proc/partlearn-test-run"));
    }
    for target in targets {
        let e = RunDir::create(&target, false).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert!(
            msg.starts_with(&format!("{}: cannot create", target.display()))
                && msg.contains("choose a writable `out` folder")
                && !msg.contains("partial"),
            "{msg}"
        );
    }
    assert_eq!(names(dir.path()), vec!["somefile.txt"]);
    // A write that fails in the stage names the file's place in the run.
    let target = dir.path().join("run");
    let run = RunDir::create(&target, false).unwrap();
    fs::remove_dir(run.stage()).unwrap();
    fs::write(run.stage(), b"in the way").unwrap();
    let msg = run.write(MODEL_FILE, b"m").unwrap_err().to_string();
    assert!(
        msg.starts_with(&target.join(MODEL_FILE).display().to_string()) && !msg.contains("partial"),
        "{msg}"
    );
}

#[test]
fn resolve_path_follows_dots_and_missing_folders() {
    let dir = test_dir("run-resolve");
    let base = fs::canonicalize(dir.path()).unwrap();
    fs::create_dir(dir.path().join("a")).unwrap();
    let r = |p: &str| resolve_path(&dir.path().join(p));
    assert_eq!(r("a/x.npy"), base.join("a/x.npy"));
    assert_eq!(r("a/../a/./x.npy"), base.join("a/x.npy"));
    assert_eq!(r("new/x.npy"), r("new/../new/x.npy"));
    assert_eq!(r("new/x.npy"), base.join("new/x.npy"));
    assert_ne!(r("a/x.npy"), r("a/y.npy"));
}

#[test]
fn output_may_not_land_on_the_run_being_read() {
    let dir = test_dir("run-outside");
    let target = dir.path().join("run");
    let run = RunDir::create(&target, false).unwrap();
    run.write(MODEL_FILE, b"m").unwrap();
    run.write(RUN_FILE, b"{}").unwrap();
    run.commit().unwrap();
    let model = target.join(MODEL_FILE);
    for out in [
        model.clone(),
        target.join(RUN_FILE),
        target.join("../run/history.jsonl"),
        target.join("figures/atoms.png"),
        target.clone(),
    ] {
        for from in [&target, &model] {
            let err = check_output_outside_run(from, &out).unwrap_err().to_string();
            assert!(err.contains("`out` outside the run"), "{err}");
        }
    }
    // A new, non-run name inside the folder and any path outside it are fine; the names of
    // files other commands write into a run are not.
    check_output_outside_run(&target, &target.join("test_codes.npy")).unwrap();
    assert!(check_output_outside_run(&target, &target.join(CODES_FILE)).is_err());
    check_output_outside_run(&target, &dir.path().join("codes.npy")).unwrap();
    // A model file outside any run: only the file itself is protected.
    let lone = dir.path().join("lone.safetensors");
    fs::write(&lone, b"m").unwrap();
    fs::write(dir.path().join("old.npy"), b"x").unwrap();
    assert!(check_output_outside_run(&lone, &lone).is_err());
    check_output_outside_run(&lone, &dir.path().join("old.npy")).unwrap();
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
        msg.contains("no model.safetensors") && msg.contains("the folder a fit saved"),
        "{msg}"
    );
    let msg = open_existing(&dir.path().join("nope")).unwrap_err().to_string();
    assert!(msg.contains("no such run folder"), "{msg}");
}

#[test]
fn stale_stages_of_dead_processes_are_cleaned_on_the_next_write() {
    let dir = test_dir("run-stale");
    let target = dir.path().join("run");
    // Beyond Linux's largest pid (2^22): that process is gone. Pid 1 started at boot,
    // before its stage: it may be writing, so its stage stays.
    let dead = dir.path().join(".run.partial-4194399-7");
    let dead_old = dir.path().join(".run.old-4194399-8");
    let alive = dir.path().join(".run.partial-1-0");
    let other = dir.path().join(".other.partial-4194399-7");
    for d in [&dead, &dead_old, &alive, &other] {
        fs::create_dir(d).unwrap();
        fs::write(d.join(MODEL_FILE), b"half").unwrap();
    }
    let tmp = dir.path().join(".notes.txt.tmp-4194399-2");
    fs::write(&tmp, b"half").unwrap();
    let run = RunDir::create(&target, false).unwrap();
    run.write(MODEL_FILE, b"m").unwrap();
    run.commit().unwrap();
    let proc_known = Path::new("/proc/stat").is_file();
    assert_eq!(dead.exists(), !proc_known);
    assert_eq!(dead_old.exists(), !proc_known);
    assert!(
        alive.exists() && other.exists(),
        "only this target's stages of dead processes go"
    );
    write_atomic(&dir.path().join("notes.txt"), b"n").unwrap();
    assert_eq!(tmp.exists(), !proc_known);
}

/// A killed process's stage holding a checkpoint newer than the run's own is found and taken
/// over whole (its files move to a stage of this process); the replaced run swaps in at once.
#[test]
fn a_killed_stage_with_a_newer_checkpoint_is_resumable_and_adopted() {
    if !Path::new("/proc/stat").is_file() {
        return;
    }
    let dir = test_dir("run-adopt");
    let target = dir.path().join("run");
    let old = RunDir::create(&target, false).unwrap();
    old.write_json(RUN_FILE, &record()).unwrap();
    old.write(CHECKPOINT_FILE, b"old").unwrap();
    old.commit().unwrap();
    // No stage: nothing to resume; a dead stage without a checkpoint: neither.
    assert_eq!(resumable_stage(&target), None);
    let empty = dir.path().join(".run.partial-4194399-1");
    fs::create_dir(&empty).unwrap();
    assert_eq!(resumable_stage(&target), None);
    let dead = dir.path().join(".run.partial-4194399-2");
    fs::create_dir(&dead).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(dead.join(CHECKPOINT_FILE), b"new").unwrap();
    fs::write(dead.join(HISTORY_FILE), b"{}\n").unwrap();
    // A stale temp file of a checkpoint does not make a folder "not a run".
    assert!(is_run_temp(".checkpoint.safetensors.tmp-4194399-3"));
    assert!(!is_run_temp(".notes.txt.tmp-4194399-3") && !is_run_temp(CHECKPOINT_FILE));
    assert_eq!(resumable_stage(&target).as_deref(), Some(dead.as_path()));
    let run = RunDir::adopt(&target, &dead).unwrap();
    assert!(!dead.exists() && !empty.exists());
    assert_eq!(fs::read(run.path_of(CHECKPOINT_FILE)).unwrap(), b"new");
    assert_eq!(fs::read(target.join(CHECKPOINT_FILE)).unwrap(), b"old");
    run.write_json(RUN_FILE, &record()).unwrap();
    run.commit().unwrap();
    assert_eq!(fs::read(target.join(CHECKPOINT_FILE)).unwrap(), b"new");
    assert_eq!(names(dir.path()), vec!["run"]);
    // An old run under a dead stage's name (a kill right after the swap) is not newer.
    let swapped = dir.path().join(".run.partial-4194399-4");
    fs::create_dir(&swapped).unwrap();
    fs::write(swapped.join(CHECKPOINT_FILE), b"older").unwrap();
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(swapped.join(CHECKPOINT_FILE))
        .unwrap()
        .set_modified(past)
        .unwrap();
    assert_eq!(resumable_stage(&target), None);
}
