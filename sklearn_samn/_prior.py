"""Class embeddings as a prior for the head: validation and the pseudo-rows.

A class embedding (the encoder's embedding of the class name or description,
in the space of ``X``) enters the fit as one extra training row of its class,
weighted as one average sample of the training set. It is in the training
part of every fold of the internal cross-validation (it is knowledge the
final fit has too), the standardisation of ``X`` is computed without it, and
the order of the norms and ``class_count_`` stay the real counts.
"""

import numpy as np

from ._validation import by_label

# The weight of each class's pseudo-row, in units of the mean sample weight
# of X: one pseudo-observation (benchmarks/SENSITIVITY.md measures half and
# twice this).
PRIOR_WEIGHT = 1.0
# Ablation switches (benchmarks/prior_study.py): whether the logit-adjusted
# loss counts the pseudo-rows in its class prior, and whether the embeddings
# are re-centred on the mean of X.
_OFFSET_WITH_PRIOR = False
_CENTRE = False
# warn_if_elsewhere warns outside [1 / _ELSEWHERE, _ELSEWHERE] (a diagnostic,
# not a model parameter: the embeddings are used either way).
_ELSEWHERE = 5.0


def in_feature_order(table, feature_names):
    """A pandas DataFrame of embeddings with its columns in the order of the
    features of ``X``, when both are named; anything else unchanged.

    Columns named by strings that are exactly the feature names of ``X`` (in
    any order) are put in their order. Named columns that are not those
    features are an error: reading them by position would pair each value
    with another feature. Unnamed (integer) columns, or an ``X`` without
    feature names, are read by position.
    """
    columns = getattr(table, "columns", None)
    if columns is None or feature_names is None or not hasattr(table, "to_numpy"):
        return table
    columns = list(columns)
    if not all(isinstance(c, str) for c in columns):
        return table
    names = [str(name) for name in feature_names]
    if sorted(columns) != sorted(names) or len(set(columns)) != len(columns):
        unknown = [c for c in columns if c not in set(names)]
        missing = [n for n in names if n not in set(columns)]
        raise ValueError(
            "class_embeddings is a DataFrame whose columns are not the features of "
            f"X: {len(unknown)} columns that X lacks {unknown[:5]}, {len(missing)} "
            f"features of X it lacks {missing[:5]}. Name its columns as X's, or "
            "pass an array (read by position)."
        )
    return table[names]


def check_class_embeddings(class_embeddings, classes, n_features, feature_names=None):
    """``class_embeddings`` as a float64 array in the order of ``classes``.

    Parameters
    ----------
    class_embeddings : array-like of shape (n_classes, n_features), dict or None
        Rows in the order of ``classes``, or a mapping label -> vector that
        covers every label of ``classes`` (it may hold more labels: those are
        not used). A pandas DataFrame is the mapping its index makes.
    classes : ndarray of shape (n_classes,)
        The labels of the fit.
    n_features : int
        Features of ``X``.
    feature_names : array-like of str or None, default=None
        Feature names of ``X`` (``feature_names_in_``): a DataFrame with named
        columns is matched to them by name.

    Returns
    -------
    embeddings : ndarray of shape (n_classes, n_features) or None
    """
    if class_embeddings is None:
        return None
    class_embeddings = by_label(in_feature_order(class_embeddings, feature_names),
                                "class_embeddings")
    if isinstance(class_embeddings, dict):
        missing = [label for label in classes.tolist() if label not in class_embeddings]
        if missing:
            raise ValueError(
                f"class_embeddings has no vector for the labels {missing} of y; "
                "a dict must map every class of y to its embedding."
            )
        rows = []
        for label in classes.tolist():
            vector = _numeric(class_embeddings[label], f"class_embeddings[{label!r}]")
            if vector.shape != (n_features,):
                raise ValueError(
                    f"class_embeddings[{label!r}] must be a vector of {n_features} "
                    f"values, one per feature of X; got shape {vector.shape}."
                )
            rows.append(vector)
        embeddings = np.stack(rows)
    else:
        embeddings = _numeric(class_embeddings, "class_embeddings")
        if embeddings.shape != (len(classes), n_features):
            hint = (
                " Pass a dict label -> vector when the classes of y can vary, as "
                "in the folds of a cross-validation that may lack a rare class."
                if embeddings.ndim == 2 and embeddings.shape[1] == n_features else ""
            )
            raise ValueError(
                f"class_embeddings must have shape ({len(classes)}, {n_features}): "
                "one row per class of y, in the order of classes_, and one column "
                f"per feature of X; got shape {embeddings.shape}.{hint}"
            )
    if not np.all(np.isfinite(embeddings)):
        bad = np.flatnonzero(~np.all(np.isfinite(embeddings), axis=1))
        raise ValueError(
            "class_embeddings contains NaN or infinity, in the rows of the "
            f"classes {classes[bad].tolist()}."
        )
    return embeddings


def _numeric(value, name):
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric; {error}") from error
    return array


def warn_if_elsewhere(embeddings, shift, scale, classes):
    """Warn when the class embeddings do not look like rows of ``X``.

    The head sees ``(X - shift) / scale``, whose rows have a root-mean-square
    norm of 1; embeddings from the encoder that made ``X`` land near 1 there
    too (0.87 to 1.17 for the class names of BANKING77 and HWU64). Embeddings
    that missed a transformation of ``X`` do not: raw sentence embeddings
    against standard-scaled ones sit at 0.05, scaled ones against raw ``X``
    at about 22. Such a prior is silently wrong, so say so.
    """
    distance = np.linalg.norm((embeddings - shift) / scale, axis=1)
    median = float(np.median(distance))
    if 1 / _ELSEWHERE <= median <= _ELSEWHERE:
        return
    import warnings

    warnings.warn(
        f"class_embeddings lie at a median distance of {median:.3g} from the mean of "
        "X, in units of the typical distance of the rows of X from it (1 by "
        "definition; embeddings by the encoder that made X are usually near 1). "
        "They may not be in the space of X: if earlier steps transform X (a "
        "scaler, PCA), use ClassPriorPipeline, which sends the embeddings through "
        f"them. Farthest classes: {classes[np.argsort(-np.abs(np.log(distance)))[:3]].tolist()}.",
        UserWarning,
        stacklevel=3,
    )


def prior_weight(sample_weight):
    """Weight of each pseudo-row: ``PRIOR_WEIGHT`` mean sample weights of the
    rows that count (weight > 0), so that a weighted fit sees it as one sample."""
    positive = sample_weight[sample_weight > 0]
    return PRIOR_WEIGHT * float(positive.mean())


def prior_offset_counts(counts, prior):
    """The class counts behind the logit offset of the loss."""
    if prior is None or not _OFFSET_WITH_PRIOR:
        return counts
    return counts + prior[1]


def prior_rows_on_device(prior, device):
    """``(x, y, weight)`` tensors of the pseudo-rows, or ``None``."""
    if prior is None:
        return None
    import torch

    embeddings, weight = prior
    n_classes = embeddings.shape[0]
    # A copy: the user's array may be read-only, which torch warns about.
    rows = torch.from_numpy(np.array(embeddings, dtype=np.float32))
    return (
        rows.to(device),
        torch.arange(n_classes, device=device),
        torch.full((n_classes,), weight, dtype=torch.float32, device=device),
    )


def centred(embeddings, shift):
    """The embeddings moved so that their mean is ``shift`` (the mean of X)."""
    if not _CENTRE:
        return embeddings
    return embeddings - embeddings.mean(axis=0) + shift
