"""Long-tailed versions of balanced datasets, built the way CIFAR-LT is."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

__all__ = ["long_tailed_counts", "make_long_tailed"]


@validate_params(
    {
        "n_classes": [Interval(Integral, 1, None, closed="left")],
        "imbalance_ratio": [Interval(Real, 1, None, closed="left")],
        "profile": [StrOptions({"exponential", "step"})],
        "n_max": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def long_tailed_counts(n_classes, imbalance_ratio, *, profile="exponential", n_max):
    """Per-rank sample counts of a long-tailed profile.

    Parameters
    ----------
    n_classes : int
        Number of classes.
    imbalance_ratio : float
        Ratio of the largest to the smallest count, at least 1.
    profile : {"exponential", "step"}, default="exponential"
        ``"exponential"``: rank ``r`` keeps
        ``floor(n_max * imbalance_ratio ** (-r / (n_classes - 1)))``.
        ``"step"``: the first half of the ranks (rank 0 at least) keep
        ``n_max``, the others ``floor(n_max / imbalance_ratio)``.
    n_max : int
        Count of the most frequent class (rank 0).

    Returns
    -------
    counts : ndarray of shape (n_classes,), dtype=int
        Non-increasing counts, never below 1.

    Examples
    --------
    >>> from sklearn_samn.datasets import long_tailed_counts
    >>> long_tailed_counts(5, 16, n_max=160)
    array([160,  80,  40,  20,  10])
    >>> long_tailed_counts(4, 10, profile="step", n_max=100)
    array([100, 100,  10,  10])
    """
    ranks = np.arange(n_classes)
    if profile == "exponential":
        exponent = ranks / (n_classes - 1) if n_classes > 1 else ranks * 0.0
        # The small slack keeps exact powers (160 / 16 = 10) from flooring to 9.
        counts = np.floor(n_max * imbalance_ratio ** (-exponent) * (1 + 1e-12))
    else:
        counts = np.where(
            ranks < max(n_classes // 2, 1), n_max, np.floor(n_max / imbalance_ratio)
        )
    return np.maximum(counts, 1).astype(int)


@validate_params(
    {
        "X": ["array-like"],
        "y": ["array-like"],
        "imbalance_ratio": [Interval(Real, 1, None, closed="left")],
        "profile": [StrOptions({"exponential", "step"})],
        "n_max": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_long_tailed(
    X, y, *, imbalance_ratio, profile="exponential", n_max=None, random_state=None
):
    """Subsample a dataset into a long-tailed one, as CIFAR-LT is built.

    The classes are put in a random order (drawn from ``random_state``); the
    class of rank ``r`` keeps ``n_max * imbalance_ratio ** (-r / (C - 1))``
    randomly chosen samples (rounded down, at least 1) with the exponential
    profile, or ``n_max`` / ``n_max / imbalance_ratio`` for the first / second
    half of the ranks with the step profile.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Features (NumPy array, pandas DataFrame, ...).
    y : array-like of shape (n_samples,)
        Class labels.
    imbalance_ratio : float
        Ratio of the largest to the smallest class count after subsampling,
        at least 1 (e.g. 100, 50 or 10).
    profile : {"exponential", "step"}, default="exponential"
        Shape of the count profile.
    n_max : int, default=None
        Count of the most frequent class. ``None`` uses the size of the
        smallest class, which every class can supply.
    random_state : int, RandomState instance or None, default=None
        Draws the class ranks and the samples kept.

    Returns
    -------
    X_lt : array-like of shape (n_kept, n_features)
        The kept rows of ``X``, of the same container type.
    y_lt : array-like of shape (n_kept,)
        Their labels.
    indices : ndarray of shape (n_kept,)
        Sorted positions of the kept rows in ``X``.

    Raises
    ------
    ValueError
        If a class has fewer samples than its rank asks for.

    Examples
    --------
    >>> from collections import Counter
    >>> import numpy as np
    >>> from sklearn_samn.datasets import make_long_tailed
    >>> X = np.arange(400).reshape(-1, 1)
    >>> y = np.repeat([0, 1, 2, 3], 100)
    >>> X_lt, y_lt, idx = make_long_tailed(X, y, imbalance_ratio=10,
    ...                                     random_state=0)
    >>> sorted(Counter(y_lt).values(), reverse=True)
    [100, 46, 21, 10]
    >>> bool(np.all(X_lt[:, 0] == idx))
    True
    """
    y_array = column_or_1d(np.asarray(y), warn=True)
    check_classification_targets(y_array)
    if len(y_array) != _num_samples(X):
        raise ValueError(
            f"X and y have different numbers of samples: {_num_samples(X)} and "
            f"{len(y_array)}."
        )
    rng = check_random_state(random_state)
    classes, y_encoded = np.unique(y_array, return_inverse=True)
    sizes = np.bincount(y_encoded)
    if n_max is None:
        n_max = int(sizes.min())
    ranked = rng.permutation(len(classes))
    counts = long_tailed_counts(
        len(classes), imbalance_ratio, profile=profile, n_max=n_max
    )
    kept = []
    for rank, klass in enumerate(ranked):
        if sizes[klass] < counts[rank]:
            raise ValueError(
                f"Class {classes[klass]!r} has {sizes[klass]} samples, but rank "
                f"{rank} of the long-tailed profile needs {counts[rank]}; lower "
                f"n_max (at most {sizes.min()} always works)."
            )
        members = np.flatnonzero(y_encoded == klass)
        kept.append(rng.choice(members, size=counts[rank], replace=False))
    indices = np.sort(np.concatenate(kept))
    return _safe_indexing(X, indices), _safe_indexing(y, indices), indices


def _num_samples(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)
