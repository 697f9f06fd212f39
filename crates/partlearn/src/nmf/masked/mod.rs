//! NMF with missing entries (METHODS.md §11.2): minimizes `Σ M ⊙ d_β(X | codes·atoms)` over the
//! observed entries only (`M` = the [`Mask`], 1 = observed; the Frobenius case is
//! `½‖M ⊙ (X − WH)‖²`).
//!
//! Entry points: [`factorize_masked`] / [`factorize_masked_with`] (the fit; hidden entries are
//! NaN in `x`, or given by a [`Mask`]), [`NmfModel::encode_masked`] (`transform` from the
//! observed entries), [`observed_error`] (reconstruction error over a set of entries, for
//! metrics and cross-validation).
//!
//! Solvers, all inside the shared fit loop: MU (any β) weights the updates by the mask
//! ([`mu`]); HALS and ANLS solve each code against its own observed features and each atom row
//! against its own observed samples, with a per-column Gram ([`gram`]: exact masked NNLS for
//! ANLS, coordinate descent for HALS) — not the EM shortcut of filling hidden entries with `WH`.
//! A mask of all ones runs the unmasked solver ([`super::factorize_with`]), with its bits.
//! The masked solvers run plain iterations: `extrapolate` is ignored, dead atoms are not
//! re-seeded, `compress = on` and `pg_tol > 0` are errors. The start (random or NNDSVD) is
//! computed on `X` with each hidden entry replaced by its feature's observed mean.
//!
//! Bad input: a mask of another shape, a mask entry other than 0/1 ([`Mask::from_matrix`]), a NaN
//! where the mask says observed, and a sample or feature without any observed entry (its code,
//! or its entry of every atom, would be undetermined) are one-line errors naming the entry,
//! sample or feature; hidden entries may hold any value.

mod gram;
mod mask;
mod mu;
#[cfg(test)]
mod tests;

use std::time::Instant;

use faer::{Accum, Mat, MatRef, Par};

pub use mask::Mask;

use super::checkpoint::{Checkpointing, DataPrint, Saver};
use super::init::{self, CustomInit, Factors};
use super::model::{EncodeSpec, NmfModel};
use super::options::{InitMethod, Resolved, Solver, ValidNmfParams};
use super::{fit_loop, Compress, FitStats, NmfFit};
use crate::engine::{Clock, Observer, Silent, Warning};
use crate::error::{Error, Result};
use crate::linalg;
use crate::real::Real;
use crate::rng::Rng;

pub(crate) use mask::masked_columns;

/// Fits an NMF of `x` (`n_samples × n_features`, samples as rows) from its observed entries:
/// those marked 1 in `mask`, or, without a mask, those that are not NaN (module doc). Returns
/// the same [`NmfFit`] as [`super::factorize`], with `reconstruction_err` = `‖M ⊙ (X − WH)‖_F`
/// and `rel_error` divided by `‖M ⊙ X‖_F`; its codes are [`NmfModel::encode_masked`] of `x`.
///
/// ```
/// use partlearn::faer::Mat;
/// use partlearn::nmf::{self, NmfParams, Solver};
///
/// let mut x = Mat::<f64>::from_fn(30, 20, |i, j| ((i * j) % 7) as f64 + 1.0);
/// x[(3, 4)] = f64::NAN; // a missing entry
/// let fit = nmf::factorize_masked(x.as_ref(), None, &NmfParams::new(4).solver(Solver::Anls).check()?)?;
/// let filled = fit.model.decode(fit.codes())?; // the prediction of the missing entry at (3, 4)
/// assert!(filled[(3, 4)].is_finite());
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn factorize_masked<T: Real>(
    x: MatRef<'_, T>,
    mask: Option<&Mask>,
    params: &ValidNmfParams,
) -> Result<NmfFit<T>> {
    factorize_masked_with(x, mask, params, None, &mut Silent)
}

/// [`factorize_masked`] with a custom start and an observer (as [`super::factorize_with`]).
pub fn factorize_masked_with<T: Real>(
    x: MatRef<'_, T>,
    mask: Option<&Mask>,
    params: &ValidNmfParams,
    custom: Option<&CustomInit<T>>,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    let ck = Checkpointing::none();
    factorize_masked_impl(x, mask, params, custom, ck, observer)
}

/// [`factorize_masked_with`] with checkpoints ([`super::checkpoint`]).
pub(crate) fn factorize_masked_impl<T: Real>(
    x: MatRef<'_, T>,
    mask: Option<&Mask>,
    params: &ValidNmfParams,
    custom: Option<&CustomInit<T>>,
    ck: Checkpointing<'_, T>,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    // Every entry observed: the unmasked solver, without copying `x`.
    if let Some(m) = mask {
        m.check_shape(x.nrows(), x.ncols())?;
    }
    if mask.is_none_or(Mask::is_full) && !has_nan(x) {
        return super::factorize_impl(x, params, custom, ck, observer);
    }
    let (x0, mask) = masked_columns(x, mask, true)?;
    let opts = params.params();
    if matches!(opts.compress, Compress::On { .. }) {
        return Err(Error::invalid(
            "compress",
            "on",
            "compressed NMF needs every entry; with missing entries use compress = off",
        ));
    }
    if opts.pg_tol > 0.0 {
        return Err(Error::invalid(
            "pg_tol",
            opts.pg_tol,
            "the masked solvers have no projected-gradient rule; use tol or max_iter",
        ));
    }
    let v = params.resolve(x.nrows(), x.ncols())?;
    if v.subsample.is_some() {
        opts.compress_samples.refuse_count(
            "the masked solvers do not compress; with missing entries use `compress_samples = off`",
        )?;
    }
    let (n, m, k) = (x.nrows(), x.ncols(), opts.k);
    // X₀, the mask (2 bytes an entry), V and the MU workspaces (3 × m × n), the factors.
    let t = std::mem::size_of::<T>() as f64;
    let bytes = (t * 4.0 + 2.0) * (m * n) as f64 + t * 6.0 * (k * (n + m)) as f64;
    linalg::check_memory("k", k, bytes)?;
    if opts.beta_loss <= 0.0 {
        check_observed_positive(x0.as_ref(), &mask)?;
    }
    let start = Instant::now();
    linalg::with_threads(opts.threads, || {
        fit_masked(x0.as_ref(), &mask, &v, custom, ck, observer, start)
    })?
}

/// Whether `x` holds a NaN.
fn has_nan<T: Real>(x: MatRef<'_, T>) -> bool {
    (0..x.ncols()).any(|i| (0..x.nrows()).any(|j| x[(j, i)].is_nan()))
}

/// Itakura–Saito (β ≤ 0) divides by the data: every observed entry must be > 0.
fn check_observed_positive<T: Real>(x0: MatRef<'_, T>, mask: &Mask) -> Result<()> {
    for j in 0..x0.ncols() {
        let fl = mask.sample_flags(j);
        if let Some(i) = (0..x0.nrows()).find(|&i| fl[i] && x0[(i, j)] <= T::zero()) {
            return Err(Error::invalid(
                "beta_loss",
                format!("{} at sample {j}, feature {i}", x0[(i, j)].to_f64()),
                "β ≤ 0 (e.g. Itakura–Saito) needs every observed entry > 0; add a small offset or use β > 0",
            ));
        }
    }
    Ok(())
}

fn fit_masked<T: Real>(
    x0: MatRef<'_, T>,
    mask: &Mask,
    v: &Resolved,
    custom: Option<&CustomInit<T>>,
    ck: Checkpointing<'_, T>,
    observer: &mut (dyn Observer + Send),
    start: Instant,
) -> Result<NmfFit<T>> {
    let o = &v.opts;
    let par = linalg::par(o.threads);
    let mut rng = Rng::new(o.seed);
    let x_sq = linalg::frob_sq(x0);
    let print = DataPrint {
        n_samples: x0.ncols(),
        n_features: x0.nrows(),
        x_sq,
        observed: Some(mask.observed_count()),
    };
    let mut factors = match ck.from {
        Some(from) => {
            from.check_data(&print, "the data")?;
            Factors {
                wt: from.wt.clone(),
                h: from.h.clone(),
            }
        }
        None => {
            let filled = fill_with_feature_means(x0, mask);
            init::initialize_from(filled.as_ref(), v, custom, None, &mut rng, par)?
        }
    };
    let mut saver = ck.save.map(|path| {
        Saver::new(
            path,
            o,
            T::NAME,
            print,
            ck.from,
            crate::dist::Part::single(x0.ncols()),
        )
    });
    let resume = ck.from.map(Saver::resume_of).unwrap_or_default();
    let clock = Clock::since(start).with_offset(ck.from.map_or(0.0, |f| f.seconds()));
    let x_norm = x_sq.sqrt();
    let mut warnings = Vec::new();
    if o.solver == Solver::Mu && v.init == InitMethod::Nndsvd {
        warnings.push(Warning::MuKeepsNndsvdZeros);
    }
    let mut stats = FitStats::default();
    let outcome = if o.beta_loss == 2.0 && o.solver != Solver::Mu {
        let rule = match o.solver {
            Solver::Hals => gram::MaskedRule::Hals {
                inner_codes: v.inner_max_codes,
                inner_atoms: v.inner_max_atoms,
                delta: o.hals_inner_delta,
            },
            _ => gram::MaskedRule::Anls,
        };
        let mut s = gram::MaskedGram::new(x0, mask, o.k, rule, v.codes_penalty, v.atoms_penalty, par);
        if let Some(from) = ck.from {
            fit_loop::Iterate::set_state(&mut s, &from.meta.solver)?;
        }
        let out = fit_loop::run_resumable(
            &mut s,
            &mut factors,
            &v.stop,
            resume,
            x_norm,
            clock,
            saver.as_mut(),
            observer,
        )?;
        stats.column_sweeps = s.column_sweeps;
        stats.nnls_rounds = s.nnls_rounds;
        out
    } else {
        let mut s = mu::MaskedMu::new(x0, mask, o.k, o.beta_loss, v.codes_penalty, v.atoms_penalty, par);
        fit_loop::run_resumable(
            &mut s,
            &mut factors,
            &v.stop,
            resume,
            x_norm,
            clock,
            saver.as_mut(),
            observer,
        )?
    };
    let history = super::checkpoint::joined_history(ck.from, outcome.history);
    warnings.extend(outcome.warnings);
    let spec = EncodeSpec {
        beta_loss: o.beta_loss,
        codes_penalty: v.codes_penalty,
        encode: o.encode,
    };
    let Factors { wt, h } = factors;
    let model = NmfModel::new(wt, spec)?;
    let codes_t = encode_columns(&model, x0, mask, Some(h), par);
    let f = Factors {
        wt: model.components().to_owned(),
        h: codes_t,
    };
    let e = mu::MaskedMu::new(x0, mask, o.k, o.beta_loss, v.codes_penalty, v.atoms_penalty, par).evaluate(&f);
    let Factors { h: codes_t, .. } = f;
    Ok(NmfFit {
        model,
        codes_t,
        history,
        n_iter: outcome.n_iter,
        stop_reason: outcome.stop_reason,
        warnings,
        objective: e.objective,
        reconstruction_err: e.sq_error.sqrt(),
        rel_error: if x_norm > 0.0 {
            e.sq_error.sqrt() / x_norm
        } else {
            0.0
        },
        seconds: clock.total(),
        stats,
    })
}

/// `x0` (`m × n`) with every hidden entry replaced by the mean of its feature's observed
/// entries (the start of a masked fit only).
fn fill_with_feature_means<T: Real>(x0: MatRef<'_, T>, mask: &Mask) -> Mat<T> {
    let (m, n) = (x0.nrows(), x0.ncols());
    let means: Vec<T> = (0..m)
        .map(|i| {
            let obs = n - mask.hidden_per_feature()[i];
            let s: f64 = (0..n).map(|j| x0[(i, j)].to_f64()).sum();
            T::from_f64(if obs > 0 { s / obs as f64 } else { 0.0 })
        })
        .collect();
    Mat::from_fn(
        m,
        n,
        |i, j| if mask.observed(j, i) { x0[(i, j)] } else { means[i] },
    )
}

/// Codes `k × n` of `x0` (`m × n`, hidden entries 0) from the observed entries, warm-started from
/// `h0`: for β = 2 the exact masked NNLS of every sample (with the codes' penalty), whatever
/// `encode.method`; otherwise masked MU on the codes (at most `encode.max_iter` iterations, until
/// the objective falls by less than `encode.tol` of its start).
fn encode_columns<T: Real>(
    model: &NmfModel<T>,
    x0: MatRef<'_, T>,
    mask: &Mask,
    h0: Option<Mat<T>>,
    par: Par,
) -> Mat<T> {
    let (k, n, m) = (model.k(), x0.ncols(), x0.nrows());
    let spec = model.spec;
    let wt = model.components();
    if spec.beta_loss == 2.0 {
        let mut h = h0.unwrap_or_else(|| Mat::zeros(k, n));
        let mut q = Mat::<T>::zeros(k, k);
        linalg::gram(q.as_mut(), wt, par);
        let mut p = Mat::<T>::zeros(k, n);
        linalg::matmul(p.as_mut(), Accum::Replace, wt, x0, T::one(), par);
        let x_sq = vec![0.0; n];
        let _ = m;
        gram::solve_side(
            h.as_mut(),
            q.as_ref(),
            p.as_ref(),
            wt,
            &|j| mask.sample_flags(j),
            mask.hidden_per_sample(),
            &x_sq,
            gram::SideRule::Exact,
            spec.codes_penalty,
            par,
        );
        return h;
    }
    let h = h0.unwrap_or_else(|| {
        let v0 = T::from_f64(
            (linalg::frob_sq(x0).sqrt() / ((m * n) as f64).sqrt() / k as f64)
                .sqrt()
                .max(1e-12),
        );
        Mat::from_fn(k, n, |_, _| v0)
    });
    let mut f = Factors { wt: wt.to_owned(), h };
    let mut mu = mu::MaskedMu::new(
        x0,
        mask,
        k,
        spec.beta_loss,
        spec.codes_penalty,
        Default::default(),
        par,
    );
    mu.codes_only = true;
    use fit_loop::Iterate;
    let mut prev = mu.initial(&mut f).objective;
    let first = prev;
    for _ in 0..spec.encode.max_iter {
        let cur = mu.iterate(&mut f).objective;
        if first.is_nan() || first <= 0.0 || (prev - cur) / first < spec.encode.tol {
            break;
        }
        prev = cur;
    }
    f.h
}

impl<T: Real> NmfModel<T> {
    /// Codes (`n × k`) of samples given as rows (`n × n_features`) from their observed entries
    /// only: those marked 1 in `mask`, or, without a mask, those that are not NaN (METHODS.md
    /// §11.2: for β = 2 the exact NNLS of each sample on its observed features, for other β
    /// masked MU on the codes). A sample without any observed entry is an error naming it (its
    /// code is undetermined). With every entry observed this is [`NmfModel::encode`].
    pub fn encode_masked(&self, x: MatRef<'_, T>, mask: Option<&Mask>, threads: usize) -> Result<Mat<T>> {
        if x.ncols() != self.n_features() {
            self.check_data(x.transpose())?;
        }
        if let Some(m) = mask {
            m.check_shape(x.nrows(), x.ncols())?;
        }
        if mask.is_none_or(Mask::is_full) && !has_nan(x) {
            return self.encode(x, threads);
        }
        let (x0, mask) = masked_columns(x, mask, false)?;
        if self.spec.beta_loss <= 0.0 {
            check_observed_positive(x0.as_ref(), &mask)?;
        }
        let h = linalg::with_threads(threads, || {
            encode_columns(self, x0.as_ref(), &mask, None, linalg::par(threads))
        })?;
        Ok(h.transpose().to_owned())
    }
}

/// `(Σ (x − x̂)², Σ x²)` over the entries that `mask` marks observed, with `x̂ = codes · atoms`
/// (`x` is `n × m`, samples as rows, `codes` `n × k`, `atoms` `k × m`; hidden entries of `x` may
/// be NaN): the reconstruction error of a masked fit, or, with the mask of the held-out
/// entries, the test error of cross-validation (METHODS.md §11.4). Sums in f64, sample by sample.
pub fn observed_error<T: Real>(
    x: MatRef<'_, T>,
    mask: &Mask,
    codes: MatRef<'_, T>,
    atoms: MatRef<'_, T>,
) -> Result<(f64, f64)> {
    mask.check_shape(x.nrows(), x.ncols())?;
    if codes.nrows() != x.nrows() || atoms.ncols() != x.ncols() || codes.ncols() != atoms.nrows() {
        return Err(Error::ShapeMismatch {
            what: "codes and atoms".into(),
            expected: format!("{} × k and k × {}", x.nrows(), x.ncols()),
            found: format!(
                "{} × {} and {} × {}",
                codes.nrows(),
                codes.ncols(),
                atoms.nrows(),
                atoms.ncols()
            ),
            hint: "give the codes of these samples and the model's atoms".into(),
        });
    }
    let mut xt_hat = Mat::<T>::zeros(x.ncols(), x.nrows());
    linalg::matmul(
        xt_hat.as_mut(),
        Accum::Replace,
        atoms.transpose(),
        codes.transpose(),
        T::one(),
        Par::Seq,
    );
    let (mut err, mut norm) = (0.0, 0.0);
    for j in 0..x.nrows() {
        let fl = mask.sample_flags(j);
        for i in 0..x.ncols() {
            if fl[i] {
                let (a, b) = (x[(j, i)].to_f64(), xt_hat[(i, j)].to_f64());
                err += (a - b) * (a - b);
                norm += a * a;
            }
        }
    }
    Ok((err, norm))
}
