"""NMF estimators: ``NMF`` (a drop-in for ``sklearn.decomposition.NMF``) and ``SparseNMF``
(Hoyer's sparseness constraints)."""

import json
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _native
from ._base import _RunMixin, _check_codes, _check_x, _csr_parts, _raise_warnings, _seed, _store_fit_state, _verbose_callback

_BETA = {"frobenius": 2.0, "kullback-leibler": 1.0, "itakura-saito": 0.0}
_BETA_NAME = {v: k for k, v in _BETA.items()}
# FitStats of a model that was not fitted here (loaded, or fitted before the counters existed).
_NO_STATS = {"column_sweeps": 0, "extrapolations_accepted": 0, "extrapolations_rejected": 0}


def _sparse_kl(X, W, H):
    """``D_KL(X ‖ WH)`` of a CSR ``X`` without forming ``WH``: ``Σ_nz x·log(x / (WH)) − Σ x +
    Σ WH``, with ``(WH)`` at the stored entries (in blocks of rows, O(nnz·k) work and bounded
    memory) and ``Σ WH = (1ᵀW)(H1)``."""
    W = np.asarray(W, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    d = float(W.sum(axis=0) @ H.sum(axis=1)) - float(X.sum())
    step = max(1, 2**20 // max(1, int(np.diff(X.indptr).max(initial=1))))
    for start in range(0, X.shape[0], step):
        block = X[start : start + step].tocoo()
        x = block.data.astype(np.float64)
        wh = np.maximum(np.einsum("ij,ji->i", W[start + block.row], H[:, block.col]), eps)
        nz = x > 0
        d += float(np.sum(x[nz] * np.log(x[nz] / wh[nz])))
    return d


def _beta_divergence(X, W, H, beta):
    """scikit-learn's ``reconstruction_err_``: ``sqrt(2·D_β(X ‖ WH))`` (the Frobenius norm of the
    residual for β = 2), with 0·log 0 = 0. A sparse ``X`` (β = 1 only; β = 2 comes from the
    fit) is never densified."""
    if sp.issparse(X):
        return float(np.sqrt(2 * max(_sparse_kl(X, W, H), 0.0)))
    X = np.asarray(X, dtype=np.float64)
    WH = np.asarray(W, dtype=np.float64) @ np.asarray(H, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    if beta == 2:
        d = 0.5 * np.sum((X - WH) ** 2)
    else:
        WH = np.maximum(WH, eps)
        if beta == 1:
            nz = X > 0
            d = np.sum(X[nz] * np.log(X[nz] / WH[nz])) - X.sum() + WH.sum()
        elif beta == 0:
            r = X / WH
            d = np.sum(r - np.log(np.maximum(r, eps))) - X.size
        else:
            d = np.sum(X**beta + (beta - 1) * WH**beta - beta * X * WH ** (beta - 1)) / (beta * (beta - 1))
    return float(np.sqrt(2 * max(d, 0.0)))


class _BaseNMF(_RunMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Transform, inverse transform, tags and model file of every NMF estimator: a fitted model
    is its ``components_`` and how it encodes (exact NNLS for the Frobenius loss, as its fit
    encoded the training data)."""

    # NaN entries of X are missing ones (METHODS.md §11.2), and X may be a scipy.sparse matrix
    # (never densified, METHODS.md §11.1); only NMF takes them.
    _missing_entries = False
    _sparse_input = False

    def _store(self, out, X):
        self.components_ = out["components"]
        self.n_components_ = self.components_.shape[0]
        _store_fit_state(self, out)
        self._encode = dict(out["encode"])
        self._image_shape = None
        # For run.json (``save``): the library's options of the fit, its counters, warnings.
        self._options = json.loads(out["options"])
        self._stats = json.loads(out["stats"])
        beta = self._encode["beta_loss"]
        if beta == 2:
            self.reconstruction_err_ = out["reconstruction_err"]
        else:
            # Over the observed entries: a missing one counts as reconstructed exactly.
            missing = np.zeros(0, dtype=bool) if sp.issparse(X) else np.isnan(X)
            if missing.any():
                X = np.where(missing, out["codes"] @ self.components_, X)
            self.reconstruction_err_ = _beta_divergence(X, out["codes"], self.components_, beta)
        _raise_warnings(out["warnings"])
        return out["codes"]

    def _model_bytes(self, codes=None):
        """The model file's bytes (as ``partlearn fit nmf`` writes it): ``components_``, how
        the model encodes, and ``codes`` when given."""
        check_is_fitted(self)
        H = np.asarray(self.components_)
        if H.dtype not in (np.float32, np.float64):
            H = H.astype(np.float64)
        if codes is not None:
            codes = np.ascontiguousarray(codes, dtype=H.dtype)
        return _native.nmf_model_bytes(H, codes=codes, image_shape=getattr(self, "_image_shape", None), **self._encode)

    def _store_model(self, model, dtype):
        """The fitted state of a model file's bytes (``load_run``): ``components_`` of
        ``dtype`` and how the model encodes. Returns the file's parts (with stored codes)."""
        parts = _native.nmf_model_parts(bytes(model), dtype=np.dtype(dtype).name)
        self.components_ = parts["components"]
        self.n_components_ = self.components_.shape[0]
        self._encode = dict(parts["encode"])
        self._image_shape = parts["image_shape"]
        return parts

    def _load_record(self, record, history, folder):
        """What run.json and history.jsonl tell of the fit (``load_run``): as every estimator's,
        and ``reconstruction_err_``."""
        super()._load_record(record, history, folder)
        err = record["part"].get("reconstruction_err")
        self.reconstruction_err_ = np.nan if err is None else err
        self._options = record["part"]["options"]
        self._stats = record["part"].get("stats", _NO_STATS)

    def _run_options(self):
        return getattr(self, "_options", None) or super()._run_options()

    def _run_part(self):
        err = getattr(self, "reconstruction_err_", None)
        return {
            "kind": "nmf",
            "options": self._run_options(),
            "reconstruction_err": float(err) if err is not None and np.isfinite(err) else None,
            "stats": getattr(self, "_stats", _NO_STATS),
        }

    def transform(self, X):
        """Codes of ``X`` for the learned components, held fixed: exact NNLS with the codes'
        penalty for the Frobenius loss (β = 2), multiplicative updates of the codes alone for
        other β.

        On the training data they equal ``fit_transform``'s for β = 2 (with every solver: the
        fit re-encodes its codes by the same NNLS). For β ≠ 2 (``solver="mu"``) they differ:
        ``fit_transform`` returns the codes updated together with the components during the
        fit, ``transform`` runs multiplicative updates of the codes alone against the final
        components.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), entries ≥ 0
            (for ``NMF`` also a scipy.sparse matrix, not densified)

        Returns
        -------
        W : ndarray of shape (n_samples, n_components), of X's float dtype
        """
        check_is_fitted(self)
        X = _check_x(self, X, reset=False, allow_nan=self._missing_entries, accept_sparse=self._sparse_input)
        H = np.asarray(self.components_, dtype=X.dtype)
        data = _csr_parts(X) if sp.issparse(X) else X
        return _native.nmf_transform(H, data, threads=self.n_threads, **self._encode)

    def inverse_transform(self, X):
        """Data back from codes: ``X @ components_``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_components)
            Finite codes, e.g. from ``transform``.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            Dense, of the dtype of ``X @ components_`` (as scikit-learn's NMF: float32 codes of a
            float64 model give float64).
        """
        X = _check_codes(self, X, accept_sparse=True)
        return np.asarray(X @ self.components_)

    def fit(self, X, y=None, **params):
        """Learns the model from ``X``; returns ``self``."""
        self.fit_transform(X, **params)
        return self

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.allow_nan = self._missing_entries
        tags.input_tags.sparse = self._sparse_input
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class NMF(_BaseNMF):
    """Non-negative matrix factorization ``X ≈ W H`` with ``W, H ≥ 0``: a drop-in for
    ``sklearn.decomposition.NMF`` with the same parameters and attributes, computed by
    partlearn's solvers (METHODS.md §1).

    The objective is scikit-learn's:
    ``D_β(X ‖ WH) + α_W·l1_ratio·n_features·‖W‖₁ + ½·α_W·(1 − l1_ratio)·n_features·‖W‖²
    + (the same for H with α_H and n_samples)``.

    NaN entries of ``X`` are missing, not zero (METHODS.md §11.2): the fit then uses the observed
    entries only — each code solved exactly on its own observed features (HALS, ANLS) or
    weighted MU — and ``transform`` does the same; ``reconstruction_err_`` is over the observed
    entries, and ``W @ H`` predicts the missing ones.

    A scipy.sparse ``X`` (any format; taken as CSR) is never densified (METHODS.md §11.1): every
    solver works on it by sparse products, O(nnz·k) each, with ``beta_loss`` "frobenius" or
    "kullback-leibler"; ``transform`` takes sparse data too. Its stored entries must be finite
    (a missing entry is expressed only in dense data, as NaN).

    Parameters
    ----------
    n_components : int, "auto" or None, default="auto"
        Number of components. "auto" takes it from ``H`` with ``init="custom"``, else
        ``n_features`` (as does None).
    init : {"random", "nndsvd", "nndsvda", "nndsvdar", "custom"} or None, default=None
        Start. None: "nndsvda" when ``n_components <= min(n_samples, n_features)``, else
        "random". "custom" takes ``H`` (and optionally ``W``) from ``fit_transform``.
    solver : {"cd", "hals", "mu", "anls"}, default="cd"
        "cd" and "hals": hierarchical alternating least squares (coordinate descent with
        accelerated inner repetitions and extrapolation); "mu": multiplicative updates (any
        β); "anls": alternating non-negative least squares, each factor solved exactly by
        block principal pivoting.
    beta_loss : float or {"frobenius", "kullback-leibler", "itakura-saito"}, default="frobenius"
        β of the β-divergence; other than 2 ("frobenius") needs ``solver="mu"``.
    tol : float, default=1e-4
        Stop when the relative decrease of the objective over a window of iterations falls
        below ``tol`` (0 disables the test).
    max_iter : int, default=200
        Maximum number of iterations; a ``ConvergenceWarning`` says when it ended the fit
        before ``tol`` was met.
    random_state : int, RandomState instance or None, default=None
        Seed of the random start (and of NNDSVDar's noise).
    alpha_W, alpha_H, l1_ratio : float, default=0.0, "same", 0.0
        Regularization of ``W`` and ``H`` as in scikit-learn.
    verbose : int, default=0
        Print the relative error every 10 iterations.
    n_threads : int, default=1
        Worker threads (1 = sequential, 0 = all cores); the factors are the same bits with
        any number of threads.
    max_seconds : float or None, default=None
        Time budget of the fit.
    callback : callable or None, default=None
        Called after every iteration with a dict (``iter``, ``objective``, ``rel_error``,
        ``seconds``); returning ``False`` stops the fit, keeping what it learned.
    extrapolate : bool or "auto", default="auto"
        Extrapolate after each iteration and keep the point only when it lowers the objective
        (Ang & Gillis 2019; Frobenius loss). "auto": on for "cd", "hals" and "anls", off for
        "mu", so that ``solver="mu"`` runs scikit-learn's exact iterations.
    hals_inner_max : int or None, default=None
        Solvers "cd" and "hals": the most sweeps over a factor per iteration. None: Gillis and
        Glineur's ``1 + ⌊ρ/2⌋``, ``ρ`` being the cost of the factor's products over that of one
        sweep, with the products' cost counted from the entries they read: every entry of
        dense ``X``, the stored entries of sparse ``X`` (so the two forms of one matrix may
        sweep differently by default, and give the same factors with the same value here).
    compress : {None, "on", "auto"}, default=None
        Compressed NMF, Frobenius loss: a sketch ``X ≈ U·B`` with ``n_components + oversample``
        columns (the exact leading singular subspace with an NNDSVD start, else a seeded
        randomized range finder) gives both factors' updates at a fraction of the cost; the
        reported error stays exact on ``X`` (evaluated every 10 iterations); then ``polish``
        exact iterations. "auto" sketches only where it pays
        (``l·(n_samples + n_features) ≤ n_samples·n_features / 2``) and warms up on a subset
        where there are many samples (``compress_samples``), else runs the plain solver.
    oversample : int, default=100
        With ``compress``: columns of the sketch beyond ``n_components``.
    power_iters : int, default=2
        With ``compress``: power iterations of the range finder (at most 10).
    polish : int, default=10
        With ``compress``: exact iterations after the compressed ones (within ``max_iter``; not
        with a warm start on a subset, see ``compress_samples``).
    compress_samples : "auto", "off" or int, default="auto"
        With ``compress`` on dense data with many samples: the compressed iterations run on a
        random subset of this many samples, and give the start of exact iterations on all
        samples (``max_iter`` and ``tol`` then apply as in a plain fit). "auto": ``100 ·
        n_components`` samples when the data have at least 4 times as many; "off": compressed
        iterations on all samples, then ``polish``.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
    n_components_ : int
    reconstruction_err_ : float
        ``sqrt(2·D_β(X ‖ WH))`` at the returned factors (``fit_transform``'s ``W``, which are
        re-encoded by ``transform``'s routine; ‖X − WH‖_F for β = 2), over the observed entries.
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` has feature names that are all strings.
    history_ : structured ndarray
        ``iter`` (0 is the start), ``objective``, ``rel_error`` (‖X − WH‖_F / ‖X‖_F) and
        ``seconds`` of every iteration.
    stop_reason_ : str
        "converged", "max_iter", "time_limit" or "interrupted".
    objective_ : float
        The penalized objective at the returned factors.

    Examples
    --------
    >>> import numpy as np
    >>> from partlearn import NMF
    >>> X = np.array([[1, 1], [2, 1], [3, 1.2], [4, 1], [5, 0.8], [6, 1]])
    >>> model = NMF(n_components=2, init="random", random_state=0)
    >>> W = model.fit_transform(X)
    >>> W.shape, model.components_.shape
    ((6, 2), (2, 2))
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None, StrOptions({"auto"})],
        "init": [StrOptions({"random", "nndsvd", "nndsvda", "nndsvdar", "custom"}), None],
        "solver": [StrOptions({"cd", "hals", "mu", "anls"})],
        "beta_loss": [StrOptions({"frobenius", "kullback-leibler", "itakura-saito"}), Real],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "alpha_W": [Interval(Real, 0, None, closed="left")],
        "alpha_H": [Interval(Real, 0, None, closed="left"), StrOptions({"same"})],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "verbose": ["verbose"],
        "n_threads": [Interval(Integral, 0, None, closed="left")],
        "max_seconds": [Interval(Real, 0, None, closed="neither"), None],
        "callback": [callable, None],
        "extrapolate": ["boolean", StrOptions({"auto"})],
        "hals_inner_max": [Interval(Integral, 1, None, closed="left"), None],
        "compress": [StrOptions({"on", "auto"}), None],
        "oversample": [Interval(Integral, 0, None, closed="left")],
        "power_iters": [Interval(Integral, 0, None, closed="left")],
        "polish": [Interval(Integral, 0, None, closed="left")],
        "compress_samples": [StrOptions({"auto", "off"}), Interval(Integral, 1, None, closed="left")],
    }

    _missing_entries = True
    _sparse_input = True

    def __init__(
        self,
        n_components="auto",
        *,
        init=None,
        solver="cd",
        beta_loss="frobenius",
        tol=1e-4,
        max_iter=200,
        random_state=None,
        alpha_W=0.0,
        alpha_H="same",
        l1_ratio=0.0,
        verbose=0,
        n_threads=1,
        max_seconds=None,
        callback=None,
        extrapolate="auto",
        hals_inner_max=None,
        compress=None,
        oversample=100,
        power_iters=2,
        polish=10,
        compress_samples="auto",
    ):
        self.n_components = n_components
        self.init = init
        self.solver = solver
        self.beta_loss = beta_loss
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.verbose = verbose
        self.n_threads = n_threads
        self.max_seconds = max_seconds
        self.callback = callback
        self.extrapolate = extrapolate
        self.hals_inner_max = hals_inner_max
        self.compress = compress
        self.oversample = oversample
        self.power_iters = power_iters
        self.polish = polish
        self.compress_samples = compress_samples

    @classmethod
    def _params_from_run(cls, options):
        """The parameters of the estimator that a run of ``partlearn fit nmf`` with these
        options (run.json ``part.options``) describes (``pg_tol`` and HALS' ``hals_inner_delta``
        have no parameter here and are left out)."""
        o = dict(options)
        beta = float(o.get("beta_loss", 2.0))
        init = o.get("init", "auto")
        solver = o.get("solver", "hals")
        extrapolate = bool(o.get("extrapolate", True))
        params = {
            "n_components": int(o["k"]),
            "init": None if init == "auto" else init,
            "solver": solver,
            "beta_loss": _BETA_NAME.get(beta, beta),
            "tol": float(o.get("tol", 1e-4)),
            "max_iter": int(o.get("max_iter", 200)),
            "random_state": int(o.get("seed", 0)) % 2**32,
            "alpha_W": float(o.get("alpha_w", 0.0)),
            "alpha_H": "same" if o.get("alpha_h") is None else float(o["alpha_h"]),
            "l1_ratio": float(o.get("l1_ratio", 0.0)),
            "n_threads": int(o.get("threads", 1)),
            "max_seconds": o.get("max_seconds"),
            # The library's resolved value: "auto" where it is the solver's default.
            "extrapolate": "auto" if extrapolate == (solver != "mu") else extrapolate,
            "hals_inner_max": None if o.get("hals_inner_max") is None else int(o["hals_inner_max"]),
            "polish": int(o.get("polish", 10)),
        }
        samples = o.get("compress_samples", "auto")
        params["compress_samples"] = int(samples["count"]) if isinstance(samples, dict) else samples
        compress = o.get("compress", "off")
        if isinstance(compress, dict):
            (mode, sketch), = compress.items()
            params["compress"] = mode
            params["oversample"] = int(sketch["oversample"])
            params["power_iters"] = int(sketch["power_iters"])
        return params

    def fit_transform(self, X, y=None, W=None, H=None):
        """Learns the model from ``X`` and returns its codes ``W``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), entries ≥ 0
            float32 input gives float32 factors; C- and Fortran-ordered arrays are read in
            place; sparse input is not densified.
        y : ignored
        W : array-like of shape (n_samples, n_components), optional
            Starting codes with ``init="custom"``.
        H : array-like of shape (n_components, n_features)
            Starting components with ``init="custom"`` (required then).

        Returns
        -------
        W : ndarray of shape (n_samples, n_components)
        """
        self._validate_params()
        X = _check_x(self, X, reset=True, allow_nan=True, accept_sparse=True)
        beta = _BETA[self.beta_loss] if isinstance(self.beta_loss, str) else float(self.beta_loss)
        if beta != 2 and self.solver != "mu":
            raise ValueError(
                f"Invalid beta_loss parameter: solver {self.solver!r} does not handle beta_loss = {beta!r}; use solver='mu'."
            )
        n_components = self.n_components
        if self.init == "custom":
            if H is None:
                raise ValueError(
                    "init='custom' needs the starting components H (and optionally W): "
                    "pass them as fit(X, H=H, W=W) or fit_transform(X, H=H, W=W)"
                )
            H = np.ascontiguousarray(H, dtype=X.dtype)
            if n_components in ("auto", None):
                n_components = H.shape[0]
            if H.shape != (n_components, X.shape[1]):
                raise ValueError(
                    f"Array with wrong shape passed to NMF (input H). Expected {(n_components, X.shape[1])}, but got {H.shape}."
                )
            if W is not None:
                W = np.ascontiguousarray(W, dtype=X.dtype)
                if W.shape != (X.shape[0], n_components):
                    raise ValueError(
                        f"Array with wrong shape passed to NMF (input W). Expected {(X.shape[0], n_components)}, but got {W.shape}."
                    )
        else:
            W = H = None
            if n_components in ("auto", None):
                n_components = X.shape[1]
        out = _native.nmf_fit(
            _csr_parts(X) if sp.issparse(X) else X,
            n_components=int(n_components),
            solver=self.solver,
            beta_loss=beta,
            init="auto" if self.init is None else self.init,
            max_iter=int(self.max_iter),
            tol=float(self.tol),
            max_seconds=None if self.max_seconds is None else float(self.max_seconds),
            alpha_w=float(self.alpha_W),
            alpha_h=None if self.alpha_H == "same" else float(self.alpha_H),
            l1_ratio=float(self.l1_ratio),
            seed=_seed(self.random_state),
            threads=int(self.n_threads),
            extrapolate=self.solver != "mu" if self.extrapolate == "auto" else bool(self.extrapolate),
            hals_inner_max=None if self.hals_inner_max is None else int(self.hals_inner_max),
            compress=self.compress,
            oversample=int(self.oversample),
            power_iters=int(self.power_iters),
            polish=int(self.polish),
            compress_samples=self.compress_samples if isinstance(self.compress_samples, str) else int(self.compress_samples),
            w_init=W,
            h_init=H,
            callback=_verbose_callback(self.verbose, self.callback),
        )
        return self._store(out, X)


class SparseNMF(_BaseNMF):
    """NMF with Hoyer's sparseness constraints (Hoyer 2004; METHODS.md §2): each atom, and/or
    the codes, projected to a target sparseness ``s ∈ [0, 1]`` (0: all entries equal, 1: one
    non-zero) after every projected-gradient step.

    Parameters
    ----------
    n_components : int, default=10
    atom_sparsity : float in [0, 1] or None, default=None
        Sparseness ``s_W`` of every atom (a row of ``components_``); None: unconstrained.
    code_sparsity : float in [0, 1] or None, default=None
        Sparseness ``s_H`` of the codes; None: unconstrained. The report's part-based baseline
        uses 0.6.
    code_constraint : {"components", "samples"}, default="components"
        What ``code_sparsity`` constrains: each component's activations across samples
        (Hoyer's reference) or each sample's code.
    max_iter : int, default=1000
    tol : float, default=1e-4
    max_seconds : float or None, default=None
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
    n_threads : int, default=1
    callback : callable or None, default=None
        As in :class:`NMF`.

    Attributes
    ----------
    As :class:`NMF`, and
    training_codes_ : ndarray of shape (n_samples, n_components)
        The fit's codes, which satisfy the code sparseness constraint.
    reconstruction_err_ : float
        ``‖X − W·components_‖_F`` at ``fit_transform``'s ``W`` (``transform``'s codes, not
        ``training_codes_``). A run of ``partlearn fit sparse-nmf`` loaded by ``load_run``
        keeps the library's value, at the fit's constrained codes.

    Notes
    -----
    ``transform`` encodes by exact NNLS on the learned atoms: a lifetime sparseness target
    binds a whole population of codes, not one sample. ``fit_transform`` returns the same
    encoding of the training data (scikit-learn's contract ``fit_transform(X) ==
    fit(X).transform(X)``, and what partlearn's evaluation protocol measures); the constrained
    codes of the fit are ``training_codes_``.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "atom_sparsity": [Interval(Real, 0, 1, closed="both"), None],
        "code_sparsity": [Interval(Real, 0, 1, closed="both"), None],
        "code_constraint": [StrOptions({"components", "samples"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_seconds": [Interval(Real, 0, None, closed="neither"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "n_threads": [Interval(Integral, 0, None, closed="left")],
        "callback": [callable, None],
    }

    def __init__(
        self,
        n_components=10,
        *,
        atom_sparsity=None,
        code_sparsity=None,
        code_constraint="components",
        max_iter=1000,
        tol=1e-4,
        max_seconds=None,
        random_state=None,
        verbose=0,
        n_threads=1,
        callback=None,
    ):
        self.n_components = n_components
        self.atom_sparsity = atom_sparsity
        self.code_sparsity = code_sparsity
        self.code_constraint = code_constraint
        self.max_iter = max_iter
        self.tol = tol
        self.max_seconds = max_seconds
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads
        self.callback = callback

    @classmethod
    def _params_from_run(cls, options):
        """The parameters of the estimator that a run of ``partlearn fit sparse-nmf`` with these
        options (run.json ``part.options``) describes."""
        o = dict(options)
        return {
            "n_components": int(o["k"]),
            "atom_sparsity": o.get("atom_sparsity"),
            "code_sparsity": o.get("code_sparsity"),
            "code_constraint": o.get("code_constraint", "components"),
            "max_iter": int(o.get("max_iter", 1000)),
            "tol": float(o.get("tol", 1e-4)),
            "max_seconds": o.get("max_seconds"),
            "random_state": int(o.get("seed", 0)) % 2**32,
            "n_threads": int(o.get("threads", 1)),
        }

    def _store_model(self, model, dtype):
        parts = super()._store_model(model, dtype)
        if parts["codes"] is not None:
            self.training_codes_ = parts["codes"]
        return parts

    def _saved_model_bytes(self):
        # As `partlearn fit sparse-nmf`: the constrained codes are stored with the model.
        return self._model_bytes(codes=getattr(self, "training_codes_", None))

    def _run_files(self):
        return []  # the training codes are in the model file

    def fit_transform(self, X, y=None):
        """Learns the model from ``X`` and returns ``transform(X)`` (see Notes)."""
        self._validate_params()
        X = _check_x(self, X, reset=True)
        out = _native.sparse_nmf_fit(
            X,
            n_components=int(self.n_components),
            atom_sparsity=None if self.atom_sparsity is None else float(self.atom_sparsity),
            code_sparsity=None if self.code_sparsity is None else float(self.code_sparsity),
            code_constraint=self.code_constraint,
            max_iter=int(self.max_iter),
            tol=float(self.tol),
            max_seconds=None if self.max_seconds is None else float(self.max_seconds),
            seed=_seed(self.random_state),
            threads=int(self.n_threads),
            callback=_verbose_callback(self.verbose, self.callback),
        )
        self.training_codes_ = self._store(out, X)
        W = self.transform(X)
        # At the returned codes (the library's error is at the constrained ones).
        self.reconstruction_err_ = _beta_divergence(X, W, self.components_, 2)
        return W
