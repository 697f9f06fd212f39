//! Compressed NMF from the command line: `fit nmf --compress` records the sketch and the polish
//! in run.json and leaves transform unchanged, bad settings are one-line errors naming the flag
//! and the fix, `bench nmf --compress` runs each solver side by side compressed, and (ignored:
//! minutes) the Fashion-MNIST check against plain HALS at the same iteration budget.

mod common;
use common::*;

#[test]
fn compressed_fit_records_the_sketch_and_the_polish() {
    let dir = temp_dir("compress-fit");
    let (plain, comp) = (dir.join("plain"), dir.join("comp"));
    let args = [
        "-k",
        "17",
        "--max-iter",
        "60",
        "--tol",
        "0",
        "--dtype",
        "f64",
        "--json",
    ];
    let o = fit_swimmer(&plain).args(args).output().unwrap();
    assert_ok(&o);
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = fit_swimmer(&comp)
        .args(args)
        .args([
            "--compress",
            "--oversample",
            "10",
            "--power-iters",
            "1",
            "--polish",
            "8",
        ])
        .output()
        .unwrap();
    assert_ok(&o);
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (pe, ce) = (p["rel_error"].as_f64().unwrap(), c["rel_error"].as_f64().unwrap());
    assert!(ce < 1.1 * pe + 1e-3, "compressed {ce} against plain {pe}");
    let meta = read_json(&comp.join("run.json"));
    let part = &meta["part"];
    assert_eq!(
        part["options"]["compress"],
        serde_json::json!({"on": {"oversample": 10, "power_iters": 1}}),
        "{part}"
    );
    assert_eq!(part["options"]["polish"], 8);
    // The NNDSVDa start's eigendecomposition gives the exact basis: no power iterations.
    assert_eq!(part["stats"]["sketch_rank"], 27);
    assert_eq!(part["stats"]["sketch_exact"], true);
    assert_eq!(part["stats"]["power_iters"], 0);
    assert_eq!(part["stats"]["compressed_iters"], 52);
    assert_eq!(part["stats"]["polish_iters"], 8);
    // Transform is the exact NNLS on the full data, as for a plain fit.
    let codes = dir.join("codes.npy");
    assert_ok(&transform(&comp, "swimmer", &codes));
    // A plain fit records compression off.
    let meta = read_json(&plain.join("run.json"));
    assert_eq!(meta["part"]["options"]["compress"], "off");
    assert_eq!(meta["part"]["stats"]["sketch_rank"], 0);
}

#[test]
fn bad_compression_settings_are_one_line_errors() {
    let dir = temp_dir("compress-errors");
    let out = dir.join("run");
    let fit = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["fit", "nmf", "--data", "swimmer", "-k", "17", "--quiet", "--out"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(s(&out).to_string());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let check = |extra: &[&str], keys: &[&str]| {
        let args = fit(extra);
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        assert_refused(&args, keys, &out);
    };
    check(
        &["--compress", "--power-iters", "11"],
        &["--power-iters 11", "lower --power-iters"],
    );
    check(
        &["--compress", "on", "--oversample", "1200"],
        &["--oversample 1200", "--compress auto"],
    );
    check(
        &["--compress", "--solver", "mu", "--beta-loss", "kl"],
        &["--compress", "--compress off"],
    );
    check(
        &["--compress", "--max-iter", "20", "--polish", "20"],
        &["--polish 20", "--max-iter"],
    );
    check(&["--compress", "--pg-tol", "1e-4"], &["--pg-tol", "--tol"]);
    // auto falls back to the plain solver where compression does not pay (no error).
    let o = fit_swimmer(&dir.join("auto"))
        .args([
            "-k",
            "17",
            "--max-iter",
            "5",
            "--compress",
            "auto",
            "--oversample",
            "200",
        ])
        .output()
        .unwrap();
    assert_ok(&o);
    let meta = read_json(&dir.join("auto").join("run.json"));
    assert_eq!(meta["part"]["stats"]["sketch_rank"], 0);
}

#[test]
fn bench_times_the_compressed_solver_beside_the_plain_one() {
    let o = run(&[
        "bench",
        "nmf",
        "--data",
        "swimmer",
        "-k",
        "17",
        "--max-iter",
        "6",
        "--polish",
        "2",
        "--solvers",
        "hals",
        "--compress",
        "--threads",
        "1",
        "--json",
    ]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["solvers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["solver"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hals", "hals+c"]);
    let c = &v["solvers"][1];
    assert_eq!(c["sketch_rank"], 117);
    assert_eq!(c["polish_iters"], 2);
    assert_eq!(c["compressed_iters"], 4);
    // The compressed iterations' bound replaces WᵀX and HXᵀ by the four sketched products.
    let gemms: Vec<&str> = v["gemms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in ["WᵀU", "(WᵀU)B", "HBᵀ", "(HBᵀ)Uᵀ"] {
        assert!(gemms.contains(&g), "{g} not in {gemms:?}");
    }
    // Fewer flops than the exact products they replace (times are the benchmark's to report,
    // not a test's to compare: they depend on the machine's load).
    let flops = |names: &[&str]| -> f64 {
        v["gemms"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| names.contains(&g["name"].as_str().unwrap()))
            .map(|g| g["flops"].as_f64().unwrap())
            .sum()
    };
    let (sketched, exact) = (
        flops(&["WᵀU", "(WᵀU)B", "HBᵀ", "(HBᵀ)Uᵀ"]),
        flops(&["P = WᵀX", "R = HXᵀ"]),
    );
    assert!(
        sketched > 0.0 && sketched < exact,
        "sketched {sketched} vs exact {exact} flops"
    );
    assert!(c["gemm_bound"].as_f64().unwrap() > 0.0);
}

/// Fashion-MNIST (60,000 × 784), k = 100, 2 threads, 100 iterations: compressed HALS
/// (`--compress`, defaults: oversample 100, 10 polish iterations) ends at
/// most 0.3 % above plain HALS's relative error. Minutes in a debug build: run with
/// `cargo test --release -p partlearn-cli --test cli_compress -- --ignored`.
#[test]
#[ignore]
fn fashion_mnist_compressed_hals_within_0_3_percent_of_plain() {
    if !fashion_available() {
        return;
    }
    let dir = temp_dir("compress-fashion");
    let fit = |name: &str, extra: &[&str]| -> f64 {
        let o = fit_command("nmf", "fashion-mnist:train", &dir.join(name))
            .args([
                "-k",
                "100",
                "--threads",
                "2",
                "--max-iter",
                "100",
                "--tol",
                "0",
                "--json",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert_ok(&o);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["rel_error"].as_f64().unwrap()
    };
    let plain = fit("plain", &[]);
    let comp = fit("comp", &["--compress"]);
    // Within 0.3 % above plain HALS (ending lower is fine).
    assert!(comp <= 1.003 * plain, "compressed {comp} against plain {plain}");
}

/// Sparse data are sketched by SpMM: `--compress on` records the sketch on an `.npz`, and
/// `auto` leaves data too sparse for the sketch to pay uncompressed.
#[test]
fn sparse_data_are_compressed_where_it_pays() {
    let dir = temp_dir("compress-sparse");
    let (dense, thin) = (dir.join("dense.npz"), dir.join("thin.npz"));
    for (f, density) in [(&dense, "0.5"), (&thin, "0.01")] {
        assert_ok(&run(&[
            "data",
            "generate",
            "topics",
            "--docs",
            "2000",
            "--terms",
            "200",
            "--density",
            density,
            "--topics",
            "4",
            "--seed",
            "1",
            "--out",
            s(f),
        ]));
    }
    for (data, mode, rank) in [(&dense, "on", 15), (&dense, "auto", 15), (&thin, "auto", 0)] {
        let out = dir.join(format!("run-{mode}-{rank}"));
        let o = run(&[
            "fit",
            "nmf",
            "--data",
            s(data),
            "-k",
            "5",
            "--init",
            "random",
            "--compress",
            mode,
            "--oversample",
            "10",
            "--polish",
            "3",
            "--max-iter",
            "20",
            "--quiet",
            "--out",
            s(&out),
        ]);
        assert_ok(&o);
        let r = read_json(&out.join("run.json"));
        assert_eq!(r["part"]["stats"]["sketch_rank"], rank, "{mode} on {data:?}: {r}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// On many samples `--compress` runs its compressed iterations on a random subset and then
/// exact ones on all samples (`--compress-samples auto|off|N`, recorded in run.json); a count
/// out of range is a one-line error naming the flag, and `bench nmf` reports the warm start.
#[test]
fn many_samples_warm_up_on_a_subset() {
    let dir = temp_dir("compress-warm");
    let data = dir.join("low.npy");
    assert_ok(&run(&[
        "data",
        "generate",
        "lowrank",
        "--n",
        "2000",
        "--m",
        "50",
        "--k",
        "5",
        "--seed",
        "1",
        "--out",
        s(&data),
    ]));
    let fit = |name: &str, extra: &[&str]| -> serde_json::Value {
        let out = dir.join(name);
        let o = fit_command("nmf", s(&data), &out)
            .args([
                "-k",
                "5",
                "--max-iter",
                "12",
                "--tol",
                "0",
                "--compress",
                "--oversample",
                "5",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert_ok(&o);
        read_json(&out.join("run.json"))["part"].clone()
    };
    // auto: 100·k = 500 samples where there are 2,000; 12·2000/500 = 48 iterations on them,
    // then all 12 of --max-iter exact (no polish phase).
    let auto = fit("auto", &[]);
    assert_eq!(auto["options"]["compress_samples"], "auto");
    let st = &auto["stats"];
    assert_eq!(
        (st["warm_samples"].as_u64(), st["warm_iters"].as_u64()),
        (Some(500), Some(48))
    );
    assert_eq!(
        (st["compressed_iters"].as_u64(), st["polish_iters"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(st["sketch_rank"], 10);
    let count = fit("count", &["--compress-samples", "300"]);
    assert_eq!(
        count["options"]["compress_samples"],
        serde_json::json!({"count": 300})
    );
    assert_eq!(
        (
            count["stats"]["warm_samples"].as_u64(),
            count["stats"]["warm_iters"].as_u64()
        ),
        (Some(300), Some(80))
    );
    let off = fit("off", &["--compress-samples", "off", "--polish", "2"]);
    assert_eq!(off["options"]["compress_samples"], "off");
    assert_eq!(
        (
            off["stats"]["warm_samples"].as_u64(),
            off["stats"]["compressed_iters"].as_u64()
        ),
        (Some(0), Some(10))
    );
    // Errors name the flag and the fix.
    let bad = dir.join("bad");
    let args = |v: &str| -> Vec<String> {
        [
            "fit",
            "nmf",
            "--data",
            s(&data),
            "-k",
            "5",
            "--compress",
            "--oversample",
            "5",
            "--compress-samples",
            v,
            "--out",
            s(&bad),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    for (v, keys) in [
        (
            "2000",
            &["--compress-samples 2000", "fewer than n_samples = 2000"][..],
        ),
        (
            "8",
            &["--compress-samples 8", "more than the sketch's l = 10"][..],
        ),
        ("many", &["--compress-samples", "auto, off or a number"][..]),
    ] {
        let a = args(v);
        let a: Vec<&str> = a.iter().map(|x| x.as_str()).collect();
        assert_refused(&a, keys, &bad);
    }
    let o = run(&[
        "fit",
        "nmf",
        "--data",
        s(&data),
        "-k",
        "5",
        "--compress-samples",
        "300",
        "--out",
        s(&bad),
    ]);
    assert_user_error(&o, &["--compress-samples 300", "compression on"]);
    // bench nmf: the compressed run's line names the warm start.
    let o = run(&[
        "bench",
        "nmf",
        "--data",
        s(&data),
        "-k",
        "5",
        "--max-iter",
        "4",
        "--solvers",
        "hals",
        "--compress",
        "--oversample",
        "5",
        "--threads",
        "1",
    ]);
    assert_ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("48 compressed iterations on 500 random samples"),
        "{text}"
    );
}
