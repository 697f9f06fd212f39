//! NMF parameters (scikit-learn names and defaults where they exist), checked into
//! [`ValidNmfParams`] (STYLE.md, "Options"), then resolved for a data shape into the form the
//! solvers accept.

use serde::{Deserialize, Serialize};

use super::compress::samples::CompressSamples;
use super::compress::Compress;
use crate::engine::StopRules;
use crate::error::{Error, Result};
use crate::params;

/// The update rule of an NMF fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Solver {
    /// Multiplicative updates (METHODS.md §1.2); any β-divergence.
    Mu,
    /// Hierarchical alternating least squares with accelerated inner repetitions (§1.4);
    /// Frobenius loss only.
    Hals,
    /// Alternating non-negative least squares, each factor solved exactly by block principal
    /// pivoting (§1.3); Frobenius loss only.
    Anls,
}

impl std::str::FromStr for Solver {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mu" => Ok(Solver::Mu),
            "hals" | "cd" => Ok(Solver::Hals),
            "anls" | "bpp" => Ok(Solver::Anls),
            _ => Err(Error::invalid("solver", s, "use mu, hals or anls")),
        }
    }
}

/// How the factors are initialized (METHODS.md §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitMethod {
    /// scikit-learn's default: `nndsvda` when `k ≤ min(n_samples, n_features)`, else `random`.
    Auto,
    /// `sqrt(mean(X)/k)·|N(0,1)|` entrywise.
    Random,
    /// Non-negative double SVD (Boutsidis & Gallopoulos 2008); zeros stay zeros under MU.
    Nndsvd,
    /// NNDSVD with zeros replaced by `mean(X)`.
    Nndsvda,
    /// NNDSVD with zeros replaced by `mean(X)·|N(0,1)|/100`.
    Nndsvdar,
    /// User-given atoms (and optionally codes).
    Custom,
}

impl std::str::FromStr for InitMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => InitMethod::Auto,
            "random" => InitMethod::Random,
            "nndsvd" => InitMethod::Nndsvd,
            "nndsvda" => InitMethod::Nndsvda,
            "nndsvdar" => InitMethod::Nndsvdar,
            "custom" => InitMethod::Custom,
            _ => {
                return Err(Error::invalid(
                    "init",
                    s,
                    "use auto, random, nndsvd, nndsvda, nndsvdar or custom",
                ))
            }
        })
    }
}

/// Parses a β-divergence name or number: `frobenius` (2), `kullback-leibler`/`kl` (1),
/// `itakura-saito`/`is` (0), or any finite number.
pub fn parse_beta_loss(s: &str) -> Result<f64> {
    match s {
        "frobenius" | "fro" => Ok(2.0),
        "kullback-leibler" | "kl" => Ok(1.0),
        "itakura-saito" | "is" => Ok(0.0),
        _ => s.parse::<f64>().ok().filter(|b| b.is_finite()).ok_or_else(|| {
            Error::invalid(
                "beta_loss",
                s,
                "use frobenius, kullback-leibler, itakura-saito or a number",
            )
        }),
    }
}

/// How Frobenius codes are computed for a fixed dictionary (METHODS.md §1.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncodeMethod {
    /// Exact NNLS by block principal pivoting (§1.3): KKT conditions hold to rounding.
    #[default]
    Exact,
    /// Coordinate descent (HALS sweeps) until `‖Δh‖ ≤ tol·‖h‖`.
    Cd,
}

impl std::str::FromStr for EncodeMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "exact" | "bpp" => Ok(EncodeMethod::Exact),
            "cd" | "hals" => Ok(EncodeMethod::Cd),
            _ => Err(Error::invalid("encode", s, "use exact or cd")),
        }
    }
}

/// How codes are computed for a fixed dictionary (`transform`, and the final codes of `fit`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncodeOptions {
    /// Frobenius models: exact NNLS (default) or coordinate descent. Other β always use MU.
    #[serde(default)]
    pub method: EncodeMethod,
    /// Maximum sweeps (coordinate descent) or MU iterations (other β); unused by `Exact`.
    pub max_iter: usize,
    /// Frobenius: stop a block of columns when `‖Δh‖ ≤ tol·‖h‖` over one sweep;
    /// other β: stop when the relative decrease of the divergence falls below `tol`.
    pub tol: f64,
}

impl EncodeOptions {
    /// `max_iter ≥ 1` and a finite `tol ≥ 0` (named `encode_max_iter`, `encode_tol`).
    pub fn check(&self) -> Result<()> {
        if self.max_iter == 0 {
            return Err(Error::invalid(
                "encode_max_iter",
                0,
                "encoding needs at least one sweep or iteration",
            ));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(Error::invalid("encode_tol", self.tol, "must be finite and ≥ 0"));
        }
        Ok(())
    }
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            method: EncodeMethod::Exact,
            max_iter: 1000,
            tol: 1e-5,
        }
    }
}

/// Options of an NMF fit. Field names and defaults follow scikit-learn's `NMF` where it has them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NmfParams {
    /// Number of components (atoms), `1 ≤ k`.
    pub k: usize,
    /// Update rule.
    pub solver: Solver,
    /// β of the β-divergence: 2 Frobenius, 1 Kullback–Leibler, 0 Itakura–Saito (MU only when ≠ 2).
    pub beta_loss: f64,
    /// Initialization.
    pub init: InitMethod,
    /// Maximum number of iterations (default 200).
    pub max_iter: usize,
    /// Tolerance of the stopping rule of [`StopRules::tol`](crate::engine::StopRules::tol) (default 1e-4; 0 disables).
    pub tol: f64,
    /// Time budget in seconds.
    pub max_seconds: Option<f64>,
    /// Projected-gradient stopping rule ([`StopRules::pg_tol`](crate::engine::StopRules::pg_tol));
    /// 0 (the default) disables it. Lin (2007) suggests 1e-4 to 1e-5.
    pub pg_tol: f64,
    /// Penalty weight on the codes (scikit-learn's `alpha_W`, scaled by n_features).
    pub alpha_w: f64,
    /// Penalty weight on the atoms (scikit-learn's `alpha_H`, scaled by n_samples); `None` = same as `alpha_w`.
    pub alpha_h: Option<f64>,
    /// Mix of L1 (1.0) and L2 (0.0) in the penalties.
    pub l1_ratio: f64,
    /// HALS: maximum inner repetitions per factor; `None` = Gillis & Glineur's `1 + ⌊α ρ⌋`, α = 0.5.
    pub hals_inner_max: Option<usize>,
    /// HALS: stop inner repetitions when a sweep changes a block less than `delta` × the first sweep.
    pub hals_inner_delta: f64,
    /// Extrapolate after each iteration, keeping the extrapolated point only when it lowers the
    /// objective (Ang & Gillis 2019; Frobenius solvers). Default on.
    pub extrapolate: bool,
    /// Seed of every random choice.
    pub seed: u64,
    /// Worker threads (1 = sequential, 0 = all cores).
    pub threads: usize,
    /// How codes are computed for a fixed dictionary.
    pub encode: EncodeOptions,
    /// Compressed (randomized) iterations for the Frobenius solvers (HALS, MU, ANLS), see
    /// [`super::compress`]; default off.
    pub compress: Compress,
    /// With compression: the warm start on a random subset of the samples
    /// ([`super::compress::samples`]); default `Auto`.
    pub compress_samples: CompressSamples,
    /// With compression: exact iterations on `X` after the compressed ones (the compressed
    /// phase gets at most `max_iter − polish`); default 10. Not used after a warm start on a
    /// subset (`compress_samples`), where every iteration on all samples is exact.
    pub polish: usize,
}

impl Default for NmfParams {
    fn default() -> Self {
        NmfParams {
            k: 10,
            solver: Solver::Hals,
            beta_loss: 2.0,
            init: InitMethod::Auto,
            max_iter: 200,
            tol: 1e-4,
            max_seconds: None,
            pg_tol: 0.0,
            alpha_w: 0.0,
            alpha_h: None,
            l1_ratio: 0.0,
            hals_inner_max: None,
            hals_inner_delta: 0.1,
            extrapolate: true,
            seed: 0,
            threads: 1,
            encode: EncodeOptions::default(),
            compress: Compress::Off,
            compress_samples: CompressSamples::Auto,
            polish: 10,
        }
    }
}

/// L1 and L2 weights on one factor, already scaled (METHODS.md §1.5): the factor's gradient gains
/// `l1 + l2·F`, its objective `l1·ΣF + ½·l2·‖F‖²`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Penalty {
    /// L1 weight (gradient term `l1`).
    pub l1: f64,
    /// L2 weight (gradient term `l2·F`).
    pub l2: f64,
}

impl Penalty {
    /// Both weights finite and ≥ 0 (`name` names the penalty in the error).
    pub fn check(&self, name: &'static str) -> Result<()> {
        for (what, v) in [("l1", self.l1), ("l2", self.l2)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::invalid(
                    name,
                    format!("{what} {v}"),
                    "penalty weights must be finite and ≥ 0",
                ));
            }
        }
        Ok(())
    }

    /// `l1·Σf + ½·l2·Σf²` for the entries of a factor.
    pub fn value(&self, sum: f64, sum_sq: f64) -> f64 {
        self.l1 * sum + 0.5 * self.l2 * sum_sq
    }

    /// Whether both weights are 0 (no penalty).
    pub fn is_zero(&self) -> bool {
        self.l1 == 0.0 && self.l2 == 0.0
    }
}

/// [`NmfParams`] that passed [`NmfParams::check`]: the only form [`super::factorize`] accepts.
/// The fields are private; [`ValidNmfParams::params`] reads them.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidNmfParams {
    params: NmfParams,
    stop: StopRules,
}

impl ValidNmfParams {
    /// The checked parameters.
    pub fn params(&self) -> &NmfParams {
        &self.params
    }

    /// The engine's stopping rules of these parameters.
    pub fn stop_rules(&self) -> &StopRules {
        &self.stop
    }

    /// Checks the parameters against a data shape (`n_samples × n_features`): k within range,
    /// NNDSVD only for `k ≤ min(n_samples, n_features)`.
    pub fn check_shape(&self, n_samples: usize, n_features: usize) -> Result<()> {
        self.resolve(n_samples, n_features).map(|_| ())
    }

    /// The parameters resolved for a data shape: `Auto` init chosen, penalties scaled, HALS
    /// inner repetitions from the cost ratio.
    pub(crate) fn resolve(&self, n_samples: usize, n_features: usize) -> Result<Resolved> {
        self.resolve_batch(n_samples, n_features, n_samples)
    }

    /// [`Self::resolve`] for a batch of `n_samples` out of `n_total` samples (mini-batch NMF,
    /// which initializes from its first batch): `k` is bounded by the whole data's shape, the
    /// rest is resolved for the batch.
    pub(crate) fn resolve_batch(
        &self,
        n_samples: usize,
        n_features: usize,
        n_total: usize,
    ) -> Result<Resolved> {
        params::check_not_empty(n_samples, n_features)?;
        let o = &self.params;
        let smaller = n_samples.min(n_features);
        let larger = n_total.max(n_samples).max(n_features);
        if o.k > larger {
            return Err(Error::invalid(
                "k",
                o.k,
                format!(
                    "must be at most max(n_samples, n_features) = {larger} (k = min(n_samples, n_features) atoms already reproduce X exactly); lower `k`"
                ),
            ));
        }
        let init = match o.init {
            InitMethod::Auto if o.k <= smaller => InitMethod::Nndsvda,
            InitMethod::Auto => InitMethod::Random,
            other => other,
        };
        if matches!(
            init,
            InitMethod::Nndsvd | InitMethod::Nndsvda | InitMethod::Nndsvdar
        ) && o.k > smaller
        {
            return Err(Error::invalid(
                "k",
                o.k,
                format!(
                    "NNDSVD initializations need k ≤ min(n_samples, n_features) = {smaller}; lower `k` or use `init = random`"
                ),
            ));
        }
        let sketch = o.compress.plan(o.k, n_features, n_samples)?;
        // The samples' side: with the features' sketch, or alone where `auto` found that the
        // sketch does not pay (k close to n_features).
        // (`l` bounds the subset from below: the sketch's columns, or k without a sketch.)
        let side_l = match (sketch, o.compress) {
            _ if o.init == InitMethod::Custom => None,
            (Some((l, _)), _) => Some(l),
            (None, Compress::Auto { .. }) => Some(o.k),
            _ => None,
        };
        let subsample = match side_l {
            Some(l) => o.compress_samples.plan(o.k, n_samples, l)?,
            None => {
                o.compress_samples
                    .refuse_count("the warm start on a subset runs only with compression on and a start of its own (not `init = custom`); use `compress_samples = off`")?;
                None
            }
        };
        // (Only when compressing all samples: `Auto` may fall back to the plain solver.)
        if sketch.is_some() && subsample.is_none() && o.polish >= o.max_iter {
            return Err(Error::invalid(
                "polish",
                o.polish,
                format!(
                    "must be below max_iter = {} (the compressed iterations get max_iter − polish); lower `polish` or raise `max_iter`",
                    o.max_iter
                ),
            ));
        }
        let alpha_h = o.alpha_h.unwrap_or(o.alpha_w);
        let (m, n) = (n_features as f64, n_samples as f64);
        let (inner_max_codes, inner_max_atoms) = hals_inner_limits(o, n_samples, n_features, m * n);
        Ok(Resolved {
            init,
            codes_penalty: Penalty {
                l1: o.alpha_w * o.l1_ratio * m,
                l2: o.alpha_w * (1.0 - o.l1_ratio) * m,
            },
            atoms_penalty: Penalty {
                l1: alpha_h * o.l1_ratio * n,
                l2: alpha_h * (1.0 - o.l1_ratio) * n,
            },
            inner_max_codes,
            inner_max_atoms,
            sketch,
            subsample,
            stop: self.stop,
            opts: o.clone(),
        })
    }
}

/// HALS's inner sweeps per factor (`hals_inner_max`, or Gillis & Glineur's `1 + ⌊ρ/2⌋`, METHODS.md
/// §1.4): `ρ` is the cost of a factor's Gram and cross term over the cost of one sweep of it, the
/// cross term (`WᵀX` or `XH`) costing `2·K·k` where `K` is the number of entries its kernel reads:
/// `n_samples · n_features` for dense data, the stored entries for sparse data (their `K`, the
/// non-zeros of a sparse matrix). So the dense and the CSR form of one matrix may sweep a
/// different number of times by default, and agree to rounding with the same `hals_inner_max`.
fn hals_inner_limits(o: &NmfParams, n_samples: usize, n_features: usize, entries: f64) -> (usize, usize) {
    let (m, n, k) = (n_features as f64, n_samples as f64, o.k as f64);
    let rho_codes = (2.0 * entries * k + m * k * k) / (2.0 * k * k * n);
    let rho_atoms = (2.0 * entries * k + n * k * k) / (2.0 * k * k * m);
    let auto = |rho: f64| 1 + (0.5 * rho).floor() as usize;
    (
        o.hals_inner_max.unwrap_or_else(|| auto(rho_codes)),
        o.hals_inner_max.unwrap_or_else(|| auto(rho_atoms)),
    )
}

impl Resolved {
    /// HALS's inner sweeps counted for sparse data of `n_samples × n_features` with `stored`
    /// entries in all (all processes' for a distributed fit), see [`hals_inner_limits`].
    pub(crate) fn count_stored_entries(&mut self, n_samples: usize, n_features: usize, stored: f64) {
        (self.inner_max_codes, self.inner_max_atoms) =
            hals_inner_limits(&self.opts, n_samples, n_features, stored);
    }

    /// The parameters of a compressed fit's warm start on `s` of its samples
    /// ([`super::compress::samples`]): resolved for `s × m` (penalties and HALS's inner
    /// repetitions follow the subset's size), the same sketch size and time budget, `max_iter`
    /// iterations (no tolerance: the initial error of an NNDSVD-a start is far above the fit's,
    /// and the rule relative to it would stop the warm start early), no polish and no warm
    /// start of its own.
    pub(crate) fn for_warm_start(&self, s: usize, m: usize, max_iter: usize) -> Result<Resolved> {
        let params = NmfParams {
            compress_samples: CompressSamples::Off,
            polish: 0,
            max_iter,
            ..self.opts.clone()
        };
        let stop = StopRules {
            max_iter,
            tol: 0.0,
            ..self.stop
        };
        let mut v = ValidNmfParams { params, stop }.resolve(s, m)?;
        v.sketch = self.sketch;
        Ok(v)
    }
}

/// Parameters resolved for one data shape; only this form reaches a solver.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Resolved {
    pub opts: NmfParams,
    /// The initialization after resolving `Auto`.
    pub init: InitMethod,
    /// Penalty on the codes (`alpha_W · n_features`).
    pub codes_penalty: Penalty,
    /// Penalty on the atoms (`alpha_H · n_samples`).
    pub atoms_penalty: Penalty,
    /// HALS inner repetitions for the codes and the atoms.
    pub inner_max_codes: usize,
    pub inner_max_atoms: usize,
    /// Compression: the sketch's columns `l` and power iterations `q`, `None` for plain
    /// iterations (off, or `Auto` when it does not pay).
    pub sketch: Option<(usize, usize)>,
    /// Compression: the samples of the warm start ([`super::compress::samples`]), `None` for none.
    pub subsample: Option<usize>,
    pub stop: StopRules,
}

params::setters!(NmfParams {
    k: usize,
    solver: Solver,
    beta_loss: f64,
    init: InitMethod,
    max_iter: usize,
    tol: f64,
    max_seconds: Option<f64>,
    pg_tol: f64,
    alpha_w: f64,
    alpha_h: Option<f64>,
    l1_ratio: f64,
    hals_inner_max: Option<usize>,
    hals_inner_delta: f64,
    extrapolate: bool,
    seed: u64,
    threads: usize,
    encode: EncodeOptions,
    compress: Compress,
    compress_samples: CompressSamples,
    polish: usize,
});

impl NmfParams {
    /// The defaults (scikit-learn's where it has them) with `k` components.
    pub fn new(k: usize) -> Self {
        NmfParams {
            k,
            ..NmfParams::default()
        }
    }

    /// Checks every parameter that does not depend on the data; the shape is checked when
    /// fitting ([`ValidNmfParams::check_shape`]).
    pub fn check(&self) -> Result<ValidNmfParams> {
        let o = self;
        params::check_k_positive(o.k)?;
        if !o.beta_loss.is_finite() {
            return Err(Error::invalid("beta_loss", o.beta_loss, "give a finite number"));
        }
        if o.solver != Solver::Mu && o.beta_loss != 2.0 {
            return Err(Error::invalid(
                "solver",
                format!("{:?}", o.solver).to_lowercase(),
                format!(
                    "HALS and ANLS minimize the Frobenius loss only; use `solver = mu` for `beta_loss = {}`",
                    o.beta_loss
                ),
            ));
        }
        let stop = StopRules {
            max_iter: o.max_iter,
            tol: o.tol,
            max_seconds: o.max_seconds,
            pg_tol: o.pg_tol,
            patience: None,
        };
        stop.validate()?;
        for (name, v) in [("alpha_w", Some(o.alpha_w)), ("alpha_h", o.alpha_h)] {
            if let Some(v) = v {
                if !(v >= 0.0 && v.is_finite()) {
                    return Err(Error::invalid(name, v, "penalty weights must be finite and ≥ 0"));
                }
            }
        }
        params::check_unit("l1_ratio", o.l1_ratio, "the L1 share of the penalties")?;
        if !(o.hals_inner_delta >= 0.0 && o.hals_inner_delta < 1.0) {
            return Err(Error::invalid(
                "hals_inner_delta",
                o.hals_inner_delta,
                "must lie in [0, 1)",
            ));
        }
        if o.hals_inner_max == Some(0) {
            return Err(Error::invalid(
                "hals_inner_max",
                0,
                "at least one sweep per factor is needed",
            ));
        }
        o.encode.check()?;
        o.check_compress()?;
        Ok(ValidNmfParams {
            params: o.clone(),
            stop,
        })
    }

    /// The checks of `compress` and `polish` that do not depend on the data.
    fn check_compress(&self) -> Result<()> {
        let o = self;
        o.compress.check()?;
        if o.compress == Compress::Off {
            return Ok(());
        }
        if o.beta_loss != 2.0 {
            return Err(Error::invalid(
                "compress",
                "on",
                format!(
                    "compression works with the Frobenius solvers (hals, mu, anls with `beta_loss = 2`), not with `beta_loss = {}`; use `compress = off`",
                    o.beta_loss
                ),
            ));
        }
        if o.pg_tol > 0.0 {
            return Err(Error::invalid(
                "pg_tol",
                o.pg_tol,
                "the projected-gradient rule needs the exact WᵀX every iteration, which compression avoids; use `tol` or `compress = off`",
            ));
        }
        Ok(())
    }

    /// [`NmfParams::check`] and [`ValidNmfParams::check_shape`] in one call.
    pub fn validate(&self, n_samples: usize, n_features: usize) -> Result<ValidNmfParams> {
        let v = self.check()?;
        v.check_shape(n_samples, n_features)?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(k: usize) -> NmfParams {
        NmfParams {
            k,
            ..Default::default()
        }
    }

    #[test]
    fn k_cannot_be_zero() {
        assert!(matches!(
            opts(0).validate(10, 10),
            Err(Error::InvalidOption { option: "k", .. })
        ));
    }

    #[test]
    fn nndsvd_needs_k_at_most_min_side() {
        let o = NmfParams {
            init: InitMethod::Nndsvd,
            ..opts(11)
        };
        let e = o.validate(10, 50).unwrap_err().to_string();
        assert!(e.contains("min(n_samples, n_features) = 10"), "{e}");
        // Auto falls back to random instead.
        assert_eq!(
            opts(11).check().unwrap().resolve(10, 50).unwrap().init,
            InitMethod::Random
        );
        assert_eq!(
            opts(10).check().unwrap().resolve(10, 50).unwrap().init,
            InitMethod::Nndsvda
        );
    }

    #[test]
    fn k_is_at_most_the_larger_side() {
        // Overcomplete up to max(n_samples, n_features) (random init), not beyond.
        assert!(opts(50).validate(10, 50).is_ok());
        let e = opts(51).validate(10, 50).unwrap_err().to_string();
        assert!(
            e.contains("max(n_samples, n_features) = 50") && e.contains("lower `k`"),
            "{e}"
        );
        let e = opts(usize::MAX).validate(10, 50).unwrap_err().to_string();
        assert!(e.contains("invalid k"), "{e}");
    }

    #[test]
    fn hals_needs_frobenius() {
        let o = NmfParams {
            beta_loss: 1.0,
            ..opts(2)
        };
        assert!(o.validate(5, 5).is_err());
        let o = NmfParams {
            solver: Solver::Mu,
            ..o
        };
        assert!(o.validate(5, 5).is_ok());
    }

    #[test]
    fn penalties_follow_sklearn_scaling() {
        let o = NmfParams {
            alpha_w: 0.5,
            l1_ratio: 0.25,
            ..opts(2)
        };
        let v = o.check().unwrap().resolve(100, 30).unwrap();
        assert_eq!(
            v.codes_penalty,
            Penalty {
                l1: 0.5 * 0.25 * 30.0,
                l2: 0.5 * 0.75 * 30.0
            }
        );
        // alpha_h defaults to alpha_w ("same").
        assert_eq!(
            v.atoms_penalty,
            Penalty {
                l1: 0.5 * 0.25 * 100.0,
                l2: 0.5 * 0.75 * 100.0
            }
        );
        let o = NmfParams {
            alpha_h: Some(0.0),
            ..o
        };
        assert!(o
            .check()
            .unwrap()
            .resolve(100, 30)
            .unwrap()
            .atoms_penalty
            .is_zero());
    }

    #[test]
    fn bad_values_are_rejected() {
        for o in [
            NmfParams {
                l1_ratio: 1.5,
                ..opts(2)
            },
            NmfParams {
                alpha_w: -1.0,
                ..opts(2)
            },
            NmfParams {
                tol: f64::NAN,
                ..opts(2)
            },
            NmfParams {
                max_seconds: Some(0.0),
                ..opts(2)
            },
            NmfParams {
                hals_inner_max: Some(0),
                ..opts(2)
            },
        ] {
            assert!(o.validate(5, 5).is_err(), "{o:?}");
        }
        assert_eq!(parse_beta_loss("kl").unwrap(), 1.0);
        assert_eq!(parse_beta_loss("1.5").unwrap(), 1.5);
        assert!(parse_beta_loss("nope").is_err());
    }

    #[test]
    fn inner_repetitions_follow_the_cost_ratio() {
        let v = opts(100).check().unwrap().resolve(60000, 784).unwrap();
        assert!(
            v.inner_max_codes >= 2 && v.inner_max_codes <= 6,
            "{}",
            v.inner_max_codes
        );
        assert!(v.inner_max_atoms > 100, "{}", v.inner_max_atoms);
        // The 1M × 50,000 corpus at 0.1 % (5·10⁷ stored entries), k = 50: ρ_codes =
        // (2·5·10⁷·50 + 5·10⁴·50²) / (2·50²·10⁶) ≈ 1.03, ρ_atoms = (5·10⁹ + 10⁶·50²) / (2·50²·5·10⁴) = 30.
        let mut v = opts(50).check().unwrap().resolve(1_000_000, 50_000).unwrap();
        assert_eq!((v.inner_max_codes, v.inner_max_atoms), (501, 10_006));
        v.count_stored_entries(1_000_000, 50_000, 5e7);
        assert_eq!((v.inner_max_codes, v.inner_max_atoms), (1, 16));
        // Counted with every entry, the sparse count is the dense one; a fixed limit stays.
        v.count_stored_entries(1_000_000, 50_000, 5e10);
        assert_eq!((v.inner_max_codes, v.inner_max_atoms), (501, 10_006));
        let mut v = NmfParams {
            hals_inner_max: Some(2),
            ..opts(50)
        }
        .check()
        .unwrap()
        .resolve(1_000_000, 50_000)
        .unwrap();
        v.count_stored_entries(1_000_000, 50_000, 5e7);
        assert_eq!((v.inner_max_codes, v.inner_max_atoms), (2, 2));
    }
}
