"""``load_run``: a run folder of the command-line tool (or a bare model file) as a fitted
estimator; ``save`` (on every estimator, see ``_base._RunMixin``) writes the other way."""

import json
import os

import numpy as np

from . import _native
from ._base import _ESTIMATOR_KEYS, _METHOD_OF_CLASS

# The estimator classes of each method, the method's own first.
_CLASSES_OF_METHOD = {"ae": ["SparseAutoencoder"], "asym-ae": ["SparseAutoencoder"]}
for _name, _method in _METHOD_OF_CLASS.items():
    _CLASSES_OF_METHOD.setdefault(_method, []).append(_name)


def _online_options(options):
    """Whether run.json's options are those of ``partlearn fit nmf --solver online`` (the
    library's mini-batch options: the NMF options nested under ``nmf``)."""
    return isinstance(options, dict) and isinstance(options.get("nmf"), dict) and "batch_size" in options


def _estimator_class(method, options):
    """The class of a run: the one ``save`` recorded in the options if it fits the method, else
    MiniBatchNMF for an online NMF run, else the method's own."""
    import partlearn

    names = _CLASSES_OF_METHOD.get(method)
    if names is None:
        raise ValueError(
            f"the run's method {method!r} has no estimator in partlearn {_native.__version__}; "
            f"known methods: {', '.join(sorted(_CLASSES_OF_METHOD))}"
        )
    recorded = options.get("estimator") if _saved_from_python(options) else None
    if recorded in names:
        name = recorded
    elif method == "nmf" and _online_options(options):
        name = "MiniBatchNMF"
    else:
        name = names[0]
    cls = getattr(partlearn, name, None)
    if cls is None:
        raise ValueError(
            f"a {method} run needs partlearn.{name}, which this partlearn ({_native.__version__}) does not have; "
            "update partlearn or use the command-line tool"
        )
    return cls


def _saved_from_python(options):
    """Whether run.json's options hold what an estimator's ``save`` records of itself
    (``_base._estimator_record``: ``estimator``, ``params``, ``tuple_params``; for classifiers
    ``classes``), beside the library's options or alone."""
    return (
        isinstance(options, dict)
        and isinstance(options.get("estimator"), str)
        and isinstance(options.get("params"), dict)
    )


def _classes(estimator, options):
    """``classes_`` of a loaded model with a classifier: the labels ``save`` recorded, else the
    class indices ``0 … c−1`` the command-line tool trains with."""
    if _saved_from_python(options) and isinstance(options.get("classes"), list):
        return np.asarray(options["classes"])
    return np.arange(np.asarray(estimator.classifier_).shape[0])


def _params(cls, options):
    """The constructor parameters of ``cls`` for run.json options: those ``save`` recorded
    (exactly, tuples included), over the class's ``_params_from_run`` of the library's options
    (which give those ``save`` could not record, e.g. the seed for ``random_state=None``), over
    the defaults."""
    if not isinstance(options, dict):
        return {}
    saved = _saved_from_python(options)
    library = {k: v for k, v in options.items() if k not in _ESTIMATOR_KEYS}
    params = {}
    if library and hasattr(cls, "_params_from_run"):
        try:
            params = cls._params_from_run(library)
        except (KeyError, TypeError, ValueError) as e:
            if not saved:
                raise ValueError(
                    f"the run's options are not those of a {cls.__name__} fit ({type(e).__name__}: {e}); "
                    "give a run folder that partlearn wrote, or refit it"
                ) from None
    if saved:
        valid = cls().get_params(deep=False)
        tuples = set(options.get("tuple_params") or ())
        params.update({k: tuple(v) if k in tuples else v for k, v in options["params"].items() if k in valid})
    return params


def _history_records(lines, path):
    """history.jsonl's ``(line number, text)`` lines as dicts; a ValueError naming ``path`` and
    the line when one is not a JSON object."""
    records = []
    for number, text in lines:
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            record = e
        if not isinstance(record, dict):
            reason = f"invalid JSON ({record})" if isinstance(record, Exception) else "not a JSON object"
            raise ValueError(
                f"{path}, line {number}: {reason}; the run's history is damaged: refit, or remove the line"
            )
        records.append(record)
    return records


def load_run(path):
    """A fitted estimator from a run folder of the command-line tool.

    Reads ``model.safetensors`` and ``run.json`` of a folder written by ``partlearn fit`` (or by
    an estimator's ``save``), or a bare model file (or a folder holding only
    ``model.safetensors``), and returns a fitted estimator of the
    method's class: ``nmf`` → :class:`NMF`, ``sparse-nmf`` → :class:`SparseNMF`, ``ssnmf`` →
    ``SSNMF``, ``hnmf`` → ``HierarchicalNMF``, ``deep-nmf`` → ``DeepNMF``, ``neural-nmf`` →
    ``NeuralNMF``, ``ae``/``asym-ae`` → ``SparseAutoencoder``. Its ``transform`` gives the codes
    ``partlearn transform`` writes for the run. A bare model file gives the estimator of the
    model's kind (an ``nmf`` model gives :class:`NMF`) with default parameters.

    A folder that an estimator's ``save`` wrote gives back its class (``MiniBatchNMF`` for an
    ``nmf`` run it saved; a run of ``partlearn fit nmf --solver online`` gives one too) with
    the same parameters (``get_params()``), except those JSON cannot hold (callables,
    ``RandomState`` instances: ``random_state`` is then the library's seed of the fit). For a
    run of the command-line tool, the parameters come from the library's options (its seed
    as ``random_state``).

    The fitted attributes come from the model (``components_``, ``n_components_``,
    ``n_features_in_``, in the float type the run was computed in; ``image_shape_`` of an
    auto-encoder) and the run folder: ``n_iter_``, ``stop_reason_``, ``history_``,
    ``objective_``; for NMF estimators ``reconstruction_err_``; for :class:`SparseNMF` the
    stored constrained codes as ``training_codes_``; for the layer models and SSNMF
    ``rel_error_``, ``level_errors_`` (when the run records them) and, when the run stored
    its codes (``save`` does, as codes.npy; the command-line tool does not),
    ``training_codes_``, and SSNMF's ``transduction_`` (from labels_pred.npy, which both
    write); for :class:`SparseAutoencoder`
    ``loss_`` and the training run that ``partial_fit`` continues. Not restored:
    ``layer_histories_`` of the layer models, ``n_steps_`` of :class:`MiniBatchNMF` (and its
    statistics: ``partial_fit`` continues from the components with fresh ones).

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
        holds no model.safetensors, run.json is not a partlearn run record of a format this
        partlearn reads, or history.jsonl (or the stored codes) are damaged.
    """
    out = _native.read_run(os.fspath(path))
    record = None if out["record"] is None else json.loads(out["record"])
    method = out["kind"] if record is None else record["method"]
    options = None if record is None else record["part"].get("options")
    cls = _estimator_class(method, options)
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
        history_file = out["history_file"] or os.path.join(os.fspath(path), "history.jsonl")
        history = _history_records(out["history"], history_file)
        try:
            estimator._load_record(record, history, os.fspath(path))
        except (KeyError, TypeError) as e:
            raise ValueError(
                f"{history_file} (or run.json beside it) lacks what a {method} run records "
                f"({type(e).__name__}: {e}); the run folder is damaged: refit"
            ) from None
    return estimator
