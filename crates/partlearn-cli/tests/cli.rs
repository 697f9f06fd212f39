//! The `partlearn` command line end to end: fits on swimmer and on a Fashion-MNIST slice, the
//! run folder and its files, transform, eval, data info/export, bench, no-overwrite, Ctrl-C,
//! numpy interoperability, and one test per kind of bad input (one-line `error: …`, exit 2,
//! never a panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::*;

use partlearn::npy::{npy_bytes, read_npy, NpyDataRef};

fn fashion_available() -> bool {
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

fn write_npy_f32(path: &Path, rows: usize, cols: usize, v: &[f32]) {
    std::fs::write(path, npy_bytes(&[rows, cols], NpyDataRef::F32(v))).unwrap();
}

/// A run on swimmer, shared by several tests.
fn swimmer_run(dir: &Path) -> PathBuf {
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

#[test]
fn swimmer_plain_hals_in_f64_isolates_the_limbs_and_records_the_option() {
    let dir = temp_dir("swimmer-plain");
    let out = dir.join("run");
    let o = run(&[
        "fit",
        "nmf",
        "--data",
        "swimmer",
        "-k",
        "17",
        "--no-extrapolate",
        "--dtype",
        "f64",
        "--max-iter",
        "2000",
        "--tol",
        "0",
        "--json",
        "--quiet",
        "--out",
        s(&out),
    ]);
    assert_ok(&o);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(summary["rel_error"].as_f64().unwrap() < 1e-6, "{summary}");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(meta["options"]["extrapolate"], false);
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
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.join("run.json")).unwrap()).unwrap();
    let n_iter = meta["n_iter"].as_u64().unwrap() as usize;
    assert_eq!(meta["options"]["k"], 17);
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
    assert_ok(&run(&[
        "transform",
        s(&r),
        "--data",
        "swimmer",
        "--out",
        s(&codes),
        "--quiet",
    ]));
    let a = read_npy(&codes).unwrap();
    assert_eq!(a.shape, vec![256, 17]);
    let (tensors, _) = partlearn::io::read_safetensors(&r.join("model.safetensors")).unwrap();
    let stored = partlearn::io::tensor_by_name(&tensors, "codes", &r)
        .unwrap()
        .to_mat::<f64>()
        .unwrap();
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
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.join("metrics.json")).unwrap()).unwrap();
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
    let o = run(&[
        "fit",
        "nmf",
        "--data",
        "swimmer",
        "-k",
        "5",
        "--max-iter",
        "3",
        "--quiet",
        "--out",
        s(&r),
    ]);
    assert_user_error(&o, &["already exists", "--force"]);
    assert_eq!(
        std::fs::read(r.join("run.json")).unwrap(),
        before,
        "the old run is untouched"
    );
    assert_ok(&run(&[
        "fit",
        "nmf",
        "--data",
        "swimmer",
        "-k",
        "5",
        "--max-iter",
        "3",
        "--quiet",
        "--force",
        "--out",
        s(&r),
    ]));
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
    let o = run(&[
        "fit",
        "nmf",
        "--data",
        "fashion-mnist:train",
        "--first",
        "2000",
        "-k",
        "20",
        "--max-iter",
        "30",
        "--threads",
        "2",
        "--quiet",
        "--json",
        "--out",
        s(&out),
    ]);
    assert_ok(&o);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(summary["rel_error"].as_f64().unwrap() < 0.5);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(meta["data"]["n_samples"], 2000);
    let sp = dir.join("snmf");
    let o = run(&[
        "fit",
        "sparse-nmf",
        "--data",
        "fashion-mnist:test",
        "--first",
        "500",
        "-k",
        "10",
        "--code-sparsity",
        "0.6",
        "--max-iter",
        "20",
        "--quiet",
        "--out",
        s(&sp),
    ]);
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
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sp.join("metrics.json")).unwrap()).unwrap();
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
    let mut child = partlearn()
        .args([
            "fit",
            "nmf",
            "--data",
            "swimmer",
            "-k",
            "17",
            "--max-iter",
            "100000000",
            "--tol",
            "0",
            "--quiet",
            "--out",
            s(&out),
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(meta["stop_reason"], "interrupted");
    assert!(out.join("model.safetensors").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

/// One Ctrl-C handler per process: Ctrl-C stops the second point of a sweep too (a handler
/// installed per fit was refused from the second fit on, so that fit ran on).
#[test]
fn ctrl_c_stops_a_later_point_of_a_sweep() {
    let dir = temp_dir("sigint-sweep");
    let out = dir.join("sweep");
    let mut child = partlearn()
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
            "--tol 0 --max-seconds 30",
            "--quiet",
            "--out",
            s(&out),
        ])
        .spawn()
        .unwrap();
    // The first point has a 30 s budget: interrupt it, then the second one.
    let wait_for = |p: &std::path::Path| {
        let t = std::time::Instant::now();
        while !p.exists() {
            assert!(t.elapsed().as_secs() < 60, "{} never appeared", p.display());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let interrupt = |pid: u32| {
        let killed = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    };
    std::thread::sleep(std::time::Duration::from_millis(1500));
    interrupt(child.id());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let first: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("nmf-k2/run.json")).unwrap()).unwrap();
    assert_eq!(first["stop_reason"], "interrupted");
    assert!(!out.join("nmf-k3").exists());

    // A fresh sweep whose first point is quick: Ctrl-C during the second point stops it.
    let out = dir.join("sweep2");
    let mut child = partlearn()
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
            "--tol 0 --max-seconds 2",
            "--quiet",
            "--out",
            s(&out),
        ])
        .spawn()
        .unwrap();
    wait_for(&out.join("nmf-k2/metrics.json"));
    std::thread::sleep(std::time::Duration::from_millis(700));
    let started = std::time::Instant::now();
    interrupt(child.id());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        started.elapsed().as_secs_f64() < 1.5,
        "the second point did not stop on Ctrl-C"
    );
    let second: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("nmf-k3/run.json")).unwrap()).unwrap();
    assert_eq!(second["stop_reason"], "interrupted");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_data_values_name_the_sample_and_feature() {
    let dir = temp_dir("badvalues");
    let mut v = vec![0.5f32; 12];
    v[4 * 1 + 2] = -1.0; // sample 1, feature 2 (4 features per sample)
    let neg = dir.join("neg.npy");
    write_npy_f32(&neg, 3, 4, &v);
    assert_user_error(
        &run(&[
            "fit",
            "nmf",
            "--data",
            s(&neg),
            "-k",
            "2",
            "--out",
            s(&dir.join("a")),
        ]),
        &["negative", "sample 1", "feature 2"],
    );
    v[6] = f32::NAN; // the same entry, now NaN
    let nan = dir.join("nan.npy");
    write_npy_f32(&nan, 3, 4, &v);
    assert_user_error(
        &run(&[
            "fit",
            "nmf",
            "--data",
            s(&nan),
            "-k",
            "2",
            "--out",
            s(&dir.join("b")),
        ]),
        &["non-finite", "sample 1", "feature 2"],
    );
    v[6] = f32::INFINITY;
    let inf = dir.join("inf.npy");
    write_npy_f32(&inf, 3, 4, &v);
    assert_user_error(
        &run(&[
            "fit",
            "nmf",
            "--data",
            s(&inf),
            "-k",
            "2",
            "--out",
            s(&dir.join("c")),
        ]),
        &["non-finite"],
    );
    let empty = dir.join("empty.npy");
    write_npy_f32(&empty, 0, 4, &[]);
    assert_user_error(
        &run(&[
            "fit",
            "nmf",
            "--data",
            s(&empty),
            "-k",
            "2",
            "--out",
            s(&dir.join("d")),
        ]),
        &["empty"],
    );
    assert!(
        !dir.join("a").exists(),
        "no run folder is left behind by a failed fit"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn atoms_figure_draws_at_most_400_atoms() {
    // Overcomplete swimmer (k = 500 > 256 samples): the run completes, and its atoms figure
    // is a 20 × 20 grid of the most used atoms (PNG width at bytes 16..20 of the IHDR chunk).
    let dir = temp_dir("many-atoms");
    let out = dir.join("r");
    assert_ok(&run(&[
        "fit",
        "nmf",
        "--data",
        "swimmer",
        "-k",
        "500",
        "--max-iter",
        "1",
        "--quiet",
        "--out",
        s(&out),
    ]));
    let png = std::fs::read(out.join("figures/atoms.png")).unwrap();
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let one_tile = {
        let o = dir.join("one");
        assert_ok(&run(&[
            "fit",
            "nmf",
            "--data",
            "swimmer",
            "-k",
            "1",
            "--max-iter",
            "1",
            "--quiet",
            "--out",
            s(&o),
        ]));
        let p = std::fs::read(o.join("figures/atoms.png")).unwrap();
        u32::from_be_bytes(p[16..20].try_into().unwrap())
    };
    // width = cols·(tile + 1) + 1 with one column → tile + 2.
    assert_eq!(width, 20 * (one_tile - 1) + 1, "{width} {one_tile}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_options_are_one_line_errors() {
    let dir = temp_dir("badopts");
    let out = s(&dir.join("r")).to_string();
    // The help names every solver the parser accepts, and so does the error for a wrong one.
    let help = run(&["fit", "nmf", "--help"]);
    assert_ok(&help);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let solver_help = help
        .split("--solver")
        .nth(1)
        .and_then(|t| t.split("--beta-loss").next())
        .unwrap_or_default();
    for name in ["hals", "anls", "mu"] {
        assert!(
            solver_help.contains(name),
            "--solver help misses {name}: {solver_help}"
        );
    }
    assert_user_error(
        &run(&[
            "fit", "nmf", "--data", "swimmer", "--solver", "foo", "--out", &out,
        ]),
        &["solver", "mu", "hals", "anls"],
    );
    // Parse errors are one line too (clap's usage block and footer folded into "see --help").
    for (args, keys) in [
        (
            &["-k", "abc"][..],
            &["invalid value 'abc'", "--k", "see --help"][..],
        ),
        (&["--dtype", "F32"], &["F32", "f32", "see --help"]),
        (&["--first", "10", "--subset", "5"], &["--first", "--subset"]),
        (&["--bogus"], &["--bogus"]),
        // A negative value is a bad value of its option, not an unknown argument.
        (&["-k", "-1"], &["invalid value '-1'", "--k"]),
    ] {
        let mut a = vec!["fit", "nmf", "--data", "swimmer", "--out", &out];
        a.extend_from_slice(args);
        assert_user_error(&run(&a), keys);
    }
    assert_user_error(
        &run(&["fit", "nmf", "--data", "", "--out", &out]),
        &["invalid data = ''", "fashion-mnist:train"],
    );
    // Sizes that cannot run: k above both sides, absurd thread counts.
    assert_user_error(
        &run(&["fit", "nmf", "--data", "swimmer", "-k", "100000", "--out", &out]),
        &["k = 100000", "max(n_samples, n_features) = 1024"],
    );
    assert_user_error(
        &run(&[
            "fit",
            "nmf",
            "--data",
            "swimmer",
            "-k",
            "3",
            "--threads",
            "100000",
            "--out",
            &out,
        ]),
        &["threads = 100000", "at most"],
    );
    // Empty data is refused when loaded, whatever the command.
    let empty = dir.join("empty.npy");
    std::fs::write(&empty, npy_bytes(&[0, 20], NpyDataRef::F32(&[]))).unwrap();
    assert_user_error(&run(&["data", "info", s(&empty)]), &["empty", "0 samples"]);
    let lab = dir.join("lab.npy");
    assert_user_error(
        &run(&[
            "data",
            "export",
            "swimmer",
            "--out",
            s(&dir.join("sw.npy")),
            "--labels-out",
            s(&lab),
        ]),
        &["--labels-out", "no labels"],
    );
    assert!(!lab.exists() && !dir.join("sw.npy").exists());
    // Benchmarks that would time nothing.
    for (args, keys) in [
        (&["nmf", "--max-iter", "0"][..], &["max-iter"][..]),
        (&["nmf", "--targets=nan,0.2"], &["targets"]),
        (&["nnls", "--reps", "0"], &["reps"]),
        (&["nmf", "--init", "custom"], &["fit nmf --init custom"]),
    ] {
        let mut a = vec!["bench"];
        a.extend_from_slice(args);
        a.extend(["--data", "swimmer", "-k", "5"]);
        assert_user_error(&run(&a), keys);
    }
    // Options of another method or mode are refused, not ignored.
    assert_user_error(
        &run(&[
            "fit",
            "sparse-nmf",
            "--data",
            "swimmer",
            "--code-constraint",
            "samples",
            "--out",
            &out,
        ]),
        &["--code-sparsity"],
    );
    for (method, extra, keys) in [
        (
            "nmf",
            "--p",
            &["--p belongs to ae and asym-ae, not nmf", "--alpha-w"][..],
        ),
        (
            "sparse-nmf",
            "--alpha-w",
            &["--alpha-w belongs to nmf", "--code-sparsity"],
        ),
        (
            "ae",
            "--code-sparsity",
            &["--code-sparsity belongs to sparse-nmf", "--p and --beta"],
        ),
    ] {
        assert_user_error(
            &run(&["sweep", method, "--data", "swimmer", extra, "0.1", "--out", &out]),
            keys,
        );
    }
    assert!(!std::path::Path::new(&out).exists());
    // A cause quoted by its error is not repeated.
    let o = run(&[
        "fit",
        "nmf",
        "--data",
        "swimmer",
        "-k",
        "3",
        "--init",
        "custom",
        "--init-atoms",
        s(&dir.join("nope.npy")),
        "--out",
        &out,
    ]);
    assert_user_error(&o, &["--init-atoms", "nope.npy"]);
    assert_eq!(stderr(&o).matches("os error 2").count(), 1, "{}", stderr(&o));
    assert_user_error(
        &run(&["fit", "nmf", "--data", "swimmer", "-k", "0", "--out", &out]),
        &["k"],
    );
    assert_user_error(
        &run(&[
            "fit",
            "nmf",
            "--data",
            "toy-hierarchy",
            "-k",
            "89",
            "--init",
            "nndsvd",
            "--out",
            &out,
        ]),
        &["nndsvd", "k"],
    );
    assert_user_error(
        &run(&["fit", "nmf", "--data", "no-such-set", "-k", "2", "--out", &out]),
        &["unknown data set"],
    );
    assert_user_error(
        &run(&[
            "fit", "nmf", "--data", "swimmer", "--solver", "newton", "--out", &out,
        ]),
        &["solver"],
    );
    assert_user_error(
        &run(&[
            "fit",
            "sparse-nmf",
            "--data",
            "swimmer",
            "--code-sparsity",
            "1.5",
            "--out",
            &out,
        ]),
        &["sparsity"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_fashion_mnist_says_how_to_install_it() {
    let empty = temp_dir("nodata");
    let o = partlearn()
        .args(["data", "info", "fashion-mnist:train"])
        .env("PARTLEARN_DATA_DIR", &empty)
        .output()
        .unwrap();
    assert_user_error(&o, &["not found", "apt-get install", "dataset-fashion-mnist"]);
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn truncated_and_forged_files_are_refused_before_allocating() {
    let dir = temp_dir("forged");
    // NPY: a header declaring more data than the file holds.
    let good = npy_bytes(&[10, 10], NpyDataRef::F32(&[0.5; 100]));
    let trunc = dir.join("trunc.npy");
    std::fs::write(&trunc, &good[..good.len() - 40]).unwrap();
    assert_user_error(&run(&["data", "info", s(&trunc)]), &["truncated"]);
    // NPY: a forged shape of 10^15 × 10^15 entries.
    let forged = dir.join("forged.npy");
    let text = String::from_utf8_lossy(&good).replace("(10, 10)", "(999999999999999, 999999999999999)");
    std::fs::write(&forged, text.as_bytes()).unwrap();
    let o = run(&["data", "info", s(&forged)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("panicked") && !stderr(&o).contains("memory allocation"));
    // IDX: images header (magic 0x803, 3 dims) declaring 1000 images of 28×28 with 10 present.
    let mut idx = vec![0u8, 0, 8, 3];
    for d in [1000u32, 28, 28] {
        idx.extend_from_slice(&d.to_be_bytes());
    }
    idx.extend(std::iter::repeat_n(7u8, 10 * 784));
    let raw = dir.join("images-idx3-ubyte");
    std::fs::write(&raw, &idx).unwrap();
    assert_user_error(&run(&["data", "info", s(&raw)]), &["truncated"]);
    let gz = dir.join("images-idx3-ubyte.gz");
    {
        use std::io::Write;
        let mut e =
            flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
        e.write_all(&idx).unwrap();
        e.finish().unwrap();
    }
    assert_user_error(&run(&["data", "info", s(&gz)]), &["truncated"]);
    // IDX with absurd dimensions.
    let mut huge = vec![0u8, 0, 8, 3];
    for d in [u32::MAX, u32::MAX, u32::MAX] {
        huge.extend_from_slice(&d.to_be_bytes());
    }
    let hp = dir.join("huge-idx3-ubyte");
    std::fs::write(&hp, &huge).unwrap();
    let o = run(&["data", "info", s(&hp)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("panicked"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn custom_init_files_are_checked() {
    let dir = temp_dir("custom");
    let out = s(&dir.join("r")).to_string();
    let missing = s(&dir.join("nope.npy")).to_string();
    assert_user_error(
        &run(&[
            "fit",
            "nmf",
            "--data",
            "swimmer",
            "-k",
            "3",
            "--init",
            "custom",
            "--init-atoms",
            &missing,
            "--out",
            &out,
        ]),
        &["nope.npy"],
    );
    let wrong = dir.join("wrong.npy");
    write_npy_f32(&wrong, 3, 10, &[0.1; 30]);
    assert_user_error(
        &run(&[
            "fit",
            "nmf",
            "--data",
            "swimmer",
            "-k",
            "3",
            "--init",
            "custom",
            "--init-atoms",
            s(&wrong),
            "--out",
            &out,
        ]),
        &["1024"],
    );
    assert_user_error(
        &run(&[
            "fit",
            "nmf",
            "--data",
            "swimmer",
            "-k",
            "3",
            "--init-atoms",
            s(&wrong),
            "--out",
            &out,
        ]),
        &["--init custom"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn transform_checks_the_run_and_the_data_width() {
    let dir = temp_dir("transform");
    let not_run = dir.join("empty");
    std::fs::create_dir_all(&not_run).unwrap();
    let codes = s(&dir.join("c.npy")).to_string();
    let o = run(&["transform", s(&not_run), "--data", "swimmer", "--out", &codes]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("error: ") && stderr(&o).lines().count() == 1,
        "{}",
        stderr(&o)
    );
    let r = swimmer_run(&dir);
    assert_user_error(
        &run(&["transform", s(&r), "--data", "toy-hierarchy", "--out", &codes]),
        &["1024"],
    );
    // Images of another shape with the same pixel count (16×64 against swimmer's 32×32).
    let wide = dir.join("wide.npy");
    std::fs::write(&wide, npy_bytes(&[3, 16, 64], NpyDataRef::F32(&[0.5; 3 * 1024]))).unwrap();
    for cmd in [
        vec!["transform", s(&r), "--data", s(&wide), "--out", &codes],
        vec!["eval", s(&r), "--data", s(&wide), "--no-svm", "--force"],
    ] {
        assert_user_error(&run(&cmd), &["32×32", "16×64"]);
    }
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
        "hoyer_vs_code-sparsity.png",
        "max_approx_vs_hoyer.png",
        "max_approx_vs_reconstruction.png",
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

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn ae_fit(cmd: &str, out: &Path, extra: &[&str]) -> Output {
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
    assert_eq!(meta["epochs"], 3);
    assert_eq!(meta["n_params"], 8 * 1024 * 2 + 8 + 1024);
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
    assert_ok(&run(&[
        "transform",
        s(&r),
        "--data",
        "swimmer",
        "--out",
        s(&codes),
        "--quiet",
    ]));
    let a = read_npy(&codes).unwrap();
    assert_eq!(a.shape, vec![256, 8]);
    assert!(a.to_real::<f64>().iter().all(|&v| v > 0.0 && v < 1.0));
    assert_ok(&run(&["eval", s(&r), "--data", "swimmer", "--quiet", "--no-svm"]));
    let m = read_json(&r.join("metrics.json"));
    assert!(m["reconstruction"]["mse"].as_f64().unwrap() >= 0.0);

    // Resuming to 5 epochs gives the same weights as 5 epochs in one go.
    assert_ok(&run(&[
        "fit",
        "ae",
        "--data",
        "swimmer",
        "--resume",
        s(&r),
        "--epochs",
        "5",
        "--quiet",
    ]));
    assert_eq!(read_json(&r.join("run.json"))["resumed_from_epoch"], 3);
    let straight = dir.join("straight");
    assert_ok(&ae_fit(
        "ae",
        &straight,
        &["--epochs", "5", "--val-fraction", "0.25"],
    ));
    let atoms = |p: &Path| {
        let (t, _) = partlearn::io::read_safetensors(&p.join("model.safetensors")).unwrap();
        partlearn::io::tensor_by_name(&t, "atoms", p).unwrap().clone()
    };
    assert_eq!(atoms(&r), atoms(&straight));
    assert_eq!(
        std::fs::read_to_string(r.join("history.jsonl"))
            .unwrap()
            .lines()
            .count(),
        5
    );
    // Nothing left to do: a one-line error says how to train longer.
    assert_user_error(
        &run(&["fit", "ae", "--data", "swimmer", "--resume", s(&r), "--quiet"]),
        &["all its 5 epochs", "--epochs"],
    );
    // The wrong command for the model kind.
    assert_user_error(
        &run(&[
            "fit",
            "asym-ae",
            "--data",
            "swimmer",
            "--resume",
            s(&r),
            "--epochs",
            "9",
            "--quiet",
        ]),
        &["fit ae"],
    );
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
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let meta = read_json(&out.join("run.json"));
    assert_eq!(meta["stop_reason"], "interrupted");
    let done = meta["epochs"].as_u64().unwrap();
    assert!(out.join("checkpoint.safetensors").is_file());
    let target = (done + 1).to_string();
    assert_ok(&run(&[
        "fit",
        "ae",
        "--data",
        "swimmer",
        "--resume",
        s(&out),
        "--epochs",
        &target,
        "--quiet",
    ]));
    assert_eq!(
        read_json(&out.join("run.json"))["epochs"].as_u64(),
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
    assert_eq!(meta["options"]["tol"], 1e-4);
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
        (meta["stop_reason"].as_str(), meta["epochs"].as_u64()),
        (Some("time-limit"), Some(0))
    );
    assert_ok(&run(&[
        "fit",
        "ae",
        "--data",
        "swimmer",
        "--resume",
        s(&b),
        "--quiet",
    ]));
    assert_eq!(read_json(&b.join("run.json"))["epochs"], 2);
    let straight = dir.join("straight");
    assert_ok(&ae_fit("ae", &straight, &["--epochs", "2"]));
    let atoms = |p: &Path| {
        let (t, _) = partlearn::io::read_safetensors(&p.join("model.safetensors")).unwrap();
        partlearn::io::tensor_by_name(&t, "atoms", p).unwrap().clone()
    };
    assert_eq!(atoms(&b), atoms(&straight));
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
        assert_user_error(&run(&args), &keys);
        assert!(!out.exists(), "{args:?} left a run folder");
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
    let o = run(&[
        "fit",
        "asym-ae",
        "--data",
        "fashion-mnist:train",
        "--first",
        "512",
        "-k",
        "16",
        "--epochs",
        "2",
        "--threads",
        "2",
        "--quiet",
        "--out",
        s(&r),
    ]);
    assert_ok(&o);
    let meta = read_json(&r.join("run.json"));
    assert_eq!(meta["method"], "asym-ae");
    assert!(meta["loss"].as_f64().unwrap().is_finite());
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
    assert!(out.join("figures/hoyer_vs_beta.png").is_file());
    let meta = read_json(&out.join("ae-k8-p0.3-beta0.5").join("run.json"));
    assert_eq!(meta["options"]["loss"]["beta"], 0.5);
    assert_eq!(meta["options"]["optimizer"]["kind"], "adam");
    assert_eq!(meta["epochs"], 2);
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

#[test]
fn neural_nmf_on_toy_hierarchy_unsupervised_and_semi_supervised() {
    let dir = temp_dir("neural");
    let r = dir.join("nn");
    assert_ok(&run(&[
        "fit",
        "neural-nmf",
        "--data",
        "toy-hierarchy",
        "--ranks",
        "9,4",
        "--epochs",
        "300",
        "--quiet",
        "--out",
        s(&r),
    ]));
    let meta = read_json(&r.join("run.json"));
    assert_eq!(meta["method"], "neural-nmf");
    assert_eq!(meta["epochs"], 300);
    let rel = meta["rel_error"].as_f64().unwrap();
    assert!(rel > 0.25 && rel < 0.6, "{rel}");
    assert!(meta["accuracy"].as_f64().is_some());
    let history = std::fs::read_to_string(r.join("history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 301);
    // The composed codes through transform; eval through the shared protocol.
    let codes = dir.join("codes.npy");
    assert_ok(&run(&[
        "transform",
        s(&r),
        "--data",
        "toy-hierarchy",
        "--out",
        s(&codes),
        "--quiet",
    ]));
    assert_eq!(read_npy(&codes).unwrap().shape, vec![90, 9]);
    assert_ok(&run(&[
        "eval",
        s(&r),
        "--data",
        "toy-hierarchy",
        "--quiet",
        "--no-svm",
    ]));

    let semi = dir.join("semi");
    assert_ok(&run(&[
        "fit",
        "neural-nmf",
        "--data",
        "toy-hierarchy",
        "--ranks",
        "9,4",
        "--epochs",
        "200",
        "--supervision",
        "semi",
        "--labeled",
        "40",
        "--quiet",
        "--out",
        s(&semi),
    ]));
    let meta = read_json(&semi.join("run.json"));
    assert_eq!(meta["n_labeled"], 40);
    assert!(meta["accuracy_unlabeled"].as_f64().is_some());
    assert!(semi.join("model.safetensors").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn neural_nmf_bad_options_are_one_line_errors() {
    let dir = temp_dir("neural-bad");
    let out = dir.join("x");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--ranks", "4,9"], vec!["ranks", "decrease"]),
        (vec!["--ranks", "100"], vec!["ranks"]),
        (
            vec!["--supervision", "semi", "--labeled", "500"],
            vec!["--labeled"],
        ),
        (vec!["--supervision", "partial"], vec!["--supervision"]),
        (
            vec!["--supervision", "full", "--label-set", "labels7"],
            vec!["labels7"],
        ),
        (vec!["--lr=-1"], vec!["lr"]),
        // Options of the label term without supervision.
        (
            vec!["--class-loss", "ce"],
            vec!["--class-loss ce", "--supervision none"],
        ),
        (vec!["--lr-class", "1"], vec!["--lr-class", "--supervision none"]),
        (
            vec!["--class-steps", "5"],
            vec!["--class-steps", "--supervision none"],
        ),
        // A step so long that the layers overflow names the step, not the dictionary.
        (vec!["--lr", "1e30"], vec!["epoch 1", "lower --lr"]),
        (vec!["--cost", "kl"], vec!["--cost"]),
        (vec!["--test-first", "5"], vec!["--test-data"]),
        // Test data of another width (swimmer: 1024 features against 87): an error, not a panic.
        (
            vec!["--test-data", "swimmer"],
            vec!["--test-data swimmer", "1024 features", "87"],
        ),
    ];
    for (extra, keys) in cases {
        let mut args = vec![
            "fit",
            "neural-nmf",
            "--data",
            "toy-hierarchy",
            "--epochs",
            "2",
            "--quiet",
            "--out",
            s(&out),
        ];
        args.extend(extra.iter().copied());
        assert_user_error(&run(&args), &keys);
        assert!(!out.exists(), "{extra:?} left a run folder");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--labeled` without `--supervision semi`, `--lambda` without supervision, `--test-data`
/// that cannot be scored and a bad `--lambda` are refused before any fitting (the fits here would run for minutes), and
/// `--test-labels` gives unlabeled test data its labels.
#[test]
fn layer_fits_check_their_options_before_fitting() {
    let dir = temp_dir("layers-check");
    let out = dir.join("x");
    // Toy-hierarchy's width (87) without labels, and labels for it.
    let plain = dir.join("plain.npy");
    let x: Vec<f32> = (0..20 * 87).map(|i| (i % 7) as f32).collect();
    std::fs::write(&plain, npy_bytes(&[20, 87], NpyDataRef::F32(&x))).unwrap();
    let classes = dir.join("classes.npy");
    let c: Vec<i64> = (0..20).map(|i| i % 2).collect();
    std::fs::write(&classes, npy_bytes(&[20], NpyDataRef::I64(&c))).unwrap();
    let long = |method: &str| -> Vec<String> {
        let budget = if method == "neural-nmf" {
            ["--epochs", "100000000", "--max-seconds", "120"]
        } else {
            ["--max-iter", "100000000", "--tol", "0"]
        };
        let mut a: Vec<String> = [
            "fit",
            method,
            "--data",
            "toy-hierarchy",
            "--ranks",
            "9,4",
            "--quiet",
        ]
        .iter()
        .map(|v| v.to_string())
        .collect();
        a.extend(budget.iter().map(|v| v.to_string()));
        a.extend(["--out".to_string(), s(&out).to_string()]);
        a
    };
    for method in ["hnmf", "deep-nmf", "neural-nmf"] {
        let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
            (vec!["--labeled", "5"], vec!["--labeled 5", "--supervision semi"]),
            (
                vec!["--test-data", "swimmer"],
                vec!["--test-data swimmer", "1024 features", "87"],
            ),
            (
                vec!["--test-data", s(&plain)],
                vec!["has no labels", "--test-labels"],
            ),
            (vec!["--test-labels", s(&classes)], vec!["--test-data"]),
            (vec!["--lambda=-1", "--supervision", "full"], vec!["lambda"]),
            (vec!["--lambda", "2"], vec!["--lambda 2", "--supervision none"]),
        ];
        for (extra, keys) in cases {
            let mut args = long(method);
            args.extend(extra.iter().map(|v| v.to_string()));
            let args: Vec<&str> = args.iter().map(|v| v.as_str()).collect();
            let t = std::time::Instant::now();
            let o = run(&args);
            assert_user_error(&o, &keys);
            assert!(
                t.elapsed().as_secs() < 60,
                "{method} {extra:?}: refused only after fitting"
            );
            assert!(!out.exists(), "{extra:?} left a run folder");
        }
        // Test data need training labels for the classifier.
        let o = run(&[
            "fit",
            method,
            "--data",
            s(&plain),
            "--ranks",
            "4,2",
            "--test-data",
            s(&plain),
            "--out",
            s(&out),
        ]);
        assert_user_error(&o, &["training labels", "--labels"]);
    }
    // With --test-labels the unlabeled test data are scored.
    let scored = dir.join("scored");
    assert_ok(&run(&[
        "fit",
        "deep-nmf",
        "--data",
        s(&plain),
        "--labels",
        s(&classes),
        "--ranks",
        "4,2",
        "--max-iter",
        "20",
        "--test-data",
        s(&plain),
        "--test-labels",
        s(&classes),
        "--quiet",
        "--out",
        s(&scored),
    ]));
    let meta = read_json(&scored.join("run.json"));
    assert!(meta["test_accuracy"].as_f64().is_some(), "{meta}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ssnmf_hnmf_deep_nmf_on_toy_hierarchy() {
    let dir = temp_dir("layers");
    let ss = dir.join("ss");
    assert_ok(&run(&[
        "fit",
        "ssnmf",
        "--data",
        "toy-hierarchy",
        "-k",
        "4",
        "--label-set",
        "labels4",
        "--labeled",
        "40",
        "--max-iter",
        "1500",
        "--tol",
        "1e-6",
        "--quiet",
        "--out",
        s(&ss),
    ]));
    let meta = read_json(&ss.join("run.json"));
    assert_eq!(meta["n_labeled"], 40);
    assert!(meta["accuracy_unlabeled"].as_f64().unwrap() >= 0.9, "{meta}");
    assert_eq!(read_npy(&ss.join("labels_pred.npy")).unwrap().shape, vec![90]);
    // The dictionary is an NMF model: transform works on it.
    let codes = dir.join("codes.npy");
    assert_ok(&run(&[
        "transform",
        s(&ss),
        "--data",
        "toy-hierarchy",
        "--out",
        s(&codes),
        "--quiet",
    ]));

    for (method, sup) in [
        ("hnmf", "none"),
        ("hnmf", "semi"),
        ("deep-nmf", "none"),
        ("deep-nmf", "full"),
    ] {
        let out = dir.join(format!("{method}-{sup}"));
        assert_ok(&run(&[
            "fit",
            method,
            "--data",
            "toy-hierarchy",
            "--ranks",
            "9,4",
            "--supervision",
            sup,
            "--max-iter",
            "300",
            "--quiet",
            "--out",
            s(&out),
        ]));
        let meta = read_json(&out.join("run.json"));
        assert_eq!(meta["method"], method);
        let errs = meta["level_errors"].as_array().unwrap();
        assert_eq!(errs.len(), 2);
        assert!(errs[1].as_f64().unwrap() >= 0.28, "{meta}");
        assert!(meta["accuracy"].as_f64().is_some());
        assert_ok(&run(&[
            "eval",
            s(&out),
            "--data",
            "toy-hierarchy",
            "--quiet",
            "--no-svm",
        ]));
    }
    assert_user_error(
        &run(&[
            "fit",
            "hnmf",
            "--data",
            "toy-hierarchy",
            "--ranks",
            "4,9",
            "--quiet",
            "--out",
            s(&dir.join("bad")),
        ]),
        &["ranks"],
    );
    assert_user_error(
        &run(&[
            "fit",
            "ssnmf",
            "--data",
            "toy-hierarchy",
            "-k",
            "0",
            "--quiet",
            "--out",
            s(&dir.join("bad")),
        ]),
        &["k"],
    );
    assert_user_error(
        &run(&[
            "fit",
            "ssnmf",
            "--data",
            "toy-hierarchy",
            "--data-loss",
            "hellinger",
            "--quiet",
            "--out",
            s(&dir.join("bad")),
        ]),
        &["frobenius or kl"],
    );
    // Settings that would run without meaning: a negative tol, masks that mark nothing or hold
    // values other than 0 and 1, a negative label weight.
    let (no_labels, half) = (dir.join("nolab.npy"), dir.join("half.npy"));
    write_npy_f32(&no_labels, 90, 1, &[0.0; 90]);
    let mut m = vec![1.0f32; 90 * 87];
    m[5] = f32::NAN;
    write_npy_f32(&half, 90, 87, &m);
    let bad = s(&dir.join("bad")).to_string();
    for (args, keys) in [
        (vec!["ssnmf", "--tol=-1"], vec!["tol"]),
        (
            vec!["ssnmf", "--label-mask", s(&no_labels)],
            vec!["label mask", "no sample"],
        ),
        (
            vec!["ssnmf", "--data-mask", s(&half)],
            vec!["--data-mask", "non-finite", "sample 0, feature 5"],
        ),
        (
            vec!["deep-nmf", "--supervision", "semi", "--lambda=-1"],
            vec!["lambda"],
        ),
    ] {
        let mut a = vec!["fit"];
        a.extend(args);
        a.extend([
            "--data",
            "toy-hierarchy",
            "--max-iter",
            "3",
            "--quiet",
            "--out",
            &bad,
        ]);
        assert_user_error(&run(&a), &keys);
    }
    assert!(!dir.join("bad").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--max-seconds` bounds hnmf and deep-nmf (their layer-wise fits included: 10^8 iterations
/// each) and neural-nmf; a tolerance that `--max-iter` (`--epochs`) cuts short is a warning that
/// names the flags.
#[test]
fn layer_fits_honour_a_time_budget_and_warn_at_max_iter() {
    let dir = temp_dir("layers-budget");
    for method in ["ssnmf", "hnmf", "deep-nmf", "neural-nmf"] {
        let out = dir.join(format!("{method}-budget"));
        let mut args = vec![
            "fit",
            method,
            "--data",
            "toy-hierarchy",
            "--quiet",
            "--out",
            s(&out),
        ];
        args.extend(match method {
            "neural-nmf" => ["--ranks", "9,4", "--epochs", "100000000", "--max-seconds", "1"].as_slice(),
            "ssnmf" => [
                "-k",
                "4",
                "--max-iter",
                "100000000",
                "--tol",
                "0",
                "--max-seconds",
                "1",
            ]
            .as_slice(),
            _ => [
                "--ranks",
                "9,4",
                "--max-iter",
                "100000000",
                "--tol",
                "0",
                "--max-seconds",
                "1",
            ]
            .as_slice(),
        });
        let t = std::time::Instant::now();
        assert_ok(&run(&args));
        assert!(t.elapsed().as_secs() < 60, "{method} ignored its budget");
        let meta = read_json(&out.join("run.json"));
        assert_eq!(meta["stop_reason"], "time-limit", "{method}: {meta}");

        let out = dir.join(format!("{method}-warn"));
        let mut args = vec![
            "fit",
            method,
            "--data",
            "toy-hierarchy",
            "--quiet",
            "--out",
            s(&out),
            "--tol",
            "1e-14",
        ];
        args.extend(match method {
            "neural-nmf" => ["--ranks", "9,4", "--epochs", "20"].as_slice(),
            "ssnmf" => ["-k", "4", "--max-iter", "20"].as_slice(),
            _ => ["--ranks", "9,4", "--max-iter", "20"].as_slice(),
        });
        let o = run(&args);
        assert_ok(&o);
        let err = stderr(&o);
        let flag = if method == "neural-nmf" {
            "--epochs"
        } else {
            "--max-iter"
        };
        assert!(
            err.contains("warning: maximum number of iterations 20 reached")
                && err.contains(&format!("increase {flag} or --tol")),
            "{method}: {err}"
        );
        let meta = read_json(&out.join("run.json"));
        assert!(
            !meta["warnings"].as_array().unwrap().is_empty(),
            "{method}: {meta}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ctrl-C stops the layer-wise fits of hnmf and deep-nmf (then no later stage starts) and the
/// epochs of neural-nmf: the run so far is saved, exit 130.
#[test]
fn ctrl_c_stops_the_layer_fits_and_saves() {
    let dir = temp_dir("layers-sigint");
    for method in ["hnmf", "deep-nmf", "neural-nmf"] {
        let out = dir.join(method);
        let long = if method == "neural-nmf" {
            ["--epochs", "100000000", "--tol", "0"]
        } else {
            ["--max-iter", "100000000", "--tol", "0"]
        };
        let mut child = partlearn()
            .args([
                "fit",
                method,
                "--data",
                "toy-hierarchy",
                "--ranks",
                "9,4,2",
                "--quiet",
                "--out",
                s(&out),
            ])
            .args(long)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let killed = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        assert_eq!(child.wait().unwrap().code(), Some(130), "{method}");
        let meta = read_json(&out.join("run.json"));
        assert_eq!(meta["stop_reason"], "interrupted", "{method}: {meta}");
        assert!(out.join("model.safetensors").is_file());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reproduce_neural_nmf_table_short() {
    let o = run(&[
        "reproduce",
        "neural-nmf-table",
        "--seeds",
        "1",
        "--epochs",
        "20",
        "--iterations",
        "20",
        "--json",
    ]);
    assert_ok(&o);
    let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(t["cells"].as_array().unwrap().len(), 27);
    assert_eq!(t["svd_bounds"].as_array().unwrap().len(), 3);
}
