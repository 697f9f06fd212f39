//! Labels of the (semi-)supervised methods (SSNMF §3, Deep NMF's label term §4.2, Neural NMF's
//! classifier §4.3, the post-hoc classifier §5.1): one class per sample and which samples' classes
//! a method may see ([`Labels`]).
//!
//! A supervision setting ([`Supervision`]) turns a data set into [`Labels`] in two choices, made
//! here once for every method and front end: which of the data's label sets ([`label_set`]: a
//! named one, else the one with as many classes as the model's last rank, else the data's own
//! labels), and which samples are labeled ([`semi_supervised_mask`]: a count or fraction, per
//! class first; on toy-hierarchy the reference 40-label mask L40 of METHODS.md §5.1).

use faer::Mat;
use serde::{Deserialize, Serialize};

use super::named::{label_mask_by_count, TOY_HIERARCHY_L40};
use super::Dataset;
use crate::error::{Error, Result};
use crate::real::Real;
use crate::rng::Rng;

/// One class per sample (`0..n_classes`) and whether the method may see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Labels {
    classes: Vec<u32>,
    known: Vec<bool>,
    n_classes: usize,
}

impl Labels {
    /// Labels with a mask of known samples (`known[j]`: sample `j`'s class may be used).
    pub fn new(classes: Vec<u32>, known: Vec<bool>) -> Result<Self> {
        if classes.len() != known.len() {
            return Err(Error::ShapeMismatch {
                what: "label mask".into(),
                expected: format!("{} entries (one per label)", classes.len()),
                found: format!("{} entries", known.len()),
                hint: "give one mask entry per sample".into(),
            });
        }
        let n_classes = classes.iter().max().map_or(0, |&c| c as usize + 1);
        Ok(Labels {
            classes,
            known,
            n_classes,
        })
    }

    /// Labels that are all known (supervised methods, scoring).
    pub fn all_known(classes: Vec<u32>) -> Self {
        let known = vec![true; classes.len()];
        let n_classes = classes.iter().max().map_or(0, |&c| c as usize + 1);
        Labels {
            classes,
            known,
            n_classes,
        }
    }

    /// The class of every sample (known or not).
    pub fn classes(&self) -> &[u32] {
        &self.classes
    }

    /// Whether each sample's class may be used.
    pub fn known(&self) -> &[bool] {
        &self.known
    }

    /// Number of classes: the largest class + 1 (0 without samples).
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Number of samples whose class is known.
    pub fn n_known(&self) -> usize {
        self.known.iter().filter(|&&k| k).count()
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// Checks the labels against data of `n_samples` samples: one label per sample, at least
    /// one known (the check every supervised method shares).
    pub fn check(&self, n_samples: usize) -> Result<()> {
        if self.classes.len() != n_samples {
            return Err(Error::ShapeMismatch {
                what: "labels".into(),
                expected: format!("{n_samples} labels and mask entries (one per sample)"),
                found: format!("{} labels, {} mask entries", self.classes.len(), self.known.len()),
                hint: "give one label and one mask entry per sample".into(),
            });
        }
        if !self.known.iter().any(|&k| k) {
            return Err(Error::invalid(
                "label_mask",
                "all zeros",
                "it marks no sample as labelled; give 1 for the samples whose label is known",
            ));
        }
        Ok(())
    }

    /// One-hot `Y` (`c × n`) and the label mask `L` (`c × n`, columns of ones where the label is
    /// known) of METHODS.md §3; `c` ≥ [`n_classes`](Labels::n_classes) rows.
    pub(crate) fn one_hot<T: Real>(&self, c: usize) -> (Mat<T>, Mat<T>) {
        let n = self.classes.len();
        let y = Mat::from_fn(c, n, |i, j| {
            if self.classes[j] as usize == i {
                T::one()
            } else {
                T::zero()
            }
        });
        let l = Mat::from_fn(c, n, |_, j| if self.known[j] { T::one() } else { T::zero() });
        (y, l)
    }
}

/// How many labels a (semi-)supervised method sees.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Supervision {
    /// No labels.
    None,
    /// `labeled` samples labeled ([`semi_supervised_mask`]).
    Semi {
        /// A count (≥ 1), or a fraction of the samples if below 1.
        labeled: f64,
    },
    /// Every sample labeled.
    Full,
}

/// Labeled samples of [`Supervision::Semi`] by default (on toy-hierarchy: the reference L40 mask).
pub const DEFAULT_LABELED: f64 = 40.0;

impl Supervision {
    /// `none`, `semi` or `full`.
    pub fn name(&self) -> &'static str {
        match self {
            Supervision::None => "none",
            Supervision::Semi { .. } => "semi",
            Supervision::Full => "full",
        }
    }
}

/// The label set a model with `n_classes` outputs predicts: the set `name` of the data if given,
/// else the data's set with exactly `n_classes` classes (toy-hierarchy's `labels9`, `labels4`,
/// `labels2`), else the data's own labels.
pub fn label_set<T: Real>(data: &Dataset<T>, name: Option<&str>, n_classes: usize) -> Result<Vec<u32>> {
    match name {
        Some(name) => data
            .extra_labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| l.clone())
            .ok_or_else(|| {
                let known: Vec<&str> = data.extra_labels.iter().map(|(n, _)| n.as_str()).collect();
                Error::invalid(
                    "label_set",
                    name,
                    format!("the data has no such label set (it has: {known:?})"),
                )
            }),
        None => data
            .extra_labels
            .iter()
            .find(|(_, l)| l.iter().max().map(|&c| c as usize + 1) == Some(n_classes))
            .map(|(_, l)| l.clone())
            .or_else(|| data.labels.clone())
            .ok_or_else(|| {
                Error::invalid(
                    "labels",
                    "none",
                    "supervision needs labels and the data carry none; give one class per sample with the data",
                )
            }),
    }
}

/// Which of the samples of `classes` a semi-supervised method sees labeled: `labeled` of them
/// (a count ≥ 1, or a fraction of the samples if below 1), at least one per class when the count
/// allows ([`label_mask_by_count`], seeded by `seed`). On toy-hierarchy (`data_name`) a count of
/// 40 is the reference mask L40 of METHODS.md §5.1.
pub fn semi_supervised_mask(classes: &[u32], labeled: f64, data_name: &str, seed: u64) -> Result<Vec<bool>> {
    let n = classes.len();
    let count = if labeled < 1.0 {
        (labeled * n as f64).round()
    } else {
        labeled
    } as usize;
    // A count is a whole number: 1.5 is neither a count nor a fraction (it was taken as 1).
    let whole = labeled < 1.0 || labeled.fract() == 0.0;
    if !(labeled > 0.0 && labeled.is_finite() && whole) || count == 0 || count > n {
        return Err(Error::invalid(
            "labeled",
            labeled,
            format!("give a count in 1..={n} or a fraction in (0, 1)"),
        ));
    }
    if data_name == "toy-hierarchy" && count == 40 && n == 90 {
        let mut m = vec![false; n];
        for &j in &TOY_HIERARCHY_L40 {
            m[j] = true;
        }
        return Ok(m);
    }
    Ok(label_mask_by_count(classes, count, &mut Rng::new(seed)))
}

/// The labels a method with `n_classes` outputs sees under `supervision` (`None` when
/// unsupervised): the label set of [`label_set`] and the mask of [`semi_supervised_mask`].
pub fn supervised_labels<T: Real>(
    data: &Dataset<T>,
    supervision: Supervision,
    name: Option<&str>,
    n_classes: usize,
    seed: u64,
) -> Result<Option<Labels>> {
    let known = match supervision {
        Supervision::None => return Ok(None),
        Supervision::Full => None,
        Supervision::Semi { labeled } => Some(labeled),
    };
    let classes = label_set(data, name, n_classes)?;
    Ok(Some(match known {
        None => Labels::all_known(classes),
        Some(labeled) => {
            let mask = semi_supervised_mask(&classes, labeled, &data.name, seed)?;
            Labels::new(classes, mask)?
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_and_masks_of_toy_hierarchy() {
        let d = crate::data::named::toy_hierarchy::<f64>(0);
        // The set with as many classes as the last rank, by default.
        for (k, name) in [(9, "labels9"), (4, "labels4"), (2, "labels2")] {
            let l = label_set(&d, None, k).unwrap();
            assert_eq!(l.iter().max().map(|&c| c as usize + 1), Some(k), "{name}");
            assert_eq!(l, label_set(&d, Some(name), 1).unwrap());
        }
        let e = label_set(&d, Some("labels7"), 4).unwrap_err().to_string();
        assert!(e.contains("labels7") && e.contains("labels4"), "{e}");
        // 40 labeled samples on toy-hierarchy: the reference L40 mask; other counts per class.
        let semi = supervised_labels(&d, Supervision::Semi { labeled: 40.0 }, None, 4, 0)
            .unwrap()
            .unwrap();
        assert_eq!(semi.n_known(), 40);
        assert!(TOY_HIERARCHY_L40.iter().all(|&j| semi.known()[j]));
        assert_eq!(semi.n_classes(), 4);
        let frac = supervised_labels(&d, Supervision::Semi { labeled: 0.5 }, None, 9, 3)
            .unwrap()
            .unwrap();
        assert_eq!(frac.n_known(), 45);
        let full = supervised_labels(&d, Supervision::Full, None, 2, 0)
            .unwrap()
            .unwrap();
        assert_eq!(full.n_known(), 90);
        assert!(supervised_labels(&d, Supervision::None, None, 2, 0)
            .unwrap()
            .is_none());
        for bad in [0.0, -1.0, 91.0, f64::NAN, 0.001] {
            let e = semi_supervised_mask(full.classes(), bad, "toy-hierarchy", 0).unwrap_err();
            assert!(e.to_string().contains("invalid labeled"), "{bad}: {e}");
        }
    }

    #[test]
    fn labels_check_their_shape_and_one_hot() {
        assert!(Labels::new(vec![0, 1], vec![true]).is_err());
        let l = Labels::new(vec![0, 2, 1], vec![true, false, true]).unwrap();
        assert_eq!((l.n_classes(), l.n_known(), l.len()), (3, 2, 3));
        assert!(l.check(3).is_ok());
        assert!(l.check(4).unwrap_err().to_string().contains("one per sample"));
        let none = Labels::new(vec![0, 1], vec![false, false]).unwrap();
        assert!(matches!(
            none.check(2),
            Err(Error::InvalidOption {
                option: "label_mask",
                ..
            })
        ));
        let (y, m) = l.one_hot::<f64>(3);
        assert_eq!((y[(2, 1)], y[(1, 1)], m[(0, 1)], m[(2, 2)]), (1.0, 0.0, 0.0, 1.0));
        let d = Dataset::<f64>::from_columns(Mat::zeros(3, 2), "plain");
        let e = label_set(&d, None, 2).unwrap_err().to_string();
        assert!(e.contains("carry none"), "{e}");
    }

    #[test]
    fn a_count_of_labeled_samples_is_a_whole_number() {
        let classes: Vec<u32> = (0..20).map(|i| i % 2).collect();
        for bad in [1.5, 2.25, 19.9] {
            let e = semi_supervised_mask(&classes, bad, "x", 0)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("invalid labeled") && e.contains("fraction in (0, 1)"),
                "{e}"
            );
        }
        let m = semi_supervised_mask(&classes, 2.0, "x", 0).unwrap();
        assert_eq!(m.iter().filter(|b| **b).count(), 2);
        let m = semi_supervised_mask(&classes, 0.5, "x", 0).unwrap();
        assert_eq!(m.iter().filter(|b| **b).count(), 10);
    }
}
