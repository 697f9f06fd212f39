//! Hostile input, full disks and closed pipes (issue "Hostile input, full disks, signals"):
//! a crafted file or a broken stdout is a one-line error or a quiet exit, never a panic, an
//! abort, or a huge allocation.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;
use flate2::write::GzEncoder;
use flate2::Compression;

/// A gzip IDX file whose header declares `dims` bytes, followed by `zeros` zero bytes.
fn gz_idx(path: &std::path::Path, dims: &[u32], zeros: usize) {
    let mut head = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        head.extend_from_slice(&d.to_be_bytes());
    }
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(&head).unwrap();
    e.write_all(&vec![0u8; zeros]).unwrap();
    std::fs::write(path, e.finish().unwrap()).unwrap();
}

#[test]
fn idx_bomb_inflates_only_the_first_samples() {
    let dir = temp_dir("idx-bomb");
    let bomb = dir.join("bomb-images-idx3-ubyte.gz");
    // 2^21 images of 32 × 32 declared (2 GiB), 8 MiB present: --first 5 reads 5 images.
    gz_idx(&bomb, &[1 << 21, 32, 32], 8 << 20);
    let o = run(&["data", "info", s(&bomb), "--first", "5", "--json"]);
    assert_ok(&o);
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["n_samples"], 5);
    // The whole file: refused as truncated (or for its size) after at most what is there.
    let o = run(&["data", "info", s(&bomb)]);
    assert_user_error(&o, &["bomb-images"]);
    // A header declaring 1 TiB: refused from the header (before inflating anything).
    let huge = dir.join("huge-images-idx3-ubyte.gz");
    gz_idx(&huge, &[1 << 30, 32, 32], 1 << 20);
    let o = run(&["data", "info", s(&huge)]);
    assert_user_error(&o, &["GB of memory", "first"]);
}

#[test]
fn stdout_closed_or_full_is_never_a_panic() {
    // A full disk: one line naming the problem, exit 2.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = partlearn()
        .args(["data", "info", "swimmer"])
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    assert_user_error(&o, &["stdout", "No space left"]);
    // A reader that went away (`| head -c0`): a quiet exit 0.
    for args in [
        &["data", "info", "swimmer"][..],
        &["data", "info", "swimmer", "--json"],
    ] {
        let mut child = partlearn()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    }
}

#[test]
fn ae_k_beyond_memory_is_refused_before_allocating() {
    let dir = temp_dir("ae-k");
    let out = dir.join("run");
    assert_refused(
        &[
            "fit",
            "ae",
            "--data",
            "swimmer",
            "-k",
            "1000000000",
            "--out",
            s(&out),
        ],
        &["--k 1000000000", "GB of memory"],
        &out,
    );
}
