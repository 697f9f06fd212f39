//! Sparse data from the command line: a generated topic corpus (.npz) and a MatrixMarket file
//! through `data info`, `fit nmf`, `transform` and `eval`; `--sparse` on a dense .npy; and the
//! one-line errors of what sparse data cannot do.

mod common;
use common::*;

/// `data generate topics` at density 0.03 into `out`.
fn generate_topics(out: &std::path::Path, docs: &str, terms: &str, topics: &str, seed: &str) {
    assert_ok(&run(&[
        "data",
        "generate",
        "topics",
        "--docs",
        docs,
        "--terms",
        terms,
        "--density",
        "0.03",
        "--topics",
        topics,
        "--seed",
        seed,
        "--out",
        s(out),
    ]));
}

#[test]
fn sparse_corpus_through_info_fit_transform_eval() {
    let dir = temp_dir("sparse");
    let npz = dir.join("topics.npz");
    generate_topics(&npz, "600", "300", "4", "1");
    let info = run(&["data", "info", s(&npz), "--json"]);
    assert_ok(&info);
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(
        (v["n_samples"].as_u64(), v["n_features"].as_u64()),
        (Some(600), Some(300))
    );
    let density = v["density"].as_f64().unwrap();
    assert!((density - 0.03).abs() < 0.01, "{density}");
    assert_eq!(v["valid_for_nmf"], true);

    let run_dir = dir.join("run");
    for solver in ["hals", "mu", "anls"] {
        let o = fit_quiet(
            "nmf",
            s(&npz),
            &run_dir,
            &["-k", "4", "--solver", solver, "--max-iter", "30", "--force"],
        );
        assert_ok(&o);
    }
    let meta = read_json(&run_dir.join("run.json"));
    assert_eq!(meta["data"]["n_samples"].as_u64(), Some(600));
    let fit_rel = meta["rel_error"].as_f64();

    let codes = dir.join("codes.npy");
    let o = run(&[
        "transform",
        s(&run_dir),
        "--data",
        s(&npz),
        "--out",
        s(&codes),
        "--json",
    ]);
    assert_ok(&o);
    let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((t["n_samples"].as_u64(), t["k"].as_u64()), (Some(600), Some(4)));
    let c = partlearn::npy::read_npy(&codes).unwrap();
    assert_eq!(c.shape, vec![600, 4]);
    // The whole file is streamed by blocks of rows (a CSR .npz or a .mtx); --first loads the
    // rows whole: the same codes, bit for bit.
    assert_eq!(t["streamed"], true, "{t}");
    let whole = dir.join("codes-whole.npy");
    let o = run(&[
        "transform",
        s(&run_dir),
        "--data",
        s(&npz),
        "--first",
        "600",
        "--out",
        s(&whole),
        "--json",
    ]);
    assert_ok(&o);
    let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(std::fs::read(&whole).unwrap(), std::fs::read(&codes).unwrap());
    let (r1, r2) = (t["rel_error"].as_f64().unwrap(), w["rel_error"].as_f64().unwrap());
    assert!((r1 - r2).abs() < 1e-9, "{r1} vs {r2}");
    let mtx = dir.join("topics.mtx");
    assert_ok(&run(&[
        "data",
        "generate",
        "topics",
        "--docs",
        "600",
        "--terms",
        "300",
        "--density",
        "0.03",
        "--topics",
        "4",
        "--seed",
        "1",
        "--out",
        s(&mtx),
    ]));
    let from_mtx = dir.join("codes-mtx.npy");
    assert_ok(&run(&[
        "transform",
        s(&run_dir),
        "--data",
        s(&mtx),
        "--out",
        s(&from_mtx),
        "-q",
    ]));
    assert_eq!(std::fs::read(&from_mtx).unwrap(), std::fs::read(&codes).unwrap());

    let o = run(&["eval", s(&run_dir), "--data", s(&npz), "-q"]);
    assert_ok(&o);
    let m = read_json(&run_dir.join("metrics.json"));
    let rel = m["reconstruction"]["rel_error"].as_f64().unwrap();
    assert!(rel > 0.0 && rel < 1.0, "{rel}");
    assert!((rel - t["rel_error"].as_f64().unwrap()).abs() < 1e-9);
    if let Some(f) = fit_rel {
        assert!((rel - f).abs() < 1e-3, "eval {rel} vs fit {f}");
    }
    // The whole .npz and the .mtx are streamed by blocks of rows, `--first` loads the rows
    // whole: the same metrics (to rounding: the sums run over blocks).
    for (data, first) in [(&mtx, None), (&npz, Some("600"))] {
        let mut args = vec!["eval", s(&run_dir), "--data", s(data), "-q", "--force"];
        if let Some(f) = first {
            args.extend(["--first", f]);
        }
        assert_ok(&run(&args));
        let o = read_json(&run_dir.join("metrics.json"));
        assert_eq!(o["nnz"], m["nnz"], "{data:?}");
        assert_eq!(o["hoyer"]["zero_codes"], m["hoyer"]["zero_codes"]);
        for (a, b) in [
            (
                &o["reconstruction"]["rel_error"],
                &m["reconstruction"]["rel_error"],
            ),
            (&o["reconstruction"]["mse"], &m["reconstruction"]["mse"]),
            (&o["hoyer"]["mean"], &m["hoyer"]["mean"]),
        ] {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1e-300),
                "{data:?} {first:?}: {a} vs {b}"
            );
        }
    }

    // KL runs on sparse data; Itakura–Saito and dense-only methods are one-line errors.
    let o = fit_quiet(
        "nmf",
        s(&npz),
        &dir.join("kl"),
        &[
            "-k",
            "3",
            "--solver",
            "mu",
            "--beta-loss",
            "kullback-leibler",
            "--max-iter",
            "20",
        ],
    );
    assert_ok(&o);
    let o = fit_quiet(
        "nmf",
        s(&npz),
        &dir.join("is"),
        &["-k", "3", "--solver", "mu", "--beta-loss", "itakura-saito"],
    );
    assert_user_error(&o, &["--beta-loss", "sparse"]);
    assert!(!dir.join("is").exists());
    let o = fit_quiet("ae", s(&npz), &dir.join("ae"), &["-k", "3"]);
    assert_user_error(&o, &["--data", "sparse", "dense"]);
    // Sparse data are sketched too (by SpMM): `--compress` records its sketch.
    let o = fit_quiet("nmf", s(&npz), &dir.join("c"), &["-k", "3", "--compress"]);
    assert_ok(&o);
    let r = read_json(&dir.join("c").join("run.json"));
    assert_eq!(r["part"]["stats"]["sketch_rank"], 103, "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mtx_and_sparse_flag_fit_like_dense() {
    let dir = temp_dir("mtx");
    let npy = dir.join("lr.npy");
    assert_ok(&run(&[
        "data",
        "generate",
        "lowrank",
        "--n",
        "80",
        "--m",
        "30",
        "--k",
        "3",
        "--out",
        s(&npy),
    ]));
    // The same matrix as MatrixMarket, written by the library.
    let x: partlearn::data::Csr<f32> = partlearn::data::load_csr(s(&npy), &Default::default()).unwrap();
    let mtx = dir.join("lr.mtx.gz");
    partlearn::data::mtx::write_mtx(&mtx, &x).unwrap();
    let mut rel = Vec::new();
    for (data, extra) in [(s(&npy), None), (s(&npy), Some("--sparse")), (s(&mtx), None)] {
        let out = dir.join(format!("r{}", rel.len()));
        let mut args = vec![
            "-k",
            "3",
            "--solver",
            "hals",
            "--init",
            "random",
            "--max-iter",
            "40",
            "--dtype",
            "f64",
        ];
        args.extend(extra);
        assert_ok(&fit_quiet("nmf", data, &out, &args));
        rel.push(read_json(&out.join("run.json"))["rel_error"].as_f64().unwrap());
    }
    assert!(
        (rel[0] - rel[1]).abs() < 1e-6 && (rel[0] - rel[2]).abs() < 1e-5,
        "{rel:?}"
    );

    // Bad MatrixMarket input: one line naming the problem, exit 2.
    let bad = dir.join("bad.mtx");
    std::fs::write(
        &bad,
        "%%MatrixMarket matrix coordinate real general\n2 2 1\n3 1 1.0\n",
    )
    .unwrap();
    let o = fit_quiet("nmf", s(&bad), &dir.join("b"), &["-k", "1"]);
    assert_user_error(&o, &["line 3", "row index 3"]);
    let o = run(&["data", "info", s(&npy), "--sparse"]);
    assert_ok(&o);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("sparse (CSR)") && text.contains(&format!("non-zeros: {}", x.nnz())),
        "{text}"
    );
    let o = fit_quiet("sparse-nmf", s(&npy), &dir.join("sn"), &["-k", "2", "--sparse"]);
    assert_user_error(&o, &["--sparse", "dense"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `bench nmf` on a sparse file: the products and the solvers' iterations against the SpMM
/// bound, with `--hals-inner-max` and `--no-extrapolate` reaching the solvers, and the options
/// it does not measure refused.
#[test]
fn bench_nmf_on_sparse_data_times_the_solvers_and_refuses_what_it_does_not_measure() {
    let dir = temp_dir("sparse-bench");
    let npz = dir.join("c.npz");
    generate_topics(&npz, "800", "200", "5", "2");
    let bench = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "bench",
            "nmf",
            "--data",
            s(&npz),
            "-k",
            "5",
            "--solvers",
            "hals,mu",
            "--max-iter",
            "6",
            "--init",
            "random",
            "--threads",
            "2",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_ok(&o);
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = bench(&[]);
    assert_eq!(v["products"].as_array().unwrap().len(), 4);
    let solvers = v["solvers"].as_array().unwrap();
    assert_eq!(solvers.len(), 2);
    for sv in solvers {
        assert_eq!(sv["iterations"], 6);
        assert!(sv["ratio"].as_f64().unwrap() > 0.0 && sv["final_rel_error"].as_f64().unwrap() < 1.0);
    }
    let err = |v: &serde_json::Value, solver: &str| {
        v["solvers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["solver"] == solver)
            .unwrap()["final_rel_error"]
            .as_f64()
            .unwrap()
    };
    // The options change the iterates: not silently ignored.
    let plain = bench(&["--no-extrapolate"]);
    assert_ne!(err(&plain, "hals"), err(&v, "hals"));
    assert_ne!(err(&plain, "mu"), err(&v, "mu"));
    let one = bench(&["--hals-inner-max", "1"]);
    let many = bench(&["--hals-inner-max", "8"]);
    assert_ne!(err(&one, "hals"), err(&many, "hals"));
    for (flag, word) in [
        (&["--paired"][..], "--paired"),
        (&["--targets", "0.5"][..], "--targets"),
        (&["--compress"][..], "--compress"),
    ] {
        let mut args = vec!["bench", "nmf", "--data", s(&npz), "-k", "5", "--max-iter", "2"];
        args.extend_from_slice(flag);
        assert_user_error(&run(&args), &["sparse data", word, "drop"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
