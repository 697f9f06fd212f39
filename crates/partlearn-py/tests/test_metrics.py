"""partlearn.metrics against the formulas and against the command-line tool: Hoyer sparsity on
hand examples, dilation and erosion against numpy, max-approximation errors against a numpy
computation and against `partlearn eval`, the SVM protocol on separable data, errors."""

import math
import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import partlearn
from partlearn import metrics
from _partlearn_cli import bars, read_metrics, run, strip_run_specific, write_data

# Short fits: their ConvergenceWarnings are expected.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
SQUARE = np.ones((3, 3), dtype=bool)


def np_morph(img, footprint, erode=False):
    """Flat dilation max_{z∈B} f(p+z) (erosion: min f(p−z)) of a 2-D image, ignoring pixels
    outside it, by a centred boolean footprint."""
    h, w = img.shape
    r = footprint.shape[0] // 2
    fill = np.inf if erode else -np.inf
    padded = np.full((h + 2 * r, w + 2 * r), fill)
    padded[r : r + h, r : r + w] = img
    out = np.full((h, w), fill)
    sign = -1 if erode else 1
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if not footprint[dy + r, dx + r]:
                continue
            y0, x0 = r + sign * dy, r + sign * dx
            shifted = padded[y0 : y0 + h, x0 : x0 + w]
            out = np.minimum(out, shifted) if erode else np.maximum(out, shifted)
    return out


def hoyer_formula(x):
    n = len(x)
    return (math.sqrt(n) - np.abs(x).sum() / np.sqrt((x**2).sum())) / (math.sqrt(n) - 1)


# Hoyer sparsity


def test_hoyer_on_hand_examples():
    assert metrics.hoyer_sparsity([0.0, 2.5, 0.0, 0.0]) == 1.0
    assert metrics.hoyer_sparsity([3.0, 3.0, 3.0, 3.0]) == pytest.approx(0.0, abs=1e-15)
    # [3, 4]: (√2 − 7/5)/(√2 − 1).
    assert metrics.hoyer_sparsity([3.0, 4.0]) == pytest.approx((math.sqrt(2) - 1.4) / (math.sqrt(2) - 1), rel=1e-14)
    # Magnitudes count, not signs.
    assert metrics.hoyer_sparsity([-3.0, 4.0]) == metrics.hoyer_sparsity([3.0, 4.0])
    assert math.isnan(metrics.hoyer_sparsity([0.0, 0.0, 0.0]))
    assert math.isnan(metrics.hoyer_sparsity([5.0]))
    # The reference variant scores a zero code √n/(√n − 1) (§7.2).
    assert metrics.hoyer_sparsity(np.zeros(100), reference=True) == pytest.approx(10 / 9, rel=1e-12)


def test_hoyer_rows_and_columns_match_the_formula():
    rng = np.random.RandomState(0)
    X = np.abs(rng.randn(7, 5)) * (rng.rand(7, 5) > 0.4)
    X[3] = 0.0
    rows = metrics.hoyer_sparsity(X)
    assert rows.shape == (7,)
    assert np.isnan(rows[3])
    for i in (0, 1, 2, 4, 5, 6):
        assert rows[i] == pytest.approx(hoyer_formula(X[i]), rel=1e-12)
    np.testing.assert_array_equal(metrics.hoyer_sparsity(X, axis=1), rows)
    cols = metrics.hoyer_sparsity(X, axis=0)
    assert cols.shape == (5,)
    for j in range(5):
        assert cols[j] == pytest.approx(hoyer_formula(X[:, j]), rel=1e-12)
    np.testing.assert_allclose(metrics.hoyer_sparsity(X.astype(np.float32)), rows, rtol=1e-6)
    with pytest.raises(ValueError, match="axis"):
        metrics.hoyer_sparsity(X, axis=2)


# Dilation and erosion


@pytest.mark.parametrize("se,footprint", [("disk:1", CROSS), ("square:3", SQUARE), ("custom:.#./###/.#.", CROSS)])
def test_dilate_and_erode_match_numpy(se, footprint):
    rng = np.random.RandomState(1)
    images = rng.rand(4, 5, 7)
    d = metrics.dilate(images, se)
    e = metrics.erode(images, se)
    assert d.shape == e.shape == images.shape
    for i in range(4):
        np.testing.assert_array_equal(d[i], np_morph(images[i], footprint))
        np.testing.assert_array_equal(e[i], np_morph(images[i], footprint, erode=True))
    # Rows of pixels with the shape given, and the same numbers.
    rows = metrics.dilate(images.reshape(4, 35), se, image_shape=(5, 7), n_threads=2)
    np.testing.assert_array_equal(rows, d.reshape(4, 35))


def test_a_corner_pixel_spreads_to_its_4_neighbours_and_dtype_is_kept():
    img = np.zeros((1, 36), dtype=np.float32)
    img[0, 0] = 1.0
    d = metrics.dilate(img)  # 6×6 inferred
    assert d.dtype == np.float32
    assert sorted(np.flatnonzero(d[0])) == [0, 1, 6]
    # Erosion undoes nothing here, but the adjunction holds: δf ≤ g ⇔ f ≤ εg.
    g = metrics.dilate(img)
    assert np.all(img <= metrics.erode(g))


def test_morphology_errors_speak_of_the_arguments():
    images = np.random.RandomState(2).rand(3, 20)
    with pytest.raises(ValueError, match="not a square number: pass image_shape"):
        metrics.dilate(images)
    with pytest.raises(ValueError, match=r"image_shape=\(3, 5\) has 15 pixels, but the images have 20 features"):
        metrics.dilate(images, image_shape=(3, 5))
    with pytest.raises(ValueError, match="invalid se = disc:1: use disk:R"):
        metrics.dilate(images, "disc:1", image_shape=(4, 5))
    with pytest.raises(ValueError, match="odd side"):
        metrics.erode(images, "square:2", image_shape=(4, 5))
    with pytest.raises(TypeError, match="se must be a str"):
        metrics.dilate(images, 1, image_shape=(4, 5))
    with pytest.raises(ValueError, match="n_threads must be an int ≥ 0"):
        metrics.dilate(images, image_shape=(4, 5), n_threads=-1)
    with pytest.raises(ValueError, match="differs from the shape"):
        metrics.dilate(images.reshape(3, 4, 5), image_shape=(5, 4))
    with pytest.raises(ValueError, match="NaN"):
        metrics.dilate(np.full((1, 4), np.nan))


# Max-approximation error


@pytest.fixture(scope="module")
def fitted():
    X, y = bars()
    model = partlearn.NMF(6, solver="anls", max_iter=50, random_state=0).fit(X.reshape(len(X), -1))
    return model, X, y


def test_max_approximation_error_is_the_formula(fitted):
    model, X, _ = fitted
    rows = X.reshape(len(X), -1)
    codes = model.transform(rows)
    atoms = model.components_.reshape(-1, 6, 6)
    dilated_atoms = np.stack([np_morph(a, CROSS) for a in atoms]).reshape(len(atoms), -1)
    D = codes @ dilated_atoms
    dilated_x = np.stack([np_morph(x, CROSS) for x in X]).reshape(len(X), -1)
    dilated_recon = np.stack([np_morph(r.reshape(6, 6), CROSS) for r in codes @ model.components_]).reshape(len(X), -1)
    e = metrics.max_approximation_error(model, X)
    assert e["structuring_element"] == "disk:1"
    assert e["vs_dilated_originals"] == pytest.approx(np.mean((D - dilated_x) ** 2), rel=1e-9)
    assert e["vs_dilated_originals_clipped"] == pytest.approx(np.mean((np.clip(D, 0, 1) - dilated_x) ** 2), rel=1e-9)
    assert e["vs_dilated_reconstructions"] == pytest.approx(np.mean((D - dilated_recon) ** 2), rel=1e-9)
    # Rows with the shape inferred or given give the same numbers as (n, h, w) images.
    assert metrics.max_approximation_error(model, rows) == e
    assert metrics.max_approximation_error(model, rows, image_shape=(6, 6), n_threads=2) == e


def test_max_approximation_error_and_evaluate_equal_partlearn_eval(fitted, tmp_path):
    model, X, y = fitted
    run_dir = tmp_path / "run"
    model.save(run_dir)
    x_path, y_path = write_data(tmp_path, X, y)
    run(
        "eval", run_dir, "--data", x_path, "--labels", y_path, "--dtype", "f64", "--se", "square:3",
        "--svm-grid", "3", "--svm-select-splits", "2", "--svm-eval-splits", "4", "--seed", "5", "--quiet",
    )
    cli = read_metrics(run_dir)
    ours = metrics.evaluate(
        model, X, y, se="square:3", svm={"c_grid": 3, "select_splits": 2, "eval_splits": 4, "random_state": 5}
    )
    assert strip_run_specific(ours) == strip_run_specific(cli)
    assert ours["svm"]["options"]["seed"] == 5
    assert metrics.max_approximation_error(model, X, se="square:3") == cli["max_approx"]


def test_evaluate_without_labels_or_image_shape(fitted):
    model, X, _ = fitted
    m = metrics.evaluate(model, X.reshape(len(X), -1))
    assert m["svm"] is None and m["max_approx"] is not None  # 36 pixels: 6×6 inferred
    assert (m["model_kind"], m["n_samples"], m["n_features"], m["k"]) == ("nmf", 90, 36, 6)
    codes = model.transform(X.reshape(len(X), -1))
    s = metrics.hoyer_sparsity(codes)
    assert m["hoyer"]["mean"] == pytest.approx(np.nanmean(s), rel=1e-12)
    assert m["hoyer"]["zero_codes"] == int(np.isnan(s).sum())
    # 5×7 = 35 features is not a square: no max-approximation, the rest is measured.
    Z = np.abs(np.random.RandomState(3).rand(40, 35))
    flat = partlearn.NMF(3, max_iter=20, random_state=0).fit(Z)
    assert metrics.evaluate(flat, Z)["max_approx"] is None
    assert metrics.evaluate(flat, Z, image_shape=(5, 7))["max_approx"] is not None
    with pytest.raises(ValueError, match="not a square number"):
        metrics.max_approximation_error(flat, Z)


def test_evaluate_with_the_stored_codes_of_sparse_nmf():
    X, y = bars(60)
    rows = X.reshape(len(X), -1)
    model = partlearn.SparseNMF(4, code_sparsity=0.6, max_iter=40, random_state=0).fit(rows)
    stored = metrics.evaluate(model, rows, stored_codes=True)
    encoded = metrics.evaluate(model, rows)
    assert stored["hoyer"]["mean"] == pytest.approx(np.nanmean(metrics.hoyer_sparsity(model.training_codes_)), rel=1e-12)
    assert stored["hoyer"] != encoded["hoyer"]
    with pytest.raises(ValueError, match="give the training data"):
        metrics.evaluate(model, rows[:10], stored_codes=True)
    nmf = partlearn.NMF(4, max_iter=20, random_state=0).fit(rows)
    with pytest.raises(ValueError, match="NMF has none: drop stored_codes"):
        metrics.evaluate(nmf, rows, stored_codes=True)


# SVM protocol


def test_svm_protocol_separates_separable_codes():
    rng = np.random.RandomState(4)
    centres = np.array([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    y = np.repeat(["coat", "shirt", "shoe"], 60)
    codes = centres[np.repeat([0, 1, 2], 60)] + 0.3 * rng.rand(180, 3)
    r = metrics.svm_protocol_accuracy(codes, y, c_grid=3, select_splits=2, eval_splits=5)
    assert r["mean_accuracy"] == 1.0 and r["std_accuracy"] == 0.0
    assert len(r["accuracies"]) == 5 and len(r["validation_curve"]) == 3
    assert r["options"]["c_grid"] == 3 and r["options"]["seed"] == 0
    again = metrics.svm_protocol_accuracy(codes, y, c_grid=3, select_splits=2, eval_splits=5, n_threads=2)
    assert again["accuracies"] == r["accuracies"]


def test_svm_protocol_warns_when_test_splits_hold_fewer_samples_than_classes():
    rng = np.random.RandomState(4)
    y = np.repeat([0, 1, 2], 60)
    codes = np.eye(3)[y] * 5.0 + 0.3 * rng.rand(180, 3)
    # 20 % of 180 held out, 5 % of those tested: 2 samples for 3 classes.
    with pytest.warns(UserWarning, match="tests on 2 sample\\(s\\) for 3 classes"):
        r = metrics.svm_protocol_accuracy(codes, y, c_grid=2, select_splits=1, eval_splits=2)
    assert (r["test_samples"], r["classes"]) == (2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = metrics.svm_protocol_accuracy(codes, y, c_grid=2, select_splits=1, eval_splits=2, eval_fraction=0.2)
    assert r["test_samples"] == 8


def test_svm_protocol_errors():
    codes = np.random.RandomState(5).rand(20, 3)
    with pytest.raises(ValueError, match="at least two classes"):
        metrics.svm_protocol_accuracy(codes, np.zeros(20))
    with pytest.raises(ValueError, match="inconsistent numbers of samples: \\[20, 19\\]"):
        metrics.svm_protocol_accuracy(codes, np.arange(19) % 2)
    with pytest.raises(ValueError, match="c_grid"):
        metrics.svm_protocol_accuracy(codes, np.arange(20) % 2, c_grid=1000)
    with pytest.raises(ValueError, match="fractions"):
        metrics.svm_protocol_accuracy(codes, np.arange(20) % 2, holdout=1.5)


# Errors with fitted models


def test_metric_errors_in_scikit_learns_words(fitted):
    model, X, y = fitted
    rows = X.reshape(len(X), -1)
    with pytest.raises(ValueError, match="X has 35 features, but NMF is expecting 36 features"):
        metrics.evaluate(model, rows[:, :35], image_shape=(5, 7))
    with pytest.raises(ValueError, match="Negative values in data passed to NMF"):
        metrics.evaluate(model, -rows)
    with pytest.raises(NotFittedError):
        metrics.evaluate(partlearn.NMF(2), rows)
    with pytest.raises(TypeError, match="model must be a fitted partlearn estimator"):
        metrics.evaluate(object(), rows)
    with pytest.raises(ValueError, match="invalid se = disk:x"):
        metrics.evaluate(model, X, se="disk:x")
    with pytest.raises(ValueError, match="unknown SVM protocol option"):
        metrics.evaluate(model, X, y, svm={"c_grd": 3})
    with pytest.raises(ValueError, match="svm must be True, False or a dict"):
        metrics.evaluate(model, X, y, svm="yes")
