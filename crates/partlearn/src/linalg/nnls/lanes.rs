//! The SIMD lane kernels: a batch of [`LANES`] passive-set systems, one per lane, stored
//! lane-interleaved (entry `e` of lane `l` at `e·LANES + l`) so that every operation runs on all
//! lanes at once. [`Lane`] is the float type of the lanes (`f64`, or `f32` for `f32` data);
//! [`chol_lanes`] factors every lane and runs the forward solve of its right-hand side,
//! [`forward_lanes`] and [`back_lanes`] are the triangular solves, [`gather`] and [`load`] read
//! lane groups. A lane's arithmetic never depends on the other lanes.

use super::F32_SYSTEMS_TOL;
use crate::real::Real;

/// Columns whose passive-set systems are factored together, one per SIMD lane (`f64`: two AVX2
/// registers per entry, measured faster than 4 lanes at k = 100, |F| ≈ 35, because the
/// per-block bookkeeping is shared by twice as many columns; `f32`: one register).
pub(super) const LANES: usize = 8;
/// Earlier rows that [`chol_lanes`] takes at a time (2 rows × 2 earlier rows × 8 lanes fill 8
/// AVX2 accumulators).
const CB: usize = 2;
/// Pivot threshold of `f32` systems, relative to `|G_ii|` (`f64` systems: 1e-13). A pivot
/// below it (the Schur complement of row `i` lost all but ~3 of its digits to cancellation,
/// which `f32` rounding of `G_FF` alone, ~`|F|·ε₃₂`, can cause) sends the column to the `f64`
/// path ([`factor`], with its ridge fallback) for the rest of its solve. A bordered update whose
/// added index has a Schur diagonal below the same threshold refactors instead.
///
/// [`factor`]: super::supports::factor
pub(super) const F32_PIVOT_RATIO: f64 = 1e-4;

/// The float type of the lane kernels (the passive-set factorizations and their triangular
/// solves): `f64`, or `f32` for `f32` data ([`Systems`]). The duals, the bordered updates'
/// Schur systems and the KKT checks stay in `f64` either way.
///
/// [`Systems`]: super::Systems
pub(super) trait Lane:
    Copy
    + Default
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::MulAssign
    + Send
    + Sync
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    /// Tolerance floor and pivot ratio of systems in this type.
    const TOL_FLOOR: f64;
    const PIVOT_RATIO: f64;
    /// Smallest pivot ratio (`d_r / G_ii` of the factor, or an addition's Schur diagonal
    /// `(G_aa − ‖w_a‖²) / G_aa`) from which bordered updates continue. A bordered update
    /// computes `x_F = u − L⁻ᵀ W v` with `u = G_FF⁻¹ b_F`, so its error grows with the factor's
    /// condition (~ `ε · |u| / ratio`), where a fresh factorization of the new passive set does
    /// not: with `f64` systems a rank-deficient `G_FF` whose last pivot ratio came out at
    /// 1.5e-13 (just above [`PIVOT_RATIO`](Lane::PIVOT_RATIO)) gave `|u| ≈ 27` and an updated
    /// solution 9 % off on its support, a dual violation of 0.02 that the KKT test (which takes
    /// the dual on the support as zero) did not see. The column refactors instead.
    const UPDATE_PIVOT_RATIO: f64;
    /// `self · a + b`, fused.
    fn mul_add(self, a: Self, b: Self) -> Self;
    fn sqrt(self) -> Self;
    /// Rounding conversion from `f64`.
    fn of(v: f64) -> Self;
    /// Exact conversion to `f64`.
    fn wide(self) -> f64;
}

impl Lane for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const TOL_FLOOR: f64 = 0.0;
    const PIVOT_RATIO: f64 = 1e-13;
    /// (`ε · 1e8` ≈ 2e-8 of `|u|` at worst, far inside the KKT tolerance's reach of the tests.)
    const UPDATE_PIVOT_RATIO: f64 = 1e-8;
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn wide(self) -> f64 {
        self
    }
}

impl Lane for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const TOL_FLOOR: f64 = F32_SYSTEMS_TOL;
    const PIVOT_RATIO: f64 = F32_PIVOT_RATIO;
    /// (The `f32` pivot test itself: its factors carry ~3 digits at that ratio, within the
    /// `f32` tolerance floor.)
    const UPDATE_PIVOT_RATIO: f64 = F32_PIVOT_RATIO;
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn wide(self) -> f64 {
        f64::from(self)
    }
}

/// `v ← L⁻¹ v` for `nv` lane-interleaved vectors (`v[(q·m + i)·LANES + lane]`) and every lane
/// of the lane factor `a` (reciprocal pivots `inv`): row by row (each factor row is read in
/// order), `v_r = (v_r − Σ_{c<r} L_rc v_c) / L_rr` with the sum in four partial sums.
#[inline(always)]
pub(super) fn forward_lanes<F: Lane>(a: &[F], inv: &[F], m: usize, v: &mut [F], nv: usize) {
    const L: usize = LANES;
    let tri = |r: usize| r * (r + 1) / 2;
    assert!(v.len() >= nv * m * L && a.len() >= tri(m) * L && inv.len() >= m * L);
    for q in 0..nv {
        let v = &mut v[q * m * L..(q + 1) * m * L];
        for r in 0..m {
            let (row, done) = (&a[tri(r) * L..(tri(r) + r) * L], &v[..r * L]);
            let mut acc = [[F::ZERO; L]; 4];
            let mut rows = row.chunks_exact(4 * L);
            let mut ys = done.chunks_exact(4 * L);
            for (lr, yr) in (&mut rows).zip(&mut ys) {
                for (p, ap) in acc.iter_mut().enumerate() {
                    for l in 0..L {
                        ap[l] = lr[p * L + l].mul_add(yr[p * L + l], ap[l]);
                    }
                }
            }
            for (p, (lr, yr)) in rows
                .remainder()
                .chunks_exact(L)
                .zip(ys.remainder().chunks_exact(L))
                .enumerate()
            {
                for l in 0..L {
                    acc[p][l] = lr[l].mul_add(yr[l], acc[p][l]);
                }
            }
            let iv = load(inv, r * L);
            let dst = lanes(v, r);
            for l in 0..L {
                dst[l] = (dst[l] - ((acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]))) * iv[l];
            }
        }
    }
}

/// `x ← L⁻ᵀ x` for every lane of the lane factor `a` (reciprocal pivots `inv`), `x`
/// lane-interleaved (`x[i·LANES + lane]`).
#[inline(always)]
pub(super) fn back_lanes<F: Lane>(a: &[F], inv: &[F], m: usize, x: &mut [F]) {
    const L: usize = LANES;
    let tri = |r: usize| r * (r + 1) / 2;
    for c in (0..m).rev() {
        let iv = load(inv, c * L);
        let xv = lanes(x, c);
        for l in 0..L {
            xv[l] *= iv[l];
        }
        let xv = *xv;
        let row = tri(c);
        for r in 0..c {
            let lcr = load(a, (row + r) * L);
            let dst = lanes(x, r);
            for l in 0..L {
                dst[l] = (-lcr[l]).mul_add(xv[l], dst[l]);
            }
        }
    }
}

/// `gp[off[l]]` for every lane, in the lane type. (Eight scalar loads: on this machine's AMD EPYC, the
/// AVX2 gather instruction was ≈ 4 % slower for the whole solve, `bench nnls` BPP 0.0987 against
/// 0.0945 s, mean of six alternating runs.)
///
/// # Safety
/// Every offset must be below `gp.len()`.
#[inline(always)]
pub(super) unsafe fn gather<T: Real, F: Lane>(gp: &[T], off: &[u32; LANES]) -> [F; LANES] {
    // SAFETY: the offsets are in bounds (the caller's contract).
    std::array::from_fn(|l| F::of(Real::to_f64(unsafe { *gp.get_unchecked(off[l] as usize) })))
}

/// `acc[i][q] −= Σ_{p<c0} L[row i][p] · L[column q][p]` for the rows starting at `rb` and the
/// earlier rows starting at `cb` (offsets into `a`), accumulated in registers.
#[inline(always)]
fn block_dots<F: Lane>(
    a: &[F],
    rb: [usize; 2],
    cb: [usize; CB],
    c0: usize,
    mut acc: [[[F; LANES]; CB]; 2],
) -> [[[F; LANES]; CB]; 2] {
    const L: usize = LANES;
    assert!(rb.iter().chain(&cb).all(|&o| o + c0 * L <= a.len()));
    for p in 0..c0 {
        // SAFETY: every offset plus c0 lane groups lies inside `a` (asserted above) and p < c0;
        // unchecked loads keep the accumulators in registers.
        let ld = |e: usize| -> [F; L] {
            let mut v = [F::ZERO; L];
            v.copy_from_slice(unsafe { a.get_unchecked(e + p * L..e + (p + 1) * L) });
            v
        };
        let rv = [ld(rb[0]), ld(rb[1])];
        let cv: [[F; L]; CB] = std::array::from_fn(|q| ld(cb[q]));
        for i in 0..2 {
            for q in 0..CB {
                for l in 0..L {
                    acc[i][q][l] = (-rv[i][l]).mul_add(cv[q][l], acc[i][q][l]);
                }
            }
        }
    }
    acc
}

/// The lane group starting at `e`.
#[inline(always)]
pub(super) fn load<E: Copy + Default>(v: &[E], e: usize) -> [E; LANES] {
    let mut x = [E::default(); LANES];
    x.copy_from_slice(&v[e..e + LANES]);
    x
}

/// Pivot of row `r` from its lane-interleaved Schur complement `d`: `√d`, with the reciprocal
/// stored in `inv`, or 1 with the lane marked failed when `d` is not above its threshold `thr`.
#[inline(always)]
fn pivot<F: Lane>(d: &mut [F; LANES], r: usize, thr: &[F], inv: &mut [F], failed: &mut [bool; LANES]) {
    let (thr, inv) = (
        &thr[r * LANES..(r + 1) * LANES],
        &mut inv[r * LANES..(r + 1) * LANES],
    );
    // Branch-free, so that the square roots and divisions vectorize.
    let mut bad = [false; LANES];
    for l in 0..LANES {
        bad[l] = !(d[l] > thr[l]);
        let v = if bad[l] { F::ONE } else { d[l] };
        let sq = v.sqrt();
        d[l] = sq;
        inv[l] = F::ONE / sq;
    }
    for l in 0..LANES {
        failed[l] |= bad[l];
    }
}

/// Entries `c < limit` of the rows at `rb` (the second one only with `two`; the first one
/// twice otherwise, the copy discarded) of the lane factor, from the rows above them:
/// `L_rc = (A_rc − Σ_{p<c} L_rp L_cp) · inv_c`, [`CB`] columns at a time.
#[inline(always)]
fn offdiag<F: Lane>(a: &mut [F], rb: [usize; 2], two: bool, limit: usize, inv: &[F]) {
    const L: usize = LANES;
    let tri = |r: usize| r * (r + 1) / 2;
    let at = |e: usize| e * L;
    let mut c0 = 0;
    while c0 < limit {
        let nc = CB.min(limit - c0);
        // Columns past the block's end repeat column c0 and are discarded.
        let cb: [usize; CB] = std::array::from_fn(|q| at(tri(if q < nc { c0 + q } else { c0 })));
        let mut acc = [[[F::ZERO; L]; CB]; 2];
        for i in 0..2 {
            for q in 0..CB {
                let e = rb[i] + at(if q < nc { c0 + q } else { c0 });
                acc[i][q].copy_from_slice(&a[e..e + L]);
            }
        }
        let mut acc = block_dots(a, rb, cb, c0, acc);
        // The triangle inside the block, then the scaling by the reciprocal pivots.
        for q in 0..nc {
            let iv = load(inv, (c0 + q) * L);
            for i in 0..2 {
                let mut t = acc[i][q];
                for p in 0..q {
                    let (lv, ap) = (load(a, cb[q] + at(c0 + p)), acc[i][p]);
                    for l in 0..L {
                        t[l] = (-ap[l]).mul_add(lv[l], t[l]);
                    }
                }
                for l in 0..L {
                    t[l] *= iv[l];
                }
                acc[i][q] = t;
            }
        }
        for i in 0..if two { 2 } else { 1 } {
            for q in 0..nc {
                let e = rb[i] + at(c0 + q);
                a[e..e + L].copy_from_slice(&acc[i][q]);
            }
        }
        c0 += nc;
    }
}

/// Cholesky factorization of every lane of the packed lower triangle `a` (lane-interleaved, row
/// `r` at `r(r+1)/2`), in place, followed by the forward solve `L y = b` of the right-hand side
/// stored as row `m` (entries `tri(m)..tri(m) + m`, overwritten by `y`). `inv` receives the
/// reciprocal pivots; `thr` holds the pivot thresholds. Left-looking, two rows at a time against
/// [`CB`] earlier rows at a time, with the `2·CB` dot products in registers:
/// `L_rc = (A_rc − Σ_{p<c} L_rp L_cp) / L_cc`. Each sum runs over `p` in increasing order, as in
/// the textbook right-looking form, so the bits are the same.
#[inline(always)]
pub(super) fn chol_lanes<F: Lane>(
    a: &mut [F],
    m: usize,
    thr: &[F],
    inv: &mut [F],
    failed: &mut [bool; LANES],
) {
    const L: usize = LANES;
    let tri = |r: usize| r * (r + 1) / 2;
    assert!(a.len() >= (tri(m) + m) * L && thr.len() >= m * L && inv.len() >= m * L);
    let at = |e: usize| e * L;
    let mut r0 = 0;
    while r0 < m {
        let two = r0 + 1 < m;
        // Rows r0 and r0 + 1 (row r0 twice at the end of an odd-sized system; the copy is
        // discarded).
        let rb = [at(tri(r0)), at(tri(if two { r0 + 1 } else { r0 }))];
        offdiag(a, rb, two, r0, inv);
        // The diagonal block: d0 = A_r0r0 − Σ L_r0p², e = A_r1r0 − Σ L_r1p L_r0p,
        // d1 = A_r1r1 − Σ L_r1p² (p < r0), then the pivots.
        let (e00, e10, e11) = (rb[0] + at(r0), rb[1] + at(r0), rb[1] + at(r0 + usize::from(two)));
        let (mut d0, mut e, mut d1) = (load(a, e00), load(a, e10), load(a, e11));
        for p in 0..r0 {
            let (x0, x1) = (load(a, rb[0] + at(p)), load(a, rb[1] + at(p)));
            for l in 0..L {
                d0[l] = (-x0[l]).mul_add(x0[l], d0[l]);
                e[l] = (-x1[l]).mul_add(x0[l], e[l]);
                d1[l] = (-x1[l]).mul_add(x1[l], d1[l]);
            }
        }
        pivot(&mut d0, r0, thr, inv, failed);
        a[e00..e00 + L].copy_from_slice(&d0);
        if two {
            let iv = load(inv, r0 * L);
            for l in 0..L {
                e[l] *= iv[l];
                d1[l] = (-e[l]).mul_add(e[l], d1[l]);
            }
            pivot(&mut d1, r0 + 1, thr, inv, failed);
            a[e10..e10 + L].copy_from_slice(&e);
            a[e11..e11 + L].copy_from_slice(&d1);
        }
        r0 += if two { 2 } else { 1 };
    }
    // Row m holds b: its factor row is the forward solve, y_c = (b_c − Σ_{p<c} y_p L_cp) / L_cc.
    offdiag(a, [at(tri(m)); 2], false, m, inv);
}

/// The `LANES` lanes of entry `e` of a lane-interleaved array.
#[inline(always)]
fn lanes<F: Lane>(v: &mut [F], e: usize) -> &mut [F; LANES] {
    let s: &mut [F] = &mut v[e * LANES..(e + 1) * LANES];
    s.try_into().expect("a slice of LANES entries")
}

#[cfg(test)]
mod tests {
    use super::super::oracle::{kkt_violation, random, CloneF32};
    use super::super::{nnls, NnlsOptions, Systems};
    use super::*;
    use crate::rng::Rng;
    use faer::Mat;

    #[test]
    fn lane_cholesky_factors_each_lane_solves_forward_and_flags_only_singular_lanes() {
        // f64 systems: random Gram matrices of `size + 3` rows, errors near f64 rounding.
        check_lane_cholesky::<f64>(3, 1e-10, 1e-14, 1e-12);
        // f32 systems (f32 data): taller, better-conditioned Gram matrices, errors near f32
        // rounding, and the f32 pivot threshold.
        check_lane_cholesky::<f32>(60, 1e-4, 1e-6, 1e-5);
    }

    /// Lane Cholesky of type `F` on random SPD systems (Gram matrices of `size + extra` random
    /// rows) of decreasing sizes, one per lane, plus a singular one in the last lane: only that
    /// lane fails, and every other lane's factor and forward solve are accurate to the given
    /// relative tolerances.
    fn check_lane_cholesky<F: Lane>(extra: usize, fwd_tol: f64, inv_tol: f64, back_tol: f64) {
        let mut r = Rng::new(9);
        let tri = |i: usize| i * (i + 1) / 2;
        for m in [1usize, 2, 3, 5, 6, 9, 14, 37] {
            // Lane l holds a random SPD matrix of size m − l (identity-padded to m), except the
            // last lane, which is singular (a repeated row and column) when m ≥ 2.
            let mats: Vec<Mat<f64>> = (0..LANES)
                .map(|l| {
                    let size = m.saturating_sub(l).max(1);
                    let b = random(&mut r, size + extra, size);
                    let mut g = b.transpose() * &b;
                    if l == LANES - 1 && size >= 2 {
                        for i in 0..size {
                            g[(i, size - 1)] = g[(i, 0)];
                        }
                        for i in 0..size {
                            g[(size - 1, i)] = g[(0, i)];
                        }
                        g[(size - 1, size - 1)] = g[(0, 0)];
                    }
                    // The entries the kernel sees, exactly.
                    Mat::from_fn(size, size, |i, j| F::of(g[(i, j)]).wide())
                })
                .collect();
            let mut a = vec![F::ZERO; (tri(m) + m) * LANES];
            let rhs: Vec<F> = (0..m * LANES).map(|_| F::of(r.uniform() - 0.5)).collect();
            a[tri(m) * LANES..].copy_from_slice(&rhs);
            let mut thr = vec![F::ZERO; m * LANES];
            for (l, g) in mats.iter().enumerate() {
                for i in 0..m {
                    for j in 0..=i {
                        a[(tri(i) + j) * LANES + l] = if i < g.nrows() {
                            if j < g.nrows() {
                                F::of(g[(i, j)])
                            } else {
                                F::ZERO
                            }
                        } else {
                            F::of(f64::from(u8::from(i == j)))
                        };
                    }
                    if i < g.nrows() {
                        thr[i * LANES + l] = F::of(F::PIVOT_RATIO * g[(i, i)]);
                    }
                }
            }
            let mut inv = vec![F::ZERO; m * LANES];
            let mut failed = [false; LANES];
            chol_lanes(&mut a, m, &thr, &mut inv, &mut failed);
            for (l, g) in mats.iter().enumerate() {
                let size = g.nrows();
                let singular = l == LANES - 1 && size >= 2;
                assert_eq!(failed[l], singular, "m {m} lane {l}");
                if singular {
                    continue;
                }
                let lf = Mat::<f64>::from_fn(size, size, |i, j| {
                    if j <= i {
                        a[(tri(i) + j) * LANES + l].wide()
                    } else {
                        0.0
                    }
                });
                let back = &lf * lf.transpose();
                // Row m now holds y with L y = b.
                for i in 0..size {
                    let ly: f64 = (0..=i)
                        .map(|c| lf[(i, c)] * a[(tri(m) + c) * LANES + l].wide())
                        .sum();
                    assert!(
                        (ly - rhs[i * LANES + l].wide()).abs() < fwd_tol,
                        "m {m} lane {l} forward solve row {i}"
                    );
                }
                for i in 0..size {
                    assert!((inv[i * LANES + l].wide() * lf[(i, i)] - 1.0).abs() < inv_tol);
                    for j in 0..size {
                        let d = (back[(i, j)] - g[(i, j)]).abs();
                        assert!(
                            d < back_tol * g[(i, i)].max(g[(j, j)]),
                            "m {m} lane {l} ({i},{j}) {d}"
                        );
                    }
                }
            }
        }
    }

    /// f32 data: solutions from `f32` passive-set systems ([`Systems::Data`]) meet the KKT
    /// conditions of the problem the f32 inputs define (measured in f64) as well as those from
    /// `f64` systems do, up to the tolerance floor, and agree with them to single precision.
    #[test]
    fn f32_systems_meet_kkt_like_f64_systems() {
        let mut r = Rng::new(21);
        for (p, k, n, spread) in [
            (200, 20, 300, 1.0),
            (300, 60, 200, 1.0),
            (784, 100, 400, 1.0),
            (40, 8, 50, 1.0),
            // Nearly collinear columns: G_FF is ill-conditioned in f32.
            (100, 12, 200, 1e-2),
            (100, 12, 200, 3e-3),
        ] {
            let base: Vec<f64> = (0..p).map(|_| r.uniform()).collect();
            let c = Mat::<f64>::from_fn(p, k, |i, _| base[i] + spread * r.uniform())
                .as_ref()
                .cloned_f32();
            let b = Mat::<f64>::from_fn(p, n, |_, _| r.uniform() - 0.3)
                .as_ref()
                .cloned_f32();
            let (c64, b64) = (
                Mat::<f64>::from_fn(p, k, |i, j| f64::from(c[(i, j)])),
                Mat::<f64>::from_fn(p, n, |i, j| f64::from(b[(i, j)])),
            );
            let solve = |systems| {
                let opts = NnlsOptions {
                    systems,
                    ..Default::default()
                };
                let (s, st) = nnls(c.as_ref(), b.as_ref(), &opts, 1).unwrap();
                (Mat::<f64>::from_fn(k, n, |i, j| f64::from(s[(i, j)])), st)
            };
            let (narrow, st32) = solve(Systems::Data);
            let (wide, st64) = solve(Systems::F64);
            let (v32, v64) = (
                kkt_violation(&c64, &b64, &narrow),
                kkt_violation(&c64, &b64, &wide),
            );
            let mut worst = 0.0f64;
            for j in 0..n {
                for i in 0..k {
                    worst = worst.max((narrow[(i, j)] - wide[(i, j)]).abs() / (1.0 + wide[(i, j)].abs()));
                }
            }
            let case = format!("{p}×{k}×{n}, spread {spread}: KKT {v32:.2e} against {v64:.2e}, difference {worst:.2e}, {st32:?} {st64:?}");
            // (`cargo test -p partlearn --lib f32_systems -- --nocapture` prints every case.)
            eprintln!("{case}");
            assert_eq!((st32.capped, st64.capped), (0, 0), "{case}");
            assert!(v32 < 2e-6 && v32 < 1.5 * v64 + 2e-7, "{case}");
            assert!(worst < 2e-6, "{case}");
            // The ill-conditioned systems are handed to f64, the others stay in f32.
            assert_eq!(st32.widened > 0, spread < 1.0, "{case}");
            assert_eq!(st64.widened, 0, "{case}");
        }
    }
}
