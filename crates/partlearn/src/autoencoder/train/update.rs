//! The update after a mini-batch (METHODS.md §6.3–§6.4) in one parallel pass over fixed chunks of
//! every trainable tensor: the parts' gradients summed in part order, the weight decay added to
//! the decoder weights' gradient, the optimizer's step and the projection `W_d ≥ 0`. One pass
//! instead of one per operation and tensor: the values are read once while they are in cache,
//! and the threads meet once per batch. The chunks do not depend on the number of threads and
//! every operation is elementwise (the decay's sum is added in chunk order), so any number of
//! threads gives the same bits.

use rayon::prelude::*;

use super::super::loss::{self, LossSpec};
use super::super::model::Autoencoder;
use super::batch::{sum_parts, Part};
use crate::linalg::kernels::{simd_wide, Kernel};
use crate::optim::{Optimizer, StateChunk, StepRule};
use crate::real::Real;

/// Values per parallel task (16 KiB of `f32`: a tensor of the shallow auto-encoder makes about
/// twenty, so that two threads end within a task of each other).
const TASK: usize = 4096;

/// Values whose gradient is summed at a time, on the stack, inside a task.
const BLOCK: usize = 256;

/// One chunk of one tensor.
struct Task<'a, T> {
    /// The tensor's index (encoder tensors first, then the decoder's).
    tensor: usize,
    /// The chunk's first value in the tensor.
    start: usize,
    w: &'a mut [T],
    state: StateChunk<'a, T>,
}

/// What every task shares.
#[derive(Clone, Copy)]
struct Shared<'a, T> {
    parts: &'a [Part<T>],
    n_enc: usize,
    rule: StepRule,
    loss: &'a LossSpec,
    project: bool,
}

/// Applies the batch's gradients (per part in `parts`) to `model` with `optimizer` (whose
/// [`begin_step`](Optimizer::begin_step) the caller made), the decay of `loss` to the decoder
/// weights and, with `project`, clamps them to `≥ 0`. Returns the decay term
/// `(λ/2) Σ (α w² [w>0] + w² [w<0])` of the weights before the step.
pub(super) fn update<T: Real>(
    model: &mut Autoencoder<T>,
    optimizer: &mut Optimizer<T>,
    parts: &[Part<T>],
    loss: &LossSpec,
    project: bool,
    lr_factor: f64,
) -> f64 {
    let n_enc = model.encoder.params.len();
    let shared = Shared {
        parts,
        n_enc,
        rule: optimizer.rule(lr_factor),
        loss,
        project,
    };
    let tensors = model
        .encoder
        .params
        .iter_mut()
        .chain(model.decoder.params.iter_mut());
    let mut tasks = Vec::new();
    for (tensor, (t, state)) in tensors.zip(optimizer.states()).enumerate() {
        let chunks = t.data.chunks_mut(TASK).zip(state.chunks(TASK));
        for (c, (w, state)) in chunks.enumerate() {
            tasks.push(Task {
                tensor,
                start: c * TASK,
                w,
                state,
            });
        }
    }
    let decay: Vec<f64> = tasks
        .into_par_iter()
        .map(|task| simd_wide(Apply { task, shared }))
        .collect();
    decay.iter().sum()
}

/// One task, compiled for AVX2 or AVX-512 by [`simd_wide`].
struct Apply<'a, T> {
    task: Task<'a, T>,
    shared: Shared<'a, T>,
}

impl<T: Real> Kernel for Apply<'_, T> {
    type Out = f64;
    #[inline(always)]
    fn run(self) -> f64 {
        let Task {
            tensor,
            start,
            w,
            state,
        } = self.task;
        let Shared {
            parts,
            n_enc,
            rule,
            loss,
            project,
        } = self.shared;
        // The decoder's weights (its first tensor) are the atoms: decayed and projected.
        let atoms = tensor == n_enc;
        // A batch of one part steps with that part's gradient as it is; the atoms' gradient
        // gets the decay added, in a copy.
        let whole = match parts {
            [one] if !atoms => Some(&one.grad(tensor, n_enc)[start..]),
            _ => None,
        };
        let mut sum = [T::zero(); BLOCK];
        let mut decay = 0.0;
        for (b, (w, state)) in w.chunks_mut(BLOCK).zip(state.chunks(BLOCK)).enumerate() {
            let g: &[T] = match whole {
                Some(g) => &g[b * BLOCK..b * BLOCK + w.len()],
                None => {
                    let g = &mut sum[..w.len()];
                    sum_parts(parts, tensor, n_enc, start + b * BLOCK, g);
                    if atoms {
                        decay += loss::decay(loss, w, g);
                    }
                    g
                }
            };
            rule.apply(state, w, g);
            if atoms && project {
                for v in w.iter_mut() {
                    *v = v.max(T::zero());
                }
            }
        }
        decay
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::{gradients, Workspace};
    use super::*;
    use crate::autoencoder::layers::Act;
    use crate::autoencoder::loss::Sparsity;
    use crate::autoencoder::model::{AeSpec, Architecture};
    use crate::optim::OptimizerSpec;
    use crate::rng::Rng;

    /// The one-pass update gives the bits of its operations done one after the other on whole
    /// tensors (the parts' gradients summed, the decay added, the optimizer's step, the
    /// projection), on one thread and on two, and leaves no negative decoder weight.
    #[test]
    fn one_pass_equals_the_operations_in_turn_on_any_thread_count() {
        let (k, m, b) = (100, 784, 20);
        let spec = AeSpec::new(Architecture::Shallow, k, m, None, Act::LeakyRelu { slope: 0.1 }).unwrap();
        let model = Autoencoder::<f32>::new(spec, None, &mut Rng::new(3)).unwrap();
        let mut rng = Rng::new(4);
        let xb: Vec<f32> = (0..m * b).map(|_| rng.uniform() as f32).collect();
        let gather =
            |r: std::ops::Range<usize>, x: &mut Vec<f32>| x.extend_from_slice(&xb[r.start * m..r.end * m]);
        let loss = LossSpec {
            sparsity: Sparsity::Kl,
            p: 0.05,
            beta: 0.5,
            decay_lambda: 0.01,
            decay_alpha: 0.5,
            ..LossSpec::default()
        };
        let mut ws = Workspace::new(&model);
        gradients(&model, &loss, &gather, b, &mut ws, faer::Par::Seq);
        let parts = ws.parts();
        assert_eq!(parts.len(), 2);
        let n_enc = model.encoder.params.len();
        let sizes: Vec<usize> = model
            .encoder
            .params
            .iter()
            .chain(&model.decoder.params)
            .map(|t| t.data.len())
            .collect();
        let adadelta = OptimizerSpec::named("adadelta", None).unwrap();
        // Two steps, so that the optimizer's state matters.
        let fused = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (mut model, mut opt) = (model.clone(), Optimizer::new(adadelta, &sizes));
            let decay: Vec<f64> = (0..2)
                .map(|_| {
                    opt.begin_step();
                    pool.install(|| update(&mut model, &mut opt, parts, &loss, true, 0.5))
                })
                .collect();
            (model.to_tensors().unwrap().0, decay)
        };
        let (mut reference, mut opt) = (model.clone(), Optimizer::new(adadelta, &sizes));
        let mut decay = Vec::new();
        for _ in 0..2 {
            opt.begin_step();
            let mut total = 0.0;
            let tensors = reference
                .encoder
                .params
                .iter_mut()
                .chain(reference.decoder.params.iter_mut());
            for (i, t) in tensors.enumerate() {
                let mut g = vec![0.0f32; t.data.len()];
                for part in parts {
                    g.iter_mut().zip(part.grad(i, n_enc)).for_each(|(a, &v)| *a += v);
                }
                if i == n_enc {
                    total += loss::decay(&loss, &t.data, &mut g);
                }
                opt.update(i, &mut t.data, &g, 0.5);
            }
            reference.project_decoder();
            decay.push(total);
        }
        let (one, two) = (fused(1), fused(2));
        assert!(
            one.0 == reference.to_tensors().unwrap().0,
            "one pass differs from the operations in turn"
        );
        assert!(one.0 == two.0, "1 and 2 threads differ");
        assert_eq!(one.1, two.1);
        for (a, b) in one.1.iter().zip(&decay) {
            assert!(*a > 0.0 && (a - b).abs() <= 1e-12 * b, "decay {a} vs {b}");
        }
        assert!(reference.decoder_weights().iter().all(|&v| v >= 0.0));
    }
}
