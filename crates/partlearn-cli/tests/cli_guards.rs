//! Guards of the command line: input files are never overwritten, failed fits and
//! sweeps leave no half-written folder, flags of another mode are refused, errors name the
//! flags and the fix, and warnings name their stage (and say when SVM test splits are too small).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use partlearn::npy::{npy_bytes, NpyDataRef};

/// `n × m` values in [0, 1) from a fixed linear congruential sequence.
fn values(n: usize, m: usize, seed: u64) -> Vec<f32> {
    let mut x = seed;
    (0..n * m)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// The test files in a fresh folder: `good.npy` (50 × 20, ≥ 0), `labels50.npy` (3 classes),
/// `mask.npy` (0/1, 50 × 20), `neg.npy` (one negative entry), `good30f.npy` (50 × 30).
fn files(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    write_npy_f32(&dir.join("good.npy"), 50, 20, &values(50, 20, 1));
    let labels: Vec<i64> = (0..50).map(|i| i % 3).collect();
    std::fs::write(
        dir.join("labels50.npy"),
        npy_bytes(&[50], NpyDataRef::I64(&labels)),
    )
    .unwrap();
    let mask: Vec<f32> = values(50, 20, 2)
        .iter()
        .map(|v| if *v > 0.2 { 1.0 } else { 0.0 })
        .collect();
    write_npy_f32(&dir.join("mask.npy"), 50, 20, &mask);
    let mut neg = values(50, 20, 3);
    neg[3 * 20 + 4] = -1.0;
    write_npy_f32(&dir.join("neg.npy"), 50, 20, &neg);
    write_npy_f32(&dir.join("good30f.npy"), 50, 30, &values(50, 30, 4));
    dir
}

/// `dir/name` as a string.
fn p(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

/// `partlearn fit nmf --data good.npy -k 3` into `dir/r1`.
fn nmf_run(dir: &Path) -> String {
    let r1 = p(dir, "r1");
    assert_ok(&run(&[
        "fit",
        "nmf",
        "--data",
        &p(dir, "good.npy"),
        "-k",
        "3",
        "--out",
        &r1,
        "-q",
    ]));
    r1
}

/// [`run`] of `args` with `partlearn` arguments built from strings.
fn run_s(args: &[String]) -> std::process::Output {
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// (1) `transform --force` never writes its codes over its own `--mask`.
#[test]
fn transform_never_overwrites_its_mask() {
    let dir = files("mask-out");
    let r1 = nmf_run(&dir);
    let m2 = p(&dir, "m2.npy");
    std::fs::copy(dir.join("mask.npy"), &m2).unwrap();
    let before = std::fs::read(&m2).unwrap();
    let o = run(&[
        "transform",
        &r1,
        "--data",
        &p(&dir, "good.npy"),
        "--mask",
        &m2,
        "--out",
        &m2,
        "--force",
    ]);
    assert_user_error(&o, &["--out", "input file"]);
    assert_eq!(std::fs::read(&m2).unwrap(), before, "the mask was overwritten");
}

/// (2) A fit that fails leaves no run folder: numerical failure of `fit ae`, and bad
/// `--test-data` of neural-nmf, hnmf and deep-nmf refused before any training; a run replaced
/// with `--force` by a failing fit stays whole.
#[test]
fn failed_fits_leave_no_run_folder() {
    let dir = files("failed-fits");
    let good = p(&dir, "good.npy");
    let ra = dir.join("ra_new");
    let ae = |out: &Path, extra: &[&str]| {
        let mut a = vec![
            "fit",
            "ae",
            "--data",
            &good,
            "-k",
            "3",
            "--epochs",
            "2",
            "--batch-size",
            "10",
            "--lr",
            "1e30",
            "-q",
            "--out",
            s(out),
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    assert_user_error(&ae(&ra, &[]), &["numerical"]);
    assert!(!ra.exists(), "a failed fit left a run folder");
    // A finished run replaced by a failing fit keeps its files.
    let kept = dir.join("kept");
    assert_ok(&run(&[
        "fit",
        "ae",
        "--data",
        &good,
        "-k",
        "3",
        "--epochs",
        "1",
        "--batch-size",
        "10",
        "-q",
        "--out",
        s(&kept),
    ]));
    assert_user_error(&ae(&kept, &["--force"]), &["numerical"]);
    assert!(kept.join("run.json").is_file() && kept.join("model.safetensors").is_file());

    let labels = p(&dir, "labels50.npy");
    let neg = p(&dir, "neg.npy");
    for (method, length) in [
        ("neural-nmf", "--epochs"),
        ("hnmf", "--max-iter"),
        ("deep-nmf", "--max-iter"),
    ] {
        let out = dir.join(format!("{method}-new"));
        let start = std::time::Instant::now();
        assert_refused(
            &[
                "fit",
                method,
                "--data",
                &good,
                "--labels",
                &labels,
                "--ranks",
                "3,2",
                length,
                "100000",
                "--test-data",
                &neg,
                "--test-labels",
                &labels,
                "-q",
                "--out",
                s(&out),
            ],
            &["--test-data", "negative"],
            &out,
        );
        assert!(
            start.elapsed().as_secs() < 20,
            "{method} trained before checking --test-data"
        );
    }
}

/// (3) A sweep checks its evaluation data and every point's options before the first fit, names
/// its flags, and leaves no new folder when it fails before any point was evaluated.
#[test]
fn sweep_checks_before_fitting() {
    let dir = files("sweep-checks");
    let good = p(&dir, "good.npy");
    let sweep = |out: &str, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "sweep",
            "nmf",
            "--data",
            &good,
            "--no-svm",
            "-q",
            "--max-iter",
            "5",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(p(&dir, out));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let f30 = p(&dir, "good30f.npy");
    for (out, extra, keys) in [
        (
            "sw13",
            vec!["-k", "2", "--eval-data", &f30],
            vec!["--eval-data", "30 features"],
        ),
        (
            "sw14",
            vec!["-k", "2", "--eval-first", "0", "--eval-data", &good],
            vec!["--eval-first 0"],
        ),
        (
            "sw15",
            vec!["-k", "2", "--eval-first", "5"],
            vec!["--eval-first", "--eval-data"],
        ),
        ("sw2", vec!["-k", "0,3"], vec!["--k 0"]),
        ("sw17", vec!["-k", "100"], vec!["--k 100", "lower --k"]),
    ] {
        let o = run_s(&sweep(out, &extra));
        assert_user_error(&o, &keys);
        assert!(!dir.join(out).exists(), "{out} left behind");
    }
    // A valid sweep still runs.
    assert_ok(&run_s(&sweep("ok", &["-k", "2,3"])));
    assert!(dir.join("ok/sweep.csv").is_file());
}

/// (4) Flags of another solver or mode are refused, naming the mode; `--max-iter 0` and
/// `--class-steps 0` are refused.
#[test]
fn flags_of_another_mode_are_refused() {
    let dir = files("mode-flags");
    let good = p(&dir, "good.npy");
    let out = dir.join("rx");
    for (extra, keys) in [
        (
            &["--batch-size", "7"][..],
            &["--batch-size 7", "--solver online"][..],
        ),
        (
            &["--forget-factor", "0.3"],
            &["--forget-factor", "--solver online"],
        ),
        (&["--fresh-restarts"], &["--fresh-restarts", "--solver online"]),
        (
            &["--max-no-improvement", "3"],
            &["--max-no-improvement", "--solver online"],
        ),
        (
            &["--temp-dir", "/nonexistent"],
            &["--temp-dir", "--solver online"],
        ),
        (&["--oversample", "2"], &["--oversample 2", "--compress"]),
        (&["--power-iters", "5"], &["--power-iters", "--compress"]),
        (&["--polish", "3"], &["--polish 3", "--compress"]),
        (
            &["--hals-inner-max", "3", "--solver", "mu"],
            &["--hals-inner-max", "--solver hals", "here: --solver mu"],
        ),
        (
            &["--hals-inner-max", "3", "--solver", "anls"],
            &["--hals-inner-max", "--solver hals"],
        ),
        (&["--max-iter", "0"], &["--max-iter 0"]),
    ] {
        let mut a = vec!["fit", "nmf", "--data", &good, "-k", "3", "-q", "--out", s(&out)];
        a.extend_from_slice(extra);
        assert_refused(&a, keys, &out);
    }
    assert_refused(
        &[
            "fit",
            "sparse-nmf",
            "--data",
            &good,
            "-k",
            "3",
            "--max-iter",
            "0",
            "-q",
            "--out",
            s(&out),
        ],
        &["--max-iter 0"],
        &out,
    );
    let labels = p(&dir, "labels50.npy");
    assert_refused(
        &[
            "fit",
            "neural-nmf",
            "--data",
            &good,
            "--labels",
            &labels,
            "--ranks",
            "3,2",
            "--supervision",
            "full",
            "--class-steps",
            "0",
            "--epochs",
            "5",
            "-q",
            "--out",
            s(&out),
        ],
        &["--class-steps 0"],
        &out,
    );
    // The flags still work in their own mode.
    assert_ok(&run(&[
        "fit",
        "nmf",
        "--data",
        &good,
        "-k",
        "3",
        "--solver",
        "online",
        "--batch-size",
        "7",
        "-q",
        "--out",
        s(&out),
    ]));
}

/// (5) Errors and `--json` warnings name the flags, not the library's parameters.
#[test]
fn library_names_become_flags() {
    let dir = files("lib-names");
    let good = p(&dir, "good.npy");
    let out = dir.join("rx");
    let fit = |extra: &[&str]| {
        let mut a = vec!["fit", "nmf", "--data", &good, "-k", "3", "-q", "--out", s(&out)];
        a.extend_from_slice(extra);
        run(&a)
    };
    let o = fit(&["--encode-max-iter", "0"]);
    assert_user_error(&o, &["--encode-max-iter 0"]);
    assert!(!stderr(&o).contains("max_iter"), "{}", stderr(&o));
    let o = fit(&["--compress", "--oversample", "2", "--polish", "99999"]);
    assert_user_error(&o, &["--polish 99999", "--max-iter 200"]);
    assert!(!stderr(&o).contains("max_iter"), "{}", stderr(&o));
    let o = fit(&["--max-iter", "3", "--tol", "1e-9", "--json", "--force"]);
    assert_ok(&o);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let w = summary["warnings"][0].as_str().unwrap();
    assert!(
        w.contains("--tol") && w.ends_with("increase --max-iter or --tol"),
        "{w}"
    );

    let r1 = nmf_run(&dir);
    let o = run(&[
        "eval",
        &r1,
        "--data",
        &good,
        "--labels",
        &p(&dir, "labels50.npy"),
        "--svm-grid",
        "0",
        "-q",
    ]);
    assert_user_error(&o, &["--svm-grid 0", "--no-svm"]);
    assert!(!stderr(&o).contains("svm_protocol"), "{}", stderr(&o));
    assert!(!Path::new(&r1).join("metrics.json").exists());
}

/// (6) A missing `--labels` file and an `--out` under a file name the flag and the fix.
#[test]
fn missing_inputs_and_bad_outputs_name_the_flag() {
    let dir = files("bad-paths");
    let good = p(&dir, "good.npy");
    let missing = p(&dir, "nonexist.npy");
    let out = dir.join("rx");
    assert_refused(
        &[
            "fit",
            "nmf",
            "--data",
            &good,
            "--labels",
            &missing,
            "-k",
            "3",
            "-q",
            "--out",
            s(&out),
        ],
        &["--labels", "nonexist.npy", "no such file"],
        &out,
    );
    let r1 = nmf_run(&dir);
    let afile = p(&dir, "afile");
    std::fs::write(&afile, b"x").unwrap();
    let under = format!("{afile}/x.npy");
    assert_user_error(
        &run(&["transform", &r1, "--data", &good, "--out", &under]),
        &["--out", "is a file, not a folder"],
    );
    assert_user_error(
        &run(&["report", &r1, "--out", &format!("{afile}/x.html")]),
        &["--out", "is a file, not a folder"],
    );
    assert_refused(
        &[
            "fit",
            "nmf",
            "--data",
            &good,
            "-k",
            "3",
            "-q",
            "--out",
            &format!("{afile}/run"),
        ],
        &["--out", "is a file, not a folder"],
        &dir.join("afile/run"),
    );
}

/// (7) A file given for a run folder, `fit asym-ae` on non-image data and a `--val-fraction`
/// too small for early stopping get messages that say what is wrong and what to give.
#[test]
fn misleading_messages_are_precise() {
    let dir = files("wording");
    let good = p(&dir, "good.npy");
    let r1 = nmf_run(&dir);
    let model = format!("{r1}/model.safetensors");
    assert_user_error(
        &run(&["eval", &model, "--data", &good]),
        &["is a file, not a run folder", "give its folder"],
    );
    assert_user_error(
        &run(&["report", &good, "--out", &p(&dir, "x.html")]),
        &["is a file, not a run folder"],
    );
    let out = dir.join("ra");
    assert_refused(
        &[
            "fit",
            "asym-ae",
            "--data",
            &good,
            "-k",
            "3",
            "-q",
            "--out",
            s(&out),
        ],
        &["`partlearn fit ae`"],
        &out,
    );
    let o = assert_refused(
        &[
            "fit",
            "ae",
            "--data",
            &good,
            "-k",
            "3",
            "--val-fraction",
            "0.001",
            "--patience",
            "1",
            "-q",
            "--out",
            s(&out),
        ],
        &["--val-fraction 0.001", "no sample of the 50", "0.02"],
        &out,
    );
    assert!(!stderr(&o).contains("set --val-fraction"), "{}", stderr(&o));
}

/// (8) `report` shows a run given twice once, and warns about a run whose model is damaged.
#[test]
fn report_deduplicates_and_warns() {
    let dir = files("report");
    let r1 = nmf_run(&dir);
    let html = p(&dir, "r.html");
    let again = format!("{}/../r1", r1);
    let o = run(&["report", &r1, &again, "--out", &html]);
    assert_ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(1 runs"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(stderr(&o).contains("shown once"), "{}", stderr(&o));

    let model = Path::new(&r1).join("model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let o = run(&["report", &r1, "--out", &html, "--force", "-q"]);
    assert_ok(&o);
    let warnings: Vec<&str> = std::str::from_utf8(&o.stderr).unwrap().lines().collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("warning: run") && warnings[0].contains("r1"),
        "{warnings:?}"
    );
}

/// (9) The iteration warnings of hnmf and deep-nmf name their layer.
#[test]
fn layer_warnings_name_the_layer() {
    let dir = files("layers");
    let good = p(&dir, "good.npy");
    for method in ["hnmf", "deep-nmf"] {
        let out = dir.join(method);
        let o = run(&[
            "fit",
            method,
            "--data",
            &good,
            "--ranks",
            "3,2",
            "--max-iter",
            "2",
            "--tol",
            "1e-12",
            "-q",
            "--out",
            s(&out),
        ]);
        assert_ok(&o);
        let err = stderr(&o);
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("warning: maximum number of iterations"))
            .collect();
        assert!(lines.iter().any(|l| l.ends_with("(layer 1, rank 3)")), "{err}");
        assert!(lines.iter().any(|l| l.ends_with("(layer 2, rank 2)")), "{err}");
    }
}

/// `eval` warns when the SVM protocol's evaluation splits test on fewer samples than there are
/// classes (50 samples, 5 classes: 10 held out, 1 tested), and not with enough samples.
#[test]
fn eval_warns_when_svm_test_splits_are_smaller_than_the_classes() {
    let dir = files("svm-coarse");
    let run = nmf_run(&dir);
    let labels = dir.join("labels5.npy");
    let y: Vec<f32> = (0..50).map(|i| (i % 5) as f32).collect();
    std::fs::write(&labels, npy_bytes(&[50], NpyDataRef::F32(&y))).unwrap();
    let o = run_s(&[
        "eval".into(),
        run.clone(),
        "--data".into(),
        p(&dir, "good.npy"),
        "--labels".into(),
        labels.to_str().unwrap().into(),
        "--svm-grid".into(),
        "2".into(),
        "--force".into(),
    ]);
    assert_ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("warning: each SVM evaluation split tests on 1 sample(s) for 5 classes"),
        "{err}"
    );
}
