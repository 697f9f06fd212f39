"""What every partlearn estimator shares: input validation in scikit-learn's wording, seeds from
``random_state``, and the warnings of a fit raised as Python warnings."""

import numbers
import warnings

import numpy as np
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


def _check_x(estimator, X, *, reset):
    """``X`` as a 2-D float32/float64 array with finite entries ≥ 0 and at least one sample and
    feature (int and other dtypes become float64); sets or checks ``n_features_in_`` and
    ``feature_names_in_``. The array keeps its memory order so that it crosses without a copy."""
    X = validate_data(
        estimator,
        X,
        reset=reset,
        dtype=[np.float64, np.float32],
        accept_sparse=False,
    )
    check_non_negative(X, f"{type(estimator).__name__} (input X)")
    return X


def _raise_warnings(fit_warnings):
    """The library's warnings of a fit: ``ConvergenceWarning`` when max_iter ended it first,
    ``UserWarning`` otherwise."""
    for kind, message in fit_warnings:
        category = ConvergenceWarning if kind == "convergence" else UserWarning
        warnings.warn(message, category, stacklevel=3)


def _history(records):
    """The history as a structured array: ``iter``, ``objective``, ``rel_error``, ``seconds``."""
    dtype = [("iter", np.int64), ("objective", np.float64), ("rel_error", np.float64), ("seconds", np.float64)]
    return np.array([tuple(r) for r in records], dtype=dtype)


class _ModelEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
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
