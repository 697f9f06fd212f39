"""What every partlearn estimator shares: input validation in scikit-learn's wording, seeds from
``random_state``, and the warnings of a fit raised as Python warnings."""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_non_negative, validate_data


def _seed(random_state):
    """A 64-bit seed for the library from scikit-learn's ``random_state`` (None, int or
    RandomState): the same int gives the same factors, None a fresh draw."""
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
