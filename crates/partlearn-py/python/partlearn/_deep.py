"""Layer models (METHODS.md §4): ``HierarchicalNMF``, ``DeepNMF`` and ``NeuralNMF``, each a
stack ``X ≈ A⁽⁰⁾A⁽¹⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾`` (samples as columns) whose ``transform`` gives the top layer's
codes ``S⁽ᴸ⁾``; with labels ``y`` (``-1`` for unlabeled samples) the last layer is supervised."""

from numbers import Integral, Real

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _native
from ._base import (
    _check_codes,
    _check_int,
    _check_x,
    _history,
    _ModelEstimator,
    _raise_warnings,
    _seed,
    _store_fit_state,
    _verbose_callback,
)
from ._labels import _check_xy, _encode_targets


def _ranks(estimator):
    """``ranks`` as a list of ints ≥ 1; the library checks that they decrease and fit the data."""
    ranks, name = estimator.ranks, type(estimator).__name__
    values = [] if isinstance(ranks, (str, bytes)) else np.atleast_1d(np.asarray(ranks, dtype=object)).tolist()
    if isinstance(ranks, (str, bytes)) or not all(isinstance(r, Integral) and not isinstance(r, bool) for r in values):
        raise ValueError(
            f"The 'ranks' parameter of {name} must be a sequence of ints "
            f"(one rank per layer, decreasing, e.g. (9, 4, 2)). Got {ranks!r} instead."
        )
    return [_check_int(r, f"ranks[{i}] of {name}", min_value=1) for i, r in enumerate(values)]


class _LayerModel(_ModelEstimator):
    """What the layer models share: the fit's inputs (``X`` and optional labels), the model
    file's layers, and ``transform`` / ``inverse_transform`` through the top layer."""

    def _inputs(self, X, y):
        """The checked ``X``, and the library's class indices and mask of known labels (None
        without ``y``)."""
        self._validate_params()
        if y is None:
            X = _check_x(self, X, reset=True)
            for stale in ("classes_",):
                if hasattr(self, stale):
                    delattr(self, stale)
            return X, None, None
        X, y = _check_xy(self, X, y)
        classes, known = _encode_targets(self, y, self.unlabeled)
        return X, classes, known

    def _store_model(self, model, dtype):
        """Keeps the model bytes and reads the layers back: ``components_per_layer_``,
        ``composed_components_``, ``components_`` (the top level's atoms in data space),
        ``classifier_`` (when the file has one)."""
        self._model = bytes(model)
        info = _native.deep_model_info(self._model, dtype=np.dtype(dtype).name)
        self.components_per_layer_ = list(info["layers"])
        self.composed_components_ = list(info["composed"])
        self.components_ = self.composed_components_[-1]
        self.n_components_ = self.components_.shape[0]
        self.ranks_ = tuple(c.shape[0] for c in self.composed_components_)
        self.classifier_ = info["classifier"]

    def _store_fit(self, out, dtype):
        self._store_model(out["model"], dtype)
        if out["classifier"] is not None:
            self.classifier_ = out["classifier"]
        self.training_codes_ = out["codes"]
        _store_fit_state(self, out)
        self.rel_error_ = out["rel_error"]

    def transform(self, X):
        """Top-layer codes of ``X``: the forward pass through the layers, each an exact
        non-negative least-squares solve (METHODS.md §4.3, "Transform").

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), entries ≥ 0

        Returns
        -------
        codes : ndarray of shape (n_samples, n_components_), of X's float dtype
        """
        return self.layer_codes(X)[-1]

    def layer_codes(self, X):
        """The codes of every layer of ``X`` (the forward pass), first layer first.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), entries ≥ 0

        Returns
        -------
        codes : list of ndarray of shape (n_samples, rank)
            One per layer; the last is ``transform(X)``.
        """
        check_is_fitted(self)
        X = _check_x(self, X, reset=False)
        return list(_native.deep_layer_codes(self._model, X, threads=self.n_threads))

    def inverse_transform(self, X):
        """Data back from top-layer codes: ``X @ components_`` (``A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components_)

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
        """
        X = _check_codes(self, X)
        return X @ self.components_.astype(X.dtype, copy=False)

    def predict(self, X):
        """The class of each sample: its top-layer code ``s`` by ``transform``, then
        ``argmax(B s)`` with the classifier ``B`` (``classifier_``) of a fit with labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), entries ≥ 0

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels from ``classes_``.

        Raises
        ------
        NotFittedError
            The model has no classifier: it was fitted without ``y`` (or loaded from a run
            whose model file keeps none).
        """
        check_is_fitted(self)
        if getattr(self, "classifier_", None) is None or getattr(self, "classes_", None) is None:
            raise NotFittedError(
                f"This {type(self).__name__} has no classifier: it was fitted without labels y (or "
                "loaded from a run whose model file keeps none); call fit(X, y) to predict and score."
            )
        scores = self.transform(X) @ np.asarray(self.classifier_).T
        return self.classes_[np.argmax(scores, axis=1)]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of ``predict(X)`` against the labels ``y`` (as a scikit-learn
        classifier's ``score``); needs a model fitted with labels."""
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)


_LAYER_PARAMS = {
    "ranks": ["array-like"],
    "solver": [StrOptions({"hals", "cd", "mu", "anls"})],
    "lam": [Interval(Real, 0, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "max_seconds": [Interval(Real, 0, None, closed="neither"), None],
    "unlabeled": [Integral, Real, str, None],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "n_threads": [Interval(Integral, 0, None, closed="left")],
    "callback": [callable, None],
}

_LAYER_DOC = """
    Parameters
    ----------
    ranks : sequence of int, default=(9, 4, 2)
        ``k₀ > k₁ > … ≥ 1``: one layer per rank; ``k₀ ≤ min(n_samples, n_features)``.
    solver : {"hals", "cd", "mu", "anls"}, default="hals"
        NMF solver of every layer ("cd" is "hals").
    lam : float, default=1e-5
        Weight ``λ ≥ 0`` of the label term (only with ``y``).
    max_iter : int, default=2000
        Iterations of each layer's NMF, and of the supervised / fine-tuning stage.
    tol : float, default=1e-6
        Tolerance of each stage (relative decrease of its objective; 0 disables it).
    max_seconds : float or None, default=None
        Time budget of the whole fit; a stage cut short by it ends the fit.
    unlabeled : int, float, str or None, default=-1
        The value of ``y`` that marks an unlabeled sample (``np.nan`` matches every NaN label,
        as pandas marks a missing one); None: every sample is labeled.
    random_state : int, RandomState instance or None, default=None
        Seed of every stage (layer ``i`` uses the seed + i).
    verbose : int, default=0
        Print the relative error every 10 iterations.
    n_threads : int, default=1
        Worker threads (1 = sequential, 0 = all cores); the same bits with any number.
    callback : callable or None, default=None
        Called after every iteration of every stage (each layer, then the last stage; ``iter``
        restarts at 0 with each) with a dict (``iter``, ``objective``, ``rel_error``,
        ``seconds``); returning ``False`` stops the fit, keeping what it learned.

    Attributes
    ----------
    components_ : ndarray of shape (k_L, n_features)
        The top level's atoms in data space, ``(A⁽⁰⁾⋯A⁽ᴸ⁾)ᵀ``: ``inverse_transform`` is
        ``codes @ components_``.
    n_components_ : int
        ``k_L``, the last rank.
    ranks_ : tuple of int
    components_per_layer_ : list of ndarray
        Each layer ``A⁽ⁱ⁾ᵀ``, of shape ``(k_i, k_{i-1})`` (``k_{-1}`` = n_features): row ``j``
        is how topic ``j`` of layer ``i`` combines the topics of the layer below.
    composed_components_ : list of ndarray
        Each level's atoms in data space, ``(A⁽⁰⁾⋯A⁽ⁱ⁾)ᵀ`` of shape ``(k_i, n_features)`` (the
        supertopics of METHODS.md §4.1).
    training_codes_ : ndarray of shape (n_samples, k_L)
        The fit's top-layer codes ``S⁽ᴸ⁾ᵀ``.
    classifier_ : ndarray of shape (n_classes, k_L) or None
        The label term's classifier ``B`` (with ``y``): ``predict`` gives ``argmax(B s)`` of
        the top-layer code ``s``, ``score`` its accuracy.
    classes_ : ndarray of shape (n_classes,)
        The labels seen among the labeled samples (with ``y``).
    history_ : structured ndarray
        The last stage's ``iter``, ``objective``, ``rel_error``, ``seconds``.
    layer_histories_ : list of structured ndarray
        Each layer's own NMF history.
    level_errors_ : list of float
        ``‖X − A⁽⁰⁾⋯A⁽ⁱ⁾S⁽ⁱ⁾‖ / ‖X‖`` of the stack cut after each layer.
    n_iter_ : int
        Iterations of the last stage.
    stop_reason_ : str
        "converged", "max_iter", "time_limit" or "interrupted".
    objective_ : float
        The last stage's objective at the returned factors.
    rel_error_ : float
        ``‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖_F / ‖X‖_F``.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` has feature names that are all strings.
"""


class _LayersPipeline(_LayerModel):
    """Hierarchical NMF and Deep NMF: the library's one layer pipeline, by ``_method``."""

    _method = None
    _parameter_constraints: dict = dict(_LAYER_PARAMS)

    def __init__(
        self,
        ranks=(9, 4, 2),
        *,
        solver="hals",
        lam=1e-5,
        max_iter=2000,
        tol=1e-6,
        max_seconds=None,
        unlabeled=-1,
        random_state=None,
        verbose=0,
        n_threads=1,
        callback=None,
    ):
        self.ranks = ranks
        self.solver = solver
        self.lam = lam
        self.max_iter = max_iter
        self.tol = tol
        self.max_seconds = max_seconds
        self.unlabeled = unlabeled
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads
        self.callback = callback

    def fit(self, X, y=None):
        """Fits the layers to ``X``; with ``y``, supervises the last stage.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), entries ≥ 0
            float32 input gives float32 layers.
        y : array-like of shape (n_samples,), optional
            Labels, ``unlabeled`` (default -1) where unknown; at least one sample labeled.

        Returns
        -------
        self
        """
        X, classes, known = self._inputs(X, y)
        out = _native.layers_fit(
            X,
            method=self._method,
            ranks=_ranks(self),
            solver=self.solver,
            lam=float(self.lam),
            max_iter=int(self.max_iter),
            tol=float(self.tol),
            max_seconds=None if self.max_seconds is None else float(self.max_seconds),
            seed=_seed(self.random_state),
            threads=int(self.n_threads),
            classes=classes,
            known=known,
            callback=_verbose_callback(self.verbose, self.callback),
        )
        self.level_errors_ = list(out["level_errors"])
        self.layer_histories_ = [_history(h) for h in out["layer_histories"]]
        self._store_fit(out, X.dtype)
        _raise_warnings(out["warnings"])
        return self

    @classmethod
    def _params_from_run(cls, options):
        """The estimator's parameters from the method options of a run record (``run.json``'s
        ``part.options`` of ``partlearn fit hnmf | deep-nmf``). The seed becomes
        ``random_state``, which seeds the estimator reproducibly (not with the CLI's bits)."""
        names = {
            "ranks": "ranks",
            "solver": "solver",
            "lambda": "lam",
            "max_iter": "max_iter",
            "tol": "tol",
            "max_seconds": "max_seconds",
            "seed": "random_state",
        }
        params = {names[k]: v for k, v in options.items() if k in names}
        if "ranks" in params:
            params["ranks"] = tuple(params["ranks"])
        return params


class HierarchicalNMF(_LayersPipeline):
    __doc__ = (
        """Hierarchical NMF (METHODS.md §4.1): ``X ≈ A⁽⁰⁾S⁽⁰⁾``, then ``S⁽⁰⁾ ≈ A⁽¹⁾S⁽¹⁾``, …,
    each layer an independent NMF of the previous layer's codes (errors accumulate). With
    labels ``y``, the last layer is SSNMF (:class:`SSNMF`, Frobenius terms, weight ``lam``) of
    the previous layer's codes: supervision only on the last layer.
"""
        + _LAYER_DOC
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from partlearn import HierarchicalNMF
    >>> X = np.abs(np.random.RandomState(0).randn(60, 12))
    >>> model = HierarchicalNMF(ranks=(6, 3), max_iter=200, random_state=0).fit(X)
    >>> model.transform(X).shape, [c.shape for c in model.components_per_layer_]
    ((60, 3), [(6, 12), (3, 6)])
"""
    )
    _method = "hnmf"


class DeepNMF(_LayersPipeline):
    __doc__ = (
        """Deep NMF (METHODS.md §4.2, the fully non-negative variant of Trigeorgis et al.): a
    hierarchical NMF, then every layer and the top codes fine-tuned jointly on
    ``½‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖²`` by multiplicative updates (the objective never increases). With
    labels ``y``, the label term ``(lam/2)‖L⊙(Y − BS⁽ᴸ⁾)‖²`` joins the fine-tuning.

    ``max_iter`` and ``tol`` apply to every layer's NMF and to the fine-tuning.
"""
        + _LAYER_DOC
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from partlearn import DeepNMF
    >>> X = np.abs(np.random.RandomState(0).randn(60, 12))
    >>> model = DeepNMF(ranks=(6, 3), max_iter=200, random_state=0).fit(X)
    >>> model.transform(X).shape, model.components_.shape
    ((60, 3), (3, 12))
"""
    )
    _method = "deep-nmf"
