//! Sparse data (METHODS.md §11.1): the fits of the dense and the CSR form of one matrix agree for
//! every solver, KL is monotone on sparse data, 1 and 2 threads give the same bits, and the
//! losses and options sparse data cannot take are one-line errors.

use faer::Mat;

use super::*;
use crate::engine::Silent;

/// `n × m` (samples as rows) planted rank-`k` data with about `zero`·100 % entries zeroed.
fn sparse_planted(n: usize, m: usize, k: usize, zero: f64, seed: u64) -> Mat<f64> {
    let mut r = Rng::new(seed);
    let codes = Mat::<f64>::from_fn(n, k, |_, _| if r.uniform() < 0.5 { 0.0 } else { r.uniform() });
    let atoms = Mat::<f64>::from_fn(k, m, |_, _| if r.uniform() < 0.5 { 0.0 } else { r.uniform() });
    let x = &codes * &atoms;
    Mat::from_fn(n, m, |i, j| if r.uniform() < zero { 0.0 } else { x[(i, j)] })
}

fn params(solver: Solver, beta: f64, init: InitMethod, threads: usize) -> ValidNmfParams {
    NmfParams {
        k: 5,
        solver,
        beta_loss: beta,
        init,
        tol: 0.0,
        max_iter: 40,
        threads,
        // By default HALS sweeps as often as the entries its kernels read allow, which differ
        // between the two forms (`hals_counts_the_stored_entries_of_sparse_data`).
        hals_inner_max: Some(3),
        ..Default::default()
    }
    .check()
    .unwrap()
}

fn rel_diff<T: Real>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> f64 {
    let (mut d, mut s) = (0.0f64, 0.0f64);
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            d += (a[(i, j)].to_f64() - b[(i, j)].to_f64()).powi(2);
            s += b[(i, j)].to_f64().powi(2);
        }
    }
    (d / s.max(1e-300)).sqrt()
}

fn fit_both<T: Real>(x: &Mat<f64>, p: &ValidNmfParams) -> (NmfFit<T>, NmfFit<T>) {
    let xd = Mat::<T>::from_fn(x.nrows(), x.ncols(), |i, j| T::from_f64(x[(i, j)]));
    let xs = Csr::from_dense(xd.as_ref()).unwrap();
    let dense = factorize_with(xd.as_ref(), p, None, &mut Silent).unwrap();
    let sparse = factorize_csr(&xs, p, None, &mut Silent).unwrap();
    (dense, sparse)
}

#[test]
fn dense_and_sparse_fits_agree_for_every_solver() {
    let x = sparse_planted(90, 40, 5, 0.6, 1);
    let cases = [
        (Solver::Hals, 2.0),
        (Solver::Mu, 2.0),
        (Solver::Anls, 2.0),
        (Solver::Mu, 1.0),
    ];
    for (solver, beta) in cases {
        let p = params(solver, beta, InitMethod::Random, 1);
        let (d, s) = fit_both::<f64>(&x, &p);
        let what = format!("{solver:?} β = {beta} f64");
        assert!(
            rel_diff(s.model.components(), d.model.components()) < 1e-8,
            "{what} atoms"
        );
        assert!(rel_diff(s.codes(), d.codes()) < 1e-8, "{what} codes");
        assert!((s.rel_error - d.rel_error).abs() < 1e-8, "{what} error");
        assert!(
            (s.objective - d.objective).abs() <= 1e-8 * d.objective.abs(),
            "{what} objective"
        );
        let (d, s) = fit_both::<f32>(&x, &p);
        let what = format!("{solver:?} β = {beta} f32");
        assert!(
            rel_diff(s.model.components(), d.model.components()) < 1e-3,
            "{what} atoms"
        );
        assert!((s.rel_error - d.rel_error).abs() < 1e-4, "{what} error");
    }
}

/// HALS's default inner sweeps on sparse data count its stored entries (Gillis & Glineur's `K`):
/// on a 200 × 150 matrix at 7 % density that allows two sweeps per factor (`ρ ≈ d·m/k + m/2n`
/// ≈ 2.5 for the codes), where its dense form allows 16 and 21, so the sparse default is the
/// dense fit with `hals_inner_max = 2`. A distributed fit of two CSR blocks counts both
/// processes' entries (each block's alone would allow one sweep of the codes) and agrees with
/// the one-process fit to rounding.
#[test]
fn hals_counts_the_stored_entries_of_sparse_data() {
    let (n, m) = (200, 150);
    let mut r = Rng::new(7);
    let x = Mat::<f64>::from_fn(n, m, |_, _| {
        if r.uniform() < 0.07 {
            0.1 + r.uniform()
        } else {
            0.0
        }
    });
    let xs = Csr::from_dense(x.as_ref()).unwrap();
    let density = xs.nnz() as f64 / (n * m) as f64;
    assert!((0.065..0.075).contains(&density), "{density}");
    let p = |inner: Option<usize>| {
        NmfParams {
            k: 5,
            init: InitMethod::Random,
            tol: 0.0,
            max_iter: 15,
            hals_inner_max: inner,
            ..Default::default()
        }
        .check()
        .unwrap()
    };
    let v = p(None).resolve(n, m).unwrap();
    assert_eq!((v.inner_max_codes, v.inner_max_atoms), (16, 21));
    let sparse = factorize_csr(&xs, &p(None), None, &mut Silent).unwrap();
    let two = factorize_with(x.as_ref(), &p(Some(2)), None, &mut Silent).unwrap();
    let dense = factorize_with(x.as_ref(), &p(None), None, &mut Silent).unwrap();
    assert!(rel_diff(sparse.model.components(), two.model.components()) < 1e-8);
    assert!(rel_diff(sparse.codes(), two.codes()) < 1e-8);
    assert_eq!(sparse.stats.column_sweeps, two.stats.column_sweeps);
    // Between one and two sweeps of each factor per iteration ((n + m) columns of k each).
    let once = (15 * (n + m)) as u64;
    assert!(sparse.stats.column_sweeps > once && sparse.stats.column_sweeps <= 2 * once);
    assert!(dense.stats.column_sweeps > sparse.stats.column_sweeps);
    let fits = crate::dist::threads::run(n, 2, |part, b| {
        let block = Csr::from_dense(x.as_ref().subrows(b.start, b.len())).unwrap();
        super::distributed::factorize_part(&block, &p(None), part, &mut Silent).unwrap()
    });
    for fit in &fits {
        assert!(rel_diff(fit.model.components(), sparse.model.components()) < 1e-9);
    }
}

/// A thin matrix (few features) with penalties: the penalties' scaling (`α_W·m`, `α_H·n`)
/// depends on which side is samples, so a sparse fit that swapped them would differ from the
/// dense one.
#[test]
fn dense_and_sparse_fits_agree_on_a_thin_matrix_with_penalties() {
    for (n, m) in [(60, 6), (6, 60)] {
        let x = sparse_planted(n, m, 3, 0.5, 4);
        for solver in [Solver::Hals, Solver::Mu, Solver::Anls] {
            let p = NmfParams {
                k: 3,
                solver,
                init: InitMethod::Random,
                tol: 0.0,
                max_iter: 30,
                hals_inner_max: Some(2),
                alpha_w: 0.05,
                alpha_h: Some(0.02),
                l1_ratio: 0.5,
                ..Default::default()
            }
            .check()
            .unwrap();
            let (d, s) = fit_both::<f64>(&x, &p);
            let what = format!("{solver:?} {n} × {m}");
            assert!(
                rel_diff(s.model.components(), d.model.components()) < 1e-8,
                "{what} atoms"
            );
            assert!(
                (s.objective - d.objective).abs() <= 1e-8 * d.objective.abs(),
                "{what} objective {} vs {}",
                s.objective,
                d.objective
            );
        }
    }
}

#[test]
fn kl_on_sparse_data_is_monotone_and_fits() {
    let x = sparse_planted(120, 50, 5, 0.7, 2);
    let xs = Csr::from_dense(x.as_ref()).unwrap();
    let p = NmfParams {
        k: 5,
        solver: Solver::Mu,
        beta_loss: 1.0,
        tol: 0.0,
        max_iter: 150,
        ..Default::default()
    }
    .check()
    .unwrap();
    let fit = factorize_csr(&xs, &p, None, &mut Silent).unwrap();
    for w in fit.history.windows(2) {
        assert!(w[1].objective <= w[0].objective * (1.0 + 1e-12), "KL rose: {w:?}");
    }
    let (first, last) = (fit.history[0].objective, fit.history.last().unwrap().objective);
    assert!(last < 0.9 * first, "KL {first} → {last}");
}

#[test]
fn sparse_fits_same_bits_one_and_two_threads() {
    let x = sparse_planted(700, 60, 5, 0.8, 3);
    let xs = Csr::from_dense(x.as_ref()).unwrap().cast::<f32>();
    for (solver, beta, init) in [
        (Solver::Hals, 2.0, InitMethod::Nndsvd),
        (Solver::Anls, 2.0, InitMethod::Random),
        (Solver::Mu, 1.0, InitMethod::Nndsvda),
    ] {
        let one = factorize_csr(&xs, &params(solver, beta, init, 1), None, &mut Silent).unwrap();
        let two = factorize_csr(&xs, &params(solver, beta, init, 2), None, &mut Silent).unwrap();
        assert_eq!(
            one.model.components(),
            two.model.components(),
            "{solver:?} β = {beta}"
        );
        assert_eq!(one.codes(), two.codes(), "{solver:?} β = {beta}");
        assert_eq!(one.objective.to_bits(), two.objective.to_bits());
    }
}

#[test]
fn sparse_nndsvd_starts_as_well_as_dense() {
    let x = sparse_planted(200, 60, 5, 0.5, 4);
    let p = params(Solver::Hals, 2.0, InitMethod::Nndsvd, 1);
    let (d, s) = fit_both::<f64>(&x, &p);
    // Same subspace up to the randomized finder's accuracy: the starts are close in error.
    let (e0d, e0s) = (d.history[0].rel_error, s.history[0].rel_error);
    assert!((e0d - e0s).abs() < 0.02, "initial rel. errors {e0d} vs {e0s}");
    assert!(s.rel_error < d.rel_error + 0.02);
}

#[test]
fn sparse_encode_matches_dense_encode() {
    let x = sparse_planted(80, 30, 5, 0.6, 5);
    for beta in [2.0, 1.0] {
        let p = params(Solver::Mu, beta, InitMethod::Random, 1);
        let (d, _) = fit_both::<f64>(&x, &p);
        let xs = Csr::from_dense(x.as_ref()).unwrap();
        let cd = d.model.encode(x.as_ref(), 1).unwrap();
        let cs = d.model.encode_csr(&xs, 2).unwrap();
        assert!(rel_diff(cs.as_ref(), cd.as_ref()) < 1e-8, "β = {beta}");
        // The sparse identity gives the dense reconstruction error without forming CW.
        let recon = d.model.decode(cd.as_ref()).unwrap();
        let dense_sq: f64 = (0..x.nrows())
            .flat_map(|i| (0..x.ncols()).map(move |j| (i, j)))
            .map(|(i, j)| (x[(i, j)] - recon[(i, j)]).powi(2))
            .sum();
        let sq = d.model.sq_error_csr(&xs, cd.as_ref(), 2).unwrap();
        assert!(
            (sq - dense_sq).abs() < 1e-9 * x.squared_norm_l2(),
            "{sq} vs {dense_sq}"
        );
    }
}

#[test]
fn what_sparse_data_cannot_take_is_an_error() {
    let xs = Csr::from_dense(sparse_planted(30, 20, 3, 0.5, 6).as_ref()).unwrap();
    for beta in [0.0, 0.5, 3.0] {
        let p = NmfParams {
            k: 3,
            beta_loss: beta,
            solver: Solver::Mu,
            ..Default::default()
        }
        .check()
        .unwrap();
        let e = factorize_csr(&xs, &p, None, &mut Silent).unwrap_err().to_string();
        assert!(e.contains("beta_loss"), "{e}");
    }
    // A sketch as wide as the features compresses nothing (as on dense data).
    let p = NmfParams {
        k: 3,
        compress: Compress::on(),
        ..Default::default()
    }
    .check()
    .unwrap();
    let e = factorize_csr(&xs, &p, None, &mut Silent).unwrap_err().to_string();
    assert!(e.contains("oversample"), "{e}");
    let neg = Csr::from_triplets(3, 2, &[(2, 1, -1.0f64)]).unwrap();
    let e = factorize_csr(
        &neg,
        &params(Solver::Hals, 2.0, InitMethod::Random, 1),
        None,
        &mut Silent,
    );
    assert!(matches!(
        e,
        Err(crate::Error::NegativeEntry {
            sample: 2,
            feature: 1,
            ..
        })
    ));
}

/// Compressed NMF on sparse data (the sketch by SpMM, [`compress::sketch_ref`]): the fit of the
/// CSR form equals the fit of the dense form of the same matrix to rounding (same `Ω`, same
/// sketched iterations), for HALS, MU and ANLS; `auto` falls back to plain iterations on data
/// too sparse for the sketch to pay ([`compress::pays_sparse`]).
#[test]
fn compressed_fits_of_sparse_data_equal_the_dense_ones_and_auto_falls_back_when_too_sparse() {
    let x = sparse_planted(120, 60, 5, 0.5, 9);
    for solver in [Solver::Hals, Solver::Mu, Solver::Anls] {
        let p = NmfParams {
            k: 5,
            solver,
            init: InitMethod::Random,
            compress: Compress::On {
                oversample: 10,
                power_iters: 2,
            },
            polish: 5,
            tol: 0.0,
            max_iter: 30,
            hals_inner_max: Some(3),
            ..Default::default()
        }
        .check()
        .unwrap();
        let (dense, sparse) = fit_both::<f64>(&x, &p);
        assert_eq!(sparse.stats.sketch_rank, 15, "{solver:?}");
        assert_eq!(sparse.stats.compressed_iters, dense.stats.compressed_iters);
        assert_eq!(sparse.n_iter, dense.n_iter);
        let (da, dc) = (
            rel_diff(sparse.model.components(), dense.model.components()),
            rel_diff(sparse.codes(), dense.codes()),
        );
        assert!(da < 1e-9 && dc < 1e-9, "{solver:?}: atoms {da:e}, codes {dc:e}");
        assert!((sparse.rel_error - dense.rel_error).abs() < 1e-9);
    }
    // Very sparse data: l·(m + n) > nnz, `auto` runs the plain solver (no sketch) and gives
    // the uncompressed fit's bits.
    let thin = sparse_planted(120, 60, 5, 0.97, 10);
    let xs = Csr::from_dense(thin.as_ref()).unwrap();
    assert!(!compress::pays_sparse(15, 60, 120, xs.nnz()));
    let auto = NmfParams {
        k: 5,
        compress: Compress::Auto {
            oversample: 10,
            power_iters: 1,
        },
        init: InitMethod::Random,
        max_iter: 20,
        ..Default::default()
    };
    let plain = NmfParams {
        compress: Compress::Off,
        ..auto.clone()
    };
    let a = factorize_csr(&xs, &auto.check().unwrap(), None, &mut Silent).unwrap();
    let b = factorize_csr(&xs, &plain.check().unwrap(), None, &mut Silent).unwrap();
    assert_eq!(a.stats.sketch_rank, 0);
    assert_eq!(a.model.components(), b.model.components());
}
