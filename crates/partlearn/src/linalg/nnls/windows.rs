//! One window of consecutive columns solved through all its rounds on one thread
//! ([`solve_window`]): the per-column pivoting state, the context every window reads, and
//! [`round`], which factors a batch of [`LANES`] passive-set systems on the SIMD lanes, settles
//! each column (`kkt.rs`) and hands the columns left infeasible to the bordered updates
//! (`bordered.rs`). The workspaces are reused across the batches of a window and across the
//! windows of a thread.

use faer::{Mat, MatMut};

use super::bordered::{update_rounds, Update};
use super::kkt::{max_abs, settle};
use super::lanes::{back_lanes, chol_lanes, gather, load, Lane, LANES};
use super::supports::{chol_solve, factor};
use super::{NnlsStats, Start};
use crate::real::Real;

/// Columns are solved in windows of this many consecutive columns, each window on one thread
/// through all its rounds (so the windows' state stays in cache and the result does not depend
/// on the thread count).
pub(super) const WINDOW: usize = 512;

/// Per-column state of the pivoting.
#[derive(Clone, Debug)]
pub(super) struct Column {
    /// Full exchanges allowed without progress (α of §1.3).
    pub(super) budget: u8,
    /// Fewest infeasibilities seen (β of §1.3).
    pub(super) best: usize,
    pub(super) rounds: usize,
    pub(super) done: bool,
    pub(super) ridged: bool,
    /// This round's solution came from a ridged factorization.
    pub(super) ridge_now: bool,
    /// A ridged solution missed its system; finished by the active-set method.
    pub(super) inexact: bool,
    pub(super) backup: bool,
    pub(super) capped: bool,
    /// Solved in `f64` from now on (only with `f32` systems, [`Systems`](super::Systems)).
    pub(super) wide: bool,
}

/// What every window reads.
pub(super) struct Ctx<'a, T> {
    pub(super) g: &'a Mat<f64>,
    /// `G` column-major with stride `kp` (a multiple of [`YB`], zero padding rows), followed by
    /// a zero column (index `k`) that padding rows of the gather read.
    ///
    /// [`YB`]: super::kkt::YB
    pub(super) gp: &'a [T],
    pub(super) kp: usize,
    pub(super) k: usize,
    pub(super) words: usize,
    pub(super) mean_diag: f64,
    /// Pivot threshold of every index: pivots below `ρ·max(|G_ii|, 1e-300·mean diag)` mean
    /// numerical singularity (ρ = 1e-13 for `f64` systems, [`F32_PIVOT_RATIO`] for `f32`).
    ///
    /// [`F32_PIVOT_RATIO`]: super::lanes::F32_PIVOT_RATIO
    pub(super) thr: &'a [f64],
    /// `1 / G_ii` (`+∞` where `G_ii ≤ 0`): the scale of index `i`'s feasibility tolerance
    /// ([`exchange`](super::kkt)).
    pub(super) inv_diag: &'a [f64],
    /// Right-hand sides, column `j` at `j·bs`.
    pub(super) b: &'a [T],
    pub(super) bs: usize,
    pub(super) tol: f64,
    pub(super) max_rounds: usize,
    /// Most removals plus additions a bordered update may carry (0: always refactor), and the
    /// smallest batch size that uses them.
    pub(super) max_update: usize,
    pub(super) min_update_size: usize,
    pub(super) start: Start<'a, T>,
    /// The lane kernels run in `f32` ([`Systems`](super::Systems)).
    pub(super) narrow: bool,
}

/// Solves the columns `j0..j0 + out.ncols()` through all their rounds: each round sorts the
/// unfinished columns by `|F|` (so that a batch's systems have nearly the same size) and runs
/// [`round`] on batches of [`LANES`] of them. A right-hand side with a non-finite entry stops
/// the window before anything is written: `Err(j)` names the first such column.
pub(super) fn solve_window<T: Real, F: Lane>(
    ctx: &Ctx<'_, T>,
    j0: usize,
    mut out: MatMut<'_, T>,
    ws: &mut WindowScratch<F>,
) -> std::result::Result<NnlsStats, usize> {
    let (k, words, nw) = (ctx.k, ctx.words, out.ncols());
    let WindowScratch {
        bmax,
        passive,
        st,
        active,
        s,
    } = ws;
    // Largest |Cᵀb_j| of every column, the scale of its dual tolerance (read here, in order, so
    // that the window's right-hand sides are in cache for its rounds).
    bmax.clear();
    for j in j0..j0 + nw {
        let bj = &ctx.b[j * ctx.bs..j * ctx.bs + k];
        // (A fold without early exit, so that it vectorizes; NaN fails `≤` too.)
        if bj
            .iter()
            .fold(false, |bad, &v| bad | !(Real::to_f64(v).abs() <= f64::MAX))
        {
            return Err(j);
        }
        let top = max_abs(bj);
        bmax.push(top);
    }
    passive.clear();
    passive.resize(nw * words, 0);
    let from = match ctx.start {
        Start::Zero => None,
        Start::Out => Some(out.as_ref()),
        Start::From(src) => Some(src.subcols(j0, nw)),
    };
    if let Some(from) = from {
        for (jl, pj) in passive.chunks_exact_mut(words).enumerate() {
            for (i, &v) in from.col(jl).iter().enumerate() {
                pj[i / 64] |= u64::from(v > T::zero()) << (i % 64);
            }
        }
    }
    st.clear();
    st.resize(
        nw,
        Column {
            budget: 3,
            best: k + 1,
            rounds: 0,
            done: false,
            ridged: false,
            ridge_now: false,
            inexact: false,
            backup: false,
            capped: false,
            wide: false,
        },
    );
    let mut stats = NnlsStats::default();
    loop {
        active.clear();
        for (jl, c) in st.iter().enumerate() {
            if !c.done {
                let size: u32 = passive[jl * words..(jl + 1) * words]
                    .iter()
                    .map(|w| w.count_ones())
                    .sum();
                active.push((size as usize, jl));
            }
        }
        if active.is_empty() {
            break;
        }
        active.sort_unstable();
        stats.factorizations += active.iter().filter(|a| a.0 > 0).count();
        for batch in active.chunks(LANES) {
            let mut w = Window {
                j0,
                bmax,
                passive,
                st,
                out: out.as_mut(),
            };
            round(ctx, batch, &mut w, s);
        }
    }
    stats.updates = std::mem::take(&mut s.u.updates);
    for c in st.iter() {
        stats.rounds = stats.rounds.max(c.rounds);
        stats.ridged += usize::from(c.ridged);
        stats.backup += usize::from(c.backup);
        stats.capped += usize::from(c.capped);
        stats.inexact += usize::from(c.inexact);
        stats.widened += usize::from(c.wide);
    }
    Ok(stats)
}

/// Buffers of [`solve_window`], reused across the windows one thread solves (allocating them per
/// window made `bench nnls` ≈ 8 % slower: 0.130 against 0.118–0.123 s).
#[derive(Default)]
pub(super) struct WindowScratch<F> {
    bmax: Vec<f64>,
    passive: Vec<u64>,
    st: Vec<Column>,
    active: Vec<(usize, usize)>,
    s: Scratch<F>,
}

/// The mutable state of one window that [`round`] updates.
pub(super) struct Window<'a, 'o, T> {
    pub(super) j0: usize,
    pub(super) bmax: &'a [f64],
    pub(super) passive: &'a mut [u64],
    pub(super) st: &'a mut [Column],
    pub(super) out: MatMut<'o, T>,
}

/// Workspaces of [`round`], reused across the batches of one window.
#[derive(Default)]
pub(super) struct Scratch<F> {
    /// Lane-interleaved packed lower triangle, row-major: entry `(r, c)` of lane `l` at
    /// `(r(r+1)/2 + c)·LANES + l`.
    pub(super) a: Vec<F>,
    /// The solution, lane-interleaved: `r[i·LANES + lane]`.
    pub(super) r: Vec<F>,
    /// Pivot thresholds and reciprocal pivots: `[i·LANES + lane]`.
    pub(super) thr: Vec<F>,
    pub(super) inv: Vec<F>,
    pub(super) idx: Vec<usize>,
    /// Lane-interleaved column offsets and row indices of the gather.
    pub(super) co: Vec<u32>,
    pub(super) ro: Vec<u32>,
    /// One column's dense solution and dual `y = G x − b` (length `kp`).
    pub(super) x: Vec<f64>,
    pub(super) y: Vec<f64>,
    pub(super) infeasible: Vec<u64>,
    pub(super) u: Update<F>,
}

/// One BPP round (METHODS.md §1.3 steps 2–5) for a batch of up to [`LANES`] columns: solves
/// `G_FF x_F = b_F` for all of them at once (each system padded to the batch's largest `|F|`
/// with identity rows; Cholesky factorization and both triangular solves with one column per
/// SIMD lane; a lane whose pivot falls below the singularity threshold is solved again on its
/// own by [`factor`] with the ridge fallback), then checks each column's KKT conditions and
/// exchanges its infeasible indices; a feasible (or capped) column is written to `out`.
fn round<T: Real, F: Lane>(
    ctx: &Ctx<'_, T>,
    batch: &[(usize, usize)],
    w: &mut Window<'_, '_, T>,
    s: &mut Scratch<F>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU features were detected at run time just above.
            return unsafe { round_avx2(ctx, batch, w, s) };
        }
    }
    round_impl(ctx, batch, w, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn round_avx2<T: Real, F: Lane>(
    ctx: &Ctx<'_, T>,
    batch: &[(usize, usize)],
    w: &mut Window<'_, '_, T>,
    s: &mut Scratch<F>,
) {
    round_impl(ctx, batch, w, s)
}

/// The kernel of [`round`]; `mul_add` is fused on every path, so all paths give the same bits,
/// and a lane's arithmetic does not depend on the other lanes (padding rows come after its own).
#[inline(always)]
fn round_impl<T: Real, F: Lane>(
    ctx: &Ctx<'_, T>,
    batch: &[(usize, usize)],
    w: &mut Window<'_, '_, T>,
    s: &mut Scratch<F>,
) {
    const L: usize = LANES;
    let (k, kp, words) = (ctx.k, ctx.kp, ctx.words);
    let m = batch.iter().map(|c| c.0).max().unwrap_or(0);
    let tri = |r: usize| r * (r + 1) / 2;
    s.a.resize((tri(m) + m) * L, F::ZERO);
    s.r.resize(m * L, F::ZERO);
    s.thr.resize(m * L, F::ZERO);
    s.inv.resize(m * L, F::ZERO);
    s.idx.resize(m * L, 0);
    s.x.resize(kp, 0.0);
    s.y.resize(kp, 0.0);
    s.infeasible.resize(words, 0);
    // One pass per lane over its passive indices (ascending): the index list, the gather
    // offsets of G_FF (entry (r, c) of lane l is `gp[co[r·L + l] + ro[c·L + l]]`, G being
    // symmetric), b_F and the pivot thresholds. Rows past a lane's |F| (and lanes past the
    // batch) read the zero column k, with a zero right-hand side, and get a unit diagonal after
    // the gather.
    s.co.resize(m * L, 0);
    s.ro.resize(m * L, 0);
    let mut len = [0usize; L];
    for lane in 0..L {
        let mut t = 0;
        if let Some(&(size, jl)) = batch.get(lane) {
            let j = w.j0 + jl;
            let bj = &ctx.b[j * ctx.bs..j * ctx.bs + k];
            let pj = &w.passive[jl * words..(jl + 1) * words];
            let f = &mut s.idx[lane * m..lane * m + size];
            // (The bit walk of `for_ones`, written out: as a closure this body was not inlined,
            // and so not compiled with AVX2, costing ~10 % of the round in perf samples.)
            for (wi, &word) in pj.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let i = wi * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    // (Passive bits are below k, so every gather offset is below (k + 1)·kp,
                    // which `solve_gram` checked fits in u32; the gather's safety rests on this.)
                    assert!(i < k);
                    f[t] = i;
                    s.co[t * L + lane] = (i * kp) as u32;
                    s.ro[t * L + lane] = i as u32;
                    s.a[(tri(m) + t) * L + lane] = F::of(Real::to_f64(bj[i]));
                    s.thr[t * L + lane] = F::of(ctx.thr[i]);
                    t += 1;
                }
            }
            debug_assert_eq!(t, size);
        }
        len[lane] = t;
        for r in t..m {
            s.co[r * L + lane] = (k * kp) as u32;
            s.ro[r * L + lane] = 0;
            s.a[(tri(m) + r) * L + lane] = F::ZERO;
            s.thr[r * L + lane] = F::ZERO;
        }
    }
    assert!(ctx.gp.len() >= (k + 1) * kp);
    for r in 0..m {
        let co = load(&s.co, r * L);
        let row = &mut s.a[tri(r) * L..(tri(r) + r + 1) * L];
        for (c, dst) in row.chunks_exact_mut(L).enumerate() {
            let ro = load(&s.ro, c * L);
            let off: [u32; L] = std::array::from_fn(|l| co[l] + ro[l]);
            // SAFETY: every offset is at most k·kp + k − 1 < (k + 1)·kp ≤ gp.len() (the index
            // assertion and the check above).
            dst.copy_from_slice(&unsafe { gather(ctx.gp, &off) });
        }
    }
    for (lane, &t) in len.iter().enumerate() {
        for r in t..m {
            s.a[(tri(r) + r) * L + lane] = F::ONE;
        }
    }
    let mut failed = [false; L];
    chol_lanes(&mut s.a, m, &s.thr, &mut s.inv, &mut failed);
    // A lane whose pivot failed, or whose column left the f32 path, is solved in f64 below.
    for (lane, &(_, jl)) in batch.iter().enumerate() {
        let c = &mut w.st[jl];
        c.wide |= failed[lane] && ctx.narrow;
        failed[lane] |= c.wide;
    }
    // Lᵀ x = y (y from the factorization).
    s.r[..m * L].copy_from_slice(&s.a[tri(m) * L..(tri(m) + m) * L]);
    back_lanes(&s.a, &s.inv, m, &mut s.r);
    // Per column: the dense solution, its KKT check and the exchange.
    let mut pending = [false; L];
    for (lane, &(size, jl)) in batch.iter().enumerate() {
        let j = w.j0 + jl;
        let f = &s.idx[lane * m..lane * m + size];
        let c = &mut w.st[jl];
        s.x.fill(0.0);
        c.ridge_now = false;
        if failed[lane] {
            let (chol, rid) = factor(ctx.g, f, ctx.mean_diag);
            let mut rhs: Vec<f64> = f.iter().map(|&i| Real::to_f64(ctx.b[j * ctx.bs + i])).collect();
            chol_solve(&chol, size, &mut rhs);
            for (&i, v) in f.iter().zip(rhs) {
                s.x[i] = v;
            }
            c.ridged |= rid;
            c.ridge_now = rid;
        } else {
            for (r, &i) in f.iter().enumerate() {
                s.x[i] = s.r[r * L + lane].wide();
            }
        }
        let pj = &mut w.passive[jl * words..(jl + 1) * words];
        let b = &ctx.b[j * ctx.bs..j * ctx.bs + k];
        let out = w.out.as_mut().col_mut(jl);
        settle(
            ctx,
            c,
            f,
            b,
            &s.x,
            &mut s.y,
            w.bmax[jl],
            pj,
            &mut s.infeasible,
            out,
        );
        // A column under the backup rule (or widened to f64) refactors every round: bordered
        // updates of a factor that one-at-a-time exchanges keep revisiting can cycle to the
        // round cap.
        pending[lane] = !c.done
            && !c.backup
            && !c.wide
            && !failed[lane]
            && ctx.max_update > 0
            && m >= ctx.min_update_size
            && conditioned::<F>(ctx, f, &s.inv, lane);
    }
    if pending.iter().any(|&p| p) {
        update_rounds(ctx, batch, w, s, m, pending);
    }
}

/// Whether a lane's factor is well enough conditioned for bordered updates: every pivot `d_r`
/// (`1 / inv_r²`) at least [`Lane::UPDATE_PIVOT_RATIO`] times its `G_ii`.
#[inline(always)]
fn conditioned<F: Lane>(ctx: &Ctx<'_, impl Real>, f: &[usize], inv: &[F], lane: usize) -> bool {
    f.iter().enumerate().all(|(r, &i)| {
        let iv = inv[r * LANES + lane].wide();
        iv * iv * (F::UPDATE_PIVOT_RATIO * ctx.g[(i, i)]) <= 1.0
    })
}

#[cfg(test)]
mod tests {
    use super::super::oracle::{random, CloneF32};
    use super::super::{nnls, NnlsOptions};
    use crate::rng::Rng;
    use faer::Mat;

    #[test]
    fn same_bits_with_one_and_two_threads() {
        let mut r = Rng::new(6);
        let c = random(&mut r, 60, 20).as_ref().cloned_f32();
        // 1,100 columns: three windows, split over the threads.
        let b = Mat::<f64>::from_fn(60, 1100, |_, _| r.uniform() - 0.3)
            .as_ref()
            .cloned_f32();
        let (one, _) = nnls(c.as_ref(), b.as_ref(), &NnlsOptions::default(), 1).unwrap();
        let (two, _) = nnls(c.as_ref(), b.as_ref(), &NnlsOptions::default(), 2).unwrap();
        for j in 0..1100 {
            for i in 0..20 {
                assert_eq!(one[(i, j)].to_bits(), two[(i, j)].to_bits());
            }
        }
    }
}
