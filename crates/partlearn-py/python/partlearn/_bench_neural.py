"""Neural NMF's seconds per epoch: ``partlearn fit neural-nmf`` against the reference PyTorch
package (PyPI ``NeuralNMF``), alternated in one run (``python -m partlearn.bench --neural-nmf``).

Both run the unsupervised reference demo: ranks 9, 4, 2 on toy-hierarchy (``X`` is features ×
samples for the package, as its ``Neural_NMF([m, 9, 4, 2])`` expects), the reconstruction cost,
projected gradient steps of learning rate 1 on the layers, a U[0, 1) start, float64, one thread.
The package solves each layer's non-negative least squares column by column (``fnnls``) and
back-propagates through them with PyTorch; it is timed over ``ref_epochs`` epochs and its time
per epoch extrapolated. partlearn is timed over the demo's 10,000 epochs (its ``--json``
``seconds``) and over ``ref_epochs`` epochs, whose relative error ``‖X − A₁A₂A₃S₃‖ / ‖X‖`` is
printed beside the package's after as many epochs, so that a reader sees both did the same work.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np


def reference_run(X, ranks, epochs, seed=0):
    """Seconds and final relative error of ``epochs`` epochs of the reference package."""
    import torch
    from NeuralNMF import Neural_NMF, train

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(X.T, dtype=np.float64))
    net = Neural_NMF([x.shape[0], *ranks])
    start = time.perf_counter()
    a_lst, s_lst = train(net, x, epoch=epochs, lr=1.0, optimizer="gd", verbose=False)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        approx = s_lst[-1]
        for a in reversed(a_lst):
            approx = a @ approx
        rel = float(torch.linalg.norm(x - approx) / torch.linalg.norm(x))
    return seconds, rel


def partlearn_run(cli, spec, ranks, epochs, seed=0):
    """``partlearn fit neural-nmf --json``'s summary of ``epochs`` epochs on one thread."""
    out = tempfile.mkdtemp(prefix="partlearn-bench-")
    try:
        cmd = [cli, "fit", "neural-nmf", "--data", spec, "--ranks", ",".join(map(str, ranks)),
               "--epochs", str(epochs), "--dtype", "f64", "--threads", "1", "--seed", str(seed),
               "--out", os.path.join(out, "run"), "--json", "--quiet"]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        return json.loads(res.stdout)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(cli, spec, X, ranks, epochs, ref_epochs, rounds):
    """Alternates the two ``rounds`` times; one row each."""
    import torch

    rows = []
    for r in range(rounds):
        full = partlearn_run(cli, spec, ranks, epochs)
        short = partlearn_run(cli, spec, ranks, ref_epochs)
        ref_seconds, ref_rel = reference_run(X, ranks, ref_epochs, seed=r)
        rows.append({
            "round": r + 1,
            "partlearn_seconds": full["seconds"],
            "partlearn_s_per_epoch": full["seconds"] / epochs,
            "partlearn_rel_error_short": short["rel_error"],
            "reference_s_per_epoch": ref_seconds / ref_epochs,
            "reference_rel_error_short": ref_rel,
            "speedup": (ref_seconds / ref_epochs) / (full["seconds"] / epochs),
        })
    return {"torch_version": torch.__version__, "data": spec, "ranks": list(ranks), "epochs": epochs,
            "reference_epochs": ref_epochs, "rows": rows}


def print_report(report):
    e, re = report["epochs"], report["reference_epochs"]
    print(f"Neural NMF, ranks {report['ranks']} on {report['data']}, f64, 1 thread; PyTorch "
          f"{report['torch_version']}; reference timed over {re} epochs")
    print(f"{'round':>5} {'partlearn s/epoch':>18} {'reference s/epoch':>18} {'speed-up':>9} "
          f"{'rel. error after ' + str(re) + ' epochs (partlearn / reference)':>50}")
    for row in report["rows"]:
        print(f"{row['round']:>5} {1e3 * row['partlearn_s_per_epoch']:>15.3f} ms "
              f"{1e3 * row['reference_s_per_epoch']:>15.3f} ms {row['speedup']:>8.0f}× "
              f"{row['partlearn_rel_error_short']:>30.4f} / {row['reference_rel_error_short']:.4f}")
    print(f"partlearn's {e} epochs: " + ", ".join(f"{row['partlearn_seconds']:.2f} s" for row in report["rows"]))
