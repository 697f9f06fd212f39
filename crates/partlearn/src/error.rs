//! The library's one error type.
//!
//! Every variant carries the facts of the problem, and its message (one line) names both the
//! problem and what to do about it. Solvers never panic on user data: everything a user can get
//! wrong surfaces here.
//!
//! Messages speak in the library's parameter names, never in a front end's flags: an invalid
//! parameter is [`Error::InvalidOption`] with its snake_case name (`max_iter`), and a parameter
//! named in advice is written in backticks, `` `name` `` or `` `name = value` `` (e.g. "use
//! `dtype = f64`"), so that a front end can spell it its own way (the CLI as `--dtype f64`).

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in partlearn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A data entry is negative (non-negative factorizations need `X ≥ 0`).
    #[error("negative entry {} at sample {sample}, feature {feature}: NMF and non-negative auto-encoders need data ≥ 0; shift or clip the data (e.g. subtract its minimum)", crate::real::short_number(*.value))]
    NegativeEntry {
        /// The sample (row of `X`) holding it.
        sample: usize,
        /// The feature (column of `X`).
        feature: usize,
        /// The entry.
        value: f64,
    },
    /// A data entry is NaN or infinite.
    #[error("{}", non_finite(*.value, *.sample, *.feature))]
    NonFinite {
        /// The sample (row of `X`) holding it.
        sample: usize,
        /// The feature (column of `X`).
        feature: usize,
        /// The entry.
        value: f64,
    },
    /// The data has no samples or no features.
    #[error("the data is empty ({n_samples} samples × {n_features} features): give at least one sample and one feature")]
    EmptyData {
        /// Samples given.
        n_samples: usize,
        /// Features given.
        n_features: usize,
    },
    /// An option is out of range or inconsistent with the data.
    #[error("invalid {option} = {value}: {reason}")]
    InvalidOption {
        /// The parameter, by its library name (snake_case: `max_iter`, `label_set`).
        option: &'static str,
        /// The value given, as text.
        value: String,
        /// What is wrong with it and what to give instead.
        reason: String,
    },
    /// Two inputs that must agree in shape do not.
    #[error("{what}: expected shape {expected}, found {found}; {hint}")]
    ShapeMismatch {
        /// The input whose shape is wrong.
        what: String,
        /// The shape it must have.
        expected: String,
        /// The shape it has.
        found: String,
        /// What to do.
        hint: String,
    },
    /// A data set name that partlearn does not know.
    #[error("unknown data set '{name}': use one of {known}, or a path to a .npy, .csv or IDX (.gz) file")]
    UnknownDataset {
        /// The name given.
        name: String,
        /// The names partlearn knows, comma-separated.
        known: String,
    },
    /// Data files that should be installed are missing.
    #[error("{what} not found (looked in {looked}): {hint}")]
    MissingData {
        /// The missing files (e.g. "Fashion-MNIST").
        what: String,
        /// The folders searched.
        looked: String,
        /// How to install them.
        hint: String,
    },
    /// A file is shorter than its header declares: its `part` ("header" or "data") needs
    /// `declared` bytes and `actual` are present.
    #[error("{path}: truncated file, its {part} needs {declared} bytes but only {actual} are present; re-download or re-export it")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// "header" or "data".
        part: &'static str,
        /// Bytes the header declares.
        declared: u64,
        /// Bytes present.
        actual: u64,
    },
    /// A file is not in the format its name or header claims.
    #[error("{path}: {reason}")]
    BadFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// An operating-system I/O error, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Refusing to overwrite existing output (a front end adds how to allow it).
    #[error("{path} already exists: choose an output path not in use, or allow overwriting it")]
    AlreadyExists {
        /// The existing path.
        path: PathBuf,
    },
    /// A numerical failure that the data or options made unavoidable.
    #[error("numerical failure in {what}: {reason}")]
    Numerical {
        /// The computation that failed.
        what: String,
        /// Why, and what to change.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidOption`].
    pub fn invalid(option: &'static str, value: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Error::InvalidOption {
            option,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`Error::BadFormat`].
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::BadFormat {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The message of [`Error::NonFinite`]: a NaN is a missing value (which masked NMF, `transform`
/// and `eval` take as such, METHODS.md §11.2), an infinity a value to replace.
fn non_finite(value: f64, sample: usize, feature: usize) -> String {
    if value.is_nan() {
        format!(
            "NaN entry at sample {sample}, feature {feature}: this method needs complete data; impute the missing values or remove their samples (NMF with mu, hals or anls, its transform and its evaluation take NaN as a missing entry)"
        )
    } else {
        format!(
            "infinite entry {value} at sample {sample}, feature {feature}: replace it by a finite value or rescale the data"
        )
    }
}
