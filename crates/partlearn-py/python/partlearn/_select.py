"""Choosing k: the stability scores of candidate ranks (``partlearn select-k`` from Python)."""

import json

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.validation import check_non_negative

from . import _native
from ._base import _check_int, _seed

_COLUMNS = ("k", "rel_error", "rel_error_std", "cophenetic", "dispersion", "silhouette", "seconds")


def select_k(X, ks, *, runs=10, samples=2000, solver="hals", max_iter=200, tol=1e-4, random_state=0,
             n_threads=1, holdout=None, replicates=3, callback=None):
    """Scores candidate ranks by the stability of seeded NMF runs (METHODS.md §11.4).

    For each k in ``ks``, NMF is fitted ``runs`` times from random starts (seeds
    ``random_state``, ``random_state + 1``, …). The runs' agreement is scored by the consensus of
    the samples' largest code entries (cophenetic correlation and dispersion, on at most
    ``samples`` samples) and by the silhouette of the runs' atoms clustered into k groups. As
    ``partlearn select-k``: the same seed gives the same scores.

    With ``holdout``, every rank is also scored by cross-validation: ``replicates`` seeded
    masks hide a ``holdout`` share of the entries (the same masks for every k), NMF is fitted on
    the rest with the masked solver, and the relative error on the hidden entries is measured.
    ``k_cv`` is the smallest k whose mean held-out error is within one standard error of the
    least one (the one-standard-error rule).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), entries ≥ 0
    ks : iterable of int
        Candidate ranks (e.g. ``range(5, 51, 5)``), each an int between 1 and min(n_samples,
        n_features), each once (a repeated rank is a ValueError); scored in the order given.
    runs : int, default=10
        Seeded runs per rank (≥ 2).
    samples : int, default=2000
        Most samples in the consensus matrix (≥ 2); more are subsampled.
    solver : {"hals", "mu", "anls"}, default="hals"
    max_iter : int, default=200
        Iterations of each run (≥ 1).
    tol : float, default=1e-4
    random_state : int or None, default=0
    n_threads : int, default=1
        Worker threads (0 = all cores).
    holdout : float in (0, 0.5] or None, default=None
        Share of the entries held out for cross-validation (0.05–0.1 is usual); None skips it.
    replicates : int, default=3
        Cross-validation replicates per rank.
    callback : callable or None
        Called with every iteration's record of every run; ``False`` stops the selection (the
        ranks scored so far are returned).

    Returns
    -------
    result : dict
        ``k``, ``rel_error``, ``rel_error_std``, ``cophenetic``, ``dispersion``,
        ``silhouette``, ``seconds`` (arrays, one entry per rank scored), ``k_silhouette`` and
        ``k_cophenetic`` (the suggested ranks), ``consensus_samples``, ``stop_reason``; with
        ``holdout`` also ``cv_error`` and ``cv_error_std`` (arrays) and ``k_cv``.
    """
    X = check_array(X, dtype=[np.float64, np.float32])
    check_non_negative(X, "select_k (input X)")
    ks = [_check_int(k, f"ks[{i}]", min_value=1) for i, k in enumerate(ks)]
    repeated = sorted({k for k in ks if ks.count(k) > 1})
    if repeated:
        raise ValueError(f"ks must list each candidate rank once, got {repeated} more than once")
    out = json.loads(
        _native.select_k(
            X, ks=ks, runs=_check_int(runs, "runs", min_value=2), samples=_check_int(samples, "samples", min_value=2),
            solver=str(solver), max_iter=_check_int(max_iter, "max_iter", min_value=1), tol=float(tol),
            seed=_seed(random_state), threads=_check_int(n_threads, "n_threads"),
            holdout=None if holdout is None else float(holdout),
            replicates=_check_int(replicates, "replicates", min_value=1), callback=callback,
        )
    )
    result = {c: np.array([s[c] for s in out["scores"]]) for c in _COLUMNS}
    result["k"] = result["k"].astype(np.int64)
    result.update(
        k_silhouette=int(out["k_silhouette"]),
        k_cophenetic=int(out["k_cophenetic"]),
        consensus_samples=int(out["consensus_samples"]),
        stop_reason=str(out["stop_reason"]).replace("-", "_"),
    )
    if holdout is not None:
        for c in ("cv_error", "cv_error_std"):
            result[c] = np.array([s[c] for s in out["scores"]])
        result["k_cv"] = int(out["k_cv"])
    return result
