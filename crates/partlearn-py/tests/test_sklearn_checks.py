"""scikit-learn's own conformance suite, on every estimator; non-negative input only is declared
through the estimators' tags (as scikit-learn's NMF does), never by skipping checks."""

from sklearn.utils.estimator_checks import parametrize_with_checks

import partlearn

ESTIMATORS = [
    partlearn.NMF(n_components=2, max_iter=500),
    partlearn.NMF(n_components=2, solver="mu", max_iter=500),
    partlearn.NMF(n_components=2, solver="anls", max_iter=500),
    partlearn.SparseNMF(n_components=2, code_sparsity=0.5, max_iter=200),
    partlearn.MiniBatchNMF(n_components=2, batch_size=10, max_iter=50),
    partlearn.SparseAutoencoder(n_components=2, optimizer="adam", learning_rate=0.01, batch_size=32, max_iter=5),
    # The convolutional encoder reads each sample as a one-row image, whatever the feature count.
    partlearn.SparseAutoencoder(n_components=2, architecture="asymmetric", image_shape=(1, -1), batch_size=32, max_iter=2),
    # Labels {-1, 1} are among scikit-learn's checks of classifiers: `unlabeled=None` takes -1 as
    # a class (scikit-learn exempts its own semi-supervised estimators from that check by name).
    partlearn.SSNMF(n_components=2, max_iter=300, unlabeled=None),
    partlearn.HierarchicalNMF(ranks=(2, 1), max_iter=100),
    partlearn.DeepNMF(ranks=(2, 1), max_iter=100),
    partlearn.NeuralNMF(ranks=(2, 1), epochs=30, lr=0.1),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
