"""The evaluation protocol of METHODS.md §7, for any fitted partlearn estimator: Hoyer sparsity
(§7.2), flat grey-scale dilation and erosion (§7.4), the max-approximation error to dilation
(§7.5), the linear-SVM accuracy protocol (§7.3), and ``evaluate``, which returns the dict that
``partlearn eval`` writes as metrics.json.

Images are rows of a 2-D array (``n × height·width``, row-major pixels) with ``image_shape``
given or inferred when the pixel count is a square, or an ``(n, height, width)`` array."""

import json
import math
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.validation import check_is_fitted

from . import _native
from ._base import _check_int, _check_x, _cli_seed

__all__ = [
    "dilate",
    "erode",
    "evaluate",
    "hoyer_sparsity",
    "max_approximation_error",
    "svm_protocol_accuracy",
]

_FLOATS = [np.float64, np.float32]

# The library's SvmProtocolOptions (METHODS.md §7.3), with its defaults.
_SVM_DEFAULTS = {
    "c_grid": 10,
    "c_min_exp": -2.0,
    "c_max_exp": 3.0,
    "holdout": 0.2,
    "select_splits": 3,
    "select_fraction": 0.08,
    "eval_splits": 25,
    "eval_fraction": 0.05,
    "eps": 0.1,
    "max_passes": 1000,
}
# The open range of each real option, and why: the exponents of C = 10**exp keep C normal and
# finite in float64.
_C_EXP = (math.log10(np.finfo(np.float64).tiny), math.log10(np.finfo(np.float64).max), "C = 10**exp finite and > 0")
_FRACTION = (0.0, 1.0, "as all fractions of the splits")
_SVM_RANGES = {
    "c_min_exp": _C_EXP,
    "c_max_exp": _C_EXP,
    "holdout": _FRACTION,
    "select_fraction": _FRACTION,
    "eval_fraction": _FRACTION,
    "eps": (0.0, math.inf, "the solver's tolerance"),
}


def hoyer_sparsity(X, axis=-1, *, reference=False):
    """Hoyer's sparseness ``S(x) = (√n − ‖x‖₁/‖x‖₂) / (√n − 1)`` (METHODS.md §2.1, §7.2).

    1 for a vector with one non-zero entry, 0 for a vector whose entries all have the same
    magnitude.

    Parameters
    ----------
    X : array-like of shape (n,) or (n_samples, n)
    axis : {-1, 0, 1, -2}, default=-1
        For 2-D ``X``, the axis the vectors run along: -1 or 1 gives the sparseness of every
        row (every sample's code), 0 or -2 that of every column (every component's
        activations).
    reference : bool, default=False
        The reference implementation's variant, with ``‖x‖₂ + 1e-7`` in the denominator: a zero
        vector scores ``√n/(√n − 1)`` instead of NaN (for comparing with published numbers).

    Returns
    -------
    s : float or ndarray of shape (n_vectors,)
        A float for 1-D ``X``. NaN where ``S`` is undefined (a zero vector, or ``n = 1``),
        unless ``reference``.
    """
    X = check_array(X, dtype=_FLOATS, ensure_2d=False)
    if X.ndim == 1:
        return float(_native.hoyer_rows(X.reshape(1, -1), reference=bool(reference))[0])
    if axis not in (-1, 0, 1, -2):
        raise ValueError(f"axis must be -1, 0, 1 or -2 for a 2-D array, got {axis!r}")
    if axis in (0, -2):
        X = X.T
    return _native.hoyer_rows(X, reference=bool(reference))


def _square_side(n_features, what):
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise ValueError(
            f"{what} have {n_features} pixels, which is not a square number: pass image_shape=(height, width)"
        )
    return side, side


def _check_shape(image_shape, n_features):
    """``image_shape`` as ``(height, width)`` covering ``n_features`` pixels."""
    try:
        h, w = image_shape
        ok = all(isinstance(v, Integral) and v >= 1 for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"image_shape must be a pair of positive ints (height, width), got {image_shape!r}")
    if h * w != n_features:
        raise ValueError(f"image_shape={(int(h), int(w))} has {h * w} pixels, but the images have {n_features} features")
    return int(h), int(w)


def _images(images, image_shape, default_shape=None, what="images", required=True):
    """``images`` as a 2-D float array of rows and its ``(height, width)``: from a 3-D array's
    shape, else ``image_shape``, else ``default_shape``, else the square root of the pixel
    count (else an error, or None when not ``required``). Returns ``(rows, shape, was_3d)``."""
    images = check_array(images, dtype=_FLOATS, allow_nd=True)
    if images.ndim == 3:
        n, h, w = images.shape
        if image_shape is not None and tuple(image_shape) != (h, w):
            raise ValueError(f"image_shape={tuple(image_shape)} differs from the shape of the {what}, {(h, w)}")
        return images.reshape(n, h * w), (h, w), True
    if images.ndim != 2:
        raise ValueError(
            f"Expected a 2-D array of images as rows or a 3-D array (n, height, width), got {images.ndim} dimensions"
        )
    m = images.shape[1]
    if image_shape is not None:
        return images, _check_shape(image_shape, m), False
    if default_shape is not None and default_shape[0] * default_shape[1] == m:
        return images, tuple(default_shape), False
    if not required and math.isqrt(m) ** 2 != m:
        return images, None, False
    return images, _square_side(m, what), False


def _morph(images, se, image_shape, n_threads, erode):
    if not isinstance(se, str):
        raise TypeError(f"se must be a str such as 'disk:1', 'square:3' or 'custom:.#./###/.#.', got {type(se).__name__}")
    rows, (h, w), was_3d = _images(images, image_shape)
    out = _native.morphology(rows, h, w, se=se, erode=erode, threads=_threads(n_threads))
    return out.reshape(-1, h, w) if was_3d else out


def dilate(images, se="disk:1", image_shape=None, *, n_threads=1):
    """Flat grey-scale dilation ``δ(f)(p) = max_{z∈B} f(p + z)`` of every image (METHODS.md
    §7.4); pixels outside the image are ignored.

    Parameters
    ----------
    images : array-like of shape (n_images, height·width) or (n_images, height, width)
    se : str, default="disk:1"
        The structuring element ``B``: ``disk:R`` (scikit-image's disk; ``disk:1`` is the 3×3
        cross), ``square:S`` (odd S) or ``custom:ROW/ROW/...`` with ``#`` (in) and ``.`` (out),
        centred, e.g. ``custom:.#./###/.#.``.
    image_shape : (int, int) or None, default=None
        ``(height, width)`` of 2-D input; None infers a square shape.
    n_threads : int, default=1
        Worker threads (0 = all cores); the result does not depend on it.

    Returns
    -------
    dilated : ndarray of the shape and float dtype of ``images``
    """
    return _morph(images, se, image_shape, n_threads, erode=False)


def erode(images, se="disk:1", image_shape=None, *, n_threads=1):
    """Flat grey-scale erosion ``ε(f)(p) = min_{z∈B} f(p − z)`` of every image (METHODS.md
    §7.4), the adjoint of :func:`dilate`; parameters as in :func:`dilate`.

    Returns
    -------
    eroded : ndarray of the shape and float dtype of ``images``
    """
    return _morph(images, se, image_shape, n_threads, erode=True)


def _threads(n_threads):
    return _check_int(n_threads, "n_threads")


def _model_of(model):
    """The model-file bytes of a fitted partlearn estimator."""
    if not hasattr(model, "_model_bytes"):
        raise TypeError(f"model must be a fitted partlearn estimator, got {type(model).__name__}")
    check_is_fitted(model)
    return model._model_bytes()


def _data(model, X, image_shape, required):
    """The model-file bytes of ``model``, ``X`` as rows checked against it (features, entries
    ≥ 0), and the image shape: from a 3-D ``X``, else ``image_shape``, else the model's
    training images, else the square root of the pixel count (else an error, or None when not
    ``required``)."""
    model_bytes = _model_of(model)
    recorded = _native.model_info(model_bytes)["image_shape"]
    X, shape, _ = _images(X, image_shape, recorded, what="samples", required=required)
    X = _check_x(model, X, reset=False)
    return model_bytes, X, shape


def max_approximation_error(model, X, se="disk:1", image_shape=None, *, n_threads=1):
    """Max-approximation errors to dilation (METHODS.md §7.5; Angulo & Velasco-Forero).

    The max-approximation of an image ``x`` decodes its code with dilated atoms,
    ``D(x) = decode(δ(atoms), encode(x))`` (for auto-encoders the decoder's bias is not
    dilated); it is close to ``δ(x)`` when the weighted atoms of ``x`` barely overlap. The
    errors are per-pixel mean squared errors averaged over the images: the numbers
    ``partlearn eval`` reports as ``max_approx``.

    Parameters
    ----------
    model : fitted partlearn estimator
    X : array-like of shape (n_samples, n_features) or (n_samples, height, width), entries ≥ 0
    se : str, default="disk:1"
        Structuring element of the dilation (see :func:`dilate`).
    image_shape : (int, int) or None, default=None
        ``(height, width)`` of the images; None takes it from a 3-D ``X``, else from the
        model's training images (a model fitted by ``partlearn fit`` on images records it),
        else infers a square shape.
    n_threads : int, default=1

    Returns
    -------
    errors : dict
        ``structuring_element``; ``vs_dilated_originals`` (the report's max-approximation
        error) and ``vs_dilated_originals_clipped`` (``D(x)`` clipped to [0, 1]);
        ``vs_dilated_reconstructions`` and ``vs_dilated_reconstructions_clipped`` (against
        ``δ(x̂)``, the dilated reconstructions).
    """
    if not isinstance(se, str):
        raise TypeError(f"se must be a str such as 'disk:1', got {type(se).__name__}")
    model_bytes, X, (h, w) = _data(model, X, image_shape, required=True)
    text = _native.max_approximation_error(model_bytes, X, h, w, se=se, threads=_threads(n_threads))
    return json.loads(text)


def _labels(y, n_samples):
    """Class indices ``0..C`` of the labels ``y`` (any values, as scikit-learn's classifiers
    take them)."""
    y = column_or_1d(y, warn=True)
    if y.shape[0] != n_samples:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: [{n_samples}, {y.shape[0]}]"
        )
    _, indices = np.unique(y, return_inverse=True)
    return [int(i) for i in indices]


def _svm_options(options, random_state, n_threads):
    """The library's SvmProtocolOptions (as a dict for JSON) from the protocol's options, each
    checked: counts ≥ 1, fractions in (0, 1), ``eps`` > 0 and finite, ``C = 10**exp`` finite
    and > 0 in float64 with ``c_min_exp ≤ c_max_exp``; ``random_state`` as the CLI's seed."""
    unknown = set(options) - set(_SVM_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown SVM protocol option(s) {sorted(unknown)}; the options are {sorted(_SVM_DEFAULTS)}"
        )
    o = dict(_SVM_DEFAULTS, **options)
    o["seed"] = _cli_seed(random_state)
    o["threads"] = _threads(n_threads)
    for key in ("c_grid", "select_splits", "eval_splits", "max_passes"):
        o[key] = _check_int(o[key], key, min_value=1)
    for key, (low, high, why) in _SVM_RANGES.items():
        value = o[key]
        if not isinstance(value, Real) or isinstance(value, bool) or not low < value < high:
            raise ValueError(f"{key} must be a float in ({low:.6g}, {high:.6g}) ({why}), got {value!r}")
        o[key] = float(value)
    if o["c_min_exp"] > o["c_max_exp"]:
        raise ValueError(f"c_min_exp must be ≤ c_max_exp, got c_min_exp={o['c_min_exp']!r} > c_max_exp={o['c_max_exp']!r}")
    return o


def svm_protocol_accuracy(
    codes,
    y,
    *,
    c_grid=10,
    c_min_exp=-2.0,
    c_max_exp=3.0,
    holdout=0.2,
    select_splits=3,
    select_fraction=0.08,
    eval_splits=25,
    eval_fraction=0.05,
    eps=0.1,
    max_passes=1000,
    random_state=0,
    n_threads=1,
):
    """Accuracy of a linear SVM on codes by the report's protocol (METHODS.md §7.3).

    liblinear's L2-regularized squared-hinge SVM, one-vs-rest: a stratified split holds out
    ``holdout`` of the codes; on the rest, each of ``c_grid`` values of C log-spaced over
    ``[10^c_min_exp, 10^c_max_exp]`` is scored by the mean validation accuracy over
    ``select_splits`` stratified shuffle splits (``select_fraction`` validation); the best C is
    then trained and tested on ``eval_splits`` stratified shuffle splits of the held-out part
    (``eval_fraction`` test each), giving a mean ± std accuracy. The report used 30 C values and
    20 selection splits; the defaults are those of ``partlearn eval`` (on an NMF k = 100 model of
    Fashion-MNIST: 0.799 ± 0.032 in 20 s, against 0.796 ± 0.036 in 510 s with the report's
    counts).

    Parameters
    ----------
    codes : array-like of shape (n_samples, n_components)
    y : array-like of shape (n_samples,)
        Class labels (any values; at least two classes).
    c_grid, c_min_exp, c_max_exp, holdout, select_splits, select_fraction, eval_splits,
    eval_fraction : the protocol, as above.
    eps : float, default=0.1
        Stopping tolerance of the dual coordinate descent (liblinear's).
    max_passes : int, default=1000
        Pass limit of the dual coordinate descent.
    random_state : int, RandomState instance or None, default=0
        Seed of the splits and of the solver's order; an int is used as it is (``partlearn
        eval --seed``), so the same int gives the same splits as the CLI.
    n_threads : int, default=1
        Worker threads (0 = all cores); the result does not depend on it.

    Returns
    -------
    result : dict
        ``mean_accuracy``, ``std_accuracy`` (over the evaluation splits), ``best_c``,
        ``best_validation_accuracy``, ``validation_curve`` (``[C, accuracy]`` pairs),
        ``accuracies`` (per split), ``test_samples`` (in each evaluation split's test part),
        ``classes`` and ``options`` (the settings used). A ``UserWarning`` says when
        ``test_samples`` is below the number of classes (each accuracy then moves in steps of
        ``1 / test_samples``).
    """
    codes = check_array(codes, dtype=_FLOATS)
    labels = _labels(y, codes.shape[0])
    opts = _svm_options(
        dict(
            c_grid=c_grid,
            c_min_exp=c_min_exp,
            c_max_exp=c_max_exp,
            holdout=holdout,
            select_splits=select_splits,
            select_fraction=select_fraction,
            eval_splits=eval_splits,
            eval_fraction=eval_fraction,
            eps=eps,
            max_passes=max_passes,
        ),
        random_state,
        n_threads,
    )
    return _warn_if_coarse(json.loads(_native.svm_protocol(codes, labels, options=json.dumps(opts))))


def _warn_if_coarse(svm):
    """``svm`` (a protocol result), after a ``UserWarning`` when its evaluation splits test on
    fewer samples than there are classes."""
    if svm is not None and svm.get("test_samples", 1) < svm.get("classes", 0):
        warnings.warn(
            f"each SVM evaluation split tests on {svm['test_samples']} sample(s) for {svm['classes']} "
            f"classes, so its accuracy moves in steps of {1 / max(svm['test_samples'], 1):.2f}; "
            "label more samples or raise eval_fraction",
            UserWarning,
            stacklevel=3,
        )
    return svm


def evaluate(
    model,
    X,
    y=None,
    *,
    se="disk:1",
    image_shape=None,
    n_threads=1,
    svm=True,
    stored_codes=False,
):
    """Every metric of METHODS.md §7 of a fitted model on ``X``: the dict ``partlearn eval``
    writes as metrics.json (the same numbers for the same model, data and options).

    The model encodes ``X`` (its ``transform``), then: reconstruction errors (§7.1), Hoyer
    sparsity of the codes (§7.2), the max-approximation errors (§7.5, when the samples are
    images) and the linear-SVM protocol on the codes (§7.3, when ``y`` is given).

    Parameters
    ----------
    model : fitted partlearn estimator
    X : array-like of shape (n_samples, n_features) or (n_samples, height, width), entries ≥ 0
    y : array-like of shape (n_samples,) or None, default=None
        Class labels; they enable the SVM protocol.
    se : str, default="disk:1"
        Structuring element of the dilation (see :func:`dilate`).
    image_shape : (int, int) or None, default=None
        ``(height, width)`` of the samples; None takes it from a 3-D ``X``, else from the
        model's training images (recorded by ``partlearn fit`` on images), else infers a square
        shape when the feature count is a square number. Without an image shape the
        max-approximation errors are None.
    n_threads : int, default=1
        Worker threads (0 = all cores); the metrics do not depend on it.
    svm : bool or dict, default=True
        Run the SVM protocol (with ``y``): True with its defaults and seed 0 (as ``partlearn
        eval``), False to skip it, or a dict of the options of
        :func:`svm_protocol_accuracy` (``c_grid``, ``select_splits``, ``eval_splits``,
        ``random_state``, ...).
    stored_codes : bool, default=False
        Measure the codes the fit stored for its training data instead of encoding ``X``: the
        constrained codes of :class:`partlearn.SparseNMF` (``training_codes_``), which
        ``transform`` does not reproduce. This is how the report measured Hoyer's sparse NMF,
        fitted on the test images themselves (METHODS.md §2.3; ``partlearn eval
        --stored-codes``). ``X`` must then be the training data, in the order of the fit.

    Returns
    -------
    metrics : dict
        ``model_kind``, ``data`` ("X"), ``n_samples``, ``n_features``, ``k``,
        ``reconstruction`` (``mse``, ``mse_clipped``, ``rel_error``), ``hoyer`` (``mean``,
        ``std``, ``zero_codes``, ``mean_reference``), ``max_approx`` (as
        :func:`max_approximation_error`, or None), ``svm`` (as :func:`svm_protocol_accuracy`,
        or None) and ``seconds`` (time spent in each part).
    """
    if not isinstance(se, str):
        raise TypeError(f"se must be a str such as 'disk:1', got {type(se).__name__}")
    model_bytes, X, shape = _data(model, X, image_shape, required=False)
    labels = None
    svm_json = None
    if y is not None:
        labels = _labels(y, X.shape[0])
        if svm is True:
            svm_json = json.dumps(_svm_options({}, 0, n_threads))
        elif isinstance(svm, dict):
            options = dict(svm)
            random_state = options.pop("random_state", 0)
            svm_json = json.dumps(_svm_options(options, random_state, n_threads))
        elif svm is not False:
            raise ValueError(f"svm must be True, False or a dict of SVM protocol options, got {svm!r}")
    codes = None
    if stored_codes:
        codes = getattr(model, "training_codes_", None)
        if codes is None:
            raise ValueError(
                f"stored_codes=True needs a model that stored the codes of its training data "
                f"(SparseNMF's training_codes_); {type(model).__name__} has none: drop stored_codes"
            )
        codes = np.ascontiguousarray(codes, dtype=X.dtype)
        if codes.shape[0] != X.shape[0]:
            raise ValueError(
                f"stored_codes=True measures the codes of the {codes.shape[0]} training samples, "
                f"but X has {X.shape[0]}: give the training data, or drop stored_codes"
            )
    text = _native.evaluate(
        model_bytes,
        X,
        labels=labels,
        image_shape=shape,
        se=se,
        threads=_threads(n_threads),
        svm=svm_json,
        codes=codes,
    )
    result = json.loads(text)
    _warn_if_coarse(result.get("svm"))
    return result
