"""``load_run``: a run folder of the command-line tool (or a bare model file) as a fitted
estimator; ``save`` (on every estimator, see ``_base._RunMixin``) writes the other way."""

import json
import os

import numpy as np

from . import _native
from ._base import _METHOD_OF_CLASS

_CLASS_OF_METHOD = {method: name for name, method in _METHOD_OF_CLASS.items()}
_CLASS_OF_METHOD.update({"ae": "SparseAutoencoder", "asym-ae": "SparseAutoencoder"})


def _estimator_class(method):
    import partlearn

    name = _CLASS_OF_METHOD.get(method)
    if name is None:
        raise ValueError(
            f"the run's method {method!r} has no estimator in partlearn {_native.__version__}; "
            f"known methods: {', '.join(sorted(_CLASS_OF_METHOD))}"
        )
    cls = getattr(partlearn, name, None)
    if cls is None:
        raise ValueError(
            f"a {method} run needs partlearn.{name}, which this partlearn ({_native.__version__}) does not have; "
            "update partlearn or use the command-line tool"
        )
    return cls


def _saved_from_python(options):
    """Whether run.json's options are those an estimator's ``save`` wrote (``estimator``,
    ``params`` and, for classifiers, ``classes``) rather than the library's."""
    return (
        isinstance(options, dict)
        and {"estimator", "params"} <= set(options) <= {"estimator", "params", "classes"}
        and isinstance(options["params"], dict)
    )


def _classes(estimator, options):
    """``classes_`` of a loaded model with a classifier: the labels ``save`` recorded, else the
    class indices ``0 … c−1`` the command-line tool trains with."""
    if _saved_from_python(options) and isinstance(options.get("classes"), list):
        return np.asarray(options["classes"])
    return np.arange(np.asarray(estimator.classifier_).shape[0])


def _params(cls, options):
    """The constructor parameters of ``cls`` for run.json options: those ``save`` recorded
    (``{"estimator": ..., "params": ...}``), else the class's ``_params_from_run`` of the
    library's options, else the defaults."""
    if not isinstance(options, dict):
        return {}
    if _saved_from_python(options):
        valid = cls().get_params(deep=False)
        return {k: v for k, v in options["params"].items() if k in valid}
    if hasattr(cls, "_params_from_run"):
        try:
            return cls._params_from_run(options)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"the run's options are not those of a {cls.__name__} fit ({type(e).__name__}: {e}); "
                "give a run folder that partlearn wrote, or refit it"
            ) from None
    return {}


def load_run(path):
    """A fitted estimator from a run folder of the command-line tool.

    Reads ``model.safetensors`` and ``run.json`` of a folder written by ``partlearn fit`` (or by
    an estimator's ``save``), or a bare model file (or a folder holding only
    ``model.safetensors``), and returns a fitted estimator of the
    method's class: ``nmf`` → :class:`NMF`, ``sparse-nmf`` → :class:`SparseNMF`, ``ssnmf`` →
    ``SSNMF``, ``hnmf`` → ``HierarchicalNMF``, ``deep-nmf`` → ``DeepNMF``, ``neural-nmf`` →
    ``NeuralNMF``, ``ae``/``asym-ae`` → ``SparseAutoencoder``. Its ``transform`` gives the codes
    ``partlearn transform`` writes for the run. A bare model file gives the estimator of the
    model's kind (an ``nmf`` model gives :class:`NMF`) with default parameters. ``random_state``
    is the library's seed of the fit, recorded in run.json.

    The parameters come from the run's options, the fitted attributes from the model
    (``components_``, ``n_components_``, ``n_features_in_``, in the float type the run was
    computed in) and run.json (``n_iter_``, ``stop_reason_``; for NMF estimators also
    ``history_``, ``objective_``, ``reconstruction_err_``; for :class:`SparseNMF` the stored
    constrained codes as ``training_codes_``).

    Parameters
    ----------
    path : str or path-like
        A run folder, or a model file (``model.safetensors``).

    Returns
    -------
    estimator : a fitted partlearn estimator

    Raises
    ------
    OSError
        ``path`` does not exist.
    ValueError
        The file is not a partlearn model (damaged, truncated, another program's), the folder
        holds no model.safetensors, or run.json is not a partlearn run record of a format this
        partlearn reads.
    """
    out = _native.read_run(os.fspath(path))
    record = None if out["record"] is None else json.loads(out["record"])
    method = out["kind"] if record is None else record["method"]
    cls = _estimator_class(method)
    options = None if record is None else record["part"].get("options")
    estimator = cls(**_params(cls, options))
    dtype = out["dtype"]
    if record is not None:
        dtype = "float32" if record["data"]["dtype"] == "f32" else "float64"
    estimator._store_model(out["model"], dtype)
    estimator.n_features_in_ = int(np.asarray(estimator.components_).shape[1])
    if getattr(estimator, "classifier_", None) is not None:
        estimator.classes_ = _classes(estimator, options)
    if record is not None:
        estimator.n_iter_ = int(record["n_iter"])
        estimator.stop_reason_ = str(record["stop_reason"]).replace("-", "_")
        estimator._fit_data = {"n_samples": int(record["data"]["n_samples"]), "dtype": dtype}
        estimator._load_record(record, [json.loads(line) for line in out["history"]])
    return estimator
