//! SSNMF's tests: monotonicity of the four models recomputed densely, prediction, stopping
//! rules, thread-count independence, refused input. The data here is kept as METHODS.md writes it
//! (`X` is `m × n`); the public functions get it as samples as rows (`x.transpose()`).

use super::*;
use crate::engine::Silent;

fn checked(o: &SsnmfParams) -> ValidSsnmfParams {
    o.check().unwrap()
}

fn toy_labels(level: &str, known: &[usize]) -> (Mat<f64>, Labels) {
    let d = crate::data::named::toy_hierarchy::<f64>(0);
    let classes = d.extra_labels.iter().find(|(n, _)| n == level).unwrap().1.clone();
    let mut k = vec![false; classes.len()];
    for &j in known {
        k[j] = true;
    }
    (d.xt().to_owned(), Labels::new(classes, k).unwrap())
}

#[test]
fn objective_never_increases_for_the_four_models_with_masks() {
    let (x, labels) = toy_labels("labels4", &crate::data::named::TOY_HIERARCHY_L40);
    let mut rng = Rng::new(9);
    let w = Mat::<f64>::from_fn(
        x.nrows(),
        x.ncols(),
        |_, _| if rng.uniform() < 0.9 { 1.0 } else { 0.0 },
    );
    for dl in [Divergence::Frobenius, Divergence::Kl] {
        for ll in [Divergence::Frobenius, Divergence::Kl] {
            let o = SsnmfParams {
                k: 4,
                lambda: 3.0,
                data_loss: dl,
                label_loss: ll,
                max_iter: 150,
                tol: 0.0,
                ..SsnmfParams::default()
            };
            let f = fit_ssnmf(
                x.transpose(),
                Some(w.transpose()),
                &labels,
                &checked(&o),
                &mut Silent,
            )
            .unwrap();
            // Restarted one iteration at a time from its own output (which continues the
            // run bit for bit), the objective recomputed densely (by a second, plain
            // implementation) from the factors never rises.
            let mut g = fit_ssnmf(
                x.transpose(),
                Some(w.transpose()),
                &labels,
                &checked(&SsnmfParams {
                    max_iter: 1,
                    ..o.clone()
                }),
                &mut Silent,
            )
            .unwrap();
            let mut prev = dense_objective(&x, &w, &labels, &g, &o);
            for it in 2..=o.max_iter {
                let one = SsnmfParams {
                    max_iter: 1,
                    ..o.clone()
                };
                g = fit_from(
                    x.as_ref(),
                    Some(w.as_ref()),
                    &labels,
                    &checked(&one),
                    (g.a, g.s, g.b),
                    Instant::now(),
                    &mut Silent,
                )
                .unwrap();
                let cur = dense_objective(&x, &w, &labels, &g, &o);
                assert!(
                    cur <= prev * (1.0 + 1e-10),
                    "{dl:?}/{ll:?}: {prev} → {cur} at {it}"
                );
                let rec = f.history[it].objective;
                assert!(
                    (cur - rec).abs() <= 1e-9 * cur.max(1.0),
                    "{dl:?}/{ll:?} at {it}: record {rec}, dense {cur}"
                );
                prev = cur;
            }
            assert!(
                g.a == f.a && g.s == f.s && g.b == f.b,
                "{dl:?}/{ll:?}: restarts differ"
            );
            let direct = objective(
                x.as_ref(),
                Some(w.as_ref()),
                &labels,
                f.a.as_ref(),
                f.s.as_ref(),
                f.b.as_ref(),
                &o,
            );
            assert!((direct - f.history.last().unwrap().objective).abs() <= 1e-9 * direct.abs().max(1.0));
        }
    }
}

/// `D₁(W⊙X ‖ W⊙AS) + λD₂(L⊙Y ‖ L⊙BS)` by plain loops over the entries (METHODS.md §3).
fn dense_objective(x: &Mat<f64>, w: &Mat<f64>, labels: &Labels, f: &SsnmfFit<f64>, o: &SsnmfParams) -> f64 {
    let d = |div: Divergence, p: f64, q: f64| match div {
        Divergence::Frobenius => (p - q).powi(2),
        Divergence::Kl => (if p > 0.0 { p * (p / q).ln() } else { 0.0 }) - p + q,
    };
    let k = f.a.ncols();
    let (mut data, mut label) = (0.0, 0.0);
    for j in 0..x.ncols() {
        for i in 0..x.nrows() {
            let q: f64 = (0..k).map(|t| f.a[(i, t)] * f.s[(t, j)]).sum();
            if w[(i, j)] > 0.0 {
                data += d(o.data_loss, x[(i, j)], q);
            }
        }
        if labels.known()[j] {
            for c in 0..f.b.nrows() {
                let q: f64 = (0..k).map(|t| f.b[(c, t)] * f.s[(t, j)]).sum();
                let y = if labels.classes()[j] as usize == c {
                    1.0
                } else {
                    0.0
                };
                label += d(o.label_loss, y, q);
            }
        }
    }
    data + o.lambda * label
}

/// A time budget ends a long fit; max_iter ends one with a tolerance with the max-iter
/// warning, and without a tolerance silently.
#[test]
fn time_budget_and_max_iter_warning() {
    let (x, labels) = toy_labels("labels4", &crate::data::named::TOY_HIERARCHY_L40);
    let o = SsnmfParams {
        k: 4,
        max_iter: 100_000_000,
        tol: 0.0,
        max_seconds: Some(0.2),
        ..SsnmfParams::default()
    };
    let f = fit_ssnmf(x.transpose(), None, &labels, &checked(&o), &mut Silent).unwrap();
    assert_eq!(f.stop_reason, StopReason::TimeLimit);
    assert!(f.history.len() > 1 && f.warnings.is_empty());
    let o = SsnmfParams {
        max_iter: 12,
        tol: 1e-14,
        max_seconds: None,
        ..o
    };
    let f = fit_ssnmf(x.transpose(), None, &labels, &checked(&o), &mut Silent).unwrap();
    assert_eq!((f.stop_reason, f.history.len()), (StopReason::MaxIter, 13));
    assert!(
        matches!(
            f.warnings.as_slice(),
            [Warning::MaxIterReached { max_iter: 12, .. }]
        ),
        "{:?}",
        f.warnings
    );
    let f = fit_ssnmf(
        x.transpose(),
        None,
        &labels,
        &checked(&SsnmfParams { tol: 0.0, ..o }),
        &mut Silent,
    )
    .unwrap();
    assert!(f.warnings.is_empty());
}

/// Same seed, same bits with 1 and 2 threads.
#[test]
fn one_and_two_threads_give_the_same_bits() {
    let (x, labels) = toy_labels("labels4", &crate::data::named::TOY_HIERARCHY_L40);
    let o = SsnmfParams {
        k: 4,
        max_iter: 50,
        ..SsnmfParams::default()
    };
    let one = fit_ssnmf(x.transpose(), None, &labels, &checked(&o), &mut Silent).unwrap();
    let two = crate::linalg::with_threads(2, || {
        fit_ssnmf(
            x.transpose(),
            None,
            &labels,
            &checked(&SsnmfParams {
                threads: 2,
                ..o.clone()
            }),
            &mut Silent,
        )
    })
    .unwrap()
    .unwrap();
    assert!(one.a == two.a && one.s == two.s && one.b == two.b);
}

#[test]
fn predicts_the_unlabeled_toy_hierarchy_columns() {
    let (x, labels) = toy_labels("labels4", &crate::data::named::TOY_HIERARCHY_L40);
    let o = SsnmfParams {
        k: 4,
        lambda: 1.0,
        max_iter: 2000,
        tol: 1e-6,
        ..SsnmfParams::default()
    };
    let f = fit_ssnmf(x.transpose(), None, &labels, &checked(&o), &mut Silent).unwrap();
    let pred = f.predict_in_sample();
    // The public layout: atoms k × m, codes n × k, the classifier c × k; predicting from the
    // codes is the in-sample prediction.
    assert_eq!(f.components().shape(), (4, 87));
    assert_eq!(f.components(), f.a.transpose());
    assert_eq!(f.codes(), f.s.transpose());
    assert_eq!(f.classifier().shape(), (4, 4));
    assert_eq!(predict_from_codes(f.classifier(), f.codes()).unwrap(), pred);
    assert!(predict_from_codes(f.classifier(), f.components()).is_err());
    let unknown: Vec<usize> = (0..90).filter(|&j| !labels.known()[j]).collect();
    let acc = unknown
        .iter()
        .filter(|&&j| pred[j] == labels.classes()[j])
        .count() as f64
        / unknown.len() as f64;
    assert!(acc >= 0.9, "in-sample accuracy on unlabeled columns {acc}");
    // Out of sample: the training samples encoded again by NNLS give the same classes, and
    // their codes (n × k) are those of the fit's solver.
    let codes = f.encode(x.transpose(), 1).unwrap();
    assert_eq!(codes.shape(), (90, 4));
    let nnls = linalg::nnls::nnls(f.a.as_ref(), x.as_ref(), &linalg::nnls::NnlsOptions::default(), 1)
        .unwrap()
        .0;
    assert_eq!(codes, nnls.transpose());
    let out = f.predict(x.transpose(), 1).unwrap();
    let agree = out.iter().zip(labels.classes()).filter(|(a, b)| a == b).count() as f64 / 90.0;
    assert!(agree >= 0.9, "out-of-sample accuracy {agree}");
}

/// The model file holds the dictionary as an NMF model, which encodes as `encode` does, and the
/// classifier; both divergences of the data term encode new samples close to their training codes.
#[test]
fn model_file_encodes_and_predicts_as_the_fit() {
    let (x, labels) = toy_labels("labels4", &crate::data::named::TOY_HIERARCHY_L40);
    for data_loss in [Divergence::Frobenius, Divergence::Kl] {
        let o = SsnmfParams {
            k: 4,
            data_loss,
            max_iter: 300,
            ..SsnmfParams::default()
        };
        let f = fit_ssnmf(x.transpose(), None, &labels, &checked(&o), &mut Silent).unwrap();
        let (tensors, meta) = f.to_tensors(false, None).unwrap();
        let bytes = crate::io::safetensors_bytes(&tensors, &meta).unwrap();
        let path = std::path::Path::new("ssnmf model");
        let loaded = crate::protocol::model_from_bytes::<f64>(&bytes, path).unwrap();
        assert_eq!(loaded.model.kind(), "nmf");
        let (parsed, _) = crate::io::parse_safetensors(&bytes, path).unwrap();
        let b = crate::io::tensor_by_name(&parsed, CLASSIFIER_TENSOR, path)
            .unwrap()
            .to_mat::<f64>()
            .unwrap();
        assert_eq!(b, f.b);
        assert!(parsed.iter().all(|t| t.name != "codes"));
        let codes = loaded.model.encode(x.transpose(), 1).unwrap();
        assert_eq!(codes, f.encode(x.transpose(), 1).unwrap());
        let pred = predict_from_codes(b.as_ref(), codes.as_ref()).unwrap();
        assert_eq!(pred, f.predict(x.transpose(), 1).unwrap());
        // The training data, encoded again, are close to the fit's codes (the label term moves
        // them a little), and reconstruct the data about as well.
        let rel = |s: MatRef<'_, f64>| {
            let r = &x - &f.a * s;
            (linalg::frob_sq(r.as_ref()) / linalg::frob_sq(x.as_ref())).sqrt()
        };
        let again = rel(codes.transpose());
        assert!(again <= rel(f.s.as_ref()) + 0.02, "{data_loss:?}: {again}");
        assert_eq!(f.to_tensors(true, None).unwrap().0.len(), 3);
    }
    let e = predict_from_codes(Mat::<f64>::zeros(3, 2).as_ref(), Mat::<f64>::zeros(4, 5).as_ref());
    assert!(matches!(e, Err(Error::ShapeMismatch { .. })));
}

#[test]
fn bad_input_is_refused() {
    let (x, labels) = toy_labels("labels4", &[0, 1]);
    let o = SsnmfParams::new(4);
    let fit = |mask: Option<&Mat<f64>>, labels: &Labels, o: &SsnmfParams| {
        o.check().and_then(|v| {
            fit_ssnmf(
                x.transpose(),
                mask.map(|m| m.transpose()),
                labels,
                &v,
                &mut Silent,
            )
        })
    };
    let short = Labels::new(labels.classes()[..10].to_vec(), labels.known()[..10].to_vec()).unwrap();
    assert!(fit(None, &short, &o).is_err());
    assert!(fit(None, &labels, &SsnmfParams { k: 0, ..o.clone() }).is_err());
    // k above min(n_samples, n_features) = 87 passes `check` and is refused at fit time.
    let big = SsnmfParams { k: 88, ..o.clone() };
    assert!(big.check().is_ok());
    assert!(matches!(
        fit(None, &labels, &big),
        Err(Error::InvalidOption { option: "k", .. })
    ));
    assert!(fit(
        None,
        &labels,
        &SsnmfParams {
            lambda: -1.0,
            ..o.clone()
        }
    )
    .is_err());
    let w = Mat::<f64>::ones(3, 3);
    assert!(fit(Some(&w), &labels, &o).is_err());
    assert!("hellinger".parse::<Divergence>().is_err());
    // New samples of another width, or negative ones, are refused when encoding.
    let f = fit(
        None,
        &labels,
        &SsnmfParams {
            max_iter: 5,
            ..o.clone()
        },
    )
    .unwrap();
    assert!(matches!(
        f.encode(x.transpose().subcols(0, 10), 1),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut neg = x.clone();
    neg[(0, 0)] = -1.0;
    assert!(matches!(
        f.predict(neg.transpose(), 1),
        Err(Error::NegativeEntry { .. })
    ));
    // A tol that is not a finite number ≥ 0, masks that mark nothing or hold other values.
    let err = |mask: Option<&Mat<f64>>, labels: &Labels, o: &SsnmfParams| fit(mask, labels, o).unwrap_err();
    for tol in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(err(None, &labels, &SsnmfParams { tol, ..o.clone() })
            .to_string()
            .contains("invalid tol"));
    }
    let none = Labels::new(labels.classes().to_vec(), vec![false; labels.len()]).unwrap();
    assert!(matches!(
        err(None, &none, &o),
        Error::InvalidOption {
            option: "label_mask",
            ..
        }
    ));
    let mut w = Mat::<f64>::ones(x.nrows(), x.ncols());
    w[(2, 3)] = 0.5;
    let e = err(Some(&w), &labels, &o);
    assert!(
        matches!(
            e,
            Error::InvalidOption {
                option: "data_mask",
                ..
            }
        ) && e.to_string().contains("sample 3, feature 2"),
        "{e}"
    );
    let zeros = Mat::<f64>::zeros(x.nrows(), x.ncols());
    let e = err(Some(&zeros), &labels, &o);
    assert!(
        matches!(
            e,
            Error::InvalidOption {
                option: "data_mask",
                ..
            }
        ) && e.to_string().contains("observes no entry"),
        "{e}"
    );
}
