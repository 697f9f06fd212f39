//! Products with a sparse matrix (METHODS.md §11.1): the one SpMM kernel the sparse NMF solvers
//! use, and the randomized truncated SVD of a sparse matrix (for NNDSVD).
//!
//! [`spmm_rows`] computes `dst[:, r] = Σ_c a_rc · f[:, c]` for a CSR `a`: with `a` the samples
//! (`n × m`) and `f = Wᵀ` it is `P = WᵀX`; with `a` the transpose (`m × n`) and `f = H` it is
//! `R = HXᵀ`. `O(nnz·k)`; every output column is summed by one thread in the stored order, and
//! columns are split into fixed chunks, so the bits do not depend on the thread count.

use faer::{Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::kernels::{prefetch, simd, Kernel};
use super::range::{range_finder, OVERSAMPLE};
use super::{lift, truncated_svd, TruncatedSvd};
use crate::data::Csr;
use crate::error::Result;
use crate::nmf::compress::orthonormalize;
use crate::real::Real;
use crate::rng::Rng;

/// Output columns per parallel task.
const CHUNK: usize = 128;

/// `dst ← F·aᵀ`, i.e. `dst[:, r] = Σ_{c ∈ row r} a_rc · f[:, c]` (`dst` is `k × a.nrows()`,
/// `f` is `k × a.ncols()`); `O(nnz·k)` multiply-adds.
pub(crate) fn spmm_rows<T: Real>(dst: MatMut<'_, T>, f: MatRef<'_, T>, a: &Csr<T>, par: Par) {
    spmm_rows_with(dst, f, a, a.parts().2, par)
}

/// [`spmm_rows`] with `a`'s structure and the values `vals` (one per stored entry, in `a`'s
/// order): the products with `X ⊘ V` of KL's multiplicative updates.
pub(crate) fn spmm_rows_with<T: Real>(
    mut dst: MatMut<'_, T>,
    f: MatRef<'_, T>,
    a: &Csr<T>,
    vals: &[T],
    par: Par,
) {
    debug_assert_eq!(vals.len(), a.nnz());
    let (indptr, indices, _) = a.parts();
    debug_assert_eq!(
        (dst.nrows(), dst.ncols(), f.ncols()),
        (f.nrows(), a.nrows(), a.ncols())
    );
    let owned;
    let f = match f.try_as_col_major() {
        Some(c) => c,
        None => {
            owned = f.to_owned();
            owned
                .as_ref()
                .try_as_col_major()
                .unwrap_or_else(|| unreachable!("an owned Mat is column-major"))
        }
    };
    let run = |r0: usize, mut chunk: MatMut<'_, T>| {
        for rr in 0..chunk.ncols() {
            let mut col = chunk.as_mut().col_mut(rr);
            let Some(out) = col.as_mut().try_as_col_major_mut() else {
                unreachable!("workspaces are column-major")
            };
            let r = r0 + rr;
            let end = indptr[(r + 1 + ROWS_AHEAD).min(a.nrows())];
            let row = Row {
                indices,
                vals,
                range: indptr[r]..indptr[r + 1],
                end,
            };
            simd(Gather {
                out: out.as_slice_mut(),
                f,
                row,
            });
        }
    };
    if matches!(par, Par::Seq) {
        run(0, dst.as_mut());
    } else {
        dst.par_col_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(t, c)| run(t * CHUNK, c));
    }
}

/// `out = Σ_{p ∈ range} vals[p] · f[:, indices[p]]` for one row of a CSR matrix (its stored
/// entries `range`), each output value summed in stored order, prefetching the columns [`AHEAD`]
/// entries on (up to `end`, a few rows on).
struct Gather<'a, T: Real> {
    out: &'a mut [T],
    f: ColMajor<'a, T>,
    row: Row<'a, T>,
}

/// The stored entries `range` of one row of a CSR matrix (`indices`, `vals`), and `end`, the
/// first entry [`Gather`] does not prefetch.
struct Row<'a, T> {
    indices: &'a [u32],
    vals: &'a [T],
    range: std::ops::Range<usize>,
    end: usize,
}

/// A column-major matrix whose columns are slices.
type ColMajor<'a, T> = MatRef<'a, T, usize, usize, faer::ContiguousFwd>;

impl<T: Real> Kernel for Gather<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        let Row {
            indices,
            vals,
            range,
            end,
        } = self.row;
        self.out.fill(T::zero());
        let col = |p: usize| self.f.col(indices[p] as usize).as_slice();
        let ahead = |p: usize| {
            if p + AHEAD < end {
                prefetch(col(p + AHEAD));
            }
        };
        let mut p = range.start;
        while p + UNROLL <= range.end {
            (p..p + UNROLL).for_each(ahead);
            axpy4(
                self.out,
                [vals[p], vals[p + 1], vals[p + 2], vals[p + 3]],
                [col(p), col(p + 1), col(p + 2), col(p + 3)],
            );
            p += UNROLL;
        }
        for p in p..range.end {
            ahead(p);
            axpy(self.out, vals[p], col(p));
        }
    }
}

/// Stored entries [`Gather`] adds to its output per pass over it ([`axpy4`]).
const UNROLL: usize = 4;

/// `out += v₀s₀ + v₁s₁ + v₂s₂ + v₃s₃`, added one term after the other (the bits of four
/// [`axpy`]s) with one load and one store of `out` instead of four: the gather's loop is bound
/// by its loads and stores of `out`, not by the arithmetic or the columns' reads.
#[inline(always)]
fn axpy4<T: Real>(out: &mut [T], v: [T; UNROLL], s: [&[T]; UNROLL]) {
    let n = out.len();
    let (s0, s1, s2, s3) = (&s[0][..n], &s[1][..n], &s[2][..n], &s[3][..n]);
    for i in 0..n {
        out[i] = (((out[i] + v[0] * s0[i]) + v[1] * s1[i]) + v[2] * s2[i]) + v[3] * s3[i];
    }
}

/// `out[:, c] += a_rc · f[:, r]` for the rows `rows` of `a` (`out` is `k × a.ncols()`, column by
/// column), in row order; prefetches the output columns [`AHEAD`] entries on.
struct Scatter<'a, T: Real> {
    out: &'a mut [T],
    f: ColMajor<'a, T>,
    a: &'a Csr<T>,
    rows: std::ops::Range<usize>,
}

impl<T: Real> Kernel for Scatter<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        let (indptr, indices, values) = self.a.parts();
        let k = self.f.nrows();
        let end = indptr[self.rows.end];
        for r in self.rows {
            let src = self.f.col(r).as_slice();
            for p in indptr[r]..indptr[r + 1] {
                if p + AHEAD < end {
                    let ahead = indices[p + AHEAD] as usize;
                    prefetch(&self.out[ahead * k..(ahead + 1) * k]);
                }
                let c = indices[p] as usize;
                axpy(&mut self.out[c * k..(c + 1) * k], values[p], src);
            }
        }
    }
}

/// Rows of `a` whose entries [`Gather`] may prefetch beyond the current one.
const ROWS_AHEAD: usize = 1;

/// Stored entries between a prefetch and its use: each entry reads (or, in the scatter,
/// updates) a `k`-column at a random address, so the kernels ask for the column `AHEAD`
/// entries on while they work on the current one.
const AHEAD: usize = 8;

/// Row blocks of [`spmm_scatter`]: each is scattered into its own `k × m` partial by one task,
/// and the partials are added in block order, so the bits depend on this constant only.
pub(crate) const SCATTER_BLOCKS: usize = 4;

/// `dst ← F·a`, i.e. `dst[:, c] = Σ_r a_rc · f[:, r]` (`dst` is `k × a.ncols()`, `f` is
/// `k × a.nrows()`): `R = HXᵀ` from the samples' rows without their transpose. Each row scatters
/// `a_rc · f[:, r]` into column `c` of a `k × m` partial (the partial, not `f`, takes the random
/// accesses: it is `m/n` times smaller than `f` on a corpus); the rows are cut into
/// [`SCATTER_BLOCKS`] fixed blocks, one partial each, added in block order (same bits for any
/// thread count). Memory: `SCATTER_BLOCKS − 1` extra `k × m` partials.
pub(crate) fn spmm_scatter<T: Real>(mut dst: MatMut<'_, T>, f: MatRef<'_, T>, a: &Csr<T>, par: Par) {
    let (k, n, m) = (f.nrows(), a.nrows(), a.ncols());
    debug_assert_eq!((dst.nrows(), dst.ncols(), f.ncols()), (k, m, n));
    let owned;
    let f = match f.try_as_col_major() {
        Some(c) => c,
        None => {
            owned = f.to_owned();
            owned
                .as_ref()
                .try_as_col_major()
                .unwrap_or_else(|| unreachable!("an owned Mat is column-major"))
        }
    };
    let block = n.div_ceil(SCATTER_BLOCKS).max(1);
    let scatter = |b: usize| -> Vec<T> {
        let mut out = vec![T::zero(); k * m];
        let rows = (b * block).min(n)..((b + 1) * block).min(n);
        simd(Scatter {
            out: &mut out,
            f,
            a,
            rows,
        });
        out
    };
    let parts: Vec<Vec<T>> = if matches!(par, Par::Seq) {
        (0..SCATTER_BLOCKS).map(scatter).collect()
    } else {
        (0..SCATTER_BLOCKS).into_par_iter().map(scatter).collect()
    };
    for c in 0..m {
        for i in 0..k {
            let mut v = T::zero();
            for p in &parts {
                v += p[c * k + i];
            }
            dst[(i, c)] = v;
        }
    }
}

#[inline(always)]
fn axpy<T: Real>(out: &mut [T], v: T, src: &[T]) {
    for (o, &s) in out.iter_mut().zip(src) {
        *o += v * s;
    }
}

/// `Σ_{(r,c) stored} a_rc · (FᵀG)_{cr}`-style sums: `Σ_r Σ_{c ∈ row r} a_rc ⟨f[:, c], g[:, r]⟩`
/// with `f` `k × a.ncols()` and `g` `k × a.nrows()`, in f64, row partial sums added in row order
/// (thread-independent). With `a` = samples, `f = Wᵀ`, `g = H`: `⟨X, WH⟩`.
pub(crate) fn inner_at_nonzeros<T: Real>(a: &Csr<T>, f: MatRef<'_, T>, g: MatRef<'_, T>, par: Par) -> f64 {
    let per_row = |r: usize| -> f64 {
        let (cols, vals) = a.row(r);
        let gr = g.col(r);
        let mut s = 0.0;
        for (&c, &v) in cols.iter().zip(vals) {
            let fc = f.col(c as usize);
            let mut d = 0.0f64;
            for i in 0..f.nrows() {
                d += fc[i].to_f64() * gr[i].to_f64();
            }
            s += v.to_f64() * d;
        }
        s
    };
    let parts: Vec<f64> = if matches!(par, Par::Seq) {
        (0..a.nrows()).map(per_row).collect()
    } else {
        (0..a.nrows()).into_par_iter().map(per_row).collect()
    };
    parts.into_iter().sum()
}

/// Truncated SVD of `a` (`n × m`, samples as rows) in the samples-as-columns convention of
/// [`truncated_svd`]: `Xᵀ = U diag(s) Vᵀ` with `U` `m × k`, `V` `n × k`, by the randomized range
/// finder of that function's large-matrix path ([`super::range::range_finder`], Halko et al.:
/// `l = k + 10` Gaussian columns, 4 power iterations, re-orthonormalized after each product),
/// every product with `X` an SpMM.
/// The bases are orthonormalized by [`crate::nmf::compress`]'s sequential Gram–Schmidt (the same
/// bits for any thread count). `at` is the transpose of `a`. `Ωᵀ` is drawn `l × n` column by
/// column, i.e. `Ω` row by row — the transpose of [`super::randomized_svd`]'s order (and of the
/// distributed [`super::range::randomized_svd_part`]'s), kept so that sparse starts keep their
/// bits.
pub(crate) fn truncated_svd_sparse<T: Real>(
    a: &Csr<T>,
    at: &Csr<T>,
    k: usize,
    rng: &mut Rng,
    par: Par,
) -> Result<TruncatedSvd<T>> {
    let (n, m) = (a.nrows(), a.ncols());
    let k = k.min(m).min(n);
    let l = (k + OVERSAMPLE).min(m).min(n);
    // Row-oriented workspaces (l × ·) so that the SpMM kernel writes contiguous columns:
    // (XΩ)ᵀ = Ωᵀ·Xᵀ with X = aᵀ (m × n): column c of Yᵀ sums columns of Ωᵀ over row c of `at`.
    let omega_t = Mat::<T>::from_fn(l, n, |_, _| T::from_f64(rng.normal()));
    let (q, b) = range_finder(
        omega_t,
        m,
        |dst, mt| spmm_rows(dst, mt, at, par), // (X·M)ᵀ
        |dst, qt| spmm_rows(dst, qt, a, par),  // (XᵀQ)ᵀ
        |yt| orthonormalize(yt.transpose()),
        |zt| *zt = orthonormalize(zt.transpose()).transpose().to_owned(),
    );
    // B = QᵀX (l × n), then the SVD of B through its l × l Gram.
    let small = truncated_svd(b.as_ref(), k, rng, par)?;
    Ok(lift(q.as_ref(), small, par))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sparse(n: usize, m: usize, seed: u64) -> Csr<f64> {
        let mut rng = Rng::new(seed);
        let x = Mat::<f64>::from_fn(n, m, |_, _| {
            let u = rng.uniform();
            if u < 0.2 {
                1.0 + 3.0 * u
            } else {
                0.0
            }
        });
        Csr::from_dense(x.as_ref()).unwrap()
    }

    #[test]
    fn spmm_matches_dense_gemm_both_orientations() {
        let a = sparse(300, 70, 1);
        let x = a.to_dense().unwrap(); // n × m
        let at = a.transpose().unwrap();
        let mut rng = Rng::new(2);
        let wt = Mat::<f64>::from_fn(6, 70, |_, _| rng.uniform());
        let h = Mat::<f64>::from_fn(6, 300, |_, _| rng.uniform());
        let mut p = Mat::zeros(6, 300);
        spmm_rows(p.as_mut(), wt.as_ref(), &a, Par::rayon(2));
        let dense_p = &wt * x.transpose();
        assert!((&p - &dense_p).norm_max() < 1e-12 * dense_p.norm_max());
        let mut r = Mat::zeros(6, 70);
        spmm_rows(r.as_mut(), h.as_ref(), &at, Par::Seq);
        let dense_r = &h * &x;
        assert!((&r - &dense_r).norm_max() < 1e-12 * dense_r.norm_max());
        let ip = inner_at_nonzeros(&a, wt.as_ref(), h.as_ref(), Par::rayon(2));
        let dense_ip: f64 = (0..300)
            .map(|i| {
                (0..70)
                    .map(|j| x[(i, j)] * (wt.col(j).transpose() * h.col(i)))
                    .sum::<f64>()
            })
            .sum();
        assert!((ip - dense_ip).abs() < 1e-10 * dense_ip.abs());
    }

    #[test]
    fn scatter_matches_dense_gemm_and_keeps_its_bits_with_threads() {
        for (n, m) in [(300, 70), (3, 70), (1, 5)] {
            let a = sparse(n, m, 5);
            let x = a.to_dense().unwrap();
            let mut rng = Rng::new(6);
            let h = Mat::<f64>::from_fn(6, n, |_, _| rng.uniform());
            let (mut r1, mut r2) = (Mat::zeros(6, m), Mat::zeros(6, m));
            spmm_scatter(r1.as_mut(), h.as_ref(), &a, Par::Seq);
            crate::linalg::with_threads(2, || spmm_scatter(r2.as_mut(), h.as_ref(), &a, Par::rayon(2)))
                .unwrap();
            assert_eq!(r1, r2, "{n} × {m}");
            let dense_r = &h * &x;
            assert!(
                (&r1 - &dense_r).norm_max() <= 1e-12 * dense_r.norm_max().max(1.0),
                "{n} × {m}"
            );
        }
    }

    #[test]
    fn spmm_same_bits_one_and_two_threads() {
        let a = sparse(1000, 90, 3).cast::<f32>();
        let mut rng = Rng::new(4);
        let wt = Mat::<f32>::from_fn(7, 90, |_, _| rng.uniform() as f32);
        let mut p1 = Mat::zeros(7, 1000);
        let mut p2 = Mat::zeros(7, 1000);
        spmm_rows(p1.as_mut(), wt.as_ref(), &a, Par::Seq);
        crate::linalg::with_threads(2, || spmm_rows(p2.as_mut(), wt.as_ref(), &a, Par::rayon(2))).unwrap();
        assert_eq!(p1, p2);
    }

    #[test]
    fn sparse_svd_recovers_leading_singular_values() {
        // Sparse rank-5 data (sparse factors): the leading triplets are exact.
        let (c, w) = (
            sparse(200, 5, 5).to_dense().unwrap(),
            sparse(5, 60, 6).to_dense().unwrap(),
        );
        let a = Csr::from_dense((&c * &w).as_ref()).unwrap();
        assert!(a.density() < 0.9);
        let at = a.transpose().unwrap();
        let x = a.to_dense().unwrap();
        let dense = truncated_svd(x.transpose(), 5, &mut Rng::new(0), Par::Seq).unwrap();
        let sp = truncated_svd_sparse(&a, &at, 5, &mut Rng::new(0), Par::Seq).unwrap();
        for j in 0..5 {
            let (d, s) = (dense.s[j], sp.s[j]);
            assert!((d - s).abs() < 1e-3 * dense.s[0], "σ{j}: {d} vs {s}");
        }
        // U diag(s) Vᵀ reproduces the projection of X on the leading subspace: check ‖Xᵀ v_j‖ = s_j.
        for j in 0..5 {
            let xv = x.transpose() * sp.v.col(j);
            assert!((xv.norm_l2() - sp.s[j]).abs() < 1e-3 * sp.s[0]);
        }
    }
}
