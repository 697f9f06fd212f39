//! Benchmarks of the solvers against the GEMM bound (reported by `partlearn bench`): NMF here,
//! the auto-encoder epoch in [`bench_ae`], the exact NNLS codes update in [`bench_nnls`].
//!
//! The GEMM-bound time of one iteration is the time of the matrix products the iteration
//! performs, each measured at its exact shape in the same run (minimum of a few repetitions):
//! HALS does `P = WᵀX`, `R = HXᵀ`, `WᵀW`, `HHᵀ`; Frobenius MU additionally `(WᵀW)H` and `(HHᵀ)Wᵀ`.
//! HALS's coordinate sweeps are not GEMMs but do a GEMM's work: one sweep over a column costs the
//! `2k²` flops of one column of `(WᵀW)H`, the product MU's bound counts once per factor. The
//! "flop bound" adds the sweeps done, each at the measured time of one column of `(WᵀW)H`; it is
//! the bound comparable to MU's. Both views are reported.
//!
//! With compression ([`NmfBenchOptions::compress`]) each solver also runs compressed, side by side:
//! its compressed iterations form both cross terms from the sketch, `(WᵀU)·B` for `WᵀX` and
//! `(HBᵀ)·Uᵀ` for `HXᵀ`, and one exact `HXᵀ` every `TOL_EVERY` iterations for the exact
//! objective, so their bound has those products (timed at their shapes; the exact one counted
//! for a tenth); the polish iterations have the plain bound. The sketch's time is part of the
//! initialization (`init_seconds`) and of every time to a target.

use std::time::Instant;

use faer::{Accum, Mat, MatRef};
use serde::Serialize;

use crate::data::Dataset;
use crate::error::Result;
use crate::linalg;
use crate::nmf::{self, Compress, CompressSamples, InitMethod, NmfParams, Solver};
use crate::real::Real;
use crate::rng::Rng;

mod ae;
mod nnls;
mod sparse;

pub use ae::{bench_ae, AeBenchOptions, AeBenchReport};
pub use nnls::{bench_nnls, NnlsBenchOptions, NnlsBenchReport, NnlsStepTiming};
pub use sparse::{bench_nmf_sparse, SparseBenchOptions, SparseBenchReport, SparseSolverBench};

/// One measured product.
#[derive(Clone, Debug, Serialize)]
pub struct GemmTiming {
    /// The product (e.g. `P = WᵀX`).
    pub name: String,
    /// Its shape, `rows×inner · inner×cols`.
    pub shape: String,
    /// Floating-point operations (`2·rows·inner·cols`).
    pub flops: f64,
    /// Seconds (the minimum of the repetitions).
    pub seconds: f64,
}

impl GemmTiming {
    /// Achieved speed in Gflop/s.
    pub fn gflops(&self) -> f64 {
        self.flops / self.seconds / 1e9
    }
}

/// Time for the fit to first reach a relative error.
#[derive(Clone, Debug, Serialize)]
pub struct TimeToTarget {
    /// The target relative error `‖X − WH‖_F / ‖X‖_F`.
    pub rel_error: f64,
    /// Seconds since the fit started (initialization included); `None` if never reached.
    pub seconds: Option<f64>,
    /// The first iteration at or below the target; `None` if never reached.
    pub iteration: Option<usize>,
}

/// One solver's result.
#[derive(Clone, Debug, Serialize)]
pub struct SolverBench {
    /// The solver (`hals`, `mu`, `anls`).
    pub solver: String,
    /// Iterations run.
    pub iterations: usize,
    /// Seconds of the initialization.
    pub init_seconds: f64,
    /// Mean seconds of one iteration (initialization excluded).
    pub seconds_per_iter: f64,
    /// Time of the GEMMs of one iteration.
    pub gemm_bound: f64,
    /// `seconds_per_iter / gemm_bound`.
    pub ratio: f64,
    /// The four products every iteration performs (`WᵀX`, `HXᵀ`, `WᵀW`, `HHᵀ`), measured before
    /// the solvers ran, and again right after this solver's run: when the two differ much, the
    /// machine's speed changed during the run (other tenants) and the ratios are not reliable.
    /// Seconds of the four products, before the solvers ran.
    pub base_bound: f64,
    /// Seconds of the four products, after this solver's run.
    pub base_bound_after: f64,
    /// With [`NmfBenchOptions::paired`]: the GEMM bound timed between the iterations (once
    /// after the initialization and after every iteration, each iteration paired with the mean
    /// of the two around it), so that a change of the machine's speed during the run hits the
    /// iterations and their bound alike.
    pub paired_gemm_bound: Option<f64>,
    /// `seconds_per_iter / paired_gemm_bound`.
    pub paired_ratio: Option<f64>,
    /// The paired ratio over the first and over the last [`PAIRED_SPAN`] iterations (each the
    /// iterations' seconds over their bounds; with fewer than `2·PAIRED_SPAN` iterations the two
    /// halves): the early iterations, where the codes move, against the settled ones. The first
    /// iterations' ratio.
    pub paired_ratio_first: Option<f64>,
    /// The last iterations' ratio.
    pub paired_ratio_last: Option<f64>,
    /// GEMM bound plus the sweeps, each column sweep at the measured time of one column of
    /// `(WᵀW)H` (HALS; equal to the GEMM bound for the other solvers).
    pub flop_bound: f64,
    /// `seconds_per_iter / flop_bound`.
    pub flop_ratio: f64,
    /// Mean column sweeps per column per iteration (HALS; both factors).
    pub sweeps_per_iter: f64,
    /// Relative error after the last iteration.
    pub final_rel_error: f64,
    /// When each target relative error of [`NmfBenchOptions::targets`] was first reached.
    pub targets: Vec<TimeToTarget>,
    /// Compressed runs: columns `l` of the sketch (0 for a plain run).
    pub sketch_rank: usize,
    /// Compressed runs: seconds of the sketch (inside `init_seconds`).
    pub sketch_seconds: f64,
    /// Compressed runs: the basis is the exact leading subspace from the NNDSVD start's
    /// eigendecomposition (its time is then in `sketch_seconds`), not the range finder's.
    pub sketch_exact: bool,
    /// Compressed runs: iterations on the sketch and exact polish iterations after them.
    pub compressed_iters: usize,
    /// Compressed runs: exact iterations after the compressed ones.
    pub polish_iters: usize,
    /// Compressed runs with a warm start on a subset ([`crate::nmf::compress::samples`]): its
    /// samples (0 for none), iterations and seconds (inside `init_seconds`); `iterations` are
    /// then all exact.
    pub warm_samples: usize,
    /// See `warm_samples`.
    pub warm_iters: usize,
    /// See `warm_samples`.
    pub warm_seconds: f64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct NmfBenchReport {
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
    /// Float type (`f32` or `f64`).
    pub dtype: &'static str,
    /// The products of one iteration at their shapes, timed before the solvers ran.
    pub gemms: Vec<GemmTiming>,
    /// One result per solver, in the order asked.
    pub solvers: Vec<SolverBench>,
}

/// Settings of [`bench_nmf`].
#[derive(Clone, Debug)]
pub struct NmfBenchOptions {
    /// Rank of the factorization.
    pub k: usize,
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// The solvers to time, in turn.
    pub solvers: Vec<Solver>,
    /// Iterations of each solver (≥ 1; no tolerance).
    pub max_iter: usize,
    /// Time budget of each solver in seconds.
    pub max_seconds: f64,
    /// Relative errors whose time to reach is reported (each > 0).
    pub targets: Vec<f64>,
    /// Seed of the initialization.
    pub seed: u64,
    /// HALS inner repetitions (`None` = the default rule).
    pub hals_inner_max: Option<usize>,
    /// Initialization of every solver (default NNDSVDa).
    pub init: InitMethod,
    /// Extrapolation between iterations (the fit's default: on).
    pub extrapolate: bool,
    /// Also time the iteration's products between the iterations ([`SolverBench::paired_ratio`]).
    pub paired: bool,
    /// Also run each solver compressed (`On` or `Auto`; [`crate::nmf::compress`]), after its
    /// plain run; `Off` runs only the plain solvers.
    pub compress: Compress,
    /// Exact iterations after the compressed ones (within `max_iter`).
    pub polish: usize,
    /// The warm start of compressed runs on a subset of the samples.
    pub compress_samples: CompressSamples,
}

/// Iterations in each of [`SolverBench::paired_ratio_first`] and `paired_ratio_last`.
pub const PAIRED_SPAN: usize = 10;

/// `(first, last)` ratios from `(seconds at record i, bound timed after record i)` for records
/// `0..=n` (record 0 is the initialization; iteration `i` runs from record `i − 1` to `i` and
/// is paired with the mean of the bounds around it). `None` below two iterations.
fn paired_spans(paired: &[(f64, f64)]) -> Option<(f64, f64)> {
    let iters: Vec<(f64, f64)> = paired
        .windows(2)
        .map(|w| (w[1].0 - w[0].0, 0.5 * (w[0].1 + w[1].1)))
        .collect();
    if iters.len() < 2 {
        return None;
    }
    let span = PAIRED_SPAN.min(iters.len() / 2);
    let ratio =
        |part: &[(f64, f64)]| part.iter().map(|p| p.0).sum::<f64>() / part.iter().map(|p| p.1).sum::<f64>();
    Some((ratio(&iters[..span]), ratio(&iters[iters.len() - span..])))
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

/// [`time_min`] of `f(a)` with `a` and then `reps` copies of it, each at its own address (the
/// copies made before the runs, not timed). For the `k × k · k × n` and `k × l · l × n`
/// products: the GEMM kernel reads the small factor in place, its address relative to the
/// streamed `k × n` operands decides the cache-set conflicts, and one unlucky allocation
/// measured 11× slower (Fashion-MNIST, k = 100: 72 ms against 6.3–6.9 ms for the same values at
/// two other addresses); a bound is the best case.
fn time_min_moved<T: Real>(reps: usize, a: &Mat<T>, mut f: impl FnMut(MatRef<'_, T>)) -> f64 {
    let copies: Vec<Mat<T>> = (0..reps).map(|_| a.to_owned()).collect();
    std::iter::once(a)
        .chain(&copies)
        .map(|c| time_min(1, || f(c.as_ref())))
        .fold(f64::INFINITY, f64::min)
}

/// The products of one NMF iteration at the shapes of a dataset, on random factors, with their
/// workspaces (allocated once, so that they can be timed again and again).
struct Products<'a, T: Real> {
    x: MatRef<'a, T>,
    par: faer::Par,
    wt: Mat<T>,
    h: Mat<T>,
    p: Mat<T>,
    r: Mat<T>,
    q: Mat<T>,
    t: Mat<T>,
    qh: Mat<T>,
    tw: Mat<T>,
    /// With compression: `U` (`m × l`), `B` (`l × n`), `WᵀU` and `HBᵀ` (`k × l`), random.
    sketch: Option<(Mat<T>, Mat<T>, Mat<T>, Mat<T>)>,
}

impl<'a, T: Real> Products<'a, T> {
    fn new(data: &'a Dataset<T>, k: usize, threads: usize, l: Option<usize>) -> Self {
        let x = data.xt();
        let (m, n) = (x.nrows(), x.ncols());
        let mut rng = Rng::new(1);
        let wt = Mat::<T>::from_fn(k, m, |_, _| T::from_f64(rng.uniform()));
        let h = Mat::<T>::from_fn(k, n, |_, _| T::from_f64(rng.uniform()));
        Products {
            x,
            par: linalg::par(threads),
            wt,
            h,
            p: Mat::zeros(k, n),
            r: Mat::zeros(k, m),
            q: Mat::zeros(k, k),
            t: Mat::zeros(k, k),
            qh: Mat::zeros(k, n),
            tw: Mat::zeros(k, m),
            sketch: l.map(|l| {
                (
                    Mat::<T>::from_fn(m, l, |_, _| T::from_f64(rng.uniform())),
                    Mat::<T>::from_fn(l, n, |_, _| T::from_f64(rng.uniform())),
                    Mat::<T>::zeros(k, l),
                    Mat::<T>::zeros(k, l),
                )
            }),
        }
    }

    /// Each product's time, the minimum of `reps` runs (in the current thread pool).
    fn time(&mut self, reps: usize) -> Vec<GemmTiming> {
        let (x, par) = (self.x, self.par);
        let (k, m, n) = (self.wt.nrows(), x.nrows(), x.ncols());
        let (kf, mf, nf) = (k as f64, m as f64, n as f64);
        let Products {
            wt,
            h,
            p,
            r,
            q,
            t,
            qh,
            tw,
            sketch,
            ..
        } = self;
        let mut out = vec![
            GemmTiming {
                name: "P = WᵀX".into(),
                shape: format!("{k}×{m} · {m}×{n}"),
                flops: 2.0 * kf * mf * nf,
                seconds: time_min(reps, || {
                    linalg::matmul(p.as_mut(), Accum::Replace, wt.as_ref(), x, T::one(), par)
                }),
            },
            GemmTiming {
                name: "R = HXᵀ".into(),
                shape: format!("{k}×{n} · {n}×{m}"),
                flops: 2.0 * kf * mf * nf,
                seconds: time_min(reps, || {
                    linalg::matmul(
                        r.as_mut(),
                        Accum::Replace,
                        h.as_ref(),
                        x.transpose(),
                        T::one(),
                        par,
                    )
                }),
            },
            GemmTiming {
                name: "WᵀW".into(),
                shape: format!("{k}×{m} · {m}×{k}"),
                flops: kf * kf * mf,
                seconds: time_min(reps, || linalg::gram(q.as_mut(), wt.as_ref(), par)),
            },
            GemmTiming {
                name: "HHᵀ".into(),
                shape: format!("{k}×{n} · {n}×{k}"),
                flops: kf * kf * nf,
                seconds: time_min(reps, || linalg::gram(t.as_mut(), h.as_ref(), par)),
            },
            GemmTiming {
                name: "(WᵀW)H".into(),
                shape: format!("{k}×{k} · {k}×{n}"),
                flops: 2.0 * kf * kf * nf,
                seconds: time_min_moved(reps, q, |q| {
                    linalg::matmul(qh.as_mut(), Accum::Replace, q, h.as_ref(), T::one(), par)
                }),
            },
            GemmTiming {
                name: "(HHᵀ)Wᵀ".into(),
                shape: format!("{k}×{k} · {k}×{m}"),
                flops: 2.0 * kf * kf * mf,
                seconds: time_min(reps, || {
                    linalg::matmul(
                        tw.as_mut(),
                        Accum::Replace,
                        t.as_ref(),
                        wt.as_ref(),
                        T::one(),
                        par,
                    )
                }),
            },
        ];
        if let Some((u, b, wu, hb)) = sketch.as_mut() {
            let l = u.ncols();
            let lf = l as f64;
            out.push(GemmTiming {
                name: "WᵀU".into(),
                shape: format!("{k}×{m} · {m}×{l}"),
                flops: 2.0 * kf * mf * lf,
                seconds: time_min(reps, || {
                    linalg::matmul(
                        wu.as_mut(),
                        Accum::Replace,
                        wt.as_ref(),
                        u.as_ref(),
                        T::one(),
                        par,
                    )
                }),
            });
            out.push(GemmTiming {
                name: "(WᵀU)B".into(),
                shape: format!("{k}×{l} · {l}×{n}"),
                flops: 2.0 * kf * lf * nf,
                seconds: time_min_moved(reps, wu, |wu| {
                    linalg::matmul(p.as_mut(), Accum::Replace, wu, b.as_ref(), T::one(), par)
                }),
            });
            out.push(GemmTiming {
                name: "HBᵀ".into(),
                shape: format!("{k}×{n} · {n}×{l}"),
                flops: 2.0 * kf * lf * nf,
                seconds: time_min(reps, || {
                    linalg::matmul(
                        hb.as_mut(),
                        Accum::Replace,
                        h.as_ref(),
                        b.transpose(),
                        T::one(),
                        par,
                    )
                }),
            });
            out.push(GemmTiming {
                name: "(HBᵀ)Uᵀ".into(),
                shape: format!("{k}×{l} · {l}×{m}"),
                flops: 2.0 * kf * lf * mf,
                seconds: time_min(reps, || {
                    linalg::matmul(
                        r.as_mut(),
                        Accum::Replace,
                        hb.as_ref(),
                        u.transpose(),
                        T::one(),
                        par,
                    )
                }),
            });
        }
        out
    }
}

/// Measures the products of one NMF iteration at the shapes of `data` (each the minimum of 3
/// runs).
pub(crate) fn gemm_timings<T: Real>(
    data: &Dataset<T>,
    k: usize,
    threads: usize,
    l: Option<usize>,
) -> Result<Vec<GemmTiming>> {
    let mut products = Products::new(data, k, threads, l);
    linalg::with_threads(threads, || products.time(3))
}

/// The GEMM bound of one iteration of `solver` from product timings: the four products every
/// iteration performs, plus MU's two extra ones. (HALS's sweeps are added by the caller.)
/// With `compressed`, `WᵀX` is replaced by `WᵀU` and `(WᵀU)B`, `HXᵀ` by `HBᵀ` and `(HBᵀ)Uᵀ`,
/// plus a [`TOL_EVERY`](crate::engine::TOL_EVERY)-th of `HXᵀ` for the exact evaluations.
fn gemm_bound_of(solver: Solver, g: &[GemmTiming], compressed: bool) -> f64 {
    let sec = |name: &str| g.iter().find(|t| t.name == name).map_or(0.0, |t| t.seconds);
    let cross = if compressed {
        sec("WᵀU")
            + sec("(WᵀU)B")
            + sec("HBᵀ")
            + sec("(HBᵀ)Uᵀ")
            + sec("R = HXᵀ") / crate::engine::TOL_EVERY as f64
    } else {
        sec("P = WᵀX") + sec("R = HXᵀ")
    };
    let base = cross + sec("WᵀW") + sec("HHᵀ");
    match solver {
        Solver::Mu => base + sec("(WᵀW)H") + sec("(HHᵀ)Wᵀ"),
        Solver::Hals | Solver::Anls => base,
    }
}

/// Runs each solver from the given initialization (NNDSVDa by default) with `tol = 0` and compares its iterations with the GEMM bound.
pub fn bench_nmf<T: Real>(data: &Dataset<T>, o: &NmfBenchOptions) -> Result<NmfBenchReport> {
    if o.max_iter == 0 {
        return Err(crate::Error::invalid(
            "max_iter",
            0,
            "time at least one iteration",
        ));
    }
    if let Some(&t) = o.targets.iter().find(|&&t| !(t > 0.0 && t.is_finite())) {
        return Err(crate::Error::invalid(
            "targets",
            t,
            "give relative errors > 0, e.g. 0.25,0.22",
        ));
    }
    // The sketch's columns when the compressed runs will compress (Auto may fall back).
    let probe = NmfParams {
        k: o.k,
        max_iter: o.max_iter,
        compress: o.compress,
        polish: o.polish,
        compress_samples: o.compress_samples,
        ..Default::default()
    };
    let planned = probe.check()?.resolve(data.n_samples(), data.n_features())?;
    let l = planned.sketch.map(|(l, _)| l);
    // With a warm start on a subset, every recorded iteration is exact.
    let warm = planned.subsample.is_some();
    let gemms = gemm_timings(data, o.k, o.threads, l)?;
    let sec = |name: &str| gemms.iter().find(|g| g.name == name).map_or(0.0, |g| g.seconds);
    // Seconds of one column of (WᵀW)H: 2k² flops, the work of one column sweep.
    let sweep_seconds = sec("(WᵀW)H") / data.n_samples().max(1) as f64;
    let (m, n) = (data.n_features() as f64, data.n_samples() as f64);
    let mut solvers = Vec::new();
    let runs: Vec<(Solver, Compress)> = o
        .solvers
        .iter()
        .flat_map(|&s| {
            let mut v = vec![(s, Compress::Off)];
            if o.compress != Compress::Off {
                v.push((s, o.compress));
            }
            v
        })
        .collect();
    for &(solver, compress) in &runs {
        let compressing = compress != Compress::Off && l.is_some() && !warm;
        let last_compressed = o.max_iter.saturating_sub(o.polish);
        let opts = NmfParams {
            k: o.k,
            solver,
            init: o.init,
            hals_inner_max: o.hals_inner_max,
            extrapolate: o.extrapolate,
            max_iter: o.max_iter,
            tol: 0.0,
            max_seconds: Some(o.max_seconds),
            seed: o.seed,
            threads: o.threads,
            compress,
            polish: o.polish,
            compress_samples: o.compress_samples,
            ..Default::default()
        };
        // Paired: the iteration's products timed once after every iteration (outside the
        // fit's clock: each callback's duration is taken off the iterations that follow).
        let mut products = o
            .paired
            .then(|| Products::new(data, o.k, o.threads, l.filter(|_| compressing)));
        let (mut paired, mut overhead) = (Vec::new(), 0.0f64);
        let mut observe = |rec: &crate::engine::IterRecord| {
            if let Some(pr) = products.as_mut() {
                let t = Instant::now();
                let on_sketch = compressing && rec.iter < last_compressed;
                let bound = gemm_bound_of(solver, &pr.time(1), on_sketch);
                // (Seconds of the fit up to this record, this callback's products excluded.)
                paired.push((rec.seconds - overhead, bound));
                overhead += t.elapsed().as_secs_f64();
            }
            crate::engine::Control::Continue
        };
        let fit = nmf::fit(data, &opts, None, &mut observe)?;
        let after = gemm_timings(data, o.k, o.threads, None)?;
        let base_bound_after = gemm_bound_of(Solver::Anls, &after, false);
        let base = gemm_bound_of(Solver::Anls, &gemms, false);
        // A compressed run's bound: its compressed and polish iterations, each at its own bound.
        let (nc, np) = (fit.stats.compressed_iters as f64, fit.stats.polish_iters as f64);
        let mix = |plain: f64, sketched: f64| {
            if nc + np > 0.0 {
                (nc * sketched + np * plain) / (nc + np)
            } else {
                plain
            }
        };
        let iters = fit.n_iter.max(1);
        // The fit's clock without the paired measurements (they ran between iterations).
        let mut h = fit.history.clone();
        if o.paired {
            for (rec, &(sec, _)) in h.iter_mut().zip(&paired) {
                rec.seconds = sec;
            }
        }
        let init_seconds = h[0].seconds;
        let seconds_per_iter = (h[h.len() - 1].seconds - init_seconds) / iters as f64;
        // Each iteration is paired with the mean of the measurements just before and after it
        // (the first one follows the initialization).
        let paired_bound = (paired.len() > 1).then(|| {
            paired.windows(2).map(|w| 0.5 * (w[0].1 + w[1].1)).sum::<f64>() / (paired.len() - 1) as f64
        });
        let spans = paired_spans(&paired);
        let bound = mix(
            gemm_bound_of(solver, &gemms, false),
            gemm_bound_of(solver, &gemms, true),
        );
        let (gemm_bound, flop_bound, sweeps_per_iter) = match solver {
            Solver::Hals => {
                let sweeps = fit.stats.column_sweeps as f64 / iters as f64;
                (bound, bound + sweeps * sweep_seconds, sweeps / (m + n))
            }
            // ANLS: the four GEMMs; the NNLS solves are the overhead the ratio shows. MU: with
            // its two extra products.
            Solver::Anls | Solver::Mu => (bound, bound, 0.0),
        };
        let targets = o
            .targets
            .iter()
            .map(|&t| {
                let hit = h.iter().find(|r| r.rel_error <= t);
                TimeToTarget {
                    rel_error: t,
                    seconds: hit.map(|r| r.seconds),
                    iteration: hit.map(|r| r.iter),
                }
            })
            .collect();
        let name = format!("{solver:?}").to_lowercase();
        solvers.push(SolverBench {
            solver: if compress == Compress::Off {
                name
            } else {
                format!("{name}+c")
            },
            iterations: fit.n_iter,
            init_seconds,
            seconds_per_iter,
            gemm_bound,
            ratio: seconds_per_iter / gemm_bound,
            base_bound: base,
            base_bound_after,
            paired_gemm_bound: paired_bound,
            paired_ratio: paired_bound.map(|b| seconds_per_iter / b),
            paired_ratio_first: spans.map(|s| s.0),
            paired_ratio_last: spans.map(|s| s.1),
            flop_bound,
            flop_ratio: seconds_per_iter / flop_bound,
            sweeps_per_iter,
            final_rel_error: h[h.len() - 1].rel_error,
            targets,
            sketch_rank: fit.stats.sketch_rank,
            sketch_seconds: fit.stats.sketch_seconds,
            sketch_exact: fit.stats.sketch_exact,
            compressed_iters: fit.stats.compressed_iters as usize,
            polish_iters: fit.stats.polish_iters as usize,
            warm_samples: fit.stats.warm_samples,
            warm_iters: fit.stats.warm_iters as usize,
            warm_seconds: fit.stats.warm_seconds,
        });
    }
    Ok(NmfBenchReport {
        data: data.name.clone(),
        n_samples: data.n_samples(),
        n_features: data.n_features(),
        k: o.k,
        threads: linalg::resolve_threads(o.threads),
        dtype: T::NAME,
        gemms,
        solvers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_spans_split_the_early_and_late_iterations() {
        // Records at 0, 2, 4, 10, 11 s with every bound 1 s: iterations of 2, 2, 6 and 1 s.
        let p = [(0.0, 1.0), (2.0, 1.0), (4.0, 1.0), (10.0, 1.0), (11.0, 1.0)];
        assert_eq!(paired_spans(&p), Some((2.0, 3.5)));
        // Each iteration is paired with the mean of the bounds around it.
        let p = [(0.0, 1.0), (3.0, 3.0), (6.0, 1.0)];
        assert_eq!(paired_spans(&p), Some((1.5, 1.5)));
        // At most PAIRED_SPAN iterations on each side: 30 iterations, the first 10 of 1 s,
        // the middle 10 of 5 s, the last 10 of 2 s.
        let mut t = 0.0;
        let mut p = vec![(t, 1.0)];
        for i in 0..30 {
            t += [1.0, 5.0, 2.0][i / 10];
            p.push((t, 1.0));
        }
        assert_eq!(paired_spans(&p), Some((1.0, 2.0)));
        assert_eq!(paired_spans(&p[..2]), None);
    }
}
