"""partlearn.datasets (the CLI's data specs as numpy arrays) and the benchmark script."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import partlearn
from partlearn import bench
from partlearn.datasets import load, load_fashion_mnist

REPO = Path(__file__).resolve().parents[3]
FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
HAVE_FMNIST = FMNIST.exists() or bool(os.environ.get("PARTLEARN_DATA_DIR"))
needs_fmnist = pytest.mark.skipif(
    not HAVE_FMNIST and not os.environ.get("PARTLEARN_REQUIRE_DATA"),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)


def test_generated_sets_have_their_shapes_and_labels():
    s = load("swimmer")
    assert s.data.shape == (256, 1024) and s.image_shape == (32, 32) and s.data.dtype == np.float32
    assert set(np.unique(s.data)) <= {0.0, 1.0}
    t = load("toy-hierarchy:3", dtype=np.float64)
    assert t.data.dtype == np.float64 and t.target.shape == (t.data.shape[0],)
    assert set(t.extra_labels) == {"labels9", "labels4", "labels2"}
    # The seed changes the data; the same seed gives the same bits.
    assert not np.array_equal(t.data, load("toy-hierarchy:4", dtype=np.float64).data)
    assert np.array_equal(t.data, load("toy-hierarchy:3", dtype=np.float64).data)


def test_npy_files_and_selection(tmp_path):
    X = np.arange(60, dtype=np.float64).reshape(12, 5) / 60
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", np.arange(12) % 3)
    d = load(tmp_path / "x.npy", labels=tmp_path / "y.npy", dtype=np.float64)
    assert np.array_equal(d.data, X) and list(d.target) == [0, 1, 2] * 4
    Xf, yf = load(tmp_path / "x.npy", labels=tmp_path / "y.npy", first=4, return_X_y=True)
    assert Xf.dtype == np.float32 and np.array_equal(Xf, X[:4].astype(np.float32)) and list(yf) == [0, 1, 2, 0]
    sub = load(tmp_path / "x.npy", subset=5, random_state=1, dtype=np.float64).data
    rows = [int(np.nonzero((X == r).all(axis=1))[0][0]) for r in sub]
    assert rows == sorted(rows) and len(set(rows)) == 5


def test_bad_specs_raise_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="first"):
        load("swimmer", first=0)
    with pytest.raises(ValueError, match="at most 256"):
        load("swimmer", first=300)
    with pytest.raises((ValueError, OSError), match="no-such"):
        load(tmp_path / "no-such.npy")
    with pytest.raises(ValueError, match="dtype"):
        load("swimmer", dtype=np.int32)
    with pytest.raises(ValueError, match="subset"):
        load_fashion_mnist("validation")


@needs_fmnist
def test_fashion_mnist_matches_the_cli_reading():
    d = load_fashion_mnist("test", first=50)
    assert d.data.shape == (50, 784) and d.image_shape == (28, 28)
    assert d.data.min() >= 0 and d.data.max() <= 1
    assert list(d.target[:5]) == [9, 2, 1, 1, 6]  # the published first test labels
    assert d.target_names[9] == "Ankle boot"


def test_bench_runs_all_three_and_reports_json(capsys):
    cli = REPO / "target" / "debug" / "partlearn"
    args = ["--data", "swimmer", "-k", "8", "--target", "0.5", "--max-iter", "40", "--sklearn-chunk", "2",
            "--wrapper-iters", "3", "--threads", "1", "--compress", "--json"]
    if cli.exists():
        args += ["--cli", str(cli)]
    assert bench.main(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["partlearn"]["iterations_to_target"] >= 1 and r["partlearn"]["seconds_to_target"] > 0
    assert r["sklearn"]["rel_error"] <= 0.5 and r["sklearn"]["iterations_to_target"] % 2 == 0
    assert r["speedup"] > 0
    # The compressed fit reaches the target too.
    assert r["partlearn+c"]["seconds_to_target"] > 0 and r["speedup_compressed"] > 0
    if cli.exists():
        assert r["cli"]["iterations"] == 3 and r["python"]["iterations"] == 3
        assert np.isfinite(r["wrapper_overhead"])


def test_bench_on_a_sparse_file_times_both_libraries_in_their_own_processes(tmp_path, capsys):
    import scipy.sparse as sp

    X = sp.random(300, 200, density=0.05, format="csr", random_state=0) * 5
    path = tmp_path / "x.npz"
    sp.save_npz(path, X)
    assert bench.main(["--sparse", str(path), "-k", "4", "--threads", "1", "--iters", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["nnz"] == X.nnz and r["n_samples"] == 300
    runs = {(x["library"], x["solver"]): x for x in r["runs"]}
    assert set(runs) == {("partlearn", "cd"), ("sklearn", "cd"), ("partlearn", "mu"), ("sklearn", "mu")}
    for x in runs.values():
        # scikit-learn's time is a difference of two fits: on data this small, noise of either sign.
        assert np.isfinite(x["seconds_per_iter"]) and x["peak_memory_mib"] > 0 and 0 < x["rel_error"] < 1
    assert runs[("partlearn", "cd")]["seconds_per_iter"] > 0
    assert np.isfinite(r["speedup_cd"]) and np.isfinite(r["speedup_mu"])
    assert bench.main(["--sparse", str(path), "-k", "4", "--iters", "1", "--no-sklearn"]) == 0
    assert "speed-up" not in capsys.readouterr().out


def _has_torch():
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _ae_data(tmp_path):
    X = np.random.default_rng(0).random((300, 784), dtype=np.float32)
    path = tmp_path / "x.npy"
    np.save(path, X)
    return X, path


def test_bench_times_partlearns_shallow_ae_through_the_cli(tmp_path):
    from partlearn import _bench_torch

    cli = REPO / "target" / "debug" / "partlearn"
    if not cli.exists():
        pytest.skip("the CLI is not built (cargo build -p partlearn-cli)")
    _, path = _ae_data(tmp_path)
    r = _bench_torch.partlearn_epoch(str(cli), str(path), 200, 8, 1, 1)
    assert r["seconds_per_epoch"] > 0 and r["gemm_bound"] > 0


@pytest.mark.skipif(not _has_torch(), reason="PyTorch is not installed (pip install torch)")
def test_bench_torch_ae_alternates_partlearn_and_pytorch(tmp_path, capsys):
    cli = REPO / "target" / "debug" / "partlearn"
    if not cli.exists():
        pytest.skip("the CLI is not built (cargo build -p partlearn-cli)")
    _, path = _ae_data(tmp_path)
    args = ["--torch-ae", "--data", str(path), "-k", "8", "--threads", "2", "--epochs", "1",
            "--rounds", "1", "--cli", str(cli), "--json"]
    assert bench.main(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert [row["threads"] for row in r["rows"]] == [1, 2]
    for row in r["rows"]:
        assert row["partlearn_s_per_epoch"] > 0 and row["torch_s_per_epoch"] > 0
        assert len(row["torch_epochs_s"]) == 1 and row["ratio"] > 0


@pytest.mark.skipif(_has_torch(), reason="PyTorch is installed")
def test_bench_torch_ae_without_pytorch_says_how_to_install_it(tmp_path, capsys):
    _, path = _ae_data(tmp_path)
    with pytest.raises(SystemExit) as e:
        bench.main(["--torch-ae", "--data", str(path)])
    assert e.value.code == 2
    assert "--torch-ae needs PyTorch: pip install torch" in capsys.readouterr().err


def _has_neuralnmf():
    import importlib.util

    return importlib.util.find_spec("NeuralNMF") is not None


def test_bench_times_partlearns_neural_nmf_through_the_cli():
    from partlearn import _bench_neural

    cli = REPO / "target" / "debug" / "partlearn"
    if not cli.exists():
        pytest.skip("the CLI is not built (cargo build -p partlearn-cli)")
    r = _bench_neural.partlearn_run(str(cli), "toy-hierarchy", (9, 4, 2), 20)
    assert r["epochs"] == 20 and r["seconds"] > 0 and 0 < r["rel_error"] < 1


@pytest.mark.skipif(not _has_neuralnmf(), reason="the reference package is not installed (pip install NeuralNMF)")
def test_bench_neural_nmf_alternates_partlearn_and_the_reference(capsys):
    cli = REPO / "target" / "debug" / "partlearn"
    if not cli.exists():
        pytest.skip("the CLI is not built (cargo build -p partlearn-cli)")
    args = ["--neural-nmf", "--epochs", "50", "--ref-epochs", "3", "--rounds", "1", "--cli", str(cli), "--json"]
    assert bench.main(args) == 0
    r = json.loads(capsys.readouterr().out)
    (row,) = r["rows"]
    assert row["partlearn_s_per_epoch"] > 0 and row["reference_s_per_epoch"] > 0
    assert 0 < row["partlearn_rel_error_short"] < 1 and 0 < row["reference_rel_error_short"] < 1


@pytest.mark.skipif(_has_neuralnmf(), reason="the reference package is installed")
def test_bench_neural_nmf_without_the_reference_says_how_to_install_it(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--neural-nmf"])
    assert e.value.code == 2
    assert "--neural-nmf needs the reference package: pip install NeuralNMF" in capsys.readouterr().err
