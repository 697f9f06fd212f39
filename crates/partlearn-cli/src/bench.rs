//! `partlearn bench nmf|ae|nnls`: solver iterations against the GEMM bound, and one exact ANLS
//! codes update by parts (library `bench` module).

use anyhow::Result;
use clap::{Args, Subcommand};
use partlearn::bench::{bench_nmf, NmfBenchOptions};
use partlearn::nmf::Solver;

use crate::DataArgs;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// NMF solvers: seconds per iteration, GEMM bound, time to reach relative errors.
    Nmf(BenchNmfArgs),
    /// Auto-encoders: seconds per epoch against the GEMM bound of an epoch.
    Ae(BenchAeArgs),
    /// One exact ANLS codes update (CD prediction + block principal pivoting), timed by parts.
    Nnls(BenchNnlsArgs),
    /// Online NMF on rows streamed from an .npy file (or a folder of shards): rows/s of training and of the codes pass, and the process's peak RSS.
    Online(crate::bench_online::BenchOnlineArgs),
    /// The cost model of `fit nmf --distributed` (docs/distributed.md): modelled seconds per iteration and efficiency for P = 1, 2, 4, … processes, strong and weak scaling, on the grid --grid auto chooses and on 1-D rows; optionally the efficiency chart as SVG.
    DistModel(BenchDistModelArgs),
}

#[derive(Args, Debug)]
pub struct BenchDistModelArgs {
    /// Samples of the data.
    #[arg(long, default_value_t = 60_000)]
    pub n: usize,
    /// Features of the data.
    #[arg(long, default_value_t = 784)]
    pub m: usize,
    #[arg(short = 'k', long = "k", default_value_t = 100)]
    pub k: usize,
    /// GEMM rate of one core, GFLOP/s (measure it with `bench nmf --threads 1`).
    #[arg(long, default_value_t = 120.0)]
    pub gflops: f64,
    /// Interconnect bandwidth, GB/s.
    #[arg(long, default_value_t = 10.0)]
    pub bandwidth: f64,
    /// Latency per message, µs.
    #[arg(long, default_value_t = 2.0)]
    pub latency_us: f64,
    /// Inner sweeps per factor update, at least 1 (1 for MU; an average, e.g. 2.5, for HALS).
    #[arg(long, default_value_t = 1.0)]
    pub sweeps: f64,
    /// Largest P (powers of two from 1), at most 1048576 (2^20, far beyond the MPI jobs the model describes).
    #[arg(long, default_value_t = 1024)]
    pub max_p: usize,
    /// These process counts instead of the powers of two (comma-separated, e.g. 96,384,864,1536; each 1 to 2^20).
    #[arg(long, value_delimiter = ',')]
    pub processes: Vec<usize>,
    /// Write the efficiency chart to this .svg file (an existing file only with --force).
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<std::path::PathBuf>,
    /// Replace an existing --chart file (one partlearn wrote).
    #[arg(long)]
    pub force: bool,
    /// Print the predictions as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Refuses an existing `--chart` file unless `--force` (and then only an SVG file), worded with
/// `--chart` ([`partlearn::io::check_output_file`]).
fn check_chart(path: &std::path::Path, force: bool) -> Result<()> {
    match partlearn::io::check_output_file(path, force, b"<svg", "SVG chart") {
        Err(partlearn::Error::AlreadyExists { path }) => anyhow::bail!(
            "--chart {} already exists: choose another --chart or pass --force to overwrite it",
            path.display()
        ),
        Err(partlearn::Error::InvalidOption { value, reason, .. }) => {
            Err(partlearn::Error::invalid("chart", value, reason.replace("`out`", "`chart`")).into())
        }
        other => Ok(other?),
    }
}

fn run_dist_model(a: BenchDistModelArgs) -> Result<()> {
    use partlearn::dist::model::{ScalingModel, MAX_PROCESSES};
    for (flag, v) in [("--n", a.n), ("--m", a.m), ("-k", a.k)] {
        if v == 0 {
            anyhow::bail!("invalid {flag} 0: give a positive count");
        }
    }
    for (flag, v, ok, what) in [
        (
            "--gflops",
            a.gflops,
            a.gflops > 0.0,
            "a positive finite GEMM rate, e.g. 120",
        ),
        (
            "--bandwidth",
            a.bandwidth,
            a.bandwidth > 0.0,
            "a positive finite bandwidth, e.g. 10",
        ),
        (
            "--latency-us",
            a.latency_us,
            a.latency_us >= 0.0,
            "a finite latency ≥ 0, e.g. 2",
        ),
        (
            "--sweeps",
            a.sweeps,
            a.sweeps >= 1.0,
            "a finite count ≥ 1 (1 for MU)",
        ),
    ] {
        if !(ok && v.is_finite()) {
            anyhow::bail!("invalid {flag} {v}: give {what}");
        }
    }
    let in_range = |p: usize| (1..=MAX_PROCESSES).contains(&p);
    if !in_range(a.max_p) {
        anyhow::bail!(
            "invalid --max-p {}: give 1 to {MAX_PROCESSES} processes (2^20, the most the model describes)",
            a.max_p
        );
    }
    if let Some(p) = a.processes.iter().find(|&&p| !in_range(p)) {
        anyhow::bail!(
            "invalid --processes {p}: give counts from 1 to {MAX_PROCESSES} (2^20), e.g. 96,384,864"
        );
    }
    if let Some(path) = &a.chart {
        check_chart(path, a.force)?;
    }
    let md = ScalingModel {
        n: a.n,
        m: a.m,
        k: a.k,
        rate: a.gflops * 1e9,
        bandwidth: a.bandwidth * 1e9,
        latency: a.latency_us * 1e-6,
        word_bytes: 8.0,
        sweeps: a.sweeps,
    };
    let ps: Vec<usize> = if a.processes.is_empty() {
        std::iter::successors(Some(1usize), |p| p.checked_mul(2))
            .take_while(|&p| p <= a.max_p)
            .collect()
    } else {
        a.processes.clone()
    };
    let rows: Vec<_> = ps
        .iter()
        .map(|&p| (md.strong(p, true), md.strong(p, false), md.weak(p, true)))
        .collect();
    if let Some(path) = &a.chart {
        partlearn::io::write_atomic(path, md.efficiency_chart(&ps).to_svg()?.as_bytes())?;
    }
    if a.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(s, one, w)| serde_json::json!({"strong": s, "strong_1d": one, "weak": w}))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"model": md, "predictions": v}))?
        );
        return Ok(());
    }
    outln!(
        "{} × {}, k = {}, {} GFLOP/s per core, {} GB/s, {} µs; seconds per iteration",
        a.n,
        a.m,
        a.k,
        a.gflops,
        a.bandwidth,
        a.latency_us
    );
    outln!("P\tgrid\tstrong s/it\tcomm s\tefficiency\t1-D s/it\t1-D efficiency\tweak efficiency");
    for (s, one, w) in &rows {
        outln!(
            "{}\t{}x{}\t{:.4e}\t{:.2e}\t{:.3}\t{:.4e}\t{:.3}\t{:.3}",
            s.processes,
            s.grid.rows,
            s.grid.cols,
            s.total,
            s.communication,
            s.efficiency,
            one.total,
            one.efficiency,
            w.efficiency
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct BenchNnlsArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(short = 'k', long = "k", default_value_t = 100)]
    pub k: usize,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// ANLS iterations run before the timed step.
    #[arg(long, default_value_t = 6)]
    pub warmup: usize,
    /// CD sweeps predicting the passive sets (0: BPP from the previous codes alone); a
    /// comma-separated list (e.g. 2,3,4) times each in turn within every repetition.
    #[arg(long, value_delimiter = ',', default_values_t = [partlearn::nmf::frobenius::ANLS_PREDICT_SWEEPS])]
    pub sweeps: Vec<usize>,
    /// Precision of the passive-set systems: data (the data's, f32; also spelled f32) or f64; a
    /// comma-separated list (data,f64) times each in turn within every repetition.
    #[arg(long, value_delimiter = ',', default_value = "data")]
    pub systems: Vec<String>,
    /// Repetitions of the timed step (the minimum is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn run_nnls(a: BenchNnlsArgs) -> Result<()> {
    use partlearn::linalg::nnls::Systems;
    let systems = a
        .systems
        .iter()
        .map(|v| match v.as_str() {
            // The benchmark loads f32 data, so its own precision is f32.
            "data" | "f32" => Ok(Systems::Data),
            "f64" => Ok(Systems::F64),
            other => anyhow::bail!("invalid --systems '{other}': use data, f64 or a list such as data,f64"),
        })
        .collect::<Result<Vec<_>>>()?;
    let data = a.data.load::<f32>()?;
    let o = partlearn::bench::NnlsBenchOptions {
        k: a.k,
        threads: a.threads,
        warmup_iters: a.warmup,
        sweeps: a.sweeps,
        systems,
        reps: a.reps,
        seed: a.seed,
    };
    let r = partlearn::bench::bench_nnls(&data, &o)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    outln!(
        "{}: {} × {}, k = {}, {} threads; one ANLS codes update after {} iterations and one atoms update",
        r.data,
        r.n_samples,
        r.n_features,
        r.k,
        r.threads,
        r.warmup_iters
    );
    for st in &r.steps {
        let systems = match st.systems {
            Systems::Data => "f32 systems",
            Systems::F64 => "f64 systems",
        };
        outln!("CD prediction ({} sweeps)   {:>8.4} s", st.sweeps, st.cd_seconds);
        outln!(
            "BPP (exact, {systems})   {:>8.4} s   {:.3} factorizations and {:.3} bordered updates per column, {} rounds, {} columns widened, {} at the round cap, {} ridged and inexact, mean |F| {:.1}",
            st.bpp_seconds, st.solves_per_column, st.updates_per_column, st.rounds, st.widened, st.capped, st.inexact, st.mean_passive
        );
        outln!("step (CD + BPP)            {:>8.4} s", st.step_seconds);
    }
    outln!("products WᵀX, WᵀW          {:>8.4} s", r.gemm_seconds);
    Ok(())
}

#[derive(Args, Debug)]
pub struct BenchAeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// shallow or asymmetric.
    #[arg(long, default_value = "shallow")]
    pub architecture: partlearn::autoencoder::Architecture,
    #[arg(short = 'k', long = "k", default_value_t = 100)]
    pub k: usize,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Epochs to time.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Stop after this many seconds and extrapolate the epoch time from the batches done (the
    /// first batch, with the run's one-time start, is timed apart).
    #[arg(long, default_value_t = 60.0)]
    pub max_seconds: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn run_ae(a: BenchAeArgs) -> Result<()> {
    let data = a.data.load::<f32>()?;
    let o = partlearn::bench::AeBenchOptions {
        architecture: a.architecture,
        k: a.k,
        batch_size: a.batch_size,
        threads: a.threads,
        epochs: a.epochs,
        max_seconds: a.max_seconds,
        seed: a.seed,
    };
    let r = partlearn::bench::bench_ae(&data, &o)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    outln!(
        "{} AE on {} ({} samples), k = {}, batch {}, {} threads, {}, {} parameters",
        r.architecture,
        r.data,
        r.n_samples,
        r.k,
        r.batch_size,
        r.threads,
        r.dtype,
        r.n_params
    );
    outln!(
        "{:<34} {:<24} {:>9} {:>9}",
        if r.parts > 1 {
            "product (one part, 1 thread)"
        } else {
            "product (one batch)"
        },
        "shape",
        "ms",
        "GFLOP/s"
    );
    for g in &r.gemms {
        outln!(
            "{:<34} {:<24} {:>9.3} {:>9.1}",
            g.name,
            g.shape,
            g.seconds * 1e3,
            g.gflops()
        );
    }
    outln!(
        "{:.3} s/epoch ({} batches timed of {} per epoch, after a start of {:.2} s: the run's one-time work and the first batch); GEMM bound {:.3} s/epoch; ratio {:.2}",
        r.seconds_per_epoch,
        r.batches_timed,
        r.batches_per_epoch,
        r.start_seconds,
        r.gemm_bound,
        r.ratio
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct BenchNmfArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(short = 'k', long = "k", default_value_t = 100)]
    pub k: usize,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Comma-separated solvers.
    #[arg(long, default_value = "hals,mu")]
    pub solvers: String,
    /// Iterations per solver.
    #[arg(long, default_value_t = 100)]
    pub max_iter: usize,
    /// Time budget per solver, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub max_seconds: f64,
    /// Relative errors whose time-to-reach is reported (dense data; default 0.25,0.22).
    #[arg(long)]
    pub targets: Option<String>,
    /// HALS inner repetitions per factor (default: Gillis–Glineur's rule, counting the stored
    /// entries of sparse data).
    #[arg(long)]
    pub hals_inner_max: Option<usize>,
    /// Initialization: nndsvda (default), nndsvd, nndsvdar, random.
    #[arg(long, default_value = "nndsvda")]
    pub init: String,
    /// No extrapolation between iterations (plain HALS / MU / ANLS).
    #[arg(long)]
    pub no_extrapolate: bool,
    /// Also time the iteration's products between the iterations (outside the fit's clock) and
    /// report the ratio against that paired bound: robust to the machine's speed changing
    /// during the run (other tenants), at the cost of one bound's time per iteration.
    #[arg(long)]
    pub paired: bool,
    /// --compress on|auto: also run each solver compressed, side by side with its plain run.
    #[command(flatten)]
    pub compress: crate::fit::CompressArgs,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    let a = match cmd {
        BenchCommand::Nmf(a) => a,
        BenchCommand::Ae(a) => return run_ae(a),
        BenchCommand::Nnls(a) => return run_nnls(a),
        BenchCommand::Online(a) => return crate::bench_online::run(a),
        BenchCommand::DistModel(a) => return run_dist_model(a),
    };
    let solvers = a
        .solvers
        .split(',')
        .map(|s| s.trim().parse::<Solver>())
        .collect::<Result<Vec<_>, _>>()?;
    let targets = a
        .targets
        .as_deref()
        .unwrap_or("0.25,0.22")
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| anyhow::anyhow!("invalid --targets value '{s}': give numbers like 0.25,0.22"))
        })
        .collect::<Result<Vec<_>>>()?;
    if a.data.is_sparse() {
        return run_sparse(&a, solvers);
    }
    let data = a.data.load::<f32>()?;
    let opts = NmfBenchOptions {
        k: a.k,
        threads: a.threads,
        solvers,
        max_iter: a.max_iter,
        max_seconds: a.max_seconds,
        targets,
        seed: a.seed,
        hals_inner_max: a.hals_inner_max,
        init: match a.init.parse::<partlearn::nmf::InitMethod>()? {
            partlearn::nmf::InitMethod::Custom => anyhow::bail!(
                "bench nmf times the built-in starts (nndsvda, nndsvd, nndsvdar, random); time a custom start with fit nmf --init custom --init-atoms FILE.npy"
            ),
            i => i,
        },
        extrapolate: !a.no_extrapolate,
        paired: a.paired,
        compress: a.compress.setting(),
        polish: a.compress.polish,
        compress_samples: a.compress.compress_samples,
    };
    let r = bench_nmf(&data, &opts)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    outln!(
        "{}: {} × {}, k = {}, {} threads, {}",
        r.data,
        r.n_samples,
        r.n_features,
        r.k,
        r.threads,
        r.dtype
    );
    outln!("{:<10} {:<26} {:>10} {:>9}", "product", "shape", "ms", "GFLOP/s");
    for g in &r.gemms {
        outln!(
            "{:<10} {:<26} {:>10.2} {:>9.1}",
            g.name,
            g.shape,
            g.seconds * 1e3,
            g.gflops()
        );
    }
    outln!("");
    outln!(
        "{:<6} {:>6} {:>9} {:>10} {:>10} {:>7} {:>10} {:>7} {:>8}  time to rel. error",
        "solver",
        "iters",
        "init s",
        "s/iter",
        "GEMM s",
        "ratio",
        "flop s",
        "ratio",
        "rel.err"
    );
    for s in &r.solvers {
        let tt: Vec<String> = s
            .targets
            .iter()
            .map(|t| match (t.seconds, t.iteration) {
                (Some(sec), Some(it)) => format!("{}: {sec:.2} s (it {it})", t.rel_error),
                _ => format!("{}: not reached", t.rel_error),
            })
            .collect();
        outln!(
            "{:<6} {:>6} {:>9.3} {:>10.4} {:>10.4} {:>7.2} {:>10.4} {:>7.2} {:>8.5}  {}",
            s.solver,
            s.iterations,
            s.init_seconds,
            s.seconds_per_iter,
            s.gemm_bound,
            s.ratio,
            s.flop_bound,
            s.flop_ratio,
            s.final_rel_error,
            tt.join(", ")
        );
    }
    for s in &r.solvers {
        if let (Some(b), Some(ratio)) = (s.paired_gemm_bound, s.paired_ratio) {
            let spans = match (s.paired_ratio_first, s.paired_ratio_last) {
                (Some(f), Some(l)) => {
                    let span = partlearn::bench::PAIRED_SPAN.min(s.iterations / 2);
                    format!(" (first {span} iterations {f:.2}, last {span} {l:.2})")
                }
                _ => String::new(),
            };
            outln!(
                "{}: paired GEMM bound {b:.4} s (timed between the iterations), ratio {ratio:.2}{spans}",
                s.solver
            );
        }
    }
    for s in r.solvers.iter().filter(|s| s.solver.ends_with("+c")) {
        let plain = r.solvers.iter().find(|p| format!("{}+c", p.solver) == s.solver);
        let ratios: Vec<String> = s
            .targets
            .iter()
            .filter_map(|t| {
                let pt = plain?.targets.iter().find(|p| p.rel_error == t.rel_error)?;
                Some(format!("{}: {:.2}×", t.rel_error, t.seconds? / pt.seconds?))
            })
            .collect();
        let ratios = if ratios.is_empty() {
            "—".to_string()
        } else {
            ratios.join(", ")
        };
        if s.warm_samples > 0 {
            let sketch = if s.sketch_rank > 0 {
                format!("sketch l = {}, {} compressed", s.sketch_rank, s.warm_iters)
            } else {
                format!("no sketch (it does not pay here), {}", s.warm_iters)
            };
            outln!(
                "{}: {sketch} iterations on {} random samples in {:.2} s, then {} exact iterations on all; time to rel. error against the plain run: {ratios}",
                s.solver,
                s.warm_samples,
                s.warm_seconds,
                s.iterations,
            );
        } else if s.sketch_rank == 0 {
            outln!(
                "{}: compression does not pay here (auto ran the plain solver)",
                s.solver
            );
        } else {
            outln!(
                "{}: sketch l = {}{} in {:.2} s, {} compressed + {} polish iterations; time to rel. error against the plain run: {ratios}",
                s.solver,
                s.sketch_rank,
                if s.sketch_exact { " (exact basis, from the NNDSVD start's eigendecomposition)" } else { "" },
                s.sketch_seconds,
                s.compressed_iters,
                s.polish_iters,
            );
        }
    }
    for s in &r.solvers {
        let drift = s.base_bound_after / s.base_bound - 1.0;
        if drift.abs() > 0.1 {
            outln!(
                "note: the four products took {:.4} s right after the {} run against {:.4} s before it ({:+.0} %): the machine's speed changed during the run; rerun for a reliable ratio",
                s.base_bound_after,
                s.solver,
                s.base_bound,
                drift * 100.0
            );
        }
    }
    Ok(())
}

/// `bench nmf` on sparse data: seconds per iteration against the SpMM bound.
fn run_sparse(a: &BenchNmfArgs, solvers: Vec<Solver>) -> Result<()> {
    let x = a.data.load_csr::<f32>()?;
    let init = match a.init.parse::<partlearn::nmf::InitMethod>()? {
        partlearn::nmf::InitMethod::Custom => {
            anyhow::bail!("bench nmf times the built-in starts; drop --init custom")
        }
        i => i,
    };
    // What the sparse bench does not measure is refused, not ignored.
    let unsupported = [
        (
            a.targets.is_some(),
            "--targets (it reports seconds per iteration, not the time to an error)",
        ),
        (a.paired, "--paired"),
        (
            !matches!(a.compress.compress, crate::fit::CompressMode::Off),
            "--compress (time a compressed fit of sparse data with fit nmf --compress)",
        ),
    ];
    if let Some((_, flag)) = unsupported.iter().find(|(given, _)| *given) {
        anyhow::bail!("bench nmf on sparse data times the plain solvers against the SpMM bound: drop {flag}");
    }
    let o = partlearn::bench::SparseBenchOptions {
        k: a.k,
        threads: a.threads,
        solvers,
        max_iter: a.max_iter,
        max_seconds: a.max_seconds,
        init,
        seed: a.seed,
        hals_inner_max: a.hals_inner_max,
        extrapolate: !a.no_extrapolate,
    };
    let r = partlearn::bench::bench_nmf_sparse(&x, &o)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    outln!(
        "{}: {} × {}, {} non-zeros (density {:.4} %), k = {}, {} threads, {}",
        a.data.spec,
        r.n_samples,
        r.n_features,
        r.nnz,
        100.0 * r.density,
        r.k,
        r.threads,
        r.dtype
    );
    outln!("{:<10} {:<44} {:>10} {:>9}", "product", "shape", "ms", "GFLOP/s");
    for g in &r.products {
        outln!(
            "{:<10} {:<44} {:>10.2} {:>9.2}",
            g.name,
            g.shape,
            g.seconds * 1e3,
            g.gflops()
        );
    }
    outln!("SpMM bound of one iteration: {:.4} s", r.spmm_bound);
    outln!("");
    outln!(
        "{:<6} {:>6} {:>9} {:>10} {:>7} {:>10}",
        "solver",
        "iters",
        "init s",
        "s/iter",
        "ratio",
        "rel. err"
    );
    for s in &r.solvers {
        outln!(
            "{:<6} {:>6} {:>9.3} {:>10.4} {:>7.2} {:>10.5}",
            s.solver,
            s.iterations,
            s.init_seconds,
            s.seconds_per_iter,
            s.ratio,
            s.final_rel_error
        );
    }
    Ok(())
}
