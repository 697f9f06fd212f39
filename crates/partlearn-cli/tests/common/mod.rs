//! Helpers shared by the command-line test binaries: running `partlearn` (and the fits several
//! tests start from), temporary folders, reading what a run wrote, Ctrl-C, and the check that bad
//! input is a one-line `error: …` with exit 2 and no panic.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use partlearn::npy::{npy_bytes, NpyDataRef};

pub fn partlearn() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("partlearn"))
}

pub fn run(args: &[&str]) -> Output {
    partlearn().args(args).output().unwrap()
}

/// A fresh folder named after the test binary, `name` and the process.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "partlearn-{}-{name}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_ok(o: &Output) {
    assert!(o.status.success(), "failed: {}", stderr(o));
}

/// Exit 2, one line `error: …` on stderr containing every keyword, no panic.
pub fn assert_user_error(o: &Output, keywords: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit 2, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for k in keywords {
        assert!(
            lines[0].to_lowercase().contains(&k.to_lowercase()),
            "missing '{k}' in: {err}"
        );
    }
}

/// [`assert_user_error`] for `partlearn args`, which must also leave no run folder at `out`;
/// the output, for further checks.
pub fn assert_refused(args: &[&str], keywords: &[&str], out: &Path) -> Output {
    let o = run(args);
    assert_user_error(&o, keywords);
    assert!(!out.exists(), "{args:?} left a run folder");
    o
}

/// Whether Fashion-MNIST is installed (required when `PARTLEARN_REQUIRE_DATA` is set).
pub fn fashion_available() -> bool {
    let dirs: Vec<PathBuf> = match std::env::var_os("PARTLEARN_DATA_DIR") {
        Some(d) => vec![PathBuf::from(&d), PathBuf::from(d).join("fashion-mnist")],
        None => vec![PathBuf::from("/usr/share/datasets/fashion-mnist")],
    };
    let ok = dirs
        .iter()
        .any(|d| d.join("train-images-idx3-ubyte.gz").is_file());
    if !ok {
        assert!(
            std::env::var_os("PARTLEARN_REQUIRE_DATA").is_none(),
            "PARTLEARN_REQUIRE_DATA is set but Fashion-MNIST is missing (apt-get install -y dataset-fashion-mnist)"
        );
    }
    ok
}

pub fn write_npy_f32(path: &Path, rows: usize, cols: usize, v: &[f32]) {
    std::fs::write(path, npy_bytes(&[rows, cols], NpyDataRef::F32(v))).unwrap();
}

/// A run on swimmer, shared by several tests.
pub fn swimmer_run(dir: &Path) -> PathBuf {
    let run_dir = dir.join("run");
    let o = fit_swimmer(&run_dir)
        .args(["-k", "17", "--max-iter", "40", "--json", "--save-codes"])
        .output()
        .unwrap();
    assert_ok(&o);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["method"], "nmf");
    assert!(summary["rel_error"].as_f64().unwrap() < 0.5);
    run_dir
}

pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The tensor `name` of the model file in the run folder `run`.
pub fn model_tensor(run: &Path, name: &str) -> partlearn::io::Tensor {
    let (t, _) = partlearn::io::read_safetensors(&run.join("model.safetensors")).unwrap();
    partlearn::io::tensor_by_name(&t, name, run).unwrap().clone()
}

/// `partlearn fit METHOD --data DATA --quiet --out OUT`, for the caller to add arguments to (or to
/// spawn).
pub fn fit_command(method: &str, data: &str, out: &Path) -> Command {
    let mut c = partlearn();
    c.args(["fit", method, "--data", data, "--quiet", "--out"])
        .arg(out);
    c
}

/// [`fit_command`] with `args`, run to its end.
pub fn fit_quiet(method: &str, data: &str, out: &Path, args: &[&str]) -> Output {
    fit_command(method, data, out).args(args).output().unwrap()
}

/// `partlearn fit nmf --data swimmer --quiet --out OUT`, for the caller to add arguments to.
pub fn fit_swimmer(out: &Path) -> Command {
    fit_command("nmf", "swimmer", out)
}

/// [`fit_swimmer`] with `k` atoms and 3 iterations, plus `extra`.
pub fn fit_nmf(out: &Path, k: &str, extra: &[&str]) -> Output {
    fit_swimmer(out)
        .args(["-k", k, "--max-iter", "3"])
        .args(extra)
        .output()
        .unwrap()
}

pub fn ae_fit(cmd: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "fit",
        cmd,
        "--data",
        "swimmer",
        "-k",
        "8",
        "--batch-size",
        "32",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--quiet",
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// `partlearn fit CMD --resume RUN` on swimmer, quiet, plus `extra`.
pub fn ae_resume(cmd: &str, run_dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["fit", cmd, "--data", "swimmer", "--resume", s(run_dir), "--quiet"];
    args.extend_from_slice(extra);
    run(&args)
}

/// Sends SIGINT (what Ctrl-C sends) to the process `pid`.
pub fn sigint(pid: u32) {
    let killed = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

/// Ctrl-C to `child` after it ran `ms` milliseconds; its exit code.
pub fn ctrl_c_after(child: &mut Child, ms: u64) -> Option<i32> {
    std::thread::sleep(Duration::from_millis(ms));
    sigint(child.id());
    child.wait().unwrap().code()
}

/// Waits until `p` exists (at most a minute).
pub fn wait_for(p: &Path) {
    let t = Instant::now();
    while !p.exists() {
        assert!(t.elapsed().as_secs() < 60, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `partlearn transform RUN --data DATA --out CODES --quiet`.
pub fn transform(run_dir: &Path, data: &str, codes: &Path) -> Output {
    run(&[
        "transform",
        s(run_dir),
        "--data",
        data,
        "--out",
        s(codes),
        "--quiet",
    ])
}
