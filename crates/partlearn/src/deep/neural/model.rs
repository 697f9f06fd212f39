//! The Neural NMF network (METHODS.md §4.3): layers `A⁽ⁱ⁾` and an optional classifier `B`, and
//! the forward pass through the NNLS layers `S⁽ⁱ⁾ = q(S⁽ⁱ⁻¹⁾, A⁽ⁱ⁾)` (block principal pivoting,
//! supports warm-started from the previous pass).
//!
//! The layers keep METHODS.md's layout (`A⁽ⁱ⁾` is `k_{i−1} × k_i`, `B` is `c × k_L`); data and
//! codes cross the public functions as samples-as-rows (`X` `n × m`, codes `n × k_i`) and are
//! transposed views of the forward pass's samples-as-columns matrices.

use faer::{Accum, Mat, MatRef, Par};

use crate::error::{Error, Result};
use crate::linalg;
use crate::linalg::nnls::{solve_gram, NnlsOptions};
use crate::real::Real;
use crate::rng::Rng;

/// A trained Neural NMF: `A⁽ⁱ⁾` is `k_{i−1} × k_i` (`k_{−1} = m`), `B` is `c × k_L`.
#[derive(Clone, Debug)]
pub struct NeuralNmf<T: Real> {
    /// The layers `A⁽ⁱ⁾` (`k_{i−1} × k_i`, first layer first; `A⁽⁰⁾` is `m × k₀`).
    pub a: Vec<Mat<T>>,
    /// The classifier `B` (`c × k_L`), when trained with labels.
    pub b: Option<Mat<T>>,
}

/// The codes of every layer of a forward pass (read as samples-as-rows views with
/// [`codes`](Forward::codes)) and what the backward pass reuses.
#[derive(Clone, Debug)]
pub struct Forward<T: Real> {
    /// `S⁽ⁱ⁾` of every layer (`k_i × n`, samples as columns), first layer first. At least one:
    /// a pass is made by training, whose networks have at least one layer.
    pub(crate) s: Vec<Mat<T>>,
    /// `A⁽ⁱ⁾ᵀA⁽ⁱ⁾` of every layer (the backward pass solves with them).
    pub(super) grams: Vec<Mat<T>>,
}

fn nnls_opts() -> NnlsOptions {
    NnlsOptions::default()
}

impl<T: Real> Forward<T> {
    /// Layers of the pass.
    pub fn depth(&self) -> usize {
        self.s.len()
    }

    /// The codes of layer `level` (`S⁽ⁱ⁾ᵀ`, `n × k_i`, a view), if the pass has that layer.
    pub fn codes(&self, level: usize) -> Option<MatRef<'_, T>> {
        self.s.get(level).map(|s| s.transpose())
    }

    /// The last layer's codes (`S⁽ᴸ⁾ᵀ`, `n × k_L`, a view).
    pub fn top_codes(&self) -> MatRef<'_, T> {
        // At least one layer (field doc).
        self.s[self.s.len() - 1].transpose()
    }
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

    /// Forward propagation `S⁽ⁱ⁾ = q(S⁽ⁱ⁻¹⁾, A⁽ⁱ⁾)` of `x` given as samples as columns
    /// (`m × n`); with `warm`, each layer's NNLS starts from the supports of the previous forward
    /// pass.
    pub(crate) fn forward(&self, x: MatRef<'_, T>, warm: Option<Forward<T>>, par: Par) -> Result<Forward<T>> {
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
        self.composed_par(level, Par::Seq)
    }

    /// [`composed`](Self::composed) with the products run by `par`.
    pub(super) fn composed_par(&self, level: usize, par: Par) -> Mat<T> {
        let mut p = self.a[0].clone();
        for a in &self.a[1..=level] {
            p = linalg::mul(p.as_ref(), a.as_ref(), par);
        }
        p
    }

    /// `‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖ / ‖X‖` for `x` (`n × m`, samples as rows) and its forward pass `f`.
    pub fn rel_error(&self, x: MatRef<'_, T>, f: &Forward<T>) -> f64 {
        self.rel_error_par(x.transpose(), f, Par::Seq)
    }

    /// [`rel_error`](Self::rel_error) of `x` as samples as columns (`m × n`), the products run by
    /// `par`.
    pub(super) fn rel_error_par(&self, x: MatRef<'_, T>, f: &Forward<T>, par: Par) -> f64 {
        let l = self.a.len() - 1;
        let z = linalg::mul(self.composed_par(l, par).as_ref(), f.s[l].as_ref(), par);
        let r = Mat::<T>::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] - z[(i, j)]);
        (linalg::frob_sq(r.as_ref()) / linalg::frob_sq(x).max(f64::MIN_POSITIVE)).sqrt()
    }

    /// The last layer's codes `S⁽ᴸ⁾ᵀ` (`n × k_L`) of `x` (`n × m`, samples as rows, entries ≥ 0)
    /// by the forward pass on `threads` threads (what the classifier and the post-hoc accuracy
    /// see).
    pub fn top_codes(&self, x: MatRef<'_, T>, threads: usize) -> Result<Mat<T>> {
        // The forward pass's layout, samples as columns (a view).
        let xt = x.transpose();
        crate::data::validate_nonnegative(xt)?;
        let f = linalg::with_threads(threads, || self.forward(xt, None, linalg::par(threads)))??;
        f.s.last()
            .map(|s| s.transpose().to_owned())
            .ok_or_else(|| Error::invalid("layers", 0, "a network needs at least one layer"))
    }
}
