//! `partlearn reproduce part-based-study`: the plan, a small study end to end on the first
//! Fashion-MNIST images (every file it writes), and its resumption — evaluated points kept,
//! longer training continued from the checkpoints, an interrupted point continued, other
//! settings refused.

use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::*;

/// `reproduce part-based-study` on the first 300 training and 200 test images, KL at two β and
/// two p, the given extra flags.
fn study(out: &Path, extra: &[&str]) -> Command {
    let mut c = partlearn();
    c.args([
        "reproduce",
        "part-based-study",
        "--first",
        "300",
        "--eval-first",
        "200",
        "--penalties",
        "kl",
        "--beta",
        "0.001,0.01",
        "--p",
        "0.01,0.05",
        "--threads",
        "2",
        "--out",
        s(out),
    ])
    .args(extra);
    c
}

fn hash_of(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn the_plan_lists_the_budgets_points_and_bad_options_are_one_line_errors() {
    let dir = temp_dir("study-plan");
    let out = dir.join("study");
    let list = |budget: &str| {
        let o = run(&["reproduce", "part-based-study", "--budget", budget, "--list"]);
        assert_ok(&o);
        String::from_utf8(o.stdout).unwrap()
    };
    let fast = list("fast");
    let full = list("full");
    assert_eq!(fast.lines().count(), 63);
    assert_eq!(full.lines().count(), 135);
    assert!(fast.contains("ae-kl-p0.01-beta0.005\t12\tshallow AE, KL, p = 0.01, β = 0.005"));
    assert!(fast.contains("asym-ae-kl-p0.01-beta0.01\t3\t"));
    assert!(full.contains("asym-ae-kl-p0.01-beta0.01\t500\t"));
    assert!(fast.contains("sparse-nmf-sH0.6\t0\tsparse NMF, s_H = 0.6"));
    let base = ["reproduce", "part-based-study", "--out", s(&out)];
    for (extra, words) in [
        (&["--budget", "slow"][..], &["budget", "fast", "full"][..]),
        (&["--penalties", "l1"], &["penalties", "kl, l2, eps-l1, log"]),
        (&["--penalties", "kl2"], &["sparsity", "kl"]),
        (&["--p", "1.5"], &["p", "(0, 1)"]),
        (&["--beta", "-0.1"], &["beta", "positive"]),
        (&["--epochs", "0"], &["epochs", "at least one"]),
    ] {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        assert_refused(&args, words, &out);
    }
    // A folder that is not a study's is not written into; a file is refused.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let o = run(&[&base[..], &["--no-asym", "--beta", "0.001", "--p", "0.05"]].concat());
    assert_user_error(&o, &["not a partlearn study", "--force"]);
    let file = dir.join("file");
    std::fs::write(&file, "x").unwrap();
    let o = run(&["reproduce", "part-based-study", "--out", s(&file)]);
    assert_user_error(&o, &["not a folder"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_small_study_writes_its_page_and_resumes_without_recomputing() {
    if !fashion_available() {
        return;
    }
    let dir = temp_dir("study-small");
    let out = dir.join("study");
    let o = study(&out, &["--epochs", "1"]).output().unwrap();
    assert_ok(&o);
    let err = stderr(&o);
    // sparse NMF, unconstrained AE, 2 × 2 KL points, 5 asymmetric-AE rows.
    assert!(err.contains("[11/11] asym-ae-kl-p0.01-beta0.01"), "{err}");
    let csv = std::fs::read_to_string(out.join("study.csv")).unwrap();
    assert_eq!(csv.lines().count(), 12, "{csv}");
    let json = read_json(&out.join("study.json"));
    assert_eq!(json.as_array().unwrap().len(), 11);
    for f in [
        "reconstruction_mse_vs_beta_kl.svg",
        "hoyer_vs_beta_kl.svg",
        "max_approx_vs_beta_kl.svg",
        "svm_accuracy_vs_beta_kl.svg",
        "max_approx_vs_hoyer.svg",
    ] {
        let svg = std::fs::read_to_string(out.join("figures").join(f)).unwrap();
        let reference = if f.contains("_vs_beta_") {
            "report, p = 0.05"
        } else {
            "report: table rows"
        };
        assert!(svg.starts_with("<svg") && svg.contains(reference), "{f}");
    }
    let html = std::fs::read_to_string(out.join("study.html")).unwrap();
    for want in [
        "The report's table, side by side",
        "Asymmetric sparse NN-AE",
        "1 / 500",
        "Metrics against β",
        "Trade-offs",
        "not run yet",
    ] {
        assert!(html.contains(want), "{want} missing from study.html");
    }
    assert!(!html.contains("src=\"http"), "self-contained");
    // Every point is a run folder `eval` measured on the test images.
    let m = read_json(&out.join("points/ae-kl-p0.01-beta0.01/metrics.json"));
    assert_eq!(m["n_samples"], 200);
    assert_eq!(m["svm"]["options"]["c_grid"], 5, "the fast budget's SVM grid");
    let run_json = read_json(&out.join("points/sparse-nmf-sH0.6/run.json"));
    assert_eq!(
        run_json["data"]["n_samples"], 200,
        "sparse NMF is fitted on the test images"
    );

    // Again: nothing is recomputed.
    let metrics = out.join("points/asym-ae-unconstrained/metrics.json");
    let before = hash_of(&metrics);
    let o = study(&out, &["--epochs", "1"]).output().unwrap();
    assert_ok(&o);
    assert_eq!(stderr(&o).matches("already evaluated, kept").count(), 11);
    assert_eq!(hash_of(&metrics), before);

    // Longer: the AEs are continued from their checkpoints, sparse NMF is kept.
    let o = study(&out, &["--epochs", "2", "--no-asym"]).output().unwrap();
    assert_ok(&o);
    let err = stderr(&o);
    assert_eq!(
        err.matches("continuing from its checkpoint to 2 epochs").count(),
        5,
        "{err}"
    );
    assert!(err.contains("sparse-nmf-sH0.6: already evaluated, kept"), "{err}");
    let r = read_json(&out.join("points/ae-kl-p0.05-beta0.001/run.json"));
    assert_eq!(r["n_iter"], 2);
    // Fewer epochs than trained, or other settings: refused, nothing changed.
    let o = study(&out, &["--epochs", "1", "--no-asym", "--quiet"])
        .output()
        .unwrap();
    assert_user_error(&o, &["trained for 2 epochs", "--epochs 2"]);
    let o = study(&out, &["--epochs", "2", "--no-asym", "--seed", "3", "-q"])
        .output()
        .unwrap();
    assert_user_error(&o, &["other settings", "another --out"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_interrupted_study_continues_the_interrupted_point_from_its_checkpoint() {
    if !fashion_available() {
        return;
    }
    let dir = temp_dir("study-interrupt");
    let out = dir.join("study");
    let args = [
        "reproduce",
        "part-based-study",
        "--first",
        "300",
        "--eval-first",
        "200",
        "--penalties",
        "kl",
        "--beta",
        "0.001",
        "--p",
        "0.05",
        "--epochs",
        "600",
        "--no-asym",
        "--no-svm",
        "--threads",
        "2",
        "--out",
        s(&out),
    ];
    let mut child = partlearn().args(args).stderr(Stdio::piped()).spawn().unwrap();
    // The second point's record is written when its fit starts; Ctrl-C during its training,
    // which takes 1.5 s on a fast machine (a Ctrl-C before its first epoch stops it after it).
    wait_for(&out.join("points/ae-unconstrained.study-point.json"));
    let code = ctrl_c_after(&mut child, 300);
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("the same command continues the study"), "{err}");
    // The page shows what was evaluated and names the points left.
    let html = std::fs::read_to_string(out.join("study.html")).unwrap();
    assert!(
        html.contains("2 point(s) not evaluated yet")
            && html.contains("ae-unconstrained, ae-kl-p0.05-beta0.001"),
        "{err}"
    );
    let o = run(&args);
    assert_ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("ae-unconstrained: continuing from its checkpoint to 600 epochs"),
        "{err}"
    );
    assert!(err.contains("sparse-nmf-sH0.6: already evaluated, kept"), "{err}");
    let r = read_json(&out.join("points/ae-unconstrained/run.json"));
    assert_eq!(r["n_iter"], 600);
    let _ = std::fs::remove_dir_all(&dir);
}
