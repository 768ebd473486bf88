"""Fit time with a core kept busy by another process: old thread policy against new.

    python benchmarks/threads.py [--repeats 5] [--out benchmarks/THREADS.md]
    python benchmarks/threads.py --quick --out /tmp/threads.md     # smoke test, ~10 s

For each shape, default fits (``max_iter`` passes, CPU) are timed

- idle: nothing started by this script competes for the cores;
- busy: a subprocess spinning ``while True: pass`` keeps one core busy;

under two policies, interleaved run by run:

- old: the process's torch threads (split among concurrent fits; one thread
  for small products), i.e. ``sklearn_samn._threads.free_cores`` disabled;
- new: the same, capped by the cores other processes leave free at the start
  of the fit (``free_cores``, a 30 ms sample of ``/proc/stat``);
- one: one torch thread whatever the load (what ``new`` chooses when it sees
  a core taken), to show what it costs when it is wrong.

The report gives the median and the fastest of the repeats, the torch threads
each fit ran on, and ``/proc/loadavg`` before and after each block of runs:
the machine may be shared, and other people's jobs are in the figures.
"""

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the package beside this script, not an installed one

from sklearn_samn import SAMNClassifier, _threads  # noqa: E402

SHAPES = {"small": (10_847, 64, 100), "large": (20_000, 256, 100)}
POLICIES = ("old", "new", "one")
QUICK_SHAPES = {"small": (4_000, 128, 50), "large": (6_000, 192, 60)}


def loadavg():
    try:
        with open("/proc/loadavg") as handle:
            return handle.read().split()[:4]
    except OSError:
        return [f"{v:.2f}" for v in os.getloadavg()] if hasattr(os, "getloadavg") else ["?"]


def problem(n, d, c, seed=0):
    """Long-tailed Gaussian classes (class k drawn with probability ~ 0.96^k)."""
    rng = np.random.default_rng(seed)
    prior = 0.96 ** np.arange(c)
    y = rng.choice(c, size=n, p=prior / prior.sum())
    centres = rng.normal(scale=0.5, size=(c, d))
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


def timed_fit(X, y, max_iter, policy):
    """Seconds of one default fit and the torch threads it ran on."""
    seen = []
    original_count, original_free = _threads.fit_thread_count, _threads.free_cores

    def record(*args, **kwargs):
        seen.append(original_count(*args, **kwargs))
        return seen[-1]

    _threads.fit_thread_count = record
    if policy == "old":
        _threads.free_cores = lambda: None
    elif policy == "one":
        _threads.free_cores = lambda: 1
    try:
        start = time.perf_counter()
        SAMNClassifier(device="cpu", random_state=0, max_iter=max_iter).fit(X, y)
        return time.perf_counter() - start, seen[-1]
    finally:
        _threads.fit_thread_count, _threads.free_cores = original_count, original_free


def measure(X, y, max_iter, repeats):
    """{policy: (times, threads)}, the policies interleaved run by run."""
    results = {policy: ([], set()) for policy in POLICIES}
    for _ in range(repeats):
        for policy in POLICIES:
            seconds, threads = timed_fit(X, y, max_iter, policy)
            results[policy][0].append(seconds)
            results[policy][1].add(threads)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-iter", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="small shapes, 1 repeat, 3 passes")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "THREADS.md"))
    args = parser.parse_args(argv)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    repeats, max_iter = (1, 3) if args.quick else (args.repeats, args.max_iter)
    warnings.simplefilter("ignore", ConvergenceWarning)
    started = time.perf_counter()

    rows = []
    for name, (n, d, c) in shapes.items():
        X, y = problem(n, d, c)
        timed_fit(X, y, 2, "old")  # warm-up: first-call costs of torch
        figures = {}
        for condition in ("idle", "busy"):
            spinner = None
            if condition == "busy":
                spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                time.sleep(0.5)
            try:
                load_before = loadavg()
                figures[condition] = measure(X, y, max_iter, repeats)
                load_after = loadavg()
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
            figures[condition + "_load"] = (load_before, load_after)
        for condition in ("idle", "busy"):
            for policy in POLICIES:
                times, threads = figures[condition][policy]
                idle_median = statistics.median(figures["idle"][policy][0])
                rows.append((
                    f"{name}, {n:,} x {d} x {c}", condition, policy,
                    ",".join(map(str, sorted(threads))), statistics.median(times),
                    min(times), statistics.median(times) / idle_median,
                    " ".join(figures[condition + "_load"][0]),
                    " ".join(figures[condition + "_load"][1]),
                ))
            print(*rows[-len(POLICIES):], sep="\n", flush=True)

    command = shlex.join(["python", "benchmarks/threads.py",
                          *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "# Torch threads when another process keeps a core busy",
        "",
        f"Command: `{command}`",
        "",
        f"- generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"wall time {time.perf_counter() - started:.0f} s",
        f"- Python {platform.python_version()}, torch {torch.__version__}; "
        f"{platform.machine()}, {os.cpu_count()} cores, affinity "
        f"{len(_threads._allowed_cpus())}, torch default threads {torch.get_num_threads()}",
        f"- default fits (`SAMNClassifier(device='cpu', max_iter={max_iter})`) on synthetic "
        f"float32 features; {repeats} runs per cell, the policies interleaved; "
        "`busy`: one subprocess spinning `while True: pass`",
        "- `x idle`: median time over the same policy's idle median. `load`: "
        "`/proc/loadavg` (1, 5, 15-min averages, running/total tasks) before and "
        "after the cell's runs: other people's jobs on this machine are in these figures.",
        "",
        "| shape | condition | policy | torch threads | median s | fastest s | x idle "
        "| load before | load after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} | {row[4]:.3f} | {row[5]:.3f} "
            f"| {row[6]:.2f} | {row[7]} | {row[8]} |"
        )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
