"""GPU check: agreement with the CPU fit, then timings against the GPU's matrix products.

    python benchmarks/gpu_check.py [--out GPU_CHECK.md]        # on a CUDA machine, < 5 min
    python benchmarks/gpu_check.py --device cpu --quick        # the script's own smoke test

Run through ``benchmarks/gpu_check.sh`` on a lent GPU. Three parts:

1. agreement: a CIFAR-100-LT-shaped problem fitted on the CPU and on the GPU
   (X resident on the device, and X streamed through pinned, double-buffered
   copies), full batch and minibatch, same seed: predictions on a balanced
   test set must agree on at least 99.5% of the rows.
2. timings at the ImageNet-LT and iNaturalist 2018 shapes: seconds per pass
   (from fits of two lengths, so fixed costs cancel), resident and streamed,
   next to the time of the matrix products one pass needs on the same blocks
   (forward ``X W^T``, weight gradient ``G^T X``; the input gradient ``G W`` a
   head does not need is timed too, as the issue's roofline counts it), and
   the host-to-device copy of X.
3. fixed costs of a fit (input checks, statistics and initial directions,
   computed on the host).

Exits 1 when agreement is below 99.5%.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data  # noqa: E402
import timing  # noqa: E402

from sklearn_samn import SAMNClassifier, _streaming  # noqa: E402
from sklearn_samn._training import _block_rows  # noqa: E402

AGREEMENT = 0.995


def _streamed(streamed):
    """Force (or not) X to go through pinned buffers instead of residing on the GPU."""
    _streaming._RESIDENT_FRACTION = 0.0 if streamed else 0.5


def agreement(device, quick, lines):
    n, d, c, ratio = data.SHAPES["cifar100_lt"]
    if quick:
        n, c = 3_000, 30
    X, y, X_test, y_test = data.synthetic_features(n, d, c, ratio, n_test_per_class=20)
    lines.append("## Agreement with the CPU fit (CIFAR-100-LT shape)\n")
    lines.append("| fit | batch_size | X on the GPU | balanced acc % | predictions equal to CPU |")
    lines.append("|---|---|---|---|---|")
    ok = True
    # The default (full-batch L-BFGS, norm cap by cross-validation) and the
    # minibatch Adam solver.
    for batch_size in (None, 1024):
        params = dict(random_state=0) if batch_size is None else dict(
            random_state=0, solver="adam", batch_size=batch_size,
            max_iter=20 if quick else 100,
        )
        cpu = SAMNClassifier(device="cpu", **params).fit(X, y)
        reference = cpu.predict(X_test)
        lines.append(
            f"| cpu | {batch_size} | - | "
            f"{100 * balanced_accuracy_score(y_test, reference):.2f} | - |"
        )
        for streamed in (False, True):
            _streamed(streamed)
            fitted = SAMNClassifier(device=str(device), **params).fit(X, y)
            assert type(fitted.coef_) is np.ndarray
            predicted = fitted.predict(X_test)
            equal = np.mean(predicted == reference)
            ok &= equal >= AGREEMENT
            lines.append(
                f"| {fitted.device_} | {batch_size} | "
                f"{'streamed' if streamed else 'resident'} | "
                f"{100 * balanced_accuracy_score(y_test, predicted):.2f} | "
                f"{100 * equal:.2f}% |"
            )
    _streamed(False)
    lines.append("")
    return ok


def timings(device, quick, lines):
    lines.append("## Seconds per pass against the matrix products\n")
    lines.append(
        "| shape | n x d x C | X on the GPU | s / pass | 2 products s | 3 products s "
        "| pass / 3 products | H2D copy of X s | fixed s per fit |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    shapes = ["imagenet_lt", "inat2018"]
    for name in shapes:
        n, d, c, ratio = data.SHAPES[name]
        if quick:
            n, d, c = 4_096, 64, min(c, 200)
        X, y = data.synthetic_features(n, d, c, ratio)
        block = _block_rows(n, d, c, device.type)
        host = torch.from_numpy(X)
        if device.type == "cuda":
            host = host.pin_memory()
        copy = timing.best_seconds(lambda: host.to(device, non_blocking=True), 2, device)
        X_device = host.to(device)
        two, three = timing.product_seconds(X_device, c, block, 3)
        del X_device
        for streamed in (False, True):
            _streamed(streamed)
            seconds, fixed = timing.seconds_per_pass(X, y, passes=3, device=str(device))
            lines.append(
                f"| {name} | {n:,} x {d:,} x {c:,} | "
                f"{'streamed' if streamed else 'resident'} | {seconds:.3f} | "
                f"{two:.3f} | {three:.3f} | {seconds / three:.2f} | {copy:.3f} | "
                f"{fixed:.2f} |"
            )
            print(lines[-1], flush=True)
        _streamed(False)
        X = y = host = None  # free before the next shape
        if device.type == "cuda":
            torch.cuda.empty_cache()
    lines.append("")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small shapes")
    parser.add_argument("--out", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check (use --device cpu for a dry run)")
        return 0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [
        "# GPU check\n",
        f"- device: {name}; torch {torch.__version__}; command: "
        f"`python benchmarks/gpu_check.py {' '.join(argv or sys.argv[1:])}`",
        "",
    ]
    start = time.perf_counter()
    ok = agreement(device, args.quick, lines)
    print("\n".join(lines), flush=True)
    timings(device, args.quick, lines)
    lines.append(f"Wall time {time.perf_counter() - start:.0f} s. Agreement "
                 f"{'PASSED' if ok else 'FAILED'} (>= {100 * AGREEMENT:.1f}%).")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
