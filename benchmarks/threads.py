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

The machine may be shared: for each run the script measures the CPU time that
other processes (not this one, not its spinner) used during the fit, and the
report gives the median of the clean runs (those where that stayed under a
quarter of a core) beside the median of all runs, with the torch threads each
fit ran on and ``/proc/loadavg`` around each cell.
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
CLEAN = 0.25  # cores other people's processes may keep busy during a clean run
QUICK_SHAPES = {"small": (1_500, 32, 20), "large": (2_500, 48, 30)}


def loadavg():
    try:
        with open("/proc/loadavg") as handle:
            return " ".join(handle.read().split()[:4])
    except OSError:
        return "?"


def _ticks(pid):
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_ticks(pids):
    """Busy ticks of all cores, and of this process plus ``pids``; ``None`` without /proc."""
    try:
        with open("/proc/stat") as handle:
            ticks = [int(v) for v in handle.readline().split()[1:9]]
        return sum(ticks) - ticks[3] - ticks[4], sum(_ticks(pid) for pid in ["self", *pids])
    except OSError:
        return None


def problem(n, d, c, seed=0):
    """Long-tailed Gaussian classes (class k drawn with probability ~ 0.96^k)."""
    rng = np.random.default_rng(seed)
    prior = 0.96 ** np.arange(c)
    y = rng.choice(c, size=n, p=prior / prior.sum())
    centres = rng.normal(scale=0.5, size=(c, d))
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


def timed_fit(X, y, max_iter, policy, pids=()):
    """Seconds of one default fit, the torch threads it ran on, and the cores
    that processes other than this one and ``pids`` kept busy meanwhile."""
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
        before = cpu_ticks(pids)
        start = time.perf_counter()
        SAMNClassifier(device="cpu", random_state=0, max_iter=max_iter).fit(X, y)
        seconds = time.perf_counter() - start
        after = cpu_ticks(pids)
    finally:
        _threads.fit_thread_count, _threads.free_cores = original_count, original_free
    foreign = np.nan
    if before is not None and after is not None:
        spent = (after[0] - before[0]) - (after[1] - before[1])
        foreign = max(0.0, spent / (seconds * os.sysconf("SC_CLK_TCK")))
    return seconds, seen[-1], foreign


def measure(X, y, max_iter, repeats, max_rounds, pids=()):
    """{policy: [(seconds, threads, foreign cores), ...]}, the policies interleaved;
    rounds go on until each policy has ``repeats`` clean runs, or ``max_rounds``."""
    runs = {policy: [] for policy in POLICIES}
    for _ in range(max_rounds):
        for policy in POLICIES:
            runs[policy].append(timed_fit(X, y, max_iter, policy, pids))
        if all(sum(clean(r) for r in done) >= repeats for done in runs.values()):
            break
    return runs


def clean(run):
    """A run during which other people's processes kept less than CLEAN cores busy."""
    return not run[2] >= CLEAN


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="clean runs wanted per cell")
    parser.add_argument("--max-rounds", type=int, default=6)
    parser.add_argument("--max-iter", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="small shapes, 1 repeat, 1 L-BFGS iteration")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "THREADS.md"))
    args = parser.parse_args(argv)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    repeats, max_rounds, max_iter = (
        (1, 1, 1) if args.quick else (args.repeats, args.max_rounds, args.max_iter))
    warnings.simplefilter("ignore", ConvergenceWarning)
    started = time.perf_counter()

    rows = []
    for name, (n, d, c) in shapes.items():
        X, y = problem(n, d, c)
        timed_fit(X, y, 2, "old")  # warm-up: first-call costs of torch
        runs, loads = {}, {}
        for condition in ("idle", "busy"):
            spinner = None
            if condition == "busy":
                spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                time.sleep(0.5)
            try:
                before = loadavg()
                runs[condition] = measure(X, y, max_iter, repeats, max_rounds,
                                          pids=() if spinner is None else (spinner.pid,))
                loads[condition] = (before, loadavg())
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
        for condition in ("idle", "busy"):
            for policy in POLICIES:
                done = runs[condition][policy]
                kept = [r[0] for r in done if clean(r)]
                idle_kept = [r[0] for r in runs["idle"][policy] if clean(r)]
                ratio = (statistics.median(kept) / statistics.median(idle_kept)
                         if kept and idle_kept else np.nan)
                rows.append((
                    f"{name}, {n:,} x {d} x {c}", condition, policy,
                    ",".join(map(str, sorted({r[1] for r in done}))),
                    f"{len(kept)}/{len(done)}",
                    f"{statistics.median(kept):.3f}" if kept else "-",
                    f"{statistics.median(r[0] for r in done):.3f}",
                    f"{ratio:.2f}" if np.isfinite(ratio) else "-",
                    f"{np.mean([r[2] for r in done]):.2f}",
                    f"{loads[condition][0]} / {loads[condition][1]}",
                ))
                print(" | ".join(rows[-1]), flush=True)

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
        "float32 features, the policies interleaved; `busy`: one subprocess spinning "
        "`while True: pass`",
        "- the machine is shared: for every run, `other cores` is the CPU time that "
        "processes other than this one (and its spinner) used during the fit, in cores; "
        f"a run is clean when that is under {CLEAN}. Rounds go on until each policy has "
        f"{repeats} clean runs (at most {max_rounds} rounds). `x idle`: the clean median "
        "over the same policy's clean idle median. `load`: `/proc/loadavg` before / after "
        "the cell.",
        "",
        "| shape | condition | policy | torch threads | clean runs | median s (clean) "
        "| median s (all) | x idle | other cores (mean) | load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
