//! NMF with sparseness constraints (Hoyer 2004, "nmfsc"; METHODS.md §2.3–2.4).
//!
//! Objective `½‖X − WH‖²` (samples as columns) under Hoyer sparseness constraints on the atoms
//! and/or the codes. A constrained factor takes projected-gradient steps with Hoyer's adaptive
//! step (halve until the objective does not rise, then grow by 1.2; give up below 1e-200); an
//! unconstrained factor takes a multiplicative update. The code constraint comes in two kinds
//! (§2.4): the reference's [`CodeConstraint::Components`] — each component's activations across
//! all samples (a row of `H`) has sparseness `s` and unit L2 norm — and
//! [`CodeConstraint::Samples`] — each sample's code (a column of `H`) has sparseness `s`, keeping
//! its L2 norm. The evaluation's sparsity metric (§7.2) is per sample, so only the second kind
//! constrains it directly.
//!
//! As in the reference, the data are divided by their maximum before fitting; the atoms are
//! multiplied back, so the model reconstructs the original data, and the reported objectives
//! are in the original units. Everything runs inside the shared fit loop (`nmf::fit_loop`, on
//! the [engine](crate::engine)): history, tol / max_iter / time budget and Ctrl-C as for every
//! solver.

use std::time::Instant;

use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::fit_loop::{self, Eval, Iterate};
use super::init::Factors;
use super::{EncodeSpec, FitStats, NmfFit, NmfModel};
use crate::data::Dataset;
use crate::engine::{Observer, StopRules, Warning};
use crate::error::{Error, Result};
use crate::linalg;
use crate::params;
use crate::real::Real;
use crate::rng::Rng;
use crate::sparseness::{l1_for, project};

/// Which vectors of the codes a code-sparseness target constrains (METHODS.md §2.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodeConstraint {
    /// Hoyer's reference: each component's activations across all samples (a row of `H`,
    /// "lifetime" sparseness) has the target sparseness and unit L2 norm.
    #[default]
    Components,
    /// Each sample's code (a column of `H`) has the target sparseness, keeping its L2 norm.
    Samples,
}

impl std::str::FromStr for CodeConstraint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "components" | "per-component" => Ok(CodeConstraint::Components),
            "samples" | "per-sample" => Ok(CodeConstraint::Samples),
            _ => Err(Error::invalid(
                "code_constraint",
                s,
                "use components (each component across samples, Hoyer's reference) or samples (each sample's code)",
            )),
        }
    }
}

/// Options of a sparse NMF fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SparseNmfParams {
    /// Number of components.
    pub k: usize,
    /// Sparseness of every atom (`s_W` in [0, 1]); `None` = no constraint (not the same as 0).
    pub atom_sparsity: Option<f64>,
    /// Sparseness of the codes (`s_H` in [0, 1]); `None` = no constraint.
    pub code_sparsity: Option<f64>,
    /// What the code target constrains.
    pub code_constraint: CodeConstraint,
    /// Maximum iterations (default 1000; the reference has no limit).
    pub max_iter: usize,
    /// The windowed relative-decrease rule of [`StopRules::tol`] (default 1e-4; 0 disables;
    /// the reference has no convergence test).
    pub tol: f64,
    /// Time budget in seconds.
    pub max_seconds: Option<f64>,
    /// Seed of the random initialization.
    pub seed: u64,
    /// Worker threads (1 = sequential, 0 = all cores).
    pub threads: usize,
}

impl Default for SparseNmfParams {
    fn default() -> Self {
        SparseNmfParams {
            k: 10,
            atom_sparsity: None,
            code_sparsity: None,
            code_constraint: CodeConstraint::Components,
            max_iter: 1000,
            tol: 1e-4,
            max_seconds: None,
            seed: 0,
            threads: 1,
        }
    }
}

params::setters!(SparseNmfParams {
    k: usize,
    atom_sparsity: Option<f64>,
    code_sparsity: Option<f64>,
    code_constraint: CodeConstraint,
    max_iter: usize,
    tol: f64,
    max_seconds: Option<f64>,
    seed: u64,
    threads: usize,
});

/// [`SparseNmfParams`] that passed [`SparseNmfParams::check`]: the only form
/// [`factorize_sparse`] accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidSparseNmfParams {
    params: SparseNmfParams,
    stop: StopRules,
}

impl ValidSparseNmfParams {
    /// The checked parameters.
    pub fn params(&self) -> &SparseNmfParams {
        &self.params
    }

    /// Checks the parameters against a data shape (`n_samples × n_features`).
    pub fn check_shape(&self, n_samples: usize, n_features: usize) -> Result<()> {
        params::check_not_empty(n_samples, n_features)?;
        let o = &self.params;
        if o.k > n_samples.max(n_features) {
            return Err(Error::invalid(
                "k",
                o.k,
                format!(
                    "need 1 ≤ k ≤ max(n_samples, n_features) = {}",
                    n_samples.max(n_features)
                ),
            ));
        }
        let need_len = |len: usize, what: &'static str| -> Result<()> {
            if len < 2 {
                return Err(Error::invalid(
                    what,
                    len,
                    "a sparseness constraint needs vectors of at least 2 entries",
                ));
            }
            Ok(())
        };
        if o.atom_sparsity.is_some() {
            need_len(n_features, "n_features")?;
        }
        if o.code_sparsity.is_some() {
            match o.code_constraint {
                CodeConstraint::Components => need_len(n_samples, "n_samples")?,
                CodeConstraint::Samples => need_len(o.k, "k")?,
            }
        }
        Ok(())
    }
}

impl SparseNmfParams {
    /// The defaults with `k` components (no sparseness constraint until one is set).
    pub fn new(k: usize) -> Self {
        SparseNmfParams {
            k,
            ..SparseNmfParams::default()
        }
    }

    /// Checks every parameter that does not depend on the data.
    pub fn check(&self) -> Result<ValidSparseNmfParams> {
        params::check_k_positive(self.k)?;
        for (name, v) in [
            ("atom_sparsity", self.atom_sparsity),
            ("code_sparsity", self.code_sparsity),
        ] {
            if let Some(s) = v {
                params::check_unit(
                    name,
                    s,
                    "Hoyer sparseness: 0 = all entries equal, 1 = a single non-zero",
                )?;
            }
        }
        let stop = StopRules::max_iter(self.max_iter)
            .with_tol(self.tol)
            .with_max_seconds(self.max_seconds);
        stop.validate()?;
        Ok(ValidSparseNmfParams {
            params: self.clone(),
            stop,
        })
    }

    /// [`SparseNmfParams::check`] and [`ValidSparseNmfParams::check_shape`] in one call.
    pub fn validate(&self, n_samples: usize, n_features: usize) -> Result<ValidSparseNmfParams> {
        let v = self.check()?;
        v.check_shape(n_samples, n_features)?;
        Ok(v)
    }
}

/// Smallest step before a projected-gradient factor gives up (the reference's 1e-200).
const MIN_STEP: f64 = 1e-200;
/// The reference's denominator guard in the multiplicative updates.
const MU_EPS: f64 = 1e-9;

struct SparseSolver<T: Real> {
    /// `X / max(X)`, `m × n`.
    x: Mat<T>,
    x_sq: f64,
    /// `max(X)²`: objectives are reported in the original units.
    scale2: f64,
    s_w: Option<f64>,
    s_h: Option<f64>,
    kind: CodeConstraint,
    mu_w: f64,
    mu_h: f64,
    par: Par,
    q: Mat<T>,
    p: Mat<T>,
    t: Mat<T>,
    r: Mat<T>,
    grad_h: Mat<T>,
    grad_w: Mat<T>,
    cand_h: Mat<T>,
    cand_w: Mat<T>,
    /// Set when a step size fell below [`MIN_STEP`].
    stalled: bool,
}

/// Which factor a step updates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Codes,
    Atoms,
}

impl<T: Real> SparseSolver<T> {
    fn parallel(&self) -> bool {
        !matches!(self.par, Par::Seq)
    }

    /// One update of the codes (`F = H`, Gram `Q = WᵀW`, cross `P = WᵀX`) or of the atoms
    /// (`F = Wᵀ`, Gram `T = HHᵀ`, cross `R = HXᵀ`); both have the shape "`k × N` factor, `k × k`
    /// Gram, `k × N` cross term", so one routine serves both (METHODS.md §2.3).
    fn step(&mut self, side: Side, f: &mut Factors<T>) {
        let par = self.par;
        let parallel = self.parallel();
        let (other, target, gram, cross, grad, cand, mu, target_s) = match side {
            Side::Codes => (
                &f.wt,
                &mut f.h,
                &mut self.q,
                &mut self.p,
                &mut self.grad_h,
                &mut self.cand_h,
                &mut self.mu_h,
                self.s_h,
            ),
            Side::Atoms => (
                &f.h,
                &mut f.wt,
                &mut self.t,
                &mut self.r,
                &mut self.grad_w,
                &mut self.cand_w,
                &mut self.mu_w,
                self.s_w,
            ),
        };
        linalg::gram(gram.as_mut(), other.as_ref(), par);
        let data = match side {
            Side::Codes => self.x.as_ref(),
            Side::Atoms => self.x.transpose(),
        };
        linalg::matmul(
            cross.as_mut(),
            Accum::Replace,
            other.as_ref(),
            data,
            T::one(),
            par,
        );
        let Some(s) = target_s else {
            // F ← F ⊙ C ⊘ (G·F + ε) (the reference's MU branch).
            linalg::matmul(
                grad.as_mut(),
                Accum::Replace,
                gram.as_ref(),
                target.as_ref(),
                T::one(),
                par,
            );
            let (c, gf) = (cross.as_ref(), grad.as_ref());
            let eps = T::from_f64(MU_EPS);
            crate::nmf::beta::for_cols(target.as_mut(), parallel, |j, col| {
                for (i, v) in col.iter_mut().enumerate() {
                    *v = *v * c[(i, j)] / (gf[(i, j)] + eps);
                }
            });
            if side == Side::Codes {
                // Rows of H to unit L2, the atoms rescaled inversely (WH unchanged).
                normalize_code_rows(f);
            }
            return;
        };
        // −∇ = C − G·F.
        grad.copy_from(&*cross);
        linalg::matmul(
            grad.as_mut(),
            Accum::Add,
            gram.as_ref(),
            target.as_ref(),
            -T::one(),
            par,
        );
        let objective = |m: MatRef<'_, T>, work: &mut Mat<T>| -> f64 {
            linalg::gram(work.as_mut(), m, par);
            0.5 * (self.x_sq - 2.0 * linalg::inner(cross.as_ref(), m)
                + linalg::inner(gram.as_ref(), work.as_ref()))
            .max(0.0)
        };
        let mut work = Mat::<T>::zeros(target.nrows(), target.nrows());
        let current = objective(target.as_ref(), &mut work);
        loop {
            let step = T::from_f64(*mu);
            let (cur, g) = (target.as_ref(), grad.as_ref());
            crate::nmf::beta::for_cols(cand.as_mut(), parallel, |j, col| {
                for (i, v) in col.iter_mut().enumerate() {
                    *v = cur[(i, j)] + step * g[(i, j)];
                }
            });
            match side {
                Side::Codes => project_codes(cand.as_mut(), s, self.kind, parallel),
                // Each atom keeps the L2 norm it has after the gradient step (reference).
                Side::Atoms => project_rows(cand.as_mut(), s, None, parallel),
            }
            if objective(cand.as_ref(), &mut work) <= current {
                std::mem::swap(target, cand);
                *mu *= 1.2;
                return;
            }
            *mu /= 2.0;
            if *mu < MIN_STEP {
                self.stalled = true;
                return;
            }
        }
    }

    /// Evaluation with `T`, `R` of the current codes.
    fn eval(&mut self, f: &Factors<T>) -> Eval {
        linalg::gram(self.t.as_mut(), f.h.as_ref(), self.par);
        linalg::matmul(
            self.r.as_mut(),
            Accum::Replace,
            f.h.as_ref(),
            self.x.transpose(),
            T::one(),
            self.par,
        );
        let mut ww = Mat::<T>::zeros(f.wt.nrows(), f.wt.nrows());
        linalg::gram(ww.as_mut(), f.wt.as_ref(), self.par);
        let half = 0.5
            * (self.x_sq - 2.0 * linalg::inner(self.r.as_ref(), f.wt.as_ref())
                + linalg::inner(self.t.as_ref(), ww.as_ref()))
            .max(0.0);
        Eval {
            objective: half * self.scale2,
            sq_error: 2.0 * half * self.scale2,
        }
    }
}

impl<T: Real> Iterate<T> for SparseSolver<T> {
    fn initial(&mut self, f: &mut Factors<T>) -> Eval {
        self.eval(f)
    }

    fn iterate(&mut self, f: &mut Factors<T>) -> Eval {
        self.step(Side::Codes, f);
        self.step(Side::Atoms, f);
        self.eval(f)
    }
}

/// Scales every row of `H` to unit L2 norm and the matching atom (row of `Wᵀ`) inversely, so
/// that `WH` is unchanged (the reference's MU branch). Zero rows are left alone.
fn normalize_code_rows<T: Real>(f: &mut Factors<T>) {
    for j in 0..f.h.nrows() {
        let norm = (0..f.h.ncols())
            .map(|i| f.h[(j, i)].to_f64().powi(2))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 && norm.is_finite() {
            let (down, up) = (T::from_f64(1.0 / norm), T::from_f64(norm));
            for i in 0..f.h.ncols() {
                f.h[(j, i)] = f.h[(j, i)] * down;
            }
            for i in 0..f.wt.ncols() {
                f.wt[(j, i)] = f.wt[(j, i)] * up;
            }
        }
    }
}

/// Projects every row of `m` to sparseness `s` with L2 norm `l2` (or, with `None`, the row's own
/// current norm); rows are gathered, projected in parallel, and scattered back.
fn project_rows<T: Real>(mut m: MatMut<'_, T>, s: f64, l2: Option<f64>, parallel: bool) {
    let (k, len) = (m.nrows(), m.ncols());
    let rows: Vec<Vec<T>> = (0..k).map(|j| (0..len).map(|i| m[(j, i)]).collect()).collect();
    let one = |row: &Vec<T>| -> Vec<T> { project_vec(row, s, l2) };
    let out: Vec<Vec<T>> = if parallel {
        rows.par_iter().map(one).collect()
    } else {
        rows.iter().map(one).collect()
    };
    for (j, row) in out.into_iter().enumerate() {
        for (i, v) in row.into_iter().enumerate() {
            m[(j, i)] = v;
        }
    }
}

/// One vector to sparseness `s`: norm `l2`, or its own norm (a zero vector stays zero).
fn project_vec<T: Real>(v: &[T], s: f64, l2: Option<f64>) -> Vec<T> {
    let own = v.iter().map(|x| Real::to_f64(*x).powi(2)).sum::<f64>().sqrt();
    let l2 = l2.unwrap_or(own);
    let mut out = vec![T::zero(); v.len()];
    if !(l2 > 0.0 && l2.is_finite()) {
        return out;
    }
    // Inputs are finite and l2 > 0, so the projection cannot fail.
    if project(v, l1_for(v.len(), s, l2), l2, &mut out).is_err() {
        out.copy_from_slice(v);
    }
    out
}

/// Applies the code constraint to `h` (`k × n`).
fn project_codes<T: Real>(mut h: MatMut<'_, T>, s: f64, kind: CodeConstraint, parallel: bool) {
    match kind {
        CodeConstraint::Components => project_rows(h, s, Some(1.0), parallel),
        CodeConstraint::Samples => crate::nmf::beta::for_cols(h.as_mut(), parallel, |_, col| {
            let p = project_vec(col, s, None);
            col.copy_from_slice(&p);
        }),
    }
}

/// Fits a sparse NMF of `x` (`n_samples × n_features`, samples as rows, entries ≥ 0); the
/// returned model encodes new data by exact NNLS with the learned atoms (§1.7: Hoyer's row
/// constraint has no per-sample transform), while [`NmfFit::codes`] are the constrained codes.
///
/// ```
/// use partlearn::faer::Mat;
/// use partlearn::nmf::sparse::{factorize_sparse, SparseNmfParams};
///
/// let x = Mat::<f32>::from_fn(40, 25, |i, j| ((i + 2 * j) % 5) as f32);
/// let params = SparseNmfParams::new(3).code_sparsity(Some(0.6)).max_iter(50).check()?;
/// let fit = factorize_sparse(x.as_ref(), &params, &mut partlearn::engine::Silent)?;
/// assert_eq!(fit.codes().ncols(), 3);
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn factorize_sparse<T: Real>(
    x: MatRef<'_, T>,
    params: &ValidSparseNmfParams,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    let columns = linalg::Columns::of(x);
    let xt = columns.as_ref();
    crate::data::validate_nonnegative(xt)?;
    params.check_shape(x.nrows(), x.ncols())?;
    let start = Instant::now();
    let o = params.params();
    linalg::with_threads(o.threads, || fit_inner(xt, o, &params.stop, observer, start))?
}

/// [`factorize_sparse`] on a [`Dataset`] with unchecked parameters (checked here).
pub fn fit_sparse<T: Real>(
    data: &Dataset<T>,
    opts: &SparseNmfParams,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    data.validate_nonnegative()?;
    factorize_sparse(data.xt().transpose(), &opts.check()?, observer)
}

fn fit_inner<T: Real>(
    x: MatRef<'_, T>,
    o: &SparseNmfParams,
    stop: &StopRules,
    observer: &mut (dyn Observer + Send),
    start: Instant,
) -> Result<NmfFit<T>> {
    let (m, n, k) = (x.nrows(), x.ncols(), o.k);
    let par = linalg::par(o.threads);
    let parallel = !matches!(par, Par::Seq);
    let peak = (0..n)
        .flat_map(|j| (0..m).map(move |i| (i, j)))
        .map(|(i, j)| x[(i, j)].to_f64())
        .fold(0.0f64, f64::max);
    let scale = if peak > 0.0 { peak } else { 1.0 };
    let xs = Mat::<T>::from_fn(m, n, |i, j| T::from_f64(x[(i, j)].to_f64() / scale));
    let x_norm = linalg::frob_sq(x).sqrt();

    // Reference start: |N(0,1)| factors, unit rows of H, constraints applied.
    let mut rng = Rng::new(o.seed);
    let mut f = Factors {
        wt: Mat::from_fn(k, m, |_, _| T::from_f64(rng.normal().abs())),
        h: Mat::from_fn(k, n, |_, _| T::from_f64(rng.normal().abs())),
    };
    for j in 0..k {
        let norm = (0..n).map(|i| f.h[(j, i)].to_f64().powi(2)).sum::<f64>().sqrt();
        for i in 0..n {
            f.h[(j, i)] = T::from_f64(f.h[(j, i)].to_f64() / norm.max(f64::MIN_POSITIVE));
        }
    }
    if let Some(s) = o.code_sparsity {
        project_codes(f.h.as_mut(), s, o.code_constraint, parallel);
    }
    if let Some(s) = o.atom_sparsity {
        project_rows(f.wt.as_mut(), s, None, parallel);
    }

    let mut solver = SparseSolver {
        x_sq: linalg::frob_sq(xs.as_ref()),
        x: xs,
        scale2: scale * scale,
        s_w: o.atom_sparsity,
        s_h: o.code_sparsity,
        kind: o.code_constraint,
        mu_w: 1.0,
        mu_h: 1.0,
        par,
        q: Mat::zeros(k, k),
        p: Mat::zeros(k, n),
        t: Mat::zeros(k, k),
        r: Mat::zeros(k, m),
        grad_h: Mat::zeros(k, n),
        grad_w: Mat::zeros(k, m),
        cand_h: Mat::zeros(k, n),
        cand_w: Mat::zeros(k, m),
        stalled: false,
    };
    let outcome = fit_loop::run(&mut solver, &mut f, stop, x_norm, start, observer)?;
    let mut warnings = outcome.warnings;
    if solver.stalled {
        warnings.push(Warning::StepSizeUnderflow);
    }
    let last = outcome
        .history
        .last()
        .map_or((0.0, 0.0), |r| (r.objective, r.rel_error));
    let Factors { wt, h } = f;
    let atoms = Mat::from_fn(k, m, |j, i| T::from_f64(wt[(j, i)].to_f64() * scale));
    let spec = EncodeSpec {
        beta_loss: 2.0,
        codes_penalty: Default::default(),
        encode: Default::default(),
    };
    Ok(NmfFit {
        model: NmfModel::new(atoms, spec)?,
        codes_t: h,
        history: outcome.history,
        n_iter: outcome.n_iter,
        stop_reason: outcome.stop_reason,
        warnings,
        objective: last.0,
        reconstruction_err: last.1 * x_norm,
        rel_error: last.1,
        seconds: start.elapsed().as_secs_f64(),
        stats: FitStats::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Control, IterRecord, Silent};
    use crate::sparseness::hoyer;

    fn data(n: usize, m: usize, seed: u64) -> Dataset<f64> {
        let mut r = Rng::new(seed);
        let k = 4;
        let a = Mat::<f64>::from_fn(n, k, |_, _| if r.uniform() < 0.5 { 0.0 } else { r.uniform() });
        let b = Mat::<f64>::from_fn(
            k,
            m,
            |_, _| if r.uniform() < 0.5 { 0.0 } else { 2.0 * r.uniform() },
        );
        let x = &a * &b;
        Dataset::from_columns(
            Mat::from_fn(m, n, |i, j| x[(j, i)] + 0.01 * r.uniform()),
            "planted",
        )
    }

    fn assert_monotone(h: &[IterRecord]) {
        for w in h.windows(2) {
            assert!(
                w[1].objective <= w[0].objective * (1.0 + 1e-12),
                "rose at {}",
                w[1].iter
            );
        }
    }

    #[test]
    fn constraints_hold_and_the_objective_never_rises() {
        let d = data(30, 20, 1);
        for (s_w, s_h, kind) in [
            (Some(0.5), Some(0.6), CodeConstraint::Components),
            (None, Some(0.6), CodeConstraint::Components),
            (Some(0.7), None, CodeConstraint::Components),
            (None, Some(0.5), CodeConstraint::Samples),
            (None, None, CodeConstraint::Components),
        ] {
            let o = SparseNmfParams {
                k: 4,
                atom_sparsity: s_w,
                code_sparsity: s_h,
                code_constraint: kind,
                max_iter: 40,
                tol: 0.0,
                ..Default::default()
            };
            let mut checks = 0;
            let fit = {
                let mut obs = |_: &IterRecord| Control::Continue;
                fit_sparse(&d, &o, &mut obs).unwrap()
            };
            assert_monotone(&fit.history);
            assert_eq!(fit.n_iter, 40);
            let h = fit.codes(); // n × k
            if let Some(s) = s_h {
                match kind {
                    CodeConstraint::Components => {
                        for j in 0..4 {
                            let row: Vec<f64> = (0..30).map(|i| h[(i, j)]).collect();
                            assert!((hoyer(&row).unwrap() - s).abs() < 1e-6, "row {j}");
                            let l2 = row.iter().map(|v| v * v).sum::<f64>().sqrt();
                            assert!((l2 - 1.0).abs() < 1e-9);
                            checks += 1;
                        }
                    }
                    CodeConstraint::Samples => {
                        for i in 0..30 {
                            let code: Vec<f64> = (0..4).map(|j| h[(i, j)]).collect();
                            if let Some(v) = hoyer(&code) {
                                assert!((v - s).abs() < 1e-6, "sample {i}: {v}");
                                checks += 1;
                            }
                        }
                    }
                }
            }
            if let Some(s) = s_w {
                let a = fit.model.components();
                for j in 0..4 {
                    let atom: Vec<f64> = (0..20).map(|i| a[(j, i)]).collect();
                    assert!((hoyer(&atom).unwrap() - s).abs() < 1e-6, "atom {j}");
                    checks += 1;
                }
            }
            assert!(checks > 0 || (s_w.is_none() && s_h.is_none()));
            assert!(fit.history.last().unwrap().objective < fit.history[0].objective);
        }
    }

    #[test]
    fn every_iterate_satisfies_the_constraints() {
        // Stop after each of the first iterations and check the factors of that iterate.
        let d = data(25, 16, 2);
        for iters in 1..6 {
            let o = SparseNmfParams {
                k: 3,
                atom_sparsity: Some(0.6),
                code_sparsity: Some(0.4),
                max_iter: iters,
                tol: 0.0,
                ..Default::default()
            };
            let fit = fit_sparse(&d, &o, &mut Silent).unwrap();
            let h = fit.codes();
            for j in 0..3 {
                let row: Vec<f64> = (0..25).map(|i| h[(i, j)]).collect();
                assert!((hoyer(&row).unwrap() - 0.4).abs() < 1e-6);
                let atom: Vec<f64> = (0..16).map(|i| fit.model.components()[(j, i)]).collect();
                assert!((hoyer(&atom).unwrap() - 0.6).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn f32_and_f64_agree_and_threads_give_the_same_bits() {
        let d = data(200, 30, 3);
        let o = SparseNmfParams {
            k: 4,
            code_sparsity: Some(0.5),
            max_iter: 20,
            tol: 0.0,
            ..Default::default()
        };
        let a = fit_sparse(&d, &o, &mut Silent).unwrap();
        let b = fit_sparse(&d.cast::<f32>(), &o, &mut Silent).unwrap();
        assert!(
            (a.rel_error - b.rel_error).abs() < 1e-3 * a.rel_error,
            "{} vs {}",
            a.rel_error,
            b.rel_error
        );
        let d32 = d.cast::<f32>();
        let one = fit_sparse(&d32, &o, &mut Silent).unwrap();
        let two = fit_sparse(
            &d32,
            &SparseNmfParams {
                threads: 2,
                ..o.clone()
            },
            &mut Silent,
        )
        .unwrap();
        assert_eq!(one.model.components(), two.model.components());
        assert_eq!(one.codes(), two.codes());
    }

    #[test]
    fn data_scaling_is_undone_in_the_model() {
        let d = data(40, 12, 4);
        let big = Dataset::from_columns(Mat::from_fn(12, 40, |i, j| 1000.0 * d.xt()[(i, j)]), "big");
        let o = SparseNmfParams {
            k: 4,
            code_sparsity: Some(0.3),
            max_iter: 30,
            tol: 0.0,
            ..Default::default()
        };
        let a = fit_sparse(&d, &o, &mut Silent).unwrap();
        let b = fit_sparse(&big, &o, &mut Silent).unwrap();
        assert!((a.rel_error - b.rel_error).abs() < 1e-9);
        assert!((b.objective / a.objective - 1e6).abs() < 1e-3);
        let recon = b.codes() * b.model.components();
        let err = (&recon - big.x()).norm_l2() / big.x().norm_l2();
        assert!((err - b.rel_error).abs() < 1e-9);
    }

    #[test]
    fn bad_options_are_errors() {
        let d = data(10, 5, 5);
        for o in [
            SparseNmfParams {
                k: 0,
                ..Default::default()
            },
            SparseNmfParams {
                code_sparsity: Some(1.5),
                ..Default::default()
            },
            SparseNmfParams {
                k: 1,
                code_sparsity: Some(0.5),
                code_constraint: CodeConstraint::Samples,
                ..Default::default()
            },
        ] {
            assert!(fit_sparse(&d, &o, &mut Silent).is_err(), "{o:?}");
        }
        assert!("per-sample".parse::<CodeConstraint>().is_ok());
        assert!("rows".parse::<CodeConstraint>().is_err());
    }
}
