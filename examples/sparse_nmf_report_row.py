"""The sparse-NMF row of the report's table, from Python.

Hoyer's NMF with code sparseness 0.6 and k = 100, fitted on the 10,000 Fashion-MNIST test images
and measured on the codes it learned (as the report did), next to the report's numbers:

    python examples/sparse_nmf_report_row.py            # the full fit: a few minutes on 2 cores
    python examples/sparse_nmf_report_row.py --first 500 --max-iter 50   # a quick look

Needs Fashion-MNIST (``apt-get install dataset-fashion-mnist`` or ``$PARTLEARN_DATA_DIR``).
"""

import argparse

import partlearn
from partlearn.datasets import load_fashion_mnist
from partlearn.metrics import evaluate

REPORT = {"rec. MSE": 0.0109, "Hoyer": 0.650, "max-approx": 0.107, "linear SVM": 0.812}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--first", type=int, default=None, help="use only the first N test images")
    p.add_argument("--max-iter", type=int, default=3000)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)

    # 1. The data: 10,000 × 784 float32 pixels in [0, 1], with their labels.
    X, y = load_fashion_mnist("test", first=a.first, return_X_y=True)

    # 2. The model: 100 atoms, each component's activations across all samples at Hoyer
    #    sparseness 0.6 (the default code_constraint="components", Hoyer's reference;
    #    "samples" would constrain each sample's code instead).
    model = partlearn.SparseNMF(n_components=100, code_sparsity=0.6, max_iter=a.max_iter, tol=1e-4,
                                n_threads=a.threads, random_state=0)
    model.fit(X)

    # 3. The report's protocol on the codes the fit learned (metrics.json's dict).
    m = evaluate(model, X, y, image_shape=(28, 28), n_threads=a.threads, stored_codes=True)
    ours = {
        "rec. MSE": m["reconstruction"]["mse"],
        "Hoyer": m["hoyer"]["mean"],
        "max-approx": m["max_approx"]["vs_dilated_originals"],
        "linear SVM": m["svm"]["mean_accuracy"] if m.get("svm") else float("nan"),
    }
    print(f"sparse NMF, s_H = 0.6, k = 100, {X.shape[0]} images, {model.n_iter_} iterations ({model.stop_reason_})")
    print(f"{'':12}{'partlearn':>11}{'report':>9}")
    for name, value in ours.items():
        print(f"{name:12}{value:11.4f}{REPORT[name]:9.4f}")
    return ours


if __name__ == "__main__":
    main()
