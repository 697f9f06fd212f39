//! Helpers shared by the command-line test binaries: running `partlearn`, temporary folders, and
//! the check that bad input is a one-line `error: …` with exit 2 and no panic.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    let o = run(&[
        "fit",
        "nmf",
        "--data",
        "swimmer",
        "-k",
        "17",
        "--max-iter",
        "40",
        "--json",
        "--save-codes",
        "--quiet",
        "--out",
        s(&run_dir),
    ]);
    assert_ok(&o);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["method"], "nmf");
    assert!(summary["rel_error"].as_f64().unwrap() < 0.5);
    run_dir
}

pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
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
