"""Long-tailed evaluation: per-class and many/medium/few-shot accuracy, scorers."""

from numbers import Real

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import recall_score
from sklearn.utils._param_validation import StrOptions, validate_params
from sklearn.utils.multiclass import unique_labels

from ._validation import by_label, class_counts_array

__all__ = [
    "per_class_accuracy",
    "shot_groups",
    "shot_accuracy",
    "make_shot_scorer",
]

SHOT_GROUPS = ("many", "medium", "few")


@validate_params(
    {"y_true": ["array-like"], "y_pred": ["array-like"], "labels": ["array-like", None]},
    prefer_skip_nested_validation=True,
)
def per_class_accuracy(y_true, y_pred, *, labels=None):
    """Accuracy (recall) of each class.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_pred : array-like of shape (n_samples,)
        Predicted labels.
    labels : array-like of shape (n_classes,), default=None
        Classes to report, in this order; ``None`` uses the sorted union of
        ``y_true`` and ``y_pred``. A prediction of a label outside ``labels``
        is a miss of its sample's class, as in
        :func:`sklearn.metrics.recall_score`.

    Returns
    -------
    accuracy : ndarray of shape (n_classes,)
        Fraction of each class's samples predicted correctly; NaN for a class
        with no sample in ``y_true``.

    Examples
    --------
    >>> from sklearn_samn.metrics import per_class_accuracy
    >>> per_class_accuracy([0, 0, 1, 1], [0, 1, 1, 1])
    array([0.5, 1. ])
    """
    if labels is None:
        labels = unique_labels(y_true, y_pred)
    return recall_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)


def _counts_array(class_counts, labels):
    """``class_counts`` (array in ``labels`` order, or dict) as a float array."""
    return class_counts_array(class_counts, labels, allow_extra=True)


@validate_params(
    {
        "class_counts": ["array-like", dict],
        "thresholds": [tuple, StrOptions({"thirds"})],
    },
    prefer_skip_nested_validation=True,
)
def shot_groups(class_counts, *, thresholds=(100, 20)):
    """Assign classes to the many-, medium- and few-shot groups.

    Parameters
    ----------
    class_counts : array-like of shape (n_classes,) or dict
        Training count of each class, or a dict label -> count.
    thresholds : tuple (many, few) or "thirds", default=(100, 20)
        ``(many, few)``: a class with more than ``many`` training samples is
        many-shot, one with fewer than ``few`` is few-shot, the rest medium
        (the common split of Liu et al., 2019, is ``(100, 20)``).
        ``"thirds"``: classes sorted by count are split into three groups of
        (nearly) equal size, rarest third few-shot; tied counts share their
        average rank, so they stay in one group. Useful for small datasets where no class has 100 samples.

    Returns
    -------
    groups : ndarray of shape (n_classes,), dtype=object, or dict
        ``"many"``, ``"medium"`` or ``"few"`` for each class (a dict label ->
        group for a dict of counts).

    Examples
    --------
    >>> from sklearn_samn.metrics import shot_groups
    >>> shot_groups([500, 50, 5]).tolist()
    ['many', 'medium', 'few']
    >>> shot_groups([9, 1, 5, 7, 3, 2], thresholds="thirds").tolist()
    ['many', 'few', 'medium', 'many', 'medium', 'few']
    >>> shot_groups({"card_lost": 500, "pin_blocked": 5})
    {'card_lost': 'many', 'pin_blocked': 'few'}
    """
    if isinstance(class_counts, dict):
        labels = list(class_counts)
        groups = shot_groups([class_counts[label] for label in labels], thresholds=thresholds)
        return dict(zip(labels, groups.tolist()))
    counts = np.asarray(class_counts, dtype=float)
    groups = np.full(counts.shape, "medium", dtype=object)
    if isinstance(thresholds, str):
        n = len(counts)
        # Rank from the rarest (0) up; tied counts share their average rank.
        rank = rankdata(counts, method="average") - 1
        groups[rank < n / 3] = "few"
        groups[rank >= 2 * n / 3] = "many"
        return groups
    if len(thresholds) != 2 or not all(
        isinstance(t, Real) and not np.isnan(t) for t in thresholds
    ):
        raise ValueError(
            f"thresholds must be a pair (many, few) of numbers or 'thirds'; got {thresholds!r}."
        )
    many, few = thresholds
    if few > many:
        raise ValueError(f"thresholds (many, few) need few <= many; got {thresholds!r}.")
    groups[counts > many] = "many"
    groups[counts < few] = "few"
    return groups


@validate_params(
    {
        "y_true": ["array-like"],
        "y_pred": ["array-like"],
        "class_counts": ["array-like", dict],
        "labels": ["array-like", None],
        "thresholds": [tuple, StrOptions({"thirds"})],
    },
    prefer_skip_nested_validation=True,
)
def shot_accuracy(y_true, y_pred, *, class_counts, labels=None, thresholds=(100, 20)):
    """Balanced, many-shot, medium-shot and few-shot accuracy.

    Each figure is the mean of the per-class accuracies of the classes in the
    group, so that it does not depend on how many test samples a class has.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_pred : array-like of shape (n_samples,)
        Predicted labels.
    class_counts : array-like of shape (n_classes,), dict or pandas Series
        Training count of each class: an array in the order of ``labels``
        (e.g. ``clf.class_count_`` with ``labels=clf.classes_``), or a dict
        label -> count (a Series, such as ``y.value_counts()``, by its index).
    labels : array-like of shape (n_classes,), default=None
        The classes; ``None`` uses the sorted union of ``y_true`` and the
        dict's labels, or with an array ``class_counts`` of ``y_true`` and
        ``y_pred`` (better: give ``labels`` with an array). Every
        label of ``y_true`` must be among them (a ``ValueError`` names those
        that are not): a class left out would be left out of the balanced
        accuracy. A prediction outside ``labels`` is a miss.
    thresholds : tuple (many, few) or "thirds", default=(100, 20)
        See :func:`shot_groups`.

    Returns
    -------
    scores : dict
        ``{"balanced": ..., "many": ..., "medium": ..., "few": ...}``; a group
        with no class (or no test sample) is NaN.

    Examples
    --------
    >>> from sklearn_samn.metrics import shot_accuracy
    >>> scores = shot_accuracy([0, 0, 1, 1, 2, 2], [0, 0, 1, 0, 0, 0],
    ...                        class_counts={0: 500, 1: 50, 2: 5})
    >>> {k: float(v) for k, v in scores.items()}
    {'balanced': 0.5, 'many': 1.0, 'medium': 0.5, 'few': 0.0}
    """
    labels, counts = _labels_and_counts(y_true, y_pred, class_counts, labels)
    accuracy = per_class_accuracy(y_true, y_pred, labels=labels)
    groups = shot_groups(counts, thresholds=thresholds)
    scores = {"balanced": _nanmean(accuracy)}
    for group in SHOT_GROUPS:
        scores[group] = _nanmean(accuracy[groups == group])
    return scores


def _labels_and_counts(y_true, y_pred, class_counts, labels):
    """The classes scored and their training counts, as :func:`shot_accuracy`
    reads its arguments."""
    class_counts = by_label(class_counts, "class_counts")
    if labels is None:
        if isinstance(class_counts, dict):
            # A prediction outside the classes is a miss; it needs no count.
            labels = unique_labels(y_true, np.array(list(class_counts)))
        else:
            labels = unique_labels(y_true, y_pred)
    labels = np.asarray(labels)
    missing = _outside(y_true, labels)
    if missing.size:
        raise ValueError(
            f"y_true has labels {missing.tolist()} that are not in labels: give their "
            "training counts (0 for a class never trained on) so that they count in "
            "the balanced accuracy."
        )
    return labels, _counts_array(class_counts, labels.tolist())


def _nanmean(values):
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def _outside(y_true, labels):
    """The labels of ``y_true`` that are not in ``labels``, sorted."""
    return np.setdiff1d(unique_labels(y_true), labels)


def _with_unseen(labels, counts, y_true):
    """A fitted model's ``labels`` and training ``counts``, followed by the labels
    of ``y_true`` it was not trained on, with count 0 (so that they count in the
    balanced accuracy, as misses, and in the few-shot group)."""
    unseen = _outside(y_true, labels)
    return (np.concatenate([np.asarray(labels), unseen]),
            np.concatenate([np.asarray(counts, dtype=float), np.zeros(unseen.shape[0])]))


def _fitted_class_counts(estimator):
    """``(classes_, class_count_)`` of a fitted classifier or of a pipeline's last step."""
    for candidate in (estimator, getattr(estimator, "steps", [[None, None]])[-1][1]):
        if hasattr(candidate, "class_count_") and hasattr(candidate, "classes_"):
            return candidate.classes_, candidate.class_count_
    raise ValueError(
        "The scorer needs class_counts, or an estimator (or a pipeline ending in "
        "one) with fitted classes_ and class_count_ such as SAMNClassifier."
    )


class _ShotScorer:
    """Scorer ``scorer(estimator, X, y)`` for one shot group."""

    def __init__(self, group, class_counts, thresholds):
        self.group = group
        self.class_counts = class_counts
        self.thresholds = thresholds

    def __call__(self, estimator, X, y):
        y_pred = estimator.predict(X)
        if self.class_counts is None:
            labels, counts = _with_unseen(*_fitted_class_counts(estimator), y)
        else:
            # A Series (y.value_counts()) by its labels, not its positions.
            labels, counts = None, by_label(self.class_counts, "class_counts")
            if not isinstance(counts, dict):
                # A class of this fold's test part that its training part lacks.
                labels, counts = _with_unseen(estimator.classes_, counts, y)
        scores = shot_accuracy(
            y, y_pred, class_counts=counts, labels=labels, thresholds=self.thresholds
        )
        return scores[self.group]

    def __repr__(self):
        return f"make_shot_scorer({self.group!r}, thresholds={self.thresholds!r})"


@validate_params(
    {
        "group": [StrOptions({"balanced", "many", "medium", "few"})],
        "class_counts": ["array-like", dict, None],
        "thresholds": [tuple, StrOptions({"thirds"})],
    },
    prefer_skip_nested_validation=True,
)
def make_shot_scorer(group="few", *, class_counts=None, thresholds=(100, 20)):
    """A scorer for ``scoring=`` in ``GridSearchCV`` and ``cross_val_score``.

    Parameters
    ----------
    group : {"balanced", "many", "medium", "few"}, default="few"
        Which figure of :func:`shot_accuracy` to return.
    class_counts : array-like or dict, default=None
        Training counts defining the groups. ``None`` reads ``class_count_``
        of the fitted estimator (or of a pipeline's last step), i.e. the
        counts of each training fold. A class of the test part that the
        estimator was not trained on (an array of counts is in the order of its
        ``classes_``) counts with a training count of 0: few-shot, and a miss
        for each of its samples.
    thresholds : tuple (many, few) or "thirds", default=(100, 20)
        See :func:`shot_groups`.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``; greater is better.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn_samn import SAMNClassifier
    >>> from sklearn_samn.metrics import make_shot_scorer
    >>> X, y = load_iris(return_X_y=True)
    >>> scorer = make_shot_scorer("few", thresholds="thirds")
    >>> scores = cross_val_score(SAMNClassifier(device="cpu", random_state=0),
    ...                          X, y, cv=3, scoring=scorer)
    >>> scores.shape
    (3,)
    """
    return _ShotScorer(group, class_counts, thresholds)
