//! Exact non-negative least squares for many right-hand sides by block principal pivoting
//! (Kim & Park 2011; METHODS.md §1.3): `min_{x_j ≥ 0} ‖C x_j − b_j‖²` for every column `j`.
//!
//! The solver works on the normal equations: it takes the Gram matrix `G = CᵀC` (`k × k`) and the
//! cross terms `Cᵀb_j` (`k × n`), which is what every caller already has (ANLS computes `WᵀW`
//! and `WᵀX` by GEMM; Neural NMF's layers likewise). Each column keeps a passive set `F`; in
//! each round the columns are grouped by identical `F`, each group factors `G_FF` once
//! (Cholesky) and solves all its columns, then every column exchanges its infeasible indices
//! (all of them while the number of infeasibilities keeps falling or a budget of 3 allows,
//! otherwise only the largest one — the backup rule that guarantees termination). Groups run in
//! parallel on the caller's rayon pool; every group's arithmetic is independent of scheduling, so
//! the result has the same bits for any thread count.
//!
//! Numerics: the small systems are solved in `f64` whatever `T` is. Feasibility is tested with
//! tolerances relative to the column (`tol · max|Cᵀb_j|` for the dual, `tol · max|x_F|` for the
//! primal). A `G_FF` that is singular or numerically so (zero or duplicate columns of `C`) gets a
//! ridge `ε·mean(diag G)` (ε from 1e-12 growing ×100 until the factorization succeeds), which
//! picks the minimum-norm-like solution among the equivalent ones instead of failing.

use std::collections::BTreeMap;

use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linalg;
use crate::real::Real;

/// Settings of the BPP solver.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NnlsOptions {
    /// Relative feasibility tolerance (default 1e-10).
    pub tol: f64,
    /// Maximum exchange rounds per column; `None` = `10·k + 50`. A column that reaches it keeps
    /// its last solution projected onto `x ≥ 0` and is counted in [`NnlsStats::capped`].
    pub max_rounds: Option<usize>,
}

impl Default for NnlsOptions {
    fn default() -> Self {
        NnlsOptions {
            tol: 1e-10,
            max_rounds: None,
        }
    }
}

impl NnlsOptions {
    fn validate(&self) -> Result<()> {
        if !(self.tol > 0.0 && self.tol < 1.0) {
            return Err(Error::invalid("nnls tol", self.tol, "must be in (0, 1)"));
        }
        if self.max_rounds == Some(0) {
            return Err(Error::invalid("nnls max_rounds", 0, "must be ≥ 1"));
        }
        Ok(())
    }
}

/// What the solver did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NnlsStats {
    /// Rounds of the slowest column.
    pub rounds: usize,
    /// Cholesky factorizations (one per group per round).
    pub factorizations: usize,
    /// Columns whose factorization needed a ridge.
    pub ridged: usize,
    /// Columns that used the backup (one-at-a-time) exchange rule.
    pub backup: usize,
    /// Columns stopped by the round cap.
    pub capped: usize,
}

/// Solves `min_{x_j ≥ 0} ½x_jᵀ G x_j − x_jᵀ c_j` for every column `c_j` of `cross` (`k × n`),
/// i.e. NNLS with `G = CᵀC`, `cross = CᵀB`. `out` (`k × n`) receives the solutions; with
/// `warm`, its current positive entries are the starting passive sets (e.g. the previous ANLS
/// iterate), otherwise every column starts from `x = 0`. `par` parallelizes over groups.
pub fn solve_gram<T: Real>(
    gram: MatRef<'_, T>,
    cross: MatRef<'_, T>,
    mut out: MatMut<'_, T>,
    warm: bool,
    opts: &NnlsOptions,
    par: Par,
) -> Result<NnlsStats> {
    opts.validate()?;
    let (k, n) = (cross.nrows(), cross.ncols());
    if gram.nrows() != k || gram.ncols() != k || out.nrows() != k || out.ncols() != n {
        return Err(Error::ShapeMismatch {
            what: "NNLS inputs".into(),
            expected: format!("Gram {k} × {k} and solution {k} × {n} for cross terms {k} × {n}"),
            found: format!(
                "Gram {} × {}, solution {} × {}",
                gram.nrows(),
                gram.ncols(),
                out.nrows(),
                out.ncols()
            ),
            hint: "pass CᵀC and CᵀB of the same C".into(),
        });
    }
    if k == 0 || n == 0 {
        return Ok(NnlsStats::default());
    }
    let g = Mat::<f64>::from_fn(k, k, |i, j| gram[(i, j)].to_f64());
    if let Some((i, j)) = (0..k)
        .flat_map(|j| (0..k).map(move |i| (i, j)))
        .find(|&(i, j)| !g[(i, j)].is_finite())
    {
        return Err(Error::Numerical {
            what: "NNLS".into(),
            reason: format!(
                "the Gram matrix has a non-finite entry at ({i}, {j}); check the dictionary for NaN or Inf"
            ),
        });
    }
    let max_rounds = opts.max_rounds.unwrap_or(10 * k + 50);
    let words = k.div_ceil(64);
    let mut cols: Vec<Column> = (0..n)
        .map(|j| {
            let b: Vec<f64> = (0..k).map(|i| cross[(i, j)].to_f64()).collect();
            let mut passive = vec![0u64; words];
            if warm {
                for i in 0..k {
                    if out[(i, j)] > T::zero() {
                        passive[i / 64] |= 1 << (i % 64);
                    }
                }
            }
            let bmax = if b.iter().all(|v| v.is_finite()) {
                b.iter().fold(0.0f64, |a, v| a.max(v.abs()))
            } else {
                f64::NAN
            };
            Column {
                passive,
                x: vec![0.0; k],
                b,
                bmax,
                budget: 3,
                best: k + 1,
                rounds: 0,
                done: false,
                ridged: false,
                backup: false,
                capped: false,
            }
        })
        .collect();
    if let Some(j) = cols.iter().position(|c| !c.bmax.is_finite()) {
        return Err(Error::Numerical {
            what: "NNLS".into(),
            reason: format!("right-hand side {j} has a non-finite entry; check the data for NaN or Inf"),
        });
    }
    let mean_diag = (0..k).map(|i| g[(i, i)].abs()).sum::<f64>() / k as f64;
    let mut stats = NnlsStats::default();
    let parallel = !matches!(par, Par::Seq);
    loop {
        // Group the unfinished columns by passive set (sorted keys: deterministic order).
        let mut groups: BTreeMap<&[u64], Vec<usize>> = BTreeMap::new();
        for (j, c) in cols.iter().enumerate() {
            if !c.done {
                groups.entry(c.passive.as_slice()).or_default().push(j);
            }
        }
        if groups.is_empty() {
            break;
        }
        let groups: Vec<(Vec<u64>, Vec<usize>)> = groups.into_iter().map(|(p, v)| (p.to_vec(), v)).collect();
        stats.factorizations += groups.iter().filter(|(p, _)| p.iter().any(|w| *w != 0)).count();
        // Solve each group; results are (column, new x, ridged) in group order.
        let solve = |(passive, members): &(Vec<u64>, Vec<usize>)| -> Vec<(usize, Vec<f64>, bool)> {
            let f: Vec<usize> = (0..k).filter(|&i| passive[i / 64] >> (i % 64) & 1 == 1).collect();
            let (chol, ridged) = factor(&g, &f, mean_diag);
            members
                .iter()
                .map(|&j| {
                    let c = &cols[j];
                    let mut x = vec![0.0; k];
                    if !f.is_empty() {
                        let mut rhs: Vec<f64> = f.iter().map(|&i| c.b[i]).collect();
                        chol_solve(&chol, f.len(), &mut rhs);
                        for (&i, v) in f.iter().zip(rhs) {
                            x[i] = v;
                        }
                    }
                    (j, x, ridged)
                })
                .collect()
        };
        let results: Vec<Vec<(usize, Vec<f64>, bool)>> = if parallel && groups.len() > 1 {
            groups.par_iter().map(solve).collect()
        } else {
            groups.iter().map(solve).collect()
        };
        let updates: Vec<(usize, Vec<f64>, bool)> = results.into_iter().flatten().collect();
        let step = |(j, x, ridged): (usize, Vec<f64>, bool), c: &mut Column| {
            debug_assert!(!c.done, "column {j} solved twice");
            c.x = x;
            c.ridged |= ridged;
            c.rounds += 1;
            exchange(c, &g, k, opts.tol, max_rounds);
        };
        // Columns are updated independently; in parallel when there are many.
        let mut by_col: Vec<Option<(usize, Vec<f64>, bool)>> = vec![None; n];
        for u in updates {
            let j = u.0;
            by_col[j] = Some(u);
        }
        if parallel {
            cols.par_iter_mut()
                .zip(by_col.into_par_iter())
                .for_each(|(c, u)| {
                    if let Some(u) = u {
                        step(u, c);
                    }
                });
        } else {
            for (c, u) in cols.iter_mut().zip(by_col) {
                if let Some(u) = u {
                    step(u, c);
                }
            }
        }
    }
    for (j, c) in cols.iter().enumerate() {
        stats.rounds = stats.rounds.max(c.rounds);
        stats.ridged += usize::from(c.ridged);
        stats.backup += usize::from(c.backup);
        stats.capped += usize::from(c.capped);
        let mut col = out.as_mut().col_mut(j);
        for i in 0..k {
            col[i] = T::from_f64(c.x[i].max(0.0));
        }
    }
    Ok(stats)
}

/// Per-column state of the pivoting.
#[derive(Clone, Debug)]
struct Column {
    /// Bit `i` set ⇔ index `i` is passive (free).
    passive: Vec<u64>,
    x: Vec<f64>,
    b: Vec<f64>,
    bmax: f64,
    /// Full exchanges allowed without progress (α of §1.3).
    budget: u8,
    /// Fewest infeasibilities seen (β of §1.3).
    best: usize,
    rounds: usize,
    done: bool,
    ridged: bool,
    backup: bool,
    capped: bool,
}

/// Checks the KKT conditions of column `c` for its current `x` and exchanges infeasible indices
/// (METHODS.md §1.3 steps 3–5); marks the column done when feasible or capped.
fn exchange(c: &mut Column, g: &Mat<f64>, k: usize, tol: f64, max_rounds: usize) {
    let is_passive = |p: &[u64], i: usize| p[i / 64] >> (i % 64) & 1 == 1;
    let xmax = c.x.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let (tol_x, tol_y) = (
        tol * xmax.max(f64::MIN_POSITIVE),
        tol * c.bmax.max(f64::MIN_POSITIVE),
    );
    // y = G x − b, accumulated over the columns of G at the support of x (contiguous slices).
    let mut y: Vec<f64> = c.b.iter().map(|v| -v).collect();
    for (l, &xl) in c.x.iter().enumerate() {
        if xl != 0.0 {
            for (yi, gi) in y.iter_mut().zip(g.col_as_slice(l)) {
                *yi += gi * xl;
            }
        }
    }
    let mut infeasible = Vec::new();
    for i in 0..k {
        if is_passive(&c.passive, i) {
            if c.x[i] < -tol_x {
                infeasible.push(i);
            }
        } else if y[i] < -tol_y {
            infeasible.push(i);
        }
    }
    if infeasible.is_empty() {
        c.done = true;
        return;
    }
    if c.rounds >= max_rounds {
        c.capped = true;
        c.done = true;
        return;
    }
    let flip = |p: &mut [u64], i: usize| p[i / 64] ^= 1 << (i % 64);
    if infeasible.len() < c.best {
        c.best = infeasible.len();
        c.budget = 3;
        infeasible.iter().for_each(|&i| flip(&mut c.passive, i));
    } else if c.budget >= 1 {
        c.budget -= 1;
        infeasible.iter().for_each(|&i| flip(&mut c.passive, i));
    } else if let Some(&last) = infeasible.last() {
        // Backup rule: flip only the largest infeasible index (`infeasible` is non-empty here).
        c.backup = true;
        flip(&mut c.passive, last);
    }
}

/// For every column `j`, solves `G_PP u_P = rhs_P` on the support `P = {i : support[i, j] > 0}`
/// of a solution (and `u_i = 0` off it): the linear solve of the derivative of an NNLS solution
/// (Neural NMF's backward pass, METHODS.md §4.3). Columns are grouped by support, each group
/// factors `G_PP` once (with the ridge fallback of [`solve_gram`], so that rank-deficient
/// supports act like a pseudo-inverse), groups run in parallel with `par`; same bits for any
/// thread count.
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
fn factor(g: &Mat<f64>, f: &[usize], mean_diag: f64) -> (Vec<f64>, bool) {
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

use crate::linalg::dot_f64 as dot;

/// Solves `L Lᵀ x = rhs` in place (`L` row-major `m × m` lower triangular).
fn chol_solve(l: &[f64], m: usize, rhs: &mut [f64]) {
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

/// `argmin_{S ≥ 0} ‖B − C S‖_F` column by column: `c` is `p × k` (the dictionary as columns),
/// `b` is `p × n`; returns `k × n`. Forms `CᵀC` and `CᵀB` by GEMM and calls [`solve_gram`]
/// inside a pool of `threads` workers.
pub fn nnls<T: Real>(
    c: MatRef<'_, T>,
    b: MatRef<'_, T>,
    opts: &NnlsOptions,
    threads: usize,
) -> Result<(Mat<T>, NnlsStats)> {
    if c.nrows() != b.nrows() {
        return Err(Error::ShapeMismatch {
            what: "NNLS right-hand sides".into(),
            expected: format!("{} rows (as the dictionary)", c.nrows()),
            found: format!("{} rows", b.nrows()),
            hint: "give data with the dictionary's number of features".into(),
        });
    }
    linalg::with_threads(threads, || {
        let par = linalg::par(threads);
        let k = c.ncols();
        let mut g = Mat::<T>::zeros(k, k);
        linalg::gram(g.as_mut(), c.transpose(), par);
        let mut cb = Mat::<T>::zeros(k, b.ncols());
        linalg::matmul(cb.as_mut(), Accum::Replace, c.transpose(), b, T::one(), par);
        let mut s = Mat::<T>::zeros(k, b.ncols());
        let stats = solve_gram(g.as_ref(), cb.as_ref(), s.as_mut(), false, opts, par)?;
        Ok((s, stats))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

    fn random(r: &mut Rng, rows: usize, cols: usize) -> Mat<f64> {
        Mat::from_fn(rows, cols, |_, _| r.uniform())
    }

    /// Lawson–Hanson active-set NNLS for one column, written plainly as the reference.
    fn lawson_hanson(c: &Mat<f64>, b: &[f64]) -> Vec<f64> {
        let (p, k) = (c.nrows(), c.ncols());
        let mut x = vec![0.0; k];
        let mut passive = vec![false; k];
        let grad = |x: &[f64]| -> Vec<f64> {
            let r: Vec<f64> = (0..p)
                .map(|i| b[i] - (0..k).map(|j| c[(i, j)] * x[j]).sum::<f64>())
                .collect();
            (0..k).map(|j| (0..p).map(|i| c[(i, j)] * r[i]).sum()).collect()
        };
        let ls = |passive: &[bool]| -> Vec<f64> {
            let f: Vec<usize> = (0..k).filter(|&j| passive[j]).collect();
            let cf = Mat::<f64>::from_fn(p, f.len(), |i, a| c[(i, f[a])]);
            let gf = cf.transpose() * &cf;
            let rhs = Mat::<f64>::from_fn(f.len(), 1, |a, _| (0..p).map(|i| c[(i, f[a])] * b[i]).sum());
            let sol = {
                use faer::linalg::solvers::Solve;
                gf.llt(faer::Side::Lower).unwrap().solve(&rhs)
            };
            let mut z = vec![0.0; k];
            for (a, &j) in f.iter().enumerate() {
                z[j] = sol[(a, 0)];
            }
            z
        };
        for _ in 0..10 * k {
            let w = grad(&x);
            let Some(t) = (0..k)
                .filter(|&j| !passive[j] && w[j] > 1e-12)
                .max_by(|&a, &b| w[a].total_cmp(&w[b]))
            else {
                break;
            };
            passive[t] = true;
            loop {
                let z = ls(&passive);
                if (0..k).all(|j| !passive[j] || z[j] > 0.0) {
                    x = z;
                    break;
                }
                let mut alpha = f64::INFINITY;
                for j in 0..k {
                    if passive[j] && z[j] <= 0.0 {
                        alpha = alpha.min(x[j] / (x[j] - z[j]));
                    }
                }
                for j in 0..k {
                    x[j] += alpha * (z[j] - x[j]);
                    if passive[j] && x[j] <= 1e-14 {
                        passive[j] = false;
                        x[j] = 0.0;
                    }
                }
            }
        }
        x
    }

    /// Largest relative violation of the KKT conditions of `min ½xᵀGx − xᵀc, x ≥ 0`.
    fn kkt_violation(c: &Mat<f64>, b: &Mat<f64>, s: &Mat<f64>) -> f64 {
        let g = c.transpose() * c;
        let cb = c.transpose() * b;
        let y = &g * s - &cb;
        let mut worst = 0.0f64;
        for j in 0..s.ncols() {
            let scale = (0..s.nrows()).fold(1e-300f64, |a, i| a.max(cb[(i, j)].abs()));
            for i in 0..s.nrows() {
                let (x, yi) = (s[(i, j)], y[(i, j)]);
                worst = worst.max((-x).max(0.0) / scale.max(1.0));
                worst = worst.max((-yi).max(0.0) / scale);
                worst = worst.max((x * yi).abs() / (scale * (1.0 + x.abs())));
            }
        }
        worst
    }

    #[test]
    fn kkt_conditions_hold_on_random_problems_of_several_shapes() {
        let mut r = Rng::new(1);
        for (p, k, n) in [
            (30, 5, 40),
            (200, 20, 300),
            (50, 50, 10),
            (8, 12, 20),
            (100, 1, 7),
        ] {
            let c = random(&mut r, p, k);
            // Right-hand sides of mixed sign make many constraints active.
            let b = Mat::<f64>::from_fn(p, n, |_, _| r.uniform() - 0.3);
            let (s, stats) = nnls(c.as_ref(), b.as_ref(), &NnlsOptions::default(), 1).unwrap();
            let v = kkt_violation(&c, &b, &s);
            assert!(v < 1e-6, "{p}×{k}×{n}: KKT violation {v} ({stats:?})");
            assert_eq!(stats.capped, 0);
            // f32 agrees to single precision.
            let (s32, _) = nnls(
                c.as_ref().to_owned().as_ref().cloned_f32().as_ref(),
                b.as_ref().to_owned().as_ref().cloned_f32().as_ref(),
                &NnlsOptions::default(),
                1,
            )
            .unwrap();
            if p >= k {
                for j in 0..n {
                    for i in 0..k {
                        let d = (s[(i, j)] - s32[(i, j)] as f64).abs();
                        assert!(
                            d < 1e-2 * (1.0 + s[(i, j)].abs()),
                            "f32 {p}×{k}×{n} ({i},{j}) {d}"
                        );
                    }
                }
            }
        }
    }

    trait CloneF32 {
        fn cloned_f32(&self) -> Mat<f32>;
    }
    impl CloneF32 for MatRef<'_, f64> {
        fn cloned_f32(&self) -> Mat<f32> {
            Mat::from_fn(self.nrows(), self.ncols(), |i, j| self[(i, j)] as f32)
        }
    }

    #[test]
    fn agrees_with_lawson_hanson() {
        let mut r = Rng::new(2);
        for (p, k, n) in [(20, 6, 15), (40, 15, 10)] {
            let c = random(&mut r, p, k);
            let b = Mat::<f64>::from_fn(p, n, |_, _| r.uniform() - 0.4);
            let (s, _) = nnls(c.as_ref(), b.as_ref(), &NnlsOptions::default(), 1).unwrap();
            for j in 0..n {
                let bj: Vec<f64> = (0..p).map(|i| b[(i, j)]).collect();
                let lh = lawson_hanson(&c, &bj);
                for i in 0..k {
                    assert!(
                        (s[(i, j)] - lh[i]).abs() < 1e-8,
                        "column {j} entry {i}: {} vs {}",
                        s[(i, j)],
                        lh[i]
                    );
                }
            }
        }
    }

    #[test]
    fn degenerate_dictionaries_and_data() {
        let mut r = Rng::new(3);
        let (p, k, n) = (25, 6, 12);
        // A zero column and a duplicated column in C.
        let mut c = random(&mut r, p, k);
        for i in 0..p {
            c[(i, 2)] = 0.0;
            c[(i, 4)] = c[(i, 1)];
        }
        let b = random(&mut r, p, n);
        let (s, stats) = nnls(c.as_ref(), b.as_ref(), &NnlsOptions::default(), 1).unwrap();
        assert!(s
            .col_iter()
            .all(|col| col.iter().all(|v| v.is_finite() && *v >= 0.0)));
        assert!(kkt_violation(&c, &b, &s) < 1e-6, "{stats:?}");
        for j in 0..n {
            assert_eq!(s[(2, j)], 0.0, "zero column gets no weight");
        }
        // The duplicated pair reconstructs as well as LH's single column.
        let fit = |s: &Mat<f64>| (&c * s - &b).norm_l2();
        let lh = Mat::<f64>::from_fn(k, n, |i, j| {
            let bj: Vec<f64> = (0..p).map(|q| b[(q, j)]).collect();
            let mut cc = c.clone();
            for q in 0..p {
                cc[(q, 4)] = 0.0;
            }
            lawson_hanson(&cc, &bj)[i]
        });
        assert!(fit(&s) <= fit(&lh) * (1.0 + 1e-8));
        // All-zero data → all-zero codes; k = 1 → the clipped projection.
        let zero = Mat::<f64>::zeros(p, 3);
        let (s0, _) = nnls(c.as_ref(), zero.as_ref(), &NnlsOptions::default(), 1).unwrap();
        assert!(s0.col_iter().all(|col| col.iter().all(|v| *v == 0.0)));
        let c1 = random(&mut r, p, 1);
        let (s1, _) = nnls(c1.as_ref(), b.as_ref(), &NnlsOptions::default(), 1).unwrap();
        for j in 0..n {
            let want = ((0..p).map(|i| c1[(i, 0)] * b[(i, j)]).sum::<f64>()
                / (0..p).map(|i| c1[(i, 0)] * c1[(i, 0)]).sum::<f64>())
            .max(0.0);
            assert!((s1[(0, j)] - want).abs() < 1e-12);
        }
        // An all-zero dictionary: zero codes, no NaN.
        let cz = Mat::<f64>::zeros(p, 3);
        let (sz, _) = nnls(cz.as_ref(), b.as_ref(), &NnlsOptions::default(), 1).unwrap();
        assert!(sz.col_iter().all(|col| col.iter().all(|v| *v == 0.0)));
    }

    #[test]
    fn planted_solution_in_the_cone_is_recovered_exactly() {
        let mut r = Rng::new(4);
        let (p, k, n) = (60, 10, 30);
        let c = random(&mut r, p, k);
        let truth = Mat::<f64>::from_fn(k, n, |_, _| if r.uniform() < 0.4 { 0.0 } else { r.uniform() });
        let b = &c * &truth;
        let (s, _) = nnls(c.as_ref(), b.as_ref(), &NnlsOptions::default(), 1).unwrap();
        for j in 0..n {
            for i in 0..k {
                assert!((s[(i, j)] - truth[(i, j)]).abs() < 1e-9, "({i},{j})");
            }
        }
    }

    #[test]
    fn warm_start_gives_the_same_solution_in_fewer_rounds() {
        let mut r = Rng::new(5);
        let (p, k, n) = (80, 25, 50);
        let c = random(&mut r, p, k);
        let b = Mat::<f64>::from_fn(p, n, |_, _| r.uniform() - 0.3);
        let g = c.transpose() * &c;
        let cb = c.transpose() * &b;
        let mut cold = Mat::<f64>::zeros(k, n);
        let s1 = solve_gram(
            g.as_ref(),
            cb.as_ref(),
            cold.as_mut(),
            false,
            &NnlsOptions::default(),
            Par::Seq,
        )
        .unwrap();
        let mut warm = cold.clone();
        let s2 = solve_gram(
            g.as_ref(),
            cb.as_ref(),
            warm.as_mut(),
            true,
            &NnlsOptions::default(),
            Par::Seq,
        )
        .unwrap();
        assert_eq!(s2.rounds, 1, "started at the solution");
        assert!(s1.rounds > 1);
        for j in 0..n {
            for i in 0..k {
                assert!((cold[(i, j)] - warm[(i, j)]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn same_bits_with_one_and_two_threads() {
        let mut r = Rng::new(6);
        let c = random(&mut r, 60, 20).as_ref().cloned_f32();
        let b = Mat::<f64>::from_fn(60, 500, |_, _| r.uniform() - 0.3)
            .as_ref()
            .cloned_f32();
        let (one, _) = nnls(c.as_ref(), b.as_ref(), &NnlsOptions::default(), 1).unwrap();
        let (two, _) = nnls(c.as_ref(), b.as_ref(), &NnlsOptions::default(), 2).unwrap();
        for j in 0..500 {
            for i in 0..20 {
                assert_eq!(one[(i, j)].to_bits(), two[(i, j)].to_bits());
            }
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let g = Mat::<f64>::identity(3, 3);
        let cb = Mat::<f64>::zeros(3, 2);
        let mut out = Mat::<f64>::zeros(2, 2);
        assert!(solve_gram(
            g.as_ref(),
            cb.as_ref(),
            out.as_mut(),
            false,
            &NnlsOptions::default(),
            Par::Seq
        )
        .is_err());
        let mut out = Mat::<f64>::zeros(3, 2);
        let mut cb_nan = cb.clone();
        cb_nan[(1, 1)] = f64::NAN;
        let e = solve_gram(
            g.as_ref(),
            cb_nan.as_ref(),
            out.as_mut(),
            false,
            &NnlsOptions::default(),
            Par::Seq,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("non-finite"), "{e}");
        let bad = NnlsOptions {
            tol: 0.0,
            ..Default::default()
        };
        assert!(solve_gram(g.as_ref(), cb.as_ref(), out.as_mut(), false, &bad, Par::Seq).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn kkt_holds_for_random_small_problems(seed in 0u64..10_000, p in 1usize..12, k in 1usize..9, n in 1usize..6) {
            let mut r = Rng::new(seed);
            let c = Mat::<f64>::from_fn(p, k, |_, _| if r.uniform() < 0.2 { 0.0 } else { r.uniform() });
            let b = Mat::<f64>::from_fn(p, n, |_, _| r.uniform() - 0.5);
            let (s, stats) = nnls(c.as_ref(), b.as_ref(), &NnlsOptions::default(), 1).unwrap();
            prop_assert_eq!(stats.capped, 0);
            let v = kkt_violation(&c, &b, &s);
            prop_assert!(v < 1e-6, "violation {}", v);
        }
    }
}
