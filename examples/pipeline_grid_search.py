"""Tune the pipeline around the head, leave the head at its defaults.

A StandardScaler and a PCA in front of ``SAMNClassifier``; ``GridSearchCV`` picks
the number of PCA components by balanced accuracy (and reports few-shot accuracy
with a shot scorer that reads each training fold's class counts). The head keeps
its defaults: SAMN has no regularisation strength to tune.

    python examples/pipeline_grid_search.py
"""

import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_samn import SAMNClassifier
from sklearn_samn.datasets import make_long_tailed
from sklearn_samn.metrics import make_shot_scorer, shot_accuracy


def main():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    X_lt, y_lt, _ = make_long_tailed(X_train, y_train, imbalance_ratio=10, random_state=0)
    pipe = make_pipeline(StandardScaler(), PCA(random_state=0), SAMNClassifier(random_state=0))
    search = GridSearchCV(
        pipe,
        {"pca__n_components": [16, 32, 64]},
        # Rare classes have too few samples for stratified folds.
        cv=KFold(3, shuffle=True, random_state=0),
        scoring={
            "balanced": "balanced_accuracy",
            "few": make_shot_scorer("few", thresholds="thirds"),
        },
        refit="balanced",
    )
    with warnings.catch_warnings():
        # Folds that miss a rare class warn about it; that is expected here.
        warnings.simplefilter("ignore", UserWarning)
        search.fit(X_lt, y_lt)
    print("n_components  CV balanced  CV few-shot")
    for n, bal, few in zip(
        search.cv_results_["param_pca__n_components"],
        search.cv_results_["mean_test_balanced"],
        search.cv_results_["mean_test_few"],
    ):
        print(f"{n:>12}  {bal:>11.3f}  {few:>11.3f}")
    best = search.best_estimator_
    scores = shot_accuracy(
        y_test, best.predict(X_test), class_counts=best[-1].class_count_,
        labels=best.classes_, thresholds="thirds",
    )
    print(f"best: {search.best_params_}; test balanced accuracy {scores['balanced']:.3f}, "
          f"few-shot {scores['few']:.3f}")
    print("head parameters left at their defaults:",
          best[-1].get_params() == SAMNClassifier(random_state=0).get_params())
    assert np.isfinite(scores["balanced"])


if __name__ == "__main__":
    main()
