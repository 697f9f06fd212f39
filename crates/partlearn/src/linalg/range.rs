//! The randomized range finder of Halko, Martinsson & Tropp (2011, Alg. 4.4: subspace iteration)
//! shared by the truncated SVD of a sparse matrix ([`super::spmm::truncated_svd_sparse`]) and the
//! truncated SVD of data spread over processes ([`randomized_svd_part`], for NNDSVD in a
//! distributed fit).
//!
//! Layout: the products are written row-oriented (`l × ·`), as the SpMM kernels write them:
//! `(XM)ᵀ = MᵀXᵀ` (`l × m`) and `(XᵀQ)ᵀ = QᵀX` (`l × n`) for `X` `m × n` (samples as columns).

use std::ops::Range;

use faer::{Accum, Mat, MatMut, MatRef, Par};

use super::{gram, lift, matmul, svd_from_gram, TruncatedSvd};
use crate::dist::Part;
use crate::error::Result;
use crate::nmf::compress::orthonormalize;
use crate::nmf::data_op::XRef;
use crate::real::Real;
use crate::rng::Rng;

/// Power iterations of the range finder (as scikit-learn's `randomized_svd`).
pub(crate) const POWER_ITERATIONS: usize = 4;

/// Columns of the test matrix beyond the `k` triplets wanted.
pub(crate) const OVERSAMPLE: usize = 10;

/// The range finder: `Y = XΩ`, `Q = orth(Y)`, then [`POWER_ITERATIONS`] times `Z = XᵀQ`,
/// `Q_Z = orth(Z)`, `Y = X·Q_Z`, `Q = orth(Y)`; returns `Q` (`m × l`) and `B = QᵀX`
/// (`l × n`), whose SVD gives the leading triplets of `X` ([`lift`]).
///
/// `omega_t` is `Ωᵀ` (`l × n`); `x_mul(dst, Mᵀ)` writes `(XM)ᵀ` (`l × m`) for `Mᵀ` `l × n`;
/// `xt_mul(dst, Qᵀ)` writes `QᵀX` (`l × n`) for `Qᵀ` `l × m`; `orth_y(Yᵀ)` returns an
/// orthonormal basis `Q` (`m × l`) of the columns of `Y` (it may overwrite `Yᵀ`, e.g. to sum it
/// over processes first); `orth_z(Zᵀ)` replaces `Zᵀ` by `Q_Zᵀ`.
pub(crate) fn range_finder<T: Real>(
    omega_t: Mat<T>,
    m: usize,
    mut x_mul: impl FnMut(MatMut<'_, T>, MatRef<'_, T>),
    mut xt_mul: impl FnMut(MatMut<'_, T>, MatRef<'_, T>),
    mut orth_y: impl FnMut(&mut Mat<T>) -> Mat<T>,
    mut orth_z: impl FnMut(&mut Mat<T>),
) -> (Mat<T>, Mat<T>) {
    let (l, n) = omega_t.shape();
    let mut yt = Mat::<T>::zeros(l, m);
    x_mul(yt.as_mut(), omega_t.as_ref());
    drop(omega_t);
    let mut q = orth_y(&mut yt);
    let mut zt = Mat::<T>::zeros(l, n);
    let mut qt = Mat::<T>::zeros(l, m);
    for _ in 0..POWER_ITERATIONS {
        qt.copy_from(q.transpose());
        xt_mul(zt.as_mut(), qt.as_ref());
        orth_z(&mut zt);
        x_mul(yt.as_mut(), zt.as_ref());
        q = orth_y(&mut yt);
    }
    qt.copy_from(q.transpose());
    xt_mul(zt.as_mut(), qt.as_ref());
    (q, zt)
}

/// The rows `rows` of the `n × l` standard Gaussian test matrix `Ω` that
/// [`super::randomized_svd`] draws (column by column, faer's `Mat::from_fn` order), transposed
/// (`l × rows.len()`). The other rows' draws are skipped ([`Rng::skip_normals`]), so a process
/// advances `rng` exactly as the one-process draw does and its block equals that draw's rows.
pub(crate) fn gaussian_rows_t<T: Real>(rng: &mut Rng, n: usize, l: usize, rows: Range<usize>) -> Mat<T> {
    let mut omega_t = Mat::<T>::zeros(l, rows.len());
    for j in 0..l {
        rng.skip_normals(rows.start);
        for i in 0..rows.len() {
            omega_t[(j, i)] = T::from_f64(rng.normal());
        }
        rng.skip_normals(n.saturating_sub(rows.end));
    }
    omega_t
}

/// Leading `k` singular triplets of the data `X` (`m × n_total`, samples as columns) of which
/// this process holds the samples `part` (`x`, dense or sparse): the randomized path of
/// [`super::truncated_svd`] ([`super::randomized_svd`]) across processes. Returns `U` (`m × k`,
/// the same on every process), `s`, and this process's rows `V_r` of `V` (`n_local × k`).
///
/// With `l = k + 10` and `Ω_r` this process's rows of the one-process `Ω`
/// ([`gaussian_rows_t`]), the range finder ([`range_finder`]) runs with
/// - `Y = Σ_r X_rΩ_r` (`m × l`, summed over processes) and `Q = orth(Y)` by [`orthonormalize`]
///   (the summed `Y` is the same on every process, so is `Q`: replicated);
/// - `Z_r = X_rᵀQ` (`n_local × l`), rows of the tall `Z = XᵀQ`, orthonormalized across processes
///   by CholeskyQR2 ([`cholesky_qr2`]);
/// - `B_r = QᵀX_r` (`l × n_local`); the `l × l` Gram `Σ_r B_rB_rᵀ = U_B Σ² U_Bᵀ` (summed, then
///   eigen-decomposed on every process, [`svd_from_gram`]), `V_r = B_rᵀU_BΣ⁻¹`, `U = Q·U_B`.
///
/// Products with a sparse block are the SpMM kernels of [`super::spmm`]. Communication: one sum
/// of `l·m` numbers per product with `X`, one of `l²` per CholeskyQR pass, one for `B`'s Gram.
/// In one process (`part` not distributed) it is the same computation without the sums: it
/// equals [`super::randomized_svd`] up to rounding (same `Ω`, same subspace; the bases are
/// orthonormalized differently, so the columns of `U` and `V` may differ in sign).
pub(crate) fn randomized_svd_part<T: Real>(
    x: XRef<'_, T>,
    k: usize,
    rng: &mut Rng,
    par: Par,
    part: Part<'_>,
) -> Result<TruncatedSvd<T>> {
    let (m, n) = (x.nrows(), x.ncols());
    let m_total = if part.splits_features() { part.m_total } else { m };
    let k = k.min(m_total).min(part.n_total);
    let l = (k + OVERSAMPLE).min(m_total).min(part.n_total);
    let omega_t = gaussian_rows_t(rng, part.n_total, l, part.offset..part.offset + n);
    let (q, bt) = range_finder(
        omega_t,
        m,
        |dst, mt| x.atoms_cross(dst, mt, par),
        |mut dst, qt| {
            x.codes_cross(dst.as_mut(), qt, par);
            if part.splits_features() {
                // QᵀX_i = Σ_j Q_jᵀX_ij over the processes holding the other features.
                let mut b = dst.to_owned();
                part.sum_mat_features(&mut b);
                dst.copy_from(&b);
            }
        },
        |yt| {
            part.sum_mat_samples(yt);
            if part.splits_features() {
                // Y's rows (features) are spread over the grid row: CholeskyQR2 there too.
                cholesky_qr2(yt, |g| part.sum_mat_features(g), par);
                yt.transpose().to_owned()
            } else {
                orthonormalize(yt.transpose())
            }
        },
        |zt| cholesky_qr2(zt, |g| part.sum_mat_samples(g), par),
    );
    let mut g = Mat::<T>::zeros(l, l);
    gram(g.as_mut(), bt.as_ref(), par);
    part.sum_mat_samples(&mut g);
    let (u, s, v) = svd_from_gram(bt.as_ref(), g.as_ref(), k, par)?;
    Ok(lift(q.as_ref(), TruncatedSvd { u, s, v }, par))
}

/// Orthonormalizes the columns of the tall `Z` (`n_total × l`) whose rows are spread over the
/// processes, given this process's `Z_rᵀ` (`l × n_local`, replaced by `Q_rᵀ`): CholeskyQR2
/// (Fukaya, Nakatsukasa, Yanagisawa & Yamamoto 2014), twice `G = Σ_r Z_rᵀZ_r` (`l × l`, summed),
/// `G = RᵀR` (Cholesky), `Z_r ← Z_r R⁻¹`.
///
/// Why CholeskyQR2: a Householder QR of `Z` needs its rows on one process (or a TSQR reduction
/// tree of `l × l` triangles); CholeskyQR needs one `l × l` sum per pass and local GEMMs. One
/// pass leaves an orthogonality error `‖QᵀQ − I‖ ≈ ε·cond(Z)²`; the second pass, on a matrix
/// that is then well conditioned, brings it to `O(ε)` — orthogonal to rounding as long as
/// `cond(Z) ≲ ε^{-1/2}`: about 10⁷ in f64 but only ≈ 3·10³ in f32, so the Gram, the Cholesky
/// and the product are done in f64 whatever `T` is. `Z = XᵀQ` has `cond(Z) ≈ σ₁/σ_l` of `X`.
/// A column whose Cholesky pivot falls below `l·ε` of its squared norm (numerically in the
/// span of the previous ones, e.g. when `X` has rank below `l`) is dropped: it becomes zero, as
/// in [`orthonormalize`].
fn cholesky_qr2<T: Real>(zt: &mut Mat<T>, sum: impl Fn(&mut Mat<f64>), par: Par) {
    let (l, n) = zt.shape();
    let mut z = Mat::<f64>::from_fn(l, n, |i, j| zt[(i, j)].to_f64());
    let mut next = Mat::<f64>::zeros(l, n);
    let mut g = Mat::<f64>::zeros(l, l);
    for _ in 0..2 {
        gram(g.as_mut(), z.as_ref(), par);
        sum(&mut g);
        let r_inv = inverse_cholesky(g.as_ref());
        // (Z R⁻¹)ᵀ = R⁻ᵀ Zᵀ.
        matmul(
            next.as_mut(),
            Accum::Replace,
            r_inv.transpose(),
            z.as_ref(),
            1.0,
            par,
        );
        std::mem::swap(&mut z, &mut next);
    }
    for j in 0..n {
        for i in 0..l {
            zt[(i, j)] = T::from_f64(z[(i, j)]);
        }
    }
}

/// `R⁻¹` for the upper Cholesky factor `R` of the Gram `g` (`l × l`, `RᵀR = G`), restricted to
/// the columns kept: column `j` is dropped when its pivot `r_jj² = g_jj − Σ_{p<j} r_pj²` is at
/// most `l·ε·g_jj`; a dropped column's row and column of `R` and of `R⁻¹` are zero, so `Z·R⁻¹`
/// is the QR factor of the kept columns with zero columns in place of the dropped ones.
/// `O(l³)`, sequential (the same bits on every process).
fn inverse_cholesky(g: MatRef<'_, f64>) -> Mat<f64> {
    let l = g.nrows();
    let tol = l as f64 * f64::EPSILON;
    let mut r = Mat::<f64>::zeros(l, l);
    let mut kept = vec![false; l];
    for j in 0..l {
        for p in (0..j).filter(|&p| kept[p]) {
            let dot: f64 = (0..p).map(|q| r[(q, p)] * r[(q, j)]).sum();
            r[(p, j)] = (g[(p, j)] - dot) / r[(p, p)];
        }
        let pivot = g[(j, j)] - (0..j).map(|p| r[(p, j)] * r[(p, j)]).sum::<f64>();
        if pivot.is_finite() && pivot > tol * g[(j, j)] {
            r[(j, j)] = pivot.sqrt();
            kept[j] = true;
        }
    }
    // R·R⁻¹ = I column by column, bottom up.
    let mut inv = Mat::<f64>::zeros(l, l);
    for c in (0..l).filter(|&c| kept[c]) {
        inv[(c, c)] = r[(c, c)].recip();
        for i in (0..c).rev().filter(|&i| kept[i]) {
            let dot: f64 = (i + 1..=c).map(|p| r[(i, p)] * inv[(p, c)]).sum();
            inv[(i, c)] = -dot / r[(i, i)];
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_cholesky_orthonormalizes_and_drops_dependent_columns() {
        let mut rng = Rng::new(1);
        let mut z = Mat::<f64>::from_fn(6, 50, |_, _| rng.normal());
        // Row 3 of Zᵀ (column 3 of Z) depends on the first two.
        for j in 0..50 {
            z[(3, j)] = 2.0 * z[(0, j)] - z[(1, j)];
        }
        let mut q = z.clone();
        cholesky_qr2(&mut q, |_| {}, Par::Seq);
        let g = &q * q.transpose();
        for i in 0..6 {
            for j in 0..6 {
                let want = if i == j && i != 3 { 1.0 } else { 0.0 };
                assert!((g[(i, j)] - want).abs() < 1e-14, "QᵀQ[{i},{j}] = {}", g[(i, j)]);
            }
        }
        // Same span: Z = (Z Qᵀ) Q.
        let back = (&z * q.transpose()) * &q;
        assert!((&back - &z).norm_max() < 1e-12 * z.norm_max());
    }

    #[test]
    fn gaussian_rows_are_the_one_process_rows() {
        let mut rng = Rng::new(5);
        let whole = Mat::<f64>::from_fn(23, 4, |_, _| rng.normal());
        let after = rng.next_u64();
        let mut rng = Rng::new(5);
        let block = gaussian_rows_t::<f64>(&mut rng, 23, 4, 7..15);
        assert_eq!(rng.next_u64(), after);
        assert_eq!(block, whole.subrows(7, 8).transpose().to_owned());
    }
}
