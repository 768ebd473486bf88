"""When the cap path stops on the single-split path (above 10,000 rows).

Above ``_lbfgs._SINGLE_SPLIT_ABOVE`` rows the default's cross-validation holds
out one fold only. This study compares when its walk over the caps stops:

- ``z < -1, else patience 3`` (the default): at the first cap more than one
  standard error below the best (``_selection.decline_z``), or after three
  caps in a row that do not beat the best;
- ``patience 3`` (the default before): the latter alone, as on the folds'
  path below 10,000 rows (``_lbfgs._SINGLE_SPLIT_STOP_Z = None``);
- ``first decline``: at the first cap that scores below the best; caps that
  tie it do not stop the walk (``_lbfgs._SINGLE_SPLIT_PATIENCE = 1``);
- ``patience 2``: after two caps that score below the best, ties not counted.

(``patience 1, ties stop``, at the first cap that does not beat the best, was
measured until the ``z`` rule replaced it in the table: it walked as many caps
and chose the same cap as ``first decline`` on every problem, its fit times
within the runs' noise of that rule's; ``SINGLE_SPLIT.md`` at commit 7dc9d47.)
Every rule but the default walks without the ``z`` test.

Problems, none of them a test split:

- real embeddings: BANKING77 and HWU64's full training sets pooled (140
  intents, MiniLM), made mildly long-tailed over their full class sizes
  (imbalance ratio 1 or 2, random class ranks), with a fifth of each class
  held out as validation rows (scored here; the fit never sees them). The
  long-tailed splits of the dev sets have at most 1,850 rows, so they never
  reach this path;
- the synthetic shapes of ``speed.py`` (``--large`` adds 40k x 1,024 x 1,000
  and the ImageNet-LT shape, isotropic and structured), scored on fresh rows
  drawn from the same class means (20 per class), not speed.py's test rows.

Fit time is the whole ``fit`` on the cores given, selection included.

    python benchmarks/single_split.py --out benchmarks/SINGLE_SPLIT.md
    python benchmarks/single_split.py --large --out benchmarks/SINGLE_SPLIT.md
"""
import argparse
import os
import platform
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402
import timing  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402

from sklearn_samn import SAMNClassifier, _lbfgs  # noqa: E402

RULES = {
    "z < -1, else patience 3 (default)": "default",
    "patience 3": None,
    "first decline": 1,
    "patience 2": 2,
}
SYNTHETIC = {
    "cifar100_lt": (10_847, 64, 100, 100, {}),
    "30k x 384 x 300": (30_000, 384, 300, 100, {}),
}
LARGE = {
    "40k x 1,024 x 1,000": (40_000, 1_024, 1_000, 100, {}),
    "imagenet_lt": (115_846, 2_048, 1_000, 256, {}),
    "imagenet_lt structured": (115_846, 2_048, 1_000, 256, data.STRUCTURED),
}


def real_rows(y, ratio, seed):
    """Training and validation rows: a fifth of each class held out, the rest
    kept with the share ``ratio ** (-rank / (n_classes - 1))`` of a random rank."""
    n_classes = int(y.max()) + 1
    rng = np.random.default_rng(seed)
    rank = rng.permutation(n_classes)
    train, validation = [], []
    for c in range(n_classes):
        rows = rng.permutation(np.flatnonzero(y == c))
        n_val = max(1, rows.shape[0] // 5)
        validation.append(rows[:n_val])
        keep = int(np.ceil((rows.shape[0] - n_val) * ratio ** (-rank[c] / (n_classes - 1))))
        train.append(rows[n_val:n_val + keep])
    return np.concatenate(train), np.concatenate(validation)


def real_problem(ratio, seed):
    """Pooled full training sets, long-tailed by ``ratio``, and validation rows."""
    arrays = data._pooled_intents()
    X, y = arrays["X_train"], arrays["y_train"]
    train, validation = real_rows(y, ratio, seed)
    return X[train], y[train], X[validation], y[validation]


def synthetic_problem(n, d, c, ratio, options):
    X, y, centres = data.synthetic_features(n, d, c, ratio, return_centres=True, **options)
    rng = np.random.default_rng(123)
    y_val = np.repeat(np.arange(c), 20)
    X_val = rng.standard_normal((y_val.shape[0], d), dtype=np.float32) + centres[y_val]
    return X, y, X_val, y_val


def fit_with(rule, X, y, seed):
    """``SAMNClassifier(random_state=seed).fit(X, y)`` under ``rule`` (a value of
    ``RULES``) and its seconds. ``"default"``: the package's rule; otherwise
    without the ``z`` test, with ``_lbfgs._SINGLE_SPLIT_PATIENCE = rule``."""
    saved = _lbfgs._SINGLE_SPLIT_PATIENCE, _lbfgs._SINGLE_SPLIT_STOP_Z
    try:
        if rule != "default":
            _lbfgs._SINGLE_SPLIT_PATIENCE, _lbfgs._SINGLE_SPLIT_STOP_Z = rule, None
        start = time.perf_counter()
        model = SAMNClassifier(random_state=seed).fit(X, y)
        return model, time.perf_counter() - start
    finally:
        _lbfgs._SINGLE_SPLIT_PATIENCE, _lbfgs._SINGLE_SPLIT_STOP_Z = saved


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--ratios", default="1,2")
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    problems = []
    try:
        for ratio in [float(r) for r in args.ratios.split(",")]:
            for seed in [int(s) for s in args.seeds.split(",")]:
                problems.append((f"BANKING77 + HWU64 full, IF {ratio:g}", seed,
                                 lambda r=ratio, s=seed: real_problem(r, s)))
    except FileNotFoundError:
        print("../shared data absent: synthetic problems only", file=sys.stderr)
    shapes = {**SYNTHETIC, **(LARGE if args.large else {})}
    for name, shape in shapes.items():
        problems.append((name, 0, lambda shape=shape: synthetic_problem(*shape)))
    rows = []
    for name, seed, make in problems:
        X, y, X_val, y_val = make()
        for label, rule in RULES.items():
            model, seconds = fit_with(rule, X, y, seed)
            score = 100 * balanced_accuracy_score(y_val, model.predict(X_val))
            row = {"problem": name, "seed": seed, "rows": X.shape[0], "rule": label,
                   "fit s": seconds, "caps": len(model.cv_results_["max_norm"]),
                   "max_norm_": model.max_norm_, "balanced acc %": score}
            rows.append(row)
            print(row, flush=True)
        del X, y, X_val, y_val
    lines = [
        "# When the cap path stops on the single-split path",
        "",
        f"Command: `python benchmarks/single_split.py {' '.join(sys.argv[1:])}`",
        "",
        f"- generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"wall time {(time.perf_counter() - started) / 60:.1f} min",
        f"- Python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} cores, {timing.host()}",
        "- Above 10,000 rows the default's cross-validation holds out one fold "
        "(a fifth of every class). Rules for when its walk over the caps stops: "
        "`z < -1, else patience 3` (the default) at the first cap more than one "
        "standard error below the best (a paired test on the validation rows), or "
        "after three caps in a row that do not beat the best; `patience 3` (the "
        "default before, as on the folds' path) the latter alone; `first decline` at "
        "the first cap that scores below the best, ties not counted "
        "(`_lbfgs._SINGLE_SPLIT_PATIENCE = 1`); `patience 2` after two caps below "
        "the best, ties not counted. Only the default applies the `z` test.",
        "- Real: BANKING77's and HWU64's full training sets pooled (140 intents, "
        "MiniLM embeddings), long-tailed by IF 1 or 2 over their full class sizes "
        "(random ranks), a fifth of each class held out as validation rows. "
        "Synthetic: speed.py's shapes, scored on fresh rows from the true class "
        "means (20 per class). Never a test split.",
        "- fit s: the whole `fit` (selection included), all cores.",
        "",
        "## Mean per problem",
        "",
        "| problem | rows | rule | fit s | caps | max_norm_ | balanced acc % |",
        "|---|---|---|---|---|---|---|",
    ]
    groups = {}
    for row in rows:
        groups.setdefault((row["problem"], row["rule"]), []).append(row)
    for (problem, rule), group in groups.items():
        lines.append(
            f"| {problem} | {np.mean([r['rows'] for r in group]):,.0f} | {rule} | "
            f"{np.mean([r['fit s'] for r in group]):.2f} | "
            f"{np.mean([r['caps'] for r in group]):.1f} | "
            f"{', '.join(format(r['max_norm_'], '.3g') for r in group)} | "
            f"{np.mean([r['balanced acc %'] for r in group]):.2f} |"
        )
    lines += ["", "## Every fit", "",
              "| problem | seed | rule | fit s | caps | max_norm_ | balanced acc % |",
              "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['problem']} | {row['seed']} | {row['rule']} | "
                     f"{row['fit s']:.2f} | {row['caps']} | {row['max_norm_']:.3g} | "
                     f"{row['balanced acc %']:.2f} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
