//! Outputs never destroy what they should not: `--force` replaces only partlearn run folders
//! (recognized by a run.json partlearn wrote, which `report` requires too), `data export` refuses
//! one file for both data and labels, `transform` never writes over the run it reads, `fit ae
//! --resume` refuses the flags it cannot honour, and `fit ae --force` trains with its checkpoint
//! in the stage, so that the run it replaces stays whole until the commit. Each refusal is a
//! one-line `error: …` with exit 2, and the user's files are byte-for-byte unchanged afterwards;
//! each fix also has its working case. An `--out` that cannot be created is named as the user
//! gave it.

use std::path::Path;

mod common;
use common::*;

use partlearn::npy::read_npy;

/// The names in a folder, sorted (hidden stage and backup folders included).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn force_replaces_only_partlearn_run_folders() {
    let dir = temp_dir("force");
    // A folder of the user's: refused by every command that writes a run folder.
    let user = dir.join("userdir");
    std::fs::create_dir(&user).unwrap();
    std::fs::write(user.join("thesis.txt"), b"precious\n").unwrap();
    assert_user_error(
        &fit_nmf(&user, "3", &["--force"]),
        &["userdir", "not a partlearn run folder", "choose another --out"],
    );
    let ae = [
        "fit", "ae", "--data", "swimmer", "-k", "4", "--epochs", "1", "--quiet", "--force", "--out",
    ];
    assert_user_error(
        &run(&[&ae[..], &[s(&user)]].concat()),
        &["userdir", "not a partlearn run folder"],
    );
    assert_eq!(names(&user), vec!["thesis.txt"], "no checkpoint, no run files");
    assert_eq!(std::fs::read(user.join("thesis.txt")).unwrap(), b"precious\n");

    // A regular file is not replaced by a run folder either.
    let file = dir.join("userfile.txt");
    std::fs::write(&file, b"notes\n").unwrap();
    assert_user_error(
        &fit_nmf(&file, "3", &["--force"]),
        &["userfile.txt", "not a partlearn run folder"],
    );
    assert!(file.is_file());
    assert_eq!(std::fs::read(&file).unwrap(), b"notes\n");
    // No stage or set-aside copy was left next to them.
    assert_eq!(names(&dir), vec!["userdir", "userfile.txt"]);

    // A real run is still replaced, as a whole.
    let r = dir.join("run");
    assert_ok(&fit_nmf(&r, "3", &[]));
    assert_eq!(read_json(&r.join("run.json"))["part"]["options"]["k"], 3);
    assert_ok(&fit_nmf(&r, "4", &["--force"]));
    assert_eq!(read_json(&r.join("run.json"))["part"]["options"]["k"], 4);
    assert_eq!(names(&dir), vec!["run", "userdir", "userfile.txt"]);

    // A file of the user's inside a run folder (notes, a transform's output written there) is
    // never deleted with the run: --force refuses and names it.
    let codes = r.join("test_codes.npy");
    assert_ok(&run(&[
        "transform",
        &s(&r),
        "--data",
        "swimmer",
        "--out",
        &s(&codes),
        "--quiet",
    ]));
    assert_user_error(
        &fit_nmf(&r, "3", &["--force"]),
        &[
            "also holds test_codes.npy, which partlearn did not write",
            "move it out of the folder",
        ],
    );
    assert!(codes.is_file());
    assert_eq!(read_json(&r.join("run.json"))["part"]["options"]["k"], 4);
    std::fs::rename(&codes, dir.join("test_codes.npy")).unwrap();
    assert_ok(&fit_nmf(&r, "3", &["--force"]));
    assert_eq!(read_json(&r.join("run.json"))["part"]["options"]["k"], 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn export_refuses_one_file_for_data_and_labels() {
    let dir = temp_dir("export");
    let ex = dir.join("ex");
    // Same path, nothing there yet: refused before anything is written.
    let v = ex.join("v.npy");
    assert_user_error(
        &run(&[
            "data",
            "export",
            "toy-hierarchy",
            "--out",
            s(&v),
            "--labels-out",
            s(&v),
        ]),
        &["--labels-out", "same file as --out", "two different paths"],
    );
    assert!(!ex.exists(), "nothing written");
    // The same file spelled differently, over an existing file of the user's, even with --force.
    std::fs::create_dir(&ex).unwrap();
    std::fs::write(&v, b"user data").unwrap();
    let other_spelling = dir.join("ex/../ex/./v.npy");
    assert_user_error(
        &run(&[
            "data",
            "export",
            "toy-hierarchy",
            "--out",
            s(&v),
            "--labels-out",
            s(&other_spelling),
            "--force",
        ]),
        &["same file as --out"],
    );
    assert_eq!(std::fs::read(&v).unwrap(), b"user data");
    assert_eq!(names(&ex), vec!["v.npy"]);

    // Two different files: data and labels both written (over an old .npy file with --force;
    // the user's file that is not a .npy is refused even then).
    let labels = ex.join("labels.npy");
    let export = [
        "data",
        "export",
        "toy-hierarchy",
        "--out",
        s(&v),
        "--labels-out",
        s(&labels),
        "--force",
    ];
    assert_user_error(&run(&export), &["not a .npy file", "--force replaces only"]);
    assert_eq!(std::fs::read(&v).unwrap(), b"user data");
    write_npy_f32(&v, 1, 1, &[0.0]);
    assert_ok(&run(&[
        "data",
        "export",
        "toy-hierarchy",
        "--out",
        s(&v),
        "--labels-out",
        s(&labels),
        "--force",
    ]));
    let x = read_npy(&v).unwrap();
    let y = read_npy(&labels).unwrap();
    assert_eq!(x.shape[0], y.shape[0]);
    assert_eq!(y.shape.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn transform_never_writes_over_the_run_it_reads() {
    let dir = temp_dir("transform");
    let r = dir.join("run1");
    assert_ok(&fit_nmf(&r, "5", &[]));
    let files = ["model.safetensors", "run.json", "history.jsonl"];
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(r.join(f)).unwrap()).collect();
    let model = r.join("model.safetensors");
    let outs = [
        model.clone(),
        r.join("run.json"),
        r.join("history.jsonl"),
        dir.join("run1/../run1/./model.safetensors"),
        r.join("figures/atoms.png"),
    ];
    for from in [&r, &model] {
        for out in &outs {
            assert_user_error(
                &run(&[
                    "transform",
                    s(from),
                    "--data",
                    "swimmer",
                    "--out",
                    s(out),
                    "--force",
                    "-q",
                ]),
                &["--out", "being read", "outside the run folder"],
            );
        }
    }
    for (f, b) in files.iter().zip(&before) {
        assert_eq!(&std::fs::read(r.join(f)).unwrap(), b, "{f} changed");
    }
    // The model is still a safetensors file with its atoms.
    let (tensors, _) = partlearn::io::read_safetensors(&model).unwrap();
    partlearn::io::tensor_by_name(&tensors, "atoms", &model).unwrap();
    assert_eq!(names(&dir), vec!["run1"]);

    // Outside the run folder transform works, and --force replaces its own earlier output.
    let codes = dir.join("codes.npy");
    for extra in [&[][..], &["--force"][..]] {
        let mut args = vec!["transform", s(&r), "--data", "swimmer", "--out", s(&codes), "-q"];
        args.extend(extra);
        assert_ok(&run(&args));
        assert_eq!(read_npy(&codes).unwrap().shape, vec![256, 5]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `fit ae --force` over an existing run keeps its checkpoint in the stage while it trains: killed
/// after its first checkpoint, it leaves the old run (checkpoint included) byte for byte as it was.
#[test]
fn ae_force_leaves_the_old_run_whole_until_its_commit() {
    let dir = temp_dir("aeforce");
    let r = dir.join("aeF");
    let base = [
        "fit",
        "ae",
        "--data",
        "swimmer",
        "-k",
        "4",
        "--quiet",
        "--out",
        s(&r),
    ];
    assert_ok(&run(&[&base[..], &["--epochs", "2"]].concat()));
    let files = [
        "model.safetensors",
        "run.json",
        "checkpoint.safetensors",
        "history.jsonl",
    ];
    let snapshot = || -> Vec<Vec<u8>> { files.iter().map(|f| std::fs::read(r.join(f)).unwrap()).collect() };
    let before = snapshot();
    let old_checkpoint = &before[2];
    let mut child = partlearn()
        .args(base)
        .args(["--epochs", "1000000", "--checkpoint-every", "1", "--force"])
        .spawn()
        .unwrap();
    // Wait for the new run's first checkpoint, wherever it is written.
    let staged = || {
        std::fs::read_dir(&dir).unwrap().any(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().starts_with(".aeF.partial-")
                && e.path().join("checkpoint.safetensors").is_file()
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !staged() && std::fs::read(r.join("checkpoint.safetensors")).ok().as_ref() == Some(old_checkpoint) {
        assert!(std::time::Instant::now() < deadline, "no checkpoint after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(staged(), "the checkpoint was written outside the stage");
    assert!(snapshot() == before, "the old run changed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ae_resume_refuses_the_flags_it_cannot_apply() {
    let dir = temp_dir("resume");
    let r = dir.join("aeR");
    assert_ok(&fit_quiet("ae", "swimmer", &r, &["-k", "4", "--epochs", "2"]));
    let snapshot = || -> Vec<Vec<u8>> {
        [
            "model.safetensors",
            "run.json",
            "checkpoint.safetensors",
            "history.jsonl",
        ]
        .iter()
        .map(|f| std::fs::read(r.join(f)).unwrap())
        .collect()
    };
    let before = snapshot();
    let resume = [
        "fit",
        "ae",
        "--data",
        "swimmer",
        "--resume",
        s(&r),
        "--epochs",
        "5",
        "--quiet",
    ];
    let r2 = dir.join("aeR2");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--out", s(&r2)],
            vec!["--resume", "in place", "stored settings", "drop --out"],
        ),
        (vec!["-k", "50"], vec!["--resume", "--k"]),
        (vec!["--optimizer", "adam"], vec!["--resume", "--optimizer"]),
        (vec!["--lr", "0.5"], vec!["--resume", "--lr"]),
        (vec!["--loss", "bce"], vec!["--resume", "--loss"]),
        (vec!["--sparsity", "l1"], vec!["--resume", "--sparsity"]),
        (
            vec!["--decoder-activation", "sigmoid"],
            vec!["--resume", "--decoder-activation"],
        ),
        (vec!["--batch-size", "7"], vec!["--resume", "--batch-size"]),
        (vec!["--seed", "3"], vec!["--resume", "--seed"]),
    ];
    for (extra, keys) in cases {
        assert_user_error(&run(&[&resume[..], &extra].concat()), &keys);
        assert_eq!(snapshot(), before, "{extra:?} changed the run");
    }
    assert!(!r2.exists());
    assert_eq!(names(&dir), vec!["aeR"]);

    // Resuming with only the flags that apply works, also with --out naming the run itself.
    assert_ok(&ae_resume("ae", &r, &["--epochs", "3"]));
    assert_eq!(read_json(&r.join("run.json"))["n_iter"], 3);
    assert_ok(&run(&[&resume[..], &["--out", s(&r)]].concat()));
    let meta = read_json(&r.join("run.json"));
    assert_eq!(meta["n_iter"], 5);
    assert_eq!(meta["part"]["resumed_from_epoch"], 3);
    assert_eq!(meta["part"]["architecture"]["k"], 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inputs_are_never_outputs() {
    let dir = temp_dir("inputs");
    // The data file itself as the output of export and transform, even with --force.
    let x = dir.join("x.npy");
    assert_ok(&run(&["data", "export", "swimmer", "--out", s(&x)]));
    let before = std::fs::read(&x).unwrap();
    assert_user_error(
        &run(&[
            "data",
            "export",
            s(&x),
            "--first",
            "10",
            "--out",
            s(&x),
            "--force",
        ]),
        &["--out", "input file"],
    );
    let r = dir.join("run");
    assert_ok(&fit_nmf(&r, "3", &[]));
    assert_user_error(
        &run(&["transform", s(&r), "--data", s(&x), "--out", s(&x), "--force"]),
        &["--out", "input file"],
    );
    assert_eq!(std::fs::read(&x).unwrap(), before);
    // A report over a run's own run.json.
    let meta = std::fs::read(r.join("run.json")).unwrap();
    assert_user_error(
        &run(&["report", s(&r), "--out", s(&r.join("run.json")), "--force"]),
        &["--out"],
    );
    assert_eq!(std::fs::read(r.join("run.json")).unwrap(), meta);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn force_never_replaces_a_folder_whose_run_json_is_not_partlearns() {
    let dir = temp_dir("foreign");
    let foreign = dir.join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), b"precious\n").unwrap();
    for json in [r#"{"a":1}"#, "[1,2,3]", "{}", r#"{"method":"nmf"}"#] {
        std::fs::write(foreign.join("run.json"), json).unwrap();
        assert_user_error(
            &fit_nmf(&foreign, "2", &["--force"]),
            &[
                "foreign",
                "run.json was not written by partlearn",
                "choose another --out",
            ],
        );
        assert_eq!(names(&foreign), vec!["precious.txt", "run.json"]);
        assert_eq!(std::fs::read(foreign.join("run.json")).unwrap(), json.as_bytes());
    }
    assert_eq!(
        std::fs::read(foreign.join("precious.txt")).unwrap(),
        b"precious\n"
    );
    assert_eq!(names(&dir), vec!["foreign"], "no stage left");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_refuses_a_run_json_partlearn_did_not_write() {
    let dir = temp_dir("report-foreign");
    let r = dir.join("run");
    assert_ok(&fit_nmf(&r, "3", &[]));
    let rep = dir.join("rep.html");
    for json in ["[1,2,3]", "{}", r#"{"a":1}"#] {
        std::fs::write(r.join("run.json"), json).unwrap();
        assert_user_error(
            &run(&["report", s(&r), "--out", s(&rep), "-q"]),
            &["run.json", "not a partlearn run", "refit"],
        );
        assert!(!rep.exists(), "{json}: a report was written");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unwritable_out_is_named_as_given() {
    let dir = temp_dir("unwritable");
    // A parent that is a regular file stops the write even for root.
    let file = dir.join("somefile.txt");
    std::fs::write(&file, b"notes\n").unwrap();
    let out = file.join("run");
    let o = fit_nmf(&out, "2", &[]);
    assert_user_error(
        &o,
        &[
            &format!("--out {}", s(&out)),
            &format!("{} is a file, not a folder", s(&file)),
        ],
    );
    assert!(!stderr(&o).contains("partial"), "{}", stderr(&o));
    assert_eq!(names(&dir), vec!["somefile.txt"]);
    assert_eq!(std::fs::read(&file).unwrap(), b"notes\n");
    // /proc accepts no new folder (the stage is made there first).
    if Path::new("/proc/self").exists() {
        let o = fit_nmf(Path::new("/proc/x"), "2", &[]);
        assert_user_error(&o, &["/proc/x: cannot create", "choose a writable --out"]);
        assert!(!stderr(&o).contains("partial"), "{}", stderr(&o));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every fit command writes the one run record: the common header (format, versions, data with
/// its dtype, seed, threads, how the fit ended, the history file) and its method's part; and every
/// reader (`report`, `eval --stored-codes`) reads it.
#[test]
fn every_fit_writes_the_common_run_record() {
    let dir = temp_dir("record");
    let fits: [(&str, &[&str], &str); 6] = [
        (
            "nmf",
            &["--data", "swimmer", "-k", "3", "--max-iter", "3", "--save-codes"],
            "nmf",
        ),
        (
            "sparse-nmf",
            &["--data", "swimmer", "-k", "3", "--max-iter", "3"],
            "nmf",
        ),
        (
            "ssnmf",
            &["--data", "toy-hierarchy", "-k", "2", "--max-iter", "3"],
            "layers",
        ),
        (
            "hnmf",
            &["--data", "toy-hierarchy", "--ranks", "4,2", "--max-iter", "3"],
            "layers",
        ),
        (
            "neural-nmf",
            &["--data", "toy-hierarchy", "--ranks", "4,2", "--epochs", "3"],
            "layers",
        ),
        (
            "ae",
            &["--data", "swimmer", "-k", "4", "--epochs", "1", "--seed", "5"],
            "autoencoder",
        ),
    ];
    let mut runs = Vec::new();
    for (method, args, kind) in fits {
        let out = dir.join(method);
        let mut a = vec!["fit", method, "--quiet", "--dtype", "f64", "--out", s(&out)];
        a.extend_from_slice(args);
        assert_ok(&run(&a));
        let meta = read_json(&out.join("run.json"));
        assert_eq!(meta["format"], 2, "{method}: {meta}");
        assert_eq!(meta["method"], method);
        assert_eq!(meta["data"]["dtype"], "f64", "{method}");
        assert!(meta["data"]["n_samples"].as_u64().unwrap() > 0, "{method}");
        assert_eq!(meta["seed"], if method == "ae" { 5 } else { 0 }, "{method}");
        assert_eq!(meta["threads"], 1, "{method}");
        assert!(
            meta["stop_reason"].is_string() && meta["seconds"].as_f64().is_some(),
            "{method}"
        );
        assert!(meta["n_iter"].as_u64().unwrap() >= 1, "{method}: {meta}");
        assert!(meta["warnings"].is_array(), "{method}");
        assert_eq!(meta["part"]["kind"], kind, "{method}");
        assert!(meta["part"]["options"].is_object(), "{method}");
        let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
        assert_eq!(meta["history"]["file"], "history.jsonl");
        assert_eq!(meta["history"]["records"], history.lines().count(), "{method}");
        runs.push(out);
    }
    let rep = dir.join("report.html");
    let mut a = vec!["report", "--out", s(&rep), "-q"];
    a.extend(runs.iter().map(|r| s(r)));
    assert_ok(&run(&a));
    let nmf = &runs[0];
    assert_ok(&run(&[
        "eval",
        s(nmf),
        "--data",
        "swimmer",
        "--stored-codes",
        "--no-svm",
        "--quiet",
    ]));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run.json in the layout partlearn wrote before the common header is refused by the commands
/// that read it, in one line that says to re-run the fit; it is still a partlearn run, so
/// `--force` replaces it.
#[test]
fn an_old_run_json_is_refused_with_advice_to_refit() {
    let dir = temp_dir("old-record");
    let r = dir.join("run");
    assert_ok(&fit_nmf(&r, "3", &["--save-codes"]));
    let old = r#"{"method": "nmf", "partlearn_version": "0.1.0", "command": ["partlearn"],
        "data": {"spec": "swimmer", "name": "swimmer", "n_samples": 256, "n_features": 1024,
        "image_shape": [32, 32], "first": null, "subset": null, "data_seed": 0},
        "options": {"k": 3}, "n_iter": 3, "stop_reason": "max-iter"}"#;
    std::fs::write(r.join("run.json"), old).unwrap();
    let rep = dir.join("rep.html");
    assert_user_error(
        &run(&["report", s(&r), "--out", s(&rep), "-q"]),
        &["run.json", "partlearn 0.1.0", "re-run the fit"],
    );
    assert!(!rep.exists());
    assert_user_error(
        &run(&[
            "eval",
            s(&r),
            "--data",
            "swimmer",
            "--stored-codes",
            "--no-svm",
            "-q",
        ]),
        &["run.json", "re-run the fit"],
    );
    assert!(!r.join("metrics.json").exists());
    assert_ok(&fit_nmf(&r, "4", &["--force"]));
    assert_eq!(read_json(&r.join("run.json"))["format"], 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_dist_model_prints_the_model_and_draws_its_chart() {
    let dir = temp_dir("dist-model");
    let chart = dir.join("eff.svg");
    let o = run(&[
        "bench",
        "dist-model",
        "--n",
        "20000",
        "--m",
        "20000",
        "-k",
        "50",
        "--max-p",
        "64",
        "--chart",
        s(&chart),
        "--json",
    ]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = v["predictions"].as_array().unwrap();
    assert_eq!(p.len(), 7, "P = 1, 2, …, 64");
    assert_eq!(p[0]["strong"]["efficiency"], 1.0);
    // Square data: 2 × 2 on 4 processes, and the chosen grid is never slower than 1-D rows.
    assert_eq!(p[2]["strong"]["grid"]["rows"], 2);
    assert_eq!(p[2]["strong"]["grid"]["cols"], 2);
    for r in p {
        assert!(
            r["strong"]["total"].as_f64().unwrap()
                <= r["strong_1d"]["total"].as_f64().unwrap() * (1.0 + 1e-12)
        );
    }
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("parallel efficiency") && svg.contains("1-D rows"));
    // The table form, and a bad value named.
    let o = run(&["bench", "dist-model", "--max-p", "4"]);
    assert_ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("60000 × 784"), "{out}");
    let o = run(&["bench", "dist-model", "--bandwidth", "0"]);
    assert!(
        !o.status.success() && stderr(&o).contains("--bandwidth"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
