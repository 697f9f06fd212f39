"""Labels of the (semi-)supervised estimators in scikit-learn's convention: any class values, and
``-1`` (or the estimator's ``unlabeled`` value, e.g. NaN as pandas marks a missing value) for the
samples whose label is unknown, as in ``sklearn.semi_supervised``. The library takes class
indices ``0..c-1`` and a mask of the known ones."""

import numpy as np
from sklearn.utils import check_consistent_length, column_or_1d
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_non_negative, validate_data


def _is_nan(value):
    """Whether ``value`` is a float NaN (NaN ≠ NaN: a NaN marker is matched by this test)."""
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def _unlabeled_mask(y, unlabeled):
    """Which samples carry the ``unlabeled`` marker (none when it is None). Compared value by
    value, so that string labels never match a numeric marker; a NaN marker matches every NaN
    (float and object ``y``, e.g. a pandas column with missing labels)."""
    if unlabeled is None:
        return np.zeros(len(y), dtype=bool)
    if _is_nan(unlabeled):
        return np.fromiter((_is_nan(v) for v in y.tolist()), dtype=bool, count=len(y))
    return np.fromiter((v == unlabeled for v in y.tolist()), dtype=bool, count=len(y))


def _encode_targets(estimator, y, unlabeled):
    """Sets ``classes_`` (the sorted labels of the labeled samples) on ``estimator`` and returns
    ``(classes, known)`` for the library: the class index of every sample (0 where unknown) and
    whether it is known. ``y`` is already 1-D and as long as X."""
    known = ~_unlabeled_mask(y, unlabeled)
    if not known.any():
        raise ValueError(
            f"y has no labeled sample: every label is the unlabeled marker {unlabeled!r}; "
            "give the label of at least one sample"
        )
    check_classification_targets(y[known])
    estimator.classes_ = np.unique(y[known])
    classes = np.zeros(len(y), dtype=np.int64)
    classes[known] = np.searchsorted(estimator.classes_, y[known])
    return classes.tolist(), known.tolist()


def _check_xy(estimator, X, y):
    """``X`` as in ``_base._check_x`` (float32/float64, finite, entries ≥ 0; sets
    ``n_features_in_``) and ``y`` as a 1-D array of one label per sample, in scikit-learn's
    words (a y of another length: "inconsistent numbers of samples"; y None where the estimator
    requires it: "requires y to be passed"). With ``unlabeled=np.nan`` the NaN labels are
    kept (they mark the unlabeled samples; the labeled ones are checked by ``_encode_targets``)."""
    if y is not None and _is_nan(getattr(estimator, "unlabeled", None)):
        X = validate_data(estimator, X, dtype=[np.float64, np.float32], accept_sparse=False)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
    else:
        X, y = validate_data(estimator, X, y, dtype=[np.float64, np.float32], accept_sparse=False)
    check_non_negative(X, f"{type(estimator).__name__} (input X)")
    return X, y
