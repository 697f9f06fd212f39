"""partlearn.SSNMF, HierarchicalNMF, DeepNMF and NeuralNMF: the same models as the CLI, the
mathematics of each, semi-supervised labels, reproducibility, dtypes, errors, callbacks."""

import json
import os
import pickle
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

import partlearn
from partlearn import _native
from partlearn._base import _seed

REPO = Path(__file__).resolve().parents[3]
CLI = Path(os.environ.get("PARTLEARN_CLI", REPO / "target" / "debug" / "partlearn"))


def planted(n_per_class=30, m=12, classes=3, seed=0, dtype=np.float64):
    """Samples of `classes` classes, each living on its own block of features (plus a little
    noise everywhere): separable by the direction of the sample, as SSNMF's classifier needs."""
    rng = np.random.RandomState(seed)
    block = m // classes
    X, y = [], []
    for c in range(classes):
        scale = np.full(m, 0.05)
        scale[c * block : (c + 1) * block] = 1.0
        X.append(rng.rand(n_per_class, m) * scale)
        y += [c] * n_per_class
    order = rng.permutation(len(y))
    return np.vstack(X)[order].astype(dtype), np.array(y)[order]


def semi(y, labeled, seed=0):
    """`y` with all but `labeled` samples (at least one per class) marked -1."""
    rng = np.random.RandomState(seed)
    keep = set(int(np.flatnonzero(y == c)[0]) for c in np.unique(y))
    keep |= set(rng.choice(len(y), labeled, replace=False).tolist())
    out = np.full_like(y, -1)
    out[sorted(keep)] = y[sorted(keep)]
    return out


FAST = {
    "ssnmf": lambda **kw: partlearn.SSNMF(n_components=3, max_iter=200, **kw),
    "hnmf": lambda **kw: partlearn.HierarchicalNMF(ranks=(4, 2), max_iter=150, **kw),
    "deep-nmf": lambda **kw: partlearn.DeepNMF(ranks=(4, 2), max_iter=150, **kw),
    "neural-nmf": lambda **kw: partlearn.NeuralNMF(ranks=(4, 2), epochs=40, lr=10.0, **kw),
}


def fit(kind, X, y, **kw):
    est = FAST[kind](**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y if kind == "ssnmf" else None)


# --- The same model as the CLI -------------------------------------------------------------


CLI_FLAGS = {
    "ssnmf": ["-k", "3", "--max-iter", "200"],
    "hnmf": ["--ranks", "4,2", "--max-iter", "150"],
    "deep-nmf": ["--ranks", "4,2", "--max-iter", "150"],
    "neural-nmf": ["--ranks", "4,2", "--epochs", "40", "--lr", "10"],
}


@pytest.mark.skipif(not CLI.exists(), reason=f"the CLI is not built ({CLI}); cargo build builds it")
@pytest.mark.parametrize("kind", list(CLI_FLAGS))
def test_the_estimator_fits_the_clis_model(kind, tmp_path):
    X, y = planted()
    ys = semi(y, 10)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "labels.npy", y)
    np.save(tmp_path / "mask.npy", (ys != -1).astype(np.float64))
    seed = _seed(5)
    cmd = [str(CLI), "fit", kind, "--data", str(tmp_path / "x.npy"), "--dtype", "f64", "--seed", str(seed)]
    cmd += ["--out", str(tmp_path / "run"), "--quiet"] + CLI_FLAGS[kind]
    if kind == "ssnmf":
        cmd += ["--labels", str(tmp_path / "labels.npy"), "--label-mask", str(tmp_path / "mask.npy")]
    subprocess.run(cmd, check=True, capture_output=True)
    cli_model = (tmp_path / "run" / "model.safetensors").read_bytes()
    est = fit(kind, X, ys, random_state=5)
    if kind == "ssnmf":
        np.testing.assert_array_equal(est.components_, _native.model_info(cli_model)["components"])
        np.testing.assert_array_equal(est.classifier_, _native.ssnmf_classifier(cli_model))
        pred = np.load(tmp_path / "run" / "labels_pred.npy")
        np.testing.assert_array_equal(est.transduction_, pred.astype(int))
    else:
        # The same model file, bit for bit.
        assert est._model == cli_model
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    params = type(est)._params_from_run(record["part"]["options"])
    again = clone(est).set_params(**params)
    assert again.get_params() == dict(est.get_params(), random_state=seed)
    again._validate_params()


def test_params_from_run_map_every_recorded_option():
    ssnmf = {"k": 4, "lambda": 0.5, "data_loss": "kl", "label_loss": "frobenius", "max_iter": 30, "tol": 0.0,
             "max_seconds": None, "seed": 9}
    assert partlearn.SSNMF._params_from_run(ssnmf) == dict(
        n_components=4, lam=0.5, data_loss="kl", label_loss="frobenius", max_iter=30, tol=0.0, max_seconds=None,
        random_state=9)
    layers = {"ranks": [5, 2], "solver": "anls", "max_iter": 7, "tol": 1e-3, "max_seconds": 2.0, "lambda": 0.1, "seed": 1}
    for cls in (partlearn.HierarchicalNMF, partlearn.DeepNMF):
        p = cls._params_from_run(layers)
        assert p == dict(ranks=(5, 2), solver="anls", max_iter=7, tol=1e-3, max_seconds=2.0, lam=0.1, random_state=1)
        cls(**p)._validate_params()
    neural = {"ranks": [3, 1], "cost": "energy", "epochs": 5, "lr": 0.5, "decay": 0.9, "decay_every": 2, "adam": True,
              "lambda": 1e-3, "class_loss": "cross-entropy", "lr_class": 0.1, "class_steps": 4, "restarts": 2,
              "seed": 3, "tol": 0.0}
    p = partlearn.NeuralNMF._params_from_run(neural)
    assert p == dict(ranks=(3, 1), cost="energy", epochs=5, lr=0.5, decay=0.9, decay_every=2, optimizer="adam",
                     lam=1e-3, class_loss="cross-entropy", lr_class=0.1, class_steps=4, restarts=2, random_state=3,
                     tol=0.0)
    partlearn.NeuralNMF(**p)._validate_params()


# --- The mathematics -------------------------------------------------------------------------


def svd_bound(X, k):
    """The relative error of the best rank-k approximation of X (a lower bound of any NMF's)."""
    s = np.linalg.svd(X, compute_uv=False)
    return np.sqrt((s[k:] ** 2).sum() / (s**2).sum())


def test_layers_compose_and_approximate_x():
    X, _ = planted()
    h = fit("hnmf", X, None, random_state=0)
    d = fit("deep-nmf", X, None, random_state=0)
    for est in (h, d):
        layers = est.components_per_layer_
        assert [c.shape for c in layers] == [(4, 12), (2, 4)]
        np.testing.assert_allclose(est.composed_components_[1], layers[1] @ layers[0], rtol=1e-12)
        np.testing.assert_allclose(est.components_, est.composed_components_[-1])
        # The fit's top codes times the composed atoms are its reconstruction.
        rel = np.linalg.norm(X - est.training_codes_ @ est.components_) / np.linalg.norm(X)
        assert rel == pytest.approx(est.rel_error_, rel=1e-10)
        assert svd_bound(X, 2) - 1e-9 <= rel <= svd_bound(X, 2) + 0.03
        codes = est.layer_codes(X)
        assert [c.shape for c in codes] == [(90, 4), (90, 2)]
        np.testing.assert_array_equal(est.transform(X), codes[-1])
        back = est.inverse_transform(est.transform(X))
        np.testing.assert_allclose(back, est.transform(X) @ est.components_)
        # The forward pass's codes are not the fit's, but reconstruct X nearly as well.
        assert np.linalg.norm(X - back) / np.linalg.norm(X) <= svd_bound(X, 2) + 0.15
    # Cut after its first layer, the stack is a rank-4 NMF of X.
    assert svd_bound(X, 4) - 1e-9 <= h.level_errors_[0] <= svd_bound(X, 4) + 0.01
    assert h.level_errors_[0] <= h.level_errors_[1] + 1e-12
    assert len(h.layer_histories_) == 2 and h.layer_histories_[-1]["objective"][-1] == h.history_["objective"][-1]
    # Deep NMF fine-tunes that same hierarchy (same seeds): its objective never rises and it ends
    # below the hierarchy's error.
    obj = d.history_["objective"]
    assert np.all(np.diff(obj) <= 1e-9 * obj[0])
    assert d.rel_error_ < h.rel_error_


def test_neural_nmf_lowers_its_cost_and_transform_is_the_forward_pass():
    X, y = planted()
    n = fit("neural-nmf", X, None, random_state=0)
    obj = n.history_["objective"]
    assert obj[-1] < 0.7 * obj[0] and n.n_iter_ == 40 and len(obj) == 41
    np.testing.assert_allclose(n.transform(X), n.training_codes_, rtol=1e-6, atol=1e-9)
    rel = np.linalg.norm(X - n.transform(X) @ n.components_) / np.linalg.norm(X)
    assert rel == pytest.approx(n.rel_error_, rel=1e-6)
    assert svd_bound(X, 2) - 1e-9 <= rel <= svd_bound(X, 2) + 0.03
    start = partlearn.NeuralNMF(ranks=(4, 2), epochs=5, lr=10.0, init="hnmf", random_state=0).fit(X)
    assert start.history_["rel_error"][0] < n.history_["rel_error"][0]
    # The top-down start (as `fit neural-nmf --init top-down`) begins below the random start too,
    # and is deterministic: the seed changes nothing without labels.
    top = [
        partlearn.NeuralNMF(ranks=(4, 2), epochs=5, lr=10.0, init="top-down", random_state=s).fit(X)
        for s in (0, 1)
    ]
    assert top[0].history_["rel_error"][0] < n.history_["rel_error"][0]
    np.testing.assert_array_equal(top[0].components_, top[1].components_)
    with pytest.raises(ValueError, match="init"):
        partlearn.NeuralNMF(ranks=(4, 2), init="svd").fit(X)


def test_ssnmf_predicts_the_unlabeled_and_new_samples():
    X, y = planted(seed=0)
    labels = np.array([3, 7, 11])[y]
    ys = np.where(semi(y, 10) == -1, -1, labels)
    model = partlearn.SSNMF(n_components=3, max_iter=500, random_state=0).fit(X, ys)
    np.testing.assert_array_equal(model.classes_, [3, 7, 11])
    unlabeled = ys == -1
    assert np.mean(model.transduction_[unlabeled] == labels[unlabeled]) >= 0.95
    assert np.mean(model.predict(X)[unlabeled] == labels[unlabeled]) >= 0.95
    X_new, y_new = planted(seed=1)
    assert model.score(X_new, np.array([3, 7, 11])[y_new]) >= 0.95
    # predict is argmax(B s) of transform's codes.
    scores = model.transform(X_new) @ model.classifier_.T
    np.testing.assert_array_equal(model.predict(X_new), model.classes_[scores.argmax(axis=1)])
    # String labels, with a string marker for the unlabeled samples.
    names = np.array(["cat", "dog", "eel"], dtype=object)[y]
    names[unlabeled] = "?"
    by_name = partlearn.SSNMF(n_components=3, max_iter=500, random_state=0, unlabeled="?").fit(X, names)
    assert list(by_name.classes_) == ["cat", "dog", "eel"]
    np.testing.assert_array_equal(by_name.classifier_, model.classifier_)


def test_supervised_layer_models_take_semi_supervised_labels():
    X, y = planted()
    ys = np.where(semi(y, 10) == -1, -1, y + 10)
    for kind in ("hnmf", "deep-nmf", "neural-nmf"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = FAST[kind](random_state=0).fit(X, ys)
            unsupervised = FAST[kind](random_state=0).fit(X)
        np.testing.assert_array_equal(est.classes_, [10, 11, 12])
        assert est.classifier_.shape == (3, 2)
        assert unsupervised.classifier_ is None and not hasattr(unsupervised, "classes_")


def test_the_data_mask_hides_entries_from_ssnmf():
    X, y = planted()
    mask = np.ones_like(X)
    mask[::3, 0] = 0
    spoiled = X.copy()
    spoiled[::3, 0] = 1e3
    a = partlearn.SSNMF(n_components=3, max_iter=50, tol=0, random_state=0).fit(X, y, data_mask=mask)
    b = partlearn.SSNMF(n_components=3, max_iter=50, tol=0, random_state=0).fit(spoiled, y, data_mask=mask)
    np.testing.assert_array_equal(a.components_, b.components_)


# --- Reproducibility, dtypes, pickling -------------------------------------------------------


@pytest.mark.parametrize("kind", list(FAST))
def test_same_seed_same_bits_with_one_or_two_threads(kind):
    X, y = planted()
    ys = semi(y, 10)
    runs = [fit(kind, X, ys, random_state=3, n_threads=t) for t in (1, 2)]
    np.testing.assert_array_equal(runs[0].components_, runs[1].components_)
    np.testing.assert_array_equal(runs[0].transform(X), runs[1].transform(X))
    assert runs[0]._model == runs[1]._model
    if kind in ("ssnmf", "neural-nmf"):
        # (The layers of hierarchical and Deep NMF start from NNDSVDa, which has no randomness.)
        other = fit(kind, X, ys, random_state=4)
        assert not np.array_equal(other.components_, runs[0].components_)


@pytest.mark.parametrize("kind", list(FAST))
def test_float32_in_float32_out_and_close_to_float64(kind):
    X, y = planted()
    ys = semi(y, 10)
    m64 = fit(kind, X, ys, random_state=0)
    m32 = fit(kind, X.astype(np.float32), ys, random_state=0)
    assert m32.components_.dtype == m32.training_codes_.dtype == np.float32
    assert m32.transform(X.astype(np.float32)).dtype == np.float32
    assert m64.transform(X).dtype == np.float64
    assert m32.rel_error_ == pytest.approx(m64.rel_error_, rel=2e-3)


@pytest.mark.parametrize("kind", list(FAST))
def test_pickle_and_clone(kind):
    X, y = planted()
    ys = semi(y, 10)
    est = fit(kind, X, ys, random_state=0)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.transform(X), est.transform(X))
    if kind == "ssnmf":
        np.testing.assert_array_equal(again.predict(X), est.predict(X))
    fresh = clone(est)
    assert fresh.get_params() == est.get_params() and not hasattr(fresh, "components_")


# --- Errors, warnings, callbacks -------------------------------------------------------------


def test_errors_are_value_errors_in_sklearns_words():
    X, y = planted()
    with pytest.raises(ValueError, match="Negative values in data passed to SSNMF"):
        partlearn.SSNMF(2).fit(X - 1, y)
    with pytest.raises(ValueError, match="Negative values in data passed to DeepNMF"):
        partlearn.DeepNMF((2, 1)).fit(X - 1)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        partlearn.SSNMF(2).fit(X, y[:-1])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        partlearn.NeuralNMF((2, 1)).fit(X, y[:-1])
    with pytest.raises(ValueError, match="requires y to be passed"):
        partlearn.SSNMF(2).fit(X, None)
    with pytest.raises(ValueError, match="Unknown label type"):
        partlearn.SSNMF(2).fit(X, np.linspace(0, 1, len(y)))
    with pytest.raises(ValueError, match="no labeled sample"):
        partlearn.HierarchicalNMF((2, 1)).fit(X, np.full(len(y), -1))
    with pytest.raises(ValueError, match="ranks"):
        partlearn.HierarchicalNMF((2, 4)).fit(X)
    with pytest.raises(ValueError, match="ranks"):
        partlearn.NeuralNMF((2, 0)).fit(X)
    with pytest.raises(ValueError, match="ranks.*sequence of ints"):
        partlearn.DeepNMF((2.5, 1)).fit(X)
    with pytest.raises(ValueError, match=r"n_features = 12"):
        partlearn.DeepNMF((20, 2)).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        partlearn.SSNMF(20).fit(X, y)
    with pytest.raises(ValueError, match="lam"):
        partlearn.SSNMF(2, lam=-1).fit(X, y)
    with pytest.raises(ValueError, match="data_mask"):
        partlearn.SSNMF(2).fit(X, y, data_mask=np.ones((3, 3)))
    model = fit("neural-nmf", X, None, random_state=0)
    with pytest.raises(ValueError, match="12 features"):
        model.transform(X[:, :5])
    with pytest.raises(ValueError, match="components"):
        model.inverse_transform(np.ones((2, 3)))


def test_max_iter_ending_a_fit_is_a_convergence_warning():
    X, y = planted()
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        model = partlearn.SSNMF(3, max_iter=2, tol=1e-12).fit(X, y)
    assert model.stop_reason_ == "max_iter"
    with pytest.warns(ConvergenceWarning, match="epochs"):
        partlearn.NeuralNMF((4, 2), epochs=3, lr=10.0, tol=1e-12).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        partlearn.NeuralNMF((4, 2), epochs=3, lr=10.0).fit(X)


@pytest.mark.parametrize("kind", list(FAST))
def test_callback_sees_the_iterations_and_stops_the_fit(kind):
    X, y = planted()
    seen = []

    def callback(rec):
        seen.append(rec["iter"])
        return rec["iter"] < 2

    est = fit(kind, X, y, random_state=0, tol=0, callback=callback)
    # The first stage stops after iteration 2; no later stage calls the callback again.
    assert seen == [0, 1, 2]
    assert est.stop_reason_ == "interrupted"
    if kind in ("hnmf", "deep-nmf"):
        assert [len(h) for h in est.layer_histories_] == [3, 1]

    def boom(rec):
        if rec["iter"] == 1:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        fit(kind, X, y, random_state=0, callback=boom)


def test_ctrl_c_interrupts_a_layer_fit():
    code = (
        "import numpy as np, partlearn\n"
        # Python's own Ctrl-C handler even when the test runner was started with SIGINT ignored
        # (a background job of a non-interactive shell): what a user at a terminal has.
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "X = np.abs(np.random.RandomState(0).randn(400, 60))\n"
        "print('ready', flush=True)\n"
        "partlearn.HierarchicalNMF((20, 10), tol=0, max_iter=10**8).fit(X)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    sent = time.perf_counter()
    proc.send_signal(2)
    _, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    assert time.perf_counter() - sent < 10
