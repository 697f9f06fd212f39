//! What every command writes besides its own files: lines on stdout and stderr (the one place
//! that prints: [`outln!`] and [`errln!`]), the default run folder, 2-d `.npy` inputs, and the
//! figures of image data. A leaf module: it imports no command module.

/// `println!` that returns an error instead of panicking when stdout is closed or full: a
/// broken pipe ends the command quietly, a full disk is a one-line error (see `main`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::stdout_line(format_args!($($arg)*))?
    };
}

/// `eprintln!` that never panics (a closed stderr loses the message, nothing else).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::stderr_line(format_args!($($arg)*))
    };
}

/// Writing stdout failed (a closed pipe, a full disk).
#[derive(Debug)]
pub struct StdoutError(pub std::io::Error);

impl std::fmt::Display for StdoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot write to stdout: {}; write the output somewhere with space left",
            self.0
        )
    }
}

impl std::error::Error for StdoutError {}

/// One line on stdout, flushed (so that a full disk is seen here, not lost at exit).
pub fn stdout_line(args: std::fmt::Arguments<'_>) -> std::result::Result<(), StdoutError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Text on stderr (no newline: a progress count); errors are ignored.
pub fn stderr_text(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// One line on stderr; errors are ignored (there is nowhere left to report them).
pub fn stderr_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

use std::path::{Path, PathBuf};

use anyhow::Result;
use faer::{Mat, MatRef};
use partlearn::data::Dataset;
use partlearn::io::RunDir;
use partlearn::Real;

/// A 2-d `.npy` file as a matrix.
pub fn read_matrix<T: Real>(path: &Path) -> Result<Mat<T>> {
    let a = partlearn::npy::read_npy(path)?;
    if a.shape.len() != 2 {
        anyhow::bail!(
            "{}: expected a 2-d array, found shape {:?}; save a matrix (e.g. np.save(path, a.reshape(rows, -1)))",
            path.display(),
            a.shape
        );
    }
    let (r, c) = (a.shape[0], a.shape[1]);
    let v: Vec<T> = a.to_real::<T>();
    Ok(Mat::from_fn(r, c, |i, j| v[i * c + j]))
}

pub fn default_out(method: &str, spec: &str, k: usize) -> PathBuf {
    let clean: String = spec
        .rsplit('/')
        .next()
        .unwrap_or(spec)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    PathBuf::from("runs").join(format!("{method}-{clean}-k{k}"))
}

/// Most atoms figures/atoms.png draws (the most used ones): a grid of 20 × 20 tiles.
const FIGURE_ATOMS: usize = 400;

/// figures/atoms.png (ordered by usage, at most [`FIGURE_ATOMS`]) and
/// figures/reconstructions.png (first 10 samples); `codes` are the model's codes of the first
/// samples of `data`.
pub fn write_figures<T: Real>(
    run_dir: &RunDir,
    model: &dyn partlearn::protocol::PartModel<T>,
    codes: MatRef<'_, T>,
    data: &Dataset<T>,
    shape: (usize, usize),
) -> Result<()> {
    use partlearn::figures;
    let opts = figures::GridOptions::default();
    let atoms = model.atoms();
    let mut order = figures::usage_order(codes, atoms);
    order.truncate(FIGURE_ATOMS);
    run_dir.write(
        "figures/atoms.png",
        &figures::atoms_grid(atoms, shape, Some(&order), &opts)?,
    )?;
    let n = data.n_samples().min(10).min(codes.nrows());
    let originals = data.x().subrows(0, n);
    let recon = model.decode(codes.subrows(0, n))?;
    run_dir.write(
        "figures/reconstructions.png",
        &figures::reconstructions(originals, recon.as_ref(), shape, &opts)?,
    )?;
    Ok(())
}
