//! Batch normalization over the channels of channels-last data (METHODS.md §6.6, Keras'
//! `BatchNormalization`): batch statistics per channel over the batch and positions in training,
//! running statistics in inference, and their update `r ← m·r + (1−m)·batch`.

use faer::Par;
use rayon::prelude::*;

use super::{Scratch, Tensor};
use crate::real::Real;

/// Per-channel mean and (biased) variance of a batch.
pub(super) type ChannelStats = (Vec<f64>, Vec<f64>);

/// `y = γ·(x − μ)·inv + β` with `inv = 1/sqrt(σ² + eps)` per channel (`c = γ.len()`): `μ, σ²` of
/// the batch `x` when `train` (kept in `stats` for [`update_running`]), else the `running`
/// `(mean, variance)`. Keeps `x̂ = (x − μ)·inv` in `xhat` and `inv` in `inv_std` for
/// [`backward`].
#[allow(clippy::too_many_arguments)]
pub(super) fn forward<T: Real>(
    (gamma, beta): (&[T], &[T]),
    running: (&[T], &[T]),
    eps: f64,
    train: bool,
    x: &[T],
    out: &mut [T],
    (xhat, inv_std, stats): (&mut Vec<T>, &mut Vec<T>, &mut ChannelStats),
    scratch: &mut Scratch<T>,
    par: Par,
) {
    let c = gamma.len();
    let (mean, var): (&[f64], &[f64]) = if train {
        channel_stats(x, c, stats);
        (&stats.0, &stats.1)
    } else {
        scratch.f.clear();
        scratch.f.extend(running.0.iter().map(|&v| v.to_f64()));
        scratch.g.clear();
        scratch.g.extend(running.1.iter().map(|&v| v.to_f64()));
        (&scratch.f, &scratch.g)
    };
    inv_std.clear();
    inv_std.extend(var.iter().map(|&v| T::from_f64(1.0 / (v + eps).sqrt())));
    scratch.t.clear();
    scratch.t.extend(mean.iter().map(|&v| T::from_f64(v)));
    let (inv, mean) = (&inv_std[..], &scratch.t[..]);
    xhat.resize(x.len(), T::zero());
    let normalize = |((xh, o), xi): ((&mut [T], &mut [T]), &[T])| {
        for ((xh, o), xi) in xh.chunks_mut(c).zip(o.chunks_mut(c)).zip(xi.chunks(c)) {
            for ch in 0..c {
                let v = (xi[ch] - mean[ch]) * inv[ch];
                xh[ch] = v;
                o[ch] = gamma[ch] * v + beta[ch];
            }
        }
    };
    let block = columns_block(c);
    if matches!(par, Par::Seq) || x.len() < 2 * block {
        normalize(((xhat, out), x));
    } else {
        xhat.par_chunks_mut(block)
            .zip(out.par_chunks_mut(block))
            .zip(x.par_chunks(block))
            .for_each(normalize);
    }
}

/// Values per parallel task of the elementwise passes: whole columns of `c` channels.
fn columns_block(c: usize) -> usize {
    (1usize << 14).div_ceil(c.max(1)) * c.max(1)
}

/// Backward pass for the output gradient `d`: `∂γ = Σ δ·x̂`, `∂β = Σ δ` (accumulated in f64) into
/// `grads[pg]`, `grads[pbeta]`, and, when `dx` is given, the training-mode input gradient
/// `dx = γ·inv/N·(N·δ − Σδ − x̂·Σ(δ·x̂))`.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward<T: Real>(
    gamma: &[T],
    (xhat, inv): (&[T], &[T]),
    d: &[T],
    grads: &mut [Vec<T>],
    (pg, pbeta): (usize, usize),
    dx: Option<&mut Vec<T>>,
    scratch: &mut Scratch<T>,
    par: Par,
) {
    let c = gamma.len();
    let (dg, db) = (&mut scratch.f, &mut scratch.g);
    dg.clear();
    dg.resize(c, 0.0);
    db.clear();
    db.resize(c, 0.0);
    for (dc, xc) in d.chunks(c).zip(xhat.chunks(c)) {
        for ch in 0..c {
            dg[ch] += (dc[ch] * xc[ch]).to_f64();
            db[ch] += dc[ch].to_f64();
        }
    }
    for ch in 0..c {
        grads[pg][ch] = T::from_f64(dg[ch]);
        grads[pbeta][ch] = T::from_f64(db[ch]);
    }
    if let Some(dx) = dx {
        let count = (d.len() / c) as f64;
        // [mean_db | mean_dg | scale], one value per channel each.
        let t = &mut scratch.t;
        t.clear();
        t.extend(db.iter().map(|v| T::from_f64(v / count)));
        t.extend(dg.iter().map(|v| T::from_f64(v / count)));
        t.extend((0..c).map(|ch| gamma[ch] * inv[ch]));
        let (mean_db, rest) = t.split_at(c);
        let (mean_dg, scale) = rest.split_at(c);
        dx.resize(d.len(), T::zero());
        let input_grad = |((o, dc), xc): ((&mut [T], &[T]), &[T])| {
            for ((o, dc), xc) in o.chunks_mut(c).zip(dc.chunks(c)).zip(xc.chunks(c)) {
                for ch in 0..c {
                    o[ch] = scale[ch] * (dc[ch] - mean_db[ch] - xc[ch] * mean_dg[ch]);
                }
            }
        };
        let block = columns_block(c);
        if matches!(par, Par::Seq) || d.len() < 2 * block {
            input_grad(((dx, d), xhat));
        } else {
            dx.par_chunks_mut(block)
                .zip(d.par_chunks(block))
                .zip(xhat.par_chunks(block))
                .for_each(input_grad);
        }
    }
}

/// Moves the running statistics `state[si]`, `state[sv]` towards the batch's `(mean, var)` of
/// `count` values per channel: `r ← m·r + (1−m)·batch`, the variance with Bessel's correction
/// (as TensorFlow and PyTorch do).
pub(super) fn update_running<T: Real>(
    momentum: f64,
    count: f64,
    (mean, var): (&[f64], &[f64]),
    state: &mut [Tensor<T>],
    (si, sv): (usize, usize),
) {
    let bessel = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
    for ch in 0..mean.len() {
        let rm = &mut state[si].data[ch];
        *rm = T::from_f64(momentum * rm.to_f64() + (1.0 - momentum) * mean[ch]);
        let rv = &mut state[sv].data[ch];
        *rv = T::from_f64(momentum * rv.to_f64() + (1.0 - momentum) * var[ch] * bessel);
    }
}

/// Per-channel mean and biased variance of channels-last data (`c` channels, interleaved), into
/// `stats`.
fn channel_stats<T: Real>(x: &[T], c: usize, stats: &mut ChannelStats) {
    let count = (x.len() / c) as f64;
    let (mean, var) = stats;
    mean.clear();
    mean.resize(c, 0.0);
    for chunk in x.chunks(c) {
        for (m, &v) in mean.iter_mut().zip(chunk) {
            *m += v.to_f64();
        }
    }
    mean.iter_mut().for_each(|m| *m /= count);
    var.clear();
    var.resize(c, 0.0);
    for chunk in x.chunks(c) {
        for ch in 0..c {
            let dv = chunk[ch].to_f64() - mean[ch];
            var[ch] += dv * dv;
        }
    }
    var.iter_mut().for_each(|v| *v /= count);
}

#[cfg(test)]
mod tests {
    use faer::Par;

    use super::super::{Cache, LayerSpec, Net, Shape};
    use crate::rng::Rng;

    #[test]
    fn batch_norm_inference_uses_running_statistics() {
        let spec = [LayerSpec::BatchNorm {
            momentum: 0.0,
            eps: 1e-3,
        }];
        let mut net = Net::<f64>::new(Shape::vector(2), &spec, &mut Rng::new(0)).unwrap();
        let x = [1.0, 10.0, 3.0, 20.0];
        let mut cache = Cache::default();
        net.forward(&x, 2, true, &mut cache, Par::Seq);
        // Momentum 0: running stats become the batch's (mean 2, 15; unbiased variance 2, 50).
        net.update_running(&cache);
        assert_eq!(net.state[0].data, vec![2.0, 15.0]);
        assert_eq!(net.state[1].data, vec![2.0, 50.0]);
        // Training mode normalizes with the biased batch variance (1, 25).
        assert!((cache.outs[0][1] - (-5.0) / (25.0f64 + 1e-3).sqrt()).abs() < 1e-12);
        // Inference mode uses the stored statistics.
        net.forward(&[2.0, 20.0], 1, false, &mut cache, Par::Seq);
        assert!((cache.outs[0][1] - 5.0 / (50.0f64 + 1e-3).sqrt()).abs() < 1e-12);
    }
}
