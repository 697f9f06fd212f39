//! Compressed (randomized) NMF (METHODS.md §11.6; Erichson, Mendible, Wihlborg & Kutz 2018,
//! "Randomized nonnegative matrix factorization"; Tepper & Sapiro 2016).
//!
//! A basis `U` (`m × l`, `l = k + oversample`, orthonormal) of the leading subspace of the data's
//! columns gives `X ≈ X̂ = U B` with `B = UᵀX` (`l × n`). With an NNDSVD start on data whose
//! smaller side is at most 2048 the start's eigendecomposition already holds the exact leading
//! `l` left singular vectors, and `U` is taken from it ([`Sketch::from_svd`]: the best rank-`l`
//! subspace, and `B = ΣVᵀ` costs no pass over `X`); otherwise a seeded randomized range finder
//! (Halko, Martinsson & Tropp 2011, [`sketch`]) builds it. The Frobenius solvers
//! ([`super::frobenius::GramSolver`]: HALS, MU, ANLS) then iterate on `‖X̂ − WH‖²`: the codes'
//! cross term `P = WᵀX̂ = (WᵀU)·B` and the atoms' `R = HX̂ᵀ = (HBᵀ)·Uᵀ`, `O(k·l·(m + n))` flops
//! each instead of `O(k·m·n)`; finally `polish` exact iterations on `X` remove the compression's
//! bias.
//!
//! **Many samples** ([`samples`]): the sketch does not shrink what costs `k²n` (HALS's sweeps of
//! the codes, `HHᵀ`), so on data with many samples the compressed iterations run on a random
//! subset of them ([`CompressSamples`](samples::CompressSamples)), whose atoms and the codes
//! of all samples start exact iterations on all samples; `polish` then does not apply.
//!
//! **Variant.** Erichson et al.'s rHALS updates compressed atoms `W̃ = UᵀW` and projects back
//! after each column (`W ← [U W̃]₊`). Here both updates are the solver's own exact steps on `X̂`
//! in the data space (the atoms stay non-negative without a projection, and HALS / ANLS stay
//! monotone on `‖X̂ − WH‖²`); only the cross terms are formed through the sketch.
//!
//! **The objective** recorded is always the true one, `‖X − WH‖² = ‖X‖² − 2⟨Wᵀ, HXᵀ⟩ +
//! ⟨WᵀW, HHᵀ⟩` (the Gram identity, METHODS.md §11.1), and that needs the exact product `HXᵀ`:
//! compressed iterations compute it every [`TOL_EVERY`](crate::engine::TOL_EVERY) iterations
//! (where the tolerance is tested) and at the last, and are not recorded in between
//! ([`crate::engine::Step::Unevaluated`]). Extrapolation's accept test compares the compressed
//! objective, which is what the iterations descend.
//!
//! **When it pays** ([`Compress::Auto`]): the sketched products cost `k·l·(m + n)` multiply-adds
//! each against `k·m·n` for the exact ones; compression is used when that is at most half, i.e.
//! `l·(m + n) ≤ m·n / 2` (which also keeps `l < m/2`). Otherwise (rank close to the number of
//! features, or few samples) `Auto` does not sketch: it still warms up on a subset where there
//! are many samples ([`samples`], without a sketch), else it runs the plain solver.

use faer::{Accum, Mat, MatRef, Par};
use serde::{Deserialize, Serialize};

use super::data_op::XRef;
use crate::error::{Error, Result};
use crate::linalg;
use crate::real::Real;
use crate::rng::Rng;

pub mod samples;

/// Whether and how an NMF fit compresses the data ([module doc](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compress {
    /// Plain iterations on `X` (the default).
    #[default]
    Off,
    /// Sketch `X` with `l = k + oversample` columns and `power_iters` power iterations, iterate
    /// on the sketch, then run `polish` exact iterations.
    On {
        /// Extra columns of the sketch beyond `k` (Halko et al.: 5–20).
        oversample: usize,
        /// Power iterations `q` of the range finder (each costs two passes over `X`).
        power_iters: usize,
    },
    /// As `On` when compression pays (`l·(m + n) ≤ m·n/2`), else the plain solver.
    Auto {
        /// As in `On`.
        oversample: usize,
        /// As in `On`.
        power_iters: usize,
    },
}

/// Default oversampling `p` of [`Compress::On`] / [`Compress::Auto`]. Larger than a range
/// finder's usual 5–20 because both factors' updates see only `X̂ = UUᵀX`: the sketch's tail
/// `‖X − X̂‖` biases the fit. Measured on Fashion-MNIST (60,000 × 784, k = 100, HALS, 80
/// iterations, docs/benchmarks.md#compressed-nmf): with p = 20 (tail 0.179 of ‖X‖) the error
/// after 80 iterations is 0.2207 against plain HALS's 0.2189 and never reaches 0.22; p = 50
/// reaches 0.22 at iteration 71; p = 100 (tail 0.140) at iteration 50 as plain HALS does (48),
/// ending at 0.2186; p = 200 is no faster per error reached.
pub const DEFAULT_OVERSAMPLE: usize = 100;
/// Default power iterations `q`.
pub const DEFAULT_POWER_ITERS: usize = 2;
/// Most power iterations accepted (each costs two passes over `X`; 1–2 suffice on real data).
pub const MAX_POWER_ITERS: usize = 10;

impl Compress {
    /// `On` with the default sketch parameters.
    pub fn on() -> Self {
        Compress::On {
            oversample: DEFAULT_OVERSAMPLE,
            power_iters: DEFAULT_POWER_ITERS,
        }
    }

    /// `Auto` with the default sketch parameters.
    pub fn auto() -> Self {
        Compress::Auto {
            oversample: DEFAULT_OVERSAMPLE,
            power_iters: DEFAULT_POWER_ITERS,
        }
    }

    /// `(oversample, power_iters)`, `None` when off.
    pub fn sketch_params(&self) -> Option<(usize, usize)> {
        match *self {
            Compress::Off => None,
            Compress::On {
                oversample,
                power_iters,
            }
            | Compress::Auto {
                oversample,
                power_iters,
            } => Some((oversample, power_iters)),
        }
    }

    /// Checks what does not depend on the data: `power_iters ≤` [`MAX_POWER_ITERS`].
    pub(crate) fn check(&self) -> Result<()> {
        if let Some((_, q)) = self.sketch_params() {
            if q > MAX_POWER_ITERS {
                return Err(Error::invalid(
                    "power_iters",
                    q,
                    format!("must be at most {MAX_POWER_ITERS} (each costs two passes over X; 1–2 suffice); lower `power_iters`"),
                ));
            }
        }
        Ok(())
    }

    /// The sketch to use for `k` components on `m` features × `n` samples: `Some((l, q))`, or
    /// `None` for plain iterations (off, or `Auto` when compression does not pay).
    pub(crate) fn plan(&self, k: usize, m: usize, n: usize) -> Result<Option<(usize, usize)>> {
        let Some((p, q)) = self.sketch_params() else {
            return Ok(None);
        };
        let l = k.saturating_add(p);
        match self {
            Compress::Auto { .. } => Ok(pays(l, m, n).then_some((l, q))),
            _ => {
                if l >= m {
                    return Err(Error::invalid(
                        "oversample",
                        p,
                        format!(
                            "k + oversample = {l} must be below n_features = {m} for the sketch to compress anything; lower `oversample` or use `compress = auto`, which falls back to the plain solver"
                        ),
                    ));
                }
                Ok(Some((l, q)))
            }
        }
    }
}

/// Whether a sketch with `l` columns pays on `m` features × `n` samples: the sketched cross
/// term `k·l·(m + n)` is at most half the exact `k·m·n`.
pub fn pays(l: usize, m: usize, n: usize) -> bool {
    2.0 * l as f64 * (m as f64 + n as f64) <= m as f64 * n as f64
}

/// `X ≈ U B`: `u` is `m × l` with orthonormal columns, `b = UᵀX` is `l × n`.
#[derive(Clone, Debug)]
pub(crate) struct Sketch<T: Real> {
    pub u: Mat<T>,
    pub b: Mat<T>,
}

impl<T: Real> Sketch<T> {
    /// The sketch from the leading `l` singular triplets of `X` (the NNDSVD initialization's
    /// eigendecomposition of `XXᵀ` or `XᵀX`, [`linalg::truncated_svd`]'s exact path): `U` the
    /// left singular vectors, `B = UᵀX = ΣVᵀ` without another pass over `X`. This is the best
    /// rank-`l` subspace (Eckart–Young), which the range finder only approaches.
    pub(crate) fn from_svd(svd: &linalg::TruncatedSvd<T>) -> Self {
        let l = svd.s.len();
        let n = svd.v.nrows();
        let b = Mat::<T>::from_fn(l, n, |j, i| svd.s[j] * svd.v[(i, j)]);
        Sketch { u: svd.u.clone(), b }
    }
}

/// The randomized range finder on the columns of `x` (`m × n`): `Ω` (`n × l`) standard Gaussian
/// from `rng` (drawn column by column, so the same seed gives the same bits for any thread
/// count), `U = orth(XΩ)`, then `q` times `U = orth(X(XᵀU))`, and `B = UᵀX`. Costs
/// `(2 + 2q)·m·n·l` multiply-adds; orthonormalizing the small `m × l` side after every product
/// keeps the directions of small singular values from drowning in rounding (Halko et al.'s
/// Algorithm 4.4 also orthonormalizes `XᵀU`, an `n × l` QR that costs as much as a product here
/// and is not needed for the subspace: `U` is orthonormal, so `XᵀU` is only as ill-conditioned as
/// `X` on that subspace).
pub(crate) fn sketch<T: Real>(x: MatRef<'_, T>, l: usize, q: usize, rng: &mut Rng, par: Par) -> Sketch<T> {
    let (m, n) = (x.nrows(), x.ncols());
    let mut omega = Mat::<T>::zeros(n, l);
    for j in 0..l {
        for v in omega.col_as_slice_mut(j) {
            *v = T::from_f64(rng.normal());
        }
    }
    let mut y = Mat::<T>::zeros(m, l);
    linalg::matmul(y.as_mut(), Accum::Replace, x, omega.as_ref(), T::one(), par);
    let mut u = orthonormalize(y.as_ref());
    let mut z = omega;
    for _ in 0..q {
        linalg::matmul(
            z.as_mut(),
            Accum::Replace,
            x.transpose(),
            u.as_ref(),
            T::one(),
            par,
        );
        linalg::matmul(y.as_mut(), Accum::Replace, x, z.as_ref(), T::one(), par);
        u = orthonormalize(y.as_ref());
    }
    drop(z);
    let mut b = Mat::<T>::zeros(l, n);
    linalg::matmul(b.as_mut(), Accum::Replace, u.transpose(), x, T::one(), par);
    Sketch { u, b }
}

/// [`sketch`] of a sparse `x` (samples as columns): the same `Ω` and steps, the products with
/// `X` by the SpMM kernels ([`XRef::atoms_cross`] gives `(XΩ)ᵀ = ΩᵀXᵀ`, [`XRef::codes_cross`]
/// `UᵀX`), so it equals the dense sketch of the same matrix to rounding. Costs
/// `(2 + 2q)·nnz·l` multiply-adds; `B` is dense `l × n`.
pub(crate) fn sketch_ref<T: Real>(x: XRef<'_, T>, l: usize, q: usize, rng: &mut Rng, par: Par) -> Sketch<T> {
    if let Some(xd) = x.dense() {
        return sketch(xd, l, q, rng, par);
    }
    let (m, n) = (x.nrows(), x.ncols());
    // Ωᵀ (l × n): row j is column j of the dense path's Ω, drawn in the same order.
    let mut omega_t = Mat::<T>::zeros(l, n);
    for j in 0..l {
        for i in 0..n {
            omega_t[(j, i)] = T::from_f64(rng.normal());
        }
    }
    let mut yt = Mat::<T>::zeros(l, m);
    x.atoms_cross(yt.as_mut(), omega_t.as_ref(), par);
    let mut u = orthonormalize(yt.transpose());
    let mut zt = omega_t;
    let mut ut = Mat::<T>::zeros(l, m);
    for _ in 0..q {
        ut.copy_from(u.transpose());
        x.codes_cross(zt.as_mut(), ut.as_ref(), par);
        x.atoms_cross(yt.as_mut(), zt.as_ref(), par);
        u = orthonormalize(yt.transpose());
    }
    drop(zt);
    ut.copy_from(u.transpose());
    let mut b = Mat::<T>::zeros(l, n);
    x.codes_cross(b.as_mut(), ut.as_ref(), par);
    Sketch { u, b }
}

/// Whether a sketch with `l` columns pays on sparse data with `nnz` non-zeros: the sketched
/// cross terms cost `2k·l·(m + n)` dense multiply-adds against `2k·nnz` through the SpMM
/// kernels, and the rest of an iteration (the codes' sweeps, `HHᵀ`) is the same: it pays when
/// `l·(m + n) ≤ nnz`. Measured (HALS, k = 50, l = 150, 30 iterations with 5 polish, 2 threads,
/// `data generate topics --docs 60000 --terms 2000 --topics 50 --seed 2`): at 14.7 % density
/// (17.6 M non-zeros, `l·(m + n)` = 9.3 M) 0.105 s per iteration against 0.16 s plain, the
/// whole fit 4.41–4.46 s against 4.74–4.85 s with the 1.3 s sketch; at 4.7 % (5.65 M) the
/// iterations cost the same (0.069 s) and the sketch is lost time.
pub fn pays_sparse(l: usize, m: usize, n: usize, nnz: usize) -> bool {
    (l as f64) * (m as f64 + n as f64) <= nnz as f64
}

/// An orthonormal basis of the columns of `y` (`m × l`, `l ≤ m`) by classical Gram–Schmidt
/// applied twice ("twice is enough", Giraud et al. 2005), in f64, sequentially (`O(m·l²)`, small
/// next to the products; the same bits for any thread count). A column that is (numerically)
/// in the span of the previous ones becomes zero: `UUᵀ` stays an orthogonal projector.
pub(crate) fn orthonormalize<T: Real>(y: MatRef<'_, T>) -> Mat<T> {
    let (m, l) = (y.nrows(), y.ncols());
    let mut cols: Vec<Vec<f64>> = (0..l)
        .map(|j| (0..m).map(|i| y[(i, j)].to_f64()).collect())
        .collect();
    let mut coef = vec![0.0f64; l];
    for j in 0..l {
        let (done, rest) = cols.split_at_mut(j);
        let cur = &mut rest[0];
        let norm0 = linalg::dot_f64(cur, cur).sqrt();
        for _ in 0..2 {
            for (c, prev) in coef.iter_mut().zip(done.iter()) {
                *c = linalg::dot_f64(prev, cur);
            }
            for (&c, prev) in coef.iter().zip(done.iter()) {
                if c != 0.0 {
                    for (v, &p) in cur.iter_mut().zip(prev) {
                        *v -= c * p;
                    }
                }
            }
        }
        let norm = linalg::dot_f64(cur, cur).sqrt();
        let keep = norm.is_finite() && norm > 1e-12 * norm0;
        let s = if keep { 1.0 / norm } else { 0.0 };
        for v in cur.iter_mut() {
            *v *= s;
        }
    }
    Mat::<T>::from_fn(m, l, |i, j| T::from_f64(cols[j][i]))
}

#[cfg(test)]
mod tests;
