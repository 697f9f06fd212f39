"""The command-line tool for the tests that move runs between it and Python: its path
(``PARTLEARN_CLI``, else ``target/debug/partlearn`` of this repository, which ``cargo test`` and
``cargo build -p partlearn-cli`` build) and small image data sets written as .npy files."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]


def cli_path():
    path = Path(os.environ.get("PARTLEARN_CLI") or REPO / "target" / "debug" / "partlearn")
    if not path.is_file():
        pytest.fail(
            f"the partlearn command-line tool is not built at {path}: run `cargo build -p partlearn-cli` "
            "(or set PARTLEARN_CLI to the binary)"
        )
    return path


def run(*args):
    """Runs ``partlearn args...``; fails the test with its stderr when it fails."""
    out = subprocess.run([str(cli_path()), *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"partlearn {' '.join(map(str, args))} failed ({out.returncode}): {out.stderr}")
    return out.stdout


def run_json(*args):
    return json.loads(run(*args, "--json"))


def bars(n=90, side=6, seed=0):
    """``n`` images of ``side × side`` pixels, each the sum of two random bars (rows or columns)
    with random intensities, and labels (0: the first bar is a row, 1: a column)."""
    rng = np.random.RandomState(seed)
    X = np.zeros((n, side, side))
    y = np.zeros(n, dtype=np.int64)
    for i in range(n):
        for b in range(2):
            j = rng.randint(2 * side)
            v = 0.5 + 0.5 * rng.rand()
            if j < side:
                X[i, j, :] = np.maximum(X[i, j, :], v)
            else:
                X[i, :, j - side] = np.maximum(X[i, :, j - side], v)
            if b == 0:
                y[i] = int(j >= side)
    return X, y


def write_data(folder, X, y=None, name="x"):
    """``X`` (and ``y``) as .npy files in ``folder``; returns their paths."""
    x_path = Path(folder) / f"{name}.npy"
    np.save(x_path, X)
    y_path = None
    if y is not None:
        y_path = Path(folder) / f"{name}_labels.npy"
        np.save(y_path, y)
    return x_path, y_path


def strip_run_specific(metrics):
    """metrics.json without what depends on the run rather than the model and data: the data
    set's name and the timings."""
    m = dict(metrics)
    m.pop("seconds")
    m.pop("data")
    return m


def read_metrics(run_dir):
    return json.loads((Path(run_dir) / "metrics.json").read_text())
