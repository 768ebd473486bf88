"""make_long_tailed and long_tailed_counts."""

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from sklearn_samn.datasets import long_tailed_counts, make_long_tailed


def balanced(n_classes=10, per_class=50, n_features=3):
    X = np.arange(n_classes * per_class * n_features, dtype=float).reshape(-1, n_features)
    y = np.repeat(np.arange(n_classes), per_class)
    return X, y


@pytest.mark.parametrize("ratio", [1, 10, 50, 100])
def test_exponential_profile_follows_the_cifar_lt_formula(ratio):
    counts = long_tailed_counts(10, ratio, n_max=500)
    expected = [max(1, int(500 * ratio ** (-r / 9) + 1e-9)) for r in range(10)]
    np.testing.assert_array_equal(counts, expected)
    assert counts[0] == 500 and counts[-1] == max(1, 500 // ratio)
    assert np.all(np.diff(counts) <= 0)


def test_step_profile():
    np.testing.assert_array_equal(
        long_tailed_counts(5, 10, profile="step", n_max=100), [100, 100, 10, 10, 10]
    )


def test_regression_step_profile_of_one_class_keeps_n_max():
    """Rank 0 keeps n_max (the docstring's definition); one class got
    n_max / imbalance_ratio."""
    np.testing.assert_array_equal(long_tailed_counts(1, 10, profile="step", n_max=100), [100])


def test_counts_never_drop_below_one():
    assert long_tailed_counts(77, 100, n_max=35).min() == 1


@pytest.mark.parametrize("profile", ["exponential", "step"])
def test_subset_has_the_profile_and_random_ranks(profile):
    X, y = balanced()
    X_lt, y_lt, idx = make_long_tailed(
        X, y, imbalance_ratio=10, profile=profile, random_state=0
    )
    expected = long_tailed_counts(10, 10, profile=profile, n_max=50)
    assert sorted(Counter(y_lt).values(), reverse=True) == expected.tolist()
    np.testing.assert_array_equal(X_lt, X[idx])
    np.testing.assert_array_equal(y_lt, y[idx])
    assert np.all(np.diff(idx) > 0)
    # Ranks are drawn per random_state: another seed orders classes differently.
    _, y_other, _ = make_long_tailed(X, y, imbalance_ratio=10, profile=profile, random_state=1)
    assert Counter(y_other) != Counter(y_lt)
    _, y_same, _ = make_long_tailed(X, y, imbalance_ratio=10, profile=profile, random_state=0)
    np.testing.assert_array_equal(y_same, y_lt)


def test_dataframes_and_string_labels_keep_their_type():
    X, y = balanced(n_classes=4, per_class=20)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    labels = pd.Series(np.array(["w", "x", "y", "z"])[y])
    X_lt, y_lt, idx = make_long_tailed(frame, labels, imbalance_ratio=4, random_state=0)
    assert isinstance(X_lt, pd.DataFrame) and isinstance(y_lt, pd.Series)
    assert sorted(Counter(y_lt).values()) == [5, 7, 12, 20]  # floor(20 * 4 ** (-r / 3))


def test_default_n_max_is_the_smallest_class():
    X = np.zeros((60, 1))
    y = np.array([0] * 30 + [1] * 20 + [2] * 10)
    _, y_lt, _ = make_long_tailed(X, y, imbalance_ratio=1, random_state=0)
    assert Counter(y_lt) == {0: 10, 1: 10, 2: 10}


def test_too_large_n_max_is_a_clear_error():
    X, y = balanced(n_classes=3, per_class=10)
    with pytest.raises(ValueError, match="has 10 samples, but rank 0"):
        make_long_tailed(X, y, imbalance_ratio=2, n_max=11, random_state=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"imbalance_ratio": 0.5}, "'imbalance_ratio' parameter"),
        ({"imbalance_ratio": 10, "profile": "linear"}, "'profile' parameter"),
        ({"imbalance_ratio": 10, "n_max": 0}, "'n_max' parameter"),
    ],
)
def test_bad_parameters(kwargs, message):
    X, y = balanced()
    with pytest.raises(ValueError, match=message):
        make_long_tailed(X, y, **kwargs)


def test_bad_data():
    X, y = balanced()
    with pytest.raises(ValueError, match="different numbers of samples"):
        make_long_tailed(X, y[:-1], imbalance_ratio=10)
    with pytest.raises(ValueError, match="Unknown label type"):
        make_long_tailed(X, np.linspace(0, 1, len(y)), imbalance_ratio=10)
