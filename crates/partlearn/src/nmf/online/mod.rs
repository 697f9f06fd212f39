//! Online (mini-batch) NMF for data larger than memory (METHODS.md §11.3; Mairal, Bach, Ponce &
//! Sapiro 2010, with scikit-learn `MiniBatchNMF`'s parameters and stopping rules).
//!
//! The rows come from a [`RowSource`] (a dense or sparse matrix in memory, an `.npy` file or a
//! folder of `.npy` shards read block by block). Per mini-batch `X_t` (`b` rows), with the atoms
//! `W` (`k × m`) fixed:
//!
//! 1. codes `H_t = argmin_{H≥0} ‖X_t − HW‖²` by coordinate descent (the HALS kernel) from 0 on
//!    the Gram `WWᵀ` and the cross term `WX_tᵀ`, until the relative change is ≤ `tol` or after
//!    `fresh_restarts_max_iter` sweeps (with `fresh_restarts`) or [`CODE_SWEEPS`] sweeps;
//! 2. the batch cost `½‖X_t − H_tW‖²/b` by the Gram identity (no reconstruction is formed);
//! 3. the sufficient statistics `A ← ρA + H_tᵀH_t` (`k × k`), `B ← ρB + H_tᵀX_t` (`k × m`),
//!    `ρ = forget_factor^{b/n}` (scikit-learn's `_rho`): after one pass the old statistics weigh
//!    `forget_factor`;
//! 4. the atoms by HALS sweeps on `(A, B)`: `w_j ← [w_j + (b_j − a_jᵀW)/A_jj]_+` (at most
//!    [`ATOM_SWEEPS`], Gillis–Glineur's early stop at δ = 0.1).
//!
//! Memory is `O(b·m + k·m + k²)`, independent of `n`: the codes of the `n` rows are never held.
//! A batch's codes therefore always start from 0 (scikit-learn, which keeps all codes, warm-starts
//! them from the previous pass unless `fresh_restarts`); `fresh_restarts` here means each batch's
//! codes are solved to `tol` (scikit-learn's `_solve_W` budget) rather than by a few sweeps. The
//! codes of all rows, when wanted, come from a second streaming pass ([`transform_rows`]) with the
//! model's own `encode` (the same codes as `transform`), written block by block by the caller.
//!
//! Stopping (scikit-learn's `_minibatch_convergence`, checked after every batch but the first):
//! the relative change of the atoms `‖W − W_prev‖_F/‖W‖_F ≤ tol`, or `max_no_improvement`
//! batches without a new minimum of the exponentially weighted average of the batch cost
//! (weight `b/(n+1)`); `max_iter` bounds the passes. An iteration of the shared
//! [engine](crate::engine) is one pass: its record holds `objective` = `½Σ_t‖X_t − H_tW_t‖²` over
//! the pass's batches (each with the atoms of its time) and the matching relative error; the
//! exact error of the final atoms is [`transform_rows`]'s. Batches are fixed by row index, so the
//! same seed gives the same bits with any thread count.

use std::time::Instant;

use faer::{Accum, Mat, MatRef, Par};
use serde::{Deserialize, Serialize};

use super::cd::{self, SweepRule};
use super::data_op::{SparseX, XRef};
use super::model::{EncodeSpec, NmfModel};
use super::options::{InitMethod, NmfParams, Penalty, ValidNmfParams};
use super::{init, FitStats};
use crate::data::rows::{RowBlock, RowSource};
use crate::engine::{
    self, Clock, Eval, IterRecord, Observer, Resume, Step, StopReason, StopRules, Warning, Within,
};
use crate::error::{Error, Result};
use crate::linalg;
use crate::params::setters;
use crate::real::Real;
use crate::rng::Rng;

/// Code sweeps per batch without `fresh_restarts`. Measured (30 passes, no early stop):
/// Fashion-MNIST's first 3,000 images, k = 20, online/HALS error 1.022 with 10 sweeps, 1.026
/// with 5; a planted 5,000 × 100 rank-8 matrix, rel. error 0.024 with 10 sweeps, 0.086 with 5.
pub const CODE_SWEEPS: usize = 10;
/// Atom sweeps per batch on the sufficient statistics.
pub const ATOM_SWEEPS: usize = 3;

/// Parameters of online NMF (scikit-learn `MiniBatchNMF`'s names and defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MiniBatchParams {
    /// The NMF settings used here: `k`, `init` (applied to the first batch), `max_iter` (passes
    /// over the data), `tol` (relative change of the atoms per batch; 0 disables), `max_seconds`,
    /// `seed`, `threads`, `encode` (the final codes). Only the Frobenius loss without penalties
    /// or compression.
    pub nmf: NmfParams,
    /// Rows per mini-batch (scikit-learn's default 1024); the last batch of a pass may be smaller.
    pub batch_size: usize,
    /// Weight of the past statistics after one pass, in (0, 1] (1: no forgetting).
    pub forget_factor: f64,
    /// Solve every batch's codes to `tol` (at most `fresh_restarts_max_iter` sweeps) instead of
    /// [`CODE_SWEEPS`] sweeps.
    pub fresh_restarts: bool,
    /// Sweep limit of the codes with `fresh_restarts`.
    pub fresh_restarts_max_iter: usize,
    /// Stop after this many batches without a new minimum of the smoothed batch cost (`None`
    /// disables).
    pub max_no_improvement: Option<usize>,
}

impl Default for MiniBatchParams {
    fn default() -> Self {
        MiniBatchParams {
            nmf: NmfParams::default(),
            batch_size: 1024,
            forget_factor: 0.7,
            fresh_restarts: false,
            fresh_restarts_max_iter: 30,
            max_no_improvement: Some(10),
        }
    }
}

setters!(MiniBatchParams {
    batch_size: usize,
    forget_factor: f64,
    fresh_restarts: bool,
    fresh_restarts_max_iter: usize,
    max_no_improvement: Option<usize>,
});

setters!(MiniBatchParams => nmf {
    init: InitMethod,
    max_iter: usize,
    tol: f64,
    max_seconds: Option<f64>,
    seed: u64,
    threads: usize,
});

/// Checked [`MiniBatchParams`] (fields private; [`ValidMiniBatchParams::params`] reads them).
#[derive(Clone, Debug, PartialEq)]
pub struct ValidMiniBatchParams {
    params: MiniBatchParams,
    nmf: ValidNmfParams,
}

impl ValidMiniBatchParams {
    /// The checked parameters.
    pub fn params(&self) -> &MiniBatchParams {
        &self.params
    }

    /// Checks the parameters against a data shape: `batch_size ≤ n_samples`, `k` and the
    /// initialization for a batch of that size.
    pub fn check_shape(&self, n_samples: usize, n_features: usize) -> Result<()> {
        let b = self.params.batch_size;
        if b > n_samples {
            return Err(Error::invalid(
                "batch_size",
                b,
                format!("is larger than the {n_samples} samples; use at most {n_samples}"),
            ));
        }
        self.nmf.resolve_batch(b, n_features, n_samples).map(|_| ())
    }
}

impl MiniBatchParams {
    /// The defaults with `k` components.
    pub fn new(k: usize) -> Self {
        MiniBatchParams {
            nmf: NmfParams::new(k),
            ..Default::default()
        }
    }

    /// Checks every parameter that does not depend on the data.
    pub fn check(&self) -> Result<ValidMiniBatchParams> {
        let nmf = self.nmf.check()?;
        let o = &self.nmf;
        if self.batch_size == 0 {
            return Err(Error::invalid(
                "batch_size",
                0,
                "give at least 1 row per mini-batch",
            ));
        }
        if !(self.forget_factor > 0.0 && self.forget_factor <= 1.0) {
            return Err(Error::invalid(
                "forget_factor",
                self.forget_factor,
                "must be in (0, 1] (1 keeps all past batches; scikit-learn's default is 0.7)",
            ));
        }
        if self.fresh_restarts_max_iter == 0 {
            return Err(Error::invalid(
                "fresh_restarts_max_iter",
                0,
                "give at least 1 sweep",
            ));
        }
        if self.max_no_improvement == Some(0) {
            return Err(Error::invalid(
                "max_no_improvement",
                0,
                "give at least 1 batch, or none to disable the rule",
            ));
        }
        if o.beta_loss != 2.0 {
            return Err(Error::invalid(
                "beta_loss",
                o.beta_loss,
                "online NMF minimizes the Frobenius loss (beta_loss = 2) only; use the batch solvers for other losses",
            ));
        }
        if o.alpha_w != 0.0 || o.alpha_h.is_some_and(|a| a != 0.0) {
            return Err(Error::invalid(
                "alpha_w",
                o.alpha_w,
                "online NMF has no penalties; set alpha_w and alpha_h to 0",
            ));
        }
        if o.compress != super::Compress::Off {
            return Err(Error::invalid(
                "compress",
                "on",
                "online NMF is not sketched (each batch is read once per pass); leave `compress` off",
            ));
        }
        if o.init == InitMethod::Custom {
            return Err(Error::invalid(
                "init",
                "custom",
                "online NMF starts from the first batch (auto, random or an NNDSVD variant)",
            ));
        }
        if o.pg_tol > 0.0 {
            return Err(Error::invalid(
                "pg_tol",
                o.pg_tol,
                "online NMF stops on `tol` (change of the atoms) and `max_no_improvement`; set pg_tol to 0",
            ));
        }
        Ok(ValidMiniBatchParams {
            params: self.clone(),
            nmf,
        })
    }
}

/// The result of [`fit_rows`].
#[derive(Clone, Debug)]
pub struct OnlineFit<T: Real> {
    /// The atoms and their encode settings.
    pub model: NmfModel<T>,
    /// One record per pass (see the module documentation for what it holds).
    pub history: Vec<IterRecord>,
    /// Passes started (scikit-learn's `n_iter_`: `ceil(n_steps / batches per pass)`).
    pub n_iter: usize,
    /// Mini-batch steps run (scikit-learn's `n_steps_`).
    pub n_steps: usize,
    /// Why the fit stopped.
    pub stop_reason: StopReason,
    /// Warnings for the user.
    pub warnings: Vec<Warning>,
    /// The smoothed batch cost at the end (scikit-learn's `_ewa_cost`), `½‖X_t − H_tW‖²/b`.
    pub ewa_cost: f64,
    /// Wall-clock seconds of the fit.
    pub seconds: f64,
    /// Counters: `batches`, `rows_seen`, `rows_per_second`.
    pub stats: FitStats,
}

/// What a streaming pass of [`transform_rows`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamEval {
    /// `‖X − codes·atoms‖²_F` over all rows.
    pub sq_error: f64,
    /// `‖X‖²_F`.
    pub x_sq: f64,
}

impl StreamEval {
    /// `‖X − codes·atoms‖_F / ‖X‖_F`.
    pub fn rel_error(&self) -> f64 {
        if self.x_sq > 0.0 {
            (self.sq_error.max(0.0) / self.x_sq).sqrt()
        } else {
            0.0
        }
    }
}

/// A batch as the solvers see it (sparse batches with their transpose).
enum BatchX<T: Real> {
    Dense(Mat<T>),
    Sparse(crate::data::Csr<T>),
}

impl<T: Real> BatchX<T> {
    fn of(b: RowBlock<T>) -> Self {
        match b {
            RowBlock::Dense(x) => BatchX::Dense(x),
            RowBlock::Sparse(x) => BatchX::Sparse(x),
        }
    }
}

/// Runs `f` on the batch as an [`XRef`] (`m × len`, samples as columns).
fn with_xref<T: Real, R>(b: &BatchX<T>, f: impl FnOnce(XRef<'_, T>) -> R) -> Result<R> {
    Ok(match b {
        BatchX::Dense(x) => f(XRef::Dense(x.as_ref())),
        BatchX::Sparse(x) => {
            let sx = SparseX::new(x)?;
            f(XRef::Sparse(&sx))
        }
    })
}

/// `‖X_t − HᵀW‖²` from `‖X_t‖²`, `P = WX_tᵀ` (`k × len`), `H` (`k × len`) and `G = WWᵀ`.
fn sq_error_gram<T: Real>(x_sq: f64, p: MatRef<'_, T>, h: MatRef<'_, T>, g: MatRef<'_, T>, par: Par) -> f64 {
    let k = h.nrows();
    let mut hh = Mat::<T>::zeros(k, k);
    linalg::gram(hh.as_mut(), h, par);
    (x_sq - 2.0 * linalg::inner(p, h) + linalg::inner(g, hh.as_ref())).max(0.0)
}

/// The state of online NMF between mini-batches: the atoms and the sufficient statistics
/// (`O(k·m + k²)`). [`fit_rows`] drives it over a [`RowSource`]; [`OnlineNmf::partial_fit`]
/// takes one batch at a time (scikit-learn's `partial_fit`).
#[derive(Clone, Debug)]
pub struct OnlineNmf<T: Real> {
    params: MiniBatchParams,
    wt: Mat<T>,
    a: Mat<T>,
    b: Mat<T>,
    rho: f64,
    n_steps: usize,
}

/// What one mini-batch step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchStep {
    /// `‖X_t − H_tW‖²` with the batch's codes and the atoms before the step.
    pub sq_error: f64,
    /// `‖X_t‖²`.
    pub x_sq: f64,
    /// `‖W_new − W_old‖_F / ‖W_new‖_F`.
    pub atoms_change: f64,
}

impl<T: Real> OnlineNmf<T> {
    /// Starts from `first` (a batch of rows, `len × m`): the atoms by `params`' initialization on
    /// it, empty statistics, and the forgetting `ρ = forget_factor^{batch_size/n_samples}`.
    pub fn init(first: MatRef<'_, T>, n_samples: usize, params: &ValidMiniBatchParams) -> Result<Self> {
        crate::data::validate_nonnegative(first.transpose())?;
        Self::init_batch(&BatchX::Dense(first.transpose().to_owned()), n_samples, params)
    }

    /// [`Self::init`] from a sparse batch (`len × m`), never densified.
    pub fn init_csr(
        first: &crate::data::Csr<T>,
        n_samples: usize,
        params: &ValidMiniBatchParams,
    ) -> Result<Self> {
        first.validate_nonnegative()?;
        Self::init_batch(&BatchX::Sparse(first.clone()), n_samples, params)
    }

    fn init_batch(first: &BatchX<T>, n_samples: usize, params: &ValidMiniBatchParams) -> Result<Self> {
        let o = &params.params.nmf;
        let (len, m) = match first {
            BatchX::Dense(x) => (x.ncols(), x.nrows()),
            BatchX::Sparse(x) => (x.nrows(), x.ncols()),
        };
        let v = params.nmf.resolve_batch(len, m, n_samples)?;
        let mut rng = Rng::new(o.seed);
        let f = linalg::with_threads(o.threads, || {
            with_xref(first, |xr| {
                init::initialize_from(xr, &v, None, None, &mut rng, linalg::par(o.threads))
            })
        })???;
        Ok(Self::start(f.wt, n_samples, params))
    }

    fn start(wt: Mat<T>, n_samples: usize, params: &ValidMiniBatchParams) -> Self {
        let p = &params.params;
        let (k, m) = (wt.nrows(), wt.ncols());
        OnlineNmf {
            params: p.clone(),
            wt,
            a: Mat::zeros(k, k),
            b: Mat::zeros(k, m),
            rho: p
                .forget_factor
                .powf(p.batch_size as f64 / n_samples.max(1) as f64),
            n_steps: 0,
        }
    }

    /// Rebuilds a state from its parts ([`Self::parts`]): atoms `k × m`, `A` (`k × k`), `B`
    /// (`k × m`), `ρ` and the steps run.
    pub fn from_parts(
        params: &ValidMiniBatchParams,
        atoms: Mat<T>,
        a: Mat<T>,
        b: Mat<T>,
        rho: f64,
        n_steps: usize,
    ) -> Result<Self> {
        let (k, m) = (atoms.nrows(), atoms.ncols());
        if k != params.params.nmf.k || a.shape() != (k, k) || b.shape() != (k, m) {
            return Err(Error::ShapeMismatch {
                what: "online NMF state".into(),
                expected: format!("atoms k × m, A k × k, B k × m with k = {}", params.params.nmf.k),
                found: format!(
                    "atoms {} × {}, A {} × {}, B {} × {}",
                    k,
                    m,
                    a.nrows(),
                    a.ncols(),
                    b.nrows(),
                    b.ncols()
                ),
                hint: "give back the parts this state returned".into(),
            });
        }
        if !(rho > 0.0 && rho <= 1.0) {
            return Err(Error::invalid("rho", rho, "must be in (0, 1]"));
        }
        Ok(OnlineNmf {
            params: params.params.clone(),
            wt: atoms,
            a,
            b,
            rho,
            n_steps,
        })
    }

    /// The atoms (`k × m`), `A`, `B`, `ρ` and the steps run.
    pub fn parts(&self) -> (MatRef<'_, T>, MatRef<'_, T>, MatRef<'_, T>, f64, usize) {
        (
            self.wt.as_ref(),
            self.a.as_ref(),
            self.b.as_ref(),
            self.rho,
            self.n_steps,
        )
    }

    /// Mini-batch steps run.
    pub fn n_steps(&self) -> usize {
        self.n_steps
    }

    /// The model of the current atoms.
    pub fn model(&self) -> Result<NmfModel<T>> {
        NmfModel::new(
            self.wt.clone(),
            EncodeSpec {
                beta_loss: 2.0,
                codes_penalty: Penalty::default(),
                encode: self.params.nmf.encode,
            },
        )
    }

    /// One mini-batch step on `x` (`len × m`, samples as rows): steps 1–4 of the module
    /// documentation.
    pub fn partial_fit(&mut self, x: MatRef<'_, T>) -> Result<BatchStep> {
        self.check_batch(x.nrows(), x.ncols())?;
        crate::data::validate_nonnegative(x.transpose())?;
        self.step_batch(&BatchX::Dense(x.transpose().to_owned()))
    }

    /// [`Self::partial_fit`] on a sparse batch (`len × m`), never densified.
    pub fn partial_fit_csr(&mut self, x: &crate::data::Csr<T>) -> Result<BatchStep> {
        self.check_batch(x.nrows(), x.ncols())?;
        x.validate_nonnegative()?;
        self.step_batch(&BatchX::Sparse(x.clone()))
    }

    fn check_batch(&self, len: usize, m: usize) -> Result<()> {
        if m != self.wt.ncols() {
            return Err(Error::ShapeMismatch {
                what: "batch".into(),
                expected: format!("n × {} features", self.wt.ncols()),
                found: format!("{len} × {m}"),
                hint: "give batches with the features of the first one".into(),
            });
        }
        Ok(())
    }

    fn step_batch(&mut self, x: &BatchX<T>) -> Result<BatchStep> {
        let threads = self.params.nmf.threads;
        linalg::with_threads(threads, || self.step(x, linalg::par(threads)))?
    }

    /// One step on a checked batch, inside the thread pool.
    fn step(&mut self, x: &BatchX<T>, par: Par) -> Result<BatchStep> {
        let k = self.wt.nrows();
        let p = &self.params;
        let mut g = Mat::<T>::zeros(k, k);
        linalg::gram(g.as_mut(), self.wt.as_ref(), par);
        let wt = self.wt.as_ref();
        let parallel = !matches!(par, Par::Seq);
        let (h, x_sq, sq, cross_b) = with_xref(x, |xr| {
            let len = xr.ncols();
            let mut pc = Mat::<T>::zeros(k, len);
            xr.codes_cross(pc.as_mut(), wt, par);
            let mut h = Mat::<T>::zeros(k, len);
            let rule = SweepRule {
                max_sweeps: if p.fresh_restarts {
                    p.fresh_restarts_max_iter
                } else {
                    CODE_SWEEPS
                },
                delta: 0.0,
                tol: p.nmf.tol,
                floor: 0.0,
            };
            cd::sweep(h.as_mut(), g.as_ref(), pc.as_ref(), 0.0, 0.0, rule, parallel);
            let x_sq = xr.frob_sq();
            let sq = sq_error_gram(x_sq, pc.as_ref(), h.as_ref(), g.as_ref(), par);
            let mut cross_b = Mat::<T>::zeros(k, xr.nrows());
            xr.atoms_cross(cross_b.as_mut(), h.as_ref(), par);
            (h, x_sq, sq, cross_b)
        })?;
        // Sufficient statistics with forgetting.
        let mut hh = Mat::<T>::zeros(k, k);
        linalg::gram(hh.as_mut(), h.as_ref(), par);
        let rho = T::from_f64(self.rho);
        for j in 0..k {
            for i in 0..k {
                self.a[(i, j)] = rho * self.a[(i, j)] + hh[(i, j)];
            }
        }
        for j in 0..self.wt.ncols() {
            for i in 0..k {
                self.b[(i, j)] = rho * self.b[(i, j)] + cross_b[(i, j)];
            }
        }
        let prev = self.wt.clone();
        let rule = SweepRule {
            max_sweeps: ATOM_SWEEPS,
            delta: 0.1,
            tol: 0.0,
            floor: 0.0,
        };
        cd::sweep(
            self.wt.as_mut(),
            self.a.as_ref(),
            self.b.as_ref(),
            0.0,
            0.0,
            rule,
            parallel,
        );
        self.n_steps += 1;
        let norm = linalg::frob_sq(self.wt.as_ref()).sqrt();
        let diff = linalg::frob_sq((&self.wt - &prev).as_ref()).sqrt();
        Ok(BatchStep {
            sq_error: sq,
            x_sq,
            atoms_change: if norm > 0.0 { diff / norm } else { 0.0 },
        })
    }
}

/// The training loop over a source (one engine iteration = one pass).
struct Online<'s, T: Real> {
    src: &'s mut dyn RowSource<T>,
    p: &'s MiniBatchParams,
    core: OnlineNmf<T>,
    n: usize,
    steps_per_pass: usize,
    total_steps: usize,
    ewa: Option<f64>,
    ewa_min: Option<f64>,
    no_improvement: usize,
    last_cost: f64,
    rows_seen: u64,
    par: Par,
}

impl<T: Real> Online<'_, T> {
    /// One mini-batch step on rows `start .. start + len`; returns whether a stopping rule
    /// fired, and the batch's squared error and `‖X_t‖²`.
    fn minibatch(&mut self, start: usize, len: usize) -> Result<(bool, f64, f64)> {
        let block = self.src.read(start, len)?;
        block.validate_nonnegative(start)?;
        let s = self.core.step(&BatchX::of(block), self.par)?;
        let cost = 0.5 * s.sq_error / len as f64;
        self.rows_seen += len as u64;
        self.last_cost = cost;
        Ok((self.converged(len, cost, s.atoms_change), s.sq_error, s.x_sq))
    }

    /// scikit-learn's `_minibatch_convergence` after a step.
    fn converged(&mut self, len: usize, cost: f64, atoms_change: f64) -> bool {
        if self.core.n_steps == 1 {
            return false;
        }
        let alpha = (len as f64 / (self.n as f64 + 1.0)).min(1.0);
        let ewa = match self.ewa {
            None => cost,
            Some(e) => e * (1.0 - alpha) + cost * alpha,
        };
        self.ewa = Some(ewa);
        let tol = self.p.nmf.tol;
        if tol > 0.0 && atoms_change <= tol {
            return true;
        }
        if self.ewa_min.is_none_or(|m| ewa < m) {
            self.no_improvement = 0;
            self.ewa_min = Some(ewa);
        } else {
            self.no_improvement += 1;
        }
        self.p
            .max_no_improvement
            .is_some_and(|lim| self.no_improvement >= lim)
    }
}

impl<T: Real> engine::Method for Online<'_, T> {
    fn name(&self) -> &'static str {
        "online NMF fit"
    }

    fn start(&mut self) -> Result<Option<Eval>> {
        Ok(None)
    }

    fn step(&mut self, _iter: usize, within: &mut Within<'_>) -> Result<Step> {
        let bs = self.p.batch_size;
        let (mut sq, mut x_sq) = (0.0, 0.0);
        for s in 0..self.steps_per_pass {
            let start = s * bs;
            let len = bs.min(self.n - start);
            let (stop, e, xs) = self.minibatch(start, len)?;
            sq += e;
            x_sq += xs;
            let eval = Eval::new(0.5 * sq, if x_sq > 0.0 { (sq / x_sq).sqrt() } else { 0.0 });
            if stop {
                return Ok(Step::Converged(eval));
            }
            if !within.go_on(self.core.n_steps, self.total_steps) {
                return Ok(Step::Stopped);
            }
        }
        Ok(Step::Done(Eval::new(
            0.5 * sq,
            if x_sq > 0.0 { (sq / x_sq).sqrt() } else { 0.0 },
        )))
    }
}

/// Fits online NMF on the rows of `src` (module documentation), reporting each pass to
/// `observer` (and each batch to its progress). The codes are not kept: use
/// [`transform_rows`] for them and for the exact error.
///
/// ```
/// use partlearn::data::rows::DenseRows;
/// use partlearn::faer::Mat;
/// use partlearn::nmf::online::{self, MiniBatchParams};
///
/// let x = Mat::<f64>::from_fn(300, 20, |i, j| ((i * 7 + j * 3) % 11) as f64);
/// let p = MiniBatchParams::new(4).batch_size(64).max_iter(20).check()?;
/// let fit = online::fit_rows(&mut DenseRows::new(x.as_ref()), &p, &mut partlearn::engine::Silent)?;
/// let eval = online::transform_rows(&fit.model, &mut DenseRows::new(x.as_ref()), 64, 1, &mut |_, _| Ok(()))?;
/// assert!(eval.rel_error() < 0.5);
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn fit_rows<T: Real>(
    src: &mut dyn RowSource<T>,
    params: &ValidMiniBatchParams,
    observer: &mut (dyn Observer + Send),
) -> Result<OnlineFit<T>> {
    let (n, m) = (src.n_rows(), src.n_cols());
    params.check_shape(n, m)?;
    let p = &params.params;
    let o = &p.nmf;
    let k = o.k;
    let b = p.batch_size;
    // Two batches (block, cross terms) plus the atoms, statistics and a copy of the atoms.
    let bytes = std::mem::size_of::<T>() as f64
        * (3.0 * (b * (m + k)) as f64 + 4.0 * (k * m) as f64 + 4.0 * (k * k) as f64);
    linalg::check_memory("batch_size", b, bytes)?;
    let start = Instant::now();
    linalg::with_threads(o.threads, || -> Result<OnlineFit<T>> {
        let par = linalg::par(o.threads);
        let mut rng = Rng::new(o.seed);
        let v = params.nmf.resolve_batch(b, m, n)?;
        let first = BatchX::of(src.read(0, b)?);
        match &first {
            BatchX::Dense(x) => crate::data::validate_nonnegative(x.as_ref())?,
            BatchX::Sparse(x) => x.validate_nonnegative()?,
        }
        let f = with_xref(&first, |xr| {
            init::initialize_from(xr, &v, None, None, &mut rng, par)
        })??;
        drop(first);
        let steps_per_pass = n.div_ceil(b);
        let mut state = Online {
            src,
            p,
            core: OnlineNmf::start(f.wt, n, params),
            n,
            steps_per_pass,
            total_steps: steps_per_pass.saturating_mul(o.max_iter),
            ewa: None,
            ewa_min: None,
            no_improvement: 0,
            last_cost: f64::NAN,
            rows_seen: 0,
            par,
        };
        let rules = StopRules::max_iter(o.max_iter).with_max_seconds(o.max_seconds);
        let out = engine::run(
            &mut state,
            &rules,
            Resume::default(),
            Clock::since(start),
            observer,
        )?;
        let mut warnings = out.warnings;
        if out.stop_reason == StopReason::MaxIter && o.tol > 0.0 {
            warnings.push(Warning::MaxIterReached {
                max_iter: o.max_iter,
                rule: engine::Rule::Tol,
                value: o.tol,
            });
        }
        let seconds = start.elapsed().as_secs_f64();
        let steps = state.core.n_steps;
        let stats = FitStats {
            batches: steps as u64,
            rows_seen: state.rows_seen,
            rows_per_second: if seconds > 0.0 {
                state.rows_seen as f64 / seconds
            } else {
                0.0
            },
            ..FitStats::default()
        };
        Ok(OnlineFit {
            model: state.core.model()?,
            history: out.history,
            n_iter: steps.div_ceil(steps_per_pass),
            n_steps: steps,
            stop_reason: out.stop_reason,
            warnings,
            ewa_cost: state.ewa.unwrap_or(state.last_cost),
            seconds,
            stats,
        })
    })?
}

/// Codes of every row of `src` with `model`'s own encode (the codes `transform` gives), computed
/// `batch` rows at a time and handed to `sink(first_row, codes)` (`len × k`) in row order;
/// returns the exact error. Memory: one batch.
pub fn transform_rows<T: Real>(
    model: &NmfModel<T>,
    src: &mut dyn RowSource<T>,
    batch: usize,
    threads: usize,
    sink: &mut dyn FnMut(usize, MatRef<'_, T>) -> Result<()>,
) -> Result<StreamEval> {
    if batch == 0 {
        return Err(Error::invalid("batch_size", 0, "give at least 1 row per block"));
    }
    if src.n_cols() != model.n_features() {
        return Err(Error::ShapeMismatch {
            what: "data for this model".into(),
            expected: format!("n_samples × {} features", model.n_features()),
            found: format!("{} × {}", src.n_rows(), src.n_cols()),
            hint: "encode data with the same features as the training data".into(),
        });
    }
    if model.spec.beta_loss != 2.0 {
        super::check_sparse_beta(model.spec.beta_loss)?;
    }
    let n = src.n_rows();
    let k = model.k();
    let pool = linalg::pool(threads)?;
    let par = linalg::par(threads);
    let mut g = Mat::<T>::zeros(k, k);
    pool.install(|| linalg::gram(g.as_mut(), model.components(), par));
    let mut total = StreamEval {
        sq_error: 0.0,
        x_sq: 0.0,
    };
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        let block = src.read(start, len)?;
        block.validate_nonnegative(start)?;
        let x = BatchX::of(block);
        let g = g.as_ref();
        let (h, sq, xs) = pool.install(|| {
            with_xref(&x, |xr| {
                let h = model.encode_columns(xr, None, par);
                let x_sq = xr.frob_sq();
                let sq = if model.spec.beta_loss == 2.0 {
                    let mut pc = Mat::<T>::zeros(k, len);
                    xr.codes_cross(pc.as_mut(), model.components(), par);
                    sq_error_gram(x_sq, pc.as_ref(), h.as_ref(), g, par)
                } else {
                    // Other losses: the error through the dense reconstruction of the block.
                    match xr.dense() {
                        Some(xd) => {
                            let mut r = Mat::<T>::zeros(xr.nrows(), len);
                            linalg::matmul(
                                r.as_mut(),
                                Accum::Replace,
                                model.components().transpose(),
                                h.as_ref(),
                                T::one(),
                                par,
                            );
                            linalg::frob_sq((&r - xd).as_ref())
                        }
                        None => f64::NAN,
                    }
                };
                (h, sq, x_sq)
            })
        })?;
        total.sq_error += sq;
        total.x_sq += xs;
        sink(start, h.transpose())?;
        start += len;
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
