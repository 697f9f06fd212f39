//! One mini-batch of training (METHODS.md §6.2–§6.3): the forward and backward pass of the
//! encoder and decoder, the loss terms and every parameter's gradient, in reusable buffers
//! ([`Workspace`]), a batch split into parts back-propagated in parallel; the parts' gradients
//! are summed by the update ([`super::update`]).

use faer::Par;

use super::super::layers::Cache;
use super::super::loss::{self, LossSpec, LossTerms};
use super::super::model::Autoencoder;
use crate::real::Real;

/// Batches of models without batch normalization are split into this many parts that are
/// back-propagated in parallel (one worker each, sequential GEMMs: faer does not parallelize
/// products as small as one batch's) and whose gradients are summed in a fixed order, so the
/// result is the same for any thread count. Models with batch normalization take the batch
/// whole (its statistics couple the samples) and parallelize inside their larger GEMMs.
pub const PARTS: usize = 2;

/// Buffers of one part of a batch.
#[derive(Debug, Default)]
pub(super) struct Part<T> {
    /// The part's samples (`n_features × samples`).
    x: Vec<T>,
    pub(super) enc: Cache<T>,
    dec: Cache<T>,
    d_xhat: Vec<T>,
    dh: Vec<T>,
    enc_grads: Vec<Vec<T>>,
    dec_grads: Vec<Vec<T>>,
    /// Each code unit's activation summed over the part's samples.
    unit_sums: Vec<f64>,
    rec: f64,
    sq: f64,
    /// The part's share of a per-sample sparsity penalty.
    penalty: f64,
}

impl<T: Real> Part<T> {
    /// This part's gradient of trainable tensor `i` (encoder tensors first, then the decoder's:
    /// the optimizer's order; `n_enc` encoder tensors).
    pub(super) fn grad(&self, i: usize, n_enc: usize) -> &[T] {
        if i < n_enc {
            &self.enc_grads[i]
        } else {
            &self.dec_grads[i - n_enc]
        }
    }
}

/// Values `at..at + g.len()` of the batch's gradient of tensor `i`: the parts' gradients summed
/// in part order (the same bits for any number of threads).
#[inline(always)]
pub(super) fn sum_parts<T: Real>(parts: &[Part<T>], i: usize, n_enc: usize, at: usize, g: &mut [T]) {
    let r = at..at + g.len();
    if let Some((first, rest)) = parts.split_first() {
        g.copy_from_slice(&first.grad(i, n_enc)[r.clone()]);
        for part in rest {
            for (a, &v) in g.iter_mut().zip(&part.grad(i, n_enc)[r.clone()]) {
                *a = *a + v;
            }
        }
    }
}

/// Buffers reused by every batch.
#[derive(Debug, Default)]
pub(super) struct Workspace<T> {
    parts: Vec<Part<T>>,
    /// Parts the last batch was split into (fewer than `parts.len()` for a batch that small).
    used: usize,
    /// The units' summed activations over the batch.
    sums: Vec<f64>,
    /// `∂/∂h` of a penalty on `ρ̂`, per unit.
    unit_grad: Vec<T>,
}

impl<T: Real> Workspace<T> {
    pub(super) fn new(model: &Autoencoder<T>) -> Self {
        let n = if model.encoder.couples_batch() { 1 } else { PARTS };
        Workspace {
            parts: (0..n)
                .map(|_| Part {
                    enc_grads: model.encoder.grad_buffers(),
                    dec_grads: model.decoder.grad_buffers(),
                    ..Part::default()
                })
                .collect(),
            used: 0,
            sums: Vec::new(),
            unit_grad: Vec::new(),
        }
    }

    /// The parts of the last batch, with their gradients.
    pub(super) fn parts(&self) -> &[Part<T>] {
        &self.parts[..self.used]
    }
}

/// A batch's loss terms and summed code activation.
pub(super) struct BatchTerms {
    pub(super) terms: LossTerms,
    pub(super) activation: f64,
}

/// Forward and backward pass of one batch of `b` samples (training mode): the loss terms of
/// §6.2 but the weight decay (the update adds it) and every parameter's gradient, per part in
/// `ws.parts` ([`sum_parts`] sums them). `gather(range, x)` writes the batch's
/// samples `range` (`n_features` values each, one after another) into `x`; each part gathers
/// its own samples on its worker. Between the two halves of the pass the parts' code sums are
/// added up (in part order) into the batch's `ρ̂`, which a penalty on it couples the samples
/// with; a per-sample penalty is computed by each part. Batch-norm running statistics are not
/// touched (see [`super::layers::Net::update_running`]).
pub(super) fn gradients<T: Real>(
    model: &Autoencoder<T>,
    spec: &LossSpec,
    gather: &(dyn Fn(std::ops::Range<usize>, &mut Vec<T>) + Sync),
    b: usize,
    ws: &mut Workspace<T>,
    par: Par,
) -> BatchTerms {
    use rayon::prelude::*;
    let (m, k) = (model.spec.n_features, model.spec.k);
    let n_parts = ws.parts.len().min(b).max(1);
    let inner = if ws.parts.len() > 1 { Par::Seq } else { par };
    // Samples `[p·b/n, (p+1)·b/n)` of the batch go to part `p`.
    let bounds = |p: usize| (p * b / n_parts, (p + 1) * b / n_parts);
    let Workspace {
        parts,
        used,
        sums,
        unit_grad,
    } = ws;
    *used = n_parts;
    let parts = &mut parts[..n_parts];
    parts.par_iter_mut().enumerate().for_each(|(p, part)| {
        let (s, e) = bounds(p);
        part.x.clear();
        gather(s..e, &mut part.x);
        let x = &part.x[..];
        model.encoder.forward(x, e - s, true, &mut part.enc, inner);
        let h = part.enc.outs.last().map(Vec::as_slice).unwrap_or(&[]);
        part.unit_sums.clear();
        part.unit_sums.resize(k, 0.0);
        loss::add_unit_sums(k, h, &mut part.unit_sums);
        model.decoder.forward(h, e - s, true, &mut part.dec, inner);
        let xhat = part.dec.outs.last().map(Vec::as_slice).unwrap_or(&[]);
        part.d_xhat.resize(xhat.len(), T::zero());
        (part.rec, part.sq) = loss::reconstruction(spec, m, b, x, xhat, &mut part.d_xhat);
        let d = model
            .decoder
            .backward(
                h,
                &mut part.d_xhat,
                &mut part.dec,
                &mut part.dec_grads,
                true,
                inner,
            )
            .unwrap_or(&[]);
        part.dh.clear();
        part.dh.extend_from_slice(d);
    });
    sums.clear();
    sums.resize(k, 0.0);
    for part in parts.iter() {
        sums.iter_mut().zip(&part.unit_sums).for_each(|(s, &v)| *s += v);
    }
    let activation: f64 = sums.iter().sum();
    unit_grad.resize(k, T::zero());
    let rho = loss::rho_penalty(spec, sums, b, unit_grad);
    let unit_grad: &[T] = unit_grad;
    parts.par_iter_mut().for_each(|part| {
        let h = part.enc.outs.last().map(Vec::as_slice).unwrap_or(&[]);
        part.penalty = loss::sample_penalty(spec, k, h, &mut part.dh, b);
        if spec.sparsity.on_rho() {
            for col in part.dh.chunks_mut(k) {
                for (g, &d) in col.iter_mut().zip(unit_grad) {
                    *g = *g + d;
                }
            }
        }
        model.encoder.backward(
            &part.x,
            &mut part.dh,
            &mut part.enc,
            &mut part.enc_grads,
            false,
            inner,
        );
    });
    BatchTerms {
        terms: LossTerms {
            reconstruction: parts.iter().map(|p| p.rec).sum(),
            sparsity: rho + parts.iter().map(|p| p.penalty).sum::<f64>(),
            decay: 0.0,
            sq_error: parts.iter().map(|p| p.sq).sum(),
        },
        activation,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::shallow;
    use super::*;
    use crate::autoencoder::layers::Act;
    use crate::autoencoder::loss::{RecLoss, Reduction, Sparsity};
    use crate::autoencoder::model::{AeSpec, Architecture};
    use crate::optim::{Optimizer, OptimizerSpec};
    use crate::rng::Rng;

    /// One batch held in one buffer (`m` values per sample): its whole loss (the decay
    /// included) and its gradient of every trainable tensor, as the training applies it — read
    /// off an SGD step with learning rate 1 and no momentum taken by [`super::super::update`].
    fn batch_gradients(
        model: &Autoencoder<f64>,
        spec: &LossSpec,
        xb: &[f64],
        b: usize,
    ) -> (f64, Vec<Vec<f64>>) {
        let mut ws = Workspace::new(model);
        let m = model.spec.n_features;
        let gather =
            |r: std::ops::Range<usize>, x: &mut Vec<f64>| x.extend_from_slice(&xb[r.start * m..r.end * m]);
        let terms = gradients(model, spec, &gather, b, &mut ws, Par::Seq).terms;
        let sgd = OptimizerSpec::Sgd {
            lr: 1.0,
            momentum: 0.0,
            nesterov: false,
        };
        let tensors = || model.encoder.params.iter().chain(&model.decoder.params);
        let sizes: Vec<usize> = tensors().map(|t| t.data.len()).collect();
        let mut optimizer = Optimizer::new(sgd, &sizes);
        optimizer.begin_step();
        let mut stepped = model.clone();
        let decay = super::super::update::update(&mut stepped, &mut optimizer, ws.parts(), spec, false, 1.0);
        let after = stepped.encoder.params.iter().chain(&stepped.decoder.params);
        let grads = tensors()
            .zip(after)
            .map(|(t, a)| t.data.iter().zip(&a.data).map(|(w, v)| w - v).collect())
            .collect();
        (terms.total() + decay, grads)
    }

    /// The batch loss as a function of every parameter, for finite differences.
    fn loss_of(model: &mut Autoencoder<f64>, spec: &LossSpec, xb: &[f64], b: usize) -> f64 {
        batch_gradients(model, spec, xb, b).0
    }

    fn check_whole_loss(model: &mut Autoencoder<f64>, spec: &LossSpec, xb: &[f64], b: usize, what: &str) {
        let grads = batch_gradients(model, spec, xb, b).1;
        let h = 1e-6;
        let n_enc = model.encoder.params.len();
        for (p, g) in grads.iter().enumerate() {
            let step = (g.len() / 25).max(1);
            for i in (0..g.len()).step_by(step) {
                let get = |m: &mut Autoencoder<f64>| -> *mut f64 {
                    if p < n_enc {
                        &mut m.encoder.params[p].data[i]
                    } else {
                        &mut m.decoder.params[p - n_enc].data[i]
                    }
                };
                // SAFETY: the pointer is used while `model` is not otherwise borrowed.
                let v = unsafe { *get(model) };
                unsafe { *get(model) = v + h };
                let lp = loss_of(model, spec, xb, b);
                unsafe { *get(model) = v - h };
                let lm = loss_of(model, spec, xb, b);
                unsafe { *get(model) = v };
                let num = (lp - lm) / (2.0 * h);
                let err = (num - g[i]).abs() / (1e-7 + num.abs().max(g[i].abs()));
                assert!(
                    err < 2e-5 || (num - g[i]).abs() < 1e-9,
                    "{what}: tensor {p} entry {i}: analytic {} vs numeric {num}",
                    g[i]
                );
            }
        }
    }

    fn batch(m: usize, b: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        (0..m * b).map(|_| rng.uniform()).collect()
    }

    /// Gradient of the whole loss against finite differences, for every penalty, both losses
    /// and reductions, every decoder activation, with and without weight decay.
    #[test]
    fn whole_loss_gradient_matches_finite_differences() {
        let (k, m, b) = (4, 9, 5);
        let xb = batch(m, b, 1);
        let sparsities = [
            Sparsity::None,
            Sparsity::Kl,
            Sparsity::L2,
            Sparsity::EpsL1 { eps: 1e-4 },
            Sparsity::Log,
            Sparsity::L1,
            Sparsity::Hoyer { target: 0.6 },
        ];
        for (si, &sparsity) in sparsities.iter().enumerate() {
            for act in [
                Act::Sigmoid,
                Act::LeakyRelu { slope: 0.1 },
                Act::Relu,
                Act::Identity,
            ] {
                for reduction in [Reduction::Mean, Reduction::Sum] {
                    let spec = LossSpec {
                        sparsity,
                        reduction,
                        p: 0.2,
                        beta: 0.3,
                        decay_lambda: 0.05,
                        decay_alpha: 0.5,
                        ..LossSpec::default()
                    };
                    let mut model = shallow(k, m, act, si as u64);
                    // Biases away from zero so that ReLU units are active.
                    model.decoder.params[1].data.iter_mut().for_each(|v| *v = 0.3);
                    check_whole_loss(
                        &mut model,
                        &spec,
                        &xb,
                        b,
                        &format!("{sparsity:?}/{act:?}/{reduction:?}"),
                    );
                }
            }
            let bce = LossSpec {
                sparsity,
                reconstruction: RecLoss::Bce,
                p: 0.2,
                beta: 0.3,
                ..LossSpec::default()
            };
            let mut model = shallow(k, m, Act::Sigmoid, 9);
            check_whole_loss(&mut model, &bce, &xb, b, &format!("bce/{sparsity:?}"));
        }
    }

    /// The asymmetric AE's whole loss (convolutions, batch norm, flatten) against finite
    /// differences, on small images.
    #[test]
    fn asymmetric_whole_loss_gradient_matches_finite_differences() {
        let spec = AeSpec::new(
            Architecture::Asymmetric,
            3,
            36,
            Some((6, 6)),
            Act::LeakyRelu { slope: 0.1 },
        )
        .unwrap();
        let mut model = Autoencoder::<f64>::new(spec, Some((6, 6)), &mut Rng::new(2)).unwrap();
        let loss = LossSpec {
            sparsity: Sparsity::Kl,
            p: 0.1,
            beta: 0.2,
            ..LossSpec::default()
        };
        let xb = batch(36, 3, 4);
        check_whole_loss(&mut model, &loss, &xb, 3, "asymmetric");
    }
}
