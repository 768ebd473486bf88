"""The torch side of SAMNClassifier: head parametrisations and the training loop.

Everything here takes and returns NumPy arrays at its boundary; the estimator
in ``_samn.py`` imports this module only inside ``fit``, so that a fitted model
predicts without torch.
"""

import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from ._optim import SGD, Adam
from ._pava import CountOrder, monotone_projection_torch
from ._prior import prior_rows_on_device
from ._streaming import RowStream, serves_views
from ._threads import torch_threads_for

_PAPER_EPS = 1e-6


class InvariantHead(torch.nn.Module):
    """Scale-free SAMN head: ``w_c = exp(q_c) * v_c / ||v_c||``.

    ``q`` is the projection of free log-norms ``a`` onto the values that are
    non-increasing in class count and, with ``max_norm``, at most
    ``log(max_norm)``, so the norm ``exp(q_c)`` of a rarer class is never
    smaller than that of a more frequent one. ``exp`` is strictly
    increasing, so the order of ``q`` is exactly the order of the norms. The
    head sees standardised inputs, which makes the whole fit independent of
    the scale of ``X``.
    """

    def __init__(self, directions, log_norms, bias, counts, max_norm=None):
        super().__init__()
        self.directions = torch.nn.Parameter(torch.as_tensor(directions))
        self.log_norms = torch.nn.Parameter(torch.as_tensor(log_norms))
        self.bias = torch.nn.Parameter(torch.as_tensor(bias))
        self.counts = CountOrder(counts)
        self.max_norm = max_norm

    def projected_log_norms(self):
        """The log-norms the head uses: the free ones projected."""
        log_norms = monotone_projection_torch(
            self.log_norms, self.counts, increasing=False
        )
        if self.max_norm is not None:
            # Clipping the monotone projection is the projection onto the
            # monotone values that are also at most log(max_norm).
            log_norms = torch.clamp(log_norms, max=math.log(self.max_norm))
        return log_norms

    def norms(self):
        return torch.exp(self.projected_log_norms())

    @torch.no_grad()
    def settle_log_norms(self, used=None):
        """Set the free log-norms to the ones the head uses (``used``, or the
        projection of the free ones), just below the cap.

        Where the projection is flat its backward passes nothing: a free
        log-norm above the cap gets no gradient however much the loss wants
        that norm smaller, and classes pooled with their free values out of
        order all get their block's mean gradient, so they never part. From
        the values used (equal values are not pooled in the backward, and
        just below the cap the clip passes gradients) every move the order
        and the cap allow has its gradient; the head is unchanged.
        """
        if used is None:
            used = self.projected_log_norms()
        if self.max_norm is not None:
            # Below log(max_norm) whatever its rounding in the head's dtype.
            cap = torch.tensor(math.log(self.max_norm), dtype=used.dtype)
            below = torch.nextafter(cap, torch.tensor(-math.inf, dtype=used.dtype))
            used = torch.minimum(used, below.to(used.device))
        self.log_norms.copy_(used)

    def forward(self, settled=False):
        """``(weights, bias)``. ``settled=True`` (right after
        :meth:`settle_log_norms`) skips the projection: of settled log-norms
        it is the identity, in value and in gradient."""
        unit = self.directions / self.directions.norm(dim=1, keepdim=True)
        log_norms = self.log_norms if settled else self.projected_log_norms()
        return torch.exp(log_norms)[:, None] * unit, self.bias


def _paper_map(scalars, counts):
    """``exp(1 / (softplus(PAVA(s)) + 1e-6))`` with PAVA non-decreasing tail to head."""
    p = monotone_projection_torch(scalars, counts, increasing=True)
    return torch.exp(1.0 / (F.softplus(p) + _PAPER_EPS))


class PaperHead(torch.nn.Module):
    """The published SAMN parametrisation (Zhang, Li and Zhu, CVPR 2026).

    ``w_c = g(p_c) * v_c / ||v_c||`` and
    ``b_c = bias_c + g(p'_c)`` with ``g(p) = exp(1 / (softplus(p) + 1e-6))``,
    ``p = PAVA(s)`` and ``p' = PAVA(s')`` non-decreasing from tail to head.
    ``g`` is strictly decreasing, so both the norms and the bias term are
    non-increasing in class count.
    """

    def __init__(self, directions, norm_scalars, bias, bias_scalars, counts):
        super().__init__()
        self.directions = torch.nn.Parameter(torch.as_tensor(directions))
        self.norm_scalars = torch.nn.Parameter(torch.as_tensor(norm_scalars))
        self.bias = torch.nn.Parameter(torch.as_tensor(bias))
        self.bias_scalars = torch.nn.Parameter(torch.as_tensor(bias_scalars))
        self.counts = CountOrder(counts)

    def norms(self):
        return _paper_map(self.norm_scalars, self.counts)

    def forward(self):
        unit = self.directions / self.directions.norm(dim=1, keepdim=True)
        weights = self.norms()[:, None] * unit
        return weights, self.bias + _paper_map(self.bias_scalars, self.counts)


HEADS = {"invariant": InvariantHead, "paper": PaperHead}


def logit_offset(loss, class_weights):
    """What the loss adds to the logits, from the (weighted) class counts of
    the rows it is computed on: the log of their prior for the logit-adjusted
    loss, zeros for plain cross-entropy."""
    class_weights = np.asarray(class_weights, dtype=np.float64)
    if loss == "logit_adjusted":
        prior = class_weights / class_weights.sum()
        return np.log(np.maximum(prior, 1e-12))
    return np.zeros(class_weights.shape[0])


def build_head(variant, state, counts, *, max_norm=None, device="cpu",
               dtype=torch.float32):
    """Instantiate the head of ``variant`` from a dict of NumPy arrays.

    ``max_norm`` caps the class norms of the "invariant" head (``None``: no cap).
    """
    arrays = {
        name: torch.as_tensor(np.asarray(value), dtype=dtype, device=device)
        for name, value in state.items()
    }
    if variant == "invariant":
        arrays["max_norm"] = max_norm
    return HEADS[variant](counts=counts, **arrays)


def head_state(head):
    """The head's parameters as a dict of float64 NumPy arrays."""
    return {
        name: p.detach().to("cpu", torch.float64).numpy().copy()
        for name, p in head.named_parameters()
    }


def effective_weights(variant, state, counts, max_norm=None):
    """Evaluate a head's weights and bias in float64 on the CPU.

    Returns
    -------
    weights : ndarray of shape (n_classes, n_features)
    bias : ndarray of shape (n_classes,)
    """
    head = build_head(variant, state, counts, max_norm=max_norm, dtype=torch.float64)
    with torch.no_grad():
        weights, bias = head()
    return weights.detach().numpy(), bias.detach().numpy()


# Rows of one block are sized so that its float32 temporaries (the logits and,
# unless the block is a view of X, a converted copy of its rows) take about this
# many bytes: on a CPU small enough to stay near the cache, on a GPU large enough
# to keep its cores busy (benchmarks/speed.py and gpu_check.py measure the effect).
_BLOCK_BYTES = {"cpu": 8 << 20, "cuda": 512 << 20}
# Temporaries of a block stay under this fraction of the size of X in float32.
# A quarter, not a half: the probe in benchmarks/speed.py measured 1.65x X
# (1.40-1.78 over six runs) of peak extra memory at the CIFAR-100-LT shape with
# half, where freed blocks and chunks stay resident in the heap.
_X_FRACTION = 4
# Below this many bytes of temporaries, the fraction of X no longer bounds a
# block: the memory is negligible next to the interpreter's, and blocks of a
# few hundred rows would spend an L-BFGS evaluation on per-block overhead (a
# default fit on 200 rows of digits ran 4 blocks an evaluation).
_SMALL_TEMPORARIES = 256 << 10


def _block_rows(n_samples, n_features, n_classes, device_type="cpu", copies=True):
    """Rows per block: about ``_BLOCK_BYTES`` of temporaries, and no more than
    a quarter of the size of X in float32 unless that is under
    ``_SMALL_TEMPORARIES``; at least 64 rows.

    ``copies`` says whether a block of X is a converted copy of its rows
    (``_streaming.serves_views``): the temporaries of a row are its logits,
    plus its features when they are copied.
    """
    per_row = n_classes + (n_features if copies else 0)
    budget = _BLOCK_BYTES.get(device_type, _BLOCK_BYTES["cpu"])
    share_of_x = max(n_samples * n_features // _X_FRACTION, _SMALL_TEMPORARIES // 4)
    rows = min(budget // (4 * per_row), share_of_x // per_row)
    return int(max(64, rows))


def fold_standardisation(weights, bias, shift, inv_scale):
    """Weights and bias that score raw rows as ``(weights, bias)`` score
    standardised ones.

    ``((x - shift) * inv_scale) @ weights.T + bias`` equals
    ``x @ folded.T + folded_bias`` with ``folded = inv_scale * weights`` and
    ``folded_bias = bias - folded @ shift``: the block loops read blocks of
    ``X`` as they are, with no centred copy of each block and the two passes
    over it that centring takes. The folded bias is computed in float64.
    With ``shift=None`` (nothing to standardise) both are returned unchanged.

    Examples
    --------
    >>> import torch
    >>> w, b = torch.tensor([[1.0, 2.0]]), torch.tensor([0.5])
    >>> x, shift = torch.tensor([[3.0, 4.0]]), torch.tensor([1.0, 1.0])
    >>> fw, fb = fold_standardisation(w, b, shift, 0.5)
    >>> ((x - shift) * 0.5 @ w.T + b).item(), (x @ fw.T + fb).item()
    (4.5, 4.5)
    """
    if shift is None:
        return weights, bias
    folded = weights * inv_scale
    correction = folded.double() @ shift.double()
    return folded, (bias.double() - correction).to(bias.dtype)


def unfold_gradient(grad_weights, grad_bias, shift, inv_scale):
    """Turn the weight gradient accumulated against raw rows (with the folded
    weights of :func:`fold_standardisation`) into the gradient with respect to
    the standardised-space weights, in place, and return it.

    Each row adds ``g x`` to the raw sum, and ``inv_scale * g (x - shift)`` to
    the standardised one: the difference is ``inv_scale`` times the bias
    gradient ``sum g`` times ``shift``. The bias gradient is the same in both.
    """
    if shift is None:
        return grad_weights
    return grad_weights.addr_(grad_bias, shift, alpha=-1.0).mul_(inv_scale)


def _add_block_gradient(xb, yb, wb, weights, logit_bias, row_scale,
                        grad_weights, grad_bias):
    """Add one block's gradient of the weighted cross-entropy in place.

    The softmax cross-entropy gradient is written out by hand: one product
    for the logits, one for the weight gradient, and the softmax computed in
    place in the logits buffer, instead of autograd's graph per block.
    ``weights`` and ``logit_bias`` score the rows ``xb`` as they are (see
    :func:`fold_standardisation`).

    Returns the block's weighted loss (a float32 scalar tensor).
    """
    logits = torch.addmm(logit_bias, xb, weights.T)
    true = logits.gather(1, yb[:, None])[:, 0]
    top = logits.amax(dim=1)
    logits.sub_(top[:, None]).exp_()
    total = logits.sum(dim=1)
    weighted_loss = torch.dot(top + total.log() - true, wb)
    coef = wb * row_scale
    # d loss / d logits = coef * (softmax - onehot(y))
    logits.mul_((coef / total)[:, None])
    logits.scatter_add_(1, yb[:, None], -coef[:, None])
    grad_weights.addmm_(logits.T, xb)
    grad_bias.add_(logits.sum(dim=0))
    return weighted_loss


def rows_on_device(y, sample_weight, shift, scale, device):
    """Labels, weights and the standardisation, as the block loops use them.

    Returns
    -------
    y_t : torch.Tensor of int64, on ``device``
    weight_t : torch.Tensor of float32, on ``device``
    shift_t : torch.Tensor of float32 or None
        ``None`` when there is nothing to subtract or scale.
    inv_scale : float
    """
    y_t = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    weight_t = torch.from_numpy(np.asarray(sample_weight, dtype=np.float32)).to(device)
    if np.any(shift != 0) or scale != 1:
        shift_t = torch.as_tensor(shift, dtype=torch.float32, device=device)
    else:
        shift_t = None
    return y_t, weight_t, shift_t, float(1.0 / scale)


def _epoch_blocks(n_samples, batch_size, block, generator):
    """The blocks of one pass, grouped into optimiser steps.

    Returns ``(order, blocks)``. ``order`` is ``None`` for full batch (rows
    read in order) or the pass's minibatches one after the other, each sorted
    (reads of a memmap stay sequential). ``blocks`` lists
    ``(span, last_of_step, step_rows)`` with ``span`` a slice of the rows, or
    of ``order``.
    """
    if batch_size >= n_samples:
        return None, [
            (slice(start, min(start + block, n_samples)), start + block >= n_samples,
             n_samples)
            for start in range(0, n_samples, block)
        ]
    order = torch.randperm(n_samples, generator=generator).numpy()
    blocks = []
    for b in range(0, n_samples, batch_size):
        stop = min(b + batch_size, n_samples)
        order[b:stop].sort()
        for start in range(b, stop, block):
            blocks.append((slice(start, min(start + block, stop)), start + block >= stop,
                           stop - b))
    return order, blocks


def train_head(
    head,
    X,
    y,
    sample_weight,
    *,
    shift,
    scale,
    logit_offset,
    solver,
    learning_rate_init,
    batch_size,
    max_iter,
    tol,
    n_iter_no_change,
    device,
    generator,
    verbose,
    prior=None,
):
    """Minimise the weighted cross-entropy of ``head`` on standardised ``X``.

    One optimiser step per minibatch; with ``batch_size=None`` one step per
    pass over the data (full batch). Either way the batch is processed in
    blocks of rows whose gradients are accumulated, so memory does not grow
    with the batch, and the gradient goes through the head's
    parametrisation (and its PAVA) once per step.

    Parameters
    ----------
    head : torch.nn.Module
        A head whose ``forward()`` returns ``(weights, bias)``; float32, on
        ``device``; trained in place.
    X : array-like of shape (n_samples, n_features)
        float32 or float64 array, ``np.memmap`` or other array-like that
        slices; read block by block (see ``_streaming.RowStream``), never
        copied whole.
    y : ndarray of shape (n_samples,)
        Encoded labels in ``[0, n_classes)``.
    sample_weight : ndarray of shape (n_samples,)
    shift, scale : ndarray of shape (n_features,) and float
        The head sees ``(X - shift) / scale``.
    logit_offset : ndarray of shape (n_classes,)
        Added to the logits in the loss only (zeros for plain cross-entropy,
        ``log(prior)`` for the logit-adjusted loss).
    solver : {"adam", "sgd"}
    learning_rate_init, batch_size, max_iter, tol, n_iter_no_change
        As in :class:`~sklearn_samn.SAMNClassifier`.
    device : torch.device
    generator : torch.Generator
        Drives the minibatch shuffling.
    verbose : int
    prior : tuple (embeddings, weight) or None
        Class embeddings in the space of ``X``, one row per class, counted as
        training rows of weight ``weight``. Each step's gradient estimates the
        whole objective, so every step adds the pseudo-rows' gradient in full;
        their loss counts with the step's share of a pass, so that a pass
        reports it once.

    Returns
    -------
    loss_curve : list of float
        Mean weighted loss of each pass, measured while the pass ran.
    converged : bool or None
        With ``tol=None``: ``None``. Otherwise whether training stopped
        because the loss stopped improving by ``tol``.
    """
    n_samples, n_features = X.shape
    n_classes = len(logit_offset)
    y_t, w_t, shift_t, inv_scale = rows_on_device(y, sample_weight, shift, scale, device)
    offset_t = torch.as_tensor(logit_offset, dtype=torch.float32, device=device)
    total_weight = float(np.sum(sample_weight, dtype=np.float64))
    prior_t = prior_rows_on_device(prior, device)
    if prior is not None:
        total_weight += prior[1] * n_classes
    mean_weight = total_weight / n_samples

    batch_size = n_samples if batch_size is None else min(batch_size, n_samples)
    n_batches = math.ceil(n_samples / batch_size)
    # Minibatches read their shuffled rows by index: copies.
    copies = batch_size < n_samples or not serves_views(X, device)
    block = min(
        _block_rows(n_samples, n_features, n_classes, device.type, copies=copies),
        batch_size,
    )
    stream = RowStream(X, device, max_rows=block)
    # The learning rate is per pass: with k minibatches a pass takes k steps of
    # lr / k, so the distance the head moves per pass, which with no L2 penalty
    # is what regularises it, does not depend on batch_size.
    step_lr = learning_rate_init * batch_size / n_samples
    optimizer = (Adam if solver == "adam" else SGD)(head.parameters())
    total_steps = max_iter * n_batches
    steps_done = 0

    settle = isinstance(head, InvariantHead)
    full_blocks = None
    with torch_threads_for(block * n_features * n_classes, device):
        loss_curve = []
        best_loss = np.inf
        no_improvement = 0
        converged = None if tol is None else False
        start = time.perf_counter()
        for epoch in range(max_iter):
            if batch_size == n_samples:
                full_blocks = full_blocks or _epoch_blocks(
                    n_samples, batch_size, block, generator
                )
                order, blocks = full_blocks
                host_rows = device_rows = [span for span, _, _ in blocks]
            else:
                order, blocks = _epoch_blocks(n_samples, batch_size, block, generator)
                # One transfer of the shuffle per pass, not one per block.
                order_t = torch.from_numpy(order).to(device)
                host_rows = [order[span] for span, _, _ in blocks]
                device_rows = [order_t[span] for span, _, _ in blocks]
            epoch_loss = torch.zeros((), dtype=torch.float64, device=device)
            step = None
            for (_, last, step_rows), rows, xb in zip(
                blocks, device_rows, stream.blocks(host_rows, device_rows)
            ):
                if step is None:
                    if settle:
                        # A projected step: from the log-norms used, every
                        # move the order and the cap allow has its gradient.
                        head.settle_log_norms()
                    weights, bias = head(settled=True) if settle else head()
                    step = (
                        *fold_standardisation(
                            weights.detach(), bias.detach() + offset_t, shift_t, inv_scale
                        ),
                        torch.zeros_like(weights),
                        torch.zeros_like(bias),
                    )
                weighted = _add_block_gradient(
                    xb, y_t[rows], w_t[rows], step[0], step[1],
                    1.0 / (mean_weight * step_rows), step[2], step[3],
                )
                epoch_loss += weighted.double()
                if last and prior_t is not None:
                    # The pseudo-rows: their gradient in full (a step estimates
                    # the whole objective), their loss with this step's share
                    # of a pass.
                    share = step_rows / n_samples
                    epoch_loss += share * _add_block_gradient(
                        *prior_t, step[0], step[1],
                        1.0 / (mean_weight * n_samples), step[2], step[3],
                    ).double()
                if last:
                    unfold_gradient(step[2], step[3], shift_t, inv_scale)
                    for p in optimizer.params:
                        p.grad = None
                    # The scalar whose gradient w.r.t. (weights, bias) is the
                    # accumulated one. (torch.autograd.backward with explicit
                    # gradients imports sympy on first use: ~0.5 s per process.)
                    surrogate = (weights * step[2]).sum() + (bias * step[3]).sum()
                    surrogate.backward()
                    # Cosine decay from step_lr to zero over the whole fit.
                    cosine = 0.5 * (1.0 + math.cos(math.pi * steps_done / total_steps))
                    optimizer.step(step_lr * cosine)
                    steps_done += 1
                    step = None
            value = float(epoch_loss) / total_weight
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"Training diverged: the loss is {value} at pass {epoch + 1}. "
                    "Lower learning_rate_init or rescale X."
                )
            loss_curve.append(value)
            if verbose:
                elapsed = time.perf_counter() - start
                print(
                    f"pass {epoch + 1}/{max_iter}, loss {value:.6f}, "
                    f"{elapsed:.2f} s, {(epoch + 1) / elapsed:.1f} passes/s",
                    file=sys.stderr,
                )
            if tol is None:
                continue
            no_improvement = no_improvement + 1 if value > best_loss - tol else 0
            best_loss = min(best_loss, value)
            if no_improvement >= n_iter_no_change:
                converged = True
                break
        if settle:
            head.settle_log_norms()
        return loss_curve, converged
