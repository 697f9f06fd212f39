"""Input validation in scikit-learn's conventions: out-of-range ints, NaN options and markers,
codes for inverse_transform, seeds of the data loaders, and the classifier of the layer models."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.decomposition
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import partlearn
from partlearn import datasets, metrics

BIG = 2**64  # one past the largest u64: pyo3 would raise OverflowError


def planted(n_per_class=20, m=12, classes=3, seed=0):
    """Samples of `classes` classes, each on its own block of features (plus a little noise)."""
    rng = np.random.RandomState(seed)
    block = m // classes
    X = 0.05 * rng.rand(n_per_class * classes, m)
    y = np.repeat(np.arange(classes), n_per_class)
    for c in range(classes):
        X[y == c, c * block:(c + 1) * block] += 1 + rng.rand(n_per_class, block)
    return X, y


X, Y = planted()


def quiet(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit()


# 1. Ints out of the library's range are ValueErrors naming the parameter, never OverflowError.

@pytest.mark.parametrize("name, fit", [
    ("n_components", lambda: partlearn.NMF(BIG).fit(X)),
    ("max_iter", lambda: partlearn.NMF(3, max_iter=BIG).fit(X)),
    ("oversample", lambda: partlearn.NMF(3, oversample=BIG).fit(X)),
    ("polish", lambda: partlearn.NMF(3, polish=BIG).fit(X)),
    ("compress_samples", lambda: partlearn.NMF(3, compress_samples=BIG).fit(X)),
    ("n_threads", lambda: partlearn.NMF(3, n_threads=BIG).fit(X)),
    ("max_iter", lambda: partlearn.SparseNMF(3, max_iter=BIG).fit(X)),
    ("batch_size", lambda: partlearn.MiniBatchNMF(3, batch_size=BIG).fit(X)),
    ("transform_max_iter", lambda: partlearn.MiniBatchNMF(3, transform_max_iter=BIG).fit(X)),
    ("max_iter", lambda: partlearn.SSNMF(3, max_iter=BIG).fit(X, Y)),
    ("batch_size", lambda: partlearn.SparseAutoencoder(3, batch_size=BIG).fit(X)),
    ("max_iter", lambda: partlearn.SparseAutoencoder(3, max_iter=BIG).fit(X)),
    ("patience", lambda: partlearn.SparseAutoencoder(3, patience=BIG).fit(X)),
    ("epochs", lambda: partlearn.NeuralNMF((3, 2), epochs=BIG).fit(X)),
    ("class_steps", lambda: partlearn.NeuralNMF((3, 2), class_steps=BIG).fit(X)),
    ("max_iter", lambda: partlearn.DeepNMF((3, 2), max_iter=BIG).fit(X)),
    ("max_iter", lambda: partlearn.HierarchicalNMF((3, 2), max_iter=BIG).fit(X)),
    ("ranks", lambda: partlearn.HierarchicalNMF(ranks=(-1,)).fit(X)),
    ("ranks", lambda: partlearn.DeepNMF(ranks=(3, -1)).fit(X)),
    ("ranks", lambda: partlearn.NeuralNMF(ranks=(BIG, 2)).fit(X)),
    ("ks", lambda: partlearn.select_k(X, [-1])),
    ("ks", lambda: partlearn.select_k(X, [BIG])),
    ("runs", lambda: partlearn.select_k(X, [2], runs=-1)),
    ("samples", lambda: partlearn.select_k(X, [2], samples=-5)),
    ("max_iter", lambda: partlearn.select_k(X, [2], max_iter=-1)),
    ("n_threads", lambda: partlearn.select_k(X, [2], n_threads=-1)),
    ("replicates", lambda: partlearn.select_k(X, [2], replicates=BIG)),
    ("first", lambda: datasets.load("swimmer", first=-1)),
    ("subset", lambda: datasets.load("swimmer", subset=BIG)),
    ("random_state", lambda: datasets.load("swimmer", random_state=-1)),
    ("random_state", lambda: datasets.load("swimmer", random_state=BIG)),
    ("n_threads", lambda: metrics.dilate(np.ones((1, 4)), n_threads=BIG)),
])
def test_out_of_range_ints_are_value_errors_naming_the_parameter(name, fit):
    with pytest.raises(ValueError, match=name):
        fit()


def test_the_largest_int_is_accepted():
    # 2**63 - 1 is in range: the fit runs (until tol), it is not refused.
    model = quiet(lambda: partlearn.NMF(3, max_iter=2**63 - 1, tol=1e-2, random_state=0).fit(X))
    assert model.n_iter_ >= 1
    with pytest.raises(ValueError, match=r"max_iter.*\[1, 9223372036854775807\]"):
        partlearn.NMF(3, max_iter=2**63).fit(X)


# 2. select_k's candidate ranks and iterations.

def test_select_k_refuses_meaningless_ranks_and_iterations():
    with pytest.raises(ValueError, match="max_iter must be an int ≥ 1"):
        partlearn.select_k(X, [2, 3], runs=2, max_iter=0)
    with pytest.raises(ValueError, match=r"ks\[0\] must be an int.*got 2.5"):
        partlearn.select_k(X, [2.5], runs=2)
    with pytest.raises(ValueError, match=r"once, got \[3\]"):
        partlearn.select_k(X, [3, 2, 3], runs=2)
    with pytest.raises(TypeError, match="runs"):
        partlearn.select_k(X, [2], runs=True)
    out = partlearn.select_k(X, np.array([3, 2]), runs=2, max_iter=20)
    assert list(out["k"]) == [3, 2]  # scored in the order given


# 3. inverse_transform of the NMF family.

def test_nmf_inverse_transform_checks_codes_as_scikit_learn():
    model = partlearn.NMF(4, random_state=0).fit(X)
    codes = np.ones((3, 4))
    # Sparse codes give a dense array, as scikit-learn's NMF.
    out = model.inverse_transform(sp.csr_matrix(codes))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, model.inverse_transform(codes))
    with pytest.raises(ValueError, match="NaN"):
        model.inverse_transform(np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match="The codes have 5 columns, but NMF has k = 4 components"):
        model.inverse_transform(np.ones((3, 5)))
    # dtype: numpy's promotion of codes and components, as scikit-learn's NMF.
    assert model.inverse_transform(codes.astype(np.float32)).dtype == np.float64
    for fit_dtype in (np.float64, np.float32):
        ours = partlearn.NMF(4, random_state=0).fit(X.astype(fit_dtype))
        theirs = sklearn.decomposition.NMF(4, random_state=0, max_iter=1000).fit(X.astype(fit_dtype))
        for codes_dtype in (np.float64, np.float32):
            c = codes.astype(codes_dtype)
            assert ours.inverse_transform(c).dtype == theirs.inverse_transform(c).dtype
    sparse_nmf = quiet(lambda: partlearn.SparseNMF(4, max_iter=20, random_state=0).fit(X))
    with pytest.raises(ValueError, match="SparseNMF has k = 4"):
        sparse_nmf.inverse_transform(np.ones((3, 2)))


def test_other_inverse_transforms_name_the_codes_columns():
    ae = partlearn.SparseAutoencoder(4, max_iter=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="The codes have 5 columns, but SparseAutoencoder has k = 4 components"):
        ae.inverse_transform(np.ones((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        ae.inverse_transform(np.full((3, 4), np.nan))
    deep = quiet(lambda: partlearn.DeepNMF((4, 2), max_iter=20, random_state=0).fit(X))
    with pytest.raises(ValueError, match="The codes have 3 columns, but DeepNMF has k = 2 components"):
        deep.inverse_transform(np.ones((3, 3)))


# 4. transform equals fit_transform on the training data for β = 2 only, as documented.

def test_transform_matches_fit_transform_for_the_frobenius_loss_only():
    for solver in ("cd", "mu"):
        model = partlearn.NMF(3, solver=solver, max_iter=50, random_state=0)
        W = quiet(lambda: model.fit_transform(X))
        np.testing.assert_array_equal(W, model.transform(X))
    model = partlearn.NMF(3, solver="mu", beta_loss="kullback-leibler", max_iter=50, random_state=0)
    W = quiet(lambda: model.fit_transform(X))
    assert not np.array_equal(W, model.transform(X))
    doc = partlearn.NMF.transform.__doc__
    assert "β = 2" in doc and "β ≠ 2" in doc


# 5. The SVM protocol's options.

@pytest.mark.parametrize("options, message", [
    (dict(holdout=np.nan), "holdout must be a float in \\(0, 1\\).*got nan"),
    (dict(eps=np.nan), "eps must be a float in \\(0, inf\\).*got nan"),
    (dict(eps=np.inf), "eps must be"),
    (dict(c_min_exp=np.nan), "c_min_exp must be a float"),
    (dict(c_max_exp=400), "c_max_exp must be a float in .*C = 10\\*\\*exp finite.*got 400"),
    (dict(c_min_exp=-400), "c_min_exp must be"),
    (dict(c_min_exp=2.0, c_max_exp=1.0), "c_min_exp must be ≤ c_max_exp"),
    (dict(select_fraction="0.1"), "select_fraction must be a float"),
    (dict(eval_splits=0), "eval_splits must be an int ≥ 1"),
    (dict(max_passes=BIG), "max_passes must be an int"),
    (dict(random_state=2**70), "random_state must be an int ≥ 0 and ≤ 18446744073709551615"),
    (dict(random_state=-1), "random_state must be an int ≥ 0"),
])
def test_svm_protocol_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        metrics.svm_protocol_accuracy(X, Y, **options)


def test_svm_protocol_keeps_c_finite_and_takes_any_u64_seed():
    out = metrics.svm_protocol_accuracy(X, Y, c_grid=2, c_max_exp=300, select_splits=1, eval_splits=2,
                                        max_passes=20, random_state=2**64 - 1)
    assert all(c is not None and np.isfinite(c) for c, _ in out["validation_curve"])


def test_evaluate_checks_its_svm_options():
    model = partlearn.NMF(3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="holdout must be a float"):
        metrics.evaluate(model, X, Y, svm={"holdout": np.nan})


# 6. NaN as the unlabeled marker.

def nan_labels():
    y = Y.astype(float)
    y[1::2] = np.nan
    return y


def test_nan_marks_unlabeled_samples_as_minus_one_does():
    y = nan_labels()
    marked = np.where(np.isnan(y), -1, y)
    for make in (lambda **kw: partlearn.SSNMF(3, max_iter=50, random_state=0, **kw),
                 lambda **kw: partlearn.HierarchicalNMF((4, 3), max_iter=30, random_state=0, **kw),
                 lambda **kw: partlearn.NeuralNMF((4, 3), epochs=5, lr=0.1, random_state=0, **kw)):
        with_nan = quiet(lambda: make(unlabeled=np.nan).fit(X, y))
        with_minus_one = quiet(lambda: make().fit(X, marked))
        np.testing.assert_array_equal(with_nan.classes_, [0.0, 1.0, 2.0])
        np.testing.assert_array_equal(with_nan.components_, with_minus_one.components_)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_nan_marker_in_object_labels_and_errors():
    y = np.array(["a", "b", "c"], dtype=object)[Y]
    y[1::2] = np.nan  # as a pandas column with missing labels
    model = quiet(lambda: partlearn.SSNMF(3, max_iter=20, unlabeled=np.nan, random_state=0).fit(X, y))
    assert list(model.classes_) == ["a", "b", "c"]
    # Without the NaN marker, NaN labels stay an error (as in scikit-learn).
    with pytest.raises(ValueError, match="y contains NaN"):
        partlearn.SSNMF(3).fit(X, nan_labels())
    with pytest.raises(ValueError, match="no labeled sample"):
        partlearn.SSNMF(3, unlabeled=np.nan).fit(X, np.full(len(Y), np.nan))
    with pytest.raises(ValueError, match="infinity"):
        partlearn.SSNMF(3, unlabeled=np.nan).fit(X, np.where(np.isnan(nan_labels()), np.inf, Y))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        partlearn.SSNMF(3, unlabeled=np.nan).fit(X, nan_labels()[:-1])


# 7. datasets.load.

def test_load_takes_random_states_as_scikit_learn(tmp_path):
    a = datasets.load("swimmer", subset=5, random_state=np.random.RandomState(3)).data
    b = datasets.load("swimmer", subset=5, random_state=np.random.RandomState(3)).data
    np.testing.assert_array_equal(a, b)
    assert datasets.load("swimmer", subset=5, random_state=None).data.shape == (5, 1024)
    assert datasets.load("swimmer", subset=5, random_state=2**64 - 1).data.shape == (5, 1024)
    with pytest.raises(ValueError, match="first must be an int.*got '5'"):
        datasets.load("swimmer", first="5")
    with pytest.raises(ValueError, match="subset must be an int"):
        datasets.load("swimmer", subset=2.5)
    np.save(tmp_path / "empty.npy", np.zeros((0, 4)))
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\) \(shape=\(0, 4\)\)"):
        datasets.load(tmp_path / "empty.npy")
    np.save(tmp_path / "no-features.npy", np.zeros((3, 0)))
    with pytest.raises(ValueError, match=r"0 feature\(s\)"):
        datasets.load(tmp_path / "no-features.npy")


# 8. Messages.

def test_custom_init_names_fit_and_fit_transform():
    with pytest.raises(ValueError, match=r"fit\(X, H=H, W=W\) or fit_transform\(X, H=H, W=W\)"):
        partlearn.NMF(init="custom").fit(X)
    H = np.full((3, X.shape[1]), 0.5)
    model = quiet(lambda: partlearn.NMF(init="custom", max_iter=5).fit(X, H=H))
    assert model.n_components_ == 3


# 9. predict and score of the supervised layer models.

@pytest.mark.parametrize("make", [
    lambda: partlearn.HierarchicalNMF((4, 3), max_iter=200, random_state=0),
    lambda: partlearn.DeepNMF((4, 3), max_iter=200, random_state=0),
    lambda: partlearn.NeuralNMF((4, 3), epochs=50, lr=0.1, lam=1.0, random_state=0),
])
def test_layer_models_fitted_with_labels_predict_and_score(make):
    labels = np.array(["x", "y", "z"])[Y]
    y = labels.astype(object)
    y[::4] = -1  # unlabeled samples
    model = quiet(lambda: make().fit(X, y))
    scores = model.transform(X) @ model.classifier_.T
    predicted = model.predict(X)
    np.testing.assert_array_equal(predicted, model.classes_[np.argmax(scores, axis=1)])
    assert set(predicted) <= set(model.classes_)
    assert model.score(X, labels) == pytest.approx(np.mean(predicted == labels))
    assert model.score(X, labels) > 0.9
    unsupervised = quiet(lambda: make().fit(X))
    with pytest.raises(NotFittedError, match="fitted without labels y"):
        unsupervised.predict(X)
    with pytest.raises(NotFittedError, match="fitted without labels y"):
        unsupervised.score(X, labels)
    with pytest.raises(NotFittedError):
        make().predict(X)
