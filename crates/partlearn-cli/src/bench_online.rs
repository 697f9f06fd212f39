//! `partlearn bench online`: online NMF (METHODS.md §11.3) on rows streamed from an `.npy` file,
//! a folder of `.npy` shards, a CSR `.npz` or a MatrixMarket `.mtx[.gz]` — training rows/s, the codes pass's rows/s, and the process's
//! peak resident memory (`VmHWM` of `/proc/self/status`), which must not grow with n.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use partlearn::data::rows::{NpyRows, NpyShards, RowSource};
use partlearn::nmf::online::{self, MiniBatchParams};

#[derive(Args, Debug)]
pub struct BenchOnlineArgs {
    /// An .npy file (n × m, C order), a CSR .npz (scipy save_npz), a MatrixMarket .mtx[.gz] or a folder of .npy shards; streamed, never loaded whole.
    #[arg(long = "data", value_name = "FILE|DIR")]
    pub data: PathBuf,
    #[arg(short = 'k', long = "k", default_value_t = 50)]
    pub k: usize,
    #[arg(long, default_value_t = 1024)]
    pub batch_size: usize,
    /// Passes over the data (the no-improvement rule is off, so each pass runs to its end).
    #[arg(long, default_value_t = 1)]
    pub passes: usize,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Skip the codes pass (training only).
    #[arg(long)]
    pub no_transform: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// For a .mtx[.gz] not grouped by row: folder for its row-sorted temporary copy (default: the system's temporary folder).
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,
}

/// Peak resident set size of this process in bytes (`VmHWM`), if the system reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn run(a: BenchOnlineArgs) -> Result<()> {
    let npz = a.data.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    let lower = a.data.to_string_lossy().to_ascii_lowercase();
    let mtx = lower.ends_with(".mtx") || lower.ends_with(".mtx.gz");
    let t_open = std::time::Instant::now();
    let mut reordered = None;
    let mut src: Box<dyn RowSource<f32>> = if a.data.is_dir() {
        Box::new(NpyShards::open(&a.data)?)
    } else if npz {
        Box::new(partlearn::data::npz::NpzRows::open(&a.data)?)
    } else if mtx {
        let opts = partlearn::data::mtx::MtxRowsOptions {
            temp_dir: a.temp_dir.clone(),
            ..Default::default()
        };
        let rows = partlearn::data::mtx::MtxRows::open_with(&a.data, &opts)?;
        if let Some(r) = rows.reordered() {
            errln!("{}", crate::online_cmd::reorder_note(&a.data, r));
            reordered = Some(r.clone());
        }
        Box::new(rows)
    } else {
        Box::new(NpyRows::open(&a.data)?)
    };
    let open_seconds = t_open.elapsed().as_secs_f64();
    let (n, m) = (src.n_rows(), src.n_cols());
    let file_bytes = if a.data.is_dir() {
        std::fs::read_dir(&a.data)?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|md| md.len())
            .sum()
    } else {
        std::fs::metadata(&a.data)?.len()
    };
    let rss_before = peak_rss_bytes();
    let params = MiniBatchParams::new(a.k)
        .batch_size(a.batch_size)
        .max_iter(a.passes)
        .tol(0.0)
        .max_no_improvement(None)
        .seed(a.seed)
        .threads(a.threads)
        .check()?;
    let fit = online::fit_rows(src.as_mut(), &params, &mut partlearn::engine::Silent)?;
    let rss_fit = peak_rss_bytes();
    let (transform_seconds, rel_error) = if a.no_transform {
        (None, None)
    } else {
        let t = std::time::Instant::now();
        let e = online::transform_rows(&fit.model, src.as_mut(), a.batch_size, a.threads, &mut |_, _| {
            Ok(())
        })?;
        (Some(t.elapsed().as_secs_f64()), Some(e.rel_error()))
    };
    let rss_end = peak_rss_bytes();
    let mib = |b: Option<u64>| b.map(|b| b as f64 / (1024.0 * 1024.0));
    let report = serde_json::json!({
        "data": a.data,
        "n": n,
        "m": m,
        "k": a.k,
        "file_bytes": file_bytes,
        "batch_size": a.batch_size,
        "threads": a.threads,
        "passes": fit.n_iter,
        "batches": fit.n_steps,
        "open_seconds": open_seconds,
        "sorted_copy_bytes": reordered.as_ref().map(|r| r.temp_bytes),
        "fit_seconds": fit.seconds,
        "fit_rows_per_second": fit.stats.rows_per_second,
        "transform_seconds": transform_seconds,
        "transform_rows_per_second": transform_seconds.map(|s| n as f64 / s),
        "rel_error": rel_error,
        "peak_rss_mib_before_fit": mib(rss_before),
        "peak_rss_mib_after_fit": mib(rss_fit),
        "peak_rss_mib": mib(rss_end),
    });
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "online NMF k={} on {} ({n} × {m}, {:.2} GB): {} pass(es), {} batches of {} in {:.1} s = {:.0} rows/s",
            a.k,
            a.data.display(),
            file_bytes as f64 / 1e9,
            fit.n_iter,
            fit.n_steps,
            a.batch_size,
            fit.seconds,
            fit.stats.rows_per_second
        );
        if mtx {
            outln!(
                "opening (the .mtx read once to check it{}): {open_seconds:.1} s",
                if reordered.is_some() {
                    ", then sorted by row"
                } else {
                    ""
                }
            );
        }
        if let (Some(s), Some(e)) = (transform_seconds, rel_error) {
            outln!(
                "codes pass: {:.1} s = {:.0} rows/s; rel. error {:.5}",
                s,
                n as f64 / s,
                e
            );
        }
        match mib(rss_end) {
            Some(r) => outln!("peak RSS {r:.0} MiB (VmHWM)"),
            None => outln!("peak RSS: not reported by this system"),
        }
    }
    Ok(())
}
