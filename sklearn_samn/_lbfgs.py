"""Full-batch training of a head: its objective over blocks of rows, and L-BFGS.

The objective is the mean weighted softmax cross-entropy of
``head`` on standardised rows of ``X`` (a subset of them, for a
cross-validation fold), with the logit offset of the loss; its gradient is
accumulated block by block with the hand-written block gradient of
``_training`` and goes through the head's parametrisation (and its PAVA
projection) once per evaluation. :func:`minimize_lbfgs` minimises it: one
evaluation in most iterations, and a stopping rule on the gradient, as
scikit-learn's ``LogisticRegression(solver="lbfgs")``. :func:`train_head_lbfgs`
runs the whole fit: the cross-validated choice of the norm cap
(``_selection``), then the final fit on every row, from the better of two
starts (:func:`_better_start`).
"""

import math
import time

import numpy as np
import torch

from ._training import _add_block_gradient, fold_standardisation, unfold_gradient

# Relative decrease of the objective below which L-BFGS stops: the loss of a
# block is summed in float32, so decreases below a few float32 epsilons are
# rounding, not progress.
_FTOL = 8 * float(np.finfo(np.float32).eps)
_HISTORY = 10
# Where the final fit after the CV starts: the start of lower objective of
# the two (see _better_start), or always one of them (a study switch).
_FINAL_START = "lower"
_SINGLE_SPLIT_ABOVE = 10_000
# A study switch (benchmarks/single_split.py): with an int k, the path on a
# single validation split stops after k caps that score below the best, ties
# not counted; None, the default, keeps the folds' rule (_selection._PATIENCE
# caps that do not beat the best). Stopping at the first decline halves the
# fit at the ImageNet-LT shape, but on a real split it stopped at the second
# cap, 6.3 points below (benchmarks/SINGLE_SPLIT.md).
_SINGLE_SPLIT_PATIENCE = None
# The path on a single validation split also stops at the first cap that
# scores more than this many standard errors below the best (a paired test on
# the held-out rows, _selection.decline_z; the one-standard-error convention
# of CART and glmnet's lambda.1se). Replayed on 15 recorded walks it moved the
# chosen cap only at the ImageNet-LT shape (11.3 to 5.66, where the fit on
# fresh rows scores the same) and saved 39% of the selection's seconds; unlike
# the first decline it did not stop at a one-row dip of a real split
# (benchmarks/STOP_RULE_REPLAY.md). None: patience alone (a study switch).
_SINGLE_SPLIT_STOP_Z = 1.0
# Whether classes that cannot be held out count in the cross-validation score
# (benchmarks/selection_study.py compares both).
_CREDIT_UNSCORED = True
# Whether the CV scores stand-ins for the classes with one sample (see
# _make_stand_ins) instead of crediting them with the trend of the others.
_STAND_INS = True
# A study switch (benchmarks/path_cost_study.py): whether each fold's L-BFGS
# keeps its correction pairs from one cap of the path to the next, instead of
# starting every cap with a step along the gradient. Off, the default
# (benchmarks/PATH_COST.md measures both).
_CARRY_CURVATURE = False
_MAX_BACKTRACKS = 30
# Most restarts of a fit whose norms got stuck (see _free_stuck_norms) or
# whose directions got short (see _reset_short_directions).
_MAX_RESTARTS = 10
# A direction row shorter than this fraction of the longest makes the fit
# ill-conditioned (see _reset_short_directions). At the stops of the default's
# fits on the dev sets where the gradient test had failed, the shortest row
# was at least 0.54 of the longest; in the fits this guards against, 1e-4.
_SHORT_DIRECTION = 0.1
# Longest extrapolation of a first step along the gradient, as a multiple of
# the step already accepted.
_MAX_EXTRAPOLATION = 64.0
# The line search's conditions (Nocedal and Wright; Hager and Zhang, SIAM J.
# Optim. 16, 2005): sufficient decrease, and for the approximate form the
# bound on the slope at the step (2 delta - 1) times the slope at 0;
# _CURVATURE: the slope at an accepted first step must have fallen below this
# fraction of the initial one, else the step is extended.
_ARMIJO = 1e-4
_DELTA = 0.1
_CURVATURE = 0.9


class BlockRows:
    """Rows of ``X`` as blocks for a :class:`~sklearn_samn._streaming.RowStream`.

    Parameters
    ----------
    n_samples : int
        Rows of ``X``.
    block : int
        Rows per block.
    device : torch.device
    rows : ndarray of int or None, default=None
        Sorted rows to read (a fold); ``None`` reads every row, in slices.

    Attributes
    ----------
    n_rows : int
        How many rows the blocks hold in all.
    """

    def __init__(self, n_samples, block, device, rows=None):
        self.n_rows = n_samples if rows is None else len(rows)
        if rows is None:
            self.host = [
                slice(start, min(start + block, n_samples))
                for start in range(0, n_samples, block)
            ]
            self.device = self.host
        else:
            rows = np.asarray(rows, dtype=np.int64)
            self.host = [rows[start:start + block] for start in range(0, len(rows), block)]
            on_device = torch.from_numpy(rows).to(device)
            self.device = [
                on_device[start:start + block] for start in range(0, len(rows), block)
            ]


class HeadObjective:
    """The training objective of a head over some rows of ``X``, and its gradient.

    Parameters
    ----------
    stream : RowStream
        Serves float32 blocks of ``X`` on the device (shared by every fold).
    rows : BlockRows
        The rows this objective sums over.
    y_t, weight_t : torch.Tensor of shape (n_samples,)
        Encoded labels and sample weights of all of ``X``, on the device.
    shift_t : torch.Tensor or None
        The head sees ``(X - shift) * inv_scale`` (``None``: no shift or scale).
    inv_scale : float
    logit_offset : ndarray of shape (n_classes,)
        Added to the logits in the loss only.
    total_weight : float
        Sum of the sample weights of ``rows`` and of ``prior``'s rows: the loss
        is their weighted mean.
    prior : tuple of torch.Tensor or None
        Rows that every objective sums over besides ``rows`` (the pseudo-rows of
        the class embeddings): ``(x, y, weight)``, ``x`` in the space of ``X``.
    """

    def __init__(self, stream, rows, y_t, weight_t, shift_t, inv_scale, logit_offset,
                 total_weight, prior=None):
        self.stream = stream
        self.rows = rows
        self.y_t = y_t
        self.weight_t = weight_t
        self.shift_t = shift_t
        self.inv_scale = inv_scale
        self.offset_t = torch.as_tensor(
            logit_offset, dtype=torch.float32, device=y_t.device
        )
        self.total_weight = float(total_weight)
        self.prior = prior

    def __call__(self, head):
        """The objective at ``head``; its gradient is left in the parameters' ``.grad``."""
        for p in head.parameters():
            p.grad = None
        weights, bias = head()
        w, b = weights.detach(), bias.detach() + self.offset_t
        grad_w, grad_b = torch.zeros_like(w), torch.zeros_like(b)
        total = torch.zeros((), dtype=torch.float64, device=w.device)
        row_scale = 1.0 / self.total_weight
        raw_w, raw_b = fold_standardisation(w, b, self.shift_t, self.inv_scale)
        for rows, xb in zip(self.rows.device, self.stream.blocks(self.rows.host,
                                                               self.rows.device)):
            total += _add_block_gradient(
                xb, self.y_t[rows], self.weight_t[rows], raw_w, raw_b, row_scale,
                grad_w, grad_b,
            ).double()
        if self.prior is not None:
            total += _add_block_gradient(
                *self.prior, raw_w, raw_b, row_scale, grad_w, grad_b,
            ).double()
        unfold_gradient(grad_w, grad_b, self.shift_t, self.inv_scale)
        # The scalar whose gradient w.r.t. (weights, bias) is the accumulated one.
        ((weights * grad_w).sum() + (bias * grad_b).sum()).backward()
        # The gradient w.r.t. the log-norms the head used (w_c = exp(q_c) u_c),
        # which the projection's backward hides where it is flat (see
        # _free_stuck_norms); kept with the weights it was taken at.
        self.log_norm_gradient = ((w * grad_w).sum(dim=1), w)
        return float(total) / self.total_weight

    def _block_scores(self, xb, weights, bias):
        """The head's scores of one block of rows of ``X``; ``weights`` and
        ``bias`` score raw rows (:func:`fold_standardisation`)."""
        return torch.addmm(bias, xb, weights.T)

    def predict(self, head, rows, strengths=(1.0,)):
        """Predicted classes of ``rows`` (a BlockRows) for each logit adjustment
        strength of ``strengths``: the argmax of the head's scores minus
        ``strength - 1`` times this objective's logit offset (the log of its
        training prior). Returns an array of shape ``(len(strengths), n_rows)``."""
        with torch.no_grad():
            weights, bias = fold_standardisation(*head(), self.shift_t, self.inv_scale)
            shifts = [None if s == 1.0 else (1.0 - s) * self.offset_t for s in strengths]
            # int32, filled block by block: a row per strength of int64 for
            # every held-out row, kept twice by a final concatenation, was a
            # per-row cost large enough to matter under a memory limit.
            out = np.empty((len(shifts), rows.n_rows), dtype=np.int32)
            done = 0
            for xb in self.stream.blocks(rows.host, rows.device):
                scores = self._block_scores(xb, weights, bias)
                pred = torch.empty((len(shifts), scores.shape[0]), dtype=torch.long,
                                   device=scores.device)
                # A shifted copy of the whole block would raise the fit's peak
                # memory by a block (a third of X on small problems): shift an
                # eighth at a time, which gives the same sums.
                step = max(1, -(-scores.shape[0] // 8))
                for k, shift in enumerate(shifts):
                    if shift is None:
                        torch.argmax(scores, dim=1, out=pred[k])
                        continue
                    for start in range(0, scores.shape[0], step):
                        part = scores[start:start + step] + shift
                        torch.argmax(part, dim=1, out=pred[k, start:start + step])
                out[:, done:done + scores.shape[0]] = pred.cpu().numpy()
                done += scores.shape[0]
            return out


def minimize_lbfgs(objective, head, *, tol, max_iter, callback=None,
                   history=_HISTORY, start=None, curvature=None):
    """Minimise ``objective(head)`` over the head's parameters with L-BFGS.

    The limited-memory BFGS two-loop recursion (Nocedal and Wright, Numerical
    Optimization, Algorithm 7.4) with a backtracking Armijo line search, on
    the parameters' own device and dtype: no host round trip per iteration,
    and O(history x n_parameters) work besides the objective. SciPy's
    L-BFGS-B spends more time than the objective itself at a head's sizes
    (about 30 ms an iteration at 3e4 parameters on this project's 2-core
    machine, 6 ms on one BLAS thread).

    Parameters
    ----------
    objective : HeadObjective
    head : torch.nn.Module
        Trained in place.
    tol : float
        Stop when the largest component of the gradient is at most ``tol``.
    max_iter : int
        Most iterations.
    callback : callable or None
        Called with the objective's value after each iteration.
    history : int
        Correction pairs kept.
    start : tuple (value, gradient) or None
        The objective and its flat gradient at the head's current parameters,
        when already computed (saves the first evaluation).
    curvature : dict or None
        Correction pairs to start from, left holding the last ones:
        ``{"steps": [...], "changes": [...], "rhos": [...]}``, updated in
        place (a warm start of the curvature along a path of related
        problems). ``None``: start with none.

    Returns
    -------
    n_iter : int
        Iterations done.
    converged : bool
        Whether a stopping rule was met before ``max_iter``: the gradient
        test, a relative decrease of the objective below float32 rounding
        (``_FTOL``), or a line search that finds no decrease at that precision.
    """
    params = list(head.parameters())
    sizes = [p.numel() for p in params]

    def load(x):
        with torch.no_grad():
            start = 0
            for p, size in zip(params, sizes):
                p.copy_(x[start:start + size].view_as(p))
                start += size

    def restore(x, grad):
        """Put the head back at ``x``, with the gradient already computed there."""
        load(x)
        start = 0
        for p, size in zip(params, sizes):
            p.grad = grad[start:start + size].view_as(p).clone()
            start += size

    def evaluate():
        return _value_and_gradient(objective, head)

    x = torch.cat([p.detach().reshape(-1) for p in params])
    value, grad = evaluate() if start is None else start
    if grad is None:
        raise FloatingPointError(f"Training diverged: the loss is {value} at the start.")
    if curvature is None:
        curvature = no_curvature()
    steps, changes, rhos = curvature["steps"], curvature["changes"], curvature["rhos"]
    n_iter = 0
    while float(grad.abs().max()) > tol:
        if n_iter >= max_iter:
            return n_iter, False
        direction = grad.neg()
        alphas = []
        for s, y, rho in zip(reversed(steps), reversed(changes), reversed(rhos)):
            alpha = rho * float(s.dot(direction))
            direction.add_(y, alpha=-alpha)
            alphas.append(alpha)
        curved = bool(steps)
        if curved:
            direction.mul_(float(steps[-1].dot(changes[-1]) / changes[-1].dot(changes[-1])))
        else:
            # No curvature yet: a step of unit length, which the line search
            # lengthens or shortens.
            direction.div_(float(grad.norm()))
        for s, y, rho, alpha in zip(steps, changes, rhos, reversed(alphas)):
            beta = rho * float(y.dot(direction))
            direction.add_(s, alpha=alpha - beta)
        slope = float(grad.dot(direction))
        if not slope < 0:
            # Not a descent direction (float32 rounding in the history): restart.
            del steps[:], changes[:], rhos[:]
            curved = False
            direction = grad.neg().div_(float(grad.norm()))
            slope = float(grad.dot(direction))
        t = 1.0
        noise = _FTOL * max(abs(value), 1.0)
        for _ in range(_MAX_BACKTRACKS):
            candidate = x + t * direction
            load(candidate)
            new_value, new_grad = evaluate()
            if new_grad is not None and _acceptable(
                    value, slope, t, new_value, float(new_grad.dot(direction)), noise):
                break
            # The minimiser of the quadratic through value, slope and new_value,
            # kept within [0.1 t, 0.5 t].
            curvature = new_value - value - slope * t if np.isfinite(new_value) else np.inf
            t = float(np.clip(-slope * t * t / (2 * curvature), 0.1 * t, 0.5 * t)) \
                if curvature > 0 else 0.1 * t
        else:
            restore(x, grad)
            return n_iter, True
        if not curved and t == 1.0:
            # Without curvature the unit step may be far too short: while the
            # slope at the accepted point is still steep, jump to where the
            # slopes at 0 and t extrapolate to zero (the minimiser of that
            # quadratic, at most _MAX_EXTRAPOLATION times further), and keep
            # it if acceptable. Slopes, not values: near the optimum the
            # float32 values are too coarse to compare.
            for _ in range(_MAX_BACKTRACKS):
                new_slope = float(new_grad.dot(direction))
                if new_slope >= _CURVATURE * slope:
                    break
                longer_t = t * slope / (slope - new_slope) if new_slope > slope \
                    else _MAX_EXTRAPOLATION * t
                longer_t = min(longer_t, _MAX_EXTRAPOLATION * t)
                longer = x + longer_t * direction
                load(longer)
                longer_value, longer_grad = evaluate()
                if longer_grad is None or not (
                    longer_value <= new_value + noise
                    and _acceptable(value, slope, longer_t, longer_value,
                                    float(longer_grad.dot(direction)), noise)
                ):
                    break
                t, candidate, new_value, new_grad = longer_t, longer, longer_value, longer_grad
            restore(candidate, new_grad)  # the accepted point, not the last one tried
        n_iter += 1
        s, y = candidate - x, new_grad - grad
        sy = float(s.dot(y))
        if sy > 1e-10 * float(y.dot(y)):
            steps.append(s)
            changes.append(y)
            rhos.append(1.0 / sy)
            if len(steps) > history:
                del steps[0], changes[0], rhos[0]
        decrease = (value - new_value) / max(abs(value), abs(new_value), 1.0)
        x, value, grad = candidate, new_value, new_grad
        if callback is not None:
            callback(value)
        # Only a quasi-Newton step says that the objective is flat: a first
        # step along the gradient can be short for other reasons.
        if curved and decrease <= _FTOL:
            break
    return n_iter, True


def no_curvature():
    """Correction pairs for :func:`minimize_lbfgs`'s ``curvature``: none yet."""
    return {"steps": [], "changes": [], "rhos": []}


def minimize_head(objective, head, *, tol, max_iter, callback=None, start=None,
                  curvature=None):
    """:func:`minimize_lbfgs`, then, while some norms of an invariant head are
    stuck (:func:`_free_stuck_norms`) or it stopped with a direction row far
    shorter than the others (:func:`_reset_short_directions`), again from the
    reset parameters (with no correction pairs). Same arguments and returns;
    ``n_iter`` counts every round's iterations."""
    values = []

    def record(value):
        values.append(value)
        if callback is not None:
            callback(value)

    n_iter, converged = minimize_lbfgs(objective, head, tol=tol, max_iter=max_iter,
                                       callback=record, start=start, curvature=curvature)
    for _ in range(_MAX_RESTARTS):
        if not converged or not (_free_stuck_norms(objective, head, tol)
                                 or _reset_short_directions(head, tol)):
            break
        before = values[-1] if values else None
        if curvature is not None:
            for pairs in curvature.values():
                pairs.clear()
        more, converged = minimize_lbfgs(objective, head, tol=tol,
                                         max_iter=max_iter - n_iter, callback=record,
                                         curvature=curvature)
        n_iter += more
        if before is not None and not (
                before - values[-1] > _FTOL * max(abs(before), 1.0)):
            # No decrease beyond float32 rounding: the stop was the loss's
            # precision (far from the optimum's scale), not a stuck norm.
            break
    return n_iter, converged


def _free_stuck_norms(objective, head, tol):
    """Whether the fit of an invariant head stopped with log-norms that the
    optimum wants moved but the gradient cannot move; if so, the free
    log-norms are set to the values the head uses, where it can.

    The head uses the projection of its free log-norms (monotone in the
    class counts, at most ``log(max_norm)``). Where the projection is flat
    its backward passes nothing: a free log-norm above the cap gets no
    gradient however much the loss wants that norm smaller, and classes that
    the projection pools with their free values out of order all get their
    block's mean gradient, so they can never part. L-BFGS then stops short
    of the constrained optimum. The test is the optimality condition of the
    constrained problem: the gradient w.r.t. the log-norms used, projected
    on the moves the constraints allow from there, has no component above
    ``tol``. Fits where every norm sits at the cap and the loss wants each
    larger (the default's, on every dev set measured) pass it untouched.
    """
    from ._pava import monotone_projection
    from ._training import InvariantHead

    if not isinstance(head, InvariantHead):
        return False
    with torch.no_grad():
        used_t = head.projected_log_norms()
        if torch.equal(used_t, head.log_norms):
            return False
        weights, _ = head()
    gradient, at = getattr(objective, "log_norm_gradient", (None, None))
    if at is None or not torch.equal(at, weights):
        # The last evaluation was of a point the line search rejected.
        _value_and_gradient(objective, head)
        gradient, _ = objective.log_norm_gradient
    used = used_t.double().cpu().numpy()
    descent = -gradient.double().cpu().numpy()
    cap = None if head.max_norm is None else np.float32(math.log(head.max_norm))
    counts = head.counts.counts
    # Classes with equal log-norms may move apart only in the order of the
    # counts (their moves are the monotone projection of the descent), and
    # those at the cap only down; elsewhere every move is allowed.
    allowed = descent.copy()
    _, group, size = np.unique(used, return_inverse=True, return_counts=True)
    for g in np.flatnonzero(size > 1):
        tied = np.flatnonzero(group == g)
        allowed[tied] = monotone_projection(descent[tied], counts[tied],
                                            increasing=False)[0]
    if cap is not None:
        at_cap = used.astype(np.float32) >= cap
        allowed[at_cap] = np.minimum(allowed[at_cap], 0.0)
    if not np.abs(allowed).max() > tol:
        return False
    head.settle_log_norms(used_t)
    with torch.no_grad():
        # The head sees only each direction's unit vector: starting again from
        # unit rows costs nothing and keeps the gradient w.r.t. a row that a
        # long step took close to zero from growing without bound.
        head.directions.div_(head.directions.norm(dim=1, keepdim=True))
    return True


def _reset_short_directions(head, tol):
    """Whether an invariant head stopped short of the gradient test with a
    direction row much shorter than the others; if so, every row is rescaled
    to unit length.

    The head sees only each row's unit vector, so a row's length changes no
    prediction, but the gradient w.r.t. a row of length ``r`` scales as
    ``1 / r`` and its curvature as ``1 / r^2``. A quasi-Newton step can
    shorten a row; once one is far shorter than the others, steps that suit
    them overshoot it, the line search finds no decrease at float32
    precision, and the fit stopped with a large gradient: 0.2892 against the
    0.2841 a restart reached, with a row of length 3e-4 beside rows of 3
    (tests/test_lbfgs.py). Unit rows give the same head, well conditioned.
    """
    from ._training import InvariantHead

    if not isinstance(head, InvariantHead) or any(
            p.grad is None for p in head.parameters()):
        return False
    if not max(float(p.grad.abs().max()) for p in head.parameters()) > tol:
        return False
    with torch.no_grad():
        rows = head.directions.norm(dim=1)
        if not float(rows.min()) < _SHORT_DIRECTION * float(rows.max()):
            return False
        head.directions.div_(rows[:, None])
    return True


def _value_and_gradient(objective, head):
    """``objective(head)`` and its flat gradient (``None`` if the value is not
    finite), in the order of ``head.parameters()``."""
    value = objective(head)
    if not np.isfinite(value):
        return value, None
    return value, torch.cat([p.grad.reshape(-1) for p in head.parameters()])


def _acceptable(value, slope, t, new_value, new_slope, noise):
    """Whether a step of length ``t`` is accepted: the Armijo condition, or
    Hager and Zhang's approximate Wolfe condition, for steps whose value is
    within float32 rounding (``noise``) of the start and whose slope shows
    that they do not overshoot the minimiser along the line by much. Near
    the optimum the values of two points differ by less than their rounding
    and the Armijo test alone rejects the best steps."""
    if new_value <= value + _ARMIJO * t * slope:
        return True
    return new_value <= value + noise and new_slope <= (2 * _DELTA - 1) * slope


def train_head_lbfgs(
    variant,
    initial_state,
    X,
    y,
    sample_weight,
    *,
    class_count,
    shift,
    scale,
    loss,
    max_norm,
    n_folds,
    tol,
    max_iter,
    device,
    random_state,
    verbose,
    prior=None,
):
    """Fit a head by full-batch L-BFGS, choosing its norm cap by CV if asked.

    Parameters
    ----------
    variant : {"invariant", "paper"}
    initial_state : callable
        ``initial_state(weight)`` returns the starting head parameters (a dict of
        NumPy arrays) for training rows weighted by ``weight`` (zero outside a
        fold's training part), so that no fold starts from its own
        validation rows.
    X : array-like of shape (n_samples, n_features)
        Read block by block (see ``_streaming.RowStream``), never copied whole.
    y : ndarray of shape (n_samples,)
        Encoded labels.
    sample_weight : ndarray of shape (n_samples,)
    class_count : ndarray of shape (n_classes,)
        Counts that define the monotone order (the same for every fold).
    shift, scale : ndarray of shape (n_features,) and float
        The head sees ``(X - shift) / scale``.
    loss : {"logit_adjusted", "cross_entropy"}
    max_norm : float, None or "cv"
        The cap on the class norms; ``"cv"`` chooses it with
        :func:`~sklearn_samn._selection.select_max_norm` on ``n_folds`` folds.
    n_folds, tol, max_iter : int, float, int
    device : torch.device
    random_state : numpy.random.RandomState
        Draws the folds.
    verbose : int
    prior : tuple (embeddings, weight) or None
        Class embeddings in the space of ``X`` (one row per class) that every
        fit, of every fold, counts as training rows of weight ``weight``.

    Returns
    -------
    state : dict of ndarray
        The fitted head's parameters (float64).
    info : dict
        ``max_norm`` (the cap used), ``logit_adjustment`` (the strength of the
        logit adjustment in the returned head's bias: 1 unless the CV chose
        another, 0 for plain cross-entropy), ``n_iter`` and ``converged`` (the final
        fit), ``loss_curve`` (its objective after each iteration) and, with
        ``"cv"``, ``cv_results`` (caps tried, their scores, fold iterations).
    """
    from . import _selection
    from ._prior import prior_offset_counts, prior_rows_on_device
    from ._streaming import RowStream
    from ._threads import torch_threads_for
    from ._training import (
        _block_rows,
        build_head,
        head_state,
        logit_offset,
        rows_on_device,
    )

    n_samples, n_features = X.shape
    n_classes = class_count.shape[0]
    block = _block_rows(n_samples, n_features, n_classes, device.type)
    y_t, weight_t, shift_t, inv_scale = rows_on_device(
        y, sample_weight, shift, scale, device
    )
    prior_t = prior_rows_on_device(prior, device)
    prior_total = 0.0 if prior is None else prior[1] * n_classes

    with torch_threads_for(block * n_features * n_classes, device):
        stream = RowStream(X, device, max_rows=block)

        def objective(rows, weight):
            counts = np.bincount(y, weights=weight, minlength=n_classes)
            return HeadObjective(
                stream, BlockRows(n_samples, block, device, rows), y_t, weight_t,
                shift_t, inv_scale, logit_offset(loss, prior_offset_counts(counts, prior)),
                counts.sum() + prior_total, prior_t,
            )

        info = {}
        strength = 1.0
        offset = logit_offset(loss, prior_offset_counts(
            np.bincount(y, weights=sample_weight, minlength=n_classes), prior))
        if max_norm == "cv":
            # Where the loss's offset is the same for every class (plain
            # cross-entropy, balanced classes), a strength moves every score
            # alike: only 1 is scored.
            strengths = _selection._LOGIT_ADJUSTMENTS if np.ptp(offset) > 0 else (1.0,)
            max_norm, strength, state, info["cv_results"] = _cross_validate(
                variant, initial_state, y, sample_weight, class_count, objective,
                n_folds, tol, max_iter, device, random_state, verbose, block=block,
                strengths=tuple(strengths),
            )
        else:
            state = initial_state(sample_weight)
        if max_norm is not None and variant == "invariant":
            state = dict(state, log_norms=np.minimum(state["log_norms"], np.log(max_norm)))
        started = time.perf_counter()
        final = objective(None, sample_weight)
        head = build_head(variant, state, class_count, max_norm=max_norm, device=device)
        start = None
        if "cv_results" in info:
            fresh = build_head(variant, _at_norm(initial_state(sample_weight), variant,
                                                 max_norm),
                               class_count, max_norm=max_norm, device=device)
            head, start = _better_start(final, {
                "lower": [head, fresh], "folds": [head], "class_means": [fresh],
            }[_FINAL_START])
        loss_curve = []
        n_iter, converged = minimize_head(
            final, head, tol=tol, max_iter=max_iter,
            callback=loss_curve.append, start=start,
        )
        if verbose:
            cap = "none" if max_norm is None else f"{max_norm:.3g}"
            _say(f"final fit: max_norm {cap}, {n_iter} L-BFGS iterations, "
                 f"loss {loss_curve[-1] if loss_curve else float('nan'):.6f}, "
                 f"{time.perf_counter() - started:.2f} s")
        state = head_state(head)
        if strength != 1.0:
            # The chosen post-hoc strength: the bias moves by (1 - strength)
            # times the loss's offset on all the rows, as each fold's
            # predictions moved by its own offset.
            state["bias"] = state["bias"] + (1.0 - strength) * offset
        if loss != "logit_adjusted":
            # Plain cross-entropy adjusts nothing: its strength is 0.
            strength = 0.0
            if "cv_results" in info:
                info["cv_results"]["logit_adjustment"][:] = 0.0
        info.update(max_norm=max_norm, logit_adjustment=strength, n_iter=n_iter,
                    converged=converged, loss_curve=loss_curve)
        return state, info


def _at_norm(state, variant, max_norm):
    """``state`` with every class norm at ``max_norm``: where a fit at that cap
    starts (``SAMNClassifier(max_norm=max_norm)``, and each fold's CV path at
    the grid's first cap)."""
    if variant != "invariant":
        return state
    return dict(state, log_norms=np.full(state["log_norms"].shape[0], np.log(max_norm)))


def _better_start(objective, heads):
    """The head of ``heads`` with the lowest objective, and its ``(value,
    gradient)`` for :func:`minimize_lbfgs`'s ``start``.

    After the CV the final fit has two candidate starts: the folds' mean head
    at the chosen cap, and the class means at that cap (where
    ``SAMNClassifier(max_norm=cap)`` starts). On small problems the first is
    the closer to the optimum of all the rows. With one validation split
    (above ``_SINGLE_SPLIT_ABOVE`` rows) the single fold's head can be the
    worse start, and a fit from it stopped at the gradient test short of
    where the class means lead (30,000 x 384 x 300: 19.0% against 20.6%
    balanced accuracy). Keeping the lower objective costs one evaluation.
    """
    best = None
    for head in heads:
        value, grad = _value_and_gradient(objective, head)
        if grad is not None and (best is None or value < best[0]):
            best = (value, head, grad)
    if best is None:
        return heads[0], None
    value, head, grad = best
    return head, (value, grad)


def _say(message):
    import sys

    print(message, file=sys.stderr)


def _cross_validate(variant, initial_state, y, sample_weight, class_count, objective,
                    n_folds, tol, max_iter, device, random_state, verbose, *, block,
                    strengths):
    """The CV path of :func:`train_head_lbfgs`.

    The path scores every logit adjustment strength of ``strengths`` at each
    cap, on the same out-of-fold scores, and returns ``(max_norm, strength,
    start_state, results)``.

    The start of the final fit is the mean of the folds' heads at the chosen
    cap (unit directions averaged and renormalised, log-norms and biases
    averaged), as ``LogisticRegressionCV`` starts its refit from the mean of
    its folds' coefficients.
    """
    from ._selection import MAX_NORM_GRID, long_tail_folds, select_max_norm
    from ._training import build_head, head_state

    fold_of = long_tail_folds(y, sample_weight, n_folds, random_state)
    folds = []
    n_single, stand_in_order, row_rank = _stand_in_order(
        y, sample_weight, n_folds, len(class_count), random_state
    ) if _STAND_INS else (0, None, None)
    if n_single:
        per_fold = -(-n_single // n_folds)
        # Stand-ins rank with the rarest classes in the order of the norms.
        rarest = class_count[np.bincount(
            y[sample_weight > 0], minlength=len(class_count)) > 0].min()
    # Above this many samples one held-out fold is a precise enough score and
    # the other folds would multiply the cost: scikit-learn's
    # HistGradientBoosting switches to a single validation split at the same
    # size.
    single = len(y) > _SINGLE_SPLIT_ABOVE
    for k in range(1 if single else n_folds):
        held_out = np.flatnonzero(fold_of == k)
        if held_out.shape[0] == 0:
            continue
        weight = sample_weight * (fold_of != k)
        counts_k, virtual = class_count, None
        chosen = stand_in_order[k * per_fold:(k + 1) * per_fold] if n_single else []
        if len(chosen):
            virtual = _make_stand_ins(y, sample_weight, weight, chosen, row_rank,
                                      first_label=len(class_count) * (1 + k))
            counts_k = class_count.copy()
            counts_k[chosen] = rarest
            held_out = np.union1d(held_out, np.flatnonzero(virtual >= 0))
        state = _at_norm(initial_state(weight), variant, MAX_NORM_GRID[0])
        folds.append({
            "head": build_head(variant, state, counts_k, max_norm=MAX_NORM_GRID[0],
                               device=device),
            "objective": objective(np.flatnonzero(weight > 0), weight),
            "held_out": held_out,
            "held_out_rows": BlockRows(len(y), block, device, held_out),
            "virtual": None if virtual is None else virtual[held_out],
            "states": {},
            "curvature": no_curvature() if _CARRY_CURVATURE else None,
        })
    if not folds:
        # Every class has a single sample: nothing can be held out, and the
        # strongest cap (closest to the nearest-class-mean rule) is kept.
        empty = {"max_norm": np.array([]), "balanced_accuracy": np.array([]),
                 "logit_adjustment": np.array([]), "n_iter": np.array([], dtype=int)}
        return MAX_NORM_GRID[0], 1.0, initial_state(sample_weight), empty
    n_iter = {}

    def evaluate(fold, max_norm):
        fold["head"].max_norm = max_norm
        iterations, _ = minimize_head(
            fold["objective"], fold["head"], tol=tol, max_iter=max_iter,
            curvature=fold["curvature"],
        )
        n_iter[max_norm] = n_iter.get(max_norm, 0) + iterations
        fold["states"][max_norm] = head_state(fold["head"])
        pred = fold["objective"].predict(fold["head"], fold["held_out_rows"], strengths)
        rows = fold["held_out"]
        labels = y[rows]
        if fold["virtual"] is not None:
            stand_in = fold["virtual"] >= 0
            hit = pred == labels
            labels = np.where(stand_in, fold["virtual"], labels)
            pred = np.where(stand_in & hit, labels, np.where(stand_in, -1, pred))
        return labels, pred, sample_weight[rows]

    def forget(max_norm):
        for fold in folds:
            fold["states"].pop(max_norm, None)

    # When each cap's fits and scoring started: a cap's seconds in the verbose
    # report show where the selection's time goes (benchmarks/PATH_COST.md).
    clock = [time.perf_counter()]

    def report(max_norm, score, strength):
        now = time.perf_counter()
        if verbose:
            _say(f"max_norm {max_norm:.3g}: out-of-fold balanced accuracy "
                 f"{score:.4f} at logit adjustment {strength:g} "
                 f"({n_iter[max_norm]} L-BFGS iterations over the folds, "
                 f"{now - clock[0]:.2f} s)")
        clock[0] = now

    if any(fold["virtual"] is not None for fold in folds):
        unscored = ("stand_ins", n_single, len(class_count))
    elif _CREDIT_UNSCORED:
        unscored = _unscored_classes(y, sample_weight, fold_of, folds, len(class_count))
    else:
        unscored = None
    stop = {}
    if single and _SINGLE_SPLIT_PATIENCE is not None:
        stop.update(patience=_SINGLE_SPLIT_PATIENCE, count_ties=False)
    if single:
        stop.update(z_below=_SINGLE_SPLIT_STOP_Z)
    best, strength, tried, scores, best_strengths = select_max_norm(
        folds, evaluate, strengths=strengths, unscored=unscored, forget=forget,
        report=report, **stop,
    )
    states = [fold["states"][best] for fold in folds]
    directions = np.mean(
        [s["directions"] / np.linalg.norm(s["directions"], axis=1, keepdims=True)
         for s in states], axis=0,
    )
    start = {
        "directions": directions,
        "log_norms": np.mean([s["log_norms"] for s in states], axis=0),
        "bias": np.mean([s["bias"] for s in states], axis=0),
    }
    results = {"max_norm": np.array(tried), "balanced_accuracy": np.array(scores),
               "logit_adjustment": np.array(best_strengths),
               "n_iter": np.array([n_iter[cap] for cap in tried])}
    return best, strength, start, results


def _stand_in_order(y, sample_weight, n_folds, n_classes, random_state):
    """The classes that can stand in for the classes with one sample.

    Returns ``(n_single, order, row_rank)``: how many classes have a single
    sample (of positive weight), the classes with more than ``n_folds`` samples
    (so that they are still scored as themselves in the other folds) in the
    order of their first row in a random permutation of the rows, and each
    row's rank in that permutation. Drawn over rows, not labels: renaming the
    classes changes nothing.
    """
    counts = np.bincount(y[sample_weight > 0], minlength=n_classes)
    row_rank = random_state.permutation(y.shape[0])
    first = np.full(n_classes, y.shape[0])
    np.minimum.at(first, y[sample_weight > 0], row_rank[sample_weight > 0])
    candidates = np.flatnonzero(counts > n_folds)
    return int(np.sum(counts == 1)), candidates[np.argsort(first[candidates])], row_rank


def _make_stand_ins(y, sample_weight, weight, classes, row_rank, first_label):
    """Make ``classes`` stand-ins for one-sample classes in one fold.

    Each keeps its first training row (in the order of ``row_rank``); its
    other training rows leave the fold's training part (``weight``, changed in
    place). The CV cannot hold out a class with one sample, but it can see how
    a class fares with one: every row of a stand-in but the kept one is
    scored, under the label ``first_label + c``.

    Returns
    -------
    label : ndarray of shape (n_samples,)
        The stand-in label of each row, ``-1`` for rows of other classes and
        for the kept rows.
    """
    label = np.full(y.shape[0], -1)
    for c in classes:
        train = np.flatnonzero((y == c) & (weight > 0))
        keep = train[np.argmin(row_rank[train])]
        weight[train[train != keep]] = 0.0
        rows = np.flatnonzero((y == c) & (sample_weight > 0))
        label[rows[rows != keep]] = first_label + c
    return label


def _unscored_classes(y, sample_weight, fold_of, folds, n_classes):
    """What :func:`~sklearn_samn._selection.balanced_accuracy` needs to credit
    the classes that no fold holds out (a single sample): ``(n_unscored,
    log_train, log_unscored)``.

    ``log_train[c]`` is the mean, over the held-out rows of class ``c``, of the
    log of the training weight its class had in the fold that held the row
    out; ``log_unscored`` the mean log weight of the unscored classes (their
    training weight in the final fit).
    """
    weighted = np.bincount(y, weights=sample_weight, minlength=n_classes)
    log_sum = np.zeros(n_classes)
    held_weight = np.zeros(n_classes)
    for fold in folds:
        rows = fold["held_out"]
        held = np.bincount(y[rows], weights=sample_weight[rows], minlength=n_classes)
        # Summed over the training part itself: ``weighted - held`` cancels to
        # 0 when a class's weights span more than float64's 16 digits.
        training = np.ones(y.shape[0], dtype=bool)
        training[rows] = False
        train = np.bincount(y[training], weights=sample_weight[training],
                            minlength=n_classes)
        scored = held > 0
        log_sum[scored] += held[scored] * np.log(train[scored])
        held_weight += held
    unscored = (weighted > 0) & (held_weight == 0)
    log_train = np.divide(log_sum, held_weight, out=np.zeros(n_classes),
                          where=held_weight > 0)
    log_unscored = float(np.mean(np.log(weighted[unscored]))) if unscored.any() else 0.0
    return int(unscored.sum()), log_train, log_unscored
