//! Optimizers (SGD with momentum, Adam, Adadelta) and learning-rate schedules, shared by the
//! auto-encoders ([`crate::autoencoder`]) and Neural NMF ([`crate::deep::neural`]).
//!
//! State is one or two buffers per parameter tensor, kept in the order the model lists its
//! tensors, so that a checkpoint can save and restore it (`--resume` continues bit for bit).
//! Tensors are flat slices ([`Optimizer::update`]) or faer matrices ([`Optimizer::update_mat`],
//! the buffer then holds the columns one after another).

use faer::Mat;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linalg::kernels::{simd_wide, Kernel};
use crate::params;
use crate::real::Real;

/// The optimizer families, by name (`sgd`, `adam`, `adadelta`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum OptimizerKind {
    /// SGD with momentum 0.9 (default learning rate 0.01).
    Sgd,
    /// Adam with β₁ 0.9, β₂ 0.999, ε 1e-8 (default learning rate 1e-3).
    Adam,
    /// Adadelta with ρ 0.95, ε 1e-7 (default learning rate 1.0, the reference).
    Adadelta,
}

impl std::str::FromStr for OptimizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            "adadelta" => Ok(OptimizerKind::Adadelta),
            _ => Err(Error::invalid("optimizer", s, "use sgd, adam or adadelta")),
        }
    }
}

/// An optimizer and its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
#[non_exhaustive]
pub enum OptimizerSpec {
    /// `v ← μ v + g`, `w ← w − lr·v` (PyTorch's form); Nesterov: `w ← w − lr·(g + μ v)`.
    Sgd {
        /// Learning rate (default 0.01).
        lr: f64,
        /// Momentum `μ` in `[0, 1)` (default 0.9).
        momentum: f64,
        /// Nesterov's form of the momentum step (default off).
        nesterov: bool,
    },
    /// Kingma & Ba with bias correction: `w ← w − lr·m̂/(√v̂ + ε)`.
    Adam {
        /// Learning rate (default 1e-3).
        lr: f64,
        /// Decay of the first moment `m`, in `[0, 1)` (default 0.9).
        beta1: f64,
        /// Decay of the second moment `v`, in `[0, 1)` (default 0.999).
        beta2: f64,
        /// `ε` of the denominator (default 1e-8).
        eps: f64,
    },
    /// Zeiler's Adadelta as in Keras 2.2 (the reference: lr 1.0, ρ 0.95, ε 1e-7):
    /// `a ← ρa + (1−ρ)g²`, `u = g·√(d + ε)/√(a + ε)`, `w ← w − lr·u`, `d ← ρd + (1−ρ)u²`.
    Adadelta {
        /// Learning rate (default 1.0).
        lr: f64,
        /// Decay `ρ` of both accumulators, in `[0, 1)` (default 0.95).
        rho: f64,
        /// `ε` (default 1e-7).
        eps: f64,
    },
}

impl OptimizerSpec {
    /// The optimizer `kind` with its usual defaults, the learning rate replaced by `lr` when
    /// given (checked by [`OptimizerSpec::validate`], e.g. through the method's `check()`).
    pub fn new(kind: OptimizerKind, lr: Option<f64>) -> OptimizerSpec {
        match kind {
            OptimizerKind::Sgd => OptimizerSpec::Sgd {
                lr: lr.unwrap_or(0.01),
                momentum: 0.9,
                nesterov: false,
            },
            OptimizerKind::Adam => OptimizerSpec::Adam {
                lr: lr.unwrap_or(1e-3),
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            OptimizerKind::Adadelta => OptimizerSpec::Adadelta {
                lr: lr.unwrap_or(1.0),
                rho: 0.95,
                eps: 1e-7,
            },
        }
    }

    /// [`OptimizerSpec::new`] for the optimizer `name` (`sgd`, `adam`, `adadelta`), checked.
    pub fn named(name: &str, lr: Option<f64>) -> Result<OptimizerSpec> {
        let spec = OptimizerSpec::new(name.parse()?, lr);
        spec.validate()?;
        Ok(spec)
    }

    /// Base learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            OptimizerSpec::Sgd { lr, .. }
            | OptimizerSpec::Adam { lr, .. }
            | OptimizerSpec::Adadelta { lr, .. } => lr,
        }
    }

    /// Checks the hyper-parameters: `learning_rate` finite and `> 0`, the decay rates
    /// (`momentum`, `beta1`, `beta2`, `rho`) in `[0, 1)`, `eps > 0`.
    pub fn validate(&self) -> Result<()> {
        params::check_positive("learning_rate", self.lr(), "the step size")?;
        let unit = params::check_unit_below_one;
        match *self {
            OptimizerSpec::Sgd { momentum, .. } => unit("momentum", momentum, "the momentum of SGD"),
            OptimizerSpec::Adam {
                beta1, beta2, eps, ..
            } => {
                unit("beta1", beta1, "the decay of Adam's first moment")?;
                unit("beta2", beta2, "the decay of Adam's second moment")?;
                params::check_positive("eps", eps, "Adam's denominator offset")
            }
            OptimizerSpec::Adadelta { rho, eps, .. } => {
                unit("rho", rho, "the decay of Adadelta's accumulators")?;
                params::check_positive("eps", eps, "Adadelta's offset")
            }
        }
    }

    fn n_buffers(&self) -> usize {
        match self {
            OptimizerSpec::Sgd { .. } => 1,
            OptimizerSpec::Adam { .. } | OptimizerSpec::Adadelta { .. } => 2,
        }
    }
}

/// Learning-rate schedule: the factor applied to the base rate at epoch `e` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
#[non_exhaustive]
pub enum Schedule {
    /// `1` at every epoch.
    Constant,
    /// `factor^⌊e/every⌋`.
    Step {
        /// Epochs between two reductions (≥ 1).
        every: usize,
        /// Factor applied at each reduction (> 0).
        factor: f64,
    },
    /// `gamma^e`.
    Exponential {
        /// Factor per epoch (> 0).
        gamma: f64,
    },
    /// `½(1 + cos(π e/E))` over the `E` epochs of the run.
    Cosine,
}

impl Schedule {
    /// Parses `constant`, `step:EVERY:FACTOR`, `exp:GAMMA`, `cosine` (the form [`Display`]
    /// writes), checked by [`Schedule::validate`].
    ///
    /// [`Display`]: std::fmt::Display
    pub fn parse(s: &str) -> Result<Schedule> {
        let bad = || {
            Error::invalid(
                "schedule",
                s,
                "use constant, step:EVERY:FACTOR (e.g. step:10:0.5), exp:GAMMA (e.g. exp:0.98) or cosine",
            )
        };
        let parts: Vec<&str> = s.split(':').collect();
        let num = |v: &str| v.parse::<f64>().map_err(|_| bad());
        let schedule = match parts.as_slice() {
            ["constant"] => Schedule::Constant,
            ["cosine"] => Schedule::Cosine,
            ["exp", g] => Schedule::Exponential { gamma: num(g)? },
            ["step", e, f] => Schedule::Step {
                every: e.parse().map_err(|_| bad())?,
                factor: num(f)?,
            },
            _ => return Err(bad()),
        };
        schedule.validate()?;
        Ok(schedule)
    }

    /// Checks the values: a step length `EVERY ≥ 1`, factors and `GAMMA` finite and `> 0`.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: &str| Err(Error::invalid("schedule", self, reason.to_string()));
        match *self {
            Schedule::Step { every: 0, .. } => bad("the step length EVERY must be at least 1 epoch"),
            Schedule::Step { factor: f, .. } | Schedule::Exponential { gamma: f }
                if !(f.is_finite() && f > 0.0) =>
            {
                bad("the factor must be a finite number > 0")
            }
            _ => Ok(()),
        }
    }

    /// Factor of the base learning rate at `epoch` of `epochs`.
    pub fn factor(&self, epoch: usize, epochs: usize) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Step { every, factor } => factor.powi((epoch / every) as i32),
            Schedule::Exponential { gamma } => gamma.powi(epoch as i32),
            Schedule::Cosine => {
                0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs.max(1) as f64).cos())
            }
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Schedule::parse(s)
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Constant => f.write_str("constant"),
            Schedule::Step { every, factor } => write!(f, "step:{every}:{factor}"),
            Schedule::Exponential { gamma } => write!(f, "exp:{gamma}"),
            Schedule::Cosine => f.write_str("cosine"),
        }
    }
}

/// Values per parallel task of [`Optimizer::update`] (64 KiB of `f32`: a task is long enough to
/// amortize its scheduling, and a tensor of the shallow auto-encoder makes several).
pub const PAR_CHUNK: usize = 1 << 14;

/// What a step needs besides a tensor's values, gradient and state: the optimizer, the step
/// count (Adam's bias correction) and the schedule's factor ([`Optimizer::rule`]).
#[derive(Clone, Copy, Debug)]
pub struct StepRule {
    spec: OptimizerSpec,
    t: u64,
    lr_factor: f64,
}

/// The optimizer state of a range of one tensor's values ([`Optimizer::states`]).
#[derive(Debug)]
pub struct StateChunk<'a, T> {
    b0: &'a mut [T],
    b1: Option<&'a mut [T]>,
}

impl<'a, T> StateChunk<'a, T> {
    /// Consecutive pieces of `size` values (the last may be shorter), to be updated with the
    /// same pieces of the values and the gradient.
    pub fn chunks(self, size: usize) -> impl Iterator<Item = StateChunk<'a, T>> {
        let StateChunk { b0, b1 } = self;
        let mut b1 = b1.map(|b| b.chunks_mut(size));
        b0.chunks_mut(size).map(move |b0| StateChunk {
            b0,
            b1: b1.as_mut().and_then(Iterator::next),
        })
    }
}

impl StepRule {
    /// One step on the values `w` with gradient `g` and their `state` (the same range of each).
    /// Elementwise (+, ×, ÷, √ are exactly rounded), so any split of a tensor gives the same
    /// bits; `#[inline(always)]`, so that inside a [`Kernel`] it is compiled with the kernel's
    /// instruction set.
    #[inline(always)]
    pub fn apply<T: Real>(self, state: StateChunk<'_, T>, w: &mut [T], g: &[T]) {
        let StepRule { spec, t, lr_factor } = self;
        let StateChunk { b0: buf0, b1: buf1 } = state;
        match spec {
            OptimizerSpec::Sgd {
                lr,
                momentum,
                nesterov,
            } => {
                let (lr, mu) = (T::from_f64(lr * lr_factor), T::from_f64(momentum));
                for ((w, &g), v) in w.iter_mut().zip(g).zip(buf0.iter_mut()) {
                    *v = mu * *v + g;
                    let step = if nesterov { g + mu * *v } else { *v };
                    *w = *w - lr * step;
                }
            }
            OptimizerSpec::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                let t = t as i32;
                let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
                let (b1, b2) = (T::from_f64(beta1), T::from_f64(beta2));
                let (ob1, ob2) = (T::one() - b1, T::one() - b2);
                let (lr, ic1, ic2, eps) = (
                    T::from_f64(lr * lr_factor),
                    T::from_f64(1.0 / c1),
                    T::from_f64(1.0 / c2),
                    T::from_f64(eps),
                );
                let v = buf1.unwrap_or_default();
                for (((w, &g), m), v) in w.iter_mut().zip(g).zip(buf0.iter_mut()).zip(v.iter_mut()) {
                    *m = b1 * *m + ob1 * g;
                    *v = b2 * *v + ob2 * g * g;
                    *w = *w - lr * (*m * ic1) / ((*v * ic2).sqrt() + eps);
                }
            }
            OptimizerSpec::Adadelta { lr, rho, eps } => {
                let (lr, r, or, eps) = (
                    T::from_f64(lr * lr_factor),
                    T::from_f64(rho),
                    T::from_f64(1.0 - rho),
                    T::from_f64(eps),
                );
                let d = buf1.unwrap_or_default();
                for (((w, &g), a), d) in w.iter_mut().zip(g).zip(buf0.iter_mut()).zip(d.iter_mut()) {
                    *a = r * *a + or * g * g;
                    // √(d+ε)/√(a+ε) as one square root of a quotient (one division and one
                    // root per value instead of two roots and a division).
                    let u = g * ((*d + eps) / (*a + eps)).sqrt();
                    *w = *w - lr * u;
                    *d = r * *d + or * u * u;
                }
            }
        }
    }
}

/// [`StepRule::apply`] on one tensor or chunk, compiled for AVX2 or AVX-512 by [`simd_wide`].
struct Step<'a, T> {
    rule: StepRule,
    state: StateChunk<'a, T>,
    w: &'a mut [T],
    g: &'a [T],
}

impl<T: Real> Kernel for Step<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        self.rule.apply(self.state, self.w, self.g)
    }
}

/// An optimizer's state for a list of parameter tensors.
#[derive(Clone, Debug)]
pub struct Optimizer<T> {
    /// The optimizer and its hyper-parameters.
    pub spec: OptimizerSpec,
    /// Steps taken so far (Adam's bias correction).
    pub t: u64,
    /// `buffers[i]` = the state buffers of tensor `i` (momentum; or first/second moments; or
    /// Adadelta's two accumulators).
    pub buffers: Vec<Vec<Vec<T>>>,
}

impl<T: Real> Optimizer<T> {
    /// Fresh (zero) state for tensors of the given sizes.
    pub fn new(spec: OptimizerSpec, sizes: &[usize]) -> Self {
        Optimizer {
            spec,
            t: 0,
            buffers: sizes
                .iter()
                .map(|&n| (0..spec.n_buffers()).map(|_| vec![T::zero(); n]).collect())
                .collect(),
        }
    }

    /// Starts a step (call once per mini-batch, before [`update`](Optimizer::update)).
    pub fn begin_step(&mut self) {
        self.t += 1;
    }

    /// The step's rule, for [`StepRule::apply`] on chunks of [`states`](Optimizer::states).
    pub fn rule(&self, lr_factor: f64) -> StepRule {
        StepRule {
            spec: self.spec,
            t: self.t,
            lr_factor,
        }
    }

    /// The state of every tensor, in the order of the tensors.
    pub fn states(&mut self) -> impl Iterator<Item = StateChunk<'_, T>> {
        self.buffers.iter_mut().map(|bufs| state_of(bufs))
    }

    /// Updates tensor `i` (`w`) with its gradient `g`; `lr_factor` comes from the schedule.
    /// Tensors of at least [`PAR_CHUNK`]` · 2` values are updated in chunks of [`PAR_CHUNK`] on
    /// the current rayon pool's threads (the same bits: the step is elementwise).
    pub fn update(&mut self, i: usize, w: &mut [T], g: &[T], lr_factor: f64) {
        use rayon::prelude::*;
        let rule = self.rule(lr_factor);
        let state = state_of(&mut self.buffers[i]);
        if w.len() < 2 * PAR_CHUNK || rayon::current_num_threads() < 2 {
            return simd_wide(Step { rule, state, w, g });
        }
        let states: Vec<_> = state.chunks(PAR_CHUNK).collect();
        w.par_chunks_mut(PAR_CHUNK)
            .zip(g.par_chunks(PAR_CHUNK))
            .zip(states)
            .for_each(|((w, g), state)| simd_wide(Step { rule, state, w, g }));
    }

    /// [`update`](Optimizer::update) for a matrix tensor `i` (`w`, gradient `g` of the same
    /// shape; its buffers sized `nrows·ncols`): column `j` uses the buffer entries
    /// `j·nrows .. (j+1)·nrows`.
    pub fn update_mat(&mut self, i: usize, w: &mut Mat<T>, g: &Mat<T>, lr_factor: f64) {
        let rule = self.rule(lr_factor);
        let r = w.nrows();
        debug_assert_eq!(w.shape(), g.shape());
        let states = state_of(&mut self.buffers[i]).chunks(r.max(1));
        for (j, state) in (0..w.ncols()).zip(states) {
            let (w, g) = (w.col_as_slice_mut(j), g.col_as_slice(j));
            simd_wide(Step { rule, state, w, g });
        }
    }
}

/// A tensor's whole state: its first buffer and its second one, if the optimizer keeps two.
fn state_of<T>(bufs: &mut [Vec<T>]) -> StateChunk<'_, T> {
    match bufs {
        [b0] => StateChunk { b0, b1: None },
        [b0, b1, ..] => StateChunk { b0, b1: Some(b1) },
        [] => StateChunk {
            b0: &mut [],
            b1: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every optimizer's step gives the same bits compiled for each instruction set the CPU has
    /// (baseline, AVX2, AVX-512): [`simd_wide`] may pick any of them.
    #[test]
    fn steps_are_the_same_at_every_instruction_level() {
        use crate::linalg::kernels::{simd_at, Level};
        let mut rng = crate::rng::Rng::new(8);
        let n = 1003;
        let g: Vec<f32> = (0..n).map(|_| (rng.uniform() - 0.5) as f32).collect();
        let w0: Vec<f32> = (0..n).map(|_| (rng.uniform() - 0.5) as f32).collect();
        for name in ["sgd", "adam", "adadelta"] {
            let spec = OptimizerSpec::named(name, None).unwrap();
            let runs: Vec<Vec<u32>> = Level::available()
                .into_iter()
                .map(|level| {
                    let mut opt = Optimizer::<f32>::new(spec, &[n]);
                    let mut w = w0.clone();
                    for _ in 0..3 {
                        opt.begin_step();
                        let rule = opt.rule(0.5);
                        let state = state_of(&mut opt.buffers[0]);
                        simd_at(
                            level,
                            Step {
                                rule,
                                state,
                                w: &mut w,
                                g: &g,
                            },
                        );
                    }
                    w.iter().map(|v| v.to_bits()).collect()
                })
                .collect();
            assert!(runs.windows(2).all(|r| r[0] == r[1]), "{name}");
            assert_ne!(runs[0], w0.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
    }

    /// Each optimizer minimizes a convex quadratic `½ Σ c_i (w_i − 1)²`.
    #[test]
    fn every_optimizer_minimizes_a_quadratic() {
        let c = [1.0, 4.0, 0.25];
        for (name, lr, steps) in [("sgd", 0.05, 400), ("adam", 0.05, 2000), ("adadelta", 1.0, 4000)] {
            let spec = OptimizerSpec::named(name, Some(lr)).unwrap();
            let mut opt = Optimizer::<f64>::new(spec, &[3]);
            let mut w = vec![5.0, -3.0, 0.0];
            for _ in 0..steps {
                let g: Vec<f64> = w.iter().zip(c).map(|(w, c)| c * (w - 1.0)).collect();
                opt.begin_step();
                opt.update(0, &mut w, &g, 1.0);
            }
            for v in &w {
                assert!((v - 1.0).abs() < 0.05, "{name}: {w:?}");
            }
        }
    }

    /// Adam's first step moves every weight by `lr` against the sign of its gradient.
    #[test]
    fn adam_first_step_is_lr_times_sign() {
        let spec = OptimizerSpec::named("adam", Some(0.01)).unwrap();
        let mut opt = Optimizer::<f64>::new(spec, &[3]);
        let mut w = vec![0.0; 3];
        opt.begin_step();
        opt.update(0, &mut w, &[3.0, -1e-3, 100.0], 1.0);
        for (v, s) in w.iter().zip([-1.0, 1.0, -1.0]) {
            assert!((v - 0.01 * s).abs() < 1e-6, "{w:?}");
        }
    }

    /// Adadelta's first step with ε = 1e-7, ρ = 0.95: `u = g·√ε/√(0.05 g² + ε)`.
    #[test]
    fn adadelta_first_step_matches_its_formula() {
        let spec = OptimizerSpec::named("adadelta", None).unwrap();
        let mut opt = Optimizer::<f64>::new(spec, &[1]);
        let mut w = vec![0.0];
        opt.begin_step();
        opt.update(0, &mut w, &[2.0], 1.0);
        let expect = -2.0 * 1e-7f64.sqrt() / (0.05 * 4.0 + 1e-7f64).sqrt();
        assert!((w[0] - expect).abs() < 1e-15);
    }

    /// A matrix tensor steps exactly as the same values in a flat slice (column after column).
    #[test]
    fn matrix_tensors_step_as_flat_ones() {
        for name in ["sgd", "adam", "adadelta"] {
            let spec = OptimizerSpec::named(name, Some(0.1)).unwrap();
            let (mut flat, mut mat) = (
                Optimizer::<f64>::new(spec, &[12]),
                Optimizer::<f64>::new(spec, &[12]),
            );
            let mut w = Mat::<f64>::from_fn(3, 4, |i, j| (i as f64 - j as f64) * 0.3);
            let mut v: Vec<f64> = (0..4)
                .flat_map(|j| (0..3).map(move |i| (i as f64 - j as f64) * 0.3))
                .collect();
            for step in 0..5 {
                let g = Mat::<f64>::from_fn(3, 4, |i, j| ((i * 7 + j * 3 + step) % 5) as f64 - 2.0);
                let gr = &g;
                let gv: Vec<f64> = (0..4).flat_map(|j| (0..3).map(move |i| gr[(i, j)])).collect();
                flat.begin_step();
                flat.update(0, &mut v, &gv, 0.5);
                mat.begin_step();
                mat.update_mat(0, &mut w, &g, 0.5);
            }
            let wr = &w;
            let wv: Vec<f64> = (0..4).flat_map(|j| (0..3).map(move |i| wr[(i, j)])).collect();
            assert_eq!(wv, v, "{name}");
            assert_eq!(flat.buffers, mat.buffers, "{name}");
        }
    }

    #[test]
    fn schedules_and_bad_values() {
        assert_eq!(Schedule::parse("step:10:0.5").unwrap().factor(25, 100), 0.25);
        assert!((Schedule::parse("exp:0.9").unwrap().factor(2, 10) - 0.81).abs() < 1e-12);
        assert!((Schedule::Cosine.factor(50, 100) - 0.5).abs() < 1e-12);
        assert_eq!(Schedule::Constant.factor(7, 10), 1.0);
        for bad in ["step:0:0.5", "exp:-1", "linear", "step:3"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
        for s in ["constant", "cosine", "step:10:0.5", "exp:0.98"] {
            assert_eq!(Schedule::parse(s).unwrap().to_string(), s);
        }
        // Built directly, the same values are refused by `validate`.
        for bad in [
            Schedule::Step {
                every: 0,
                factor: 0.5,
            },
            Schedule::Step {
                every: 2,
                factor: f64::INFINITY,
            },
            Schedule::Exponential { gamma: 0.0 },
        ] {
            assert!(matches!(
                bad.validate(),
                Err(Error::InvalidOption {
                    option: "schedule",
                    ..
                })
            ));
        }
        assert!(OptimizerSpec::named("rmsprop", None).is_err());
        for lr in [0.0, f64::NAN] {
            assert!(matches!(
                OptimizerSpec::named("adam", Some(lr)),
                Err(Error::InvalidOption {
                    option: "learning_rate",
                    ..
                })
            ));
        }
        assert_eq!(
            OptimizerSpec::named("sgd", None).unwrap(),
            OptimizerSpec::new(OptimizerKind::Sgd, None)
        );
    }
}
