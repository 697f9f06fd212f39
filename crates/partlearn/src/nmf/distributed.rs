//! NMF on data spread over processes by rows (1-D distribution of MPI-FAUN, Kannan, Ballard &
//! Park 2016; METHODS.md §1.2–1.4 unchanged): rank `r` holds the samples `X_r` and their
//! codes `H_r`; the atoms are replicated. Each iteration updates the codes locally with
//! `Q = WᵀW` and `P_r = WᵀX_r` (no communication), then sums `T = Σ_r H_rH_rᵀ` (`k × k`) and
//! `R = Σ_r H_rX_rᵀ` (`k × m`) over ranks and updates the atoms identically everywhere; the
//! objective follows from `‖X‖² = Σ_r ‖X_r‖²`, `R`, `Q` and `T` (plus summed codes penalties).
//! Words moved per rank and iteration: `k·m + k²` (+ a few scalars) per sum
//! ([`crate::dist::Comm`]). The solvers are the one-process ones (`frobenius::GramSolver`, the
//! shared fit loop) with their reductions routed through [`Part`].
//!
//! With the same seed and a random start, the result equals the one-process fit of the whole
//! matrix up to rounding (the sums' order differs), when the row blocks are those of
//! [`crate::dist::row_block`].

use std::time::Instant;

use faer::MatRef;

use super::{fit_columns, InitMethod, NmfFit, ValidNmfParams};
use crate::dist::Part;
use crate::engine::Observer;
use crate::error::{Error, Result};
use crate::linalg;
use crate::real::Real;

/// Fits an NMF of the whole data, of which this process holds the rows `x` (`n_local ×
/// n_features`, the rows `part.offset..part.offset + n_local` of `part.n_total`); every
/// process of `part.comm` calls it with the same parameters. Returns the fit with the atoms
/// (the same on every process), the history and objective of the whole data, and this
/// process's codes (`n_local × k`).
///
/// Frobenius loss only (MU, HALS, ANLS); random start (equal to the one-process start with the
/// same seed) or NNDSVD / NNDSVD-a (from the summed `m × m` Gram of the features when
/// `n_features ≤ min(n_samples, 2048)`, else from a randomized range finder across processes:
/// [`crate::nmf::init`]'s `svd_part`); no compression. An error on one process (invalid data,
/// memory) is reported by every process before any iteration.
///
/// ```
/// use partlearn::dist::Part;
/// use partlearn::faer::Mat;
/// use partlearn::nmf::{self, distributed, InitMethod, NmfParams};
///
/// let x = Mat::<f64>::from_fn(40, 12, |i, j| ((i * j) % 5) as f64);
/// let p = NmfParams::new(3).init(InitMethod::Random).max_iter(30).check()?;
/// let fit = distributed::factorize_part(x.as_ref(), &p, Part::single(40), &mut partlearn::engine::Silent)?;
/// let one = nmf::factorize(x.as_ref(), &p)?;
/// assert_eq!(fit.model.components(), one.model.components());
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn factorize_part<T: Real>(
    x: MatRef<'_, T>,
    params: &ValidNmfParams,
    part: Part<'_>,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    let checked = check(x, params, part);
    let v = crate::dist::agree_ok(part.comm, checked)?;
    let columns = linalg::Columns::of(x);
    let xt = columns.as_ref();
    let opts = params.params();
    let start = Instant::now();
    let (bytes, seconds) = (part.comm.bytes(), part.comm.seconds());
    let mut fit = linalg::with_threads(opts.threads, || {
        fit_columns(
            xt.into(),
            &v,
            None,
            super::checkpoint::Checkpointing::none(),
            observer,
            start,
            part,
        )
    })??;
    fit.stats.processes = part.comm.size();
    fit.stats.comm_bytes = part.comm.bytes() - bytes;
    fit.stats.comm_seconds = part.comm.seconds() - seconds;
    Ok(fit)
}

/// The local checks of [`factorize_part`].
fn check<T: Real>(
    x: MatRef<'_, T>,
    params: &ValidNmfParams,
    part: Part<'_>,
) -> Result<super::options::Resolved> {
    let opts = params.params();
    let (n, m, k) = (x.nrows(), x.ncols(), opts.k);
    if n == 0 {
        return Err(Error::invalid(
            "distributed",
            part.comm.size(),
            format!(
                "process {} holds no rows ({} rows over {} processes); run fewer processes",
                part.comm.rank(),
                part.n_total,
                part.comm.size()
            ),
        ));
    }
    crate::data::validate_nonnegative(linalg::Columns::of(x).as_ref())?;
    if opts.beta_loss != 2.0 {
        return Err(Error::invalid(
            "beta_loss",
            opts.beta_loss,
            "distributed fits use the Frobenius loss (β = 2, with MU, HALS or ANLS); fit other losses in one process",
        ));
    }
    let v = params.resolve(part.n_total, m)?;
    if v.sketch.is_some() {
        return Err(Error::invalid(
            "compress",
            "on",
            "distributed fits do not sketch the data (each process's products are already local); leave `compress` off",
        ));
    }
    match v.init {
        InitMethod::Random | InitMethod::Nndsvd | InitMethod::Nndsvda => {}
        InitMethod::Custom => {
            return Err(Error::invalid(
                "init",
                "custom",
                "distributed fits start from `init = random` or NNDSVD",
            ))
        }
        other => return Err(Error::invalid(
            "init",
            format!("{other:?}").to_lowercase(),
            "NNDSVD-ar's random fill is not drawn across processes; use `init = nndsvda` or `init = random`",
        )),
    }
    let bytes = std::mem::size_of::<T>() as f64 * (6.0 * (k * (n + m)) as f64 + 4.0 * (k * k) as f64)
        + 24.0 * (k * k) as f64;
    linalg::check_memory("k", k, bytes)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use faer::Mat;

    use super::*;
    use crate::dist::{row_block, threads};
    use crate::engine::Silent;
    use crate::nmf::{self, NmfParams, Penalty, Solver};
    use crate::rng::Rng;

    fn data(n: usize, m: usize, seed: u64) -> Mat<f64> {
        let mut r = Rng::new(seed);
        Mat::from_fn(n, m, |_, _| r.uniform())
    }

    /// Fits on `p` thread-ranks; returns the atoms of rank 0, the codes stacked in order, and
    /// rank 0's fit.
    fn distributed(x: &Mat<f64>, params: &ValidNmfParams, p: usize) -> (Mat<f64>, Mat<f64>, NmfFit<f64>) {
        let n = x.nrows();
        let mut fits: Vec<NmfFit<f64>> = threads::run(n, p, |part, rows| {
            factorize_part(
                x.as_ref().subrows(rows.start, rows.len()),
                params,
                part,
                &mut Silent,
            )
            .unwrap()
        });
        for f in &fits[1..] {
            assert_eq!(
                f.model.components(),
                fits[0].model.components(),
                "atoms replicated"
            );
            assert_eq!(f.n_iter, fits[0].n_iter);
        }
        let codes = Mat::from_fn(n, params.params().k, |i, j| {
            let r = (0..p).find(|&r| row_block(n, p, r).contains(&i)).unwrap();
            fits[r].codes()[(i - row_block(n, p, r).start, j)]
        });
        let atoms = fits[0].model.components().to_owned();
        (atoms, codes, fits.swap_remove(0))
    }

    #[test]
    fn every_solver_matches_the_one_process_fit() {
        let x = data(75, 14, 3);
        let runs = [
            (InitMethod::Random, 0.0, true),
            (InitMethod::Random, 0.05, false),
            (InitMethod::Nndsvd, 0.0, true),
            (InitMethod::Nndsvda, 0.0, false),
        ];
        for solver in [Solver::Mu, Solver::Hals, Solver::Anls] {
            for (init, alpha, extrapolate) in runs {
                let p = NmfParams::new(4)
                    .solver(solver)
                    .init(init)
                    .alpha_w(alpha)
                    .extrapolate(extrapolate)
                    .max_iter(40)
                    .seed(5)
                    .check()
                    .unwrap();
                let one = nmf::factorize(x.as_ref(), &p).unwrap();
                for ranks in [1, 2, 3] {
                    let (atoms, codes, fit) = distributed(&x, &p, ranks);
                    let what = format!("{solver:?} {init:?} alpha {alpha} P {ranks}");
                    assert_eq!(fit.n_iter, one.n_iter, "{what}");
                    let da = (&atoms - one.model.components()).norm_max();
                    let dc = (&codes - one.codes()).norm_max();
                    assert!(da < 1e-9 && dc < 1e-9, "{what}: atoms {da:e}, codes {dc:e}");
                    if ranks == 1 {
                        assert_eq!(da + dc, 0.0, "one rank: same bits");
                    }
                }
            }
        }
        let _ = Penalty::default();
    }

    #[test]
    fn nndsvda_from_the_randomized_range_finder_matches_the_one_process_fit() {
        // More features than samples (m = 100 > n = 60): the processes cannot sum the
        // samples' Gram (the one-process exact path), so the start's SVD is the range finder
        // across processes. On data of rank 4 = k (< l = 14) it is exact, so the start and the
        // fit equal the one-process ones to rounding.
        let mut r = Rng::new(11);
        let a = Mat::<f64>::from_fn(60, 4, |_, _| r.uniform());
        let b = Mat::<f64>::from_fn(4, 100, |_, _| r.uniform());
        let x = &a * &b;
        for solver in [Solver::Hals, Solver::Anls] {
            let p = NmfParams::new(4)
                .solver(solver)
                .init(InitMethod::Nndsvda)
                .max_iter(300)
                .seed(5)
                .check()
                .unwrap();
            let one = nmf::factorize(x.as_ref(), &p).unwrap();
            assert_eq!(
                one.stop_reason,
                crate::engine::StopReason::Converged,
                "{solver:?}"
            );
            assert!(one.rel_error < 0.05, "{solver:?}: {}", one.rel_error);
            for ranks in [1, 2, 3] {
                let (atoms, codes, fit) = distributed(&x, &p, ranks);
                let what = format!("{solver:?} P {ranks}");
                assert_eq!(fit.n_iter, one.n_iter, "{what}");
                assert_eq!(fit.stop_reason, one.stop_reason, "{what}");
                let da = (&atoms - one.model.components()).norm_max() / atoms.norm_max();
                let dc = (&codes - one.codes()).norm_max() / codes.norm_max();
                assert!(da < 1e-9 && dc < 1e-9, "{what}: atoms {da:e}, codes {dc:e}");
            }
        }
    }

    #[test]
    fn nndsvdar_and_other_losses_are_refused_on_every_rank() {
        let x = data(40, 6, 1);
        let p = NmfParams::new(3).init(InitMethod::Nndsvdar).check().unwrap();
        let e = factorize_part(x.as_ref(), &p, Part::single(40), &mut Silent).unwrap_err();
        assert!(e.to_string().contains("init = nndsvda"), "{e}");
        let p = NmfParams::new(3)
            .init(InitMethod::Random)
            .beta_loss(1.0)
            .solver(Solver::Mu)
            .check()
            .unwrap();
        let e = factorize_part(x.as_ref(), &p, Part::single(40), &mut Silent).unwrap_err();
        assert!(e.to_string().contains("Frobenius"), "{e}");
    }
}
