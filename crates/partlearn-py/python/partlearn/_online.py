"""``MiniBatchNMF``: online (mini-batch) NMF with ``sklearn.decomposition.MiniBatchNMF``'s
parameters and attributes, computed by partlearn's online solver (METHODS.md §11.3)."""

import numpy as np
import scipy.sparse as sp
from numbers import Integral, Real
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _native
from ._base import _check_x, _csr_parts, _seed, _verbose_callback
from ._nmf import NMF, _BaseNMF

_ENCODE = {"beta_loss": 2.0, "codes_l1": 0.0, "codes_l2": 0.0, "method": "exact", "max_iter": 1000, "tol": 1e-5}


class MiniBatchNMF(_BaseNMF):
    """Online NMF ``X ≈ W H`` (Mairal et al. 2010) for the Frobenius loss: a drop-in for
    ``sklearn.decomposition.MiniBatchNMF``'s Frobenius case.

    Each mini-batch's codes are solved by coordinate descent against the current components,
    then the sufficient statistics ``A = Σ hhᵀ``, ``B = Σ hx`` (forgetting ``forget_factor``
    per pass) update the components by HALS sweeps. Memory is O(batch·n_features +
    n_components·n_features), independent of n_samples (the library never keeps all codes; the
    codes ``fit_transform`` returns come from a final pass with ``transform``'s exact encode).
    The same stopping rules as scikit-learn: ``tol`` on the change of the components per
    batch, ``max_no_improvement`` batches without a new minimum of the smoothed batch cost,
    ``max_iter`` passes. ``fresh_restarts`` solves every batch's codes to ``tol`` (at most
    ``fresh_restarts_max_iter`` sweeps) rather than 10 sweeps.

    A scipy.sparse ``X`` (any format, taken as CSR) is streamed by sparse batches, never
    densified, in ``fit``, ``partial_fit`` and ``transform``.

    Differences from scikit-learn: the Frobenius loss only, no penalties (``alpha_W``,
    ``alpha_H``), and the codes of a batch always start from zero (scikit-learn warm-starts
    them from its stored codes).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
    n_components_ : int
    n_iter_ : int
        Passes over the data started (``ceil(n_steps_ / batches per pass)``).
    n_steps_ : int
        Mini-batch steps run.
    reconstruction_err_ : float
        ``‖X − W H‖_F`` with the returned codes.
    history_ : structured array, one record per pass.

    Notes
    -----
    ``save`` writes an ``nmf`` run folder (as ``partlearn fit nmf --solver online``), which
    :func:`partlearn.load_run` gives back as a MiniBatchNMF; ``n_steps_`` and the sufficient
    statistics are not saved: ``partial_fit`` after loading continues from the components with
    fresh statistics (as after ``fit``).
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None, StrOptions({"auto"})],
        "init": [StrOptions({"random", "nndsvd", "nndsvda", "nndsvdar"}), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "beta_loss": [StrOptions({"frobenius", "kullback-leibler", "itakura-saito"}), Real],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_no_improvement": [Interval(Integral, 1, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "alpha_W": [Interval(Real, 0, None, closed="left")],
        "alpha_H": [Interval(Real, 0, None, closed="left"), StrOptions({"same"})],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "forget_factor": [Interval(Real, 0, 1, closed="right")],
        "fresh_restarts": ["boolean"],
        "fresh_restarts_max_iter": [Interval(Integral, 1, None, closed="left")],
        "transform_max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "n_threads": [Interval(Integral, 0, None, closed="left")],
        "max_seconds": [Interval(Real, 0, None, closed="neither"), None],
        "callback": [callable, None],
    }

    _sparse_input = True

    def __init__(
        self,
        n_components="auto",
        *,
        init=None,
        batch_size=1024,
        beta_loss="frobenius",
        tol=1e-4,
        max_no_improvement=10,
        max_iter=200,
        alpha_W=0.0,
        alpha_H="same",
        l1_ratio=0.0,
        forget_factor=0.7,
        fresh_restarts=False,
        fresh_restarts_max_iter=30,
        transform_max_iter=None,
        random_state=None,
        verbose=0,
        n_threads=1,
        max_seconds=None,
        callback=None,
    ):
        self.n_components = n_components
        self.init = init
        self.batch_size = batch_size
        self.beta_loss = beta_loss
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.max_iter = max_iter
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.forget_factor = forget_factor
        self.fresh_restarts = fresh_restarts
        self.fresh_restarts_max_iter = fresh_restarts_max_iter
        self.transform_max_iter = transform_max_iter
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads
        self.max_seconds = max_seconds
        self.callback = callback

    @classmethod
    def _params_from_run(cls, options):
        """The parameters of the estimator that a run of ``partlearn fit nmf --solver online``
        with these options (run.json ``part.options``: the mini-batch options, the NMF ones
        under ``nmf``) describes."""
        o = dict(options)
        nmf = NMF._params_from_run(o["nmf"])
        shared = ("n_components", "init", "tol", "max_iter", "random_state", "n_threads", "max_seconds")
        params = {name: nmf[name] for name in shared}
        params.update(
            batch_size=int(o["batch_size"]),
            forget_factor=float(o.get("forget_factor", 0.7)),
            fresh_restarts=bool(o.get("fresh_restarts", False)),
            fresh_restarts_max_iter=int(o.get("fresh_restarts_max_iter", 30)),
            max_no_improvement=o.get("max_no_improvement"),
        )
        return params

    def _check_supported(self):
        if self.beta_loss not in ("frobenius", 2, 2.0):
            raise ValueError(
                f"Invalid beta_loss parameter: MiniBatchNMF here minimizes the Frobenius loss only, got {self.beta_loss!r}; use partlearn.NMF(solver='mu') for other losses."
            )
        if self.alpha_W != 0 or self.alpha_H not in ("same", 0, 0.0):
            raise ValueError("MiniBatchNMF here has no penalties: set alpha_W = 0 and alpha_H = 'same' (or 0).")

    def _k(self, X):
        return X.shape[1] if self.n_components in ("auto", None) else int(self.n_components)

    def _common(self, X):
        return dict(
            init="auto" if self.init is None else self.init,
            # scikit-learn: batches of min(batch_size, n_samples) rows.
            batch_size=min(int(self.batch_size), X.shape[0]),
            tol=float(self.tol),
            forget_factor=float(self.forget_factor),
            fresh_restarts=bool(self.fresh_restarts),
            fresh_restarts_max_iter=int(self.fresh_restarts_max_iter),
            seed=_seed(self.random_state),
            threads=int(self.n_threads),
        )

    def fit_transform(self, X, y=None, W=None, H=None):
        """Learns the components from ``X`` by mini-batches and returns its codes ``W`` (a final
        streaming pass with ``transform``'s encode).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), entries ≥ 0
        y, W, H : ignored (custom starts are not supported)

        Returns
        -------
        W : ndarray of shape (n_samples, n_components)
        """
        self._validate_params()
        self._check_supported()
        X = _check_x(self, X, reset=True, accept_sparse=True)
        out = _native.minibatch_nmf_fit(
            _csr_parts(X) if sp.issparse(X) else X,
            n_components=self._k(X),
            max_iter=int(self.max_iter),
            max_no_improvement=None if self.max_no_improvement is None else int(self.max_no_improvement),
            max_seconds=None if self.max_seconds is None else float(self.max_seconds),
            callback=_verbose_callback(self.verbose, self.callback),
            **self._common(X),
        )
        self.n_steps_ = int(out["n_steps"])
        self._online_state = None
        return self._store(out, X)

    def partial_fit(self, X, y=None, W=None, H=None):
        """One mini-batch step on ``X`` (the whole of ``X`` is the batch). The first call
        initializes the components from ``X`` and fixes the forgetting per step to
        ``forget_factor ** (batch_size / len(X))``, as scikit-learn does.

        Returns
        -------
        self
        """
        has = hasattr(self, "components_")
        if not has:
            self._validate_params()
            self._check_supported()
        X = _check_x(self, X, reset=not has, accept_sparse=True)
        state = getattr(self, "_online_state", None)
        if has and state is None:
            # After ``fit``: continue from its components with fresh statistics.
            k, m = self.components_.shape
            state = {
                "components": np.ascontiguousarray(self.components_, dtype=X.dtype),
                "stat_a": np.zeros((k, k), dtype=X.dtype),
                "stat_b": np.zeros((k, m), dtype=X.dtype),
                "rho": float(self.forget_factor) ** (min(self.batch_size, X.shape[0]) / X.shape[0]),
                "n_steps": int(getattr(self, "n_steps_", 0)),
            }
        elif state is not None:
            state = {key: (np.ascontiguousarray(v, dtype=X.dtype) if isinstance(v, np.ndarray) else v) for key, v in state.items()}
        k = self.components_.shape[0] if has else self._k(X)
        data = _csr_parts(X) if sp.issparse(X) else X
        out = _native.minibatch_nmf_partial_fit(data, n_components=k, state=state, **self._common(X))
        self._online_state = out
        self.components_ = out["components"]
        self.n_components_ = k
        self.n_steps_ = int(out["n_steps"])
        if not has:
            self._encode = dict(_ENCODE)
            self._image_shape = None
        return self

    def transform(self, X):
        """Codes of ``X`` for the learned components (exact NNLS), as the codes of
        ``fit_transform``.

        Returns
        -------
        W : ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self)
        return super().transform(X)
