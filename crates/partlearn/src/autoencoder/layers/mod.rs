//! A small set of layers with hand-derived forward and backward passes (METHODS.md §6.1, §6.6):
//! dense, 2-D convolution (im2col), batch normalization, flatten and elementwise activations.
//!
//! Layout: a batch is a column-major `L × B` buffer, one sample per column, and an image sample
//! is stored channels-last (`(y·W + x)·C + c`). With this layout the convolution's GEMM output
//! `F × (H_o·W_o·B)` already *is* the next layer's batch, and flattening is the identity on
//! memory (it only changes the logical shape, as Keras' `Flatten` on channels-last tensors).
//!
//! Every layer's parameters are flat `Vec`s (the crate-internal `Net::params`) so that
//! optimizers, projections and model files treat all of them alike. Gradients live outside the
//! network (one set per worker), so that parts of a batch can be back-propagated in parallel
//! through a shared network.
//!
//! Public: the layer descriptions a model file stores ([`LayerSpec`], [`Shape`]) and the
//! activations ([`Act`]). The built network (`Net`, its layers, tensors and per-batch cache) is
//! internal to training.
//!
//! - `act`: elementwise activations ([`Act`]); `dense`, `conv`, `batch_norm`: each layer kind's forward
//!   and backward pass, dispatched by `Net::forward` and `Net::backward` on its [`LayerSpec`].

mod act;
mod batch_norm;
mod conv;
mod dense;

use faer::{MatMut, MatRef, Par};
use serde::{Deserialize, Serialize};

pub use act::Act;
use conv::ConvGeo;

use crate::error::{Error, Result};
use crate::real::Real;
use crate::rng::Rng;

/// The logical shape of one sample: `h × w × c` (a vector is `1 × 1 × n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Height (rows of pixels; 1 for a vector).
    pub h: usize,
    /// Width (1 for a vector).
    pub w: usize,
    /// Channels (the length of a vector).
    pub c: usize,
}

impl Shape {
    /// A flat vector of `n` values.
    pub fn vector(n: usize) -> Shape {
        Shape { h: 1, w: 1, c: n }
    }
    /// Number of values per sample.
    pub fn len(&self) -> usize {
        self.h * self.w * self.c
    }
    /// True for a zero-sized shape.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.h == 1 && self.w == 1 {
            write!(f, "{}", self.c)
        } else {
            write!(f, "{}×{}×{}", self.h, self.w, self.c)
        }
    }
}

/// One layer, as stored in model files.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "layer")]
pub enum LayerSpec {
    /// `y = W x + b`, `W` is `outputs × inputs` (column-major), Glorot-uniform initialized.
    Dense {
        /// Output units.
        outputs: usize,
    },
    /// 2-D convolution with `filters` kernels of `kernel × kernel`, `stride`, and TensorFlow's
    /// 'same' padding (output `⌈H/stride⌉`, padding split with the extra pixel at the end).
    Conv2d {
        /// Output channels.
        filters: usize,
        /// Side of the square kernel, in pixels.
        kernel: usize,
        /// Step between kernel positions, in pixels.
        stride: usize,
    },
    /// Batch normalization over the channels (per channel over batch and positions); Keras'
    /// defaults: running averages with `momentum` 0.99, `eps` 1e-3.
    BatchNorm {
        /// Weight of the old running average per batch, in `[0, 1)`.
        momentum: f64,
        /// Added to the variance before the square root, `> 0`.
        eps: f64,
    },
    /// `h × w × c → 1 × 1 × hwc` (identity on channels-last memory).
    Flatten,
    /// Elementwise activation.
    Activation {
        /// The activation.
        act: Act,
    },
}

impl LayerSpec {
    /// Keras' batch-normalization defaults.
    pub fn batch_norm() -> LayerSpec {
        LayerSpec::BatchNorm {
            momentum: 0.99,
            eps: 1e-3,
        }
    }

    /// Number of values of this layer's tensors for an input of shape `s` (checked: `None` on
    /// overflow or an invalid layer).
    pub fn n_values(&self, s: Shape) -> Option<usize> {
        self.out_shape(s).ok()?;
        match *self {
            LayerSpec::Dense { outputs } => {
                let n_in = s.h.checked_mul(s.w)?.checked_mul(s.c)?;
                outputs.checked_mul(n_in)?.checked_add(outputs)
            }
            LayerSpec::Conv2d { filters, kernel, .. } => kernel
                .checked_mul(kernel)?
                .checked_mul(s.c)?
                .checked_mul(filters)?
                .checked_add(filters),
            LayerSpec::BatchNorm { .. } => s.c.checked_mul(4),
            LayerSpec::Flatten | LayerSpec::Activation { .. } => Some(0),
        }
    }

    /// Output shape for an input of shape `s`.
    pub fn out_shape(&self, s: Shape) -> Result<Shape> {
        Ok(match *self {
            LayerSpec::Dense { outputs } => {
                if outputs == 0 {
                    return Err(Error::invalid("outputs", 0, "a layer needs at least one output"));
                }
                Shape::vector(outputs)
            }
            LayerSpec::Conv2d {
                filters,
                kernel,
                stride,
            } => {
                if filters == 0 || kernel == 0 || stride == 0 {
                    return Err(Error::invalid(
                        "convolution",
                        format!("{filters} filters, kernel {kernel}, stride {stride}"),
                        "filters, kernel and stride must be positive",
                    ));
                }
                Shape {
                    h: s.h.div_ceil(stride),
                    w: s.w.div_ceil(stride),
                    c: filters,
                }
            }
            LayerSpec::BatchNorm { momentum, eps } => {
                if !(0.0..1.0).contains(&momentum) || eps <= 0.0 {
                    return Err(Error::invalid(
                        "batch_norm",
                        format!("momentum {momentum}, eps {eps}"),
                        "momentum must be in [0, 1) and eps positive",
                    ));
                }
                s
            }
            LayerSpec::Flatten => Shape::vector(
                s.h.checked_mul(s.w)
                    .and_then(|v| v.checked_mul(s.c))
                    .ok_or_else(|| Error::invalid("flatten", s, "the shape's size overflows"))?,
            ),
            LayerSpec::Activation { .. } => s,
        })
    }
}

/// A built layer: spec, shapes, and where its parameters sit in [`Net::params`].
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub spec: LayerSpec,
    pub input: Shape,
    pub output: Shape,
    /// Indices of this layer's trainable tensors in [`Net::params`] (weight/gamma first).
    pub params: Vec<usize>,
    /// Indices of this layer's non-trainable state in [`Net::state`] (running mean, variance).
    pub state: Vec<usize>,
}

/// A named tensor of a network. `data` is the column-major matrix the layer computes with, which
/// is also the row-major tensor of `shape` in Keras' layout: a dense kernel is `inputs × outputs`,
/// a convolution kernel `kernel × kernel × channels × filters`.
#[derive(Clone, Debug)]
pub(crate) struct Tensor<T> {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

/// A sequential network.
#[derive(Clone, Debug)]
pub(crate) struct Net<T: Real> {
    pub layers: Vec<Layer>,
    /// Trainable tensors.
    pub params: Vec<Tensor<T>>,
    /// Non-trainable state (batch-norm running statistics).
    pub state: Vec<Tensor<T>>,
    pub input: Shape,
}

/// Per-batch buffers of a [`Net`]: each layer's output and what its backward pass needs.
#[derive(Debug, Default)]
pub(crate) struct Cache<T> {
    /// `outs[i]` = output of layer `i` (`outs.last()` is the network's output).
    pub outs: Vec<Vec<T>>,
    /// Per layer: im2col columns (conv) or normalized values (batch norm).
    aux: Vec<Vec<T>>,
    /// Per batch-norm layer: `1/sqrt(var + eps)` per channel.
    inv_std: Vec<Vec<T>>,
    /// Per batch-norm layer: the batch's mean and (biased) variance per channel.
    stats: Vec<batch_norm::ChannelStats>,
    /// Gradient buffers, two ping-pong vectors.
    d_a: Vec<T>,
    d_b: Vec<T>,
    /// Per-row and per-channel sums, reused by every layer and batch.
    scratch: Scratch<T>,
    batch: usize,
}

/// Small buffers (one value per row or channel) that the layers reuse instead of allocating on
/// every batch.
#[derive(Debug, Default)]
struct Scratch<T> {
    f: Vec<f64>,
    g: Vec<f64>,
    t: Vec<T>,
}

fn glorot<T: Real>(rng: &mut Rng, fan_in: usize, fan_out: usize, n: usize) -> Vec<T> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    (0..n)
        .map(|_| T::from_f64(rng.uniform_in(-limit, limit)))
        .collect()
}

fn view<T: Real>(d: &[T], r: usize, c: usize) -> MatRef<'_, T> {
    MatRef::from_column_major_slice(d, r, c)
}

fn view_mut<T: Real>(d: &mut [T], r: usize, c: usize) -> MatMut<'_, T> {
    MatMut::from_column_major_slice_mut(d, r, c)
}

impl<T: Real> Net<T> {
    /// Builds the layers for samples of shape `input`, Glorot-uniform weights (Keras' default;
    /// fans of a convolution are `kernel²·channels`), zero biases, batch-norm `γ = 1`, `β = 0`,
    /// running mean 0 and variance 1.
    pub fn new(input: Shape, specs: &[LayerSpec], rng: &mut Rng) -> Result<Net<T>> {
        let mut net = Net {
            layers: Vec::new(),
            params: Vec::new(),
            state: Vec::new(),
            input,
        };
        let mut s = input;
        for (li, spec) in specs.iter().enumerate() {
            let out = spec.out_shape(s)?;
            let mut params = Vec::new();
            let mut state = Vec::new();
            let mut add = |net: &mut Net<T>, name: &str, shape: Vec<usize>, data: Vec<T>, trainable: bool| {
                let t = Tensor {
                    name: format!("{li}.{name}"),
                    shape,
                    data,
                };
                if trainable {
                    net.params.push(t);
                    params.push(net.params.len() - 1);
                } else {
                    net.state.push(t);
                    state.push(net.state.len() - 1);
                }
            };
            match *spec {
                LayerSpec::Dense { outputs } => {
                    let n_in = s.len();
                    let w = glorot(rng, n_in, outputs, outputs * n_in);
                    add(&mut net, "weight", vec![n_in, outputs], w, true);
                    add(&mut net, "bias", vec![outputs], vec![T::zero(); outputs], true);
                }
                LayerSpec::Conv2d { filters, kernel, .. } => {
                    let k = kernel * kernel * s.c;
                    let w = glorot(rng, k, kernel * kernel * filters, filters * k);
                    add(&mut net, "weight", vec![kernel, kernel, s.c, filters], w, true);
                    add(&mut net, "bias", vec![filters], vec![T::zero(); filters], true);
                }
                LayerSpec::BatchNorm { .. } => {
                    let c = s.c;
                    add(&mut net, "gamma", vec![c], vec![T::one(); c], true);
                    add(&mut net, "beta", vec![c], vec![T::zero(); c], true);
                    add(&mut net, "running_mean", vec![c], vec![T::zero(); c], false);
                    add(&mut net, "running_var", vec![c], vec![T::one(); c], false);
                }
                LayerSpec::Flatten | LayerSpec::Activation { .. } => {}
            }
            net.layers.push(Layer {
                spec: *spec,
                input: s,
                output: out,
                params,
                state,
            });
            s = out;
        }
        Ok(net)
    }

    /// Shape of one output sample.
    pub fn output(&self) -> Shape {
        self.layers.last().map_or(self.input, |l| l.output)
    }

    /// Zeroed gradient buffers, one per trainable tensor.
    pub fn grad_buffers(&self) -> Vec<Vec<T>> {
        self.params
            .iter()
            .map(|t| vec![T::zero(); t.data.len()])
            .collect()
    }

    /// Whether a layer's output depends on the other samples of the batch (batch normalization
    /// in training mode), so that a batch cannot be split across workers.
    pub fn couples_batch(&self) -> bool {
        self.layers
            .iter()
            .any(|l| matches!(l.spec, LayerSpec::BatchNorm { .. }))
    }

    /// Number of trainable values.
    pub fn n_params(&self) -> usize {
        self.params.iter().map(|t| t.data.len()).sum()
    }

    /// Forward pass of a batch `x` (`input.len() × batch`, column-major); the output is
    /// `cache.outs.last()`. `train` selects batch statistics in batch normalization (kept in the
    /// cache for [`update_running`](Net::update_running)); otherwise the running statistics are
    /// used.
    pub fn forward(&self, x: &[T], batch: usize, train: bool, cache: &mut Cache<T>, par: Par) {
        debug_assert_eq!(x.len(), self.input.len() * batch);
        let n = self.layers.len();
        cache.batch = batch;
        cache.outs.resize_with(n, Vec::new);
        cache.aux.resize_with(n, Vec::new);
        cache.inv_std.resize_with(n, Vec::new);
        cache.stats.resize_with(n, Default::default);
        for i in 0..n {
            let (before, rest) = cache.outs.split_at_mut(i);
            let input: &[T] = if i == 0 { x } else { &before[i - 1] };
            let out = &mut rest[0];
            let layer = &self.layers[i];
            out.resize(layer.output.len() * batch, T::zero());
            let p = |j: usize| self.params[layer.params[j]].data.as_slice();
            // A dense or convolution layer applies the activation that follows it in the pass
            // that adds its bias.
            let act = self.fused_act(i);
            match layer.spec {
                LayerSpec::Dense { .. } => {
                    dense::forward(p(0), p(1), input, out, layer.input.len(), batch, act, par);
                }
                LayerSpec::Conv2d { kernel, stride, .. } => {
                    let geo = ConvGeo::new(layer.input, layer.output, kernel, stride);
                    conv::forward(&geo, p(0), p(1), input, batch, &mut cache.aux[i], out, act, par);
                }
                LayerSpec::BatchNorm { eps, .. } => {
                    let running = (
                        self.state[layer.state[0]].data.as_slice(),
                        self.state[layer.state[1]].data.as_slice(),
                    );
                    let kept = (&mut cache.aux[i], &mut cache.inv_std[i], &mut cache.stats[i]);
                    let scratch = &mut cache.scratch;
                    batch_norm::forward((p(0), p(1)), running, eps, train, input, out, kept, scratch, par);
                }
                // Flatten and activations take over the previous layer's output buffer instead
                // of copying it, unless that layer is an activation: no other backward pass
                // reads its layer's own output (dense and convolution layers read their inputs,
                // batch normalization its normalized values).
                LayerSpec::Flatten | LayerSpec::Activation { .. } => {
                    let prev_is_act =
                        i > 0 && matches!(self.layers[i - 1].spec, LayerSpec::Activation { .. });
                    if i == 0 || prev_is_act {
                        out.copy_from_slice(input);
                    } else {
                        std::mem::swap(&mut before[i - 1], out);
                    }
                    if let LayerSpec::Activation { act } = layer.spec {
                        if !self.has_bias(i.wrapping_sub(1)) {
                            act.forward_par(out, par);
                        }
                    }
                }
            }
        }
    }

    /// Whether layer `i` exists and adds a bias (dense, convolution): an activation right after
    /// it is applied by its forward pass and its derivative by the pass that sums its bias
    /// gradient.
    fn has_bias(&self, i: usize) -> bool {
        self.layers
            .get(i)
            .is_some_and(|l| matches!(l.spec, LayerSpec::Dense { .. } | LayerSpec::Conv2d { .. }))
    }

    /// The activation layer `i` applies in its forward pass: the next layer's, if layer `i`
    /// adds a bias and the next layer is an activation; the identity otherwise.
    fn fused_act(&self, i: usize) -> Act {
        match self.layers.get(i + 1).map(|l| l.spec) {
            Some(LayerSpec::Activation { act }) if self.has_bias(i) => act,
            _ => Act::Identity,
        }
    }

    /// Moves batch normalization's running statistics towards those of the last training
    /// forward pass: `r ← m·r + (1−m)·batch` (the variance with Bessel's correction, as
    /// TensorFlow and PyTorch do).
    pub fn update_running(&mut self, cache: &Cache<T>) {
        for (i, layer) in self.layers.iter().enumerate() {
            let LayerSpec::BatchNorm { momentum, .. } = layer.spec else {
                continue;
            };
            let Some((mean, var)) = cache.stats.get(i).filter(|s| !s.0.is_empty()) else {
                continue;
            };
            let count = (layer.input.h * layer.input.w * cache.batch) as f64;
            let slots = (layer.state[0], layer.state[1]);
            batch_norm::update_running(momentum, count, (mean, var), &mut self.state, slots);
        }
    }

    /// The matrix products one training step performs on a batch, forward then backward, as
    /// `(name, rows, inner, cols, lhs transposed, rhs transposed)`; the first layer's input
    /// gradient is skipped unless `input_grad` (as [`backward`](Net::backward) does).
    pub fn gemm_shapes(
        &self,
        batch: usize,
        input_grad: bool,
    ) -> Vec<(String, usize, usize, usize, bool, bool)> {
        let mut fwd = Vec::new();
        let mut bwd = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let need_dx = i > 0 || input_grad;
            let (o, k, n, name) = match l.spec {
                LayerSpec::Dense { outputs } => (
                    outputs,
                    l.input.len(),
                    batch,
                    format!("{i}: dense {}→{outputs}", l.input.len()),
                ),
                LayerSpec::Conv2d { filters, kernel, .. } => (
                    filters,
                    kernel * kernel * l.input.c,
                    l.output.h * l.output.w * batch,
                    format!("{i}: conv {}→{}", l.input, l.output),
                ),
                _ => continue,
            };
            fwd.push((format!("{name} forward"), o, k, n, false, false));
            bwd.push((format!("{name} ∂W"), o, n, k, false, true));
            if need_dx {
                bwd.push((format!("{name} ∂input"), k, o, n, true, false));
            }
        }
        bwd.reverse();
        fwd.extend(bwd);
        fwd
    }

    /// Backward pass after [`forward`](Net::forward) with the same batch: `d_out` is the
    /// gradient of the loss with respect to the network's output, taken over as the pass's
    /// working buffer (not copied; it holds scratch values afterwards); parameter gradients are
    /// written to `grads` (from [`grad_buffers`](Net::grad_buffers); overwritten). Returns the
    /// gradient with respect to the input when `input_grad` is set (first layers of a model need
    /// none).
    pub fn backward<'c>(
        &self,
        x: &[T],
        d_out: &mut Vec<T>,
        cache: &'c mut Cache<T>,
        grads: &mut [Vec<T>],
        input_grad: bool,
        par: Par,
    ) -> Option<&'c [T]> {
        let batch = cache.batch;
        let mut d = std::mem::take(d_out);
        *d_out = std::mem::take(&mut cache.d_a);
        let mut d_next = std::mem::take(&mut cache.d_b);
        let n = self.layers.len();
        // Set by an activation whose pass also summed the bias gradient of the layer before it.
        let mut bias_done = false;
        for i in (0..n).rev() {
            let layer = &self.layers[i];
            let input: &[T] = if i == 0 { x } else { &cache.outs[i - 1] };
            let need_dx = i > 0 || input_grad;
            let dx = need_dx.then_some(&mut d_next);
            let acc = &mut cache.scratch.f;
            if self.has_bias(i) && !std::mem::take(&mut bias_done) {
                dense::row_sums(&d, layer.output.c, &mut grads[layer.params[1]], acc, par);
            }
            match layer.spec {
                LayerSpec::Dense { .. } => {
                    let w = &self.params[layer.params[0]].data;
                    dense::backward(layer, w, input, &d, grads, dx, batch, par);
                }
                LayerSpec::Conv2d { kernel, stride, .. } => {
                    let geo = ConvGeo::new(layer.input, layer.output, kernel, stride);
                    let pw = layer.params[0];
                    let w = &self.params[pw].data;
                    let cols = &mut cache.aux[i];
                    conv::backward(&geo, pw, w, &d, cols, grads, dx, batch, par);
                }
                LayerSpec::BatchNorm { .. } => {
                    let slots = (layer.params[0], layer.params[1]);
                    let gamma = &self.params[slots.0].data;
                    let kept = (cache.aux[i].as_slice(), cache.inv_std[i].as_slice());
                    batch_norm::backward(gamma, kept, &d, grads, slots, dx, &mut cache.scratch, par);
                }
                // In place: flattening does not move memory, an activation scales elementwise.
                LayerSpec::Flatten => continue,
                LayerSpec::Activation { act } => {
                    let y = &cache.outs[i];
                    match self
                        .layers
                        .get(i.wrapping_sub(1))
                        .filter(|_| self.has_bias(i - 1))
                    {
                        Some(prev) => {
                            let bias = &mut grads[prev.params[1]];
                            dense::act_row_sums(act, y, &mut d, prev.output.c, bias, acc, par);
                            bias_done = true;
                        }
                        None => act.backward_par(y, &mut d, par),
                    }
                    continue;
                }
            }
            if need_dx {
                std::mem::swap(&mut d, &mut d_next);
            }
        }
        cache.d_a = d;
        cache.d_b = d_next;
        input_grad.then_some(&cache.d_a[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `L = Σ r ⊙ net(x)` for a fixed random `r`; its gradient is `backward(r)`.
    fn loss(net: &Net<f64>, x: &[f64], batch: usize, r: &[f64]) -> f64 {
        let mut cache = Cache::default();
        net.forward(x, batch, true, &mut cache, Par::Seq);
        cache.outs.last().unwrap().iter().zip(r).map(|(a, b)| a * b).sum()
    }

    fn check_gradients(input: Shape, specs: &[LayerSpec], batch: usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let mut net = Net::<f64>::new(input, specs, &mut rng).unwrap();
        // Non-trivial biases and batch-norm parameters.
        for t in &mut net.params {
            if t.name.ends_with("bias") || t.name.ends_with("beta") || t.name.ends_with("gamma") {
                t.data.iter_mut().for_each(|v| *v += rng.uniform_in(-0.5, 0.5));
            }
        }
        let x: Vec<f64> = (0..input.len() * batch).map(|_| rng.uniform()).collect();
        let r: Vec<f64> = (0..net.output().len() * batch).map(|_| rng.normal()).collect();
        let mut cache = Cache::default();
        net.forward(&x, batch, true, &mut cache, Par::Seq);
        let mut grads = net.grad_buffers();
        let dx = net
            .backward(&x, &mut r.clone(), &mut cache, &mut grads, true, Par::Seq)
            .unwrap()
            .to_vec();
        let h = 1e-6;
        let mut worst = (0.0f64, 0.0, 0.0);
        let mut rel = |analytic: f64, numeric: f64| {
            // Central differences carry ~1e-10 of round-off: an exact zero gradient (a bias
            // before batch normalization) measures as ±4e-10.
            let diff = (analytic - numeric).abs();
            let e = if diff < 1e-9 {
                0.0
            } else {
                diff / (1e-6 + analytic.abs().max(numeric.abs()))
            };
            if e > worst.0 {
                worst = (e, analytic, numeric);
            }
        };
        for p in 0..net.params.len() {
            let n = net.params[p].data.len();
            // All entries of small tensors, a sample of large ones.
            let step = (n / 40).max(1);
            for i in (0..n).step_by(step) {
                let v = net.params[p].data[i];
                net.params[p].data[i] = v + h;
                let lp = loss(&mut net, &x, batch, &r);
                net.params[p].data[i] = v - h;
                let lm = loss(&mut net, &x, batch, &r);
                net.params[p].data[i] = v;
                rel(grads[p][i], (lp - lm) / (2.0 * h));
            }
        }
        let step = (x.len() / 60).max(1);
        for i in (0..x.len()).step_by(step) {
            let mut xp = x.clone();
            xp[i] += h;
            let lp = loss(&mut net, &xp, batch, &r);
            xp[i] -= 2.0 * h;
            let lm = loss(&mut net, &xp, batch, &r);
            rel(dx[i], (lp - lm) / (2.0 * h));
        }
        assert!(
            worst.0 < 1e-5,
            "{specs:?}: worst relative gradient error (error, analytic, numeric) {worst:?}"
        );
    }

    #[test]
    fn dense_and_every_activation_match_finite_differences() {
        for act in [
            Act::Sigmoid,
            Act::LeakyRelu { slope: 0.1 },
            Act::Relu,
            Act::Identity,
        ] {
            check_gradients(
                Shape::vector(7),
                &[
                    LayerSpec::Dense { outputs: 5 },
                    LayerSpec::Activation { act },
                    LayerSpec::Dense { outputs: 3 },
                ],
                4,
                1,
            );
        }
    }

    #[test]
    fn convolution_batch_norm_and_flatten_match_finite_differences() {
        check_gradients(
            Shape { h: 7, w: 6, c: 2 },
            &[
                LayerSpec::Conv2d {
                    filters: 3,
                    kernel: 4,
                    stride: 2,
                },
                LayerSpec::batch_norm(),
                LayerSpec::Activation {
                    act: Act::LeakyRelu { slope: 0.1 },
                },
                LayerSpec::Conv2d {
                    filters: 2,
                    kernel: 3,
                    stride: 1,
                },
                LayerSpec::Flatten,
                LayerSpec::Dense { outputs: 5 },
                LayerSpec::batch_norm(),
                LayerSpec::Activation { act: Act::Sigmoid },
            ],
            3,
            2,
        );
        // An activation followed by flatten and another activation (buffer hand-over rules).
        check_gradients(
            Shape { h: 4, w: 4, c: 2 },
            &[
                LayerSpec::Conv2d {
                    filters: 3,
                    kernel: 2,
                    stride: 2,
                },
                LayerSpec::Activation { act: Act::Sigmoid },
                LayerSpec::Flatten,
                LayerSpec::Activation {
                    act: Act::LeakyRelu { slope: 0.1 },
                },
                LayerSpec::Dense { outputs: 4 },
            ],
            2,
            3,
        );
    }
}
