//! `partlearn bench nnls`: one exact ANLS codes update (CD prediction + block principal
//! pivoting), timed by parts (METHODS.md §1.3).

use std::time::Instant;

use faer::{Accum, Mat};
use serde::Serialize;

use super::time_min;
use crate::data::Dataset;
use crate::engine::Silent;
use crate::error::Result;
use crate::linalg;
use crate::nmf::{self, NmfParams, Solver};
use crate::real::Real;

/// Settings of [`bench_nnls`].
#[derive(Clone, Debug)]
pub struct NnlsBenchOptions {
    /// Rank of the factorization.
    pub k: usize,
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// ANLS iterations run first (from NNDSVDa), so that the timed step starts where a real one
    /// does.
    pub warmup_iters: usize,
    /// Coordinate-descent sweeps that predict the passive sets (0 = BPP warm-started from the
    /// previous codes alone); with several values, each repetition times them all in turn, so
    /// that a change of the machine's speed hits them alike.
    pub sweeps: Vec<usize>,
    /// Precisions of the passive-set systems to time, each with every number of sweeps, in
    /// turn within every repetition (empty: the default, [`linalg::nnls::Systems::Data`]).
    pub systems: Vec<linalg::nnls::Systems>,
    /// Repetitions of the timed step (the minimum is reported).
    pub reps: usize,
    /// Seed of the initialization.
    pub seed: u64,
}

/// One codes update of [`bench_nnls`] with a given number of prediction sweeps.
#[derive(Clone, Debug, Serialize)]
pub struct NnlsStepTiming {
    /// Coordinate-descent sweeps of the passive-set prediction (0 = none).
    pub sweeps: usize,
    /// Precision of the passive-set systems.
    pub systems: linalg::nnls::Systems,
    /// Seconds of the passive-set prediction (the CD sweeps).
    pub cd_seconds: f64,
    /// Seconds of the exact block-principal-pivoting solve.
    pub bpp_seconds: f64,
    /// Seconds of the whole step (the minimum over repetitions of prediction + solve).
    pub step_seconds: f64,
    /// Passive-set systems factored per column.
    pub solves_per_column: f64,
    /// Bordered updates (exchange rounds solved without refactoring) per column.
    pub updates_per_column: f64,
    /// Pivoting rounds of the slowest column.
    pub rounds: usize,
    /// Mean number of positive codes per sample after the step (|F| of the solution).
    pub mean_passive: f64,
    /// Columns finished in `f64` after their `f32` systems stalled ([`linalg::nnls::Systems`]).
    pub widened: usize,
    /// Columns that reached the round cap and were finished by the active-set method
    /// (rank-deficient `G`, [`linalg::nnls::NnlsStats::capped`]).
    pub capped: usize,
    /// Columns whose ridged solution missed its system, finished by the active-set method
    /// ([`linalg::nnls::NnlsStats::inexact`]).
    pub inexact: usize,
}

/// What [`bench_nnls`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct NnlsBenchReport {
    /// The data set's name.
    pub data: String,
    /// Samples of the data.
    pub n_samples: usize,
    /// Features of the data.
    pub n_features: usize,
    /// Rank of the factorization.
    pub k: usize,
    /// Worker threads used (resolved: never 0).
    pub threads: usize,
    /// ANLS iterations run before the timed step.
    pub warmup_iters: usize,
    /// One entry per number of prediction sweeps, in the order asked.
    pub steps: Vec<NnlsStepTiming>,
    /// Seconds of the products the step needs (`WᵀX` and `WᵀW`), for scale.
    pub gemm_seconds: f64,
}

/// One exact ANLS codes update at the shape of `data`, timed by parts (METHODS.md §1.3): after
/// `warmup_iters` ANLS iterations and one exact atoms update, the codes of the previous
/// iteration are the warm start; the CD prediction and the BPP solve are timed separately.
pub fn bench_nnls<T: Real>(data: &Dataset<T>, o: &NnlsBenchOptions) -> Result<NnlsBenchReport> {
    use crate::linalg::nnls;
    if o.reps == 0 {
        return Err(crate::Error::invalid("reps", 0, "time at least one repetition"));
    }
    if o.sweeps.is_empty() {
        return Err(crate::Error::invalid(
            "sweeps",
            "none",
            "give at least one number of prediction sweeps",
        ));
    }
    let opts = NmfParams {
        k: o.k,
        solver: Solver::Anls,
        max_iter: o.warmup_iters.max(1),
        tol: 0.0,
        seed: o.seed,
        threads: o.threads,
        ..Default::default()
    };
    let fit = nmf::fit(data, &opts, None, &mut Silent)?;
    let x = data.xt();
    let par = linalg::par(o.threads);
    let mut wt = fit.model.components().to_owned();
    let h0 = fit.codes().transpose().to_owned();
    let (k, n) = (h0.nrows(), h0.ncols());
    linalg::with_threads(o.threads, || -> Result<NnlsBenchReport> {
        // One exact atoms update, so that the timed codes step starts from the previous codes.
        let mut t = Mat::<T>::zeros(k, k);
        linalg::gram(t.as_mut(), h0.as_ref(), par);
        let mut r = Mat::<T>::zeros(k, x.nrows());
        linalg::matmul(
            r.as_mut(),
            Accum::Replace,
            h0.as_ref(),
            x.transpose(),
            T::one(),
            par,
        );
        nnls::solve_gram(
            t.as_ref(),
            r.as_ref(),
            wt.as_mut(),
            true,
            &Default::default(),
            par,
        )?;
        let (mut g, mut c) = (Mat::<T>::zeros(k, k), Mat::<T>::zeros(k, n));
        let gemm_seconds = time_min(o.reps.max(1), || {
            linalg::gram(g.as_mut(), wt.as_ref(), par);
            linalg::matmul(c.as_mut(), Accum::Replace, wt.as_ref(), x, T::one(), par);
        });
        let systems = if o.systems.is_empty() {
            vec![linalg::nnls::Systems::Data]
        } else {
            o.systems.clone()
        };
        let mut steps: Vec<NnlsStepTiming> = o
            .sweeps
            .iter()
            .flat_map(|&sweeps| systems.iter().map(move |&systems| (sweeps, systems)))
            .map(|(sweeps, systems)| NnlsStepTiming {
                sweeps,
                systems,
                cd_seconds: f64::INFINITY,
                bpp_seconds: f64::INFINITY,
                step_seconds: f64::INFINITY,
                solves_per_column: 0.0,
                updates_per_column: 0.0,
                rounds: 0,
                mean_passive: 0.0,
                widened: 0,
                capped: 0,
                inexact: 0,
            })
            .collect();
        let nf = n.max(1) as f64;
        for _ in 0..o.reps.max(1) {
            for st in steps.iter_mut() {
                let mut h = h0.clone();
                let t0 = Instant::now();
                if st.sweeps > 0 {
                    nmf::frobenius::anls_predict(
                        None,
                        h.as_mut(),
                        g.as_ref(),
                        c.as_ref(),
                        st.sweeps,
                        !matches!(par, faer::Par::Seq),
                    );
                }
                let t1 = Instant::now();
                let nopts = nnls::NnlsOptions {
                    systems: st.systems,
                    ..Default::default()
                };
                let stats = nnls::solve_gram(g.as_ref(), c.as_ref(), h.as_mut(), true, &nopts, par)?;
                let t2 = Instant::now();
                st.cd_seconds = st.cd_seconds.min((t1 - t0).as_secs_f64());
                st.bpp_seconds = st.bpp_seconds.min((t2 - t1).as_secs_f64());
                st.step_seconds = st.step_seconds.min((t2 - t0).as_secs_f64());
                st.solves_per_column = stats.factorizations as f64 / nf;
                st.updates_per_column = stats.updates as f64 / nf;
                st.rounds = stats.rounds;
                st.widened = stats.widened;
                st.capped = stats.capped;
                st.inexact = stats.inexact;
                let positive: usize = h
                    .col_iter()
                    .map(|col| col.iter().filter(|v| **v > T::zero()).count())
                    .sum();
                st.mean_passive = positive as f64 / nf;
            }
        }
        Ok(NnlsBenchReport {
            data: data.name.clone(),
            n_samples: data.n_samples(),
            n_features: data.n_features(),
            k,
            threads: linalg::resolve_threads(o.threads),
            warmup_iters: o.warmup_iters.max(1),
            steps,
            gemm_seconds,
        })
    })?
}
