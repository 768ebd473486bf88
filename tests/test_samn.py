"""SAMNClassifier: what users do with it and the contract they rely on."""

import pickle
import re
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_samn import SAMNClassifier

from .conftest import make_long_tailed_blobs, run_without_torch


def assert_norms_monotone(clf):
    """Whenever count_i > count_j, ||coef_i|| <= ||coef_j|| (to rounding)."""
    norms = np.linalg.norm(clf.coef_, axis=1)
    counts = clf.class_count_
    for i in range(len(counts)):
        for j in range(len(counts)):
            if counts[i] > counts[j]:
                assert norms[i] <= norms[j] * (1 + 1e-12), (i, j, norms, counts)


# 1. fit / predict on the inputs users have ---------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_and_every_prediction_method(long_tailed, fast_clf, dtype):
    X, y = long_tailed
    X = X.astype(dtype)
    clf = fast_clf().fit(X, y)
    n_classes = len(np.unique(y))
    assert clf.predict(X).shape == (len(y),)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(y), n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba), atol=1e-10)
    scores = clf.decision_function(X)
    assert scores.shape == (len(y), n_classes)
    np.testing.assert_array_equal(clf.classes_[scores.argmax(axis=1)], clf.predict(X))
    assert clf.score(X, y) > 0.9


def test_string_labels_and_dataframes(long_tailed, fast_clf):
    X, y = long_tailed
    names = np.array(["card", "loan", "fraud", "atm", "fx"])[y]
    frame = pd.DataFrame(X, columns=[f"e{i}" for i in range(X.shape[1])])
    clf = fast_clf().fit(frame, pd.Series(names))
    np.testing.assert_array_equal(clf.classes_, np.sort(np.unique(names)))
    np.testing.assert_array_equal(clf.feature_names_in_, frame.columns)
    assert set(clf.predict(frame)) <= set(names)
    assert clf.score(frame, names) > 0.9
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)


def test_decision_function_is_the_linear_map(long_tailed, fast_clf):
    X, y = long_tailed
    clf = fast_clf().fit(X, y)
    np.testing.assert_allclose(
        clf.decision_function(X), X @ clf.coef_.T + clf.intercept_, rtol=1e-12
    )


def test_binary_decision_function_has_one_column(fast_clf):
    X, y = make_long_tailed_blobs(counts=(40, 10))
    clf = fast_clf().fit(X, y)
    scores = clf.decision_function(X)
    full = X @ clf.coef_.T + clf.intercept_
    assert scores.shape == (len(y),)
    np.testing.assert_allclose(scores, full[:, 1] - full[:, 0], rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(scores > 0).astype(int)])
    assert clf.coef_.shape == (2, X.shape[1])


def test_prediction_is_chunked_consistently(long_tailed, fast_clf, monkeypatch):
    X, y = long_tailed
    clf = fast_clf().fit(X, y)
    whole = clf.predict_proba(X)
    monkeypatch.setattr("sklearn_samn._samn._CHUNK_BYTES", 8)  # 64-row chunks
    np.testing.assert_allclose(clf.predict_proba(X), whole, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), whole.argmax(axis=1))


# 2. composition with scikit-learn -----------------------------------------


def test_pipeline_cross_validation_and_grid_search(fast_clf):
    X, y = make_long_tailed_blobs(counts=(40, 30, 20, 15, 10), n_features=12)
    pipe = make_pipeline(StandardScaler(), PCA(random_state=0), fast_clf())
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(pipe, X, y, cv=cv, scoring="balanced_accuracy")
    assert scores.shape == (3,) and scores.mean() > 0.8
    # One principal component cannot separate five blobs in 12-d; six can.
    search = GridSearchCV(pipe, {"pca__n_components": [1, 6]}, cv=cv)
    search.fit(X, y)
    assert search.best_params_["pca__n_components"] == 6
    one, six = search.cv_results_["mean_test_score"]
    assert one < six - 0.1 and 0.9 < six == search.best_score_
    assert search.best_estimator_[-1].get_params() == fast_clf().get_params()
    assert search.score(X, y) > 0.8


def test_clone_pickle_and_joblib_round_trips(long_tailed, fast_clf, tmp_path):
    X, y = long_tailed
    clf = fast_clf(class_counts=[100, 50, 20, 5, 1])
    cloned = clone(clf)
    assert cloned.get_params() == clf.get_params()
    assert not hasattr(cloned, "coef_")
    clf.fit(X, y)
    expected = clf.predict_proba(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), expected)
    joblib.dump(clf, tmp_path / "clf.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "clf.joblib").predict_proba(X), expected
    )


def test_fitted_model_predicts_without_torch(long_tailed, fast_clf, tmp_path):
    X, y = long_tailed
    clf = fast_clf().fit(X, y)
    path = tmp_path / "clf.pkl"
    path.write_bytes(pickle.dumps(clf))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "expected.npy", clf.predict_proba(X))
    result = run_without_torch(
        f"""
        import pickle
        import numpy as np
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit("torch should not be importable here")
        clf = pickle.loads(open({str(path)!r}, "rb").read())
        X = np.load({str(tmp_path / "X.npy")!r})
        np.testing.assert_array_equal(
            clf.predict_proba(X), np.load({str(tmp_path / "expected.npy")!r})
        )
        clf.predict(X); clf.decision_function(X); clf.score(X, clf.predict(X))
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_fitted_attributes_are_numpy(long_tailed, fast_clf):
    X, y = long_tailed
    clf = fast_clf().fit(X, y)
    n_classes, n_features = 5, X.shape[1]
    assert clf.coef_.shape == (n_classes, n_features)
    assert clf.intercept_.shape == (n_classes,)
    assert clf.class_count_.shape == (n_classes,)
    for name in ("classes_", "coef_", "intercept_", "class_count_"):
        assert type(getattr(clf, name)) is np.ndarray, name
    assert clf.n_features_in_ == n_features
    assert isinstance(clf.n_iter_, int) and 1 <= clf.n_iter_ <= 30
    assert len(clf.loss_curve_) == clf.n_iter_
    assert all(isinstance(v, float) for v in clf.loss_curve_)
    assert clf.device_ == "cpu"
    for value in vars(clf).values():
        assert not isinstance(value, torch.Tensor)
        if isinstance(value, dict):
            assert all(isinstance(v, np.ndarray) for v in value.values())
    np.testing.assert_array_equal(clf.class_count_, [60, 30, 15, 8, 4])


def test_params_are_stored_verbatim():
    counts = {0: 3, 1: 1}
    clf = SAMNClassifier(class_counts=counts, device="cuda:3", max_iter=7)
    assert clf.class_counts is counts
    assert clf.device == "cuda:3" and clf.max_iter == 7


# 3. warm start -------------------------------------------------------------


def test_coef_init_is_where_training_starts(long_tailed, fast_clf):
    X, y = long_tailed
    reference = fast_clf(max_iter=50).fit(X, y)
    # A near-zero learning rate leaves the head where it started.
    clf = fast_clf(solver="adam", max_iter=1, learning_rate_init=1e-12,
                   loss="cross_entropy")
    clf.fit(X, y, coef_init=reference.coef_, intercept_init=reference.intercept_)
    np.testing.assert_allclose(clf.coef_, reference.coef_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(clf.intercept_, reference.intercept_, rtol=1e-5, atol=1e-5)
    # ... and a warm-started fit is already good after one pass.
    one_pass = fast_clf(solver="adam", max_iter=1).fit(
        X, y, coef_init=reference.coef_, intercept_init=reference.intercept_
    )
    assert one_pass.score(X, y) >= reference.score(X, y) - 0.02


def test_coef_init_norms_are_used_only_where_no_cross_validation_sets_them(long_tailed):
    # Documented (coef_init, docs/method.md): with max_norm="auto" each fold
    # starts every norm at the smallest cap and the final fit at the chosen
    # one, so only the directions and biases of coef_init count; with a fixed
    # cap or None its norms are the start too.
    X, y = long_tailed
    # Centred, so that scaling coef_init leaves the head's biases (intercept +
    # coef . mean of X) as they are: only its norms change.
    X = X - X.mean(axis=0)
    W = SAMNClassifier(device="cpu", random_state=0, max_norm=4.0).fit(X, y)

    def fit(max_norm, scale):
        return SAMNClassifier(device="cpu", random_state=0, max_norm=max_norm).fit(
            X, y, coef_init=scale * W.coef_, intercept_init=W.intercept_).coef_

    np.testing.assert_array_equal(fit("auto", 2.0**-7), fit("auto", 2.0**7))
    assert not np.allclose(fit(None, 2.0**-7), fit(None, 2.0**7), rtol=1e-3)


def test_warm_start_continues_from_previous_fit(long_tailed, fast_clf):
    X, y = long_tailed
    clf = fast_clf(solver="adam", warm_start=True, max_iter=20).fit(X, y)
    first = clf.coef_.copy()
    clf.set_params(max_iter=1, learning_rate_init=1e-12)
    clf.fit(X, y)
    np.testing.assert_allclose(clf.coef_, first, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="warm_start=True needs the classes"):
        clf.fit(X[y < 4], y[y < 4])


def test_regression_a_refused_fit_leaves_the_previous_model_whole(long_tailed, fast_clf):
    """A warm start refused for its features had already reset n_features_in_
    (and feature_names_in_): the previous model then refused its own X."""
    X, y = long_tailed
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    clf = fast_clf(max_norm=8.0, warm_start=True).fit(frame, y)
    before = clf.predict_proba(frame)
    with pytest.raises(ValueError, match="warm_start=True needs the classes"):
        clf.fit(frame.iloc[:, :3], y)
    assert clf.n_features_in_ == X.shape[1]
    assert list(clf.feature_names_in_) == list(frame.columns)
    np.testing.assert_array_equal(clf.predict_proba(frame), before)
    # A first fit that fails leaves nothing fitted.
    fresh = fast_clf()
    with pytest.raises(ValueError, match="sample_weight"):
        fresh.fit(frame, y, sample_weight=-np.ones(y.shape[0]))
    assert not hasattr(fresh, "n_features_in_") and not hasattr(fresh, "feature_names_in_")


def test_regression_class_count_is_a_copy_of_class_counts(long_tailed, fast_clf):
    """A float64 class_counts array came back as class_count_ itself: changing
    one changed the other."""
    X, y = long_tailed
    counts = np.bincount(y).astype(np.float64)
    clf = fast_clf(max_norm=8.0, class_counts=counts).fit(X, y)
    assert clf.class_count_ is not counts and not np.shares_memory(clf.class_count_, counts)
    np.testing.assert_array_equal(clf.class_count_, counts)


def test_a_scalar_sample_weight_weighs_every_sample_alike(long_tailed, fast_clf):
    X, y = long_tailed
    np.testing.assert_array_equal(fast_clf(max_norm=8.0).fit(X, y, sample_weight=2.5).coef_,
                                  fast_clf(max_norm=8.0).fit(X, y).coef_)
    with pytest.raises(ValueError, match="Negative values in sample_weight"):
        fast_clf(max_norm=8.0).fit(X, y, sample_weight=-1.0)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.float64])
def test_regression_fit_without_y_says_so_for_every_dtype(long_tailed, fast_clf, dtype):
    """float16 and integer X (read block by block, outside validate_data) said
    "y should be a 1d array, got an array of shape ()"."""
    X, _ = long_tailed
    with pytest.raises(ValueError, match="requires y to be passed, but the target y is None"):
        fast_clf().fit(X.astype(dtype), None)


def test_paper_variant_warm_start_keeps_its_scalars(long_tailed, fast_clf):
    X, y = long_tailed
    clf = fast_clf(variant="paper", solver="adam", warm_start=True, max_iter=5).fit(X, y)
    before = {k: v.copy() for k, v in clf._head_state.items()}
    clf.set_params(max_iter=1, learning_rate_init=1e-12)
    clf.fit(X, y)
    for key, value in before.items():
        np.testing.assert_allclose(clf._head_state[key], value, rtol=1e-6, atol=1e-8)


@pytest.fixture(scope="module")
def long_tailed_digits():
    """Digits: a long-tailed training set (counts 3..78) and the rest to test on."""
    from sklearn.datasets import load_digits

    from sklearn_samn.datasets import make_long_tailed

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:900], order[900:]
    X_lt, y_lt, _ = make_long_tailed(X[train], y[train], imbalance_ratio=20, random_state=0)
    return X_lt, y_lt, X[test], y[test]


def test_regression_zero_coef_init_row_is_trained(long_tailed_digits):
    # A zero row used to start at log-norm -18 and a random direction, and
    # stayed there: recall 0 for its class, and the PAVA pool dragged others down.
    from sklearn.metrics import balanced_accuracy_score, recall_score

    X, y, X_test, y_test = long_tailed_digits
    reference = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    coef = reference.coef_.copy()
    rare = int(np.argsort(np.bincount(y))[1])  # the second-rarest class
    coef[rare] = 0
    clf = SAMNClassifier(device="cpu", random_state=0).fit(
        X, y, coef_init=coef, intercept_init=reference.intercept_
    )
    pred = clf.predict(X_test)
    assert recall_score(y_test, pred, labels=[rare], average=None)[0] >= 0.8
    assert balanced_accuracy_score(y_test, pred) >= (
        balanced_accuracy_score(y_test, reference.predict(X_test)) - 0.03
    )


def test_regression_all_zero_coef_init_starts_where_no_coef_init_does(long_tailed_digits):
    from sklearn.metrics import balanced_accuracy_score

    X, y, X_test, y_test = long_tailed_digits
    default = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    clf = SAMNClassifier(device="cpu", random_state=0).fit(
        X, y, coef_init=np.zeros_like(default.coef_)
    )
    np.testing.assert_array_equal(clf.coef_, default.coef_)
    assert balanced_accuracy_score(y_test, clf.predict(X_test)) >= 0.85  # chance: 0.10


@pytest.mark.parametrize("variant", ["invariant", "paper"])
def test_zero_coef_init_row_starts_at_class_mean_with_median_norm(long_tailed, variant):
    from sklearn_samn._samn import (
        _class_means,
        _initial_state,
        _weighted_centre_and_scale,
    )

    X, y = long_tailed
    weight = np.ones(len(y))
    shift, scale = _weighted_centre_and_scale(X, weight)
    coef = np.random.default_rng(0).normal(size=(5, X.shape[1])) * np.arange(1, 6)[:, None]
    coef[2] = 0
    state = _initial_state(variant, (coef, np.zeros(5)), X, y, weight, 5, shift, scale,
                           np.bincount(y).astype(float), np.random.RandomState(0))
    means = _class_means(X, y, weight, 5, shift, scale)
    start = state["directions"][2]
    cosine = start @ means[2] / (np.linalg.norm(start) * np.linalg.norm(means[2]))
    assert cosine == pytest.approx(1.0)
    if variant == "invariant":
        given = np.log(np.delete(np.linalg.norm(coef * scale, axis=1), 2))
        assert state["log_norms"][2] == pytest.approx(np.median(given))
        np.testing.assert_allclose(np.delete(state["log_norms"], 2), given)


def test_binary_coef_init_in_sklearn_form(fast_clf):
    X, y = make_long_tailed_blobs(counts=(40, 10))
    coef = np.ones((1, X.shape[1]))
    clf = fast_clf(solver="adam", max_iter=1, learning_rate_init=1e-12,
                   loss="cross_entropy")
    clf.fit(X, y, coef_init=coef, intercept_init=[0.5])
    np.testing.assert_allclose(clf.coef_[1] - clf.coef_[0], coef[0], rtol=1e-5)
    np.testing.assert_allclose(clf.intercept_[1] - clf.intercept_[0], 0.5, rtol=1e-5)


@pytest.mark.parametrize(
    "coef_init, intercept_init, message",
    [
        (np.ones((4, 8)), None, r"coef_init must have shape \(5, 8\)"),
        (np.ones((5, 7)), None, r"coef_init must have shape \(5, 8\)"),
        (np.full((5, 8), np.nan), None, "coef_init contains NaN"),
        (np.full((5, 8), np.inf), None, "coef_init contains NaN or infinity"),
        (np.ones((5, 8)), np.ones(4), r"intercept_init must have shape \(5,\)"),
        (np.ones((5, 8)), [0, 0, np.nan, 0, 0], "intercept_init contains NaN"),
        (None, np.ones(5), "intercept_init needs coef_init"),
    ],
)
def test_bad_warm_start_head(long_tailed, fast_clf, coef_init, intercept_init, message):
    X, y = long_tailed
    with pytest.raises(ValueError, match=message):
        fast_clf().fit(X, y, coef_init=coef_init, intercept_init=intercept_init)


# 4. class_counts -----------------------------------------------------------


def test_class_counts_define_the_monotone_order(long_tailed, fast_clf):
    X, y = long_tailed
    # The training set is long-tailed one way; the stated frequencies the
    # other way round. The norms must follow the stated frequencies.
    reversed_counts = [4, 8, 15, 30, 60]
    clf = fast_clf(class_counts=reversed_counts).fit(X, y)
    np.testing.assert_array_equal(clf.class_count_, reversed_counts)
    assert_norms_monotone(clf)
    norms = np.linalg.norm(clf.coef_, axis=1)
    assert norms[0] >= norms[-1] * (1 - 1e-12)
    as_dict = fast_clf(class_counts=dict(enumerate(reversed_counts))).fit(X, y)
    np.testing.assert_array_equal(as_dict.coef_, clf.coef_)


def test_class_counts_dict_with_string_labels(long_tailed, fast_clf):
    X, y = long_tailed
    names = np.array(["a", "b", "c", "d", "e"])[y]
    counts = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
    clf = fast_clf(class_counts=counts).fit(X, names)
    np.testing.assert_array_equal(clf.class_count_, [1, 2, 3, 4, 5])
    assert counts == {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}


def test_class_counts_may_count_labels_a_fold_lacks(long_tailed, fast_clf):
    """Counts of the full label set serve every fold of a cross-validation,
    also one whose training part lacks a class: the extra labels are unused."""
    X, y = long_tailed
    counts = dict(enumerate(np.bincount(y)))
    plain = fast_clf(class_counts=counts).fit(X, y)
    extra = fast_clf(class_counts={**counts, 9: 1}).fit(X, y)
    np.testing.assert_array_equal(extra.coef_, plain.coef_)
    np.testing.assert_array_equal(extra.class_count_, plain.class_count_)
    rows = np.arange(len(y))
    lacking = [(rows[y != y.max()], rows)]  # a training part without the rarest class
    scores = cross_val_score(fast_clf(class_counts=counts), X, y, cv=lacking,
                             error_score="raise")
    assert np.all(np.isfinite(scores))


def test_class_counts_as_a_pandas_series_are_read_by_label(long_tailed, fast_clf):
    """``y.value_counts()`` lists the labels by count, not in the order of
    ``classes_``: its entries must be matched by label, never by position."""
    pd = pytest.importorskip("pandas")
    X, y = long_tailed
    names = np.array(["a", "b", "c", "d", "e"])[y]
    stated = {"a": 4, "b": 60, "c": 8, "d": 30, "e": 15}
    series = pd.Series(stated).sort_values(ascending=False)
    clf = fast_clf(class_counts=series).fit(X, names)
    np.testing.assert_array_equal(clf.class_count_, [4, 60, 8, 30, 15])
    as_dict = fast_clf(class_counts=stated).fit(X, names)
    np.testing.assert_array_equal(as_dict.coef_, clf.coef_)
    counted = fast_clf(class_counts=pd.Series(names).value_counts()).fit(X, names)
    np.testing.assert_array_equal(counted.class_count_, np.bincount(y))
    with pytest.raises(ValueError, match=r"index repeats the labels \['a'\]"):
        fast_clf(class_counts=pd.Series([1, 2, 3, 4, 5], index=list("abcda"))).fit(X, names)


@pytest.mark.parametrize(
    "class_counts, message",
    [
        ([1, 2, 3], "one count per class"),
        ([[1, 2, 3, 4, 5]], "one count per class"),
        ([1, 2, -3, 4, 5], "non-negative"),
        ([1, 2, np.nan, 4, 5], "finite"),
        ({0: 1, 1: 2, 2: 3, 3: 4}, r"no count for labels \[4\]"),
    ],
)
def test_bad_class_counts(long_tailed, fast_clf, class_counts, message):
    X, y = long_tailed
    with pytest.raises(ValueError, match=message):
        fast_clf(class_counts=class_counts).fit(X, y)


# 5. sample_weight ----------------------------------------------------------


def test_sample_weight_defines_default_counts_and_matters(long_tailed, fast_clf):
    X, y = long_tailed
    weight = np.where(y == 4, 20.0, 1.0)
    clf = fast_clf().fit(X, y, sample_weight=weight)
    np.testing.assert_array_equal(clf.class_count_, [60, 30, 15, 8, 80])
    assert_norms_monotone(clf)
    unweighted = fast_clf().fit(X, y)
    assert not np.allclose(clf.coef_, unweighted.coef_)


def test_regression_weighted_counts_equal_up_to_rounding_are_ties():
    # Balanced weights sum to counts that differ in their last bits; those bits
    # used to order the classes, so renaming classes changed the model.
    X, y = make_long_tailed_blobs(counts=(37, 23, 11, 7, 3))
    from sklearn.utils.class_weight import compute_sample_weight

    weights = compute_sample_weight("balanced", y)
    assert np.unique(np.bincount(y, weights=weights)).size > 1  # the rounding is there
    clf = SAMNClassifier(device="cpu", random_state=0, max_iter=30)
    a = clf.fit(X, y, sample_weight=weights)
    assert np.unique(a.class_count_).size == 1
    rename = np.array([3, 0, 4, 1, 2])
    proba_a = a.predict_proba(X)
    b = SAMNClassifier(device="cpu", random_state=0, max_iter=30).fit(
        X, rename[y], sample_weight=weights
    )
    np.testing.assert_allclose(b.predict_proba(X)[:, rename], proba_a, atol=1e-5)


def test_scaling_all_sample_weights_changes_nothing(long_tailed, fast_clf):
    X, y = long_tailed
    a = fast_clf().fit(X, y)
    b = fast_clf().fit(X, y, sample_weight=np.full(len(y), 10.0))
    assert a.max_norm_ == b.max_norm_
    np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), atol=5e-3)


@pytest.mark.parametrize("weight", [1e-50, 1e39])
def test_regression_extreme_uniform_weights_change_nothing(long_tailed, weight):
    """Weights reach the training loop in float32: 1e-50 underflowed to 0 (a fit
    that did nothing) and 1e39 overflowed ("Training diverged")."""
    X, y = long_tailed
    params = dict(device="cpu", random_state=0, max_norm=8.0, max_iter=30)
    plain = SAMNClassifier(**params).fit(X, y)
    weighted = SAMNClassifier(**params).fit(X, y, sample_weight=np.full(len(y), weight))
    np.testing.assert_array_equal(weighted.coef_, plain.coef_)
    np.testing.assert_allclose(weighted.class_count_, plain.class_count_ * weight)


def test_regression_a_class_without_weight_is_an_error(long_tailed, fast_clf):
    """Its direction was drawn at random and the class still predicted."""
    X, y = long_tailed
    weight = np.where(y == 3, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"zero for every sample of the classes \[3\]"):
        fast_clf().fit(X, y, sample_weight=weight)


def test_integer_sample_weight_equals_repeating_rows_to_float32_rounding():
    # scikit-learn's check_sample_weight_equivalence, at float32 tolerance.
    rng = np.random.RandomState(42)
    X = rng.rand(15, 30)
    y = rng.randint(0, 3, size=15)
    weight = rng.randint(0, 5, size=15)
    # A given cap: with max_norm="auto" the internal folds of repeated rows are
    # not those of weighted rows (tests/test_common.py).
    params = dict(device="cpu", random_state=0, max_norm=4.0)
    repeated = SAMNClassifier(**params).fit(X.repeat(weight, axis=0), y.repeat(weight))
    weighted = SAMNClassifier(**params).fit(X, y, sample_weight=weight)
    np.testing.assert_allclose(
        weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-4, atol=1e-6)


def test_sample_weight_is_not_modified(long_tailed, fast_clf):
    X, y = long_tailed
    weight = np.linspace(0.5, 2.0, len(y))
    original = weight.copy()
    fast_clf().fit(X, y, sample_weight=weight)
    np.testing.assert_array_equal(weight, original)


@pytest.mark.parametrize(
    "make_weight, message",
    [
        (lambda n: -np.ones(n), "Negative values in sample_weight"),
        (lambda n: np.zeros(n), "sample_weight is zero for every sample"),
        (lambda n: np.ones(n - 1), r"sample_weight must have shape \(117,\)"),
        (lambda n: np.full(n, np.nan), "sample_weight contains NaN"),
    ],
)
def test_bad_sample_weight(long_tailed, fast_clf, make_weight, message):
    X, y = long_tailed
    with pytest.raises(ValueError, match=message):
        fast_clf().fit(X, y, sample_weight=make_weight(len(y)))


# 6. device and reproducibility ---------------------------------------------


def test_cpu_fits_are_bit_identical(long_tailed):
    X, y = long_tailed
    adam = dict(solver="adam", max_iter=10, batch_size=32)
    for params in ({}, adam):  # the default (folds drawn) and shuffled minibatches
        params = dict(params, device="cpu", random_state=42)
        a = SAMNClassifier(**params).fit(X, y)
        b = SAMNClassifier(**params).fit(X, y)
        np.testing.assert_array_equal(a.coef_, b.coef_)
        np.testing.assert_array_equal(a.intercept_, b.intercept_)
        c = SAMNClassifier(**{**params, "random_state": 7}).fit(X, y)
        assert not np.array_equal(a.coef_, c.coef_)


def test_auto_device_picks_what_is_there(long_tailed):
    X, y = long_tailed
    clf = SAMNClassifier(max_iter=2, random_state=0).fit(X, y)
    assert clf.device_ == ("cuda:0" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_clear_error(long_tailed, device):
    X, y = long_tailed
    with pytest.raises(ValueError, match="CUDA is not available"):
        SAMNClassifier(device=device).fit(X, y)


@pytest.mark.parametrize("device", ["gpu", "tpu", "cuda:", "cuda:x", "CPU", "", "cpu\n",
                                    "cuda:0\n"])
def test_unknown_device_string(long_tailed, device):
    X, y = long_tailed
    with pytest.raises(ValueError, match="'device' parameter"):
        SAMNClassifier(device=device).fit(X, y)


# The contract: monotone norms, symmetric ties, scale invariance ------------


@settings(max_examples=12, deadline=None)
@given(
    counts=st.lists(st.integers(1, 30), min_size=2, max_size=7),
    seed=st.integers(0, 2**16),
    variant=st.sampled_from(["invariant", "paper"]),
    minibatch=st.booleans(),
)
def test_property_norms_are_monotone_in_class_count(counts, seed, variant, minibatch):
    X, y = make_long_tailed_blobs(counts=counts, n_features=5, seed=seed)
    solver = dict(solver="adam", batch_size=16) if minibatch else {}
    clf = SAMNClassifier(
        variant=variant, device="cpu", random_state=seed, max_iter=15, **solver
    ).fit(X, y)
    assert_norms_monotone(clf)


def test_regression_renaming_tied_classes_changes_no_probability(fast_clf):
    # Two tied pairs; swapping the labels inside each pair must permute the
    # model's columns and change no predicted probability (METHOD.md shows a
    # stable argsort + PAVA failing this).
    X, y = make_long_tailed_blobs(counts=(50, 20, 20, 6, 6), seed=3)
    rename = np.array([0, 2, 1, 4, 3])
    # L-BFGS stops at float32 rounding of the loss, so two fits whose float32
    # sums run in another order end up to ~1e-3 apart in probability; a
    # tie-order bug moves them by tenths.
    for params in ({}, {"solver": "adam", "batch_size": 512}):
        a = fast_clf(**params).fit(X, y)
        b = fast_clf(**params).fit(X, rename[y])
        assert a.max_norm_ == b.max_norm_
        np.testing.assert_allclose(
            b.predict_proba(X)[:, rename], a.predict_proba(X), atol=5e-3
        )
        np.testing.assert_allclose(
            np.linalg.norm(b.coef_, axis=1)[rename],
            np.linalg.norm(a.coef_, axis=1),
            rtol=1e-2,
        )


@pytest.mark.parametrize("factor", [100.0, 1e-6, 1e6])
def test_default_is_scale_invariant(long_tailed, fast_clf, factor):
    X, y = long_tailed
    X = X + 5.0  # an offset too: the default centres its inputs
    base = fast_clf().fit(X, y)
    scaled = fast_clf().fit(X * factor, y)
    assert np.all(np.isfinite(scaled.coef_)) and np.all(np.isfinite(scaled.intercept_))
    assert scaled.max_norm_ == base.max_norm_
    # Equal up to where L-BFGS stops, at float32 rounding of the loss.
    np.testing.assert_allclose(
        scaled.predict_proba(X * factor), base.predict_proba(X), atol=5e-3
    )
    np.testing.assert_allclose(scaled.coef_ * factor, base.coef_, rtol=2e-2,
                               atol=1e-3 * np.abs(base.coef_).max())
    assert scaled.score(X * factor, y) > 0.9


@pytest.mark.parametrize("params", [{}, {"solver": "adam", "max_iter": 5},
                                    {"solver": "adam", "max_iter": 5, "batch_size": 64}])
def test_fit_is_translation_invariant(long_tailed, fast_clf, params):
    # The head sees centred rows: moving every row by the same vector moves
    # nothing but the intercept. Training reads raw rows with the head folded
    # onto them, and unfolds the gradient; a wrong unfold would depend on the
    # mean of X and show here.
    X, y = long_tailed
    moved = X + np.random.default_rng(0).normal(scale=3 * X.std(), size=X.shape[1])
    base = fast_clf(**params).fit(X, y)
    other = fast_clf(**params).fit(moved, y)
    np.testing.assert_allclose(other.predict_proba(moved), base.predict_proba(X),
                               atol=5e-3)
    np.testing.assert_allclose(other.coef_, base.coef_, rtol=2e-2,
                               atol=1e-3 * np.abs(base.coef_).max())


def _refuse_training(*args, **kwargs):
    raise AssertionError("training started")


@pytest.mark.parametrize("container", ["ndarray", "memmap"])
def test_regression_X_beyond_float32_range_is_a_clear_error_before_training(
    long_tailed, fast_clf, monkeypatch, tmp_path, container
):
    # Training casts blocks to float32: 1e200 became inf, and the fit failed
    # later with "Training diverged ... Lower learning_rate_init".
    monkeypatch.setattr("sklearn_samn._training.train_head", _refuse_training)
    monkeypatch.setattr("sklearn_samn._lbfgs.train_head_lbfgs", _refuse_training)
    X, y = long_tailed
    X = X * 1e200
    if container == "memmap":
        path = tmp_path / "X.f64"
        X.tofile(path)
        X = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    with pytest.raises(ValueError, match=r"beyond the range of float32 \(about 3.4e\+38\)"
                       r".*Rescale X"):
        fast_clf().fit(X, y)


def test_one_value_beyond_float32_range_in_the_last_block_is_found(
    long_tailed, fast_clf, monkeypatch
):
    monkeypatch.setattr("sklearn_samn._samn._CHUNK_BYTES", 64 * 8 * 8)  # 64-row blocks
    X, y = long_tailed
    X = X.copy()
    X[-1, -1] = -4e38
    with pytest.raises(ValueError, match="values up to 4e\\+38"):
        fast_clf().fit(X, y)


def test_regression_X_of_too_small_a_spread_for_float32_is_a_clear_error(
    long_tailed, fast_clf, monkeypatch
):
    # It failed with "Training diverged: the loss is nan at the start".
    monkeypatch.setattr("sklearn_samn._lbfgs.train_head_lbfgs", _refuse_training)
    X, y = long_tailed
    with pytest.raises(ValueError, match="too small a spread for float32.*Multiply X"):
        fast_clf().fit(X * 1e-40, y)


def test_regression_X_far_from_zero_against_its_spread_warns(long_tailed, fast_clf):
    """Centred in float32, X + 1e8 lost every digit of its rows (iris: training
    accuracy 0.62 instead of 0.98), silently."""
    X, y = long_tailed
    with pytest.warns(UserWarning, match="Centre X first") as record:
        fast_clf(max_norm=8.0).fit(X + 1e8, y)
    assert [w.filename for w in record if "Centre X" in str(w.message)] == [__file__]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast_clf(max_norm=8.0).fit(X + 100.0, y)


def test_X_large_but_within_float32_range_fits_as_unscaled(long_tailed, fast_clf):
    X, y = long_tailed
    base = fast_clf().fit(X, y)
    scaled = fast_clf().fit(X * 1e30, y)
    # Equal up to where L-BFGS stops, at float32 rounding of the loss.
    assert scaled.max_norm_ == base.max_norm_
    np.testing.assert_allclose(
        scaled.predict_proba(X * 1e30), base.predict_proba(X), atol=5e-3
    )
    assert scaled.score(X * 1e30, y) == base.score(X, y)


def test_adam_convergence_warning_and_tol(long_tailed):
    X, y = long_tailed
    adam = dict(device="cpu", solver="adam", random_state=0)
    # With tol=None, max_iter is the length of the learning-rate schedule: no
    # plateau criterion, so no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SAMNClassifier(max_iter=2, tol=None, **adam).fit(X, y)
    assert clf.n_iter_ == 2
    with pytest.warns(ConvergenceWarning, match="max_iter=2 passes"):
        SAMNClassifier(max_iter=2, tol=1e-6, **adam).fit(X, y)
    clf = SAMNClassifier(max_iter=500, tol=10.0, n_iter_no_change=3, **adam).fit(X, y)
    # The first pass sets the reference; three more without improvement stop.
    assert clf.n_iter_ == 4


def test_verbose_reports_each_pass_on_stderr(long_tailed, capsys):
    X, y = long_tailed
    SAMNClassifier(device="cpu", solver="adam", max_iter=3, verbose=1,
                   random_state=0).fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("pass 1/3, loss ")
    SAMNClassifier(device="cpu", max_iter=3, random_state=0).fit(X, y)
    assert capsys.readouterr().err == ""


def test_verbose_reports_each_cap_and_the_final_fit(long_tailed, capsys):
    X, y = long_tailed
    clf = SAMNClassifier(device="cpu", verbose=1, random_state=0).fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == len(clf.cv_results_["max_norm"]) + 1
    assert lines[0].startswith("max_norm 2: out-of-fold balanced accuracy ")
    assert lines[-1].startswith(f"final fit: max_norm {clf.max_norm_:.3g}, "
                                f"{clf.n_iter_} L-BFGS iterations")
    # Each line says how long its part of the fit took.
    for line, n_iter in zip(lines, clf.cv_results_["n_iter"]):
        assert re.search(rf"\({n_iter} L-BFGS iterations over the folds, "
                         r"\d+\.\d\d s\)$", line), line
    assert re.search(r", loss \d+\.\d{6}, \d+\.\d\d s$", lines[-1]), lines[-1]


# Bad input -----------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_X(long_tailed, fast_clf, bad):
    X, y = long_tailed
    X_bad = X.copy()
    X_bad[3, 2] = bad
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        fast_clf().fit(X_bad, y)
    clf = fast_clf().fit(X, y)
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        clf.predict(X_bad)


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.empty((0, 3)), np.empty(0), "0 sample"),
        (np.ones((5, 3)), np.zeros(5), "only one class"),
        (np.random.rand(6, 3), np.linspace(0, 1, 6), "Unknown label type"),
        (np.ones((4, 2, 2)), np.array([0, 1, 0, 1]), "dim 3"),
        (np.array([["a", "b"], ["c", "d"]], dtype=object), [0, 1], "could not convert"),
    ],
)
def test_bad_training_data(X, y, message):
    with pytest.raises(ValueError, match=message):
        SAMNClassifier(device="cpu").fit(X, y)


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        SAMNClassifier().predict(np.ones((2, 3)))


def test_wrong_number_of_features_at_predict(long_tailed, fast_clf):
    X, y = long_tailed
    clf = fast_clf().fit(X, y)
    with pytest.raises(ValueError, match="has 7 features, but SAMNClassifier is expecting 8"):
        clf.predict(X[:, :7])


@pytest.mark.parametrize(
    "params, message",
    [
        ({"max_iter": 0}, "'max_iter' parameter"),
        ({"batch_size": 0}, "'batch_size' parameter"),
        ({"learning_rate_init": 0.0}, "'learning_rate_init' parameter"),
        ({"tol": -1.0}, "'tol' parameter"),
        ({"variant": "scaled"}, "'variant' parameter"),
        ({"loss": "hinge"}, "'loss' parameter"),
        ({"solver": "newton"}, "'solver' parameter"),
        ({"max_norm": 0.0}, "'max_norm' parameter"),
        ({"max_norm": "cv"}, "'max_norm' parameter"),
        ({"cv": 1}, "'cv' parameter"),
        ({"class_counts": "many"}, "'class_counts' parameter"),
    ],
)
def test_bad_parameters_name_themselves(long_tailed, params, message):
    X, y = long_tailed
    with pytest.raises(ValueError, match=message):
        SAMNClassifier(device="cpu", **params).fit(X, y)


def test_fit_restores_torch_thread_count(long_tailed, fast_clf):
    X, y = long_tailed
    before = torch.get_num_threads()
    fast_clf().fit(X, y)
    assert torch.get_num_threads() == before


def test_fit_without_torch_is_a_clear_import_error():
    result = run_without_torch(
        """
        import numpy as np
        from sklearn_samn import SAMNClassifier
        try:
            SAMNClassifier().fit(np.eye(4), [0, 1, 0, 1])
        except ImportError as e:
            print(e)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "torch" in result.stdout and "SAMNClassifier.fit" in result.stdout


def test_full_batch_gradient_accumulated_over_chunks(long_tailed, monkeypatch):
    X, y = long_tailed
    params = dict(device="cpu", random_state=0, max_iter=10)
    adam = dict(params, solver="adam")
    whole = [SAMNClassifier(**params).fit(X, y), SAMNClassifier(**adam).fit(X, y)]
    monkeypatch.setattr("sklearn_samn._training._block_rows", lambda *a, **k: 10)
    chunked = [SAMNClassifier(**params).fit(X, y), SAMNClassifier(**adam).fit(X, y)]
    for a, b in zip(chunked, whole):
        # float32 sums in another order; a stale or skipped block moves coef_
        # by 8-15% (benchmarks/mutation_check.py). Coefficients near zero
        # are compared at float32 rounding of the largest (about 1).
        np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-3,
                                   atol=1e-5 * np.abs(b.coef_).max())
        np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-4)
    minibatch = SAMNClassifier(**adam, batch_size=16).fit(X, y)
    assert minibatch.n_iter_ == 10 and minibatch.score(X, y) > 0.9


@pytest.fixture
def adam_step_sizes(monkeypatch):
    """The learning rate of every Adam step taken while the test runs."""
    from sklearn_samn import _optim

    seen = []
    original = _optim.Adam.step

    def spy(self, lr):
        seen.append(lr)
        return original(self, lr)

    monkeypatch.setattr(_optim.Adam, "step", spy)
    return seen


def test_learning_rate_is_per_pass(long_tailed, adam_step_sizes):
    # k minibatches per pass take steps of learning_rate_init / k each.
    X, y = long_tailed
    seen = adam_step_sizes
    adam = dict(device="cpu", solver="adam", max_iter=1, learning_rate_init=0.01)
    SAMNClassifier(**adam).fit(X, y)
    SAMNClassifier(**adam, batch_size=39).fit(X, y)
    assert seen[0] == pytest.approx(0.01)
    assert seen[1] == pytest.approx(0.01 * 39 / len(y))


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_norms_can_separate_from_their_equal_start(solver):
    # Every log-norm starts at the same value, and each step sets the free
    # log-norms to the (tied) ones used; ties must not freeze them into one
    # block. On overlapping classes the loss wants the rarer classes' norms
    # larger, which the order allows, so they part. (On well-separated blobs
    # the frequent classes want theirs larger, which the order forbids: there
    # one block is the constrained answer.)
    X, y = make_long_tailed_blobs(counts=(300, 100, 30, 10, 3), n_features=6,
                                  separation=0.3, seed=2)
    clf = SAMNClassifier(device="cpu", solver=solver, random_state=0).fit(X, y)
    norms = np.linalg.norm(clf.coef_, axis=1)
    assert_norms_monotone(clf)
    assert norms.max() > norms.min() * 1.02


def test_adam_learning_rate_follows_the_cosine_schedule(long_tailed, adam_step_sizes):
    # Documented: the learning rate decays from learning_rate_init to zero
    # along a cosine over the max_iter passes (one step per pass, full batch).
    X, y = long_tailed
    seen = adam_step_sizes
    SAMNClassifier(device="cpu", solver="adam", max_iter=8, tol=None,
                   learning_rate_init=0.01).fit(X, y)
    expected = 0.01 * 0.5 * (1 + np.cos(np.pi * np.arange(8) / 8))
    np.testing.assert_allclose(seen, expected, rtol=1e-12)
