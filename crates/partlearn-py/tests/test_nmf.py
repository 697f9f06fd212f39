"""partlearn.NMF and SparseNMF against scikit-learn and the mathematics: the same MU iterations,
exact transforms, dtypes and layouts, reproducibility, errors and warnings, pipelines."""

import pickle
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from scipy.optimize import nnls
from sklearn.base import clone
from sklearn.decomposition import NMF as SkNMF
from sklearn.decomposition._nmf import _beta_divergence
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import partlearn


def data(n=60, m=30, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    return np.abs(rng.randn(n, m)).astype(dtype)


def sk_objective(X, W, H, beta, alpha, l1_ratio):
    """scikit-learn's penalized objective (alpha_H = alpha_W)."""
    n, m = X.shape
    reg = lambda F, scale: alpha * scale * (l1_ratio * F.sum() + 0.5 * (1 - l1_ratio) * (F**2).sum())
    return _beta_divergence(X, W, H, beta) + reg(W, m) + reg(H, n)


@pytest.mark.parametrize("beta", ["frobenius", "kullback-leibler", 1.5, "itakura-saito"])
@pytest.mark.parametrize("alpha,l1_ratio", [(0.0, 0.0), (0.01, 0.5)])
@pytest.mark.parametrize("n_iter", [1, 5, 50])
def test_mu_reaches_sklearns_objective_per_iteration(beta, alpha, l1_ratio, n_iter):
    X = data()
    rng = np.random.RandomState(1)
    W0, H0 = np.abs(rng.randn(60, 5)), np.abs(rng.randn(5, 30))
    kw = dict(init="custom", solver="mu", beta_loss=beta, tol=0, max_iter=n_iter, alpha_W=alpha, l1_ratio=l1_ratio)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SkNMF(5, **kw)
        W_sk = sk.fit_transform(X, W=W0.copy(), H=H0.copy())
        ours = partlearn.NMF(5, **kw)
        ours.fit_transform(X, W=W0.copy(), H=H0.copy())
    expected = sk_objective(X, W_sk, sk.components_, beta, alpha, l1_ratio)
    assert ours.history_["objective"][n_iter] == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(ours.components_, sk.components_, rtol=1e-6, atol=1e-9)
    assert ours.n_iter_ == sk.n_iter_ == n_iter


def test_transform_of_sklearn_components_is_the_exact_nnls_solution():
    X = data(80, 40)
    sk = SkNMF(6, init="nndsvda", max_iter=400, random_state=0).fit(X)
    ours = partlearn.NMF(6)
    ours.fit(X)
    # Encode with scikit-learn's components: every code is the NNLS solution of its sample.
    ours.components_ = sk.components_.copy()
    W = ours.transform(X)
    exact = np.array([nnls(sk.components_.T, x)[0] for x in X])
    np.testing.assert_allclose(W, exact, rtol=1e-7, atol=1e-9)
    # scikit-learn's own transform (coordinate descent to tol 1e-4) comes close to it.
    np.testing.assert_allclose(sk.transform(X), exact, atol=1e-2 * np.abs(exact).max())


@pytest.mark.parametrize("solver", ["cd", "mu", "anls"])
def test_fit_transform_equals_transform_of_the_training_data(solver):
    X = data()
    model = partlearn.NMF(4, solver=solver, random_state=0, max_iter=300)
    W = model.fit_transform(X)
    np.testing.assert_array_equal(W, model.transform(X))
    assert model.reconstruction_err_ == pytest.approx(np.linalg.norm(X - W @ model.components_), rel=1e-10)


@pytest.mark.parametrize("solver", ["cd", "mu", "anls"])
def test_float32_in_float32_out_and_close_to_float64(solver):
    X = data()
    m64 = partlearn.NMF(4, solver=solver, random_state=0, max_iter=100, tol=0)
    m32 = clone(m64)
    W64, W32 = m64.fit_transform(X), m32.fit_transform(X.astype(np.float32))
    assert W32.dtype == m32.components_.dtype == np.float32
    assert W64.dtype == m64.components_.dtype == np.float64
    assert m32.transform(X.astype(np.float32)).dtype == np.float32
    assert m32.reconstruction_err_ == pytest.approx(m64.reconstruction_err_, rel=1e-3)


def test_memory_orders_give_the_same_bits():
    X = data(50, 24)
    fits = []
    for arr in [np.ascontiguousarray(X), np.asfortranarray(X), np.ascontiguousarray(np.repeat(X, 2, axis=1))[:, ::2]]:
        model = partlearn.NMF(3, solver="anls", random_state=0, max_iter=50)
        fits.append((model.fit_transform(arr), model.components_))
    for W, H in fits[1:]:
        np.testing.assert_array_equal(W, fits[0][0])
        np.testing.assert_array_equal(H, fits[0][1])


@pytest.mark.parametrize("solver", ["cd", "mu", "anls"])
def test_same_seed_same_bits_with_one_or_two_threads(solver):
    X = data(200, 50)
    runs = [partlearn.NMF(5, init="random", solver=solver, random_state=7, n_threads=t, max_iter=40).fit(X) for t in (1, 2, 1)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.components_, runs[0].components_)
    other = partlearn.NMF(5, init="random", solver=solver, random_state=8, max_iter=40).fit(X)
    assert not np.array_equal(other.components_, runs[0].components_)


def test_max_iter_ending_a_fit_is_a_convergence_warning():
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        model = partlearn.NMF(4, max_iter=2, tol=1e-12).fit(data())
    assert model.stop_reason_ == "max_iter"


def test_warnings_point_at_the_users_line():
    X = data()
    calls = {
        "fit": lambda: partlearn.NMF(4, max_iter=2, tol=1e-12).fit(X),
        "fit_transform": lambda: partlearn.SparseNMF(4, max_iter=2, tol=1e-12).fit_transform(X),
        "pipeline": lambda: Pipeline([("nmf", partlearn.NMF(4, max_iter=2, tol=1e-12))]).fit(X),
    }
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        convergence = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        assert convergence, name
        assert all(w.filename == __file__ for w in convergence), (name, [w.filename for w in convergence])


def test_callback_sees_every_iteration_and_can_stop_the_fit():
    seen = []

    def callback(rec):
        seen.append(rec["iter"])
        return rec["iter"] < 3

    model = partlearn.NMF(4, tol=0, max_iter=100, callback=callback).fit(data())
    assert seen == [0, 1, 2, 3]
    assert model.stop_reason_ == "interrupted" and model.n_iter_ == 3
    assert len(model.history_) == 4

    def boom(rec):
        if rec["iter"] == 2:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        partlearn.NMF(4, tol=0, max_iter=100, callback=boom).fit(data())


def test_gil_is_released_during_a_fit():
    X = data(3000, 300)
    done = threading.Event()
    ticks = 0

    def fit():
        partlearn.NMF(20, solver="anls", tol=0, max_iter=30, max_seconds=30).fit(X)
        done.set()

    t = threading.Thread(target=fit)
    start = time.perf_counter()
    t.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    t.join()
    assert time.perf_counter() - start > 0.05
    assert ticks > 10, f"the main thread ran only {ticks} times during the fit"


def test_ctrl_c_interrupts_a_fit():
    code = (
        "import numpy as np, partlearn, time\n"
        # Python's own Ctrl-C handler even when the test runner was started with SIGINT ignored
        # (a background job of a non-interactive shell): what a user at a terminal has.
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "X = np.abs(np.random.RandomState(0).randn(4000, 400))\n"
        "print('ready', flush=True)\n"
        "partlearn.NMF(30, solver='anls', tol=0, max_iter=100000).fit(X)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    sent = time.perf_counter()
    proc.send_signal(2)
    _, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    assert time.perf_counter() - sent < 20


def test_errors_are_value_errors_in_sklearns_words():
    X = data()
    with pytest.raises(ValueError, match="Negative values in data passed to NMF"):
        partlearn.NMF(2).fit(X - 1)
    # NaN is a missing entry for partlearn.NMF (test_missing.py); an infinity is an error.
    Xn = X.copy()
    Xn[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        partlearn.NMF(2).fit(Xn)
    with pytest.raises(ValueError, match="n_components"):
        partlearn.NMF(0).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        partlearn.NMF(1000, init="random").fit(X)
    with pytest.raises(ValueError, match="solver='mu'"):
        partlearn.NMF(2, beta_loss="kullback-leibler").fit(X)
    with pytest.raises(ValueError, match="H"):
        partlearn.NMF(2, init="custom").fit(X)
    model = partlearn.NMF(2).fit(X)
    with pytest.raises(ValueError, match="30 features"):
        model.transform(X[:, :10])


def test_pickle_and_clone():
    X = data()
    model = partlearn.NMF(3, random_state=0).fit(X)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.transform(X), model.transform(X))
    fresh = clone(model)
    assert fresh.get_params() == model.get_params() and not hasattr(fresh, "components_")


def test_pipelines_refuse_negative_data_and_work_in_grid_search():
    X, y = load_digits(return_X_y=True)
    X, y = X[:400], y[:400]
    with pytest.raises(ValueError, match="Negative values"):
        Pipeline([("scale", StandardScaler()), ("nmf", partlearn.NMF(10))]).fit(X, y)
    pipe = Pipeline(
        [("scale", MinMaxScaler()), ("nmf", partlearn.NMF(10, max_iter=100, random_state=0)), ("clf", LogisticRegression(max_iter=500))]
    )
    search = GridSearchCV(pipe, {"nmf__n_components": [8, 24], "nmf__solver": ["cd", "anls"]}, cv=3)
    search.fit(X, y)
    # Chance is 0.1; scikit-learn's NMF in the same pipeline scores 0.62-0.68, partlearn's 0.72.
    assert search.best_score_ > 0.65
    assert search.best_estimator_.named_steps["nmf"].get_feature_names_out()[0] == "nmf0"


def test_inverse_transform():
    X = data()
    model = partlearn.NMF(5, random_state=0)
    W = model.fit_transform(X)
    np.testing.assert_allclose(model.inverse_transform(W), W @ model.components_)


def hoyer(v):
    n = v.size
    return (np.sqrt(n) - np.abs(v).sum() / np.linalg.norm(v)) / (np.sqrt(n) - 1)


def test_sparse_nmf_codes_meet_their_target():
    X = data(100, 40)
    model = partlearn.SparseNMF(5, code_sparsity=0.6, max_iter=200, random_state=0)
    W = model.fit_transform(X)
    np.testing.assert_array_equal(W, model.transform(X))
    for row in model.training_codes_.T:
        assert hoyer(row) == pytest.approx(0.6, abs=1e-6)
    atoms = partlearn.SparseNMF(5, atom_sparsity=0.7, max_iter=200, random_state=0).fit(X).components_
    for atom in atoms:
        assert hoyer(atom) == pytest.approx(0.7, abs=1e-6)


@pytest.mark.parametrize("solver", ["cd", "mu", "anls"])
def test_compressed_fit_reports_the_true_error_and_is_reproducible(solver):
    rng = np.random.RandomState(3)
    X = rng.rand(400, 5) @ rng.rand(5, 120) + 0.05 * rng.rand(400, 120)
    kw = dict(init="nndsvda", solver=solver, tol=0, max_iter=60, compress="on", oversample=10, power_iters=1, polish=5)
    runs = [partlearn.NMF(5, random_state=1, n_threads=t, **kw) for t in (1, 2)]
    Ws = [r.fit_transform(X) for r in runs]
    np.testing.assert_array_equal(runs[0].components_, runs[1].components_)
    m = runs[0]
    assert m._stats["sketch_rank"] == 15 and m._stats["polish_iters"] == 5
    dense = np.linalg.norm(X - Ws[0] @ m.components_)
    assert abs(m.reconstruction_err_ - dense) <= 1e-9 * dense
    plain = partlearn.NMF(5, init="nndsvda", solver=solver, tol=0, max_iter=60).fit(X)
    assert m.reconstruction_err_ <= 1.01 * plain.reconstruction_err_
    other = partlearn.NMF(5, random_state=2, **{**kw, "init": "random"}).fit(X)
    again = partlearn.NMF(5, random_state=1, **{**kw, "init": "random"}).fit(X)
    assert not np.array_equal(other.components_, again.components_)


def test_compress_errors_name_the_parameter():
    X = data(100, 40)
    with pytest.raises(ValueError, match="power_iters"):
        partlearn.NMF(3, compress="on", power_iters=11).fit(X)
    with pytest.raises(ValueError, match="oversample"):
        partlearn.NMF(3, compress="on", oversample=40).fit(X)
    with pytest.raises(ValueError, match="compress"):
        partlearn.NMF(3, compress="on", solver="mu", beta_loss="kullback-leibler").fit(X)
    # auto falls back to the plain solver where the sketch does not pay.
    m = partlearn.NMF(3, compress="auto", max_iter=20, tol=0).fit(X)
    assert m._stats["sketch_rank"] == 0


def test_compressed_fit_on_many_samples_warms_up_on_a_subset():
    rng = np.random.RandomState(5)
    X = rng.rand(2000, 4) @ rng.rand(4, 50) + 0.02 * rng.rand(2000, 50)
    kw = dict(init="nndsvda", tol=0, max_iter=15, compress="on", oversample=6, power_iters=1, random_state=0)
    # "auto" (the default): 100 · n_components = 400 samples where there are 2,000.
    m = partlearn.NMF(4, **kw).fit(X)
    assert m._stats["warm_samples"] == 400 and m._stats["warm_iters"] == 60
    assert m._stats["compressed_iters"] == 0 and m.n_iter_ == 15
    c = partlearn.NMF(4, compress_samples=250, **kw).fit(X)
    assert c._stats["warm_samples"] == 250
    assert c.get_params()["compress_samples"] == 250
    off = partlearn.NMF(4, compress_samples="off", polish=3, **kw).fit(X)
    assert off._stats["warm_samples"] == 0 and off._stats["compressed_iters"] == 12
    plain = partlearn.NMF(4, init="nndsvda", tol=0, max_iter=15).fit(X)
    assert m.reconstruction_err_ <= 1.001 * plain.reconstruction_err_
    # Same seed, same bits, on any thread count.
    two = partlearn.NMF(4, n_threads=2, **kw).fit(X)
    np.testing.assert_array_equal(m.components_, two.components_)
    with pytest.raises(ValueError, match="compress_samples"):
        partlearn.NMF(4, compress_samples=2000, **kw).fit(X)
    with pytest.raises(ValueError, match="compress_samples"):
        partlearn.NMF(4, compress_samples="many", **kw).fit(X)
