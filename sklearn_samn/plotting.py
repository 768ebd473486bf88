"""Pictures of long-tailed heads, following scikit-learn's Display convention.

Needs matplotlib (``pip install "sklearn-samn[plot]"``); the rest of the
package does not.
"""

import numpy as np

from ._validation import by_label
from .metrics import _labels_and_counts, per_class_accuracy, shot_groups

__all__ = ["NormProfileDisplay", "ShotAccuracyDisplay"]

_GROUP_COLOURS = {"many": "#dbe9f6", "medium": "#fdf1d6", "few": "#f9dcdc"}


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - exercised without matplotlib
        raise ImportError(
            "Plotting needs matplotlib: pip install 'sklearn-samn[plot]'."
        ) from error
    return plt


def _resolve_ax(ax):
    plt = _pyplot()
    if ax is None:
        # Constrained layout keeps the axis labels inside the figure at any
        # dpi (with a fixed layout the x label was cut off at dpi=80).
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    return ax, ax.figure


def _log_x_if_wide(ax, counts):
    """Log-scale the count axis when counts span more than a factor of 20."""
    if counts.min() > 0 and counts.max() / counts.min() > 20:
        ax.set_xscale("log")


def _blocks(values, order):
    """Runs of equal values along ``order``: list of index arrays (pooled blocks)."""
    sorted_values = values[order]
    breaks = np.flatnonzero(
        ~np.isclose(sorted_values[1:], sorted_values[:-1], rtol=1e-9, atol=0)
    )
    return np.split(order, breaks + 1)


class NormProfileDisplay:
    """Per-class weight norms against class frequency, PAVA blocks visible.

    Build it with :meth:`from_estimator`; the constructor only stores data.

    Parameters
    ----------
    norms : ndarray of shape (n_classes,)
        Row norms of the head's ``coef_``.
    class_counts : ndarray of shape (n_classes,)
        Class frequencies defining the monotone order.
    classes : ndarray of shape (n_classes,)
        Class labels.
    reference_norms : ndarray of shape (n_classes,), default=None
        Norms of another head (e.g. an unconstrained one) to overlay.
    reference_label : str, default=None
        Legend entry of the reference.

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    line_ : matplotlib Line2D
        The SAMN profile.
    reference_line_ : matplotlib Line2D or None

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_samn import SAMNClassifier
    >>> from sklearn_samn.plotting import NormProfileDisplay
    >>> X, y = load_iris(return_X_y=True)
    >>> X, y = X[:-40], y[:-40]  # class 2 becomes the rare one
    >>> clf = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    >>> free = LogisticRegression(max_iter=1000).fit(X, y)
    >>> display = NormProfileDisplay.from_estimator(clf, reference=free)
    >>> display.line_.get_ydata().shape
    (3,)
    """

    def __init__(self, norms, class_counts, classes, *, reference_norms=None,
                 reference_label=None):
        self.norms = np.asarray(norms, dtype=float)
        self.class_counts = np.asarray(class_counts, dtype=float)
        self.classes = np.asarray(classes)
        self.reference_norms = reference_norms
        self.reference_label = reference_label

    @classmethod
    def from_estimator(cls, estimator, *, reference=None, reference_label=None,
                       ax=None):
        """Plot the norm profile of a fitted head.

        Parameters
        ----------
        estimator : SAMNClassifier or Pipeline ending in one
            Fitted; needs ``coef_``, ``class_count_`` and ``classes_``.
        reference : fitted linear classifier, default=None
            A head to overlay (its ``coef_`` rows in the same class order), for
            example an unconstrained ``LogisticRegression``.
        reference_label : str, default=None
            Legend entry for ``reference``; defaults to its class name.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when ``None``.

        Returns
        -------
        display : NormProfileDisplay
        """
        head = estimator[-1] if hasattr(estimator, "steps") else estimator
        for name in ("coef_", "class_count_", "classes_"):
            if not hasattr(head, name):
                raise ValueError(
                    f"NormProfileDisplay needs a fitted head with {name}; "
                    f"got {type(head).__name__}."
                )
        reference_norms = None
        if reference is not None:
            ref = reference[-1] if hasattr(reference, "steps") else reference
            if not np.array_equal(np.asarray(ref.classes_), np.asarray(head.classes_)):
                raise ValueError("reference must be fitted on the same classes.")
            coef = np.atleast_2d(ref.coef_)
            if coef.shape[0] != len(head.classes_):
                raise ValueError(
                    "reference.coef_ needs one row per class; a binary model "
                    "with a single row has no per-class norms."
                )
            reference_norms = np.linalg.norm(coef, axis=1)
            reference_label = reference_label or type(ref).__name__
        display = cls(
            np.linalg.norm(head.coef_, axis=1), head.class_count_, head.classes_,
            reference_norms=reference_norms, reference_label=reference_label,
        )
        return display.plot(ax=ax)

    def plot(self, *, ax=None):
        """Draw the profile.

        Parameters
        ----------
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : NormProfileDisplay
        """
        ax, figure = _resolve_ax(ax)
        order = np.argsort(self.class_counts, kind="stable")
        counts = self.class_counts[order]
        (self.line_,) = ax.plot(
            counts, self.norms[order], "o-", color="C0", label="SAMN (monotone)"
        )
        for block in _blocks(self.norms, order):
            if len(block) > 1:
                low, high = self.class_counts[block].min(), self.class_counts[block].max()
                ax.axvspan(low, high, color="C0", alpha=0.08, lw=0)
        self.reference_line_ = None
        if self.reference_norms is not None:
            (self.reference_line_,) = ax.plot(
                counts, np.asarray(self.reference_norms)[order], "s--",
                color="C1", alpha=0.8, label=self.reference_label,
            )
        _log_x_if_wide(ax, counts)
        ax.set_xlabel("training count of the class")
        ax.set_ylabel("weight norm ||coef_c||")
        ax.set_title("Per-class weight norms (shaded: pooled PAVA blocks)")
        ax.legend()
        self.ax_, self.figure_ = ax, figure
        return self


class ShotAccuracyDisplay:
    """Per-class accuracy against class frequency with many/medium/few bands.

    Build it with :meth:`from_predictions`.

    Parameters
    ----------
    accuracy : ndarray of shape (n_classes,)
        Per-class accuracy.
    class_counts : ndarray of shape (n_classes,)
        Training counts.
    groups : ndarray of shape (n_classes,)
        ``"many"``, ``"medium"`` or ``"few"`` per class.

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    scatter_ : matplotlib PathCollection

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_samn.plotting import ShotAccuracyDisplay
    >>> display = ShotAccuracyDisplay.from_predictions(
    ...     [0, 0, 1, 1, 2, 2], [0, 0, 1, 0, 2, 0],
    ...     class_counts={0: 500, 1: 50, 2: 5})
    >>> display.accuracy.tolist()
    [1.0, 0.5, 0.5]
    """

    def __init__(self, accuracy, class_counts, groups):
        self.accuracy = np.asarray(accuracy, dtype=float)
        self.class_counts = np.asarray(class_counts, dtype=float)
        self.groups = np.asarray(groups)

    @classmethod
    def from_predictions(cls, y_true, y_pred, *, class_counts, labels=None,
                         thresholds=(100, 20), ax=None):
        """Plot per-class accuracy from predictions.

        Parameters
        ----------
        y_true, y_pred : array-like of shape (n_samples,)
            True and predicted labels.
        class_counts : array-like of shape (n_classes,), dict or pandas Series
            Training counts (array in the order of ``labels``, or a dict; a
            Series by its index).
        labels : array-like of shape (n_classes,), default=None
            The classes; needed with an array ``class_counts``. Every label of
            ``y_true`` must be among them, as in
            :func:`sklearn_samn.metrics.shot_accuracy`.
        thresholds : tuple (many, few) or "thirds", default=(100, 20)
            See :func:`sklearn_samn.metrics.shot_groups`.
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : ShotAccuracyDisplay
        """
        class_counts = by_label(class_counts, "class_counts")
        if labels is None and not isinstance(class_counts, dict):
            raise ValueError("labels are needed when class_counts is an array.")
        labels, counts = _labels_and_counts(y_true, y_pred, class_counts, labels)
        accuracy = per_class_accuracy(y_true, y_pred, labels=labels)
        groups = shot_groups(counts, thresholds=thresholds)
        return cls(accuracy, counts, groups).plot(ax=ax)

    def plot(self, *, ax=None):
        """Draw the per-class accuracies.

        Parameters
        ----------
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : ShotAccuracyDisplay
        """
        ax, figure = _resolve_ax(ax)
        for group in ("few", "medium", "many"):
            members = self.groups == group
            if members.any():
                low = self.class_counts[members].min()
                high = self.class_counts[members].max()
                ax.axvspan(low, high, color=_GROUP_COLOURS[group], lw=0, zorder=0)
                mean = np.nanmean(self.accuracy[members])
                ax.hlines(mean, low, high, colors="k", linestyles=":", zorder=2)
                centre = np.sqrt(low * high) if low > 0 else (low + high) / 2
                ax.text(centre, 0.03, f"{group}\n{mean:.2f}", ha="center",
                        va="bottom", fontsize=9, zorder=4,
                        transform=ax.get_xaxis_transform())
        self.scatter_ = ax.scatter(self.class_counts, self.accuracy, s=18, zorder=3)
        _log_x_if_wide(ax, self.class_counts)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("training count of the class")
        ax.set_ylabel("test accuracy of the class")
        self.ax_, self.figure_ = ax, figure
        return self
