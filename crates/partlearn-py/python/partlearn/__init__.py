"""partlearn: part-based representations of non-negative data — the NMF family and sparse
non-negative auto-encoders — as scikit-learn estimators, computed in Rust.

Estimators follow scikit-learn's conventions (``fit``/``transform``, ``get_params``,
``random_state``, learned attributes with a trailing underscore, ``ConvergenceWarning``);
float32 input gives float32 results, and arrays cross into Rust without a copy.

``partlearn.metrics`` holds the evaluation protocol (Hoyer sparsity, dilation, max-approximation
error, the SVM protocol, ``evaluate``); ``estimator.save(path)`` and ``partlearn.load_run(path)``
move fitted models to and from the run folders of the command-line tool; ``partlearn.select_k``
scores candidate ranks by the stability of seeded runs; ``partlearn.reproduce_study`` runs the
report's study through the command-line tool and ``partlearn.load_study`` reads one back."""

from . import datasets, metrics
from ._ae import SparseAutoencoder
from ._deep import DeepNMF, HierarchicalNMF
from ._io import load_run
from ._native import __version__
from ._neural import NeuralNMF
from ._nmf import NMF, SparseNMF
from ._online import MiniBatchNMF
from ._select import select_k
from ._ssnmf import SSNMF
from ._study import load_study, reproduce_study

__all__ = [
    "NMF",
    "MiniBatchNMF",
    "SparseNMF",
    "SSNMF",
    "HierarchicalNMF",
    "DeepNMF",
    "NeuralNMF",
    "SparseAutoencoder",
    "datasets",
    "load_run",
    "select_k",
    "reproduce_study",
    "load_study",
    "metrics",
    "__version__",
]
