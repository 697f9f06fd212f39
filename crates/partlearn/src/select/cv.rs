//! Choosing k by cross-validation on held-out entries (METHODS.md §11.4; bi-cross-validation of
//! Owen & Perry 2009, as RcppML does it): each replicate hides a seeded random `holdout` share
//! of the observed entries ([`Mask::holdout`], which keeps every sample and feature observed),
//! fits NMF on the rest with the masked solver of §11.2 ([`nmf::factorize_masked_with`]), and
//! measures the relative error on the hidden entries,
//! `‖M̄ ⊙ (X − WH)‖_F / ‖M̄ ⊙ X‖_F` ([`nmf::masked::observed_error`]). The same hold-out masks
//! serve every candidate k (a paired comparison), so the replicates' spread measures the
//! choice of entries and seeds, not noise between ranks.
//!
//! The suggested rank ([`one_se_rule`]) is where the test error stops falling: the smallest k
//! whose mean test error is within one standard error of the minimum (the one-standard-error
//! rule of Breiman et al. 1984 / Hastie, Tibshirani & Friedman §7.10).

use crate::engine::{Observer, StopReason};
use crate::error::Result;
use crate::nmf::{self, InitMethod, Mask, ValidNmfParams};
use crate::real::Real;
use crate::rng::Rng;
use faer::MatRef;

/// Test errors of one rank over the replicates.
pub(crate) struct CvScore {
    pub mean: f64,
    pub std: f64,
    /// `false` when a fit was interrupted.
    pub complete: bool,
}

/// The hold-out masks of the replicates: replicate `r` draws from `Rng::new(seed ^ CV_STREAM)`
/// forked `r + 1` times (independent of k, so every rank sees the same masks).
pub(crate) fn holdout_masks<T: Real>(
    x: MatRef<'_, T>,
    holdout: f64,
    replicates: usize,
    seed: u64,
) -> (Mask, Vec<Mask>) {
    const CV_STREAM: u64 = 0x6376_6d61_736b; // "cvmask"
    let base = Mask::from_nan(x);
    let mut rng = Rng::new(seed ^ CV_STREAM);
    let masks = (0..replicates)
        .map(|_| Mask::holdout(&base, holdout, &mut rng.fork()))
        .collect();
    (base, masks)
}

/// Fits rank `k` on each training mask (seed `seed + r`, random start) and scores the held-out
/// entries.
pub(crate) fn score_rank<T: Real>(
    x: MatRef<'_, T>,
    k: usize,
    base_mask: &Mask,
    masks: &[Mask],
    base: &ValidNmfParams,
    seed: u64,
    observer: &mut (dyn Observer + Send),
) -> Result<CvScore> {
    let mut errors = Vec::with_capacity(masks.len());
    for (r, train) in masks.iter().enumerate() {
        let opts = base
            .params()
            .clone()
            .k(k)
            .init(InitMethod::Random)
            .seed(seed.wrapping_add(r as u64))
            .check()?;
        let fit = nmf::factorize_masked_with(x, Some(train), &opts, None, observer)?;
        if fit.stop_reason == StopReason::Interrupted {
            return Ok(CvScore {
                mean: f64::NAN,
                std: f64::NAN,
                complete: false,
            });
        }
        let held = Mask::from_fn(x.nrows(), x.ncols(), |j, i| {
            base_mask.observed(j, i) && !train.observed(j, i)
        });
        let (err, norm) = nmf::masked::observed_error(x, &held, fit.codes(), fit.model.components())?;
        errors.push(if norm > 0.0 {
            (err / norm).sqrt()
        } else {
            err.sqrt()
        });
    }
    let n = errors.len() as f64;
    let mean = errors.iter().sum::<f64>() / n;
    // Sample standard deviation (n − 1); 0 with one replicate.
    let std = if errors.len() > 1 {
        (errors.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Ok(CvScore {
        mean,
        std,
        complete: true,
    })
}

/// The one-standard-error rule: with `(k, mean, std)` per candidate over `replicates`
/// replicates, `k_min` the candidate of the smallest mean and `se = std(k_min)/√replicates`,
/// the smallest k whose mean is at most `mean(k_min) + se` (0 without candidates). Candidates
/// need not be sorted; non-finite means are ignored.
pub fn one_se_rule(scores: &[(usize, f64, f64)], replicates: usize) -> usize {
    let finite = || scores.iter().filter(|s| s.1.is_finite());
    let Some(best) = finite().min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0))) else {
        return 0;
    };
    let se = best.2 / (replicates.max(1) as f64).sqrt();
    finite()
        .filter(|s| s.1 <= best.1 + se)
        .map(|s| s.0)
        .min()
        .unwrap_or(0)
}
