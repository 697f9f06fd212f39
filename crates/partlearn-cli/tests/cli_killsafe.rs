//! Work lost to a kill (issue "Hostile input, full disks, signals"): long fits keep
//! `history.jsonl` and a checkpoint on disk as they go, `--resume` continues a SIGKILLed training
//! and says how much it redoes, and SIGKILL at random points of fit / eval / report / sweep /
//! `--resume` never leaves a mixed output or a stage behind once the command is rerun
//! ([`kill_campaign`]: 5 kills here, 120 in the ignored test `scripts/test --long` runs).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Sends `sig` (e.g. "-KILL") to `pid`.
fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success() || sig == "-KILL");
}

/// SIGKILL, and the process reaped.
fn kill9(child: &mut Child) {
    signal(child.id(), "-KILL");
    let _ = child.wait();
}

/// The epochs (or iterations) of the whole lines of a `history.jsonl` that a kill may have cut.
fn history_iters(path: &Path, key: &str) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |e| e + 1);
    bytes[..end]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap();
            v[key].as_u64().unwrap()
        })
        .collect()
}

/// The epoch a checkpoint file stands at.
fn checkpoint_epoch(path: &Path) -> u64 {
    let (_, meta) = partlearn::io::read_safetensors(path).unwrap();
    let desc: serde_json::Value = serde_json::from_str(&meta["partlearn.checkpoint"]).unwrap();
    desc["epoch"].as_u64().unwrap()
}

const AE: [&str; 12] = [
    "fit",
    "ae",
    "--data",
    "swimmer",
    "-k",
    "8",
    "--batch-size",
    "32",
    "--optimizer",
    "adam",
    "--lr",
    "0.01",
];

fn ae_spawn(out: &Path, extra: &[&str]) -> Child {
    partlearn()
        .args(AE)
        .args(["--quiet", "--out", s(out)])
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until `cond` holds (at most a minute).
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed().as_secs() < 60, "{what}: not after 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Stops `child` (SIGSTOP) at a moment when `history` is ahead of `checkpoint` (so that some
/// epochs are redone), then SIGKILLs it; the history's epochs and the checkpoint's epoch.
fn kill_ahead_of_checkpoint(child: &mut Child, history: &Path, checkpoint: &Path) -> (Vec<u64>, u64) {
    let t = Instant::now();
    loop {
        assert!(t.elapsed().as_secs() < 60, "never ahead of its checkpoint");
        if checkpoint.is_file() {
            signal(child.id(), "-STOP");
            // kill(1) returns once the signal is queued: wait until the process is stopped.
            let stat = format!("/proc/{}/stat", child.id());
            wait_until("stopped", || {
                std::fs::read_to_string(&stat)
                    .ok()
                    .and_then(|st| {
                        st.rsplit_once(')')
                            .map(|(_, rest)| rest.trim_start().starts_with('T'))
                    })
                    .unwrap_or(true)
            });
            let h = history_iters(history, "epoch");
            let e = checkpoint_epoch(checkpoint);
            if h.len() as u64 > e && h.len() >= 4 {
                kill9(child);
                return (h, e);
            }
            signal(child.id(), "-CONT");
        }
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// `history.jsonl` of a run without its `seconds` fields (the rest is the same bits).
fn history_without_seconds(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

#[test]
fn a_killed_ae_training_keeps_its_history_and_checkpoint_and_resumes_exactly() {
    let dir = temp_dir("ae-killed");
    let r = dir.join("run");
    // Checkpoints every 4 epochs only (no wall-clock ones), so the history runs ahead of them.
    let mut child = ae_spawn(
        &r,
        &[
            "--epochs",
            "100000",
            "--checkpoint-every",
            "4",
            "--checkpoint-minutes",
            "0",
        ],
    );
    let (h, e) = kill_ahead_of_checkpoint(
        &mut child,
        &r.join("history.jsonl"),
        &r.join("checkpoint.safetensors"),
    );
    // The history holds every epoch done, in order; the checkpoint is a few epochs behind.
    assert_eq!(h, (1..=h.len() as u64).collect::<Vec<_>>());
    assert_eq!(e % 4, 0);
    let redone = h.len() as u64 - e;
    assert!(redone > 0);
    let killed_lines: Vec<String> = std::fs::read_to_string(r.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    // A new run there without --force: refused, pointing at --resume.
    let o = run(&[&AE[..], &["--quiet", "--out", s(&r)]].concat());
    assert_user_error(&o, &["stopped before it finished", "--resume", "--force"]);
    // Resumed to a total of E epochs: says what it redoes, records it, and gives the bits of an
    // uninterrupted run of E epochs.
    let total = (h.len() + 3).to_string();
    let o = run(&[
        "fit",
        "ae",
        "--data",
        "swimmer",
        "--resume",
        s(&r),
        "--epochs",
        &total,
    ]);
    assert_ok(&o);
    let err = stderr(&o);
    let line = format!("from its checkpoint at epoch {e}: {redone} epoch");
    assert!(err.contains(&line), "{err}");
    let text = read_json(&r.join("run.json")).to_string();
    assert!(text.contains(&format!("\"redone_epochs\":{redone}")), "{text}");
    assert!(text.contains(&format!("\"resumed_from_epoch\":{e}")), "{text}");
    let straight = dir.join("straight");
    let o = run(&[&AE[..], &["--quiet", "--out", s(&straight), "--epochs", &total]].concat());
    assert_ok(&o);
    let tensors = |run: &Path| {
        partlearn::io::read_safetensors(&run.join("model.safetensors"))
            .unwrap()
            .0
    };
    assert!(tensors(&r) == tensors(&straight), "the resumed model differs");
    assert_eq!(history_without_seconds(&r), history_without_seconds(&straight));
    // The lines appended while training are those the end-of-run writer writes (byte for byte,
    // the checkpoint's epochs keep their recorded seconds).
    let final_text = std::fs::read_to_string(r.join("history.jsonl")).unwrap();
    let final_lines: Vec<&str> = final_text.lines().collect();
    assert_eq!(final_lines[..e as usize], killed_lines[..e as usize]);
    // Nothing hidden left beside or in the run.
    assert_eq!(hidden_entries(&dir), Vec::<PathBuf>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wall_clock_checkpoints_are_on_by_default_and_can_be_turned_off() {
    let dir = temp_dir("ae-minutes");
    // A wall-clock interval of 0.06 s: a checkpoint appears with no --checkpoint-every.
    let r = dir.join("timed");
    let mut child = ae_spawn(&r, &["--epochs", "100000", "--checkpoint-minutes", "0.001"]);
    let ck = r.join("checkpoint.safetensors");
    wait_until("a wall-clock checkpoint", || ck.is_file());
    std::thread::sleep(Duration::from_millis(300));
    kill9(&mut child);
    let e = checkpoint_epoch(&ck);
    assert!(e > 0 || partlearn::io::read_safetensors(&ck).is_ok());
    // Off: training that ran for a while has its history on disk but no checkpoint.
    let off = dir.join("off");
    let mut child = ae_spawn(&off, &["--epochs", "100000", "--checkpoint-minutes", "0"]);
    wait_until("history", || {
        history_iters(&off.join("history.jsonl"), "epoch").len() >= 20
    });
    kill9(&mut child);
    assert!(!off.join("checkpoint.safetensors").exists());
    // A bad interval is a one-line error.
    let o = run(&[
        &AE[..],
        &[
            "--quiet",
            "--out",
            s(&dir.join("x")),
            "--checkpoint-minutes",
            "-1",
        ],
    ]
    .concat());
    assert_user_error(&o, &["--checkpoint-minutes"]);
    // --force replaces a killed training's folder and leaves no stage behind.
    assert_ok(&run(&[
        &AE[..],
        &["--quiet", "--out", s(&off), "--epochs", "2", "--force"],
    ]
    .concat()));
    assert!(off.join("run.json").is_file());
    let left: Vec<_> = hidden_entries(&dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".off."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run replacing a finished one (--force) keeps its state in its stage: killed, the old run is
/// untouched, and --resume takes the killed stage over (the newer work) instead of the old run.
#[test]
fn resume_takes_over_the_stage_of_a_killed_replacement() {
    let dir = temp_dir("ae-stage");
    let r = dir.join("run");
    assert_ok(&run(
        &[&AE[..], &["--quiet", "--out", s(&r), "--epochs", "2"]].concat()
    ));
    let before = snapshot(&r);
    let mut child = ae_spawn(
        &r,
        &[
            "--epochs",
            "100000",
            "--checkpoint-every",
            "5",
            "--checkpoint-minutes",
            "0",
            "--force",
            "--seed",
            "7",
        ],
    );
    let stage = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".run.partial-")
            })
    };
    wait_until("the stage", || stage().is_some());
    let st = stage().unwrap();
    let (h, e) = kill_ahead_of_checkpoint(
        &mut child,
        &st.join("history.jsonl"),
        &st.join("checkpoint.safetensors"),
    );
    assert_eq!(snapshot(&r), before, "the old run changed");
    let total = (h.len() + 2).to_string();
    let o = run(&[
        "fit",
        "ae",
        "--data",
        "swimmer",
        "--resume",
        s(&r),
        "--epochs",
        &total,
    ]);
    assert_ok(&o);
    assert!(
        stderr(&o).contains(&format!("at epoch {e}: {} epoch", h.len() as u64 - e)),
        "{}",
        stderr(&o)
    );
    let rec = read_json(&r.join("run.json"));
    assert_eq!(rec["seed"], 7, "resumed the old run, not the killed one");
    assert_eq!(
        history_iters(&r.join("history.jsonl"), "epoch").len(),
        h.len() + 2
    );
    assert!(hidden_entries(&dir).is_empty(), "{:?}", hidden_entries(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

/// NMF keeps its history in the run folder (a new run in a free folder; else in the stage) once
/// it ran `--history-after` seconds: a killed fit leaves the iterations it did there, which a
/// new fit into the same folder replaces without --force (there is no checkpoint to resume);
/// a finished one's history.jsonl is the end-of-run writer's.
#[test]
fn a_long_nmf_fit_keeps_its_history_as_it_goes() {
    let dir = temp_dir("nmf-history");
    let r = dir.join("run");
    let mut child = fit_swimmer(&r)
        .args([
            "-k",
            "10",
            "--max-iter",
            "100000000",
            "--tol",
            "0",
            "--history-after",
            "0",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let staged = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path().join("history.jsonl"))
            .find(|p| p.is_file())
    };
    wait_until("the staged history", || {
        staged().is_some_and(|p| history_iters(&p, "iter").len() >= 5)
    });
    kill9(&mut child);
    let iters = history_iters(&staged().unwrap(), "iter");
    assert_eq!(iters, (0..iters.len() as u64).collect::<Vec<_>>());
    let left: Vec<_> = std::fs::read_dir(&r)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["history.jsonl"]);
    // A finished fit that kept its history as it went: the file is the one the run records.
    assert_ok(&fit_nmf(&r, "5", &["--history-after", "0"]));
    let n_iter = read_json(&r.join("run.json"))["n_iter"].as_u64().unwrap();
    assert_eq!(
        history_iters(&r.join("history.jsonl"), "iter"),
        (0..=n_iter).collect::<Vec<_>>()
    );
    assert!(hidden_entries(&dir).is_empty(), "{:?}", hidden_entries(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Fault injection.

/// Hidden entries (stages, temp files, set-aside runs) under `dir`, the sweep mark excepted.
fn hidden_entries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name != ".partlearn-sweep" {
                found.push(e.path());
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
        }
    }
    found
}

/// Every file under `path` (or `path` itself) with a hash of its bytes.
fn snapshot(path: &Path) -> BTreeMap<String, u64> {
    use std::hash::{Hash, Hasher};
    let mut out = BTreeMap::new();
    let mut todo = vec![path.to_path_buf()];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                todo.push(e.path());
            }
        } else if p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            // A temp file of the killed write: checked to be gone after the rerun.
        } else if let Ok(bytes) = std::fs::read(&p) {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            let rel = p.strip_prefix(path).unwrap().to_string_lossy().into_owned();
            out.insert(rel, h.finish());
        }
    }
    out
}

/// Whether the file at `p` is whole: JSON parses, every JSON line parses, a model reads, a page
/// or chart ends, a PNG has its end chunk, a table ends with a newline.
fn whole_file(p: &Path) -> bool {
    let Ok(bytes) = std::fs::read(p) else {
        return false;
    };
    let name = p.to_string_lossy();
    if name.ends_with(".json") {
        serde_json::from_slice::<serde_json::Value>(&bytes).is_ok()
    } else if name.ends_with(".jsonl") {
        bytes.ends_with(b"\n")
            && bytes
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .all(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok())
    } else if name.ends_with(".safetensors") {
        partlearn::io::read_safetensors(p).is_ok()
    } else if name.ends_with(".png") {
        bytes.starts_with(b"\x89PNG") && bytes.ends_with(&[0xAE, 0x42, 0x60, 0x82])
    } else if name.ends_with(".svg") {
        String::from_utf8_lossy(&bytes).trim_end().ends_with("</svg>")
    } else if name.ends_with(".html") {
        String::from_utf8_lossy(&bytes).trim_end().ends_with("</html>")
    } else if name.ends_with(".csv") || name.ends_with(".tsv") {
        bytes.ends_with(b"\n")
    } else {
        !bytes.is_empty()
    }
}

/// How a command writes its output, for the "old or whole new, never mixed" check.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Unit {
    /// One run folder (fit): the whole folder is the old one or a whole new one.
    Folder,
    /// Files added to a run folder (eval): each file is old or whole.
    EachFile,
    /// A sweep folder: each point folder is old or a whole new one, each table old or whole.
    EachEntry,
    /// One file (report).
    File,
}

struct Scenario {
    name: &'static str,
    args: Vec<String>,
    /// The arguments of the rerun after a kill (the same command, with --force or --resume).
    rerun: Vec<String>,
    target: PathBuf,
    unit: Unit,
    /// Seconds the command takes (the kills land within that).
    seconds: f64,
}

/// `old` → `new` of one output unit is fine: unchanged, or replaced whole.
fn unit_ok(unit: Unit, target: &Path, old: &BTreeMap<String, u64>) -> Result<&'static str, String> {
    let new = snapshot(target);
    if !target.exists() {
        return Err(format!("{} is missing", target.display()));
    }
    if &new == old {
        return Ok("old kept");
    }
    let whole = |rel: &String| {
        whole_file(&if rel.is_empty() {
            target.to_path_buf()
        } else {
            target.join(rel)
        })
    };
    match unit {
        Unit::File => whole(&String::new())
            .then_some("replaced")
            .ok_or("torn file".into()),
        Unit::Folder => {
            // A whole new run: every file whole, the files of a run there, and nothing of the old
            // run's evaluation carried over (a new run is not evaluated yet).
            let core = ["run.json", "model.safetensors", "history.jsonl"];
            let complete = core.iter().all(|f| new.contains_key(*f)) && new.keys().all(whole);
            let carried = ["metrics.json", "figures/eval_panel.png"]
                .iter()
                .any(|f| new.get(*f).is_some_and(|h| old.get(*f) == Some(h)));
            if complete && !carried {
                Ok("replaced")
            } else {
                Err(format!("mixed folder: {:?} vs old {:?}", new.keys(), old.keys()))
            }
        }
        Unit::EachFile | Unit::EachEntry => {
            if let Some(bad) = new.keys().find(|k| !whole(k)) {
                return Err(format!("torn file {bad}"));
            }
            if unit == Unit::EachEntry {
                // A point folder holds the same files as before (a run is never half-written).
                let point = |k: &String| k.split_once('/').map(|(p, _)| p.to_string());
                let points: std::collections::BTreeSet<String> = new.keys().filter_map(point).collect();
                for p in points {
                    let names = |m: &BTreeMap<String, u64>| {
                        m.keys()
                            .filter(|k| point(k).as_deref() == Some(&p))
                            .cloned()
                            .collect::<Vec<_>>()
                    };
                    let (n, o) = (names(&new), names(old));
                    if !o.is_empty() && n != o {
                        return Err(format!("mixed point {p}: {n:?} vs old {o:?}"));
                    }
                }
            }
            Ok("partly replaced")
        }
    }
}

/// A small seeded generator (xorshift64*) for the kill delays.
struct Xorshift(u64);

impl Xorshift {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|a| a.to_string()).collect()
}

fn run_args(args: &[String]) -> std::process::Output {
    partlearn().args(args).output().unwrap()
}

/// Times `args` (which must succeed).
fn timed(args: &[String]) -> f64 {
    let t = Instant::now();
    let o = run_args(args);
    assert_ok(&o);
    t.elapsed().as_secs_f64()
}

/// The commands under fire, with their outputs made once so that each kill has an old output
/// to keep.
fn scenarios(dir: &Path) -> Vec<Scenario> {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (nmf, ae, rep, sweep) = (p("nmf"), p("ae"), p("report.html"), p("sweep"));
    let fit_nmf = strings(&[
        "fit",
        "nmf",
        "--data",
        "swimmer",
        "-k",
        "8",
        "--max-iter",
        "60",
        "--tol",
        "0",
        "--quiet",
        "--force",
        "--out",
        &nmf,
    ]);
    let mut fit_ae = strings(&AE);
    fit_ae.extend(strings(&[
        "--epochs",
        "30",
        "--checkpoint-every",
        "3",
        "--quiet",
        "--force",
        "--out",
        &ae,
    ]));
    let resume = strings(&[
        "fit", "ae", "--data", "swimmer", "--resume", &ae, "--epochs", "RESUME", "--quiet",
    ]);
    let eval = strings(&[
        "eval", &nmf, "--data", "swimmer", "--no-svm", "--force", "--quiet",
    ]);
    let report = strings(&["report", &nmf, &ae, "--out", &rep, "--force", "--quiet"]);
    let sweep_args = strings(&[
        "sweep",
        "nmf",
        "--data",
        "swimmer",
        "-k",
        "2,3",
        "--max-iter",
        "20",
        "--no-svm",
        "--quiet",
        "--force",
        "--out",
        &sweep,
    ]);
    let mut out = Vec::new();
    let mut add = |name, args: Vec<String>, rerun: Option<Vec<String>>, target: &str, unit| {
        let seconds = if name == "fit ae --resume" {
            0.0
        } else {
            timed(&args)
        };
        out.push(Scenario {
            name,
            rerun: rerun.unwrap_or_else(|| args.clone()),
            args,
            target: PathBuf::from(target),
            unit,
            seconds,
        });
    };
    add("fit nmf", fit_nmf, None, &nmf, Unit::Folder);
    add("fit ae", fit_ae, None, &ae, Unit::Folder);
    add("eval", eval, None, &nmf, Unit::EachFile);
    add("report", report, None, &rep, Unit::File);
    add("sweep", sweep_args, None, &sweep, Unit::EachEntry);
    add("fit ae --resume", resume, None, &ae, Unit::Folder);
    out
}

/// The epochs the run in `ae` has done (the `--resume` scenario asks for 20 more).
fn ae_epochs(ae: &Path) -> usize {
    history_iters(&ae.join("history.jsonl"), "epoch").len()
}

/// SIGKILLs the commands of [`scenarios`] in turn `kills` times, each after a seeded random
/// delay within the command's duration (as its last run took), then reruns it; checks that each output is its old
/// self or replaced whole after the kill, and that the rerun succeeds and leaves nothing hidden.
/// Returns (kills, counts of what each kill found, failures).
fn kill_campaign(kills: usize, seed: u64) -> (usize, BTreeMap<String, usize>, Vec<String>) {
    let dir = temp_dir(&format!("kill-campaign-{seed}"));
    let mut all = scenarios(&dir);
    // The resume scenario takes as long as 20 epochs of the AE scenario's 30.
    let ae_secs = all[1].seconds;
    all[5].seconds = ae_secs * 20.0 / 30.0;
    let mut rng = Xorshift(seed.max(1));
    let mut phases: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for i in 0..kills {
        let which = i % all.len();
        let sc = &all[which];
        let epochs = (ae_epochs(&dir.join("ae")) + 20).to_string();
        let fill = |v: &[String]| {
            v.iter()
                .map(|a| if a == "RESUME" { epochs.clone() } else { a.clone() })
                .collect::<Vec<_>>()
        };
        let (args, rerun) = (fill(&sc.args), fill(&sc.rerun));
        let old = snapshot(&sc.target);
        let delay = rng.next_f64() * sc.seconds;
        let mut child = partlearn()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs_f64(delay));
        let finished = child.try_wait().unwrap().is_some();
        kill9(&mut child);
        let stage_left = !hidden_entries(&dir).is_empty();
        let phase = match unit_ok(sc.unit, &sc.target, &old) {
            Ok(what) if finished => format!("{}: finished before the kill ({what})", sc.name),
            Ok(what) => format!(
                "{}: killed, {what}{}",
                sc.name,
                if stage_left {
                    ", stage or temp file left"
                } else {
                    ""
                }
            ),
            Err(e) => {
                failures.push(format!("kill {i} ({}, {delay:.3} s): {e}", sc.name));
                format!("{}: FAILED", sc.name)
            }
        };
        *phases.entry(phase).or_default() += 1;
        let t = Instant::now();
        let o = run_args(&rerun);
        let rerun_seconds = t.elapsed().as_secs_f64();
        let done_already = stderr(&o).contains("has done all its");
        if !o.status.success() && !done_already {
            failures.push(format!(
                "kill {i} ({}, {delay:.3} s): rerun failed: {}",
                sc.name,
                stderr(&o)
            ));
        }
        let left = hidden_entries(&dir);
        if !left.is_empty() {
            failures.push(format!(
                "kill {i} ({}, {delay:.3} s): left after the rerun: {left:?}",
                sc.name
            ));
        }
        if o.status.success() {
            // The next kill of this command lands within the time it takes now.
            all[which].seconds = rerun_seconds;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    (kills, phases, failures)
}

fn report_campaign(kills: usize, seed: u64) {
    let t = Instant::now();
    let (n, phases, failures) = kill_campaign(kills, seed);
    eprintln!("{n} kills in {:.1} s (seed {seed}):", t.elapsed().as_secs_f64());
    for (phase, count) in &phases {
        eprintln!("  {count:4}  {phase}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn random_kills_never_leave_a_mixed_output_or_a_stage() {
    report_campaign(6, 2026);
}

/// 120 kills (20 per command); `scripts/test --long` runs it (a few minutes). Seed:
/// `PARTLEARN_KILL_SEED` (default 24).
#[test]
#[ignore = "long: scripts/test --long"]
fn many_random_kills_never_leave_a_mixed_output_or_a_stage() {
    let seed = std::env::var("PARTLEARN_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let kills = std::env::var("PARTLEARN_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    report_campaign(kills, seed);
}
