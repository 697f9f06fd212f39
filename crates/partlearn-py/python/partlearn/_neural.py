"""``NeuralNMF`` (METHODS.md §4.3): a stack of NNLS layers trained by projected gradient descent
with the exact derivative of the layers, optionally with a classifier on the last layer."""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, StrOptions

from . import _native
from ._base import _raise_warnings, _seed, _verbose_callback
from ._deep import _LayerModel, _ranks


class NeuralNMF(_LayerModel):
    """Neural NMF (Will, Zhang, Sadovnik, Gao, Vendrow, Haddock, Molitor, Needell; METHODS.md
    §4.3): layers ``S⁽ⁱ⁾ = argmin_{S ≥ 0} ‖S⁽ⁱ⁻¹⁾ − A⁽ⁱ⁾S‖²`` (``S⁽⁻¹⁾ = X``, samples as
    columns), the ``A⁽ⁱ⁾ ≥ 0`` trained together by projected gradient descent (or Adam) through
    the exact derivative of each non-negative least-squares layer. The cost is the mean squared
    reconstruction error of the whole stack (or the energy: each layer's error); with labels
    ``y``, plus ``lam`` times a classification loss of ``B S⁽ᴸ⁾`` on the labeled samples, ``B``
    trained by its own gradient steps. Every option of ``partlearn fit neural-nmf``.

    Parameters
    ----------
    ranks : sequence of int, default=(9, 4, 2)
        ``k₀ > k₁ > … ≥ 1``: one layer per rank; ``k₀ ≤ min(n_samples, n_features)``.
    cost : {"reconstruction", "recon", "energy"}, default="reconstruction"
        The unsupervised part of the cost: ``(1/N)‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖²`` ("reconstruction", or
        "recon" as the CLI spells it) or ``Σ_i (1/N_i)‖S⁽ⁱ⁻¹⁾ − A⁽ⁱ⁾S⁽ⁱ⁾‖²`` ("energy").
    epochs : int, default=10000
        Epochs (each one forward pass and one step on every layer); a ``ConvergenceWarning``
        says when they ended a fit with ``tol`` > 0 before it was met.
    lr : float, default=1.0
        Step of the projected gradient on the layers.
    decay : float, default=1.0
        Multiply both learning rates by this every ``decay_every`` epochs.
    decay_every : int, default=1
    optimizer : {"gd", "adam"}, default="gd"
        Projected gradient descent, or Adam steps followed by the projection onto ``A ≥ 0``.
    lam : float, default=1e-4
        Weight ``λ ≥ 0`` of the classification term (only with ``y``).
    class_loss : {"l2", "ce", "cross-entropy"}, default="l2"
        Classification loss (only with ``y``): mean squared error against one-hot labels, or
        the cross-entropy of the softmax ("ce").
    lr_class : float, default=0.01
        Step of the gradient steps on the classifier ``B`` (only with ``y``).
    class_steps : int, default=30
        Gradient steps on ``B`` per epoch (only with ``y``).
    restarts : int, default=1
        Independent starts (seeds ``random_state``, +1, …); the lowest final cost is kept.
    init : {"random", "hnmf", "top-down"}, default="random"
        Starting layers: ``U[0, 1)`` entries (the reference), a hierarchical NMF (HALS, 200
        iterations per layer), or the top-down start (``fit neural-nmf --init top-down``: the
        first layer from an NMF of ``X``, each deeper one by NNLS so that its codes start at
        those of an NMF of ``X`` at its rank; it reaches the truncated-SVD bound where random
        starts may stall).
    tol : float, default=0.0
        Stop when the relative decrease of the cost over a window of epochs falls below
        ``tol``; 0 disables it (the reference trains for a fixed number of epochs).
    max_seconds : float or None, default=None
        Time budget of every start.
    unlabeled : int, float, str or None, default=-1
        The value of ``y`` that marks an unlabeled sample; None: every sample is labeled.
    random_state : int, RandomState instance or None, default=None
        Seed of the first start.
    verbose : int, default=0
        Print the relative error every 10 epochs.
    n_threads : int, default=1
        Worker threads (1 = sequential, 0 = all cores); the same bits with any number.
    callback : callable or None, default=None
        Called after every epoch (and, with ``init="hnmf"`` or ``"top-down"``, every iteration
        of the start's NMFs) with a dict (``iter``, ``objective``, ``rel_error``, ``seconds``); returning
        ``False`` stops the fit, keeping what it learned.

    Attributes
    ----------
    components_ : ndarray of shape (k_L, n_features)
        The top level's atoms in data space, ``(A⁽⁰⁾⋯A⁽ᴸ⁾)ᵀ``.
    n_components_ : int
    ranks_ : tuple of int
    components_per_layer_ : list of ndarray
        Each layer ``A⁽ⁱ⁾ᵀ``, of shape ``(k_i, k_{i-1})`` (``k_{-1}`` = n_features).
    composed_components_ : list of ndarray
        Each level's atoms in data space, ``(A⁽⁰⁾⋯A⁽ⁱ⁾)ᵀ`` of shape ``(k_i, n_features)``.
    training_codes_ : ndarray of shape (n_samples, k_L)
        The top-layer codes of the training data after the last epoch.
    classifier_ : ndarray of shape (n_classes, k_L) or None
        The classifier ``B`` (with ``y``).
    classes_ : ndarray of shape (n_classes,)
        The labels seen among the labeled samples (with ``y``).
    history_ : structured ndarray
        ``iter`` (epoch; 0 is the start), ``objective`` (the cost), ``rel_error``,
        ``seconds``.
    n_iter_ : int
        Epochs run.
    stop_reason_ : str
        "converged", "max_iter", "time_limit" or "interrupted".
    objective_ : float
        The final cost.
    rel_error_ : float
        ``‖X − A⁽⁰⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾‖_F / ‖X‖_F`` at the returned layers.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` has feature names that are all strings.

    Examples
    --------
    >>> import numpy as np
    >>> from partlearn import NeuralNMF
    >>> X = np.abs(np.random.RandomState(0).randn(60, 12))
    >>> model = NeuralNMF(ranks=(6, 3), epochs=50, lr=0.1, random_state=0).fit(X)
    >>> model.transform(X).shape, len(model.components_per_layer_)
    ((60, 3), 2)
    """

    _parameter_constraints: dict = {
        "ranks": ["array-like"],
        "cost": [StrOptions({"recon", "reconstruction", "energy"})],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "decay": [Interval(Real, 0, None, closed="neither")],
        "decay_every": [Interval(Integral, 1, None, closed="left")],
        "optimizer": [StrOptions({"gd", "adam"})],
        "lam": [Interval(Real, 0, None, closed="left")],
        "class_loss": [StrOptions({"l2", "ce", "cross-entropy"})],
        "lr_class": [Interval(Real, 0, None, closed="neither")],
        "class_steps": [Interval(Integral, 0, None, closed="left")],
        "restarts": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"random", "hnmf", "top-down"})],
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
        ranks=(9, 4, 2),
        *,
        cost="reconstruction",
        epochs=10_000,
        lr=1.0,
        decay=1.0,
        decay_every=1,
        optimizer="gd",
        lam=1e-4,
        class_loss="l2",
        lr_class=0.01,
        class_steps=30,
        restarts=1,
        init="random",
        tol=0.0,
        max_seconds=None,
        unlabeled=-1,
        random_state=None,
        verbose=0,
        n_threads=1,
        callback=None,
    ):
        self.ranks = ranks
        self.cost = cost
        self.epochs = epochs
        self.lr = lr
        self.decay = decay
        self.decay_every = decay_every
        self.optimizer = optimizer
        self.lam = lam
        self.class_loss = class_loss
        self.lr_class = lr_class
        self.class_steps = class_steps
        self.restarts = restarts
        self.init = init
        self.tol = tol
        self.max_seconds = max_seconds
        self.unlabeled = unlabeled
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads
        self.callback = callback

    def fit(self, X, y=None):
        """Trains the layers on ``X``; with ``y``, also the classifier on the last layer.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), entries ≥ 0
            float32 input gives float32 layers.
        y : array-like of shape (n_samples,), optional
            Labels, ``unlabeled`` (default -1) where unknown; at least one sample labeled.

        Returns
        -------
        self : NeuralNMF
        """
        X, classes, known = self._inputs(X, y)
        out = _native.neural_fit(
            X,
            ranks=_ranks(self),
            cost=self.cost,
            epochs=int(self.epochs),
            lr=float(self.lr),
            decay=float(self.decay),
            decay_every=int(self.decay_every),
            adam=self.optimizer == "adam",
            lam=float(self.lam),
            class_loss=self.class_loss,
            lr_class=float(self.lr_class),
            class_steps=int(self.class_steps),
            restarts=int(self.restarts),
            init=self.init,
            max_seconds=None if self.max_seconds is None else float(self.max_seconds),
            tol=float(self.tol),
            seed=_seed(self.random_state),
            threads=int(self.n_threads),
            classes=classes,
            known=known,
            callback=_verbose_callback(self.verbose, self.callback),
        )
        self._store_fit(out, X.dtype)
        _raise_warnings(out["warnings"])
        return self

    @classmethod
    def _params_from_run(cls, options):
        """The estimator's parameters from the method options of a run record (``run.json``'s
        ``part.options`` of ``partlearn fit neural-nmf``). The seed becomes ``random_state``,
        which seeds the estimator reproducibly (not with the CLI's bits). The record holds no
        time budget nor start (``--init``): they keep their defaults."""
        names = {
            "ranks": "ranks",
            "cost": "cost",
            "epochs": "epochs",
            "lr": "lr",
            "decay": "decay",
            "decay_every": "decay_every",
            "lambda": "lam",
            "class_loss": "class_loss",
            "lr_class": "lr_class",
            "class_steps": "class_steps",
            "restarts": "restarts",
            "tol": "tol",
            "seed": "random_state",
        }
        params = {names[k]: v for k, v in options.items() if k in names}
        if "ranks" in params:
            params["ranks"] = tuple(params["ranks"])
        if "adam" in options:
            params["optimizer"] = "adam" if options["adam"] else "gd"
        return params
