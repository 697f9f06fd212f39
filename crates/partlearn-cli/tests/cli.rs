//! The `partlearn` command line end to end for NMF: fits on swimmer and on a Fashion-MNIST
//! slice, the run folder and its files, transform, eval, data info/export, bench, sweep,
//! no-overwrite, Ctrl-C (one fit and the points of a sweep) and numpy interoperability.

use std::path::Path;
use std::process::Command;

mod common;
use common::*;

use partlearn::npy::read_npy;

#[test]
fn swimmer_plain_hals_in_f64_isolates_the_limbs_and_records_the_option() {
    let dir = temp_dir("swimmer-plain");
    let out = dir.join("run");
    let o = fit_swimmer(&out)
        .args(["-k", "17", "--no-extrapolate", "--dtype", "f64"])
        .args(["--max-iter", "2000", "--tol", "0", "--json"])
        .output()
        .unwrap();
    assert_ok(&o);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(summary["rel_error"].as_f64().unwrap() < 1e-6, "{summary}");
    let meta = read_json(&out.join("run.json"));
    assert_eq!(meta["part"]["options"]["extrapolate"], false);
}

#[test]
fn swimmer_end_to_end_fit_files_transform_eval() {
    let dir = temp_dir("swimmer");
    let r = swimmer_run(&dir);
    for f in [
        "run.json",
        "model.safetensors",
        "history.jsonl",
        "figures/atoms.png",
        "figures/reconstructions.png",
    ] {
        assert!(r.join(f).is_file(), "missing {f}");
    }
    let png = std::fs::read(r.join("figures/atoms.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let meta = read_json(&r.join("run.json"));
    let n_iter = meta["n_iter"].as_u64().unwrap() as usize;
    assert_eq!(meta["part"]["options"]["k"], 17);
    let history = std::fs::read_to_string(r.join("history.jsonl")).unwrap();
    let iters: Vec<u64> = history
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["iter"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(iters, (0..=n_iter as u64).collect::<Vec<_>>());

    // transform gives the codes fit stored.
    let codes = dir.join("codes.npy");
    assert_ok(&transform(&r, "swimmer", &codes));
    let a = read_npy(&codes).unwrap();
    assert_eq!(a.shape, vec![256, 17]);
    let stored = model_tensor(&r, "codes").to_mat::<f64>().unwrap();
    let t: Vec<f64> = a.to_real();
    let (mut diff, mut norm) = (0.0, 0.0);
    for i in 0..256 {
        for j in 0..17 {
            diff += (t[i * 17 + j] - stored[(i, j)]).powi(2);
            norm += stored[(i, j)].powi(2);
        }
    }
    assert!(
        diff.sqrt() <= 1e-3 * norm.sqrt(),
        "transform differs from the fit codes"
    );

    // eval writes metrics.json and the evaluation figures; a second eval needs --force.
    assert_ok(&run(&["eval", s(&r), "--data", "swimmer", "--quiet", "--no-svm"]));
    let m = read_json(&r.join("metrics.json"));
    assert!(m["reconstruction"]["mse"].as_f64().unwrap() >= 0.0);
    assert!(m["max_approx"]["vs_dilated_originals"].as_f64().is_some());
    assert!(r.join("figures/eval_panel.png").is_file());
    assert_user_error(
        &run(&["eval", s(&r), "--data", "swimmer", "--quiet", "--no-svm"]),
        &["already exists", "--force"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn numpy_reads_the_model_file() {
    let have_numpy = Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have_numpy {
        assert!(
            std::env::var_os("PARTLEARN_REQUIRE_NUMPY").is_none(),
            "PARTLEARN_REQUIRE_NUMPY is set but numpy is missing"
        );
        eprintln!("skipped: numpy not installed");
        return;
    }
    let dir = temp_dir("numpy");
    let r = swimmer_run(&dir);
    // The safetensors layout read by hand with numpy only: u64 header length, JSON header, data.
    let script = r#"
import json, struct, sys, numpy as np
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n]); body = raw[8 + n:]
out = {}
for name, t in header.items():
    if name == '__metadata__': continue
    a, b = t['data_offsets']
    dt = {'F32': '<f4', 'F64': '<f8'}[t['dtype']]
    out[name] = np.frombuffer(body[a:b], dtype=dt).reshape(t['shape'])
assert out['atoms'].shape == (17, 1024), out['atoms'].shape
assert out['codes'].shape == (256, 17), out['codes'].shape
assert (out['atoms'] >= 0).all() and (out['codes'] >= 0).all()
assert header['__metadata__']['partlearn.model'] == 'nmf'
print('ok')
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(r.join("model.safetensors"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn existing_runs_are_not_overwritten_without_force() {
    let dir = temp_dir("overwrite");
    let r = swimmer_run(&dir);
    let before = std::fs::read(r.join("run.json")).unwrap();
    assert_user_error(&fit_nmf(&r, "5", &[]), &["already exists", "--force"]);
    assert_eq!(
        std::fs::read(r.join("run.json")).unwrap(),
        before,
        "the old run is untouched"
    );
    assert_ok(&fit_nmf(&r, "5", &["--force"]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fashion_mnist_slice_fits_and_sparse_nmf_runs() {
    if !fashion_available() {
        eprintln!("skipped: Fashion-MNIST not installed");
        return;
    }
    let dir = temp_dir("fashion");
    let out = dir.join("nmf");
    let o = fit_quiet(
        "nmf",
        "fashion-mnist:train",
        &out,
        &[
            "--first",
            "2000",
            "-k",
            "20",
            "--max-iter",
            "30",
            "--threads",
            "2",
            "--json",
        ],
    );
    assert_ok(&o);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(summary["rel_error"].as_f64().unwrap() < 0.5);
    let meta = read_json(&out.join("run.json"));
    assert_eq!(meta["data"]["n_samples"], 2000);
    let sp = dir.join("snmf");
    let o = fit_quiet(
        "sparse-nmf",
        "fashion-mnist:test",
        &sp,
        &[
            "--first",
            "500",
            "-k",
            "10",
            "--code-sparsity",
            "0.6",
            "--max-iter",
            "20",
        ],
    );
    assert_ok(&o);
    assert_ok(&run(&[
        "eval",
        s(&sp),
        "--data",
        "fashion-mnist:test",
        "--first",
        "500",
        "--stored-codes",
        "--quiet",
        "--svm-grid",
        "2",
        "--svm-select-splits",
        "1",
        "--svm-eval-splits",
        "2",
    ]));
    let m = read_json(&sp.join("metrics.json"));
    assert!(m["svm"]["mean_accuracy"].as_f64().unwrap() > 0.3);
    // Stored codes scored against other data: refused, naming both.
    assert_user_error(
        &run(&[
            "eval",
            s(&sp),
            "--data",
            "fashion-mnist:test",
            "--first",
            "400",
            "--stored-codes",
            "--force",
            "--no-svm",
            "--quiet",
        ]),
        &["--stored-codes", "--first 500", "--first 400"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn data_info_and_export_round_trip() {
    let dir = temp_dir("data");
    let o = run(&["data", "info", "swimmer"]);
    assert_ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("256") && text.contains("1024"), "{text}");
    let x = dir.join("x.npy");
    assert_ok(&run(&["data", "export", "toy-hierarchy", "--out", s(&x)]));
    let a = read_npy(&x).unwrap();
    assert_eq!(a.shape, vec![90, 87]);
    let labels = dir.join("x-labels.npy");
    assert!(labels.is_file(), "labels written beside the data");
    assert_eq!(read_npy(&labels).unwrap().shape, vec![90]);
    // The exported file is a valid data set again.
    assert_ok(&run(&["data", "info", s(&x)]));
    assert_user_error(
        &run(&["data", "export", "toy-hierarchy", "--out", s(&x)]),
        &["already exists"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_nnls_times_one_exact_codes_update() {
    // `bench nnls` on swimmer (k = 17, 1 thread) with `extra` arguments, as JSON.
    let bench = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "bench",
            "nnls",
            "--data",
            "swimmer",
            "-k",
            "17",
            "--threads",
            "1",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_ok(&o);
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = bench(&["--warmup", "3", "--reps", "2"]);
    assert!(v["gemm_seconds"].as_f64().unwrap() > 0.0, "{v}");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{v}");
    let f = |key: &str| {
        steps[0][key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {v}"))
    };
    assert!(f("cd_seconds") > 0.0 && f("bpp_seconds") > 0.0, "{v}");
    assert!(
        f("step_seconds") >= f("cd_seconds") && f("step_seconds") >= f("bpp_seconds"),
        "{v}"
    );
    // Every column with a non-empty passive set is factored at least once; swimmer's codes are
    // sparse but not empty; updates are counted (swimmer's passive sets are below the size
    // that uses them).
    assert!(f("solves_per_column") >= 1.0 && f("mean_passive") > 0.0, "{v}");
    assert!(f("updates_per_column") >= 0.0, "{v}");
    assert_eq!(steps[0]["sweeps"], partlearn::nmf::frobenius::ANLS_PREDICT_SWEEPS);
    // Several sweep counts are timed in turn; the exact solution does not depend on them.
    let v = bench(&["--warmup", "2", "--reps", "1", "--sweeps", "0,2"]);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{v}");
    assert_eq!(
        (steps[0]["sweeps"].as_u64(), steps[1]["sweeps"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(steps[0]["mean_passive"], steps[1]["mean_passive"], "{v}");
    // Both precisions of the passive-set systems, each with every sweep count; the same
    // solution's support either way.
    let v = bench(&[
        "--warmup",
        "2",
        "--reps",
        "1",
        "--sweeps",
        "0",
        "--systems",
        "data,f64",
    ]);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{v}");
    assert_eq!(
        (steps[0]["systems"].as_str(), steps[1]["systems"].as_str()),
        (Some("data"), Some("f64"))
    );
    assert_eq!(steps[0]["mean_passive"], steps[1]["mean_passive"], "{v}");
    assert_eq!(
        (steps[0]["widened"].as_u64(), steps[1]["widened"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(
        (steps[0]["capped"].as_u64(), steps[0]["inexact"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    assert_user_error(
        &run(&[
            "bench",
            "nnls",
            "--data",
            "swimmer",
            "-k",
            "5",
            "--systems",
            "f16",
        ]),
        &["--systems", "f16", "data", "f64"],
    );
    let o = run(&["bench", "nnls", "--data", "swimmer", "-k", "0"]);
    assert!(!o.status.success());
}

#[test]
fn bench_prints_json() {
    let o = run(&[
        "bench",
        "nmf",
        "--data",
        "swimmer",
        "-k",
        "17",
        "--max-iter",
        "5",
        "--threads",
        "1",
        "--json",
    ]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["solvers"].as_array().is_some_and(|s| !s.is_empty()), "{v}");
    // The four products are timed before the solvers and again after each solver's run.
    for s in v["solvers"].as_array().unwrap() {
        let (before, after) = (
            s["base_bound"].as_f64().unwrap(),
            s["base_bound_after"].as_f64().unwrap(),
        );
        assert!(before > 0.0 && after > 0.0, "{s}");
        assert!(s["paired_ratio"].is_null(), "{s}");
    }
    // Paired: the products are also timed between the iterations, outside the fit's clock.
    let o = run(&[
        "bench",
        "nmf",
        "--data",
        "swimmer",
        "-k",
        "17",
        "--max-iter",
        "4",
        "--threads",
        "1",
        "--solvers",
        "anls,mu",
        "--paired",
        "--json",
    ]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for s in v["solvers"].as_array().unwrap() {
        let f = |key: &str| s[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {s}"));
        assert!(f("paired_gemm_bound") > 0.0, "{s}");
        let want = f("seconds_per_iter") / f("paired_gemm_bound");
        assert!((f("paired_ratio") / want - 1.0).abs() < 1e-9, "{s}");
        // Four iterations: the first two and the last two, whose pooled ratio is the whole.
        let (first, last) = (f("paired_ratio_first"), f("paired_ratio_last"));
        let r = f("paired_ratio");
        assert!(
            first.min(last) <= r * (1.0 + 1e-9) && r <= first.max(last) * (1.0 + 1e-9),
            "{s}"
        );
    }
}

#[test]
fn ctrl_c_saves_the_run_and_exits_130() {
    let dir = temp_dir("sigint");
    let out = dir.join("run");
    let mut child = fit_swimmer(&out)
        .args(["-k", "17", "--max-iter", "100000000", "--tol", "0"])
        .spawn()
        .unwrap();
    assert_eq!(ctrl_c_after(&mut child, 1500), Some(130));
    let meta = read_json(&out.join("run.json"));
    assert_eq!(meta["stop_reason"], "interrupted");
    assert!(out.join("model.safetensors").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

/// One Ctrl-C handler per process: Ctrl-C stops the second point of a sweep too (a handler
/// installed per fit was refused from the second fit on, so that fit ran on).
#[test]
fn ctrl_c_stops_a_later_point_of_a_sweep() {
    let dir = temp_dir("sigint-sweep");
    // A sweep over k = 2, 3 of endless fits, each point with a time budget of `seconds`.
    let sweep = |out: &Path, seconds: &str| {
        let fit_args = format!("--tol 0 --max-seconds {seconds}");
        partlearn()
            .args([
                "sweep",
                "nmf",
                "--data",
                "swimmer",
                "-k",
                "2,3",
                "--max-iter",
                "100000000",
                "--no-svm",
                "--fit-args",
                &fit_args,
                "--quiet",
                "--out",
                s(out),
            ])
            .spawn()
            .unwrap()
    };
    // The first point has a 30 s budget: interrupt it, then the second one.
    let out = dir.join("sweep");
    let mut child = sweep(&out, "30");
    assert_eq!(ctrl_c_after(&mut child, 1500), Some(130));
    let first = read_json(&out.join("nmf-k2/run.json"));
    assert_eq!(first["stop_reason"], "interrupted");
    assert!(!out.join("nmf-k3").exists());

    // A fresh sweep whose first point is quick: Ctrl-C during the second point stops it.
    let out = dir.join("sweep2");
    let mut child = sweep(&out, "2");
    wait_for(&out.join("nmf-k2/metrics.json"));
    std::thread::sleep(std::time::Duration::from_millis(700));
    let started = std::time::Instant::now();
    sigint(child.id());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(
        started.elapsed().as_secs_f64() < 1.5,
        "the second point did not stop on Ctrl-C"
    );
    let second = read_json(&out.join("nmf-k3/run.json"));
    assert_eq!(second["stop_reason"], "interrupted");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn atoms_figure_draws_at_most_400_atoms() {
    // Overcomplete swimmer (k = 500 > 256 samples): the run completes, and its atoms figure
    // is a 20 × 20 grid of the most used atoms (PNG width at bytes 16..20 of the IHDR chunk).
    let dir = temp_dir("many-atoms");
    let out = dir.join("r");
    let one_iteration = |out: &Path, k: &str| {
        fit_swimmer(out)
            .args(["-k", k, "--max-iter", "1"])
            .output()
            .unwrap()
    };
    assert_ok(&one_iteration(&out, "500"));
    let png = std::fs::read(out.join("figures/atoms.png")).unwrap();
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let one_tile = {
        let o = dir.join("one");
        assert_ok(&one_iteration(&o, "1"));
        let p = std::fs::read(o.join("figures/atoms.png")).unwrap();
        u32::from_be_bytes(p[16..20].try_into().unwrap())
    };
    // width = cols·(tile + 1) + 1 with one column → tile + 2.
    assert_eq!(width, 20 * (one_tile - 1) + 1, "{width} {one_tile}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sweep_writes_table_and_charts_and_resumes() {
    let dir = temp_dir("sweep");
    let out = dir.join("sweep");
    let args = [
        "sweep",
        "sparse-nmf",
        "--data",
        "swimmer",
        "-k",
        "8,17",
        "--code-sparsity",
        "0.3,0.6",
        "--max-iter",
        "20",
        "--no-svm",
        "--quiet",
        "--out",
        s(&out),
    ];
    assert_ok(&run(&args));
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    for f in [
        "hoyer_vs_code-sparsity.svg",
        "max_approx_vs_hoyer.svg",
        "max_approx_vs_reconstruction.svg",
    ] {
        assert!(out.join("figures").join(f).is_file(), "missing {f}");
    }
    // An interrupted point (no metrics.json) is redone; finished points are kept as they are.
    let kept = out.join("sparse-nmf-k8-code-sparsity0.3").join("run.json");
    let before = std::fs::read(&kept).unwrap();
    let redo = out.join("sparse-nmf-k17-code-sparsity0.6");
    std::fs::remove_file(redo.join("metrics.json")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // run.json stores whole seconds
    assert_ok(&run(&args));
    assert_eq!(std::fs::read(&kept).unwrap(), before);
    assert!(redo.join("metrics.json").is_file());
    // The same sweep with other settings does not pass the old points off as its own.
    let mut other = args.to_vec();
    let at = other.len() - 5;
    other[at] = "30";
    assert_eq!(args[args.len() - 6], "--max-iter");
    assert_user_error(&run(&other), &["other settings", "sweep-point.json", "--out"]);
    assert_eq!(std::fs::read(&kept).unwrap(), before);
    assert_user_error(
        &run(&[
            "sweep",
            "nmf",
            "--data",
            "swimmer",
            "--code-sparsity",
            "0.5",
            "--out",
            s(&out),
        ]),
        &["sparse-nmf"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}
