"""Warm-start SAMN from an existing head (e.g. the backbone's own classifier).

The "existing head" here is a LogisticRegression trained on the long-tailed
features, standing in for the classifier a backbone was trained with. Its
weights seed ``SAMNClassifier.fit(X, y, coef_init=..., intercept_init=...)``;
the constrained head then starts from those directions and biases. With the
default ``max_norm="auto"`` the norms come from the cap the cross-validation
chooses, not from the given head (a fixed ``max_norm`` or ``None`` keeps them,
clipped at the cap).

    python examples/warm_start.py
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_samn import SAMNClassifier
from sklearn_samn.datasets import make_long_tailed


def main():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    X_lt, y_lt, _ = make_long_tailed(X_train, y_train, imbalance_ratio=20, random_state=1)
    scaler = StandardScaler().fit(X_lt)
    X_lt, X_test = scaler.transform(X_lt), scaler.transform(X_test)

    existing = LogisticRegression(max_iter=5000).fit(X_lt, y_lt)
    warm = SAMNClassifier(random_state=0).fit(
        X_lt, y_lt, coef_init=existing.coef_, intercept_init=existing.intercept_
    )
    cold = SAMNClassifier(random_state=0).fit(X_lt, y_lt)

    print(f"{'head':<34}{'balanced acc':>13}")
    for name, model in [
        ("existing head (LogisticRegression)", existing),
        ("SAMN warm-started from it", warm),
        ("SAMN from class means", cold),
    ]:
        score = balanced_accuracy_score(y_test, model.predict(X_test))
        print(f"{name:<34}{score:>13.3f}")
    order = np.argsort(warm.class_count_)
    print("counts (rarest first):", warm.class_count_[order].astype(int).tolist())
    print("existing head norms:  ", np.linalg.norm(existing.coef_, axis=1)[order].round(2).tolist())
    print("warm SAMN norms:      ", np.linalg.norm(warm.coef_, axis=1)[order].round(2).tolist())


if __name__ == "__main__":
    main()
