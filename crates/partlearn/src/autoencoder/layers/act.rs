//! Elementwise activations (METHODS.md §6.1): forward in place, and a backward pass written in
//! terms of the activation's output.

use faer::Par;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linalg::kernels::{simd_wide, Kernel};
use crate::params;
use crate::real::Real;

/// Elementwise activation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
#[non_exhaustive]
pub enum Act {
    /// `1 / (1 + e^{−z})`.
    Sigmoid,
    /// `z` for `z > 0`, `slope·z` otherwise (the reference decoder uses slope 0.1).
    LeakyRelu {
        /// Factor of negative inputs.
        slope: f64,
    },
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
        let act = match s {
            "sigmoid" => Act::Sigmoid,
            "relu" => Act::Relu,
            "identity" | "linear" => Act::Identity,
            "leaky-relu" => Act::LeakyRelu { slope: 0.1 },
            _ => match s.strip_prefix("leaky-relu:") {
                Some(v) => Act::LeakyRelu {
                    slope: v.parse().map_err(|_| bad())?,
                },
                None => return Err(bad()),
            },
        };
        act.check("activation")?;
        Ok(act)
    }

    /// Checks the activation's parameter, reported as the parameter `name`: a leaky slope in
    /// `[0, 1)`.
    pub fn check(&self, name: &'static str) -> Result<()> {
        match *self {
            Act::LeakyRelu { slope } => params::check_unit_below_one(name, slope, "the leaky-relu slope"),
            _ => Ok(()),
        }
        .map_err(|e| params::with_value(e, self.name()))
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
        simd_wide(ActPass {
            act: *self,
            y: None,
            bias: None,
            z,
        })
    }

    /// `y = act(z)` in place, with `bias` added to every column of `z` first (`rows = bias.len()`).
    #[inline(always)]
    fn forward_inner<T: Real>(&self, z: &mut [T], bias: Option<&[T]>) {
        match *self {
            Act::Sigmoid => map(z, bias, |v| T::one() / (T::one() + (-v).exp_vectorizable())),
            // A select, not a branch: vectorizes, and random signs cost no mispredictions.
            Act::LeakyRelu { slope } => {
                let s = T::from_f64(slope);
                map(z, bias, |v| if v < T::zero() { v * s } else { v })
            }
            Act::Relu => map(z, bias, |v| v.max(T::zero())),
            Act::Identity => map(z, bias, |v| v),
        }
    }

    /// `dz = dy · act'(z)` in place on `d`, from the *outputs* `y` (every activation here has a
    /// derivative that is a function of its output: `y(1−y)`, `[y > 0]`, …).
    pub fn backward<T: Real>(&self, y: &[T], d: &mut [T]) {
        simd_wide(ActPass {
            act: *self,
            y: Some(y),
            bias: None,
            z: d,
        })
    }

    #[inline(always)]
    fn backward_inner<T: Real>(&self, y: &[T], d: &mut [T]) {
        match *self {
            Act::Sigmoid => {
                for (d, &y) in d.iter_mut().zip(y) {
                    *d = *d * y * (T::one() - y);
                }
            }
            Act::LeakyRelu { slope } => {
                let s = T::from_f64(slope);
                for (d, &y) in d.iter_mut().zip(y) {
                    *d = if y <= T::zero() { *d * s } else { *d };
                }
            }
            Act::Relu => {
                for (d, &y) in d.iter_mut().zip(y) {
                    *d = if y <= T::zero() { T::zero() } else { *d };
                }
            }
            Act::Identity => {}
        }
    }
}

/// `v ← f(v + b_r)` for every value `v` of row `r` of the column-major `z` (`rows =
/// bias.len()`), or `v ← f(v)` without a bias.
#[inline(always)]
fn map<T: Real>(z: &mut [T], bias: Option<&[T]>, f: impl Fn(T) -> T) {
    match bias {
        Some(b) if !b.is_empty() => {
            for col in z.chunks_mut(b.len()) {
                for (v, &bb) in col.iter_mut().zip(b) {
                    *v = f(*v + bb);
                }
            }
        }
        _ => {
            for v in z {
                *v = f(*v);
            }
        }
    }
}

/// [`Act::forward`] (`y` = `None`, on `z` in place, after adding `bias` if given) or
/// [`Act::backward`] (on the gradient `z` from the outputs `y`), compiled for AVX2 or AVX-512 by [`simd_wide`].
struct ActPass<'a, T> {
    act: Act,
    y: Option<&'a [T]>,
    bias: Option<&'a [T]>,
    z: &'a mut [T],
}

impl<T: Real> Kernel for ActPass<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        match self.y {
            None => self.act.forward_inner(self.z, self.bias),
            Some(y) => self.act.backward_inner(y, self.z),
        }
    }
}

/// Values per parallel task of the elementwise passes.
const PAR_CHUNK: usize = 1 << 14;

impl Act {
    /// [`forward`](Act::forward) in chunks on `par`'s threads when `z` is large (elementwise:
    /// the same bits as one pass).
    pub(super) fn forward_par<T: Real>(&self, z: &mut [T], par: Par) {
        use rayon::prelude::*;
        if matches!(par, Par::Seq) || z.len() < 2 * PAR_CHUNK || *self == Act::Identity {
            return self.forward(z);
        }
        z.par_chunks_mut(PAR_CHUNK).for_each(|c| self.forward(c));
    }

    /// The epilogue of a dense or convolution layer followed by this activation: `z ←
    /// act(z + b)` with `b` added to every column (`rows = b.len()`), in blocks of whole columns
    /// on `par`'s threads when `z` is large (elementwise: the same bits as one pass).
    pub(super) fn forward_bias_par<T: Real>(&self, z: &mut [T], b: &[T], par: Par) {
        use rayon::prelude::*;
        let pass = |z: &mut [T]| {
            simd_wide(ActPass {
                act: *self,
                y: None,
                bias: Some(b),
                z,
            })
        };
        let block = PAR_CHUNK.div_ceil(b.len().max(1)) * b.len().max(1);
        if matches!(par, Par::Seq) || z.len() < 2 * block {
            return pass(z);
        }
        z.par_chunks_mut(block).for_each(pass);
    }

    /// [`backward`](Act::backward) in chunks on `par`'s threads when `d` is large.
    pub(super) fn backward_par<T: Real>(&self, y: &[T], d: &mut [T], par: Par) {
        use rayon::prelude::*;
        if matches!(par, Par::Seq) || d.len() < 2 * PAR_CHUNK || *self == Act::Identity {
            return self.backward(y, d);
        }
        d.par_chunks_mut(PAR_CHUNK)
            .zip(y.par_chunks(PAR_CHUNK))
            .for_each(|(d, y)| self.backward(y, d));
    }
}

impl std::str::FromStr for Act {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Act::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every activation's forward pass (with a bias) and backward pass give the same bits
    /// compiled for each instruction set the CPU has ([`simd_wide`] may pick any of them).
    #[test]
    fn passes_are_the_same_at_every_instruction_level() {
        use crate::linalg::kernels::{simd_at, Level};
        let mut rng = crate::rng::Rng::new(3);
        let (rows, cols) = (37, 5);
        let z0: Vec<f32> = (0..rows * cols)
            .map(|_| (rng.uniform() * 8.0 - 4.0) as f32)
            .collect();
        let bias: Vec<f32> = (0..rows).map(|_| (rng.uniform() - 0.5) as f32).collect();
        let d0: Vec<f32> = (0..rows * cols).map(|_| (rng.uniform() - 0.5) as f32).collect();
        for act in [
            Act::Sigmoid,
            Act::LeakyRelu { slope: 0.1 },
            Act::Relu,
            Act::Identity,
        ] {
            let runs: Vec<Vec<u32>> = Level::available()
                .into_iter()
                .map(|level| {
                    let mut y = z0.clone();
                    simd_at(
                        level,
                        ActPass {
                            act,
                            y: None,
                            bias: Some(&bias),
                            z: &mut y,
                        },
                    );
                    let mut d = d0.clone();
                    simd_at(
                        level,
                        ActPass {
                            act,
                            y: Some(&y),
                            bias: None,
                            z: &mut d,
                        },
                    );
                    y.iter().chain(&d).map(|v| v.to_bits()).collect()
                })
                .collect();
            assert!(runs.windows(2).all(|r| r[0] == r[1]), "{act:?}");
        }
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
