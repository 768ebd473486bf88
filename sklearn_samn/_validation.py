"""Input checks shared by the estimator and the metrics (imports nothing of ours)."""

from collections import Counter

import numpy as np
from scipy.sparse import issparse
from sklearn.utils.validation import validate_data

# The dtypes that the estimator computes in: validate_data keeps them as they are.
_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


def by_label(value, name):
    """A pandas Series or DataFrame as the dict its index makes (label -> entry
    or row); any other value unchanged.

    Its entries are then matched to the classes by label, never by position:
    ``y.value_counts()`` lists the labels by count, and a table of class
    embeddings need not be in the order of ``classes_``.
    """
    if getattr(value, "index", None) is None or not hasattr(value, "to_numpy"):
        return value
    labels = list(value.index)
    repeated = [label for label, n in Counter(labels).items() if n > 1]
    if repeated:
        raise ValueError(
            f"{name} is a pandas object whose index repeats the labels {repeated}; "
            "its entries are matched to the classes by that index, one per label."
        )
    return dict(zip(labels, value.to_numpy()))


def class_counts_array(class_counts, labels, *, allow_extra=False):
    """``class_counts`` (an array in ``labels`` order, or a dict) as a float array.

    Parameters
    ----------
    class_counts : array-like of shape (n_labels,), dict or pandas Series
        Counts in the order of ``labels``, or a mapping label -> count (a
        Series maps its index).
    labels : list
        The labels the counts are for.
    allow_extra : bool, default=False
        Whether a dict may hold labels that are not in ``labels``.

    Returns
    -------
    counts : ndarray of shape (n_labels,), dtype=float64
    """
    class_counts = by_label(class_counts, "class_counts")
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


def is_sliceable_array(X):
    """Whether ``X`` is a 2-D numeric array-like to read in blocks rather than
    convert whole with ``validate_data``.

    HDF5 datasets, zarr and dask arrays and the like hold more rows than
    memory may; ``np.asarray`` would load them whole. NumPy arrays (memmaps
    included) of float32 or float64 are not: scikit-learn's checks take them
    without a copy. NumPy arrays of any other numeric dtype (float16, ints,
    bools, ...) are read in blocks too: ``validate_data`` would copy them
    whole to float64, where a block is converted at a time instead.
    """
    if isinstance(X, np.ndarray):
        return (
            not isinstance(X, np.matrix)
            and X.ndim == 2
            and X.dtype.kind in "fiub"
            and X.dtype not in _NATIVE
        )
    if isinstance(X, (list, tuple)) or hasattr(X, "iloc") or issparse(X):
        return False
    if not all(hasattr(X, name) for name in ("shape", "dtype", "__getitem__")):
        return False
    try:
        kind = np.dtype(X.dtype).kind
    except TypeError:
        return False
    return len(X.shape) == 2 and kind in "fiub"


def check_sliceable_array(X, estimator, *, reset):
    """``validate_data`` for a sliceable array read in blocks: the checks of
    ``check_array`` that need no reading (finiteness is checked block by block
    with :func:`finite_block`); sets or checks ``n_features_in_``."""
    X = validate_data(estimator, X, reset=reset, skip_check_array=True)
    n_samples, n_features = X.shape
    name = type(estimator).__name__
    if n_samples < 1 or n_features < 1:
        raise ValueError(
            f"Found array with shape {X.shape} while a minimum of 1 sample and 1 "
            f"feature is required by {name}."
        )
    if np.dtype(X.dtype).kind not in "fiub":
        raise ValueError(f"{name} needs numeric features; got dtype {X.dtype}.")
    return X


def finite_block(block):
    """Raise the error scikit-learn raises for NaN or infinity in ``X``."""
    if not np.all(np.isfinite(block)):
        kind = "NaN" if np.any(np.isnan(block)) else "infinity"
        raise ValueError(f"Input X contains {kind}.")
    return block
