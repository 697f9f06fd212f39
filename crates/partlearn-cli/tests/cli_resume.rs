//! `fit nmf` checkpoints and `--resume`: a fit out of time, interrupted or killed continues from
//! its checkpoint to the model an uninterrupted fit writes (same tensors, same history), says
//! what it redoes, and refuses the flags it cannot apply.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;

/// A planted low-rank matrix large enough for a fit of a few seconds.
fn lowrank(dir: &Path) -> PathBuf {
    let x = dir.join("x.npy");
    let o = run(&[
        "data",
        "generate",
        "lowrank",
        "--n",
        "3000",
        "--m",
        "300",
        "--k",
        "12",
        "--noise",
        "0.1",
        "--out",
        s(&x),
    ]);
    assert_ok(&o);
    x
}

/// `fit nmf` on `data` (HALS, k = 12, tolerance off) into `out`, plus `extra`.
fn nmf(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = fit_command("nmf", s(data), out);
    c.args(["-k", "12", "--tol", "0", "--init", "random"]).args(extra);
    c
}

fn tensors(run: &Path) -> Vec<partlearn::io::Tensor> {
    partlearn::io::read_safetensors(&run.join("model.safetensors"))
        .unwrap()
        .0
}

/// The history without its seconds.
fn history(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

fn resume(data: &Path, run_dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["fit", "nmf", "--data", s(data), "--resume", s(run_dir)];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn an_nmf_fit_out_of_time_resumes_to_the_uninterrupted_model() {
    let dir = temp_dir("nmf-resume-time");
    let x = lowrank(&dir);
    let straight = dir.join("straight");
    assert_ok(&nmf(&x, &straight, &["--max-iter", "300"]).output().unwrap());
    assert!(!straight.join("checkpoint.safetensors").exists());
    // Out of time after a fraction of the iterations: the run keeps its checkpoint and says how
    // to go on.
    let r = dir.join("r");
    let o = nmf(&x, &r, &["--max-iter", "300", "--max-seconds", "0.1"])
        .output()
        .unwrap();
    assert_ok(&o);
    let run_json = read_json(&r.join("run.json"));
    assert_eq!(run_json["stop_reason"], "time-limit", "{run_json}");
    assert!(r.join("checkpoint.safetensors").is_file());
    let done = run_json["n_iter"].as_u64().unwrap();
    assert!(done < 300, "the budget did not stop the fit ({done} iterations)");
    // The flags a resumed fit cannot apply are refused.
    let o = resume(&x, &r, &["-k", "5"]);
    assert_user_error(&o, &["--resume", "-k"]);
    let o = resume(&x, &r, &["--out", s(&dir.join("elsewhere"))]);
    assert_user_error(&o, &["--out", "in place"]);
    // Other data: refused, naming the fix.
    let other = dir.join("other.npy");
    assert_ok(&run(&[
        "data",
        "generate",
        "lowrank",
        "--n",
        "3000",
        "--m",
        "300",
        "--k",
        "12",
        "--seed",
        "9",
        "--out",
        s(&other),
    ]));
    let o = resume(&other, &r, &[]);
    assert_user_error(&o, &["differ", "checkpoint"]);
    // Resumed: the model and history of the uninterrupted fit; the checkpoint is gone.
    let o = resume(&x, &r, &["--quiet"]);
    assert_ok(&o);
    assert!(tensors(&r) == tensors(&straight), "the resumed model differs");
    assert_eq!(history(&r), history(&straight));
    assert!(!r.join("checkpoint.safetensors").exists());
    let run_json = read_json(&r.join("run.json"));
    assert_eq!(run_json["n_iter"], 300);
    assert_eq!(
        run_json["part"]["resumed_from_iter"].as_u64(),
        Some(done),
        "{run_json}"
    );
    // A finished fit has nothing to resume.
    let o = resume(&x, &r, &[]);
    assert_user_error(&o, &["no checkpoint.safetensors"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills `child` once `checkpoint` exists and the history in `log` runs past its iteration.
fn kill_after_checkpoint(child: &mut Child, checkpoint: &Path) {
    let t = Instant::now();
    while !checkpoint.exists() {
        assert!(t.elapsed().as_secs() < 120, "no checkpoint appeared");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the fit ended before its first checkpoint: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(60));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_killed_nmf_fit_resumes_from_its_last_checkpoint_and_says_what_it_redoes() {
    let dir = temp_dir("nmf-resume-kill");
    let x = lowrank(&dir);
    for (solver, extra) in [
        ("hals", &[][..]),
        ("mu", &["--beta-loss", "kullback-leibler"][..]),
    ] {
        // Checkpoints every 0.12 s and the history on disk from the start; killed between two
        // checkpoints.
        let r = dir.join(format!("killed-{solver}"));
        let common = [&["--solver", solver][..], extra].concat();
        let spawn_args = [
            &common[..],
            &[
                "--max-iter",
                "100000000",
                "--checkpoint-minutes",
                "0.002",
                "--history-after",
                "0",
            ],
        ]
        .concat();
        let mut child = nmf(&x, &r, &spawn_args).spawn().unwrap();
        kill_after_checkpoint(&mut child, &r.join("checkpoint.safetensors"));
        assert!(!r.join("run.json").exists());
        let done_when_killed = std::fs::read_to_string(r.join("history.jsonl"))
            .unwrap()
            .lines()
            .count();
        let total = (done_when_killed + 30).to_string();
        // A new fit there without --force is refused, naming --resume.
        let o = nmf(&x, &r, &["--max-iter", "3"]).output().unwrap();
        assert_user_error(&o, &["stopped before it finished", "--resume", "--force"]);
        let o = resume(&x, &r, &["--max-iter", &total]);
        assert_ok(&o);
        let err = stderr(&o);
        assert!(err.contains("from its checkpoint at iteration"), "{err}");
        let straight = dir.join(format!("straight-{solver}"));
        let args = [&common[..], &["--max-iter", &total]].concat();
        assert_ok(&nmf(&x, &straight, &args).output().unwrap());
        assert!(
            tensors(&r) == tensors(&straight),
            "{solver}: the resumed model differs"
        );
        assert_eq!(history(&r), history(&straight), "{solver}");
        let part = &read_json(&r.join("run.json"))["part"];
        assert!(part["redone_iters"].as_u64().is_some(), "{part}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_interrupted_nmf_fit_over_an_old_run_keeps_the_old_run_until_it_commits() {
    let dir = temp_dir("nmf-resume-force");
    let x = lowrank(&dir);
    let r = dir.join("r");
    assert_ok(&nmf(&x, &r, &["--max-iter", "2"]).output().unwrap());
    let before = tensors(&r);
    // --force over it, killed after a checkpoint: the old run is untouched, the state is in
    // the stage, and --resume takes the stage over.
    let mut child = nmf(
        &x,
        &r,
        &["--force", "--max-iter", "100000", "--checkpoint-minutes", "0.005"],
    )
    .spawn()
    .unwrap();
    let t = Instant::now();
    let staged = loop {
        let found = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path().join("checkpoint.safetensors"))
            .find(|p| p.exists());
        if let Some(p) = found {
            break p;
        }
        assert!(t.elapsed().as_secs() < 120, "no staged checkpoint appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(staged.exists());
    assert!(tensors(&r) == before, "the old run changed");
    let o = resume(&x, &r, &["--max-iter", "300", "--quiet"]);
    assert_ok(&o);
    assert_eq!(read_json(&r.join("run.json"))["n_iter"], 300);
    let hidden: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "stages left: {hidden:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn neural_nmf_out_of_time_resumes_to_the_uninterrupted_model() {
    let dir = temp_dir("neural-resume");
    let fit = |out: &Path, extra: &[&str]| {
        let mut c = fit_command("neural-nmf", "toy-hierarchy", out);
        c.args([
            "--ranks",
            "9,4,2",
            "--restarts",
            "2",
            "--optimizer",
            "adam",
            "--lr",
            "0.01",
            "--decay",
            "0.999",
        ])
        .args(extra);
        c.output().unwrap()
    };
    let straight = dir.join("straight");
    assert_ok(&fit(&straight, &["--epochs", "3000"]));
    let r = dir.join("r");
    assert_ok(&fit(&r, &["--epochs", "3000", "--max-seconds", "0.3"]));
    let run_json = read_json(&r.join("run.json"));
    assert_eq!(run_json["stop_reason"], "time-limit", "{run_json}");
    assert!(r.join("checkpoint.safetensors").is_file());
    let again = |extra: &[&str]| {
        let mut args = vec!["fit", "neural-nmf", "--data", "toy-hierarchy", "--resume", s(&r)];
        args.extend_from_slice(extra);
        run(&args)
    };
    assert_user_error(&again(&["--ranks", "9,4"]), &["--resume", "--ranks"]);
    assert_user_error(&again(&["--first", "80"]), &["checkpoint", "90"]);
    let o = again(&["--quiet"]);
    assert_ok(&o);
    assert!(tensors(&r) == tensors(&straight), "the resumed model differs");
    assert_eq!(history(&r), history(&straight));
    assert!(!r.join("checkpoint.safetensors").exists());
    assert!(read_json(&r.join("run.json"))["part"]["resumed_from_epoch"]
        .as_u64()
        .is_some());
    let _ = std::fs::remove_dir_all(&dir);
}
