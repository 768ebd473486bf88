"""Timing helpers shared by ``speed.py`` (CPU) and ``gpu_check.py`` (CUDA)."""

import platform
import time

import numpy as np
import torch

from sklearn_samn import SAMNClassifier


def host():
    """The processor and the instruction set torch's CPU kernels use.

    Fit times move with both: hosts of this project's machines differ from day
    to day (with and without AVX-512), so every report that times fits names them.
    """
    name = platform.processor() or "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"processor: {name}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}"


def best_seconds(function, repeats=1, device=None):
    """Fastest of ``repeats`` runs of ``function()``, with the device drained around each."""
    device = torch.device("cpu") if device is None else torch.device(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    best = np.inf
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        function()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def product_seconds(X, n_classes, block, repeats):
    """Seconds of the matrix products of one pass over ``X`` (a tensor), in blocks of rows.

    Returns ``(two, three)``: forward ``X W^T`` with the weight gradient
    ``G^T X`` (what a head on frozen features needs), and the same plus the
    input gradient ``G W`` (which the issue's roofline counts).
    """
    n_samples, n_features = X.shape
    weights = torch.randn(n_classes, n_features, device=X.device) * 0.01
    bias = torch.zeros(n_classes, device=X.device)
    grad = torch.zeros_like(weights)

    def products(three):
        for start in range(0, n_samples, block):
            xb = X[start : start + block]
            logits = torch.addmm(bias, xb, weights.T)
            grad.addmm_(logits.T, xb)
            if three:
                logits @ weights

    products(True)  # warm-up
    return (
        best_seconds(lambda: products(False), repeats, X.device),
        best_seconds(lambda: products(True), repeats, X.device),
    )


def seconds_per_pass(X, y, passes, repeats=1, **params):
    """Seconds per pass over the data of ``SAMNClassifier(**params)``, and its fixed cost.

    Fits of 1 and ``1 + passes`` passes are timed, so that the costs paid once
    per fit (input checks, statistics, initial directions) cancel.
    """
    # Adam runs exactly max_iter passes (tol=None); a pass of the L-BFGS
    # solver's objective reads the same blocks through the same block gradient.
    def fit(max_iter):
        return lambda: SAMNClassifier(
            solver="adam", tol=None, max_iter=max_iter, random_state=0, **params
        ).fit(X, y)

    # fit returns NumPy attributes, so it has waited for the device already.
    short = best_seconds(fit(1), repeats)
    long = best_seconds(fit(1 + passes), repeats)
    seconds = (long - short) / passes
    return seconds, short - seconds
