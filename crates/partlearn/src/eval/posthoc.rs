//! The post-hoc classifier of METHODS.md §5.1, with which the layer models (hierarchical, Deep
//! and Neural NMF) are scored: `B = Y S⁺` fitted by least squares on the codes `S` (`k × n` in
//! METHODS.md) of the samples whose label is used, then `ŷ_j = argmax(B s_j)`.
//!
//! Codes are given as the crate's public API gives them, samples as rows (`n × k`: sample `j`'s
//! code is row `j`, i.e. `Sᵀ`); the classifier `B` is `c × k`.
//!
//! [`accuracies`] gives the three numbers a run reports: fitted and scored on every training
//! sample, fitted on the labels a semi-supervised fit saw and scored on the others, and scored on
//! held-out codes.

use faer::{Mat, MatRef, Par};

use crate::data::labels::Labels;
use crate::error::Result;
use crate::linalg;
use crate::real::Real;

/// `B = Y S⁺` (`c × k`) over the samples `fit` (rows) of `codes` (`n × k`), the pseudo-inverse
/// taken through the eigen-decomposition of `S Sᵀ` (eigenvalues below `1e-12·k·λ_max` dropped).
pub fn posthoc_classifier<T: Real>(codes: MatRef<'_, T>, labels: &[u32], fit: &[bool]) -> Result<Mat<f64>> {
    // METHODS.md's layout, samples as columns (a view).
    let s = codes.transpose();
    let (k, n) = (s.nrows(), s.ncols());
    let c = labels.iter().max().map_or(0, |&v| v as usize + 1);
    let cols: Vec<usize> = (0..n).filter(|&j| fit[j]).collect();
    let sf = Mat::<f64>::from_fn(k, cols.len(), |i, j| s[(i, cols[j])].to_f64());
    let yf = Mat::<f64>::from_fn(c, cols.len(), |i, j| {
        if labels[cols[j]] as usize == i {
            1.0
        } else {
            0.0
        }
    });
    let par = Par::Seq;
    let sst = linalg::mul(sf.as_ref(), sf.transpose(), par);
    let (vals, vecs) = linalg::sym_eigen_desc(sst.as_ref())?;
    let top = vals.first().copied().unwrap_or(0.0).max(0.0);
    let inv = Mat::<f64>::from_fn(k, k, |i, j| {
        (0..k)
            .filter(|&t| vals[t] > top * 1e-12 * k as f64 && vals[t] > 0.0)
            .map(|t| vecs[(i, t)] * vecs[(j, t)] / vals[t])
            .sum()
    });
    let ys = linalg::mul(yf.as_ref(), sf.transpose(), par);
    Ok(linalg::mul(ys.as_ref(), inv.as_ref(), par))
}

/// Fraction of the samples `score` (rows of `codes`, `n × k`) whose `argmax(B s_j)` is their
/// label (NaN if none).
pub fn classifier_accuracy<T: Real>(
    b: &Mat<f64>,
    codes: MatRef<'_, T>,
    labels: &[u32],
    score: &[bool],
) -> f64 {
    let s = codes.transpose();
    let (c, k) = (b.nrows(), b.ncols());
    let scored: Vec<usize> = (0..s.ncols()).filter(|&j| score[j]).collect();
    if scored.is_empty() {
        return f64::NAN;
    }
    let correct = scored
        .iter()
        .filter(|&&j| {
            let z: Vec<f64> = (0..c)
                .map(|r| (0..k).map(|t| b[(r, t)] * s[(t, j)].to_f64()).sum())
                .collect();
            let arg = (0..c).fold(0, |best, r| if z[r] > z[best] { r } else { best });
            arg == labels[j] as usize
        })
        .count();
    correct as f64 / scored.len() as f64
}

/// [`posthoc_classifier`] fitted on the samples `fit` of `codes` (`n × k`), its accuracy over the
/// samples `score`.
pub fn posthoc_accuracy<T: Real>(
    codes: MatRef<'_, T>,
    labels: &[u32],
    fit: &[bool],
    score: &[bool],
) -> Result<f64> {
    let b = posthoc_classifier(codes, labels, fit)?;
    Ok(classifier_accuracy(&b, codes, labels, score))
}

/// The post-hoc accuracies of a run (module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Accuracies {
    /// Fitted on every label, scored on every training sample.
    pub all: Option<f64>,
    /// Fitted on the known labels, scored on the others (when some are unknown).
    pub unlabeled: Option<f64>,
    /// Fitted on the known labels, scored on held-out codes.
    pub test: Option<f64>,
}

/// Held-out codes (`n' × k`, the same layer as the training codes) and their classes.
#[derive(Clone, Copy, Debug)]
pub struct HeldOut<'a, T: Real> {
    /// The held-out codes, `n' × k` (samples as rows, as the training codes).
    pub codes: MatRef<'a, T>,
    /// The class of each held-out sample (`n'` entries).
    pub classes: &'a [u32],
}

/// The accuracies of the codes `codes` (`n × k`) against `labels` (the classifier of `unlabeled`
/// and `test` is fitted on the known ones only), and on `test` if given.
pub fn accuracies<T: Real>(
    codes: MatRef<'_, T>,
    labels: &Labels,
    test: Option<HeldOut<'_, T>>,
) -> Result<Accuracies> {
    let (classes, known) = (labels.classes(), labels.known());
    let all = vec![true; codes.nrows()];
    let unlabeled = if known.iter().any(|k| !k) {
        let unknown: Vec<bool> = known.iter().map(|k| !k).collect();
        Some(posthoc_accuracy(codes, classes, known, &unknown)?)
    } else {
        None
    };
    let test = match test {
        Some(t) => {
            let b = posthoc_classifier(codes, classes, known)?;
            let every = vec![true; t.codes.nrows()];
            Some(classifier_accuracy(&b, t.codes, t.classes, &every))
        }
        None => None,
    };
    Ok(Accuracies {
        all: Some(posthoc_accuracy(codes, classes, &all, &all)?),
        unlabeled,
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes that separate the classes exactly are classified perfectly, by a classifier fitted
    /// on a part of them too; scrambled held-out labels are not.
    #[test]
    fn separable_codes_are_classified_exactly() {
        let classes: Vec<u32> = (0..30).map(|j| (j % 3) as u32).collect();
        // 30 samples (rows) of 4 code entries.
        let s = Mat::<f64>::from_fn(30, 4, |j, i| {
            if i == j % 3 {
                1.0 + 0.01 * j as f64
            } else {
                0.05 * ((i + j) % 2) as f64
            }
        });
        let known: Vec<bool> = (0..30).map(|j| j < 12).collect();
        let labels = Labels::new(classes.clone(), known).unwrap();
        let wrong: Vec<u32> = classes.iter().map(|c| (c + 1) % 3).collect();
        let acc = accuracies(
            s.as_ref(),
            &labels,
            Some(HeldOut {
                codes: s.as_ref(),
                classes: &wrong,
            }),
        )
        .unwrap();
        assert_eq!(acc.all, Some(1.0));
        assert_eq!(acc.unlabeled, Some(1.0));
        assert_eq!(acc.test, Some(0.0));
        let full = accuracies(s.as_ref(), &Labels::all_known(classes), None).unwrap();
        assert_eq!((full.unlabeled, full.test), (None, None));
        assert!(classifier_accuracy(&Mat::zeros(3, 4), s.as_ref(), &wrong, &[false; 30]).is_nan());
    }
}
