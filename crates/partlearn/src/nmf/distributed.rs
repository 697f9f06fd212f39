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
//! On a 2-D [`crate::dist::Grid`] (MPI-FAUN's processor grid, for data with many features too)
//! each process holds the block of its samples × its features, the codes of its samples and the
//! atoms' entries of its features; the codes' terms are summed over the processes holding the
//! other samples of its features, the atoms' terms (`Q`, `P`, `⟨W, R⟩`) over those holding the
//! other features of its samples ([`Part::sum_samples`], [`Part::sum_features`];
//! docs/distributed.md).
//!
//! With the same seed and a random start, the result equals the one-process fit of the whole
//! matrix up to rounding (the sums' order differs), when the blocks are those of
//! [`crate::dist::row_block`] ([`Part::on_grid`]).

use std::path::Path;
use std::time::Instant;

use super::checkpoint::{Checkpointing, NmfCheckpoint, NmfInput};
use super::data_op::{SparseX, XRef};
use super::{fit_columns, InitMethod, NmfFit, ValidNmfParams};
use crate::dist::Part;
use crate::engine::Observer;
use crate::error::{Error, Result};
use crate::linalg;
use crate::real::Real;

/// Fits an NMF of the whole data, of which this process holds the rows `x` (`n_local ×
/// n_features`, dense or CSR, the rows `part.offset..part.offset + n_local` of
/// `part.n_total`; on a 2-D grid only the features `part.feature_offset..` of
/// [`Part::blocks`]); every process of `part.comm` calls it with the same parameters. Returns
/// the fit with the atoms (the whole atoms, the same on every process), the history and
/// objective of the whole data, and this process's codes (`n_local × k`).
///
/// Frobenius loss only (MU, HALS, ANLS); random start (equal to the one-process start with the
/// same seed) or NNDSVD / NNDSVD-a (from the summed `m × m` Gram of the features when
/// `n_features ≤ min(n_samples, 2048)`, else from a randomized range finder across processes:
/// [`crate::nmf::init`]'s `svd_part`); no compression, no missing entries. An error on one
/// process (invalid data, memory) is reported by every process before any iteration.
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
pub fn factorize_part<'a, T: Real>(
    x: impl Into<NmfInput<'a, T>>,
    params: &ValidNmfParams,
    part: Part<'_>,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    run(x.into(), params, Checkpointing::none(), part, observer)
}

/// [`factorize_part`] saving checkpoints of the whole fit at `save` whenever the observer of
/// any process says one is due (the decision is agreed with the stopping decision, so every
/// process takes part at the same iteration) and when the fit ends interrupted or out of time.
/// Rank 0 gathers the codes blocks and writes the file: the same checkpoint a one-process fit
/// writes ([`super::checkpoint`]); `save` is used on rank 0 only.
pub fn factorize_part_checkpointed<'a, T: Real>(
    x: impl Into<NmfInput<'a, T>>,
    params: &ValidNmfParams,
    part: Part<'_>,
    save: &Path,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    let ck = Checkpointing {
        save: Some(save),
        from: None,
    };
    run(x.into(), params, ck, part, observer)
}

/// Continues the fit of checkpoint `from` (of a distributed or a one-process fit of the same
/// data) on this process's rows; each process reads its own codes from `from`. With the same
/// number of processes as the interrupted fit the result has the bits of the uninterrupted
/// one; with another number it agrees to rounding.
pub fn resume_part<'a, T: Real>(
    x: impl Into<NmfInput<'a, T>>,
    from: &NmfCheckpoint<T>,
    part: Part<'_>,
    save: Option<&Path>,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    let (ck, params) = Checkpointing::resuming(from, save)?;
    run(x.into(), &params, ck, part, observer)
}

fn run<T: Real>(
    x: NmfInput<'_, T>,
    params: &ValidNmfParams,
    ck: Checkpointing<'_, T>,
    part: Part<'_>,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    let checked = check(x, params, part);
    let mut v = crate::dist::agree_ok(part.comm, checked)?;
    // HALS's inner sweeps count the entries the processes' kernels read, all together: the
    // whole matrix's `n · m` when every block is dense, as in one process.
    let mut entries = [match x {
        NmfInput::Sparse(s) => s.nnz() as f64,
        other => {
            let (n, m) = other.shape();
            (n * m) as f64
        }
    }];
    part.comm.sum(&mut entries);
    let m_total = if part.splits_features() {
        part.m_total
    } else {
        x.shape().1
    };
    v.count_stored_entries(part.n_total, m_total, entries[0]);
    let opts = params.params();
    let start = Instant::now();
    let (bytes, seconds) = (part.comm.bytes(), part.comm.seconds());
    let fit = |xr: XRef<'_, T>, observer: &mut (dyn Observer + Send)| {
        linalg::with_threads(opts.threads, || {
            fit_columns(xr, &v, None, ck, observer, start, part)
        })?
    };
    let mut fit = match x {
        NmfInput::Sparse(s) => {
            let sx = crate::dist::agree_ok(part.comm, SparseX::new(s))?;
            fit(XRef::Sparse(&sx), observer)
        }
        NmfInput::Dense(d) | NmfInput::Masked(d, _) => {
            let columns = linalg::Columns::of(d);
            fit(columns.as_ref().into(), observer)
        }
    }?;
    fit.stats.processes = part.comm.size();
    fit.stats.grid = Some(part.grid);
    fit.stats.comm_bytes = part.comm.bytes() - bytes;
    fit.stats.comm_seconds = part.comm.seconds() - seconds;
    Ok(fit)
}

/// The local checks of [`factorize_part`].
fn check<T: Real>(
    x: NmfInput<'_, T>,
    params: &ValidNmfParams,
    part: Part<'_>,
) -> Result<super::options::Resolved> {
    let opts = params.params();
    let ((n, m), k) = (x.shape(), opts.k);
    if part.splits_features() && m != part.blocks().1.len() {
        return Err(Error::invalid(
            "grid",
            format!("{}x{}", part.grid.rows, part.grid.cols),
            format!(
                "process {} holds {m} features where its block of the grid has {}; give each process its block of features",
                part.comm.rank(),
                part.blocks().1.len()
            ),
        ));
    }
    let m = if part.splits_features() { part.m_total } else { m };
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
    match x {
        NmfInput::Dense(d) => crate::data::validate_nonnegative(linalg::Columns::of(d).as_ref())?,
        NmfInput::Sparse(s) => s.validate_nonnegative()?,
        NmfInput::Masked(..) => {
            return Err(Error::invalid(
                "mask",
                "given",
                "distributed fits take every entry as observed; fit data with missing entries in one process",
            ))
        }
    }
    if opts.beta_loss != 2.0 {
        return Err(Error::invalid(
            "beta_loss",
            opts.beta_loss,
            "distributed fits use the Frobenius loss (β = 2, with MU, HALS or ANLS); fit other losses in one process",
        ));
    }
    let mut v = params.resolve(part.n_total, m)?;
    if v.sketch.is_some() {
        return Err(Error::invalid(
            "compress",
            "on",
            "distributed fits do not sketch the data (each process's products are already local); leave `compress` off",
        ));
    }
    if v.subsample.is_some() {
        opts.compress_samples.refuse_count(
            "distributed fits do not warm up on a subset (each process holds its own samples); use `compress_samples = off`",
        )?;
        // `compress = auto` plans one where the sketch does not pay: each process would warm
        // up on its own block and the processes' atoms would differ.
        v.subsample = None;
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
#[path = "distributed_grid_tests.rs"]
mod grid_tests;

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

    /// Fits on `p` thread-ranks; returns the atoms of rank 0 and the codes stacked in order.
    fn distributed(x: &Mat<f64>, params: &ValidNmfParams, p: usize) -> (Mat<f64>, Mat<f64>, NmfFit<f64>) {
        let fits = threads::run(x.nrows(), p, |part, b| {
            factorize_part(x.as_ref().subrows(b.start, b.len()), params, part, &mut Silent).unwrap()
        });
        stacked(fits, x.nrows(), p)
    }

    /// The atoms of rank 0 (checked equal on every rank), the codes stacked in order, rank 0's
    /// fit.
    fn stacked(mut fits: Vec<NmfFit<f64>>, n: usize, p: usize) -> (Mat<f64>, Mat<f64>, NmfFit<f64>) {
        for f in &fits[1..] {
            assert_eq!(
                f.model.components(),
                fits[0].model.components(),
                "atoms replicated"
            );
            assert_eq!(f.n_iter, fits[0].n_iter);
        }
        let codes = Mat::from_fn(n, fits[0].codes().ncols(), |i, j| {
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

    /// Stops the fit after iteration `stop_at` (when given) and asks for a checkpoint after
    /// iteration `due_at` (when given): one rank's observer, as a front end's would.
    pub(super) struct At {
        stop_at: Option<usize>,
        due_at: Option<usize>,
        last: usize,
    }

    impl crate::engine::Observer for At {
        fn on_iter(&mut self, rec: &crate::engine::IterRecord) -> crate::engine::Control {
            self.last = rec.iter;
            if self.stop_at == Some(rec.iter) {
                crate::engine::Control::Stop
            } else {
                crate::engine::Control::Continue
            }
        }
        fn checkpoint_due(&mut self) -> bool {
            self.due_at == Some(self.last)
        }
    }

    pub(super) fn at(stop_at: Option<usize>, due_at: Option<usize>) -> At {
        At {
            stop_at,
            due_at,
            last: 0,
        }
    }

    #[test]
    fn sparse_blocks_give_the_dense_blocks_fit() {
        let x = Mat::from_fn(70, 12, |i, j| {
            if (i * 7 + j * 3) % 4 == 0 {
                0.0
            } else {
                data(70, 12, 4)[(i, j)]
            }
        });
        for solver in [Solver::Mu, Solver::Hals, Solver::Anls] {
            // (HALS's default inner sweeps count the stored entries: pinned to compare forms.)
            let p = NmfParams::new(3)
                .solver(solver)
                .init(InitMethod::Random)
                .max_iter(25)
                .seed(2)
                .hals_inner_max(Some(4))
                .check()
                .unwrap();
            let (atoms, codes, fit) = distributed(&x, &p, 2);
            let fits = threads::run(70, 2, |part, b| {
                let csr = crate::data::Csr::from_dense(x.as_ref().subrows(b.start, b.len())).unwrap();
                factorize_part(&csr, &p, part, &mut Silent).unwrap()
            });
            let (sa, sc, sfit) = stacked(fits, 70, 2);
            assert_eq!(sfit.n_iter, fit.n_iter, "{solver:?}");
            let (da, dc) = ((&sa - &atoms).norm_max(), (&sc - &codes).norm_max());
            assert!(da < 1e-9 && dc < 1e-9, "{solver:?}: atoms {da:e}, codes {dc:e}");
        }
    }

    #[test]
    fn a_checkpoint_resumed_on_as_many_ranks_gives_the_uninterrupted_bits() {
        let x = data(90, 10, 8);
        let dir = std::env::temp_dir().join(format!("partlearn-dist-ck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.safetensors");
        for solver in [Solver::Hals, Solver::Anls, Solver::Mu] {
            let p = NmfParams::new(4)
                .solver(solver)
                .init(InitMethod::Random)
                .max_iter(30)
                .tol(0.0)
                .seed(3)
                .check()
                .unwrap();
            let whole = distributed(&x, &p, 2);
            // Rank 1 alone is interrupted after iteration 12: every rank stops there and rank 0
            // writes the whole fit's checkpoint.
            let stopped = threads::run(90, 2, |part, b| {
                let mut obs = at((part.comm.rank() == 1).then_some(12), None);
                factorize_part_checkpointed(x.as_ref().subrows(b.start, b.len()), &p, part, &path, &mut obs)
                    .unwrap()
            });
            assert!(stopped.iter().all(|f| f.n_iter == 12), "{solver:?}");
            let ck = NmfCheckpoint::<f64>::load(&path).unwrap();
            assert_eq!((ck.done(), ck.shape()), (12, (90, 10)));
            let resumed = threads::run(90, 2, |part, b| {
                resume_part(x.as_ref().subrows(b.start, b.len()), &ck, part, None, &mut Silent).unwrap()
            });
            let (ra, rc, rfit) = stacked(resumed, 90, 2);
            assert_eq!(rfit.n_iter, whole.2.n_iter, "{solver:?}");
            assert_eq!(
                (&ra - &whole.0).norm_max() + (&rc - &whole.1).norm_max(),
                0.0,
                "{solver:?}: same bits"
            );
            // On 3 ranks, and in one process, the same fit to rounding.
            let three = threads::run(90, 3, |part, b| {
                resume_part(x.as_ref().subrows(b.start, b.len()), &ck, part, None, &mut Silent).unwrap()
            });
            let (ta, _, _) = stacked(three, 90, 3);
            let one = nmf::checkpoint::resume(x.as_ref().into(), &ck, None, &mut Silent).unwrap();
            for (a, what) in [
                (&ta, "3 ranks"),
                (&one.model.components().to_owned(), "one process"),
            ] {
                let d = (a - &whole.0).norm_max();
                assert!(d < 1e-9, "{solver:?} {what}: {d:e}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_rank_asking_for_a_checkpoint_makes_every_rank_save_the_one_process_checkpoint() {
        let x = data(64, 9, 5);
        let dir = std::env::temp_dir().join(format!("partlearn-dist-due-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (dist, single) = (dir.join("dist.safetensors"), dir.join("one.safetensors"));
        let p = NmfParams::new(3)
            .init(InitMethod::Random)
            .max_iter(15)
            .tol(0.0)
            .seed(9)
            .check()
            .unwrap();
        let fits = threads::run(64, 3, |part, b| {
            let mut obs = at(None, (part.comm.rank() == 2).then_some(7));
            factorize_part_checkpointed(x.as_ref().subrows(b.start, b.len()), &p, part, &dist, &mut obs)
                .unwrap()
        });
        assert!(fits.iter().all(|f| f.n_iter == 15));
        let mut obs = at(None, Some(7));
        nmf::checkpoint::factorize_checkpointed(x.as_ref().into(), &p, None, &single, &mut obs).unwrap();
        let (a, b) = (
            NmfCheckpoint::<f64>::load(&dist).unwrap(),
            NmfCheckpoint::<f64>::load(&single).unwrap(),
        );
        assert_eq!((a.done(), b.done()), (7, 7));
        assert_eq!(a.history().len(), b.history().len());
        let (dw, dh) = ((&a.wt - &b.wt).norm_max(), (&a.h - &b.h).norm_max());
        assert!(dw < 1e-9 && dh < 1e-9, "atoms {dw:e}, codes {dh:e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compress_auto_with_many_samples_runs_the_plain_distributed_fit() {
        // 12 features, k = 4: the sketch does not pay, 1,800 samples would warm up in one
        // process; every rank must run the plain fit instead.
        let x = data(1800, 12, 4);
        let auto = crate::nmf::Compress::Auto {
            oversample: 5,
            power_iters: 1,
        };
        let p = NmfParams::new(4).init(InitMethod::Random).max_iter(8).seed(2);
        let plain = p.clone().check().unwrap();
        let (atoms, codes, fit) = distributed(&x, &p.compress(auto).check().unwrap(), 2);
        let (atoms0, codes0, _) = distributed(&x, &plain, 2);
        assert_eq!(fit.stats.warm_samples, 0);
        assert_eq!((&atoms - &atoms0).norm_max() + (&codes - &codes0).norm_max(), 0.0);
    }

    #[test]
    fn missing_entries_are_refused() {
        let x = data(40, 6, 1);
        let p = NmfParams::new(3).init(InitMethod::Random).check().unwrap();
        let e = factorize_part(
            NmfInput::Masked(x.as_ref(), None),
            &p,
            Part::single(40),
            &mut Silent,
        )
        .unwrap_err();
        assert!(e.to_string().contains("missing entries in one process"), "{e}");
    }
}
