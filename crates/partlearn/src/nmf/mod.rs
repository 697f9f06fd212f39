//! Non-negative matrix factorization (METHODS.md §1): `X ≈ codes · atoms` with both factors ≥ 0.
//!
//! Flow: [`NmfParams`] are checked into [`ValidNmfParams`] and resolved for the data's shape;
//! [`init`] builds the starting factors (random, NNDSVD/a/ar, custom); one solver —
//! `frobenius::GramSolver` (HALS, Frobenius MU or ANLS) or `beta::BetaMu` (MU for any β) — runs
//! inside the shared fit loop (`fit_loop`, on the [engine](crate::engine)) — with
//! [`Compress`], first on a randomized sketch of `X` and then for `polish` exact iterations
//! ([`compress`]) — which reports every
//! iteration to an [`Observer`] and applies the stopping rules; finally the codes are recomputed
//! for the final atoms with the model's own `encode`, so that [`NmfFit::codes`] equals what
//! [`NmfModel::encode`] gives for the training data.
//!
//! Internally samples are columns (METHODS.md's `X ≈ WH`, `X` is `m × n`); atoms are kept as the
//! rows of `Wᵀ` (`k × m`) so that both factor updates have the same "`k × N` factor, `k × k`
//! Gram, `k × N` cross term" shape and share one kernel (`cd`). The solvers (`frobenius`, `beta`,
//! `cd`, `fit_loop`) are internal; [`frobenius`] is public only for its documented constants.

pub(crate) mod beta;
pub(crate) mod cd;
pub mod checkpoint;
pub mod compress;
pub(crate) mod data_op;
pub mod distributed;
pub(crate) mod fit_loop;
pub mod frobenius;
pub mod init;
pub mod masked;
pub mod model;
pub mod online;
pub mod options;
pub mod sparse;
pub(crate) mod sparse_kl;
pub mod ssnmf;

use std::time::Instant;

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

pub use checkpoint::{factorize_checkpointed, resume, NmfCheckpoint, NmfInput};
pub use compress::samples::CompressSamples;
pub use compress::Compress;
pub use init::CustomInit;
pub use masked::{factorize_masked, factorize_masked_with, Mask};
pub use model::{EncodeSpec, NmfModel};
pub use options::{EncodeMethod, EncodeOptions, InitMethod, NmfParams, Penalty, Solver, ValidNmfParams};

use crate::data::{Csr, Dataset};
use crate::dist::Part;
use crate::engine::{Clock, IterRecord, Observer, Resume, Silent, StopReason, Warning};
use crate::error::Result;
use crate::linalg;
use crate::real::Real;
use crate::rng::Rng;
use checkpoint::{Checkpointing, DataPrint, Phase, Saver};
use data_op::{SparseX, XRef};

/// The result of [`fit`]: the model, the training codes and what happened.
#[derive(Clone, Debug)]
pub struct NmfFit<T: Real> {
    /// The fitted dictionary and its encode settings (what `transform` uses).
    pub model: NmfModel<T>,
    /// Codes of the training samples, `k × n` (use [`NmfFit::codes`] for `n × k`).
    codes_t: Mat<T>,
    /// Iteration 0 (the initialization) and every iteration after.
    pub history: Vec<IterRecord>,
    /// Iterations run (scikit-learn's `n_iter_`).
    pub n_iter: usize,
    /// Why the fit stopped.
    pub stop_reason: StopReason,
    /// Warnings for the user (e.g. max_iter reached before convergence).
    pub warnings: Vec<Warning>,
    /// The penalized objective at the returned factors.
    pub objective: f64,
    /// `‖X − codes·atoms‖_F` at the returned factors (scikit-learn's `reconstruction_err_` for
    /// the Frobenius loss).
    pub reconstruction_err: f64,
    /// `reconstruction_err / ‖X‖_F`.
    pub rel_error: f64,
    /// Wall-clock seconds of the whole fit.
    pub seconds: f64,
    /// Work counters (for benchmarks).
    pub stats: FitStats,
}

/// Work counters of a fit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FitStats {
    /// HALS: column sweeps done in the iterations (each costs `2k²` flops).
    pub column_sweeps: u64,
    /// Extrapolated points kept (Frobenius solvers with `extrapolate`).
    pub extrapolations_accepted: u64,
    /// Extrapolated points discarded (the objective did not fall; the iteration restarted with
    /// a plain update).
    pub extrapolations_rejected: u64,
    /// ANLS: exchange rounds of the slowest column, summed over all NNLS solves.
    #[serde(default)]
    pub nnls_rounds: u64,
    /// ANLS: dead atoms re-seeded with a sample (METHODS.md §1.8).
    #[serde(default)]
    pub atoms_reseeded: u64,
    /// ANLS and HALS: atoms rescaled between `W` and `H` after their scales drifted apart
    /// (METHODS.md §1.8, scale ambiguity).
    #[serde(default)]
    pub atoms_rebalanced: u64,
    /// Compression ([`compress`]): columns `l` of the sketch (0 when the iterations ran on `X`,
    /// e.g. `Compress::Auto` found that compression does not pay).
    #[serde(default)]
    pub sketch_rank: usize,
    /// Compression: power iterations of the range finder (0 with an exact basis).
    #[serde(default)]
    pub power_iters: usize,
    /// Compression: the sketch's basis is the leading `l` left singular vectors of `X`, from
    /// the NNDSVD start's eigendecomposition ([`compress::Sketch::from_svd`]), not the
    /// randomized range finder. `sketch_seconds` then counts that whole decomposition.
    #[serde(default)]
    pub sketch_exact: bool,
    /// Compression: seconds spent building the sketch (inside the initialization's time).
    #[serde(default)]
    pub sketch_seconds: f64,
    /// Compression: iterations run on the sketch.
    #[serde(default)]
    pub compressed_iters: u64,
    /// Compression: exact iterations run after them (the polish).
    #[serde(default)]
    pub polish_iters: u64,
    /// Compression: the compressed iterations stopped on the tolerance (the fit then counts as
    /// converged after its polish).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compressed_converged: bool,
    /// Compression: samples of the warm start ([`compress::samples`]; 0 for none).
    #[serde(default)]
    pub warm_samples: usize,
    /// Compression: iterations of the warm start on its samples (not counted in `n_iter`).
    #[serde(default)]
    pub warm_iters: u64,
    /// Compression: seconds of the warm start (its sketch, iterations and the codes of all
    /// samples; inside the initialization's time).
    #[serde(default)]
    pub warm_seconds: f64,
    /// Online NMF ([`online`]): mini-batch steps run (scikit-learn's `n_steps_`).
    #[serde(default)]
    pub batches: u64,
    /// Online NMF: rows processed by the training steps (passes × n, a partial pass counted).
    #[serde(default)]
    pub rows_seen: u64,
    /// Online NMF: training throughput, `rows_seen` per second of the fit.
    #[serde(default)]
    pub rows_per_second: f64,
    /// Distributed fits ([`distributed`]): the number of processes (0 for a one-process fit).
    #[serde(default)]
    pub processes: usize,
    /// Distributed fits: payload bytes this process sent and received in the fit's sums
    /// (initialization, iterations and final evaluation; [`crate::dist::Comm::bytes`]).
    #[serde(default)]
    pub comm_bytes: u64,
    /// Distributed fits: seconds this process spent in those sums, waiting for the slowest
    /// process included.
    #[serde(default)]
    pub comm_seconds: f64,
    /// Distributed fits: the processor grid (blocks of samples × blocks of features).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<crate::dist::Grid>,
}

impl<T: Real> NmfFit<T> {
    /// Codes of the training samples, `n × k`.
    pub fn codes(&self) -> MatRef<'_, T> {
        self.codes_t.transpose()
    }

    /// The fit with `codes` (`n × k`) as its training codes: the codes of every process of a
    /// [`distributed`] fit, gathered by the front end.
    pub fn with_codes(mut self, codes: MatRef<'_, T>) -> Result<Self> {
        if codes.ncols() != self.model.k() {
            return Err(crate::Error::ShapeMismatch {
                what: "codes".into(),
                expected: format!("n × {} (n_samples × k)", self.model.k()),
                found: format!("{} × {}", codes.nrows(), codes.ncols()),
                hint: "give one row of codes per sample".into(),
            });
        }
        self.codes_t = codes.transpose().to_owned();
        Ok(self)
    }
}

/// Fits an NMF of `x` (`n_samples × n_features`, samples as rows, entries ≥ 0).
///
/// ```
/// use partlearn::faer::Mat;
/// use partlearn::nmf::{self, NmfParams, Solver};
///
/// let x = Mat::<f64>::from_fn(30, 20, |i, j| ((i * j) % 7) as f64);
/// let params = NmfParams::new(4).solver(Solver::Hals).max_iter(100).check()?;
/// let fit = nmf::factorize(x.as_ref(), &params)?;
/// assert_eq!((fit.codes().nrows(), fit.model.components().nrows()), (30, 4));
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn factorize<T: Real>(x: MatRef<'_, T>, params: &ValidNmfParams) -> Result<NmfFit<T>> {
    factorize_with(x, params, None, &mut Silent)
}

/// [`factorize`] with a custom start (required with `InitMethod::Custom`, ignored otherwise)
/// and an observer that sees every iteration and may stop the fit (the factors so far are kept
/// and returned).
pub fn factorize_with<T: Real>(
    x: MatRef<'_, T>,
    params: &ValidNmfParams,
    custom: Option<&CustomInit<T>>,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    let ck = Checkpointing::none();
    factorize_impl(x, params, custom, ck, observer)
}

/// [`factorize_with`] with checkpoints ([`checkpoint`]).
pub(crate) fn factorize_impl<T: Real>(
    x: MatRef<'_, T>,
    params: &ValidNmfParams,
    custom: Option<&CustomInit<T>>,
    ck: Checkpointing<'_, T>,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    let columns = linalg::Columns::of(x);
    let xt = columns.as_ref();
    crate::data::validate_nonnegative(xt)?;
    let opts = params.params();
    let v = params.resolve(x.nrows(), x.ncols())?;
    let (n, m, k) = (x.nrows(), x.ncols(), opts.k);
    // The factors and their k × n / k × m workspaces (codes, P, H⁺, gradients; atoms, R, …)
    // and the k × k Grams with the NNLS copies in f64.
    let bytes = std::mem::size_of::<T>() as f64 * (6.0 * (k * (n + m)) as f64 + 4.0 * (k * k) as f64)
        + 24.0 * (k * k) as f64;
    linalg::check_memory("k", k, bytes)?;
    if let Some((l, _)) = v.sketch {
        // The test matrix (n × l), then B (l × n), U (m × l) and WᵀU.
        let sketch_bytes = std::mem::size_of::<T>() as f64 * (2.0 * (n * l) as f64 + ((m + k) * l) as f64);
        linalg::check_memory("oversample", l - k, bytes + sketch_bytes)?;
    }
    if opts.beta_loss <= 0.0 {
        model::check_positive(xt)?;
    }
    let start = Instant::now();
    linalg::with_threads(opts.threads, || {
        fit_columns(xt.into(), &v, custom, ck, observer, start, Part::single(n))
    })?
}

/// [`factorize_with`] on a [`Dataset`] with unchecked parameters (checked here).
pub fn fit<T: Real>(
    data: &Dataset<T>,
    opts: &NmfParams,
    custom: Option<&CustomInit<T>>,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    data.validate_nonnegative()?;
    factorize_with(data.xt().transpose(), &opts.check()?, custom, observer)
}

/// [`factorize_with`] on sparse data (`n_samples × n_features` CSR), never densified
/// (METHODS.md §11.1): HALS, MU and ANLS for the Frobenius loss through SpMM kernels
/// (`O(nnz·k)` per product), MU for KL (β = 1) with `WH` formed only at the non-zeros. Same
/// factors as the dense fit of the same matrix up to rounding, given the same `hals_inner_max`
/// (by default HALS's sweeps count the stored entries here, every entry of dense data). Not
/// available on sparse data: Itakura–Saito (β ≤ 0: undefined at the zeros), other β ∉ {1, 2}
/// (they need `WH` at every entry) and `compress` (the SpMMs already cost `O(nnz·k)`).
///
/// ```
/// use partlearn::data::Csr;
/// use partlearn::nmf::{self, NmfParams};
///
/// let x = Csr::<f64>::from_triplets(4, 3, &[(0, 0, 1.0), (1, 1, 2.0), (2, 2, 1.0), (3, 0, 3.0)])?;
/// let fit = nmf::factorize_csr(&x, &NmfParams::new(2).max_iter(50).check()?, None, &mut partlearn::engine::Silent)?;
/// assert_eq!(fit.codes().nrows(), 4);
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn factorize_csr<T: Real>(
    x: &Csr<T>,
    params: &ValidNmfParams,
    custom: Option<&CustomInit<T>>,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    let ck = Checkpointing::none();
    factorize_csr_impl(x, params, custom, ck, observer)
}

/// [`factorize_csr`] with checkpoints ([`checkpoint`]).
pub(crate) fn factorize_csr_impl<T: Real>(
    x: &Csr<T>,
    params: &ValidNmfParams,
    custom: Option<&CustomInit<T>>,
    ck: Checkpointing<'_, T>,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    x.validate_nonnegative()?;
    let opts = params.params();
    check_sparse_beta(opts.beta_loss)?;
    let mut v = params.resolve(x.nrows(), x.ncols())?;
    v.count_stored_entries(x.nrows(), x.ncols(), x.nnz() as f64);
    // Sparse data: `auto` sketches only where the dense sketched products beat the SpMMs.
    if let (Some((l, _)), Compress::Auto { .. }) = (v.sketch, opts.compress) {
        if !compress::pays_sparse(l, x.ncols(), x.nrows(), x.nnz()) {
            v.sketch = None;
        }
    }
    if v.subsample.is_some() {
        opts.compress_samples.refuse_count(
            "the warm start on a subset of the samples is for dense data (on sparse data the SpMMs already cost O(nnz·k)); use `compress_samples = off`",
        )?;
        v.subsample = None;
    }
    if v.sketch.is_some() && opts.beta_loss != 2.0 {
        return Err(crate::Error::invalid(
            "compress",
            "on",
            "sparse data is sketched for the Frobenius loss only; leave `compress` off with `beta_loss = 1`",
        ));
    }
    let (n, m, k) = (x.nrows(), x.ncols(), opts.k);
    let bytes = std::mem::size_of::<T>() as f64 * (6.0 * (k * (n + m)) as f64 + 4.0 * (k * k) as f64)
        + 24.0 * (k * k) as f64
        + if opts.beta_loss == 1.0 {
            2.0 * (std::mem::size_of::<T>() * x.nnz()) as f64
        } else {
            0.0
        }
        // The transpose `SparseX::cols`, for the fits that read it.
        + if opts.beta_loss == 1.0
            || !data_op::scatter_fits::<T>(k, m)
            || !matches!(opts.init, InitMethod::Random | InitMethod::Custom)
        {
            (crate::data::csr::bytes_per_entry(std::mem::size_of::<T>()) * x.nnz()) as f64
                + 8.0 * (m + 1) as f64
        } else {
            0.0
        };
    linalg::check_memory("k", k, bytes)?;
    let sx = SparseX::new(x)?;
    let start = Instant::now();
    linalg::with_threads(opts.threads, || {
        fit_columns(
            XRef::Sparse(&sx),
            &v,
            custom,
            ck,
            observer,
            start,
            Part::single(n),
        )
    })?
}

/// The losses available on sparse data ([`factorize_csr`]).
pub(crate) fn check_sparse_beta(beta: f64) -> Result<()> {
    if beta == 2.0 || beta == 1.0 {
        return Ok(());
    }
    let reason = if beta <= 0.0 {
        "Itakura–Saito divides by the data and is undefined at the zeros of sparse data; use `beta_loss = 1` (KL) or `beta_loss = 2`, or dense data with all entries > 0"
    } else {
        "on sparse data use `beta_loss = 2` (Frobenius) or `beta_loss = 1` (KL): other β need WH at every entry; densify the data for them"
    };
    Err(crate::Error::invalid("beta_loss", beta, reason))
}

fn fit_columns<T: Real>(
    x: XRef<'_, T>,
    v: &options::Resolved,
    custom: Option<&CustomInit<T>>,
    ck: Checkpointing<'_, T>,
    observer: &mut (dyn Observer + Send),
    start: Instant,
    part: Part<'_>,
) -> Result<NmfFit<T>> {
    let o = &v.opts;
    let par = linalg::par(o.threads);
    let mut rng = Rng::new(o.seed);
    let x_sq = part.sum1_all(x.frob_sq());
    let print = DataPrint {
        n_samples: part.n_total,
        n_features: if part.splits_features() {
            part.m_total
        } else {
            x.nrows()
        },
        x_sq,
        observed: None,
    };
    if let Some(from) = ck.from {
        from.check_data(&print, "the data")?;
    }
    // A resumed fit redoes the start only where the sketch (drawn after it) is still needed.
    let redo_start = ck.from.is_none_or(|f| f.meta.phase == Phase::Compressed);
    // Compression with an NNDSVD start on data whose smaller side is small: the start's
    // eigendecomposition gives the sketch's exact basis too ([`compress::Sketch::from_svd`]).
    let t = Instant::now();
    // Compression on many samples: the compressed iterations run on a subset, and give the
    // start of exact iterations on all samples ([`compress::samples`]).
    let warm = match (v.subsample, x.dense()) {
        (Some(s), Some(xd)) if redo_start => Some(compress::samples::warm_start(
            xd,
            v,
            s,
            &mut rng,
            par,
            Clock::since(start),
            observer,
        )?),
        _ => None,
    };
    let sketch_all = v.sketch.filter(|_| v.subsample.is_none());
    let exact_basis = match (v.sketch, x.dense()) {
        (Some((l, _)), Some(xd))
            if redo_start
                && warm.is_none()
                && matches!(
                    v.init,
                    InitMethod::Nndsvd | InitMethod::Nndsvda | InitMethod::Nndsvdar
                )
                && linalg::svd_is_exact(xd.nrows(), xd.ncols()) =>
        {
            Some(linalg::truncated_svd(xd, l, &mut rng, par)?)
        }
        _ => None,
    };
    let svd_seconds = t.elapsed().as_secs_f64();
    let mut stats_warm = None;
    let mut factors = if let Some(w) = warm {
        stats_warm = Some((w.iters, t.elapsed().as_secs_f64()));
        w.factors
    } else if redo_start {
        init::initialize_part(x, v, custom, exact_basis.as_ref(), &mut rng, par, part)?
    } else {
        init::Factors {
            wt: Mat::zeros(0, 0),
            h: Mat::zeros(0, 0),
        }
    };
    if let Some(from) = ck.from {
        // The whole fit's codes: this process's samples are its columns (and its features the
        // atoms' columns).
        factors = init::Factors {
            wt: from.wt.subcols(part.feature_offset, x.nrows()).to_owned(),
            h: from.h.subcols(part.offset, x.ncols()).to_owned(),
        };
    }
    let x_norm = x_sq.sqrt();
    let mut warnings = Vec::new();
    if o.solver == Solver::Mu && v.init == InitMethod::Nndsvd {
        warnings.push(Warning::MuKeepsNndsvdZeros);
    }
    let mut stats = ck.from.map_or_else(FitStats::default, |f| f.meta.stats);
    if let (Some((iters, seconds)), Some(samples)) = (stats_warm, v.subsample) {
        (stats.warm_samples, stats.warm_iters, stats.warm_seconds) = (samples, iters as u64, seconds);
        stats.sketch_rank = v.sketch.map_or(0, |(l, _)| l);
    }
    let mut saver = ck
        .save
        .map(|path| Saver::new(path, o, T::NAME, print, ck.from, part));
    if let Some(sv) = saver.as_mut() {
        sv.meta.stats = stats;
    }
    let resume = ck.from.map(Saver::resume_of).unwrap_or_default();
    let clock = Clock::since(start).with_offset(ck.from.map_or(0.0, |f| f.meta.seconds));
    let outcome = if o.beta_loss == 2.0 {
        let mut s = gram_solver(x, v, par, part);
        if let Some(from) = ck.from {
            fit_loop::Iterate::set_state(&mut s, &from.meta.solver)?;
        }
        let out = match sketch_all {
            Some((l, q)) => {
                if redo_start {
                    let t = Instant::now();
                    let sketch = match &exact_basis {
                        Some(svd) => compress::Sketch::from_svd(svd),
                        None => {
                            stats.power_iters = q;
                            compress::sketch_ref(x, l, q, &mut rng, par)
                        }
                    };
                    stats.sketch_seconds = t.elapsed().as_secs_f64();
                    if exact_basis.is_some() {
                        stats.sketch_seconds += svd_seconds;
                        stats.sketch_exact = true;
                    }
                    stats.sketch_rank = sketch.u.ncols();
                    s = s.with_sketch(sketch);
                }
                let phase = ck.from.map_or(Phase::Compressed, |f| f.meta.phase);
                let run = Continuation {
                    resume,
                    clock,
                    phase,
                    saver: saver.as_mut(),
                };
                compressed_then_polish(&mut s, &mut factors, v, x_norm, run, observer, &mut stats)?
            }
            None => fit_loop::run_resumable(
                &mut s,
                &mut factors,
                &v.stop,
                resume,
                x_norm,
                clock,
                saver.as_mut(),
                observer,
            )?,
        };
        stats.column_sweeps = s.column_sweeps;
        stats.nnls_rounds = s.nnls_rounds;
        stats.atoms_reseeded = s.reseeded;
        stats.atoms_rebalanced = s.rebalanced;
        if let Some(ex) = s.extrapolation {
            stats.extrapolations_accepted = ex.accepted;
            stats.extrapolations_rejected = ex.rejected;
        }
        out
    } else {
        let mut s = beta_solver(x, o.k, o.beta_loss, v.codes_penalty, v.atoms_penalty, par);
        fit_loop::run_resumable(
            s.as_mut(),
            &mut factors,
            &v.stop,
            resume,
            x_norm,
            clock,
            saver.as_mut(),
            observer,
        )?
    };
    warnings.extend(outcome.warnings);
    let history = checkpoint::joined_history(ck.from, outcome.history);
    let spec = EncodeSpec {
        beta_loss: o.beta_loss,
        codes_penalty: v.codes_penalty,
        encode: o.encode,
    };
    let init::Factors { wt, h } = factors;
    // Final codes: the model's own encode, warm-started (fit and transform agree). On a 2-D
    // grid the cross term is summed over the processes holding the other features, and every
    // process gets the whole atoms.
    let (model, codes_t) = if part.splits_features() {
        let mut p = Mat::<T>::zeros(o.k, x.ncols());
        x.codes_cross(p.as_mut(), wt.as_ref(), par);
        part.sum_mat_features(&mut p);
        let model = NmfModel::new(part.gather_features(&wt), spec)?;
        let codes_t = model.encode_cross(p, Some(h), par);
        (model, codes_t)
    } else {
        let model = NmfModel::new(wt, spec)?;
        let codes_t = model.encode_columns(x, Some(h), par);
        (model, codes_t)
    };
    let (objective, sq_error) = evaluate(x, &model, codes_t.as_ref(), v, par, part);
    Ok(NmfFit {
        model,
        codes_t,
        history,
        n_iter: outcome.n_iter,
        stop_reason: outcome.stop_reason,
        warnings,
        objective,
        reconstruction_err: sq_error.sqrt(),
        rel_error: if x_norm > 0.0 {
            sq_error.sqrt() / x_norm
        } else {
            0.0
        },
        seconds: clock.total(),
        stats,
    })
}

/// The Frobenius solver of `v` on `x` (HALS, MU or ANLS; extrapolated when asked).
pub(crate) fn gram_solver<'a, T: Real>(
    x: XRef<'a, T>,
    v: &options::Resolved,
    par: faer::Par,
    part: Part<'a>,
) -> frobenius::GramSolver<'a, T> {
    let o = &v.opts;
    let rule = match o.solver {
        Solver::Hals => frobenius::Rule::Hals {
            inner_codes: v.inner_max_codes,
            inner_atoms: v.inner_max_atoms,
            delta: o.hals_inner_delta,
        },
        Solver::Mu => frobenius::Rule::Mu,
        Solver::Anls => frobenius::Rule::Anls,
    };
    let s = frobenius::GramSolver::new(x, o.k, rule, v.codes_penalty, v.atoms_penalty, par).with_part(part);
    if o.extrapolate {
        s.with_extrapolation()
    } else {
        s
    }
}

/// Where a compressed fit starts: fresh, or from a checkpoint taken in either phase.
struct Continuation<'a, 'b> {
    resume: Resume,
    clock: Clock,
    phase: Phase,
    saver: Option<&'a mut Saver<'b>>,
}

/// The compressed iterations (at most `max_iter − polish`, with every other stopping rule), then,
/// unless the fit was interrupted or out of time, `polish` exact iterations continuing the same
/// history through the shared fit loop. The fit stops as "converged" when the compressed phase
/// did (the polish then runs its fixed count), else for the polish's reason. A fit resumed in
/// the polish goes straight to it.
fn compressed_then_polish<T: Real>(
    s: &mut frobenius::GramSolver<'_, T>,
    factors: &mut init::Factors<T>,
    v: &options::Resolved,
    x_norm: f64,
    run: Continuation<'_, '_>,
    observer: &mut (dyn Observer + Send),
    stats: &mut FitStats,
) -> Result<crate::engine::Outcome> {
    let Continuation {
        resume,
        clock,
        phase,
        mut saver,
    } = run;
    let polish = v.opts.polish;
    let mut compressed = Vec::new();
    let (done, resume) = if phase == Phase::Compressed {
        let first = crate::engine::StopRules {
            max_iter: v.stop.max_iter.saturating_sub(polish),
            ..v.stop
        };
        if let Some(sv) = saver.as_mut() {
            sv.meta.phase = Phase::Compressed;
            sv.meta.stats = *stats;
        }
        let mut out = fit_loop::run_resumable(
            s,
            factors,
            &first,
            resume,
            x_norm,
            clock,
            saver.as_deref_mut(),
            observer,
        )?;
        stats.compressed_iters = out.n_iter as u64;
        stats.compressed_converged = out.stop_reason == StopReason::Converged;
        if matches!(out.stop_reason, StopReason::Interrupted | StopReason::TimeLimit) || polish == 0 {
            return Ok(out);
        }
        compressed = std::mem::take(&mut out.history);
        if let Some(sv) = saver.as_mut() {
            sv.earlier.extend_from_slice(&compressed);
        }
        let fresh = Resume {
            done: out.n_iter,
            ..Resume::default()
        };
        (out.n_iter, fresh)
    } else {
        (stats.compressed_iters as usize, resume)
    };
    s.end_compression();
    if let Some(sv) = saver.as_mut() {
        sv.meta.phase = Phase::Polish;
        sv.meta.stats = *stats;
    }
    let second = crate::engine::StopRules {
        max_iter: done + polish,
        ..v.stop
    };
    let mut p = fit_loop::run_resumable(s, factors, &second, resume, x_norm, clock, saver, observer)?;
    stats.polish_iters = (p.n_iter - done) as u64;
    compressed.append(&mut p.history);
    p.history = compressed;
    if stats.compressed_converged && p.stop_reason == StopReason::MaxIter {
        p.stop_reason = StopReason::Converged;
        p.warnings
            .retain(|w| !matches!(w, Warning::MaxIterReached { .. }));
    }
    Ok(p)
}

/// The β-MU solver for `x`: dense for any β, sparse for β = 1 ([`sparse_kl`]; other β are
/// refused on sparse data before this point).
pub(crate) fn beta_solver<'a, T: Real>(
    x: XRef<'a, T>,
    k: usize,
    beta: f64,
    codes_pen: Penalty,
    atoms_pen: Penalty,
    par: faer::Par,
) -> Box<dyn fit_loop::Iterate<T> + 'a> {
    match x {
        XRef::Dense(x) => Box::new(beta::BetaMu::new(x, k, beta, codes_pen, atoms_pen, par)),
        XRef::Sparse(s) => Box::new(sparse_kl::SparseKl::new(s, k, codes_pen, atoms_pen, par)),
    }
}

/// Objective and `‖X − WH‖²` of a model and codes (`k × n`) on `x` (`m × n`).
fn evaluate<T: Real>(
    x: XRef<'_, T>,
    model: &NmfModel<T>,
    h: MatRef<'_, T>,
    v: &options::Resolved,
    par: faer::Par,
    part: Part<'_>,
) -> (f64, f64) {
    use fit_loop::Iterate;
    let wt = model.components();
    let mut f = init::Factors {
        wt: wt.subcols(part.feature_offset, x.nrows()).to_owned(),
        h: h.to_owned(),
    };
    let e = if model.spec.beta_loss == 2.0 {
        let rule = frobenius::Rule::Mu;
        frobenius::GramSolver::new(x, model.k(), rule, v.codes_penalty, v.atoms_penalty, par)
            .with_part(part)
            .initial(&mut f)
    } else {
        beta_solver(
            x,
            model.k(),
            model.spec.beta_loss,
            v.codes_penalty,
            v.atoms_penalty,
            par,
        )
        .initial(&mut f)
    };
    (e.objective, e.sq_error)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod sparse_tests;

#[cfg(test)]
mod init_part_tests;
