"""partlearn.NMF with missing entries (NaN; METHODS.md §11.2): the planted matrix is recovered
on the hidden entries, ``transform`` encodes incomplete samples, ``reconstruction_err_`` is over
the observed entries, infinities and samples without any observed entry are refused, and the
other estimators still refuse NaN."""

import numpy as np
import pytest

import partlearn


def planted(n=200, m=40, k=5, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.random((n, k))
    H = rng.random((k, m))
    return W @ H + 0.01 * rng.random((n, m))


@pytest.mark.parametrize("solver", ["hals", "anls", "mu"])
def test_hidden_entries_are_predicted_near_the_noise_level(solver):
    X = planted()
    rng = np.random.default_rng(1)
    hidden = rng.random(X.shape) < 0.3
    Xn = np.where(hidden, np.nan, X)
    model = partlearn.NMF(5, solver=solver, init="nndsvda", max_iter=500, tol=0, random_state=0)
    W = model.fit_transform(Xn)
    pred = W @ model.components_
    rel = np.linalg.norm((pred - X)[hidden]) / np.linalg.norm(X[hidden])
    assert rel < 0.05, rel
    # reconstruction_err_ is over the observed entries.
    err = np.linalg.norm((pred - X)[~hidden])
    assert model.reconstruction_err_ == pytest.approx(err, rel=1e-6)
    # transform encodes incomplete samples on their observed features.
    W2 = model.transform(Xn[:20])
    assert np.all(np.isfinite(W2)) and W2.shape == (20, 5)
    assert np.linalg.norm((W2 @ model.components_ - X[:20])[hidden[:20]]) / np.linalg.norm(X[:20][hidden[:20]]) < 0.1


def test_kl_with_missing_entries_reports_the_divergence_of_the_observed_ones():
    X = planted()
    hidden = np.random.default_rng(2).random(X.shape) < 0.2
    Xn = np.where(hidden, np.nan, X)
    model = partlearn.NMF(5, solver="mu", beta_loss="kullback-leibler", max_iter=300, tol=0, random_state=0)
    W = model.fit_transform(Xn)
    WH = W @ model.components_
    obs = ~hidden
    d = np.sum(X[obs] * np.log(X[obs] / WH[obs]) - X[obs] + WH[obs])
    assert model.reconstruction_err_ == pytest.approx(np.sqrt(2 * d), rel=1e-6)


def test_infinities_and_samples_without_observed_entries_are_refused():
    X = planted()
    Xi = X.copy()
    Xi[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        partlearn.NMF(5).fit(Xi)
    # A sample with no observed entry has no code: named, not a silent zero.
    Xe = X.copy()
    Xe[3, :] = np.nan
    with pytest.raises(ValueError, match="sample 3"):
        partlearn.NMF(5, max_iter=20).fit(Xe)


def test_sparse_nmf_still_refuses_nan():
    X = planted()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        partlearn.SparseNMF(3, max_iter=10).fit(X)
