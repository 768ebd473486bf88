"""The training loop's hand-written gradient against autograd in float64."""

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_samn._training import (
    _add_block_gradient,
    fold_standardisation,
    unfold_gradient,
)


def _reference(X, y, w, weights, bias, shift, inv_scale, row_scale):
    """Weighted cross-entropy and its gradient by autograd, float64."""
    weights = weights.clone().requires_grad_()
    bias = bias.clone().requires_grad_()
    inputs = X if shift is None else (X - shift) * inv_scale
    losses = F.cross_entropy(inputs @ weights.T + bias, y, reduction="none")
    loss = (losses * w).sum()
    (loss * row_scale).backward()
    return loss.detach(), weights.grad, bias.grad


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    d=st.integers(1, 6),
    c=st.integers(2, 7),
    centre=st.booleans(),
    logit_scale=st.sampled_from([0.1, 1.0, 30.0]),
    seed=st.integers(0, 2**16),
)
def test_block_gradient_matches_autograd(n, d, c, centre, logit_scale, seed):
    rng = np.random.default_rng(seed)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    X = t(rng.normal(size=(n, d)) + 3.0)
    y = torch.as_tensor(rng.integers(0, c, n))
    w = t(rng.uniform(0, 2, n))
    weights = t(rng.normal(size=(c, d)) * logit_scale)
    bias = t(rng.normal(size=c))
    shift = t(rng.normal(size=d)) if centre else None
    inv_scale, row_scale = 0.7, 1 / 3
    loss, grad_w, grad_b = _reference(X, y, w, weights, bias, shift, inv_scale, row_scale)

    # Raw rows with the folded head, as the block loops run it.
    raw_w, raw_b = fold_standardisation(weights, bias, shift, inv_scale)
    acc_w, acc_b = torch.zeros_like(weights), torch.zeros_like(bias)
    got = _add_block_gradient(X, y, w, raw_w, raw_b, row_scale, acc_w, acc_b)
    unfold_gradient(acc_w, acc_b, shift, inv_scale)
    np.testing.assert_allclose(got, loss, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(acc_w, grad_w, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(acc_b, grad_b, rtol=1e-9, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), d=st.integers(1, 6), c=st.integers(2, 7),
       seed=st.integers(0, 2**16))
def test_block_gradient_adds_to_its_buffers(n, d, c, seed):
    # Blocks accumulate into the same buffers: a call adds its gradient to
    # what they held, and two halves add up to the whole.
    rng = np.random.default_rng(seed)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    X, w = t(rng.normal(size=(n, d))), t(rng.uniform(0, 2, n))
    y = torch.as_tensor(rng.integers(0, c, n))
    weights, bias = t(rng.normal(size=(c, d))), t(rng.normal(size=c))
    whole_w, whole_b = torch.zeros_like(weights), torch.zeros_like(bias)
    whole = _add_block_gradient(X, y, w, weights, bias, 0.5, whole_w, whole_b)
    acc_w, acc_b = torch.full_like(weights, 0.5), torch.full_like(bias, -0.25)
    half = n // 2
    parts = sum(
        float(_add_block_gradient(X[s], y[s], w[s], weights, bias, 0.5, acc_w, acc_b))
        for s in (slice(0, half), slice(half, n))
    )
    np.testing.assert_allclose(parts, float(whole), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(acc_w - 0.5, whole_w, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(acc_b + 0.25, whole_b, rtol=1e-9, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 20), d=st.integers(1, 6), c=st.integers(1, 6),
       offset=st.sampled_from([0.0, 1.0, 100.0]), seed=st.integers(0, 2**16))
def test_folded_head_scores_raw_rows_as_the_head_scores_standardised_ones(
    n, d, c, offset, seed
):
    rng = np.random.default_rng(seed)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    shift = t(rng.normal(size=d) + offset)
    X = t(rng.normal(size=(n, d))) + shift
    weights, bias = t(rng.normal(size=(c, d))), t(rng.normal(size=c))
    inv_scale = float(rng.uniform(0.1, 10))
    raw_w, raw_b = fold_standardisation(weights, bias, shift, inv_scale)
    np.testing.assert_allclose(
        X @ raw_w.T + raw_b, ((X - shift) * inv_scale) @ weights.T + bias,
        rtol=1e-9, atol=1e-9 * (1 + offset),
    )
    # Nothing to standardise: the head itself, the gradient untouched.
    assert fold_standardisation(weights, bias, None, 1.0) == (weights, bias)
    grad = t(rng.normal(size=(c, d)))
    assert unfold_gradient(grad, bias, None, 1.0) is grad
    # float32 heads keep their dtype; the folded bias is rounded once.
    w32, b32 = fold_standardisation(weights.float(), bias.float(), shift.float(), inv_scale)
    assert w32.dtype == b32.dtype == torch.float32
