"""``SSNMF``: semi-supervised NMF (METHODS.md §3), a transformer and a classifier that learns
from partly labeled data (``-1`` for unlabeled samples, as ``sklearn.semi_supervised``)."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _native
from ._base import _check_x, _ModelEstimator, _raise_warnings, _seed, _store_fit_state, _verbose_callback
from ._labels import _check_xy, _encode_targets


class SSNMF(ClassifierMixin, _ModelEstimator):
    """Semi-supervised NMF (Lee, Yoo & Choi 2010; Haddock et al. 2020; METHODS.md §3): a
    dictionary and a linear classifier learned together from data of which only some samples
    are labeled,

    ``min_{A,S,B ≥ 0} D₁(M⊙X ‖ M⊙AS) + lam·D₂(L⊙Y ‖ L⊙BS)``

    with ``X`` the data (samples as columns here), ``A`` the dictionary (``components_.T``),
    ``S`` the codes, ``Y`` the one-hot labels, ``B`` the classifier (``classifier_``), ``L``
    the mask of labeled samples and ``M`` an optional mask of observed entries. Each divergence
    is the Frobenius norm or the I-divergence. Fitted by multiplicative updates (the objective
    never increases).

    ``transform`` encodes new samples with the dictionary alone (exact non-negative least
    squares for a Frobenius data term, multiplicative updates for the I-divergence), and
    ``predict`` classifies them as ``argmax(B s)``.

    Parameters
    ----------
    n_components : int, default=10
        Rank ``k`` of the dictionary (at most ``min(n_samples, n_features)``).
    lam : float, default=1.0
        Weight ``λ ≥ 0`` of the label term.
    data_loss : {"frobenius", "kl"}, default="frobenius"
        ``D₁``: squared Frobenius norm or I-divergence (generalized Kullback–Leibler).
    label_loss : {"frobenius", "kl"}, default="frobenius"
        ``D₂``, the same choices.
    max_iter : int, default=1000
        Maximum number of iterations (each updates ``A``, ``B`` and ``S`` once); a
        ``ConvergenceWarning`` says when it ended the fit before ``tol`` was met.
    tol : float, default=1e-4
        Stop when the relative decrease of the objective over a window of iterations falls
        below ``tol`` (0 disables the test).
    max_seconds : float or None, default=None
        Time budget of the fit.
    unlabeled : int, float, str or None, default=-1
        The value of ``y`` that marks an unlabeled sample (scikit-learn's semi-supervised
        convention). None: every sample is labeled (e.g. for labels ``{-1, 1}``).
    random_state : int, RandomState instance or None, default=None
        Seed of the starting factors ``A, S, B ~ U[0, 1)``.
    verbose : int, default=0
        Print the relative error every 10 iterations.
    n_threads : int, default=1
        Worker threads (1 = sequential, 0 = all cores); the factors are the same bits with any
        number of threads.
    callback : callable or None, default=None
        Called after every iteration with a dict (``iter``, ``objective``, ``rel_error``,
        ``seconds``); returning ``False`` stops the fit, keeping what it learned.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The dictionary ``Aᵀ``, one atom per row.
    n_components_ : int
    classifier_ : ndarray of shape (n_classes, n_components)
        ``B``: the score of class ``c`` for a code ``s`` is ``(B s)_c``.
    classes_ : ndarray of shape (n_classes,)
        The labels seen among the labeled samples, sorted.
    transduction_ : ndarray of shape (n_samples,)
        The label of every training sample by its training code, ``argmax(B S)`` (as
        ``sklearn.semi_supervised.LabelSpreading.transduction_``).
    training_codes_ : ndarray of shape (n_samples, n_components)
        ``Sᵀ``: the fit's codes, which the label term shaped.
    n_iter_ : int
    history_ : structured ndarray
        ``iter`` (0 is the start), ``objective``, ``rel_error`` (‖X − AS‖_F / ‖X‖_F) and
        ``seconds`` of every iteration.
    stop_reason_ : str
        "converged", "max_iter", "time_limit" or "interrupted".
    objective_ : float
        The objective at the returned factors.
    rel_error_ : float
        ‖X − AS‖_F / ‖X‖_F at the returned factors.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` has feature names that are all strings.

    Examples
    --------
    >>> import numpy as np
    >>> from partlearn import SSNMF
    >>> rng = np.random.RandomState(0)
    >>> X = np.vstack([rng.rand(20, 6) * [3, 3, 3, 0.1, 0.1, 0.1],
    ...                rng.rand(20, 6) * [0.1, 0.1, 0.1, 3, 3, 3]])
    >>> y = np.array([0] * 20 + [1] * 20)
    >>> y[5:20] = y[25:] = -1          # 10 of the 40 samples labeled
    >>> model = SSNMF(n_components=2, random_state=0).fit(X, y)
    >>> model.predict(X[[0, 39]])
    array([0, 1])
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "lam": [Interval(Real, 0, None, closed="left")],
        "data_loss": [StrOptions({"frobenius", "kl"})],
        "label_loss": [StrOptions({"frobenius", "kl"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_seconds": [Interval(Real, 0, None, closed="neither"), None],
        "unlabeled": [Integral, Real, str, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "n_threads": [Interval(Integral, 0, None, closed="left")],
        "callback": [callable, None],
    }

    def __init__(
        self,
        n_components=10,
        *,
        lam=1.0,
        data_loss="frobenius",
        label_loss="frobenius",
        max_iter=1000,
        tol=1e-4,
        max_seconds=None,
        unlabeled=-1,
        random_state=None,
        verbose=0,
        n_threads=1,
        callback=None,
    ):
        self.n_components = n_components
        self.lam = lam
        self.data_loss = data_loss
        self.label_loss = label_loss
        self.max_iter = max_iter
        self.tol = tol
        self.max_seconds = max_seconds
        self.unlabeled = unlabeled
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads
        self.callback = callback

    def fit(self, X, y, data_mask=None):
        """Learns the dictionary, the codes and the classifier from ``X`` and its labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), entries ≥ 0
            float32 input gives float32 factors.
        y : array-like of shape (n_samples,)
            The label of every sample; ``unlabeled`` (default -1) where it is unknown. At least
            one sample must be labeled.
        data_mask : array-like of shape (n_samples, n_features), optional
            1 where ``X`` is observed, 0 where it is missing (the data term ignores those
            entries).

        Returns
        -------
        self : SSNMF
        """
        self._validate_params()
        X, y = _check_xy(self, X, y)
        classes, known = _encode_targets(self, y, self.unlabeled)
        if data_mask is not None:
            data_mask = np.asarray(data_mask, dtype=X.dtype)
            if data_mask.shape != X.shape:
                raise ValueError(
                    f"data_mask has shape {data_mask.shape}, but X has shape {X.shape}: give one "
                    "entry per entry of X (1 = observed, 0 = missing)"
                )
        out = _native.ssnmf_fit(
            X,
            classes,
            known,
            n_components=int(self.n_components),
            lam=float(self.lam),
            data_loss=self.data_loss,
            label_loss=self.label_loss,
            max_iter=int(self.max_iter),
            tol=float(self.tol),
            max_seconds=None if self.max_seconds is None else float(self.max_seconds),
            seed=_seed(self.random_state),
            threads=int(self.n_threads),
            data_mask=data_mask,
            callback=_verbose_callback(self.verbose, self.callback),
        )
        self._store_model(out["model"], X.dtype)
        self.training_codes_ = out["codes"]
        self.transduction_ = self.classes_[np.asarray(out["transduction"], dtype=np.intp)]
        _store_fit_state(self, out)
        self.rel_error_ = out["rel_error"]
        _raise_warnings(out["warnings"])
        return self

    def _store_model(self, model, dtype):
        """Keeps the model bytes and reads the dictionary and the classifier back."""
        super()._store_model(model, dtype)
        self.classifier_ = _native.ssnmf_classifier(self._model, dtype=np.dtype(dtype).name)

    def predict(self, X):
        """The class of each sample: its code by ``transform``, then ``argmax(B s)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), entries ≥ 0

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        check_is_fitted(self)
        X = _check_x(self, X, reset=False)
        index = _native.ssnmf_predict(self._model, X, threads=self.n_threads)
        return self.classes_[np.asarray(index, dtype=np.intp)]

    @classmethod
    def _params_from_run(cls, options):
        """The estimator's parameters from the method options of a run record (``run.json``'s
        ``part.options`` of ``partlearn fit ssnmf``). The seed becomes ``random_state``, which
        seeds the estimator reproducibly (not with the CLI's bits)."""
        names = {
            "k": "n_components",
            "lambda": "lam",
            "data_loss": "data_loss",
            "label_loss": "label_loss",
            "max_iter": "max_iter",
            "tol": "tol",
            "max_seconds": "max_seconds",
            "seed": "random_state",
        }
        return {names[k]: v for k, v in options.items() if k in names}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # argmax(B s) has no intercept: its classes are cones from the origin, and scaling a
        # sample never changes its class. scikit-learn's reference problem (three blobs in two
        # features, shifted to X ≥ 0) has two classes along nearly the same direction, which
        # no such classifier separates to its 0.83 accuracy.
        tags.classifier_tags.poor_score = True
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
