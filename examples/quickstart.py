"""Quick start: a long-tailed head on scikit-learn's bundled digits.

Makes the digits training split long-tailed (``imbalance_ratio=20``: the most
frequent class keeps about 20 times as many samples as the rarest, counts
rounded down), fits
``SAMNClassifier`` with its defaults (and a seed) and a ``LogisticRegression``
baseline with its defaults, each after a ``StandardScaler``,
and reports balanced accuracy on the untouched, roughly balanced test split.

Run it with ``python examples/quickstart.py``; no download is needed.
"""

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_samn import SAMNClassifier
from sklearn_samn.datasets import make_long_tailed


def main():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    X_lt, y_lt, _ = make_long_tailed(X_train, y_train, imbalance_ratio=20, random_state=0)
    counts = np.bincount(y_lt)
    print(f"long-tailed training set: {len(y_lt)} samples, class counts {counts.tolist()}")

    # Each head after a StandardScaler, named by exactly what is fitted.
    head = SAMNClassifier(random_state=0)
    models = {
        repr(model): make_pipeline(StandardScaler(), model)
        for model in (head, LogisticRegression())
    }
    print(f"{'model (after StandardScaler)':<32}{'balanced acc':>14}{'fit s':>8}")
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(X_lt, y_lt)
        seconds = time.perf_counter() - start
        score = balanced_accuracy_score(y_test, model.predict(X_test))
        print(f"{name:<32}{score:>14.3f}{seconds:>8.2f}")

    norms = np.linalg.norm(head.coef_, axis=1)
    order = np.argsort(head.class_count_)
    print("class (rarest first):  ", " ".join(f"{c:5d}" for c in head.classes_[order]))
    print("count:                 ", " ".join(f"{c:5.0f}" for c in head.class_count_[order]))
    print("weight norm:           ", " ".join(f"{n:5.2f}" for n in norms[order]))


if __name__ == "__main__":
    main()
