"""The scripts under examples/ run as a user runs them (small settings, so they finish fast)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
HAVE_FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").exists() or bool(
    os.environ.get("PARTLEARN_DATA_DIR")
)


@pytest.mark.skipif(
    not HAVE_FMNIST and not os.environ.get("PARTLEARN_REQUIRE_DATA"),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)
def test_sparse_nmf_report_row_runs_and_prints_the_table():
    script = REPO / "examples" / "sparse_nmf_report_row.py"
    out = subprocess.run(
        [sys.executable, str(script), "--first", "400", "--max-iter", "20", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("sparse NMF, s_H = 0.6, k = 100, 400 images, 20 iterations")
    rows = {line[:12].strip(): line[12:].split() for line in lines[2:]}
    assert set(rows) == {"rec. MSE", "Hoyer", "max-approx", "linear SVM"}
    # The codes are held at Hoyer sparseness 0.6 by construction; the rest are finite numbers.
    assert abs(float(rows["Hoyer"][0]) - 0.6) < 0.05
    assert all(float(v[0]) == float(v[0]) for v in rows.values())
