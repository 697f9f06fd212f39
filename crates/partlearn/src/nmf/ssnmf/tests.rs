//! SSNMF's tests: monotonicity of the four models recomputed densely, prediction, stopping
//! rules, thread-count independence, refused input.

use super::*;
use crate::engine::Silent;

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
            let o = SsnmfOptions {
                k: 4,
                lambda: 3.0,
                data_loss: dl,
                label_loss: ll,
                max_iter: 150,
                tol: 0.0,
                ..SsnmfOptions::default()
            };
            let f = fit_ssnmf(x.as_ref(), Some(w.as_ref()), &labels, &o, &mut Silent).unwrap();
            // Restarted one iteration at a time from its own output (which continues the
            // run bit for bit), the objective recomputed densely (by a second, plain
            // implementation) from the factors never rises.
            let mut g = fit_ssnmf(
                x.as_ref(),
                Some(w.as_ref()),
                &labels,
                &SsnmfOptions {
                    max_iter: 1,
                    ..o.clone()
                },
                &mut Silent,
            )
            .unwrap();
            let mut prev = dense_objective(&x, &w, &labels, &g, &o);
            for it in 2..=o.max_iter {
                let one = SsnmfOptions {
                    max_iter: 1,
                    ..o.clone()
                };
                g = fit_from(
                    x.as_ref(),
                    Some(w.as_ref()),
                    &labels,
                    &one,
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
fn dense_objective(x: &Mat<f64>, w: &Mat<f64>, labels: &Labels, f: &SsnmfFit<f64>, o: &SsnmfOptions) -> f64 {
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
    let o = SsnmfOptions {
        k: 4,
        max_iter: 100_000_000,
        tol: 0.0,
        max_seconds: Some(0.2),
        ..SsnmfOptions::default()
    };
    let f = fit_ssnmf(x.as_ref(), None, &labels, &o, &mut Silent).unwrap();
    assert_eq!(f.stop_reason, StopReason::TimeLimit);
    assert!(f.history.len() > 1 && f.warnings.is_empty());
    let o = SsnmfOptions {
        max_iter: 12,
        tol: 1e-14,
        max_seconds: None,
        ..o
    };
    let f = fit_ssnmf(x.as_ref(), None, &labels, &o, &mut Silent).unwrap();
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
        x.as_ref(),
        None,
        &labels,
        &SsnmfOptions { tol: 0.0, ..o },
        &mut Silent,
    )
    .unwrap();
    assert!(f.warnings.is_empty());
}

/// Same seed, same bits with 1 and 2 threads.
#[test]
fn one_and_two_threads_give_the_same_bits() {
    let (x, labels) = toy_labels("labels4", &crate::data::named::TOY_HIERARCHY_L40);
    let o = SsnmfOptions {
        k: 4,
        max_iter: 50,
        ..SsnmfOptions::default()
    };
    let one = fit_ssnmf(x.as_ref(), None, &labels, &o, &mut Silent).unwrap();
    let two = crate::linalg::with_threads(2, || {
        fit_ssnmf(
            x.as_ref(),
            None,
            &labels,
            &SsnmfOptions {
                threads: 2,
                ..o.clone()
            },
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
    let o = SsnmfOptions {
        k: 4,
        lambda: 1.0,
        max_iter: 2000,
        tol: 1e-6,
        ..SsnmfOptions::default()
    };
    let f = fit_ssnmf(x.as_ref(), None, &labels, &o, &mut Silent).unwrap();
    let pred = f.predict_in_sample();
    let unknown: Vec<usize> = (0..90).filter(|&j| !labels.known()[j]).collect();
    let acc = unknown
        .iter()
        .filter(|&&j| pred[j] == labels.classes()[j])
        .count() as f64
        / unknown.len() as f64;
    assert!(acc >= 0.9, "in-sample accuracy on unlabeled columns {acc}");
    // Out of sample: the training columns encoded again by NNLS give the same classes.
    let out = f.predict(x.as_ref(), 1).unwrap();
    let agree = out.iter().zip(labels.classes()).filter(|(a, b)| a == b).count() as f64 / 90.0;
    assert!(agree >= 0.9, "out-of-sample accuracy {agree}");
}

#[test]
fn bad_input_is_refused() {
    let (x, labels) = toy_labels("labels4", &[0, 1]);
    let o = SsnmfOptions {
        k: 4,
        ..SsnmfOptions::default()
    };
    let short = Labels::new(labels.classes()[..10].to_vec(), labels.known()[..10].to_vec()).unwrap();
    assert!(fit_ssnmf(x.as_ref(), None, &short, &o, &mut Silent).is_err());
    assert!(fit_ssnmf(
        x.as_ref(),
        None,
        &labels,
        &SsnmfOptions { k: 0, ..o.clone() },
        &mut Silent
    )
    .is_err());
    assert!(fit_ssnmf(
        x.as_ref(),
        None,
        &labels,
        &SsnmfOptions {
            lambda: -1.0,
            ..o.clone()
        },
        &mut Silent
    )
    .is_err());
    let w = Mat::<f64>::ones(3, 3);
    assert!(fit_ssnmf(x.as_ref(), Some(w.as_ref()), &labels, &o, &mut Silent).is_err());
    assert!("hellinger".parse::<Divergence>().is_err());
    // A tol that is not a finite number ≥ 0, masks that mark nothing or hold other values.
    let err = |mask: Option<&Mat<f64>>, labels: &Labels, o: &SsnmfOptions| {
        fit_ssnmf(x.as_ref(), mask.map(|m| m.as_ref()), labels, o, &mut Silent)
            .unwrap_err()
            .to_string()
    };
    for tol in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(err(None, &labels, &SsnmfOptions { tol, ..o.clone() }).contains("invalid tol"));
    }
    let none = Labels::new(labels.classes().to_vec(), vec![false; labels.len()]).unwrap();
    assert!(err(None, &none, &o).contains("invalid label_mask"));
    let mut w = Mat::<f64>::ones(x.nrows(), x.ncols());
    w[(2, 3)] = 0.5;
    assert!(err(Some(&w), &labels, &o).contains("sample 3, feature 2"));
    let zeros = Mat::<f64>::zeros(x.nrows(), x.ncols());
    assert!(err(Some(&zeros), &labels, &o).contains("observes no entry"));
}
