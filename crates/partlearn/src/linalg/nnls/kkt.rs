//! The end of every round of a column ([`settle`]), whether its solution came from a
//! factorization or a bordered update: the dual `y = G x − b` ([`dual`], a register-blocked
//! kernel over the columns of `G` in the support), the KKT test and the exchange of infeasible
//! indices with the backup rule ([`exchange`], METHODS.md §1.3 steps 3–5), and the write-out of
//! a finished column. All in `f64`, whatever the data's type.

use super::lanes::{Lane, F32_PIVOT_RATIO};
use super::supports::active_set;
use super::windows::{Column, Ctx};
use crate::real::Real;

/// Most rows of `y = G x − b` accumulated in registers at a time by the dual kernel (its last
/// block may have 4 more).
pub(super) const YB: usize = 32;

/// The end of a round for one column (METHODS.md §1.3 steps 3–5), whether its solution `x`
/// came from a factorization or a bordered update: the dual `y = G x − b` for the support `f`,
/// the KKT check and exchange, and the write-out when the column is done (solved again by
/// [`active_set`] when it reached the round cap or its ridged solution is inexact).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn settle<T: Real>(
    ctx: &Ctx<'_, T>,
    c: &mut Column,
    f: &[usize],
    b: &[T],
    x: &[f64],
    y: &mut [f64],
    bmax: f64,
    passive: &mut [u64],
    infeasible: &mut [u64],
    out: faer::ColMut<'_, T>,
) {
    c.rounds += 1;
    dual(ctx, b, f, x, y);
    let tol_y = ctx.tol * bmax.max(f64::MIN_POSITIVE);
    // A ridged solve is a solution of `(G_FF + λI) x_F = b_F`: it stands only if it also
    // solves `G_FF x_F = b_F` to the dual's tolerance. Otherwise (a singular `G_FF` whose
    // diagonal spans many decades, where the ridge that lets the factorization pass dwarfs the
    // small pivots) the column is finished by the active-set method, like a capped one.
    if c.ridge_now && !f.iter().all(|&i| y[i].abs() <= tol_y) {
        c.inexact = true;
        c.done = true;
    } else {
        // On F the dual is zero by construction (it holds the solve's rounding residual).
        for &i in f {
            y[i] = 0.0;
        }
        exchange(c, x, y, bmax, passive, infeasible, ctx.k, ctx);
    }
    if c.capped || c.inexact {
        let bf: Vec<f64> = b[..ctx.k].iter().map(|&v| Real::to_f64(v)).collect();
        // Pivots below the singularity ratio of the data's precision (`G` carries its rounding).
        let ratio = if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
            F32_PIVOT_RATIO
        } else {
            <f64 as Lane>::PIVOT_RATIO
        };
        let xs = active_set(ctx.g, &bf, tol_y, ratio, ctx.mean_diag);
        for (o, v) in out.iter_mut().zip(xs) {
            *o = T::from_f64(v);
        }
    } else if c.done {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = T::from_f64(v.max(0.0));
        }
    }
}

/// `y = G x − b` for a solution supported on `f` (ascending), in row blocks of at most
/// [`YB`] rows with the accumulators in registers; each entry sums `G_il x_l` over `l ∈ f` in
/// order. Only the rows `0..⌈k/4⌉·4` are computed (rows past `k` of `y` are zero): the blocks
/// are [`YB`] rows while more than `YB + 4` remain, then one or two blocks share the rest
/// (k = 100: 32 + 32 + 36 rows, where whole `YB` blocks over `kp` = 128 rows cost 28 % more;
/// the kernel is bound by the `f32 → f64` conversions, one per row and support index).
#[inline(always)]
fn dual<T: Real>(ctx: &Ctx<'_, T>, b: &[T], f: &[usize], x: &[f64], y: &mut [f64]) {
    let (k, kp) = (ctx.k, ctx.kp);
    assert!(y.len() == kp && x.len() == kp && ctx.gp.len() >= kp * k && f.iter().all(|&l| l < k));
    const V: usize = 4;
    const NB: usize = YB / V;
    for (yi, &bi) in y.iter_mut().zip(b) {
        *yi = -Real::to_f64(bi);
    }
    y[k..].fill(0.0);
    let nv = k.div_ceil(V);
    let mut v0 = 0;
    while v0 < nv {
        let rest = nv - v0;
        // Vectors in this block: whole blocks, then the rest in one block (up to NB + 1
        // vectors) or two nearly equal ones.
        let nb = if rest <= NB + 1 {
            rest
        } else if rest < 2 * NB {
            rest / 2
        } else {
            NB
        };
        let y = &mut y[v0 * V..(v0 + nb) * V];
        match nb {
            1 => dual_block::<T, 1>(ctx, f, x, y, v0 * V),
            2 => dual_block::<T, 2>(ctx, f, x, y, v0 * V),
            3 => dual_block::<T, 3>(ctx, f, x, y, v0 * V),
            4 => dual_block::<T, 4>(ctx, f, x, y, v0 * V),
            5 => dual_block::<T, 5>(ctx, f, x, y, v0 * V),
            6 => dual_block::<T, 6>(ctx, f, x, y, v0 * V),
            7 => dual_block::<T, 7>(ctx, f, x, y, v0 * V),
            8 => dual_block::<T, 8>(ctx, f, x, y, v0 * V),
            _ => dual_block::<T, { NB + 1 }>(ctx, f, x, y, v0 * V),
        }
        v0 += nb;
    }
}

/// `y += G_{r0.., f} x_f` for the `4·NV` rows of `y` starting at row `r0`, accumulated in `NV`
/// registers.
#[inline(always)]
fn dual_block<T: Real, const NV: usize>(ctx: &Ctx<'_, T>, f: &[usize], x: &[f64], y: &mut [f64], r0: usize) {
    const V: usize = 4;
    let kp = ctx.kp;
    assert!(y.len() == NV * V && r0 + NV * V <= kp && ctx.gp.len() >= kp * ctx.k && x.len() >= ctx.k);
    let mut acc = [[0.0f64; V]; NV];
    for (a, src) in acc.iter_mut().zip(y.chunks_exact(V)) {
        a.copy_from_slice(src);
    }
    for &l in f {
        // SAFETY: l < k (checked by `dual`) and r0 + 4·NV ≤ kp (asserted above), so the range
        // lies inside `gp` and `x`; unchecked indexing keeps the accumulators in registers.
        let (xl, gcol) = unsafe {
            (
                *x.get_unchecked(l),
                ctx.gp.get_unchecked(l * kp + r0..l * kp + r0 + NV * V),
            )
        };
        for (a, gv) in acc.iter_mut().zip(gcol.chunks_exact(V)) {
            for v in 0..V {
                a[v] = Real::to_f64(gv[v]).mul_add(xl, a[v]);
            }
        }
    }
    for (dst, a) in y.chunks_exact_mut(V).zip(&acc) {
        dst.copy_from_slice(a);
    }
}

/// Checks the KKT conditions of a column for its solution `x` and dual `y` and exchanges its
/// infeasible indices (METHODS.md §1.3 steps 3–5): all of them while the number of
/// infeasibilities keeps falling or the budget allows, otherwise only the largest (the backup
/// rule). Marks the column done when feasible or at the round cap.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn exchange<T>(
    c: &mut Column,
    x: &[f64],
    y: &[f64],
    bmax: f64,
    passive: &mut [u64],
    infeasible: &mut [u64],
    k: usize,
    ctx: &Ctx<'_, T>,
) {
    debug_assert!(x.len() >= k && y.len() >= k);
    let xmax = max_abs(&x[..k]);
    let (tol_x, tol_y) = (
        ctx.tol * xmax.max(f64::MIN_POSITIVE),
        ctx.tol * bmax.max(f64::MIN_POSITIVE),
    );
    // `x` is zero off F and `y` is zero on F, so one test covers both kinds of infeasibility
    // (without short-circuiting, so that the count vectorizes).
    // An entry's negativity is tolerated only while clearing it moves its own dual by less
    // than the dual's tolerance (`|x_i|·G_ii ≤ tol_y`): relative to `max|x_F|` alone, a
    // solution with huge entries (a near-singular `G_FF`) would let large negative ones pass
    // and be cleared at the write-out, far from optimal.
    let (x, y, inv) = (&x[..k], &y[..k], &ctx.inv_diag[..k]);
    let bad = |xi: f64, yi: f64, di: f64| (xi < -tol_x.min(tol_y * di)) | (yi < -tol_y);
    let count: usize = x
        .iter()
        .zip(y)
        .zip(inv)
        .map(|((&xi, &yi), &di)| usize::from(bad(xi, yi, di)))
        .sum();
    if count == 0 {
        c.done = true;
        return;
    }
    for (inf, ((xc, yc), dc)) in infeasible
        .iter_mut()
        .zip(x.chunks(64).zip(y.chunks(64)).zip(inv.chunks(64)))
    {
        *inf = xc
            .iter()
            .zip(yc)
            .zip(dc)
            .enumerate()
            .fold(0u64, |bits, (b, ((&xi, &yi), &di))| {
                bits | u64::from(bad(xi, yi, di)) << b
            });
    }
    // At the round cap (the exchanges cycled: `G` is rank-deficient, where the backup rule's
    // termination proof does not hold), Lawson–Hanson finishes the column.
    if c.rounds >= ctx.max_rounds {
        c.capped = true;
        c.done = true;
        return;
    }
    if count < c.best {
        c.best = count;
        c.budget = 3;
    } else if c.budget >= 1 {
        c.budget -= 1;
    } else {
        // Backup rule: flip only the largest infeasible index. With `f32` systems the column
        // continues in `f64`, where the rule's guarantee of termination holds.
        c.backup = true;
        c.wide |= ctx.narrow;
        if let Some(wi) = infeasible.iter().rposition(|&v| v != 0) {
            passive[wi] ^= 1u64 << (63 - infeasible[wi].leading_zeros());
        }
        return;
    }
    for (p, inf) in passive.iter_mut().zip(infeasible.iter()) {
        *p ^= inf;
    }
}

/// `max |v_i|` (0 for an empty slice), in four independent running maxima so that it
/// vectorizes; a NaN entry is skipped.
#[inline(always)]
pub(super) fn max_abs<T: Real>(v: &[T]) -> f64 {
    let mut top = [0.0f64; 4];
    let mut chunks = v.chunks_exact(4);
    for ch in &mut chunks {
        for (t, &e) in top.iter_mut().zip(ch) {
            let a = Real::to_f64(e).abs();
            *t = if a > *t { a } else { *t };
        }
    }
    for &e in chunks.remainder() {
        let a = Real::to_f64(e).abs();
        top[0] = if a > top[0] { a } else { top[0] };
    }
    top.into_iter().fold(0.0, |a, t| if t > a { t } else { a })
}

#[cfg(test)]
mod tests {
    use super::super::oracle::random;
    use super::super::Start;
    use super::*;
    use crate::rng::Rng;
    use faer::Mat;

    /// The dual kernel's row blocks (whole [`YB`] blocks, then one or two blocks for the rest)
    /// cover every row of `y = G x − b` for every `k`, with the same bits as the plain sum over
    /// the support in order, and leave the padding rows zero.
    #[test]
    fn dual_blocks_cover_every_row_for_every_k() {
        let mut r = Rng::new(17);
        for k in (1usize..=80).chain([99, 100, 101, 130]) {
            let kp = k.next_multiple_of(YB);
            let gm = random(&mut r, k, k);
            let mut gp = vec![0.0f32; kp * (k + 1)];
            for l in 0..k {
                for i in 0..k {
                    gp[l * kp + i] = gm[(i, l)] as f32;
                }
            }
            let b: Vec<f32> = (0..k).map(|_| r.uniform() as f32 - 0.5).collect();
            let f: Vec<usize> = (0..k).filter(|_| r.uniform() < 0.4).collect();
            let mut x = vec![0.0f64; kp];
            for &l in &f {
                x[l] = r.uniform();
            }
            let g = Mat::<f64>::zeros(k, k);
            let ctx = Ctx {
                g: &g,
                gp: &gp,
                kp,
                k,
                words: k.div_ceil(64),
                mean_diag: 1.0,
                thr: &[],
                inv_diag: &[],
                b: &b,
                bs: k,
                tol: 1e-10,
                max_rounds: 1,
                max_update: 0,
                min_update_size: 0,
                start: Start::Zero,
                narrow: false,
            };
            let mut y = vec![f64::NAN; kp];
            dual(&ctx, &b, &f, &x, &mut y);
            for i in 0..kp {
                let want = if i < k {
                    f.iter().fold(-f64::from(b[i]), |a, &l| {
                        f64::from(gp[l * kp + i]).mul_add(x[l], a)
                    })
                } else {
                    0.0
                };
                assert_eq!(y[i].to_bits(), want.to_bits(), "k = {k}, row {i}");
            }
        }
    }
}

/// The acceptance tests of a round on badly scaled and singular systems.
#[cfg(test)]
mod acceptance_tests {
    use super::super::{solve_gram_from, NnlsOptions, NnlsStats};
    use faer::{Mat, Par};

    /// Solves `min ½xᵀGx − bᵀx, x ≥ 0` warm-started from `x = 1` (every index passive).
    fn solve_from_ones(g: &Mat<f64>, b: &[f64]) -> (Vec<f64>, NnlsStats) {
        let k = b.len();
        let bm = Mat::<f64>::from_fn(k, 1, |i, _| b[i]);
        let ones = Mat::<f64>::from_fn(k, 1, |_, _| 1.0);
        let mut out = Mat::<f64>::zeros(k, 1);
        let st = solve_gram_from(
            g.as_ref(),
            bm.as_ref(),
            ones.as_ref(),
            out.as_mut(),
            &NnlsOptions::default(),
            Par::Seq,
        )
        .unwrap();
        ((0..k).map(|i| out[(i, 0)]).collect(), st)
    }

    /// A negative entry is judged at its own scale, not at the largest entry's: on
    /// `F = {0, 1, 2}` the solution is `x = (1e10, 4/3, −2/3)`, and relative to `max|x_F|` the
    /// `−2/3` passed as rounding noise and was cleared, leaving `x_1 = 4/3`; the optimum has
    /// `x_2 = 0`, `x_1 = b_1 / G_11 = 1`.
    #[test]
    fn a_negative_entry_beside_a_huge_one_is_infeasible() {
        let g = Mat::<f64>::from_fn(3, 3, |i, j| match (i, j) {
            (0, 0) => 1e-20,
            (1, 1) | (2, 2) => 1.0,
            (1, 2) | (2, 1) => 0.5,
            _ => 0.0,
        });
        let (x, _) = solve_from_ones(&g, &[1e-10, 1.0, 0.0]);
        assert!((x[0] - 1e10).abs() <= 1e-6 * 1e10, "{x:?}");
        assert!((x[1] - 1.0).abs() < 1e-12 && x[2] == 0.0, "{x:?}");
    }

    /// `G` of the columns `(1e6·u, v, v)` with `u ⟂ v` and `b = Cᵀv`: `G_FF` is singular, and
    /// the ridge that lets it factor (relative to the mean diagonal, ≈ 3e11) smothers `x_1`,
    /// `x_2` (`x_1 + x_2 = 0.86` instead of 1). That solution misses its system, so the
    /// column is finished by the active-set method, which reaches the optimum `½·1 − 1`.
    #[test]
    fn a_ridged_solution_that_misses_its_system_is_solved_again() {
        let g = Mat::<f64>::from_fn(3, 3, |i, j| match (i, j) {
            (0, 0) => 1e12,
            (0, _) | (_, 0) => 0.0,
            _ => 1.0,
        });
        let b = [0.0, 1.0, 1.0];
        let (x, st) = solve_from_ones(&g, &b);
        assert_eq!((st.ridged, st.inexact), (1, 1), "{st:?}");
        let objective = 0.5 * (x[1] + x[2]).powi(2) - (x[1] + x[2]) + 0.5 * 1e12 * x[0] * x[0];
        assert!((objective + 0.5).abs() < 1e-12, "objective {objective}, x {x:?}");
    }
}
