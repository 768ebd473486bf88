"""Choose the "invariant" variant's initial norm on validation data, never on test.

For each imbalance factor (100, 50, 10) and seed (0-4), builds BANKING77-LT from the
training split with ``make_long_tailed`` and draws a validation set from the *training*
rows that the long-tailed subset did not use (up to 20 per class). Fits
``SAMNClassifier()`` with each candidate initial norm and reports the mean balanced
accuracy on that validation set. The test split is not read.

    python benchmarks/select_initial_norm.py

The candidate is set through the private module constant
``sklearn_samn._samn._INITIAL_NORM``: it is a design choice, not a user knob.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score

import sklearn_samn._samn as samn_module
from sklearn_samn import SAMNClassifier
from sklearn_samn.datasets import make_long_tailed

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "banking77"
CANDIDATES = [3.0, 5.0, 7.0, 10.0, 14.0]
IMBALANCE = [100, 50, 10]
SEEDS = range(5)


def main():
    path = DATA / "minilm_embeddings.npz"
    if not path.exists():
        sys.exit(f"BANKING77 embeddings not found at {path}")
    data = np.load(path, allow_pickle=False)
    X_all, y_all = data["X_train"], data["y_train"]
    scores = {}
    default = samn_module._INITIAL_NORM
    try:
        for ratio in IMBALANCE:
            for seed in SEEDS:
                X, y, used = make_long_tailed(
                    X_all, y_all, imbalance_ratio=ratio, random_state=seed
                )
                rest = np.setdiff1d(np.arange(len(y_all)), used)
                rng = np.random.default_rng(1000 + seed)
                val = np.concatenate([
                    rng.choice(members, min(20, len(members)), replace=False)
                    for members in (rest[y_all[rest] == c] for c in np.unique(y_all))
                    if len(members)
                ])
                for norm in CANDIDATES:
                    samn_module._INITIAL_NORM = norm
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        clf = SAMNClassifier(device="cpu", random_state=seed).fit(X, y)
                    score = balanced_accuracy_score(y_all[val], clf.predict(X_all[val]))
                    scores.setdefault((ratio, norm), []).append(100 * score)
    finally:
        samn_module._INITIAL_NORM = default
    print("| IF | " + " | ".join(f"r0 = {n:g}" for n in CANDIDATES) + " |")
    print("|---" * (len(CANDIDATES) + 1) + "|")
    for ratio in IMBALANCE:
        cells = [f"{np.mean(scores[(ratio, n)]):.2f}" for n in CANDIDATES]
        print(f"| {ratio} | " + " | ".join(cells) + " |")
    means = [np.mean([np.mean(scores[(r, n)]) for r in IMBALANCE]) for n in CANDIDATES]
    print("| mean | " + " | ".join(f"{m:.2f}" for m in means) + " |")
    print(f"\nbest mean validation balanced accuracy: r0 = {CANDIDATES[int(np.argmax(means))]:g}")


if __name__ == "__main__":
    main()
