//! `partlearn select-k`: the scores of every candidate rank, the suggested ranks, the files it
//! writes (and replaces only with --force), and one-line errors for bad candidates.

mod common;
use common::*;

/// Writes an `n × m` .npy of planted rank `r`: disjoint bars, each sample one dominant part and
/// up to 0.3 of the others, plus noise.
fn planted(path: &std::path::Path, n: usize, m: usize, r: usize) {
    let mut rng = partlearn::Rng::new(5);
    let width = m / r;
    let codes: Vec<f64> = (0..n * r)
        .map(|ic| {
            if ic % r == (ic / r) % r {
                1.0 + rng.uniform()
            } else {
                0.3 * rng.uniform()
            }
        })
        .collect();
    let parts: Vec<f64> = (0..m).map(|_| 0.5 + rng.uniform()).collect();
    let v: Vec<f32> = (0..n * m)
        .map(|ij| {
            let (i, j) = (ij / m, ij % m);
            (codes[i * r + j / width] * parts[j] + 0.05 * rng.uniform()) as f32
        })
        .collect();
    write_npy_f32(path, n, m, &v);
}

#[test]
fn select_k_scores_every_rank_and_writes_its_table_and_charts() {
    let dir = temp_dir("select");
    let data = dir.join("x.npy");
    planted(&data, 200, 48, 6);
    let out = dir.join("sel");
    let o = run(&[
        "select-k",
        "--data",
        s(&data),
        "-k",
        "4..8",
        "--runs",
        "4",
        "--out",
        s(&out),
        "--json",
        "--threads",
        "2",
    ]);
    assert_ok(&o);
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let saved = read_json(&out.join("select-k.json"));
    assert_eq!(printed, saved);
    let ks: Vec<u64> = saved["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["k"].as_u64().unwrap())
        .collect();
    assert_eq!(ks, vec![4, 5, 6, 7, 8]);
    assert_eq!(saved["k_silhouette"], 6, "{saved}");
    let csv = std::fs::read_to_string(out.join("select-k.csv")).unwrap();
    assert!(csv.starts_with("k,rel_error,"));
    assert_eq!(csv.lines().count(), 6);
    for f in ["consensus_vs_k.svg", "silhouette_vs_k.svg", "error_vs_k.svg"] {
        let svg = std::fs::read_to_string(out.join("figures").join(f)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("rank k"), "{f}");
    }
    // Same seed, same scores (the timings aside); an existing folder only with --force.
    assert_refused(
        &[
            "select-k",
            "--data",
            s(&data),
            "-k",
            "5,6",
            "--out",
            s(&out),
            "-q",
        ],
        &["exists", "--force"],
        &dir.join("none"),
    );
    let o = run(&[
        "select-k",
        "--data",
        s(&data),
        "-k",
        "4..8",
        "--runs",
        "4",
        "--out",
        s(&out),
        "--force",
        "-q",
    ]);
    assert_ok(&o);
    let again = read_json(&out.join("select-k.json"));
    let strip = |v: &serde_json::Value| {
        v["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["k"].clone(),
                    s["cophenetic"].clone(),
                    s["silhouette"].clone(),
                    s["rel_error"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&again), strip(&saved));
}

#[test]
fn bad_candidates_are_one_line_errors() {
    let dir = temp_dir("select-bad");
    let out = dir.join("sel");
    for (k, words) in [
        ("0,3", &["-k", "at least 1"][..]),
        ("9..3", &["--k", "range"][..]),
        ("4,x", &["--k", "list"][..]),
        ("300", &["-k", "at most"][..]),
    ] {
        assert_refused(
            &["select-k", "--data", "swimmer", "-k", k, "--out", s(&out)],
            words,
            &out,
        );
    }
    assert_refused(
        &[
            "select-k",
            "--data",
            "swimmer",
            "-k",
            "3",
            "--runs",
            "1",
            "--out",
            s(&out),
        ],
        &["--runs", "2"],
        &out,
    );
}

#[test]
fn report_shows_a_selection_beside_runs() {
    let dir = temp_dir("select-report");
    let data = dir.join("x.npy");
    planted(&data, 120, 48, 6);
    let sel = dir.join("sel");
    let args = [
        "select-k",
        "--data",
        s(&data),
        "-k",
        "4..7",
        "--runs",
        "3",
        "--holdout",
        "0.1",
        "--replicates",
        "2",
        "--out",
        s(&sel),
        "-q",
    ];
    assert_ok(&run(&args));
    let fit = dir.join("fit");
    assert_ok(&run(&[
        "fit",
        "nmf",
        "--data",
        s(&data),
        "-k",
        "6",
        "--max-iter",
        "20",
        "--out",
        s(&fit),
        "-q",
    ]));
    let html_path = dir.join("report.html");
    let o = run(&["report", s(&fit), s(&sel), "--out", s(&html_path)]);
    assert_ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 runs, 1 rank selection(s)"));
    let html = std::fs::read_to_string(&html_path).unwrap();
    let saved = read_json(&sel.join("select-k.json"));
    assert!(html.contains("Choosing k: sel"), "no selection section");
    let k_cv = saved["k_cv"].as_u64().unwrap();
    assert!(html.contains(&format!("by cross-validation: <strong>k = {k_cv}</strong>")));
    // One table row per rank, and the four charts (held-out error included) inline.
    for k in 4..=7 {
        assert!(html.contains(&format!("<tr><td>{k}</td>")), "row of k = {k}");
    }
    // (The unevaluated run has PNG figures and no trade-off chart: every SVG is the selection's.)
    assert_eq!(
        html.matches("<svg").count(),
        4,
        "consensus, silhouette, error, held-out error"
    );
    assert!(html.contains("held-out entries") && html.contains("rank k"));
    assert!(html.contains("1. fit"), "the run is still shown");
    // A selection alone is a report too; a damaged select-k.json is a one-line error.
    let alone = dir.join("alone.html");
    assert_ok(&run(&["report", s(&sel), "--out", s(&alone), "-q"]));
    std::fs::write(sel.join("select-k.json"), b"{\"scores\": 3}").unwrap();
    assert_refused(
        &["report", s(&sel), "--out", s(&dir.join("bad.html"))],
        &["select-k.json"],
        &dir.join("bad.html"),
    );
}
