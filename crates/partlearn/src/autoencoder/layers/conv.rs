//! 2-D convolution with TensorFlow's 'same' padding (METHODS.md §6.6) as im2col + one GEMM:
//! the output `F × (H_o·W_o·B)` of the GEMM is already the next layer's channels-last batch.

use faer::{Accum, Par};
use rayon::prelude::*;

use super::{view, view_mut, Act, Shape};
use crate::linalg;
use crate::real::Real;

/// Padding before the first row for TensorFlow 'same' padding.
fn same_pad(input: usize, out: usize, kernel: usize, stride: usize) -> usize {
    let total = ((out - 1) * stride + kernel).saturating_sub(input);
    total / 2
}

/// Geometry of a 'same' convolution.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConvGeo {
    input: Shape,
    output: Shape,
    kernel: usize,
    stride: usize,
    pad_h: usize,
    pad_w: usize,
}

impl ConvGeo {
    pub(super) fn new(input: Shape, output: Shape, kernel: usize, stride: usize) -> ConvGeo {
        ConvGeo {
            input,
            output,
            kernel,
            stride,
            pad_h: same_pad(input.h, output.h, kernel, stride),
            pad_w: same_pad(input.w, output.w, kernel, stride),
        }
    }
    /// Length of one patch: `kernel²·channels`.
    fn k(&self) -> usize {
        self.kernel * self.kernel * self.input.c
    }
    /// Output positions per sample.
    fn positions(&self) -> usize {
        self.output.h * self.output.w
    }
    /// Input pixel index of kernel tap `(ky, kx)` at output `(oy, ox)`, if inside the image.
    #[inline]
    fn tap(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
        let iy = (oy * self.stride + ky).checked_sub(self.pad_h)?;
        let ix = (ox * self.stride + kx).checked_sub(self.pad_w)?;
        (iy < self.input.h && ix < self.input.w).then_some(iy * self.input.w + ix)
    }
}

/// Patches of every output position as columns: `cols` is `k × (positions·batch)`, patch entry
/// `(ky·kernel + kx)·C + c`; taps outside the image are zero. Parallel over samples.
fn im2col<T: Real>(x: &[T], batch: usize, g: &ConvGeo, cols: &mut Vec<T>) {
    let (k, c, per) = (g.k(), g.input.c, g.positions() * g.k());
    cols.resize(per * batch, T::zero());
    let in_len = g.input.len();
    cols.par_chunks_mut(per)
        .zip(x.par_chunks(in_len))
        .for_each(|(dst, src)| {
            for oy in 0..g.output.h {
                for ox in 0..g.output.w {
                    let col = &mut dst[(oy * g.output.w + ox) * k..][..k];
                    for ky in 0..g.kernel {
                        for kx in 0..g.kernel {
                            let seg = &mut col[(ky * g.kernel + kx) * c..][..c];
                            // Element loops, not `copy_from_slice`: a segment is one
                            // pixel's channels (1 or 64 values), too short for a memcpy call.
                            match g.tap(oy, ox, ky, kx) {
                                Some(p) => {
                                    for (d, &v) in seg.iter_mut().zip(&src[p * c..][..c]) {
                                        *d = v;
                                    }
                                }
                                None => seg.iter_mut().for_each(|d| *d = T::zero()),
                            }
                        }
                    }
                }
            }
        });
}

/// Adjoint of [`im2col`]: sums each patch gradient back into the input gradient `dx`.
fn col2im<T: Real>(cols: &[T], batch: usize, g: &ConvGeo, dx: &mut Vec<T>) {
    let (k, c, per) = (g.k(), g.input.c, g.positions() * g.k());
    let in_len = g.input.len();
    // Zeroed by each sample's task (in parallel), not by `resize`.
    dx.resize(in_len * batch, T::zero());
    dx.par_chunks_mut(in_len)
        .zip(cols.par_chunks(per))
        .for_each(|(dst, src)| {
            dst.iter_mut().for_each(|d| *d = T::zero());
            for oy in 0..g.output.h {
                for ox in 0..g.output.w {
                    let col = &src[(oy * g.output.w + ox) * k..][..k];
                    for ky in 0..g.kernel {
                        for kx in 0..g.kernel {
                            if let Some(p) = g.tap(oy, ox, ky, kx) {
                                let seg = &col[(ky * g.kernel + kx) * c..][..c];
                                for (d, &v) in dst[p * c..][..c].iter_mut().zip(seg) {
                                    *d = *d + v;
                                }
                            }
                        }
                    }
                }
            }
        });
}

/// `out ← act(W·cols + b)` with `cols` the im2col patches of `x` (kept for [`backward`]); `W`
/// is `filters × kernel²·C`; `act` is the activation layer that follows (`Identity` if none).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward<T: Real>(
    geo: &ConvGeo,
    w: &[T],
    b: &[T],
    x: &[T],
    batch: usize,
    cols: &mut Vec<T>,
    out: &mut [T],
    act: Act,
    par: Par,
) {
    let filters = geo.output.c;
    im2col(x, batch, geo, cols);
    linalg::matmul(
        view_mut(out, filters, geo.positions() * batch),
        Accum::Replace,
        view(w, filters, geo.k()),
        view(cols, geo.k(), geo.positions() * batch),
        T::one(),
        par,
    );
    act.forward_bias_par(out, b, par);
}

/// Backward pass for the output gradient `d` (`filters × positions·batch`) but the bias:
/// `∂W = δ·colsᵀ` into `grads[pw]`; when `dx` is given, `Wᵀ·δ` (written over the patches
/// `cols`, no longer needed) summed back into the input gradient by [`col2im`].
#[allow(clippy::too_many_arguments)]
pub(super) fn backward<T: Real>(
    geo: &ConvGeo,
    pw: usize,
    w: &[T],
    d: &[T],
    cols: &mut [T],
    grads: &mut [Vec<T>],
    dx: Option<&mut Vec<T>>,
    batch: usize,
    par: Par,
) {
    let filters = geo.output.c;
    let np = geo.positions() * batch;
    linalg::matmul(
        view_mut(&mut grads[pw], filters, geo.k()),
        Accum::Replace,
        view(d, filters, np),
        view(cols, geo.k(), np).transpose(),
        T::one(),
        par,
    );
    if let Some(dx) = dx {
        // The columns are not needed any more: reuse them for their gradient.
        linalg::matmul(
            view_mut(cols, geo.k(), np),
            Accum::Replace,
            view(w, filters, geo.k()).transpose(),
            view(d, filters, np),
            T::one(),
            par,
        );
        col2im(cols, batch, geo, dx);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cache, LayerSpec, Net};
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn same_padding_matches_tensorflow_shapes() {
        let s = LayerSpec::Conv2d {
            filters: 64,
            kernel: 4,
            stride: 2,
        }
        .out_shape(Shape { h: 28, w: 28, c: 1 })
        .unwrap();
        assert_eq!(s, Shape { h: 14, w: 14, c: 64 });
        assert_eq!(same_pad(28, 14, 4, 2), 1);
        assert_eq!(same_pad(14, 7, 4, 2), 1);
        assert_eq!(same_pad(7, 7, 3, 1), 1);
    }

    /// A convolution equals the direct definition Σ w·x over the kernel taps.
    #[test]
    fn convolution_equals_direct_sum() {
        let input = Shape { h: 5, w: 5, c: 2 };
        let spec = LayerSpec::Conv2d {
            filters: 3,
            kernel: 3,
            stride: 2,
        };
        let mut rng = Rng::new(3);
        let net = Net::<f64>::new(input, &[spec], &mut rng).unwrap();
        let x: Vec<f64> = (0..input.len()).map(|_| rng.uniform()).collect();
        let mut cache = Cache::default();
        net.forward(&x, 1, true, &mut cache, Par::Seq);
        let out = cache.outs[0].clone();
        let w = &net.params[0].data;
        let (oh, ow) = (3, 3);
        for oy in 0..oh {
            for ox in 0..ow {
                for f in 0..3 {
                    let mut s = 0.0;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                            if iy < 0 || ix < 0 || iy >= 5 || ix >= 5 {
                                continue;
                            }
                            for c in 0..2 {
                                let xi = x[(iy as usize * 5 + ix as usize) * 2 + c];
                                s += w[f + 3 * ((ky * 3 + kx) * 2 + c)] * xi;
                            }
                        }
                    }
                    let got = out[(oy * ow + ox) * 3 + f];
                    assert!((got - s).abs() < 1e-12, "({oy},{ox},{f}): {got} vs {s}");
                }
            }
        }
    }
}
