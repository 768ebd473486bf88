"""The demo behind ``python -m sklearn_samn demo``: bundled data, no download."""

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from ._samn import SAMNClassifier
from .datasets import make_long_tailed
from .metrics import shot_accuracy

IMBALANCE_RATIO = 50


def run_demo(picture="samn_demo.png", out=None):
    """Long-tailed digits: SAMNClassifier against LogisticRegression.

    Splits scikit-learn's bundled digits in half (stratified), makes the
    training half long-tailed (imbalance ratio 50), fits both heads with their
    defaults but for a seed (SAMN) and ``max_iter=5000`` (LogisticRegression,
    whose lbfgs does not converge on raw pixels in its default 100
    iterations), prints balanced and many/medium/few accuracy on the balanced
    test half, and draws the norm profile and per-class accuracies. Models
    are named by their ``repr``, i.e. by exactly what was fitted.

    Parameters
    ----------
    picture : str, default="samn_demo.png"
        PNG to write; ``""`` or ``None`` for none. Skipped, with a note,
        when matplotlib is not installed.
    out : file-like, default=None
        Where to print (``sys.stdout`` when ``None``).

    Returns
    -------
    results : dict
        ``{repr of the fitted model: shot_accuracy dict plus "fit_seconds"}``.
    """
    import sys

    out = out or sys.stdout
    # Import torch before the timers start: fit times compare training only.
    from . import _training  # noqa: F401
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    X_lt, y_lt, _ = make_long_tailed(
        X_train, y_train, imbalance_ratio=IMBALANCE_RATIO, random_state=0
    )
    counts = np.bincount(y_lt)
    print(
        f"digits, long-tailed training half: {len(y_lt)} samples, counts "
        f"{counts.min()}..{counts.max()} (imbalance_ratio={IMBALANCE_RATIO}); balanced test "
        f"half: {len(y_test)} samples. Groups: thirds of the classes by count.",
        file=out,
    )
    samn, logreg = SAMNClassifier(random_state=0), LogisticRegression(max_iter=5000)
    models = {repr(model): model for model in (samn, logreg)}
    print(
        "LogisticRegression gets max_iter=5000: at its default of 100 it stops "
        "short of convergence on raw pixels.",
        file=out,
    )
    width = max(len(name) for name in models) + 2
    results = {}
    print(f"{'model':<{width}}{'balanced':>9}{'many':>7}{'medium':>8}{'few':>7}"
          f"{'fit s':>7}", file=out)
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(X_lt, y_lt)
        seconds = time.perf_counter() - start
        scores = shot_accuracy(
            y_test, model.predict(X_test), class_counts=counts,
            labels=np.arange(10), thresholds="thirds",
        )
        results[name] = {**scores, "fit_seconds": seconds}
        print(f"{name:<{width}}{scores['balanced']:>9.3f}{scores['many']:>7.3f}"
              f"{scores['medium']:>8.3f}{scores['few']:>7.3f}{seconds:>7.2f}", file=out)
    if picture:
        _draw(samn, logreg, X_test, y_test, counts, picture, out)
    return results


def _draw(samn, logreg, X_test, y_test, counts, picture, out):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no picture (pip install "
              "'sklearn-samn[plot]').", file=out)
        return
    from .plotting import NormProfileDisplay, ShotAccuracyDisplay

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    NormProfileDisplay.from_estimator(
        samn, reference=logreg, reference_label="LogisticRegression", ax=axes[0]
    )
    for ax, (model, label) in zip(
        axes[1:], ((samn, repr(samn)), (logreg, repr(logreg)))
    ):
        ShotAccuracyDisplay.from_predictions(
            y_test, model.predict(X_test), class_counts=counts,
            labels=np.arange(10), thresholds="thirds", ax=ax,
        )
        ax.set_title(f"{label}\nper-class test accuracy")
    fig.tight_layout()
    fig.savefig(picture, dpi=110)
    plt.close(fig)
    print(f"picture written to {picture}", file=out)
