"""The full-batch solver, its stopping rule and the cross-validated norm cap."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning

from sklearn_samn import SAMNClassifier, _lbfgs, _selection
from sklearn_samn._lbfgs import BlockRows, HeadObjective, minimize_lbfgs
from sklearn_samn._pava import monotone_projection_torch
from sklearn_samn._selection import (
    MAX_NORM_GRID,
    balanced_accuracy,
    credit,
    long_tail_folds,
    select_max_norm,
)
from sklearn_samn._streaming import RowStream
from sklearn_samn._training import build_head

from .conftest import make_long_tailed_blobs


def _problem(seed=0, counts=(40, 20, 10, 5, 2), n_features=6):
    X, y = make_long_tailed_blobs(counts, n_features=n_features, separation=1.5,
                                  seed=seed)
    X = X.astype(np.float32)
    rng = np.random.default_rng(seed)
    weight = rng.uniform(0.5, 2.0, len(y))
    return X, y, weight


def _objective(X, y, weight, rows=None, offset=None, block=7, shift=None, inv_scale=1.0):
    device = torch.device("cpu")
    stream = RowStream(X, device, max_rows=block)
    n_classes = int(y.max()) + 1
    if offset is None:
        offset = np.zeros(n_classes)
    total = weight.sum() if rows is None else weight[rows].sum()
    return HeadObjective(
        stream, BlockRows(len(y), block, device, rows), torch.from_numpy(y),
        torch.from_numpy(weight.astype(np.float32)),
        None if shift is None else torch.as_tensor(shift, dtype=torch.float32),
        inv_scale, offset, total,
    )


def _standardisation(X, standardise):
    """A shift and scale for ``_objective`` and the rows the head then sees."""
    if not standardise:
        return None, 1.0, X.astype(np.float64)
    shift = X.mean(axis=0).astype(np.float64) + 0.25
    inv_scale = 0.6
    return shift, inv_scale, (X.astype(np.float64) - shift) * inv_scale


def _head(X, y, max_norm, dtype=torch.float32, seed=0):
    n_classes = int(y.max()) + 1
    rng = np.random.default_rng(seed)
    state = {
        "directions": rng.normal(size=(n_classes, X.shape[1])),
        "log_norms": rng.normal(size=n_classes),
        "bias": rng.normal(size=n_classes),
    }
    counts = np.bincount(y, minlength=n_classes)
    return build_head("invariant", state, counts, max_norm=max_norm, dtype=dtype), counts


def _reference_loss(X, y, weight, offset, directions, log_norms, bias, counts, max_norm):
    """The documented objective in float64 by autograd: the weighted mean of the
    softmax cross-entropy of ``X @ W.T + bias + offset``, with
    ``W_c = exp(min(PAVA(log_norms)_c, log max_norm)) * v_c / ||v_c||``."""
    q = monotone_projection_torch(log_norms, counts, increasing=False)
    q = torch.clamp(q, max=float(np.log(max_norm)))
    W = torch.exp(q)[:, None] * directions / directions.norm(dim=1, keepdim=True)
    logits = torch.as_tensor(X, dtype=torch.float64) @ W.T + bias
    logits = logits + torch.as_tensor(offset)
    losses = F.cross_entropy(logits, torch.as_tensor(y), reduction="none")
    w = torch.as_tensor(weight)
    return (losses * w).sum() / w.sum()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), max_norm=st.sampled_from([0.5, 2.0, 50.0]),
       subset=st.booleans(), standardise=st.booleans())
@example(seed=1258, max_norm=2.0, subset=True, standardise=False)
def test_objective_and_gradient_match_float64_autograd(seed, max_norm, subset, standardise):
    # With a shift and scale, the head sees (X - shift) * inv_scale; the
    # objective reads raw blocks of X with the head folded onto them.
    X, y, weight = _problem(seed)
    shift, inv_scale, seen = _standardisation(X, standardise)
    rows = np.sort(np.random.default_rng(seed).choice(len(y), 50, replace=False)) \
        if subset else None
    prior = np.bincount(y, weights=weight) / weight.sum()
    offset = np.log(prior)
    objective = _objective(X, y, weight, rows, offset, shift=shift, inv_scale=inv_scale)
    head, counts = _head(X, y, max_norm, seed=seed)
    value = objective(head)

    picked = slice(None) if rows is None else rows
    params = [p.detach().double().requires_grad_() for p in head.parameters()]
    ref = _reference_loss(seen[picked], y[picked], weight[picked], offset, *params,
                          counts, max_norm)
    ref.backward()
    # The package computes in float32: rows' losses carry float32 rounding of
    # their logits, which no longer shrinks with the mean loss once it is small
    # (5.8e-8 off a loss of 0.0058 at seed=1258, max_norm=2, subset=True).
    np.testing.assert_allclose(value, ref.item(), rtol=1e-5, atol=1e-6)
    for p, r in zip(head.parameters(), params):
        np.testing.assert_allclose(p.grad.numpy(), r.grad.numpy(), rtol=1e-3,
                                   atol=1e-5)


def test_minimize_lbfgs_reaches_the_float64_optimum():
    X, y, weight = _problem(1)
    offset = np.log(np.bincount(y, weights=weight) / weight.sum())
    head, counts = _head(X, y, max_norm=3.0)
    n_iter, converged = minimize_lbfgs(
        _objective(X, y, weight, offset=offset), head, tol=1e-5, max_iter=500
    )
    assert converged and 0 < n_iter < 500

    # Reference: SciPy's L-BFGS-B on the float64 objective, from the same start.
    ref_head, _ = _head(X, y, max_norm=3.0, dtype=torch.float64)
    params = list(ref_head.parameters())
    sizes = [p.numel() for p in params]

    def fun(x):
        parts = np.split(x, np.cumsum(sizes)[:-1])
        tensors = [torch.tensor(v.reshape(p.shape), requires_grad=True)
                   for v, p in zip(parts, params)]
        loss = _reference_loss(X, y, weight, offset, *tensors, counts, 3.0)
        loss.backward()
        return loss.item(), np.concatenate([t.grad.numpy().ravel() for t in tensors])

    x0 = np.concatenate([p.detach().numpy().ravel() for p in params])
    ref = minimize(fun, x0, jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-9, "ftol": 1e-15, "maxiter": 5000})
    got = _objective(X, y, weight, offset=offset)(head)
    assert got == pytest.approx(ref.fun, rel=1e-4)
    # Stopped by the gradient test or at float32 rounding of the loss.
    assert max(float(p.grad.abs().max()) for p in head.parameters()) <= 1e-3


def test_stopping_rule_is_the_gradient_test(long_tailed):
    """n_iter_ is honest: a converged fit ends with a small gradient, and a fit
    cut short by max_iter says so with a ConvergenceWarning."""
    X, y = long_tailed
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SAMNClassifier(device="cpu", random_state=0, max_norm=4.0,
                             tol=1e-4).fit(X, y)
    assert 1 <= clf.n_iter_ < 100
    assert len(clf.loss_curve_) == clf.n_iter_
    assert np.all(np.diff(clf.loss_curve_) <= 1e-7 * abs(clf.loss_curve_[0]))

    with pytest.warns(ConvergenceWarning, match="max_iter=3 L-BFGS iterations"):
        short = SAMNClassifier(device="cpu", random_state=0, max_norm=4.0,
                               max_iter=3).fit(X, y)
    assert short.n_iter_ == 3
    # More iterations keep lowering the training loss: the stop was not early
    # because the loss was flat.
    assert clf.loss_curve_[-1] < short.loss_curve_[-1]


def test_tighter_tol_takes_more_iterations(long_tailed):
    X, y = long_tailed
    fits = [SAMNClassifier(device="cpu", random_state=0, max_norm=8.0, tol=tol,
                           max_iter=1000).fit(X, y) for tol in (1e-2, 1e-3, 1e-4)]
    assert fits[0].n_iter_ < fits[1].n_iter_ < fits[2].n_iter_
    assert fits[0].loss_curve_[-1] > fits[1].loss_curve_[-1] > fits[2].loss_curve_[-1]


@settings(max_examples=50, deadline=None)
@given(counts=st.lists(st.integers(1, 12), min_size=2, max_size=8),
       n_folds=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_long_tail_folds_keep_every_class_in_training(counts, n_folds, seed):
    y = np.repeat(np.arange(len(counts)), counts)
    fold = long_tail_folds(y, np.ones(len(y)), n_folds, np.random.RandomState(seed))
    for label, count in enumerate(counts):
        member_folds = fold[y == label]
        if count == 1:
            assert np.all(member_folds == -1)  # singletons are never held out
            continue
        assert np.all(member_folds >= 0)
        for k in range(n_folds):
            # Every fold leaves at least one sample of the class in training.
            assert np.sum(member_folds != k) >= 1
        sizes = np.bincount(member_folds, minlength=n_folds)
        assert sizes.max() - sizes.min() <= 1


def test_zero_weight_samples_are_never_held_out():
    y = np.array([0, 0, 0, 1, 1, 1])
    weight = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    fold = long_tail_folds(y, weight, 2, np.random.RandomState(0))
    assert fold[1] == -1 and fold[5] == -1
    assert sorted(fold[[0, 2]]) == [0, 1] and sorted(fold[[3, 4]]) == [0, 1]


def test_balanced_accuracy_is_weighted_recall_per_present_class():
    y = np.array([0, 0, 0, 2, 2])
    pred = np.array([0, 1, 0, 2, 0])
    weight = np.array([1.0, 1.0, 2.0, 1.0, 3.0])
    assert balanced_accuracy(y, pred, weight) == pytest.approx((3 / 4 + 1 / 4) / 2)


def test_credit_reads_the_recall_trend_at_the_unscored_weight():
    log_train = np.log([1.0, 2.0, 4.0, 8.0])
    # Recall exactly linear in the log weight: the credit is the line's value.
    recall = 0.5 + 0.1 * log_train / np.log(2)
    assert credit(recall, log_train, 0.0) == pytest.approx(0.5)
    assert credit(recall, log_train, np.log(2)) == pytest.approx(0.6)
    # Off the line, least squares: the mean plus the slope times the distance
    # from the mean log weight.
    noisy = recall + np.array([0.05, -0.05, -0.05, 0.05])
    slope, intercept = np.polyfit(log_train, noisy, 1)
    assert credit(noisy, log_train, 0.0) == pytest.approx(intercept)
    # Clipped to a recall.
    assert credit(np.array([0.0, 1.0]), np.log([2.0, 3.0]), 0.0) == 0.0
    assert credit(np.array([1.0, 0.0]), np.log([2.0, 3.0]), 0.0) == 1.0
    # No spread in the weights: no trend, the mean recall.
    assert credit(np.array([0.2, 0.6]), np.log([3.0, 3.0]), 0.0) == pytest.approx(0.4)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(1, 60)), min_size=2, max_size=12),
       st.floats(-5, 5), st.floats(0.5, 3))
def test_credit_ignores_the_scale_of_the_weights_and_the_order_of_classes(pairs, shift,
                                                                          at):
    recall = np.array([r for r, _ in pairs])
    log_train = np.log([w for _, w in pairs])
    got = credit(recall, log_train, np.log(at))
    assert 0.0 <= got <= 1.0
    # Scaling every sample weight adds a constant to every log weight.
    assert credit(recall, log_train + shift, np.log(at) + shift) == pytest.approx(
        got, abs=1e-9)
    order = np.random.default_rng(0).permutation(len(pairs))
    assert credit(recall[order], log_train[order], np.log(at)) == pytest.approx(
        got, abs=1e-9)


def test_the_previous_credit_rule_stays_available(monkeypatch):
    monkeypatch.setattr(_selection, "_CREDIT_RULE", "rarest")
    recall = np.array([0.2, 0.4, 0.9])
    assert credit(recall, np.log([1.0, 1.0, 5.0]), 0.0) == pytest.approx(0.3)


def test_balanced_accuracy_credits_the_unscored_classes():
    # Classes 0 and 1 held out, class 2 never: its credit joins the mean.
    y = np.array([0, 0, 1, 1, 1, 1])
    pred = np.array([0, 1, 1, 1, 1, 1])
    log_train = np.log([1.0, 4.0, 1.0])
    got = balanced_accuracy(y, pred, np.ones(6), (1, log_train, 0.0))
    guess = credit(np.array([0.5, 1.0]), log_train[:2], 0.0)
    assert guess == pytest.approx(0.5)
    assert got == pytest.approx((0.5 + 1.0 + guess) / 3)
    assert balanced_accuracy(y, pred, np.ones(6), (0, log_train, 0.0)) == 0.75


def test_unscored_classes_measure_the_training_weight_of_each_fold():
    # Counts 6, 2 and 1: five folds, round robin.
    y = np.array([0] * 6 + [1] * 2 + [2])
    weight = np.ones(9)
    fold_of = long_tail_folds(y, weight, 5, np.random.RandomState(0))
    folds = [{"held_out": np.flatnonzero(fold_of == k)} for k in range(5)]
    n, log_train, log_unscored = _lbfgs._unscored_classes(y, weight, fold_of, folds, 3)
    assert n == 1 and log_unscored == 0.0
    # Class 0: one fold holds two rows out (4 left), four folds one (5 left).
    assert log_train[0] == pytest.approx((2 * np.log(4) + 4 * np.log(5)) / 6)
    # Class 1: each of its rows was predicted from the other one.
    assert log_train[1] == pytest.approx(0.0)
    # Scaling the weights shifts every log weight alike (the credit ignores it).
    n2, scaled, log_unscored2 = _lbfgs._unscored_classes(y, 3 * weight, fold_of, folds, 3)
    np.testing.assert_allclose(scaled[:2] - log_train[:2], np.log(3))
    assert log_unscored2 - log_unscored == pytest.approx(np.log(3))
    # With one validation split, a class that split does not hold out is
    # credited rather than scored.
    n1, _, log_unscored1 = _lbfgs._unscored_classes(y, weight, fold_of, folds[:1], 3)
    held = set(y[folds[0]["held_out"]])
    assert n1 == 3 - len(held)


def test_select_max_norm_takes_the_best_cap_and_stops_after_patience():
    scores = dict(zip(MAX_NORM_GRID, [0.5, 0.6, 0.7, 0.7, 0.65, 0.7, 0.9, 0.95]))
    asked, forgotten = [], []

    def evaluate(fold, max_norm):
        asked.append(max_norm)
        hits = int(round(scores[max_norm] * 100))
        return np.zeros(100, int), np.r_[np.zeros(hits), np.ones(100 - hits)], \
            np.ones(100)

    best, strength, tried, got, strengths = select_max_norm(
        [None], evaluate, forget=forgotten.append)
    # 0.7 first reached at the third cap; three caps without improvement stop
    # the path before the later 0.9.
    assert best == MAX_NORM_GRID[2] and strength == 1.0
    assert strengths == [1.0] * len(tried)
    assert tried == list(MAX_NORM_GRID[:6]) == asked
    np.testing.assert_allclose(got, [0.5, 0.6, 0.7, 0.7, 0.65, 0.7])
    assert best not in forgotten and set(forgotten) == set(tried) - {best}


def test_select_max_norm_without_counting_ties_stops_at_the_first_decline():
    # Ties with the best (the first two caps here) do not count towards the
    # patience; the first score below the best stops the path at once.
    scores = dict(zip(MAX_NORM_GRID, [0.5, 0.5, 0.6, 0.6, 0.7, 0.65, 0.6] + [0.95] * 4))

    def evaluate(fold, max_norm):
        hits = int(round(scores[max_norm] * 100))
        return np.zeros(100, int), np.r_[np.zeros(hits), np.ones(100 - hits)], \
            np.ones(100)

    best, _, tried, got, _ = select_max_norm([None], evaluate, patience=1,
                                             count_ties=False)
    assert best == MAX_NORM_GRID[4]
    assert tried == list(MAX_NORM_GRID[:6])
    np.testing.assert_allclose(got, [0.5, 0.5, 0.6, 0.6, 0.7, 0.65])
    # Counting ties, the same scores stop the path at the second cap.
    best, _, tried, _, _ = select_max_norm([None], evaluate, patience=1)
    assert best == MAX_NORM_GRID[0] and tried == list(MAX_NORM_GRID[:2])
    # With patience 2, the second decline stops it.
    best, _, tried, _, _ = select_max_norm([None], evaluate, patience=2,
                                           count_ties=False)
    assert best == MAX_NORM_GRID[4] and tried == list(MAX_NORM_GRID[:7])


def test_regression_select_max_norm_keeps_a_cap_when_no_score_is_a_number():
    """Scores that are all NaN never beat the starting -inf: no cap was kept,
    and the fit failed with ``KeyError: None``. The first cap (the strongest
    regularisation) stays the best until a cap scores higher."""
    forgotten = []

    def evaluate(fold, max_norm):
        return np.zeros(4, int), np.zeros(4, int), np.zeros(4)  # no weight: NaN

    with warnings.catch_warnings():
        # The mean recall of no scored class: NumPy's warning, and a NaN score.
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        best, strength, tried, scores, _ = select_max_norm(
            [None], evaluate, forget=forgotten.append)
    assert best == MAX_NORM_GRID[0] and strength == 1.0
    assert tried == list(MAX_NORM_GRID[:4]) and np.isnan(scores).all()
    assert best not in forgotten


def test_regression_weights_spanning_16_digits_do_not_break_the_cap_selection():
    """A class whose two weights span more than float64's precision had a
    training weight of ``weighted - held == 0`` in the fold that held out its
    heavy row: log(0) made every cap's score NaN, and the fit failed with
    ``KeyError: None``."""
    rng = np.random.RandomState(0)
    n_per = [5, 4, 3, 2, 1]
    X = np.vstack([rng.randn(n, 8) + 2 * rng.randn(8) for n in n_per])
    y = np.repeat(np.arange(5), n_per)
    weight = np.ones(y.shape[0])
    weight[y == 3] = [1.0, 1e-20]
    clf = SAMNClassifier(device="cpu", random_state=0).fit(X, y, sample_weight=weight)
    assert np.isfinite(clf.cv_results_["balanced_accuracy"]).all()
    assert clf.max_norm_ in MAX_NORM_GRID


def test_select_max_norm_scores_every_strength_and_keeps_the_best():
    strengths = (0.9, 1.0, 1.1, 1.2)
    # Hits per strength at each cap: the cap's score is its best strength's;
    # a tie goes to the strength nearest 1, then to the smaller cap.
    hits = {MAX_NORM_GRID[0]: (50, 60, 60, 40),
            MAX_NORM_GRID[1]: (70, 60, 70, 65),
            MAX_NORM_GRID[2]: (60, 60, 70, 70),
            MAX_NORM_GRID[3]: (40, 40, 30, 20),
            MAX_NORM_GRID[4]: (10, 20, 30, 40)}

    def evaluate(fold, max_norm):
        pred = np.array([np.r_[np.zeros(h), np.ones(100 - h)] for h in hits[max_norm]])
        return np.zeros(100, int), pred, np.ones(100)

    reported = []
    best, strength, tried, scores, chosen = select_max_norm(
        [None], evaluate, strengths=strengths,
        report=lambda *args: reported.append(args))
    assert tried == list(MAX_NORM_GRID[:5])
    np.testing.assert_allclose(scores, [0.6, 0.7, 0.7, 0.4, 0.4])
    assert chosen == [1.0, 0.9, 1.1, 1.0, 1.2]
    assert (best, strength) == (MAX_NORM_GRID[1], 0.9)
    assert reported[1] == (MAX_NORM_GRID[1], pytest.approx(0.7), 0.9)


def _rows(right):
    """``evaluate``'s answer for one class whose rows are right where ``right`` is."""
    right = np.asarray(right, bool)
    return np.zeros(right.shape[0], int), np.where(right, 0, 1), np.ones(right.shape[0])


def test_select_max_norm_stops_at_a_decline_of_more_than_one_standard_error():
    # Ten rows. The second cap is the best (6 right). The third loses three of
    # its rows and gains two elsewhere: one row worse, z = -1/sqrt(5), no stop.
    # The fourth loses two rows and gains none: z = -2/sqrt(2) < -1, stop,
    # though patience 3 would have walked on to the later 0.9.
    right = {MAX_NORM_GRID[0]: [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
             MAX_NORM_GRID[1]: [1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
             MAX_NORM_GRID[2]: [1, 1, 1, 0, 0, 0, 1, 1, 0, 0],
             MAX_NORM_GRID[3]: [1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
             MAX_NORM_GRID[4]: [1, 1, 1, 1, 1, 1, 1, 1, 1, 0]}
    asked = []

    def evaluate(fold, max_norm):
        asked.append(max_norm)
        return _rows(right.get(max_norm, [0] * 10))

    best, _, tried, scores, _ = select_max_norm([None], evaluate, z_below=1.0)
    assert best == MAX_NORM_GRID[1] and tried == asked == list(MAX_NORM_GRID[:4])
    np.testing.assert_allclose(scores, [0.5, 0.6, 0.5, 0.4])
    # Without the test, patience walks past the decline to the 0.9.
    best, _, tried, _, _ = select_max_norm([None], evaluate)
    assert best == MAX_NORM_GRID[4]


def test_select_max_norm_does_not_stop_at_a_one_row_dip():
    # Losing a single row of the best is z = -1 exactly: within one standard
    # error, whatever the row's weight; patience stops the path instead.
    best_rows = [1, 1, 1, 1, 1, 1, 0, 0]
    dip = [1, 1, 1, 1, 1, 0, 0, 0]
    right = dict(zip(MAX_NORM_GRID, [best_rows, dip, dip, dip, best_rows]))

    def evaluate(fold, max_norm):
        return _rows(right[max_norm])

    best, _, tried, _, _ = select_max_norm([None], evaluate, z_below=1.0)
    assert best == MAX_NORM_GRID[0] and tried == list(MAX_NORM_GRID[:4])


def test_the_decline_test_compares_each_cap_at_its_best_strength():
    # Two strengths; the best cap is right on rows 0-5 at strength 1.1 (its
    # best) and on rows 0-2 at 1.0. The next cap's best strength (1.0) is
    # right on rows 0-4: one row lost against the best's strength, z = -1,
    # no stop. Compared with the wrong strength of the best cap it would
    # look like a gain.
    def evaluate(fold, max_norm):
        at = {MAX_NORM_GRID[0]: ([1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0, 0]),
              MAX_NORM_GRID[1]: ([1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0])}
        at = at.get(max_norm, ([0] * 8, [0] * 8))
        pred = np.array([np.where(np.asarray(r, bool), 0, 1) for r in at])
        return np.zeros(8, int), pred, np.ones(8)

    seen = []
    real = _selection.decline_z

    def recorded(*args):
        seen.append(real(*args))
        return seen[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_selection, "decline_z", recorded)
        best, strength, tried, _, _ = select_max_norm(
            [None], evaluate, strengths=(1.0, 1.1), z_below=1.0)
    assert (best, strength) == (MAX_NORM_GRID[0], 1.1)
    assert seen[0] == pytest.approx(-1.0)
    # The third cap gets nothing right: six rows lost, z = -sqrt(6).
    assert tried == list(MAX_NORM_GRID[:3]) and seen[1] == pytest.approx(-np.sqrt(6))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(2, 40), st.integers(0, 2 ** 31 - 1),
       st.booleans())
def test_row_weights_sum_to_the_balanced_accuracy(n_classes, n_rows, seed, stand_ins):
    """``row_weights @ right`` is the score the walk compares, so the decline
    test measures the same difference (with stand-ins: as with_stand_ins)."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 2 * n_classes if stand_ins else n_classes, n_rows)
    pred = np.where(rng.rand(n_rows) < 0.5, y, -1)
    weight = rng.choice([0.0, 0.5, 1.0, 3.0], n_rows)
    assume(weight.sum() > 0)
    unscored = ("stand_ins", 3, n_classes) if stand_ins else None
    present = np.unique(y[weight > 0])
    assume(not stand_ins or ((present >= n_classes).any() and (present < n_classes).any()))
    a = _selection.row_weights(y, weight, unscored)
    # Rows of zero weight score nothing: drop them, as balanced_accuracy's
    # classes of zero weight are dropped.
    keep = weight > 0
    expected = _selection.balanced_accuracy(y[keep], pred[keep], weight[keep], unscored)
    assert a @ (pred == y) == pytest.approx(expected, abs=1e-12)
    assert a.sum() == pytest.approx(1.0)
    # Renaming the classes (within the real and the stand-in labels) changes nothing.
    perm = np.r_[rng.permutation(n_classes), n_classes + rng.permutation(n_classes)]
    renamed = _selection.row_weights(perm[y], weight, unscored)
    np.testing.assert_allclose(renamed, a, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 50), st.integers(0, 2 ** 31 - 1))
def test_decline_z_has_the_sign_of_the_difference_and_a_unit_scale(n_rows, seed):
    rng = np.random.RandomState(seed)
    a = rng.rand(n_rows)
    right, best = rng.rand(n_rows) < 0.5, rng.rand(n_rows) < 0.5
    z = _selection.decline_z(a, right, best)
    diff = a @ right - a @ best
    assert np.sign(z) == np.sign(diff) or (z == 0 and abs(diff) < 1e-12)
    # The same difference on rows of any common weight scale: same z.
    assert _selection.decline_z(7.5 * a, right, best) == pytest.approx(z)
    # Rows both get right (or wrong) do not move it.
    extra_a = np.r_[a, np.ones(5)]
    assert _selection.decline_z(extra_a, np.r_[right, [1] * 5], np.r_[best, [1] * 5]) \
        == pytest.approx(z)
    assert _selection.decline_z(a, best, best) == 0.0


@pytest.mark.parametrize("standardise", [False, True])
@pytest.mark.parametrize("block", [7, 20, 1000])
def test_objective_predicts_each_strength_with_its_own_offset(block, standardise):
    # Out of fold, a strength s moves the scores by (1 - s) times the
    # objective's logit offset (the fold's log prior), in every block and in
    # every slice of a block that the shift is applied to.
    X, y, weight = _problem(counts=(60, 30, 12, 6, 3))
    shift, inv_scale, seen = _standardisation(X, standardise)
    train = np.arange(len(y)) % 3 != 0
    counts = np.bincount(y, weights=weight * train)
    offset = np.log(counts / counts.sum())
    objective = _objective(X, y, weight * train, rows=np.flatnonzero(train), offset=offset,
                           shift=shift, inv_scale=inv_scale)
    head, _ = _head(X, y, max_norm=3.0)
    held_out = np.flatnonzero(~train)
    strengths = (0.9, 1.0, 1.7)
    got = objective.predict(head, BlockRows(len(y), block, torch.device("cpu"), held_out),
                            strengths)
    with torch.no_grad():
        w, b = (t.double().numpy() for t in head())
    scores = seen[held_out] @ w.T + b
    assert got.shape == (3, len(held_out))
    for k, s in enumerate(strengths):
        np.testing.assert_array_equal(got[k], np.argmax(scores + (1 - s) * offset, axis=1))
    # A stronger adjustment moves predictions to the rarer classes.
    assert np.mean(got[2]) > np.mean(got[0])


def test_default_chooses_the_cap_by_cross_validation(long_tailed):
    X, y = long_tailed
    clf = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    results = clf.cv_results_
    assert set(results) == {"max_norm", "balanced_accuracy", "logit_adjustment", "n_iter"}
    assert len(results["max_norm"]) == len(results["balanced_accuracy"]) >= 1
    best = results["max_norm"][np.argmax(results["balanced_accuracy"])]
    assert clf.max_norm_ == best
    assert np.all(results["n_iter"] >= 1)
    # In the head's standardised space no class norm exceeds the cap.
    centred = X - X.mean(axis=0)
    scale = np.sqrt(np.mean(np.sum(centred**2, axis=1)))
    norms = np.linalg.norm(clf.coef_ * scale, axis=1)
    assert np.all(norms <= clf.max_norm_ * (1 + 1e-5))


def test_the_chosen_strength_moves_only_the_intercepts(long_tailed, monkeypatch):
    # The strength is chosen on the folds' scores; the final fit is the same
    # head, its intercepts lowered by (strength - 1) log(training prior).
    X, y = long_tailed
    # Every cap scores the same, so both paths keep the first cap.
    monkeypatch.setattr(_selection, "balanced_accuracy", lambda *args, **kwargs: 0.5)
    fits = {}
    for strength in (1.0, 1.3):
        monkeypatch.setattr(_selection, "_LOGIT_ADJUSTMENTS", (strength,))
        fits[strength] = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    plain, strong = fits[1.0], fits[1.3]
    assert (plain.logit_adjustment_, strong.logit_adjustment_) == (1.0, 1.3)
    assert strong.max_norm_ == plain.max_norm_ == MAX_NORM_GRID[0]
    np.testing.assert_array_equal(strong.coef_, plain.coef_)
    log_prior = np.log(np.bincount(y) / len(y))
    np.testing.assert_allclose(strong.intercept_, plain.intercept_ - 0.3 * log_prior,
                               rtol=0, atol=1e-9)


def test_the_default_reports_the_strength_it_chose(long_tailed):
    X, y = long_tailed
    clf = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    results = clf.cv_results_
    best = np.argmax(results["balanced_accuracy"])
    assert clf.logit_adjustment_ == results["logit_adjustment"][best]
    assert set(results["logit_adjustment"]) <= set(_selection._LOGIT_ADJUSTMENTS)
    # A given cap keeps the loss's own strength; plain cross-entropy has none.
    assert SAMNClassifier(device="cpu", max_norm=4.0).fit(X, y).logit_adjustment_ == 1.0
    ce = SAMNClassifier(device="cpu", random_state=0, loss="cross_entropy").fit(X, y)
    assert ce.logit_adjustment_ == 0.0 and not np.any(ce.cv_results_["logit_adjustment"])


def test_balanced_classes_skip_the_strengths(monkeypatch):
    # With equal counts a strength moves every score alike: only 1 is scored.
    X, y = make_long_tailed_blobs(counts=(12, 12, 12, 12), seed=1)
    calls = []
    score = _selection.balanced_accuracy
    monkeypatch.setattr(_selection, "balanced_accuracy",
                        lambda *a, **k: calls.append(1) or score(*a, **k))
    clf = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    assert clf.logit_adjustment_ == 1.0
    assert len(calls) == len(clf.cv_results_["max_norm"])


def test_a_given_cap_skips_the_cross_validation(long_tailed):
    X, y = long_tailed
    clf = SAMNClassifier(device="cpu", random_state=0, max_norm=5.0).fit(X, y)
    assert clf.cv_results_ is None and clf.max_norm_ == 5.0
    adam = SAMNClassifier(device="cpu", random_state=0, solver="adam",
                          max_iter=5).fit(X, y)
    assert adam.cv_results_ is None and adam.max_norm_ is None


def test_large_data_use_one_validation_split(long_tailed, monkeypatch):
    X, y = long_tailed
    calls = {"n": 0}
    real = _lbfgs.minimize_lbfgs

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(_lbfgs, "minimize_lbfgs", counting)
    clf = SAMNClassifier(device="cpu", random_state=0, cv=4).fit(X, y)
    n_caps = len(clf.cv_results_["max_norm"])
    assert calls["n"] == 4 * n_caps + 1
    monkeypatch.setattr(_lbfgs, "_SINGLE_SPLIT_ABOVE", len(y) - 1)
    calls["n"] = 0
    clf = SAMNClassifier(device="cpu", random_state=0, cv=4).fit(X, y)
    assert calls["n"] == len(clf.cv_results_["max_norm"]) + 1


@pytest.mark.parametrize("single_split, patience", [(False, None), (True, None),
                                                    (True, 1)])
def test_where_the_cap_path_stops(monkeypatch, single_split, patience):
    # Blobs on which both paths stop before the grid's end, the single split's
    # after caps that tie its best.
    X, y = make_long_tailed_blobs(counts=(60, 30, 15, 8, 4, 2), separation=1.5, seed=2)
    if single_split:
        monkeypatch.setattr(_lbfgs, "_SINGLE_SPLIT_ABOVE", len(y) - 1)
    # The study switch of benchmarks/single_split.py (off by default).
    monkeypatch.setattr(_lbfgs, "_SINGLE_SPLIT_PATIENCE", patience)
    scores = SAMNClassifier(device="cpu", random_state=0, cv=4).fit(X, y) \
        .cv_results_["balanced_accuracy"]
    running_best = np.maximum.accumulate(scores)
    below = np.flatnonzero(scores[1:] < running_best[:-1]) + 1
    assert scores.shape[0] < len(MAX_NORM_GRID)
    if patience == 1:
        # Every cap but the last ties or beats the best before it; the last
        # is the first below it.
        assert below.tolist() == [scores.shape[0] - 1]
        assert np.any(scores[1:-1] == running_best[:-2])  # ties did not stop it
    else:
        # Three caps in a row that do not beat the best.
        assert np.all(scores[-3:] <= running_best[-4])


def test_the_single_split_stops_at_a_decline_of_more_than_one_standard_error(monkeypatch):
    # Blobs on which the single split's second cap is well below its first.
    X, y = make_long_tailed_blobs(counts=(40, 30, 20, 10, 6, 4, 3, 2), separation=1.5,
                                  seed=1)
    monkeypatch.setattr(_lbfgs, "_SINGLE_SPLIT_ABOVE", len(y) - 1)
    seen = []
    real = _selection.decline_z

    def recorded(*args):
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(_selection, "decline_z", recorded)
    fitted = SAMNClassifier(device="cpu", random_state=0, cv=4).fit(X, y)
    tried = fitted.cv_results_["max_norm"]
    # Tested at every cap that did not beat the best; the last one stopped it.
    assert len(seen) >= 1 and seen[-1] < -1 and all(z >= -1 for z in seen[:-1])
    monkeypatch.setattr(_lbfgs, "_SINGLE_SPLIT_STOP_Z", None)
    patient = SAMNClassifier(device="cpu", random_state=0, cv=4).fit(X, y)
    # Patience alone walks on; the walk it shares is the same, cap for cap.
    longer = patient.cv_results_
    assert len(longer["max_norm"]) > len(tried)
    for key, value in fitted.cv_results_.items():
        np.testing.assert_array_equal(longer[key][:len(tried)], value)
    assert fitted.max_norm_ == patient.max_norm_
    np.testing.assert_array_equal(fitted.coef_, patient.coef_)
    # The folds' path (small data) never applies the test.
    seen.clear()
    monkeypatch.setattr(_lbfgs, "_SINGLE_SPLIT_STOP_Z", 1.0)
    monkeypatch.setattr(_lbfgs, "_SINGLE_SPLIT_ABOVE", len(y))
    SAMNClassifier(device="cpu", random_state=0, cv=4).fit(X, y)
    assert seen == []


def test_carried_curvature_keeps_the_last_pairs_and_reaches_the_same_optimum():
    X, y, weight = _problem(4)
    objective = _objective(X, y, weight)
    carried = {"steps": [], "changes": [], "rhos": []}
    # Small caps: the loss stays far from zero, where float32 decides the stop.
    head, _ = _head(X, y, max_norm=0.5)
    minimize_lbfgs(objective, head, tol=1e-5, max_iter=500, curvature=carried)
    n_params = sum(p.numel() for p in head.parameters())
    assert 0 < len(carried["steps"]) <= _lbfgs._HISTORY
    assert len(carried["changes"]) == len(carried["rhos"]) == len(carried["steps"])
    for s, y_change, rho in zip(carried["steps"], carried["changes"], carried["rhos"]):
        assert s.shape == y_change.shape == (n_params,)
        # Only pairs of positive curvature are kept: rho = 1 / (s . y) > 0.
        assert rho == pytest.approx(1.0 / float(s.dot(y_change)), rel=1e-5) and rho > 0

    # The next cap of a path, from the same point, with and without the pairs.
    fresh = _head(X, y, max_norm=0.5)[0]
    fresh.load_state_dict(head.state_dict())
    for h in (head, fresh):
        h.max_norm = 1.0
    n_carried, ok_carried = minimize_lbfgs(objective, head, tol=1e-5, max_iter=500,
                                           curvature=carried)
    n_fresh, ok_fresh = minimize_lbfgs(objective, fresh, tol=1e-5, max_iter=500)
    assert ok_carried and ok_fresh and n_carried > 0 and n_fresh > 0
    assert objective(head) == pytest.approx(objective(fresh), rel=1e-4)


def test_carried_curvature_is_dropped_when_stuck_norms_restart_the_fit(monkeypatch):
    X, y, weight = _problem(5)
    head, _ = _head(X, y, max_norm=3.0)
    carried = {"steps": [], "changes": [], "rhos": []}
    seen = []
    real = _lbfgs.minimize_lbfgs

    def spy(*args, curvature=None, **kwargs):
        seen.append(None if curvature is None else len(curvature["steps"]))
        return real(*args, curvature=curvature, **kwargs)

    stuck = iter([True])
    monkeypatch.setattr(_lbfgs, "minimize_lbfgs", spy)
    monkeypatch.setattr(_lbfgs, "_free_stuck_norms", lambda *a: next(stuck, False))
    _lbfgs.minimize_head(_objective(X, y, weight), head, tol=1e-5, max_iter=500,
                         curvature=carried)
    # The first round starts with none; the restart after freeing the norms
    # starts with none again, not with the pairs of the parameters before.
    assert seen == [0, 0]
    assert len(carried["steps"]) > 0


@pytest.mark.parametrize("carry", [False, True])
def test_the_cap_path_carries_curvature_only_when_asked(monkeypatch, long_tailed, carry):
    # The study switch of benchmarks/path_cost_study.py (off by default).
    assert _lbfgs._CARRY_CURVATURE is False
    monkeypatch.setattr(_lbfgs, "_CARRY_CURVATURE", carry)
    X, y = long_tailed
    handed = []
    real = _lbfgs.minimize_head

    def spy(objective, head, *, curvature=None, **kwargs):
        handed.append((objective.rows.n_rows < len(y), curvature))
        return real(objective, head, curvature=curvature, **kwargs)

    monkeypatch.setattr(_lbfgs, "minimize_head", spy)
    clf = SAMNClassifier(device="cpu", random_state=0, cv=3).fit(X, y)
    folds = [c for in_cv, c in handed if in_cv]
    assert len(folds) == 3 * len(clf.cv_results_["max_norm"])
    # The final fit never gets the folds' pairs.
    assert [c for in_cv, c in handed if not in_cv] == [None]
    if carry:
        # One dict per fold, handed again at every cap.
        assert len({id(c) for c in folds}) == 3 and all(c is not None for c in folds)
    else:
        assert all(c is None for c in folds)
    norms = np.linalg.norm(clf.coef_, axis=1)
    order = np.argsort(clf.class_count_, kind="stable")
    assert np.all(np.diff(norms[order]) <= 1e-6 * norms.max())


def test_every_class_a_singleton_keeps_the_strongest_cap():
    X = np.eye(4) + 0.1
    y = np.arange(4)
    clf = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    assert clf.max_norm_ == MAX_NORM_GRID[0]
    assert clf.cv_results_["max_norm"].size == 0
    assert np.array_equal(clf.predict(X), y)


def test_batch_size_needs_a_minibatch_solver(long_tailed):
    X, y = long_tailed
    with pytest.raises(ValueError, match="batch_size is for the minibatch solvers"):
        SAMNClassifier(device="cpu", batch_size=16).fit(X, y)


def test_paper_variant_has_no_cap(long_tailed):
    X, y = long_tailed
    with pytest.raises(ValueError, match="published parametrisation has no cap"):
        SAMNClassifier(device="cpu", variant="paper", max_norm=3.0).fit(X, y)


def test_lbfgs_fit_minimises_the_weighted_logit_adjusted_loss(long_tailed):
    """End to end: the last loss reported is the documented objective of the
    fitted head: the weighted mean cross-entropy of scores + log(prior), the
    prior being the sample-weighted class frequencies (float64 reference)."""
    X, y = long_tailed
    weight = np.where(y == 1, 3.0, 1.0) * np.linspace(0.5, 1.5, len(y))
    clf = SAMNClassifier(device="cpu", random_state=0, max_norm=6.0).fit(
        X, y, sample_weight=weight
    )
    prior = np.bincount(y, weights=weight) / weight.sum()
    scores = X @ clf.coef_.T + clf.intercept_ + np.log(prior)
    scores -= scores.max(axis=1, keepdims=True)
    losses = np.log(np.exp(scores).sum(axis=1)) - scores[np.arange(len(y)), y]
    assert clf.loss_curve_[-1] == pytest.approx(np.average(losses, weights=weight),
                                                rel=1e-5)
    # Plain cross-entropy: no offset.
    ce = SAMNClassifier(device="cpu", random_state=0, max_norm=6.0,
                        loss="cross_entropy").fit(X, y, sample_weight=weight)
    scores = X @ ce.coef_.T + ce.intercept_
    scores -= scores.max(axis=1, keepdims=True)
    losses = np.log(np.exp(scores).sum(axis=1)) - scores[np.arange(len(y)), y]
    assert ce.loss_curve_[-1] == pytest.approx(np.average(losses, weights=weight),
                                               rel=1e-5)


def test_regression_a_fit_from_a_good_start_is_not_stopped_by_its_first_step(long_tailed):
    # The first L-BFGS step has no curvature to scale it; a short first step
    # from the class-mean start once ended the fit after one iteration by the
    # relative-decrease test, far from the gradient test.
    X, y = long_tailed
    clf = SAMNClassifier(device="cpu", random_state=0, max_norm=2.0).fit(X, y)
    assert clf.n_iter_ > 1
    objective_calls = []
    real = _lbfgs.minimize_lbfgs

    def check(objective, head, **kwargs):
        result = real(objective, head, **kwargs)
        objective_calls.append(max(float(p.grad.abs().max()) for p in head.parameters()))
        return result

    import sklearn_samn._lbfgs as module
    module.minimize_lbfgs, saved = check, module.minimize_lbfgs
    try:
        SAMNClassifier(device="cpu", random_state=0, max_norm=2.0, tol=1e-4).fit(X, y)
    finally:
        module.minimize_lbfgs = saved
    assert objective_calls[-1] <= 1e-3


@settings(max_examples=200, deadline=None)
@given(
    curvature=st.floats(1e-3, 1e3),
    slope=st.floats(-1e3, -1e-3),
    fraction=st.floats(1e-3, 1.79),
    errors=st.tuples(st.floats(-0.5, 0.5), st.floats(-0.5, 0.5)),
    value=st.floats(-10.0, 10.0),
)
def test_line_search_accepts_steps_whose_values_are_within_rounding(
        curvature, slope, fraction, errors, value):
    """Along phi(t) = value + slope t + curvature t^2, a step up to 1.79 times
    the minimiser is accepted even when both values carry rounding errors of
    up to half the noise level, which can make the Armijo test fail when
    the true decrease is below the noise (Hager and Zhang's approximate
    Wolfe condition). The slope test's bound, (2 delta - 1) phi'(0), is met
    with equality at exactly 1.8 times the minimiser, where one rounding
    of phi'(t) decides; a random (not CI's derandomised) run found
    curvature=1, slope=-0.02, fraction=1.8 rejected by 4e-18."""
    best = -slope / (2 * curvature)
    t = fraction * best
    decrease = -(slope * t + curvature * t * t)  # >= 0 for t <= 2 best
    noise = max(decrease, 1e-12) * 4
    start = value + errors[0] * noise
    at_t = value - decrease + errors[1] * noise
    assert _lbfgs._acceptable(start, slope, t, at_t, slope + 2 * curvature * t, noise)


@settings(max_examples=200, deadline=None)
@given(
    curvature=st.floats(1e-3, 1e3),
    slope=st.floats(-1e3, -1e-3),
    fraction=st.floats(2.5, 100.0),
)
def test_line_search_rejects_overshooting_steps(curvature, slope, fraction):
    """A step well past the minimiser of a quadratic is rejected, whatever the
    noise level, when its value rose above the start by more than the noise,
    or when its slope shows the overshoot."""
    t = fraction * (-slope / (2 * curvature))
    at_t = slope * t + curvature * t * t  # > 0: above the start
    new_slope = slope + 2 * curvature * t
    assert not _lbfgs._acceptable(0.0, slope, t, at_t, new_slope, 0.5 * at_t)
    assert not _lbfgs._acceptable(0.0, slope, t, at_t, new_slope, 2.0 * at_t)


def test_better_start_keeps_the_lower_objective_and_its_gradient():
    X, y, weight = _problem(3)
    objective = _objective(X, y, weight)
    good, _ = _head(X, y, max_norm=3.0)
    minimize_lbfgs(objective, good, tol=1e-4, max_iter=50)
    poor, _ = _head(X, y, max_norm=3.0)
    for heads in ([good, poor], [poor, good]):
        head, (value, grad) = _lbfgs._better_start(objective, heads)
        assert head is good
        # The value and gradient handed to the solver are those of the kept head.
        assert value == pytest.approx(objective(good), rel=1e-6)
        np.testing.assert_allclose(
            grad.numpy(), torch.cat([p.grad.reshape(-1) for p in good.parameters()]),
            rtol=1e-5, atol=1e-8)


def test_better_start_skips_a_start_whose_objective_is_not_finite():
    X, y, weight = _problem(3)
    objective = _objective(X, y, weight)
    head, _ = _head(X, y, max_norm=3.0)
    broken, _ = _head(X, y, max_norm=3.0)
    with torch.no_grad():
        broken.bias[0] = float("nan")
    assert _lbfgs._better_start(objective, [broken, head])[0] is head
    kept, start = _lbfgs._better_start(objective, [broken])
    assert kept is broken and start is None


def test_final_fit_after_a_single_split_starts_from_the_lower_objective(
        long_tailed, monkeypatch):
    """Above _SINGLE_SPLIT_ABOVE rows the final fit starts from the folds' head
    or from the class means at the chosen cap, whichever has the lower
    objective on all the rows; with that start given, the solver does not
    evaluate it again."""
    X, y = long_tailed
    monkeypatch.setattr(_lbfgs, "_SINGLE_SPLIT_ABOVE", len(y) - 1)
    seen = []
    real_better, real_minimize = _lbfgs._better_start, _lbfgs.minimize_lbfgs

    def better(objective, heads):
        values = [objective(head) for head in heads]
        head, start = real_better(objective, heads)
        seen.append((values, start[0]))
        return head, start

    def minimize(objective, head, **kwargs):
        if kwargs.get("start") is not None:
            value, grad = kwargs["start"]
            assert value == pytest.approx(objective(head), rel=1e-6)
        return real_minimize(objective, head, **kwargs)

    monkeypatch.setattr(_lbfgs, "_better_start", better)
    monkeypatch.setattr(_lbfgs, "minimize_lbfgs", minimize)
    clf = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    (values, chosen), = seen
    assert len(values) == 2 and chosen == pytest.approx(min(values), rel=1e-6)
    # The fit ends no higher than where it started.
    assert clf.loss_curve_[-1] <= chosen * (1 + 1e-6)


# Stand-ins for the classes with one sample --------------------------------------


def test_stand_ins_keep_one_training_row_and_score_the_others():
    y = np.repeat(np.arange(4), [12, 7, 2, 1])
    sample_weight = np.ones(len(y))
    sample_weight[3] = 0.0  # a row of class 0 that does not count
    n_single, order, rank = _lbfgs._stand_in_order(y, sample_weight, 5, 4,
                                                   np.random.RandomState(0))
    # One class with one sample; classes 0 and 1 have more than 5 samples.
    assert n_single == 1 and sorted(order.tolist()) == [0, 1]
    fold_of = long_tail_folds(y, sample_weight, 5, np.random.RandomState(0))
    before = sample_weight * (fold_of != 0)
    weight = before.copy()
    label = _lbfgs._make_stand_ins(y, sample_weight, weight, [1], rank, first_label=8)
    kept = np.flatnonzero((y == 1) & (weight > 0))
    assert kept.shape == (1,)
    assert rank[kept[0]] == rank[(y == 1) & (before > 0)].min()
    # Every other row of the class is scored as a stand-in, held out or not.
    np.testing.assert_array_equal(np.flatnonzero(label == 9),
                                  np.setdiff1d(np.flatnonzero(y == 1), kept))
    assert np.all(label[y != 1] == -1)
    np.testing.assert_array_equal(weight[y != 1], before[y != 1])


@settings(max_examples=6, deadline=None)
@given(st.permutations(range(6)), st.integers(0, 5))
def test_stand_ins_do_not_depend_on_the_names_of_the_classes(perm, seed):
    perm = np.asarray(perm)
    y = np.repeat(np.arange(6), [14, 9, 8, 7, 1, 1])
    weight = np.ones(len(y))
    a = _lbfgs._stand_in_order(y, weight, 5, 6, np.random.RandomState(seed))
    b = _lbfgs._stand_in_order(perm[y], weight, 5, 6, np.random.RandomState(seed))
    assert a[0] == b[0] == 2
    np.testing.assert_array_equal(perm[a[1]], b[1])
    np.testing.assert_array_equal(a[2], b[2])


def test_balanced_accuracy_counts_stand_ins_as_the_one_sample_classes():
    # Classes 0 and 1 scored as themselves; labels 5 and 6 (n_classes = 4 and
    # up) are stand-ins, for three classes with one sample.
    y = np.array([0, 0, 1, 1, 5, 5, 5, 6])
    pred = np.array([0, 1, 1, 1, 5, 5, -1, -1])
    got = balanced_accuracy(y, pred, np.ones(8), ("stand_ins", 3, 4))
    stand_in_recall = (2 / 3 + 0) / 2
    assert got == pytest.approx((1 / 2 + 1 + 3 * stand_in_recall) / (2 + 3))


def test_the_trend_credit_stays_available(monkeypatch):
    X, y = make_long_tailed_blobs(counts=(60, 30, 12, 6, 1, 1), n_features=6, seed=0)
    monkeypatch.setattr(_lbfgs, "_STAND_INS", False)
    trend = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    monkeypatch.setattr(_lbfgs, "_STAND_INS", True)
    stand_ins = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    assert len(stand_ins.cv_results_["max_norm"]) >= 1
    assert not np.allclose(trend.cv_results_["balanced_accuracy"][0],
                           stand_ins.cv_results_["balanced_accuracy"][0])


def test_stand_ins_rank_with_the_rarest_classes_in_the_norm_order(monkeypatch):
    from sklearn_samn import _training

    X, y = make_long_tailed_blobs(counts=(60, 30, 12, 8, 1, 1), n_features=6, seed=0)
    true = np.bincount(y).astype(float)
    seen = []
    build = _training.build_head

    def spy(variant, state, counts, *args, **kwargs):
        seen.append(np.asarray(counts, dtype=float).copy())
        return build(variant, state, counts, *args, **kwargs)

    monkeypatch.setattr(_training, "build_head", spy)
    SAMNClassifier(device="cpu", random_state=0, max_iter=5).fit(X, y)
    # Two one-sample classes: ceil(2 / 5) = 1 stand-in a fold, while the four
    # classes with more than five samples last (so four folds), each counted as
    # the rarest (1) in its fold's order, a different class each time.
    changed = [counts for counts in seen if not np.array_equal(counts, true)]
    assert len(changed) == 4
    stand_ins = []
    for counts in changed:
        (c,) = np.flatnonzero(counts != true)
        assert counts[c] == 1 and true[c] > 5
        stand_ins.append(c)
    assert sorted(stand_ins) == [0, 1, 2, 3]


def test_a_single_validation_split_scores_its_share_of_stand_ins(monkeypatch):
    X, y = make_long_tailed_blobs(counts=(60, 30, 20, 12, 8, 1, 1, 1, 1, 1, 1),
                                  n_features=6, seed=0)
    monkeypatch.setattr(_lbfgs, "_SINGLE_SPLIT_ABOVE", len(y) - 1)
    calls = []
    score = _selection.balanced_accuracy

    def spy(labels, pred, sample_weight, unscored=None):
        calls.append((np.unique(labels), unscored))
        return score(labels, pred, sample_weight, unscored)

    monkeypatch.setattr(_selection, "balanced_accuracy", spy)
    clf = SAMNClassifier(device="cpu", random_state=0, max_iter=5).fit(X, y)
    # Once per cap and logit adjustment strength.
    assert len(calls) == len(clf.cv_results_["max_norm"]) * len(_selection._LOGIT_ADJUSTMENTS)
    for labels, unscored in calls:
        # Six one-sample classes, one split of five folds: ceil(6 / 5) = 2
        # stand-ins, still counted as six classes.
        assert unscored == ("stand_ins", 6, 11)
        assert np.sum(labels >= 11) == 2


# Norms the projection's backward cannot move -----------------------------------


def _overlapping_classes(seed, sizes, n_features, spread):
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.randn(n, n_features) + spread * rng.randn(n_features)
                   for n in sizes])
    return X, np.repeat(np.arange(len(sizes)), sizes)


def _loss(clf, X, y):
    """The logit-adjusted loss of a fitted head, in float64."""
    prior = np.bincount(y) / y.shape[0]
    scores = X @ clf.coef_.T + clf.intercept_ + np.log(prior)
    scores -= scores.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(scores).sum(axis=1)) - scores[np.arange(y.shape[0]), y]))


def _restarted_loss(clf, X, y):
    """The loss a fit at the same cap reaches from ``clf``'s own solution."""
    again = SAMNClassifier(device="cpu", random_state=0, max_norm=clf.max_norm_)
    return _loss(again.fit(X, y, coef_init=clf.coef_, intercept_init=clf.intercept_), X, y)


def test_regression_norms_started_above_the_cap_come_down_to_the_optimum():
    """Free log-norms above the cap get no gradient through the clip: a fit
    started there (coef_init with large norms) stopped at loss 0.87060, where
    the constrained optimum, which a restart from that solution reached, is
    0.86654; it said it had converged."""
    X, y = _overlapping_classes(0, [400, 200, 100], 2, 0.5)
    free = SAMNClassifier(device="cpu", random_state=0, max_norm=None).fit(X, y)
    large = 20.0 * free.coef_ / np.linalg.norm(free.coef_, axis=1, keepdims=True)
    clf = SAMNClassifier(device="cpu", random_state=0, max_norm=3.8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y, coef_init=large)
    assert _loss(clf, X, y) <= _restarted_loss(clf, X, y) + 1e-5
    assert _loss(clf, X, y) < 0.8670


def test_regression_classes_pooled_out_of_order_part_at_the_optimum():
    """Classes pooled by the projection with their free log-norms out of order
    all get the block's mean gradient and never part: at a cap of 8 that
    none of the optimum's norms reach, the fit stopped at loss 1.08380, not
    1.05976 (the optimum with or without the cap)."""
    sizes = (300 * 0.6 ** np.arange(5)).astype(int) + 3
    rng = np.random.RandomState(3)
    rng.randint(3, 8), rng.randint(2, 10)  # the draws of the first report
    X = np.vstack([rng.randn(n, 2) + rng.uniform(0.3, 1.5) * rng.randn(2) for n in sizes])
    y = np.repeat(np.arange(5), sizes)
    clf = SAMNClassifier(device="cpu", random_state=0, max_norm=8.0).fit(X, y)
    free = SAMNClassifier(device="cpu", random_state=0, max_norm=None).fit(X, y)
    assert clf.loss_curve_[-1] < 1.0610
    np.testing.assert_allclose(clf.loss_curve_[-1], free.loss_curve_[-1], atol=1e-5)
    norms = np.linalg.norm(clf.coef_, axis=1)
    assert np.all(np.diff(norms) >= -1e-6 * norms.max())  # still monotone


# derandomize: the draws are the same in every run. Random draws fail in
# about 1 of 600 (5 of 3,000: seeds 0-599 at caps 1-32), by 3.5e-4 to 2.3e-3,
# where the float32 decrease rule stops a fit whose gradient is still above
# tol (the known limit below); a draw that fails by chance would make CI fail
# by chance.
@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.integers(0, 10_000), st.sampled_from([1.0, 2.0, 4.0, 8.0, 32.0, None]))
def test_a_fit_ends_where_no_allowed_move_of_the_norms_lowers_the_loss(seed, max_norm):
    """The optimality condition of the constrained norms holds at the end of
    every fit: the gradient w.r.t. the log-norms used, projected on the
    moves the order and the cap allow, is within tol (so a restart from the
    solution finds nothing more than L-BFGS's float32 stopping rules leave:
    the failures this guards against were 4e-3 and 2e-2)."""
    rng = np.random.RandomState(seed)
    sizes = rng.randint(2, 60, size=rng.randint(3, 7))
    X, y = _overlapping_classes(seed, sizes, rng.randint(2, 6), rng.uniform(0.2, 1.5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf = SAMNClassifier(device="cpu", random_state=0, max_norm=max_norm,
                             max_iter=500).fit(X, y)
    # A fit that ran out of iterations says so; the property is of those that
    # stop on their own (2 of 450 draws did not, on nearly separable rows).
    assume(not any(issubclass(w.category, ConvergenceWarning) for w in caught))
    if max_norm is not None:
        assert _loss(clf, X, y) <= _restarted_loss(clf, X, y) + 2e-4


def _drawn_problem(seed):
    """The problems of the property test above."""
    rng = np.random.RandomState(seed)
    sizes = rng.randint(2, 60, size=rng.randint(3, 7))
    return _overlapping_classes(seed, sizes, rng.randint(2, 6), rng.uniform(0.2, 1.5))


def test_regression_a_short_direction_row_does_not_stop_the_fit():
    """A quasi-Newton step shortened the direction row of the rarest class to
    3e-4 beside rows of 3: its gradient grew as one over its length, the line
    search found no decrease at float32 precision, and the fit stopped at
    0.2892 with a gradient of 1.4, where a restart reached 0.2841. It said
    it had converged (found by the property test above, seed 185, cap 32)."""
    X, y = _drawn_problem(185)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SAMNClassifier(device="cpu", random_state=0, max_norm=32.0,
                             max_iter=500).fit(X, y)
    assert _loss(clf, X, y) <= _restarted_loss(clf, X, y) + 1e-5
    assert _loss(clf, X, y) < 0.2845


def test_short_directions_are_rescaled_only_where_the_gradient_test_failed():
    X, y, weight = _problem(6)
    head, _ = _head(X, y, max_norm=3.0)
    _objective(X, y, weight)(head)
    with torch.no_grad():
        head.directions[0].mul_(1e-4)
    before = head.directions.detach().clone()
    # The gradient test met: nothing to do, whatever the rows' lengths.
    assert not _lbfgs._reset_short_directions(head, tol=1e9)
    assert torch.equal(head.directions, before)
    # Failed, with a row under a tenth of the longest: unit rows, same head.
    weights = head()[0].detach().clone()
    assert _lbfgs._reset_short_directions(head, tol=0.0)
    np.testing.assert_allclose(head.directions.norm(dim=1).detach().numpy(), 1.0,
                               rtol=1e-6)
    np.testing.assert_allclose(head()[0].detach().numpy(), weights.numpy(), rtol=1e-5,
                               atol=1e-7)
    # Failed, with rows of similar lengths (as at the default's stops on the
    # dev sets, where the shortest was at least 0.54 of the longest): kept.
    with torch.no_grad():
        head.directions[0].mul_(0.5)
    _objective(X, y, weight)(head)
    kept = head.directions.detach().clone()
    assert not _lbfgs._reset_short_directions(head, tol=0.0)
    assert torch.equal(head.directions, kept)


@pytest.mark.xfail(strict=True, reason="known limit: _FTOL is relative to "
                   "max(|loss|, 1), so below a loss of 1 it stops at an absolute "
                   "decrease of 9.5e-7, far above float32 rounding of a small loss")
def test_known_limit_the_float32_decrease_rule_stops_small_losses_early():
    """Every class norm at the cap, loss 0.1231: the last step lowered it by
    8.6e-7 and the fit stopped after 31 iterations; a restart from there
    reaches 0.1227 (seed 776 of the property test, cap 32; seed 267 showed it
    until the block loops read raw rows with the head folded onto them, which
    moved its float32 rounding). A tighter rule changes what many fits
    compute, so it waits for a round that reruns the benchmarks."""
    X, y = _drawn_problem(776)
    clf = SAMNClassifier(device="cpu", random_state=0, max_norm=32.0,
                         max_iter=500).fit(X, y)
    assert _loss(clf, X, y) <= _restarted_loss(clf, X, y) + 2e-4


def test_norms_at_the_cap_that_want_to_grow_are_not_stuck():
    """Where the cap binds (every norm at it, the loss wanting each larger, as
    in every default fit measured on the dev sets), the check leaves the
    fit as it is: no extra evaluation, no restart."""
    from sklearn_samn._training import InvariantHead

    head = InvariantHead(torch.randn(4, 3), torch.full((4,), 5.0), torch.zeros(4),
                         np.array([40.0, 20.0, 10.0, 5.0]), max_norm=2.0)
    weights, _ = head()

    class Recorded:
        log_norm_gradient = (torch.full((4,), -1e-2), weights)

        def __call__(self, head):  # an evaluation would be a failure here
            raise AssertionError("evaluated")

    before = head.log_norms.detach().clone()
    assert not _lbfgs._free_stuck_norms(Recorded(), head, 1e-4)
    torch.testing.assert_close(head.log_norms.detach(), before)
    # One class wanting a smaller norm is stuck: the free log-norms move to
    # the ones used, just below the cap.
    Recorded.log_norm_gradient = (torch.tensor([1e-2, -1e-2, -1e-2, -1e-2]), weights)
    assert _lbfgs._free_stuck_norms(Recorded(), head, 1e-4)
    assert torch.all(head.log_norms < np.log(2.0))
    assert torch.all(head.log_norms > np.log(2.0) - 1e-6)


def test_pooled_norms_that_want_to_cross_their_order_are_not_stuck():
    """Classes pooled at one log-norm below the cap, the rarer wanting a smaller
    norm and the more frequent a larger one: the order forbids that move, so
    the pool is optimal and the check leaves it. The reverse wish is allowed,
    so there the fit is stuck."""
    from sklearn_samn._training import InvariantHead

    counts = np.array([40.0, 20.0, 10.0])
    raw = torch.tensor([0.3, 0.2, 0.1])  # the rarer the smaller: pooled at 0.2
    head = InvariantHead(torch.randn(3, 2), raw, torch.zeros(3), counts, max_norm=8.0)
    weights, _ = head()

    class Recorded:
        # d loss / d log-norm: the frequent class wants up, the rare one down.
        log_norm_gradient = (torch.tensor([-1e-2, 0.0, 1e-2]), weights)

    assert not _lbfgs._free_stuck_norms(Recorded(), head, 1e-4)
    torch.testing.assert_close(head.log_norms.detach(), raw)
    Recorded.log_norm_gradient = (torch.tensor([1e-2, 0.0, -1e-2]), weights)
    assert _lbfgs._free_stuck_norms(Recorded(), head, 1e-4)
    torch.testing.assert_close(head.log_norms.detach(), torch.full((3,), 0.2))


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_regression_minibatch_solvers_bring_norms_down_from_above_the_cap(solver):
    """The minibatch solvers had the same flat region as L-BFGS: started
    above the cap, every free log-norm stayed there with no gradient, and the
    fit ended with every norm at the cap (loss 0.86709 with Adam, 0.86692
    with SGD, where the optimum at the cap, 0.86654, has every norm below
    it). Each step is now projected, so the norms come down."""
    X, y = _overlapping_classes(0, [400, 200, 100], 2, 0.5)
    free = SAMNClassifier(device="cpu", random_state=0, max_norm=None).fit(X, y)
    large = 20.0 * free.coef_ / np.linalg.norm(free.coef_, axis=1, keepdims=True)
    clf = SAMNClassifier(device="cpu", random_state=0, max_norm=3.8, solver=solver,
                         learning_rate_init=0.3, max_iter=300, tol=None)
    clf.fit(X, y, coef_init=large, intercept_init=free.intercept_)
    optimum = SAMNClassifier(device="cpu", random_state=0, max_norm=3.8).fit(
        X, y, coef_init=large)
    assert _loss(clf, X, y) < 0.8667
    assert _loss(clf, X, y) < _loss(optimum, X, y) + 1e-4
    norms = np.exp(clf._head_state["log_norms"])
    assert norms.max() < 0.5 * 3.8  # the cap does not bind at the optimum


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["adam", "sgd"]),
       st.sampled_from([0.5, 2.0, 8.0, None]), st.booleans())
def test_minibatch_steps_keep_the_free_log_norms_feasible(seed, solver, max_norm,
                                                          start_above):
    """After every step of Adam or SGD the free log-norms are the ones the
    head uses: non-increasing in the class counts and below the cap, so no
    class sits where the projection's backward cannot move it."""
    rng = np.random.RandomState(seed)
    sizes = rng.randint(1, 40, size=rng.randint(2, 6))
    X, y = _overlapping_classes(seed, sizes, 3, rng.uniform(0.2, 1.5))
    init = {}
    if start_above:
        init["coef_init"] = 50.0 * rng.randn(len(sizes), 3)
    clf = SAMNClassifier(device="cpu", random_state=seed, max_norm=max_norm,
                         solver=solver, max_iter=5, batch_size=int(rng.randint(4, 64)),
                         tol=None).fit(X, y, **init)
    log_norms = clf._head_state["log_norms"]
    counts = np.bincount(y)
    rarer = counts[:, None] < counts[None, :]
    assert np.all((log_norms[:, None] - log_norms[None, :])[rarer] >= 0.0)
    if max_norm is not None:
        assert np.all(log_norms < np.float32(np.log(max_norm)))
