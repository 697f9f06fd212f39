//! The auto-encoders from the command line: fits, files, transform, eval, exact resume, Ctrl-C,
//! tolerance and time budget, bad options, the asymmetric AE and the AE sweep.

mod common;
use common::*;

use partlearn::npy::read_npy;

#[test]
fn ae_end_to_end_files_transform_eval_and_exact_resume() {
    let dir = temp_dir("ae");
    let r = dir.join("ae");
    assert_ok(&ae_fit("ae", &r, &["--epochs", "3", "--val-fraction", "0.25"]));
    for f in [
        "run.json",
        "model.safetensors",
        "history.jsonl",
        "checkpoint.safetensors",
        "figures/atoms.png",
        "figures/reconstructions.png",
    ] {
        assert!(r.join(f).is_file(), "missing {f}");
    }
    let meta = read_json(&r.join("run.json"));
    assert_eq!(meta["method"], "ae");
    assert_eq!(meta["n_iter"], 3);
    assert_eq!(meta["part"]["n_params"], 8 * 1024 * 2 + 8 + 1024);
    let history = std::fs::read_to_string(r.join("history.jsonl")).unwrap();
    let recs: Vec<serde_json::Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 3);
    for key in [
        "reconstruction",
        "sparsity",
        "val_mse",
        "mean_activation",
        "negative_decoder_fraction",
    ] {
        assert!(recs[2][key].as_f64().is_some(), "history lacks {key}");
    }
    assert_eq!(recs[2]["negative_decoder_fraction"], 0.0);

    // transform: sigmoid codes; eval through the same protocol as NMF.
    let codes = dir.join("codes.npy");
    assert_ok(&transform(&r, "swimmer", &codes));
    let a = read_npy(&codes).unwrap();
    assert_eq!(a.shape, vec![256, 8]);
    assert!(a.to_real::<f64>().iter().all(|&v| v > 0.0 && v < 1.0));
    assert_ok(&run(&["eval", s(&r), "--data", "swimmer", "--quiet", "--no-svm"]));
    let m = read_json(&r.join("metrics.json"));
    assert!(m["reconstruction"]["mse"].as_f64().unwrap() >= 0.0);

    // Resuming to 5 epochs gives the same weights as 5 epochs in one go.
    assert_ok(&ae_resume("ae", &r, &["--epochs", "5"]));
    assert_eq!(read_json(&r.join("run.json"))["part"]["resumed_from_epoch"], 3);
    let straight = dir.join("straight");
    assert_ok(&ae_fit(
        "ae",
        &straight,
        &["--epochs", "5", "--val-fraction", "0.25"],
    ));
    assert_eq!(model_tensor(&r, "atoms"), model_tensor(&straight, "atoms"));
    assert_eq!(
        std::fs::read_to_string(r.join("history.jsonl"))
            .unwrap()
            .lines()
            .count(),
        5
    );
    // Nothing left to do: a one-line error says how to train longer.
    assert_user_error(&ae_resume("ae", &r, &[]), &["all its 5 epochs", "--epochs"]);
    // The wrong command for the model kind.
    assert_user_error(&ae_resume("asym-ae", &r, &["--epochs", "9"]), &["fit ae"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ae_ctrl_c_saves_a_checkpoint_that_resumes() {
    let dir = temp_dir("ae-sigint");
    let out = dir.join("run");
    let mut child = partlearn()
        .args([
            "fit",
            "ae",
            "--data",
            "swimmer",
            "-k",
            "8",
            "--batch-size",
            "4",
            "--epochs",
            "100000",
            "--quiet",
            "--out",
            s(&out),
        ])
        .spawn()
        .unwrap();
    assert_eq!(ctrl_c_after(&mut child, 1500), Some(130));
    let meta = read_json(&out.join("run.json"));
    assert_eq!(meta["stop_reason"], "interrupted");
    let done = meta["n_iter"].as_u64().unwrap();
    assert!(out.join("checkpoint.safetensors").is_file());
    let target = (done + 1).to_string();
    assert_ok(&ae_resume("ae", &out, &["--epochs", &target]));
    assert_eq!(
        read_json(&out.join("run.json"))["n_iter"].as_u64(),
        Some(done + 1)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `fit ae --tol` with epochs that end the fit warns in the command's flags (`--epochs`, `--tol`)
/// and stores the warning in run.json in the library's terms; a time budget that ends an epoch
/// after its first batch says so, and `--resume` continues that epoch to the same weights as an
/// uninterrupted run.
#[test]
fn ae_tolerance_and_time_budget_warn_and_resume() {
    let dir = temp_dir("ae-warn");
    let r = dir.join("tol");
    let o = ae_fit("ae", &r, &["--epochs", "2", "--tol", "1e-4"]);
    assert_ok(&o);
    assert!(
        stderr(&o).contains("warning: maximum number of iterations 2 reached before convergence (--tol = 1e-4); increase --epochs or --tol"),
        "{}",
        stderr(&o)
    );
    let meta = read_json(&r.join("run.json"));
    assert_eq!(meta["part"]["options"]["tol"], 1e-4);
    assert!(meta["warnings"][0]
        .as_str()
        .unwrap()
        .ends_with("increase max_iter or tol"));
    assert_user_error(&ae_fit("ae", &dir.join("bad"), &["--tol", "-1"]), &["tol"]);

    let b = dir.join("budget");
    let o = ae_fit("ae", &b, &["--epochs", "2", "--max-seconds", "1e-9"]);
    assert_ok(&o);
    // swimmer: 256 images in batches of 32.
    assert!(
        stderr(&o).contains("warning: the time budget ended epoch 1 after 1 of 8 batches"),
        "{}",
        stderr(&o)
    );
    let meta = read_json(&b.join("run.json"));
    assert_eq!(
        (meta["stop_reason"].as_str(), meta["n_iter"].as_u64()),
        (Some("time-limit"), Some(0))
    );
    assert_ok(&ae_resume("ae", &b, &[]));
    assert_eq!(read_json(&b.join("run.json"))["n_iter"], 2);
    let straight = dir.join("straight");
    assert_ok(&ae_fit("ae", &straight, &["--epochs", "2"]));
    assert_eq!(model_tensor(&b, "atoms"), model_tensor(&straight, "atoms"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ae_bad_options_are_one_line_errors() {
    let dir = temp_dir("ae-bad");
    let out = dir.join("x");
    let csv = dir.join("d.csv");
    std::fs::write(&csv, "0.1,0.2,0.3\n0.4,0.5,0.6\n0.0,1.0,0.5\n").unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["fit", "asym-ae", "--data", s(&csv), "-k", "2"],
            vec!["image data"],
        ),
        (
            vec!["fit", "ae", "--data", "swimmer", "--loss", "bce"],
            vec!["sigmoid"],
        ),
        (
            vec!["fit", "ae", "--data", "swimmer", "--patience", "3"],
            vec!["--val-fraction"],
        ),
        (
            vec!["fit", "ae", "--data", "swimmer", "--optimizer", "rmsprop"],
            vec!["optimizer", "adam"],
        ),
        (
            vec!["fit", "ae", "--data", "swimmer", "--sparsity", "kld"],
            vec!["sparsity"],
        ),
        (vec!["fit", "ae", "--data", "swimmer", "--p", "0"], vec!["p"]),
        (vec!["fit", "ae", "--data", "swimmer", "-k", "0"], vec!["k"]),
        (
            vec!["fit", "ae", "--data", "swimmer", "--lr-schedule", "step:0:1"],
            vec!["lr-schedule"],
        ),
        (
            vec!["fit", "ae", "--data", "swimmer", "--resume", s(&dir)],
            vec!["checkpoint.safetensors"],
        ),
    ];
    for (mut args, keys) in cases {
        args.extend(["--quiet", "--out", s(&out), "--epochs", "1"]);
        assert_refused(&args, &keys, &out);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The library checks the parameters and names them in its own terms (`learning_rate`,
/// `val_fraction`, …); the command names its flags instead, also for the parameters a reason
/// mentions, and where the spelling differs (`--lr`, `--loss`, `--lr-schedule`).
#[test]
fn ae_invalid_parameters_name_their_flags() {
    let dir = temp_dir("ae-flags");
    let out = dir.join("x");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--lr", "-1"], vec!["invalid --lr -1", "> 0"]),
        (vec!["--lr", "nan"], vec!["invalid --lr nan"]),
        (
            vec!["--loss", "bce"],
            vec!["invalid --loss bce", "--decoder-activation"],
        ),
        (
            vec!["--val-fraction", "1"],
            vec!["invalid --val-fraction 1", "[0, 1)"],
        ),
        (
            vec!["--patience", "3"],
            vec!["invalid --patience 3", "--val-fraction"],
        ),
        (
            vec!["--patience", "0", "--val-fraction", "0.1"],
            vec!["invalid --patience 0"],
        ),
        (vec!["--batch-size", "0"], vec!["invalid --batch-size 0"]),
        (
            vec!["--checkpoint-every", "0"],
            vec!["invalid --checkpoint-every 0"],
        ),
        (vec!["--decay-alpha", "-1"], vec!["invalid --decay-alpha -1"]),
        (vec!["--decay-lambda", "inf"], vec!["invalid --decay-lambda inf"]),
        (vec!["--beta", "-0.5"], vec!["invalid --beta -0.5"]),
        (vec!["--p", "1"], vec!["invalid --p 1", "(0, 1)"]),
        (vec!["--max-seconds", "0"], vec!["invalid --max-seconds 0"]),
        (vec!["--epochs", "0"], vec!["invalid --epochs 0"]),
        (vec!["--tol", "-1"], vec!["invalid --tol -1"]),
        (
            vec!["--sparsity", "hoyer:2"],
            vec!["--sparsity", "hoyer:2", "(0, 1)"],
        ),
        (
            vec!["--decoder-activation", "leaky-relu:2"],
            vec!["--decoder-activation", "leaky-relu:2", "[0, 1)"],
        ),
        (vec!["--lr-schedule", "exp:0"], vec!["--lr-schedule", "exp:0"]),
        (vec!["--reduction", "max"], vec!["--reduction", "mean", "sum"]),
        (vec!["--nonneg", "clip"], vec!["--nonneg", "project"]),
    ];
    for (extra, keys) in cases {
        let base = [
            "fit",
            "ae",
            "--data",
            "swimmer",
            "-k",
            "8",
            "--quiet",
            "--out",
            s(&out),
        ];
        let o = assert_refused(&[&base[..], &extra].concat(), &keys, &out);
        for library_name in [
            "learning_rate",
            "val_fraction",
            "batch_size",
            "reconstruction",
            "decoder_activation",
        ] {
            assert!(!stderr(&o).contains(library_name), "{extra:?}: {}", stderr(&o));
        }
    }
    // A resumed run checks what this invocation sets the same way.
    let r = dir.join("r");
    assert_ok(&ae_fit("ae", &r, &["--epochs", "1"]));
    for (extra, keys) in [
        (["--tol", "-1"], ["invalid --tol -1"]),
        (["--max-seconds", "-2"], ["invalid --max-seconds -2"]),
        (["--epochs", "0"], ["invalid --epochs 0"]),
    ] {
        assert_user_error(&ae_resume("ae", &r, &extra), &keys);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn asym_ae_trains_on_a_fashion_mnist_slice() {
    if !fashion_available() {
        return;
    }
    let dir = temp_dir("asym");
    let r = dir.join("asym");
    let o = fit_quiet(
        "asym-ae",
        "fashion-mnist:train",
        &r,
        &["--first", "512", "-k", "16", "--epochs", "2", "--threads", "2"],
    );
    assert_ok(&o);
    let meta = read_json(&r.join("run.json"));
    assert_eq!(meta["method"], "asym-ae");
    assert!(meta["objective"].as_f64().unwrap().is_finite());
    assert_ok(&run(&[
        "eval",
        s(&r),
        "--data",
        "fashion-mnist:test",
        "--first",
        "300",
        "--quiet",
        "--no-svm",
    ]));
    let m = read_json(&r.join("metrics.json"));
    assert!(m["reconstruction"]["mse"].as_f64().unwrap() < 0.2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sweep_ae_over_beta_and_p() {
    let dir = temp_dir("sweep-ae");
    let out = dir.join("sweep");
    assert_ok(&run(&[
        "sweep",
        "ae",
        "--data",
        "swimmer",
        "-k",
        "8",
        "--p",
        "0.1,0.3",
        "--beta",
        "0,0.5",
        "--epochs",
        "2",
        "--fit-args",
        "--optimizer adam --batch-size 64",
        "--no-svm",
        "--quiet",
        "--out",
        s(&out),
    ]));
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(out.join("figures/hoyer_vs_beta.svg").is_file());
    let meta = read_json(&out.join("ae-k8-p0.3-beta0.5").join("run.json"));
    assert_eq!(meta["part"]["options"]["loss"]["beta"], 0.5);
    assert_eq!(meta["part"]["options"]["optimizer"]["kind"], "adam");
    assert_eq!(meta["n_iter"], 2);
    assert_user_error(
        &run(&[
            "sweep",
            "ae",
            "--data",
            "swimmer",
            "--alpha-w",
            "0.1",
            "--out",
            s(&out),
        ]),
        &["--beta"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `bench ae` on both architectures: the shallow AE's bound times one part's products on one
/// thread (its batch split in two), the asymmetric AE's the whole batch's; the report is
/// consistent (bound = products × batches × rounds of parts, ratio = epoch / bound).
#[test]
fn bench_ae_reports_the_epoch_against_the_products_as_training_runs_them() {
    if !fashion_available() {
        return;
    }
    for (arch, parts) in [("shallow", 2u64), ("asymmetric", 1)] {
        let o = run(&[
            "bench",
            "ae",
            "--data",
            "fashion-mnist:train",
            "--first",
            "512",
            "-k",
            "8",
            "--architecture",
            arch,
            "--threads",
            "2",
            "--epochs",
            "1",
            "--json",
        ]);
        assert_ok(&o);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["parts"].as_u64(), Some(parts), "{arch}: {v}");
        assert_eq!(v["batches_per_epoch"].as_u64(), Some(4));
        let gemms = v["gemms"].as_array().unwrap();
        if arch == "shallow" {
            // One part of the batch of 128: every product has 64 samples as one dimension.
            for g in gemms {
                let shape = g["shape"].as_str().unwrap();
                assert!(shape.contains("×64") && !shape.contains("128"), "{shape}");
            }
        }
        let sum: f64 = gemms.iter().map(|g| g["seconds"].as_f64().unwrap()).sum();
        let bound = v["gemm_bound"].as_f64().unwrap();
        // Two parts on two threads: one round per batch.
        assert!(
            (bound - sum * 4.0).abs() <= 1e-9 * bound,
            "{arch}: {bound} vs {sum}"
        );
        let epoch = v["seconds_per_epoch"].as_f64().unwrap();
        assert!((v["ratio"].as_f64().unwrap() - epoch / bound).abs() < 1e-9);
        assert!(epoch > 0.0 && bound > 0.0);
        // The first of the 4 batches is the run's start, timed apart.
        assert_eq!(v["batches_timed"].as_u64(), Some(3), "{arch}: {v}");
        assert!(v["start_seconds"].as_f64().unwrap() > 0.0, "{arch}: {v}");
    }
    // A run of one batch leaves nothing to time.
    let o = partlearn()
        .args([
            "bench",
            "ae",
            "--data",
            "fashion-mnist:train",
            "--first",
            "100",
            "-k",
            "8",
        ])
        .args(["--threads", "1", "--epochs", "1"])
        .output()
        .unwrap();
    assert_user_error(&o, &["epochs", "first is not timed", "at least two batches"]);
}
