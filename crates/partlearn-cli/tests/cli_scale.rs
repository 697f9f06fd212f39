//! Data at scales the float types cannot hold, damaged model settings and NaN entries, from the
//! command line: each is a one-line error naming the fix (or, for NaN, a documented use), never
//! a fit that silently reads a relative error of 0.

mod common;

use common::*;
use partlearn::npy::{npy_bytes, NpyDataRef};

fn write_f64(path: &std::path::Path, n: usize, m: usize, f: impl Fn(usize) -> f64) {
    let vals: Vec<f64> = (0..n * m).map(f).collect();
    std::fs::write(path, npy_bytes(&[n, m], NpyDataRef::F64(&vals))).unwrap();
}

/// f64 values near 1e-50 would all round to 0 in f32 (the default): the fit refuses them naming
/// `--dtype f64`, which fits them.
#[test]
fn f64_data_below_the_f32_range_is_refused_in_f32_and_fits_in_f64() {
    let dir = temp_dir("tiny");
    let data = dir.join("tiny64.npy");
    write_f64(&data, 30, 8, |i| 1e-50 * (1.0 + (i % 7) as f64));
    let out = dir.join("run");
    assert_refused(
        &["fit", "nmf", "--data", s(&data), "-k", "2", "--out", s(&out)],
        &["underflow in f32", "--dtype f64"],
        &out,
    );
    let o = run(&[
        "fit",
        "nmf",
        "--data",
        s(&data),
        "-k",
        "2",
        "--dtype",
        "f64",
        "--max-iter",
        "20",
        "--out",
        s(&out),
        "--json",
    ]);
    assert_ok(&o);
    let run: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rel = run["rel_error"].as_f64().unwrap();
    assert!(rel > 0.0 && rel < 1.0, "{rel}");
}

/// f64 values near 1.6e153 (150 × 64): every Gram entry fits f64 but `‖X‖²` does not; refused
/// naming the sum over all entries, without the f32 advice.
#[test]
fn f64_data_whose_sum_of_squares_overflows_is_refused() {
    let dir = temp_dir("huge");
    let data = dir.join("huge64.npy");
    write_f64(&data, 150, 64, |i| 1.6e153 * ((i % 5) as f64 + 1.0) / 5.0);
    let out = dir.join("run");
    let o = assert_refused(
        &[
            "fit",
            "nmf",
            "--data",
            s(&data),
            "-k",
            "2",
            "--dtype",
            "f64",
            "--out",
            s(&out),
        ],
        &["all entries", "rescale"],
        &out,
    );
    assert!(!stderr(&o).contains("--dtype"), "{}", stderr(&o));
}

/// A model file whose encode settings were edited (a negative `tol`; `max_iter` 0 would give
/// all-zero codes) is refused by `transform` as damaged.
#[test]
fn a_model_with_damaged_encode_settings_is_refused() {
    let dir = temp_dir("damaged");
    let data = dir.join("x.npy");
    write_f64(&data, 40, 6, |i| ((i * 7919) % 13) as f64 / 13.0);
    let out = dir.join("run");
    assert_ok(&run(&[
        "fit",
        "nmf",
        "--data",
        s(&data),
        "-k",
        "2",
        "--max-iter",
        "10",
        "--out",
        s(&out),
    ]));
    let model = out.join("model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    // The settings sit in the header as escaped JSON; same length, so the header size stays.
    let (from, to) = (&b"\\\"tol\\\":0.00001"[..], &b"\\\"tol\\\":-1.0000"[..]);
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("encode settings in the header");
    bytes[at..at + from.len()].copy_from_slice(to);
    std::fs::write(&model, bytes).unwrap();
    let codes = dir.join("codes.npy");
    let o = run(&["transform", s(&out), "--data", s(&data), "--out", s(&codes)]);
    assert_user_error(&o, &["damaged"]);
    assert!(!codes.exists());
}

/// `data info` reads values as stored: NaN entries are counted as missing values that `fit nmf`
/// uses, f64 values below the f32 range are valid with `--dtype f64` only, and the NPY dtype is
/// named.
#[test]
fn data_info_counts_missing_entries_and_checks_the_f32_default() {
    let dir = temp_dir("info");
    let nan = dir.join("nan.npy");
    write_f64(&nan, 10, 4, |i| if i == 7 { f64::NAN } else { 0.5 + i as f64 });
    let o = run(&["data", "info", s(&nan)]);
    assert_ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("stored as <f8") && text.contains("missing entries (NaN): 1"),
        "{text}"
    );
    assert!(
        text.contains("valid for NMF: yes, with missing entries (1 NaN entry"),
        "{text}"
    );
    let tiny = dir.join("tiny.npy");
    write_f64(&tiny, 10, 4, |i| 1e-50 * (1 + i) as f64);
    let o = run(&["data", "info", s(&tiny), "--json"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["valid_for_nmf"].as_bool(), v["valid_in_f32"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(v["problem"].as_str().unwrap().contains("--dtype f64"), "{v}");
    assert_eq!(v["missing_entries"], 0);
    let o = run(&["data", "info", s(&tiny)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("max 4e-49") && text.contains("with --dtype f64 only"),
        "{text}"
    );
}
