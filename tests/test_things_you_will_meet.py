"""The README's "Things you will meet": its examples run and its claims hold."""

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_sample_weight

from sklearn_samn import SAMNClassifier
from sklearn_samn.datasets import make_long_tailed

from .conftest import make_long_tailed_blobs

README = Path(__file__).resolve().parents[1] / "README.md"


def section_code():
    text = README.read_text()
    section = text.split("## Things you will meet", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_section_examples_run_and_print_what_they_say(capsys):
    blocks = section_code()
    assert len(blocks) == 3
    namespace = {}
    for index, block in enumerate(blocks):
        exec(compile(block, f"README things you will meet, block {index + 1}", "exec"),
             namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["[58.7]", "(2, 64) (3,)", "True"]
    np.testing.assert_allclose(namespace["proba"].sum(axis=1), 1.0)


@pytest.fixture(scope="module")
def digits_split():
    """The setting of benchmarks/calibration.py, seed 0."""
    X, y = load_digits(return_X_y=True)
    X_train, X_rest, y_train, y_rest = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    X_lt, y_lt, _ = make_long_tailed(X_train, y_train, imbalance_ratio=20, random_state=0)
    X_cal, X_eval, y_cal, y_eval = train_test_split(
        X_rest, y_rest, test_size=0.7, stratify=y_rest, random_state=0
    )
    return X_lt, y_lt, X_cal, y_cal, X_eval, y_eval


def test_calibrating_on_the_long_tailed_training_set_undoes_the_balancing(digits_split):
    X, y, X_cal, y_cal, X_eval, y_eval = digits_split

    def balanced(clf):
        return balanced_accuracy_score(y_eval, clf.predict(X_eval))

    head = SAMNClassifier(device="cpu", random_state=0)
    alone = balanced(head.fit(X, y))
    for method in ("sigmoid", "isotonic"):
        calibrated = CalibratedClassifierCV(SAMNClassifier(device="cpu", random_state=0),
                                            method=method, cv=3).fit(X, y)
        assert balanced(calibrated) < alone - 0.04, method
    # What the README recommends instead keeps the balance.
    temperature = CalibratedClassifierCV(SAMNClassifier(device="cpu", random_state=0),
                                         method="temperature", cv=3).fit(X, y)
    assert balanced(temperature) >= alone - 0.02
    on_balanced = CalibratedClassifierCV(FrozenEstimator(head), method="sigmoid")
    assert balanced(on_balanced.fit(X_cal, y_cal)) >= alone - 0.02


def test_predict_proba_times_a_prior_is_the_posterior_under_that_prior(long_tailed):
    X, y = long_tailed
    clf = SAMNClassifier(device="cpu", random_state=0, max_iter=30).fit(X, y)
    prior = np.array([0.5, 0.2, 0.1, 0.1, 0.1])
    proba = clf.predict_proba(X) * prior
    proba /= proba.sum(axis=1, keepdims=True)
    # The same as adding log(prior) to the class scores.
    scores = clf.decision_function(X) + np.log(prior)
    expected = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(proba, expected / expected.sum(axis=1, keepdims=True))


def assert_norms_monotone_in(clf, counts):
    norms = np.linalg.norm(clf.coef_, axis=1)
    for i in range(len(counts)):
        for j in range(len(counts)):
            if counts[i] > counts[j]:
                assert norms[i] <= norms[j] * (1 + 1e-12), (i, j, norms, counts)


def test_balanced_sample_weights_make_every_count_equal_and_class_counts_restore_them(
    digits_split,
):
    X, y = digits_split[:2]
    natural = np.bincount(y)
    weights = compute_sample_weight("balanced", y)
    flat = SAMNClassifier(device="cpu", random_state=0).fit(X, y, sample_weight=weights)
    assert np.unique(flat.class_count_).size == 1
    norms = np.linalg.norm(flat.coef_, axis=1)
    # Unconstrained: some rarer class ends with a smaller norm than a more frequent one.
    assert any(natural[i] > natural[j] and norms[i] > norms[j]
               for i in range(10) for j in range(10))
    kept = SAMNClassifier(device="cpu", random_state=0, class_counts=natural)
    kept.fit(X, y, sample_weight=weights)
    np.testing.assert_array_equal(kept.class_count_, natural)
    assert_norms_monotone_in(kept, natural)


def test_two_classes_coef_has_two_rows_and_decision_function_one_column():
    X, y = make_long_tailed_blobs(counts=(60, 12))
    clf = SAMNClassifier(device="cpu", random_state=0, max_iter=30).fit(X, y)
    assert clf.coef_.shape == (2, X.shape[1]) and clf.intercept_.shape == (2,)
    scores = clf.decision_function(X)
    assert scores.shape == (X.shape[0],)
    w, b = clf.coef_[1] - clf.coef_[0], clf.intercept_[1] - clf.intercept_[0]
    np.testing.assert_allclose(scores, X @ w + b)
    # Both rows are class vectors whose norms obey the constraint: rarer, not smaller.
    norms = np.linalg.norm(clf.coef_, axis=1)
    assert norms[1] >= norms[0] * (1 - 1e-12)
    # The one-row form goes back in as coef_init.
    again = SAMNClassifier(device="cpu", solver="adam", max_iter=1,
                           learning_rate_init=1e-12, loss="cross_entropy").fit(
        X, y, coef_init=w[None], intercept_init=[b])
    np.testing.assert_allclose(again.decision_function(X), scores, rtol=1e-4, atol=1e-4)
