"""The shallow auto-encoder of METHODS.md §6.1–6.5 written in PyTorch, timed per epoch beside
``partlearn bench ae`` in the same run (``python -m partlearn.bench --torch-ae``).

Both train the same model on the same data: 784 → k sigmoid encoder, LeakyReLU(0.1) decoder,
mean squared error plus β·Σ KL(p ‖ ρ̂) (p = 0.05, β = 1e-3, ρ̂ the batch's mean code), Adadelta
(lr 1, ρ 0.95, ε 1e-7), Glorot-uniform kernels and zero biases, batches of 128 in a shuffled
order, and the decoder's weights projected onto ``W ≥ 0`` after every step. PyTorch's epoch is
the mean of the timed epochs after one untimed warm-up epoch; partlearn's is the one
``partlearn bench ae --json`` reports (its batches after the first, extrapolated to the epoch).
"""

import json
import subprocess
import time

import numpy as np


def torch_epochs(X, k, threads, epochs, batch=128, seed=0):
    """Seconds of each of ``epochs`` PyTorch epochs (after one warm-up epoch) on ``threads``."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    n, m = x.shape
    enc, dec = torch.nn.Linear(m, k), torch.nn.Linear(k, m)
    for layer in (enc, dec):
        torch.nn.init.xavier_uniform_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    with torch.no_grad():
        dec.weight.clamp_(min=0)
    opt = torch.optim.Adadelta([*enc.parameters(), *dec.parameters()], lr=1.0, rho=0.95, eps=1e-7)
    p, beta = 0.05, 1e-3
    gen = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(epochs + 1):
        order = torch.randperm(n, generator=gen)
        start = time.perf_counter()
        for i in range(0, n, batch):
            xb = x[order[i:i + batch]]
            h = torch.sigmoid(enc(xb))
            out = torch.nn.functional.leaky_relu(dec(h), 0.1)
            rho = h.mean(0).clamp(1e-7, 1 - 1e-7)
            kl = (p * torch.log(p / rho) + (1 - p) * torch.log((1 - p) / (1 - rho))).sum()
            loss = torch.nn.functional.mse_loss(out, xb) + beta * kl
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            with torch.no_grad():
                dec.weight.clamp_(min=0)
        times.append(time.perf_counter() - start)
    return times[1:]


def partlearn_epoch(cli, spec, first, k, threads, epochs):
    """``partlearn bench ae --json``'s report for the shallow AE on ``threads``."""
    cmd = [cli, "bench", "ae", "--data", spec, "-k", str(k), "--threads", str(threads),
           "--epochs", str(epochs), "--json"]
    if first is not None:
        cmd += ["--first", str(first)]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(res.stdout)


def run(cli, spec, first, X, k, threads_list, epochs, rounds):
    """Alternates partlearn and PyTorch ``rounds`` times for each thread count; one row each."""
    import torch

    rows = []
    for r in range(rounds):
        for threads in threads_list:
            ours = partlearn_epoch(cli, spec, first, k, threads, epochs)
            theirs = torch_epochs(X, k, threads, epochs)
            torch_s = float(np.mean(theirs))
            rows.append({
                "round": r + 1,
                "threads": threads,
                "partlearn_s_per_epoch": ours["seconds_per_epoch"],
                "partlearn_gemm_bound_s": ours["gemm_bound"],
                "torch_s_per_epoch": torch_s,
                "torch_epochs_s": theirs,
                "ratio": ours["seconds_per_epoch"] / torch_s,
            })
    return {"torch_version": torch.__version__, "k": k, "epochs": epochs, "rows": rows}


def print_report(report):
    print(f"shallow AE, k = {report['k']}, PyTorch {report['torch_version']}, "
          f"{report['epochs']} timed epochs each")
    print(f"{'round':>5} {'threads':>7} {'partlearn s/epoch':>18} {'PyTorch s/epoch':>16} {'ratio':>6}")
    for row in report["rows"]:
        print(f"{row['round']:>5} {row['threads']:>7} {row['partlearn_s_per_epoch']:>18.3f} "
              f"{row['torch_s_per_epoch']:>16.3f} {row['ratio']:>6.2f}")
