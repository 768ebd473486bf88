"""Input checks shared by the estimator and the metrics (imports nothing of ours)."""

import numpy as np


def class_counts_array(class_counts, labels, *, allow_extra=False):
    """``class_counts`` (an array in ``labels`` order, or a dict) as a float array.

    Parameters
    ----------
    class_counts : array-like of shape (n_labels,) or dict
        Counts in the order of ``labels``, or a mapping label -> count.
    labels : list
        The labels the counts are for.
    allow_extra : bool, default=False
        Whether a dict may hold labels that are not in ``labels``.

    Returns
    -------
    counts : ndarray of shape (n_labels,), dtype=float64
    """
    if isinstance(class_counts, dict):
        missing = [label for label in labels if label not in class_counts]
        known = set(labels)
        extra = [] if allow_extra else [k for k in class_counts if k not in known]
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"no count for labels {missing}")
            if extra:
                problems.append(f"labels not in y {extra}")
            raise ValueError(f"class_counts has {' and '.join(problems)}.")
        counts = np.array([class_counts[label] for label in labels], dtype=np.float64)
    else:
        counts = np.asarray(class_counts, dtype=np.float64)
        if counts.shape != (len(labels),):
            raise ValueError(
                f"class_counts must have one count per class ({len(labels)}, in the "
                f"order of the classes); got shape {counts.shape}."
            )
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError(
            f"class_counts must be finite and non-negative; got {counts.tolist()}."
        )
    return counts
