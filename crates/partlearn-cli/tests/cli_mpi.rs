//! `--distributed` under `mpirun` (built only with `--features mpi`; each test prints a note and
//! passes when `mpirun` is not installed): the distributed fit equals the one-process fit for
//! every solver, shards and `transform --distributed`, the communication volume per iteration,
//! and a killed process ending the job.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `mpirun -np P partlearn …`, or `None` (with a note) when mpirun is missing.
fn mpirun(p: usize) -> Option<Command> {
    let found = Command::new("mpirun")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("note: mpirun not found; skipping (install openmpi-bin and libopenmpi-dev)");
        return None;
    }
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np", &p.to_string()])
        .arg(assert_cmd::cargo::cargo_bin("partlearn"));
    Some(c)
}

fn mpi_run(p: usize, args: &[&str]) -> Option<Output> {
    Some(mpirun(p)?.args(args).output().unwrap())
}

/// A 203 × 30 non-negative matrix of rank about 6 plus noise (203 rows: blocks of 16 do not
/// divide it).
fn write_data(path: &Path) {
    write_data_shaped(path, 203, 30);
}

/// An `n × m` non-negative matrix of rank about 6 plus noise.
fn write_data_shaped(path: &Path, n: usize, m: usize) {
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f32 / (1u64 << 31) as f32
    };
    let a: Vec<f32> = (0..n * 6).map(|_| next()).collect();
    let b: Vec<f32> = (0..6 * m).map(|_| next()).collect();
    let x: Vec<f32> = (0..n * m)
        .map(|ij| {
            let (i, j) = (ij / m, ij % m);
            (0..6).map(|t| a[i * 6 + t] * b[t * m + j]).sum::<f32>() + 0.05 * next()
        })
        .collect();
    write_npy_f32(path, n, m, &x);
}

fn fit_args<'a>(data: &'a str, out: &'a str, solver: &'a str, dtype: &'a str) -> Vec<&'a str> {
    fit_args_init(data, out, solver, dtype, "random")
}

fn fit_args_init<'a>(
    data: &'a str,
    out: &'a str,
    solver: &'a str,
    dtype: &'a str,
    init: &'a str,
) -> Vec<&'a str> {
    let mut a = vec![
        "fit", "nmf", "--data", data, "-k", "5", "--init", init, "--solver", solver,
    ];
    a.extend([
        "--max-iter",
        "25",
        "--tol",
        "0",
        "--dtype",
        dtype,
        "--save-codes",
        "--quiet",
    ]);
    a.extend(["--force", "--out", out]);
    a
}

fn tensor(run: &Path, name: &str) -> Vec<f64> {
    let t = model_tensor(run, name).to_mat::<f64>().unwrap();
    (0..t.nrows())
        .flat_map(|i| (0..t.ncols()).map(move |j| (i, j)))
        .map(|(i, j)| t[(i, j)])
        .collect()
}

/// max |a − b| / max |b|.
fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn every_solver_matches_the_one_process_fit_with_2_and_3_processes() {
    let dir = temp_dir("solvers");
    let data = dir.join("x.npy");
    write_data(&data);
    let d = s(&data);
    for (solver, dtype, init, tol) in [
        ("mu", "f64", "random", 1e-9),
        ("hals", "f64", "random", 1e-9),
        ("anls", "f64", "random", 1e-9),
        ("hals", "f32", "random", 2e-3),
        // The default start here (k ≤ min(n, m)): NNDSVD-a from the summed feature Gram.
        ("hals", "f64", "auto", 1e-9),
    ] {
        let one = dir.join(format!("one-{solver}-{dtype}-{init}"));
        assert_ok(&run(&fit_args_init(d, s(&one), solver, dtype, init)));
        for p in [2, 3] {
            let out = dir.join(format!("p{p}-{solver}-{dtype}-{init}"));
            let mut args = fit_args_init(d, s(&out), solver, dtype, init);
            args.push("--distributed");
            let Some(o) = mpi_run(p, &args) else { return };
            assert_ok(&o);
            let what = format!("{solver} {dtype} {init} P={p}");
            let (ra, rc) = (
                rel_diff(&tensor(&out, "atoms"), &tensor(&one, "atoms")),
                rel_diff(&tensor(&out, "codes"), &tensor(&one, "codes")),
            );
            assert!(ra < tol && rc < tol, "{what}: atoms {ra:e}, codes {rc:e}");
            let (a, b) = (read_json(&out.join("run.json")), read_json(&one.join("run.json")));
            assert_eq!(a["n_iter"], b["n_iter"], "{what}");
            assert_eq!(a["part"]["stats"]["processes"], p, "{what}");
        }
    }
    // The same P twice: the same bits.
    let (a, b) = (dir.join("again-a"), dir.join("again-b"));
    for out in [&a, &b] {
        let mut args = fit_args(d, s(out), "anls", "f32");
        args.push("--distributed");
        assert_ok(&mpi_run(3, &args).unwrap());
    }
    assert_eq!(tensor(&a, "atoms"), tensor(&b, "atoms"));
    assert_eq!(tensor(&a, "codes"), tensor(&b, "codes"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shards_and_distributed_transform() {
    let dir = temp_dir("shards");
    let data = dir.join("x.npy");
    write_data(&data);
    let shards = dir.join("shards");
    let o = run(&[
        "data",
        "shard",
        "--data",
        s(&data),
        "--parts",
        "3",
        "--out",
        s(&shards),
    ]);
    assert_ok(&o);
    let sizes: Vec<usize> = (0..3)
        .map(|r| partlearn::npy::npy_shape(&shards.join(format!("part-{r:05}.npy"))).unwrap()[0])
        .collect();
    assert_eq!(sizes, vec![80, 64, 59]);
    // Fitting the shards is fitting the file by offset: the same bits.
    let (from_file, from_shards) = (dir.join("file"), dir.join("sharded"));
    for (input, out) in [(&data, &from_file), (&shards, &from_shards)] {
        let mut args = fit_args(s(input), s(out), "hals", "f32");
        args.push("--distributed");
        let Some(o) = mpi_run(3, &args) else { return };
        assert_ok(&o);
    }
    assert_eq!(tensor(&from_file, "atoms"), tensor(&from_shards, "atoms"));
    // Two processes on three shards: refused, naming the fix.
    let mut args = fit_args(s(&shards), s(&from_shards), "hals", "f32");
    args.push("--distributed");
    let o = mpi_run(2, &args).unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("-np 3"), "{}", stderr(&o));
    // transform --distributed: one codes shard per process, equal to the one-process codes.
    let codes_dir = dir.join("codes");
    let o = mpi_run(
        3,
        &[
            "transform",
            s(&from_file),
            "--data",
            s(&shards),
            "--out",
            s(&codes_dir),
            "--distributed",
            "--quiet",
        ],
    )
    .unwrap();
    assert_ok(&o);
    let one = dir.join("codes.npy");
    assert_ok(&transform(&from_file, s(&data), &one));
    let whole = partlearn::npy::read_npy(&one).unwrap().data.to_f64_vec();
    let parts: Vec<f64> = (0..3)
        .flat_map(|r| {
            partlearn::npy::read_npy(&codes_dir.join(format!("part-{r:05}.npy")))
                .unwrap()
                .data
                .to_f64_vec()
        })
        .collect();
    assert_eq!(parts, whole, "encoding is per sample: the same bits");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bytes_per_iteration_follow_k_m_plus_k_squared() {
    let dir = temp_dir("bytes");
    let data = dir.join("x.npy");
    write_data(&data);
    let (k, m) = (5.0, 30.0);
    for (p, iters) in [(2usize, 10.0), (2, 20.0), (3, 20.0)] {
        let out = dir.join(format!("p{p}-{iters}"));
        let it = format!("{iters}");
        let args = [
            "fit",
            "nmf",
            "--data",
            s(&data),
            "-k",
            "5",
            "--init",
            "random",
            "--solver",
            "hals",
            "--no-extrapolate",
            "--max-iter",
            &it,
            "--tol",
            "0",
            "--quiet",
            "--out",
            s(&out),
            "--distributed",
        ];
        let Some(o) = mpi_run(p, &args) else { return };
        assert_ok(&o);
        let bytes = read_json(&out.join("run.json"))["part"]["stats"]["comm_bytes"]
            .as_f64()
            .unwrap();
        // Rank 0 per sum: ⌈log₂P⌉ received partial sums + the broadcast, each 8·(k² + k·m)
        // bytes for T and R, once per iteration, plus the stop and checkpoint decisions (6 numbers) per
        // iteration, the codes' squared norms of the atom rebalancing (k numbers before each
        // factor's update) and the start's and the final evaluation's sums.
        let per_sum = 8.0 * (k * k + k * m);
        let moves = 1.0 + (p as f64).log2().ceil();
        let model = moves * ((iters + 2.0) * per_sum + 8.0 * ((6.0 + 2.0 * k) * iters + 8.0));
        assert!(
            (bytes - model).abs() <= 0.02 * model,
            "P={p}, {iters} iterations: {bytes} bytes counted, model {model}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Starts an endless distributed fit on 2 processes (with `extra` flags), waits until rank 1
/// runs, sends it `signal`, and returns the job's exit status and stderr once it ended (at
/// most 60 s later).
fn signal_rank_1(
    name: &str,
    signal: &str,
    extra: &[&str],
) -> Option<(std::process::ExitStatus, String, bool)> {
    // One such job at a time (they look for their rank 1 among all processes).
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir(name);
    let data = dir.join("x.npy");
    write_data(&data);
    let out = dir.join("run");
    let mut c = mpirun(2)?;
    let mut child = c
        .args([
            "fit",
            "nmf",
            "--data",
            s(&data),
            "-k",
            "5",
            "--init",
            "random",
            "--max-iter",
            "100000000",
            "--tol",
            "0",
            "--quiet",
            "--out",
            s(&out),
            "--distributed",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Rank 1: a process whose environment says OMPI_COMM_WORLD_RANK=1 and whose command line
    // names this test's run folder.
    let start = Instant::now();
    let victim = loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("the job ended before rank 1 was signalled ({status}): {err}");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "rank 1 never appeared");
        std::thread::sleep(Duration::from_millis(200));
        let found = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .find_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let env = std::fs::read(e.path().join("environ")).ok()?;
                let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
                let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
                (has(&env, b"OMPI_COMM_WORLD_RANK=1\0") && has(&cmd, s(&out).as_bytes())).then_some(pid)
            });
        if let Some(pid) = found {
            break pid;
        }
    };
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill")
        .args([signal, &victim.to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = Command::new("kill").args(["-9", &victim.to_string()]).status();
            panic!("the job still runs 60 s after rank 1 got {signal}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    // The job may leave the state of an unfinished fit (history, checkpoint), never a run.
    let wrote = out.join("run.json").exists();
    std::fs::remove_dir_all(&dir).unwrap();
    Some((status, err, wrote))
}

#[test]
fn a_killed_process_ends_the_job_instead_of_hanging() {
    let Some((status, err, wrote)) = signal_rank_1("killed", "-9", &[]) else {
        return;
    };
    assert!(!status.success(), "{err}");
    assert!(!wrote, "no run folder from a failed job");
}

#[test]
fn a_hung_process_ends_the_job_after_the_timeout() {
    let Some((status, err, wrote)) = signal_rank_1("hung", "-STOP", &["--mpi-timeout", "2"]) else {
        return;
    };
    assert!(!status.success(), "{err}");
    assert!(err.contains("waited") && err.contains("--mpi-timeout 2"), "{err}");
    assert!(!wrote);
}

#[test]
fn what_a_distributed_fit_refuses() {
    let dir = temp_dir("refused");
    let data = dir.join("x.npy");
    write_data(&data);
    let out = dir.join("run");
    // NNDSVD-ar's random fill is not drawn across processes.
    let args = [
        "fit",
        "nmf",
        "--data",
        s(&data),
        "-k",
        "5",
        "--init",
        "nndsvdar",
        "--out",
        s(&out),
        "--distributed",
    ];
    let Some(o) = mpi_run(2, &args) else { return };
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--init nndsvda"), "{}", stderr(&o));
    assert!(!out.exists());
    // A data format that cannot be read by rows.
    let csv = dir.join("x.csv");
    std::fs::write(&csv, "1,2\n3,4\n").unwrap();
    let o = mpi_run(
        2,
        &[
            "fit",
            "nmf",
            "--data",
            s(&csv),
            "--init",
            "random",
            "-k",
            "1",
            "--out",
            s(&out),
            "--distributed",
        ],
    )
    .unwrap();
    assert!(stderr(&o).contains("data shard"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `partlearn …` in one process.
fn one_process(args: &[&str]) -> Output {
    let o = partlearn().args(args).output().unwrap();
    assert_ok(&o);
    o
}

#[test]
fn sparse_npz_and_mtx_rows_give_the_dense_fit() {
    let dir = temp_dir("sparse");
    let (npz, mtx) = (dir.join("t.npz"), dir.join("t.mtx"));
    for f in [&npz, &mtx] {
        one_process(&[
            "data",
            "generate",
            "topics",
            "--docs",
            "230",
            "--terms",
            "40",
            "--density",
            "0.1",
            "--topics",
            "4",
            "--seed",
            "3",
            "--out",
            s(f),
        ]);
    }
    for solver in ["hals", "mu", "anls"] {
        let runs: Vec<_> = ["one", "npz", "mtx"]
            .iter()
            .map(|n| dir.join(format!("{solver}-{n}")))
            .collect();
        one_process(&fit_args(s(&npz), s(&runs[0]), solver, "f64"));
        for (data, out) in [(&npz, &runs[1]), (&mtx, &runs[2])] {
            let mut args = fit_args(s(data), s(out), solver, "f64");
            args.push("--distributed");
            let Some(o) = mpi_run(2, &args) else { return };
            assert_ok(&o);
        }
        for name in ["atoms", "codes"] {
            let one = tensor(&runs[0], name);
            let d = rel_diff(&tensor(&runs[1], name), &one);
            assert!(d < 1e-9, "{solver} {name}: .npz on 2 processes vs one: {d:e}");
            assert_eq!(
                tensor(&runs[2], name),
                tensor(&runs[1], name),
                "{solver} {name}: .mtx = .npz"
            );
        }
        let run = read_json(&runs[1].join("run.json"));
        assert_eq!(run["part"]["stats"]["processes"], 2, "{run}");
        // On 2-D grids each process keeps the columns of its feature block too.
        for (data, p, grid) in [(&npz, 4, "2x2"), (&mtx, 2, "1x2")] {
            let out = dir.join(format!("{solver}-grid-{grid}"));
            let mut args = fit_args(s(data), s(&out), solver, "f64");
            args.extend(["--distributed", "--grid", grid]);
            assert_ok(&mpi_run(p, &args).unwrap());
            for name in ["atoms", "codes"] {
                let d = rel_diff(&tensor(&out, name), &tensor(&runs[0], name));
                assert!(
                    d < 1e-9,
                    "{solver} {name}: sparse on grid {grid} vs one process: {d:e}"
                );
            }
        }
    }
    // transform --distributed of the sparse rows: the one-process codes, shard by shard.
    let (codes_dir, one) = (dir.join("codes"), dir.join("codes.npy"));
    let run = dir.join("hals-one");
    let o = mpi_run(
        2,
        &[
            "transform",
            s(&run),
            "--data",
            s(&mtx),
            "--out",
            s(&codes_dir),
            "--distributed",
            "--quiet",
        ],
    )
    .unwrap();
    assert_ok(&o);
    one_process(&[
        "transform",
        s(&run),
        "--data",
        s(&npz),
        "--out",
        s(&one),
        "--quiet",
    ]);
    let whole = partlearn::npy::read_npy(&one).unwrap().data.to_f64_vec();
    let parts: Vec<f64> = (0..2)
        .flat_map(|r| {
            let shard = codes_dir.join(format!("part-{r:05}.npy"));
            partlearn::npy::read_npy(&shard).unwrap().data.to_f64_vec()
        })
        .collect();
    assert_eq!(parts, whole, "encoding is per sample: the same bits");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Waits for `child` at most `secs` seconds.
fn wait_for(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            panic!("the job still runs after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ctrl_c_on_mpirun_saves_a_checkpoint_that_resumes_to_the_uninterrupted_bits() {
    let dir = temp_dir("ctrlc");
    let data = dir.join("x.npy");
    one_process(&[
        "data",
        "generate",
        "lowrank",
        "--n",
        "3000",
        "--m",
        "120",
        "--k",
        "8",
        "--noise",
        "0.01",
        "--seed",
        "2",
        "--out",
        s(&data),
    ]);
    let run = dir.join("run");
    let fit = |out: &Path, max_iter: &str| -> Vec<String> {
        [
            "fit",
            "nmf",
            "--data",
            s(&data),
            "-k",
            "8",
            "--init",
            "random",
            "--solver",
            "hals",
            "--max-iter",
            max_iter,
            "--tol",
            "0",
            "--save-codes",
            "--quiet",
            "--out",
            s(out),
        ]
        .map(String::from)
        .to_vec()
    };
    let Some(mut c) = mpirun(2) else { return };
    // mpirun passes Ctrl-C on as SIGTERM and kills the ranks `odls_base_sigkill_timeout`
    // seconds later (1 by default): give them time to save on a loaded machine.
    let mut child = c
        .env("OMPI_MCA_odls_base_sigkill_timeout", "30")
        .args(fit(&run, "100000000"))
        .args(["--distributed", "--history-after", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the fit runs (its history appears after its first iterations).
    let t = Instant::now();
    while !run.join("history.jsonl").exists() {
        assert!(child.try_wait().unwrap().is_none(), "the job ended early");
        if t.elapsed() > Duration::from_secs(120) {
            // mpirun ends its ranks on SIGTERM (a SIGKILL would leave them running).
            Command::new("kill").arg(child.id().to_string()).status().unwrap();
            wait_for(&mut child, 60);
            panic!("the fit never started");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    wait_for(&mut child, 60);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("--resume") && err.contains("mpirun -np 2"), "{err}");
    let stopped = read_json(&run.join("run.json"));
    assert_eq!(stopped["stop_reason"], "interrupted", "{stopped}");
    let done = stopped["n_iter"].as_u64().unwrap() as usize;
    assert!(run.join("checkpoint.safetensors").is_file());
    // Resume to `done + 15` on 2 processes, on 3, and in one process; fit the same uninterrupted.
    let total = (done + 15).to_string();
    let copies: Vec<_> = ["p2", "p3", "one"].iter().map(|n| dir.join(n)).collect();
    for c in &copies {
        std::fs::create_dir(c).unwrap();
        for f in std::fs::read_dir(&run).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, c.join(f.file_name().unwrap())).unwrap();
        }
    }
    let resume = |out: &Path| {
        [
            "fit",
            "nmf",
            "--data",
            s(&data),
            "--resume",
            s(out),
            "--max-iter",
            &total,
            "--save-codes",
            "--quiet",
        ]
        .map(String::from)
        .to_vec()
    };
    for (p, out) in [(2, &copies[0]), (3, &copies[1])] {
        let mut args = resume(out);
        args.push("--distributed".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_ok(&mpi_run(p, &args).unwrap());
    }
    let args = resume(&copies[2]);
    one_process(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let whole = dir.join("whole");
    let mut args = fit(&whole, &total);
    args.push("--distributed".into());
    assert_ok(&mpi_run(2, &args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap());
    let resumed = read_json(&copies[0].join("run.json"));
    assert_eq!(resumed["part"]["resumed_from_iter"], done as u64, "{resumed}");
    for name in ["atoms", "codes"] {
        let w = tensor(&whole, name);
        assert_eq!(
            tensor(&copies[0], name),
            w,
            "{name}: 2 processes resumed = uninterrupted bits"
        );
        for c in &copies[1..] {
            let d = rel_diff(&tensor(c, name), &w);
            assert!(d < 1e-4, "{name} {}: {d:e}", c.display());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn distributed_eval_gives_the_one_process_metrics() {
    let dir = temp_dir("eval");
    let (data, labels) = (dir.join("x.npy"), dir.join("y.npy"));
    write_data(&data);
    // Labels from the largest of the first three features (3 classes, all present).
    let x = partlearn::npy::read_npy(&data).unwrap().data.to_f64_vec();
    let y: Vec<i64> = (0..203)
        .map(|i| {
            (0..3)
                .max_by(|&a, &b| x[i * 30 + a].total_cmp(&x[i * 30 + b]))
                .unwrap() as i64
        })
        .collect();
    std::fs::write(
        &labels,
        partlearn::npy::npy_bytes(&[203], partlearn::npy::NpyDataRef::I64(&y)),
    )
    .unwrap();
    let run = dir.join("run");
    one_process(&fit_args(s(&data), s(&run), "hals", "f64"));
    let eval = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "eval",
            s(&run),
            "--data",
            s(&data),
            "--labels",
            s(&labels),
            "--svm-grid",
            "3",
            "--svm-select-splits",
            "1",
            "--svm-eval-splits",
            "2",
            "--dtype",
            "f64",
            "--force",
            "--quiet",
        ]
        .map(String::from)
        .to_vec();
        v.extend(extra.iter().map(|a| a.to_string()));
        v
    };
    let args = eval(&[]);
    one_process(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let one = read_json(&run.join("metrics.json"));
    let args = eval(&["--distributed"]);
    let Some(o) = mpi_run(3, &args.iter().map(String::as_str).collect::<Vec<_>>()) else {
        return;
    };
    assert_ok(&o);
    let dist = read_json(&run.join("metrics.json"));
    assert_eq!(dist["n_samples"], 203);
    for (group, key) in [
        ("reconstruction", "mse"),
        ("reconstruction", "mse_clipped"),
        ("reconstruction", "rel_error"),
        ("hoyer", "mean"),
        ("hoyer", "mean_reference"),
    ] {
        let (a, b) = (
            dist[group][key].as_f64().unwrap(),
            one[group][key].as_f64().unwrap(),
        );
        assert!((a - b).abs() <= 1e-12 * b.abs(), "{group}.{key}: {a} vs {b}");
    }
    assert!(one["svm"]["mean_accuracy"].as_f64().is_some(), "{one}");
    assert_eq!(dist["svm"], one["svm"], "the same codes give the same SVM");
    // Sparse data are evaluated in one process.
    let args = eval(&["--distributed"]);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let npz = dir.join("x.npz");
    args[3] = s(&npz);
    let o = mpi_run(2, &args).unwrap();
    assert!(
        !o.status.success() && stderr(&o).contains("one process"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_2d_grid_gives_the_one_process_fit_and_moves_the_words_of_its_formula() {
    let dir = temp_dir("grid");
    let data = dir.join("x.npy");
    // As many features as samples: `--grid auto` picks 2 × 2 for 4 processes.
    let (n, m, k) = (100usize, 70usize, 5.0f64);
    write_data_shaped(&data, n, m);
    let d = s(&data);
    for solver in ["hals", "anls", "mu"] {
        let one = dir.join(format!("one-{solver}"));
        assert_ok(&run(&fit_args(d, s(&one), solver, "f64")));
        for (p, grid, expect) in [(4, "auto", [2, 2]), (2, "1x2", [1, 2]), (3, "1x3", [1, 3])] {
            let out = dir.join(format!("{solver}-{grid}-{p}"));
            let mut args = fit_args(d, s(&out), solver, "f64");
            args.extend(["--distributed", "--grid", grid]);
            let Some(o) = mpi_run(p, &args) else { return };
            assert_ok(&o);
            let what = format!("{solver} grid {grid} P={p}");
            let (ra, rc) = (
                rel_diff(&tensor(&out, "atoms"), &tensor(&one, "atoms")),
                rel_diff(&tensor(&out, "codes"), &tensor(&one, "codes")),
            );
            assert!(ra < 1e-9 && rc < 1e-9, "{what}: atoms {ra:e}, codes {rc:e}");
            let (a, b) = (read_json(&out.join("run.json")), read_json(&one.join("run.json")));
            assert_eq!(a["n_iter"], b["n_iter"], "{what}");
            let g = &a["part"]["stats"]["grid"];
            assert_eq!(
                [g["rows"].as_u64().unwrap(), g["cols"].as_u64().unwrap()],
                expect.map(|v| v as u64),
                "{what}"
            );
        }
    }
    // Words per iteration on the 2 × 2 grid, counted by rank 0 (the first of its grid row and
    // column: 2·⌈log₂2⌉ = 2 payloads per sum): the codes' cross term P_i (k × n_i) and Q (k²)
    // over the grid row, T and R_j (k² + k·m_j) over the grid column, ⟨W, R⟩ over the row (1
    // number), the atoms' and codes' squared norms of the rebalancing before each factor's
    // update (k numbers over the row and k over the column, twice), and the stop decision over
    // all four (6 numbers, 1 + ⌈log₂4⌉ payloads): the difference between 20 and 10 iterations
    // is 10 iterations' worth.
    let bytes = |iters: &str| {
        let out = dir.join(format!("bytes-{iters}"));
        let args = [
            "fit",
            "nmf",
            "--data",
            d,
            "-k",
            "5",
            "--init",
            "random",
            "--solver",
            "hals",
            "--no-extrapolate",
            "--max-iter",
            iters,
            "--tol",
            "0",
            "--quiet",
            "--out",
            s(&out),
            "--distributed",
            "--grid",
            "2x2",
        ];
        assert_ok(&mpi_run(4, &args).unwrap());
        read_json(&out.join("run.json"))["part"]["stats"]["comm_bytes"]
            .as_f64()
            .unwrap()
    };
    let (n0, m0) = (
        partlearn::dist::row_block(n, 2, 0).len() as f64,
        partlearn::dist::row_block(m, 2, 0).len() as f64,
    );
    let per_iter = 8.0 * (2.0 * (k * n0 + k * k + 1.0) + 2.0 * (k * k + k * m0) + 2.0 * 4.0 * k + 3.0 * 6.0);
    let counted = bytes("20") - bytes("10");
    assert!(
        (counted - 10.0 * per_iter).abs() <= 0.01 * 10.0 * per_iter,
        "10 iterations on 2 x 2: {counted} bytes counted, model {}",
        10.0 * per_iter
    );
    // The same grid twice: the same bits (the sums' order depends only on the grid).
    let again = dir.join("hals-2x2-again");
    let mut args = fit_args(d, s(&again), "hals", "f64");
    args.extend(["--distributed", "--grid", "2x2"]);
    assert_ok(&mpi_run(4, &args).unwrap());
    let first = dir.join("hals-auto-4");
    assert_eq!(tensor(&again, "atoms"), tensor(&first, "atoms"));
    assert_eq!(tensor(&again, "codes"), tensor(&first, "codes"));
    // A grid that does not fit the processes is refused.
    let mut args = fit_args(d, s(&dir), "hals", "f64");
    args.extend(["--distributed", "--grid", "3x2"]);
    let o = mpi_run(4, &args).unwrap();
    assert!(
        !o.status.success() && stderr(&o).contains("ROWS·COLS = 4"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
