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

/// Lower Cholesky factor (row-major `f × f`) of `G_FF`, with a ridge when needed; the flag says
/// whether a ridge was added.
pub(super) fn factor(g: &Mat<f64>, f: &[usize], mean_diag: f64) -> (Vec<f64>, bool) {
    let m = f.len();
    let mut ridge = 0.0;
    let mut eps = 1e-12;
    loop {
        let mut l = vec![0.0; m * m];
        let mut ok = true;
        'outer: for a in 0..m {
            let ga = g.col_as_slice(f[a]);
            for b in 0..=a {
                let mut s = ga[f[b]];
                if a == b {
                    s += ridge;
                }
                s -= dot(&l[a * m..a * m + b], &l[b * m..b * m + b]);
                if a == b {
                    // Pivots below this relative size mean numerical singularity.
                    if !(s > 1e-13 * g[(f[a], f[a])].abs().max(mean_diag * 1e-300)) {
                        ok = false;
                        break 'outer;
                    }
                    l[a * m + a] = s.sqrt();
                } else {
                    l[a * m + b] = s / l[b * m + b];
                }
            }
        }
        if ok {
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
