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

fn mkfifo(p: &std::path::Path) {
    let ok = std::process::Command::new("mkfifo").arg(p).status().unwrap();
    assert!(ok.success());
}

#[test]
fn force_replaces_only_files_the_command_writes() {
    use std::os::unix::fs::FileTypeExt;
    let dir = temp_dir("force-kinds");
    let run_dir = swimmer_run(&dir);
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let link = dir.join("devnull");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    let notes = dir.join("notes.npy");
    std::fs::write(&notes, b"my notes, not numpy").unwrap();
    let html = dir.join("notes.html");
    std::fs::write(&html, b"my page").unwrap();
    for target in [&fifo, &link, &notes] {
        let t = s(target);
        let o = run(&[
            "transform",
            s(&run_dir),
            "--data",
            "swimmer",
            "--out",
            t,
            "--force",
        ]);
        assert_user_error(&o, &["--force replaces only"]);
        let o = run(&["data", "export", "swimmer", "--out", t, "--force"]);
        assert_user_error(&o, &["--force replaces only"]);
    }
    for target in [&fifo, &link, &html] {
        let o = run(&["report", s(&run_dir), "--out", s(target), "--force"]);
        assert_user_error(&o, &["--force replaces only"]);
    }
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&notes).unwrap(), b"my notes, not numpy");
    assert_eq!(std::fs::read(&html).unwrap(), b"my page");
    // What the command wrote before is replaced.
    let codes = dir.join("codes.npy");
    assert_ok(&transform(&run_dir, "swimmer", &codes));
    let o = run(&[
        "transform",
        s(&run_dir),
        "--data",
        "swimmer",
        "--out",
        s(&codes),
        "--force",
        "--quiet",
    ]);
    assert_ok(&o);
}

#[test]
fn force_never_deletes_the_fits_own_inputs() {
    let dir = temp_dir("force-inputs");
    let run_dir = dir.join("run");
    assert_ok(&fit_nmf(&run_dir, "4", &[]));
    // Inputs kept inside the run folder that --force would replace.
    let data = run_dir.join("data.npy");
    assert_ok(&run(&[
        "data",
        "export",
        "swimmer",
        "--first",
        "64",
        "--out",
        s(&data),
    ]));
    let atoms = run_dir.join("atoms.npy");
    let v: Vec<f32> = (0..4 * 1024).map(|i| (i % 7) as f32 + 0.1).collect();
    write_npy_f32(&atoms, 4, 1024, &v);
    let o = fit_quiet(
        "nmf",
        s(&data),
        &run_dir,
        &["-k", "4", "--max-iter", "2", "--force"],
    );
    assert_user_error(&o, &["--data", "inside the run folder", "--force"]);
    let o = fit_quiet(
        "nmf",
        "swimmer",
        &run_dir,
        &[
            "-k",
            "4",
            "--max-iter",
            "2",
            "--force",
            "--init",
            "custom",
            "--init-atoms",
            s(&atoms),
        ],
    );
    assert_user_error(&o, &["--init-atoms", "inside the run folder"]);
    let o = fit_quiet("ae", s(&data), &run_dir, &["-k", "4", "--epochs", "1", "--force"]);
    assert_user_error(&o, &["--data", "inside the run folder"]);
    assert!(data.is_file() && atoms.is_file());
}

#[test]
fn export_never_rewrites_its_labels_through_the_default_labels_out() {
    let dir = temp_dir("export-labels");
    let labels = dir.join("x-labels.npy");
    let l: Vec<i32> = (0..256).map(|i| i % 3).collect();
    std::fs::write(
        &labels,
        partlearn::npy::npy_bytes(&[256], partlearn::npy::NpyDataRef::I32(&l)),
    )
    .unwrap();
    let before = std::fs::read(&labels).unwrap();
    let out = dir.join("x.npy");
    let o = run(&[
        "data",
        "export",
        "swimmer",
        "--first",
        "10",
        "--labels",
        s(&labels),
        "--out",
        s(&out),
        "--force",
    ]);
    assert_user_error(&o, &["--labels-out", "input file"]);
    assert_eq!(std::fs::read(&labels).unwrap(), before);
    assert!(!out.exists());
}

#[test]
fn sweep_refuses_a_folder_that_is_not_a_sweep() {
    let dir = temp_dir("sweep-user");
    let user = dir.join("mine");
    std::fs::create_dir(&user).unwrap();
    std::fs::write(user.join("sweep.csv"), b"my table").unwrap();
    let args = [
        "sweep",
        "nmf",
        "--data",
        "swimmer",
        "-k",
        "3",
        "--max-iter",
        "2",
        "--no-svm",
        "--quiet",
        "--out",
    ];
    let o = partlearn().args(args).arg(&user).output().unwrap();
    assert_user_error(&o, &["not a partlearn sweep", "--force"]);
    assert_eq!(std::fs::read(user.join("sweep.csv")).unwrap(), b"my table");
    let file = dir.join("file.txt");
    std::fs::write(&file, b"x").unwrap();
    let o = partlearn().args(args).arg(&file).output().unwrap();
    assert_user_error(&o, &["not a folder"]);
}

/// Sends `signal` (e.g. "-TERM") to the process `pid`.
fn signal(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn sigterm_and_sighup_stop_and_save_like_ctrl_c() {
    let dir = temp_dir("sigterm");
    for sig in ["-TERM", "-HUP"] {
        let out = dir.join(format!("run{sig}"));
        let child = fit_swimmer(&out)
            .args(["-k", "10", "--max-iter", "100000000", "--tol", "0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        signal(child.id(), sig);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(130), "{sig}: {}", stderr(&o));
        assert_eq!(
            read_json(&out.join("run.json"))["stop_reason"],
            "interrupted",
            "{sig}"
        );
    }
}

#[test]
fn neural_nmf_time_budget_bounds_all_restarts() {
    let dir = temp_dir("neural-budget");
    let out = dir.join("run");
    let t = std::time::Instant::now();
    let o = fit_quiet(
        "neural-nmf",
        "toy-hierarchy",
        &out,
        &[
            "--epochs",
            "100000000",
            "--restarts",
            "1000000000",
            "--max-seconds",
            "1",
        ],
    );
    assert_ok(&o);
    assert!(t.elapsed().as_secs_f64() < 20.0, "{:?}", t.elapsed());
    assert_eq!(read_json(&out.join("run.json"))["stop_reason"], "time-limit");
}

#[test]
fn fifos_and_devices_are_never_read() {
    let dir = temp_dir("fifo-input");
    let fifo = dir.join("data.npy");
    mkfifo(&fifo);
    // Spawned and waited for with a deadline: reading a FIFO used to block forever.
    let mut child = partlearn()
        .args(["data", "info", s(&fifo)])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed().as_secs() > 20 {
            let _ = child.kill();
            panic!("reading a FIFO as --data blocked");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_user_error(&child.wait_with_output().unwrap(), &["FIFO", "regular file"]);
    // A figure of a run that is a link to /dev/zero.
    let run_dir = swimmer_run(&dir);
    let atoms = run_dir.join("figures/atoms.png");
    std::fs::remove_file(&atoms).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &atoms).unwrap();
    let o = run(&["report", s(&run_dir), "--out", s(&dir.join("r.html"))]);
    assert_user_error(&o, &["atoms.png", "a device"]);
}

#[test]
fn transform_checks_the_run_record_and_the_atoms() {
    use partlearn::io::{read_safetensors, write_safetensors, TensorData};
    let dir = temp_dir("record-model");
    let (r5, r7) = (dir.join("r5"), dir.join("r7"));
    assert_ok(&fit_nmf(&r5, "5", &[]));
    assert_ok(&fit_nmf(&r7, "7", &[]));
    let codes = dir.join("codes.npy");
    // A model of 7 atoms under a run.json of k = 5.
    std::fs::copy(r7.join("model.safetensors"), r5.join("model.safetensors")).unwrap();
    assert_user_error(&transform(&r5, "swimmer", &codes), &["records k = 5", "7 atoms"]);
    // eval reads the same record, through the same check.
    let eval = |r: &std::path::Path| run(&["eval", s(r), "--data", "swimmer", "--quiet"]);
    assert_user_error(&eval(&r5), &["records k = 5", "7 atoms"]);
    assert!(!r5.join("metrics.json").exists());
    // A run.json that is not partlearn's.
    std::fs::write(r7.join("run.json"), b"{\"a\": 1}").unwrap();
    assert_user_error(&transform(&r7, "swimmer", &codes), &["run.json"]);
    assert_user_error(&eval(&r7), &["run.json"]);
    assert!(!r7.join("metrics.json").exists());
    // Atoms of 1e30 (all-zero codes before): refused.
    let lone = dir.join("lone.safetensors");
    let (mut tensors, meta) = read_safetensors(&r5.join("model.safetensors")).unwrap();
    for t in &mut tensors {
        if t.name == "atoms" {
            match &mut t.data {
                TensorData::F32(v) => v.iter_mut().for_each(|x| *x = *x * 1e30 + 1e30),
                TensorData::F64(v) => v.iter_mut().for_each(|x| *x = *x * 1e30 + 1e30),
            }
        }
    }
    write_safetensors(&lone, &tensors, &meta).unwrap();
    assert_user_error(&transform(&lone, "swimmer", &codes), &["atoms reach", "refit"]);
    assert!(!codes.exists());
}

#[test]
fn ae_resume_refuses_other_data_and_forged_checkpoints() {
    use partlearn::io::{read_safetensors, write_safetensors};
    let dir = temp_dir("ae-resume-data");
    let r = dir.join("run");
    assert_ok(&ae_fit("ae", &r, &["--epochs", "1"]));
    let before = std::fs::read(r.join("run.json")).unwrap();
    let o = ae_resume("ae", &r, &["--epochs", "2", "--first", "100"]);
    assert_user_error(&o, &["other data", "--first", "now Some(100)"]);
    assert_eq!(std::fs::read(r.join("run.json")).unwrap(), before);
    // A checkpoint whose batch index is forged (10^9): refused, not an epoch of loss 0.
    let ck = r.join("checkpoint.safetensors");
    let (tensors, mut meta) = read_safetensors(&ck).unwrap();
    let key = "partlearn.checkpoint";
    let mut desc: serde_json::Value = serde_json::from_str(&meta[key]).unwrap();
    desc["batch"] = serde_json::json!(1_000_000_000u64);
    meta.insert(key.into(), desc.to_string());
    write_safetensors(&ck, &tensors, &meta).unwrap();
    let o = ae_resume("ae", &r, &["--epochs", "2"]);
    assert_user_error(&o, &["batch 1000000000", "damaged"]);
    assert_eq!(std::fs::read(r.join("run.json")).unwrap(), before);
}

#[test]
fn ssnmf_labeled_count_must_be_whole() {
    let dir = temp_dir("ssnmf-labeled");
    let out = dir.join("run");
    assert_refused(
        &[
            "fit",
            "ssnmf",
            "--data",
            "toy-hierarchy",
            "-k",
            "4",
            "--labeled",
            "1.5",
            "--out",
            s(&out),
        ],
        &["--labeled 1.5", "fraction in (0, 1)"],
        &out,
    );
}
