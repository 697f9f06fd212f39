//! The evaluation protocol on data with missing entries (METHODS.md §11.2, §7): NMF codes from
//! the observed entries ([`NmfModel::encode_masked`](crate::nmf::NmfModel::encode_masked)), the
//! reconstruction errors of §7.1 over the observed entries only, the Hoyer sparsity and the SVM
//! protocol of the codes as usual. The max-approximation errors of §7.5 dilate whole images,
//! which a missing pixel leaves undefined: they are skipped, with the reason in
//! [`MissingEntries::skipped`].

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::evaluate::{EvalOptions, EvalTimings, Metrics};
use super::metrics::ReconstructionError;
use super::svm::{svm_protocol, SvmProtocolOptions};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nmf::Mask;
use crate::protocol::PartModel;
use crate::real::Real;
use crate::sparseness::mean_hoyer_rows;

/// What a masked evaluation counted and left out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MissingEntries {
    /// Entries observed (the reconstruction errors are over these).
    pub observed: usize,
    /// Entries missing.
    pub hidden: usize,
    /// Metrics not computed, each with its reason.
    pub skipped: Vec<String>,
}

/// [`ReconstructionError`] over the entries `mask` marks observed: `mse = Σ_obs (x − x̂)² /
/// #observed` (and clipped to `[0, 1]`), `rel_error = ‖M ⊙ (X − X̂)‖ / ‖M ⊙ X‖`. `x` and
/// `recon` are `n × m`; hidden entries of `x` may be NaN.
pub fn observed_reconstruction_error<T: Real>(
    x: faer::MatRef<'_, T>,
    recon: faer::MatRef<'_, T>,
    mask: &Mask,
) -> Result<ReconstructionError> {
    super::metrics::same_shape("reconstruction", x, recon)?;
    mask.check_shape(x.nrows(), x.ncols())?;
    let (mut sq, mut sq_clip, mut norm, mut count) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    for j in 0..x.nrows() {
        for i in 0..x.ncols() {
            if mask.observed(j, i) {
                let (a, b) = (x[(j, i)].to_f64(), recon[(j, i)].to_f64());
                sq += (a - b) * (a - b);
                let c = b.clamp(0.0, 1.0);
                sq_clip += (a - c) * (a - c);
                norm += a * a;
                count += 1;
            }
        }
    }
    let count = count.max(1) as f64;
    Ok(ReconstructionError {
        mse: sq / count,
        mse_clipped: sq_clip / count,
        rel_error: if norm > 0.0 { (sq / norm).sqrt() } else { sq.sqrt() },
    })
}

/// Evaluates an NMF `model` on `data` whose missing entries are marked by `mask` (or, without
/// one, are NaN): module doc. Other models (auto-encoders, deep models) cannot encode partial
/// samples: an error says so. Returns the metrics (with `max_approx = None`) and what was
/// observed and skipped.
pub fn evaluate_masked<T: Real>(
    model: &dyn PartModel<T>,
    data: &Dataset<T>,
    mask: Option<&Mask>,
    image_shape: Option<(usize, usize)>,
    opts: &EvalOptions,
) -> Result<(Metrics, MissingEntries)> {
    let start = Instant::now();
    let mut t = EvalTimings::default();
    let nmf = model.as_nmf().ok_or_else(|| {
        Error::invalid(
            "data",
            "missing entries",
            format!(
                "a {} model cannot encode samples with missing entries (only NMF can); fill them first",
                model.kind()
            ),
        )
    })?;
    let x = data.x();
    let mask = match mask {
        Some(m) => m.clone(),
        None => Mask::from_nan(x),
    };
    let clock = Instant::now();
    let codes = nmf.encode_masked(x, Some(&mask), opts.threads)?;
    t.encode = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let recon = model.decode(codes.as_ref())?;
    let reconstruction = observed_reconstruction_error(x, recon.as_ref(), &mask)?;
    t.reconstruction = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let hoyer = mean_hoyer_rows(codes.as_ref());
    t.sparsity = clock.elapsed().as_secs_f64();
    let mut skipped = Vec::new();
    if image_shape.is_some() {
        skipped.push(
            "max_approx: the dilation of §7.5 needs complete images, and these have missing pixels"
                .to_string(),
        );
    }
    let clock = Instant::now();
    let svm = match (&opts.svm, &data.labels) {
        (Some(o), Some(labels)) => {
            let y: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
            let o = SvmProtocolOptions {
                threads: opts.threads,
                ..o.clone()
            };
            Some(svm_protocol(codes.as_ref(), &y, &o)?)
        }
        _ => None,
    };
    t.svm = clock.elapsed().as_secs_f64();
    t.total = start.elapsed().as_secs_f64();
    let hidden = mask.n_hidden();
    Ok((
        Metrics {
            model_kind: model.kind().to_string(),
            data: data.name.clone(),
            n_samples: data.n_samples(),
            n_features: data.n_features(),
            k: model.k(),
            reconstruction,
            hoyer,
            max_approx: None,
            svm,
            seconds: t,
        },
        MissingEntries {
            observed: data.n_samples() * data.n_features() - hidden,
            hidden,
            skipped,
        },
    ))
}

#[cfg(test)]
mod tests {
    use faer::Mat;

    use super::*;
    use crate::nmf::{self, NmfParams, Solver};

    #[test]
    fn masked_evaluation_scores_observed_entries_and_skips_dilation() {
        let mut x = Mat::<f64>::from_fn(36, 9, |i, j| ((i + j) % 3 == 0) as u8 as f64 + 0.1);
        x[(2, 4)] = f64::NAN;
        let fit = nmf::factorize_masked(
            x.as_ref(),
            None,
            &NmfParams::new(3).solver(Solver::Anls).check().unwrap(),
        )
        .unwrap();
        let data = Dataset::from_rows(x.as_ref(), "nan")
            .with_image_shape(3, 3)
            .unwrap();
        let opts = EvalOptions {
            threads: 1,
            structuring_element: "disk:1".into(),
            svm: None,
        };
        let (m, missing) = evaluate_masked(&fit.model, &data, None, data.image_shape, &opts).unwrap();
        assert!(m.reconstruction.mse.is_finite());
        assert!((m.reconstruction.rel_error - fit.rel_error).abs() < 1e-9);
        assert_eq!((missing.hidden, missing.observed), (1, 36 * 9 - 1));
        assert!(m.max_approx.is_none() && missing.skipped[0].starts_with("max_approx"));
    }
}
