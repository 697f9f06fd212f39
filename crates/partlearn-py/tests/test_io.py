"""Models between the command-line tool and Python: `partlearn fit` runs loaded by
`partlearn.load_run` transform as `partlearn transform` does; estimators saved by `save` are
read by `partlearn transform`, `eval` and `report`; refusals and damaged files."""

import json
import pickle

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import partlearn
from partlearn import _native
from partlearn import metrics
from partlearn._base import _check_x, _ModelEstimator
from _partlearn_cli import bars, read_metrics, run, run_json, strip_run_specific, write_data

# Short fits: their ConvergenceWarnings are expected.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    X, y = bars()
    x_path, y_path = write_data(folder, X, y)
    return X, y, x_path, y_path


def cli_codes(run_dir, x_path, out, *extra):
    run("transform", run_dir, "--data", x_path, "--out", out, "--quiet", *extra)
    return np.load(out)


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_a_cli_nmf_run_loads_and_transforms_as_partlearn_transform(data, tmp_path, dtype):
    X, _, x_path, _ = data
    run_dir = tmp_path / "run"
    run("fit", "nmf", "--data", x_path, "-k", "5", "--max-iter", "30", "--solver", "anls", "--alpha-w", "0.01",
        "--l1-ratio", "0.5", "--seed", "3", "--dtype", dtype, "--out", run_dir, "--quiet")
    model = partlearn.load_run(run_dir)
    assert type(model) is partlearn.NMF
    assert (model.n_components, model.solver, model.alpha_W, model.alpha_H, model.l1_ratio) == (5, "anls", 0.01, "same", 0.5)
    np_dtype = np.float32 if dtype == "f32" else np.float64
    assert model.components_.dtype == np_dtype
    assert (model.n_components_, model.n_features_in_) == (5, 36)
    record = json.loads((run_dir / "run.json").read_text())
    assert model.n_iter_ == record["n_iter"] and len(model.history_) == record["history"]["records"]
    assert model.reconstruction_err_ == pytest.approx(record["part"]["reconstruction_err"])
    rows = X.reshape(len(X), -1).astype(np_dtype)
    expected = cli_codes(run_dir, x_path, tmp_path / "codes.npy", "--dtype", dtype)
    np.testing.assert_array_equal(model.transform(rows), expected)
    # The model file alone gives the same dictionary, with default parameters.
    bare = partlearn.load_run(run_dir / "model.safetensors")
    assert type(bare) is partlearn.NMF and bare.n_components == "auto"
    np.testing.assert_array_equal(bare.components_, model.components_)
    np.testing.assert_array_equal(bare.transform(rows), expected)


def test_a_cli_sparse_nmf_run_loads_with_its_constrained_codes(data, tmp_path):
    X, y, x_path, y_path = data
    run_dir = tmp_path / "run"
    run("fit", "sparse-nmf", "--data", x_path, "-k", "4", "--code-sparsity", "0.6", "--max-iter", "30",
        "--dtype", "f64", "--out", run_dir, "--quiet")
    model = partlearn.load_run(run_dir)
    assert type(model) is partlearn.SparseNMF
    assert (model.n_components, model.code_sparsity, model.atom_sparsity, model.max_iter) == (4, 0.6, None, 30)
    assert model.training_codes_.shape == (len(X), 4)
    # `partlearn eval --stored-codes` measures those codes, and so does evaluate(stored_codes=True).
    run("eval", run_dir, "--data", x_path, "--labels", y_path, "--dtype", "f64", "--stored-codes", "--no-svm", "--quiet")
    cli = read_metrics(run_dir)
    ours = metrics.evaluate(model, X, y, stored_codes=True, svm=False)
    assert strip_run_specific(ours) == strip_run_specific(cli)


def test_a_saved_estimator_is_a_run_the_cli_reads(data, tmp_path):
    X, y, x_path, y_path = data
    rows = X.reshape(len(X), -1)
    model = partlearn.NMF(5, solver="mu", beta_loss="kullback-leibler", max_iter=40, random_state=0).fit(rows)
    run_dir = tmp_path / "saved"
    assert model.save(run_dir) == str(run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    assert (record["format"], record["method"], record["part"]["kind"]) == (2, "nmf", "nmf")
    assert record["part"]["options"]["solver"] == "mu" and record["part"]["options"]["beta_loss"] == 1.0
    assert (record["n_iter"], record["data"]["n_samples"], record["data"]["dtype"]) == (model.n_iter_, 90, "f64")
    assert record["history"]["records"] == len(model.history_)
    # transform: the CLI encodes as the estimator does (KL: MU on the codes).
    np.testing.assert_allclose(
        cli_codes(run_dir, x_path, tmp_path / "codes.npy", "--dtype", "f64"), model.transform(rows), rtol=1e-12
    )
    # eval: the metrics are partlearn.metrics.evaluate's.
    run("eval", run_dir, "--data", x_path, "--labels", y_path, "--dtype", "f64", "--svm-grid", "2",
        "--svm-select-splits", "1", "--svm-eval-splits", "3", "--quiet")
    cli = read_metrics(run_dir)
    ours = metrics.evaluate(model, X, y, svm={"c_grid": 2, "select_splits": 1, "eval_splits": 3})
    assert strip_run_specific(ours) == strip_run_specific(cli)
    # report: the run is one of the compared runs.
    report = tmp_path / "report.html"
    run("report", run_dir, "--out", report, "--quiet")
    assert "saved" in report.read_text()


def test_save_and_load_run_round_trip(data, tmp_path):
    X, _, _, _ = data
    rows = X.reshape(len(X), -1).astype(np.float32)
    for model in (
        partlearn.NMF(4, solver="hals", alpha_W=0.001, max_iter=30, random_state=1),
        partlearn.SparseNMF(3, atom_sparsity=0.5, code_sparsity=0.4, code_constraint="samples", max_iter=30, random_state=1),
    ):
        model.fit(rows)
        path = tmp_path / type(model).__name__
        model.save(path)
        back = partlearn.load_run(path)
        assert type(back) is type(model)
        assert back.components_.dtype == np.float32
        np.testing.assert_array_equal(back.components_, model.components_)
        np.testing.assert_array_equal(back.transform(rows), model.transform(rows))
        np.testing.assert_array_equal(back.history_["objective"], model.history_["objective"])
        assert (back.n_iter_, back.stop_reason_, back.objective_) == (model.n_iter_, model.stop_reason_, model.objective_)
        same = ["n_components", "max_iter", "tol", "n_threads"]
        if isinstance(model, partlearn.SparseNMF):
            same += ["atom_sparsity", "code_sparsity", "code_constraint"]
            np.testing.assert_array_equal(back.training_codes_, model.training_codes_)
        else:
            same += ["solver", "alpha_W", "alpha_H", "l1_ratio", "beta_loss"]
        assert {p: back.get_params()[p] for p in same} == {p: model.get_params()[p] for p in same}
        # A loaded estimator pickles, refits and saves again.
        again = pickle.loads(pickle.dumps(back))
        np.testing.assert_array_equal(again.transform(rows), model.transform(rows))
        again.save(path, overwrite=True)
        assert type(partlearn.load_run(path)) is type(model)


def test_save_refuses_to_replace_without_overwrite(data, tmp_path):
    X, _, _, _ = data
    rows = X.reshape(len(X), -1)
    model = partlearn.NMF(3, max_iter=10, random_state=0).fit(rows)
    path = tmp_path / "run"
    model.save(path)
    before = (path / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="already exists: pass overwrite=True"):
        model.save(path)
    other = partlearn.NMF(2, max_iter=10, random_state=0).fit(rows)
    other.save(path, overwrite=True)
    assert (path / "model.safetensors").read_bytes() != before
    assert partlearn.load_run(path).n_components_ == 2
    # overwrite replaces runs only: a user's folder or file is refused.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="not a partlearn run folder.*choose another `path`"):
        model.save(mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep"
    with pytest.raises(ValueError, match="it is a file"):
        model.save(mine / "notes.txt", overwrite=True)
    # Nor is a run the user saved a file of theirs into.
    (path / "analysis.txt").write_text("keep")
    with pytest.raises(ValueError, match="also holds analysis.txt, which partlearn did not write"):
        model.save(path, overwrite=True)
    assert (path / "analysis.txt").read_text() == "keep"
    assert partlearn.load_run(path).n_components_ == 2
    with pytest.raises(NotFittedError):
        partlearn.NMF(2).save(tmp_path / "unfitted")


def test_load_run_refuses_damaged_and_foreign_files(data, tmp_path):
    X, _, _, _ = data
    model = partlearn.NMF(3, max_iter=10, random_state=0).fit(X.reshape(len(X), -1))
    path = tmp_path / "run"
    model.save(path)
    good = (path / "model.safetensors").read_bytes()
    with pytest.raises(OSError, match="no-such-run"):
        partlearn.load_run(tmp_path / "no-such-run")
    forged = tmp_path / "forged.safetensors"
    forged.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ValueError, match="forged.safetensors"):
        partlearn.load_run(forged)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good[: len(good) - 40])
    with pytest.raises(ValueError, match="truncated.safetensors"):
        partlearn.load_run(truncated)
    random_bytes = tmp_path / "noise.safetensors"
    random_bytes.write_bytes(np.random.RandomState(0).bytes(300))
    with pytest.raises(ValueError):
        partlearn.load_run(random_bytes)
    # A run folder whose model is damaged, or whose run.json is not partlearn's.
    (path / "model.safetensors").write_bytes(good[:100])
    with pytest.raises(ValueError, match="model.safetensors"):
        partlearn.load_run(path)
    (path / "model.safetensors").write_bytes(good)
    (path / "run.json").write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match="not a partlearn run"):
        partlearn.load_run(path)
    # Without run.json the folder is its model alone (as `partlearn transform` reads it).
    (path / "run.json").unlink()
    alone = partlearn.load_run(path)
    assert alone.n_components == "auto" and not hasattr(alone, "n_iter_")
    np.testing.assert_array_equal(alone.components_, model.components_)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="not a partlearn run folder"):
        partlearn.load_run(empty)


# The other methods' runs: each loads as its estimator once the package has it (until then
# load_run says which class is missing), transforms as `partlearn transform` and saves back.
OTHER_METHODS = {
    "ssnmf": ("SSNMF", ["-k", "4", "--labeled", "0.5", "--max-iter", "20"]),
    "hnmf": ("HierarchicalNMF", ["--ranks", "6,3", "--max-iter", "20"]),
    "deep-nmf": ("DeepNMF", ["--ranks", "6,3", "--max-iter", "20"]),
    "neural-nmf": ("NeuralNMF", ["--ranks", "6,3", "--epochs", "20"]),
    "ae": ("SparseAutoencoder", ["-k", "4", "--epochs", "2", "--batch-size", "30"]),
}


@pytest.mark.parametrize("method", sorted(OTHER_METHODS))
def test_runs_of_the_other_methods_load_as_their_estimators(data, tmp_path, method):
    X, _, x_path, y_path = data
    name, args = OTHER_METHODS[method]
    run_dir = tmp_path / "run"
    run("fit", method, "--data", x_path, "--labels", y_path, *args, "--dtype", "f64", "--out", run_dir, "--quiet")
    if not hasattr(partlearn, name):
        with pytest.raises(ValueError, match=f"needs partlearn.{name}"):
            partlearn.load_run(run_dir)
        return
    model = partlearn.load_run(run_dir)
    assert type(model).__name__ == name
    rows = X.reshape(len(X), -1)
    expected = cli_codes(run_dir, x_path, tmp_path / "codes.npy", "--dtype", "f64")
    # `partlearn transform` (and `eval`) encode through the model protocol: for the layer models
    # these are the first layer's codes of the whole stack, A⁽¹⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾; the estimators'
    # `transform` gives the top layer's codes S⁽ᴸ⁾, the last of `layer_codes`.
    np.testing.assert_allclose(_native.model_transform(model._model, rows), expected, rtol=1e-10, atol=1e-12)
    if hasattr(model, "layer_codes"):
        np.testing.assert_array_equal(model.layer_codes(rows)[-1], model.transform(rows))
    else:
        np.testing.assert_allclose(model.transform(rows), expected, rtol=1e-10, atol=1e-12)
    if getattr(model, "classifier_", None) is not None:
        # The CLI trains with class indices 0 … c−1: they are the loaded model's classes.
        np.testing.assert_array_equal(model.classes_, np.arange(model.classifier_.shape[0]))
        assert set(model.predict(rows)) <= set(model.classes_)
    again = tmp_path / "again"
    model.save(again)
    np.testing.assert_allclose(cli_codes(again, x_path, tmp_path / "again.npy", "--dtype", "f64"), expected, rtol=1e-10, atol=1e-12)
    assert type(partlearn.load_run(again)).__name__ == name


def test_a_saved_classifier_predicts_its_own_labels_after_load_run(data, tmp_path):
    X, y, x_path, _ = data
    rows = X.reshape(len(X), -1)
    names = np.array(["ant", "bee", "cat", "dog"])[np.asarray(y) % 4]
    ssnmf = partlearn.SSNMF(4, max_iter=30, random_state=0).fit(rows, names)
    neural = partlearn.NeuralNMF((6, 4), epochs=20, random_state=0).fit(rows, names)
    for model in (ssnmf, neural):
        folder = tmp_path / type(model).__name__
        model.save(folder)
        loaded = partlearn.load_run(folder)
        np.testing.assert_array_equal(loaded.classes_, model.classes_)
        np.testing.assert_array_equal(loaded.classifier_, model.classifier_)
        # The command-line tool still reads the run.
        run("eval", folder, "--data", x_path, "--no-svm", "--quiet")
    np.testing.assert_array_equal(partlearn.load_run(tmp_path / "SSNMF").predict(rows), ssnmf.predict(rows))
