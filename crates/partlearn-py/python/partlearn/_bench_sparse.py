"""``python -m partlearn.bench --sparse FILE.npz``: seconds per iteration and peak memory of
``partlearn.NMF`` against ``sklearn.decomposition.NMF`` on the same CSR matrix (a
``scipy.sparse.save_npz`` file, e.g. from ``partlearn data generate topics``), the same random
start and the same thread count.

Each (library, solver) runs in its own process, so that its peak resident memory
(``ru_maxrss``) is its own; the memory reported is that peak less the process's resident memory
after loading the matrix (what the fit itself added).

What is timed, per iteration:

- **partlearn**: ``NMF(init="random", tol=0, max_iter=N)``; the fit's own clock between the
  start's record and the last iteration's, divided by ``N``.
- **scikit-learn**: the wall time of ``fit`` with ``max_iter=N + 1`` less that of ``max_iter=1``,
  divided by ``N`` (it has no per-iteration clock; the difference removes the start and the final
  error evaluation), under threadpoolctl's limit.
"""

import json
import resource
import subprocess
import sys
import time

import numpy as np


def _rss_kib():
    """Current resident memory of this process (KiB), from /proc (0 where unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _one(path, library, solver, k, threads, iters, seed):
    """One fit in this process: seconds per iteration and the memory it added (MiB)."""
    import scipy.sparse as sp

    X = sp.load_npz(path).tocsr()
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    base = _rss_kib()
    out = {"library": library, "solver": solver}
    if library == "partlearn":
        from . import NMF

        model = NMF(n_components=k, solver=solver, init="random", tol=0, max_iter=iters, n_threads=threads,
                    random_state=seed)
        model.fit(X)
        h = model.history_
        out["seconds_per_iter"] = float(h["seconds"][-1] - h["seconds"][0]) / max(1, int(h["iter"][-1]))
        out["rel_error"] = float(h["rel_error"][-1])
    else:
        import warnings

        from sklearn.decomposition import NMF as SkNMF
        from sklearn.exceptions import ConvergenceWarning
        from threadpoolctl import threadpool_limits

        walls = []
        with threadpool_limits(limits=threads), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for n in (1, iters + 1):
                model = SkNMF(n_components=k, solver=solver, init="random", tol=0, max_iter=n, random_state=seed)
                start = time.perf_counter()
                model.fit(X)
                walls.append(time.perf_counter() - start)
        out["seconds_per_iter"] = (walls[1] - walls[0]) / iters
        out["rel_error"] = float(model.reconstruction_err_ / np.sqrt(float((X.data.astype(np.float64) ** 2).sum())))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["added_memory_mib"] = max(0, peak - base) / 1024
    out["peak_memory_mib"] = peak / 1024
    return out


def run(path, k, threads, iters, solvers, sklearn=True, seed=0):
    """Every (library, solver) in its own process; returns the report."""
    import scipy.sparse as sp

    X = sp.load_npz(path)
    report = {"data": str(path), "n_samples": X.shape[0], "n_features": X.shape[1], "nnz": int(X.nnz),
              "density": X.nnz / (X.shape[0] * X.shape[1]), "k": k, "threads": threads, "iterations": iters,
              "runs": []}
    del X
    libraries = ["partlearn"] + (["sklearn"] if sklearn else [])
    for solver in solvers:
        for library in libraries:
            args = json.dumps([str(path), library, solver, k, threads, iters, seed])
            res = subprocess.run([sys.executable, "-m", "partlearn._bench_sparse", args], check=True,
                                 capture_output=True, text=True)
            report["runs"].append(json.loads(res.stdout))
        by = {r["library"]: r for r in report["runs"] if r["solver"] == solver}
        if "sklearn" in by:
            report[f"speedup_{solver}"] = by["sklearn"]["seconds_per_iter"] / by["partlearn"]["seconds_per_iter"]
    return report


def print_report(r):
    print(f"{r['data']}: {r['n_samples']} × {r['n_features']}, {r['nnz']} non-zeros ({100 * r['density']:.3f} %), "
          f"k = {r['k']}, {r['threads']} threads, {r['iterations']} iterations")
    for x in r["runs"]:
        print(f"  {x['library']:<10} {x['solver']:<3} {x['seconds_per_iter']:9.3f} s/iteration  "
              f"+{x['added_memory_mib']:8.1f} MiB (peak {x['peak_memory_mib']:.1f} MiB)  rel. error {x['rel_error']:.4f}")
    for key, v in r.items():
        if key.startswith("speedup_"):
            print(f"  speed-up per iteration ({key[8:]}): {v:.1f}×")


if __name__ == "__main__":
    print(json.dumps(_one(*json.loads(sys.argv[1]))))
