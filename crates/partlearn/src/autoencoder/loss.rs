//! The auto-encoder loss (METHODS.md §6.2–§6.4) and its gradients:
//! `L = (1/M) Σ_i ℓ(x⁽ⁱ⁾, x̂⁽ⁱ⁾) + β·Σ_j S(p, ρ̂_j) + (λ/2)·Σ (α·w²·[w>0] + w²·[w<0])`
//! with `ρ̂_j = (1/M) Σ_i h_j⁽ⁱ⁾` the mean activation of code unit `j` over the mini-batch.
//!
//! The reconstruction term is a per-pixel mean (Keras' `mse`, the reference code) or a sum over
//! the pixels of each image ([`Reduction`]): the relative weight of the two terms differs by
//! the number of pixels, and METHODS.md §6.5 shows that this choice decides whether a setting
//! such as `p = 0.01, β = 0.005` learns sparse parts or collapses to the mean image.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linalg::kernels::{simd_wide, Kernel};
use crate::params;
use crate::real::Real;

/// Per-sample reconstruction loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RecLoss {
    /// Squared error.
    Mse,
    /// Binary cross-entropy `−[x log x̂ + (1−x) log(1−x̂)]`, with `x̂` clipped to `[ε, 1−ε]`
    /// (`ε = 1e-7`); needs a sigmoid decoder and data in `[0, 1]`.
    Bce,
}

impl std::str::FromStr for RecLoss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mse" => Ok(RecLoss::Mse),
            "bce" => Ok(RecLoss::Bce),
            _ => Err(Error::invalid("reconstruction", s, "use mse or bce")),
        }
    }
}

/// How the per-pixel losses of one image are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Reduction {
    /// `ℓ = (1/N) Σ_l …` (Keras' `mse`; the reference code).
    Mean,
    /// `ℓ = Σ_l …` (the scale at which METHODS.md §6.5 reproduced the report with Adam).
    Sum,
}

impl std::str::FromStr for Reduction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            _ => Err(Error::invalid(
                "reduction",
                s,
                "use mean (per-pixel, the reference) or sum",
            )),
        }
    }
}

/// Sparsity penalty on the codes (METHODS.md §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
#[non_exhaustive]
pub enum Sparsity {
    /// No penalty.
    None,
    /// `Σ_j p log(p/ρ̂_j) + (1−p) log((1−p)/(1−ρ̂_j))`, `ρ̂` clipped to `[1e-7, 1 − 1e-7]`.
    Kl,
    /// `Σ_j (p − ρ̂_j)²` (Lee, Ekanadham & Ng).
    L2,
    /// `Σ_j sqrt((p − ρ̂_j)² + ε)` (Zhang & Lu). METHODS.md §10: their ε is unknown; the
    /// default `1e-6` makes the penalty close to `|p − ρ̂|` away from the target.
    EpsL1 {
        /// `ε > 0`.
        eps: f64,
    },
    /// `Σ_j log(1 + (p − ρ̂_j)²)` (Olshausen & Field, via Zhang & Lu).
    Log,
    /// `mean_i ‖h⁽ⁱ⁾‖₁` (codes are ≥ 0, so this is their mean sum).
    L1,
    /// `mean_i |s_o − S(h⁽ⁱ⁾)|` with `S` Hoyer's sparseness (§2.1) and target `s_o`.
    Hoyer {
        /// Target sparseness `s_o`, in `(0, 1)`.
        target: f64,
    },
}

impl Sparsity {
    /// Parses `none`, `kl`, `l2`, `eps-l1`, `eps-l1:EPS`, `log`, `l1`, `hoyer`, `hoyer:TARGET`,
    /// checked by [`Sparsity::validate`].
    pub fn parse(s: &str) -> Result<Sparsity> {
        let bad = || {
            Error::invalid(
                "sparsity",
                s,
                "use none, kl, l2, eps-l1[:EPS], log, l1 or hoyer[:TARGET] (0 < TARGET < 1)",
            )
        };
        let num = |v: &str| v.parse::<f64>().map_err(|_| bad());
        let sparsity = match s {
            "none" => Sparsity::None,
            "kl" => Sparsity::Kl,
            "l2" => Sparsity::L2,
            "eps-l1" => Sparsity::EpsL1 { eps: 1e-6 },
            "log" => Sparsity::Log,
            "l1" => Sparsity::L1,
            "hoyer" => Sparsity::Hoyer { target: 0.6 },
            _ => {
                if let Some(v) = s.strip_prefix("eps-l1:") {
                    Sparsity::EpsL1 { eps: num(v)? }
                } else if let Some(v) = s.strip_prefix("hoyer:") {
                    Sparsity::Hoyer { target: num(v)? }
                } else {
                    return Err(bad());
                }
            }
        };
        sparsity.validate()?;
        Ok(sparsity)
    }

    /// Checks the penalty's own value: `EPS` finite and `> 0`, Hoyer's `TARGET` in `(0, 1)`.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Sparsity::EpsL1 { eps } => params::check_positive("sparsity", eps, "the ε of eps-l1"),
            Sparsity::Hoyer { target } => {
                params::check_unit_open("sparsity", target, "the target sparseness of hoyer")
            }
            _ => Ok(()),
        }
        .map_err(|e| params::with_value(e, self))
    }

    /// Whether the penalty acts on the mean activations `ρ̂` (and so uses the target `p`).
    pub fn uses_target(&self) -> bool {
        matches!(
            self,
            Sparsity::Kl | Sparsity::L2 | Sparsity::EpsL1 { .. } | Sparsity::Log
        )
    }
}

/// The form [`Sparsity::parse`] reads (`kl`, `eps-l1:0.001`, `hoyer:0.6`, …).
impl std::fmt::Display for Sparsity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sparsity::None => f.write_str("none"),
            Sparsity::Kl => f.write_str("kl"),
            Sparsity::L2 => f.write_str("l2"),
            Sparsity::EpsL1 { eps } => write!(f, "eps-l1:{eps}"),
            Sparsity::Log => f.write_str("log"),
            Sparsity::L1 => f.write_str("l1"),
            Sparsity::Hoyer { target } => write!(f, "hoyer:{target}"),
        }
    }
}

impl std::str::FromStr for Sparsity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Sparsity::parse(s)
    }
}

/// Everything the loss needs besides the data: part of [`AeParams`](super::AeParams), whose
/// setters (`beta`, `p`, …) set these fields.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LossSpec {
    /// Per-sample reconstruction loss.
    pub reconstruction: RecLoss,
    /// How the per-pixel losses of one image are combined.
    pub reduction: Reduction,
    /// Penalty on the codes (§6.3).
    pub sparsity: Sparsity,
    /// Target mean activation `p` of the ρ̂ penalties.
    pub p: f64,
    /// Weight `β` of the sparsity penalty.
    pub beta: f64,
    /// Asymmetric weight decay `λ` on the decoder weights (0 = off).
    pub decay_lambda: f64,
    /// Decay factor `α` of the positive decoder weights (0 in the reference, 1 = plain L2).
    pub decay_alpha: f64,
}

impl Default for LossSpec {
    fn default() -> Self {
        LossSpec {
            reconstruction: RecLoss::Mse,
            reduction: Reduction::Mean,
            sparsity: Sparsity::Kl,
            p: 0.05,
            beta: 1e-3,
            decay_lambda: 0.0,
            decay_alpha: 0.0,
        }
    }
}

impl LossSpec {
    /// Checks the values: the sparsity's own, `p` in `(0, 1)` for the penalties on `ρ̂`, the
    /// weights `beta`, `decay_lambda`, `decay_alpha` finite and `≥ 0`.
    pub(crate) fn validate(&self) -> Result<()> {
        self.sparsity.validate()?;
        if self.sparsity.uses_target() {
            params::check_unit_open("p", self.p, "the target mean activation")?;
        }
        params::check_weight("beta", self.beta)?;
        params::check_weight("decay_lambda", self.decay_lambda)?;
        params::check_weight("decay_alpha", self.decay_alpha)
    }
}

/// The terms of one batch's loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LossTerms {
    /// `(1/M) Σ_i ℓ_i`.
    pub reconstruction: f64,
    /// `β · penalty`.
    pub sparsity: f64,
    /// Weight-decay term.
    pub decay: f64,
    /// `Σ_i ‖x̂⁽ⁱ⁾ − x⁽ⁱ⁾‖²` (for the relative error and the MSE, whatever the loss).
    pub sq_error: f64,
}

impl LossTerms {
    /// The total loss.
    pub fn total(&self) -> f64 {
        self.reconstruction + self.sparsity + self.decay
    }
}

const BCE_EPS: f64 = 1e-7;
const KL_CLIP: f64 = 1e-7;

/// The squared error of every sample (`n` values each) summed in f64, and its gradient
/// `grad = g·(xhat − x)`: per sample eight partial sums in `T` (they vectorize), then the
/// sample's sum in f64. Compiled for AVX2 or AVX-512 by [`simd_wide`].
struct MseRows<'a, T> {
    n: usize,
    g: T,
    x: &'a [T],
    xhat: &'a [T],
    grad: &'a mut [T],
}

impl<T: Real> Kernel for MseRows<'_, T> {
    type Out = f64;
    #[inline(always)]
    fn run(self) -> f64 {
        let MseRows { n, g, x, xhat, grad } = self;
        let mut sq = 0.0f64;
        // Eight lanes as array values (not indexed in place): LLVM vectorizes this form for
        // AVX2 too, where the indexed form stayed scalar.
        for ((gc, ac), bc) in grad.chunks_mut(n).zip(xhat.chunks(n)).zip(x.chunks(n)) {
            let mut acc = [T::zero(); 8];
            let body = n - n % 8;
            let lanes = gc[..body]
                .chunks_exact_mut(8)
                .zip(ac[..body].chunks_exact(8))
                .zip(bc[..body].chunks_exact(8));
            for ((gv, av), bv) in lanes {
                let d: [T; 8] = std::array::from_fn(|l| av[l] - bv[l]);
                acc = std::array::from_fn(|l| acc[l] + d[l] * d[l]);
                for (g8, &dl) in gv.iter_mut().zip(&d) {
                    *g8 = g * dl;
                }
            }
            let mut col = acc.iter().fold(0.0f64, |s, &v| s + v.to_f64());
            for ((gr, &a), &b) in gc[body..].iter_mut().zip(&ac[body..]).zip(&bc[body..]) {
                let d = a - b;
                col += (d * d).to_f64();
                *gr = g * d;
            }
            sq += col;
        }
        sq
    }
}

/// Reconstruction term of samples `x`, `xhat` (`n × ·`, column-major) that belong to a batch of
/// `batch` samples, and its gradient `∂L/∂x̂` written to `grad`. Returns
/// `((1/M)Σ ℓ_i, Σ‖x̂ − x‖²)` over the given samples (`M = batch`).
pub fn reconstruction<T: Real>(
    spec: &LossSpec,
    n: usize,
    batch: usize,
    x: &[T],
    xhat: &[T],
    grad: &mut [T],
) -> (f64, f64) {
    let scale = match spec.reduction {
        Reduction::Mean => 1.0 / (n as f64 * batch as f64),
        Reduction::Sum => 1.0 / batch as f64,
    };
    let mut loss = 0.0f64;
    let mut sq = 0.0f64;
    match spec.reconstruction {
        RecLoss::Mse => {
            let g = T::from_f64(2.0 * scale);
            sq = simd_wide(MseRows { n, g, x, xhat, grad });
            loss = sq * scale;
        }
        RecLoss::Bce => {
            for ((gr, &a), &b) in grad.iter_mut().zip(xhat).zip(x) {
                let (a, b) = (a.to_f64(), b.to_f64());
                sq += (a - b) * (a - b);
                let c = a.clamp(BCE_EPS, 1.0 - BCE_EPS);
                loss -= b * c.ln() + (1.0 - b) * (1.0 - c).ln();
                *gr = if a == c {
                    T::from_f64(-scale * (b / c - (1.0 - b) / (1.0 - c)))
                } else {
                    T::zero()
                };
            }
            loss *= scale;
        }
    }
    (loss, sq)
}

/// Adds each of the `k` code units' activation summed over the samples of `h` (`k × ·`) to
/// `sums` (in `f64`, samples in order): what [`rho_penalty`] needs of a part of a batch.
pub fn add_unit_sums<T: Real>(k: usize, h: &[T], sums: &mut [f64]) {
    for col in h.chunks(k) {
        for (r, &v) in sums.iter_mut().zip(col) {
            *r += v.to_f64();
        }
    }
}

impl Sparsity {
    /// A penalty on the mean activations `ρ̂_j` over the batch (KL, L2, εL1, log: it couples the
    /// samples), rather than one on each sample's code (L1, Hoyer, none).
    pub fn on_rho(&self) -> bool {
        matches!(
            self,
            Sparsity::Kl | Sparsity::L2 | Sparsity::EpsL1 { .. } | Sparsity::Log
        )
    }
}

/// A penalty on `ρ̂` ([`Sparsity::on_rho`]) of a batch of `batch` samples whose units' summed
/// activations are `sums`: returns `β Σ_j S(ρ̂_j)` and writes `∂/∂h_j⁽ⁱ⁾ = β S'(ρ̂_j)/M` (the same
/// for every sample `i`) to `unit_grad`. Zero (and no gradient) for the other penalties.
pub fn rho_penalty<T: Real>(spec: &LossSpec, sums: &[f64], batch: usize, unit_grad: &mut [T]) -> f64 {
    let (p, beta, m) = (spec.p, spec.beta, batch as f64);
    unit_grad.iter_mut().for_each(|g| *g = T::zero());
    if beta == 0.0 || !spec.sparsity.on_rho() {
        return 0.0;
    }
    // Value S(ρ̂_j) and dS/dρ̂_j; ∂ρ̂_j/∂h_j⁽ⁱ⁾ = 1/M.
    let penalty = |r: f64| -> (f64, f64) {
        match spec.sparsity {
            Sparsity::Kl => {
                if r < KL_CLIP || r > 1.0 - KL_CLIP {
                    let c = r.clamp(KL_CLIP, 1.0 - KL_CLIP);
                    (p * (p / c).ln() + (1.0 - p) * ((1.0 - p) / (1.0 - c)).ln(), 0.0)
                } else {
                    (
                        p * (p / r).ln() + (1.0 - p) * ((1.0 - p) / (1.0 - r)).ln(),
                        -p / r + (1.0 - p) / (1.0 - r),
                    )
                }
            }
            Sparsity::L2 => ((p - r) * (p - r), 2.0 * (r - p)),
            Sparsity::EpsL1 { eps } => {
                let s = ((p - r) * (p - r) + eps).sqrt();
                (s, (r - p) / s)
            }
            Sparsity::Log => {
                let d = p - r;
                ((1.0 + d * d).ln(), 2.0 * (r - p) / (1.0 + d * d))
            }
            Sparsity::None | Sparsity::L1 | Sparsity::Hoyer { .. } => (0.0, 0.0),
        }
    };
    let mut total = 0.0;
    for (g, &sum) in unit_grad.iter_mut().zip(sums) {
        let (s, ds) = penalty(sum / m);
        total += s;
        *g = T::from_f64(beta * ds / m);
    }
    beta * total
}

/// A penalty on each sample's code (L1, Hoyer; zero for the others) over the samples `h`
/// (`k × ·`) of a batch of `batch` samples: its share of the batch's penalty; `∂/∂h` is
/// **added** to `grad`.
pub fn sample_penalty<T: Real>(spec: &LossSpec, k: usize, h: &[T], grad: &mut [T], batch: usize) -> f64 {
    let (beta, m) = (spec.beta, batch as f64);
    if beta == 0.0 {
        return 0.0;
    }
    match spec.sparsity {
        Sparsity::L1 => {
            // h ≥ 0 (sigmoid codes): ‖h‖₁ = Σ h and its gradient is 1 (sign(0) = 0 is moot).
            let mut total = 0.0;
            let g = T::from_f64(beta / m);
            for (gr, &v) in grad.iter_mut().zip(h) {
                total += v.to_f64().abs();
                if v != T::zero() {
                    *gr = *gr + if v > T::zero() { g } else { -g };
                }
            }
            beta * total / m
        }
        Sparsity::Hoyer { target } => {
            // S(h) = (√k − ‖h‖₁/‖h‖₂)/(√k − 1);
            // ∂S/∂h_l = −(sign(h_l)/‖h‖₂ − ‖h‖₁ h_l/‖h‖₂³)/(√k − 1).
            let sk = (k as f64).sqrt();
            let mut total = 0.0;
            for (gcol, hcol) in grad.chunks_mut(k).zip(h.chunks(k)) {
                let l1: f64 = hcol.iter().map(|&v| v.to_f64().abs()).sum();
                let l2 = hcol.iter().map(|&v| v.to_f64() * v.to_f64()).sum::<f64>().sqrt();
                if l2 == 0.0 || k < 2 {
                    // Hoyer's sparseness is undefined for a zero code (§2.1): no term, no gradient.
                    continue;
                }
                let s = (sk - l1 / l2) / (sk - 1.0);
                let dev = target - s;
                total += dev.abs();
                // d|s_o − S|/dh = −sign(s_o − S)·∂S/∂h.
                let sign = if dev > 0.0 {
                    1.0
                } else if dev < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                let c = beta / m * sign / (sk - 1.0);
                for (g, &v) in gcol.iter_mut().zip(hcol) {
                    let v = v.to_f64();
                    let sgn = if v > 0.0 {
                        1.0
                    } else if v < 0.0 {
                        -1.0
                    } else {
                        0.0
                    };
                    let ds_num = sgn / l2 - l1 * v / (l2 * l2 * l2);
                    *g = *g + T::from_f64(c * ds_num);
                }
            }
            beta * total / m
        }
        Sparsity::None | Sparsity::Kl | Sparsity::L2 | Sparsity::EpsL1 { .. } | Sparsity::Log => 0.0,
    }
}

/// `β·penalty` of the codes `h` (`k × batch`) of a whole batch; `∂/∂h` is **added** to `grad`
/// ([`rho_penalty`] or [`sample_penalty`], as training computes them part by part).
pub fn sparsity<T: Real>(spec: &LossSpec, k: usize, h: &[T], grad: &mut [T]) -> f64 {
    let batch = h.len() / k.max(1);
    if !spec.sparsity.on_rho() {
        return sample_penalty(spec, k, h, grad, batch);
    }
    let mut sums = vec![0.0; k];
    add_unit_sums(k, h, &mut sums);
    let mut unit_grad = vec![T::zero(); k];
    let value = rho_penalty(spec, &sums, batch, &mut unit_grad);
    for col in grad.chunks_mut(k) {
        for (g, &d) in col.iter_mut().zip(&unit_grad) {
            *g = *g + d;
        }
    }
    value
}

/// Asymmetric weight decay `(λ/2) Σ (α w² [w>0] + w² [w<0])` (§6.4); gradient **added** to `grad`.
pub fn decay<T: Real>(spec: &LossSpec, w: &[T], grad: &mut [T]) -> f64 {
    let (lambda, alpha) = (spec.decay_lambda, spec.decay_alpha);
    if lambda == 0.0 {
        return 0.0;
    }
    let mut total = 0.0;
    for (g, &v) in grad.iter_mut().zip(w) {
        let f = if v > T::zero() { alpha } else { 1.0 };
        let vf = v.to_f64();
        total += f * vf * vf;
        *g = *g + T::from_f64(lambda * f * vf);
    }
    0.5 * lambda * total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The squared error's pass gives the same bits (gradient and sum) compiled for each
    /// instruction set the CPU has ([`simd_wide`] may pick any of them).
    #[test]
    fn squared_error_is_the_same_at_every_instruction_level() {
        use crate::linalg::kernels::{simd_at, Level};
        let mut rng = Rng::new(6);
        let (n, b) = (37, 4);
        let x: Vec<f32> = (0..n * b).map(|_| rng.uniform() as f32).collect();
        let xhat: Vec<f32> = (0..n * b).map(|_| rng.uniform() as f32).collect();
        let runs: Vec<(u64, Vec<u32>)> = Level::available()
            .into_iter()
            .map(|level| {
                let mut grad = vec![0.0f32; n * b];
                let g = 0.25f32;
                let sq = simd_at(
                    level,
                    MseRows {
                        n,
                        g,
                        x: &x,
                        xhat: &xhat,
                        grad: &mut grad,
                    },
                );
                (sq.to_bits(), grad.iter().map(|v| v.to_bits()).collect())
            })
            .collect();
        assert!(runs.windows(2).all(|r| r[0] == r[1]));
    }
    use crate::rng::Rng;

    fn spec(sparsity: Sparsity) -> LossSpec {
        LossSpec {
            sparsity,
            p: 0.1,
            beta: 0.7,
            ..LossSpec::default()
        }
    }

    fn fd_check(f: &dyn Fn(&[f64], &mut [f64]) -> f64, x: &[f64]) {
        let mut g = vec![0.0; x.len()];
        f(x, &mut g);
        let h = 1e-6;
        for i in 0..x.len() {
            let mut xp = x.to_vec();
            xp[i] += h;
            let mut scratch = vec![0.0; x.len()];
            let lp = f(&xp, &mut scratch);
            xp[i] -= 2.0 * h;
            let lm = f(&xp, &mut scratch);
            let num = (lp - lm) / (2.0 * h);
            assert!(
                (num - g[i]).abs() <= 1e-6 * (1.0 + num.abs()),
                "entry {i}: analytic {} vs numeric {num}",
                g[i]
            );
        }
    }

    #[test]
    fn every_sparsity_penalty_matches_finite_differences() {
        let mut rng = Rng::new(4);
        let (k, batch) = (6, 5);
        let h: Vec<f64> = (0..k * batch).map(|_| rng.uniform_in(0.01, 0.99)).collect();
        for s in [
            Sparsity::Kl,
            Sparsity::L2,
            Sparsity::EpsL1 { eps: 1e-3 },
            Sparsity::Log,
            Sparsity::L1,
            Sparsity::Hoyer { target: 0.6 },
            Sparsity::Hoyer { target: 0.05 },
        ] {
            let sp = spec(s);
            fd_check(&|h, g| sparsity(&sp, k, h, g), &h);
        }
    }

    #[test]
    fn reconstruction_losses_match_finite_differences() {
        let mut rng = Rng::new(5);
        let (n, batch) = (7, 3);
        let x: Vec<f64> = (0..n * batch).map(|_| rng.uniform()).collect();
        let xh: Vec<f64> = (0..n * batch).map(|_| rng.uniform_in(0.05, 0.95)).collect();
        for rec in [RecLoss::Mse, RecLoss::Bce] {
            for reduction in [Reduction::Mean, Reduction::Sum] {
                let sp = LossSpec {
                    reconstruction: rec,
                    reduction,
                    ..LossSpec::default()
                };
                fd_check(&|xh, g| reconstruction(&sp, n, batch, &x, xh, g).0, &xh);
            }
        }
        // Mean and sum differ by the number of pixels; MSE's squared error is reported as such.
        let mut g = vec![0.0; n * batch];
        let mean = LossSpec::default();
        let sum = LossSpec {
            reduction: Reduction::Sum,
            ..mean
        };
        let (lm, sq) = reconstruction(&mean, n, batch, &x, &xh, &mut g);
        let (ls, _) = reconstruction(&sum, n, batch, &x, &xh, &mut g);
        assert!((ls - n as f64 * lm).abs() < 1e-12);
        let direct: f64 = x.iter().zip(&xh).map(|(a, b)| (a - b) * (a - b)).sum();
        assert!((sq - direct).abs() < 1e-12 && (lm - direct / (n * batch) as f64).abs() < 1e-12);
    }

    #[test]
    fn asymmetric_decay_matches_finite_differences_and_spares_positive_weights_at_alpha_zero() {
        let w = [0.3, -0.2, 0.0, -1.5, 2.0];
        for alpha in [0.0, 0.5, 1.0] {
            let sp = LossSpec {
                decay_lambda: 0.3,
                decay_alpha: alpha,
                ..LossSpec::default()
            };
            fd_check(&|w, g| decay(&sp, w, g), &w);
        }
        let sp = LossSpec {
            decay_lambda: 0.3,
            ..LossSpec::default()
        };
        let mut g = [0.0; 5];
        let v = decay(&sp, &w, &mut g);
        assert!((v - 0.15 * (0.04 + 2.25)).abs() < 1e-12);
        assert_eq!((g[0], g[4]), (0.0, 0.0));
    }

    #[test]
    fn kl_is_zero_at_the_target_and_clipped_values_have_no_gradient() {
        let sp = spec(Sparsity::Kl);
        let h = vec![0.1; 12];
        let mut g = vec![0.0; 12];
        assert!(sparsity(&sp, 4, &h, &mut g).abs() < 1e-12);
        assert!(g.iter().all(|v: &f64| v.abs() < 1e-12));
        let h = vec![0.0; 4];
        let mut g = vec![0.0; 4];
        assert!(sparsity(&sp, 4, &h, &mut g).is_finite());
        assert!(g.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn parsing_and_validation() {
        assert_eq!(
            Sparsity::parse("hoyer:0.7").unwrap(),
            Sparsity::Hoyer { target: 0.7 }
        );
        assert_eq!(Sparsity::parse("eps-l1").unwrap(), Sparsity::EpsL1 { eps: 1e-6 });
        for bad in ["hoyer:1.5", "eps-l1:-1", "kld", ""] {
            assert!(Sparsity::parse(bad).is_err(), "{bad}");
        }
        let e = LossSpec {
            p: 0.0,
            ..LossSpec::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("p"), "{e}");
        assert!("kld".parse::<Sparsity>().is_err());
        for s in ["none", "kl", "l2", "eps-l1:0.001", "log", "l1", "hoyer:0.6"] {
            assert_eq!(Sparsity::parse(s).unwrap().to_string(), s);
        }
        let e = Sparsity::parse("hoyer:2").unwrap_err().to_string();
        assert!(e.starts_with("invalid sparsity = hoyer:2: "), "{e}");
        assert_eq!("sum".parse::<Reduction>().unwrap(), Reduction::Sum);
        assert_eq!("bce".parse::<RecLoss>().unwrap(), RecLoss::Bce);
        assert!(LossSpec {
            beta: -1.0,
            ..LossSpec::default()
        }
        .validate()
        .is_err());
        assert!(LossSpec {
            p: 0.0,
            sparsity: Sparsity::L1,
            ..LossSpec::default()
        }
        .validate()
        .is_ok());
    }
}
#[cfg(test)]
mod tmp_speed {
    #[test]
    fn mse_speed() {
        let n = 784;
        let b = 64;
        let x: Vec<f32> = (0..n * b).map(|i| (i % 17) as f32 * 0.05).collect();
        let xh: Vec<f32> = (0..n * b).map(|i| (i % 13) as f32 * 0.05).collect();
        let mut g = vec![0f32; n * b];
        let spec = super::LossSpec::default();
        let t = std::time::Instant::now();
        let mut s = 0.0;
        for _ in 0..1000 {
            s += super::reconstruction(&spec, n, 128, &x, &xh, &mut g).1;
        }
        eprintln!("mse: {:.2} us {s}", t.elapsed().as_secs_f64() * 1e3);
        let mut z: Vec<f32> = (0..n * b).map(|i| (i % 17) as f32 * 0.5 - 4.0).collect();
        let t = std::time::Instant::now();
        for _ in 0..1000 {
            crate::autoencoder::layers::Act::Sigmoid.forward(&mut z);
        }
        eprintln!("sigmoid: {:.2} us {}", t.elapsed().as_secs_f64() * 1e3, z[5]);
    }
}
