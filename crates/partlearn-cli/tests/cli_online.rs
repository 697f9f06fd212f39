//! `fit nmf --solver online`: rows streamed from an .npy file, a folder of shards, a CSR .npz
//! or a MatrixMarket .mtx[.gz] in row or column order (the same bits every way), codes written block by block to codes.npy (equal to `transform`'s), the
//! run record's counters, `bench online`, and the one-line errors of bad settings.

mod common;
use common::*;

fn generate(path: &std::path::Path, n: &str) {
    assert_ok(&run(&[
        "data",
        "generate",
        "lowrank",
        "--n",
        n,
        "--m",
        "40",
        "--k",
        "5",
        "--noise",
        "0.01",
        "--seed",
        "3",
        "--stream",
        "--out",
        s(path),
    ]));
}

fn fit_online(data: &str, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "fit",
        "nmf",
        "--data",
        data,
        "--solver",
        "online",
        "-k",
        "5",
        "--batch-size",
        "256",
        "--max-iter",
        "15",
        "--out",
        s(out),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn online_from_a_file_and_from_shards() {
    let dir = temp_dir("online");
    let x = dir.join("x.npy");
    generate(&x, "3000");
    let a = partlearn::npy::read_npy(&x).unwrap();
    assert_eq!(a.shape, [3000, 40]);
    let v: Vec<f32> = a.to_real();
    let shards = dir.join("shards");
    std::fs::create_dir(&shards).unwrap();
    write_npy_f32(&shards.join("part0.npy"), 1000, 40, &v[..1000 * 40]);
    write_npy_f32(&shards.join("part1.npy"), 2000, 40, &v[1000 * 40..]);

    let (r1, r2) = (dir.join("r1"), dir.join("r2"));
    assert_ok(&fit_online(s(&x), &r1, &["--threads", "2"]));
    assert_ok(&fit_online(s(&shards), &r2, &[]));
    let codes = std::fs::read(r1.join("codes.npy")).unwrap();
    assert_eq!(codes, std::fs::read(r2.join("codes.npy")).unwrap());
    assert_eq!(model_tensor(&r1, "atoms"), model_tensor(&r2, "atoms"));

    let rec = read_json(&r1.join("run.json"));
    let stats = &rec["part"]["stats"];
    let passes = rec["n_iter"].as_u64().unwrap();
    assert!((1..=15).contains(&passes), "{passes}");
    let batches = stats["batches"].as_u64().unwrap();
    assert!(
        batches > (passes - 1) * 12 && batches <= passes * 12,
        "{batches} batches, {passes} passes"
    );
    assert!(stats["rows_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(rec["part"]["options"]["batch_size"], 256);
    let rel = rec["rel_error"].as_f64().unwrap();
    assert!(rel < 0.1, "rel. error {rel}");

    // The streamed codes are what `transform` gives for the same data.
    let t = dir.join("t.npy");
    assert_ok(&transform(&r1, s(&x), &t));
    let (c1, c2) = (
        partlearn::npy::read_npy(&r1.join("codes.npy")).unwrap(),
        partlearn::npy::read_npy(&t).unwrap(),
    );
    assert_eq!(c1.shape, [3000, 5]);
    assert_eq!(c1.to_f64_vec(), c2.to_f64_vec());

    // The benchmark on the same file.
    let b = run(&[
        "bench",
        "online",
        "--data",
        s(&x),
        "-k",
        "5",
        "--batch-size",
        "500",
        "--threads",
        "1",
        "--json",
    ]);
    assert_ok(&b);
    let v: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    assert_eq!((v["n"].as_u64(), v["batches"].as_u64()), (Some(3000), Some(6)));
    assert!(v["fit_rows_per_second"].as_f64().unwrap() > 0.0);
    assert!(v["peak_rss_mib"].as_f64().unwrap_or(1.0) > 0.0);
}

#[test]
fn online_bad_settings_are_one_line_errors() {
    let dir = temp_dir("online-bad");
    let x = dir.join("x.npy");
    generate(&x, "300");
    let out = dir.join("r");
    for (extra, keys) in [
        (&["--batch-size", "0"][..], &["batch"][..]),
        (&["--batch-size", "301"], &["batch", "300"]),
        (&["--forget-factor", "1.5"], &["forget"]),
        (&["--forget-factor", "0"], &["forget"]),
        (&["--beta-loss", "kullback-leibler"], &["beta"]),
        (&["--first", "100"], &["--first"]),
    ] {
        let mut args = vec![
            "fit",
            "nmf",
            "--data",
            s(&x),
            "--solver",
            "online",
            "-k",
            "3",
            "--out",
            s(&out),
            "--quiet",
        ];
        if !extra.contains(&"--batch-size") {
            args.extend_from_slice(&["--batch-size", "100"]);
        }
        args.extend_from_slice(extra);
        assert_refused(&args, keys, &out);
    }
    let o = run(&["fit", "nmf", "--data", s(&x), "--solver", "sgd", "--out", s(&out)]);
    assert!(
        !o.status.success() && stderr(&o).contains("online"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn online_streams_a_csr_npz_by_rows() {
    let dir = temp_dir("online-npz");
    let x = dir.join("t.npz");
    let gen = [
        "data",
        "generate",
        "topics",
        "--docs",
        "2000",
        "--terms",
        "80",
        "--density",
        "0.1",
        "--topics",
        "5",
        "--seed",
        "2",
        "--out",
        s(&x),
    ];
    assert_ok(&run(&gen));
    // Streamed from the file, and the same matrix loaded whole (`--sparse` of its dense .npy):
    // the same blocks, the same bits.
    let csr: partlearn::data::Csr<f32> = partlearn::data::npz::read_npz(&x).unwrap();
    let dense: Vec<f32> = (0..2000)
        .flat_map(|i| {
            let (cols, vals) = csr.row(i);
            let mut row = vec![0.0f32; 80];
            for (&c, &v) in cols.iter().zip(vals) {
                row[c as usize] = v;
            }
            row
        })
        .collect();
    let xd = dir.join("t.npy");
    write_npy_f32(&xd, 2000, 80, &dense);
    let (r1, r2) = (dir.join("r1"), dir.join("r2"));
    assert_ok(&fit_online(s(&x), &r1, &["--init", "random"]));
    assert_ok(&fit_online(s(&xd), &r2, &["--init", "random", "--sparse"]));
    assert_eq!(model_tensor(&r1, "atoms"), model_tensor(&r2, "atoms"));
    assert_eq!(
        std::fs::read(r1.join("codes.npy")).unwrap(),
        std::fs::read(r2.join("codes.npy")).unwrap()
    );
    let b = run(&[
        "bench",
        "online",
        "--data",
        s(&x),
        "-k",
        "5",
        "--batch-size",
        "500",
        "--json",
    ]);
    assert_ok(&b);
    let v: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    assert_eq!(v["n"].as_u64(), Some(2000));
}

#[test]
fn online_streams_an_mtx_by_rows_with_the_bits_of_the_npz() {
    let dir = temp_dir("online-mtx");
    let gen = |out: &std::path::Path| {
        assert_ok(&run(&[
            "data",
            "generate",
            "topics",
            "--docs",
            "1500",
            "--terms",
            "60",
            "--density",
            "0.1",
            "--topics",
            "4",
            "--seed",
            "5",
            "--out",
            s(out),
        ]))
    };
    let (npz, mtx, gz) = (dir.join("t.npz"), dir.join("t.mtx"), dir.join("t.mtx.gz"));
    for p in [&npz, &mtx, &gz] {
        gen(p);
    }
    // The same matrix in column-major order (as 10x Genomics writes): sorted once into a
    // temporary copy in --temp-dir, which is empty again afterwards.
    let csr: partlearn::data::Csr<f32> = partlearn::data::npz::read_npz(&npz).unwrap();
    let mut text = format!(
        "%%MatrixMarket matrix coordinate real general\n1500 60 {}\n",
        csr.nnz()
    );
    for j in 0..60u32 {
        for i in 0..1500 {
            let (cols, vals) = csr.row(i);
            if let Ok(at) = cols.binary_search(&j) {
                text.push_str(&format!("{} {} {}\n", i + 1, j + 1, vals[at]));
            }
        }
    }
    let cm = dir.join("cm.mtx");
    std::fs::write(&cm, text).unwrap();
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();

    let want = dir.join("r-npz");
    assert_ok(&fit_online(s(&npz), &want, &["--init", "random"]));
    for (data, name) in [(&mtx, "r-mtx"), (&gz, "r-gz"), (&cm, "r-cm")] {
        let out = dir.join(name);
        let o = run(&[
            "fit",
            "nmf",
            "--data",
            s(data),
            "--solver",
            "online",
            "-k",
            "5",
            "--batch-size",
            "256",
            "--max-iter",
            "15",
            "--init",
            "random",
            "--temp-dir",
            s(&tmp),
            "--out",
            s(&out),
        ]);
        assert_ok(&o);
        let note = stderr(&o);
        assert_eq!(data == &cm, note.contains("not grouped by row"), "{note}");
        assert_eq!(
            model_tensor(&out, "atoms"),
            model_tensor(&want, "atoms"),
            "{name}"
        );
        assert_eq!(
            std::fs::read(out.join("codes.npy")).unwrap(),
            std::fs::read(want.join("codes.npy")).unwrap(),
            "{name}"
        );
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    }
    // `bench online` streams it too and reports the sorted copy.
    let b = run(&[
        "bench",
        "online",
        "--data",
        s(&cm),
        "-k",
        "5",
        "--batch-size",
        "500",
        "--temp-dir",
        s(&tmp),
        "--json",
    ]);
    assert_ok(&b);
    let v: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    assert_eq!(v["n"].as_u64(), Some(1500));
    assert_eq!(v["sorted_copy_bytes"].as_u64(), Some(16 * csr.nnz() as u64));
    // A bad entry is the whole reader's one-line error, before any output.
    let bad = dir.join("bad.mtx");
    std::fs::write(
        &bad,
        "%%MatrixMarket matrix coordinate real general\n3 2 2\n1 1 1\n4 1 1\n",
    )
    .unwrap();
    let out = dir.join("r-bad");
    let o = fit_online(s(&bad), &out, &[]);
    assert!(!o.status.success() && !out.exists());
    let e = stderr(&o);
    assert!(e.contains("line 4: row index 4 is outside 1..=3"), "{e}");
}
