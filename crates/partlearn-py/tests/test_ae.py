"""partlearn.SparseAutoencoder: the same model file as the CLI, every penalty and optimizer,
reproducibility, dtypes, partial_fit, pickling, errors and warnings in scikit-learn's terms."""

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
from sklearn.utils._param_validation import InvalidParameterError

import partlearn

ROOT = Path(__file__).resolve().parents[3]


def data(n=96, side=6, seed=0, dtype=np.float64):
    """n images of side × side pixels in [0, 1], flattened."""
    return np.random.RandomState(seed).rand(n, side * side).astype(dtype)


def fast(**kw):
    """Small, fast settings: Adam with a large step, batches of 16, 3 epochs."""
    params = dict(n_components=4, optimizer="adam", learning_rate=0.01, batch_size=16, max_iter=3, random_state=0)
    params.update(kw)
    return partlearn.SparseAutoencoder(**params)


def cli_binary():
    """The newest partlearn CLI binary built in this checkout (release or debug)."""
    found = [p for p in (ROOT / "target/release/partlearn", ROOT / "target/debug/partlearn") if p.is_file()]
    if not found:
        pytest.skip("the partlearn CLI is not built (cargo build)")
    return max(found, key=lambda p: p.stat().st_mtime)


CLI_CASES = {
    "shallow-f32": (np.float32, "ae", ["--optimizer", "adam", "--lr", "0.01"]),
    "asymmetric-f32": (np.float32, "asym-ae", ["--optimizer", "sgd", "--lr-schedule", "cosine"]),
    "shallow-f64-options": (
        np.float64,
        "ae",
        [
            "--sparsity", "eps-l1:0.001", "--p", "0.1", "--beta", "0.01", "--reduction", "sum",
            "--decoder-activation", "leaky-relu:0.2", "--nonneg", "none", "--decay-lambda", "0.003",
            "--decay-alpha", "0.5", "--lr-schedule", "step:2:0.5", "--val-fraction", "0.25",
            "--dtype", "f64",
        ],
    ),
}


@pytest.mark.parametrize("case", CLI_CASES)
def test_the_same_model_file_as_the_cli(case, tmp_path):
    dtype, method, flags = CLI_CASES[case]
    X = data(60, dtype=dtype)
    images = method == "asym-ae"
    # The CLI reads a 3-d array as images (their shape goes into the model file).
    np.save(tmp_path / "x.npy", X.reshape(-1, 6, 6) if images else X)
    run = tmp_path / "run"
    cmd = [str(cli_binary()), "fit", method, "--data", str(tmp_path / "x.npy"), "-k", "3", "--epochs", "3"]
    cmd += ["--batch-size", "16", "--seed", "11", "--out", str(run), "--quiet", *flags]
    subprocess.run(cmd, check=True, capture_output=True)
    cli_model = (run / "model.safetensors").read_bytes()
    options = json.loads((run / "run.json").read_text())["part"]["options"]
    params = partlearn.SparseAutoencoder._params_from_run(options)
    assert params["random_state"] == 11 and params["max_iter"] == 3
    ours = partlearn.SparseAutoencoder(**params).fit(X)
    assert ours._model == cli_model
    assert ours.components_.dtype == dtype
    assert ours.image_shape_ == ((6, 6) if images else None)
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    np.testing.assert_array_equal(ours.history_["loss"], [h["loss"] for h in history])


@pytest.mark.parametrize("sparsity", ["kl", "l2", "eps-l1", "log", "l1", "hoyer", "none"])
def test_each_penalty_trains_and_lowers_its_loss(sparsity):
    model = fast(sparsity=sparsity, beta=0.1, max_iter=8).fit(data())
    loss = model.history_["loss"]
    assert loss[-1] < loss[0], loss
    assert (model.history_["sparsity"] > 0).all() == (sparsity != "none")
    assert model.loss_ == loss[-1]


@pytest.mark.parametrize("optimizer", ["adadelta", "adam", "sgd"])
@pytest.mark.parametrize("architecture", ["shallow", "asymmetric"])
def test_each_optimizer_trains_both_architectures(optimizer, architecture):
    model = partlearn.SparseAutoencoder(
        4, architecture=architecture, optimizer=optimizer, batch_size=16, max_iter=6, random_state=0
    ).fit(data())
    loss = model.history_["loss"]
    assert loss[-1] < loss[0], loss
    assert model.n_iter_ == 6 and model.stop_reason_ == "max_iter"
    default_lr = {"adadelta": 1.0, "adam": 1e-3, "sgd": 0.01}[optimizer]
    assert (model.history_["lr"] == default_lr).all()


def test_the_decoder_constraint_and_weight_decay():
    X = data()
    projected = fast(max_iter=5).fit(X)
    assert (projected.components_ >= 0).all()
    assert (projected.history_["negative_decoder_fraction"] == 0).all()
    free = fast(max_iter=5, nonneg=None, decay_lambda=0.01).fit(X)
    assert (free.components_ < 0).any()
    assert (free.history_["decay"] > 0).all()


@pytest.mark.parametrize("architecture", ["shallow", "asymmetric"])
def test_one_or_two_threads_give_the_same_bits(architecture):
    X = data(80)
    runs = [fast(architecture=architecture, n_threads=t, random_state=5).fit(X) for t in (1, 2)]
    assert runs[0]._model == runs[1]._model
    np.testing.assert_array_equal(runs[0].transform(X), runs[1].transform(X))
    other = fast(architecture=architecture, random_state=6).fit(X)
    assert not np.array_equal(other.components_, runs[0].components_)


def test_float32_in_float32_out_and_close_to_float64():
    X = data()
    m64, m32 = fast(max_iter=5).fit(X), fast(max_iter=5).fit(X.astype(np.float32))
    assert m32.components_.dtype == m32.transform(X.astype(np.float32)).dtype == np.float32
    assert m64.components_.dtype == m64.transform(X).dtype == np.float64
    assert m32.inverse_transform(m32.transform(X.astype(np.float32))).dtype == np.float32
    np.testing.assert_allclose(m32.history_["loss"], m64.history_["loss"], rtol=1e-4)
    np.testing.assert_allclose(m32.components_, m64.components_, atol=1e-4)


def test_partial_fit_epochs_give_the_bits_of_one_fit():
    X = data()
    kw = dict(schedule="cosine", max_iter=4, val_fraction=0.25)
    whole = fast(**kw).fit(X)
    stepwise = fast(**kw)
    for epoch in range(1, 5):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            stepwise.partial_fit(X)
        assert stepwise.n_iter_ == epoch and len(stepwise.history_) == epoch
        if epoch == 2:
            # The run survives a pickle round trip.
            stepwise = pickle.loads(pickle.dumps(stepwise))
    assert stepwise._model == whole._model
    for field in ("loss", "val_mse", "lr", "mean_activation"):
        np.testing.assert_array_equal(stepwise.history_[field], whole.history_[field])
    # A fitted run continues past max_iter (the cosine horizon then follows the epochs done).
    whole.partial_fit(X)
    assert whole.n_iter_ == 5 and whole.history_["epoch"][-1] == 5
    # float64 data continue a float32 run in float32.
    m32 = fast().partial_fit(X.astype(np.float32)).partial_fit(X)
    assert m32.components_.dtype == np.float32 and m32.n_iter_ == 2


def test_partial_fit_refuses_what_a_run_cannot_change():
    X = data()
    model = fast().partial_fit(X)
    with pytest.raises(ValueError, match="36 features"):
        model.partial_fit(X[:, :10])
    model.set_params(learning_rate=0.5)
    with pytest.raises(ValueError, match=r"invalid optimizer = .*lr: 0.5.* differs .* only `max_iter`, `tol`, `n_threads`"):
        model.partial_fit(X)
    model.set_params(learning_rate=0.01, max_iter=10, tol=1e-3)
    model.partial_fit(X)
    assert model.n_iter_ == 2


def test_pickle_and_clone_of_a_fitted_model():
    X = data()
    for architecture in ("shallow", "asymmetric"):
        model = fast(architecture=architecture, max_iter=2).fit(X)
        again = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(again.transform(X), model.transform(X))
        np.testing.assert_array_equal(again.components_, model.components_)
        fresh = clone(model)
        assert fresh.get_params() == model.get_params() and not hasattr(fresh, "components_")


def test_transform_and_inverse_transform():
    X = data()
    model = fast(max_iter=10, beta=0.0).fit(X)
    codes = model.transform(X)
    assert codes.shape == (96, 4) and ((codes > 0) & (codes < 1)).all()
    np.testing.assert_array_equal(model.fit_transform(X), codes)
    recon = model.inverse_transform(codes)
    mse = np.mean((recon - X) ** 2)
    assert mse < np.mean((X.mean(axis=0) - X) ** 2) * 1.05
    assert mse == pytest.approx(model.history_["train_mse"][-1], rel=0.2)
    assert model.get_feature_names_out()[0] == "sparseautoencoder0"


def test_errors_in_sklearns_words():
    X = data()
    with pytest.raises(ValueError, match="Negative values in data passed to SparseAutoencoder"):
        fast().fit(X - 0.5)
    with pytest.raises(InvalidParameterError, match="'sparsity' parameter of SparseAutoencoder"):
        fast(sparsity="kl2").fit(X)
    with pytest.raises(InvalidParameterError, match="'n_components' parameter"):
        fast(n_components=0).fit(X)
    with pytest.raises(InvalidParameterError, match="'optimizer' parameter"):
        fast(optimizer="rmsprop").fit(X)
    with pytest.raises(ValueError, match="invalid schedule = warm: use constant"):
        fast(schedule="warm").fit(X)
    with pytest.raises(ValueError, match="invalid loss = bce.*`decoder_activation` to sigmoid"):
        fast(loss="bce").fit(X)
    with pytest.raises(ValueError, match="invalid patience.*`val_fraction`"):
        fast(patience=3).fit(X)
    with pytest.raises(ValueError, match="invalid p = 0"):
        fast(p=0.0).fit(X)
    with pytest.raises(ValueError, match="not a square number.*image_shape"):
        fast(architecture="asymmetric").fit(X[:, :30])
    with pytest.raises(ValueError, match="does not fit X's 36 features"):
        fast(image_shape=(5, 7)).fit(X)
    model = fast(architecture="asymmetric", image_shape=(3, -1)).fit(X)
    assert model.image_shape_ == (3, 12)
    with pytest.raises(ValueError, match="36 features"):
        model.transform(X[:, :10])
    # A diverging run names the estimator's parameters.
    with pytest.raises(RuntimeError, match="lower the learning rate `learning_rate` or `beta`"):
        fast(optimizer="sgd", learning_rate=1e30).fit(X * 1e3)


def test_callback_sees_every_epoch_and_false_stops():
    seen = []

    def callback(rec):
        seen.append(rec["iter"])
        return rec["iter"] < 2

    model = fast(max_iter=10, callback=callback).fit(data())
    assert seen == [1, 2]
    assert model.stop_reason_ == "interrupted" and model.n_iter_ == 2 == len(model.history_)


def test_max_iter_ending_a_fit_with_tol_is_a_convergence_warning():
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        model = fast(max_iter=3, tol=1e-6).fit(data())
    assert model.stop_reason_ == "max_iter"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast(max_iter=3).fit(data())


def test_early_stopping_keeps_the_best_epoch():
    # A learning rate far too large: the validation error rises after the first epochs.
    model = fast(optimizer="sgd", learning_rate=2.0, sparsity=None, val_fraction=0.25, patience=2, max_iter=60)
    with pytest.warns(UserWarning, match="kept the weights of epoch"):
        model.fit(data())
    assert model.stop_reason_ == "early_stopped" and model.n_iter_ < 60


def test_verbose_prints_every_epoch(capsys):
    fast(verbose=1).fit(data())
    assert capsys.readouterr().out.count("Epoch ") == 3


def test_params_from_run_maps_every_option():
    options = {
        "architecture": "asymmetric",
        "k": 7,
        "decoder_activation": {"kind": "sigmoid"},
        "epochs": 9,
        "batch_size": 32,
        "optimizer": {"kind": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": False},
        "schedule": {"kind": "exponential", "gamma": 0.98},
        "loss": {"reconstruction": "bce", "reduction": "sum", "sparsity": {"kind": "hoyer", "target": 0.7},
                 "p": 0.1, "beta": 0.5, "decay_lambda": 0.0, "decay_alpha": 0.0},
        "nonneg": "none",
        "val_fraction": 0.1,
        "patience": 4,
        "tol": 1e-4,
        "shuffle": False,
        "seed": 42,
        "checkpoint_every": 5,
    }
    params = partlearn.SparseAutoencoder._params_from_run(options)
    model = partlearn.SparseAutoencoder(**params)
    assert model.get_params() | params == model.get_params()
    assert (params["schedule"], params["sparsity"], params["hoyer_target"]) == ("exp:0.98", "hoyer", 0.7)
    assert (params["decoder_activation"], params["loss"], params["random_state"]) == ("sigmoid", "bce", 42)
    # Missing options are the CLI's defaults.
    defaults = partlearn.SparseAutoencoder._params_from_run({})
    assert defaults == {"random_state": 0}
    options["optimizer"]["momentum"] = 0.5
    with pytest.raises(ValueError, match="momentum = 0.5"):
        partlearn.SparseAutoencoder._params_from_run(options)


def test_ctrl_c_interrupts_training():
    code = (
        "import numpy as np, partlearn\n"
        # Python's own Ctrl-C handler even when the test runner was started with SIGINT ignored
        # (a background job of a non-interactive shell): what a user at a terminal has.
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "X = np.random.RandomState(0).rand(20000, 100)\n"
        "print('ready', flush=True)\n"
        "partlearn.SparseAutoencoder(50, max_iter=100000).fit(X)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    sent = time.perf_counter()
    proc.send_signal(2)
    _, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    assert time.perf_counter() - sent < 10
