//! Dense layer `y = W x + b` (METHODS.md §6.1) on a column-major batch: one GEMM forward (the
//! bias and a following activation applied in one pass after it), two backward (`∂W = δ·xᵀ`,
//! `∂x = Wᵀ·δ`); the bias gradient `∂b = Σ_j δ_j` by [`row_sums`] (or [`act_row_sums`], fused
//! with the following activation's backward pass).

use faer::{Accum, Par};

use super::{view, view_mut, Act, Layer};
use crate::linalg;
use crate::linalg::kernels::{simd_wide, Kernel};
use crate::real::Real;

/// `out ← act(W·x + b)` for a batch `x` (`n_in × batch`); `W` is `outputs × n_in`; `act` is
/// the activation layer that follows (`Identity` if none).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward<T: Real>(
    w: &[T],
    b: &[T],
    x: &[T],
    out: &mut [T],
    n_in: usize,
    batch: usize,
    act: Act,
    par: Par,
) {
    let outputs = b.len();
    linalg::matmul(
        view_mut(out, outputs, batch),
        Accum::Replace,
        view(w, outputs, n_in),
        view(x, n_in, batch),
        T::one(),
        par,
    );
    act.forward_bias_par(out, b, par);
}

/// Backward pass of `layer` for the output gradient `d` (`outputs × batch`) but its bias:
/// `∂W = δ·xᵀ` into `grads`, and `dx ← Wᵀ·δ` when `dx` is given.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward<T: Real>(
    layer: &Layer,
    w: &[T],
    x: &[T],
    d: &[T],
    grads: &mut [Vec<T>],
    dx: Option<&mut Vec<T>>,
    batch: usize,
    par: Par,
) {
    let (outputs, n_in) = (layer.output.len(), layer.input.len());
    let pw = layer.params[0];
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

/// Values per parallel task of [`row_sums`].
const BLOCK: usize = 1 << 14;

/// `s_r = Σ_j d_rj` for a column-major `rows × ·` buffer, accumulated in f64: partial sums over
/// fixed blocks of columns (computed on `par`'s threads), added in block order, so that the
/// result does not depend on the number of threads (`acc`: scratch of the partial sums).
pub(super) fn row_sums<T: Real>(d: &[T], rows: usize, s: &mut [T], acc: &mut Vec<f64>, par: Par) {
    use rayon::prelude::*;
    let (block, blocks) = blocks(d.len(), rows, acc);
    let partial = |(a, cols): (&mut [f64], &[T])| simd_wide(ColumnSums { cols, a });
    if matches!(par, Par::Seq) || blocks < 2 {
        acc.chunks_mut(rows.max(1)).zip(d.chunks(block)).for_each(partial);
    } else {
        acc.par_chunks_mut(rows.max(1))
            .zip(d.par_chunks(block))
            .for_each(partial);
    }
    combine(acc, rows, blocks, s);
}

/// The backward pass of activation `act` on `d` (`d ← d·act'(y)`, from its outputs `y`) and
/// then [`row_sums`] of the result, block by block while the block is in cache: the same bits as
/// the two passes one after the other.
pub(super) fn act_row_sums<T: Real>(
    act: Act,
    y: &[T],
    d: &mut [T],
    rows: usize,
    s: &mut [T],
    acc: &mut Vec<f64>,
    par: Par,
) {
    use rayon::prelude::*;
    let (block, blocks) = blocks(d.len(), rows, acc);
    let partial = |(a, (cols, y)): (&mut [f64], (&mut [T], &[T]))| {
        act.backward(y, cols);
        simd_wide(ColumnSums { cols, a });
    };
    if matches!(par, Par::Seq) || blocks < 2 {
        let blocks = d.chunks_mut(block).zip(y.chunks(block));
        acc.chunks_mut(rows.max(1)).zip(blocks).for_each(partial);
    } else {
        let blocks = d.par_chunks_mut(block).zip(y.par_chunks(block));
        acc.par_chunks_mut(rows.max(1)).zip(blocks).for_each(partial);
    }
    combine(acc, rows, blocks, s);
}

/// The blocks of whole columns of a `len`-value buffer of `rows` rows, their number, and `acc`
/// zeroed for one partial sum per row and block.
fn blocks(len: usize, rows: usize, acc: &mut Vec<f64>) -> (usize, usize) {
    let rows = rows.max(1);
    let block = BLOCK.div_ceil(rows) * rows;
    let blocks = len.div_ceil(block).max(1);
    acc.clear();
    acc.resize(rows * blocks, 0.0);
    (block, blocks)
}

/// Adds each column of `cols` (`a.len()` rows) to `a`, compiled for AVX2 or AVX-512 by
/// [`simd_wide`] (each row's sum in column order at every level).
struct ColumnSums<'a, T> {
    cols: &'a [T],
    a: &'a mut [f64],
}

impl<T: Real> Kernel for ColumnSums<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        let ColumnSums { cols, a } = self;
        for col in cols.chunks(a.len().max(1)) {
            for (a, &v) in a.iter_mut().zip(col) {
                *a += v.to_f64();
            }
        }
    }
}

/// `s_r` = the partial sums of row `r` added in block order.
fn combine<T: Real>(acc: &[f64], rows: usize, blocks: usize, s: &mut [T]) {
    for (r, s) in s.iter_mut().enumerate().take(rows) {
        let total = (0..blocks).fold(0.0, |t, blk| t + acc[blk * rows + r]);
        *s = T::from_f64(total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bias gradient's column sums give the same bits compiled for each instruction set the
    /// CPU has ([`simd_wide`] may pick any of them), and match a plain sum in column order.
    #[test]
    fn column_sums_are_the_same_at_every_instruction_level() {
        use crate::linalg::kernels::{simd_at, Level};
        let mut rng = crate::rng::Rng::new(2);
        let (rows, cols) = (37, 6);
        let d: Vec<f32> = (0..rows * cols).map(|_| (rng.uniform() - 0.5) as f32).collect();
        let plain: Vec<u64> = (0..rows)
            .map(|r| {
                (0..cols)
                    .fold(0.0f64, |s, c| s + d[c * rows + r] as f64)
                    .to_bits()
            })
            .collect();
        for level in Level::available() {
            let mut a = vec![0.0f64; rows];
            simd_at(level, ColumnSums { cols: &d, a: &mut a });
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                plain,
                "{level:?}"
            );
        }
    }
}
