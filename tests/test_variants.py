"""Each variant computes the parametrisation it documents."""

import numpy as np
import pytest
from scipy.special import softplus
from sklearn.isotonic import IsotonicRegression

from sklearn_samn import SAMNClassifier

from .conftest import make_long_tailed_blobs

COUNTS = (60, 30, 15, 8, 4)


def paper_map(p):
    """The published map from PAVA output to norm (and to bias term)."""
    return np.exp(1.0 / (softplus(p) + 1e-6))


def isotonic(values, counts, increasing):
    return IsotonicRegression(increasing=increasing).fit_transform(counts, values)


def test_paper_initialisation_matches_the_published_values():
    X, y = make_long_tailed_blobs(counts=COUNTS)
    rng = np.random.default_rng(0)
    coef_init = rng.normal(size=(5, X.shape[1]))
    intercept_init = rng.normal(size=5)
    # A vanishing learning rate leaves the head at its initialisation.
    clf = SAMNClassifier(
        variant="paper", loss="cross_entropy", solver="adam",
        learning_rate_init=1e-12, max_iter=1, device="cpu", random_state=0,
    ).fit(X, y, coef_init=coef_init, intercept_init=intercept_init)
    counts = np.asarray(COUNTS, dtype=float)
    scaled = (counts - counts.min()) / (counts.max() - counts.min())
    np.testing.assert_allclose(clf._head_state["norm_scalars"], scaled, atol=1e-9)
    np.testing.assert_allclose(clf._head_state["bias_scalars"], scaled, atol=1e-9)
    norms = np.linalg.norm(clf.coef_, axis=1)
    np.testing.assert_allclose(norms, paper_map(scaled), rtol=1e-6)
    # METHOD.md: initial norms about 2 to 4; bias term tail +4.2, head +2.1.
    np.testing.assert_allclose([norms[-1], norms[0]], [4.2326, 2.1406], atol=1e-3)
    np.testing.assert_allclose(
        clf.intercept_, intercept_init + paper_map(scaled), rtol=1e-6, atol=1e-6
    )
    # Directions come from the given head.
    unit = coef_init / np.linalg.norm(coef_init, axis=1, keepdims=True)
    np.testing.assert_allclose(clf.coef_ / norms[:, None], unit, atol=1e-6)


def test_paper_fitted_head_is_the_published_formula():
    X, y = make_long_tailed_blobs(counts=COUNTS)
    clf = SAMNClassifier(
        variant="paper", loss="cross_entropy", solver="sgd",
        learning_rate_init=0.05, batch_size=16, max_iter=20,
        device="cpu", random_state=0,
    ).fit(X, y)
    state = clf._head_state
    counts = clf.class_count_
    p = isotonic(state["norm_scalars"], counts, increasing=True)
    p_bias = isotonic(state["bias_scalars"], counts, increasing=True)
    directions = state["directions"]
    expected_coef = (
        paper_map(p)[:, None] * directions / np.linalg.norm(directions, axis=1)[:, None]
    )
    np.testing.assert_allclose(clf.coef_, expected_coef, rtol=1e-10)
    np.testing.assert_allclose(
        clf.intercept_, state["bias"] + paper_map(p_bias), rtol=1e-10
    )
    # The paper's variant works on raw X: decision_function needs no rescaling.
    np.testing.assert_allclose(
        clf.decision_function(X), X @ clf.coef_.T + clf.intercept_, rtol=1e-12
    )


def test_invariant_fitted_head_is_its_formula():
    X, y = make_long_tailed_blobs(counts=COUNTS)
    X = 7.0 * X + 3.0
    clf = SAMNClassifier(device="cpu", random_state=0, max_iter=20).fit(X, y)
    state = clf._head_state
    mean = X.mean(axis=0)
    scale = np.sqrt(np.mean(np.sum((X - mean) ** 2, axis=1)))
    q = isotonic(state["log_norms"], clf.class_count_, increasing=False)
    q = np.minimum(q, np.log(clf.max_norm_))  # the cap chosen by cross-validation
    directions = state["directions"]
    unit = directions / np.linalg.norm(directions, axis=1)[:, None]
    expected_coef = np.exp(q)[:, None] * unit / scale
    np.testing.assert_allclose(clf.coef_, expected_coef, rtol=1e-10)
    np.testing.assert_allclose(
        clf.intercept_, state["bias"] - expected_coef @ mean, rtol=1e-9, atol=1e-12
    )


def test_invariant_initialisation_is_class_means_with_equal_norms():
    X, y = make_long_tailed_blobs(counts=COUNTS)
    clf = SAMNClassifier(
        device="cpu", solver="adam", random_state=0, max_iter=1,
        learning_rate_init=1e-12,
    ).fit(X, y)
    norms = np.linalg.norm(clf.coef_, axis=1)
    np.testing.assert_allclose(norms, norms[0], rtol=1e-6)
    means = np.stack([X[y == c].mean(axis=0) for c in range(5)]) - X.mean(axis=0)
    unit = means / np.linalg.norm(means, axis=1, keepdims=True)
    np.testing.assert_allclose(clf.coef_ / norms[:, None], unit, atol=1e-6)


def test_paper_variant_depends_on_the_scale_of_X():
    # Documented: the published parametrisation is not scale-invariant.
    X, y = make_long_tailed_blobs(counts=COUNTS)
    params = dict(variant="paper", device="cpu", random_state=0, max_iter=5)
    small = SAMNClassifier(**params).fit(X * 0.01, y)
    large = SAMNClassifier(**params).fit(X, y)
    assert not np.allclose(
        small.predict_proba(X * 0.01), large.predict_proba(X), atol=1e-3
    )


@pytest.mark.parametrize("variant", ["invariant", "paper"])
def test_equal_counts_give_a_symmetric_head(variant):
    # Balanced data: every class is tied; the head's norms are unconstrained
    # among themselves and the fit must not depend on the order of labels.
    X, y = make_long_tailed_blobs(counts=(20, 20, 20), seed=5)
    rename = np.array([2, 0, 1])
    params = dict(variant=variant, device="cpu", random_state=0, max_iter=10)
    a = SAMNClassifier(**params).fit(X, y)
    b = SAMNClassifier(**params).fit(X, rename[y])
    np.testing.assert_allclose(
        b.predict_proba(X)[:, rename], a.predict_proba(X), atol=1e-5
    )
