"""The training objective is the one the docstring states, against float64 NumPy.

``loss="logit_adjusted"``: the mean (sample-weighted) softmax cross-entropy of
``scores + log(prior)``, with ``prior`` the weighted class frequency of the
training set; ``loss="cross_entropy"``: the same without the offset. These
tests pin the offset, its sign and the prior it is built from, which the
accuracy tests would not notice.
"""

import numpy as np
import pytest
import torch
from scipy.special import log_softmax, softmax

from sklearn_samn import SAMNClassifier
from sklearn_samn._training import (
    _add_block_gradient,
    fold_standardisation,
    unfold_gradient,
)

from .conftest import make_long_tailed_blobs

COUNTS = (60, 30, 15, 8, 4)


def reference_objective(X, y, sample_weight, coef, intercept, offset):
    """Mean weighted cross-entropy of ``X @ coef.T + intercept + offset``, float64."""
    logits = X @ coef.T + intercept + offset
    losses = -log_softmax(logits, axis=1)[np.arange(len(y)), y]
    return float(sample_weight @ losses / sample_weight.sum())


def log_prior(y, sample_weight, n_classes):
    counts = np.bincount(y, weights=sample_weight, minlength=n_classes)
    return np.log(counts / counts.sum())


@pytest.mark.parametrize("centre", [False, True])
def test_block_gradient_is_the_offset_cross_entropy_in_float64(centre):
    # _add_block_gradient receives bias + offset as its logit bias; its loss
    # and gradients are those of softmax cross-entropy of scores + offset.
    rng = np.random.default_rng(0)
    n, d, c = 50, 6, 5
    X = rng.normal(size=(n, d)) + 2.0
    y = rng.integers(0, c, n)
    w = rng.uniform(0.1, 2.0, n)
    weights, bias = rng.normal(size=(c, d)), rng.normal(size=c)
    shift = rng.normal(size=d) if centre else None
    inv_scale, row_scale = 0.5, 1.0 / 7
    offset = log_prior(y, w, c)
    inputs = X if shift is None else (X - shift) * inv_scale
    logits = inputs @ weights.T + bias + offset
    losses = -log_softmax(logits, axis=1)[np.arange(n), y]
    residual = (softmax(logits, axis=1) - np.eye(c)[y]) * (w * row_scale)[:, None]

    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    grad_w, grad_b = torch.zeros(c, d, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
    shift_t = None if shift is None else t(shift)
    raw_w, raw_b = fold_standardisation(t(weights), t(bias + offset), shift_t, inv_scale)
    loss = _add_block_gradient(
        t(X), torch.as_tensor(y), t(w), raw_w, raw_b, row_scale, grad_w, grad_b,
    )
    unfold_gradient(grad_w, grad_b, shift_t, inv_scale)
    np.testing.assert_allclose(float(loss), w @ losses, rtol=1e-12)
    np.testing.assert_allclose(grad_w.numpy(), residual.T @ inputs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad_b.numpy(), residual.sum(axis=0), rtol=1e-10, atol=1e-12)
    # The offset matters: without it the loss is another number.
    plain = -log_softmax(logits - offset, axis=1)[np.arange(n), y]
    assert abs(w @ plain - float(loss)) > 1e-3 * abs(float(loss))


def _initial_head(n_features, n_classes, seed=1):
    """A head with equal row norms: feasible, so fit starts exactly from it."""
    rng = np.random.default_rng(seed)
    coef = rng.normal(size=(n_classes, n_features))
    coef *= 0.5 / np.linalg.norm(coef, axis=1, keepdims=True)
    return coef, rng.normal(scale=0.5, size=n_classes)


def _first_loss(X, y, sample_weight, coef, intercept, **params):
    # One full-batch Adam pass: its loss is measured at the initial head,
    # before the pass's single step.
    clf = SAMNClassifier(
        device="cpu", solver="adam", max_iter=1, random_state=0, **params
    ).fit(X, y, sample_weight=sample_weight, coef_init=coef, intercept_init=intercept)
    return clf.loss_curve_[0]


@pytest.mark.parametrize("heavier_class", [None, 0, 4])
def test_logit_adjusted_loss_is_cross_entropy_of_scores_plus_log_prior(heavier_class):
    # The prior is the weighted training frequency: weighting one class up
    # moves it, and the first loss moves exactly as the reference says.
    X, y = make_long_tailed_blobs(counts=COUNTS)
    n_classes = len(COUNTS)
    rng = np.random.default_rng(0)
    sample_weight = rng.uniform(0.5, 1.5, len(y))
    if heavier_class is not None:
        sample_weight[y == heavier_class] *= 5.0
    coef, intercept = _initial_head(X.shape[1], n_classes)
    offset = log_prior(y, sample_weight, n_classes)
    expected = reference_objective(X, y, sample_weight, coef, intercept, offset)

    got = _first_loss(X, y, sample_weight, coef, intercept)
    np.testing.assert_allclose(got, expected, rtol=2e-5)
    # The references a zeroed offset, a flipped sign or an unweighted prior
    # would match are far from it (far beyond float32 rounding).
    unweighted = log_prior(y, np.ones(len(y)), n_classes)
    for wrong in (np.zeros(n_classes), -offset, unweighted):
        other = reference_objective(X, y, sample_weight, coef, intercept, wrong)
        assert abs(other - expected) > 1e-3 * expected, wrong


def test_plain_cross_entropy_has_no_offset():
    X, y = make_long_tailed_blobs(counts=COUNTS)
    w = np.ones(len(y))
    coef, intercept = _initial_head(X.shape[1], len(COUNTS))
    expected = reference_objective(X, y, w, coef, intercept, 0.0)
    got = _first_loss(X, y, None, coef, intercept, loss="cross_entropy")
    np.testing.assert_allclose(got, expected, rtol=2e-5)


def test_logit_adjusted_prior_is_the_training_set_not_class_counts():
    # class_counts set the monotone order only; the loss keeps the prior of
    # the rows it is trained on.
    X, y = make_long_tailed_blobs(counts=COUNTS)
    w = np.ones(len(y))
    coef, intercept = _initial_head(X.shape[1], len(COUNTS))
    expected = reference_objective(
        X, y, w, coef, intercept, log_prior(y, w, len(COUNTS))
    )
    got = _first_loss(X, y, None, coef, intercept, class_counts=[1, 2, 3, 4, 5])
    np.testing.assert_allclose(got, expected, rtol=2e-5)
