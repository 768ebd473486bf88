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

import sys

import numpy as np
from scipy.optimize import isotonic_regression

__all__ = [
    "CountOrder",
    "monotone_order",
    "monotone_projection",
    "monotone_projection_torch",
]


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
    counts : array-like of shape (n_classes,) or CountOrder
        Class frequencies that define the order. Pass a :class:`CountOrder`
        to project many times under the same counts: it is prepared once.
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
    projected, order, starts = _project(values, counts, increasing)
    sizes = np.diff(np.append(starts, values.shape[0]))
    block_ids = np.empty(values.shape[0], dtype=np.intp)
    block_ids[order] = np.repeat(np.arange(sizes.shape[0]), sizes)
    return projected, block_ids


class CountOrder:
    """The order that class counts impose, prepared once for many projections.

    Sorting the classes by count and, inside a group of tied counts, by value
    is the cost of a projection at many classes. The counts do not change
    during a fit, so their dense ranks are computed here once; each call then
    sorts one integer key holding the rank in its high bits and the value's
    leading bits below, and checks the result exactly, falling back to a
    lexicographic sort in the rare case that two tied classes differ only in
    the value bits the key dropped. With no tied counts at all the order is
    fixed and no sort is needed.

    An instance reuses its workspace between calls, so one instance must not
    be used by several threads at once (each fit prepares its own).

    Parameters
    ----------
    counts : array-like of shape (n_classes,)
        Class frequencies.
    """

    def __init__(self, counts):
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 1:
            raise ValueError(f"counts must be 1-D; got shape {counts.shape}.")
        self.counts = counts
        self.shape = counts.shape
        self.n_classes = counts.shape[0]
        _, rank = np.unique(counts, return_inverse=True)
        rank = rank.reshape(-1).astype(np.int64)
        n_groups = int(rank.max()) + 1 if rank.size else 1
        self._value_bits = 63 - max(1, (n_groups - 1).bit_length())
        self._rank_key = rank << self._value_bits
        # Along any valid order the ranks are sorted, so which neighbours
        # share a count does not depend on the values.
        self._by_count = np.argsort(rank, kind="stable")
        sorted_rank = rank[self._by_count]
        self._same_count = sorted_rank[1:] == sorted_rank[:-1]
        self._has_ties = bool(self._same_count.any())
        # Workspace reused by every call: at 10^5 classes, fresh temporaries
        # of this size cost page faults that can double the time of a call.
        self._bits = np.empty(self.n_classes, dtype=np.int64)
        self._spare = np.empty(self.n_classes, dtype=np.int64)
        self._along = np.empty(self.n_classes, dtype=np.float64)
        self._descents = np.empty(max(0, self.n_classes - 1), dtype=bool)

    def order(self, values, *, increasing=True):
        """Indices sorting the classes by count, then by value within ties.

        Values ascend within ties for ``increasing`` and descend otherwise.
        Equal to :func:`monotone_order` up to the order of exactly equal
        values, which does not change any projection.
        """
        values = np.asarray(values, dtype=np.float64)
        if not self._has_ties:
            return self._by_count.copy()
        bits, spare = self._bits, self._spare
        as_float = bits.view(np.float64)
        if increasing:
            as_float[...] = values
        else:
            np.negative(values, out=as_float)
        # The bits of a float64 read as a signed integer sort like the float
        # once the magnitude bits of negative numbers are flipped; flipping
        # the sign bit then makes them sort as unsigned integers, whose
        # leading bits go below the count rank.
        np.right_shift(bits, 63, out=spare)
        np.bitwise_and(spare, np.int64(0x7FFFFFFFFFFFFFFF), out=spare)
        np.bitwise_xor(bits, spare, out=bits)
        unsigned = bits.view(np.uint64)
        np.bitwise_xor(unsigned, np.uint64(1 << 63), out=unsigned)
        np.right_shift(unsigned, np.uint64(64 - self._value_bits), out=unsigned)
        np.bitwise_or(bits, self._rank_key, out=bits)
        order = _argsort_int64(bits)
        along = np.take(values, order, out=self._along)
        descents = self._descents
        if increasing:
            np.less(along[1:], along[:-1], out=descents)
        else:
            np.greater(along[1:], along[:-1], out=descents)
        descents &= self._same_count
        if descents.any():
            order = monotone_order(values, self.counts, increasing=increasing)
        return order


def _argsort_int64(keys):
    """``argsort`` of int64 keys: torch's radix sort when torch is loaded."""
    torch = sys.modules.get("torch")
    if torch is None or keys.shape[0] < 2048:
        return np.argsort(keys)
    return torch.argsort(torch.from_numpy(keys)).numpy()


def _project(values, counts, increasing):
    """PAVA in the tie-exact order: ``(projected, order, block_starts)``.

    ``values`` is a float64 array, ``counts`` an array or a :class:`CountOrder`.
    ``block_starts`` are the positions along ``order`` where pooled blocks
    begin.
    """
    if not isinstance(counts, CountOrder):
        counts = CountOrder(counts)
    if values.shape != (counts.n_classes,):
        raise ValueError(
            "values and counts must be 1-D arrays of the same length; got shapes "
            f"{values.shape} and {counts.shape}."
        )
    order = counts.order(values, increasing=increasing)
    result = isotonic_regression(values[order], increasing=increasing)
    projected = np.empty_like(values)
    projected[order] = result.x
    return projected, order, result.blocks[:-1]


def _jacobian_blocks(values, order, starts):
    """Block ids for the backward pass, numbered along ``order``.

    Blocks whose inputs are all exactly equal are feasible and pooled only
    because they tie; each of their members gets a block of its own.
    """
    n = values.shape[0]
    along = values[order]
    lowest = np.minimum.reduceat(along, starts)
    highest = np.maximum.reduceat(along, starts)
    sizes = np.diff(np.append(starts, n))
    tied = np.repeat((sizes > 1) & (lowest == highest), sizes)
    begins = tied.copy()
    begins[starts] = True
    ids = np.empty(n, dtype=np.intp)
    ids[order] = np.cumsum(begins) - 1
    return ids


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
    counts : array-like of shape (n_classes,) or CountOrder
        Class frequencies that define the order (a :class:`CountOrder` is
        prepared once for repeated calls).
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
    if not isinstance(counts, CountOrder):
        counts = CountOrder(counts)  # once per call here, not again in forward
    return _monotone_projection_function().apply(values, counts, increasing)


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
                projected, order, starts = _project(host, counts, increasing)
                # Host arrays, not tensors: the blocks are worked out only if
                # a backward pass asks for them.
                ctx.pooling = (host, order, starts)
                return torch.from_numpy(projected).to(values.device, values.dtype)

            @staticmethod
            def backward(ctx, grad_output):
                block_ids = _jacobian_blocks(*ctx.pooling)
                n_blocks = int(block_ids.max()) + 1 if block_ids.size else 0
                ids = torch.from_numpy(block_ids)
                # The block sums on the host (a no-op move there), in index
                # order: on CUDA, index_add_ adds with atomics in no fixed
                # order, so a fit would not repeat bit for bit.
                grad = grad_output.cpu()
                sums = grad.new_zeros(n_blocks).index_add_(0, ids, grad)
                sizes = torch.from_numpy(np.bincount(block_ids, minlength=n_blocks))
                mean = (sums / sizes.to(grad.dtype))[ids]
                return mean.to(grad_output.device), None, None

        _FUNCTION = MonotoneProjection
    return _FUNCTION
