//! Hierarchical NMF (METHODS.md §4.1) and Deep NMF fine-tuning (§4.2, the fully non-negative
//! variant).
//!
//! Hierarchical NMF factors `X ≈ A⁽⁰⁾S⁽⁰⁾`, then `S⁽⁰⁾ ≈ A⁽¹⁾S⁽¹⁾`, …, each layer an independent NMF
//! (any solver of [`crate::nmf::fit`]) of the previous layer's codes, so errors accumulate.
//! Deep NMF starts from that stack and minimizes `½‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖²` jointly by
//! multiplicative updates: with `Ψ = A⁽⁰⁾⋯A⁽ⁱ⁻¹⁾` (updated layers) and `H̃ = A⁽ⁱ⁺¹⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾`,
//! `A⁽ⁱ⁾ ← A⁽ⁱ⁾ ⊙ (ΨᵀX H̃ᵀ) ⊘ (ΨᵀΨ A⁽ⁱ⁾ H̃H̃ᵀ + ε)`, then `S⁽ᴸ⁾ ← S⁽ᴸ⁾ ⊙ (ΦᵀX) ⊘ (ΦᵀΦ S⁽ᴸ⁾ + ε)`,
//! `Φ = A⁽⁰⁾⋯A⁽ᴸ⁾`. Each block update is a Lee–Seung step on a quadratic in that block, so the
//! objective never increases. §10 leaves open which method the slides' "Deep NMF" column is;
//! this is the Trigeorgis-type joint fine-tuning with non-negative factors.

use std::time::Instant;

use faer::{Mat, MatRef};

use super::neural::NeuralNmf;
use crate::data::Dataset;
use crate::engine::{Control, IterRecord, Observer, Silent, StopReason, StopRules};
use crate::error::{Error, Result};
use crate::linalg;
use crate::nmf::{self, NmfParams};
use crate::real::Real;

/// A stack of layers `A⁽ⁱ⁾` (`k_{i−1} × k_i`) and the last layer's codes `S⁽ᴸ⁾` (`k_L × n`).
#[derive(Clone, Debug)]
pub struct LayerStack<T: Real> {
    pub a: Vec<Mat<T>>,
    /// Codes of every layer (`S⁽ⁱ⁾`, `k_i × n`).
    pub s: Vec<Mat<T>>,
}

impl<T: Real> LayerStack<T> {
    /// `A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾`.
    pub fn reconstruction(&self) -> Mat<T> {
        let mut z = self.s[self.s.len() - 1].clone();
        for a in self.a.iter().rev() {
            z = a * &z;
        }
        z
    }

    /// `‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖ / ‖X‖`.
    pub fn rel_error(&self, x: MatRef<'_, T>) -> f64 {
        let z = self.reconstruction();
        let r = Mat::<T>::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] - z[(i, j)]);
        (linalg::frob_sq(r.as_ref()) / linalg::frob_sq(x).max(f64::MIN_POSITIVE)).sqrt()
    }

    /// The layers as a network whose forward pass encodes new data by NNLS layer by layer.
    pub fn into_net(self) -> NeuralNmf<T> {
        NeuralNmf { a: self.a, b: None }
    }
}

/// Checks that `ranks` decrease and start at most `min(m, n)`.
pub fn check_ranks(ranks: &[usize], m: usize, n: usize) -> Result<()> {
    let ok = !ranks.is_empty()
        && ranks[0] >= 1
        && ranks[0] <= m.min(n)
        && ranks.windows(2).all(|w| w[1] >= 1 && w[1] < w[0]);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "ranks",
            format!("{ranks:?}"),
            format!(
                "ranks must decrease and start at most min(n_samples, n_features) = {}",
                m.min(n)
            ),
        ))
    }
}

/// Hierarchical NMF of `data` with `base` options for every layer (`k` replaced by the ranks).
pub fn hierarchical<T: Real>(data: &Dataset<T>, ranks: &[usize], base: &NmfParams) -> Result<LayerStack<T>> {
    check_ranks(ranks, data.n_features(), data.n_samples())?;
    let mut a = Vec::new();
    let mut s: Vec<Mat<T>> = Vec::new();
    for (i, &k) in ranks.iter().enumerate() {
        let layer_data = if i == 0 {
            data.clone()
        } else {
            Dataset::from_columns(s[i - 1].clone(), "codes")
        };
        let opts = NmfParams {
            k,
            seed: base.seed.wrapping_add(i as u64),
            ..base.clone()
        };
        let fit = nmf::fit(&layer_data, &opts, None, &mut Silent)?;
        a.push(fit.model.components().transpose().to_owned());
        s.push(fit.codes().transpose().to_owned());
    }
    Ok(LayerStack { a, s })
}

/// The label term of a (semi-)supervised fine-tuning, `(λ/2)‖L⊙(Y − BS⁽ᴸ⁾)‖²` (SSNMF's model 3
/// on the last layer, §3).
#[derive(Clone, Debug)]
pub struct LabelTerm<T: Real> {
    /// One-hot labels `c × n`.
    pub y: Mat<T>,
    /// Label mask `c × n` (columns of ones where known).
    pub l: Mat<T>,
    pub lambda: f64,
    /// Classifier `c × k_L` (updated by the fine-tuning).
    pub b: Mat<T>,
}

impl<T: Real> LabelTerm<T> {
    /// One-hot labels with a mask of known samples, `B ~ U[0,1)`.
    pub fn new(classes: &[u32], known: &[bool], k: usize, lambda: f64, rng: &mut crate::rng::Rng) -> Self {
        let c = classes.iter().max().map_or(1, |&v| v as usize + 1);
        let n = classes.len();
        LabelTerm {
            y: Mat::from_fn(c, n, |i, j| {
                if classes[j] as usize == i {
                    T::one()
                } else {
                    T::zero()
                }
            }),
            l: Mat::from_fn(c, n, |_, j| if known[j] { T::one() } else { T::zero() }),
            lambda,
            b: Mat::from_fn(c, k, |_, _| T::from_f64(rng.uniform())),
        }
    }

    fn masked(&self, m: &Mat<T>) -> Mat<T> {
        Mat::from_fn(m.nrows(), m.ncols(), |i, j| self.l[(i, j)] * m[(i, j)])
    }

    fn value(&self, s: &Mat<T>) -> f64 {
        let r = &self.y - &self.b * s;
        0.5 * self.lambda * linalg::frob_sq(self.masked(&r).as_ref())
    }
}

/// Deep NMF fine-tuning result.
#[derive(Clone, Debug)]
pub struct DeepNmfFit<T: Real> {
    pub stack: LayerStack<T>,
    pub labels: Option<LabelTerm<T>>,
    pub history: Vec<IterRecord>,
    pub stop_reason: StopReason,
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

/// Joint fine-tuning of a stack (module doc) on `x` (`m × n`), reporting each iteration.
/// With `labels`, the label term is added: `B` gets its own multiplicative update and the
/// codes' update gains `λBᵀ(L⊙Y)` / `λBᵀ(L⊙BS)` (still non-increasing).
pub fn fine_tune<T: Real>(
    x: MatRef<'_, T>,
    mut stack: LayerStack<T>,
    mut labels: Option<LabelTerm<T>>,
    stop: &StopRules,
    observer: &mut (dyn Observer + Send),
) -> Result<DeepNmfFit<T>> {
    if let Some(t) = &labels {
        crate::nmf::ssnmf::check_lambda(t.lambda)?;
    }
    let start = Instant::now();
    let l = stack.a.len() - 1;
    let x_norm_sq = linalg::frob_sq(x);
    let objective = |st: &LayerStack<T>, lt: &Option<LabelTerm<T>>| {
        0.5 * st.rel_error(x).powi(2) * x_norm_sq + lt.as_ref().map_or(0.0, |t| t.value(&st.s[l]))
    };
    let record = |iter, st: &LayerStack<T>, lt: &Option<LabelTerm<T>>| IterRecord {
        iter,
        objective: objective(st, lt),
        rel_error: st.rel_error(x),
        seconds: start.elapsed().as_secs_f64(),
        projected_gradient: None,
    };
    let first = record(0, &stack, &labels);
    let mut history = vec![first];
    if observer.on_iter(&first) == Control::Stop {
        return Ok(DeepNmfFit {
            stack,
            labels,
            history,
            stop_reason: StopReason::Interrupted,
        });
    }
    let mut iter = 0;
    let stop_reason = loop {
        iter += 1;
        // H̃_i = A⁽ⁱ⁺¹⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾ with the layers as they are at the start of the sweep.
        let mut h = vec![stack.s[l].clone(); l + 1];
        for i in (0..l).rev() {
            h[i] = &stack.a[i + 1] * &h[i + 1];
        }
        let mut psi: Option<Mat<T>> = None;
        for i in 0..=l {
            let hh = &h[i] * h[i].transpose();
            let (num, den) = match &psi {
                None => (x * h[i].transpose(), &stack.a[i] * &hh),
                Some(p) => (
                    p.transpose() * x * h[i].transpose(),
                    p.transpose() * p * &stack.a[i] * &hh,
                ),
            };
            mu_step(&mut stack.a[i], &num, &den);
            psi = Some(match psi {
                None => stack.a[0].clone(),
                Some(p) => &p * &stack.a[i],
            });
        }
        let phi = psi.unwrap_or_else(|| stack.a[0].clone());
        let mut num = phi.transpose() * x;
        let mut den = phi.transpose() * &phi * &stack.s[l];
        if let Some(t) = labels.as_mut() {
            let s_l = &stack.s[l];
            let bs = t.masked(&(&t.b * s_l));
            let ly = t.masked(&t.y);
            mu_step(&mut t.b, &(&ly * s_l.transpose()), &(&bs * s_l.transpose()));
            let bs = t.masked(&(&t.b * s_l));
            let lam = T::from_f64(t.lambda);
            num = &num + (t.b.transpose() * &ly) * faer::Scale(lam);
            den = &den + (t.b.transpose() * &bs) * faer::Scale(lam);
        }
        mu_step(&mut stack.s[l], &num, &den);
        // Lower layers' codes follow the stack: S⁽ⁱ⁾ = A⁽ⁱ⁺¹⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾.
        for i in (0..l).rev() {
            stack.s[i] = &stack.a[i + 1] * &stack.s[i + 1];
        }
        let rec = record(iter, &stack, &labels);
        history.push(rec);
        if !rec.objective.is_finite() {
            return Err(Error::Numerical {
                what: format!("Deep NMF iteration {iter}"),
                reason: "the objective became non-finite; check the data".into(),
            });
        }
        if observer.on_iter(&rec) == Control::Stop {
            break StopReason::Interrupted;
        }
        let window = history[iter.saturating_sub(crate::engine::TOL_EVERY)].objective;
        if let Some(r) = stop.check(iter, history[0].objective, window, rec.objective, rec.seconds) {
            break r;
        }
    };
    Ok(DeepNmfFit {
        stack,
        labels,
        history,
        stop_reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nmf::Solver;

    fn toy() -> Dataset<f64> {
        crate::data::named::toy_hierarchy::<f64>(0)
    }

    fn base() -> NmfParams {
        NmfParams {
            solver: Solver::Hals,
            max_iter: 500,
            tol: 1e-6,
            ..NmfParams::default()
        }
    }

    #[test]
    fn one_layer_hierarchy_is_plain_nmf() {
        let d = toy();
        let st = hierarchical(&d, &[9], &base()).unwrap();
        let f = nmf::fit(&d, &NmfParams { k: 9, ..base() }, None, &mut Silent).unwrap();
        assert_eq!(st.a[0], f.model.components().transpose().to_owned());
        assert!((st.rel_error(d.xt()) - f.rel_error).abs() < 1e-9);
    }

    #[test]
    fn hierarchy_errors_are_above_the_svd_bounds_and_fine_tuning_lowers_them() {
        let d = toy();
        let x = d.xt();
        let svd = linalg::truncated_svd(x, 9, &mut crate::rng::Rng::new(0), faer::Par::Seq).unwrap();
        let total = linalg::frob_sq(x);
        let bound =
            |k: usize| ((total - svd.s[..k].iter().map(|s| s * s).sum::<f64>()).max(0.0) / total).sqrt();
        let mut prev = 0.0;
        for (depth, ranks) in [vec![9], vec![9, 4], vec![9, 4, 2]].iter().enumerate() {
            let st = hierarchical(&d, ranks, &base()).unwrap();
            let rel = st.rel_error(x);
            let b = bound(*ranks.last().unwrap());
            assert!(
                rel >= b - 1e-9 && rel < b + 0.3,
                "depth {}: {rel} vs bound {b}",
                depth + 1
            );
            assert!(rel >= prev - 1e-9, "errors grow with depth");
            prev = rel;
            let stop = StopRules::max_iter(300);
            let labels = (depth > 0).then(|| {
                let classes = &d.extra_labels[depth].1;
                let known: Vec<bool> = (0..90).map(|j| j % 2 == 0).collect();
                LabelTerm::new(
                    classes,
                    &known,
                    *ranks.last().unwrap(),
                    0.5,
                    &mut crate::rng::Rng::new(1),
                )
            });
            let ft = fine_tune(x, st, labels, &stop, &mut Silent).unwrap();
            for w in ft.history.windows(2) {
                assert!(
                    w[1].objective <= w[0].objective * (1.0 + 1e-12),
                    "objective rose: {} → {}",
                    w[0].objective,
                    w[1].objective
                );
            }
            if depth == 0 {
                assert!(ft.stack.rel_error(x) <= rel + 1e-12);
            }
        }
        assert!(check_ranks(&[4, 9], 87, 90).is_err());
        assert!(check_ranks(&[100], 87, 90).is_err());
    }
}
