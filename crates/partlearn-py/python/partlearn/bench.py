"""``python -m partlearn.bench``: seconds to a relative error for ``partlearn.NMF`` against
``sklearn.decomposition.NMF`` on the same data, start and thread count, in one process, and the
Python wrapper's overhead over the CLI (``partlearn fit nmf``) at the same iterations.

What is timed:

- **partlearn**: ``NMF(solver="cd", init="nndsvda", tol=0)``; the time to the target is the fit's
  own clock (start included) at the first iteration whose ‖X − WH‖_F / ‖X‖_F is at or below it.
  With ``--compress``, also ``compress="on"`` (``partlearn+c``: on data with at least
  400·k samples its compressed iterations run on a random subset and every iteration on all
  samples is exact and recorded; otherwise its exact error is recorded every 10 iterations, so its
  time to the target can be up to 9 iterations late).
- **scikit-learn**: ``NMF(solver="cd", init="nndsvda", tol=0)`` limited to the same threads
  (threadpoolctl). It has no per-iteration hook, so it runs in chunks of ``--sklearn-chunk``
  iterations, each continuing from the last (``init="custom"``: coordinate descent keeps no other
  state, so the iterates are those of one long run); the error is measured between chunks, off
  the clock. The time to the target is therefore at most one chunk late.
- **Sparse data** (``--sparse FILE.npz``): seconds per iteration and memory of both libraries on
  the same CSR matrix (``partlearn._bench_sparse``).
- **Auto-encoder** (``--torch-ae``): seconds per epoch of the shallow auto-encoder, ``partlearn
  bench ae`` against the same model in PyTorch on 1 and ``--threads`` threads, alternated
  (``partlearn._bench_torch``).
- **Neural NMF** (``--neural-nmf``): seconds per epoch of ``partlearn fit neural-nmf`` against the
  reference package ``NeuralNMF`` on its demo, alternated (``partlearn._bench_neural``).
- **Wrapper overhead**: ``NMF.fit_transform``'s wall time (input checks, the fit, results back to
  numpy) against the fit time the CLI reports (``--json`` ``seconds``) for the same iterations.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from .datasets import load


def time_partlearn(X, k, threads, target, max_iter, compress=None):
    """Runs partlearn's HALS (compressed with ``compress="on"``) until the relative error reaches
    ``target`` (or ``max_iter``)."""
    from . import NMF

    def stop_at_target(rec):
        return rec["rel_error"] > target

    model = NMF(n_components=k, solver="cd", init="nndsvda", tol=0, max_iter=max_iter, n_threads=threads,
                callback=stop_at_target, compress=compress)
    start = time.perf_counter()
    model.fit_transform(X)
    wall = time.perf_counter() - start
    h = model.history_
    reached = np.nonzero(h["rel_error"] <= target)[0]
    out = {"iterations": int(model.n_iter_), "rel_error": float(h["rel_error"][-1]), "wall_seconds": wall}
    if reached.size:
        i = reached[0]
        out.update(seconds_to_target=float(h["seconds"][i]), iterations_to_target=int(h["iter"][i]))
    return out


def time_sklearn(X, k, threads, target, max_iter, chunk):
    """Runs scikit-learn's cd solver in chunks until the relative error reaches ``target``."""
    import warnings

    from sklearn.decomposition import NMF as SkNMF
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    norm = float(np.linalg.norm(X.astype(np.float64)))
    seconds, done, W, H, err = 0.0, 0, None, None, None
    with threadpool_limits(limits=threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        while done < max_iter:
            step = min(chunk, max_iter - done)
            if W is None:
                model = SkNMF(n_components=k, solver="cd", init="nndsvda", tol=0, max_iter=step)
                start = time.perf_counter()
                W = model.fit_transform(X)
            else:
                model = SkNMF(n_components=k, solver="cd", init="custom", tol=0, max_iter=step)
                start = time.perf_counter()
                W = model.fit_transform(X, W=W, H=H)
            seconds += time.perf_counter() - start
            H = model.components_
            done += step
            err = float(np.linalg.norm(X - W @ H)) / norm
            if err <= target:
                return {"iterations_to_target": done, "seconds_to_target": seconds, "rel_error": err, "chunk": chunk}
    return {"iterations": done, "seconds": seconds, "rel_error": err, "chunk": chunk}


def time_cli(cli, spec, first, k, threads, n_iter):
    """The CLI's own fit time for ``n_iter`` iterations of the same fit."""
    out = tempfile.mkdtemp(prefix="partlearn-bench-")
    try:
        cmd = [cli, "fit", "nmf", "--data", spec, "-k", str(k), "--threads", str(threads), "--solver", "hals",
               "--init", "nndsvda", "--tol", "0", "--max-iter", str(n_iter), "--out", os.path.join(out, "run"),
               "--json", "-q"]
        if first is not None:
            cmd += ["--first", str(first)]
        start = time.perf_counter()
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        summary = json.loads(res.stdout)
        return {"fit_seconds": summary["seconds"], "wall_seconds": wall, "iterations": summary["n_iter"]}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def time_wrapper(X, k, threads, n_iter):
    """``NMF.fit_transform``'s wall time and the fit's own time for ``n_iter`` iterations."""
    from . import NMF

    model = NMF(n_components=k, solver="cd", init="nndsvda", tol=0, max_iter=n_iter, n_threads=threads)
    start = time.perf_counter()
    model.fit_transform(X)
    return {"wall_seconds": time.perf_counter() - start, "iterations": int(model.n_iter_)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m partlearn.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="fashion-mnist:train", help="data spec, as the CLI's --data")
    p.add_argument("--first", type=int, default=None, help="use only the first N samples")
    p.add_argument("-k", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--target", type=float, default=0.22, help="relative error to reach")
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--sklearn-chunk", type=int, default=5, help="scikit-learn iterations between error checks")
    p.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn (it takes minutes at full size)")
    p.add_argument("--cli", default=None, help="the partlearn binary for the overhead comparison (default: on PATH, or skipped)")
    p.add_argument("--wrapper-iters", type=int, default=20, help="iterations of the overhead comparison")
    p.add_argument("--compress", action="store_true", help="also time partlearn's compressed NMF (compress='on')")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--sparse", default=None, metavar="FILE.npz",
                   help="instead: seconds per iteration and memory on this CSR matrix (scipy save_npz), "
                        "partlearn against scikit-learn, each in its own process")
    p.add_argument("--iters", type=int, default=3, help="with --sparse: iterations timed")
    p.add_argument("--solvers", default="cd,mu", help="with --sparse: solvers, comma-separated")
    p.add_argument("--torch-ae", action="store_true",
                   help="instead: seconds per epoch of the shallow auto-encoder, partlearn (bench ae) against "
                        "the same model in PyTorch, alternated, on 1 and 2 threads (needs torch and the CLI)")
    p.add_argument("--neural-nmf", action="store_true",
                   help="instead: Neural NMF's seconds per epoch, partlearn (fit neural-nmf) against the reference "
                        "package NeuralNMF on the demo (ranks 9,4,2 on toy-hierarchy), alternated")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs timed: with --torch-ae (default 3), with --neural-nmf partlearn's (default 10000)")
    p.add_argument("--ref-epochs", type=int, default=200, help="with --neural-nmf: the reference package's epochs")
    p.add_argument("--rounds", type=int, default=2, help="with --torch-ae or --neural-nmf: alternations of the two")
    a = p.parse_args(argv)

    def comparison(flag, package, what):
        """The CLI's path, after checking that ``package`` is installed (or exiting with a hint)."""
        import importlib.util

        if importlib.util.find_spec(package) is None:
            p.error(f"{flag} needs {what}: pip install {package}")
        cli = a.cli or shutil.which("partlearn")
        if cli is None:
            p.error(f"{flag} needs the partlearn binary: give --cli PATH or put it on PATH")
        return cli

    def emit(report, module):
        if a.json:
            print(json.dumps(report, indent=2))
        else:
            module.print_report(report)
        return 0

    if a.neural_nmf:
        from . import _bench_neural

        cli = comparison("--neural-nmf", "NeuralNMF", "the reference package")
        spec = "toy-hierarchy" if a.data == "fashion-mnist:train" else a.data
        X = load(spec, dtype=np.float64).data
        return emit(_bench_neural.run(cli, spec, X, (9, 4, 2), a.epochs or 10000, a.ref_epochs, a.rounds),
                    _bench_neural)

    if a.torch_ae:
        from . import _bench_torch

        cli = comparison("--torch-ae", "torch", "PyTorch")
        X = load(a.data, first=a.first).data
        threads = sorted({1, a.threads})
        return emit(_bench_torch.run(cli, a.data, a.first, X, a.k, threads, a.epochs or 3, a.rounds), _bench_torch)

    if a.sparse is not None:
        from . import _bench_sparse

        return emit(_bench_sparse.run(a.sparse, a.k, a.threads, a.iters, a.solvers.split(","),
                                      sklearn=not a.no_sklearn), _bench_sparse)

    X = load(a.data, first=a.first).data
    report = {"data": a.data, "n_samples": X.shape[0], "n_features": X.shape[1], "k": a.k, "threads": a.threads, "target": a.target}
    report["partlearn"] = time_partlearn(X, a.k, a.threads, a.target, a.max_iter)
    if a.compress:
        report["partlearn+c"] = time_partlearn(X, a.k, a.threads, a.target, a.max_iter, compress="on")
    cli = a.cli or shutil.which("partlearn")
    if cli:
        report["cli"] = time_cli(cli, a.data, a.first, a.k, a.threads, a.wrapper_iters)
        report["python"] = time_wrapper(X, a.k, a.threads, a.wrapper_iters)
        report["wrapper_overhead"] = report["python"]["wall_seconds"] / report["cli"]["fit_seconds"] - 1
    if not a.no_sklearn:
        report["sklearn"] = time_sklearn(X, a.k, a.threads, a.target, a.max_iter, a.sklearn_chunk)
        pl, sk = report["partlearn"], report["sklearn"]
        if "seconds_to_target" in pl and "seconds_to_target" in sk:
            report["speedup"] = sk["seconds_to_target"] / pl["seconds_to_target"]
        pc = report.get("partlearn+c", {})
        if "seconds_to_target" in pc and "seconds_to_target" in sk:
            report["speedup_compressed"] = sk["seconds_to_target"] / pc["seconds_to_target"]

    if a.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{a.data}: {X.shape[0]} × {X.shape[1]}, k = {a.k}, {a.threads} threads, target rel. error {a.target}")
    for name in ("partlearn", "partlearn+c", "sklearn"):
        r = report.get(name)
        if r is None:
            continue
        if "seconds_to_target" in r:
            print(f"  {name:<10} {r['seconds_to_target']:8.2f} s to {a.target} (iteration {r['iterations_to_target']})")
        else:
            print(f"  {name:<10} not reached in {r['iterations']} iterations (rel. error {r['rel_error']:.5f})")
    if "speedup" in report:
        print(f"  speed-up   {report['speedup']:.1f}×")
    if "speedup_compressed" in report:
        print(f"  speed-up compressed {report['speedup_compressed']:.1f}×")
    if "wrapper_overhead" in report:
        print(f"  overhead   {100 * report['wrapper_overhead']:+.1f} % (Python fit_transform {report['python']['wall_seconds']:.2f} s, "
              f"CLI fit {report['cli']['fit_seconds']:.2f} s, {a.wrapper_iters} iterations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
