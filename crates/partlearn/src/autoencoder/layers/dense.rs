//! Dense layer `y = W x + b` (METHODS.md §6.1) on a column-major batch: one GEMM forward, two
//! backward (`∂W = δ·xᵀ`, `∂x = Wᵀ·δ`).

use faer::{Accum, Par};

use super::{view, view_mut, Layer};
use crate::linalg;
use crate::real::Real;

/// `out ← W·x + b` for a batch `x` (`n_in × batch`); `W` is `outputs × n_in`.
pub(super) fn forward<T: Real>(
    w: &[T],
    b: &[T],
    x: &[T],
    out: &mut [T],
    n_in: usize,
    batch: usize,
    par: Par,
) {
    let outputs = b.len();
    fill_bias(out, b, par);
    linalg::matmul(
        view_mut(out, outputs, batch),
        Accum::Add,
        view(w, outputs, n_in),
        view(x, n_in, batch),
        T::one(),
        par,
    );
}

/// Backward pass of `layer` for the output gradient `d` (`outputs × batch`): `∂b = Σ_j δ_j`,
/// `∂W = δ·xᵀ` into `grads`, and `dx ← Wᵀ·δ` when `dx` is given (`acc`: scratch of the sums).
#[allow(clippy::too_many_arguments)]
pub(super) fn backward<T: Real>(
    layer: &Layer,
    w: &[T],
    x: &[T],
    d: &[T],
    grads: &mut [Vec<T>],
    dx: Option<&mut Vec<T>>,
    acc: &mut Vec<f64>,
    batch: usize,
    par: Par,
) {
    let (outputs, n_in) = (layer.output.len(), layer.input.len());
    let (pw, pb) = (layer.params[0], layer.params[1]);
    row_sums(d, outputs, &mut grads[pb], acc, par);
    linalg::matmul(
        view_mut(&mut grads[pw], outputs, n_in),
        Accum::Replace,
        view(d, outputs, batch),
        view(x, n_in, batch).transpose(),
        T::one(),
        par,
    );
    if let Some(dx) = dx {
        dx.resize(n_in * batch, T::zero());
        linalg::matmul(
            view_mut(dx, n_in, batch),
            Accum::Replace,
            view(w, outputs, n_in).transpose(),
            view(d, outputs, batch),
            T::one(),
            par,
        );
    }
}

/// Values per parallel task of [`fill_bias`] and [`row_sums`].
const BLOCK: usize = 1 << 14;

/// Sets every column of `out` (length a multiple of `b.len()`) to `b`, in blocks of columns on
/// `par`'s threads when `out` is large.
pub(super) fn fill_bias<T: Real>(out: &mut [T], b: &[T], par: Par) {
    use rayon::prelude::*;
    let rows = b.len().max(1);
    let fill = |block: &mut [T]| {
        for col in block.chunks_mut(rows) {
            for (o, &v) in col.iter_mut().zip(b) {
                *o = v;
            }
        }
    };
    let block = BLOCK.div_ceil(rows) * rows;
    if matches!(par, Par::Seq) || out.len() < 2 * block {
        fill(out);
    } else {
        out.par_chunks_mut(block).for_each(fill);
    }
}

/// `s_r = Σ_j d_rj` for a column-major `rows × ·` buffer, accumulated in f64: partial sums over
/// fixed blocks of columns (computed on `par`'s threads), added in block order, so that the
/// result does not depend on the number of threads (`acc`: scratch of the partial sums).
pub(super) fn row_sums<T: Real>(d: &[T], rows: usize, s: &mut [T], acc: &mut Vec<f64>, par: Par) {
    use rayon::prelude::*;
    let rows = rows.max(1);
    let block = BLOCK.div_ceil(rows) * rows;
    let blocks = d.len().div_ceil(block).max(1);
    acc.clear();
    acc.resize(rows * blocks, 0.0);
    let partial = |(a, cols): (&mut [f64], &[T])| {
        for col in cols.chunks(rows) {
            for (a, &v) in a.iter_mut().zip(col) {
                *a += v.to_f64();
            }
        }
    };
    if matches!(par, Par::Seq) || blocks < 2 {
        acc.chunks_mut(rows).zip(d.chunks(block)).for_each(partial);
    } else {
        acc.par_chunks_mut(rows)
            .zip(d.par_chunks(block))
            .for_each(partial);
    }
    for (r, s) in s.iter_mut().enumerate().take(rows) {
        let total = (0..blocks).fold(0.0, |t, blk| t + acc[blk * rows + r]);
        *s = T::from_f64(total);
    }
}
