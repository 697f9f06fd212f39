//! Bad input on the command line: one test per kind (values, options, missing data, truncated
//! or forged files, custom starts, transform's checks), each a one-line `error: …` with exit 2,
//! never a panic.

mod common;
use common::*;

use partlearn::npy::{npy_bytes, NpyDataRef};

#[test]
fn bad_data_values_name_the_sample_and_feature() {
    let dir = temp_dir("badvalues");
    let mut v = vec![0.5f32; 12];
    v[4 * 1 + 2] = -1.0; // sample 1, feature 2 (4 features per sample)
    let neg = dir.join("neg.npy");
    write_npy_f32(&neg, 3, 4, &v);
    assert_user_error(
        &fit_quiet("nmf", s(&neg), &dir.join("a"), &["-k", "2"]),
        &["negative", "sample 1", "feature 2"],
    );
    v[6] = f32::NAN; // the same entry, now NaN
    let nan = dir.join("nan.npy");
    write_npy_f32(&nan, 3, 4, &v);
    // NMF takes a NaN as a missing entry (METHODS.md §11.2, cli_masked.rs); a method that
    // needs complete data names the entry.
    assert_ok(&fit_quiet("nmf", s(&nan), &dir.join("b"), &["-k", "2"]));
    assert_user_error(
        &fit_quiet("sparse-nmf", s(&nan), &dir.join("b2"), &["-k", "2"]),
        &["NaN entry", "sample 1", "feature 2", "complete data"],
    );
    v[6] = f32::INFINITY;
    let inf = dir.join("inf.npy");
    write_npy_f32(&inf, 3, 4, &v);
    assert_user_error(
        &fit_quiet("nmf", s(&inf), &dir.join("c"), &["-k", "2"]),
        &["infinite entry", "replace it"],
    );
    let empty = dir.join("empty.npy");
    write_npy_f32(&empty, 0, 4, &[]);
    assert_user_error(
        &fit_quiet("nmf", s(&empty), &dir.join("d"), &["-k", "2"]),
        &["empty"],
    );
    assert!(
        !dir.join("a").exists(),
        "no run folder is left behind by a failed fit"
    );
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
        &["invalid --data ''", "fashion-mnist:train"],
    );
    // Sizes that cannot run: k above both sides, absurd thread counts.
    assert_user_error(
        &run(&["fit", "nmf", "--data", "swimmer", "-k", "100000", "--out", &out]),
        &[
            "invalid --k 100000",
            "max(n_samples, n_features) = 1024",
            "lower --k",
        ],
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
        &["invalid --threads 100000", "at most"],
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
    let o = fit_swimmer(std::path::Path::new(&out))
        .args([
            "-k",
            "3",
            "--init",
            "custom",
            "--init-atoms",
            s(&dir.join("nope.npy")),
        ])
        .output()
        .unwrap();
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
    let out = dir.join("r");
    let fit = |args: &[&str]| fit_swimmer(&out).args(["-k", "3"]).args(args).output().unwrap();
    let missing = dir.join("nope.npy");
    assert_user_error(
        &fit(&["--init", "custom", "--init-atoms", s(&missing)]),
        &["nope.npy"],
    );
    let wrong = dir.join("wrong.npy");
    write_npy_f32(&wrong, 3, 10, &[0.1; 30]);
    assert_user_error(&fit(&["--init", "custom", "--init-atoms", s(&wrong)]), &["1024"]);
    assert_user_error(&fit(&["--init-atoms", s(&wrong)]), &["--init custom"]);
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

/// The library names its parameters in its own terms (`pg_tol`, `` `dtype = f64` ``, "allow
/// overwriting"); every message the command prints names them as that command's flags: one case
/// per kind — an invalid parameter (with the same name and with a renamed flag), an existing
/// output, advice inside a message.
#[test]
fn library_errors_are_worded_with_the_commands_flags() {
    let dir = temp_dir("flags");
    let out = dir.join("out");
    let fit = |extra: &[&str]| {
        let mut a = vec![
            "fit",
            "nmf",
            "--data",
            "swimmer",
            "-k",
            "3",
            "--max-iter",
            "2",
            "--quiet",
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    let no_library_names = |o: &std::process::Output| {
        let err = stderr(o);
        assert!(!err.contains('`') && !err.contains("pg_tol"), "{err}");
    };
    // An invalid parameter: the flag and its value, not `invalid pg_tol = 2`.
    let o = fit(&["--pg-tol", "2", "--out", s(&out)]);
    assert_user_error(&o, &["invalid --pg-tol 2: must be in [0, 1)"]);
    no_library_names(&o);
    // One whose flag is not its name: structuring_element is eval's --se.
    let r = swimmer_run(&dir);
    let o = run(&[
        "eval",
        s(&r),
        "--data",
        "swimmer",
        "--no-svm",
        "--quiet",
        "--se",
        "square:2",
    ]);
    assert_user_error(&o, &["invalid --se square:2", "odd side"]);
    // An existing output: fit has --out and --force, eval only --force.
    assert_ok(&fit(&["--out", s(&out)]));
    assert_user_error(
        &fit(&["--out", s(&out)]),
        &["already exists: choose another --out or pass --force to overwrite it"],
    );
    assert_ok(&run(&["eval", s(&r), "--data", "swimmer", "--no-svm", "--quiet"]));
    let o = run(&["eval", s(&r), "--data", "swimmer", "--no-svm", "--quiet"]);
    assert_user_error(&o, &["metrics.json already exists: pass --force to overwrite it"]);
    assert!(!stderr(&o).contains("--out"), "{}", stderr(&o));
    // Advice inside a message: data whose squares overflow f32.
    let big = dir.join("big.npy");
    write_npy_f32(&big, 3, 4, &[1e20f32; 12]);
    let o = run(&[
        "fit",
        "nmf",
        "--data",
        s(&big),
        "-k",
        "2",
        "--out",
        s(&dir.join("big")),
    ]);
    assert_user_error(&o, &["overflow in f32", "or use --dtype f64"]);
    no_library_names(&o);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A build without the `mpi` feature refuses `--distributed` in one line naming the fix.
#[cfg(not(feature = "mpi"))]
#[test]
fn distributed_without_mpi_says_how_to_build_it() {
    let dir = temp_dir("no-mpi");
    let x = dir.join("x.npy");
    write_npy_f32(&x, 4, 3, &[1.0; 12]);
    let out = dir.join("run");
    let o = run(&[
        "fit",
        "nmf",
        "--data",
        s(&x),
        "-k",
        "2",
        "--out",
        s(&out),
        "--distributed",
    ]);
    assert_user_error(&o, &["--features mpi", "mpirun -np P"]);
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
