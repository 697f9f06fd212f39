//! The argument groups shared by several commands (the data to read, the run flags, the
//! supervision flags, held-out test data) and the error type for a clean interruption. A leaf
//! module: it imports no command module.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use partlearn::data::labels::{self, Supervision, DEFAULT_LABELED};
use partlearn::data::Dataset;
use partlearn::io::DataSpec;
use partlearn::Real;

/// Which data, and which part of it (shared by every command that reads data).
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// fashion-mnist:train, fashion-mnist:test, swimmer, toy-hierarchy, or a .npy/.csv/IDX file; sparse .npz (scipy) / .mtx[.gz] files for fit nmf, transform, eval.
    #[arg(long = "data", value_name = "DATA")]
    pub spec: String,
    /// Read --data as a sparse (CSR) matrix, never densified (fit nmf, transform, eval, data info); .npz and .mtx[.gz] files always are.
    #[arg(long)]
    pub sparse: bool,
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
    /// The library's load options these flags describe.
    pub fn load_options(&self) -> partlearn::data::LoadOptions {
        partlearn::data::LoadOptions {
            first: self.first,
            subset: self.subset,
            seed: self.data_seed,
            labels: self.labels.clone(),
        }
    }

    /// What the run record says of `data`, loaded from these flags.
    pub fn record<T: Real>(&self, data: &Dataset<T>) -> DataSpec {
        DataSpec::of(data).loaded(&self.spec, &self.load_options())
    }

    /// Whether the data is read as sparse (`--sparse`, or a `.npz` / `.mtx[.gz]` file).
    pub fn is_sparse(&self) -> bool {
        self.sparse || partlearn::data::is_sparse_file(&self.spec)
    }

    /// The data as a CSR matrix (for the commands that take sparse data).
    pub fn load_csr<T: partlearn::Real>(&self) -> partlearn::Result<partlearn::data::Csr<T>> {
        self.check_labels_file()?;
        let a = partlearn::data::load_csr::<T>(&self.spec, &self.load_options())?;
        if a.nrows() == 0 || a.ncols() == 0 {
            return Err(partlearn::Error::EmptyData {
                n_samples: a.nrows(),
                n_features: a.ncols(),
            });
        }
        Ok(a)
    }

    /// What the run record says of sparse data loaded from these flags.
    pub fn record_csr<T: Real>(&self, a: &partlearn::data::Csr<T>) -> DataSpec {
        self.record_shape::<T>(a.nrows(), a.ncols())
    }

    /// What the run record says of data of this shape that was not loaded as a whole (sparse,
    /// or spread over processes).
    pub fn record_shape<T: Real>(&self, n_samples: usize, n_features: usize) -> DataSpec {
        DataSpec {
            name: self.spec.clone(),
            n_samples,
            n_features,
            dtype: T::NAME.into(),
            image_shape: None,
            spec: None,
            first: None,
            subset: None,
            data_seed: 0,
        }
        .loaded(&self.spec, &self.load_options())
    }

    pub fn load<T: partlearn::Real>(&self) -> partlearn::Result<partlearn::data::Dataset<T>> {
        self.check_labels_file()?;
        if self.sparse {
            return Err(partlearn::Error::invalid(
                "sparse",
                true,
                "this command needs dense data; drop `sparse` (sparse data: fit nmf with mu, hals or anls, transform, eval, data info)",
            ));
        }
        let d = partlearn::data::load::<T>(&self.spec, &self.load_options())?;
        // Every command needs at least one sample and one feature.
        if d.n_samples() == 0 || d.n_features() == 0 {
            return Err(partlearn::Error::EmptyData {
                n_samples: d.n_samples(),
                n_features: d.n_features(),
            });
        }
        Ok(d)
    }

    /// Errors naming `--labels` when it names no file (the library's message names only the
    /// path).
    fn check_labels_file(&self) -> partlearn::Result<()> {
        check_input_file(
            "labels",
            self.labels.as_deref(),
            "a .npy of one integer per sample",
        )
    }
}

/// Errors naming the flag of the library parameter `name` when `path` names no file (`what`:
/// what it should hold).
pub fn check_input_file(
    name: &'static str,
    path: Option<&std::path::Path>,
    what: &str,
) -> partlearn::Result<()> {
    match path {
        Some(p) if !p.is_file() => Err(partlearn::Error::invalid(
            name,
            p.display(),
            format!(
                "{}; check the path ({what})",
                if p.exists() { "not a file" } else { "no such file" }
            ),
        )),
        _ => Ok(()),
    }
}

/// Input files of a command as `(flag, path)`: `None` for a flag not given (or not a file).
pub type Inputs<'a> = [(&'static str, Option<&'a std::path::Path>)];

impl DataArgs {
    /// The input files of these flags: `--data` (when a file) and `--labels`.
    pub fn inputs(&self) -> [(&'static str, Option<&std::path::Path>); 2] {
        let spec = std::path::Path::new(&self.spec);
        [
            ("--data", spec.is_file().then_some(spec)),
            ("--labels", self.labels.as_deref()),
        ]
    }

    /// [`DataArgs::check_not_inputs`] without other input files.
    pub fn check_not_input(&self, out: &std::path::Path, flag: &str) -> anyhow::Result<()> {
        self.check_not_inputs(out, flag, &[])
    }

    /// Errors when `out` (given as `flag`) is one of the command's input files — `--data`,
    /// `--labels` and the `extra` inputs (e.g. `--mask`): writing the output, even with
    /// `--force`, would destroy the input.
    pub fn check_not_inputs(&self, out: &std::path::Path, flag: &str, extra: &Inputs) -> anyhow::Result<()> {
        let resolve = partlearn::io::run::resolve_path;
        let target = resolve(out);
        for (_, input) in self.inputs().iter().chain(extra) {
            if input.is_some_and(|p| resolve(p) == target) {
                anyhow::bail!(
                    "{flag} {} is an input file of this command: writing it would destroy the input; give another {flag}",
                    out.display()
                );
            }
        }
        Ok(())
    }

    /// The run folder `out` of a fit, staged ([`partlearn::io::RunDir::create`]), after checking
    /// that no input file of the command ([`DataArgs::inputs`] and the `extra` ones, e.g.
    /// `--init-atoms`) lies inside an existing `out`: replacing the folder (`--force`) would
    /// delete it.
    pub fn run_dir(
        &self,
        out: &std::path::Path,
        force: bool,
        extra: &Inputs,
    ) -> anyhow::Result<partlearn::io::RunDir> {
        check_out_parent(out, "--out")?;
        if force && out.is_dir() {
            let resolve = partlearn::io::run::resolve_path;
            let folder = resolve(out);
            for (flag, input) in self.inputs().iter().chain(extra) {
                if let Some(input) = input.filter(|p| resolve(p).starts_with(&folder)) {
                    anyhow::bail!(
                        "{flag} {} lies inside the run folder --out {} that --force would replace (deleting it): move the file out of the run folder first, or choose another --out",
                        input.display(),
                        out.display()
                    );
                }
            }
        }
        Ok(partlearn::io::RunDir::create(out, force)?)
    }
}

/// Errors when a part of the folder of the output `out` (given as `flag`) exists but is not a
/// folder: the write would fail with the system's bare "Not a directory".
pub fn check_out_parent(out: &std::path::Path, flag: &str) -> anyhow::Result<()> {
    if let Some(file) = out
        .ancestors()
        .skip(1)
        .find(|p| !p.as_os_str().is_empty() && p.exists() && !p.is_dir())
    {
        anyhow::bail!(
            "{flag} {}: {} is a file, not a folder; give a path in an existing or new folder",
            out.display(),
            file.display()
        );
    }
    Ok(())
}

/// Errors when the run folder `path` a command reads is a file (e.g. its model.safetensors),
/// naming the folder to give when the file lies in a run folder.
pub fn check_run_folder(path: &std::path::Path) -> anyhow::Result<()> {
    if !path.is_file() {
        return Ok(());
    }
    let folder = path.parent().map(|d| {
        if d.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            d
        }
    });
    match folder.filter(|d| d.join(partlearn::io::run::RUN_FILE).is_file()) {
        Some(d) => anyhow::bail!("{} is a file, not a run folder: give its folder {}", path.display(), d.display()),
        None => anyhow::bail!(
            "{} is a file, not a run folder: give the folder a fit saved (it holds run.json and model.safetensors)",
            path.display()
        ),
    }
}

/// The error for `flag` (with its value, as typed) given in a mode it has no effect in: it
/// belongs to `mode` (e.g. `--solver online`), and the command runs `here`.
pub fn only_with(flag: &str, mode: &str, here: &str) -> anyhow::Error {
    let name = flag.split_whitespace().next().unwrap_or(flag);
    anyhow::anyhow!("{flag} applies only to {mode} (here: {here}): add {mode}, or drop {name}")
}

/// `(flag and value as typed, given)` of an optional flag, for [`refuse_outside`].
pub fn given<V: std::fmt::Display>(flag: &str, value: Option<V>) -> (String, bool) {
    (
        value.as_ref().map_or(String::new(), |v| format!("{flag} {v}")),
        value.is_some(),
    )
}

/// The first of `flags` — `(flag as typed, given)` — that was given, as the error of
/// [`only_with`]: each has no effect outside `mode`.
pub fn refuse_outside(flags: &[(String, bool)], mode: &str, here: &str) -> anyhow::Result<()> {
    match flags.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(only_with(flag, mode, here)),
        None => Ok(()),
    }
}

/// The warnings of a fit worded with the command's flags (as on stderr), for `--json`.
pub fn warning_texts(warnings: &[partlearn::engine::Warning], flags: &Flags) -> Vec<String> {
    warnings.iter().map(|w| w.describe(|p| flags.param(p))).collect()
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

/// Library parameters whose flag is not `--` + the name in kebab case, in every command.
const RENAMES: &[(&str, &str)] = &[
    ("structuring_element", "--se"),
    ("c_grid", "--svm-grid"),
    ("schedule", "--lr-schedule"),
    ("custom", "--init-atoms"),
    ("codes", "--stored-codes"),
    ("learning_rate", "--lr"),
    ("reconstruction", "--loss"),
    ("ks", "--k"),
];

/// The commands that train by epochs, whose `max_iter` is `--epochs`.
const EPOCH_RENAMES: &[(&str, &str)] = &[("max_iter", "--epochs")];

/// How one command spells the library's parameter names (STYLE.md "Errors": the front end adds
/// its flag names). The library names a parameter by its snake_case name in
/// `Error::InvalidOption` and warnings, and in backticks (`` `dtype = f64` ``) in advice; a
/// command's flag for it is `--` + the name in kebab case, but for the renames ([`RENAMES`],
/// `max_iter` → `--epochs` where training counts epochs). A name the command has no flag for is
/// left as the library wrote it.
pub struct Flags {
    /// This command's renames (the common ones apply too).
    renames: &'static [(&'static str, &'static str)],
    /// The command's long flags; `None` takes every library name to have its flag.
    longs: Option<Vec<String>>,
}

impl Flags {
    /// The flags of a command whose iterations are `--max-iter`.
    pub const fn iterations() -> Flags {
        Flags {
            renames: &[],
            longs: None,
        }
    }

    /// The flags of a command that trains by epochs (`fit ae`, `fit asym-ae`, `fit neural-nmf`).
    pub const fn epochs() -> Flags {
        Flags {
            renames: EPOCH_RENAMES,
            longs: None,
        }
    }

    /// The flags of the subcommand at `path` (e.g. `["fit", "ae"]`), whose long flags are `longs`.
    pub fn of_command(path: &[&str], longs: Vec<String>) -> Flags {
        let base = match path {
            ["fit", "ae" | "asym-ae" | "neural-nmf"] => Flags::epochs(),
            _ => Flags::iterations(),
        };
        Flags {
            longs: Some(longs),
            ..base
        }
    }

    /// Whether the command has the long flag `--long`.
    fn has(&self, long: &str) -> bool {
        self.longs.as_ref().is_none_or(|l| l.iter().any(|f| f == long))
    }

    /// The flag of the library parameter `name` (`max_iter` → `--max-iter`), if the command has one.
    pub fn flag(&self, name: &str) -> Option<String> {
        let renamed = self.renames.iter().chain(RENAMES).find(|(n, _)| *n == name);
        let flag = match renamed {
            Some((_, f)) => f.to_string(),
            None if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
            {
                format!("--{}", name.replace('_', "-"))
            }
            None => return None,
        };
        self.has(flag.trim_start_matches('-')).then_some(flag)
    }

    /// A warning's parameter as this command's flag (the library name if it has none).
    pub fn param(&self, p: partlearn::engine::Param) -> String {
        self.flag(p.name()).unwrap_or_else(|| p.name().to_string())
    }

    /// `text` with each parameter the library named in backticks — `` `name` `` or
    /// `` `name = value` `` — written as the command's flag (`--name` or `--name value`);
    /// backticked text that names no flag of the command is kept as it is.
    pub fn rewrite(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('`') {
            let Some(len) = rest[open + 1..].find('`') else {
                break;
            };
            let inner = &rest[open + 1..open + 1 + len];
            let (name, value) = match inner.split_once(" = ") {
                Some((n, v)) => (n, Some(v)),
                None => (inner, None),
            };
            out.push_str(&rest[..open]);
            match self.flag(name) {
                Some(flag) => {
                    out.push_str(&flag);
                    if let Some(v) = value {
                        out.push(' ');
                        out.push_str(v);
                    }
                }
                None => out.push_str(&rest[open..open + len + 2]),
            }
            rest = &rest[open + len + 2..];
        }
        out.push_str(rest);
        self.rewrite_bare(&out)
    }

    /// `text` with each bare snake_case parameter name (one with an underscore, not part of a
    /// path or a flag) written as the command's flag, `name = value` as `--name value`.
    fn rewrite_bare(&self, text: &str) -> String {
        let is_word = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            let c = text[i..].chars().next().unwrap_or(' ');
            if !is_word(c) {
                out.push(c);
                i += c.len_utf8();
                continue;
            }
            let end = i + text[i..].find(|c: char| !is_word(c)).unwrap_or(text.len() - i);
            let word = &text[i..end];
            // Not a part of a path, a file name, a flag or a backticked name.
            let before = text[..i].chars().last();
            let prev_ok = !matches!(before, Some(b) if b.is_alphanumeric() || "/.-`".contains(b));
            let next_ok = match text[end..].chars().next() {
                Some('/' | '`') => false,
                Some('.') => text[end + 1..].chars().next().is_none_or(char::is_whitespace),
                _ => true,
            };
            let bare = word.contains('_') && prev_ok && next_ok;
            match self.flag(word).filter(|_| bare) {
                Some(flag) => {
                    out.push_str(&flag);
                    i = end;
                    if text[i..].starts_with(" = ") {
                        out.push(' ');
                        i += 3;
                    }
                }
                None => {
                    out.push_str(word);
                    i = end;
                }
            }
        }
        out
    }
}

/// A library error worded with the command's flags: an invalid parameter names its flag
/// (`invalid --label-set x: …`), an existing output gets the advice of `--out` and `--force`, and
/// the parameters named in advice become flags (see [`Flags::rewrite`]).
pub fn flag_error(e: &partlearn::Error, flags: &Flags) -> String {
    match e {
        partlearn::Error::InvalidOption {
            option,
            value,
            reason,
        } => match flags.flag(option) {
            Some(flag) => format!("invalid {flag} {value}: {}", flags.rewrite(reason)),
            None => flags.rewrite(&e.to_string()),
        },
        partlearn::Error::AlreadyExists { path } => {
            let advice = match (flags.has("out"), flags.has("force")) {
                (true, true) => "choose another --out or pass --force to overwrite it",
                (false, true) => "pass --force to overwrite it",
                (true, false) => "choose another --out",
                (false, false) => "move it away first",
            };
            format!("{} already exists: {advice}", path.display())
        }
        e => flags.rewrite(&e.to_string()),
    }
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
            (_, Some(v)) => Err(only_with(
                &format!("--labeled {v}"),
                "--supervision semi",
                &format!("--supervision {}", self.name()),
            )),
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
        Ok(labels::supervised_labels(
            data,
            sup,
            self.label_set.as_deref(),
            n_classes,
            seed,
        )?)
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

impl TestArgs {
    /// The input files of these flags, for [`DataArgs::run_dir`].
    pub fn inputs(&self) -> [(&'static str, Option<&std::path::Path>); 2] {
        let data = self
            .test_data
            .as_deref()
            .map(std::path::Path::new)
            .filter(|p| p.is_file());
        [
            ("--test-data", data),
            ("--test-labels", self.test_labels.as_deref()),
        ]
    }
}

/// `--test-data` loaded and checked before any fitting: its samples and their labels.
pub struct TestSet<T: Real> {
    spec: String,
    data: Dataset<T>,
    classes: Vec<u32>,
}

impl TestArgs {
    /// Loads `--test-data` (`None` without it) and checks, before the fit spends any time, that
    /// its entries are ≥ 0 and it has the training data's width and labels (of the set `label_set` or the one for
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
            sparse: false,
        };
        check_input_file(
            "test_labels",
            self.test_labels.as_deref(),
            "a .npy of one class per sample",
        )?;
        let data = args
            .load::<T>()
            .and_then(|d| d.validate_nonnegative().map(|_| d))
            .with_context(|| format!("--test-data {spec}"))?;
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
            .with_context(|| format!("labels of --test-data {spec}"))?;
        Ok(Some(TestSet {
            spec: spec.clone(),
            data,
            classes,
        }))
    }
}

impl<T: Real> TestSet<T> {
    /// The last layer's codes of the test samples through `net`'s forward pass (`n' × k_L`), and
    /// their classes.
    pub fn codes(
        &self,
        net: &partlearn::deep::neural::NeuralNmf<T>,
        threads: usize,
    ) -> Result<(faer::Mat<T>, &[u32])> {
        let codes = net
            .top_codes(self.data.x(), threads)
            .with_context(|| format!("encoding --test-data {}", self.spec))?;
        Ok((codes, &self.classes))
    }
}

/// The post-hoc accuracies (METHODS.md §5.1) of a layer model's top codes `top` (`n × k_L`) against
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

    fn fit_ae() -> Flags {
        let longs = ["max-seconds", "epochs", "lr-schedule", "dtype", "out", "force"];
        Flags::of_command(&["fit", "ae"], longs.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn library_names_become_the_commands_flags() {
        let f = fit_ae();
        assert_eq!(f.flag("max_seconds").as_deref(), Some("--max-seconds"));
        assert_eq!(f.flag("max_iter").as_deref(), Some("--epochs"));
        assert_eq!(f.flag("schedule").as_deref(), Some("--lr-schedule"));
        // No such flag in this command, or not a parameter name: left as the library wrote it.
        assert_eq!(f.flag("pg_tol"), None);
        assert_eq!(f.flag("data scale"), None);
        assert_eq!(
            Flags::iterations().flag("max_iter").as_deref(),
            Some("--max-iter")
        );
        assert_eq!(
            f.rewrite("or use `dtype = f64`; lower `max_iter`, `pg_tol` or `partlearn fit ae`; `"),
            "or use --dtype f64; lower --epochs, `pg_tol` or `partlearn fit ae`; `"
        );
        // Bare names too, but not inside paths, file names or flags.
        assert_eq!(
            f.rewrite("below max_iter = 200 (max_seconds); not runs/max_iter, max_iter.npy or --max_iter"),
            "below --epochs 200 (--max-seconds); not runs/max_iter, max_iter.npy or --max_iter"
        );
    }

    #[test]
    fn auto_encoder_names_become_its_flags() {
        let longs = ["lr", "patience", "val-fraction", "loss"];
        let f = Flags::of_command(&["fit", "ae"], longs.iter().map(|s| s.to_string()).collect());
        let e = partlearn::Error::invalid(
            "patience",
            3,
            "set `val_fraction` (or `learning_rate`); see `fit ae`",
        );
        assert_eq!(
            flag_error(&e, &f),
            "invalid --patience 3: set --val-fraction (or --lr); see `fit ae`"
        );
        let e = partlearn::Error::invalid("learning_rate", -1, "must be > 0");
        assert_eq!(flag_error(&e, &f), "invalid --lr -1: must be > 0");
        let e = partlearn::Error::invalid("architecture", "asymmetric", "needs images");
        assert_eq!(
            flag_error(&e, &f),
            "invalid architecture = asymmetric: needs images"
        );
    }

    #[test]
    fn library_errors_are_worded_with_flags() {
        let f = fit_ae();
        let e = partlearn::Error::invalid("max_seconds", 0, "must be > 0; or drop `max_seconds`");
        assert_eq!(
            flag_error(&e, &f),
            "invalid --max-seconds 0: must be > 0; or drop --max-seconds"
        );
        let e = partlearn::Error::invalid("pg_tol", 2, "must be in [0, 1)");
        assert_eq!(flag_error(&e, &f), "invalid pg_tol = 2: must be in [0, 1)");
        let e = partlearn::Error::AlreadyExists {
            path: "runs/x".into(),
        };
        assert_eq!(
            flag_error(&e, &f),
            "runs/x already exists: choose another --out or pass --force to overwrite it"
        );
        let eval = Flags::of_command(&["eval"], vec!["force".into()]);
        assert_eq!(
            flag_error(&e, &eval),
            "runs/x already exists: pass --force to overwrite it"
        );
    }
}
