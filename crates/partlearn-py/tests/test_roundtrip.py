"""save → load_run round trips: the class, the parameters and the fitted state come back (and
runs of the command-line tool load as the estimator that fits them)."""

import json
import os
import pickle
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

import partlearn as pl

from _partlearn_cli import run, write_data


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:150]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _same_params(a, b):
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    assert pa.keys() == pb.keys()
    for name in pa:
        assert pa[name] == pb[name] and type(pa[name]) is type(pb[name]), (name, pa[name], pb[name])


def _same_history(a, b):
    assert a.dtype == b.dtype
    for name in a.dtype.names:
        np.testing.assert_array_equal(a[name], b[name])


def test_minibatch_nmf_round_trip(X, tmp_path):
    m = pl.MiniBatchNMF(5, random_state=0, max_iter=3, batch_size=40).fit(X)
    loaded = pl.load_run(m.save(tmp_path / "run"))
    assert type(loaded) is pl.MiniBatchNMF
    _same_params(m, loaded)
    np.testing.assert_array_equal(loaded.transform(X), m.transform(X))
    assert loaded.reconstruction_err_ == m.reconstruction_err_ and loaded.n_iter_ == m.n_iter_
    _same_history(loaded.history_, m.history_)
    loaded.partial_fit(X)  # continues from the loaded components
    assert loaded.components_.shape == m.components_.shape


def test_minibatch_nmf_of_the_cli_loads_as_minibatch(X, tmp_path):
    data, _ = write_data(tmp_path, X.astype(np.float32))
    out = tmp_path / "run"
    run("fit", "nmf", "--data", data, "-k", 5, "--solver", "online", "--batch-size", 40, "--max-iter", 3,
        "--seed", 0, "--out", out, "--quiet")
    loaded = pl.load_run(out)
    assert type(loaded) is pl.MiniBatchNMF
    p = loaded.get_params()
    assert (p["n_components"], p["batch_size"], p["max_iter"], p["random_state"]) == (5, 40, 3, 0)
    np.testing.assert_allclose(loaded.transform(X.astype(np.float32)), np.load(out / "codes.npy"), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "make",
    [
        lambda: pl.NMF(5, solver="cd", random_state=0, max_iter=20),
        lambda: pl.NMF(5, solver="mu", beta_loss=1, random_state=0, max_iter=20),
        lambda: pl.NMF(5, solver="hals", extrapolate=True, random_state=0, max_iter=20),
        lambda: pl.NMF(5, solver="hals", hals_inner_max=2, random_state=0, max_iter=20),
        lambda: pl.SparseNMF(4, code_sparsity=0.6, random_state=0, max_iter=20),
        lambda: pl.HierarchicalNMF(ranks=(5, 2), max_iter=20, random_state=0),
        lambda: pl.DeepNMF(ranks=(5, 2), max_iter=20, random_state=0),
        lambda: pl.NeuralNMF(ranks=(5, 2), epochs=2, random_state=0),
        lambda: pl.SparseAutoencoder(6, image_shape=(8, 8), random_state=0, max_iter=2),
    ],
)
def test_loaded_params_equal_saved(make, X, tmp_path):
    e = make().fit(X / 16)
    loaded = pl.load_run(e.save(tmp_path / "run"))
    assert type(loaded) is type(e)
    _same_params(e, loaded)


def test_cli_nmf_extrapolate_maps_to_auto(X, tmp_path):
    loaded = pl.load_run(pl.NMF(3, random_state=0, max_iter=5).fit(X).save(tmp_path / "run"))
    options = dict(loaded._options)
    for key in ("estimator", "params", "tuple_params"):
        options.pop(key)
    assert pl.NMF._params_from_run(options)["extrapolate"] == "auto"
    options.update(solver="mu", extrapolate=True)
    assert pl.NMF._params_from_run(options)["extrapolate"] is True


@pytest.mark.parametrize("cls", [pl.HierarchicalNMF, pl.DeepNMF, pl.NeuralNMF])
def test_layer_models_fitted_state(cls, X, tmp_path):
    kw = {"epochs": 2} if cls is pl.NeuralNMF else {"max_iter": 20}
    e = cls(ranks=(5, 2), random_state=0, **kw).fit(X)
    loaded = pl.load_run(e.save(tmp_path / "run"))
    np.testing.assert_array_equal(loaded.training_codes_, e.training_codes_)
    _same_history(loaded.history_, e.history_)
    assert loaded.objective_ == pytest.approx(e.objective_) and loaded.rel_error_ == pytest.approx(e.rel_error_)
    if hasattr(e, "level_errors_"):
        assert loaded.level_errors_ == pytest.approx(e.level_errors_)


def test_ssnmf_fitted_state(X, tmp_path):
    y = load_digits().target[:150] % 3
    e = pl.SSNMF(5, max_iter=30, random_state=0).fit(X, y)
    loaded = pl.load_run(e.save(tmp_path / "run"))
    np.testing.assert_array_equal(loaded.training_codes_, e.training_codes_)
    np.testing.assert_array_equal(loaded.transduction_, e.transduction_)
    _same_history(loaded.history_, e.history_)
    assert loaded.objective_ == pytest.approx(e.objective_) and loaded.rel_error_ == pytest.approx(e.rel_error_)


def test_ssnmf_of_the_cli_has_its_transduction(X, tmp_path):
    y = load_digits().target[:150] % 3
    data, labels = write_data(tmp_path, X, y)
    out = tmp_path / "run"
    run("fit", "ssnmf", "--data", data, "--labels", labels, "-k", 5, "--max-iter", 30, "--out", out, "--quiet")
    loaded = pl.load_run(out)
    np.testing.assert_array_equal(loaded.transduction_, np.load(out / "labels_pred.npy").astype(int))
    assert np.isfinite(loaded.rel_error_) and len(loaded.history_) == loaded.n_iter_ + 1


def test_autoencoder_continues_after_load(X, tmp_path):
    e = pl.SparseAutoencoder(6, random_state=0, max_iter=20, optimizer="adam", learning_rate=0.01).fit(X / 16)
    path = e.save(tmp_path / "run")
    loaded = pl.load_run(path)
    assert loaded.image_shape_ == e.image_shape_ and loaded.loss_ == e.loss_
    _same_history(loaded.history_, e.history_)
    # With the run folder's checkpoint: the same bits as the estimator that never left memory.
    resumed = pickle.loads(pickle.dumps(e)).partial_fit(X / 16)
    loaded.partial_fit(X / 16)
    assert loaded.n_iter_ == 21
    np.testing.assert_array_equal(loaded.components_, resumed.components_)


def test_autoencoder_continues_from_weights_without_checkpoint(X, tmp_path):
    e = pl.SparseAutoencoder(6, random_state=0, max_iter=20, optimizer="adam", learning_rate=0.01).fit(X / 16)
    path = e.save(tmp_path / "run")
    os.remove(os.path.join(path, "checkpoint.safetensors"))
    loaded = pl.load_run(path).partial_fit(X / 16)
    assert loaded.n_iter_ == 21 and len(loaded.history_) == 21
    mse = lambda est: np.mean((est.inverse_transform(est.transform(X / 16)) - X / 16) ** 2)  # noqa: E731
    assert mse(loaded) < 1.2 * mse(e)  # not a restart from scratch


def test_sparse_nmf_error_at_returned_codes(X):
    e = pl.SparseNMF(4, random_state=0, max_iter=20)
    W = e.fit_transform(X)
    assert e.reconstruction_err_ == pytest.approx(np.linalg.norm(X - W @ e.components_), rel=1e-10)


def test_corrupt_history_names_file_and_line(X, tmp_path):
    path = pl.NMF(3, random_state=0, max_iter=5).fit(X).save(tmp_path / "run")
    history = os.path.join(path, "history.jsonl")
    with open(history) as f:
        lines = f.read().splitlines()
    lines[2] = lines[2][:-5]
    with open(history, "w") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"history\.jsonl, line 3: invalid JSON"):
        pl.load_run(path)
    lines[2] = json.dumps({"iter": 2})
    with open(history, "w") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"history\.jsonl.*KeyError"):
        pl.load_run(path)
