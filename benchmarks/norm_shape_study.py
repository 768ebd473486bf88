"""Whose norms, whose directions: the name trick's head against SAMN's, by class count.

Issue 12's target is the simple trick (``LogisticRegression(C=10)`` on the rows
plus one name row per class, then post-hoc logit adjustment with the real
counts). ``TAIL.md`` found that the trick leads on the classes with one sample
and SAMN from nine samples up. This study asks what in the trick's head does
it, on the splits of ``prior_study.py`` (BANKING77-LT and HWU64-LT, IF 100 and
50, where classes with one sample exist; validation rows of the training
pools, never test):

- the mean weight norm of the trick's classes with 1, 2-8 and 9 or more
  samples, relative to the last (SAMN's default with the names keeps every
  norm at its cap: 1, 1, 1);
- heads with the trick's directions at one shared norm (its mean norm times
  ``scale``, or the norm of SAMN's default fit, the cap its cross-validation
  chose), whose biases are refitted to the same rows (the cross-entropy
  of the rows and name rows, the directions fixed, then minus the log prior
  of the real counts, as the trick does). ``trick, biases refitted`` refits
  the trick's own weights' biases: the check that the refit reproduces it.

    python benchmarks/norm_shape_study.py --out benchmarks/NORM_SHAPE.md
"""
import argparse
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baselines  # noqa: E402
import prior_study  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402

from sklearn_samn.metrics import per_class_accuracy  # noqa: E402

SCALES = (0.75, 1.0, 1.5)
GROUPS = (("1", 1, 1), ("2-8", 2, 8), ("9+", 9, np.inf))


def refit_biases(scores, y, n_classes):
    """Biases minimising the mean cross-entropy of ``scores + b`` (float64)."""
    onehot = np.eye(n_classes)[y]

    def loss(b):
        logits = scores + b
        lse = logsumexp(logits, axis=1)
        p = np.exp(logits - lse[:, None])
        return np.mean(lse - logits[np.arange(y.shape[0]), y]), (p - onehot).mean(axis=0)

    return minimize(loss, np.zeros(n_classes), jac=True, method="L-BFGS-B",
                    options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 10_000}).x


def recall_by_group(y_val, pred, counts):
    recall = per_class_accuracy(y_val, pred, labels=np.arange(counts.shape[0]))
    return {name: 100 * recall[(counts >= low) & (counts <= high)].mean()
            for name, low, high in GROUPS}


def heads(X, y, E, counts):
    n_classes = counts.shape[0]
    trick = baselines.fit_lr_la_name(X, y, E, seed=0)
    W = trick.coef_
    norms = np.linalg.norm(W, axis=1)
    rows = np.vstack([X, E])
    labels = np.concatenate([y, np.arange(n_classes)])
    log_prior = np.log(counts / counts.sum())
    samn = prior_study.fitted(X, y, E)
    out = {"trick": (W, trick.intercept_),
           "SAMN default with the names": (samn.coef_, samn.intercept_)}
    samn_norm = np.linalg.norm(samn.coef_, axis=1).mean()  # every class's: the cap
    variants = [("trick, biases refitted", W)] + [
        (f"trick's directions, one norm x{scale:g}, biases refitted",
         W * (scale * norms.mean() / norms)[:, None]) for scale in SCALES] + [
        ("trick's directions at SAMN's norm, biases refitted",
         W * (samn_norm / norms)[:, None])]
    for name, weights in variants:
        out[name] = (weights, refit_biases(rows @ weights.T, labels, n_classes) - log_prior)
    relative = {g: norms[(counts >= lo) & (counts <= hi)].mean() for g, lo, hi in GROUPS}
    return out, {g: v / relative["9+"] for g, v in relative.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    scores, shapes = {}, {}
    for dataset in ("banking77", "hwu64"):
        for ratio in (100, 50):
            for seed in seeds:
                X, y, X_val, y_val, E = prior_study.split(dataset, ratio, seed)
                counts = np.bincount(y)
                fitted, relative = heads(X, y, E, counts)
                shapes.setdefault(dataset, []).append(relative)
                for name, (W, b) in fitted.items():
                    pred = np.argmax(X_val @ W.T + b, axis=1)
                    row = {"balanced": 100 * balanced_accuracy_score(y_val, pred),
                           **recall_by_group(y_val, pred, counts)}
                    scores.setdefault((dataset, name), []).append(row)
                print(dataset, ratio, seed, {k: round(v, 2) for k, v in relative.items()},
                      flush=True)
    lines = [
        "# Whose norms, whose directions: the name trick's head against SAMN's",
        "",
        f"Command: `python benchmarks/norm_shape_study.py {' '.join(sys.argv[1:])}`",
        "",
        f"- generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"wall time {(time.perf_counter() - started) / 60:.1f} min",
        f"- the splits of `prior_study.py`: BANKING77-LT and HWU64-LT, IF 100 and 50, "
        f"seeds {args.seeds}; validation rows of the training pools, never test. "
        "Means over the splits.",
        "- The trick: `LogisticRegression(C=10)` on the rows plus one name row per "
        "class, then minus the log prior of the real counts. Its directions at one "
        "shared norm (its mean norm times the factor, or the norm of SAMN's default "
        "fit with the names: the cap its CV chose), biases refitted to the same "
        "rows and name rows (cross-entropy, directions fixed), then minus the log "
        "prior. `trick, biases refitted` checks that the refit reproduces the trick.",
        "",
        "## The trick's weight norms by training count, relative to its classes with 9 "
        "or more samples",
        "",
        "SAMN's default with the names: 1, 1, 1 (every norm at the cap).",
        "",
        "| dataset | 1 sample | 2-8 samples | 9+ samples |",
        "|---|---|---|---|",
    ]
    for dataset, rows in shapes.items():
        lines.append(f"| {dataset} | " + " | ".join(
            f"{np.mean([r[g] for r in rows]):.2f}" for g, _, _ in GROUPS) + " |")
    lines += ["", "## Balanced accuracy and recall by training count (%)", "",
              "| dataset | head | balanced | recall, 1 sample | recall, 2-8 | recall, 9+ |",
              "|---|---|---|---|---|---|"]
    for (dataset, name), rows in scores.items():
        lines.append(f"| {dataset} | {name} | " + " | ".join(
            f"{np.mean([r[k] for r in rows]):.2f}" for k in ("balanced", "1", "2-8", "9+"))
            + " |")
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
