"""The data sets of the CLI's ``--data``, as numpy arrays: Fashion-MNIST (from the Debian package
``dataset-fashion-mnist`` or ``$PARTLEARN_DATA_DIR``), Swimmer, the toy hierarchy, and NPY /
CSV / IDX files, loaded by the same Rust code as the CLI (so a sample here is the CLI's sample)."""

import numpy as np
from sklearn.utils import Bunch

from . import _native
from ._base import _check_int, _cli_seed

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def load(spec, *, first=None, subset=None, random_state=0, labels=None, dtype=np.float32, return_X_y=False):
    """Loads a data set as ``partlearn --data SPEC`` does.

    Parameters
    ----------
    spec : str
        ``"fashion-mnist:train"``, ``"fashion-mnist:test"``, ``"swimmer"``,
        ``"toy-hierarchy"`` (or ``"toy-hierarchy:SEED"``), or the path of a ``.npy`` (2-d
        samples × features, or 3-d images), ``.csv`` or IDX file.
    first : int ≥ 1 or None, default=None
        Keep only the first ``first`` samples.
    subset : int ≥ 1 or None, default=None
        Keep a random subset of ``subset`` samples (seeded by ``random_state``, original order).
    random_state : int, RandomState instance or None, default=0
        Seed of ``subset``: an int in [0, 2**64 − 1] is the CLI's ``--data-seed``; None or a
        RandomState instance draws one.
    labels : path or None, default=None
        A labels file (``.npy`` of integers or IDX labels) replacing the data set's own.
    dtype : {np.float32, np.float64}, default=np.float32
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : Bunch
        ``data`` (n_samples × n_features; images flattened row-major, values in [0, 1] for
        Fashion-MNIST), ``target`` (int64 labels or None), ``image_shape`` ((height, width) or
        None), ``extra_labels`` (dict of further label sets, e.g. the toy hierarchy's levels),
        ``target_names`` (class names for Fashion-MNIST), ``name``.
    (data, target) : tuple if ``return_X_y``

    Raises
    ------
    ValueError
        The data set has no sample or no feature (as scikit-learn's ``check_array``).

    Examples
    --------
    >>> from partlearn.datasets import load
    >>> swimmer = load("swimmer")
    >>> swimmer.data.shape, swimmer.image_shape
    ((256, 1024), (32, 32))
    """
    d = _native.load_data(
        str(spec),
        first=None if first is None else _check_int(first, "first", min_value=1),
        subset=None if subset is None else _check_int(subset, "subset", min_value=1),
        seed=_cli_seed(random_state),
        labels=None if labels is None else str(labels),
        dtype=np.dtype(dtype).name,
    )
    n_samples, n_features = d["X"].shape
    if n_samples == 0 or n_features == 0:
        what = "sample" if n_samples == 0 else "feature"
        raise ValueError(
            f"Found array with 0 {what}(s) (shape={d['X'].shape}) while a minimum of 1 is required: "
            f"{str(spec)!r} holds no data"
        )
    if return_X_y:
        return d["X"], d["y"]
    names = FASHION_MNIST_CLASSES if d["name"].startswith("fashion-mnist") else None
    return Bunch(
        data=d["X"],
        target=d["y"],
        image_shape=d["image_shape"],
        extra_labels=d["extra_labels"],
        target_names=names,
        name=d["name"],
    )


def load_fashion_mnist(subset="train", *, first=None, dtype=np.float32, return_X_y=False):
    """Fashion-MNIST's 60,000 training or 10,000 test images (28 × 28, scaled to [0, 1]) and
    their labels; see :func:`load`.

    Parameters
    ----------
    subset : {"train", "test"}, default="train"
    first : int or None, default=None
        Keep only the first ``first`` images.
    dtype : {np.float32, np.float64}, default=np.float32
    return_X_y : bool, default=False
    """
    if subset not in ("train", "test"):
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
    return load(f"fashion-mnist:{subset}", first=first, dtype=dtype, return_X_y=return_X_y)
