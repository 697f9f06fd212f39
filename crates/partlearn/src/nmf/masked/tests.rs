//! Tests of NMF with missing entries: planted-factor recovery with 30 % of the entries hidden,
//! monotone objectives, the all-ones mask, the KKT conditions of the masked NNLS, f32/f64
//! agreement, thread-independent bits, bad masks.

use faer::Mat;

use super::*;
use crate::nmf::{InitMethod, NmfParams, Solver};

/// `n × m` data of rank `k` (dense factors in [0.2, 1.2]) plus uniform noise of amplitude
/// `noise`; returns the data and the noiseless matrix.
fn planted(n: usize, m: usize, k: usize, noise: f64, seed: u64) -> (Mat<f64>, Mat<f64>) {
    let mut r = Rng::new(seed);
    let codes = Mat::<f64>::from_fn(n, k, |_, _| 0.2 + r.uniform());
    let atoms = Mat::<f64>::from_fn(k, m, |_, _| 0.2 + r.uniform());
    let clean = &codes * &atoms;
    let x = Mat::<f64>::from_fn(n, m, |i, j| clean[(i, j)] + noise * (r.uniform() - 0.5));
    (x, clean)
}

fn params(k: usize, solver: Solver, iters: usize) -> ValidNmfParams {
    NmfParams::new(k)
        .solver(solver)
        .init(InitMethod::Random)
        .tol(0.0)
        .max_iter(iters)
        .check()
        .unwrap()
}

fn monotone(fit: &NmfFit<impl Real>, what: &str) {
    for w in fit.history.windows(2) {
        let (a, b) = (w[0].objective, w[1].objective);
        assert!(
            b <= a * (1.0 + 1e-10),
            "{what}: objective rose at iteration {}: {a} → {b}",
            w[1].iter
        );
    }
}

#[test]
fn planted_low_rank_is_recovered_with_30_percent_hidden() {
    let (n, m, k, noise) = (150, 60, 4, 0.1);
    let (x, clean) = planted(n, m, k, noise, 3);
    let mask = Mask::holdout(&Mask::full(n, m), 0.3, &mut Rng::new(9));
    let hidden = mask.n_hidden() as f64 / (n * m) as f64;
    assert!((hidden - 0.3).abs() < 0.02, "hidden share {hidden}");
    // The noise's RMS: noise / √12.
    let noise_rms = noise / 12f64.sqrt();
    for (solver, iters) in [(Solver::Anls, 100), (Solver::Hals, 200), (Solver::Mu, 2000)] {
        let fit = factorize_masked(x.as_ref(), Some(&mask), &params(k, solver, iters)).unwrap();
        monotone(&fit, &format!("{solver:?}"));
        let recon = fit.model.decode(fit.codes()).unwrap();
        let (mut se, mut cnt) = (0.0, 0.0);
        for j in 0..n {
            for i in 0..m {
                if !mask.observed(j, i) {
                    se += (recon[(j, i)] - clean[(j, i)]).powi(2);
                    cnt += 1.0;
                }
            }
        }
        let rms = (se / cnt).sqrt();
        // Against the noiseless matrix, the hidden entries' error is below the noise level.
        assert!(
            rms < noise_rms,
            "{solver:?}: RMS error on the hidden entries {rms:.4} vs noise {noise_rms:.4}"
        );
        // …and far below what ignoring the missing entries (fitting them as 0) would give.
        assert!(
            fit.rel_error < 0.05,
            "{solver:?}: rel. error on the observed entries {}",
            fit.rel_error
        );
    }
}

#[test]
fn objective_never_increases_masked_every_solver_and_beta() {
    let (mut x, _) = planted(60, 30, 3, 0.1, 5);
    let mut r = Rng::new(2);
    for j in 0..x.nrows() {
        for i in 0..x.ncols() {
            if r.uniform() < 0.2 {
                x[(j, i)] = f64::NAN;
            }
        }
    }
    for (solver, beta) in [
        (Solver::Anls, 2.0),
        (Solver::Hals, 2.0),
        (Solver::Mu, 2.0),
        (Solver::Mu, 1.0),
        (Solver::Mu, 0.5),
        (Solver::Mu, 3.0),
    ] {
        for alpha in [0.0, 0.01] {
            let p = NmfParams::new(5)
                .solver(solver)
                .beta_loss(beta)
                .alpha_w(alpha)
                .l1_ratio(0.5)
                .tol(0.0)
                .max_iter(40)
                .check()
                .unwrap();
            let fit = factorize_masked(x.as_ref(), None, &p).unwrap();
            assert_eq!(fit.history.len(), 41);
            monotone(&fit, &format!("{solver:?} β {beta} α {alpha}"));
        }
    }
}

#[test]
fn all_ones_mask_gives_the_unmasked_bits() {
    let (x, _) = planted(40, 20, 3, 0.1, 1);
    for solver in [Solver::Anls, Solver::Hals, Solver::Mu] {
        let p = params(3, solver, 30);
        let a = factorize_masked(x.as_ref(), Some(&Mask::full(40, 20)), &p).unwrap();
        let b = crate::nmf::factorize(x.as_ref(), &p).unwrap();
        assert_eq!(a.model.components(), b.model.components(), "{solver:?}");
        assert_eq!(a.codes(), b.codes(), "{solver:?}");
        assert_eq!(a.objective.to_bits(), b.objective.to_bits());
    }
}

#[test]
fn masked_nnls_codes_satisfy_kkt_per_sample() {
    let (mut x, _) = planted(50, 25, 4, 0.3, 7);
    let mut r = Rng::new(4);
    let flags: Vec<bool> = (0..50 * 25).map(|_| r.uniform() > 0.4).collect();
    let mask = Mask::from_fn(50, 25, |j, i| flags[j * 25 + i]);
    // Random atoms: many codes at the bound.
    let atoms = Mat::<f64>::from_fn(6, 25, |_, _| r.uniform().powi(3));
    let model = NmfModel::new(
        atoms.clone(),
        EncodeSpec {
            beta_loss: 2.0,
            codes_penalty: Default::default(),
            encode: Default::default(),
        },
    )
    .unwrap();
    for j in 0..50 {
        for i in 0..25 {
            if !mask.observed(j, i) {
                x[(j, i)] = 1e6; // hidden values must not matter
            }
        }
    }
    let codes = model.encode_masked(x.as_ref(), Some(&mask), 1).unwrap();
    let mut at_bound = 0;
    for j in 0..50 {
        // Gradient Σ_{i∈Ω_j} w_i (w_iᵀ h_j − x_ij).
        let scale: f64 = (0..25)
            .filter(|&i| mask.observed(j, i))
            .map(|i| x[(j, i)].abs())
            .sum::<f64>()
            + 1.0;
        for a in 0..6 {
            let mut g = 0.0;
            for i in (0..25).filter(|&i| mask.observed(j, i)) {
                let pred: f64 = (0..6).map(|b| atoms[(b, i)] * codes[(j, b)]).sum();
                g += atoms[(a, i)] * (pred - x[(j, i)]);
            }
            let h = codes[(j, a)];
            assert!(h >= 0.0);
            if h > 0.0 {
                assert!(
                    g.abs() <= 1e-8 * scale,
                    "sample {j}, code {a}: h = {h}, gradient {g}"
                );
            } else {
                at_bound += 1;
                assert!(g >= -1e-8 * scale, "sample {j}, code {a} at 0 with gradient {g}");
            }
        }
    }
    assert!(at_bound > 10, "the test needs active constraints ({at_bound})");
}

#[test]
fn f32_and_f64_agree_and_threads_do_not_change_bits() {
    let (mut x, _) = planted(80, 30, 3, 0.1, 11);
    let mut r = Rng::new(6);
    for j in 0..80 {
        for i in 0..30 {
            if r.uniform() < 0.25 {
                x[(j, i)] = f64::NAN;
            }
        }
    }
    let x32 = Mat::<f32>::from_fn(80, 30, |i, j| x[(i, j)] as f32);
    for solver in [Solver::Anls, Solver::Hals, Solver::Mu] {
        let base = NmfParams::new(3).solver(solver).tol(0.0).max_iter(50);
        let a = factorize_masked(x.as_ref(), None, &base.clone().check().unwrap()).unwrap();
        let b = factorize_masked(x32.as_ref(), None, &base.clone().check().unwrap()).unwrap();
        assert!(
            (a.rel_error - b.rel_error).abs() < 1e-3 * a.rel_error.max(1e-3),
            "{solver:?}: f64 {} vs f32 {}",
            a.rel_error,
            b.rel_error
        );
        // Enough columns for several parallel tasks.
        let (mut big, _) = planted(300, 40, 3, 0.1, 12);
        let mut r = Rng::new(8);
        for j in 0..300 {
            for i in 0..40 {
                if r.uniform() < 0.2 {
                    big[(j, i)] = f64::NAN;
                }
            }
        }
        let one = factorize_masked(big.as_ref(), None, &base.clone().threads(1).check().unwrap()).unwrap();
        let two = factorize_masked(big.as_ref(), None, &base.clone().threads(2).check().unwrap()).unwrap();
        assert_eq!(one.model.components(), two.model.components(), "{solver:?}");
        assert_eq!(one.codes(), two.codes(), "{solver:?}");
    }
}

#[test]
fn fit_codes_equal_transform_of_the_training_data() {
    let (mut x, _) = planted(40, 20, 3, 0.1, 2);
    x[(0, 0)] = f64::NAN;
    x[(5, 7)] = f64::NAN;
    for (solver, beta) in [(Solver::Anls, 2.0), (Solver::Hals, 2.0), (Solver::Mu, 2.0)] {
        let p = NmfParams::new(3)
            .solver(solver)
            .beta_loss(beta)
            .max_iter(30)
            .check()
            .unwrap();
        let fit = factorize_masked(x.as_ref(), None, &p).unwrap();
        let codes = fit.model.encode_masked(x.as_ref(), None, 1).unwrap();
        let d = (0..40)
            .flat_map(|j| (0..3).map(move |a| (j, a)))
            .map(|(j, a)| (codes[(j, a)] - fit.codes()[(j, a)]).abs())
            .fold(0.0, f64::max);
        assert!(
            d < 1e-3,
            "{solver:?}: transform differs from the fit's codes by {d}"
        );
        let (err, norm) = observed_error(
            x.as_ref(),
            &Mask::from_nan(x.as_ref()),
            fit.codes(),
            fit.model.components(),
        )
        .unwrap();
        assert!(((err / norm).sqrt() - fit.rel_error).abs() < 1e-9, "{solver:?}");
    }
}

#[test]
fn bad_masks_are_one_line_errors_naming_the_entry() {
    let (x, _) = planted(10, 6, 2, 0.1, 1);
    let p = params(2, Solver::Anls, 5);
    let msg = |m: Option<&Mask>, x: &Mat<f64>| factorize_masked(x.as_ref(), m, &p).unwrap_err().to_string();
    // Another shape.
    assert!(
        msg(Some(&Mask::full(6, 10)), &x).contains("mask"),
        "{}",
        msg(Some(&Mask::full(6, 10)), &x)
    );
    // Values other than 0/1.
    let bad = Mat::<f64>::from_fn(10, 6, |i, j| if (i, j) == (2, 3) { 0.5 } else { 1.0 });
    let e = Mask::from_matrix(bad.as_ref()).unwrap_err().to_string();
    assert!(
        e.contains("sample 2, feature 3") && e.contains("0 (hidden) or 1"),
        "{e}"
    );
    // A NaN where the mask says observed.
    let mut xn = x.clone();
    xn[(4, 1)] = f64::NAN;
    let e = msg(Some(&Mask::from_fn(10, 6, |j, _| j != 0)), &xn);
    assert!(e.contains("NaN at sample 4, feature 1"), "{e}");
    // A whole sample hidden, a whole feature hidden.
    let e = msg(Some(&Mask::from_fn(10, 6, |j, _| j != 7)), &x);
    assert!(
        e.contains("sample 7 has no observed entry") && e.contains("undetermined"),
        "{e}"
    );
    let e = msg(Some(&Mask::from_fn(10, 6, |_, i| i != 5)), &x);
    assert!(e.contains("feature 5 has no observed entry"), "{e}");
    // Negative observed entries are still errors; hidden ones may hold anything.
    let mut xneg = x.clone();
    xneg[(1, 1)] = -1.0;
    assert!(msg(None, &xneg).contains("negative") || msg(None, &xneg).contains("-1"));
    assert!(factorize_masked(
        xneg.as_ref(),
        Some(&Mask::from_fn(10, 6, |j, i| (j, i) != (1, 1))),
        &p
    )
    .is_ok());
    // transform: a sample without observed entries is named; a hidden feature is fine.
    let fit = factorize_masked(
        x.as_ref(),
        Some(&Mask::from_fn(10, 6, |j, i| (j, i) != (1, 1))),
        &p,
    )
    .unwrap();
    let e = fit
        .model
        .encode_masked(x.as_ref(), Some(&Mask::from_fn(10, 6, |j, _| j != 3)), 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sample 3"), "{e}");
    assert!(fit
        .model
        .encode_masked(x.as_ref(), Some(&Mask::from_fn(10, 6, |_, i| i != 2)), 1)
        .is_ok());
}

#[test]
fn holdout_keeps_every_sample_and_feature_observed() {
    let base = Mask::full(30, 4);
    let h = Mask::holdout(&base, 0.9, &mut Rng::new(1));
    assert!(h.check_coverage(true).is_ok());
    assert_eq!(h, Mask::holdout(&base, 0.9, &mut Rng::new(1)));
    assert!(h.n_hidden() > 30);
}

#[test]
fn a_sparse_mask_is_its_stored_ones_and_equals_the_dense_mask() {
    let dense = Mat::<f64>::from_fn(7, 5, |j, i| if (j * 5 + i) % 3 == 0 { 0.0 } else { 1.0 });
    let csr = crate::data::Csr::from_dense(dense.as_ref()).unwrap();
    let a = Mask::from_csr(&csr).unwrap();
    assert_eq!(a, Mask::from_matrix(dense.as_ref()).unwrap());
    assert_eq!(a.n_hidden(), (0..35).filter(|x| x % 3 == 0).count());
    // Explicit zeros are hidden too; other values are errors naming the entry.
    let with_zero = crate::data::Csr::from_triplets(2, 2, &[(0, 0, 1.0), (0, 1, 0.0), (1, 1, 1.0)]).unwrap();
    let z = Mask::from_csr(&with_zero).unwrap();
    assert!(z.observed(0, 0) && !z.observed(0, 1) && !z.observed(1, 0) && z.observed(1, 1));
    let bad = crate::data::Csr::from_triplets(2, 2, &[(1, 0, 2.0)]).unwrap();
    let e = Mask::from_csr(&bad).unwrap_err().to_string();
    assert!(
        e.contains("2 at sample 1, feature 0") && e.contains("0 (hidden) or 1"),
        "{e}"
    );
}
