"""Speed and memory of SAMNClassifier.fit on the CPU, next to the hardware's limits.

    python benchmarks/speed.py [--threads N] [--out benchmarks/SPEED.md]
    python benchmarks/speed.py --quick --out /tmp/speed.md      # smoke test, ~1 min

Sections (each measured in this one process unless it says otherwise):

1. projection: ``monotone_projection_torch`` forward and backward at 10^3,
   8,142 and 10^5 classes, with the head's prepared ``CountOrder``.
2. passes: seconds per pass over the data (from fits of two lengths, so fixed
   costs cancel) next to the time of the matrix products one pass needs, timed
   on the same blocks of rows: forward ``X W^T``, the weight gradient
   ``G^T X`` and the input gradient ``G W`` (which a head on frozen features
   does not need; the issue's roofline counts it). iNaturalist 2018 is timed
   on its first rows and extrapolated.
3. memory: peak resident memory during ``fit`` above what the process held
   before it (a fresh subprocess per row, the peak reset just before ``fit``),
   as a multiple of the size of X in float32.
4. predict: traced NumPy memory of ``predict`` / ``predict_proba`` on 10^6 rows
   beyond the returned array.
5. end_to_end: ``SAMNClassifier().fit`` against ``LogisticRegression().fit``
   (lbfgs) and ``SGDClassifier().fit``, defaults, on the same features; balanced
   accuracy on a balanced test set. At the ImageNet-LT shape, two problems:
   isotropic class means, and class means in a 64-d subspace
   (``data.STRUCTURED``), each with the oracle that knows the true means.
   Without ``--full-lr``, LogisticRegression is timed per iteration there and
   extrapolated to its 100 iterations.

The features are synthetic (``data.synthetic_features``) in the shapes of
``data.SHAPES``; BANKING77 (real MiniLM embeddings) is added when
``../shared/data/banking77`` is there.
"""

import argparse
import os
import sys


def _threads_from_argv():
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    return parser.parse_known_args()[0].threads


# Thread counts must be set before NumPy's BLAS and torch start.
_THREADS = _threads_from_argv()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(_THREADS)

import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression, SGDClassifier  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data  # noqa: E402
import timing  # noqa: E402

from sklearn_samn import SAMNClassifier  # noqa: E402
from sklearn_samn._pava import CountOrder, monotone_projection_torch  # noqa: E402
from sklearn_samn._streaming import serves_views  # noqa: E402
from sklearn_samn._training import _block_rows  # noqa: E402

torch.set_num_threads(_THREADS)
HERE = Path(__file__).resolve().parent


# ----------------------------------------------------------------- projection
def projection_rows(quick):
    rows = []
    rng = np.random.default_rng(0)
    cases = [(n, False) for n in (1_000, 8_142, 100_000)] + [(100_000, True)]
    for n_classes, distinct in cases:
        counts = data.shaped_counts(100 * n_classes, n_classes, 500)
        if distinct:  # no ties at all
            counts = np.arange(1, n_classes + 1)
        prepared = CountOrder(rng.permutation(counts))
        values = torch.tensor(rng.normal(size=n_classes), requires_grad=True)
        forward, backward = [], []
        for _ in range(10 if quick else 100):
            start = time.perf_counter()
            out = monotone_projection_torch(values, prepared, increasing=False)
            forward.append(time.perf_counter() - start)
            start = time.perf_counter()
            out.backward(torch.ones_like(out))
            backward.append(time.perf_counter() - start)
        rows.append(
            {
                "classes": n_classes,
                "distinct counts": len(np.unique(counts)),
                "forward ms (median)": 1e3 * np.median(forward),
                "forward ms (p90)": 1e3 * np.quantile(forward, 0.9),
                "backward ms (median)": 1e3 * np.median(backward),
            }
        )
    return rows


# ------------------------------------------------------------------- passes
def passes_rows(quick):
    rows = []
    SAMNClassifier(max_iter=2).fit(*data.synthetic_features(500, 8, 5, 10))  # warm-up
    for name, (n_samples, n_features, n_classes, ratio) in data.SHAPES.items():
        measured_rows = n_samples
        if quick:
            n_samples = measured_rows = min(n_samples, 4_096)
            n_features, n_classes = min(n_features, 256), min(n_classes, 200)
        elif name == "inat2018":
            measured_rows = 16_384  # its first rows; scaled up below
        X, y = data.synthetic_features(
            n_samples, n_features, n_classes, ratio, first_rows=measured_rows
        )
        big = n_features * n_classes * measured_rows > 1e11
        repeats = 1 if big else 3
        # The blocks the Adam pass reads (views of a float32 X: logits only).
        block = _block_rows(X.shape[0], n_features, n_classes,
                            copies=not serves_views(X, torch.device("cpu")))
        two, three = timing.product_seconds(torch.from_numpy(X), n_classes, block, repeats)
        seconds, fixed = timing.seconds_per_pass(X, y, passes=2 if big else 10, repeats=repeats)
        scale = n_samples / measured_rows
        flops = 4.0 * n_samples * n_features * n_classes
        rows.append(
            {
                "shape": name,
                "n x d x C": f"{n_samples:,} x {n_features:,} x {n_classes:,}",
                "rows timed": f"{measured_rows:,}" + (" (extrapolated)" if scale > 1 else ""),
                "s / pass": seconds * scale,
                "2 products s": two * scale,
                "3 products s": three * scale,
                "pass / 3 products": seconds / three,
                "pass / 2 products": seconds / two,
                "GFLOP/s (2 products)": flops / (seconds * scale) / 1e9,
                "fixed s": fixed,
                "100 passes s (Adam default budget)": 100 * seconds * scale + fixed,
            }
        )
        del X, y
    return rows


# ------------------------------------------------------------------- memory
_PROBE = """
import ctypes, json, sys, numpy as np
sys.path.insert(0, {bench!r})
import data
from sklearn_samn import SAMNClassifier
n, full, d, c, ratio, dtype, batch = {args!r}
X, y = data.synthetic_features(full, d, c, ratio, first_rows=n)
if dtype == "float64":
    X = X.astype(np.float64)
SAMNClassifier(max_iter=1).fit(X[:2000], y[:2000])  # imports, threads, first calls

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

# Hand freed heap pages back to the system first: otherwise the fit would reuse
# memory that earlier steps (the warm-up, building X) left resident, unseen.
ctypes.CDLL("libc.so.6").malloc_trim(0)
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # resets VmHWM to the current RSS
# The default (L-BFGS with its cross-validation, one iteration per fit) or Adam.
params = {{}} if batch is None else {{"solver": "adam", "batch_size": batch}}
SAMNClassifier(max_iter=1, **params).fit(X, y)
print(json.dumps({{"extra": status("VmHWM") - before, "x32": n * d * 4}}))
"""


def memory_rows(quick):
    cases = [
        ("cifar100_lt", None, "float32", None),
        ("imagenet_lt", None, "float32", None),
        ("imagenet_lt", None, "float32", 4096),
        ("imagenet_lt", None, "float64", None),
        ("inat2018", 32_768, "float32", None),
    ]
    if quick:
        cases = [("cifar100_lt", 4_096, "float32", None), ("cifar100_lt", 4_096, "float64", 512)]
    rows = []
    for name, n_rows, dtype, batch in cases:
        n_samples, n_features, n_classes, ratio = data.SHAPES[name]
        n = n_rows or n_samples
        code = _PROBE.format(
            bench=str(HERE),
            args=(n, n_samples, n_features, n_classes, ratio, dtype, batch),
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        probe = json.loads(result.stdout.strip().splitlines()[-1])
        full_x32 = n_samples * n_features * 4
        rows.append(
            {
                "shape": name,
                "rows": f"{n:,}" + ("" if n == n_samples else " (subset)"),
                "X dtype": dtype,
                "batch_size": batch,
                "X float32 MB": probe["x32"] / 2**20,
                "peak extra MB": probe["extra"] / 2**20,
                "extra / X float32": probe["extra"] / probe["x32"],
                "extra / full X float32": probe["extra"] / full_x32,
            }
        )
    return rows


# ------------------------------------------------------------------ predict
def predict_rows(quick):
    n, d, c = (100_000 if quick else 1_000_000), 64, 100
    X, y = data.synthetic_features(20_000, d, c, 100)
    clf = SAMNClassifier(max_iter=5, random_state=0).fit(X, y)
    X_big = np.random.default_rng(1).standard_normal((n, d), dtype=np.float32)
    rows = []
    for method in ("predict", "predict_proba"):
        tracemalloc.start()
        start = time.perf_counter()
        result = getattr(clf, method)(X_big)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append(
            {
                "method": method,
                "rows": f"{n:,}",
                "seconds": seconds,
                "result MB": result.nbytes / 2**20,
                "peak beyond result MB": (peak - result.nbytes) / 2**20,
                "n x C float64 MB": n * c * 8 / 2**20,
            }
        )
        del result
    return rows


# --------------------------------------------------------------- end to end
def _fit_seconds(model, X, y):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return time.perf_counter() - start


def _adjusted(lr, X_test, y):
    """LogisticRegression's predictions with post-hoc logit adjustment (free)."""
    prior = np.bincount(y, minlength=len(lr.classes_)) / len(y)
    return lr.classes_[np.argmax(lr.decision_function(X_test) - np.log(prior), axis=1)]


# Shapes of the end-to-end comparison besides data.SHAPES: an intent-sized
# problem with more rows and classes, and a wide one (issue 10's list).
END_TO_END_SHAPES = {
    "30k x 384 x 300": (30_000, 384, 300, 100),
    "40k x 1,024 x 1,000": (40_000, 1_024, 1_000, 100),
}


# Short names for --problems.
PROBLEMS = {
    "cifar": "cifar100_lt", "30k": "30k x 384 x 300", "40k": "40k x 1,024 x 1,000",
    "imagenet": "imagenet_lt", "imagenet-structured": "imagenet_lt structured",
    "banking77": "banking77", "hwu64": "hwu64",
}


def end_to_end_rows(quick, full_lr=False, large=False, only=None):
    names = ["cifar100_lt", "30k x 384 x 300"]
    if large:
        names += ["40k x 1,024 x 1,000", "imagenet_lt", "imagenet_lt structured"]
    real = ("banking77", "hwu64")
    if only is not None:
        names = [PROBLEMS[key] for key in only if PROBLEMS[key] not in real]
        real = tuple(key for key in only if PROBLEMS[key] in real)
    problems = []
    for name in names[:1] if quick else names:
        shapes = {**data.SHAPES, **END_TO_END_SHAPES}
        n, d, c, ratio = shapes[name.replace(" structured", "")]
        if quick:
            n = 4_096
        options = data.STRUCTURED if name.endswith("structured") else {}
        *arrays, centres = data.synthetic_features(
            n, d, c, ratio, n_test_per_class=20, return_centres=True, **options
        )
        problems.append((name, *arrays, centres))
    for dataset in real:
        try:
            problems.append((f"{dataset} IF100 (real)", *getattr(data, dataset)(100, 0),
                             None))
        except FileNotFoundError:
            pass
    rows = []
    for name, X, y, X_test, y_test, centres in problems:
        large_problem = X.shape[0] * X.shape[1] * len(np.unique(y)) > 1e10
        if centres is not None:
            rows.append(
                {
                    "problem": name,
                    "model": "oracle: nearest true class mean (no fit)",
                    "fit s": None,
                    "iterations": None,
                    "balanced acc %": 100 * balanced_accuracy_score(
                        y_test, data.oracle_predict(X_test, centres)
                    ),
                }
            )
        models = {
            "SAMNClassifier()": SAMNClassifier(random_state=0),
            "LogisticRegression()": LogisticRegression(),
            "SGDClassifier()": SGDClassifier(random_state=0),
        }
        if large_problem:
            # 1,000 one-vs-rest SGD fits on 115,846 x 2,048 take hours here.
            del models["SGDClassifier()"]
        for label, model in models.items():
            if large_problem and label == "LogisticRegression()" and not full_lr:
                rows.append(_extrapolated_lr(name, X, y))
                continue
            seconds = _fit_seconds(model, X, y)
            score = balanced_accuracy_score(y_test, model.predict(X_test))
            n_iter = getattr(model, "n_iter_", None)
            if label == "SAMNClassifier()":
                cv = model.cv_results_
                n_iter = (f"{model.n_iter_} + {int(cv['n_iter'].sum())} in the CV "
                          f"({len(cv['max_norm'])} caps)")
                label = f"SAMNClassifier() (chose max_norm={model.max_norm_:.3g})"
            elif n_iter is not None:
                n_iter = int(np.max(n_iter))
            rows.append(
                {
                    "problem": name,
                    "model": label,
                    "fit s": seconds,
                    "iterations": n_iter,
                    "balanced acc %": 100 * score,
                }
            )
            if label.startswith("SAMNClassifier()"):
                # The same fit without the selection: what the CV costs.
                fixed = SAMNClassifier(max_norm=model.max_norm_, random_state=0)
                seconds = _fit_seconds(fixed, X, y)
                rows.append(
                    {
                        "problem": name,
                        "model": f"  SAMNClassifier(max_norm={model.max_norm_:.3g}), no CV",
                        "fit s": seconds,
                        "iterations": fixed.n_iter_,
                        "balanced acc %": 100 * balanced_accuracy_score(
                            y_test, fixed.predict(X_test)),
                    }
                )
            if label == "LogisticRegression()":
                adjusted = balanced_accuracy_score(y_test, _adjusted(model, X_test, y))
                rows.append(
                    {
                        "problem": name,
                        "model": "  + post-hoc logit adjustment",
                        "fit s": seconds,
                        "iterations": rows[-1]["iterations"],
                        "balanced acc %": 100 * adjusted,
                    }
                )
    return rows


def _extrapolated_lr(name, X, y):
    """lbfgs seconds per iteration from two short fits, times max_iter=100."""
    first = _fit_seconds(LogisticRegression(max_iter=1), X, y)
    third = _fit_seconds(LogisticRegression(max_iter=3), X, y)
    per_iteration = (third - first) / 2
    return {
        "problem": name,
        "model": "LogisticRegression() (extrapolated)",
        "fit s": first - per_iteration + 100 * per_iteration,
        "iterations": "100 (max_iter; s/iteration measured: "
        f"{per_iteration:.1f})",
        "balanced acc %": None,
    }


# ------------------------------------------------------------------- report
def _table(rows):
    if not rows:
        return "(none)\n"
    keys = list(rows[0])

    def cell(value):
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


NOTES = {
    "projection": "`monotone_projection_torch` (non-increasing) of random float64 "
    "values with the head's prepared `CountOrder`; counts from an exponential profile "
    "(imbalance 500: many classes tie), the last row with every count distinct. "
    "Target: under 5 ms per call at 10^5 classes.",
    "passes": "`s / pass` from fits of 1 and 1 + k passes of the Adam solver (fixed "
    "costs cancel; a pass of the default L-BFGS solver's objective reads the same "
    "blocks through the same block gradient); the products are timed on the same blocks of rows in the same process. "
    "`pass / 3 products` is the issue's roofline ratio (target: at most 2); a head "
    "on frozen features needs only the first two products. iNaturalist 2018 is timed "
    "on its first 16,384 rows and scaled by 437,513 / 16,384 (extrapolated).",
    "memory": "Peak resident memory of `fit(max_iter=1)` (the default: its "
    "cross-validation and final fit, one L-BFGS iteration each; with a batch_size, "
    "Adam) above the resident memory "
    "just before it, in a fresh subprocess (heap trimmed, peak reset). Target: at "
    "most 1.5 x the size of X in float32. The extra is mostly per-class state (head, "
    "gradients, the L-BFGS history or Adam's moments, the float64 `coef_`), so the iNaturalist subset's "
    "figure is also given against the full X.",
    "predict": "`tracemalloc` peak of NumPy allocations while scoring 10^6 rows "
    "(64 features, 100 classes), beyond the returned array.",
    "end_to_end": "Defaults of each estimator, fitted on the same float32 features "
    "with all cores; balanced accuracy on a balanced test set (20 rows per class for "
    "the synthetic shapes; BANKING77's 3,080 test queries). Post-hoc logit "
    "adjustment subtracts log(training prior) from LogisticRegression's scores (no "
    "extra fit). `imagenet_lt` has isotropic class means (nearly unlearnable at 2,048-d "
    "with few tail rows); `imagenet_lt structured` puts them in a 64-d subspace "
    "(`data.STRUCTURED`, separation set by the oracle alone). The oracle classifies by "
    "the true class means: a ceiling, not a competitor. SAMN's `iterations` are those of "
    "its final fit plus those of the cross-validation that chose `max_norm` (one "
    "validation split above 10,000 rows); the indented SAMN row refits with that cap "
    "given, which shows what the selection costs. `--large` adds 40k x 1,024 x 1,000 and "
    "the ImageNet-LT shape.",
}

SECTIONS = {
    "projection": projection_rows,
    "passes": passes_rows,
    "memory": memory_rows,
    "predict": predict_rows,
    "end_to_end": end_to_end_rows,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch and BLAS threads (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="small sizes, smoke test")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma list of {', '.join(SECTIONS)}")
    parser.add_argument("--out", default=str(HERE / "SPEED.md"))
    parser.add_argument("--large", action="store_true",
                        help="end_to_end also at 40k x 1,024 x 1,000 and the ImageNet-LT "
                        "shape (hours on 2 cores with the default's cross-validation)")
    parser.add_argument("--problems", default=None,
                        help="end_to_end on these problems only, a comma list of "
                        f"{', '.join(PROBLEMS)} (default: the standard list, with "
                        "--large the large shapes too)")
    parser.add_argument("--full-lr", action="store_true",
                        help="fit LogisticRegression() at the ImageNet-LT shape in full "
                        "(over half an hour on 2 cores) instead of extrapolating it")
    args = parser.parse_args(argv)
    only = None if args.problems is None else args.problems.split(",")
    if only is not None and set(only) - set(PROBLEMS):
        parser.error(f"unknown problems {sorted(set(only) - set(PROBLEMS))}; "
                     f"choose from {', '.join(PROBLEMS)}")
    command = "python benchmarks/speed.py " + shlex.join(
        a for a in (argv if argv is not None else sys.argv[1:])
    )
    started = time.perf_counter()
    report = [
        "# Speed and memory on the CPU\n",
        f"Command: `{command.strip()}`\n",
        f"- generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, torch {torch.__version__}; "
        f"{platform.machine()}, {os.cpu_count()} cores, {_THREADS} thread(s) "
        f"(torch, BLAS); {timing.host()}",
        "- features: synthetic float32 (`data.synthetic_features`, long-tailed "
        "Gaussian classes); times are the best of repeated runs",
        "",
    ]
    for name in args.sections.split(","):
        print(f"[speed] {name} ...", file=sys.stderr, flush=True)
        section_start = time.perf_counter()
        if name == "end_to_end":
            rows = end_to_end_rows(args.quick, full_lr=args.full_lr, large=args.large,
                                   only=only)
        else:
            rows = SECTIONS[name](args.quick)
        report.append(f"## {name}\n")
        report.append(NOTES[name] + "\n")
        report.append(_table(rows))
        report.append(f"({time.perf_counter() - section_start:.0f} s)\n")
        Path(args.out).write_text("\n".join(report))
    report.insert(
        3, f"- wall time {(time.perf_counter() - started) / 60:.1f} min"
    )
    Path(args.out).write_text("\n".join(report))
    print(f"[speed] wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
