//! Scalar `f64` Cholesky solves on one passive set at a time: [`factor`] with its ridge fallback
//! (for a lane whose pivot failed, and for rank-deficient supports) and [`chol_solve`], and
//! through them [`solve_on_supports`], the linear solves on the supports of NNLS solutions that
//! Neural NMF's backward pass needs (METHODS.md §4.3).

use std::collections::BTreeMap;

use faer::{Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::linalg::dot_f64 as dot;
use crate::real::Real;

/// For every column `j`, solves `G_PP u_P = rhs_P` on the support `P = {i : support[i, j] > 0}`
/// of a solution (and `u_i = 0` off it): the linear solve of the derivative of an NNLS solution
/// (Neural NMF's backward pass, METHODS.md §4.3). Columns are grouped by support, each group
/// factors `G_PP` once (with the ridge fallback of [`solve_gram`], so that rank-deficient
/// supports act like a pseudo-inverse), groups run in parallel with `par`; same bits for any
/// thread count.
///
/// [`solve_gram`]: super::solve_gram
pub fn solve_on_supports<T: Real>(
    gram: MatRef<'_, T>,
    support: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    mut out: MatMut<'_, T>,
    par: Par,
) {
    let (k, n) = (rhs.nrows(), rhs.ncols());
    debug_assert!(gram.nrows() == k && support.nrows() == k && support.ncols() == n);
    let g = Mat::<f64>::from_fn(k, k, |i, j| gram[(i, j)].to_f64());
    let mean_diag = (0..k).map(|i| g[(i, i)]).sum::<f64>() / k.max(1) as f64;
    let mut groups: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
    for j in 0..n {
        let p: Vec<usize> = (0..k).filter(|&i| support[(i, j)] > T::zero()).collect();
        groups.entry(p).or_default().push(j);
    }
    let groups: Vec<(Vec<usize>, Vec<usize>)> = groups.into_iter().collect();
    let solve = |(p, members): &(Vec<usize>, Vec<usize>)| -> Vec<(usize, Vec<f64>)> {
        if p.is_empty() {
            return Vec::new();
        }
        let (chol, _) = factor(&g, p, mean_diag);
        members
            .iter()
            .map(|&j| {
                let mut u: Vec<f64> = p.iter().map(|&i| rhs[(i, j)].to_f64()).collect();
                chol_solve(&chol, p.len(), &mut u);
                (j, u)
            })
            .collect()
    };
    let results: Vec<Vec<(usize, Vec<f64>)>> = if matches!(par, Par::Seq) || groups.len() < 2 {
        groups.iter().map(solve).collect()
    } else {
        groups.par_iter().map(solve).collect()
    };
    out.fill(T::zero());
    for ((p, _), res) in groups.iter().zip(results) {
        for (j, u) in res {
            for (&i, v) in p.iter().zip(u) {
                out[(i, j)] = T::from_f64(v);
            }
        }
    }
}

/// Lower Cholesky factor (row-major `f × f`) of `G_FF + ridge·I`, or `None` when a pivot falls
/// to `ratio · max(|G_ii|, 1e-300·mean_diag)` or below (numerical singularity).
fn cholesky(g: &Mat<f64>, f: &[usize], ridge: f64, ratio: f64, mean_diag: f64) -> Option<Vec<f64>> {
    let m = f.len();
    let mut l = vec![0.0; m * m];
    for a in 0..m {
        let ga = g.col_as_slice(f[a]);
        for b in 0..=a {
            let mut s = ga[f[b]];
            if a == b {
                s += ridge;
            }
            s -= dot(&l[a * m..a * m + b], &l[b * m..b * m + b]);
            if a == b {
                if !(s > ratio * g[(f[a], f[a])].abs().max(mean_diag * 1e-300)) {
                    return None;
                }
                l[a * m + a] = s.sqrt();
            } else {
                l[a * m + b] = s / l[b * m + b];
            }
        }
    }
    Some(l)
}

/// Lower Cholesky factor (row-major `f × f`) of `G_FF`, with a ridge when needed (pivots below
/// 1e-13 of their diagonal mean numerical singularity); the flag says whether a ridge was added.
pub(super) fn factor(g: &Mat<f64>, f: &[usize], mean_diag: f64) -> (Vec<f64>, bool) {
    let m = f.len();
    let mut ridge = 0.0;
    let mut eps = 1e-12;
    loop {
        if let Some(l) = cholesky(g, f, ridge, 1e-13, mean_diag) {
            return (l, ridge > 0.0);
        }
        if mean_diag == 0.0 || eps > 1.0 {
            // G is zero (or hopeless): the ridge alone defines the solve.
            let r = if mean_diag > 0.0 { mean_diag } else { 1.0 };
            let mut l = vec![0.0; m * m];
            for a in 0..m {
                l[a * m + a] = (g[(f[a], f[a])].max(0.0) + r).sqrt();
            }
            return (l, true);
        }
        ridge = eps * mean_diag;
        eps *= 100.0;
    }
}

/// Solves `L Lᵀ x = rhs` in place (`L` row-major `m × m` lower triangular).
pub(super) fn chol_solve(l: &[f64], m: usize, rhs: &mut [f64]) {
    for a in 0..m {
        let s = rhs[a] - dot(&l[a * m..a * m + a], &rhs[..a]);
        rhs[a] = s / l[a * m + a];
    }
    for a in (0..m).rev() {
        let mut s = rhs[a];
        for c in a + 1..m {
            s -= l[c * m + a] * rhs[c];
        }
        rhs[a] = s / l[a * m + a];
    }
}

/// Lawson–Hanson's active-set method on the Gram form, for one column: `min_{x≥0} ½xᵀGx − bᵀx`
/// from `x = 0`. Each outer step frees the index `t` of the largest dual `w_i = b_i − (Gx)_i`
/// above `tol`, solves `G_PP z = b_P` and, while some `z_i ≤ 0`, steps from `x` towards `z`
/// until the first passive coordinate reaches zero and drops it. The objective decreases at
/// every step, and in exact arithmetic an index with a positive dual at a solution on `P` is
/// independent of `P`, so `G_PP` stays non-singular even when `G` is rank-deficient, where the
/// principal pivoting's exchanges can cycle. In floating point a dependent index can show a
/// dual above `tol` from rounding alone; when freeing `t` makes a pivot of `G_PP` fall to
/// `ratio·G_ii` or below (the singularity ratio of the data's precision: 1e-4 for `f32`, whose
/// rounding `G` carries, 1e-13 for `f64`), `t` is set aside instead: solving through it (or
/// through a ridge) would return a huge, meaningless `z` from `G`'s rounding. So is an index
/// whose first solve comes out `≤ 0`. Set-aside indices come back when `x` changes; at most
/// `3k + 10` outer steps.
pub(super) fn active_set(g: &Mat<f64>, b: &[f64], tol: f64, ratio: f64, mean_diag: f64) -> Vec<f64> {
    let k = b.len();
    let mut x = vec![0.0; k];
    let mut passive = vec![false; k];
    let mut aside = vec![false; k];
    let mut f: Vec<usize> = Vec::with_capacity(k);
    for _ in 0..3 * k + 10 {
        let w: Vec<f64> = (0..k).map(|i| b[i] - dot(g.col_as_slice(i), &x)).collect();
        let Some(t) = (0..k)
            .filter(|&i| !passive[i] && !aside[i] && w[i] > tol)
            .max_by(|&a, &c| w[a].total_cmp(&w[c]))
        else {
            break;
        };
        passive[t] = true;
        // Each pass either accepts `z` or drops at least one index, so `k + 1` passes suffice.
        for _ in 0..=k {
            f.clear();
            f.extend((0..k).filter(|&i| passive[i]));
            if f.is_empty() {
                break;
            }
            let Some(l) = cholesky(g, &f, 0.0, ratio, mean_diag) else {
                // Only `t` can be dependent: `P` without it was non-singular, and dropping
                // indices keeps it so.
                passive[t] = false;
                aside[t] = true;
                break;
            };
            let mut z: Vec<f64> = f.iter().map(|&i| b[i]).collect();
            chol_solve(&l, f.len(), &mut z);
            if z.iter().all(|&v| v > 0.0) {
                for (&i, &v) in f.iter().zip(&z) {
                    x[i] = v;
                }
                aside.fill(false);
                break;
            }
            // The largest step that keeps every passive coordinate ≥ 0, and the one it stops.
            let (mut alpha, mut stop) = (f64::INFINITY, f[0]);
            for (&i, &zi) in f.iter().zip(&z) {
                if zi <= 0.0 {
                    let a = x[i] / (x[i] - zi);
                    if a < alpha {
                        (alpha, stop) = (a, i);
                    }
                }
            }
            for (&i, &zi) in f.iter().zip(&z) {
                x[i] += alpha * (zi - x[i]);
                if x[i] <= 0.0 || i == stop {
                    x[i] = 0.0;
                    passive[i] = false;
                }
            }
            if alpha > 0.0 {
                aside.fill(false);
            } else if stop == t {
                aside[t] = true;
            }
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::super::oracle::lawson_hanson;
    use super::*;
    use crate::rng::Rng;

    /// The active-set method agrees with the plain Lawson–Hanson reference on full-rank
    /// problems, and on rank-deficient ones (`p < k`, repeated columns) its solution has the
    /// reference's residual (the minimizer is not unique there) and meets the KKT conditions.
    #[test]
    fn active_set_solves_full_rank_and_rank_deficient_problems() {
        let mut r = Rng::new(29);
        for &(p, k) in &[(20usize, 6usize), (3, 8), (5, 12), (12, 12)] {
            for _ in 0..20 {
                let mut c =
                    Mat::<f64>::from_fn(p, k, |_, _| if r.uniform() < 0.2 { 0.0 } else { r.uniform() });
                for i in 0..p {
                    c[(i, k - 1)] = c[(i, 0)];
                }
                let b: Vec<f64> = (0..p).map(|_| r.uniform() - 0.4).collect();
                let g = c.transpose() * &c;
                let cb: Vec<f64> = (0..k).map(|j| (0..p).map(|i| c[(i, j)] * b[i]).sum()).collect();
                let mean_diag = (0..k).map(|i| g[(i, i)]).sum::<f64>() / k as f64;
                let scale = cb.iter().fold(0.0f64, |a, v| a.max(v.abs()));
                let x = active_set(&g, &cb, 1e-12 * scale, 1e-13, mean_diag);
                let want = lawson_hanson(&c, &b);
                let resid = |x: &[f64]| -> f64 {
                    (0..p)
                        .map(|i| (b[i] - (0..k).map(|j| c[(i, j)] * x[j]).sum::<f64>()).powi(2))
                        .sum()
                };
                assert!(x.iter().all(|&v| v >= 0.0));
                assert!(
                    (resid(&x) - resid(&want)).abs() <= 1e-10 * (1.0 + resid(&want)),
                    "{p}×{k}"
                );
                for i in 0..k {
                    let y = dot(g.col_as_slice(i), &x) - cb[i];
                    assert!(y >= -1e-9 * scale.max(1e-300), "dual {y} at {i}, {p}×{k}");
                    assert!((x[i] * y).abs() <= 1e-9 * scale * (1.0 + x[i]), "{p}×{k}");
                }
            }
        }
    }
}
