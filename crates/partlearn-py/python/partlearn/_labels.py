"""Labels of the (semi-)supervised estimators in scikit-learn's convention: any class values, and
``-1`` (or the estimator's ``unlabeled`` value) for the samples whose label is unknown, as in
``sklearn.semi_supervised``. The library takes class indices ``0..c-1`` and a mask of the known
ones."""

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_non_negative, validate_data


def _unlabeled_mask(y, unlabeled):
    """Which samples carry the ``unlabeled`` marker (none when it is None). Compared value by
    value, so that string labels never match a numeric marker."""
    if unlabeled is None:
        return np.zeros(len(y), dtype=bool)
    return np.fromiter((v == unlabeled for v in y.tolist()), dtype=bool, count=len(y))


def _encode_targets(estimator, y, unlabeled):
    """Sets ``classes_`` (the sorted labels of the labeled samples) on ``estimator`` and returns
    ``(classes, known)`` for the library: the class index of every sample (0 where unknown) and
    whether it is known. ``y`` is already 1-D and as long as X."""
    check_classification_targets(y)
    known = ~_unlabeled_mask(y, unlabeled)
    if not known.any():
        raise ValueError(
            f"y has no labeled sample: every label is the unlabeled marker {unlabeled!r}; "
            "give the label of at least one sample"
        )
    estimator.classes_ = np.unique(y[known])
    classes = np.zeros(len(y), dtype=np.int64)
    classes[known] = np.searchsorted(estimator.classes_, y[known])
    return classes.tolist(), known.tolist()


def _check_xy(estimator, X, y):
    """``X`` as in ``_base._check_x`` (float32/float64, finite, entries ≥ 0; sets
    ``n_features_in_``) and ``y`` as a 1-D array of one label per sample, in scikit-learn's
    words (a y of another length: "inconsistent numbers of samples"; y None where the estimator
    requires it: "requires y to be passed")."""
    X, y = validate_data(estimator, X, y, dtype=[np.float64, np.float32], accept_sparse=False)
    check_non_negative(X, f"{type(estimator).__name__} (input X)")
    return X, y
