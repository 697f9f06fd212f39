//! Neural NMF (METHODS.md §4.3): a stack of NNLS layers `S⁽ⁱ⁾ = q(S⁽ⁱ⁻¹⁾, A⁽ⁱ⁾)`,
//! `q(X, A) = argmin_{S ≥ 0} ‖X − AS‖²` (block principal pivoting, supports warm-started from
//! the previous epoch), trained by projected gradient descent on the `A`'s with the exact
//! derivative of `q`.
//!
//! Backward pass of one layer (per column, support `P`, `M = A[:,P]`, `u = (MᵀM)⁻¹ g_P`):
//! `∂C/∂x = M u` and `∂C/∂A[:,P] += −(M u) s_Pᵀ + r uᵀ` with `r = x − M s_P`. With `U` the matrix
//! of the `u`'s (zero off the supports) this is, for all columns at once,
//! `∂C/∂X = A U` and `∂C/∂A = −(A U) Sᵀ + R Uᵀ`, `R = X − A S`: GEMMs plus one small solve
//! per group of columns sharing a support ([`crate::linalg::nnls::solve_on_supports`]).
//!
//! Costs follow the reference code's scaling (METHODS.md §4.3, §10: the paper writes ½‖·‖²,
//! the code a mean over entries; the mean is used here so that its learning rates carry over):
//! reconstruction `(1/N)‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖²`, energy `Σ_i (1/N_i)‖S⁽ⁱ⁻¹⁾ − A⁽ⁱ⁾S⁽ⁱ⁾‖²`, plus
//! `λ·ℓ(B S⁽ᴸ⁾)` on the labeled columns (mean squared error against one-hot labels, or
//! cross-entropy of the softmax). Samples are columns here (`X` is `m × n`), as in METHODS.md.
//!
//! The reference code's three bugs (§4.3) are avoided: the projection onto `A ≥ 0` is applied in
//! every mode, the epoch count is the caller's in every mode, and the L2 classification loss
//! compares with one-hot labels.

use std::time::Instant;

use faer::{Accum, Mat, MatRef, Par};
use serde::{Deserialize, Serialize};

use crate::engine::{Control, IterRecord, Observer, StopReason};
use crate::error::{Error, Result};
use crate::linalg;
use crate::linalg::nnls::{solve_gram, solve_on_supports, NnlsOptions};
use crate::real::Real;
use crate::rng::Rng;

/// The unsupervised part of the cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cost {
    /// `(1/N)‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖²` ("Recon Loss", the unsupervised default).
    Reconstruction,
    /// `Σ_i (1/N_i)‖S⁽ⁱ⁻¹⁾ − A⁽ⁱ⁾S⁽ⁱ⁾‖²` ("Energy Loss").
    Energy,
}

/// Classification loss on the last layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassLoss {
    /// `(1/n_ℓ) Σ_j ‖y_j − B s_j‖²` over the labeled columns (one-hot `y`).
    L2,
    /// `(1/n_ℓ) Σ_j −log softmax(B s_j)[y_j]` over the labeled columns.
    CrossEntropy,
}

/// Training options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuralOptions {
    /// `k₀ > k₁ > …`: one NNLS layer per rank.
    pub ranks: Vec<usize>,
    pub cost: Cost,
    pub epochs: usize,
    /// Step of the projected gradient on the `A`'s.
    pub lr: f64,
    /// Multiply the learning rates by `decay` every `decay_every` epochs.
    pub decay: f64,
    pub decay_every: usize,
    /// Adam steps (then the projection) instead of plain gradient steps.
    pub adam: bool,
    /// Weight `λ` of the classification term (supervised runs).
    pub lambda: f64,
    pub class_loss: ClassLoss,
    /// Step and number of gradient steps on the classifier `B` per epoch (the reference: 30).
    pub lr_class: f64,
    pub class_steps: usize,
    /// Independent starts (seeds `seed`, `seed + 1`, …); the one with the lowest final cost is
    /// kept (random starts can stall in a local minimum, METHODS.md §5.3 used 10).
    #[serde(default = "one")]
    pub restarts: usize,
    pub seed: u64,
    #[serde(skip)]
    pub threads: usize,
    #[serde(skip)]
    pub max_seconds: Option<f64>,
}

impl Default for NeuralOptions {
    fn default() -> Self {
        NeuralOptions {
            ranks: vec![9, 4, 2],
            cost: Cost::Reconstruction,
            epochs: 10_000,
            lr: 1.0,
            decay: 1.0,
            decay_every: 1,
            adam: false,
            lambda: 1e-4,
            class_loss: ClassLoss::L2,
            lr_class: 0.01,
            class_steps: 30,
            restarts: 1,
            seed: 0,
            threads: 1,
            max_seconds: None,
        }
    }
}

/// Labels for (semi-)supervised training: one class per column and which columns are known.
#[derive(Clone, Debug, PartialEq)]
pub struct Supervision {
    pub labels: Vec<u32>,
    pub known: Vec<bool>,
}

impl Supervision {
    fn n_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&c| c as usize + 1)
    }
}

impl NeuralOptions {
    /// Checks the options for data with `m` features and `n` samples.
    pub fn validate(&self, m: usize, n: usize, sup: Option<&Supervision>) -> Result<()> {
        if self.ranks.is_empty() {
            return Err(Error::invalid(
                "ranks",
                "[]",
                "give at least one rank, e.g. --ranks 9,4,2",
            ));
        }
        let mut prev = m.min(n);
        for (i, &k) in self.ranks.iter().enumerate() {
            if k == 0 || k > prev || (i > 0 && k >= self.ranks[i - 1]) {
                return Err(Error::invalid(
                    "ranks",
                    format!("{:?}", self.ranks),
                    format!(
                        "ranks must decrease and start at most min(n_samples, n_features) = {}",
                        m.min(n)
                    ),
                ));
            }
            prev = k;
        }
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", 0, "train for at least one epoch"));
        }
        for (name, v) in [
            ("lr", self.lr),
            ("lr-class", self.lr_class),
            ("decay", self.decay),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(name, v, "must be a finite number > 0"));
            }
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(Error::invalid("lambda", self.lambda, "must be ≥ 0"));
        }
        if self.decay_every == 0 || self.restarts == 0 {
            return Err(Error::invalid("decay-every / restarts", 0, "must be ≥ 1"));
        }
        if let Some(s) = sup {
            if s.labels.len() != n || s.known.len() != n {
                return Err(Error::ShapeMismatch {
                    what: "labels".into(),
                    expected: format!("{n} labels and mask entries (one per sample)"),
                    found: format!("{} labels, {} mask entries", s.labels.len(), s.known.len()),
                    hint: "give one label per sample".into(),
                });
            }
            if !s.known.iter().any(|&k| k) {
                return Err(Error::invalid(
                    "labeled",
                    0,
                    "supervision needs at least one labeled sample",
                ));
            }
        }
        Ok(())
    }
}

/// A trained Neural NMF: `A⁽ⁱ⁾` is `k_{i−1} × k_i` (`k_{−1} = m`), `B` is `c × k_L`.
#[derive(Clone, Debug)]
pub struct NeuralNmf<T: Real> {
    pub a: Vec<Mat<T>>,
    pub b: Option<Mat<T>>,
}

/// The codes of every layer (`S⁽ⁱ⁾` is `k_i × n`) and what the backward pass reuses.
#[derive(Clone, Debug)]
pub struct Forward<T: Real> {
    pub s: Vec<Mat<T>>,
    grams: Vec<Mat<T>>,
}

fn nnls_opts() -> NnlsOptions {
    NnlsOptions::default()
}

impl<T: Real> NeuralNmf<T> {
    /// `A⁽ⁱ⁾ ~ U[0, 1)` (the reference), and `B ~ U(−1/√k_L, 1/√k_L)` with `classes`.
    pub fn init(m: usize, ranks: &[usize], classes: Option<usize>, rng: &mut Rng) -> Self {
        let mut a = Vec::new();
        let mut rows = m;
        for &k in ranks {
            a.push(Mat::from_fn(rows, k, |_, _| T::from_f64(rng.uniform())));
            rows = k;
        }
        let b = classes.map(|c| {
            let bound = 1.0 / (rows as f64).sqrt();
            Mat::from_fn(c, rows, |_, _| T::from_f64(rng.uniform_in(-bound, bound)))
        });
        NeuralNmf { a, b }
    }

    /// Forward propagation `S⁽ⁱ⁾ = q(S⁽ⁱ⁻¹⁾, A⁽ⁱ⁾)`; with `warm`, each layer's NNLS starts from
    /// the supports of the previous forward pass.
    pub fn forward(&self, x: MatRef<'_, T>, warm: Option<Forward<T>>, par: Par) -> Result<Forward<T>> {
        let n = x.ncols();
        if let Some(a0) = self.a.first() {
            if x.nrows() != a0.nrows() {
                return Err(Error::ShapeMismatch {
                    what: "Neural NMF input".into(),
                    expected: format!("{} features", a0.nrows()),
                    found: format!("{} features", x.nrows()),
                    hint: "give data of the width the network was fitted on".into(),
                });
            }
        }
        let (mut s, mut grams) = match warm {
            Some(f) if f.s.len() == self.a.len() && f.s.iter().all(|m| m.ncols() == n) => (f.s, f.grams),
            _ => (
                self.a.iter().map(|a| Mat::<T>::zeros(a.ncols(), n)).collect(),
                self.a
                    .iter()
                    .map(|a| Mat::<T>::zeros(a.ncols(), a.ncols()))
                    .collect(),
            ),
        };
        let warm = s
            .iter()
            .any(|m| m.col_iter().any(|c| c.iter().any(|v| *v > T::zero())));
        for i in 0..self.a.len() {
            let a = self.a[i].as_ref();
            linalg::gram(grams[i].as_mut(), a.transpose(), par);
            let (before, rest) = s.split_at_mut(i);
            let input = if i == 0 { x } else { before[i - 1].as_ref() };
            let mut cross = Mat::<T>::zeros(a.ncols(), n);
            linalg::matmul(
                cross.as_mut(),
                Accum::Replace,
                a.transpose(),
                input,
                T::one(),
                par,
            );
            solve_gram(
                grams[i].as_ref(),
                cross.as_ref(),
                rest[0].as_mut(),
                warm,
                &nnls_opts(),
                par,
            )?;
        }
        Ok(Forward { s, grams })
    }

    /// `A⁽⁰⁾⋯A⁽ⁱ⁾` (`m × k_i`): the topics of level `i` in data space.
    pub fn composed(&self, level: usize) -> Mat<T> {
        let mut p = self.a[0].clone();
        for a in &self.a[1..=level] {
            p = &p * a;
        }
        p
    }

    /// `‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖ / ‖X‖`.
    pub fn rel_error(&self, x: MatRef<'_, T>, f: &Forward<T>) -> f64 {
        let l = self.a.len() - 1;
        let z = self.composed(l) * &f.s[l];
        let r = Mat::<T>::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] - z[(i, j)]);
        (linalg::frob_sq(r.as_ref()) / linalg::frob_sq(x).max(f64::MIN_POSITIVE)).sqrt()
    }
}

/// One layer's backward pass (module doc): returns `(∂C/∂A, ∂C/∂X)` for `S = q(X, A)` given
/// `g = ∂C/∂S`; `∂C/∂X` only when `need_dx`.
pub fn layer_backward<T: Real>(
    a: MatRef<'_, T>,
    x: MatRef<'_, T>,
    s: MatRef<'_, T>,
    gram: MatRef<'_, T>,
    g: MatRef<'_, T>,
    need_dx: bool,
    par: Par,
) -> (Mat<T>, Option<Mat<T>>) {
    let (k, n) = (s.nrows(), s.ncols());
    let mut u = Mat::<T>::zeros(k, n);
    solve_on_supports(gram, s, g, u.as_mut(), par);
    let mut au = Mat::<T>::zeros(a.nrows(), n);
    linalg::matmul(au.as_mut(), Accum::Replace, a, u.as_ref(), T::one(), par);
    // R = X − A S
    let mut r = x.to_owned();
    linalg::matmul(r.as_mut(), Accum::Add, a, s, -T::one(), par);
    // ∂C/∂A = −(AU) Sᵀ + R Uᵀ
    let mut da = Mat::<T>::zeros(a.nrows(), k);
    linalg::matmul(
        da.as_mut(),
        Accum::Replace,
        au.as_ref(),
        s.transpose(),
        -T::one(),
        par,
    );
    linalg::matmul(da.as_mut(), Accum::Add, r.as_ref(), u.transpose(), T::one(), par);
    (da, need_dx.then_some(au))
}

/// Value of the cost and its gradient with respect to every `A` (and `B`).
pub struct Gradient<T: Real> {
    pub cost: f64,
    pub classification: f64,
    pub da: Vec<Mat<T>>,
    pub db: Option<Mat<T>>,
}

/// `Σ r ⊙ r` scaled: `(1/N)‖R‖²`.
fn mean_sq<T: Real>(r: MatRef<'_, T>) -> f64 {
    linalg::frob_sq(r) / (r.nrows() * r.ncols()).max(1) as f64
}

fn scaled<T: Real>(m: MatRef<'_, T>, c: f64) -> Mat<T> {
    let c = T::from_f64(c);
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] * c)
}

/// The classification term `λ·ℓ(B S)` and its gradients `(∂/∂S, ∂/∂B)` (zero on unknown columns).
fn classification<T: Real>(
    b: MatRef<'_, T>,
    s: MatRef<'_, T>,
    sup: &Supervision,
    loss: ClassLoss,
    lambda: f64,
    par: Par,
) -> (f64, Mat<T>, Mat<T>) {
    let (c, n) = (b.nrows(), s.ncols());
    let mut z = Mat::<T>::zeros(c, n);
    linalg::matmul(z.as_mut(), Accum::Replace, b, s, T::one(), par);
    let n_known = sup.known.iter().filter(|&&k| k).count().max(1) as f64;
    let mut dz = Mat::<T>::zeros(c, n);
    let mut value = 0.0;
    for j in (0..n).filter(|&j| sup.known[j]) {
        let y = sup.labels[j] as usize;
        match loss {
            ClassLoss::L2 => {
                for i in 0..c {
                    let d = z[(i, j)].to_f64() - if i == y { 1.0 } else { 0.0 };
                    value += d * d;
                    dz[(i, j)] = T::from_f64(2.0 * lambda * d / n_known);
                }
            }
            ClassLoss::CrossEntropy => {
                let zmax = (0..c)
                    .map(|i| z[(i, j)].to_f64())
                    .fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (0..c).map(|i| (z[(i, j)].to_f64() - zmax).exp()).sum();
                value += -(z[(y, j)].to_f64() - zmax - sum.ln());
                for i in 0..c {
                    let p = (z[(i, j)].to_f64() - zmax).exp() / sum;
                    dz[(i, j)] = T::from_f64(lambda * (p - if i == y { 1.0 } else { 0.0 }) / n_known);
                }
            }
        }
    }
    let mut ds = Mat::<T>::zeros(s.nrows(), n);
    linalg::matmul(
        ds.as_mut(),
        Accum::Replace,
        b.transpose(),
        dz.as_ref(),
        T::one(),
        par,
    );
    let mut db = Mat::<T>::zeros(c, s.nrows());
    linalg::matmul(
        db.as_mut(),
        Accum::Replace,
        dz.as_ref(),
        s.transpose(),
        T::one(),
        par,
    );
    (lambda * value / n_known, ds, db)
}

impl<T: Real> NeuralNmf<T> {
    /// The cost at the forward pass `f` without its gradient (what [`gradient`](Self::gradient)
    /// returns as `cost`).
    pub fn cost_value(
        &self,
        x: MatRef<'_, T>,
        f: &Forward<T>,
        cost: Cost,
        sup: Option<(&Supervision, ClassLoss, f64)>,
        par: Par,
    ) -> f64 {
        let l = self.a.len() - 1;
        let residual = |data: MatRef<'_, T>, a: MatRef<'_, T>, s: MatRef<'_, T>| {
            let mut r = data.to_owned();
            linalg::matmul(r.as_mut(), Accum::Add, a, s, -T::one(), par);
            mean_sq(r.as_ref())
        };
        let value = match cost {
            Cost::Reconstruction => residual(x, self.composed(l).as_ref(), f.s[l].as_ref()),
            Cost::Energy => (0..=l)
                .map(|i| {
                    let input = if i == 0 { x } else { f.s[i - 1].as_ref() };
                    residual(input, self.a[i].as_ref(), f.s[i].as_ref())
                })
                .sum(),
        };
        let class = match (sup, &self.b) {
            (Some((s, loss, lambda)), Some(b)) => {
                classification(b.as_ref(), f.s[l].as_ref(), s, loss, lambda, par).0
            }
            _ => 0.0,
        };
        value + class
    }

    /// The cost at the forward pass `f` and its exact gradient (module doc).
    pub fn gradient(
        &self,
        x: MatRef<'_, T>,
        f: &Forward<T>,
        cost: Cost,
        sup: Option<(&Supervision, ClassLoss, f64)>,
        par: Par,
    ) -> Gradient<T> {
        let l = self.a.len() - 1;
        let input = |i: usize| if i == 0 { x } else { f.s[i - 1].as_ref() };
        // Direct (partial) gradients with the S's held fixed.
        let mut da_direct: Vec<Mat<T>> = self.a.iter().map(|a| Mat::zeros(a.nrows(), a.ncols())).collect();
        let mut ds_direct: Vec<Mat<T>> = f.s.iter().map(|s| Mat::zeros(s.nrows(), s.ncols())).collect();
        let mut value = 0.0;
        match cost {
            Cost::Reconstruction => {
                // Q_i = A⁽ⁱ⁺¹⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾, E_i = (A⁽⁰⁾⋯A⁽ⁱ⁻¹⁾)ᵀ D with D = ∂C/∂Z = −(2/N)(X − Z).
                let mut q = vec![f.s[l].clone(); l + 1];
                for i in (0..l).rev() {
                    q[i] = &self.a[i + 1] * &q[i + 1];
                }
                let z = &self.a[0] * &q[0];
                let resid = Mat::<T>::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] - z[(i, j)]);
                value = mean_sq(resid.as_ref());
                let mut e = scaled(resid.as_ref(), -2.0 / (x.nrows() * x.ncols()) as f64);
                for i in 0..=l {
                    linalg::matmul(
                        da_direct[i].as_mut(),
                        Accum::Replace,
                        e.as_ref(),
                        q[i].transpose(),
                        T::one(),
                        par,
                    );
                    e = self.a[i].transpose() * &e;
                }
                ds_direct[l] = e;
            }
            Cost::Energy => {
                for i in 0..=l {
                    let mut r = input(i).to_owned();
                    linalg::matmul(
                        r.as_mut(),
                        Accum::Add,
                        self.a[i].as_ref(),
                        f.s[i].as_ref(),
                        -T::one(),
                        par,
                    );
                    let c = 2.0 / (r.nrows() * r.ncols()).max(1) as f64;
                    value += mean_sq(r.as_ref());
                    linalg::matmul(
                        da_direct[i].as_mut(),
                        Accum::Replace,
                        r.as_ref(),
                        f.s[i].transpose(),
                        T::from_f64(-c),
                        par,
                    );
                    linalg::matmul(
                        ds_direct[i].as_mut(),
                        Accum::Add,
                        self.a[i].transpose(),
                        r.as_ref(),
                        T::from_f64(-c),
                        par,
                    );
                    if i > 0 {
                        // S⁽ⁱ⁻¹⁾ is the data of this term: ∂/∂S⁽ⁱ⁻¹⁾ = (2/N_i) R_i.
                        let cs = T::from_f64(c);
                        let d = &mut ds_direct[i - 1];
                        for j in 0..r.ncols() {
                            for q in 0..r.nrows() {
                                d[(q, j)] = d[(q, j)] + cs * r[(q, j)];
                            }
                        }
                    }
                }
            }
        }
        let mut classification_value = 0.0;
        let mut db = None;
        if let (Some((s, loss, lambda)), Some(b)) = (sup, &self.b) {
            let (v, ds, g) = classification(b.as_ref(), f.s[l].as_ref(), s, loss, lambda, par);
            classification_value = v;
            for j in 0..ds.ncols() {
                for i in 0..ds.nrows() {
                    ds_direct[l][(i, j)] = ds_direct[l][(i, j)] + ds[(i, j)];
                }
            }
            db = Some(g);
        }
        // Back-propagation through the NNLS layers, top to bottom.
        let mut da = Vec::with_capacity(l + 1);
        let mut g = ds_direct[l].clone();
        for i in (0..=l).rev() {
            let (dai, dx) = layer_backward(
                self.a[i].as_ref(),
                input(i),
                f.s[i].as_ref(),
                f.grams[i].as_ref(),
                g.as_ref(),
                i > 0,
                par,
            );
            da.push(&da_direct[i] + &dai);
            if let Some(dx) = dx {
                g = &ds_direct[i - 1] + &dx;
            }
        }
        da.reverse();
        Gradient {
            cost: value + classification_value,
            classification: classification_value,
            da,
            db,
        }
    }
}

/// How a training run ended.
#[derive(Clone, Debug)]
pub struct NeuralFit<T: Real> {
    pub model: NeuralNmf<T>,
    pub forward: Forward<T>,
    pub history: Vec<IterRecord>,
    pub stop_reason: StopReason,
    pub seconds: f64,
}

/// Trains Neural NMF on `x` (`m × n`, samples as columns): every epoch one forward pass, the
/// exact gradient, a projected step `A ← [A − lr·∂C/∂A]₊` (or an Adam step, then the projection)
/// on all layers at once, and, when supervised, `class_steps` gradient steps on `B` (not
/// projected). Reports every epoch to `observer` (objective = cost, rel. error of the
/// reconstruction).
pub fn train<T: Real>(
    x: MatRef<'_, T>,
    opts: &NeuralOptions,
    sup: Option<&Supervision>,
    observer: &mut (dyn Observer + Send),
) -> Result<NeuralFit<T>> {
    train_from(x, None, opts, sup, observer)
}

/// [`train`] from given starting layers (e.g. a hierarchical NMF, [`super::hnmf`]) instead of
/// random ones; the classifier (if supervised) starts random. `restarts` then only vary `B`.
pub fn train_from<T: Real>(
    x: MatRef<'_, T>,
    start: Option<&[Mat<T>]>,
    opts: &NeuralOptions,
    sup: Option<&Supervision>,
    observer: &mut (dyn Observer + Send),
) -> Result<NeuralFit<T>> {
    let (m, n) = (x.nrows(), x.ncols());
    opts.validate(m, n, sup)?;
    if let Some(layers) = start {
        let ok = layers.len() == opts.ranks.len()
            && layers.iter().zip(&opts.ranks).enumerate().all(|(i, (a, &k))| {
                a.ncols() == k && a.nrows() == if i == 0 { m } else { opts.ranks[i - 1] }
            });
        if !ok {
            return Err(Error::invalid(
                "starting layers",
                layers.len(),
                "must match the data and the ranks",
            ));
        }
    }
    crate::data::validate_nonnegative(x)?;
    linalg::with_threads(opts.threads, || {
        let mut best: Option<NeuralFit<T>> = None;
        for r in 0..opts.restarts as u64 {
            let o = NeuralOptions {
                seed: opts.seed.wrapping_add(r),
                ..opts.clone()
            };
            let fit = train_inner(x, start, &o, sup, observer)?;
            let cost = |f: &NeuralFit<T>| f.history.last().map_or(f64::INFINITY, |h| h.objective);
            let interrupted = fit.stop_reason == StopReason::Interrupted;
            if best.as_ref().is_none_or(|b| cost(&fit) < cost(b)) {
                best = Some(fit);
            }
            if interrupted {
                break;
            }
        }
        best.ok_or_else(|| Error::invalid("restarts", 0, "must be ≥ 1"))
    })?
}

fn one() -> usize {
    1
}

fn train_inner<T: Real>(
    x: MatRef<'_, T>,
    start_layers: Option<&[Mat<T>]>,
    opts: &NeuralOptions,
    sup: Option<&Supervision>,
    observer: &mut (dyn Observer + Send),
) -> Result<NeuralFit<T>> {
    let start = Instant::now();
    let par = linalg::par(opts.threads);
    let mut rng = Rng::new(opts.seed);
    let mut model = NeuralNmf::<T>::init(x.nrows(), &opts.ranks, sup.map(|s| s.n_classes()), &mut rng);
    if let Some(layers) = start_layers {
        model.a = layers.to_vec();
    }
    let sup_args = sup.map(|s| (s, opts.class_loss, opts.lambda));
    let mut adam: Vec<(Mat<T>, Mat<T>)> = model
        .a
        .iter()
        .map(|a| (Mat::zeros(a.nrows(), a.ncols()), Mat::zeros(a.nrows(), a.ncols())))
        .collect();
    let (mut lr, mut lr_class) = (opts.lr, opts.lr_class);
    let mut fwd = model.forward(x, None, par)?;
    let mut history = Vec::new();
    let mut stop_reason = StopReason::MaxIter;
    for epoch in 1..=opts.epochs {
        let grad = model.gradient(x, &fwd, opts.cost, sup_args, par);
        if epoch == 1 {
            history.push(IterRecord {
                iter: 0,
                objective: grad.cost,
                rel_error: model.rel_error(x, &fwd),
                seconds: start.elapsed().as_secs_f64(),
                projected_gradient: None,
            });
        }
        for (i, (a, g)) in model.a.iter_mut().zip(&grad.da).enumerate() {
            if opts.adam {
                let (mm, vv) = &mut adam[i];
                let t = epoch as i32;
                let (b1, b2, eps) = (0.9, 0.999, 1e-8);
                let (c1, c2) = (1.0 - f64::powi(b1, t), 1.0 - f64::powi(b2, t));
                for j in 0..a.ncols() {
                    for r in 0..a.nrows() {
                        let gv = g[(r, j)].to_f64();
                        let mv = b1 * mm[(r, j)].to_f64() + (1.0 - b1) * gv;
                        let vv2 = b2 * vv[(r, j)].to_f64() + (1.0 - b2) * gv * gv;
                        mm[(r, j)] = T::from_f64(mv);
                        vv[(r, j)] = T::from_f64(vv2);
                        let step = lr * (mv / c1) / ((vv2 / c2).sqrt() + eps);
                        a[(r, j)] = T::from_f64((a[(r, j)].to_f64() - step).max(0.0));
                    }
                }
            } else {
                let lr_t = T::from_f64(lr);
                for j in 0..a.ncols() {
                    for r in 0..a.nrows() {
                        a[(r, j)] = (a[(r, j)] - lr_t * g[(r, j)]).max(T::zero());
                    }
                }
            }
        }
        if let (Some((s, loss, _)), Some(b)) = (sup_args, model.b.as_mut()) {
            // B's own gradient steps on ℓ (unweighted: λ only weighs ℓ against the layers'
            // cost) at this epoch's codes, as the reference's 30 classifier steps.
            let lr_b = T::from_f64(lr_class);
            let s_top = fwd.s[fwd.s.len() - 1].as_ref();
            for _ in 0..opts.class_steps {
                let (_, _, db) = classification(b.as_ref(), s_top, s, loss, 1.0, par);
                for j in 0..b.ncols() {
                    for r in 0..b.nrows() {
                        b[(r, j)] = b[(r, j)] - lr_b * db[(r, j)];
                    }
                }
            }
        }
        if epoch % opts.decay_every == 0 {
            lr *= opts.decay;
            lr_class *= opts.decay;
        }
        // A step too long for the data makes the layers (and their Gram matrices) overflow,
        // which the forward NNLS reports; name the step, not the dictionary, as the cause.
        fwd = model.forward(x, Some(fwd), par).map_err(|e| match e {
            Error::Numerical { .. } => Error::Numerical {
                what: format!("Neural NMF at epoch {epoch}"),
                reason: "the layers overflowed after a step; lower --lr".into(),
            },
            e => e,
        })?;
        let cost = model.cost_value(x, &fwd, opts.cost, sup_args, par);
        let rec = IterRecord {
            iter: epoch,
            objective: cost,
            rel_error: model.rel_error(x, &fwd),
            seconds: start.elapsed().as_secs_f64(),
            projected_gradient: None,
        };
        if !rec.objective.is_finite() {
            return Err(Error::Numerical {
                what: format!("Neural NMF at epoch {epoch}"),
                reason: "the cost became non-finite; lower --lr".into(),
            });
        }
        history.push(rec);
        if observer.on_iter(&rec) == Control::Stop {
            stop_reason = StopReason::Interrupted;
            break;
        }
        if opts.max_seconds.is_some_and(|t| rec.seconds >= t) {
            stop_reason = StopReason::TimeLimit;
            break;
        }
    }
    Ok(NeuralFit {
        model,
        forward: fwd,
        history,
        stop_reason,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Post-hoc classifier of METHODS.md §5.1: `B = Y S⁺` fitted by least squares on the columns
/// `fit` (one-hot `Y`), then the accuracy of `argmax(B s_j)` over the columns `score`.
pub fn posthoc_accuracy<T: Real>(
    s: MatRef<'_, T>,
    labels: &[u32],
    fit: &[bool],
    score: &[bool],
) -> Result<f64> {
    let b = posthoc_classifier(s, labels, fit)?;
    Ok(classifier_accuracy(&b, s, labels, score))
}

/// `B = Y S⁺` (`c × k`) over the columns `fit` of `s` (`k × n`), the pseudo-inverse taken
/// through the eigen-decomposition of `S Sᵀ`.
pub fn posthoc_classifier<T: Real>(s: MatRef<'_, T>, labels: &[u32], fit: &[bool]) -> Result<Mat<f64>> {
    let (k, n) = (s.nrows(), s.ncols());
    let c = labels.iter().max().map_or(0, |&v| v as usize + 1);
    let cols: Vec<usize> = (0..n).filter(|&j| fit[j]).collect();
    let sf = Mat::<f64>::from_fn(k, cols.len(), |i, j| s[(i, cols[j])].to_f64());
    let yf = Mat::<f64>::from_fn(c, cols.len(), |i, j| {
        if labels[cols[j]] as usize == i {
            1.0
        } else {
            0.0
        }
    });
    let sst = &sf * sf.transpose();
    let (vals, vecs) = linalg::sym_eigen_desc(sst.as_ref())?;
    let top = vals.first().copied().unwrap_or(0.0).max(0.0);
    let inv = Mat::<f64>::from_fn(k, k, |i, j| {
        (0..k)
            .filter(|&t| vals[t] > top * 1e-12 * k as f64 && vals[t] > 0.0)
            .map(|t| vecs[(i, t)] * vecs[(j, t)] / vals[t])
            .sum()
    });
    Ok(&yf * sf.transpose() * &inv)
}

/// Fraction of the columns `score` of `s` whose `argmax(B s_j)` is their label (NaN if none).
pub fn classifier_accuracy<T: Real>(b: &Mat<f64>, s: MatRef<'_, T>, labels: &[u32], score: &[bool]) -> f64 {
    let (c, k) = (b.nrows(), b.ncols());
    let scored: Vec<usize> = (0..s.ncols()).filter(|&j| score[j]).collect();
    if scored.is_empty() {
        return f64::NAN;
    }
    let correct = scored
        .iter()
        .filter(|&&j| {
            let z: Vec<f64> = (0..c)
                .map(|r| (0..k).map(|t| b[(r, t)] * s[(t, j)].to_f64()).sum())
                .collect();
            let arg = (0..c).fold(0, |best, r| if z[r] > z[best] { r } else { best });
            arg == labels[j] as usize
        })
        .count();
    correct as f64 / scored.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Silent;

    fn rand_mat(r: &mut Rng, rows: usize, cols: usize) -> Mat<f64> {
        Mat::from_fn(rows, cols, |_, _| r.uniform())
    }

    /// One layer: `C = Σ w ⊙ q(X, A)` for a fixed random `w`; the derivative with respect to `A`
    /// and `X` against central differences.
    #[test]
    fn one_layer_derivative_matches_finite_differences() {
        let mut rng = Rng::new(3);
        let (m, k, n) = (7, 4, 6);
        let a = rand_mat(&mut rng, m, k);
        // Data with some columns outside the cone of A, so that supports are proper subsets.
        let x = Mat::<f64>::from_fn(m, n, |i, j| {
            rng.uniform() + if (i + j) % 3 == 0 { 1.0 } else { 0.0 }
        });
        let w = Mat::<f64>::from_fn(k, n, |_, _| rng.normal());
        let model = |a: &Mat<f64>| NeuralNmf {
            a: vec![a.clone()],
            b: None,
        };
        let c = |a: &Mat<f64>, x: &Mat<f64>| {
            let f = model(a).forward(x.as_ref(), None, Par::Seq).unwrap();
            linalg::inner(w.as_ref(), f.s[0].as_ref())
        };
        let f = model(&a).forward(x.as_ref(), None, Par::Seq).unwrap();
        let supp: usize = f.s[0]
            .col_iter()
            .map(|c| c.iter().filter(|v| **v > 0.0).count())
            .sum();
        assert!(
            supp > 0 && supp < k * n,
            "supports should be proper subsets ({supp} of {})",
            k * n
        );
        let (da, dx) = layer_backward(
            a.as_ref(),
            x.as_ref(),
            f.s[0].as_ref(),
            f.grams[0].as_ref(),
            w.as_ref(),
            true,
            Par::Seq,
        );
        let dx = dx.unwrap();
        let h = 1e-6;
        let mut worst = 0.0f64;
        for j in 0..k {
            for i in 0..m {
                let (mut ap, mut am) = (a.clone(), a.clone());
                ap[(i, j)] += h;
                am[(i, j)] -= h;
                let num = (c(&ap, &x) - c(&am, &x)) / (2.0 * h);
                worst = worst.max((num - da[(i, j)]).abs() / (1e-8 + num.abs().max(da[(i, j)].abs())));
            }
        }
        for j in 0..n {
            for i in 0..m {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[(i, j)] += h;
                xm[(i, j)] -= h;
                let num = (c(&a, &xp) - c(&a, &xm)) / (2.0 * h);
                worst = worst.max((num - dx[(i, j)]).abs() / (1e-8 + num.abs().max(dx[(i, j)].abs())));
            }
        }
        assert!(worst < 1e-6, "worst relative error {worst:e}");
    }

    /// Envelope identity (METHODS.md §9.3): one layer, reconstruction cost: the total gradient
    /// equals the partial one, `∂C/∂A = −(2/N)(X − AS)Sᵀ` (mean scaling).
    #[test]
    fn one_layer_envelope_identity() {
        let mut rng = Rng::new(5);
        let (m, k, n) = (9, 3, 11);
        let a = rand_mat(&mut rng, m, k);
        let x = rand_mat(&mut rng, m, n);
        let model = NeuralNmf {
            a: vec![a.clone()],
            b: None,
        };
        let f = model.forward(x.as_ref(), None, Par::Seq).unwrap();
        let g = model.gradient(x.as_ref(), &f, Cost::Reconstruction, None, Par::Seq);
        let r = &x - &a * &f.s[0];
        let expect = scaled((&r * f.s[0].transpose()).as_ref(), -2.0 / (m * n) as f64);
        let diff = linalg::frob_sq((&g.da[0] - &expect).as_ref()).sqrt();
        assert!(
            diff <= 1e-10 * linalg::frob_sq(expect.as_ref()).sqrt().max(1e-300),
            "{diff:e}"
        );
    }

    /// The whole multi-layer gradient (both costs, supervised terms) against finite differences.
    #[test]
    fn deep_gradient_matches_finite_differences() {
        let mut rng = Rng::new(8);
        let (m, n) = (8, 10);
        let x = Mat::<f64>::from_fn(m, n, |i, j| {
            rng.uniform() + if (i * 3 + j) % 4 == 0 { 1.5 } else { 0.0 }
        });
        let sup = Supervision {
            labels: (0..n as u32).map(|j| j % 3).collect(),
            known: (0..n).map(|j| j % 4 != 1).collect(),
        };
        for cost in [Cost::Reconstruction, Cost::Energy] {
            for class in [None, Some(ClassLoss::L2), Some(ClassLoss::CrossEntropy)] {
                let mut model = NeuralNmf::<f64>::init(m, &[5, 3], class.map(|_| 3), &mut Rng::new(1));
                let sup_args = class.map(|l| (&sup, l, 0.7));
                let cost_of = |model: &NeuralNmf<f64>| {
                    let f = model.forward(x.as_ref(), None, Par::Seq).unwrap();
                    model.gradient(x.as_ref(), &f, cost, sup_args, Par::Seq).cost
                };
                let f = model.forward(x.as_ref(), None, Par::Seq).unwrap();
                let g = model.gradient(x.as_ref(), &f, cost, sup_args, Par::Seq);
                let v = model.cost_value(x.as_ref(), &f, cost, sup_args, Par::Seq);
                assert!(
                    (v - g.cost).abs() <= 1e-12 * g.cost.abs().max(1.0),
                    "{v} vs {}",
                    g.cost
                );
                let h = 1e-6;
                for l in 0..2 {
                    for j in 0..model.a[l].ncols() {
                        for i in 0..model.a[l].nrows() {
                            let v = model.a[l][(i, j)];
                            model.a[l][(i, j)] = v + h;
                            let cp = cost_of(&model);
                            model.a[l][(i, j)] = v - h;
                            let cm = cost_of(&model);
                            model.a[l][(i, j)] = v;
                            let num = (cp - cm) / (2.0 * h);
                            let an = g.da[l][(i, j)];
                            assert!(
                                (num - an).abs() <= 1e-6 * num.abs().max(an.abs()) + 1e-10,
                                "{cost:?}/{class:?} layer {l} ({i},{j}): analytic {an} numeric {num}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn unsupervised_training_lowers_the_cost_and_approaches_the_svd_bounds() {
        let d = crate::data::named::toy_hierarchy::<f64>(0);
        let x = d.xt();
        let opts = NeuralOptions {
            ranks: vec![9, 4, 2],
            epochs: 2000,
            ..NeuralOptions::default()
        };
        let fit = train(x, &opts, None, &mut Silent).unwrap();
        let h = &fit.history;
        assert!(
            h.last().unwrap().objective < 0.5 * h[0].objective,
            "{} → {}",
            h[0].objective,
            h.last().unwrap().objective
        );
        let rel = fit.model.rel_error(x, &fit.forward);
        // The 3-layer SVD bound is 0.467561 (METHODS.md §9.1).
        assert!(rel >= 0.4675 && rel < 0.55, "3-layer relative error {rel}");
        assert!(fit
            .model
            .a
            .iter()
            .all(|a| a.col_iter().all(|c| c.iter().all(|v| *v >= 0.0))));
    }

    #[test]
    fn bad_options_are_refused() {
        let x = Mat::<f64>::from_fn(5, 6, |i, j| (i + j) as f64);
        let bad = |ranks: Vec<usize>| {
            NeuralOptions {
                ranks,
                ..NeuralOptions::default()
            }
            .validate(5, 6, None)
        };
        assert!(bad(vec![4, 4]).is_err());
        assert!(bad(vec![6]).is_err());
        assert!(bad(vec![]).is_err());
        assert!(bad(vec![3, 0]).is_err());
        assert!(bad(vec![4, 2]).is_ok());
        let sup = Supervision {
            labels: vec![0; 5],
            known: vec![true; 5],
        };
        assert!(NeuralOptions {
            ranks: vec![2],
            ..NeuralOptions::default()
        }
        .validate(5, 6, Some(&sup))
        .is_err());
        let mut neg = x.clone();
        neg[(1, 2)] = -1.0;
        let o = NeuralOptions {
            ranks: vec![2],
            epochs: 1,
            ..NeuralOptions::default()
        };
        assert!(train(neg.as_ref(), &o, None, &mut Silent).is_err());
    }
}
