//! Helpers shared by the command-line test binaries: running `partlearn`, temporary folders, and
//! the check that bad input is a one-line `error: …` with exit 2 and no panic.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
