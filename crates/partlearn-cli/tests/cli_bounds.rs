//! Bounds of the command line: `bench dist-model` (its chart never replaces a file without
//! --force, its P is bounded, its --sweeps checked), signals ending commands that never check the
//! interrupt request, `select-k`'s rank ranges, negative numbers in sweep points and
//! `data generate`'s extensions, ranks and flag names. Each is a one-line error, at once.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A small non-negative 6 × 4 float32 matrix.
fn good_npy(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("good.npy");
    let v: Vec<f32> = (0..24).map(|i| (i % 7) as f32 * 0.5 + 0.1).collect();
    write_npy_f32(&p, 6, 4, &v);
    p
}

/// Runs `cmd` to its end, which must come within `secs` seconds (else it is killed and the
/// test fails).
fn output_within(mut cmd: Command, secs: u64) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still ran after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn within(args: &[&str], secs: u64) -> Output {
    let mut c = partlearn();
    c.args(args);
    output_within(c, secs)
}

#[test]
fn dist_model_chart_never_replaces_a_file_without_force() {
    let dir = temp_dir("chart");
    let good = good_npy(&dir);
    let before = std::fs::read(&good).unwrap();
    let base = [
        "bench",
        "dist-model",
        "--n",
        "100",
        "--m",
        "10",
        "-k",
        "3",
        "--max-p",
        "4",
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        run(&a)
    };
    let o = with(&["--chart", s(&good)]);
    assert_user_error(&o, &["good.npy", "already exists", "--chart", "--force"]);
    assert_eq!(std::fs::read(&good).unwrap(), before);
    // --force replaces only a chart: a data file stays.
    let o = with(&["--chart", s(&good), "--force"]);
    assert_user_error(&o, &["--chart", "svg"]);
    assert_eq!(std::fs::read(&good).unwrap(), before);
    // A new chart is written; written again only with --force.
    let chart = dir.join("eff.svg");
    assert_ok(&with(&["--chart", s(&chart)]));
    assert!(std::fs::read_to_string(&chart).unwrap().starts_with("<svg"));
    assert_user_error(&with(&["--chart", s(&chart)]), &["already exists", "--force"]);
    assert_ok(&with(&["--chart", s(&chart), "--force"]));
}

#[test]
fn dist_model_bounds_the_process_count_and_checks_sweeps() {
    let base = ["bench", "dist-model", "--n", "100", "--m", "10", "-k", "3"];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        within(&a, 20)
    };
    assert_user_error(
        &with(&["--max-p", "18446744073709551615"]),
        &["--max-p 18446744073709551615", "1048576"],
    );
    assert_user_error(
        &with(&["--processes", "96,999999999989"]),
        &["--processes 999999999989", "1048576"],
    );
    assert_user_error(&with(&["--processes", "0"]), &["--processes 0"]);
    assert_user_error(&with(&["--max-p", "0"]), &["--max-p 0"]);
    // The largest P accepted (a prime: its grid search visits every candidate) answers at once.
    let o = with(&["--processes", "1048573,1048576", "--json"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["predictions"].as_array().unwrap().len(), 2);
    assert_ok(&with(&["--max-p", "1048576"]));
    // Inner sweeps: at least one, finite; each bad number named with its flag.
    assert_user_error(&with(&["--sweeps", "0"]), &["--sweeps 0"]);
    assert_user_error(&with(&["--sweeps", "NaN"]), &["--sweeps"]);
    assert_user_error(&with(&["--gflops", "inf"]), &["--gflops"]);
    let o = within(&["bench", "dist-model", "--n", "0", "--m", "10"], 20);
    assert_user_error(&o, &["--n 0"]);
    assert_ok(&with(&["--sweeps", "2.5"]));
}

/// Sends `signal` (e.g. "-TERM") to the process `pid`.
fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn a_command_that_never_checks_interrupts_ends_on_the_first_signal() {
    let dir = temp_dir("first-signal");
    // SIGTERM only: a shell starts background jobs with SIGINT ignored, and a command without a
    // handler keeps that disposition (as it should), so SIGINT would prove nothing here.
    let sig = "-TERM";
    let out = dir.join(format!("x{sig}.npy"));
    // About a minute of generation (a 2000³ triple loop) that never checks the request.
    let mut child = partlearn()
        .args([
            "data", "generate", "lowrank", "--n", "2000", "--m", "2000", "--k", "2000",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        child.try_wait().unwrap().is_none(),
        "{sig}: ended before the signal"
    );
    signal(child.id(), sig);
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{sig}: still running 5 s after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "{sig}: {status:?}");
    assert!(!out.exists(), "{sig}: wrote {}", out.display());
}

#[test]
fn select_k_refuses_a_huge_range_before_building_it() {
    let dir = temp_dir("select-range");
    let good = good_npy(&dir);
    let out = dir.join("sk6");
    for ks in ["2..1000000000", "0..18446744073709551615", "1..20001:2"] {
        let o = within(
            &[
                "select-k",
                "--data",
                s(&good),
                "--runs",
                "2",
                "--max-iter",
                "20",
                "-q",
                "-k",
                ks,
                "--out",
                s(&out),
            ],
            10,
        );
        assert_user_error(&o, &[ks, "10000"]);
        assert!(!out.exists());
    }
    // 10,000 ranks exactly is a size the parser accepts (the data's shape then limits them).
    let o = within(
        &[
            "select-k",
            "--data",
            s(&good),
            "--runs",
            "2",
            "-q",
            "-k",
            "1..20000:2",
            "--out",
            s(&out),
        ],
        30,
    );
    assert_user_error(&o, &["--k", "at most min("]);
    assert!(!stderr(&o).contains("10000"), "{}", stderr(&o));
}

#[test]
fn negative_numbers_reach_the_library_in_fits_and_sweep_points() {
    let dir = temp_dir("negative");
    let good = good_npy(&dir);
    let o = run(&[
        "fit",
        "nmf",
        "--data",
        s(&good),
        "-k",
        "2",
        "--alpha-w",
        "-1",
        "--out",
        s(&dir.join("f")),
    ]);
    assert_user_error(&o, &["--alpha-w -1", "≥ 0"]);
    let o = run(&[
        "sweep",
        "nmf",
        "--data",
        s(&good),
        "-k",
        "2,3",
        "--alpha-w",
        "-1",
        "--max-iter",
        "5",
        "--no-svm",
        "--quiet",
        "--out",
        s(&dir.join("sw6")),
    ]);
    assert_user_error(&o, &["--alpha-w -1", "≥ 0"]);
    assert!(!stderr(&o).contains("unexpected argument"), "{}", stderr(&o));
    // A list or range starting with a negative number is an invalid value of its flag, not an
    // unknown argument; a flag left without its value still says so.
    let sweep = |extra: &[&str]| {
        let mut a = vec!["sweep", "nmf", "--data", s(&good), "--no-svm", "--quiet"];
        a.extend_from_slice(extra);
        let out = dir.join("sw7");
        a.extend(["--out", s(&out)]);
        run(&a)
    };
    assert_user_error(&sweep(&["-k", "-1,2"]), &["invalid value '-1' for '--k"]);
    assert_user_error(
        &sweep(&["--k", "2", "--alpha-w", "-1,0.5"]),
        &["--alpha-w -1", "≥ 0"],
    );
    assert_user_error(
        &sweep(&["-k", "2", "--alpha-w"]),
        &["a value is required for '--alpha-w"],
    );
    for ks in ["-1,2", "-1..5"] {
        let sk = dir.join("sk");
        let o = run(&["select-k", "--data", s(&good), "-k", ks, "--out", s(&sk)]);
        assert_user_error(
            &o,
            &[&format!("invalid value '{ks}' for '--k"), "not a list of ranks"],
        );
    }
    assert!(!dir.join("sw7").exists() && !dir.join("sk").exists());
}

#[test]
fn generate_lowrank_checks_its_extension_and_rank_and_names_the_flag() {
    let dir = temp_dir("generate");
    let gen = |extra: &[&str], out: &Path| {
        let mut a = vec!["data", "generate"];
        a.extend_from_slice(extra);
        a.extend(["--out", s(out)]);
        run(&a)
    };
    let csv = dir.join("l2.csv");
    let o = gen(&["lowrank", "--n", "10", "--m", "5", "--k", "2"], &csv);
    assert_user_error(&o, &["l2.csv", ".npy"]);
    assert!(!csv.exists());
    let npy = dir.join("l.npy");
    let o = gen(&["lowrank", "--n", "40", "--m", "20", "--k", "30"], &npy);
    assert_user_error(&o, &["--k 30", "20"]);
    let o = gen(
        &["lowrank", "--n", "40", "--m", "20", "--k", "30", "--stream"],
        &npy,
    );
    assert_user_error(&o, &["--k 30"]);
    let o = gen(&["lowrank", "--n", "0", "--m", "5", "--k", "3"], &npy);
    assert_user_error(&o, &["--n 0"]);
    let o = gen(&["lowrank", "--n", "5", "--m", "0", "--k", "3"], &npy);
    assert_user_error(&o, &["--m 0"]);
    assert!(!npy.exists());
    assert_ok(&gen(&["lowrank", "--n", "40", "--m", "20", "--k", "20"], &npy));
    let npz = dir.join("t.npz");
    let o = gen(
        &["topics", "--docs", "0", "--terms", "50", "--density", "0.1"],
        &npz,
    );
    assert_user_error(&o, &["--docs 0"]);
    let o = gen(
        &["topics", "--docs", "5", "--terms", "0", "--density", "0.1"],
        &npz,
    );
    assert_user_error(&o, &["--terms 0"]);
    let o = gen(
        &[
            "topics",
            "--docs",
            "5",
            "--terms",
            "50",
            "--density",
            "0.1",
            "--topics",
            "0",
        ],
        &npz,
    );
    assert_user_error(&o, &["--topics 0"]);
}
