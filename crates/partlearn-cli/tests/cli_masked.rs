//! Missing entries from the command line: `fit nmf --mask` (every solver) and NaN input,
//! `transform` and `eval` of incomplete data, `select-k --holdout`, and one-line errors for
//! bad masks.

mod common;
use common::*;

const N: usize = 120;
const M: usize = 40;

/// Planted rank-4 data (`N × M`), a mask hiding ~10 % of the entries, and the data with those
/// entries set to NaN.
fn write_data(dir: &std::path::Path) -> (Vec<f32>, Vec<f32>) {
    let mut r = partlearn::Rng::new(3);
    let codes: Vec<f64> = (0..N * 4).map(|_| 0.2 + r.uniform()).collect();
    let atoms: Vec<f64> = (0..4 * M).map(|_| 0.2 + r.uniform()).collect();
    let x: Vec<f32> = (0..N * M)
        .map(|ij| {
            let (i, j) = (ij / M, ij % M);
            ((0..4).map(|c| codes[i * 4 + c] * atoms[c * M + j]).sum::<f64>() + 0.02 * r.uniform()) as f32
        })
        .collect();
    let mask: Vec<f32> = (0..N * M)
        .map(|_| if r.uniform() < 0.1 { 0.0 } else { 1.0 })
        .collect();
    let nan: Vec<f32> = x
        .iter()
        .zip(&mask)
        .map(|(&v, &m)| if m == 0.0 { f32::NAN } else { v })
        .collect();
    write_npy_f32(&dir.join("x.npy"), N, M, &x);
    write_npy_f32(&dir.join("mask.npy"), N, M, &mask);
    write_npy_f32(&dir.join("nan.npy"), N, M, &nan);
    (x, mask)
}

#[test]
fn fit_nmf_with_a_mask_or_nan_uses_the_observed_entries() {
    let dir = temp_dir("masked-fit");
    write_data(&dir);
    let (x, mask, nan) = (dir.join("x.npy"), dir.join("mask.npy"), dir.join("nan.npy"));
    for solver in ["anls", "hals", "mu"] {
        let out = dir.join(format!("r-{solver}"));
        let o = run(&[
            "fit",
            "nmf",
            "--data",
            s(&x),
            "--mask",
            s(&mask),
            "-k",
            "4",
            "--solver",
            solver,
            "--max-iter",
            "300",
            "--out",
            s(&out),
            "--json",
            "-q",
        ]);
        assert_ok(&o);
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let rel = j["rel_error"].as_f64().unwrap();
        assert!(rel < 0.03, "{solver}: rel. error over the observed entries {rel}");
    }
    // NaN entries are missing: the same fit as the mask (the hidden values never matter).
    let out = dir.join("r-nan");
    let o = run(&[
        "fit",
        "nmf",
        "--data",
        s(&nan),
        "-k",
        "4",
        "--solver",
        "anls",
        "--max-iter",
        "300",
        "--out",
        s(&out),
        "--json",
        "-q",
    ]);
    assert_ok(&o);
    let a: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o2 = run(&[
        "fit",
        "nmf",
        "--data",
        s(&nan),
        "--mask",
        s(&mask),
        "-k",
        "4",
        "--solver",
        "anls",
        "--max-iter",
        "300",
        "--out",
        s(&dir.join("r-nan-mask")),
        "--json",
        "-q",
    ]);
    assert_ok(&o2);
    let c: serde_json::Value = serde_json::from_slice(&o2.stdout).unwrap();
    assert_eq!(a["rel_error"], c["rel_error"]);
    // The same mask as a sparse .npz listing the observed entries: the same fit, bit for bit.
    let (_, dense_mask) = write_data(&dir);
    let entries: Vec<(usize, usize, f32)> = (0..N * M)
        .filter(|&ij| dense_mask[ij] == 1.0)
        .map(|ij| (ij / M, ij % M, 1.0))
        .collect();
    let sparse_mask = dir.join("mask.npz");
    partlearn::data::npz::write_npz(
        &sparse_mask,
        &partlearn::data::Csr::from_triplets(N, M, &entries).unwrap(),
    )
    .unwrap();
    let o3 = run(&[
        "fit",
        "nmf",
        "--data",
        s(&nan),
        "--mask",
        s(&sparse_mask),
        "-k",
        "4",
        "--solver",
        "anls",
        "--max-iter",
        "300",
        "--out",
        s(&dir.join("r-nan-sparse-mask")),
        "--json",
        "-q",
    ]);
    assert_ok(&o3);
    let d: serde_json::Value = serde_json::from_slice(&o3.stdout).unwrap();
    assert_eq!(c["rel_error"], d["rel_error"]);
    assert_eq!(
        std::fs::read(dir.join("r-nan-mask/model.safetensors")).unwrap(),
        std::fs::read(dir.join("r-nan-sparse-mask/model.safetensors")).unwrap()
    );
    // transform of the incomplete data: codes from the observed entries.
    let codes = dir.join("codes.npy");
    let o = run(&[
        "transform",
        s(&out),
        "--data",
        s(&nan),
        "--out",
        s(&codes),
        "--json",
    ]);
    assert_ok(&o);
    let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(t["rel_error"].as_f64().unwrap() < 0.03, "{t}");
    assert!(codes.exists());
    // eval: errors over the observed entries, the missing count, no dilation metrics.
    let o = run(&["eval", s(&out), "--data", s(&nan), "--json"]);
    assert_ok(&o);
    let m = read_json(&out.join("metrics.json"));
    assert_eq!(
        m["missing_entries"]["hidden"].as_u64().unwrap() + m["missing_entries"]["observed"].as_u64().unwrap(),
        (N * M) as u64
    );
    assert!(m["missing_entries"]["hidden"].as_u64().unwrap() > 0);
    assert!(m["reconstruction"]["rel_error"].as_f64().unwrap() < 0.03);
}

#[test]
fn bad_masks_are_one_line_errors() {
    let dir = temp_dir("masked-bad");
    let (x, mask) = write_data(&dir);
    let data = dir.join("x.npy");
    let write = |name: &str, rows: usize, v: Vec<f32>| {
        let p = dir.join(name);
        write_npy_f32(&p, rows, v.len() / rows, &v);
        p
    };
    let half = write(
        "half.npy",
        N,
        mask.iter().map(|&m| if m == 0.0 { 0.5 } else { 1.0 }).collect(),
    );
    let short = write("short.npy", 10, mask[..10 * M].to_vec());
    let mut row = mask.clone();
    row[7 * M..8 * M].iter_mut().for_each(|v| *v = 0.0);
    let row = write("row.npy", N, row);
    let mut col = mask.clone();
    (0..N).for_each(|i| col[i * M + 5] = 0.0);
    let col = write("col.npy", N, col);
    let mut xn = x.clone();
    let first_observed = mask.iter().position(|&m| m == 1.0).unwrap();
    xn[first_observed] = f32::NAN;
    let xn = write("xn.npy", N, xn);
    let (s0, f0) = (first_observed / M, first_observed % M);
    let out = dir.join("never");
    for (d, m, keys) in [
        (&data, &half, vec!["mask", "0 (hidden) or 1 (observed)"]),
        (&data, &short, vec!["mask", "120 × 40", "10 × 40"]),
        (
            &data,
            &row,
            vec!["sample 7 has no observed entry", "undetermined"],
        ),
        (
            &data,
            &col,
            vec!["feature 5 has no observed entry", "undetermined"],
        ),
    ] {
        assert_refused(
            &[
                "fit",
                "nmf",
                "--data",
                s(d),
                "--mask",
                s(m),
                "-k",
                "4",
                "--out",
                s(&out),
            ],
            &keys,
            &out,
        );
    }
    let nan_at = format!("NaN at sample {s0}, feature {f0}");
    let everything = write("all.npy", N, vec![1.0; N * M]);
    assert_refused(
        &[
            "fit",
            "nmf",
            "--data",
            s(&xn),
            "--mask",
            s(&everything),
            "-k",
            "4",
            "--out",
            s(&out),
        ],
        &[&nan_at, "mask"],
        &out,
    );
    // transform: a sample without observed entries is named.
    let run_dir = dir.join("ok");
    assert_ok(&run(&[
        "fit",
        "nmf",
        "--data",
        s(&data),
        "-k",
        "4",
        "--max-iter",
        "20",
        "--out",
        s(&run_dir),
        "-q",
    ]));
    let o = run(&[
        "transform",
        s(&run_dir),
        "--data",
        s(&data),
        "--mask",
        s(&row),
        "--out",
        s(&dir.join("c.npy")),
    ]);
    assert_user_error(&o, &["sample 7"]);
}

#[test]
fn select_k_cross_validation_writes_its_column_and_chart() {
    let dir = temp_dir("masked-select");
    write_data(&dir);
    let out = dir.join("sel");
    let o = run(&[
        "select-k",
        "--data",
        s(&dir.join("x.npy")),
        "-k",
        "3..5",
        "--runs",
        "2",
        "--holdout",
        "0.1",
        "--replicates",
        "2",
        "--solver",
        "anls",
        "--out",
        s(&out),
        "--json",
    ]);
    assert_ok(&o);
    let sel = read_json(&out.join("select-k.json"));
    assert_eq!(sel["k_cv"].as_u64(), Some(4), "{sel}");
    assert!(sel["scores"][0]["cv_error"].as_f64().unwrap() > sel["scores"][1]["cv_error"].as_f64().unwrap());
    let table = std::fs::read_to_string(out.join("select-k.csv")).unwrap();
    assert!(table.lines().next().unwrap().ends_with("cv_error,cv_error_std"));
    let svg = std::fs::read_to_string(out.join("figures").join("cv_error_vs_k.svg")).unwrap();
    assert!(svg.contains("held-out"));
    // Bad settings.
    let out2 = dir.join("never");
    assert_refused(
        &[
            "select-k",
            "--data",
            s(&dir.join("x.npy")),
            "-k",
            "3..5",
            "--holdout",
            "0.9",
            "--out",
            s(&out2),
        ],
        &["holdout", "(0, 0.5]"],
        &out2,
    );
}
