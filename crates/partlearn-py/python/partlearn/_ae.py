"""Sparse non-negative auto-encoders (METHODS.md §6) as a scikit-learn estimator:
``SparseAutoencoder``, with the shallow encoder (§6.1) or the convolutional encoder of the
asymmetric AE (§6.6), every sparsity penalty, optimizer and schedule of ``partlearn fit ae``."""

import json
import math
import os
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from . import _native
from ._base import _check_x, _ModelEstimator, _raise_warnings, _records_array, _seed, _store_fit_state

# The training run that ``save`` (and ``partlearn fit ae``) keeps in the run folder.
_CHECKPOINT_FILE = "checkpoint.safetensors"

_HISTORY_DTYPE = [
    ("epoch", np.int64),
    ("loss", np.float64),
    ("reconstruction", np.float64),
    ("sparsity", np.float64),
    ("decay", np.float64),
    ("train_mse", np.float64),
    ("val_mse", np.float64),
    ("mean_activation", np.float64),
    ("negative_decoder_fraction", np.float64),
    ("lr", np.float64),
    ("seconds", np.float64),
]

# The hyper-parameters the CLI (and so a run.json) gives each optimizer besides its learning rate.
_OPTIMIZER_DEFAULTS = {
    "sgd": {"momentum": 0.9, "nesterov": False},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "adadelta": {"rho": 0.95, "eps": 1e-7},
}


def _ae_history(records):
    """The per-epoch history as a structured array (``val_mse`` NaN without a validation split)."""
    rows = [tuple(np.nan if v is None else v for v in r) for r in records]
    return np.array(rows, dtype=_HISTORY_DTYPE)


def _epoch_callback(verbose, user_callback):
    """The observer of a training run: prints every epoch when ``verbose``, then calls the user's
    callback (``False`` from it stops training after the epoch)."""
    if not verbose and user_callback is None:
        return None

    def callback(rec):
        if verbose:
            print(
                f"Epoch {rec['iter']}: loss {rec['objective']:.6g}, relative error {rec['rel_error']:.4f}, "
                f"{rec['seconds']:.1f} s"
            )
        if user_callback is not None:
            return user_callback(rec)
        return None

    return callback


class SparseAutoencoder(_ModelEstimator):
    """Sparse non-negative auto-encoder (METHODS.md §6): codes ``h = σ(encoder(x)) ∈ (0, 1)^k``,
    reconstructions ``x̂ = σ_d(h W_d + b_d)`` with a non-negative decoder ``W_d`` whose rows are
    the parts (``components_``), trained by mini-batches to minimize
    ``reconstruction + β·sparsity penalty [+ asymmetric weight decay]``.

    The same training as ``partlearn fit ae`` / ``partlearn fit asym-ae``: with the same data,
    options and seed (``random_state=s`` is ``--seed s``) the model is the same bits, in float32
    as the CLI's default ``--dtype f32`` or in float64.

    Parameters
    ----------
    n_components : int, default=100
        Code size ``k`` (number of parts); larger than ``n_features`` is allowed.
    architecture : {"shallow", "asymmetric"}, default="shallow"
        The encoder: one dense layer with a sigmoid (§6.1), or the convolutional encoder of the
        asymmetric AE (§6.6: conv 64 4×4/2, conv 128 4×4/2 + batch norm, dense 1024 + batch
        norm, dense k, LeakyReLU 0.1 between, sigmoid codes), which reads each sample as an image
        of ``image_shape``. The decoder is one dense layer in both.
    image_shape : tuple (height, width) or None, default=None
        How a sample's features form an image (row-major pixels, ``height · width =
        n_features``); one of the two may be -1, as in ``numpy.reshape`` (``(1, -1)``: each
        sample a one-row signal). None: square images (28 × 28 for 784 features) for the
        asymmetric architecture, which refuses other feature counts; no image shape for the
        shallow one, where the shape is only recorded in the model (for figures and metrics).
    sparsity : {"kl", "l2", "eps-l1", "log", "l1", "hoyer", "none"} or None, default="kl"
        Penalty on the codes (§6.3): on the mean activation ``ρ̂_j`` of each code unit over a
        mini-batch, with target ``p``: Kullback-Leibler "kl", squared "l2", ``√((p − ρ̂)² + ε)``
        "eps-l1", ``log(1 + (p − ρ̂)²)`` "log"; on the codes themselves: their mean L1 norm
        "l1", or ``|hoyer_target − Hoyer sparseness|`` "hoyer"; "none" (or None): no penalty.
    beta : float, default=1e-3
        Weight ``β`` of the sparsity penalty.
    p : float in (0, 1), default=0.05
        Target mean activation of the penalties on ``ρ̂``.
    eps : float > 0, default=1e-6
        ``ε`` of "eps-l1".
    hoyer_target : float in (0, 1), default=0.6
        Target sparseness of "hoyer".
    nonneg : {"project", "none"} or None, default="project"
        Non-negativity of the decoder (§6.4): "project" clips ``W_d`` at 0 after every
        optimizer step (the reference); "none" (or None) leaves it free (use the asymmetric
        weight decay for a soft constraint).
    decay_lambda : float, default=0.0
        Asymmetric weight decay ``λ`` on the decoder weights (NCAE; 0: off):
        ``(λ/2) Σ (α·w²·[w > 0] + w²·[w < 0])``.
    decay_alpha : float, default=0.0
        Its factor ``α`` on the positive weights (0: only negative weights decay).
    loss : {"mse", "bce"}, default="mse"
        Reconstruction loss; binary cross-entropy needs ``decoder_activation="sigmoid"`` and
        data in [0, 1].
    reduction : {"mean", "sum"}, default="mean"
        Per-image reduction of the reconstruction loss: mean over pixels (Keras, the reference)
        or sum (which weighs it ``n_features`` times more against the penalty; METHODS.md §6.5).
    decoder_activation : {"leaky-relu", "sigmoid", "relu", "identity"}, default="leaky-relu"
        Output activation ``σ_d``.
    negative_slope : float in [0, 1), default=0.1
        Slope of "leaky-relu" below 0.
    optimizer : {"adadelta", "adam", "sgd"}, default="adadelta"
        Adadelta as Keras (ρ 0.95, ε 1e-7; the reference), Adam (β₁ 0.9, β₂ 0.999, ε 1e-8) or
        SGD with momentum 0.9.
    learning_rate : float or None, default=None
        None: the optimizer's default (1.0 for Adadelta, 1e-3 for Adam, 0.01 for SGD).
    schedule : str, default="constant"
        Learning-rate schedule: "constant", "step:EVERY:FACTOR" (e.g. "step:10:0.5"),
        "exp:GAMMA" (e.g. "exp:0.98") or "cosine" (over ``max_iter`` epochs).
    batch_size : int, default=128
        Samples per mini-batch.
    max_iter : int, default=50
        Epochs.
    tol : float, default=0.0
        Every 10 epochs, stop when ``sqrt(2·loss)`` fell by less than ``tol`` times its value
        at the first epoch (0: off). When ``max_iter`` ends a fit with ``tol > 0`` first, a
        ``ConvergenceWarning`` says so.
    val_fraction : float in [0, 1), default=0.0
        Share of the samples held out (a seeded random subset) for the validation MSE of each
        epoch (``history_["val_mse"]``).
    patience : int or None, default=None
        Early stopping: stop when the validation MSE has not improved for this many epochs and
        keep the best epoch's weights (needs ``val_fraction > 0``).
    shuffle : bool, default=True
        Shuffle the samples every epoch (seeded by ``random_state`` and the epoch).
    random_state : int, RandomState instance or None, default=None
        Seed of the initialization (Glorot-uniform weights), the validation split and the
        epochs' orders; an int is the library's seed itself.
    verbose : int, default=0
        Print the loss after every epoch.
    n_threads : int, default=1
        Worker threads (1 = sequential, 0 = all cores); the model is the same bits with any
        number.
    max_seconds : float or None, default=None
        Time budget of a ``fit`` (or of a ``partial_fit`` call), checked between mini-batches.
    callback : callable or None, default=None
        Called after every epoch with a dict (``iter``: the epoch, ``objective``: its mean loss,
        ``rel_error``: ``‖X̂ − X‖_F / ‖X‖_F`` over its batches, ``seconds``); returning ``False``
        stops training, keeping what it learned.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The decoder weights ``W_d`` (the parts), of X's float dtype.
    n_components_ : int
    n_iter_ : int
        Epochs trained (all ``partial_fit`` calls included).
    history_ : structured ndarray of shape (n_iter_,)
        Per epoch: ``epoch``, ``loss`` (mean over its batches), ``reconstruction``,
        ``sparsity``, ``decay`` (the loss's terms), ``train_mse``, ``val_mse`` (NaN without a
        validation split), ``mean_activation``, ``negative_decoder_fraction``, ``lr``,
        ``seconds``.
    loss_ : float
        The last epoch's loss (NaN before a complete epoch).
    stop_reason_ : str
        "max_iter", "converged", "early_stopped", "time_limit" or "interrupted".
    image_shape_ : tuple (height, width) or None
        The image shape the model was built for.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` has feature names that are all strings.

    Notes
    -----
    ``partial_fit`` trains one more epoch on the ``X`` it is given, continuing the run of the
    earlier ``partial_fit`` or ``fit`` calls (model, optimizer state, epoch count): ``k`` calls
    on the same ``X`` give the same bits as ``fit`` with ``max_iter=k``, whatever the optimizer
    and schedule (``max_iter`` stays the horizon of the cosine schedule; beyond it the horizon
    follows the epochs done). Between calls only ``max_iter``, ``tol``, ``n_threads`` and
    ``max_seconds`` may change; ``val_fraction`` holds out a share of each call's ``X``. After a
    ``fit`` that stopped early, ``partial_fit`` continues from the best epoch's weights (the
    fitted model).

    ``transform`` is the encoder's forward pass (batch normalization with its running
    statistics), ``inverse_transform`` the decoder's. A fitted estimator pickles with its
    training run, so ``partial_fit`` continues after unpickling with the same bits.

    ``save`` keeps the training run in the run folder (``checkpoint.safetensors``, as
    ``partlearn fit ae`` does), so ``partial_fit`` of the estimator that
    :func:`partlearn.load_run` gives back continues it with the same bits too. A run folder
    without one (or a bare model file) continues from the model's weights and epoch count with
    a fresh optimizer state: the optimizer's moments and step count restart (so do the early
    stopping's patience and the mid-epoch position).

    Examples
    --------
    >>> import numpy as np
    >>> from partlearn import SparseAutoencoder
    >>> X = np.random.RandomState(0).rand(200, 16)
    >>> ae = SparseAutoencoder(4, optimizer="adam", learning_rate=0.01, max_iter=5, random_state=0)
    >>> codes = ae.fit_transform(X)
    >>> codes.shape, ae.components_.shape, bool((ae.components_ >= 0).all())
    ((200, 4), (4, 16), True)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "architecture": [StrOptions({"shallow", "asymmetric"})],
        "image_shape": [tuple, list, None],
        "sparsity": [StrOptions({"kl", "l2", "eps-l1", "log", "l1", "hoyer", "none"}), None],
        "beta": [Interval(Real, 0, None, closed="left")],
        "p": [Interval(Real, 0, 1, closed="both")],
        "eps": [Interval(Real, 0, None, closed="neither")],
        "hoyer_target": [Interval(Real, 0, 1, closed="neither")],
        "nonneg": [StrOptions({"project", "none"}), None],
        "decay_lambda": [Interval(Real, 0, None, closed="left")],
        "decay_alpha": [Interval(Real, 0, None, closed="left")],
        "loss": [StrOptions({"mse", "bce"})],
        "reduction": [StrOptions({"mean", "sum"})],
        "decoder_activation": [StrOptions({"leaky-relu", "sigmoid", "relu", "identity"})],
        "negative_slope": [Interval(Real, 0, 1, closed="left")],
        "optimizer": [StrOptions({"adadelta", "adam", "sgd"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), None],
        "schedule": [str],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "val_fraction": [Interval(Real, 0, 1, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "n_threads": [Interval(Integral, 0, None, closed="left")],
        "max_seconds": [Interval(Real, 0, None, closed="neither"), None],
        "callback": [callable, None],
    }

    def __init__(
        self,
        n_components=100,
        *,
        architecture="shallow",
        image_shape=None,
        sparsity="kl",
        beta=1e-3,
        p=0.05,
        eps=1e-6,
        hoyer_target=0.6,
        nonneg="project",
        decay_lambda=0.0,
        decay_alpha=0.0,
        loss="mse",
        reduction="mean",
        decoder_activation="leaky-relu",
        negative_slope=0.1,
        optimizer="adadelta",
        learning_rate=None,
        schedule="constant",
        batch_size=128,
        max_iter=50,
        tol=0.0,
        val_fraction=0.0,
        patience=None,
        shuffle=True,
        random_state=None,
        verbose=0,
        n_threads=1,
        max_seconds=None,
        callback=None,
    ):
        self.n_components = n_components
        self.architecture = architecture
        self.image_shape = image_shape
        self.sparsity = sparsity
        self.beta = beta
        self.p = p
        self.eps = eps
        self.hoyer_target = hoyer_target
        self.nonneg = nonneg
        self.decay_lambda = decay_lambda
        self.decay_alpha = decay_alpha
        self.loss = loss
        self.reduction = reduction
        self.decoder_activation = decoder_activation
        self.negative_slope = negative_slope
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.val_fraction = val_fraction
        self.patience = patience
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads
        self.max_seconds = max_seconds
        self.callback = callback

    def fit(self, X, y=None):
        """Trains a new model on ``X`` for ``max_iter`` epochs (or until ``tol``, ``patience``,
        ``max_seconds`` or the callback stops it).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), entries ≥ 0
            float32 input gives a float32 model; C- and Fortran-ordered arrays are read in
            place (training copies them once).
        y : ignored

        Returns
        -------
        self : SparseAutoencoder
        """
        self._validate_params()
        X = _check_x(self, X, reset=True)
        self._train(X, trainer=None, epochs=None, image_shape=self._resolve_image_shape(X.shape[1]))
        return self

    def partial_fit(self, X, y=None):
        """Trains one more epoch on ``X``, continuing the run of the earlier ``fit`` or
        ``partial_fit`` calls, or of the model ``load_run`` gave (a new run at the first call of
        an unfitted estimator); see Notes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), entries ≥ 0
            Converted to the run's float dtype after the first call.
        y : ignored

        Returns
        -------
        self : SparseAutoencoder
        """
        self._validate_params()
        trainer = getattr(self, "_trainer", None)
        if trainer is None and hasattr(self, "_model"):
            trainer = self._trainer_from_model()
        X = _check_x(self, X, reset=trainer is None)
        if trainer is None:
            image_shape = self._resolve_image_shape(X.shape[1])
        else:
            X = X.astype(trainer.dtype, copy=False)
            image_shape = self.image_shape_
        self._train(X, trainer=trainer, epochs=1, image_shape=image_shape)
        return self

    def _resolve_image_shape(self, n_features):
        """``image_shape`` for samples of ``n_features`` values (see the parameter)."""
        shape = self.image_shape
        if shape is None:
            if self.architecture != "asymmetric":
                return None
            side = math.isqrt(n_features)
            if side * side != n_features:
                raise ValueError(
                    f"The asymmetric architecture reads each sample as an image, but X has {n_features} "
                    "features, which is not a square number of pixels; give image_shape=(height, width) "
                    "(or (1, -1) for one-row signals)."
                )
            return (side, side)
        if len(shape) != 2 or not all(isinstance(v, Integral) for v in shape) or min(shape) < -1 or 0 in shape:
            raise ValueError(
                f"image_shape must be (height, width), two positive ints (one may be -1), got {shape!r}."
            )
        h, w = (int(v) for v in shape)
        if h == -1 and w == -1:
            raise ValueError("image_shape can have only one -1 (the dimension that follows from n_features).")
        if h == -1 and n_features % w == 0:
            h = n_features // w
        elif w == -1 and n_features % h == 0:
            w = n_features // h
        if h * w != n_features:
            raise ValueError(
                f"image_shape={tuple(shape)!r} does not fit X's {n_features} features "
                "(height · width must equal n_features)."
            )
        return (h, w)

    def _trainer_from_model(self):
        """A training run that continues the fitted model (loaded: no run in memory) from its
        epoch count and history, with a fresh optimizer state."""
        return _native.ae_trainer_from_model(
            self._model,
            self._spec(seed=_seed(self.random_state)),
            dtype=np.asarray(self.components_).dtype.name,
            epoch=int(getattr(self, "n_iter_", 0)),
            history=json.dumps(self._run_history()),
        )

    def _store_model(self, model, dtype):
        super()._store_model(model, dtype)
        shape = _native.model_info(self._model)["image_shape"]
        self.image_shape_ = None if shape is None else tuple(shape)

    def _load_record(self, record, history, folder):
        """What the run folder tells of the training (``load_run``): ``history_``, ``loss_``,
        and the training run of its checkpoint (when it has one)."""
        self.history_ = _records_array(history, _HISTORY_DTYPE)
        self.loss_ = float(self.history_["loss"][-1]) if len(self.history_) else float("nan")
        self._fit_warnings = list(record.get("warnings", []))
        path = None if folder is None else os.path.join(folder, _CHECKPOINT_FILE)
        if path is None or not os.path.isfile(path):
            return
        with open(path, "rb") as f:
            trainer = _native.ae_trainer_from_bytes(f.read(), np.asarray(self.components_).dtype.name)
        if trainer.epoch != self.n_iter_:
            raise ValueError(
                f"{path} is at epoch {trainer.epoch}, but run.json records {self.n_iter_}: the run "
                "folder mixes two runs; remove the checkpoint (training then continues from the model) or refit"
            )
        self._trainer = trainer

    def _run_files(self):
        trainer = getattr(self, "_trainer", None)
        return [] if trainer is None else [(_CHECKPOINT_FILE, bytes(trainer.checkpoint_bytes()))]

    def _spec(self, seed):
        """The library's parameters of ``self`` (``ae_params``) with ``seed``."""
        sparsity = "none" if self.sparsity is None else self.sparsity
        nonneg = "none" if self.nonneg is None else self.nonneg
        return _native.ae_params(
            n_components=int(self.n_components),
            architecture=self.architecture,
            decoder_activation=self.decoder_activation,
            negative_slope=float(self.negative_slope),
            loss=self.loss,
            reduction=self.reduction,
            sparsity=sparsity,
            p=float(self.p),
            beta=float(self.beta),
            eps=float(self.eps),
            hoyer_target=float(self.hoyer_target),
            nonneg=nonneg,
            decay_lambda=float(self.decay_lambda),
            decay_alpha=float(self.decay_alpha),
            optimizer=self.optimizer,
            learning_rate=None if self.learning_rate is None else float(self.learning_rate),
            schedule=self.schedule,
            max_iter=int(self.max_iter),
            batch_size=int(self.batch_size),
            tol=float(self.tol),
            val_fraction=float(self.val_fraction),
            patience=None if self.patience is None else int(self.patience),
            shuffle=bool(self.shuffle),
            seed=seed,
            threads=int(self.n_threads),
            max_seconds=None if self.max_seconds is None else float(self.max_seconds),
        )

    def _train(self, X, *, trainer, epochs, image_shape):
        params = self._spec(seed=_seed(self.random_state) if trainer is None else 0)
        out = _native.ae_fit(
            X,
            params,
            trainer=trainer,
            epochs=epochs,
            image_shape=image_shape,
            callback=_epoch_callback(self.verbose, self.callback),
        )
        self._trainer = out["trainer"]
        self._store_model(out["model"], X.dtype)
        _store_fit_state(self, out, history=_ae_history(out["history"]))
        self.loss_ = float(self.history_["loss"][-1]) if len(self.history_) else float("nan")
        warnings = out["warnings"]
        if epochs is not None:
            # As scikit-learn's partial_fit, no ConvergenceWarning: max_iter does not end a run
            # trained call by call.
            warnings = [(kind, message) for kind, message in warnings if kind != "convergence"]
        _raise_warnings(warnings)

    @classmethod
    def _params_from_run(cls, options):
        """The ``__init__`` parameters of the training options a run of ``partlearn fit ae`` or
        ``fit asym-ae`` records (``run.json``'s ``options``); a missing option takes the CLI's
        default. ``image_shape`` is not among the options: it is in the model file.

        Parameters
        ----------
        options : dict

        Returns
        -------
        params : dict
        """
        d = dict(options)
        loss = dict(d.get("loss") or {})
        params = {"random_state": int(d.get("seed", 0))}
        simple = [
            ("k", "n_components"),
            ("architecture", "architecture"),
            ("epochs", "max_iter"),
            ("batch_size", "batch_size"),
            ("nonneg", "nonneg"),
            ("val_fraction", "val_fraction"),
            ("patience", "patience"),
            ("tol", "tol"),
            ("shuffle", "shuffle"),
        ]
        for key, name in simple:
            if key in d:
                params[name] = d[key]
        for key, name in [("reconstruction", "loss"), ("reduction", "reduction"), ("p", "p"), ("beta", "beta")]:
            if key in loss:
                params[name] = loss[key]
        for key in ("decay_lambda", "decay_alpha"):
            if key in loss:
                params[key] = loss[key]
        if "sparsity" in loss:
            sparsity = dict(loss["sparsity"])
            params["sparsity"] = sparsity["kind"]
            if sparsity["kind"] == "eps-l1":
                params["eps"] = sparsity["eps"]
            elif sparsity["kind"] == "hoyer":
                params["hoyer_target"] = sparsity["target"]
        if "decoder_activation" in d:
            act = dict(d["decoder_activation"])
            params["decoder_activation"] = act["kind"]
            if act["kind"] == "leaky-relu":
                params["negative_slope"] = act["slope"]
        if "optimizer" in d:
            opt = dict(d["optimizer"])
            kind = opt.pop("kind")
            params["optimizer"] = kind
            params["learning_rate"] = opt.pop("lr")
            for key, value in opt.items():
                default = _OPTIMIZER_DEFAULTS.get(kind, {}).get(key)
                if value != default:
                    raise ValueError(
                        f"The run's {kind} optimizer has {key} = {value!r}, which SparseAutoencoder does not "
                        f"offer (it uses {default!r}, as the CLI)."
                    )
        if "schedule" in d:
            s = dict(d["schedule"])
            kind = s["kind"]
            if kind == "step":
                params["schedule"] = f"step:{int(s['every'])}:{float(s['factor'])!r}"
            elif kind == "exponential":
                params["schedule"] = f"exp:{float(s['gamma'])!r}"
            else:
                params["schedule"] = kind
        return params
