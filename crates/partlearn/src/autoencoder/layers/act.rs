//! Elementwise activations (METHODS.md §6.1): forward in place, and a backward pass written in
//! terms of the activation's output.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::real::Real;

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
