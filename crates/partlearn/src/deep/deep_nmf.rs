//! Deep NMF fine-tuning (METHODS.md §4.2, the fully non-negative variant) inside the shared
//! fit loop, [`crate::engine`].
//!
//! Starting from a layer stack (a hierarchical NMF, [`super::hnmf`]), `½‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖²`
//! is minimized jointly by multiplicative updates: with `Ψ = A⁽⁰⁾⋯A⁽ⁱ⁻¹⁾` (updated layers) and
//! `H̃ = A⁽ⁱ⁺¹⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾`, `A⁽ⁱ⁾ ← A⁽ⁱ⁾ ⊙ (ΨᵀX H̃ᵀ) ⊘ (ΨᵀΨ A⁽ⁱ⁾ H̃H̃ᵀ + ε)`, then
//! `S⁽ᴸ⁾ ← S⁽ᴸ⁾ ⊙ (ΦᵀX) ⊘ (ΦᵀΦ S⁽ᴸ⁾ + ε)`, `Φ = A⁽⁰⁾⋯A⁽ᴸ⁾`. Each block update is a Lee–Seung
//! step on a quadratic in that block, so the objective never increases. §10 leaves open which
//! method the slides' "Deep NMF" column is; this is the Trigeorgis-type joint fine-tuning with
//! non-negative factors. The lower layers' codes follow the stack, `S⁽ⁱ⁾ = A⁽ⁱ⁺¹⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾`
//! (they are the `H̃`'s of the next sweep). Every product is written into a workspace allocated
//! once per fit.

use std::time::Instant;

use faer::{Accum, Mat, MatRef, Par};
use serde::{Deserialize, Serialize};

use super::hnmf::LayerStack;
use crate::data::labels::Labels;
use crate::engine::{
    self, Clock, Eval, IterRecord, Observer, Resume, Step, StopReason, StopRules, Warning, Within,
};
use crate::error::{Error, Result};
use crate::linalg;
use crate::params;
use crate::real::Real;
use crate::rng::Rng;

/// Parameters of the Deep NMF fine-tuning (METHODS.md §4.2, the fully non-negative variant).
/// Build with [`FineTuneParams::new`] and the setters, then [`check`](FineTuneParams::check).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FineTuneParams {
    /// Sweeps over all layers (each updates every `A⁽ⁱ⁾`, `B` and `S⁽ᴸ⁾` once; default 2000).
    pub max_iter: usize,
    /// Windowed relative-decrease rule of [`StopRules::tol`] (default 0: disabled).
    pub tol: f64,
    /// Time budget in seconds.
    #[serde(default)]
    pub max_seconds: Option<f64>,
    /// Worker threads of the products (1 = sequential, 0 = all cores).
    #[serde(skip)]
    pub threads: usize,
}

impl Default for FineTuneParams {
    fn default() -> Self {
        FineTuneParams {
            max_iter: 2000,
            tol: 0.0,
            max_seconds: None,
            threads: 1,
        }
    }
}

params::setters!(FineTuneParams {
    max_iter: usize,
    tol: f64,
    max_seconds: Option<f64>,
    threads: usize,
});

impl FineTuneParams {
    /// The defaults: 2000 sweeps, no tolerance, no time budget, one thread.
    pub fn new() -> Self {
        FineTuneParams::default()
    }

    /// Checks the parameters (the stack and the label term are checked when fitting).
    pub fn check(&self) -> Result<ValidFineTuneParams> {
        let stop = params::stop_rules("max_iter", self.max_iter, self.tol, self.max_seconds)?;
        Ok(ValidFineTuneParams {
            params: self.clone(),
            stop,
        })
    }
}

/// [`FineTuneParams`] that passed [`FineTuneParams::check`]: the only form [`fine_tune`] accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidFineTuneParams {
    params: FineTuneParams,
    stop: StopRules,
}

impl ValidFineTuneParams {
    /// The checked parameters.
    pub fn params(&self) -> &FineTuneParams {
        &self.params
    }

    /// The engine's stopping rules of these parameters (a sweep is an iteration).
    pub fn stop_rules(&self) -> &StopRules {
        &self.stop
    }
}

/// The label term of a (semi-)supervised fine-tuning, `(λ/2)‖L⊙(Y − BS⁽ᴸ⁾)‖²` (SSNMF's model 3
/// on the last layer, §3). Built by [`LabelTerm::new`] from the labels.
#[derive(Clone, Debug)]
pub struct LabelTerm<T: Real> {
    /// One-hot labels `c × n` (samples as columns).
    pub(crate) y: Mat<T>,
    /// Label mask `c × n` (columns of ones where known).
    pub(crate) l: Mat<T>,
    /// Weight `λ ≥ 0` of the term.
    pub lambda: f64,
    /// Classifier `c × k_L` (updated by the fine-tuning).
    pub b: Mat<T>,
}

impl<T: Real> LabelTerm<T> {
    /// The term of `labels` for codes of rank `k`, `B ~ U[0,1)`.
    pub fn new(labels: &Labels, k: usize, lambda: f64, rng: &mut Rng) -> Self {
        let c = labels.n_classes().max(1);
        let (y, l) = labels.one_hot(c);
        LabelTerm {
            y,
            l,
            lambda,
            b: Mat::from_fn(c, k, |_, _| T::from_f64(rng.uniform())),
        }
    }
}

/// Deep NMF fine-tuning result.
#[derive(Clone, Debug)]
pub struct DeepNmfFit<T: Real> {
    /// The fine-tuned stack.
    pub stack: LayerStack<T>,
    /// The label term with its fitted classifier `B`, when supervised.
    pub labels: Option<LabelTerm<T>>,
    /// Iteration 0 and every sweep.
    pub history: Vec<IterRecord>,
    /// Sweeps completed.
    pub n_iter: usize,
    /// Why the fine-tuning stopped.
    pub stop_reason: StopReason,
    /// E.g. max_iter reached before the tolerance was met.
    pub warnings: Vec<Warning>,
}

const EPS: f64 = 1e-10;

/// `M ← M ⊙ num ⊘ (den + ε)`.
fn mu_step<T: Real>(m: &mut Mat<T>, num: &Mat<T>, den: &Mat<T>) {
    let eps = T::from_f64(EPS);
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            m[(i, j)] = m[(i, j)] * num[(i, j)] / (den[(i, j)] + eps);
        }
    }
}

/// `dst ← lhs·rhs`.
fn prod<T: Real>(dst: &mut Mat<T>, lhs: MatRef<'_, T>, rhs: MatRef<'_, T>, par: Par) {
    linalg::matmul(dst.as_mut(), Accum::Replace, lhs, rhs, T::one(), par);
}

/// Joint fine-tuning of a stack (module doc) on `x` (`n × m`, samples as rows), reporting
/// iteration 0 and every sweep to `observer`, on `params.threads` threads. With `labels`, the
/// label term is added: `B` gets its own multiplicative update and the codes' update gains
/// `λBᵀ(L⊙Y)` / `λBᵀ(L⊙BS)` (still non-increasing). The stack must have been fitted on `x`, and
/// the label term have `λ ≥ 0` and one label per sample.
///
/// ```
/// use partlearn::deep::deep_nmf::{fine_tune, FineTuneParams};
/// use partlearn::deep::hnmf::hierarchical;
/// use partlearn::engine::Silent;
/// use partlearn::faer::Mat;
/// use partlearn::nmf::NmfParams;
///
/// // 20 samples (rows) of 8 features: a two-layer hierarchy, then 50 joint sweeps.
/// let x = Mat::<f64>::from_fn(20, 8, |j, i| ((i + 3 * j) % 5) as f64 + 0.5);
/// let stack = hierarchical(x.as_ref(), &[4, 2], &NmfParams::new(1).max_iter(100).check()?)?.stack;
/// let before = stack.rel_error(x.as_ref());
/// let params = FineTuneParams::new().max_iter(50).check()?;
/// let fit = fine_tune(x.as_ref(), stack, None, &params, &mut Silent)?;
/// assert!(fit.stack.rel_error(x.as_ref()) <= before + 1e-12);
/// assert_eq!(fit.stack.top_codes().shape(), (20, 2));
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn fine_tune<T: Real>(
    x: MatRef<'_, T>,
    mut stack: LayerStack<T>,
    mut labels: Option<LabelTerm<T>>,
    params: &ValidFineTuneParams,
    observer: &mut (dyn Observer + Send),
) -> Result<DeepNmfFit<T>> {
    let start = Instant::now();
    if let Some(t) = &labels {
        params::check_weight("lambda", t.lambda)?;
    }
    // METHODS.md's layout, samples as columns (a view), in which the stack keeps its codes.
    let x = x.transpose();
    stack.check_columns(x)?;
    if let Some(t) = &labels {
        let (k, n) = (stack.a[stack.a.len() - 1].ncols(), x.ncols());
        if t.y.shape() != (t.b.nrows(), n) || t.l.shape() != t.y.shape() || t.b.ncols() != k {
            return Err(Error::ShapeMismatch {
                what: "label term".into(),
                expected: format!("labels of {n} samples (one per sample), a classifier of {k} columns"),
                found: format!(
                    "labels of {} samples, classifier {} × {}",
                    t.y.ncols(),
                    t.b.nrows(),
                    t.b.ncols()
                ),
                hint: "build the term with LabelTerm::new for the stack's last rank".into(),
            });
        }
    }
    let threads = params.params().threads;
    let out = linalg::with_threads(threads, || {
        let mut method = FineTune::new(x, &mut stack, labels.as_mut(), linalg::par(threads));
        engine::run(
            &mut method,
            params.stop_rules(),
            Resume::default(),
            Clock::since(start),
            observer,
        )
    })??;
    Ok(DeepNmfFit {
        stack,
        labels,
        history: out.history,
        n_iter: out.n_iter,
        stop_reason: out.stop_reason,
        warnings: out.warnings,
    })
}

/// The products of one sweep, allocated once per fit (`rows_i` = `m` for `i = 0`, else
/// `k_{i−1}`).
struct Work<T: Real> {
    /// `H̃_iH̃_iᵀ` (`k_i × k_i`).
    hh: Vec<Mat<T>>,
    /// Numerator and denominator of the `A⁽ⁱ⁾`-update (`rows_i × k_i`).
    num: Vec<Mat<T>>,
    den: Vec<Mat<T>>,
    /// For `i ≥ 1`: `ΨᵀX` (`k_{i−1} × n`), `ΨᵀΨ` (`k_{i−1} × k_{i−1}`), `ΨᵀΨA⁽ⁱ⁾`
    /// (`k_{i−1} × k_i`), and `Ψ_i = A⁽⁰⁾⋯A⁽ⁱ⁾` (`m × k_i`; `Ψ_0` is `A⁽⁰⁾` itself).
    ptx: Vec<Mat<T>>,
    ptp: Vec<Mat<T>>,
    ptpa: Vec<Mat<T>>,
    psi: Vec<Mat<T>>,
    /// The `S⁽ᴸ⁾`-update (`k_L × n`) and `ΦᵀΦ` (`k_L × k_L`).
    num_s: Mat<T>,
    den_s: Mat<T>,
    ptp_top: Mat<T>,
    /// The reconstruction `A⁽⁰⁾S⁽⁰⁾` (`m × n`).
    z: Mat<T>,
    /// Label term: `BS` (masked in the update, `c × n`), `L⊙Y`, the `B`-update (`c × k_L`) and
    /// the label parts of the `S⁽ᴸ⁾`-update (`k_L × n`).
    bs: Mat<T>,
    ly: Mat<T>,
    num_b: Mat<T>,
    den_b: Mat<T>,
    tn: Mat<T>,
    td: Mat<T>,
}

/// The fine-tuning as an engine method.
struct FineTune<'a, T: Real> {
    x: MatRef<'a, T>,
    stack: &'a mut LayerStack<T>,
    labels: Option<&'a mut LabelTerm<T>>,
    x_norm_sq: f64,
    par: Par,
    w: Work<T>,
}

impl<'a, T: Real> FineTune<'a, T> {
    fn new(
        x: MatRef<'a, T>,
        stack: &'a mut LayerStack<T>,
        labels: Option<&'a mut LabelTerm<T>>,
        par: Par,
    ) -> Self {
        let (m, n) = (x.nrows(), x.ncols());
        let ks: Vec<usize> = stack.a.iter().map(|a| a.ncols()).collect();
        let rows = |i: usize| if i == 0 { m } else { ks[i - 1] };
        let z = Mat::<T>::zeros;
        let each = |f: &dyn Fn(usize) -> (usize, usize)| -> Vec<Mat<T>> {
            (0..ks.len())
                .map(|i| {
                    let (r, c) = f(i);
                    z(r, c)
                })
                .collect()
        };
        let above = |i: usize| if i == 0 { 0 } else { ks[i - 1] };
        let kl = ks[ks.len() - 1];
        let c = labels.as_ref().map_or(0, |t| t.y.nrows());
        let ly = match &labels {
            Some(t) => Mat::from_fn(c, n, |i, j| t.l[(i, j)] * t.y[(i, j)]),
            None => z(0, 0),
        };
        let (lab_n, lab_k) = if labels.is_some() { (n, kl) } else { (0, 0) };
        let w = Work {
            hh: each(&|i| (ks[i], ks[i])),
            num: each(&|i| (rows(i), ks[i])),
            den: each(&|i| (rows(i), ks[i])),
            ptx: each(&|i| (above(i), if i == 0 { 0 } else { n })),
            ptp: each(&|i| (above(i), above(i))),
            ptpa: each(&|i| (above(i), if i == 0 { 0 } else { ks[i] })),
            psi: each(&|i| if i == 0 { (0, 0) } else { (m, ks[i]) }),
            num_s: z(kl, n),
            den_s: z(kl, n),
            ptp_top: z(kl, kl),
            z: z(m, n),
            bs: z(c, lab_n),
            ly,
            num_b: z(c, lab_k),
            den_b: z(c, lab_k),
            tn: z(lab_k, lab_n),
            td: z(lab_k, lab_n),
        };
        FineTune {
            x,
            stack,
            labels,
            x_norm_sq: linalg::frob_sq(x),
            par,
            w,
        }
    }

    /// `S⁽ⁱ⁾ ← A⁽ⁱ⁺¹⁾S⁽ⁱ⁺¹⁾` for `i = L−1, …, 0`.
    fn codes_follow(&mut self) {
        let st = &mut *self.stack;
        for i in (0..st.a.len() - 1).rev() {
            let (lo, hi) = st.s.split_at_mut(i + 1);
            prod(&mut lo[i], st.a[i + 1].as_ref(), hi[0].as_ref(), self.par);
        }
    }

    /// The objective `½‖X − A⁽⁰⁾S⁽⁰⁾‖² + (λ/2)‖L⊙(Y − BS⁽ᴸ⁾)‖²` and the relative error, with the
    /// lower codes following the stack.
    fn eval(&mut self) -> Eval {
        let (x, par, w, st) = (self.x, self.par, &mut self.w, &*self.stack);
        prod(&mut w.z, st.a[0].as_ref(), st.s[0].as_ref(), par);
        let sq = sum_sq(x.nrows(), x.ncols(), |i, j| x[(i, j)] - w.z[(i, j)]);
        let rel = (sq / self.x_norm_sq.max(f64::MIN_POSITIVE)).sqrt();
        let mut objective = 0.5 * rel.powi(2) * self.x_norm_sq;
        if let Some(t) = self.labels.as_deref() {
            let s_l = st.s[st.s.len() - 1].as_ref();
            prod(&mut w.bs, t.b.as_ref(), s_l, par);
            let bs = &w.bs;
            let v = sum_sq(t.y.nrows(), t.y.ncols(), |i, j| {
                t.l[(i, j)] * (t.y[(i, j)] - bs[(i, j)])
            });
            objective += 0.5 * t.lambda * v;
        }
        Eval::new(objective, rel)
    }
}

/// `Σ_ij f(i, j)²` accumulated in f64 column by column (as [`linalg::frob_sq`]).
fn sum_sq<T: Real>(rows: usize, cols: usize, f: impl Fn(usize, usize) -> T) -> f64 {
    let mut s = 0.0f64;
    for j in 0..cols {
        let mut sj = 0.0f64;
        for i in 0..rows {
            let v = f(i, j).to_f64();
            sj += v * v;
        }
        s += sj;
    }
    s
}

impl<T: Real> engine::Method for FineTune<'_, T> {
    fn name(&self) -> &'static str {
        "Deep NMF"
    }

    fn non_finite_hint(&self) -> &'static str {
        "check the data"
    }

    fn start(&mut self) -> Result<Option<Eval>> {
        self.codes_follow();
        Ok(Some(self.eval()))
    }

    fn step(&mut self, _iter: usize, _within: &mut Within<'_>) -> Result<Step> {
        let (x, par) = (self.x, self.par);
        let (st, w) = (&mut *self.stack, &mut self.w);
        let l = st.a.len() - 1;
        // H̃_i = S⁽ⁱ⁾ (the codes follow the stack as it is at the start of the sweep).
        for i in 0..=l {
            let h = st.s[i].as_ref();
            prod(&mut w.hh[i], h, h.transpose(), par);
            if i == 0 {
                prod(&mut w.num[0], x, h.transpose(), par);
                prod(&mut w.den[0], st.a[0].as_ref(), w.hh[0].as_ref(), par);
            } else {
                let p = if i == 1 {
                    st.a[0].as_ref()
                } else {
                    w.psi[i - 1].as_ref()
                };
                prod(&mut w.ptx[i], p.transpose(), x, par);
                prod(&mut w.num[i], w.ptx[i].as_ref(), h.transpose(), par);
                prod(&mut w.ptp[i], p.transpose(), p, par);
                prod(&mut w.ptpa[i], w.ptp[i].as_ref(), st.a[i].as_ref(), par);
                prod(&mut w.den[i], w.ptpa[i].as_ref(), w.hh[i].as_ref(), par);
            }
            mu_step(&mut st.a[i], &w.num[i], &w.den[i]);
            if i > 0 {
                let (before, after) = w.psi.split_at_mut(i);
                let p = if i == 1 {
                    st.a[0].as_ref()
                } else {
                    before[i - 1].as_ref()
                };
                prod(&mut after[0], p, st.a[i].as_ref(), par);
            }
        }
        let phi = if l == 0 {
            st.a[0].as_ref()
        } else {
            w.psi[l].as_ref()
        };
        prod(&mut w.num_s, phi.transpose(), x, par);
        prod(&mut w.ptp_top, phi.transpose(), phi, par);
        prod(&mut w.den_s, w.ptp_top.as_ref(), st.s[l].as_ref(), par);
        if let Some(t) = self.labels.as_deref_mut() {
            let s_l = st.s[l].as_ref();
            let mask = |bs: &mut Mat<T>| {
                for j in 0..bs.ncols() {
                    for i in 0..bs.nrows() {
                        bs[(i, j)] = t.l[(i, j)] * bs[(i, j)];
                    }
                }
            };
            prod(&mut w.bs, t.b.as_ref(), s_l, par);
            mask(&mut w.bs);
            prod(&mut w.num_b, w.ly.as_ref(), s_l.transpose(), par);
            prod(&mut w.den_b, w.bs.as_ref(), s_l.transpose(), par);
            mu_step(&mut t.b, &w.num_b, &w.den_b);
            prod(&mut w.bs, t.b.as_ref(), s_l, par);
            mask(&mut w.bs);
            let lam = T::from_f64(t.lambda);
            prod(&mut w.tn, t.b.transpose(), w.ly.as_ref(), par);
            prod(&mut w.td, t.b.transpose(), w.bs.as_ref(), par);
            for j in 0..w.num_s.ncols() {
                for i in 0..w.num_s.nrows() {
                    w.num_s[(i, j)] = w.num_s[(i, j)] + w.tn[(i, j)] * lam;
                    w.den_s[(i, j)] = w.den_s[(i, j)] + w.td[(i, j)] * lam;
                }
            }
        }
        mu_step(&mut st.s[l], &w.num_s, &w.den_s);
        self.codes_follow();
        Ok(Step::Done(self.eval()))
    }
}

/// `½‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖² + (λ/2)‖L⊙(Y − BS⁽ᴸ⁾)‖²` computed densely in f64 by plain loops from
/// the factors alone (for the tests: nothing of the solver's own arithmetic).
#[cfg(test)]
pub(crate) fn dense_objective<T: Real>(
    x: MatRef<'_, T>,
    stack: &LayerStack<T>,
    labels: Option<&LabelTerm<T>>,
) -> f64 {
    let f64_of = |m: MatRef<'_, T>| -> Vec<Vec<f64>> {
        (0..m.nrows())
            .map(|i| (0..m.ncols()).map(|j| m[(i, j)].to_f64()).collect())
            .collect()
    };
    let times = |a: &[Vec<f64>], b: &[Vec<f64>]| -> Vec<Vec<f64>> {
        let (r, inner, c) = (a.len(), b.len(), b.first().map_or(0, |row| row.len()));
        (0..r)
            .map(|i| {
                (0..c)
                    .map(|j| (0..inner).map(|t| a[i][t] * b[t][j]).sum())
                    .collect()
            })
            .collect()
    };
    let l = stack.a.len() - 1;
    let s_l = f64_of(stack.s[l].as_ref());
    let mut z = s_l.clone();
    for a in stack.a.iter().rev() {
        z = times(&f64_of(a.as_ref()), &z);
    }
    let mut v = 0.0;
    for (i, row) in z.iter().enumerate() {
        for (j, zij) in row.iter().enumerate() {
            v += (x[(i, j)].to_f64() - zij).powi(2);
        }
    }
    let mut obj = 0.5 * v;
    if let Some(t) = labels {
        let bs = times(&f64_of(t.b.as_ref()), &s_l);
        let mut w = 0.0;
        for (i, row) in bs.iter().enumerate() {
            for (j, b) in row.iter().enumerate() {
                w += (t.l[(i, j)].to_f64() * (t.y[(i, j)].to_f64() - b)).powi(2);
            }
        }
        obj += 0.5 * t.lambda * w;
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::deep::hnmf::hierarchical;
    use crate::engine::Silent;
    use crate::nmf::{NmfParams, Solver};

    fn toy_stack(ranks: &[usize]) -> (Dataset<f64>, LayerStack<f64>) {
        let d = crate::data::named::toy_hierarchy::<f64>(0);
        let o = NmfParams {
            solver: Solver::Hals,
            max_iter: 200,
            ..NmfParams::default()
        };
        let st = hierarchical(d.x(), ranks, &o.check().unwrap()).unwrap().stack;
        (d, st)
    }

    /// [`fine_tune`] with the parameters checked first.
    fn tune(
        x: MatRef<'_, f64>,
        stack: LayerStack<f64>,
        labels: Option<LabelTerm<f64>>,
        o: &FineTuneParams,
    ) -> Result<DeepNmfFit<f64>> {
        fine_tune(x, stack, labels, &o.check()?, &mut Silent)
    }

    fn term(d: &Dataset<f64>, k: usize) -> LabelTerm<f64> {
        let labels = Labels::new(d.extra_labels[1].1.clone(), (0..90).map(|j| j % 2 == 0).collect()).unwrap();
        LabelTerm::new(&labels, k, 0.5, &mut Rng::new(1))
    }

    /// The objective the engine records is the dense one of the returned factors, and a run of
    /// k sweeps equals k runs of one sweep each restarted from the previous output.
    #[test]
    fn restarts_continue_bit_for_bit_and_the_record_is_the_dense_objective() {
        let (d, st) = toy_stack(&[9, 4, 2]);
        let x = d.x();
        let o = FineTuneParams {
            max_iter: 25,
            ..FineTuneParams::default()
        };
        let straight = tune(x, st.clone(), Some(term(&d, 2)), &o).unwrap();
        let (mut s, mut t) = (st, Some(term(&d, 2)));
        for _ in 0..25 {
            let one = FineTuneParams {
                max_iter: 1,
                ..o.clone()
            };
            let f = tune(x, s, t, &one).unwrap();
            (s, t) = (f.stack, f.labels);
        }
        assert_eq!(s.a, straight.stack.a);
        assert_eq!(s.s, straight.stack.s);
        assert_eq!(t.unwrap().b, straight.labels.as_ref().unwrap().b);
        let dense = dense_objective(d.xt(), &straight.stack, straight.labels.as_ref());
        let rec = straight.history.last().unwrap().objective;
        assert!((dense - rec).abs() <= 1e-10 * dense, "{dense} vs {rec}");
    }

    /// A time budget ends a long fine-tuning; max_iter ends one with a tolerance with the
    /// max-iter warning (and without one, silently); iteration 0 is recorded.
    #[test]
    fn time_budget_and_max_iter_warning() {
        let (d, st) = toy_stack(&[9, 4]);
        let x = d.x();
        let long = FineTuneParams {
            max_iter: 100_000_000,
            max_seconds: Some(0.2),
            ..FineTuneParams::default()
        };
        let f = tune(x, st.clone(), None, &long).unwrap();
        assert_eq!(f.stop_reason, StopReason::TimeLimit);
        assert!(f.n_iter >= 1 && f.warnings.is_empty());
        let o = FineTuneParams {
            max_iter: 15,
            tol: 1e-14,
            ..FineTuneParams::default()
        };
        let f = tune(x, st.clone(), None, &o).unwrap();
        assert_eq!(
            (f.stop_reason, f.n_iter, f.history.len()),
            (StopReason::MaxIter, 15, 16)
        );
        assert!(
            matches!(
                f.warnings.as_slice(),
                [Warning::MaxIterReached { max_iter: 15, .. }]
            ),
            "{:?}",
            f.warnings
        );
        let f = tune(
            x,
            st.clone(),
            None,
            &FineTuneParams {
                tol: 0.0,
                ..o.clone()
            },
        )
        .unwrap();
        assert!(f.warnings.is_empty());
        for (bad, name) in [
            (o.clone().max_iter(0), "max_iter"),
            (o.clone().tol(-1.0), "tol"),
            (o.clone().tol(f64::NAN), "tol"),
            (o.clone().max_seconds(Some(0.0)), "max_seconds"),
        ] {
            assert!(
                matches!(bad.check(), Err(Error::InvalidOption { option, .. }) if option == name),
                "{bad:?}"
            );
            assert!(tune(x, st.clone(), None, &bad).is_err(), "{bad:?}");
        }
        // A label term with a negative weight, or of other shapes than the stack's.
        let mut neg = term(&d, 4);
        neg.lambda = -1.0;
        assert!(matches!(
            tune(x, st.clone(), Some(neg), &o),
            Err(Error::InvalidOption { option: "lambda", .. })
        ));
        assert!(matches!(
            tune(x, st.clone(), Some(term(&d, 2)), &o),
            Err(Error::ShapeMismatch { .. })
        ));
        // A stack fitted on other data is refused.
        assert!(tune(x.subrows(0, 50), st, None, &o).is_err());
    }

    /// Same seed, same bits with 1 and 2 threads.
    #[test]
    fn one_and_two_threads_give_the_same_bits() {
        let (d, st) = toy_stack(&[9, 4, 2]);
        let o = FineTuneParams {
            max_iter: 30,
            ..FineTuneParams::default()
        };
        let one = tune(d.x(), st.clone(), Some(term(&d, 2)), &o).unwrap();
        let o2 = FineTuneParams { threads: 2, ..o };
        let two = tune(d.x(), st, Some(term(&d, 2)), &o2).unwrap();
        assert_eq!(one.stack.a, two.stack.a);
        assert_eq!(one.stack.s, two.stack.s);
        assert_eq!(one.labels.as_ref().unwrap().b, two.labels.as_ref().unwrap().b);
        let obj = |f: &DeepNmfFit<f64>| f.history.iter().map(|h| h.objective).collect::<Vec<_>>();
        assert_eq!(obj(&one), obj(&two));
    }
}
