"""The training loop's hand-written gradient against autograd in float64."""

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_samn._training import _add_block_gradient


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

    acc_w, acc_b = torch.full_like(weights, 0.5), torch.full_like(bias, -0.25)
    got = _add_block_gradient(
        X, y, w, weights, bias, shift, inv_scale, row_scale, acc_w, acc_b
    )
    np.testing.assert_allclose(got, loss, rtol=1e-10, atol=1e-10)
    # The gradient is added to what the buffers held.
    np.testing.assert_allclose(acc_w - 0.5, grad_w, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(acc_b + 0.25, grad_b, rtol=1e-9, atol=1e-10)
