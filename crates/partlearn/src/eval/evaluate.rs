//! One evaluation for every model (METHODS.md §7): encode the data with the model, then measure
//! reconstruction (§7.1), Hoyer sparsity of the codes (§7.2), the linear-SVM accuracy of the
//! codes (§7.3, when the data have labels) and the max-approximation error to dilation (§7.5,
//! when the data are images). Everything goes through [`PartModel`], so NMF models and
//! auto-encoders are measured by the same code.

use std::time::Instant;

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use super::metrics::{mse_pair, reconstruction_error, ReconstructionError};
use super::morphology::{dilate_rows, StructuringElement};
use super::svm::{svm_protocol, SvmProtocolOptions, SvmProtocolResult};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::protocol::PartModel;
use crate::real::Real;
use crate::sparseness::{mean_hoyer_rows, HoyerSummary};

/// What to measure and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// Structuring element of the dilation, e.g. `disk:1` (the report's 3×3 cross).
    pub structuring_element: String,
    /// The SVM protocol; `None` skips it (it is also skipped when the data have no labels).
    pub svm: Option<SvmProtocolOptions>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            threads: 1,
            structuring_element: "disk:1".into(),
            svm: Some(SvmProtocolOptions::default()),
        }
    }
}

/// Max-approximation errors of §7.5 (per-pixel MSE, averaged over images). The
/// max-approximation of `x` is `decode_with_atoms(δ(atoms), encode(x))` — for auto-encoders the
/// bias is not dilated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaxApproxErrors {
    /// The structuring element of the dilation `δ` (e.g. `disk:1`).
    pub structuring_element: String,
    /// Against the dilated originals `δ(x)`: the report's "max-approximation error".
    pub vs_dilated_originals: f64,
    /// The same with the max-approximation clipped to `[0, 1]` (the notebooks' "clip").
    pub vs_dilated_originals_clipped: f64,
    /// Against the dilated reconstructions `δ(x̂)` (secondary variant; low for blurry models).
    pub vs_dilated_reconstructions: f64,
    /// The same with the max-approximation clipped to `[0, 1]`.
    pub vs_dilated_reconstructions_clipped: f64,
}

/// Seconds spent in each part of an evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalTimings {
    /// Encoding the data (`model.encode`, or 0 with given codes).
    pub encode: f64,
    /// Decoding and the reconstruction errors (§7.1).
    pub reconstruction: f64,
    /// Hoyer sparsity of the codes (§7.2).
    pub sparsity: f64,
    /// Dilations and max-approximation errors (§7.5).
    pub max_approx: f64,
    /// The SVM protocol (§7.3).
    pub svm: f64,
    /// The whole evaluation.
    pub total: f64,
}

/// All metrics of one model on one data set (written as metrics.json).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// The model's kind ([`PartModel::kind`]: `nmf`, …).
    pub model_kind: String,
    /// The data set's name ([`Dataset::name`]).
    pub data: String,
    /// Samples evaluated.
    pub n_samples: usize,
    /// Features per sample.
    pub n_features: usize,
    /// Atoms of the model.
    pub k: usize,
    /// Reconstruction errors (§7.1).
    pub reconstruction: ReconstructionError,
    /// Hoyer sparsity of the codes (§7.2).
    pub hoyer: HoyerSummary,
    /// Max-approximation errors (§7.5); image data only.
    pub max_approx: Option<MaxApproxErrors>,
    /// Linear-SVM accuracy of the codes (§7.3); labelled data only (and unless disabled).
    pub svm: Option<SvmProtocolResult>,
    /// Seconds spent in each part.
    pub seconds: EvalTimings,
}

/// The metrics and the matrices behind them (for figures).
pub struct Evaluation<T: Real> {
    /// Every metric.
    pub metrics: Metrics,
    /// `n × k`.
    pub codes: Mat<T>,
    /// `n × n_features`.
    pub reconstructions: Mat<T>,
    /// Dilated atoms (`k × n_features`), dilated originals and max-approximations
    /// (`n × n_features`); image data only.
    pub dilated: Option<Dilated<T>>,
}

/// The dilation side of an evaluation.
pub struct Dilated<T: Real> {
    /// Dilated atoms `δ(atoms)`, `k × n_features`.
    pub atoms: Mat<T>,
    /// Dilated data `δ(x)`, `n × n_features`.
    pub originals: Mat<T>,
    /// `decode_with_atoms(δ(atoms), codes)`, `n × n_features`.
    pub max_approximations: Mat<T>,
}

/// Evaluates `model` on `data`. `image_shape` (the data's, or the model's when the data carry
/// none) enables the dilation metrics; labels enable the SVM protocol.
///
/// Fit, transform and evaluate, on 4 × 4 images made of two bars:
/// ```
/// use partlearn::data::Dataset;
/// use partlearn::eval::evaluate::{evaluate, EvalOptions};
/// use partlearn::faer::Mat;
/// use partlearn::nmf::{self, NmfParams};
/// use partlearn::protocol::PartModel;
///
/// let x = Mat::<f32>::from_fn(20, 16, |i, j| {
///     let (row, col) = (j / 4, j % 4);
///     ((i % 2 == 0 && row == i % 4) || (i % 2 == 1 && col == i % 4)) as u8 as f32
/// });
/// let fit = nmf::factorize(x.as_ref(), &NmfParams::new(4).check()?)?;
/// let codes = fit.model.encode(x.as_ref(), 1)?; // transform: exact NNLS, n × k
/// assert_eq!((codes.nrows(), codes.ncols()), (20, 4));
/// let data = Dataset::from_rows(x.as_ref(), "bars").with_image_shape(4, 4)?;
/// let opts = EvalOptions { svm: None, ..EvalOptions::default() };
/// let m = evaluate(&fit.model, &data, data.image_shape, &opts)?.metrics;
/// assert!(m.reconstruction.rel_error < 0.5 && m.max_approx.is_some());
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn evaluate<T: Real>(
    model: &dyn PartModel<T>,
    data: &Dataset<T>,
    image_shape: Option<(usize, usize)>,
    opts: &EvalOptions,
) -> Result<Evaluation<T>> {
    evaluate_codes(model, data, image_shape, opts, None)
}

/// Like [`evaluate`], but with given codes (`n × k`) instead of `model.encode(data)`: e.g. the
/// constrained codes a sparse-NMF fit stored for its own training data, which is how the
/// report measured Hoyer's sparse NMF (fitted on the test images, METHODS.md §2.3).
pub fn evaluate_codes<T: Real>(
    model: &dyn PartModel<T>,
    data: &Dataset<T>,
    image_shape: Option<(usize, usize)>,
    opts: &EvalOptions,
    codes: Option<Mat<T>>,
) -> Result<Evaluation<T>> {
    let start = Instant::now();
    let mut t = EvalTimings::default();
    let se = check_inputs(model, data.x(), image_shape, &opts.structuring_element)?;

    let clock = Instant::now();
    let codes = match codes {
        Some(c) if c.nrows() == data.n_samples() && c.ncols() == model.k() => c,
        Some(c) => return Err(Error::ShapeMismatch {
            what: "stored codes".into(),
            expected: format!(
                "{} × {} (the evaluation data and the model)",
                data.n_samples(),
                model.k()
            ),
            found: format!("{} × {}", c.nrows(), c.ncols()),
            hint: "stored codes belong to the data the run was fitted on; evaluate on that data, or let the model encode it (no `codes`)"
                .into(),
        }),
        None => model.encode(data.x(), opts.threads)?,
    };
    t.encode = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    let reconstructions = model.decode(codes.as_ref())?;
    let reconstruction = reconstruction_error(data.x(), reconstructions.as_ref())?;
    t.reconstruction = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    let hoyer = mean_hoyer_rows(codes.as_ref());
    t.sparsity = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    let (max_approx, dilated) = match image_shape {
        Some(shape) => {
            let side = Side {
                x: data.x(),
                codes: codes.as_ref(),
                reconstructions: reconstructions.as_ref(),
            };
            let (e, d) = dilation_side(model, side, shape, &se, &opts.structuring_element, opts.threads)?;
            (Some(e), Some(d))
        }
        None => (None, None),
    };
    t.max_approx = clock.elapsed().as_secs_f64();

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

    Ok(Evaluation {
        metrics: Metrics {
            model_kind: model.kind().to_string(),
            data: data.name.clone(),
            n_samples: data.n_samples(),
            n_features: data.n_features(),
            k: model.k(),
            reconstruction,
            hoyer,
            max_approx,
            svm,
            seconds: t,
        },
        codes,
        reconstructions,
        dilated,
    })
}

/// The max-approximation errors of METHODS.md §7.5 of `model` on the images `x` (`n × h·w`,
/// samples as rows, `image_shape = (h, w)`), dilated by `structuring_element` (e.g. `disk:1`):
/// the images are encoded and decoded by the model, then compared as [`evaluate`] compares them
/// (the same numbers as its `max_approx`).
///
/// ```
/// use partlearn::eval::evaluate::max_approx_errors;
/// use partlearn::faer::Mat;
/// use partlearn::nmf::{self, NmfParams};
///
/// let x = Mat::<f64>::from_fn(12, 9, |i, j| ((i + j) % 3 == 0) as u8 as f64);
/// let fit = nmf::factorize(x.as_ref(), &NmfParams::new(3).check()?)?;
/// let e = max_approx_errors(&fit.model, x.as_ref(), (3, 3), "disk:1", 1)?;
/// assert!(e.vs_dilated_originals >= 0.0 && e.structuring_element == "disk:1");
/// assert!(max_approx_errors(&fit.model, x.as_ref(), (2, 4), "disk:1", 1).is_err());
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn max_approx_errors<T: Real>(
    model: &dyn PartModel<T>,
    x: MatRef<'_, T>,
    image_shape: (usize, usize),
    structuring_element: &str,
    threads: usize,
) -> Result<MaxApproxErrors> {
    let se = check_inputs(model, x, Some(image_shape), structuring_element)?;
    let codes = model.encode(x, threads)?;
    let reconstructions = model.decode(codes.as_ref())?;
    let side = Side {
        x,
        codes: codes.as_ref(),
        reconstructions: reconstructions.as_ref(),
    };
    Ok(dilation_side(model, side, image_shape, &se, structuring_element, threads)?.0)
}

/// The structuring element named by `structuring_element`, after checking that `x` has the
/// model's features and that `image_shape` covers them.
fn check_inputs<T: Real>(
    model: &dyn PartModel<T>,
    x: MatRef<'_, T>,
    image_shape: Option<(usize, usize)>,
    structuring_element: &str,
) -> Result<StructuringElement> {
    if x.ncols() != model.n_features() {
        return Err(Error::ShapeMismatch {
            what: "evaluation data".into(),
            expected: format!("n × {} features (as the model)", model.n_features()),
            found: format!("{} × {}", x.nrows(), x.ncols()),
            hint: "evaluate on data with the features the model was fitted on".into(),
        });
    }
    let se = StructuringElement::parse(structuring_element)?;
    if let Some((h, w)) = image_shape {
        if h.checked_mul(w) != Some(x.ncols()) {
            return Err(Error::ShapeMismatch {
                what: "image shape".into(),
                expected: format!("{} pixels", x.ncols()),
                found: format!("{h}×{w}"),
                hint: "give the image shape of the data".into(),
            });
        }
    }
    Ok(se)
}

/// The images, their codes and their reconstructions, for [`dilation_side`].
struct Side<'a, T: Real> {
    x: MatRef<'a, T>,
    codes: MatRef<'a, T>,
    reconstructions: MatRef<'a, T>,
}

/// §7.5: dilates the atoms, the images and the reconstructions, decodes the codes with the
/// dilated atoms and measures the max-approximations against both dilations (`se_name`: the
/// element as the caller spelled it, recorded in the errors).
fn dilation_side<T: Real>(
    model: &dyn PartModel<T>,
    s: Side<'_, T>,
    (h, w): (usize, usize),
    se: &StructuringElement,
    se_name: &str,
    threads: usize,
) -> Result<(MaxApproxErrors, Dilated<T>)> {
    let atoms = dilate_rows(model.atoms(), h, w, se, threads)?;
    let originals = dilate_rows(s.x, h, w, se, threads)?;
    let dilated_recon = dilate_rows(s.reconstructions, h, w, se, threads)?;
    let max_approximations = model.decode_with_atoms(atoms.as_ref(), s.codes)?;
    let (a, a_clip) = mse_pair(originals.as_ref(), max_approximations.as_ref())?;
    let (b, b_clip) = mse_pair(dilated_recon.as_ref(), max_approximations.as_ref())?;
    Ok((
        MaxApproxErrors {
            structuring_element: se_name.to_string(),
            vs_dilated_originals: a,
            vs_dilated_originals_clipped: a_clip,
            vs_dilated_reconstructions: b,
            vs_dilated_reconstructions_clipped: b_clip,
        },
        Dilated {
            atoms,
            originals,
            max_approximations,
        },
    ))
}

/// The figures of an evaluation, as `(file name, bytes)`: the first `n_show` samples as
/// originals / reconstructions / dilated originals / max-approximations (PNG), their code bar
/// charts (SVG), the atoms ordered by usage on these data, and the dilated atoms in the same
/// order (PNG).
pub fn figures<T: Real>(
    ev: &Evaluation<T>,
    model: &dyn PartModel<T>,
    data: &Dataset<T>,
    image_shape: (usize, usize),
    n_show: usize,
) -> Result<Vec<(String, Vec<u8>)>> {
    use crate::figures::{atoms_grid, panel_rows, usage_order, GridOptions};
    let opts = GridOptions::default();
    let n = data.n_samples().min(n_show).max(1);
    let mut out = Vec::new();
    let mut rows = vec![data.x().subrows(0, n), ev.reconstructions.as_ref().subrows(0, n)];
    if let Some(d) = &ev.dilated {
        rows.push(d.originals.as_ref().subrows(0, n));
        rows.push(d.max_approximations.as_ref().subrows(0, n));
    }
    out.push(("eval_panel.png".into(), panel_rows(&rows, image_shape, &opts)?));
    let samples: Vec<usize> = (0..n).collect();
    out.push((
        "eval_code_histograms.svg".into(),
        crate::plot::code_bars(ev.codes.as_ref(), &samples)?.into_bytes(),
    ));
    let order = usage_order(ev.codes.as_ref(), model.atoms());
    out.push((
        "eval_atoms.png".into(),
        atoms_grid(model.atoms(), image_shape, Some(&order), &opts)?,
    ));
    if let Some(d) = &ev.dilated {
        out.push((
            "eval_dilated_atoms.png".into(),
            atoms_grid(d.atoms.as_ref(), image_shape, Some(&order), &opts)?,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nmf::{self, NmfParams};

    #[test]
    fn max_approx_errors_are_evaluates_numbers_and_check_their_inputs() {
        let x = Mat::<f64>::from_fn(16, 20, |i, j| (((i * 3 + j * 7) % 11) as f64 / 10.0).max(0.0));
        let fit = nmf::factorize(x.as_ref(), &NmfParams::new(4).max_iter(30).check().unwrap()).unwrap();
        let data = Dataset::from_rows(x.as_ref(), "x");
        let opts = EvalOptions {
            svm: None,
            structuring_element: "square:3".into(),
            ..EvalOptions::default()
        };
        let whole = evaluate(&fit.model, &data, Some((4, 5)), &opts).unwrap();
        let alone = max_approx_errors(&fit.model, x.as_ref(), (4, 5), "square:3", 2).unwrap();
        assert_eq!(whole.metrics.max_approx, Some(alone));
        let bad_shape = max_approx_errors(&fit.model, x.as_ref(), (3, 5), "disk:1", 1).unwrap_err();
        assert!(bad_shape.to_string().contains("image shape"), "{bad_shape}");
        let bad_se = max_approx_errors(&fit.model, x.as_ref(), (4, 5), "disc:1", 1).unwrap_err();
        assert!(bad_se.to_string().contains("structuring_element"), "{bad_se}");
        let narrow = Mat::<f64>::zeros(3, 19);
        assert!(max_approx_errors(&fit.model, narrow.as_ref(), (1, 19), "disk:1", 1).is_err());
    }
}
