//! The coordinate-descent sweep shared by HALS (METHODS.md §1.4), Frobenius MU's sibling updates
//! and the NNLS-by-coordinate-descent `encode`.
//!
//! Every factor update of a Frobenius NMF has the same form: minimize over `F ≥ 0` (`k × N`)
//! `½ tr(Fᵀ G F) − ⟨C, F⟩ + l1·ΣF + ½·l2·‖F‖²`, with `G` (`k × k`) a Gram matrix and `C` (`k × N`)
//! a cross term (codes: `G = WᵀW`, `C = WᵀX`; atoms: `G = HHᵀ`, `C = HXᵀ`). Columns are
//! independent problems, so they are processed in blocks of `LANES` (16) columns laid out
//! lane-interleaved (`block[i·LANES + c]` = row `i` of column `c`): the coordinate update
//! `f_j ← max(floor, f_j − ((G' f)_j − c'_j) / G'_jj)` (`G' = G + l2·I`, `c' = C − l1`) then
//! runs as `k` broadcast-FMAs over `LANES` columns at once, near GEMM speed. Blocks are fixed
//! by column index, never by thread, so the result has the same bits for every thread count.

use faer::{MatMut, MatRef};
use rayon::prelude::*;

use crate::real::Real;

/// Columns processed together by one sweep kernel.
pub(crate) const LANES: usize = 16;
/// Columns per parallel task (a multiple of [`LANES`]).
const TASK_COLS: usize = 16 * LANES;

/// When a block stops repeating sweeps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SweepRule {
    /// Maximum sweeps per block (≥ 1).
    pub max_sweeps: usize,
    /// Accelerated HALS (Gillis & Glineur): stop when `‖Δ‖² ≤ delta² · ‖Δ_first‖²`.
    pub delta: f64,
    /// Convergence: stop when `‖Δ‖² ≤ tol² · ‖F_block‖²`.
    pub tol: f64,
    /// Lower bound of the entries (0 for HALS/CD; a tiny positive value keeps MU-style iterates alive).
    pub floor: f64,
}

/// Counts of the work done by one [`sweep`] call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct SweepStats {
    /// Sum over blocks of sweeps × columns: `2·k²·column_sweeps` flops were spent.
    pub column_sweeps: u64,
}

/// Runs the sweeps of [`SweepRule`] on every column of `f` (`k × N`, updated in place) with the
/// Gram `g` (`k × k`, symmetric) and cross term `c` (`k × N`), penalties `l1`, `l2`.
/// Parallel over column blocks in the current rayon pool when `parallel` is set.
pub(crate) fn sweep<T: Real>(
    f: MatMut<'_, T>,
    g: MatRef<'_, T>,
    c: MatRef<'_, T>,
    l1: f64,
    l2: f64,
    rule: SweepRule,
    parallel: bool,
) -> SweepStats {
    sweep_from(None, f, g, c, l1, l2, rule, parallel)
}

/// [`sweep`] starting from `from` (same shape as `f`) instead of `f`'s own entries: `f` receives
/// the result and `from` is left as it was (the blocks are gathered from it, so this costs no
/// more than sweeping in place and saves a copy when the starting point must be kept).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sweep_from<T: Real>(
    from: Option<MatRef<'_, T>>,
    mut f: MatMut<'_, T>,
    g: MatRef<'_, T>,
    c: MatRef<'_, T>,
    l1: f64,
    l2: f64,
    rule: SweepRule,
    parallel: bool,
) -> SweepStats {
    let k = f.nrows();
    if let Some(src) = from {
        assert_eq!(
            src.shape(),
            f.shape(),
            "the starting point must have the shape of the result"
        );
    }
    debug_assert_eq!(g.shape(), (k, k));
    debug_assert_eq!(c.shape(), f.shape());
    // G' = G + l2·I, contiguous; its column j is row j (symmetric).
    let mut gk = vec![T::zero(); k * k];
    let mut inv_diag = vec![T::zero(); k];
    for j in 0..k {
        for i in 0..k {
            gk[j * k + i] = g[(i, j)];
        }
        gk[j * k + j] = gk[j * k + j] + T::from_f64(l2);
        let d = gk[j * k + j];
        // A zero diagonal means a dead atom (or all-zero codes): skip that coordinate.
        inv_diag[j] = if d > T::zero() { d.recip() } else { T::zero() };
    }
    let ctx = Ctx {
        g: &gk,
        inv_diag: &inv_diag,
        k,
        l1: T::from_f64(l1),
        rule,
    };
    let n = f.ncols();
    let run = |start: usize, fc: MatMut<'_, T>| -> u64 {
        let cc = c.subcols(start, fc.ncols());
        let src = from.map(|s| s.subcols(start, fc.ncols()));
        run_task(&ctx, src, fc, cc)
    };
    let total: u64 = if parallel && n > TASK_COLS {
        f.as_mut()
            .par_col_chunks_mut(TASK_COLS)
            .enumerate()
            .map(|(t, fc)| run(t * TASK_COLS, fc))
            .sum()
    } else {
        let mut s = 0u64;
        let mut start = 0;
        while start < n {
            let w = TASK_COLS.min(n - start);
            s += run(start, f.as_mut().subcols_mut(start, w));
            start += w;
        }
        s
    };
    SweepStats { column_sweeps: total }
}

struct Ctx<'a, T> {
    g: &'a [T],
    inv_diag: &'a [T],
    k: usize,
    l1: T,
    rule: SweepRule,
}

/// Sweeps the columns of `f` block by block, each block gathered from `src` (or `f` itself).
fn run_task<T: Real>(
    ctx: &Ctx<'_, T>,
    src: Option<MatRef<'_, T>>,
    mut f: MatMut<'_, T>,
    c: MatRef<'_, T>,
) -> u64 {
    let k = ctx.k;
    let mut fb = vec![T::zero(); k * LANES];
    let mut cb = vec![T::zero(); k * LANES];
    let mut count = 0u64;
    let n = f.ncols();
    let mut start = 0;
    while start < n {
        let w = LANES.min(n - start);
        // Gather the block lane-interleaved; padding lanes hold f = 0, c' = 0 and stay harmless.
        fb.fill(T::zero());
        cb.fill(T::zero());
        let from = src.unwrap_or(f.as_ref());
        for l in 0..w {
            for i in 0..k {
                fb[i * LANES + l] = from[(i, start + l)];
                cb[i * LANES + l] = c[(i, start + l)] - ctx.l1;
            }
        }
        let sweeps = block_sweeps(ctx, &mut fb, &cb);
        count += (sweeps * w) as u64;
        for l in 0..w {
            for i in 0..k {
                f[(i, start + l)] = fb[i * LANES + l];
            }
        }
        start += w;
    }
    count
}

/// Repeats sweeps over one block until the rule says stop; returns the number of sweeps.
fn block_sweeps<T: Real>(ctx: &Ctx<'_, T>, fb: &mut [T], cb: &[T]) -> usize {
    let rule = ctx.rule;
    let floor = T::from_f64(rule.floor);
    let mut first = 0.0f64;
    for s in 1..=rule.max_sweeps {
        let change = sweep_block(ctx.g, ctx.inv_diag, ctx.k, floor, fb, cb);
        if s == 1 {
            first = change;
        }
        if change == 0.0 || s == rule.max_sweeps {
            return s;
        }
        if rule.delta > 0.0 && change <= rule.delta * rule.delta * first {
            return s;
        }
        if rule.tol > 0.0 {
            let norm: f64 = fb.iter().map(|&v| v.to_f64() * v.to_f64()).sum();
            if change <= rule.tol * rule.tol * norm {
                return s;
            }
        }
    }
    rule.max_sweeps
}

/// One sweep over the `k` coordinates of a block; returns `‖Δ‖²`.
fn sweep_block<T: Real>(g: &[T], inv_diag: &[T], k: usize, floor: T, fb: &mut [T], cb: &[T]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU features were detected at run time just above.
            return unsafe { sweep_block_avx2(g, inv_diag, k, floor, fb, cb) };
        }
    }
    sweep_block_impl(g, inv_diag, k, floor, fb, cb)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sweep_block_avx2<T: Real>(
    g: &[T],
    inv_diag: &[T],
    k: usize,
    floor: T,
    fb: &mut [T],
    cb: &[T],
) -> f64 {
    sweep_block_impl(g, inv_diag, k, floor, fb, cb)
}

/// The kernel, blocked Gauss–Seidel: the gradients of `B` consecutive coordinates
/// `j₀ … j₀+B−1` are accumulated together from the current block (one pass over its `k` rows
/// serves `B` coordinates, and the `B × LANES / SIMD width` accumulators are independent chains
/// that keep both FMA units busy); the coordinates are then updated in order, each update
/// `Δ_j` being added to the later gradients of the group as `G_{j',j}·Δ_j`. This is exactly the
/// sequential sweep `f_j ← max(floor, f_j − ((G'f)_j − c'_j)/G'_jj)`, j = 0 … k−1, with the sums
/// taken in another order. `mul_add` is a fused multiply-add on every path (a hardware FMA with
/// AVX2, an exactly rounded library call otherwise), so all paths give the same bits.
#[inline(always)]
fn sweep_block_impl<T: Real>(g: &[T], inv_diag: &[T], k: usize, floor: T, fb: &mut [T], cb: &[T]) -> f64 {
    // f32: 4 coordinates × 16 lanes = 8 AVX2 registers of accumulators; f64: 2 × 16 = 8.
    if std::mem::size_of::<T>() == 4 {
        sweep_grouped::<T, 4>(g, inv_diag, k, floor, fb, cb)
    } else {
        sweep_grouped::<T, 2>(g, inv_diag, k, floor, fb, cb)
    }
}

#[inline(always)]
fn sweep_grouped<T: Real, const B: usize>(
    g: &[T],
    inv_diag: &[T],
    k: usize,
    floor: T,
    fb: &mut [T],
    cb: &[T],
) -> f64 {
    // ‖Δ‖² per lane (a vector of partial sums, not one serial chain), summed at the end.
    let mut change = [T::zero(); LANES];
    let mut j0 = 0;
    while j0 < k {
        let b = B.min(k - j0);
        // acc[t][l] = (G' f)_{j0+t} for lane l; G' is symmetric, so row i holds G'_{i, j0..j0+b}.
        let mut acc = if b == B {
            group_dots::<T, B>(g, k, j0, fb)
        } else {
            let mut acc = [[T::zero(); LANES]; B];
            for i in 0..k {
                let r = &fb[i * LANES..(i + 1) * LANES];
                for t in 0..b {
                    let q = g[i * k + j0 + t];
                    for l in 0..LANES {
                        acc[t][l] = q.mul_add(r[l], acc[t][l]);
                    }
                }
            }
            acc
        };
        for t in 0..b {
            let j = j0 + t;
            let inv = inv_diag[j];
            // A zero diagonal (dead atom, all-zero codes) leaves the coordinate as it is.
            if inv == T::zero() {
                continue;
            }
            let row = &mut fb[j * LANES..(j + 1) * LANES];
            let crow = &cb[j * LANES..(j + 1) * LANES];
            let mut d = [T::zero(); LANES];
            for l in 0..LANES {
                let old = row[l];
                let new = (old - (acc[t][l] - crow[l]) * inv).max(floor);
                d[l] = new - old;
                change[l] = d[l].mul_add(d[l], change[l]);
                row[l] = new;
            }
            let gj = &g[j * k..(j + 1) * k];
            for u in t + 1..b {
                let q = gj[j0 + u];
                for l in 0..LANES {
                    acc[u][l] = q.mul_add(d[l], acc[u][l]);
                }
            }
        }
        j0 += b;
    }
    change.iter().map(|&v| Real::to_f64(v)).sum()
}

/// `(G' f)_{j0+t}` for `t < B` on every lane: a separate function whose accumulators are
/// plain locals, so that they stay in registers through the loop over the `k` rows.
#[inline(always)]
fn group_dots<T: Real, const B: usize>(g: &[T], k: usize, j0: usize, fb: &[T]) -> [[T; LANES]; B] {
    assert!(j0 + B <= k && g.len() >= k * k && fb.len() >= k * LANES);
    let mut acc = [[T::zero(); LANES]; B];
    for i in 0..k {
        // SAFETY: i < k and j0 + B ≤ k (asserted above), so both ranges are inside the slices;
        // unchecked indexing keeps panics out of the loop, so the accumulators stay in registers.
        let (gi, r) = unsafe {
            (
                g.get_unchecked(i * k + j0..i * k + j0 + B),
                fb.get_unchecked(i * LANES..(i + 1) * LANES),
            )
        };
        for t in 0..B {
            let q = gi[t];
            for l in 0..LANES {
                acc[t][l] = q.mul_add(r[l], acc[t][l]);
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use faer::Mat;

    /// Projected-gradient KKT residual of min ½fᵀGf − cᵀf + l1Σf + ½l2‖f‖², f ≥ 0.
    fn kkt(g: &Mat<f64>, c: &Mat<f64>, f: &Mat<f64>, l1: f64, l2: f64) -> f64 {
        let grad = g * f - c + Mat::from_fn(f.nrows(), f.ncols(), |i, j| l1 + l2 * f[(i, j)]);
        let mut worst = 0.0f64;
        for j in 0..f.ncols() {
            for i in 0..f.nrows() {
                let pg = if f[(i, j)] > 0.0 {
                    grad[(i, j)]
                } else {
                    grad[(i, j)].min(0.0)
                };
                worst = worst.max(pg.abs());
            }
        }
        worst
    }

    #[test]
    fn converged_sweeps_satisfy_kkt_with_and_without_penalties() {
        let mut r = Rng::new(3);
        let (m, k, n) = (40, 7, 53); // n not a multiple of LANES: padding is exercised
        let w = Mat::<f64>::from_fn(m, k, |_, _| r.uniform());
        let x = Mat::<f64>::from_fn(m, n, |_, _| r.uniform());
        let g = w.transpose() * &w;
        let c = w.transpose() * &x;
        for (l1, l2) in [(0.0, 0.0), (0.3, 0.0), (0.0, 2.0), (0.1, 0.5)] {
            let mut f = Mat::<f64>::zeros(k, n);
            let rule = SweepRule {
                max_sweeps: 20000,
                delta: 0.0,
                tol: 1e-13,
                floor: 0.0,
            };
            sweep(f.as_mut(), g.as_ref(), c.as_ref(), l1, l2, rule, true);
            let res = kkt(&g, &c, &f, l1, l2);
            assert!(
                res < 1e-8 * g.norm_max() * 10.0,
                "KKT residual {res} for l1={l1} l2={l2}"
            );
            assert!(f.col_iter().all(|col| col.iter().all(|&v| v >= 0.0)));
        }
    }

    #[test]
    fn same_bits_sequential_and_parallel() {
        let mut r = Rng::new(4);
        let (k, n) = (9, 1000);
        let a = Mat::<f32>::from_fn(k, 30, |_, _| r.uniform() as f32);
        let g = &a * a.transpose();
        let c = Mat::<f32>::from_fn(k, n, |_, _| r.uniform() as f32);
        let rule = SweepRule {
            max_sweeps: 5,
            delta: 0.1,
            tol: 0.0,
            floor: 0.0,
        };
        let mut f1 = Mat::<f32>::zeros(k, n);
        sweep(f1.as_mut(), g.as_ref(), c.as_ref(), 0.0, 0.0, rule, false);
        let mut f2 = Mat::<f32>::zeros(k, n);
        crate::linalg::with_threads(2, || {
            sweep(f2.as_mut(), g.as_ref(), c.as_ref(), 0.0, 0.0, rule, true)
        })
        .unwrap();
        assert!(f1 == f2);
    }

    #[test]
    fn sweeping_from_a_source_equals_sweeping_a_copy_and_keeps_the_source() {
        let mut r = Rng::new(5);
        let (k, n) = (11, 700);
        let a = Mat::<f32>::from_fn(k, 40, |_, _| r.uniform() as f32);
        let g = &a * a.transpose();
        let c = Mat::<f32>::from_fn(k, n, |_, _| r.uniform() as f32);
        let start = Mat::<f32>::from_fn(k, n, |_, _| (r.uniform() as f32 - 0.3).max(0.0));
        let rule = SweepRule {
            max_sweeps: 3,
            delta: 0.0,
            tol: 0.0,
            floor: 0.0,
        };
        for parallel in [false, true] {
            let mut want = start.clone();
            let mut got = Mat::<f32>::from_fn(k, n, |_, _| f32::NAN);
            crate::linalg::with_threads(2, || {
                let a = sweep(want.as_mut(), g.as_ref(), c.as_ref(), 0.1, 0.2, rule, parallel);
                let b = sweep_from(
                    Some(start.as_ref()),
                    got.as_mut(),
                    g.as_ref(),
                    c.as_ref(),
                    0.1,
                    0.2,
                    rule,
                    parallel,
                );
                assert_eq!(a, b);
            })
            .unwrap();
            assert!(want == got, "parallel = {parallel}");
            assert!(want != start);
        }
    }

    #[test]
    fn zero_diagonal_coordinates_are_skipped() {
        // A dead atom (zero row/column in G) must not produce NaN or move.
        let g = Mat::<f64>::from_fn(2, 2, |i, j| if i == 0 && j == 0 { 2.0 } else { 0.0 });
        let c = Mat::<f64>::from_fn(2, 3, |_, _| 1.0);
        let mut f = Mat::<f64>::from_fn(2, 3, |i, _| i as f64 * 5.0);
        sweep(
            f.as_mut(),
            g.as_ref(),
            c.as_ref(),
            0.0,
            0.0,
            SweepRule {
                max_sweeps: 3,
                delta: 0.0,
                tol: 0.0,
                floor: 0.0,
            },
            false,
        );
        for j in 0..3 {
            assert_eq!(f[(0, j)], 0.5);
            assert_eq!(f[(1, j)], 5.0);
        }
    }
}
