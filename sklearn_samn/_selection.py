"""Choosing the norm cap of the default head by cross-validation on the training set.

With no penalty, a head fitted to convergence on separable embeddings grows
its norms without bound; the cap on the class norms (the norm of the rarest
classes, since norms are monotone) is what regularises it, as ``C`` does for
``LogisticRegression``. It is chosen here on folds of the training data, along
a path of growing caps: each fold's head is warm-started from its solution at
the previous cap, and the path stops once the out-of-fold balanced accuracy has
not improved for ``_PATIENCE`` caps in a row or, where asked (the single
validation split of large problems), at the first cap that scores more than
one standard error below the best (see :func:`decline_z`).
"""

import numpy as np

# The caps tried, in the standardised space (rows of unit root-mean-square
# norm): a factor sqrt(2) apart from 2 to 64. At the small end a head is
# close to a nearest-class-mean classifier; the path stops well before the
# large end on every problem measured (benchmarks/SELECTION.md).
MAX_NORM_GRID = tuple(float(2.0 * 2.0 ** (k / 2)) for k in range(11))
_PATIENCE = 3
# The strengths of the logit adjustment tried at each cap (1: the loss's own).
# The loss adjusts with the training prior of all the rows, but rare classes
# learnt from one or two rows score lower on new rows than on their own, so
# the best post-hoc strength can be above 1 (up to +0.5 points of balanced
# accuracy on HWU64-LT, validation rows; benchmarks/DEFAULT_ABLATION.md).
# Each strength is scored on the same out-of-fold scores: no extra fit.
_LOGIT_ADJUSTMENTS = (0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2)
# How classes that no fold holds out are credited (see credit()).
_CREDIT_RULE = "trend"


def long_tail_folds(y, sample_weight, n_folds, random_state):
    """Fold of each sample for cross-validation on long-tailed labels.

    Every class with at least two samples (of positive weight) spreads them
    over the folds round robin, in random order from a random first fold, so
    each of its folds leaves at least one of its samples in training. Samples
    of classes with a single sample are never held out: their class would be
    missing from the training part, which says nothing about a fit that has
    that sample. Such classes are absent from the validation score.

    The random order comes from one permutation of the samples, drawn before
    looking at the labels, so renaming classes never changes the folds.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Encoded labels.
    sample_weight : ndarray of shape (n_samples,)
    n_folds : int
    random_state : numpy.random.RandomState

    Returns
    -------
    fold : ndarray of shape (n_samples,), dtype=signed int
        ``-1`` for samples that are always in training.
    """
    rank = random_state.permutation(y.shape[0])
    # One small integer per row: at 10^6 rows the fold ids are 1 MB, not 8.
    fold = np.full(y.shape[0], -1, dtype=np.min_scalar_type(-n_folds))
    usable = sample_weight > 0
    for label in np.unique(y[usable]):
        members = np.flatnonzero((y == label) & usable)
        if members.shape[0] < 2:
            continue
        members = members[np.argsort(rank[members])]
        first = rank[members[0]] % n_folds
        fold[members] = (first + np.arange(members.shape[0])) % n_folds
    return fold


def balanced_accuracy(y, pred, sample_weight, unscored=None):
    """Mean over classes of the weighted recall, for classes that can be scored
    and, with ``unscored``, for those that cannot.

    Parameters
    ----------
    y, pred : ndarray of shape (n_samples,)
        Encoded labels and predictions of the held-out rows.
    sample_weight : ndarray of shape (n_samples,)
    unscored : tuple (n_unscored, log_train, log_unscored) or None
        With ``None``: the mean over the classes present in ``y``. Otherwise
        ``n_unscored`` more classes count in the mean: classes never held
        out because they have a single sample. ``log_train[c]`` is the log of
        the training weight that scored class ``c`` had in the folds that held
        it out, and ``log_unscored`` that of the unscored classes in the final
        fit. Each unscored class is credited with :func:`credit`.
    """
    classes = np.unique(y)
    hits = np.bincount(y, weights=sample_weight * (pred == y))[classes]
    totals = np.bincount(y, weights=sample_weight)[classes]
    present = totals > 0
    recall = hits[present] / totals[present]
    if unscored is not None and unscored[0] == "stand_ins":
        return with_stand_ins(classes[present], recall, *unscored[1:])
    if unscored is None or unscored[0] == 0:
        return float(np.mean(recall))
    n_unscored, log_train, log_unscored = unscored
    guess = credit(recall, log_train[classes[present]], log_unscored)
    return float((recall.sum() + n_unscored * guess) / (recall.shape[0] + n_unscored))


def with_stand_ins(classes, recall, n_single, n_classes):
    """Mean of per-class ``recall`` in which the stand-ins (labels from
    ``n_classes`` on) count as the ``n_single`` classes with one sample, each
    with the stand-ins' mean recall."""
    stand_in = classes >= n_classes
    real = recall[~stand_in]
    return float((real.sum() + n_single * recall[stand_in].mean())
                 / (real.shape[0] + n_single))


def row_weights(y, sample_weight, unscored=None):
    """Each held-out row's weight in the balanced accuracy of the scored classes.

    ``sum(row_weights(...) * (pred == y))`` is the mean recall of the classes
    present in ``y`` (with stand-ins weighing as the classes with one sample
    they stand for, as in :func:`with_stand_ins`). Classes credited rather
    than scored (``unscored`` of the trend rule) have no rows and no weight.
    """
    classes, index = np.unique(y, return_inverse=True)
    totals = np.bincount(index, weights=sample_weight)
    class_weight = (totals > 0).astype(float)
    if unscored is not None and unscored[0] == "stand_ins":
        n_single, n_classes = unscored[1], unscored[2]
        stand_in = (classes >= n_classes) & (totals > 0)
        if stand_in.any():
            class_weight[stand_in] = n_single / stand_in.sum()
    per_total = np.divide(class_weight, totals, out=np.zeros_like(totals),
                          where=totals > 0)
    return per_total[index] * sample_weight / max(class_weight.sum(), 1e-300)


def decline_z(weights, right, best_right):
    """The paired statistic of a cap's difference from the best cap, in
    standard errors (negative: the cap is worse).

    A weighted McNemar test on the same held-out rows: with ``d_i`` the change
    in row ``i``'s correctness (-1, 0 or 1) and ``a_i`` its weight in the
    balanced accuracy, ``sum(a d) / sqrt(sum(a^2 d^2))``; 0 where no row
    changed. Rows both caps get right or both get wrong say nothing about the
    difference, so the statistic needs no model of the accuracy itself.
    """
    delta = right.astype(float) - best_right.astype(float)
    spread = float(np.sqrt(np.sum((weights * delta) ** 2)))
    return float(np.sum(weights * delta) / spread) if spread > 0 else 0.0


def credit(recall, log_train, log_unscored):
    """The recall credited to a class that no fold can hold out.

    With ``_CREDIT_RULE = "trend"`` (default): the least-squares line of the
    scored classes' recall against the log of their training weight, read at
    the unscored classes' own training weight (clipped to [0, 1]). Every
    scored class informs it, so it is as precise as the whole score, and it
    follows the trend the cap sets between rare and frequent classes: a cap
    that helps frequent classes at the cost of rare ones steepens the line
    and lowers the credit. ``"rarest"`` (the rule before): the mean recall of
    the scored classes with the least training weight, often a handful of
    classes with one held-out row each (benchmarks/SELECTION.md compares them).

    Parameters
    ----------
    recall, log_train : ndarray of shape (n_scored,)
    log_unscored : float

    Returns
    -------
    float
    """
    if _CREDIT_RULE == "rarest":
        return float(recall[log_train == log_train.min()].mean())
    centred = log_train - log_train.mean()
    spread = float(centred @ centred)
    if spread <= 1e-12 * log_train.shape[0]:
        # Every scored class has the same weight: no trend to read.
        return float(recall.mean())
    slope = float(centred @ (recall - recall.mean())) / spread
    line = recall.mean() + slope * (log_unscored - log_train.mean())
    return float(np.clip(line, 0.0, 1.0))


def select_max_norm(folds, evaluate, grid=MAX_NORM_GRID, patience=None, *,
                    count_ties=True, strengths=(1.0,), unscored=None, forget=None,
                    report=None, z_below=None):
    """Walk the caps of ``grid`` in order; return the best and the path.

    At each cap every logit adjustment strength of ``strengths`` is scored on
    the same out-of-fold predictions; the cap's score is that of its best
    strength (ties to the strength nearest 1).

    Parameters
    ----------
    folds : list
        One opaque fold state per fold.
    evaluate : callable
        ``evaluate(fold, max_norm)`` fits that fold's head at ``max_norm``
        (warm-started from its previous cap) and returns its out-of-fold
        predictions as ``(y, pred, sample_weight)``; ``pred`` has shape
        ``(len(strengths), n_rows)`` (one row of predictions per strength)
        or ``(n_rows,)`` with a single strength.
    grid : sequence of float
    patience : int or None
        Stop after this many caps in a row that do not beat the best
        (``None``: ``_PATIENCE``, read at call time).
    count_ties : bool
        Whether a cap that ties the best counts towards ``patience``. With
        ``False`` only caps that score below the best do (a tie still goes to
        the smaller cap): near the start of the path a few caps can give the
        same predictions, which says nothing about the larger ones.
    strengths : sequence of float
        The logit adjustment strengths that ``pred`` holds, in its order.
    forget : callable or None
        ``forget(max_norm)`` is called once a cap can no longer be chosen, so
        that the caller may drop what it kept for it.
    unscored : tuple or None
        Classes that no fold holds out, passed to :func:`balanced_accuracy`.
    report : callable or None
        ``report(max_norm, score, strength)`` after each cap.
    z_below : float or None
        Also stop at the first cap that does not beat the best and whose
        :func:`decline_z` against the best cap (each at its best strength)
        is below ``-z_below``. ``None``: patience alone stops the path.

    Returns
    -------
    best : float
        The cap with the highest pooled out-of-fold balanced accuracy; ties
        go to the smaller cap (the stronger regularisation).
    strength : float
        The best strength at ``best``.
    tried : list of float
    scores : list of float
        The score of each cap tried, at its best strength.
    best_strengths : list of float
        That strength, for each cap tried.
    """
    if patience is None:
        patience = _PATIENCE
    # Nearest 1 first: a tie keeps the adjustment of the loss.
    preference = np.argsort([abs(s - 1.0) for s in strengths], kind="stable")
    tried, scores, best_strengths = [], [], []
    best, best_strength, best_score, worse = None, None, -np.inf, 0
    best_right = None
    for max_norm in grid:
        parts = [evaluate(fold, max_norm) for fold in folds]
        y = np.concatenate([p[0] for p in parts])
        weight = np.concatenate([p[2] for p in parts])
        pred = np.concatenate([np.reshape(p[1], (len(strengths), -1)) for p in parts],
                              axis=1)
        by_strength = np.array([balanced_accuracy(y, pred[k], weight, unscored)
                                for k in range(len(strengths))])
        k = preference[np.argmax(by_strength[preference])]
        score, strength = float(by_strength[k]), float(strengths[k])
        tried.append(max_norm)
        scores.append(score)
        best_strengths.append(strength)
        if report is not None:
            report(max_norm, score, strength)
        if np.isnan(score):
            # Nothing to compare (no scored class): it beats nothing.
            score = -np.inf
        right = pred[k] == y if z_below is not None else None
        if best is None or score > best_score:
            # The first cap is the best until one scores higher.
            if forget is not None and best is not None:
                forget(best)
            best, best_strength, best_score, worse = max_norm, strength, score, 0
            best_right = right
        else:
            if forget is not None:
                forget(max_norm)
            if count_ties or score < best_score:
                worse += 1
            if worse >= patience:
                break
            if z_below is not None and decline_z(
                    row_weights(y, weight, unscored), right, best_right) < -z_below:
                break
    return best, best_strength, tried, scores, best_strengths
