"""What every partlearn estimator shares: input validation in scikit-learn's wording, seeds from
``random_state``, the warnings of a fit raised as Python warnings, and ``save`` (a run folder
that the command-line tool reads)."""

import io
import json
import numbers
import os
import sys
import warnings

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, InvalidParameterError, validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from . import _native


def _seed(random_state):
    """A 64-bit seed for the library from scikit-learn's ``random_state``: an int is the seed
    itself (``random_state=s`` is the CLI's ``--seed s``, so a run moves between the CLI and
    Python with its bits); None or a RandomState instance draws one."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        check_random_state(random_state)  # refuses what numpy refuses (< 0 or ≥ 2**32)
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


# The largest int handed to the library: its counts are usize, kept within i64 so that the sum of
# two (e.g. ``n_components + oversample``) cannot wrap. Its seeds are u64.
_INT_MAX = 2**63 - 1
_SEED_MAX = 2**64 - 1


def _check_int(value, name, *, min_value=0, max_value=_INT_MAX):
    """``value`` as an int in ``[min_value, max_value]`` (by default what the library's counts
    take), else scikit-learn's ``InvalidParameterError`` (a ValueError and a TypeError) naming
    ``name``, the value and the range; a bool is not an int here."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not min_value <= value <= max_value:
        raise InvalidParameterError(f"{name} must be an int ≥ {min_value} and ≤ {max_value}, got {value!r}")
    return int(value)


def _cli_seed(random_state):
    """A u64 seed as the CLI's ``--seed`` takes it: an int in [0, 2**64 − 1] is the seed itself;
    None or a RandomState instance draws one (as :func:`_seed`)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return _check_int(random_state, "random_state", max_value=_SEED_MAX)
    return _seed(random_state)


def _bounded_constraints(constraints):
    """scikit-learn's parameter constraints with ``_INT_MAX`` as the upper end of every int
    interval open above (a larger int would reach the library as an OverflowError)."""

    def bound(c):
        if isinstance(c, Interval) and c.type is numbers.Integral and c.right is None:
            closed = "both" if c.closed in ("left", "both") else "right"
            return Interval(numbers.Integral, c.left, _INT_MAX, closed=closed)
        return c

    return {name: [bound(c) for c in cs] if isinstance(cs, list) else cs for name, cs in constraints.items()}


def _check_x(estimator, X, *, reset, allow_nan=False, accept_sparse=False):
    """``X`` as a 2-D float32/float64 array with finite entries ≥ 0 (or NaN, a missing entry,
    with ``allow_nan``) and at least one sample and feature (int and other dtypes become
    float64); sets or checks ``n_features_in_`` and ``feature_names_in_``. The array keeps its
    memory order so that it crosses without a copy. With ``accept_sparse`` a scipy.sparse
    matrix or array becomes CSR (its stored entries finite: a missing entry of sparse data is
    not expressible)."""
    sparse = accept_sparse and sp.issparse(X)
    X = validate_data(
        estimator,
        X,
        reset=reset,
        dtype=[np.float64, np.float32],
        accept_sparse="csr" if accept_sparse else False,
        ensure_all_finite="allow-nan" if allow_nan and not sparse else True,
    )
    check_non_negative(X, f"{type(estimator).__name__} (input X)")
    if reset:
        # What ``save`` records of the training data in run.json.
        estimator._fit_data = {"n_samples": int(X.shape[0]), "dtype": X.dtype.name}
    return X


def _check_codes(estimator, X, *, accept_sparse=False):
    """Codes for ``inverse_transform``: a 2-D float32/float64 array (with ``accept_sparse`` also
    a CSR matrix) of finite entries, one column per component of the fitted ``estimator``."""
    check_is_fitted(estimator)
    X = check_array(X, dtype=[np.float64, np.float32], accept_sparse="csr" if accept_sparse else False)
    k = np.shape(estimator.components_)[0]
    if X.shape[1] != k:
        raise ValueError(
            f"The codes have {X.shape[1]} columns, but {type(estimator).__name__} has k = {k} components: "
            "give codes from transform"
        )
    return X


def _csr_parts(X):
    """A CSR matrix as the tuple the native functions read as sparse data: ``(data, indices,
    indptr, n_rows, n_cols)``, the index arrays as scipy keeps them (int32 or int64; no copy)."""
    def index(a):
        return np.ascontiguousarray(a, dtype=a.dtype if a.dtype in (np.int32, np.int64) else np.int64)

    return (np.ascontiguousarray(X.data), index(X.indices), index(X.indptr), int(X.shape[0]), int(X.shape[1]))


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_SKLEARN_DIR = os.path.dirname(os.path.abspath(sklearn.__file__))


def _caller_stacklevel():
    """The ``stacklevel`` that points a warning raised here at the user's line: the first frame
    outside partlearn and scikit-learn (whose wrappers, e.g. ``set_output`` and ``Pipeline``,
    sit between the user and the estimator)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith((_PACKAGE_DIR, _SKLEARN_DIR)):
        frame, level = frame.f_back, level + 1
    return level


def _raise_warnings(fit_warnings):
    """The library's warnings of a fit: ``ConvergenceWarning`` when max_iter ended it first,
    ``UserWarning`` otherwise, attributed to the user's line that started the fit."""
    level = _caller_stacklevel()
    for kind, message in fit_warnings:
        category = ConvergenceWarning if kind == "convergence" else UserWarning
        warnings.warn(message, category, stacklevel=level)


def _verbose_callback(verbose, user_callback):
    """The observer of a fit: prints every 10th iteration when ``verbose`` (as scikit-learn's
    NMF does), then calls the user's callback (``False`` from it stops the fit)."""
    if not verbose and user_callback is None:
        return None

    def callback(rec):
        if verbose and rec["iter"] % 10 == 0:
            print(f"Epoch {rec['iter']:02d} reached after {rec['seconds']:.3f} seconds, error: {rec['rel_error']:f}")
        if user_callback is not None:
            return user_callback(rec)
        return None

    return callback


def _store_fit_state(estimator, out, history=None):
    """What every fit leaves on the estimator: ``n_iter_``, ``history_`` (``history``, or the
    fit's records as :func:`_history`), ``stop_reason_``, ``objective_`` (when the fit has an
    objective), and the warnings that ``save`` records in run.json."""
    estimator.n_iter_ = out["n_iter"]
    estimator.history_ = _history(out["history"]) if history is None else history
    estimator.stop_reason_ = out["stop_reason"]
    if "objective" in out:
        estimator.objective_ = out["objective"]
    estimator._fit_warnings = [message for _, message in out["warnings"]]


_HISTORY_DTYPE = [("iter", np.int64), ("objective", np.float64), ("rel_error", np.float64), ("seconds", np.float64)]


def _history(records):
    """The history as a structured array: ``iter``, ``objective``, ``rel_error``, ``seconds``."""
    return np.array([tuple(r) for r in records], dtype=_HISTORY_DTYPE)


def _records_array(records, dtype):
    """history.jsonl's records (dicts) as a structured array of ``dtype``, whose every field a
    record must have (a KeyError otherwise); null is NaN."""
    rows = [tuple(np.nan if r[name] is None else r[name] for name, _ in dtype) for r in records]
    return np.array(rows, dtype=dtype)


def _nan_if_none(value):
    return np.nan if value is None else float(value)


# The run.json method of each estimator class; ``SparseAutoencoder`` takes its model's kind
# (``ae`` or ``asym-ae``). ``load_run`` reads the table the other way: a method's first class,
# unless run.json names another class of the method (``MiniBatchNMF`` fits are ``nmf`` runs).
_METHOD_OF_CLASS = {
    "NMF": "nmf",
    "MiniBatchNMF": "nmf",
    "SparseNMF": "sparse-nmf",
    "SSNMF": "ssnmf",
    "HierarchicalNMF": "hnmf",
    "DeepNMF": "deep-nmf",
    "NeuralNMF": "neural-nmf",
}


def _json_params(estimator):
    """The estimator's parameters that JSON can hold (callables and RandomState instances are
    left out; tuples and arrays become lists)."""
    out = {}
    for name, value in estimator.get_params(deep=False).items():
        if isinstance(value, (np.generic, np.ndarray)):
            value = value.tolist()
        if isinstance(value, tuple):
            value = list(value)
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        out[name] = value
    return out


# The keys of run.json's options that record the estimator itself (``_estimator_record``), beside
# the library's options of the fit (which the library's readers use; they ignore these).
_ESTIMATOR_KEYS = ("estimator", "params", "tuple_params", "classes")


def _estimator_record(estimator):
    """What run.json's options record of the estimator, so that ``load_run`` gives back its
    class and parameters: ``estimator`` (the class name), ``params`` (:func:`_json_params`) and
    ``tuple_params`` (the names of those that were tuples)."""
    params = _json_params(estimator)
    tuples = [name for name, value in estimator.get_params(deep=False).items() if isinstance(value, tuple)]
    return {"estimator": type(estimator).__name__, "params": params, "tuple_params": [n for n in tuples if n in params]}


# The training codes beside the model (as ``partlearn fit nmf --solver online`` writes them), and
# a classifier's in-sample predictions, class indices (as ``partlearn fit ssnmf`` writes them).
_CODES_FILE = "codes.npy"
_PREDICTIONS_FILE = "labels_pred.npy"


def _npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


class _RunMixin:
    """``save(path)``: a fitted estimator as a run folder of the command-line tool
    (model.safetensors, run.json, history.jsonl), which ``partlearn transform``, ``partlearn
    eval``, ``partlearn report`` and :func:`partlearn.load_run` read.

    Every estimator gives its model as model-file bytes (``_model_bytes()``); the rest of the
    record has defaults that an estimator refines by overriding:

    - ``_run_method()``: run.json's ``method`` (default: from the class name, or the model's
      kind);
    - ``_run_options()``: the library's options of the fit (run.json ``part.options``); default
      none. ``save`` adds :func:`_estimator_record` (and a classifier's ``classes``), which
      ``load_run`` reads back as the estimator's class and parameters;
    - ``_run_part()``: the whole ``part`` as a dict (default: built by the library from the
      model, the method and the options, with ``level_errors_``);
    - ``_run_supervision()``: ``none``, ``semi`` or ``full`` for layer models (default
      ``none``);
    - ``_run_files()``: ``(name, bytes)`` of files beside the model (default:
      ``training_codes_`` as codes.npy, ``transduction_`` as labels_pred.npy).

    ``load_run`` gives the fitted state back through ``_store_model`` and ``_load_record``.

    Every estimator's ``_validate_params`` bounds its int parameters by what the library takes.
    """

    def _validate_params(self):
        """scikit-learn's check of ``_parameter_constraints``, each int interval open above ending
        at ``_INT_MAX``."""
        validate_parameter_constraints(
            _bounded_constraints(self._parameter_constraints),
            self.get_params(deep=False),
            caller_name=type(self).__name__,
        )

    def _model_bytes(self):
        """The bytes of the fitted model's model file (what ``partlearn fit`` writes)."""
        check_is_fitted(self)
        return self._model

    def _saved_model_bytes(self):
        """What ``save`` writes as model.safetensors (the model, and whatever the method's
        command stores beside it)."""
        return self._model_bytes()

    def _load_record(self, record, history, folder):
        """What run.json, history.jsonl (``history``: its records) and the run ``folder`` (None for
        a bare model file) tell of the fit (``load_run``): ``history_``, ``objective_``, and for
        the layer models (and SSNMF) ``rel_error_``, ``level_errors_`` (when recorded),
        ``training_codes_`` (when stored: codes.npy, or in the model file) and, for a
        classifier, ``transduction_`` (from labels_pred.npy)."""
        self.history_ = _records_array(history, _HISTORY_DTYPE)
        self.objective_ = _nan_if_none(record.get("objective"))
        self._fit_warnings = list(record.get("warnings", []))
        part = record["part"]
        if part.get("kind") != "layers":
            return
        self.rel_error_ = _nan_if_none(record.get("rel_error"))
        if part.get("level_errors"):
            self.level_errors_ = [float(e) for e in part["level_errors"]]
        n_samples = int(record["data"]["n_samples"])
        codes = self._stored_codes(folder, n_samples)
        if codes is not None:
            self.training_codes_ = codes
        path = None if folder is None else os.path.join(folder, _PREDICTIONS_FILE)
        if is_classifier(self) and path is not None and os.path.isfile(path):
            index = np.load(path, allow_pickle=False)
            if index.shape != (n_samples,) or not np.all((index >= 0) & (index < len(self.classes_))):
                raise ValueError(
                    f"{path} does not hold one class index (0 … {len(self.classes_) - 1}) per sample: refit"
                )
            self.transduction_ = self.classes_[index.astype(np.intp)]

    def _stored_codes(self, folder, n_samples):
        """The training codes of a run: the folder's codes.npy, else the model file's, else None;
        a ValueError when they do not fit the model and the data."""
        path = None if folder is None else os.path.join(folder, _CODES_FILE)
        if path is not None and os.path.isfile(path):
            codes = np.load(path, allow_pickle=False)
        else:
            try:
                codes = _native.nmf_model_parts(self._model_bytes(), dtype=self.components_.dtype.name)["codes"]
            except ValueError:  # not an NMF model file
                return None
            if codes is None:
                return None
            path = "model.safetensors"
        expected = (n_samples, self.components_.shape[0])
        if codes.ndim != 2 or codes.shape != expected:
            raise ValueError(
                f"{path} holds codes of shape {codes.shape}, not {expected} (n_samples, n_components): refit"
            )
        return np.asarray(codes, dtype=self.components_.dtype)

    def _run_method(self):
        name = type(self).__name__
        if name in _METHOD_OF_CLASS:
            return _METHOD_OF_CLASS[name]
        return _native.model_info(self._model_bytes())["kind"]

    def _run_options(self):
        return {}

    def _recorded_options(self):
        """run.json's ``part.options``: ``_run_options()`` with :func:`_estimator_record` and a
        classifier's ``classes`` (its labels, so that ``load_run`` predicts them back)."""
        options = {**self._run_options(), **_estimator_record(self)}
        options.pop("classes", None)
        classes = getattr(self, "classes_", None)
        if classes is not None:
            try:
                options["classes"] = json.loads(json.dumps(np.asarray(classes).tolist(), allow_nan=False))
            except (TypeError, ValueError):
                pass
        return options

    def _run_files(self):
        files = []
        codes = getattr(self, "training_codes_", None)
        if codes is not None:
            files.append((_CODES_FILE, _npy_bytes(codes)))
        transduction = getattr(self, "transduction_", None)
        if transduction is not None:
            # Class indices as float64, as the command-line tool writes them.
            index = np.searchsorted(self.classes_, transduction).astype(np.float64)
            files.append((_PREDICTIONS_FILE, _npy_bytes(index)))
        return files

    def _run_part(self):
        return None

    def _run_supervision(self):
        return "none"

    def _run_history(self):
        """history_ as a list of dicts (one per iteration), if it is a structured array."""
        h = getattr(self, "history_", None)
        if not isinstance(h, np.ndarray) or h.dtype.names is None:
            return []

        def value(v):
            v = v.item()
            return None if isinstance(v, float) and not np.isfinite(v) else v

        return [{name: value(row[name]) for name in h.dtype.names} for row in h]

    def _run_header(self, history, options):
        fit_data = getattr(self, "_fit_data", {})
        dtype = fit_data.get("dtype", np.asarray(getattr(self, "components_", np.zeros(0))).dtype.name)
        info = _native.model_info(self._model_bytes())
        image_shape = info["image_shape"]
        last = history[-1] if history else {}

        def finite(v):
            return float(v) if isinstance(v, (int, float, np.number)) and np.isfinite(v) else None

        # An estimator whose fit does not go through ``_check_x`` (SSNMF) has its codes' rows.
        codes = getattr(self, "training_codes_", None)
        n_samples = fit_data.get("n_samples", 0 if codes is None else np.shape(codes)[0])
        n_iter = int(getattr(self, "n_iter_", last.get("iter", 0)) or 0)
        stop = getattr(self, "stop_reason_", None)
        if stop is None:
            max_iter = getattr(self, "max_iter", None)
            stop = "max_iter" if max_iter is not None and n_iter >= max_iter else "converged"
        seed = options.get("seed") if isinstance(options, dict) else None
        if seed is None:
            seed = self.random_state if isinstance(getattr(self, "random_state", None), (int, np.integer)) else 0
        return {
            "data": {
                "name": "in-memory array (Python)",
                "n_samples": int(n_samples),
                "n_features": int(self.n_features_in_),
                "dtype": "f32" if dtype == "float32" else "f64",
                "image_shape": list(image_shape) if image_shape is not None else None,
                "spec": None,
                "first": None,
                "subset": None,
                "data_seed": 0,
            },
            "fit": {
                "stop_reason": str(stop).replace("_", "-"),
                "n_iter": n_iter,
                "seconds": float(last.get("seconds") or 0.0),
                "objective": finite(getattr(self, "objective_", last.get("objective"))),
                "rel_error": finite(getattr(self, "rel_error_", last.get("rel_error"))),
                "warnings": list(getattr(self, "_fit_warnings", [])),
            },
            "seed": int(seed) % 2**64,
            "threads": int(getattr(self, "n_threads", 1)),
            "command": [f"partlearn {_native.__version__} (Python)", repr(self)],
        }

    def save(self, path, *, overwrite=False):
        """Writes the fitted estimator as a run folder of the command-line tool.

        The folder holds ``model.safetensors`` (the model, as ``partlearn fit`` writes it),
        ``run.json`` (method, options, how the fit ended), ``history.jsonl`` and, where the
        estimator has them, its training codes (``codes.npy``), in-sample predictions
        (``labels_pred.npy``) or training run (``checkpoint.safetensors`` of an auto-encoder,
        which ``partial_fit`` continues); ``partlearn
        transform``, ``partlearn eval`` and ``partlearn report`` read it, and
        :func:`partlearn.load_run` gives the estimator back. The folder is written aside and
        moved into place, so ``path`` never holds half a run.

        Parameters
        ----------
        path : str or path-like
            The run folder to write.
        overwrite : bool, default=False
            Replace an existing run folder at ``path``. Without it an existing ``path`` is a
            ``FileExistsError``; even with it, only a partlearn run folder is replaced (a
            file or another folder is a ``ValueError``).

        Returns
        -------
        path : str
            The run folder written.
        """
        check_is_fitted(self)
        options = self._recorded_options()
        history = self._run_history()
        part = self._run_part()
        if part is not None:
            part = {**part, "options": options}
        errors = [float(e) for e in getattr(self, "level_errors_", None) or []]
        return _native.save_run(
            os.fspath(path),
            self._saved_model_bytes(),
            method=self._run_method(),
            header=json.dumps(self._run_header(history, options)),
            part=None if part is None else json.dumps(part),
            options=json.dumps(options),
            supervision=self._run_supervision(),
            history=json.dumps(history),
            overwrite=bool(overwrite),
            level_errors=errors if errors and np.all(np.isfinite(errors)) else None,
            files=self._run_files(),
        )


class _ModelEstimator(_RunMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """An estimator whose fitted model is kept as the bytes of its model file (``self._model``,
    what ``partlearn fit`` writes as ``model.safetensors``): ``transform`` encodes and
    ``inverse_transform`` decodes through the library's one model protocol, whatever the kind of
    model (auto-encoder, deep or hierarchical NMF). Subclasses set ``n_threads``."""

    def _store_model(self, model, dtype):
        """Keeps the model bytes and reads its atoms (``components_``, of ``dtype``) back."""
        self._model = bytes(model)
        info = _native.model_info(self._model, dtype=np.dtype(dtype).name)
        self.components_ = info["components"]
        self.n_components_ = self.components_.shape[0]

    def transform(self, X):
        """Codes of ``X`` by the fitted model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), entries ≥ 0

        Returns
        -------
        codes : ndarray of shape (n_samples, n_components), of X's float dtype
        """
        check_is_fitted(self)
        X = _check_x(self, X, reset=False)
        return _native.model_transform(self._model, X, threads=self.n_threads)

    def inverse_transform(self, X):
        """Reconstructions from codes by the fitted model's decoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
        """
        return _native.model_decode(self._model, _check_codes(self, X))

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
