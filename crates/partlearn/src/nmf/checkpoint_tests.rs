//! Checkpoints: a fit stopped at iteration j and resumed from its checkpoint gives the same bits
//! (factors, history, stop reason, iteration count) as the uninterrupted fit, for every solver,
//! on dense, sparse and masked data and in both phases of a compressed fit; the tolerance fires
//! at the same iteration; periodic checkpoints hold the last iteration; other data, other dtypes
//! and damaged files are refused.

use faer::{Mat, MatRef};

use super::*;
use crate::engine::{Control, Silent, StopReason};
use crate::io::test_dir;
use crate::nmf::{factorize_with, Compress, FitStats, InitMethod, Solver};
use crate::rng::Rng;

/// Stops the fit after iteration `at` (as Ctrl-C would) and asks for a checkpoint after every
/// iteration when `every` is set.
struct StopAt {
    at: usize,
    every: bool,
}

impl Observer for StopAt {
    fn on_iter(&mut self, r: &IterRecord) -> Control {
        if r.iter >= self.at {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    fn checkpoint_due(&mut self) -> bool {
        self.every
    }
}

fn planted<T: Real>(n: usize, m: usize, k: usize, zero: f64, seed: u64) -> Mat<T> {
    let mut r = Rng::new(seed);
    let codes = Mat::<f64>::from_fn(n, k, |_, _| r.uniform());
    let atoms = Mat::<f64>::from_fn(k, m, |_, _| if r.uniform() < 0.4 { 0.0 } else { r.uniform() });
    let x = &codes * &atoms;
    Mat::from_fn(n, m, |i, j| {
        let v = if r.uniform() < zero {
            0.0
        } else {
            x[(i, j)] + 0.01 * r.uniform()
        };
        T::from_f64(v)
    })
}

fn bits<T: Real>(a: MatRef<'_, T>) -> Vec<u64> {
    (0..a.ncols())
        .flat_map(|j| (0..a.nrows()).map(move |i| a[(i, j)].to_f64().to_bits()))
        .collect()
}

/// Objective and relative error of every record, as bits (the seconds differ).
fn record_bits(h: &[IterRecord]) -> Vec<(usize, u64, u64)> {
    h.iter()
        .map(|r| (r.iter, r.objective.to_bits(), r.rel_error.to_bits()))
        .collect()
}

/// The uninterrupted fit, then the same fit stopped after `at` and resumed from its checkpoint:
/// the same bits.
fn check_resume<T: Real>(input: NmfInput<'_, T>, p: &NmfParams, at: usize) {
    let dir = test_dir("nmf-ckpt");
    let path = dir.path().join("checkpoint.safetensors");
    let valid = p.check().unwrap();
    let whole = factorize_checkpointed(input, &valid, None, &path, &mut Silent).unwrap();
    assert!(!path.exists(), "no checkpoint is due in an uninterrupted fit");
    let stopped =
        factorize_checkpointed(input, &valid, None, &path, &mut StopAt { at, every: false }).unwrap();
    assert_eq!(
        (stopped.stop_reason, stopped.n_iter),
        (StopReason::Interrupted, at)
    );
    let ck = NmfCheckpoint::<T>::load(&path).unwrap();
    assert_eq!(ck.done(), at);
    assert_eq!(ck.history().len(), stopped.history.len());
    let resumed = resume(input, &ck, Some(&path), &mut Silent).unwrap();
    let what = format!(
        "{:?} β={} compress={:?} at {at}",
        p.solver, p.beta_loss, p.compress
    );
    assert_eq!(
        (resumed.stop_reason, resumed.n_iter),
        (whole.stop_reason, whole.n_iter),
        "{what}"
    );
    assert_eq!(
        record_bits(&resumed.history),
        record_bits(&whole.history),
        "{what}"
    );
    assert_eq!(
        bits(resumed.model.components()),
        bits(whole.model.components()),
        "{what}"
    );
    assert_eq!(bits(resumed.codes()), bits(whole.codes()), "{what}");
    let untimed = |s: FitStats| FitStats {
        sketch_seconds: 0.0,
        warm_seconds: 0.0,
        ..s
    };
    assert_eq!(untimed(resumed.stats), untimed(whole.stats), "{what}");
    assert!(resumed.seconds >= ck.seconds());
}

fn base(solver: Solver, beta: f64) -> NmfParams {
    NmfParams {
        k: 4,
        solver,
        beta_loss: beta,
        max_iter: 30,
        tol: 0.0,
        ..Default::default()
    }
}

#[test]
fn a_resumed_fit_has_the_bits_of_the_uninterrupted_one_for_every_solver() {
    let x = planted::<f64>(60, 25, 4, 0.0, 3);
    for (solver, beta) in [
        (Solver::Hals, 2.0),
        (Solver::Mu, 2.0),
        (Solver::Anls, 2.0),
        (Solver::Mu, 1.0),
        (Solver::Mu, 0.5),
    ] {
        for at in [1, 13] {
            check_resume(NmfInput::Dense(x.as_ref()), &base(solver, beta), at);
        }
    }
    // Plain (not extrapolated) HALS with penalties, random start, 2 threads.
    let p = NmfParams {
        extrapolate: false,
        alpha_w: 0.01,
        l1_ratio: 0.5,
        init: InitMethod::Random,
        threads: 2,
        ..base(Solver::Hals, 2.0)
    };
    check_resume(NmfInput::Dense(x.as_ref()), &p, 7);
}

#[test]
fn the_tolerance_stops_a_resumed_fit_at_the_same_iteration() {
    let x = planted::<f64>(50, 20, 3, 0.0, 5);
    let p = NmfParams {
        tol: 1e-3,
        max_iter: 500,
        ..base(Solver::Mu, 2.0)
    };
    let whole = factorize_with(x.as_ref(), &p.check().unwrap(), None, &mut Silent).unwrap();
    assert_eq!(whole.stop_reason, StopReason::Converged);
    assert!(
        whole.n_iter > 25,
        "converged too early for the test: {}",
        whole.n_iter
    );
    check_resume(NmfInput::Dense(x.as_ref()), &p, 15);
}

#[test]
fn sparse_masked_and_f32_fits_resume_with_the_same_bits() {
    let x = planted::<f64>(70, 30, 4, 0.7, 7);
    let csr = Csr::from_dense(x.as_ref()).unwrap();
    for (solver, beta) in [(Solver::Hals, 2.0), (Solver::Anls, 2.0), (Solver::Mu, 1.0)] {
        check_resume(NmfInput::Sparse(&csr), &base(solver, beta), 9);
    }
    let mut xm = planted::<f64>(60, 25, 4, 0.0, 8);
    let mut r = Rng::new(2);
    for j in 0..xm.ncols() {
        for i in 0..xm.nrows() {
            if r.uniform() < 0.2 {
                xm[(i, j)] = f64::NAN;
            }
        }
    }
    for (solver, beta) in [
        (Solver::Hals, 2.0),
        (Solver::Anls, 2.0),
        (Solver::Mu, 2.0),
        (Solver::Mu, 1.0),
    ] {
        check_resume(NmfInput::Masked(xm.as_ref(), None), &base(solver, beta), 6);
    }
    let x32 = planted::<f32>(60, 25, 4, 0.0, 3);
    check_resume(NmfInput::Dense(x32.as_ref()), &base(Solver::Hals, 2.0), 11);
}

#[test]
fn a_compressed_fit_resumes_in_either_phase() {
    let x = planted::<f64>(120, 60, 4, 0.0, 9);
    for init in [InitMethod::Random, InitMethod::Nndsvda] {
        let p = NmfParams {
            compress: Compress::On {
                oversample: 6,
                power_iters: 1,
            },
            polish: 8,
            max_iter: 30,
            init,
            ..base(Solver::Hals, 2.0)
        };
        // Stopped on an evaluated compressed iteration (every 10th), and in the polish.
        for at in [10, 26] {
            check_resume(NmfInput::Dense(x.as_ref()), &p, at);
        }
    }
}

#[test]
fn a_compressed_fit_with_a_warm_start_on_a_subset_resumes_without_redoing_it() {
    let x = planted::<f64>(600, 40, 4, 0.0, 9);
    let p = NmfParams {
        compress: Compress::On {
            oversample: 6,
            power_iters: 1,
        },
        compress_samples: crate::nmf::CompressSamples::Count(100),
        max_iter: 20,
        ..base(Solver::Hals, 2.0)
    };
    // The warm start's statistics travel in the checkpoint.
    for at in [1, 7] {
        check_resume(NmfInput::Dense(x.as_ref()), &p, at);
    }
}

#[test]
fn periodic_checkpoints_hold_the_last_iteration() {
    let x = planted::<f64>(40, 20, 3, 0.0, 1);
    let dir = test_dir("nmf-ckpt-periodic");
    let path = dir.path().join("c.safetensors");
    let p = base(Solver::Hals, 2.0).check().unwrap();
    let mut obs = StopAt {
        at: usize::MAX,
        every: true,
    };
    let fit = factorize_checkpointed(NmfInput::Dense(x.as_ref()), &p, None, &path, &mut obs).unwrap();
    let ck = NmfCheckpoint::<f64>::load(&path).unwrap();
    assert_eq!((ck.done(), ck.history().len()), (fit.n_iter, fit.n_iter + 1));
    // Resuming a finished fit runs no iteration and gives the same atoms.
    let again = resume(NmfInput::Dense(x.as_ref()), &ck, None, &mut Silent).unwrap();
    assert_eq!(again.n_iter, fit.n_iter);
    assert_eq!(bits(again.model.components()), bits(fit.model.components()));
}

#[test]
fn a_checkpoint_is_refused_on_other_data_and_when_damaged() {
    let x = planted::<f64>(40, 20, 3, 0.0, 1);
    let dir = test_dir("nmf-ckpt-refuse");
    let path = dir.path().join("c.safetensors");
    let p = base(Solver::Hals, 2.0).check().unwrap();
    let mut stop = StopAt { at: 3, every: false };
    factorize_checkpointed(NmfInput::Dense(x.as_ref()), &p, None, &path, &mut stop).unwrap();
    let ck = NmfCheckpoint::<f64>::load(&path).unwrap();
    let mut other = x.clone();
    other[(0, 0)] += 1.0;
    let e = resume(NmfInput::Dense(other.as_ref()), &ck, None, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(e.contains("differ from those the checkpoint was taken on"), "{e}");
    let small = planted::<f64>(30, 20, 3, 0.0, 1);
    let e = resume(NmfInput::Dense(small.as_ref()), &ck, None, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(e.contains("40 × 20") && e.contains("30 × 20"), "{e}");
    // The dtype is recorded; a model file is not a checkpoint.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(checkpoint_dtype(&bytes, &path).unwrap(), "f64");
    let model = factorize_with(x.as_ref(), &p, None, &mut Silent).unwrap();
    let (t, m) = model.model.to_tensors(None, None).unwrap();
    let e = NmfCheckpoint::<f64>::from_bytes(&crate::io::safetensors_bytes(&t, &m).unwrap(), &path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a partlearn NMF checkpoint"), "{e}");
    // A forged iteration count is refused.
    let mut forged = ck.clone();
    forged
        .meta
        .history
        .extend(std::iter::repeat_n(ck.history()[0], 10));
    let e = NmfCheckpoint::<f64>::from_bytes(&forged.to_bytes().unwrap(), &path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("damaged"), "{e}");
}
