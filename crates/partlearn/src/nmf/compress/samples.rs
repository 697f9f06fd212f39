//! The samples' side of compressed NMF: the compressed iterations run on a uniform random
//! subset of the samples and give the start of exact iterations on all of them (METHODS.md
//! §11.6).
//!
//! The sketch `X ≈ UB` shrinks the features' side of every product, but the codes are a
//! `k × n` factor that must stay non-negative, so HALS's coordinate sweeps (`k²n`), `HHᵀ`
//! (`k²n`) and the passes over the codes do not shrink with it: on Fashion-MNIST (k = 100) a
//! compressed iteration costs 0.66× an exact one. They do shrink with fewer samples: the atoms
//! are `k × m` parameters, and a uniform sample of `s ≫ k` samples estimates them nearly as
//! well as all `n`. So a compressed fit on many samples runs its start, sketch and solver on
//! `s` random samples for [`WARM_WORK`]` · n / s` iterations (the work of `WARM_WORK` exact
//! iterations at most: each is `s/n` of one and compressed too), computes the codes of all
//! samples for those atoms ([`WARM_SWEEPS`] coordinate sweeps of their NNLS against the exact
//! `WᵀX`, one product), and hands both to the exact iterations on all samples, which then run
//! as a plain fit does (`max_iter`, `tol`; `polish` does not apply).
//!
//! Why exact iterations after the warm start and not sketched ones on all samples: measured on
//! Fashion-MNIST from the same warm start (rel. error 0.2227), 10 sketched iterations on all
//! samples (l = 200, the subset's basis) reach 0.2205 in 0.93 s, exact ones the same error
//! after 4 iterations in 0.72 s: the sketch's bias costs more than its cheaper products save
//! once the fit is near its end.
//!
//! **How many samples** ([`CompressSamples::Auto`]): [`SAMPLES_PER_ATOM`]` · k` (at least twice
//! the sketch's `l`), used when the data have at least [`MIN_SHRINK`] times as many samples.
//! Measured on Fashion-MNIST's 60,000 training images (k = 100, HALS, f32, 2 threads;
//! docs/benchmarks.md#compressed-nmf, with the commands): 10,000 samples × 72 iterations and
//! 7,000 × 103 reach rel. error 0.22 at the first exact iteration (seeds 0–3); 48 iterations on
//! 10,000 stop before extrapolated HALS's late drop (ten exact iterations more); 5,000 samples
//! over-fit (0.2207 on the subset, 0.2243 on all images after 30 iterations).
//!
//! With `compress = auto` on data where the features' sketch does not pay (`k` close to `m`),
//! the warm start still runs where there are many samples, without a sketch.
//!
//! **Not used** (whatever the setting) on sparse data, in distributed fits, with a custom start
//! or a resumed fit; an explicit count is refused where it cannot run.

use faer::{Mat, MatRef, Par};
use serde::{Deserialize, Serialize};

use super::Sketch;
use crate::engine::{Clock, Control, IterRecord, Observer, Resume};
use crate::error::{Error, Result};
use crate::linalg;
use crate::nmf::fit_loop;
use crate::nmf::init::{self, Factors};
use crate::nmf::model::{EncodeSpec, NmfModel};
use crate::nmf::options::{EncodeMethod, EncodeOptions, Resolved};
use crate::real::Real;
use crate::rng::Rng;

/// How many samples the warm start of a compressed fit uses ([module doc](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompressSamples {
    /// [`SAMPLES_PER_ATOM`]` · k` samples when the data have [`MIN_SHRINK`] times as many
    /// (the default), else none.
    #[default]
    Auto,
    /// No warm start: the compressed iterations run on all samples from the first.
    Off,
    /// This many samples (more than the sketch's `l`, fewer than the data's samples).
    Count(usize),
}

/// Samples per atom of [`CompressSamples::Auto`].
pub const SAMPLES_PER_ATOM: usize = 100;
/// `Auto` warms up only on data with at least this many times its sample count.
pub const MIN_SHRINK: usize = 4;
/// The warm start runs `WARM_WORK · n / s` iterations on its subset (the work of at most this
/// many exact iterations on all samples).
pub const WARM_WORK: usize = 12;
/// Coordinate sweeps of the codes of all samples for the warm start's atoms.
pub const WARM_SWEEPS: usize = 10;

impl CompressSamples {
    /// The sample count for `k` components on `n` samples with a sketch of `l` columns, `None`
    /// for no warm start. An explicit count must lie in `(l, n)`.
    pub(crate) fn plan(&self, k: usize, n: usize, l: usize) -> Result<Option<usize>> {
        match *self {
            CompressSamples::Off => Ok(None),
            CompressSamples::Auto => {
                let s = SAMPLES_PER_ATOM.saturating_mul(k).max(2 * l);
                Ok((s.saturating_mul(MIN_SHRINK) <= n).then_some(s))
            }
            CompressSamples::Count(s) => {
                if s <= l || s >= n {
                    return Err(Error::invalid(
                        "compress_samples",
                        s,
                        format!(
                            "the warm start's samples must be more than the sketch's l = {l} and fewer than n_samples = {n}; choose a count in between, `auto` or `off`"
                        ),
                    ));
                }
                Ok(Some(s))
            }
        }
    }

    /// Refuses an explicit count where no warm start can run (`why` names the case and the fix);
    /// `Auto` and `Off` pass.
    pub(crate) fn refuse_count(&self, why: &str) -> Result<()> {
        match *self {
            CompressSamples::Count(s) => Err(Error::invalid("compress_samples", s, why)),
            _ => Ok(()),
        }
    }
}

/// Shows the warm start's recorded iterations (every [`TOL_EVERY`](crate::engine::TOL_EVERY)th on
/// the sketch) to the fit's observer as progress ([`Observer::on_progress`]: done of `total`),
/// so that a front end can stop it (Ctrl-C, a
/// callback) like any iteration; the warm start then ends with its atoms so far, and the fit
/// stops at its first record.
struct Progress<'a> {
    inner: &'a mut (dyn Observer + Send),
    total: usize,
}

impl Observer for Progress<'_> {
    fn on_iter(&mut self, rec: &IterRecord) -> Control {
        self.inner.on_progress(rec.iter, self.total)
    }
}

/// The factors of all samples after the warm start.
pub(crate) struct WarmStart<T: Real> {
    pub factors: Factors<T>,
    /// Iterations run on the subset.
    pub iters: usize,
}

/// The warm start of [module doc](self) on `x` (`m × n`, samples as columns) with `s` samples
/// and the sketch `(l, q)` of `v` if any: the subset's own start (`v.init`), its sketch (exact
/// basis with an NNDSVD start, else the range finder), the solver of `v` for `WARM_WORK · n / s`
/// iterations, then the codes of all samples. Deterministic for a seed, with the same bits for
/// any thread count. The fit's time budget applies from `clock`, and `observer` sees the
/// iterations as progress ([`Progress`]).
pub(crate) fn warm_start<T: Real>(
    x: MatRef<'_, T>,
    v: &Resolved,
    s: usize,
    rng: &mut Rng,
    par: Par,
    clock: Clock,
    observer: &mut (dyn Observer + Send),
) -> Result<WarmStart<T>> {
    let (m, n) = (x.nrows(), x.ncols());
    let idx = rng.sample_indices(n, s);
    let xs = Mat::<T>::from_fn(m, s, |i, j| x[(i, idx[j])]);
    let vs = v.for_warm_start(s, m, WARM_WORK.saturating_mul(n).div_ceil(s))?;
    let exact = matches!(
        vs.init,
        crate::nmf::InitMethod::Nndsvd | crate::nmf::InitMethod::Nndsvda | crate::nmf::InitMethod::Nndsvdar
    ) && linalg::svd_is_exact(m, s);
    // With a sketch, the NNDSVD start's decomposition takes its l vectors and gives the basis.
    let svd = match v.sketch {
        Some((l, _)) if exact => Some(linalg::truncated_svd(xs.as_ref(), l, rng, par)?),
        _ => None,
    };
    let mut f = init::initialize_from(xs.as_ref(), &vs, None, svd.as_ref(), rng, par)?;
    let mut solver = crate::nmf::gram_solver(xs.as_ref().into(), &vs, par, crate::dist::Part::single(s));
    if let Some((l, q)) = v.sketch {
        solver = solver.with_sketch(match &svd {
            Some(svd) => Sketch::from_svd(svd),
            None => super::sketch(xs.as_ref(), l, q, rng, par),
        });
    }
    let xs_norm = linalg::frob_sq(xs.as_ref()).sqrt();
    let out = fit_loop::run_resumable(
        &mut solver,
        &mut f,
        &vs.stop,
        Resume::default(),
        xs_norm,
        clock,
        None,
        &mut Progress {
            inner: observer,
            total: vs.stop.max_iter,
        },
    )?;
    drop(solver);
    drop(xs);
    // The codes of all samples: the model's own encode by coordinate descent, WARM_SWEEPS
    // sweeps from zero against the exact P = WᵀX.
    let spec = EncodeSpec {
        beta_loss: 2.0,
        codes_penalty: v.codes_penalty,
        encode: EncodeOptions {
            method: EncodeMethod::Cd,
            max_iter: WARM_SWEEPS,
            tol: 0.0,
        },
    };
    let model = NmfModel::new(f.wt, spec)?;
    let h = model.encode_columns(x, None, par);
    Ok(WarmStart {
        factors: Factors {
            wt: model.components().to_owned(),
            h,
        },
        iters: out.n_iter,
    })
}
