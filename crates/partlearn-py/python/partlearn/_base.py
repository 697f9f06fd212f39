"""What every partlearn estimator shares: input validation in scikit-learn's wording, seeds from
``random_state``, the warnings of a fit raised as Python warnings, and ``save`` (a run folder
that the command-line tool reads)."""

import json
import numbers
import os
import sys
import warnings

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state
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


def _history(records):
    """The history as a structured array: ``iter``, ``objective``, ``rel_error``, ``seconds``."""
    dtype = [("iter", np.int64), ("objective", np.float64), ("rel_error", np.float64), ("seconds", np.float64)]
    return np.array([tuple(r) for r in records], dtype=dtype)


# The run.json method of each estimator class; ``SparseAutoencoder`` takes its model's kind
# (``ae`` or ``asym-ae``). ``load_run`` reads the table the other way.
_METHOD_OF_CLASS = {
    "NMF": "nmf",
    "SparseNMF": "sparse-nmf",
    "SSNMF": "ssnmf",
    "HierarchicalNMF": "hnmf",
    "DeepNMF": "deep-nmf",
    "NeuralNMF": "neural-nmf",
}


def _json_params(estimator):
    """The estimator's parameters that JSON can hold (callables and RandomState instances are
    left out), for run.json when the library's options of the fit are not known."""
    out = {}
    for name, value in estimator.get_params(deep=False).items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, tuple):
            value = list(value)
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        out[name] = value
    return out


class _RunMixin:
    """``save(path)``: a fitted estimator as a run folder of the command-line tool
    (model.safetensors, run.json, history.jsonl), which ``partlearn transform``, ``partlearn
    eval``, ``partlearn report`` and :func:`partlearn.load_run` read.

    Every estimator gives its model as model-file bytes (``_model_bytes()``); the rest of the
    record has defaults that an estimator refines by overriding:

    - ``_run_method()``: run.json's ``method`` (default: from the class name, or the model's
      kind);
    - ``_run_options()``: the library's options of the fit (run.json ``part.options``); default
      ``{"estimator": class name, "params": the JSON-able get_params()}``, which ``load_run``
      reads back as the estimator's parameters;
    - ``_run_part()``: the whole ``part`` as a dict (default: built by the library from the
      model, the method and the options);
    - ``_run_supervision()``: ``none``, ``semi`` or ``full`` for layer models (default
      ``none``).
    """

    def _model_bytes(self):
        """The bytes of the fitted model's model file (what ``partlearn fit`` writes)."""
        check_is_fitted(self)
        return self._model

    def _saved_model_bytes(self):
        """What ``save`` writes as model.safetensors (the model, and whatever the method's
        command stores beside it)."""
        return self._model_bytes()

    def _load_record(self, record, history):
        """What run.json tells of the fit (``load_run``); estimators add their own."""

    def _run_method(self):
        name = type(self).__name__
        if name in _METHOD_OF_CLASS:
            return _METHOD_OF_CLASS[name]
        return _native.model_info(self._model_bytes())["kind"]

    def _run_options(self):
        options = {"estimator": type(self).__name__, "params": _json_params(self)}
        classes = getattr(self, "classes_", None)
        if classes is not None:
            try:
                # The labels of a classifier, so that ``load_run`` predicts them back.
                options["classes"] = json.loads(json.dumps(np.asarray(classes).tolist(), allow_nan=False))
            except (TypeError, ValueError):
                pass
        return options

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
                "n_samples": int(fit_data.get("n_samples", 0)),
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
                "rel_error": finite(last.get("rel_error")),
                "warnings": list(getattr(self, "_fit_warnings", [])),
            },
            "seed": int(seed) % 2**64,
            "threads": int(getattr(self, "n_threads", 1)),
            "command": [f"partlearn {_native.__version__} (Python)", repr(self)],
        }

    def save(self, path, *, overwrite=False):
        """Writes the fitted estimator as a run folder of the command-line tool.

        The folder holds ``model.safetensors`` (the model, as ``partlearn fit`` writes it),
        ``run.json`` (method, options, how the fit ended) and ``history.jsonl``; ``partlearn
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
        options = self._run_options()
        history = self._run_history()
        part = self._run_part()
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
        check_is_fitted(self)
        X = check_array(X, dtype=[np.float64, np.float32])
        return _native.model_decode(self._model, X)

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
