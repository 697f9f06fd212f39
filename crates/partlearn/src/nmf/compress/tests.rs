use faer::Mat;

use super::*;
use crate::nmf::fit_loop::Iterate;
use crate::nmf::frobenius::{GramSolver, Rule};
use crate::nmf::init::Factors;
use crate::nmf::{self, InitMethod, NmfFit, NmfParams, Penalty, Solver};

/// `n × m` non-negative data: exactly rank `r` when `noise = 0`.
fn planted(n: usize, m: usize, r: usize, noise: f64, seed: u64) -> Mat<f64> {
    let mut rng = Rng::new(seed);
    let w = Mat::<f64>::from_fn(n, r, |_, _| rng.uniform());
    let h = Mat::<f64>::from_fn(r, m, |_, _| rng.uniform());
    let mut x = &w * &h;
    for j in 0..m {
        for i in 0..n {
            x[(i, j)] += noise * rng.uniform();
        }
    }
    x
}

/// `‖X − codes·atoms‖²` formed densely.
fn dense_sq_error<T: Real>(x: MatRef<'_, T>, fit: &NmfFit<T>) -> f64 {
    let c = fit.codes();
    let a = fit.model.components();
    let mut s = 0.0;
    for i in 0..x.nrows() {
        for j in 0..x.ncols() {
            let mut v = x[(i, j)].to_f64();
            for t in 0..c.ncols() {
                v -= c[(i, t)].to_f64() * a[(t, j)].to_f64();
            }
            s += v * v;
        }
    }
    s
}

/// The atoms and every recorded objective of a fit, as bits.
fn fit_bits(f: &NmfFit<f64>) -> Vec<u64> {
    let a = f.model.components();
    let mut v: Vec<u64> = (0..a.nrows())
        .flat_map(|i| (0..a.ncols()).map(move |j| a[(i, j)].to_bits()))
        .collect();
    v.extend(f.history.iter().map(|r| r.objective.to_bits()));
    v
}

fn compressed(k: usize, solver: Solver) -> NmfParams {
    NmfParams::new(k).solver(solver).tol(0.0).compress(Compress::On {
        oversample: 5,
        power_iters: 1,
    })
}

#[test]
fn orthonormalize_spans_the_columns() {
    let mut rng = Rng::new(3);
    let mut y = Mat::<f64>::from_fn(40, 6, |_, _| rng.normal());
    // A dependent column becomes zero.
    for i in 0..40 {
        y[(i, 5)] = 2.0 * y[(i, 1)] - y[(i, 3)];
    }
    let u = orthonormalize(y.as_ref());
    let g = u.transpose() * &u;
    for i in 0..6 {
        for j in 0..6 {
            let want = if i == j && i < 5 { 1.0 } else { 0.0 };
            assert!((g[(i, j)] - want).abs() < 1e-12, "UᵀU[{i},{j}] = {}", g[(i, j)]);
        }
    }
    let resid = &y - &u * (u.transpose() * &y);
    assert!(resid.norm_l2() < 1e-12 * y.norm_l2());
}

#[test]
fn sketch_of_low_rank_data_is_exact() {
    let x = planted(300, 40, 5, 0.0, 1);
    let xt = x.transpose();
    let s = sketch(xt, 8, 1, &mut Rng::new(0), Par::Seq);
    let back = &s.u * &s.b;
    assert!((&back - xt).norm_l2() < 1e-12 * xt.norm_l2());
    // On full-rank data the sketch is only an approximation (and not a trivial one).
    let x = planted(300, 40, 5, 0.5, 1);
    let xt = x.transpose();
    let s = sketch(xt, 8, 1, &mut Rng::new(0), Par::Seq);
    let e = (&s.u * &s.b - xt).norm_l2() / xt.norm_l2();
    assert!(e > 1e-3 && e < 0.5, "{e}");
}

#[test]
fn compressed_fit_reaches_the_exact_fit_error_on_planted_low_rank_data() {
    let x = planted(400, 60, 5, 0.0, 7);
    for solver in [Solver::Hals, Solver::Mu, Solver::Anls] {
        let plain = NmfParams::new(5).solver(solver).tol(0.0).max_iter(300);
        let exact = nmf::factorize(x.as_ref(), &plain.clone().check().unwrap()).unwrap();
        let fit = nmf::factorize(x.as_ref(), &compressed(5, solver).max_iter(300).check().unwrap()).unwrap();
        assert_eq!(fit.stats.sketch_rank, 10);
        assert_eq!(fit.stats.compressed_iters, 290);
        assert_eq!(fit.stats.polish_iters, 10);
        assert!(
            (fit.rel_error - exact.rel_error).abs() <= 1e-6,
            "{solver:?}: compressed {} against exact {}",
            fit.rel_error,
            exact.rel_error
        );
    }
}

#[test]
fn compressed_iterations_descend_on_the_sketch_and_exact_gives_the_true_objective() {
    let x = planted(200, 50, 4, 0.3, 2);
    let xt = x.transpose();
    let (k, m, n) = (4, 50, 200);
    let mut rng = Rng::new(5);
    let mut f = Factors {
        wt: Mat::<f64>::from_fn(k, m, |_, _| rng.uniform()),
        h: Mat::<f64>::from_fn(k, n, |_, _| rng.uniform()),
    };
    let sk = sketch(xt, 6, 0, &mut Rng::new(1), Par::Seq);
    let xhat = &sk.u * &sk.b;
    let rule = Rule::Hals {
        inner_codes: 2,
        inner_atoms: 2,
        delta: 0.1,
    };
    let mut s =
        GramSolver::new(xt, k, rule, Penalty::default(), Penalty::default(), Par::Seq).with_sketch(sk);
    assert_eq!(s.exact_every(), crate::engine::TOL_EVERY);
    let e0 = s.initial(&mut f);
    let dense0 = (xt - f.wt.transpose() * &f.h).squared_norm_l2();
    assert!(
        (e0.sq_error - dense0).abs() <= 1e-9 * dense0,
        "{} against {dense0}",
        e0.sq_error
    );
    let mut gap = 0.0f64;
    let mut last = f64::INFINITY;
    for _ in 0..8 {
        // The iterations evaluate ‖X̂ − WH‖², X̂ = UB, and are exact HALS steps on it: monotone.
        let e = s.iterate(&mut f);
        let wh = f.wt.transpose() * &f.h;
        let comp = (&xhat - &wh).squared_norm_l2();
        assert!(
            (e.sq_error - comp).abs() <= 1e-9 * comp,
            "{} against {comp}",
            e.sq_error
        );
        assert!(e.sq_error <= last * (1.0 + 1e-12), "{} after {last}", e.sq_error);
        last = e.sq_error;
        // `exact` gives the true ‖X − WH‖² by the Gram identity.
        let dense = (xt - &wh).squared_norm_l2();
        let x = s.exact(&mut f);
        assert!(
            (x.sq_error - dense).abs() <= 1e-9 * dense,
            "{} against {dense}",
            x.sq_error
        );
        gap = gap.max((dense - comp) / dense);
    }
    assert!(gap > 1e-2, "{gap}");
}

#[test]
fn fit_reports_the_true_error_and_continues_the_history_through_the_polish() {
    let x = planted(300, 80, 6, 0.2, 4);
    let p = compressed(6, Solver::Hals).max_iter(40).polish(7);
    let fit = nmf::factorize(x.as_ref(), &p.check().unwrap()).unwrap();
    let dense = dense_sq_error(x.as_ref(), &fit);
    assert!((fit.reconstruction_err.powi(2) - dense).abs() <= 1e-9 * dense);
    assert_eq!(
        (fit.n_iter, fit.stats.compressed_iters, fit.stats.polish_iters),
        (40, 33, 7)
    );
    // Compressed iterations are recorded (exactly evaluated) every TOL_EVERY = 10 and at the
    // last (33); the polish every iteration.
    let iters: Vec<usize> = fit.history.iter().map(|r| r.iter).collect();
    let want: Vec<usize> = [0, 10, 20, 30].into_iter().chain(33..=40).collect();
    assert_eq!(iters, want);
    assert!(fit.warnings.is_empty(), "{:?}", fit.warnings);
    // The polish lowers the (true) error below where the compressed phase stopped.
    assert!(fit.history.last().unwrap().rel_error < fit.history[4].rel_error);
}

#[test]
fn same_seed_same_bits_for_one_and_two_threads_and_seeds_differ() {
    let x = planted(3000, 120, 8, 0.2, 9).transpose().to_owned();
    let x = x.transpose();
    // A random start: the range finder draws the sketch (with NNDSVD the basis is exact).
    let run = |threads: usize, seed: u64| {
        let p = compressed(8, Solver::Hals)
            .init(InitMethod::Random)
            .max_iter(12)
            .polish(3)
            .threads(threads)
            .seed(seed);
        let fit = nmf::factorize(x, &p.check().unwrap()).unwrap();
        assert!(!fit.stats.sketch_exact);
        assert_eq!(fit.stats.power_iters, 1);
        fit
    };
    let a = run(1, 3);
    assert_eq!(fit_bits(&a), fit_bits(&run(2, 3)));
    assert_eq!(fit_bits(&a), fit_bits(&run(1, 3)));
    assert_ne!(fit_bits(&a), fit_bits(&run(1, 4)));
}

#[test]
fn f32_and_f64_agree() {
    let x = planted(500, 60, 5, 0.1, 11);
    let x32 = Mat::<f32>::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] as f32);
    let p = compressed(5, Solver::Hals).max_iter(60).check().unwrap();
    let a = nmf::factorize(x.as_ref(), &p).unwrap();
    let b = nmf::factorize(x32.as_ref(), &p).unwrap();
    assert_eq!(b.stats.sketch_rank, 10);
    assert!(
        (a.rel_error - b.rel_error).abs() < 1e-4,
        "{} {}",
        a.rel_error,
        b.rel_error
    );
}

#[test]
fn invalid_options_name_the_option_and_the_fix() {
    let err = |p: NmfParams, n: usize, m: usize| {
        let e = p.validate(n, m).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        e
    };
    let e = err(
        NmfParams::new(5).compress(Compress::On {
            oversample: 5,
            power_iters: 11,
        }),
        100,
        50,
    );
    assert!(
        e.contains("power_iters") && e.contains("lower `power_iters`"),
        "{e}"
    );
    let e = err(
        NmfParams::new(5).compress(Compress::On {
            oversample: 45,
            power_iters: 1,
        }),
        100,
        50,
    );
    assert!(e.contains("oversample") && e.contains("`compress = auto`"), "{e}");
    let e = err(
        NmfParams::new(5)
            .solver(Solver::Mu)
            .beta_loss(1.0)
            .compress(Compress::on()),
        100,
        300,
    );
    assert!(e.contains("compress") && e.contains("`compress = off`"), "{e}");
    let e = err(
        NmfParams::new(5).compress(Compress::on()).max_iter(10).polish(10),
        100,
        300,
    );
    assert!(e.contains("polish") && e.contains("max_iter"), "{e}");
    let e = err(NmfParams::new(5).compress(Compress::on()).pg_tol(1e-4), 100, 300);
    assert!(e.contains("pg_tol"), "{e}");
}

#[test]
fn auto_falls_back_when_compression_does_not_pay() {
    assert!(pays(120, 784, 60000));
    assert!(!pays(120, 200, 300));
    // l = 25: 2·25·(60 + 400) = 23000 ≤ 60·400 = 24000 pays; 2·25·(40 + 100) > 4000 does not.
    let auto20 = Compress::Auto {
        oversample: 20,
        power_iters: 2,
    };
    assert_eq!(auto20.plan(5, 60, 400).unwrap(), Some((25, 2)));
    assert_eq!(auto20.plan(5, 40, 100).unwrap(), None);
    // The default oversampling (100) does not pay on 60 features.
    assert_eq!(Compress::auto().plan(5, 60, 400).unwrap(), None);
    let x = planted(100, 40, 5, 0.1, 3);
    let fit = nmf::factorize(
        x.as_ref(),
        &NmfParams::new(5).compress(Compress::auto()).check().unwrap(),
    )
    .unwrap();
    assert_eq!((fit.stats.sketch_rank, fit.stats.polish_iters), (0, 0));
}

#[test]
fn an_nndsvd_start_gives_the_sketch_its_exact_basis() {
    // The leading l left singular vectors: the best rank-l subspace, so B = UᵀX captures
    // ‖X‖² − Σ_{j>l} σ_j² exactly, and the fit is the same for any seed.
    let x = planted(400, 60, 5, 0.3, 21);
    let run = |seed: u64| {
        let p = compressed(5, Solver::Hals)
            .init(InitMethod::Nndsvda)
            .max_iter(20)
            .polish(2)
            .seed(seed);
        nmf::factorize(x.as_ref(), &p.check().unwrap()).unwrap()
    };
    let a = run(1);
    assert!(a.stats.sketch_exact);
    assert_eq!((a.stats.sketch_rank, a.stats.power_iters), (10, 0));
    let b = run(2);
    assert_eq!(a.model.components(), b.model.components());
    // Against the range finder's basis (no power iteration): at least as good a subspace.
    let xt = x.transpose();
    let svd = crate::linalg::truncated_svd(xt, 10, &mut Rng::new(0), Par::Seq).unwrap();
    let exact = Sketch::from_svd(&svd);
    let rand = sketch(xt, 10, 0, &mut Rng::new(3), Par::Seq);
    let captured = |s: &Sketch<f64>| s.b.squared_norm_l2();
    assert!(captured(&exact) >= captured(&rand) * (1.0 - 1e-12));
    // B = ΣVᵀ equals UᵀX.
    let utx = exact.u.transpose() * xt;
    assert!((&utx - &exact.b).norm_l2() <= 1e-9 * utx.norm_l2());
}

/// Compression with a warm start on `s` of the samples ([`samples`]).
fn warm(k: usize, solver: Solver, s: usize) -> NmfParams {
    compressed(k, solver).compress_samples(samples::CompressSamples::Count(s))
}

#[test]
fn a_warm_start_on_a_subset_reaches_the_exact_fit_error_on_planted_low_rank_data() {
    let x = planted(2000, 60, 5, 0.0, 7);
    for solver in [Solver::Hals, Solver::Mu, Solver::Anls] {
        let plain = NmfParams::new(5).solver(solver).tol(0.0).max_iter(300);
        let exact = nmf::factorize(x.as_ref(), &plain.check().unwrap()).unwrap();
        let fit = nmf::factorize(x.as_ref(), &warm(5, solver, 200).max_iter(300).check().unwrap()).unwrap();
        // 12 · n / s iterations on the subset, then every iteration exact on all samples.
        assert_eq!(fit.stats.warm_samples, 200);
        assert_eq!(fit.stats.warm_iters, 120);
        assert_eq!((fit.stats.compressed_iters, fit.stats.polish_iters), (0, 0));
        assert_eq!((fit.n_iter, fit.history.len()), (300, 301));
        assert_eq!(fit.stats.sketch_rank, 10);
        // At or below the plain fit's error after as many exact iterations.
        assert!(
            fit.rel_error <= exact.rel_error + 1e-6,
            "{solver:?}: warm-started {} against exact {}",
            fit.rel_error,
            exact.rel_error
        );
        // The start is already a fit of the subset's atoms: far below the plain start.
        assert!(fit.history[0].rel_error < 0.1 * exact.history[0].rel_error);
    }
}

#[test]
fn a_warm_start_gives_the_same_bits_for_one_and_two_threads_and_follows_the_seed() {
    let x = planted(3000, 120, 8, 0.2, 9);
    let run = |threads: usize, seed: u64, init: InitMethod| {
        let p = warm(8, Solver::Hals, 400)
            .init(init)
            .max_iter(6)
            .threads(threads)
            .seed(seed);
        nmf::factorize(x.as_ref(), &p.check().unwrap()).unwrap()
    };
    for init in [InitMethod::Nndsvda, InitMethod::Random] {
        let a = run(1, 3, init);
        assert_eq!(a.stats.warm_samples, 400);
        assert_eq!(fit_bits(&a), fit_bits(&run(2, 3, init)), "{init:?}");
        assert_eq!(fit_bits(&a), fit_bits(&run(1, 3, init)), "{init:?}");
        assert_ne!(fit_bits(&a), fit_bits(&run(1, 4, init)), "{init:?}");
    }
}

#[test]
fn auto_warms_up_on_many_samples_only_and_off_keeps_the_compressed_iterations() {
    // k = 2: auto takes 200 samples where there are at least 800.
    let p = |n_iter: usize| compressed(2, Solver::Hals).max_iter(n_iter).polish(2);
    let many = planted(800, 30, 2, 0.1, 4);
    let fit = nmf::factorize(many.as_ref(), &p(8).check().unwrap()).unwrap();
    assert_eq!((fit.stats.warm_samples, fit.stats.warm_iters), (200, 48));
    assert_eq!(fit.stats.compressed_iters, 0);
    // Too few samples: the compressed iterations run on all of them, then the polish.
    let few = planted(799, 30, 2, 0.1, 4);
    let fit = nmf::factorize(few.as_ref(), &p(8).check().unwrap()).unwrap();
    assert_eq!(fit.stats.warm_samples, 0);
    assert_eq!((fit.stats.compressed_iters, fit.stats.polish_iters), (6, 2));
    // Off: the same on many samples.
    let off = p(8).compress_samples(samples::CompressSamples::Off);
    let fit = nmf::factorize(many.as_ref(), &off.check().unwrap()).unwrap();
    assert_eq!((fit.stats.warm_samples, fit.stats.compressed_iters), (0, 6));
    // With a warm start `polish` does not bound max_iter.
    let fit = nmf::factorize(many.as_ref(), &p(2).polish(5).check().unwrap()).unwrap();
    assert_eq!((fit.n_iter, fit.stats.warm_samples), (2, 200));
    // f32 and f64 agree.
    let m32 = Mat::<f32>::from_fn(800, 30, |i, j| many[(i, j)] as f32);
    let a = nmf::factorize(many.as_ref(), &p(20).check().unwrap()).unwrap();
    let b = nmf::factorize(m32.as_ref(), &p(20).check().unwrap()).unwrap();
    assert_eq!(b.stats.warm_samples, 200);
    assert!(
        (a.rel_error - b.rel_error).abs() < 1e-4,
        "{} {}",
        a.rel_error,
        b.rel_error
    );
}

#[test]
fn a_warm_start_count_out_of_range_or_where_it_cannot_run_is_refused() {
    let x = planted(500, 40, 3, 0.1, 2);
    let msg = |p: NmfParams| match p.check().and_then(|v| nmf::factorize(x.as_ref(), &v)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted"),
    };
    // l = 3 + 5 = 8: the count must lie in (8, 500).
    for s in [8, 500, 900] {
        let e = msg(warm(3, Solver::Hals, s));
        assert!(
            e.contains("compress_samples") && e.contains("fewer than n_samples = 500"),
            "{e}"
        );
    }
    let e = msg(NmfParams::new(3).compress_samples(samples::CompressSamples::Count(100)));
    assert!(
        e.contains("compress_samples") && e.contains("compression on"),
        "{e}"
    );
    let sparse = crate::data::Csr::<f64>::from_dense(x.as_ref()).unwrap();
    let p = warm(3, Solver::Hals, 100).check().unwrap();
    let e = nmf::factorize_csr(&sparse, &p, None, &mut crate::engine::Silent)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("compress_samples") && e.contains("dense data"), "{e}");
    // Auto on sparse data: no warm start, the sketch as before.
    let p = compressed(3, Solver::Hals)
        .max_iter(12)
        .polish(2)
        .check()
        .unwrap();
    let big = planted(1500, 40, 3, 0.1, 2);
    let fit = nmf::factorize_csr(
        &crate::data::Csr::<f64>::from_dense(big.as_ref()).unwrap(),
        &p,
        None,
        &mut crate::engine::Silent,
    )
    .unwrap();
    assert_eq!((fit.stats.warm_samples, fit.stats.compressed_iters), (0, 10));
}

#[test]
fn a_stop_during_the_warm_start_ends_it_and_the_fit_at_its_first_record() {
    use crate::engine::{Control, IterRecord, Observer, StopReason};
    /// Stops the warm start at its first progress past 5 iterations, and the fit from then on.
    struct StopIn {
        progress: Vec<(usize, usize)>,
    }
    impl Observer for StopIn {
        fn on_iter(&mut self, _: &IterRecord) -> Control {
            Control::Stop
        }
        fn on_progress(&mut self, done: usize, total: usize) -> Control {
            self.progress.push((done, total));
            if done >= 5 {
                Control::Stop
            } else {
                Control::Continue
            }
        }
    }
    let x = planted(2000, 60, 5, 0.1, 3);
    let p = warm(5, Solver::Hals, 200).max_iter(50).check().unwrap();
    let mut obs = StopIn { progress: Vec::new() };
    let fit = nmf::factorize_with(x.as_ref(), &p, None, &mut obs).unwrap();
    // 12 · 2000 / 200 = 120 iterations planned; the observer sees the recorded ones (every
    // 10th on the sketch) and stops the first past 5.
    assert_eq!(obs.progress, [(0, 120), (10, 120)]);
    assert_eq!(fit.stats.warm_iters, 10);
    assert_eq!((fit.stop_reason, fit.n_iter), (StopReason::Interrupted, 0));
    // Still a model of all samples, its error the exact one.
    assert_eq!(fit.codes().nrows(), 2000);
    assert!(fit.rel_error.is_finite() && fit.rel_error < 1.0);
}

#[test]
fn auto_compresses_the_samples_alone_where_the_sketch_does_not_pay() {
    // 12 features, k = 4, l = 9: the sketch does not pay (`pays`), 2,000 samples do.
    let x = planted(2000, 12, 4, 0.05, 8);
    let auto = Compress::Auto {
        oversample: 5,
        power_iters: 1,
    };
    let p = NmfParams::new(4).tol(0.0).max_iter(40).compress(auto);
    let fit = nmf::factorize(x.as_ref(), &p.clone().check().unwrap()).unwrap();
    assert_eq!((fit.stats.warm_samples, fit.stats.warm_iters), (400, 60));
    assert_eq!((fit.stats.sketch_rank, fit.stats.compressed_iters), (0, 0));
    let plain = nmf::factorize(
        x.as_ref(),
        &NmfParams::new(4).tol(0.0).max_iter(40).check().unwrap(),
    )
    .unwrap();
    assert!(
        fit.rel_error <= plain.rel_error * 1.001,
        "{} {}",
        fit.rel_error,
        plain.rel_error
    );
    // `off` there: the plain solver, as before.
    let off = p.compress_samples(samples::CompressSamples::Off).check().unwrap();
    let fit = nmf::factorize(x.as_ref(), &off).unwrap();
    assert_eq!((fit.stats.warm_samples, fit.stats.sketch_rank), (0, 0));
}
