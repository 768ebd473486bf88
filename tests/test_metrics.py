"""Per-class and shot accuracy, and the scorers."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_samn import SAMNClassifier
from sklearn_samn.metrics import (
    make_shot_scorer,
    per_class_accuracy,
    shot_accuracy,
    shot_groups,
)

from .conftest import make_long_tailed_blobs


def test_per_class_accuracy_and_missing_classes():
    acc = per_class_accuracy(["a", "a", "b", "c"], ["a", "b", "b", "a"], labels=["a", "b", "c", "d"])
    np.testing.assert_array_equal(acc[:3], [0.5, 1.0, 0.0])
    assert np.isnan(acc[3])


def test_regression_predictions_outside_labels_are_misses():
    """A prediction of a label outside ``labels`` is a miss of its row's class
    (the confusion matrix restricted to ``labels`` used to drop the row)."""
    from sklearn.metrics import recall_score

    y_true, y_pred = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    np.testing.assert_allclose(per_class_accuracy(y_true, y_pred, labels=[0, 2]), [0.5, 0.5])
    np.testing.assert_allclose(per_class_accuracy(y_true, y_pred, labels=[0, 2]),
                               recall_score(y_true, y_pred, labels=[0, 2], average=None))
    scores = shot_accuracy(["a", "b", "b"], ["a", "z", "b"], class_counts=[500, 5],
                           labels=["a", "b"])
    assert scores["balanced"] == 0.75 and scores["few"] == 0.5


def test_regression_true_labels_outside_labels_are_an_error_not_dropped():
    with pytest.raises(ValueError, match=r"labels \[9\] that are not in labels"):
        shot_accuracy([0, 0, 1, 1, 9, 9], [0, 0, 1, 1, 0, 0], class_counts=[500, 5],
                      labels=[0, 1])


def test_groups_by_thresholds_including_boundaries():
    groups = shot_groups([101, 100, 20, 19, 0], thresholds=(100, 20))
    assert groups.tolist() == ["many", "medium", "medium", "few", "few"]
    assert shot_groups([50, 5], thresholds=(10, 10)).tolist() == ["many", "few"]


def test_groups_of_a_dict_are_a_dict_by_label():
    counts = {"b": 5, "a": 500, "c": 50}
    assert shot_groups(counts) == {"b": "few", "a": "many", "c": "medium"}
    assert shot_groups(counts, thresholds="thirds") == {"b": "few", "a": "many",
                                                        "c": "medium"}


def test_thirds_keep_ties_together():
    groups = shot_groups([5, 5, 5, 1, 9, 9], thresholds="thirds")
    assert groups.tolist() == ["medium", "medium", "medium", "few", "many", "many"]
    assert shot_groups(np.arange(9), thresholds="thirds").tolist() == (
        ["few"] * 3 + ["medium"] * 3 + ["many"] * 3
    )


@pytest.mark.parametrize(
    "thresholds, message",
    [((20, 100), "few <= many"), ((1, 2, 3), "pair"), ("halves", "'thresholds' parameter")],
)
def test_bad_thresholds(thresholds, message):
    with pytest.raises(ValueError, match=message):
        shot_groups([1, 2, 3], thresholds=thresholds)


def test_shot_accuracy_is_mean_of_per_class_accuracy():
    rng = np.random.default_rng(0)
    y_true = np.repeat(np.arange(6), 10)
    y_pred = np.where(rng.random(60) < 0.7, y_true, rng.integers(0, 6, 60))
    counts = np.array([500, 300, 60, 40, 10, 2])
    scores = shot_accuracy(y_true, y_pred, class_counts=counts, labels=np.arange(6))
    acc = per_class_accuracy(y_true, y_pred, labels=np.arange(6))
    assert scores["balanced"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert scores["many"] == pytest.approx(acc[:2].mean())
    assert scores["medium"] == pytest.approx(acc[2:4].mean())
    assert scores["few"] == pytest.approx(acc[4:].mean())
    as_dict = shot_accuracy(y_true, y_pred, class_counts=dict(enumerate(counts)))
    assert as_dict == scores


def test_empty_group_is_nan():
    scores = shot_accuracy([0, 1], [0, 1], class_counts={0: 5, 1: 6})
    assert np.isnan(scores["many"]) and scores["few"] == 1.0


def test_bad_class_counts():
    with pytest.raises(ValueError, match="no count for labels"):
        shot_accuracy([0, 1], [0, 1], class_counts={0: 5})
    with pytest.raises(ValueError, match="one count per class"):
        shot_accuracy([0, 1], [0, 1], class_counts=[5], labels=[0, 1])
    with pytest.raises(ValueError, match="non-negative"):
        shot_accuracy([0, 1], [0, 1], class_counts=[5, -1], labels=[0, 1])


def test_scorer_reads_the_fold_counts_and_works_in_grid_search():
    X, y = make_long_tailed_blobs(counts=(150, 60, 30, 12, 6), n_features=6)
    pipe = make_pipeline(StandardScaler(), SAMNClassifier(device="cpu", random_state=0, max_iter=20))
    scorer = make_shot_scorer("few", thresholds=(100, 20))
    search = GridSearchCV(
        pipe,
        {"standardscaler__with_mean": [True, False]},
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
        scoring={"few": scorer, "balanced": make_shot_scorer("balanced")},
        refit="balanced",
    )
    search.fit(X, y)
    few = search.cv_results_["mean_test_few"]
    assert np.all((few >= 0) & (few <= 1))
    fitted = search.best_estimator_
    expected = shot_accuracy(
        y, fitted.predict(X), class_counts=fitted[-1].class_count_, labels=fitted.classes_
    )["few"]
    assert scorer(fitted, X, y) == pytest.approx(expected)
    fixed = make_shot_scorer("many", class_counts={0: 150, 1: 60, 2: 30, 3: 12, 4: 6})
    assert 0 <= fixed(fitted, X, y) <= 1


@pytest.mark.parametrize("class_counts", [None, "array"])
def test_regression_scorer_counts_a_test_class_the_fold_did_not_train_on(class_counts):
    """A class of the test part missing from the training part counts as a miss
    for each of its rows, with training count 0 (few-shot), so the balanced
    figure is scikit-learn's balanced accuracy."""
    X, y = make_long_tailed_blobs(counts=(60, 30, 15))
    seen = y < 2
    model = SAMNClassifier(device="cpu", random_state=0, max_norm=8.0).fit(X[seen], y[seen])
    counts = model.class_count_ if class_counts == "array" else None
    balanced = make_shot_scorer("balanced", class_counts=counts)(model, X, y)
    assert balanced == pytest.approx(balanced_accuracy_score(y, model.predict(X)))
    assert make_shot_scorer("few", class_counts=counts, thresholds=(50, 20))(model, X, y) == 0.0


def test_regression_scorer_reads_a_series_of_counts_by_its_labels():
    """``y.value_counts()`` lists the labels by count; the scorer read it in the
    order of ``classes_``, so classes fell in the wrong groups (many 0.5 and
    few 1.0 here, against 1.0 and 0.5 with the same counts as a dict)."""
    pd = pytest.importorskip("pandas")
    from sklearn.neighbors import KNeighborsClassifier

    y_train = np.repeat([0, 1, 2], [5, 500, 50])
    counts = pd.Series(y_train).value_counts()
    assert list(counts.index) == [1, 2, 0]
    clf = KNeighborsClassifier(1).fit(y_train[:, None].astype(float), y_train)
    X = np.array([[1.0], [0.0], [1.0], [1.0], [2.0], [2.0]])  # one miss, class 0
    y = np.array([0, 0, 1, 1, 2, 2])
    expected = shot_accuracy(y, clf.predict(X), class_counts=counts.to_dict())
    assert expected["few"] == 0.5 and expected["many"] == 1.0
    for group in ("balanced", "many", "medium", "few"):
        assert make_shot_scorer(group, class_counts=counts)(clf, X, y) == expected[group]
        assert shot_accuracy(y, clf.predict(X), class_counts=counts)[group] == expected[group]


def test_a_prediction_outside_the_counted_classes_is_a_miss_and_needs_no_count():
    # It raised "class_counts has no count for labels [7]", though no class
    # of y_true is 7: a prediction outside the classes is only a miss.
    scores = shot_accuracy([0, 0, 1], [0, 7, 1], class_counts={0: 500, 1: 5})
    assert (scores["balanced"], scores["many"], scores["few"]) == (0.75, 0.5, 1.0)
    assert np.isnan(scores["medium"])


def test_nan_thresholds_are_refused():
    with pytest.raises(ValueError, match="thresholds must be a pair"):
        shot_groups([500, 50, 5], thresholds=(np.nan, 20))


def test_scorer_without_counts_needs_class_count():
    from sklearn.dummy import DummyClassifier

    clf = DummyClassifier().fit([[0], [1]], [0, 1])
    with pytest.raises(ValueError, match="class_count_"):
        make_shot_scorer()(clf, [[0], [1]], [0, 1])
