"""partlearn.NMF on scipy.sparse input: the same factors as on the dense form of the same matrix
(every solver, float32 and float64), any sparse format, KL on sparse data, transform, the
refusals, and a matrix whose dense form would not fit in memory."""

import numpy as np
import pytest
import scipy.sparse as sp

import partlearn


def _sparse(n=120, m=40, density=0.15, dtype=np.float64, seed=0):
    X = sp.random(n, m, density=density, format="csr", dtype=np.float64, random_state=seed)
    X.data = X.data + 0.1
    return X.astype(dtype)


@pytest.mark.parametrize("solver", ["cd", "hals", "mu", "anls"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_and_dense_give_the_same_factors(solver, dtype):
    X = _sparse(dtype=dtype)
    # (HALS's default sweeps count the entries the products read: pinned to compare the forms.)
    kw = dict(n_components=4, solver=solver, init="random", random_state=3, max_iter=40, tol=0, hals_inner_max=3)
    ms, md = partlearn.NMF(**kw), partlearn.NMF(**kw)
    Ws, Wd = ms.fit_transform(X), md.fit_transform(X.toarray())
    assert Ws.dtype == dtype and ms.components_.dtype == dtype
    tol = 1e-9 if dtype == np.float64 else 2e-3
    scale = max(1.0, np.abs(Wd).max())
    np.testing.assert_allclose(Ws, Wd, atol=tol * scale)
    np.testing.assert_allclose(ms.components_, md.components_, atol=tol * max(1.0, np.abs(md.components_).max()))
    np.testing.assert_allclose(ms.reconstruction_err_, md.reconstruction_err_, rtol=1e-9 if dtype == np.float64 else 1e-4)
    # The error is the Frobenius norm of the residual, computed without WH.
    true = np.linalg.norm(X.toarray().astype(np.float64) - Ws.astype(np.float64) @ ms.components_.astype(np.float64))
    np.testing.assert_allclose(ms.reconstruction_err_, true, rtol=1e-6 if dtype == np.float64 else 1e-3)


def test_hals_sweeps_of_sparse_data_count_the_stored_entries():
    # 100 × 100 at 10 %, 4 components: ρ = d·m/k + m/2n = 3 for both factors with the stored
    # entries (two sweeps each), 25.5 with every entry (thirteen).
    X = _sparse(n=100, m=100, density=0.1)
    kw = dict(n_components=4, solver="hals", init="random", random_state=1, max_iter=15, tol=0)
    Ws = partlearn.NMF(**kw).fit_transform(X)
    Wd2 = partlearn.NMF(hals_inner_max=2, **kw).fit_transform(X.toarray())
    Wd = partlearn.NMF(**kw).fit_transform(X.toarray())
    np.testing.assert_allclose(Ws, Wd2, atol=1e-9 * np.abs(Wd2).max())
    assert np.abs(Ws - Wd).max() > 1e-6 * np.abs(Wd).max()


def test_compressed_fit_of_sparse_data_equals_that_of_its_dense_form():
    X = _sparse(n=150, m=60, density=0.4)
    kw = dict(n_components=4, solver="hals", init="random", random_state=2, max_iter=30, tol=0,
              compress="on", oversample=8, power_iters=1, polish=5, hals_inner_max=2)
    ms, md = partlearn.NMF(**kw), partlearn.NMF(**kw)
    Ws, Wd = ms.fit_transform(X), md.fit_transform(X.toarray())
    np.testing.assert_allclose(ms.components_, md.components_, atol=1e-9 * max(1.0, np.abs(md.components_).max()))
    np.testing.assert_allclose(Ws, Wd, atol=1e-9 * max(1.0, np.abs(Wd).max()))
    np.testing.assert_allclose(ms.reconstruction_err_, md.reconstruction_err_, rtol=1e-9)


def test_kullback_leibler_on_sparse_data():
    X = _sparse()
    kw = dict(n_components=4, solver="mu", beta_loss="kullback-leibler", init="random", random_state=1, max_iter=60, tol=0)
    ms, md = partlearn.NMF(**kw), partlearn.NMF(**kw)
    Ws, Wd = ms.fit_transform(X), md.fit_transform(X.toarray())
    np.testing.assert_allclose(Ws, Wd, atol=1e-9)
    # reconstruction_err_ at the stored entries only equals the dense divergence.
    np.testing.assert_allclose(ms.reconstruction_err_, md.reconstruction_err_, rtol=1e-10)
    h = ms.history_["objective"]
    assert np.all(np.diff(h) <= 1e-9 * h[0]), "KL MU objective increased on sparse data"


@pytest.mark.parametrize("fmt", ["csc", "coo", "lil", "dok", "bsr"])
def test_every_sparse_format_is_taken_as_csr(fmt):
    X = _sparse()
    kw = dict(n_components=3, init="nndsvda", random_state=0, max_iter=20, tol=0)
    W_ref = partlearn.NMF(**kw).fit_transform(X)
    W = partlearn.NMF(**kw).fit_transform(X.asformat(fmt))
    np.testing.assert_array_equal(W, W_ref)


def test_sparse_array_and_int64_indices():
    X = _sparse()
    A = sp.csr_array(X)
    A.indices = A.indices.astype(np.int64)
    A.indptr = A.indptr.astype(np.int64)
    kw = dict(n_components=3, init="random", random_state=0, max_iter=20, tol=0)
    np.testing.assert_array_equal(partlearn.NMF(**kw).fit_transform(A), partlearn.NMF(**kw).fit_transform(X))


def test_unsorted_and_duplicate_entries_are_summed_as_scipy_does():
    # Row 0 stores column 2 twice (0.5 + 0.25) and its columns out of order.
    data = np.array([0.5, 1.0, 0.25, 2.0, 1.5])
    indices = np.array([2, 0, 2, 1, 0])
    indptr = np.array([0, 3, 5])
    X = sp.csr_matrix((data, indices, indptr), shape=(2, 3))
    assert not X.has_canonical_format
    kw = dict(n_components=2, init="random", random_state=0, max_iter=30, tol=0, hals_inner_max=2)
    W = partlearn.NMF(**kw).fit_transform(X)
    np.testing.assert_allclose(W, partlearn.NMF(**kw).fit_transform(X.toarray()), atol=1e-12)


def test_transform_of_sparse_data_equals_that_of_its_dense_form():
    X = _sparse()
    kw = dict(n_components=5, init="random", random_state=0, max_iter=50, tol=0, hals_inner_max=2)
    model = partlearn.NMF(**kw).fit(X)
    Xt = _sparse(n=30, seed=9)
    np.testing.assert_allclose(model.transform(Xt), model.transform(Xt.toarray()), atol=1e-10)
    # fit on dense, transform sparse and the other way round.
    dense_model = partlearn.NMF(**kw).fit(X.toarray())
    np.testing.assert_allclose(dense_model.transform(Xt), model.transform(Xt), atol=1e-8)
    with pytest.raises(ValueError, match="features"):
        model.transform(_sparse(m=41))


def test_what_sparse_input_refuses():
    X = _sparse()
    neg = X.copy()
    neg.data[3] = -1.0
    with pytest.raises(ValueError, match="Negative values"):
        partlearn.NMF(n_components=2).fit(neg)
    nan = X.copy()
    nan.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        partlearn.NMF(n_components=2).fit(nan)
    with pytest.raises(ValueError, match="Itakura"):
        partlearn.NMF(n_components=2, solver="mu", beta_loss="itakura-saito").fit(X)
    with pytest.raises(ValueError, match="beta_loss"):
        partlearn.NMF(n_components=2, solver="mu", beta_loss=1.5).fit(X)
    # A sketch as wide as the 40 features compresses nothing: named, as on dense data.
    with pytest.raises(ValueError, match="oversample"):
        partlearn.NMF(n_components=2, compress="on").fit(X)
    # Estimators without a sparse path say that they need dense data.
    with pytest.raises(TypeError, match="dense data is required"):
        partlearn.SparseNMF(n_components=2).fit(X)


def test_a_matrix_whose_dense_form_would_not_fit_in_memory():
    # 200,000 × 200,000 (320 GB dense in float64) with 400,000 stored entries.
    n = 200_000
    rng = np.random.default_rng(0)
    rows = rng.integers(0, n, 400_000)
    cols = rng.integers(0, n, 400_000)
    X = sp.csr_matrix((rng.random(400_000) + 0.1, (rows, cols)), shape=(n, n))
    model = partlearn.NMF(n_components=3, init="random", random_state=0, max_iter=5, tol=0)
    W = model.fit_transform(X)
    assert W.shape == (n, 3) and model.components_.shape == (3, n)
    assert np.isfinite(model.reconstruction_err_)
    assert model.reconstruction_err_ <= np.sqrt((X.data**2).sum()) * (1 + 1e-9)


def test_a_sparse_fit_saves_a_run_the_cli_reads(tmp_path):
    X = _sparse()
    model = partlearn.NMF(n_components=3, random_state=0, max_iter=20, tol=0).fit(X)
    model.save(tmp_path / "run")
    loaded = partlearn.load_run(tmp_path / "run")
    np.testing.assert_array_equal(loaded.components_, model.components_)
    np.testing.assert_allclose(loaded.transform(X), model.transform(X), atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_minibatch_nmf_streams_sparse_batches(dtype):
    X = _sparse(n=400, m=30, density=0.3, dtype=dtype, seed=2)
    kw = dict(n_components=4, init="random", batch_size=64, max_iter=3, tol=0, max_no_improvement=None, random_state=0)
    ms, md = partlearn.MiniBatchNMF(**kw), partlearn.MiniBatchNMF(**kw)
    Ws, Wd = ms.fit_transform(X), md.fit_transform(X.toarray())
    assert Ws.dtype == dtype
    tol = 1e-9 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(ms.components_, md.components_, atol=tol * max(1.0, np.abs(md.components_).max()))
    np.testing.assert_allclose(Ws, Wd, atol=tol * max(1.0, np.abs(Wd).max()))
    np.testing.assert_allclose(ms.reconstruction_err_, md.reconstruction_err_, rtol=1e-8 if dtype == np.float64 else 1e-3)
    np.testing.assert_allclose(ms.transform(X), md.transform(X.toarray()), atol=tol * max(1.0, np.abs(Wd).max()))


def test_minibatch_partial_fit_on_sparse_batches_equals_dense():
    X = _sparse(n=300, m=25, density=0.3, seed=4)
    ms = partlearn.MiniBatchNMF(n_components=3, init="random", random_state=0)
    md = partlearn.MiniBatchNMF(n_components=3, init="random", random_state=0)
    for start in range(0, 300, 100):
        ms.partial_fit(X[start : start + 100].tocoo())
        md.partial_fit(X[start : start + 100].toarray())
    np.testing.assert_allclose(ms.components_, md.components_, atol=1e-10)
    assert ms.n_steps_ == 3
    with pytest.raises(ValueError, match="features"):
        ms.partial_fit(_sparse(n=10, m=26))
