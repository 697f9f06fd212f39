//! The argument groups shared by several commands (the data to read, the run flags, the
//! supervision flags, held-out test data) and the error type for a clean interruption. A leaf
//! module: it imports no command module.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use partlearn::data::labels::{self, Supervision, DEFAULT_LABELED};
use partlearn::data::Dataset;
use partlearn::Real;

/// Which data, and which part of it (shared by every command that reads data).
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// fashion-mnist:train, fashion-mnist:test, swimmer, toy-hierarchy, or a .npy/.csv/IDX file.
    #[arg(long = "data", value_name = "DATA")]
    pub spec: String,
    /// Use only the first N samples.
    #[arg(long, value_name = "N", conflicts_with = "subset")]
    pub first: Option<usize>,
    /// Use a random subset of N samples (seeded by --data-seed).
    #[arg(long, value_name = "N")]
    pub subset: Option<usize>,
    /// Seed of --subset.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// Labels for a file data set (.npy, one integer per sample).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<std::path::PathBuf>,
}

impl DataArgs {
    pub fn load<T: partlearn::Real>(&self) -> partlearn::Result<partlearn::data::Dataset<T>> {
        let opts = partlearn::data::LoadOptions {
            first: self.first,
            subset: self.subset,
            seed: self.data_seed,
            labels: self.labels.clone(),
        };
        let d = partlearn::data::load::<T>(&self.spec, &opts)?;
        // Every command needs at least one sample and one feature.
        if d.n_samples() == 0 || d.n_features() == 0 {
            return Err(partlearn::Error::EmptyData {
                n_samples: d.n_samples(),
                n_features: d.n_features(),
            });
        }
        Ok(d)
    }
}

impl DataArgs {
    /// Errors when `out` is one of the input files (the data file or `--labels`): writing the
    /// output, even with `--force`, would destroy the input.
    pub fn check_not_input(&self, out: &std::path::Path, flag: &str) -> anyhow::Result<()> {
        let resolve = partlearn::io::run::resolve_path;
        let target = resolve(out);
        let inputs = std::iter::once(std::path::PathBuf::from(&self.spec))
            .filter(|p| p.is_file())
            .chain(self.labels.clone());
        for input in inputs {
            if resolve(&input) == target {
                anyhow::bail!(
                    "{flag} {} is an input file of this command: writing it would destroy the input; give another {flag}",
                    out.display()
                );
            }
        }
        Ok(())
    }
}

/// Float type of the computation.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
}

/// An error that has already been reported, or a clean interruption.
#[derive(Debug)]
pub enum Exit {
    /// Ctrl-C: the work so far was saved.
    Interrupted,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Exit {}

/// Flags shared by every fit: output, verbosity, threads, dtype.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Run folder to write (default: runs/<method>-<data>-k<k>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace an existing run folder.
    #[arg(long)]
    pub force: bool,
    /// No progress bar and no summary lines (warnings and errors still go to stderr).
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the final summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (1 = sequential, 0 = all cores).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Float type of the computation.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: Dtype,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// A library error about a parameter that the flag of the same name sets (`label_set` →
/// `--label-set`), worded with the flag.
pub fn flag_error(e: partlearn::Error) -> anyhow::Error {
    flag_error_in(e, &[])
}

/// How a command spells library parameter names as flags, where `_` → `-` does not:
/// `(name, Some(flag))` for a flag spelled otherwise (`("learning_rate", Some("lr"))`),
/// `(name, None)` for a parameter no flag sets (its error keeps the library's wording).
pub type FlagNames = [(&'static str, Option<&'static str>)];

/// [`flag_error`] with a command's own spellings `names`. The parameter names that the reason
/// quotes in backticks (`` set `val_fraction` ``) become flags too.
pub fn flag_error_in(e: partlearn::Error, names: &FlagNames) -> anyhow::Error {
    let flag = |name: &str| match names.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => f.map(|f| format!("--{f}")),
        None => Some(format!("--{}", name.replace('_', "-"))),
    };
    match e {
        partlearn::Error::InvalidOption {
            option,
            value,
            reason,
        } => match flag(option) {
            Some(f) => anyhow::anyhow!("invalid {f} {value}: {}", quoted_as_flags(&reason, flag)),
            None => partlearn::Error::InvalidOption {
                option,
                value,
                reason,
            }
            .into(),
        },
        e => e.into(),
    }
}

/// `text` with each backticked parameter name (lower case, digits, `_`) replaced by its flag;
/// other backticked text is kept.
fn quoted_as_flags(text: &str, flag: impl Fn(&str) -> Option<String>) -> String {
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('`') {
        let inner = &rest[open + 1..];
        let Some(close) = inner.find('`') else { break };
        let quoted = &rest[open..open + close + 2];
        out.push_str(&rest[..open]);
        match flag(&inner[..close]).filter(|_| is_name(&inner[..close])) {
            Some(f) => out.push_str(&f),
            None => out.push_str(quoted),
        }
        rest = &inner[close + 1..];
    }
    out.push_str(rest);
    out
}

/// `--supervision`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupervisionMode {
    None,
    Semi,
    Full,
}

/// Which labels a layer model (hnmf, deep-nmf, neural-nmf) sees.
#[derive(Args, Debug, Clone)]
pub struct SupervisionArgs {
    /// none, semi (only --labeled samples have labels) or full: SSNMF on the last layer (hnmf), the label term of the fine-tuning (deep-nmf), the classifier on the last layer (neural-nmf).
    #[arg(long, value_enum, default_value = "none")]
    pub supervision: SupervisionMode,
    /// With --supervision semi: number of labeled samples (or a fraction if < 1; default 40). On toy-hierarchy, 40 is the reference L40 mask.
    #[arg(long)]
    pub labeled: Option<f64>,
    /// Which labels: a label set of the data (toy-hierarchy: labels9, labels4, labels2); default: the set whose class count equals the last rank, else the data's labels.
    #[arg(long)]
    pub label_set: Option<String>,
}

impl SupervisionArgs {
    /// The library's supervision setting. `--labeled` belongs to `semi` only: given with another
    /// mode it is an error, not ignored.
    pub fn supervision(&self) -> Result<Supervision> {
        match (self.supervision, self.labeled) {
            (SupervisionMode::Semi, labeled) => Ok(Supervision::Semi {
                labeled: labeled.unwrap_or(DEFAULT_LABELED),
            }),
            (_, Some(v)) => anyhow::bail!(
                "--labeled {v} applies only to --supervision semi (here: {}): add --supervision semi, or drop --labeled",
                self.name()
            ),
            (SupervisionMode::None, None) => Ok(Supervision::None),
            (SupervisionMode::Full, None) => Ok(Supervision::Full),
        }
    }

    /// `none`, `semi` or `full`.
    pub fn name(&self) -> &'static str {
        match self.supervision {
            SupervisionMode::None => "none",
            SupervisionMode::Semi => "semi",
            SupervisionMode::Full => "full",
        }
    }

    /// The labels a model with `n_classes` outputs sees (`None` unsupervised), seeded by `seed`.
    pub fn labels<T: Real>(
        &self,
        data: &Dataset<T>,
        n_classes: usize,
        seed: u64,
    ) -> Result<Option<labels::Labels>> {
        let sup = self.supervision()?;
        labels::supervised_labels(data, sup, self.label_set.as_deref(), n_classes, seed).map_err(flag_error)
    }

    /// The labels a run is scored against: those supervision saw, else (unsupervised) the
    /// data's label set for `n_classes` classes, all known; `None` when the data have none.
    pub fn reference<T: Real>(
        &self,
        data: &Dataset<T>,
        sup: Option<&labels::Labels>,
        n_classes: usize,
    ) -> Option<labels::Labels> {
        sup.cloned().or_else(|| {
            labels::label_set(data, self.label_set.as_deref(), n_classes)
                .ok()
                .map(labels::Labels::all_known)
        })
    }

    /// An option of the label term only (`--lambda`, `--class-loss`, …): the value given, else
    /// `default`. Without supervision there is no label term, so a given value is refused rather
    /// than ignored.
    pub fn label_flag<V: std::fmt::Display>(&self, value: Option<V>, flag: &str, default: V) -> Result<V> {
        match value {
            Some(v) if self.supervision == SupervisionMode::None => anyhow::bail!(
                "--{flag} {v} belongs to the label term, which --supervision none does not have: add --supervision semi or full, or drop --{flag}"
            ),
            v => Ok(v.unwrap_or(default)),
        }
    }
}

/// Held-out data on which the post-hoc classifier of the training codes is scored.
#[derive(Args, Debug, Clone)]
pub struct TestArgs {
    /// Held-out labeled data (e.g. fashion-mnist:test): its codes (forward through the layers) are classified by the post-hoc classifier fitted on the training codes with the labels supervision saw (all labels when unsupervised).
    #[arg(long, value_name = "DATA")]
    pub test_data: Option<String>,
    /// Use only the first N held-out samples.
    #[arg(long, value_name = "N", requires = "test_data")]
    pub test_first: Option<usize>,
    /// Labels of --test-data (a .npy of one class per sample), for test data that carry none.
    #[arg(long, value_name = "FILE", requires = "test_data")]
    pub test_labels: Option<PathBuf>,
}

/// `--test-data` loaded and checked before any fitting: its samples and their labels.
pub struct TestSet<T: Real> {
    spec: String,
    data: Dataset<T>,
    classes: Vec<u32>,
}

impl TestArgs {
    /// Loads `--test-data` (`None` without it) and checks, before the fit spends any time, that
    /// it has the training data's width and labels (of the set `label_set` or the one for
    /// `n_classes` classes), and that the training data have labels for the post-hoc classifier.
    pub fn load<T: Real>(
        &self,
        train: &Dataset<T>,
        label_set: Option<&str>,
        n_classes: usize,
    ) -> Result<Option<TestSet<T>>> {
        let Some(spec) = &self.test_data else {
            return Ok(None);
        };
        let has_labels = |d: &Dataset<T>| d.labels.is_some() || !d.extra_labels.is_empty();
        if !has_labels(train) {
            anyhow::bail!(
                "--test-data is scored by a classifier of the training codes, which needs the training labels: give --labels FILE.npy with --data"
            );
        }
        let args = DataArgs {
            spec: spec.clone(),
            first: self.test_first,
            subset: None,
            data_seed: 0,
            labels: self.test_labels.clone(),
        };
        let data = args.load::<T>()?;
        if data.n_features() != train.n_features() {
            anyhow::bail!(
                "--test-data {spec} has {} features and the training data {}: give test data of the same width",
                data.n_features(),
                train.n_features()
            );
        }
        if !has_labels(&data) {
            anyhow::bail!(
                "--test-data {spec} has no labels: give --test-labels FILE.npy (one class per sample)"
            );
        }
        let classes = labels::label_set(&data, label_set, n_classes)
            .map_err(flag_error)
            .with_context(|| format!("labels of --test-data {spec}"))?;
        Ok(Some(TestSet {
            spec: spec.clone(),
            data,
            classes,
        }))
    }
}

impl<T: Real> TestSet<T> {
    /// The last layer's codes of the test samples through `net`'s forward pass, and their classes.
    pub fn codes(
        &self,
        net: &partlearn::deep::neural::NeuralNmf<T>,
        threads: usize,
    ) -> Result<(faer::Mat<T>, &[u32])> {
        let codes = net
            .top_codes(self.data.xt(), threads)
            .with_context(|| format!("encoding --test-data {}", self.spec))?;
        Ok((codes, &self.classes))
    }
}

/// The post-hoc accuracies (METHODS.md §5.1) of a layer model's top codes `top` against
/// `reference` (see [`SupervisionArgs::reference`]), and on `test` through `net`; all `None`
/// without reference labels.
pub fn accuracies<T: Real>(
    top: faer::MatRef<'_, T>,
    reference: Option<&labels::Labels>,
    test: Option<&TestSet<T>>,
    net: &partlearn::deep::neural::NeuralNmf<T>,
    threads: usize,
) -> Result<partlearn::eval::posthoc::Accuracies> {
    use partlearn::eval::posthoc::{self, HeldOut};
    let Some(reference) = reference else {
        return Ok(Default::default());
    };
    let test = test.map(|t| t.codes(net, threads)).transpose()?;
    let held_out = test.as_ref().map(|(codes, classes)| HeldOut {
        codes: codes.as_ref(),
        classes,
    });
    Ok(posthoc::accuracies(top, reference, held_out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names_become_the_command_s_flags() {
        let names: &FlagNames = &[("learning_rate", Some("lr")), ("architecture", None)];
        let e = partlearn::Error::invalid(
            "patience",
            3,
            "set `val_fraction` (or `learning_rate`); see `fit ae`",
        );
        assert_eq!(
            flag_error_in(e, names).to_string(),
            "invalid --patience 3: set --val-fraction (or --lr); see `fit ae`"
        );
        let e = partlearn::Error::invalid("learning_rate", -1, "must be > 0");
        assert_eq!(
            flag_error_in(e, names).to_string(),
            "invalid --lr -1: must be > 0"
        );
        let e = partlearn::Error::invalid("architecture", "asymmetric", "needs images");
        assert_eq!(
            flag_error_in(e, names).to_string(),
            "invalid architecture = asymmetric: needs images"
        );
        assert_eq!(quoted_as_flags("a `b", |n| Some(n.into())), "a `b");
    }
}
