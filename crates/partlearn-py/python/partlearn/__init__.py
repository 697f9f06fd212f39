"""partlearn: part-based representations of non-negative data — the NMF family and sparse
non-negative auto-encoders — as scikit-learn estimators, computed in Rust.

Estimators follow scikit-learn's conventions (``fit``/``transform``, ``get_params``,
``random_state``, learned attributes with a trailing underscore, ``ConvergenceWarning``);
float32 input gives float32 results, and arrays cross into Rust without a copy."""

from . import datasets
from ._ae import SparseAutoencoder
from ._native import __version__
from ._nmf import NMF, SparseNMF

__all__ = ["NMF", "SparseAutoencoder", "SparseNMF", "datasets", "__version__"]
