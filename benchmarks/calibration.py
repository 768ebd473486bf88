"""CalibratedClassifierCV around SAMNClassifier on long-tailed digits: what it does to balance.

    python benchmarks/calibration.py [--seeds 5]

Digits split in half (stratified); the training half made long-tailed
(imbalance ratio 20, so that each of 3 folds holds every class); the balanced half
split again into a calibration part (30%, used only where a row says so) and
the evaluation part that every row is scored on. Prints balanced accuracy
(mean and std over seeds) and the mean log-loss on the evaluation part, as a
Markdown table. About a minute on one core.
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import balanced_accuracy_score, log_loss
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package beside this script

from sklearn_samn import SAMNClassifier  # noqa: E402
from sklearn_samn.datasets import make_long_tailed  # noqa: E402


def split(seed):
    X, y = load_digits(return_X_y=True)
    X_train, X_rest, y_train, y_rest = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=seed
    )
    X_lt, y_lt, _ = make_long_tailed(X_train, y_train, imbalance_ratio=20, random_state=seed)
    X_cal, X_eval, y_cal, y_eval = train_test_split(
        X_rest, y_rest, test_size=0.7, stratify=y_rest, random_state=seed
    )
    return X_lt, y_lt, X_cal, y_cal, X_eval, y_eval


def methods(seed):
    """name -> fit(X_lt, y_lt, X_cal, y_cal) returning a fitted classifier."""

    def head():
        return SAMNClassifier(device="cpu", random_state=seed)

    def calibrated_cv(method):
        return lambda X, y, Xc, yc: CalibratedClassifierCV(head(), method=method, cv=3).fit(X, y)

    def on_balanced_set(method):
        def fit(X, y, Xc, yc):
            frozen = FrozenEstimator(head().fit(X, y))
            return CalibratedClassifierCV(frozen, method=method).fit(Xc, yc)
        return fit

    return {
        "`SAMNClassifier()` alone": lambda X, y, Xc, yc: head().fit(X, y),
        "`CalibratedClassifierCV(SAMNClassifier(), cv=3)` (sigmoid)": calibrated_cv("sigmoid"),
        "`CalibratedClassifierCV(SAMNClassifier(), method=\"isotonic\", cv=3)`": calibrated_cv("isotonic"),
        "`CalibratedClassifierCV(SAMNClassifier(), method=\"temperature\", cv=3)`":
            calibrated_cv("temperature"),
        "sigmoid on a class-balanced calibration set (`FrozenEstimator`)": on_balanced_set("sigmoid"),
        "temperature on a class-balanced calibration set (`FrozenEstimator`)":
            on_balanced_set("temperature"),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # rare classes below n_splits members
    scores = {}
    for seed in range(args.seeds):
        X, y, X_cal, y_cal, X_eval, y_eval = split(seed)
        for name, fit in methods(seed).items():
            clf = fit(X, y, X_cal, y_cal)
            scores.setdefault(name, []).append((
                balanced_accuracy_score(y_eval, clf.predict(X_eval)),
                log_loss(y_eval, clf.predict_proba(X_eval), labels=np.arange(10)),
            ))
    print(f"long-tailed digits (imbalance ratio 20), {args.seeds} seeds; "
          "scored on a balanced evaluation set")
    print()
    print("| model | balanced accuracy | log-loss |")
    print("|---|---|---|")
    for name, values in scores.items():
        values = np.array(values)
        print(f"| {name} | {values[:, 0].mean():.3f} ± {values[:, 0].std():.3f} "
              f"| {values[:, 1].mean():.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
