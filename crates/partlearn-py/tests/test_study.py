"""``partlearn.reproduce_study`` / ``load_study``: the report's study through the command-line
tool (which ``cargo test`` builds), read back into Python."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import partlearn
from _partlearn_cli import cli_path

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_fmnist = pytest.mark.skipif(
    not (FMNIST.exists() or os.environ.get("PARTLEARN_DATA_DIR")) and not os.environ.get("PARTLEARN_REQUIRE_DATA"),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)

SMALL = dict(first=300, eval_first=200, penalties=["kl"], beta=[0.001], p=0.05, asym=False,
             epochs=1, n_threads=2, verbose=False)


@needs_fmnist
def test_a_small_study_runs_from_python_reads_back_and_resumes(tmp_path):
    out = tmp_path / "study"
    study = partlearn.reproduce_study(out, executable=cli_path(), **SMALL)
    ids = [pt["id"] for pt in study["points"]]
    assert ids[:2] == ["sparse-nmf-sH0.6", "ae-unconstrained"] and len(ids) == 3, ids
    assert ids[2].startswith("ae-kl") and Path(study["page"]).is_file()
    for pt in study["points"]:
        metrics = json.loads((Path(pt["run"]) / "metrics.json").read_text())
        assert pt["reconstruction_mse"] == pytest.approx(metrics["reconstruction"]["mse"], rel=1e-12)
        assert pt["hoyer"] == pytest.approx(metrics["hoyer"]["mean"], rel=1e-12)
        assert pt["svm_accuracy"] == pytest.approx(metrics["svm"]["mean_accuracy"], rel=1e-12)
        assert pt["metrics"]["n_samples"] == 200
    kl = study["points"][2]
    assert (kl["model"], kl["penalty"], kl["beta"], kl["p"], kl["epochs"]) == ("ae", "kl", 0.001, 0.05, 1)
    # A point's run folder is an ordinary run: its model encodes the images it was measured on.
    model = partlearn.load_run(kl["run"])
    X = partlearn.datasets.load_fashion_mnist("test", first=20).data
    assert model.transform(X).shape == (20, model.n_components)
    # Run again with the same settings: every point is kept, nothing is trained again.
    again = partlearn.reproduce_study(out, executable=cli_path(), **SMALL)
    assert [pt["fit_seconds"] for pt in again["points"]] == [pt["fit_seconds"] for pt in study["points"]]
    assert partlearn.load_study(out)["points"][1]["metrics"] == study["points"][1]["metrics"]


def test_bad_settings_and_missing_pieces_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="budget must be 'fast' or 'full'"):
        partlearn.reproduce_study(tmp_path / "s", budget="quick", executable=cli_path())
    with pytest.raises(ValueError, match="beta must not be empty"):
        partlearn.reproduce_study(tmp_path / "s", beta=[], executable=cli_path())
    with pytest.raises(FileNotFoundError, match="PARTLEARN_CLI"):
        partlearn.reproduce_study(tmp_path / "s", executable=tmp_path / "no-such-binary")
    # The tool's own refusal comes back as its one-line message.
    with pytest.raises(RuntimeError, match="penalties"):
        partlearn.reproduce_study(tmp_path / "s", penalties=["l1"], executable=cli_path(), verbose=False)
    with pytest.raises(FileNotFoundError, match="not a study's folder"):
        partlearn.load_study(tmp_path)


def _fake_tool(tmp_path, stderr, code):
    """A stand-in for the command-line tool that prints ``stderr`` and exits with ``code``."""
    path = tmp_path / "fake-partlearn"
    path.write_text(f"#!/bin/sh\nprintf '{stderr}' >&2\nexit {code}\n")
    path.chmod(0o755)
    return path


def test_the_tools_interruption_and_progress_reach_python(tmp_path, capfd):
    # Ctrl-C in the tool (exit 130, page of the evaluated points written) is a KeyboardInterrupt.
    fake = _fake_tool(tmp_path, "[1/3] sparse-nmf-sH0.6: fitting sparse NMF\\ninterrupted\\n", 130)
    with pytest.raises(KeyboardInterrupt, match="run it again to continue"):
        partlearn.reproduce_study(tmp_path / "s", executable=fake)
    # Its progress is passed through as it comes when verbose, and not otherwise.
    assert "[1/3] sparse-nmf-sH0.6: fitting sparse NMF" in capfd.readouterr().err
    fake = _fake_tool(tmp_path, "progress\\nerror: --out: not a study folder\\n", 2)
    with pytest.raises(RuntimeError, match="^error: --out: not a study folder$"):
        partlearn.reproduce_study(tmp_path / "s", executable=fake, verbose=False)
    assert "progress" not in capfd.readouterr().err
