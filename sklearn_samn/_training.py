"""The torch side of SAMNClassifier: head parametrisations and the training loop.

Everything here takes and returns NumPy arrays at its boundary; the estimator
in ``_samn.py`` imports this module only inside ``fit``, so that a fitted model
predicts without torch.
"""

import math
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ._device import torch_threads_for
from ._pava import monotone_projection_torch

_PAPER_EPS = 1e-6


class InvariantHead(torch.nn.Module):
    """Scale-free SAMN head: ``w_c = exp(q_c) * v_c / ||v_c||``.

    ``q`` is the projection of free log-norms ``a`` onto the values that are
    non-increasing in class count, so the norm ``exp(q_c)`` of a rarer class is
    never smaller than that of a more frequent one. ``exp`` is strictly
    increasing, so the order of ``q`` is exactly the order of the norms. The
    head sees standardised inputs, which makes the whole fit independent of
    the scale of ``X``.
    """

    def __init__(self, directions, log_norms, bias, counts):
        super().__init__()
        self.directions = torch.nn.Parameter(torch.as_tensor(directions))
        self.log_norms = torch.nn.Parameter(torch.as_tensor(log_norms))
        self.bias = torch.nn.Parameter(torch.as_tensor(bias))
        self.counts = np.asarray(counts, dtype=np.float64)

    def norms(self):
        return torch.exp(
            monotone_projection_torch(self.log_norms, self.counts, increasing=False)
        )

    def forward(self):
        unit = self.directions / self.directions.norm(dim=1, keepdim=True)
        return self.norms()[:, None] * unit, self.bias


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
        self.counts = np.asarray(counts, dtype=np.float64)

    def norms(self):
        return _paper_map(self.norm_scalars, self.counts)

    def forward(self):
        unit = self.directions / self.directions.norm(dim=1, keepdim=True)
        weights = self.norms()[:, None] * unit
        return weights, self.bias + _paper_map(self.bias_scalars, self.counts)


HEADS = {"invariant": InvariantHead, "paper": PaperHead}


def build_head(variant, state, counts, *, device="cpu", dtype=torch.float32):
    """Instantiate the head of ``variant`` from a dict of NumPy arrays."""
    arrays = {
        name: torch.as_tensor(np.asarray(value), dtype=dtype, device=device)
        for name, value in state.items()
    }
    return HEADS[variant](counts=counts, **arrays)


def head_state(head):
    """The head's parameters as a dict of float64 NumPy arrays."""
    return {
        name: p.detach().to("cpu", torch.float64).numpy().copy()
        for name, p in head.named_parameters()
    }


def effective_weights(variant, state, counts):
    """Evaluate a head's weights and bias in float64 on the CPU.

    Returns
    -------
    weights : ndarray of shape (n_classes, n_features)
    bias : ndarray of shape (n_classes,)
    """
    head = build_head(variant, state, counts, dtype=torch.float64)
    with torch.no_grad():
        weights, bias = head()
    return weights.detach().numpy(), bias.detach().numpy()


def _as_float32_tensor(X):
    """A float32 CPU tensor sharing memory with ``X`` when ``X`` is float32."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    with warnings.catch_warnings():
        # Read-only inputs (e.g. memmaps) are never written to.
        warnings.filterwarnings("ignore", message=".*not writable.*")
        return torch.from_numpy(X)


def _chunk_rows(n_classes, n_features):
    """Rows per chunk so that one chunk's logits and inputs stay near 16 MB."""
    return max(256, (1 << 22) // max(n_classes, n_features))


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
):
    """Minimise the weighted cross-entropy of ``head`` on standardised ``X``.

    One optimiser step per minibatch; with ``batch_size=None`` one step per
    pass over the data (full batch). Either way the batch is processed in
    chunks whose gradients are accumulated, so memory does not grow with the
    batch.

    Parameters
    ----------
    head : torch.nn.Module
        A head whose ``forward()`` returns ``(weights, bias)``; float32, on
        ``device``; trained in place.
    X : ndarray of shape (n_samples, n_features)
        float32 or float64; never copied to float64.
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

    Returns
    -------
    loss_curve : list of float
        Mean weighted loss of each pass, measured while the pass ran.
    converged : bool or None
        With ``tol=None``: ``None``. Otherwise whether training stopped
        because the loss stopped improving by ``tol``.
    """
    n_samples = X.shape[0]
    X_t = _as_float32_tensor(X).to(device)
    y_t = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    w_t = torch.from_numpy(np.asarray(sample_weight, dtype=np.float32)).to(device)
    shift_t = torch.as_tensor(shift, dtype=torch.float32, device=device)
    inv_scale = float(1.0 / scale)
    offset_t = torch.as_tensor(logit_offset, dtype=torch.float32, device=device)
    total_weight = float(np.sum(sample_weight, dtype=np.float64))
    mean_weight = total_weight / n_samples

    full_batch = batch_size is None or batch_size >= n_samples
    batch_size = n_samples if full_batch else batch_size
    n_batches = math.ceil(n_samples / batch_size)
    chunk = _chunk_rows(len(logit_offset), X.shape[1])
    # The learning rate is per pass: with k minibatches a pass takes k steps of
    # lr / k, so the distance the head moves per pass, which with no L2 penalty
    # is what regularises it, does not depend on batch_size.
    step_lr = learning_rate_init * batch_size / n_samples
    if solver == "adam":
        optimizer = torch.optim.Adam(head.parameters(), lr=step_lr)
    else:
        optimizer = torch.optim.SGD(head.parameters(), lr=step_lr, momentum=0.9)
    total_steps = max_iter * n_batches
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    )

    # Rows in one product: the work that decides how many threads pay off.
    work = min(chunk, batch_size) * X.shape[1] * len(logit_offset)
    with torch_threads_for(work, device):
        loss_curve = []
        best_loss = np.inf
        no_improvement = 0
        converged = None if tol is None else False
        start = time.perf_counter()
        for epoch in range(max_iter):
            perm = None if full_batch else torch.randperm(n_samples, generator=generator)
            epoch_loss = torch.zeros((), dtype=torch.float64, device=device)
            for b in range(n_batches):
                weights, bias = head()
                # Gradients are accumulated on detached copies chunk by chunk and
                # sent through the parametrisation (and its PAVA) once per step.
                w_leaf = weights.detach().requires_grad_()
                b_leaf = bias.detach().requires_grad_()
                logit_bias = b_leaf + offset_t
                if full_batch:
                    batch, batch_len = None, n_samples
                else:
                    batch = perm[b * batch_size : (b + 1) * batch_size].to(device)
                    batch_len = batch.shape[0]
                norm = mean_weight * batch_len
                for c in range(0, batch_len, chunk):
                    rows = slice(c, c + chunk) if full_batch else batch[c : c + chunk]
                    xb = (X_t[rows] - shift_t) * inv_scale
                    logits = torch.addmm(logit_bias, xb, w_leaf.T)
                    losses = F.cross_entropy(logits, y_t[rows], reduction="none")
                    weighted = (losses * w_t[rows]).sum()
                    (weighted / norm).backward()
                    epoch_loss += weighted.detach().double()
                optimizer.zero_grad(set_to_none=True)
                torch.autograd.backward((weights, bias), (w_leaf.grad, b_leaf.grad))
                optimizer.step()
                scheduler.step()
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
        return loss_curve, converged
