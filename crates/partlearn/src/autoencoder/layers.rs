//! A small set of layers with hand-derived forward and backward passes (METHODS.md §6.1, §6.6):
//! dense, 2-D convolution (im2col), batch normalization, flatten and elementwise activations.
//!
//! Layout: a batch is a column-major `L × B` buffer, one sample per column, and an image sample
//! is stored channels-last (`(y·W + x)·C + c`). With this layout the convolution's GEMM output
//! `F × (H_o·W_o·B)` already *is* the next layer's batch, and flattening is the identity on
//! memory (it only changes the logical shape, as Keras' `Flatten` on channels-last tensors).
//!
//! Every layer's parameters are flat `Vec`s ([`Net::params`]) so that optimizers, projections and
//! model files treat all of them alike. Gradients live outside the network (one set per worker,
//! [`Net::grad_buffers`]), so that parts of a batch can be back-propagated in parallel through a
//! shared network.

use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linalg;
use crate::real::Real;
use crate::rng::Rng;

/// Elementwise activation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Act {
    /// `1 / (1 + e^{−z})`.
    Sigmoid,
    /// `z` for `z > 0`, `slope·z` otherwise (the reference decoder uses slope 0.1).
    LeakyRelu { slope: f64 },
    /// `max(z, 0)`.
    Relu,
    /// `z`.
    Identity,
}

impl Act {
    /// Parses `sigmoid`, `leaky-relu` (slope 0.1), `leaky-relu:SLOPE`, `relu`, `identity`.
    pub fn parse(s: &str) -> Result<Act> {
        let bad = || {
            Error::invalid(
                "activation",
                s,
                "use sigmoid, leaky-relu, leaky-relu:SLOPE (0 ≤ SLOPE < 1), relu or identity",
            )
        };
        Ok(match s {
            "sigmoid" => Act::Sigmoid,
            "relu" => Act::Relu,
            "identity" | "linear" => Act::Identity,
            "leaky-relu" => Act::LeakyRelu { slope: 0.1 },
            _ => match s.strip_prefix("leaky-relu:") {
                Some(v) => {
                    let slope: f64 = v.parse().map_err(|_| bad())?;
                    if !(0.0..1.0).contains(&slope) {
                        return Err(bad());
                    }
                    Act::LeakyRelu { slope }
                }
                None => return Err(bad()),
            },
        })
    }

    /// Name as accepted by [`Act::parse`].
    pub fn name(&self) -> String {
        match self {
            Act::Sigmoid => "sigmoid".into(),
            Act::Relu => "relu".into(),
            Act::Identity => "identity".into(),
            Act::LeakyRelu { slope } => format!("leaky-relu:{slope}"),
        }
    }

    /// `y = act(z)` in place.
    pub fn forward<T: Real>(&self, z: &mut [T]) {
        match *self {
            Act::Sigmoid => {
                for v in z {
                    *v = T::one() / (T::one() + (-*v).exp());
                }
            }
            Act::LeakyRelu { slope } => {
                let s = T::from_f64(slope);
                for v in z {
                    if *v < T::zero() {
                        *v = *v * s;
                    }
                }
            }
            Act::Relu => {
                for v in z {
                    *v = v.max(T::zero());
                }
            }
            Act::Identity => {}
        }
    }

    /// `dz = dy · act'(z)` in place on `d`, from the *outputs* `y` (every activation here has a
    /// derivative that is a function of its output: `y(1−y)`, `[y > 0]`, …).
    pub fn backward<T: Real>(&self, y: &[T], d: &mut [T]) {
        match *self {
            Act::Sigmoid => {
                for (d, &y) in d.iter_mut().zip(y) {
                    *d = *d * y * (T::one() - y);
                }
            }
            Act::LeakyRelu { slope } => {
                let s = T::from_f64(slope);
                for (d, &y) in d.iter_mut().zip(y) {
                    if y <= T::zero() {
                        *d = *d * s;
                    }
                }
            }
            Act::Relu => {
                for (d, &y) in d.iter_mut().zip(y) {
                    if y <= T::zero() {
                        *d = T::zero();
                    }
                }
            }
            Act::Identity => {}
        }
    }
}

/// The logical shape of one sample: `h × w × c` (a vector is `1 × 1 × n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub h: usize,
    pub w: usize,
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
    Dense { outputs: usize },
    /// 2-D convolution with `filters` kernels of `kernel × kernel`, `stride`, and TensorFlow's
    /// 'same' padding (output `⌈H/stride⌉`, padding split with the extra pixel at the end).
    Conv2d {
        filters: usize,
        kernel: usize,
        stride: usize,
    },
    /// Batch normalization over the channels (per channel over batch and positions); Keras'
    /// defaults: running averages with `momentum` 0.99, `eps` 1e-3.
    BatchNorm { momentum: f64, eps: f64 },
    /// `h × w × c → 1 × 1 × hwc` (identity on channels-last memory).
    Flatten,
    /// Elementwise activation.
    Activation { act: Act },
}

impl LayerSpec {
    /// Keras' batch-normalization defaults.
    pub fn batch_norm() -> LayerSpec {
        LayerSpec::BatchNorm {
            momentum: 0.99,
            eps: 1e-3,
        }
    }

    /// Output shape for an input of shape `s`.
    pub fn out_shape(&self, s: Shape) -> Result<Shape> {
        Ok(match *self {
            LayerSpec::Dense { outputs } => {
                if outputs == 0 {
                    return Err(Error::invalid(
                        "dense outputs",
                        0,
                        "a layer needs at least one output",
                    ));
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
                        "batch normalization",
                        format!("momentum {momentum}, eps {eps}"),
                        "momentum must be in [0, 1) and eps positive",
                    ));
                }
                s
            }
            LayerSpec::Flatten => Shape::vector(s.len()),
            LayerSpec::Activation { .. } => s,
        })
    }
}

/// Padding before the first row for TensorFlow 'same' padding.
fn same_pad(input: usize, out: usize, kernel: usize, stride: usize) -> usize {
    let total = ((out - 1) * stride + kernel).saturating_sub(input);
    total / 2
}

/// A built layer: spec, shapes, and where its parameters sit in [`Net::params`].
#[derive(Clone, Debug)]
pub struct Layer {
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
pub struct Tensor<T> {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

/// A sequential network.
#[derive(Clone, Debug)]
pub struct Net<T: Real> {
    pub layers: Vec<Layer>,
    /// Trainable tensors.
    pub params: Vec<Tensor<T>>,
    /// Non-trainable state (batch-norm running statistics).
    pub state: Vec<Tensor<T>>,
    pub input: Shape,
}

/// Per-batch buffers of a [`Net`]: each layer's output and what its backward pass needs.
#[derive(Debug, Default)]
pub struct Cache<T> {
    /// `outs[i]` = output of layer `i` (`outs.last()` is the network's output).
    pub outs: Vec<Vec<T>>,
    /// Per layer: im2col columns (conv) or normalized values (batch norm).
    aux: Vec<Vec<T>>,
    /// Per batch-norm layer: `1/sqrt(var + eps)` per channel.
    inv_std: Vec<Vec<T>>,
    /// Per batch-norm layer: the batch's mean and (biased) variance per channel.
    stats: Vec<(Vec<f64>, Vec<f64>)>,
    /// Gradient buffers, two ping-pong vectors.
    d_a: Vec<T>,
    d_b: Vec<T>,
    batch: usize,
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

    /// Layer specs (for model files).
    pub fn specs(&self) -> Vec<LayerSpec> {
        self.layers.iter().map(|l| l.spec).collect()
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
            match layer.spec {
                LayerSpec::Dense { outputs } => {
                    let (w, b) = (
                        &self.params[layer.params[0]].data,
                        &self.params[layer.params[1]].data,
                    );
                    let n_in = layer.input.len();
                    fill_bias(out, b);
                    linalg::matmul(
                        view_mut(out, outputs, batch),
                        Accum::Add,
                        view(w, outputs, n_in),
                        view(input, n_in, batch),
                        T::one(),
                        par,
                    );
                }
                LayerSpec::Conv2d {
                    filters,
                    kernel,
                    stride,
                } => {
                    let (w, b) = (
                        &self.params[layer.params[0]].data,
                        &self.params[layer.params[1]].data,
                    );
                    let geo = ConvGeo::new(layer.input, layer.output, kernel, stride);
                    let cols = &mut cache.aux[i];
                    im2col(input, batch, &geo, cols);
                    fill_bias(out, b);
                    linalg::matmul(
                        view_mut(out, filters, geo.positions() * batch),
                        Accum::Add,
                        view(w, filters, geo.k()),
                        view(cols, geo.k(), geo.positions() * batch),
                        T::one(),
                        par,
                    );
                }
                LayerSpec::BatchNorm { eps, .. } => {
                    let c = layer.input.c;
                    let (gamma, beta) = (
                        &self.params[layer.params[0]].data,
                        &self.params[layer.params[1]].data,
                    );
                    let (si, sv) = (layer.state[0], layer.state[1]);
                    let (mean, var) = if train {
                        let (mean, var) = channel_stats(input, c);
                        cache.stats[i] = (mean.clone(), var.clone());
                        (mean, var)
                    } else {
                        (
                            self.state[si].data.iter().map(|&v| v.to_f64()).collect(),
                            self.state[sv].data.iter().map(|&v| v.to_f64()).collect(),
                        )
                    };
                    let inv: Vec<T> = var.iter().map(|&v| T::from_f64(1.0 / (v + eps).sqrt())).collect();
                    let mean: Vec<T> = mean.iter().map(|&v| T::from_f64(v)).collect();
                    let xhat = &mut cache.aux[i];
                    xhat.resize(input.len(), T::zero());
                    for ((xh, o), xi) in xhat.chunks_mut(c).zip(out.chunks_mut(c)).zip(input.chunks(c)) {
                        for ch in 0..c {
                            let v = (xi[ch] - mean[ch]) * inv[ch];
                            xh[ch] = v;
                            o[ch] = gamma[ch] * v + beta[ch];
                        }
                    }
                    cache.inv_std[i] = inv;
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
                        act.forward(out);
                    }
                }
            }
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
            let bessel = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
            let (si, sv) = (layer.state[0], layer.state[1]);
            for ch in 0..mean.len() {
                let rm = &mut self.state[si].data[ch];
                *rm = T::from_f64(momentum * rm.to_f64() + (1.0 - momentum) * mean[ch]);
                let rv = &mut self.state[sv].data[ch];
                *rv = T::from_f64(momentum * rv.to_f64() + (1.0 - momentum) * var[ch] * bessel);
            }
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
    /// gradient of the loss with respect to the network's output; parameter gradients are
    /// written to `grads` (from [`grad_buffers`](Net::grad_buffers); overwritten). Returns the gradient with respect to the
    /// input when `input_grad` is set (first layers of a model need none).
    pub fn backward<'c>(
        &self,
        x: &[T],
        d_out: &[T],
        cache: &'c mut Cache<T>,
        grads: &mut [Vec<T>],
        input_grad: bool,
        par: Par,
    ) -> Option<&'c [T]> {
        let batch = cache.batch;
        let mut d = std::mem::take(&mut cache.d_a);
        let mut d_next = std::mem::take(&mut cache.d_b);
        d.clear();
        d.extend_from_slice(d_out);
        let n = self.layers.len();
        for i in (0..n).rev() {
            let layer = &self.layers[i];
            let input: &[T] = if i == 0 { x } else { &cache.outs[i - 1] };
            let need_dx = i > 0 || input_grad;
            match layer.spec {
                LayerSpec::Dense { outputs } => {
                    let n_in = layer.input.len();
                    let (pw, pb) = (layer.params[0], layer.params[1]);
                    row_sums(&d, outputs, &mut grads[pb]);
                    linalg::matmul(
                        view_mut(&mut grads[pw], outputs, n_in),
                        Accum::Replace,
                        view(&d, outputs, batch),
                        view(input, n_in, batch).transpose(),
                        T::one(),
                        par,
                    );
                    if need_dx {
                        d_next.resize(n_in * batch, T::zero());
                        linalg::matmul(
                            view_mut(&mut d_next, n_in, batch),
                            Accum::Replace,
                            view(&self.params[pw].data, outputs, n_in).transpose(),
                            view(&d, outputs, batch),
                            T::one(),
                            par,
                        );
                    }
                }
                LayerSpec::Conv2d {
                    filters,
                    kernel,
                    stride,
                } => {
                    let geo = ConvGeo::new(layer.input, layer.output, kernel, stride);
                    let (pw, pb) = (layer.params[0], layer.params[1]);
                    let np = geo.positions() * batch;
                    row_sums(&d, filters, &mut grads[pb]);
                    let cols = &mut cache.aux[i];
                    linalg::matmul(
                        view_mut(&mut grads[pw], filters, geo.k()),
                        Accum::Replace,
                        view(&d, filters, np),
                        view(cols, geo.k(), np).transpose(),
                        T::one(),
                        par,
                    );
                    if need_dx {
                        // The columns are not needed any more: reuse them for their gradient.
                        linalg::matmul(
                            view_mut(cols, geo.k(), np),
                            Accum::Replace,
                            view(&self.params[pw].data, filters, geo.k()).transpose(),
                            view(&d, filters, np),
                            T::one(),
                            par,
                        );
                        col2im(cols, batch, &geo, &mut d_next);
                    }
                }
                LayerSpec::BatchNorm { .. } => {
                    let c = layer.input.c;
                    let (pg, pbeta) = (layer.params[0], layer.params[1]);
                    let xhat = &cache.aux[i];
                    let inv = &cache.inv_std[i];
                    let mut dg = vec![0.0f64; c];
                    let mut db = vec![0.0f64; c];
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
                    if need_dx {
                        // Training-mode normalization: dx = γ·inv/N·(N·dy − Σdy − x̂·Σ(dy·x̂)).
                        let gamma = &self.params[pg].data;
                        let count = (d.len() / c) as f64;
                        let mean_db: Vec<T> = db.iter().map(|v| T::from_f64(v / count)).collect();
                        let mean_dg: Vec<T> = dg.iter().map(|v| T::from_f64(v / count)).collect();
                        let scale: Vec<T> = (0..c).map(|ch| gamma[ch] * inv[ch]).collect();
                        d_next.resize(d.len(), T::zero());
                        for ((o, dc), xc) in d_next.chunks_mut(c).zip(d.chunks(c)).zip(xhat.chunks(c)) {
                            for ch in 0..c {
                                o[ch] = scale[ch] * (dc[ch] - mean_db[ch] - xc[ch] * mean_dg[ch]);
                            }
                        }
                    }
                }
                // In place: flattening does not move memory, an activation scales elementwise.
                LayerSpec::Flatten => continue,
                LayerSpec::Activation { act } => {
                    act.backward(&cache.outs[i], &mut d);
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

/// Sets every column of `out` (length a multiple of `b.len()`) to `b`.
fn fill_bias<T: Real>(out: &mut [T], b: &[T]) {
    for col in out.chunks_mut(b.len()) {
        col.copy_from_slice(b);
    }
}

/// `s_r = Σ_j d_rj` for a column-major `rows × ·` buffer, accumulated in f64.
fn row_sums<T: Real>(d: &[T], rows: usize, s: &mut [T]) {
    let mut acc = vec![0.0f64; rows];
    for col in d.chunks(rows) {
        for (a, &v) in acc.iter_mut().zip(col) {
            *a += v.to_f64();
        }
    }
    for (s, a) in s.iter_mut().zip(acc) {
        *s = T::from_f64(a);
    }
}

/// Per-channel mean and biased variance of channels-last data (`c` channels, interleaved).
fn channel_stats<T: Real>(x: &[T], c: usize) -> (Vec<f64>, Vec<f64>) {
    let count = (x.len() / c) as f64;
    let mut mean = vec![0.0f64; c];
    for chunk in x.chunks(c) {
        for (m, &v) in mean.iter_mut().zip(chunk) {
            *m += v.to_f64();
        }
    }
    mean.iter_mut().for_each(|m| *m /= count);
    let mut var = vec![0.0f64; c];
    for chunk in x.chunks(c) {
        for ch in 0..c {
            let dv = chunk[ch].to_f64() - mean[ch];
            var[ch] += dv * dv;
        }
    }
    var.iter_mut().for_each(|v| *v /= count);
    (mean, var)
}

/// Geometry of a 'same' convolution.
#[derive(Clone, Copy, Debug)]
struct ConvGeo {
    input: Shape,
    output: Shape,
    kernel: usize,
    stride: usize,
    pad_h: usize,
    pad_w: usize,
}

impl ConvGeo {
    fn new(input: Shape, output: Shape, kernel: usize, stride: usize) -> ConvGeo {
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
                            match g.tap(oy, ox, ky, kx) {
                                Some(p) => seg.copy_from_slice(&src[p * c..][..c]),
                                None => seg.fill(T::zero()),
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
    dx.clear();
    dx.resize(in_len * batch, T::zero());
    dx.par_chunks_mut(in_len)
        .zip(cols.par_chunks(per))
        .for_each(|(dst, src)| {
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
            .backward(&x, &r, &mut cache, &mut grads, true, Par::Seq)
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

    #[test]
    fn activations_parse_and_refuse_nonsense() {
        assert_eq!(Act::parse("leaky-relu").unwrap(), Act::LeakyRelu { slope: 0.1 });
        assert_eq!(
            Act::parse("leaky-relu:0.2").unwrap(),
            Act::LeakyRelu { slope: 0.2 }
        );
        assert!(Act::parse("leaky-relu:2").is_err());
        assert!(Act::parse("tanh").is_err());
        for a in ["sigmoid", "relu", "identity", "leaky-relu:0.1"] {
            assert_eq!(Act::parse(a).unwrap().name(), a);
        }
    }
}
