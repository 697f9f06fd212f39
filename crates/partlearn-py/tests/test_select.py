"""partlearn.select_k: the CLI's select-k from Python, same scores for the same seed."""

import numpy as np
import pytest

import partlearn
from _partlearn_cli import run, write_data


def planted(n=200, m=48, r=6, seed=5):
    rng = np.random.default_rng(seed)
    codes = 0.3 * rng.random((n, r))
    codes[np.arange(n), np.arange(n) % r] = 1 + rng.random(n)
    parts = np.zeros((r, m))
    for c in range(r):
        parts[c, c * (m // r):(c + 1) * (m // r)] = 0.5 + rng.random(m // r)
    return codes @ parts + 0.05 * rng.random((n, m))


def test_select_k_finds_the_planted_rank_and_matches_the_cli(tmp_path):
    X = planted()
    out = partlearn.select_k(X, range(4, 9), runs=4, random_state=3)
    assert list(out["k"]) == [4, 5, 6, 7, 8]
    assert out["k_silhouette"] == 6
    assert out["stop_reason"] == "converged"
    again = partlearn.select_k(X, range(4, 9), runs=4, random_state=3)
    np.testing.assert_array_equal(out["silhouette"], again["silhouette"])
    # The command line gives the same scores for the same data (as float64) and seed.
    x_path, _ = write_data(tmp_path, X, None)
    run("select-k", "--data", x_path, "-k", "4..8", "--runs", "4", "--seed", "3", "--dtype", "f64",
        "--out", tmp_path / "sel", "--quiet")
    import json
    cli = json.loads((tmp_path / "sel" / "select-k.json").read_text())
    np.testing.assert_allclose([s["cophenetic"] for s in cli["scores"]], out["cophenetic"], rtol=1e-12)
    np.testing.assert_allclose([s["rel_error"] for s in cli["scores"]], out["rel_error"], rtol=1e-12)


def test_select_k_refuses_bad_input_and_can_be_stopped():
    X = planted()
    with pytest.raises(ValueError, match="Negative values"):
        partlearn.select_k(-X, [2, 3])
    with pytest.raises(ValueError, match="runs"):
        partlearn.select_k(X, [2, 3], runs=1)
    with pytest.raises(ValueError, match="ks"):
        partlearn.select_k(X, [0, 3])
    out = partlearn.select_k(X, [2, 3, 4], runs=2, callback=lambda rec: False)
    assert out["stop_reason"] == "interrupted" and len(out["k"]) == 0


def test_select_k_cross_validation_finds_the_planted_rank_and_matches_the_cli(tmp_path):
    X = planted()
    out = partlearn.select_k(X, range(4, 9), runs=2, solver="anls", holdout=0.1, replicates=3, random_state=1)
    assert out["k_cv"] == 6
    assert out["cv_error"].shape == (5,) and np.all(out["cv_error_std"] >= 0)
    assert out["cv_error"][1] > 1.5 * out["cv_error"][2]  # k = 5 against the rank 6
    x_path, _ = write_data(tmp_path, X, None)
    run("select-k", "--data", x_path, "-k", "4..8", "--runs", "2", "--solver", "anls", "--holdout", "0.1",
        "--replicates", "3", "--seed", "1", "--dtype", "f64", "--out", tmp_path / "sel", "--quiet")
    import json
    cli = json.loads((tmp_path / "sel" / "select-k.json").read_text())
    np.testing.assert_allclose([s["cv_error"] for s in cli["scores"]], out["cv_error"], rtol=1e-12)
    assert cli["k_cv"] == 6
    with pytest.raises(ValueError, match="holdout"):
        partlearn.select_k(X, [2, 3], holdout=0.8)
    assert "k_cv" not in partlearn.select_k(X, [2, 3], runs=2)
