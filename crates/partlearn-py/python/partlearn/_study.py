"""The report's study from Python: ``reproduce_study`` runs ``partlearn reproduce
part-based-study`` (the command-line tool orchestrates the study: every point is a ``fit`` and an
``eval`` run folder, resumable) and ``load_study`` reads a study's folder back."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

_FLOATS = ("p", "beta", "reconstruction_mse", "hoyer", "max_approx", "svm_accuracy", "svm_std",
           "fit_seconds", "eval_seconds")


def _executable(executable):
    """The command-line tool: ``executable``, else ``$PARTLEARN_CLI``, else ``partlearn`` on the
    PATH."""
    path = executable or os.environ.get("PARTLEARN_CLI") or shutil.which("partlearn")
    if not path or not Path(path).is_file():
        raise FileNotFoundError(
            "the study runs through the partlearn command-line tool, which was not found"
            + (f" at {path}" if path else " on the PATH")
            + ": build it with `cargo build --release -p partlearn-cli` and put target/release on "
            "the PATH, set PARTLEARN_CLI to the binary, or pass executable=..."
        )
    return str(path)


def _csv_list(name, values):
    if values is None:
        return []
    if isinstance(values, (str, int, float)):
        values = [values]
    values = [str(v) for v in values]
    if not values:
        raise ValueError(f"{name} must not be empty; leave it None for the study's default")
    return [f"--{name}", ",".join(values)]


def reproduce_study(out="runs/part-based-study", *, budget="fast", epochs=None, asym_epochs=None,
                    penalties=None, beta=None, p=None, asym=True, data="fashion-mnist:train",
                    first=None, eval_data="fashion-mnist:test", eval_first=None, svm=True,
                    n_threads=0, random_state=0, force=False, verbose=True, executable=None):
    """Trains and evaluates the internship report's study (METHODS.md §6.7, §9) and returns it
    as :func:`load_study` does.

    Runs ``partlearn reproduce part-based-study`` with the matching flags: sparse NMF
    (s_H = 0.6), the shallow non-negative auto-encoder with each sparsity penalty over the
    report's β (and p) grid, and the asymmetric auto-encoder, each fitted and evaluated into
    ``out/points/<id>/``, with ``study.html`` (the report's table beside partlearn's, the
    metric-vs-β charts), ``study.csv`` and ``study.json``. Resumable: called again with the same
    settings it keeps every evaluated point and continues interrupted ones from their
    checkpoints; ``budget="full"`` after ``"fast"`` trains the fast points on.

    Parameters
    ----------
    out : path, default="runs/part-based-study"
    budget : {"fast", "full"}, default="fast"
        fast: 12 of the report's 500 epochs (3 for the asymmetric AE), the penalties other than
        KL at p = 0.05 only, a lighter SVM selection (under an hour on 2 cores); full: 500 epochs
        over the whole grid.
    epochs, asym_epochs : int or None
        Epochs of every auto-encoder / of the asymmetric one (override the budget's).
    penalties : list of {"kl", "l2", "eps-l1", "log"} or None
    beta, p : list of float or None
        The grids (None: the report's).
    asym : bool, default=True
        Include the asymmetric auto-encoder's rows.
    data, eval_data : str
        Training images of the auto-encoders; images every point is measured on (and sparse NMF
        is fitted on, as in the report). Named sets or .npy/.idx files.
    first, eval_first : int or None
        Use only the first N images of each.
    svm : bool, default=True
        Run the linear-SVM protocol in the evaluations.
    n_threads : int, default=0
        Threads of every fit and evaluation (0: all cores).
    random_state : int, default=0
    force : bool, default=False
        Write into an existing folder that is not a study's.
    verbose : bool, default=True
        Let the tool print its progress (to this process's stdout/stderr).
    executable : path or None
        The ``partlearn`` binary (default: ``$PARTLEARN_CLI``, else ``partlearn`` on the PATH).

    Raises
    ------
    FileNotFoundError
        The command-line tool is not found.
    RuntimeError
        The study failed (the tool's one-line error is the message); KeyboardInterrupt when it
        was interrupted (the evaluated points are kept, and the page lists them).
    """
    if budget not in ("fast", "full"):
        raise ValueError(f"budget must be 'fast' or 'full', got {budget!r}")
    args = [_executable(executable), "reproduce", "part-based-study", "--budget", budget,
            "--out", str(out), "--data", str(data), "--eval-data", str(eval_data),
            "--threads", str(int(n_threads)), "--seed", str(int(random_state))]
    for flag, value in (("epochs", epochs), ("asym-epochs", asym_epochs), ("first", first),
                        ("eval-first", eval_first)):
        if value is not None:
            args += [f"--{flag}", str(int(value))]
    args += _csv_list("penalties", penalties) + _csv_list("beta", beta) + _csv_list("p", p)
    if not asym:
        args.append("--no-asym")
    if not svm:
        args.append("--no-svm")
    if force:
        args.append("--force")
    if not verbose:
        args.append("--quiet")
    # The tool's progress and errors go to stderr: passed through as they come (when verbose),
    # the last line kept for the error.
    last = ""
    with subprocess.Popen(args, stdout=None if verbose else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            for line in proc.stderr:
                if verbose:
                    sys.stderr.write(line)
                if line.strip():
                    last = line.strip()
        except KeyboardInterrupt:
            # The tool got the same Ctrl-C: it writes the page of the evaluated points first.
            proc.wait()
            raise
        code = proc.wait()
    if code == 130:
        raise KeyboardInterrupt("the study was interrupted; run it again to continue")
    if code != 0:
        raise RuntimeError(last or f"the study failed (exit {code})")
    return load_study(out)


def load_study(path):
    """A study's folder as written by ``partlearn reproduce part-based-study``.

    Returns
    -------
    dict
        ``points``: one dict per evaluated point, in the study's order, with the columns of
        ``study.csv`` (``id``, ``model``, ``penalty``, ``p``, ``beta``, ``epochs``,
        ``reconstruction_mse``, ``hoyer``, ``max_approx``, ``svm_accuracy``, ``svm_std``,
        ``fit_seconds``, ``eval_seconds``; None where not measured), ``run`` (the point's run
        folder, for :func:`partlearn.load_run`) and ``metrics`` (its whole evaluation);
        ``page``: the path of ``study.html``.
    """
    path = Path(path)
    table, results = path / "study.csv", path / "study.json"
    if not table.is_file() or not results.is_file():
        raise FileNotFoundError(
            f"{path} is not a study's folder (no study.csv/study.json): run "
            "partlearn.reproduce_study(out=...) or `partlearn reproduce part-based-study --out DIR`"
        )
    metrics = {r["point"]["id"]: r["metrics"] for r in json.loads(results.read_text())}
    points = []
    with table.open(newline="") as f:
        for row in csv.DictReader(f):
            point = {k: (v if v != "" else None) for k, v in row.items()}
            for k in _FLOATS:
                if point[k] is not None:
                    point[k] = float(point[k])
            point["epochs"] = int(point["epochs"])
            point["run"] = str(path / point["run"])
            point["metrics"] = metrics[point["id"]]
            points.append(point)
    return {"points": points, "page": str(path / "study.html")}
