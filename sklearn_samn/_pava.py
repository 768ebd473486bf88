"""Projection onto the cone of values monotone in class frequency.

The projection is isotonic regression (the Pool Adjacent Violators Algorithm,
PAVA) in the order of the class counts. Classes with equal counts are not
ordered among themselves: the feasible set is
``{x : counts[i] < counts[j]  =>  x[i] <= x[j]}`` (for ``increasing=True``),
a partial order. Its Euclidean projection is PAVA on the total order that
sorts the classes by count and, inside each group of tied counts, by value
(Kruskal's "primary approach" to ties). That keeps the projection exact and
makes it symmetric in tied classes: renaming them never changes the result.
A stable argsort that breaks ties by class index would not be (METHOD.md).

This module needs NumPy and SciPy only; :func:`monotone_projection_torch`
imports torch when it is called.
"""

import numpy as np
from scipy.optimize import isotonic_regression

__all__ = ["monotone_order", "monotone_projection", "monotone_projection_torch"]


def monotone_order(values, counts, *, increasing=True):
    """Return the order in which PAVA projects ``values``.

    Classes are sorted by ``counts`` ascending; inside a group of tied counts
    they are sorted by ``values``, ascending when ``increasing`` and
    descending otherwise, so that the sorted sequence is as close to feasible
    as the ties allow.

    Parameters
    ----------
    values : ndarray of shape (n_classes,)
        The values to project.
    counts : ndarray of shape (n_classes,)
        Class frequencies that define the order.
    increasing : bool, default=True
        Direction of the constraint as counts grow.

    Returns
    -------
    order : ndarray of shape (n_classes,), dtype=intp
        Indices that sort the classes.
    """
    values = np.asarray(values, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    tie_key = values if increasing else -values
    # np.lexsort sorts by its last key first.
    return np.lexsort((tie_key, counts))


def monotone_projection(values, counts, *, increasing=True):
    """Project ``values`` onto the values monotone in ``counts``.

    Solves ``min_x sum_i (x_i - values_i)^2`` subject to
    ``x_i <= x_j`` whenever ``counts_i < counts_j`` (``increasing=True``) or
    ``x_i >= x_j`` whenever ``counts_i < counts_j`` (``increasing=False``).
    Entries with equal counts are not constrained among themselves.

    Parameters
    ----------
    values : array-like of shape (n_classes,)
        The values to project, one per class.
    counts : array-like of shape (n_classes,)
        Class frequencies that define the order.
    increasing : bool, default=True
        Whether the projection is non-decreasing (``True``) or non-increasing
        (``False``) as the counts grow.

    Returns
    -------
    projected : ndarray of shape (n_classes,)
        The projection, in the order of ``values``.
    block_ids : ndarray of shape (n_classes,), dtype=intp
        ``block_ids[i]`` numbers the pooled block that entry ``i`` belongs to;
        blocks are numbered from the smallest counts up. Within a block every
        output is the mean of the block's inputs, which is all the backward
        pass needs.

    See Also
    --------
    scipy.optimize.isotonic_regression : The PAVA solver used here.
    sklearn.isotonic.IsotonicRegression : The same projection as an estimator.

    Examples
    --------
    >>> from sklearn_samn._pava import monotone_projection
    >>> x, blocks = monotone_projection([3.0, 1.0, 2.0], [5, 10, 20],
    ...                                 increasing=False)
    >>> x
    array([3. , 1.5, 1.5])
    >>> blocks
    array([0, 1, 1])

    Tied counts are symmetric: swapping the two tied values swaps the result.

    >>> monotone_projection([2.0, 1.0, 3.0], [10, 10, 50], increasing=False)[0]
    array([2., 2., 2.])
    >>> monotone_projection([1.0, 2.0, 3.0], [10, 10, 50], increasing=False)[0]
    array([2., 2., 2.])
    """
    values = np.asarray(values, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1 or values.shape != counts.shape:
        raise ValueError(
            "values and counts must be 1-D arrays of the same length; got shapes "
            f"{values.shape} and {counts.shape}."
        )
    order = monotone_order(values, counts, increasing=increasing)
    result = isotonic_regression(values[order], increasing=increasing)
    projected = np.empty_like(values)
    projected[order] = result.x
    sizes = np.diff(result.blocks)
    block_ids = np.empty(values.shape[0], dtype=np.intp)
    block_ids[order] = np.repeat(np.arange(sizes.shape[0]), sizes)
    return projected, block_ids


def monotone_projection_torch(values, counts, *, increasing=True):
    """Differentiable :func:`monotone_projection` of a 1-D torch tensor.

    The forward pass runs SciPy's PAVA on the host (it is O(n_classes)); the
    backward pass is the exact Jacobian of the projection: within each pooled
    block, every member's gradient is the mean of the block's incoming
    gradients, and blocks are independent.

    Where the projection has a kink, a block whose inputs are all exactly
    equal (already feasible, pooled only because they tie), the backward pass
    takes the identity, the one-sided derivative towards the feasible side,
    rather than the block mean. Otherwise values that start equal (every
    log-norm of a fresh head) would receive equal gradients for ever and could
    never separate inside the constraint.

    Parameters
    ----------
    values : torch.Tensor of shape (n_classes,)
        The values to project, on any device and of any floating dtype.
    counts : array-like of shape (n_classes,)
        Class frequencies that define the order.
    increasing : bool, default=True
        Direction of the constraint as counts grow.

    Returns
    -------
    projected : torch.Tensor of shape (n_classes,)
        Same device and dtype as ``values``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_samn._pava import monotone_projection_torch
    >>> s = torch.tensor([3.0, 1.0, 2.0], requires_grad=True)
    >>> out = monotone_projection_torch(s, [5, 10, 20], increasing=False)
    >>> out.detach()
    tensor([3.0000, 1.5000, 1.5000])
    >>> (out * torch.tensor([1.0, 2.0, 0.0])).sum().backward()
    >>> s.grad
    tensor([1., 1., 1.])
    """
    return _monotone_projection_function().apply(values, counts, increasing)


def _split_tied_blocks(values, block_ids):
    """Give each member of a block whose inputs are all equal a block of its own."""
    sizes = np.bincount(block_ids)
    lowest = np.full(sizes.shape, np.inf)
    highest = np.full(sizes.shape, -np.inf)
    np.minimum.at(lowest, block_ids, values)
    np.maximum.at(highest, block_ids, values)
    tied = (sizes > 1) & (lowest == highest)
    if not tied.any():
        return block_ids
    block_ids = block_ids.copy()
    members = tied[block_ids]
    block_ids[members] = sizes.shape[0] + np.arange(members.sum())
    _, block_ids = np.unique(block_ids, return_inverse=True)
    return block_ids


_FUNCTION = None


def _monotone_projection_function():
    """Build the autograd Function on first use, so this module imports without torch."""
    global _FUNCTION
    if _FUNCTION is None:
        import torch

        class MonotoneProjection(torch.autograd.Function):
            @staticmethod
            def forward(ctx, values, counts, increasing):
                host = values.detach().to("cpu", torch.float64).numpy()
                projected, block_ids = monotone_projection(
                    host, counts, increasing=increasing
                )
                block_ids = _split_tied_blocks(host, block_ids)
                ids = torch.from_numpy(block_ids).to(values.device)
                ctx.save_for_backward(ids)
                ctx.n_blocks = int(block_ids.max()) + 1 if block_ids.size else 0
                return torch.from_numpy(projected).to(values.device, values.dtype)

            @staticmethod
            def backward(ctx, grad_output):
                (ids,) = ctx.saved_tensors
                sums = grad_output.new_zeros(ctx.n_blocks).index_add_(
                    0, ids, grad_output
                )
                sizes = torch.bincount(ids, minlength=ctx.n_blocks).to(
                    grad_output.dtype
                )
                return (sums / sizes)[ids], None, None

        _FUNCTION = MonotoneProjection
    return _FUNCTION
