//! Data specs for sparse data: `.npz` (scipy) and `.mtx[.gz]` (MatrixMarket) files are read as
//! CSR ([`super::npz`], [`super::mtx`]); any other spec (a `.npy`, `.csv`, IDX file or a named
//! set) is loaded dense and converted (what the CLI's `--sparse` asks for).

use std::path::Path;

use super::spec::{load, LoadOptions};
use super::Csr;
use crate::error::{Error, Result};
use crate::real::Real;
use crate::rng::Rng;

/// Whether `spec` names a sparse file by its extension (`.npz`, `.mtx`, `.mtx.gz`).
pub fn is_sparse_file(spec: &str) -> bool {
    let s = spec.to_ascii_lowercase();
    s.ends_with(".npz") || s.ends_with(".mtx") || s.ends_with(".mtx.gz")
}

/// Loads `spec` as a CSR matrix (samples as rows), with `first` / `subset` applied as [`load`]
/// does. Labels are not read with sparse data (`labels` must be unset).
pub fn load_csr<T: Real>(spec: &str, opts: &LoadOptions) -> Result<Csr<T>> {
    if !is_sparse_file(spec) {
        let d = load::<T>(spec, opts)?;
        return Csr::from_dense(d.x());
    }
    if let Some(l) = &opts.labels {
        return Err(Error::invalid(
            "labels",
            l.display(),
            "labels are not read with sparse data; leave `labels` unset",
        ));
    }
    if opts.first.is_some() && opts.subset.is_some() {
        return Err(Error::invalid(
            "subset",
            opts.subset.unwrap_or_default(),
            "`first` and `subset` cannot be combined; give only one of them",
        ));
    }
    let path = Path::new(spec);
    let a = if spec.to_ascii_lowercase().ends_with(".npz") {
        super::npz::read_npz::<T>(path)?
    } else {
        super::mtx::read_mtx::<T>(path)?
    };
    let n = a.nrows();
    for (option, value) in [("first", opts.first), ("subset", opts.subset)] {
        match value {
            Some(0) => return Err(Error::invalid(option, 0, "must be at least 1 sample")),
            Some(k) if k > n => {
                return Err(Error::invalid(
                    option,
                    k,
                    format!("{spec} has only {n} samples; give at most {n}"),
                ))
            }
            _ => {}
        }
    }
    if let Some(k) = opts.first.filter(|&k| k < n) {
        return a.select_rows(&(0..k).collect::<Vec<_>>());
    }
    if let Some(k) = opts.subset {
        let mut idx = Rng::new(opts.seed).sample_indices(n, k);
        idx.sort_unstable();
        return a.select_rows(&idx);
    }
    Ok(a)
}
