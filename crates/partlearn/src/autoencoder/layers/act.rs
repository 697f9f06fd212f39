//! Elementwise activations (METHODS.md §6.1): forward in place, and a backward pass written in
//! terms of the activation's output.

use faer::Par;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linalg::kernels::{simd, Kernel};
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
        simd(ActPass {
            act: *self,
            y: None,
            z,
        })
    }

    #[inline(always)]
    fn forward_inner<T: Real>(&self, z: &mut [T]) {
        match *self {
            Act::Sigmoid => {
                for v in z {
                    *v = T::one() / (T::one() + (-*v).exp_vectorizable());
                }
            }
            // A select, not a branch: vectorizes, and random signs cost no mispredictions.
            Act::LeakyRelu { slope } => {
                let s = T::from_f64(slope);
                for v in z {
                    *v = if *v < T::zero() { *v * s } else { *v };
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
        simd(ActPass {
            act: *self,
            y: Some(y),
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

/// [`Act::forward`] (`y` = `None`, on `z` in place) or [`Act::backward`] (on the gradient `z`
/// from the outputs `y`), compiled for AVX2 by [`simd`].
struct ActPass<'a, T> {
    act: Act,
    y: Option<&'a [T]>,
    z: &'a mut [T],
}

impl<T: Real> Kernel for ActPass<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        match self.y {
            None => self.act.forward_inner(self.z),
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
