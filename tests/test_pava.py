"""The monotone projection: exactness, properties and its backward pass."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression

from sklearn_samn._pava import (
    CountOrder,
    monotone_order,
    monotone_projection,
    monotone_projection_torch,
)

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def values_and_counts(draw, max_size=12):
    """Values with counts drawn from a small range, so that ties are common."""
    n = draw(st.integers(1, max_size))
    values = draw(arrays(np.float64, n, elements=finite))
    counts = draw(arrays(np.int64, n, elements=st.integers(1, 4)))
    return values, counts


def brute_force_projection(values, counts, increasing):
    """Projection onto the partial-order cone by a generic constrained solver."""
    n = len(values)
    sign = 1.0 if increasing else -1.0
    constraints = [
        {"type": "ineq", "fun": lambda x, i=i, j=j: sign * (x[j] - x[i])}
        for i, j in itertools.product(range(n), repeat=2)
        if counts[i] < counts[j]
    ]
    result = minimize(
        lambda x: np.sum((x - values) ** 2),
        np.full(n, values.mean()),
        jac=lambda x: 2 * (x - values),
        constraints=constraints,
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    return result.x


@pytest.mark.parametrize("increasing", [True, False])
def test_matches_sklearn_isotonic_regression_without_ties(increasing):
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = rng.integers(1, 30)
        counts = rng.permutation(n) + 1.0
        values = rng.normal(size=n)
        expected = IsotonicRegression(increasing=increasing).fit_transform(
            counts, values
        )
        projected, _ = monotone_projection(values, counts, increasing=increasing)
        np.testing.assert_allclose(projected, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("increasing", [True, False])
def test_exact_projection_onto_partial_order_with_ties(increasing):
    rng = np.random.default_rng(1)
    for _ in range(15):
        n = rng.integers(2, 8)
        counts = rng.integers(1, 4, size=n)
        values = rng.normal(size=n)
        projected, _ = monotone_projection(values, counts, increasing=increasing)
        expected = brute_force_projection(values, counts, increasing)
        np.testing.assert_allclose(projected, expected, atol=1e-6)


def test_regression_tied_counts_do_not_depend_on_label_order():
    # METHOD.md: a stable argsort + PAVA gives [1.5, 1.5, 3] here, and
    # [2, 1, 3] once the two tied labels are swapped.
    counts = np.array([10, 10, 50])
    a, _ = monotone_projection([2.0, 1.0, 3.0], counts, increasing=True)
    b, _ = monotone_projection([1.0, 2.0, 3.0], counts, increasing=True)
    np.testing.assert_array_equal(a, [2.0, 1.0, 3.0])
    np.testing.assert_array_equal(b, [1.0, 2.0, 3.0])
    c, _ = monotone_projection([2.0, 1.0, 3.0], counts, increasing=False)
    d, _ = monotone_projection([1.0, 2.0, 3.0], counts, increasing=False)
    np.testing.assert_array_equal(c, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(d, [2.0, 2.0, 2.0])


def _is_monotone(x, counts, increasing):
    lower = counts[:, None] < counts[None, :]
    diff = x[None, :] - x[:, None]  # x_j - x_i
    if not increasing:
        diff = -diff
    return np.all(diff[lower] >= -1e-9 * (1 + np.abs(x).max()))


@settings(max_examples=200, deadline=None)
@given(values_and_counts(), st.booleans())
def test_property_output_is_monotone(data, increasing):
    values, counts = data
    projected, _ = monotone_projection(values, counts, increasing=increasing)
    assert _is_monotone(projected, counts, increasing)


@settings(max_examples=200, deadline=None)
@given(values_and_counts(), st.booleans())
def test_property_idempotent(data, increasing):
    values, counts = data
    once, _ = monotone_projection(values, counts, increasing=increasing)
    twice, blocks = monotone_projection(once, counts, increasing=increasing)
    np.testing.assert_allclose(twice, once, rtol=1e-12, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(values_and_counts(), st.booleans())
def test_property_block_means_preserved(data, increasing):
    values, counts = data
    projected, blocks = monotone_projection(values, counts, increasing=increasing)
    for block in np.unique(blocks):
        members = blocks == block
        np.testing.assert_allclose(
            projected[members], values[members].mean(), rtol=1e-9, atol=1e-9
        )
    # Optimality (Moreau): the residual is orthogonal to the projection.
    residual = values - projected
    assert abs(residual @ projected) <= 1e-7 * (1 + values @ values)


@settings(max_examples=200, deadline=None)
@given(values_and_counts(), st.booleans(), st.randoms(use_true_random=False))
def test_property_renaming_classes_permutes_the_result(data, increasing, rnd):
    values, counts = data
    perm = np.array(rnd.sample(range(len(values)), len(values)))
    projected, _ = monotone_projection(values, counts, increasing=increasing)
    permuted, _ = monotone_projection(
        values[perm], counts[perm], increasing=increasing
    )
    np.testing.assert_allclose(permuted, projected[perm], rtol=1e-12, atol=1e-9)


@st.composite
def feasible_values_and_counts(draw, max_size=12):
    """Counts with frequent ties and values that already satisfy the constraint
    for ``increasing=True``: the values of each count group lie in an interval
    of its own, the intervals ascending with the count. Within a group the
    values are in any order; equal values (shared interval ends) are common."""
    n = draw(st.integers(1, max_size))
    counts = draw(arrays(np.int64, n, elements=st.integers(1, 4)))
    groups = np.unique(counts)
    edges = np.sort(draw(arrays(np.float64, len(groups) + 1, elements=finite)))
    fractions = draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 0.3, 1.0])
                            | st.floats(0, 1)))
    group = np.searchsorted(groups, counts)
    low, high = edges[group], edges[group + 1]
    values = np.clip(low + fractions * (high - low), low, high)
    return values, counts


@settings(max_examples=300, deadline=None)
@given(feasible_values_and_counts(), st.booleans())
def test_property_projection_of_a_feasible_vector_is_the_identity(data, increasing):
    # A vector already monotone in the counts is its own projection, whatever
    # the order of values inside a group of tied counts (where a tie broken by
    # class index would pool them).
    values, counts = data
    if not increasing:
        values = -values
    assert _is_monotone(values, counts, increasing)
    projected, _ = monotone_projection(values, counts, increasing=increasing)
    np.testing.assert_allclose(projected, values, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("increasing", [True, False])
def test_gradcheck(increasing):
    rng = np.random.default_rng(3)
    counts = np.array([1, 2, 2, 3, 5, 5, 5, 8])
    for _ in range(5):
        # Distinct values keep the input away from block boundaries, where the
        # projection is not differentiable.
        start = rng.permutation(8).astype(np.float64) + rng.uniform(0, 0.1, 8)
        values = torch.tensor(start, requires_grad=True)
        assert torch.autograd.gradcheck(
            lambda v: monotone_projection_torch(v, counts, increasing=increasing),
            (values,),
        )


def test_backward_is_block_mean_of_incoming_gradients():
    values = torch.tensor([3.0, 1.0, 2.0, 0.5], requires_grad=True)
    counts = [1, 2, 3, 4]
    out = monotone_projection_torch(values, counts, increasing=False)
    np.testing.assert_allclose(out.detach().numpy(), [3.0, 1.5, 1.5, 0.5])
    out.backward(torch.tensor([1.0, 4.0, 2.0, -1.0]))
    np.testing.assert_allclose(values.grad.numpy(), [1.0, 3.0, 3.0, -1.0])


def test_torch_projection_keeps_dtype_and_device():
    values = torch.tensor([1.0, 0.0], dtype=torch.float32)
    out = monotone_projection_torch(values, [1, 2], increasing=True)
    assert out.dtype == torch.float32 and out.device == values.device
    np.testing.assert_allclose(out.numpy(), [0.5, 0.5])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same length"):
        monotone_projection([1.0, 2.0], [1, 2, 3])


def test_backward_at_exact_ties_lets_values_separate():
    # All inputs equal: feasible, pooled only because they tie. The backward
    # pass takes the identity there, so equal starting values can move apart
    # (block means would keep them equal for ever).
    values = torch.full((4,), 2.0, requires_grad=True)
    out = monotone_projection_torch(values, [1, 2, 3, 4], increasing=False)
    out.backward(torch.tensor([1.0, -1.0, 3.0, 0.5]))
    np.testing.assert_allclose(values.grad.numpy(), [1.0, -1.0, 3.0, 0.5])


def test_backward_keeps_block_means_where_a_violation_was_pooled():
    # [2, 2, 3] under "non-increasing": 3 violates, all three pool (mean 7/3).
    values = torch.tensor([2.0, 2.0, 3.0, 1.0], requires_grad=True)
    out = monotone_projection_torch(values, [1, 2, 3, 4], increasing=False)
    np.testing.assert_allclose(out.detach().numpy(), [7 / 3, 7 / 3, 7 / 3, 1.0], rtol=1e-6)
    out.backward(torch.tensor([3.0, 0.0, 0.0, 5.0]))
    np.testing.assert_allclose(values.grad.numpy(), [1.0, 1.0, 1.0, 5.0], rtol=1e-6)


@settings(max_examples=300, deadline=None)
@given(values_and_counts(max_size=40), st.booleans())
def test_property_fast_order_is_the_lexicographic_order(data, increasing):
    # CountOrder sorts one integer key (count rank, leading value bits) and
    # checks the result exactly; up to exactly equal values it is the
    # lexicographic (count, value) order that makes the projection exact.
    values, counts = data
    fast = CountOrder(counts).order(values, increasing=increasing)
    slow = monotone_order(values, counts, increasing=increasing)
    np.testing.assert_array_equal(counts[fast], counts[slow])
    np.testing.assert_array_equal(values[fast], values[slow])


@pytest.mark.parametrize("increasing", [True, False])
def test_fast_order_falls_back_when_the_key_cannot_tell_values_apart(increasing):
    # Two tied classes whose values differ in the last bit, which the key
    # drops next to 40 000 count groups: the exact check catches it.
    n = 40_000
    counts = np.arange(n, dtype=np.float64)
    counts[1] = counts[0]
    values = np.linspace(0.0, 1.0, n)
    values[:2] = [1.0, np.nextafter(1.0, 2.0)]
    if increasing:
        values[:2] = values[1::-1]
    order = CountOrder(counts).order(values, increasing=increasing)
    np.testing.assert_array_equal(order, monotone_order(values, counts, increasing=increasing))


def test_projection_at_many_classes_with_a_prepared_order_matches_the_reference():
    rng = np.random.default_rng(0)
    n = 100_000
    counts = np.floor(1000 * 0.01 ** (np.arange(n) / (n - 1)))
    rng.shuffle(counts)
    values = rng.normal(size=n)
    prepared = CountOrder(counts)
    fast, _ = monotone_projection(values, prepared, increasing=False)
    order = monotone_order(values, counts, increasing=False)
    reference = np.empty(n)
    reference[order] = IsotonicRegression(increasing=False).fit_transform(
        np.arange(n), values[order]
    )
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(
            arrays(np.int64, n, elements=st.integers(1, 4)),
            st.lists(arrays(np.float64, n, elements=finite), min_size=2, max_size=4),
        )
    ),
    st.booleans(),
)
def test_property_a_prepared_order_is_reusable(data, increasing):
    # CountOrder keeps workspace between calls; no call may depend on or
    # change the result of an earlier one.
    counts, many_values = data
    prepared = CountOrder(counts)
    orders = [prepared.order(values, increasing=increasing) for values in many_values]
    for values, order in zip(many_values, orders):
        reference = monotone_order(values, counts, increasing=increasing)
        np.testing.assert_array_equal(counts[order], counts[reference])
        np.testing.assert_array_equal(values[order], values[reference])


@pytest.mark.parametrize("n_groups", [1, 50, 5_000])
def test_prepared_order_at_radix_sort_sizes_matches_lexsort(n_groups):
    # From 2048 classes the key is sorted by torch's radix sort; with one
    # class per count (n_groups == n) no sort is needed at all.
    rng = np.random.default_rng(n_groups)
    n = 5_000
    counts = rng.integers(0, n_groups, size=n) if n_groups < n else rng.permutation(n)
    prepared = CountOrder(counts)
    first_values = rng.normal(size=n)
    first = prepared.order(first_values, increasing=False)
    kept = first.copy()
    for increasing in (True, False):
        values = np.round(rng.normal(size=n), 2)  # exact ties among values too
        order = prepared.order(values, increasing=increasing)
        reference = monotone_order(values, counts, increasing=increasing)
        np.testing.assert_array_equal(counts[order], counts[reference])
        np.testing.assert_array_equal(values[order], values[reference])
    np.testing.assert_array_equal(first, kept)
