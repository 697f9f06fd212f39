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
    fill_bias(out, b);
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
    row_sums(d, outputs, &mut grads[pb], acc);
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

/// Sets every column of `out` (length a multiple of `b.len()`) to `b`.
pub(super) fn fill_bias<T: Real>(out: &mut [T], b: &[T]) {
    for col in out.chunks_mut(b.len()) {
        col.copy_from_slice(b);
    }
}

/// `s_r = Σ_j d_rj` for a column-major `rows × ·` buffer, accumulated in f64 (in `acc`).
pub(super) fn row_sums<T: Real>(d: &[T], rows: usize, s: &mut [T], acc: &mut Vec<f64>) {
    acc.clear();
    acc.resize(rows, 0.0);
    for col in d.chunks(rows) {
        for (a, &v) in acc.iter_mut().zip(col) {
            *a += v.to_f64();
        }
    }
    for (s, &a) in s.iter_mut().zip(acc.iter()) {
        *s = T::from_f64(a);
    }
}
