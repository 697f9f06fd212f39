"""partlearn: part-based representations of non-negative data — the NMF family and sparse
non-negative auto-encoders — as scikit-learn estimators, computed in Rust.

Estimators follow scikit-learn's conventions (``fit``/``transform``, ``get_params``,
``random_state``, learned attributes with a trailing underscore, ``ConvergenceWarning``);
float32 input gives float32 results, and arrays cross into Rust without a copy."""

from ._deep import DeepNMF, HierarchicalNMF
from ._native import __version__
from ._neural import NeuralNMF
from ._nmf import NMF, SparseNMF
from ._ssnmf import SSNMF

__all__ = ["NMF", "SparseNMF", "SSNMF", "HierarchicalNMF", "DeepNMF", "NeuralNMF", "__version__"]
