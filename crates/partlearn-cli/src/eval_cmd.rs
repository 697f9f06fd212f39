//! `partlearn eval <RUN> --data <DATA>`: every metric of METHODS.md §7 for a fitted run, written
//! to RUN/metrics.json, plus the evaluation figures in RUN/figures/ (eval_*.png images, eval_code_histograms.svg).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use partlearn::eval::evaluate::{evaluate_codes, figures, EvalOptions, Metrics};
use partlearn::eval::svm::SvmProtocolOptions;
use partlearn::Real;

use crate::{DataArgs, Dtype};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run folder written by `partlearn fit`.
    pub run: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Structuring element of the dilation: disk:R, square:S or custom:ROW/ROW/… (disk:1 = 3×3 cross).
    #[arg(long, default_value = "disk:1")]
    pub se: String,
    /// Use the codes stored in the run (e.g. the constrained codes of `fit sparse-nmf`) instead of encoding; --data must be the data the run was fitted on.
    #[arg(long)]
    pub stored_codes: bool,
    /// Skip the linear-SVM protocol.
    #[arg(long)]
    pub no_svm: bool,
    /// SVM protocol: number of C values on the log grid [1e-2, 1e3].
    #[arg(long, default_value_t = SvmProtocolOptions::default().c_grid)]
    pub svm_grid: usize,
    /// SVM protocol: stratified shuffle splits used to choose C.
    #[arg(long, default_value_t = SvmProtocolOptions::default().select_splits)]
    pub svm_select_splits: usize,
    /// SVM protocol: stratified shuffle splits of the held-out 20% for the final accuracy.
    #[arg(long, default_value_t = SvmProtocolOptions::default().eval_splits)]
    pub svm_eval_splits: usize,
    /// Seed of the SVM splits.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples shown in the figures.
    #[arg(long, default_value_t = 10)]
    pub show: usize,
    /// Worker threads (1 = sequential, 0 = all cores).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Float type of the computation.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: Dtype,
    /// Missing entries of --data: a 0/1 matrix, 1 = observed (dense NPY or CSV, or sparse .npz / .mtx listing the observed entries); NaN entries are missing too. NMF models only: codes from the observed entries, errors over them; the max-approximation error and the figures are skipped.
    #[arg(long, value_name = "FILE")]
    pub mask: Option<PathBuf>,
    /// Replace an existing metrics.json.
    #[arg(long)]
    pub force: bool,
    /// Print the metrics as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No summary lines.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub dist: crate::dist_cmd::DistArgs,
}

pub fn run(a: EvalArgs) -> Result<()> {
    match a.dtype {
        Dtype::F32 => go::<f32>(&a),
        Dtype::F64 => go::<f64>(&a),
    }
}

fn go<T: Real>(a: &EvalArgs) -> Result<()> {
    crate::args::check_run_folder(&a.run)?;
    check_svm_flags(a)?;
    if a.dist.distributed {
        return crate::dist_cmd::eval::<T>(a);
    }
    let dir = partlearn::io::open_existing(&a.run)?;
    let metrics_path = dir.join(partlearn::io::run::METRICS_FILE);
    if metrics_path.exists() && !a.force {
        return Err(partlearn::Error::AlreadyExists { path: metrics_path }.into());
    }
    let loaded = partlearn::protocol::load_model::<T>(&dir)?;
    if a.data.is_sparse() {
        crate::fit::refuse_mask_on_sparse(a.mask.as_deref())?;
        return sparse::<T>(a, loaded, &metrics_path);
    }
    let data = a.data.load::<T>()?;
    loaded.check_images(&data)?;
    let shape = data.image_shape.or(loaded.image_shape);
    let opts = eval_options(a);
    let codes = if a.stored_codes {
        let file = dir.join(partlearn::io::run::MODEL_FILE);
        let (tensors, _) = partlearn::io::read_safetensors(&file)?;
        let t = partlearn::io::tensor_by_name(&tensors, "codes", &file).map_err(|_| {
            anyhow::anyhow!(
                "{}: the run stored no codes; refit with --save-codes or drop --stored-codes",
                file.display()
            )
        })?;
        check_same_data(&dir, &a.data)?;
        Some(t.to_mat::<T>()?)
    } else {
        None
    };
    let mask = a
        .mask
        .as_deref()
        .map(|p| crate::fit::load_mask(p, &a.data))
        .transpose()?;
    if mask.is_some() || crate::fit::has_nan(&data) {
        if a.stored_codes {
            anyhow::bail!("--stored-codes with missing entries: the codes are computed from the observed entries; drop --stored-codes");
        }
        let (m, missing) = partlearn::eval::masked::evaluate_masked(
            loaded.model.as_ref(),
            &data,
            mask.as_ref(),
            shape,
            &opts,
        )?;
        warn_coarse_svm(m.svm.as_ref());
        let mut v = serde_json::to_value(&m)?;
        v["missing_entries"] = serde_json::to_value(&missing)?;
        partlearn::io::write_atomic(&metrics_path, &partlearn::io::to_json_pretty(&v)?)?;
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&v)?);
        } else if !a.quiet {
            outln!(
                "{} on {} ({} samples, {} of {} entries missing): over the observed entries MSE {:.5}, rel. error {:.4}; Hoyer {:.3}",
                m.model_kind,
                m.data,
                m.n_samples,
                missing.hidden,
                missing.hidden + missing.observed,
                m.reconstruction.mse,
                m.reconstruction.rel_error,
                m.hoyer.mean
            );
            if let Some(s) = &m.svm {
                outln!(
                    "linear SVM: {:.3} ± {:.3} (C = {:.3})",
                    s.mean_accuracy,
                    s.std_accuracy,
                    s.best_c
                );
            }
            for s in &missing.skipped {
                outln!("skipped {s}");
            }
            outln!(
                "{:.1} s; wrote {} (no figures: the data are incomplete)",
                m.seconds.total,
                metrics_path.display()
            );
        }
        return Ok(());
    }
    let ev = evaluate_codes(loaded.model.as_ref(), &data, shape, &opts, codes)?;
    if let Some(shape) = shape {
        for (name, bytes) in figures(&ev, loaded.model.as_ref(), &data, shape, a.show)? {
            partlearn::io::write_atomic(&dir.join(partlearn::io::run::FIGURES_DIR).join(name), &bytes)?;
        }
    }
    warn_coarse_svm(ev.metrics.svm.as_ref());
    write_metrics(a, &ev.metrics, &metrics_path)
}

/// A warning on stderr when the SVM's evaluation splits test on fewer samples than classes.
fn warn_coarse_svm(svm: Option<&partlearn::eval::svm::SvmProtocolResult>) {
    if let Some(w) = svm.and_then(|s| s.coarse_warning()) {
        errln!("warning: {w}");
    }
}

/// Refuses SVM protocol flags of 0 before any work (the library checks them only after the
/// codes are computed, naming its own parameter).
fn check_svm_flags(a: &EvalArgs) -> Result<()> {
    if a.no_svm {
        return Ok(());
    }
    let flags = [
        ("--svm-grid", a.svm_grid, "C value"),
        ("--svm-select-splits", a.svm_select_splits, "split"),
        ("--svm-eval-splits", a.svm_eval_splits, "split"),
    ];
    if let Some((flag, _, what)) = flags.iter().find(|f| f.1 == 0) {
        anyhow::bail!(
            "invalid {flag} 0: the SVM protocol needs at least 1 {what}; give 1 or more, or pass --no-svm"
        );
    }
    Ok(())
}

/// The evaluation options of the flags.
pub(crate) fn eval_options(a: &EvalArgs) -> EvalOptions {
    EvalOptions {
        threads: a.threads,
        structuring_element: a.se.clone(),
        svm: (!a.no_svm).then(|| SvmProtocolOptions {
            c_grid: a.svm_grid,
            select_splits: a.svm_select_splits,
            eval_splits: a.svm_eval_splits,
            seed: a.seed,
            ..Default::default()
        }),
    }
}

/// Writes `m` to `metrics_path` and prints its summary (or the JSON with --json).
pub(crate) fn write_metrics(a: &EvalArgs, m: &Metrics, metrics_path: &std::path::Path) -> Result<()> {
    partlearn::io::write_atomic(metrics_path, &partlearn::io::to_json_pretty(m)?)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(m)?);
    } else if !a.quiet {
        outln!(
            "{} on {} ({} samples): MSE {:.5} (clipped {:.5}), rel. error {:.4}, Hoyer {:.3}{} ",
            m.model_kind,
            m.data,
            m.n_samples,
            m.reconstruction.mse,
            m.reconstruction.mse_clipped,
            m.reconstruction.rel_error,
            m.hoyer.mean,
            if m.hoyer.zero_codes > 0 {
                format!(" ({} zero codes)", m.hoyer.zero_codes)
            } else {
                String::new()
            }
        );
        if let Some(x) = &m.max_approx {
            outln!(
                "max-approximation ({}): {:.4} (clipped {:.4}); against dilated reconstructions {:.4}",
                x.structuring_element,
                x.vs_dilated_originals,
                x.vs_dilated_originals_clipped,
                x.vs_dilated_reconstructions
            );
        }
        if let Some(s) = &m.svm {
            outln!(
                "linear SVM: {:.3} ± {:.3} (C = {:.3}; {} C values, {} + {} splits)",
                s.mean_accuracy,
                s.std_accuracy,
                s.best_c,
                s.options.c_grid,
                s.options.select_splits,
                s.options.eval_splits
            );
        }
        outln!("{:.1} s; wrote {}", m.seconds.total, metrics_path.display());
    }
    Ok(())
}

/// `eval` on sparse data (`eval::sparse`): codes by the model's own encode (never densified),
/// the reconstruction error by the sparse identity (METHODS.md §11.1) and the codes' Hoyer
/// sparseness, written to metrics.json. A whole CSR `.npz` or `.mtx` with an NMF model is
/// streamed by blocks of rows (the memory of one block); other selections and models load the
/// matrix. The image metrics (dilation, max-approximation, histograms, figures) and the SVM
/// protocol need dense image data with labels: not computed.
fn sparse<T: Real>(
    a: &EvalArgs,
    loaded: partlearn::protocol::LoadedModel<T>,
    metrics_path: &std::path::Path,
) -> Result<()> {
    if a.stored_codes {
        anyhow::bail!("--stored-codes is not available with sparse data; drop it (the codes are recomputed)");
    }
    let start = std::time::Instant::now();
    let streamed = match loaded.model.as_nmf() {
        Some(model) => {
            // A `.mtx` to sort goes to a temporary copy in the run folder.
            match crate::transform::sparse_rows::<T>(&a.data, metrics_path, a.quiet || a.json)? {
                Some(mut rows) => Some(partlearn::eval::sparse::evaluate_rows(
                    model,
                    rows.as_mut(),
                    crate::transform::STREAM_ROWS,
                    a.threads,
                )?),
                None => None,
            }
        }
        None => None,
    };
    let m = match streamed {
        Some(m) => m,
        None => {
            let x = a.data.load_csr::<T>()?;
            let codes = loaded.model.encode_csr(&x, a.threads)?;
            let (sq, x_sq) =
                crate::transform::sparse_sq_errors(loaded.model.atoms(), &x, codes.as_ref(), a.threads)?;
            let mut stats = partlearn::eval::sparse::CodeStats::default();
            stats.add(codes.as_ref());
            stats.metrics((x.nrows(), x.ncols()), x.nnz() as u64, sq, x_sq)
        }
    };
    let (n, m_features) = (m.n_samples, m.n_features);
    let metrics = serde_json::json!({
        "model_kind": loaded.model.kind(),
        "data": a.data.spec,
        "sparse": true,
        "n_samples": n,
        "n_features": m_features,
        "nnz": m.nnz,
        "density": m.nnz as f64 / (n as f64 * m_features as f64).max(1.0),
        "reconstruction": {"sq_error": m.sq_error, "mse": m.mse, "rel_error": m.rel_error},
        "hoyer": {"mean": m.hoyer_mean, "zero_codes": m.zero_codes},
        "not_computed": "dilation, max-approximation, code histograms and the SVM protocol need dense image data with labels",
        "seconds": start.elapsed().as_secs_f64(),
    });
    partlearn::io::write_atomic(metrics_path, &partlearn::io::to_json_pretty(&metrics)?)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&metrics)?);
    } else if !a.quiet {
        outln!(
            "{} on {} ({n} sparse samples, {} non-zeros): rel. error {:.4}, Hoyer {:.3}; image metrics and SVM need dense image data",
            loaded.model.kind(),
            a.data.spec,
            m.nnz,
            m.rel_error,
            m.hoyer_mean
        );
        outln!("wrote {}", metrics_path.display());
    }
    Ok(())
}

/// Stored codes belong to the data the run was fitted on: `--data` (with `--first`, `--subset`,
/// `--data-seed`) must name that data, as recorded in the run's `run.json`.
fn check_same_data(dir: &std::path::Path, d: &DataArgs) -> Result<()> {
    let r = partlearn::io::RunRecord::read(dir)?.data;
    let Some(spec) = &r.spec else {
        anyhow::bail!(
            "the run was fitted on data built in memory ({}), so --stored-codes cannot be matched to --data {}; drop --stored-codes",
            r.name,
            d.spec
        );
    };
    let fitted = selection(spec, r.first, r.subset, r.data_seed);
    let given = selection(&d.spec, d.first, d.subset, d.data_seed);
    if fitted != given {
        anyhow::bail!(
            "--stored-codes are the codes of the run's training data ({fitted}), not of --data {given}: give the same data options or drop --stored-codes"
        );
    }
    Ok(())
}

/// `--data` with its `--first`, `--subset` and (with a subset) `--data-seed`, as typed.
fn selection(spec: &str, first: Option<usize>, subset: Option<usize>, seed: u64) -> String {
    let mut s = spec.to_string();
    if let Some(f) = first {
        s += &format!(" --first {f}");
    }
    if let Some(n) = subset {
        s += &format!(" --subset {n} --data-seed {seed}");
    }
    s
}
