//! The exact backward pass of Neural NMF (METHODS.md §4.3) and the costs it differentiates.
//!
//! One layer `S = q(X, A)` (per column, support `P`, `M = A[:,P]`, `u = (MᵀM)⁻¹ g_P`):
//! `∂C/∂x = M u` and `∂C/∂A[:,P] += −(M u) s_Pᵀ + r uᵀ` with `r = x − M s_P`. With `U` the matrix
//! of the `u`'s (zero off the supports) this is, for all columns at once,
//! `∂C/∂X = A U` and `∂C/∂A = −(A U) Sᵀ + R Uᵀ`, `R = X − A S`: GEMMs plus one small solve
//! per group of columns sharing a support ([`crate::linalg::nnls::solve_on_supports`]). The
//! network's gradient chains these from the top layer down, adding each layer's direct terms
//! (reconstruction or energy cost, the classification term on the last layer).

use faer::{Accum, Mat, MatRef, Par};

use super::{ClassLoss, Cost, Forward, NeuralNmf};
use crate::data::labels::Labels;
use crate::linalg;
use crate::linalg::nnls::solve_on_supports;
use crate::real::Real;

/// One layer's backward pass (module doc): returns `(∂C/∂A, ∂C/∂X)` for `S = q(X, A)` given
/// `g = ∂C/∂S`; `∂C/∂X` only when `need_dx`.
pub(crate) fn layer_backward<T: Real>(
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

/// Value of the cost and its gradient with respect to every `A` (the classifier `B` takes its
/// own steps, with [`classification`]'s gradient at the codes of the step).
pub(crate) struct Gradient<T: Real> {
    /// The cost, classification term included.
    pub cost: f64,
    /// `∂C/∂A⁽ⁱ⁾`, one per layer, shaped as the layers.
    pub da: Vec<Mat<T>>,
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
pub(super) fn classification<T: Real>(
    b: MatRef<'_, T>,
    s: MatRef<'_, T>,
    sup: &Labels,
    loss: ClassLoss,
    lambda: f64,
    par: Par,
) -> (f64, Mat<T>, Mat<T>) {
    let (c, n) = (b.nrows(), s.ncols());
    let mut z = Mat::<T>::zeros(c, n);
    linalg::matmul(z.as_mut(), Accum::Replace, b, s, T::one(), par);
    let (known, classes) = (sup.known(), sup.classes());
    let n_known = sup.n_known().max(1) as f64;
    let mut dz = Mat::<T>::zeros(c, n);
    let mut value = 0.0;
    for j in (0..n).filter(|&j| known[j]) {
        let y = classes[j] as usize;
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
    pub(crate) fn cost_value(
        &self,
        x: MatRef<'_, T>,
        f: &Forward<T>,
        cost: Cost,
        sup: Option<(&Labels, ClassLoss, f64)>,
        par: Par,
    ) -> f64 {
        let l = self.a.len() - 1;
        let residual = |data: MatRef<'_, T>, a: MatRef<'_, T>, s: MatRef<'_, T>| {
            let mut r = data.to_owned();
            linalg::matmul(r.as_mut(), Accum::Add, a, s, -T::one(), par);
            mean_sq(r.as_ref())
        };
        let value = match cost {
            Cost::Reconstruction => residual(x, self.composed_par(l, par).as_ref(), f.s[l].as_ref()),
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
    pub(crate) fn gradient(
        &self,
        x: MatRef<'_, T>,
        f: &Forward<T>,
        cost: Cost,
        sup: Option<(&Labels, ClassLoss, f64)>,
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
                    q[i] = linalg::mul(self.a[i + 1].as_ref(), q[i + 1].as_ref(), par);
                }
                let z = linalg::mul(self.a[0].as_ref(), q[0].as_ref(), par);
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
                    e = linalg::mul(self.a[i].transpose(), e.as_ref(), par);
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
        if let (Some((s, loss, lambda)), Some(b)) = (sup, &self.b) {
            let (v, ds, _) = classification(b.as_ref(), f.s[l].as_ref(), s, loss, lambda, par);
            classification_value = v;
            for j in 0..ds.ncols() {
                for i in 0..ds.nrows() {
                    ds_direct[l][(i, j)] = ds_direct[l][(i, j)] + ds[(i, j)];
                }
            }
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
            da,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

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
        let sup = Labels::new(
            (0..n as u32).map(|j| j % 3).collect(),
            (0..n).map(|j| j % 4 != 1).collect(),
        )
        .unwrap();
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
}
