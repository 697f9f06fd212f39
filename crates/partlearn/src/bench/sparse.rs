//! NMF on sparse data against its SpMM bound (`partlearn bench nmf --data FILE.npz`).
//!
//! The bound of one Frobenius iteration is the time of its products with `X` and the Grams,
//! each timed at its exact shape in the same run (minimum of a few repetitions): `P = WᵀX` and
//! `R = HXᵀ` (SpMMs, `O(nnz·k)` each; METHODS.md §11.1), `WᵀW` and `HHᵀ` (GEMMs). HALS's
//! sweeps and MU's `(WᵀW)H`, `(HHᵀ)Wᵀ` come on top, so the ratio shows what the solver adds to
//! the products it cannot avoid.

use std::time::Instant;

use faer::Mat;
use serde::Serialize;

use super::GemmTiming;
use crate::data::Csr;
use crate::engine::Silent;
use crate::error::Result;
use crate::linalg;
use crate::nmf::{self, InitMethod, NmfParams, Solver};
use crate::real::Real;
use crate::rng::Rng;

/// Options of [`bench_nmf_sparse`].
#[derive(Clone, Debug)]
pub struct SparseBenchOptions {
    /// Rank.
    pub k: usize,
    /// Worker threads.
    pub threads: usize,
    /// Solvers to time (Frobenius).
    pub solvers: Vec<Solver>,
    /// Iterations per solver.
    pub max_iter: usize,
    /// Time budget per solver, seconds.
    pub max_seconds: f64,
    /// Start (random or NNDSVD variants).
    pub init: InitMethod,
    /// Seed.
    pub seed: u64,
    /// HALS's inner sweeps per factor (`None`: Gillis–Glineur's rule).
    pub hals_inner_max: Option<usize>,
    /// Extrapolation between iterations (the solvers' default).
    pub extrapolate: bool,
}

/// One solver on sparse data.
#[derive(Clone, Debug, Serialize)]
pub struct SparseSolverBench {
    /// `hals`, `mu` or `anls`.
    pub solver: String,
    /// Iterations run.
    pub iterations: usize,
    /// Seconds of the initialization.
    pub init_seconds: f64,
    /// Mean seconds per iteration.
    pub seconds_per_iter: f64,
    /// `seconds_per_iter / spmm_bound`.
    pub ratio: f64,
    /// Relative error after the last iteration.
    pub final_rel_error: f64,
}

/// The report of [`bench_nmf_sparse`].
#[derive(Clone, Debug, Serialize)]
pub struct SparseBenchReport {
    /// Samples, features, stored entries, density.
    pub n_samples: usize,
    /// Features.
    pub n_features: usize,
    /// Stored entries.
    pub nnz: usize,
    /// `nnz / (n·m)`.
    pub density: f64,
    /// Rank.
    pub k: usize,
    /// Threads.
    pub threads: usize,
    /// `f32` or `f64`.
    pub dtype: String,
    /// The products of one iteration (`P = WᵀX`, `R = HXᵀ` as SpMMs; `WᵀW`, `HHᵀ`); `flops`
    /// counts `2·nnz·k` for an SpMM.
    pub products: Vec<GemmTiming>,
    /// Seconds of the four products: the bound of one iteration.
    pub spmm_bound: f64,
    /// Per solver.
    pub solvers: Vec<SparseSolverBench>,
}

fn time_min(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Times the SpMM bound of one iteration, then each solver for `max_iter` iterations (or
/// `max_seconds`) on `x`, never densified.
pub fn bench_nmf_sparse<T: Real>(x: &Csr<T>, o: &SparseBenchOptions) -> Result<SparseBenchReport> {
    let (n, m, k) = (x.nrows(), x.ncols(), o.k);
    // The products as the solvers form them (`R = HXᵀ` scattered from the rows, or gathered
    // through the transpose when the scatter's partials would be too large).
    let sx = crate::nmf::data_op::SparseX::new(x)?;
    let xr = crate::nmf::data_op::XRef::Sparse(&sx);
    let par = linalg::par(o.threads);
    let mut rng = Rng::new(o.seed);
    let wt = Mat::<T>::from_fn(k, m, |_, _| T::from_f64(rng.uniform()));
    let h = Mat::<T>::from_fn(k, n, |_, _| T::from_f64(rng.uniform()));
    let (mut p, mut r) = (Mat::<T>::zeros(k, n), Mat::<T>::zeros(k, m));
    let (mut q, mut t) = (Mat::<T>::zeros(k, k), Mat::<T>::zeros(k, k));
    let spmm_flops = 2.0 * x.nnz() as f64 * k as f64;
    let products = linalg::with_threads(o.threads, || {
        vec![
            GemmTiming {
                name: "P = WᵀX".into(),
                shape: format!("{k}×{m} · sparse {m}×{n} ({} nnz)", x.nnz()),
                flops: spmm_flops,
                seconds: time_min(3, || xr.codes_cross(p.as_mut(), wt.as_ref(), par)),
            },
            GemmTiming {
                name: "R = HXᵀ".into(),
                shape: format!("{k}×{n} · sparse {n}×{m}"),
                flops: spmm_flops,
                seconds: time_min(3, || xr.atoms_cross(r.as_mut(), h.as_ref(), par)),
            },
            GemmTiming {
                name: "WᵀW".into(),
                shape: format!("{k}×{m} · {m}×{k}"),
                flops: (k * k * m) as f64,
                seconds: time_min(3, || linalg::gram(q.as_mut(), wt.as_ref(), par)),
            },
            GemmTiming {
                name: "HHᵀ".into(),
                shape: format!("{k}×{n} · {n}×{k}"),
                flops: (k * k * n) as f64,
                seconds: time_min(3, || linalg::gram(t.as_mut(), h.as_ref(), par)),
            },
        ]
    })?;
    drop(sx);
    let spmm_bound: f64 = products.iter().map(|g| g.seconds).sum();
    let mut solvers = Vec::new();
    for &solver in &o.solvers {
        let params = NmfParams {
            k,
            solver,
            init: o.init,
            max_iter: o.max_iter,
            max_seconds: Some(o.max_seconds),
            tol: 0.0,
            threads: o.threads,
            seed: o.seed,
            hals_inner_max: o.hals_inner_max,
            extrapolate: o.extrapolate,
            ..Default::default()
        }
        .check()?;
        let fit = nmf::factorize_csr(x, &params, None, &mut Silent)?;
        let h0 = fit.history.first().map_or(0.0, |r| r.seconds);
        let last = fit.history.last().map_or(0.0, |r| r.seconds);
        let iters = fit.n_iter.max(1);
        let per = (last - h0) / iters as f64;
        solvers.push(SparseSolverBench {
            solver: format!("{solver:?}").to_lowercase(),
            iterations: fit.n_iter,
            init_seconds: h0,
            seconds_per_iter: per,
            ratio: per / spmm_bound,
            final_rel_error: fit.rel_error,
        });
    }
    Ok(SparseBenchReport {
        n_samples: n,
        n_features: m,
        nnz: x.nnz(),
        density: x.density(),
        k,
        threads: o.threads,
        dtype: T::NAME.into(),
        products,
        spmm_bound,
        solvers,
    })
}
