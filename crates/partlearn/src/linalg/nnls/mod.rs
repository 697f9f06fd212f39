//! Exact non-negative least squares for many right-hand sides by block principal pivoting
//! (Kim & Park 2011; METHODS.md §1.3): `min_{x_j ≥ 0} ‖C x_j − b_j‖²` for every column `j`.
//!
//! The solver works on the normal equations: it takes the Gram matrix `G = CᵀC` (`k × k`) and the
//! cross terms `Cᵀb_j` (`k × n`), which is what every caller already has (ANLS computes `WᵀW`
//! and `WᵀX` by GEMM; Neural NMF's layers likewise). Each column keeps a passive set `F`.
//! Columns are taken in windows of 512 consecutive columns, each window on one thread
//! through all its rounds. In each round the window's unfinished columns are sorted by `|F|` and
//! batches of 8 neighbours solve `G_FF x_F = b_F` together, one column per SIMD lane: each
//! system is padded with identity rows to the batch's largest `|F|`, `G_FF` is gathered a lane
//! group at a time, and a blocked left-looking Cholesky factorization (with the forward solve as
//! one more row) and the back substitution run on all lanes at once. (At k = 100 passive sets are
//! almost never shared, so grouping identical sets, as Kim & Park do, saves nothing; lanes do.)
//! Each column then computes its dual `y = G x − b` (a register-blocked kernel over the columns
//! of `G` in its support), checks the KKT conditions and exchanges its infeasible indices (all
//! of them while the number of infeasibilities keeps falling or a budget of 3 allows, otherwise
//! only the largest one — the backup rule that guarantees termination); a feasible column is
//! written out at once. In a batch whose largest `|F|` is at least 32, a column left infeasible
//! continues at once by bordered updates of its lane's factor (a Schur complement on the removed
//! and added indices, `bordered::update_rounds`) until it is feasible or has drifted too far
//! from the factored set; only then is it factored again in the next round. A lane's arithmetic
//! does not depend on the other lanes of its batch, and windows are fixed ranges of columns, so
//! the result has the same bits for any thread count.
//!
//! Numerics: the small systems are factored and solved in the data's precision ([`Systems`]:
//! `f32` lanes for `f32` data, eight columns per AVX2 register; `f64` otherwise, or on request),
//! while the duals, the bordered updates' Schur systems and the KKT checks are in `f64` whatever
//! `T` is. A column of `f32` systems whose pivot loses its digits or that needs the backup rule
//! continues in `f64`. Feasibility is tested with
//! tolerances relative to the column (`tol · max|Cᵀb_j|` for the dual, `tol · max|x_F|` for the
//! primal). A `G_FF` that is singular or numerically so (zero or duplicate columns of `C`) gets a
//! ridge `ε·mean(diag G)` (ε from 1e-12 growing ×100 until the factorization succeeds), which
//! picks the minimum-norm-like solution among the equivalent ones instead of failing.
//!
//! Layout: this file holds the options, the statistics, the entry points (with
//! [`solve_on_supports`] re-exported from `supports.rs`) and the dispatch (the checks, `G` in
//! `f64` and in `T`, the choice of lane type, the windows on the threads).
//! `windows.rs` solves one window of columns through all its rounds (per-column state, the
//! round of a batch, their workspaces); `lanes.rs` holds the SIMD lane kernels (the `Lane`
//! type, the lane Cholesky factorization with its forward solve, the triangular solves, the
//! gathers); `bordered.rs` the bordered updates that continue infeasible columns without
//! refactoring (Schur systems by Gaussian elimination); `kkt.rs` the end of every round (the
//! dual, the KKT test, the exchange rules, the write-out); `supports.rs` the scalar `f64`
//! Cholesky with its ridge fallback (lanes whose pivot failed) and the support solves of
//! Neural NMF's backward pass. `oracle.rs`, compiled for tests only, holds a plain
//! Lawson–Hanson solver and the KKT measure that the tests of every file compare against.

mod bordered;
mod kkt;
mod lanes;
#[cfg(test)]
mod oracle;
mod supports;
mod windows;

use std::sync::Mutex;

use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linalg;
use crate::real::Real;

pub use supports::solve_on_supports;

use bordered::{MAX_UPDATE, MIN_UPDATE_SIZE};
use kkt::YB;
use lanes::Lane;
use windows::{solve_window, Ctx, WindowScratch, WINDOW};

/// Settings of the BPP solver.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NnlsOptions {
    /// Relative feasibility tolerance (default 1e-10; at least [`F32_SYSTEMS_TOL`] with `f32`
    /// systems).
    pub tol: f64,
    /// Maximum exchange rounds per column; `None` = `10·k + 50`. A column that reaches it (the
    /// exchanges can cycle when `G` is rank-deficient) is solved again by Lawson–Hanson's
    /// active-set method, which terminates there, and counted in [`NnlsStats::capped`].
    pub max_rounds: Option<usize>,
    /// Precision of the passive-set factorizations and their triangular solves (with `f32`
    /// systems, also the tolerance floor [`F32_SYSTEMS_TOL`]).
    pub systems: Systems,
}

impl Default for NnlsOptions {
    fn default() -> Self {
        NnlsOptions {
            tol: 1e-10,
            max_rounds: None,
            systems: Systems::Data,
        }
    }
}

/// Precision of the passive-set systems `G_FF x_F = b_F` ([`NnlsOptions::systems`]).
///
/// With `f32` data, `G = CᵀC` and `Cᵀb` come from `f32` products and carry relative errors of
/// order `√p·ε₃₂` (≈ 3e-6 at p = 784) before the solver sees them, so solving their systems in
/// `f64` buys no accuracy with respect to the data; `f32` factors halve the work of the
/// factorizations, their solves and their cache traffic (eight columns per AVX2 register
/// instead of four). The duals and the KKT checks stay in `f64`; the feasibility tolerance is
/// raised to [`F32_SYSTEMS_TOL`] and a column whose pivot loses its digits, or that falls back
/// to the one-at-a-time exchange rule (the sign of an ill-conditioned system cycling on
/// rounding noise), is solved in `f64` from then on ([`NnlsStats::widened`]). With `f64` data
/// both settings are `f64`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Systems {
    /// The data's precision (`f32` systems for `f32` data).
    #[default]
    Data,
    /// Always `f64`.
    F64,
}

impl NnlsOptions {
    fn validate(&self) -> Result<()> {
        if !(self.tol > 0.0 && self.tol < 1.0) {
            return Err(Error::invalid("nnls_tol", self.tol, "must be in (0, 1)"));
        }
        if self.max_rounds == Some(0) {
            return Err(Error::invalid("nnls_max_rounds", 0, "must be ≥ 1"));
        }
        Ok(())
    }
}

/// What the solver did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NnlsStats {
    /// Rounds of the slowest column.
    pub rounds: usize,
    /// Passive-set systems factored (one per unfinished column with a non-empty passive set per
    /// round).
    pub factorizations: usize,
    /// Exchange rounds solved by a bordered update of the previous round's factor instead of a
    /// new factorization (see [`solve_gram`]).
    pub updates: usize,
    /// Columns whose factorization needed a ridge.
    pub ridged: usize,
    /// Columns that used the backup (one-at-a-time) exchange rule.
    pub backup: usize,
    /// Columns that reached the round cap and were solved again by Lawson–Hanson's active-set
    /// method ([`NnlsOptions::max_rounds`]).
    pub capped: usize,
    /// Columns whose ridged factorization (a singular `G_FF`) gave a solution that missed its
    /// system by more than the dual tolerance, finished by the active-set method too.
    pub inexact: usize,
    /// Columns of `f32` systems finished in `f64`, because a pivot failed the `f32` threshold
    /// or the column needed the one-at-a-time exchange rule ([`Systems`]).
    pub widened: usize,
}

/// Relative feasibility tolerance below which `f32` passive-set systems are not trusted: the
/// effective tolerance is `max(tol, F32_SYSTEMS_TOL)` ([`Systems::Data`] with `f32` data).
/// A solve in `f32` carries a relative residual of a few `ε₃₂ ≈ 1.2e-7`; below the floor,
/// rounding noise of the solution reads as infeasibility. Measured on Fashion-MNIST (`bench
/// nnls --warmup 25`, with a temporary switch of this floor, not shipped): at `tol = 1e-10`
/// one column cycled to the round cap (1,050 rounds); at 1e-7 the factorizations, bordered
/// updates and rounds were those of the `f64` systems at 1e-10, to the last digit; `bench nnls
/// --systems data,f64` shows the latter.
pub const F32_SYSTEMS_TOL: f64 = 1e-7;

/// Solves `min_{x_j ≥ 0} ½x_jᵀ G x_j − x_jᵀ c_j` for every column `c_j` of `cross` (`k × n`),
/// i.e. NNLS with `G = CᵀC`, `cross = CᵀB`. `out` (`k × n`) receives the solutions; with
/// `warm`, its current positive entries are the starting passive sets (e.g. the previous ANLS
/// iterate), otherwise every column starts from `x = 0`. `par` parallelizes over groups.
pub fn solve_gram<T: Real>(
    gram: MatRef<'_, T>,
    cross: MatRef<'_, T>,
    out: MatMut<'_, T>,
    warm: bool,
    opts: &NnlsOptions,
    par: Par,
) -> Result<NnlsStats> {
    let start = if warm { Start::Out } else { Start::Zero };
    solve_gram_with(gram, cross, out, start, opts, par, (MAX_UPDATE, MIN_UPDATE_SIZE))
}

/// [`solve_gram`] warm-started from the positive entries of `from` (`k × n`, e.g. the previous
/// ANLS iterate) instead of `out`'s own: `out` need not hold anything, and `from` is left as it
/// was (this saves copying the start into `out`).
pub fn solve_gram_from<T: Real>(
    gram: MatRef<'_, T>,
    cross: MatRef<'_, T>,
    from: MatRef<'_, T>,
    out: MatMut<'_, T>,
    opts: &NnlsOptions,
    par: Par,
) -> Result<NnlsStats> {
    if from.shape() != out.shape() {
        return Err(Error::ShapeMismatch {
            what: "NNLS warm start".into(),
            expected: format!("{} × {}", out.nrows(), out.ncols()),
            found: format!("{} × {}", from.nrows(), from.ncols()),
            hint: "start from a solution of the same problem".into(),
        });
    }
    solve_gram_with(
        gram,
        cross,
        out,
        Start::From(from),
        opts,
        par,
        (MAX_UPDATE, MIN_UPDATE_SIZE),
    )
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

/// Where the starting passive sets come from.
#[derive(Clone, Copy)]
enum Start<'a, T> {
    /// `x = 0` (empty passive sets).
    Zero,
    /// The positive entries of the output's initial contents.
    Out,
    /// The positive entries of another matrix of the same shape.
    From(MatRef<'a, T>),
}

/// [`solve_gram`] with bordered updates of at most `max_update` exchanged indices in batches of
/// size at least `min_update_size` (`max_update = 0`: every round refactors; the tests compare
/// both).
fn solve_gram_with<T: Real>(
    gram: MatRef<'_, T>,
    cross: MatRef<'_, T>,
    out: MatMut<'_, T>,
    start: Start<'_, T>,
    opts: &NnlsOptions,
    par: Par,
    (max_update, min_update_size): (usize, usize),
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
    let parallel = !matches!(par, Par::Seq);
    // Right-hand sides: column j at `b[j·bs..j·bs + k]` (copied only if `cross` does not have
    // contiguous columns).
    let copy;
    let cm = match cross.try_as_col_major() {
        Some(c) => c,
        None => {
            copy = cross.to_owned();
            copy.as_ref().try_as_col_major().ok_or_else(|| Error::Numerical {
                what: "NNLS".into(),
                reason: "internal: a copied matrix is not column-major".into(),
            })?
        }
    };
    let bs = cm.col_stride().max(0) as usize;
    // SAFETY: `cm` is column-major (unit row stride) with column stride `bs` ≥ 0, so entries
    // (i, j), i < k, j < n, lie at `ptr + j·bs + i` inside one allocation that outlives `b`;
    // the slice ends at the last entry.
    let b: &[T] = unsafe { std::slice::from_raw_parts(cm.as_ptr(), (n - 1) * bs + k) };
    debug_assert!(n == 1 || bs >= k);
    let mean_diag = (0..k).map(|i| g[(i, i)].abs()).sum::<f64>() / k as f64;
    // G again, in `T`, with a column stride padded to whole blocks of the dual kernel (zero rows)
    // and a zero column k for padding rows: for f32 data this halves the cache traffic of the
    // gathers and of the dual, and every entry converts to f64 exactly.
    let kp = k.next_multiple_of(YB);
    if (k + 1) * kp > u32::MAX as usize {
        return Err(Error::invalid(
            "k",
            k,
            "must be below 65,000 (the gather offsets are 32-bit)",
        ));
    }
    let mut gp = vec![T::zero(); kp * (k + 1)];
    for (l, col) in gp.chunks_exact_mut(kp).take(k).enumerate() {
        for (i, v) in col[..k].iter_mut().enumerate() {
            *v = gram[(i, l)];
        }
    }
    // f32 data solves its systems in f32 unless asked otherwise ([`Systems`]).
    let lanes_f32 =
        std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && opts.systems == Systems::Data;
    let (pivot_ratio, tol_floor) = if lanes_f32 {
        (<f32 as Lane>::PIVOT_RATIO, <f32 as Lane>::TOL_FLOOR)
    } else {
        (<f64 as Lane>::PIVOT_RATIO, <f64 as Lane>::TOL_FLOOR)
    };
    let thr: Vec<f64> = (0..k)
        .map(|i| pivot_ratio * Real::to_f64(gp[i * kp + i]).abs().max(mean_diag * 1e-300))
        .collect();
    let inv_diag: Vec<f64> = (0..k)
        .map(|i| {
            if g[(i, i)] > 0.0 {
                1.0 / g[(i, i)]
            } else {
                f64::INFINITY
            }
        })
        .collect();
    let ctx = Ctx {
        g: &g,
        gp: &gp,
        kp,
        k,
        words,
        mean_diag,
        thr: &thr,
        inv_diag: &inv_diag,
        b,
        bs,
        tol: opts.tol.max(tol_floor),
        max_rounds,
        max_update,
        min_update_size,
        start,
        narrow: lanes_f32,
    };
    let per_window = if lanes_f32 {
        solve_windows::<T, f32>(&ctx, out, parallel)
    } else {
        solve_windows::<T, f64>(&ctx, out, parallel)
    };
    if let Some(j) = per_window.iter().filter_map(|r| r.err()).min() {
        return Err(Error::Numerical {
            what: "NNLS".into(),
            reason: format!("right-hand side {j} has a non-finite entry; check the data for NaN or Inf"),
        });
    }
    let mut stats = NnlsStats::default();
    for s in per_window.into_iter().flatten() {
        stats.rounds = stats.rounds.max(s.rounds);
        stats.factorizations += s.factorizations;
        stats.updates += s.updates;
        stats.ridged += s.ridged;
        stats.backup += s.backup;
        stats.capped += s.capped;
        stats.inexact += s.inexact;
        stats.widened += s.widened;
    }
    Ok(stats)
}

/// Every window of `out` by [`solve_window`] with lanes of type `F`, on the threads or in turn.
fn solve_windows<T: Real, F: Lane>(
    ctx: &Ctx<'_, T>,
    out: MatMut<'_, T>,
    parallel: bool,
) -> Vec<std::result::Result<NnlsStats, usize>> {
    let n = out.ncols();
    if parallel {
        // One workspace per thread of the pool, reused by every window the thread solves in this
        // call. (`map_init` starts one per rayon job, ≈ 14 per call at n = 60,000 on 2 threads,
        // each growing its buffers from empty: ≈ 930 allocations per call.) A window solved off
        // the pool's threads, or while its thread's workspace is taken, gets a fresh one.
        let scratch: Vec<Mutex<WindowScratch<F>>> = (0..rayon::current_num_threads())
            .map(|_| Mutex::default())
            .collect();
        out.par_col_chunks_mut(WINDOW)
            .enumerate()
            .map(|(w, o)| {
                let mine = rayon::current_thread_index().and_then(|t| scratch.get(t)?.try_lock().ok());
                match mine {
                    Some(mut ws) => solve_window(ctx, w * WINDOW, o, &mut ws),
                    None => solve_window(ctx, w * WINDOW, o, &mut WindowScratch::<F>::default()),
                }
            })
            .collect()
    } else {
        let mut out = out;
        let mut ws = WindowScratch::<F>::default();
        (0..n.div_ceil(WINDOW))
            .map(|w| {
                let (j0, len) = (w * WINDOW, WINDOW.min(n - w * WINDOW));
                solve_window(ctx, j0, out.as_mut().subcols_mut(j0, len), &mut ws)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::oracle::{kkt_violation, lawson_hanson, random, CloneF32};
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

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

    /// A warm start read from another matrix gives the bits of the same start copied into the
    /// output (in windows of every thread count), and a start of the wrong shape is an error.
    #[test]
    fn warm_start_from_another_matrix_equals_starting_in_place() {
        let mut r = Rng::new(8);
        let (p, k, n) = (60, 20, 1300);
        let c = random(&mut r, p, k);
        let b = Mat::<f64>::from_fn(p, n, |_, _| r.uniform() - 0.3);
        let g = c.transpose() * &c;
        let cb = c.transpose() * &b;
        let start = Mat::<f64>::from_fn(k, n, |_, _| (r.uniform() - 0.5).max(0.0));
        for threads in [1, 2] {
            let par = crate::linalg::par(threads);
            crate::linalg::with_threads(threads, || {
                let mut inplace = start.clone();
                let s1 = solve_gram(
                    g.as_ref(),
                    cb.as_ref(),
                    inplace.as_mut(),
                    true,
                    &NnlsOptions::default(),
                    par,
                )
                .unwrap();
                let mut out = Mat::<f64>::from_fn(k, n, |_, _| f64::NAN);
                let s2 = solve_gram_from(
                    g.as_ref(),
                    cb.as_ref(),
                    start.as_ref(),
                    out.as_mut(),
                    &NnlsOptions::default(),
                    par,
                )
                .unwrap();
                assert!(inplace == out, "{threads} threads");
                assert_eq!((s1.rounds, s1.factorizations), (s2.rounds, s2.factorizations));
            })
            .unwrap();
        }
        let mut out = Mat::<f64>::zeros(k, n);
        let e = solve_gram_from(
            g.as_ref(),
            cb.as_ref(),
            start.as_ref().subcols(0, n - 1),
            out.as_mut(),
            &NnlsOptions::default(),
            Par::Seq,
        );
        assert!(e.unwrap_err().to_string().contains("warm start"));
    }

    #[test]
    fn cross_terms_in_any_layout_give_the_same_bits() {
        // Column-major, row-major (a transposed view) and strided (rows of a taller matrix)
        // right-hand sides: the first is read in place, the others through a copy or a stride.
        let mut r = Rng::new(8);
        let c = random(&mut r, 40, 12);
        let g = c.transpose() * &c;
        let b = Mat::<f64>::from_fn(40, 300, |_, _| r.uniform() - 0.2);
        let cb = c.transpose() * &b;
        let solve = |cross: MatRef<'_, f64>| {
            let mut out = Mat::<f64>::zeros(12, 300);
            solve_gram(
                g.as_ref(),
                cross,
                out.as_mut(),
                false,
                &NnlsOptions::default(),
                Par::Seq,
            )
            .unwrap();
            out
        };
        let base = solve(cb.as_ref());
        let row_major = cb.transpose().to_owned();
        let taller = Mat::<f64>::from_fn(15, 300, |i, j| if i < 12 { cb[(i, j)] } else { -1.0 });
        for other in [
            solve(row_major.transpose()),
            solve(taller.as_ref().subrows(0, 12)),
        ] {
            assert!(base == other);
        }
        let v = kkt_violation(&c, &b, &base);
        assert!(v < 1e-9, "KKT violation {v}");
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

    /// A case the property below found: `G_FF` of `F = {0, 2, 3, 4}` is singular (rank 3) but its
    /// third pivot ratio came out at 1.5e-13, just above the singularity threshold; bordered
    /// updates from that factor gave a support solution 9 % off (dual violation 0.02). Such a
    /// factor now refactors instead (`Lane::UPDATE_PIVOT_RATIO`).
    #[test]
    fn bordered_updates_do_not_continue_from_an_ill_conditioned_factor() {
        let mut r = Rng::new(2117);
        let c = Mat::<f64>::from_fn(3, 5, |_, _| if r.uniform() < 0.2 { 0.0 } else { r.uniform() });
        let b = Mat::<f64>::from_fn(3, 5, |_, _| r.uniform() - 0.5);
        let [_, (v, st)] = solve_without_and_with_updates(&c, &b);
        assert!(st.updates > 0, "{st:?}");
        assert!(v < 1e-12, "violation {v}, {st:?}");
    }

    /// A random problem of the property test's kind (`C` with 20 % zeros, `b` centred), drawn
    /// from `seed`, `p` and `k`.
    fn soak_problem(seed: u64, p: usize, k: usize, n: usize) -> (Mat<f64>, Mat<f64>) {
        let mut r = Rng::new(seed * 131 + (p * 9 + k) as u64);
        let c = Mat::<f64>::from_fn(p, k, |_, _| if r.uniform() < 0.2 { 0.0 } else { r.uniform() });
        let b = Mat::<f64>::from_fn(p, n, |_, _| r.uniform() - 0.5);
        (c, b)
    }

    /// `min_{x≥0} ‖Cx − b‖` from `x = 0` without and with bordered updates: each solution with
    /// its KKT violation and statistics.
    fn solve_without_and_with_updates(c: &Mat<f64>, b: &Mat<f64>) -> [(f64, NnlsStats); 2] {
        let (g, cb) = (c.transpose() * c, c.transpose() * b);
        [0, MAX_UPDATE].map(|max_update| {
            let mut x = Mat::<f64>::zeros(c.ncols(), b.ncols());
            let opts = NnlsOptions::default();
            let st = solve_gram_with(
                g.as_ref(),
                cb.as_ref(),
                x.as_mut(),
                Start::Zero,
                &opts,
                Par::Seq,
                (max_update, 0),
            )
            .unwrap();
            (kkt_violation(c, b, &x), st)
        })
    }

    /// Rank-deficient systems (`p < k`) on which the exchanges cycled to the round cap, with and
    /// without bordered updates (found among 880,000 random problems; the right-hand sides
    /// drawn as in the property below): Lawson–Hanson finishes those columns, and the result
    /// meets the KKT conditions.
    #[test]
    fn columns_whose_exchanges_cycle_are_finished_by_the_active_set_method() {
        for &(seed, p, k, n) in &[
            (563u64, 3usize, 6usize, 3usize),
            (3194, 2, 6, 3),
            (4780, 2, 5, 3),
            (447, 3, 8, 4),
        ] {
            let (c, b) = soak_problem(seed, p, k, n);
            let runs = solve_without_and_with_updates(&c, &b);
            for (v, st) in &runs {
                assert!(*v < 1e-9, "seed {seed}: violation {v}, {st:?}");
            }
            assert!(
                runs.iter().any(|(_, st)| st.capped > 0),
                "seed {seed} no longer needs the active-set method: pick another case"
            );
        }
    }

    /// `f32` data with `W` of rank 20 < k = 40: `G = WᵀW` from an `f32` product is singular up
    /// to rounding, which can make it slightly indefinite on its null space. The ridged
    /// solutions miss their systems (all 5,000 columns; before that check, the exchanges cycled
    /// to the round cap on some 200 of them), the active-set method finishes them, and every
    /// column meets the KKT conditions of the problem the `f32` inputs define, in either
    /// precision of the systems.
    #[test]
    fn rank_deficient_f32_columns_are_finished_by_the_active_set_method() {
        let mut r = Rng::new(5);
        let c = random(&mut r, 20, 40).as_ref().cloned_f32();
        let b = random(&mut r, 20, 5000).as_ref().cloned_f32();
        let wide = |m: &Mat<f32>| Mat::<f64>::from_fn(m.nrows(), m.ncols(), |i, j| f64::from(m[(i, j)]));
        for systems in [Systems::Data, Systems::F64] {
            let opts = NnlsOptions {
                systems,
                ..Default::default()
            };
            let clock = std::time::Instant::now();
            let (x, st) = nnls(c.as_ref(), b.as_ref(), &opts, 1).unwrap();
            eprintln!(
                "{systems:?} systems: {:.3} s, {st:?}",
                clock.elapsed().as_secs_f64()
            );
            assert!(
                st.capped == 0 && st.inexact > 0 && st.rounds < 10,
                "{systems:?}: {st:?}"
            );
            let v = kkt_violation(&wide(&c), &wide(&b), &wide(&x));
            assert!(v < 1e-4, "{systems:?}: violation {v}");
        }
    }

    /// Soak (`scripts/test --long`): 880,000 small random problems of the property test's
    /// shapes and 252,000 with `k` from 10 to 40 (mostly rank-deficient: `p < k`), each solved
    /// with and without bordered updates; every solution meets the KKT conditions. Prints how
    /// many problems had a column finished by the active-set method.
    #[test]
    #[ignore]
    fn soak_random_and_rank_deficient_problems() {
        for (seeds, ps, ks) in [(10_000u64, 1..12usize, 1..9usize), (300, 2..30, 10..40)] {
            let (mut problems, mut handed, mut worst) = (0usize, [0usize; 2], 0.0f64);
            for seed in 0..seeds {
                for p in ps.clone() {
                    for k in ks.clone() {
                        let n = 1 + (seed as usize + p + k) % 5;
                        let (c, b) = soak_problem(seed, p, k, n);
                        problems += 1;
                        for (u, (v, st)) in solve_without_and_with_updates(&c, &b).iter().enumerate() {
                            handed[u] += usize::from(st.capped > 0);
                            worst = worst.max(*v);
                            assert!(
                                *v < 1e-6,
                                "seed {seed}, {p}×{k}, {n} columns, updates {u}: violation {v}"
                            );
                        }
                    }
                }
            }
            eprintln!(
                "p {ps:?}, k {ks:?}: {problems} problems; with a column at the round cap (finished by the active-set method): {} without updates, {} with; worst KKT violation {worst:.1e}",
                handed[0], handed[1]
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn kkt_holds_for_random_small_problems(seed in 0u64..10_000, p in 1usize..12, k in 1usize..9, n in 1usize..6) {
            let mut r = Rng::new(seed);
            let c = Mat::<f64>::from_fn(p, k, |_, _| if r.uniform() < 0.2 { 0.0 } else { r.uniform() });
            let b = Mat::<f64>::from_fn(p, n, |_, _| r.uniform() - 0.5);
            let (s, _) = nnls(c.as_ref(), b.as_ref(), &NnlsOptions::default(), 1).unwrap();
            let v = kkt_violation(&c, &b, &s);
            prop_assert!(v < 1e-6, "violation {}", v);
            // The same with bordered updates at every size (often rank-deficient: p < k, zeros).
            let (g, cb) = (c.transpose() * &c, c.transpose() * &b);
            let mut su = Mat::<f64>::zeros(k, n);
            let opts = NnlsOptions::default();
            let st = solve_gram_with(g.as_ref(), cb.as_ref(), su.as_mut(), Start::Zero, &opts, Par::Seq, (MAX_UPDATE, 0))
                .unwrap();
            let v = kkt_violation(&c, &b, &su);
            prop_assert!(v < 1e-6, "violation {} with updates, {:?}", v, st);
        }
    }
}
