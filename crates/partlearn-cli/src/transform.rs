//! `partlearn transform <RUN> --data DATA --out codes.npy`: codes of new data for a fitted
//! dictionary (the model's own encode, so the training data get the codes `fit` returned).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use partlearn::data::rows::RowSource;
use partlearn::npy::{npy_bytes, NpyDataRef};
use partlearn::Real;

use crate::{DataArgs, Dtype};

#[derive(Args, Debug)]
pub struct TransformArgs {
    /// A run folder written by `partlearn fit` (or its model.safetensors).
    pub run: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to write the codes (n_samples × k, .npy); with --distributed, a folder that receives one shard part-RRRRR.npy per process.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace an existing output file (never a file of the run being read).
    #[arg(long)]
    pub force: bool,
    /// Worker threads (1 = sequential, 0 = all cores).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Float type of the computation and of the written codes.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: Dtype,
    /// Missing entries of --data: a 0/1 matrix, 1 = observed (dense NPY or CSV, or sparse .npz / .mtx listing the observed entries); NaN entries are missing too. NMF codes are then computed from the observed entries only.
    #[arg(long, value_name = "FILE")]
    pub mask: Option<PathBuf>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// No summary line.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub dist: crate::dist_cmd::DistArgs,
}

pub fn run(a: TransformArgs) -> Result<()> {
    match a.dtype {
        Dtype::F32 => go::<f32>(&a),
        Dtype::F64 => go::<f64>(&a),
    }
}

fn go<T: Real>(a: &TransformArgs) -> Result<()> {
    if a.dist.distributed {
        return crate::dist_cmd::transform::<T>(a);
    }
    partlearn::io::run::check_output_outside_run(&a.run, &a.out)?;
    crate::args::check_out_parent(&a.out, "--out")?;
    partlearn::io::check_output_file(&a.out, a.force, b"\x93NUMPY", ".npy file")?;
    a.data
        .check_not_inputs(&a.out, "--out", &[("--mask", a.mask.as_deref())])?;
    let loaded = partlearn::protocol::load_model::<T>(&a.run)?;
    if a.data.is_sparse() {
        crate::fit::refuse_mask_on_sparse(a.mask.as_deref())?;
        return sparse::<T>(a, loaded);
    }
    let data = a.data.load::<T>()?;
    loaded.check_images(&data)?;
    let model = loaded.model;
    let mask = a
        .mask
        .as_deref()
        .map(|p| crate::fit::load_mask(p, &a.data))
        .transpose()?;
    let masked = mask.is_some() || crate::fit::has_nan(&data);
    let start = std::time::Instant::now();
    let codes = if masked {
        let nmf = nmf_model(&a.run, model.as_ref())?;
        nmf.encode_masked(data.x(), mask.as_ref(), a.threads)?
    } else {
        model.encode(data.x(), a.threads)?
    };
    let seconds = start.elapsed().as_secs_f64();
    let (n, k) = (codes.nrows(), codes.ncols());
    partlearn::io::write_atomic(&a.out, &matrix_npy_bytes(codes.as_ref()))?;
    // Relative reconstruction error of the encoded data (over the observed entries), as a
    // sanity figure.
    let rel = if masked {
        let full = match &mask {
            Some(m) => m.clone(),
            None => partlearn::nmf::Mask::from_nan(data.x()),
        };
        let (err, norm) =
            partlearn::nmf::masked::observed_error(data.x(), &full, codes.as_ref(), model.atoms())?;
        if norm > 0.0 {
            (err / norm).sqrt()
        } else {
            0.0
        }
    } else {
        let recon = model.decode(codes.as_ref())?;
        partlearn::eval::metrics::reconstruction_error(data.x(), recon.as_ref())?.rel_error
    };
    if a.json {
        let s =
            serde_json::json!({"out": a.out, "n_samples": n, "k": k, "rel_error": rel, "seconds": seconds});
        outln!("{}", serde_json::to_string_pretty(&s)?);
    } else if !a.quiet {
        outln!(
            "encoded {n} samples with k={k} in {seconds:.2} s (rel. error {rel:.5}); wrote {}",
            a.out.display()
        );
    }
    Ok(())
}

/// The NMF model of a run, for data with missing entries (other models cannot encode them).
pub fn nmf_model<'a, T: Real>(
    run: &std::path::Path,
    model: &'a dyn partlearn::protocol::PartModel<T>,
) -> Result<&'a partlearn::nmf::NmfModel<T>> {
    model.as_nmf().ok_or_else(|| {
        anyhow::anyhow!(
            "{}: only NMF models can encode data with missing entries (NaN or --mask); fill the missing entries first",
            run.display()
        )
    })
}

/// `transform` of sparse data: the model's `encode_csr` (NMF models; never densified), and the
/// relative error by the sparse identity (METHODS.md §11.1).
fn sparse<T: Real>(a: &TransformArgs, loaded: partlearn::protocol::LoadedModel<T>) -> Result<()> {
    if sparse_streamed(a, &loaded)? {
        return Ok(());
    }
    let x = a.data.load_csr::<T>()?;
    let start = std::time::Instant::now();
    let codes = loaded.model.encode_csr(&x, a.threads)?;
    let seconds = start.elapsed().as_secs_f64();
    let (n, k) = (codes.nrows(), codes.ncols());
    partlearn::io::write_atomic(&a.out, &matrix_npy_bytes(codes.as_ref()))?;
    let rel = sparse_rel_error(loaded.model.atoms(), &x, codes.as_ref(), a.threads)?;
    if a.json {
        let s = serde_json::json!({"out": a.out, "n_samples": n, "k": k, "nnz": x.nnz(), "rel_error": rel, "seconds": seconds});
        outln!("{}", serde_json::to_string_pretty(&s)?);
    } else if !a.quiet {
        outln!(
            "encoded {n} sparse samples ({} non-zeros) with k={k} in {seconds:.2} s (rel. error {rel:.5}); wrote {}",
            x.nnz(),
            a.out.display()
        );
    }
    Ok(())
}

/// Rows of a whole sparse file, streamed: a CSR `.npz` or a `.mtx[.gz]` without --first /
/// --subset (`None` otherwise: those are loaded whole). A `.mtx` not grouped by row is sorted
/// into a temporary copy beside `out` (the output file) first.
pub fn sparse_rows<T: Real>(
    data: &crate::DataArgs,
    out: &std::path::Path,
    quiet: bool,
) -> Result<Option<Box<dyn RowSource<T>>>> {
    let (spec, lower) = (&data.spec, data.spec.to_ascii_lowercase());
    if data.first.is_some() || data.subset.is_some() {
        return Ok(None);
    }
    let path = std::path::Path::new(spec);
    if lower.ends_with(".npz") {
        // CSC and COO archives are loaded whole (converted on the way).
        if partlearn::data::npz::npz_format(path)? != "csr" {
            return Ok(None);
        }
        return Ok(Some(Box::new(partlearn::data::npz::NpzRows::open(path)?)));
    }
    if lower.ends_with(".mtx") || lower.ends_with(".mtx.gz") {
        let rows = crate::online_cmd::open_mtx_beside(path, None, out, quiet)?;
        return Ok(Some(Box::new(rows)));
    }
    Ok(None)
}

/// `transform` of a sparse file by blocks of rows with an NMF model, at the memory of one block
/// (`nmf::online::transform_rows`); the codes are written as they come. `false` (nothing
/// done) when the data are not streamed ([`sparse_rows`]) or the model is not an NMF.
fn sparse_streamed<T: Real>(a: &TransformArgs, loaded: &partlearn::protocol::LoadedModel<T>) -> Result<bool> {
    let Some(model) = loaded.model.as_nmf() else {
        return Ok(false);
    };
    let Some(mut rows) = sparse_rows::<T>(&a.data, &a.out, a.quiet || a.json)? else {
        return Ok(false);
    };
    let (n, k) = (rows.n_rows(), model.k());
    let start = std::time::Instant::now();
    let mut eval = None;
    partlearn::io::write_atomic_with(&a.out, |w| {
        let e = write_codes_rows(w, n, k, |sink| {
            partlearn::nmf::online::transform_rows(model, rows.as_mut(), STREAM_ROWS, a.threads, sink)
        })?;
        eval = Some(e);
        Ok(())
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let e = eval.ok_or_else(|| anyhow::anyhow!("the codes were not computed"))?;
    let rel = if e.x_sq > 0.0 {
        (e.sq_error / e.x_sq).sqrt()
    } else {
        0.0
    };
    if a.json {
        let s = serde_json::json!({"out": a.out, "n_samples": n, "k": k, "rel_error": rel, "seconds": seconds, "streamed": true});
        outln!("{}", serde_json::to_string_pretty(&s)?);
    } else if !a.quiet {
        outln!(
            "encoded {n} sparse samples with k={k} in {seconds:.2} s, {STREAM_ROWS} rows at a time (rel. error {rel:.5}); wrote {}",
            a.out.display()
        );
    }
    Ok(true)
}

/// Rows per block of a streamed `transform` or sparse `eval`.
pub const STREAM_ROWS: usize = 4096;

/// Writes an `n × k` codes `.npy` (the float type of `T`) to `w` from the blocks of rows that
/// `encode` hands to its sink in order; returns what `encode` returns.
pub fn write_codes_rows<T: Real, R>(
    w: &mut dyn std::io::Write,
    n: usize,
    k: usize,
    encode: impl FnOnce(
        &mut dyn FnMut(usize, faer::MatRef<'_, T>) -> partlearn::Result<()>,
    ) -> partlearn::Result<R>,
) -> std::io::Result<R> {
    let descr = if T::NAME == "f32" { "<f4" } else { "<f8" };
    w.write_all(&partlearn::npy::npy_header(&[n, k], descr))?;
    let mut buf = Vec::new();
    let mut sink = |_: usize, c: faer::MatRef<'_, T>| -> partlearn::Result<()> {
        buf.clear();
        for i in 0..c.nrows() {
            for j in 0..c.ncols() {
                let v = c[(i, j)].to_f64();
                if T::NAME == "f32" {
                    buf.extend_from_slice(&(v as f32).to_le_bytes());
                } else {
                    buf.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        w.write_all(&buf).map_err(|e| partlearn::Error::io("codes", e))
    };
    encode(&mut sink).map_err(std::io::Error::other)
}

/// `‖X − CW‖ / ‖X‖` of sparse `x` for a linear (NMF) dictionary `atoms`, without forming `CW`.
pub fn sparse_rel_error<T: Real>(
    atoms: faer::MatRef<'_, T>,
    x: &partlearn::data::Csr<T>,
    codes: faer::MatRef<'_, T>,
    threads: usize,
) -> Result<f64> {
    let (sq, norm_sq) = sparse_sq_errors(atoms, x, codes, threads)?;
    Ok(if norm_sq > 0.0 { (sq / norm_sq).sqrt() } else { 0.0 })
}

/// `(‖X − CW‖², ‖X‖²)` of sparse `x` (the terms [`sparse_rel_error`] divides; summed over the
/// processes of a distributed transform).
pub fn sparse_sq_errors<T: Real>(
    atoms: faer::MatRef<'_, T>,
    x: &partlearn::data::Csr<T>,
    codes: faer::MatRef<'_, T>,
    threads: usize,
) -> Result<(f64, f64)> {
    let spec = partlearn::nmf::EncodeSpec {
        beta_loss: 2.0,
        codes_penalty: Default::default(),
        encode: Default::default(),
    };
    let model = partlearn::nmf::NmfModel::new(atoms.to_owned(), spec)?;
    let sq = model.sq_error_csr(x, codes, threads)?;
    Ok((sq, x.frob_sq()))
}

/// A matrix as `.npy` bytes (C order, the matrix's own float type).
pub fn matrix_npy_bytes<T: Real>(c: faer::MatRef<'_, T>) -> Vec<u8> {
    let (n, k) = (c.nrows(), c.ncols());
    match T::NAME {
        "f32" => {
            let flat: Vec<f32> = (0..n)
                .flat_map(|i| (0..k).map(move |j| c[(i, j)].to_f64() as f32))
                .collect();
            npy_bytes(&[n, k], NpyDataRef::F32(&flat))
        }
        _ => {
            let flat: Vec<f64> = (0..n)
                .flat_map(|i| (0..k).map(move |j| c[(i, j)].to_f64()))
                .collect();
            npy_bytes(&[n, k], NpyDataRef::F64(&flat))
        }
    }
}
