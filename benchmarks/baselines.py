"""Long-tailed linear-head baselines for ``benchmarks/run.py``.

Each ``fit_<name>(X, y, *, seed)`` fits on a long-tailed training set and returns a
:class:`LinearPredictor` (``predict``, ``decision_function``, ``coef_``,
``intercept_``, ``classes_`` and ``info``, the knobs it chose). Every knob is
chosen on data carved out of ``(X, y)`` only -- 3-fold CV or the per-class 80/20
split of :func:`validation_split` -- never on a test set. Multiclass only (>= 3
classes).

Shared stages (the CV-chosen LogisticRegression, the same model refit on the
validation split's training part) are computed once per ``(X, y, seed)`` and
cached. So that a method's fit time is still its standalone cost, every cache hit
adds the seconds the stage originally took to :func:`charged_seconds`; a harness
measures ``wall time + increase of charged_seconds()`` around a fit.

Torch baselines (``crt``, ``lws``, ``weight_balancing``) run on one thread with a
seeded generator and are deterministic given ``seed``. They train on
standardised features ``Z = (X - mean) / s`` (``s`` = root-mean-square norm of the
centred training rows; a linear head on ``Z`` is a linear head on ``X``, and the
returned ``coef_``/``intercept_`` act on raw ``X``), so that learning rates and
weight decays mean the same on unit-norm embeddings, raw pixels or ReLU features.
"""

import hashlib
import time
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import KFold

__all__ = [
    "LinearPredictor",
    "charged_seconds",
    "clear_cache",
    "fit_crt",
    "fit_lr_balanced",
    "fit_lr_cv",
    "fit_lr_logit_adjusted",
    "fit_lws",
    "fit_tau_norm",
    "fit_tau_norm_tuned",
    "fit_weight_balancing",
    "lr_cv_head",
    "tau_normalise",
    "validation_split",
]

C_GRID = (0.01, 0.1, 1, 10, 100, 1000)
TAU_GRID = tuple(np.round(np.arange(0, 2.0001, 0.1), 1))
CRT_WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
WB_WEIGHT_DECAYS = (1e-5, 1e-4, 1e-3, 1e-2)
WB_NORM_QUANTILES = (0.25, 0.5, 0.75, 1.0)

# Fixed optimisation recipes of the torch baselines (not tuned; on standardised Z).
BATCH_SIZE = 128
SGD_MOMENTUM = 0.9  # crt and weight balancing: lr from _step_sizes, cosine decay to 0
CRT_STEPS = 1000
WB_STEPS = 500
LWS_LR, LWS_STEPS = 1e-2, 500  # Adam on the per-class scales

# --------------------------------------------------------------------------- cache
_CACHE = {}
_CHARGED = [0.0]


def charged_seconds():
    """Seconds of cached work reused so far (see the module docstring)."""
    return _CHARGED[0]


def clear_cache():
    """Forget every cached stage (call between problems to free memory)."""
    _CACHE.clear()


def _data_key(X, y):
    digest = hashlib.sha1(np.ascontiguousarray(X).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    return (X.shape, digest.hexdigest())


def _cached(key, compute):
    """``compute()`` once per key; hits charge the original (standalone) seconds."""
    if key in _CACHE:
        value, seconds = _CACHE[key]
        _CHARGED[0] += seconds
        return value
    charged_before, start = _CHARGED[0], time.perf_counter()
    value = compute()
    seconds = time.perf_counter() - start + (_CHARGED[0] - charged_before)
    _CACHE[key] = (value, seconds)
    return value


# ----------------------------------------------------------------------- predictor
class LinearPredictor:
    """``argmax(X @ coef_.T + intercept_)`` over ``classes_``; ``info`` = chosen knobs."""

    def __init__(self, coef, intercept, classes, **info):
        self.coef_ = np.asarray(coef, dtype=np.float64)
        self.intercept_ = np.asarray(intercept, dtype=np.float64)
        self.classes_ = np.asarray(classes)
        self.info = info

    def decision_function(self, X):
        return np.asarray(X, dtype=np.float64) @ self.coef_.T + self.intercept_

    def predict(self, X):
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


def _prior(y, classes):
    return np.array([np.mean(y == c) for c in classes])


# ---------------------------------------------------------------- LR and its CV
def _lr(C, class_weight=None):
    return LogisticRegression(C=C, class_weight=class_weight, max_iter=2000)


def _select_C(X, y, seed, class_weight, adjusted=False):
    """C from C_GRID by 3-fold KFold(shuffle) CV, scored by balanced accuracy.

    Plain (not stratified) folds: classes with one sample make stratified folds
    impossible. A class absent from a training fold simply cannot be predicted
    there. Ties go to the smaller C. With ``adjusted``, each fold scores the
    logit-adjusted predictor (decision_function - log of the fold's prior), the
    predictor that is deployed.
    """
    folds = list(KFold(3, shuffle=True, random_state=seed).split(X))
    scores = []
    for C in C_GRID:
        fold_scores = []
        for train, val in folds:
            model = _lr(C, class_weight).fit(X[train], y[train])
            if adjusted:
                scores_val = model.decision_function(X[val]) - np.log(
                    _prior(y[train], model.classes_)
                )
                pred = model.classes_[np.argmax(scores_val, axis=1)]
            else:
                pred = model.predict(X[val])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # y_pred-only classes
                fold_scores.append(balanced_accuracy_score(y[val], pred))
        scores.append(np.mean(fold_scores))
    return C_GRID[int(np.argmax(scores))], dict(zip(C_GRID, np.round(scores, 4)))


def lr_cv_head(X, y, *, seed, class_weight=None, adjusted=False):
    """Cached ``(C, cv_scores, LogisticRegression refit on all of (X, y))``."""

    def compute():
        C, cv_scores = _select_C(X, y, seed, class_weight, adjusted)
        return C, cv_scores, _lr(C, class_weight).fit(X, y)

    return _cached(("lr_cv", _data_key(X, y), seed, class_weight, adjusted), compute)


def _from_lr(model, **info):
    return LinearPredictor(model.coef_, model.intercept_, model.classes_, **info)


def fit_lr_cv(X, y, *, seed):
    """LogisticRegression(C by 3-fold CV on balanced accuracy, max_iter=2000), refit on all."""
    C, cv_scores, model = lr_cv_head(X, y, seed=seed)
    return _from_lr(model, C=C)


def fit_lr_balanced(X, y, *, seed):
    """As :func:`fit_lr_cv` with ``class_weight="balanced"`` (its own C by CV)."""
    C, cv_scores, model = lr_cv_head(X, y, seed=seed, class_weight="balanced")
    return _from_lr(model, C=C)


def fit_lr_logit_adjusted(X, y, *, seed):
    """Post-hoc logit adjustment (Menon et al. 2021, tau = 1) of a CV-tuned LR.

    Scores ``decision_function - log(prior)``, prior = training class frequencies.
    Its C is chosen by the same 3-fold CV as :func:`fit_lr_cv`, but scoring the
    logit-adjusted predictions of each fold (the strongest form of this baseline).
    """
    C, _, model = lr_cv_head(X, y, seed=seed, adjusted=True)
    intercept = model.intercept_ - np.log(_prior(y, model.classes_))
    return LinearPredictor(model.coef_, intercept, model.classes_, C=C)


def fit_lr_la_name(X, y, class_embeddings, *, seed, C=10.0):
    """The simple use of class-name embeddings (issue 12): LogisticRegression(C=10)
    on the rows plus each class's name embedding as one more row of its class,
    then post-hoc logit adjustment with the *real* class counts.

    ``class_embeddings`` has one row per label ``0..n_classes-1``. C = 10 is the
    value the issue measured it with (not tuned here).
    """
    classes = np.unique(y)
    X_aug = np.vstack([X, class_embeddings[classes]])
    y_aug = np.concatenate([y, classes])
    model = _lr(C).fit(X_aug, y_aug)
    intercept = model.intercept_ - np.log(_prior(y, model.classes_))
    return LinearPredictor(model.coef_, intercept, model.classes_, C=C)


# ---------------------------------------------------------------------- tau-norm
def tau_normalise(coef, tau):
    """Rows ``w_c / ||w_c||**tau`` (Kang et al. 2020)."""
    norms = np.maximum(np.linalg.norm(coef, axis=1, keepdims=True), 1e-12)
    return coef / norms**tau


def fit_tau_norm(X, y, *, seed, tau=1.0):
    """tau-normalisation of the lr_cv head: ``w_c / ||w_c||**tau``, intercept dropped.

    As in Kang et al. (2020), whose classifier has no bias: the LR intercept is
    set to zero (keeping it would reintroduce the head-class bias that the
    normalisation removes). tau = 1 by default (the cosine classifier).
    """
    C, _, model = lr_cv_head(X, y, seed=seed)
    coef = tau_normalise(model.coef_, tau)
    return LinearPredictor(coef, np.zeros(len(coef)), model.classes_, C=C, tau=tau)


def validation_split(y, seed, fraction=0.2):
    """Per-class hold-out: ``round(fraction * n_c)`` (at least 1) of every class with
    ``n_c >= 2`` samples goes to validation; singleton classes stay in training, so
    every class keeps at least one training sample. Returns ``(train, val)`` indices.
    """
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if len(members) >= 2:
            k = max(1, int(round(fraction * len(members))))
            val.append(rng.choice(members, size=k, replace=False))
    val = np.sort(np.concatenate(val)) if val else np.array([], dtype=int)
    return np.setdiff1d(np.arange(len(y)), val), val


def _split_lr(X, y, seed, C):
    """Cached ``(train, val, LR(C) fitted on the training part of validation_split)``."""

    def compute():
        train, val = validation_split(y, seed)
        return train, val, _lr(C).fit(X[train], y[train])

    return _cached(("lr_split", _data_key(X, y), seed, C), compute)


def _val_score(predictor, X, y, val):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return balanced_accuracy_score(y[val], predictor.predict(X[val]))


def fit_tau_norm_tuned(X, y, *, seed):
    """tau-normalisation with tau in 0, 0.1, ..., 2 chosen on a validation split.

    The lr_cv LR (same C) is fitted on the training part of
    :func:`validation_split`; tau maximises balanced accuracy on the held-out part
    (ties: smallest tau); that tau is applied to the lr_cv head refit on all of
    ``(X, y)``. Intercept dropped, as in :func:`fit_tau_norm`. Singleton classes
    are never in the validation part, so the choice is made on the other classes.
    """
    C, _, model = lr_cv_head(X, y, seed=seed)
    train, val, split_model = _split_lr(X, y, seed, C)
    zeros = np.zeros(len(split_model.classes_))
    scores = [
        _val_score(LinearPredictor(tau_normalise(split_model.coef_, tau), zeros,
                                   split_model.classes_), X, y, val)
        for tau in TAU_GRID
    ]
    tau = float(TAU_GRID[int(np.argmax(scores))])
    coef = tau_normalise(model.coef_, tau)
    return LinearPredictor(coef, np.zeros(len(coef)), model.classes_, C=C, tau=tau)


# ------------------------------------------------------------ torch machinery
def _standardiser(X):
    """``(mean, s)`` with ``s`` the RMS norm of the centred rows."""
    mean = X.mean(axis=0)
    s = float(np.sqrt(np.mean(np.sum((X - mean) ** 2, axis=1))))
    return mean, (s if s > 0 else 1.0)


def _to_z_head(coef, intercept, mean, s):
    """Head on raw X -> the same head on Z = (X - mean) / s."""
    return coef * s, intercept + coef @ mean


def _from_z_head(coef_z, intercept_z, mean, s):
    coef = coef_z / s
    return coef, intercept_z - coef @ mean


def _balanced_batches(y_encoded, n_classes, generator, steps, batch_size):
    """Yield index tensors: each row draws a class uniformly, then one of its samples."""
    import torch

    y_t = torch.as_tensor(y_encoded)
    order = torch.argsort(y_t, stable=True)
    counts = torch.bincount(y_t, minlength=n_classes)
    starts = torch.cumsum(counts, 0) - counts
    for _ in range(steps):
        classes = torch.randint(n_classes, (batch_size,), generator=generator)
        offsets = (torch.rand(batch_size, generator=generator, dtype=torch.float64)
                   * counts[classes]).long()
        yield order[starts[classes] + offsets]


def _step_sizes(Z, y_encoded, n_classes, weight_decay=0.0):
    """SGD learning rates ``(1 - momentum) / L`` for the weights and the bias.

    ``L`` bounds the curvature of the class-balanced mean cross-entropy: the
    softmax Hessian is at most 1/2, so ``L_W = lambda_max(M) / 2`` with ``M`` the
    class-balanced second moment of ``Z`` (mean over classes of each class's
    mean ``z z^T``), plus the weight decay, and ``L_b = 1 / 2``. With momentum
    0.9 the effective step is ``1 / L``; this keeps the recipe free of a
    learning-rate knob whatever the scale or spectrum of the features.
    """
    counts = np.bincount(y_encoded, minlength=n_classes)
    weights = 1.0 / (n_classes * counts[y_encoded])
    moment = (Z * weights[:, None]).T @ Z
    lam = float(np.linalg.eigvalsh(moment)[-1])
    return (1 - SGD_MOMENTUM) / (lam / 2 + weight_decay), (1 - SGD_MOMENTUM) / 0.5


def _train_linear(
    Z, y_encoded, n_classes, *, seed, coef_init=None, intercept_init=None,
    weight_decay=0.0, max_norm=None, steps,
):
    """SGD (momentum 0.9, lr from :func:`_step_sizes`, cosine to 0) on CE of a linear head.

    Minibatches of BATCH_SIZE are class-balanced (uniform class, then a sample of
    it). ``weight_decay`` is coupled L2 on the weights only (not the bias).
    ``max_norm``: after every step, each weight row is projected onto the ball of
    that radius (MaxNorm). Returns ``(coef_z, intercept_z)``.
    """
    import torch

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(int(seed))
    d = Z.shape[1]
    W = torch.zeros(n_classes, d, dtype=torch.float32)
    b = torch.zeros(n_classes, dtype=torch.float32)
    if coef_init is not None:
        W = torch.as_tensor(coef_init, dtype=torch.float32).clone()
        b = torch.as_tensor(intercept_init, dtype=torch.float32).clone()
    W.requires_grad_(True)
    b.requires_grad_(True)
    lr_w, lr_b = _step_sizes(Z, y_encoded, n_classes, weight_decay)
    optimiser = torch.optim.SGD(
        [{"params": [W], "weight_decay": weight_decay, "lr": lr_w},
         {"params": [b], "weight_decay": 0.0, "lr": lr_b}],
        lr=lr_w, momentum=SGD_MOMENTUM,
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    Z_t = torch.as_tensor(Z, dtype=torch.float32)
    y_t = torch.as_tensor(y_encoded)

    def project():
        if max_norm is not None:
            with torch.no_grad():
                norms = W.norm(dim=1, keepdim=True).clamp_min(1e-12)
                W.mul_(torch.clamp(max_norm / norms, max=1.0))

    project()
    for rows in _balanced_batches(y_encoded, n_classes, generator, steps, BATCH_SIZE):
        optimiser.zero_grad()
        logits = Z_t[rows] @ W.T + b
        loss = torch.nn.functional.cross_entropy(logits, y_t[rows])
        loss.backward()
        optimiser.step()
        schedule.step()
        project()
    return W.detach().double().numpy(), b.detach().double().numpy()


def _encode(y):
    classes, y_encoded = np.unique(y, return_inverse=True)
    return classes, y_encoded


def _torch_single_thread():
    import torch

    torch.set_num_threads(1)


# --------------------------------------------------------------------------- cRT
def fit_crt(X, y, *, seed, weight_decay=None):
    """Classifier re-training (Kang et al. 2020): a fresh linear head, class-balanced.

    Zero-initialised head on standardised Z, trained for CRT_STEPS steps of
    class-balanced minibatches (128 rows: class uniform, then a sample of it) with
    plain cross-entropy, SGD momentum 0.9, cosine decay from the curvature-based
    learning rate of :func:`_step_sizes`. Weight decay from
    CRT_WEIGHT_DECAYS by balanced accuracy on :func:`validation_split`, then the
    head is retrained on all of ``(X, y)``.
    """
    _torch_single_thread()
    classes, y_enc = _encode(y)

    def head(rows, wd):  # standardised on the rows it trains on
        mean, s = _standardiser(X[rows])
        W, b = _train_linear((X[rows] - mean) / s, y_enc[rows], len(classes), seed=seed,
                             weight_decay=wd, steps=CRT_STEPS)
        return LinearPredictor(*_from_z_head(W, b, mean, s), classes, weight_decay=wd)

    if weight_decay is None:
        train, val = validation_split(y, seed)
        scores = {wd: _val_score(head(train, wd), X, y, val) for wd in CRT_WEIGHT_DECAYS}
        weight_decay = max(scores, key=scores.get)  # first max: smallest wd on ties
    return head(np.arange(len(y)), weight_decay)


# --------------------------------------------------------------------------- LWS
def fit_lws(X, y, *, seed):
    """Learnable weight scaling (Kang et al. 2020) on the frozen lr_cv head.

    Learns one scale f_c per class (init 1): logits ``f_c * (w_c . x + b_c)``
    (the LR intercept is scaled with its row), plain cross-entropy on
    class-balanced minibatches of 128, Adam lr 1e-2, LWS_STEPS steps. No knob is
    tuned; the head and its C are those of :func:`fit_lr_cv`.
    """
    import torch

    _torch_single_thread()
    C, _, model = lr_cv_head(X, y, seed=seed)
    classes, y_enc = _encode(y)
    logits = torch.as_tensor(model.decision_function(X), dtype=torch.float32)
    y_t = torch.as_tensor(y_enc)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(int(seed))
    scales = torch.ones(len(classes), requires_grad=True)
    optimiser = torch.optim.Adam([scales], lr=LWS_LR)
    for rows in _balanced_batches(y_enc, len(classes), generator, LWS_STEPS, BATCH_SIZE):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits[rows] * scales, y_t[rows])
        loss.backward()
        optimiser.step()
    f = scales.detach().double().numpy()
    return LinearPredictor(model.coef_ * f[:, None], model.intercept_ * f, classes,
                           C=C, scale_min=float(f.min()), scale_max=float(f.max()))


# ------------------------------------------------------------- weight balancing
def _wb_stage2(X, y_enc, n_classes, lr_model, *, seed, weight_decay, quantile=None,
               threshold=None):
    """Stage 2 of weight balancing from an LR head; returns ``(coef, intercept, radius)``."""
    mean, s = _standardiser(X)
    W0, b0 = _to_z_head(lr_model.coef_, lr_model.intercept_, mean, s)
    if threshold is None:
        threshold = float(np.quantile(np.linalg.norm(W0, axis=1), quantile))
    W, b = _train_linear(
        (X - mean) / s, y_enc, n_classes, seed=seed, coef_init=W0, intercept_init=b0,
        weight_decay=weight_decay, max_norm=threshold, steps=WB_STEPS,
    )
    coef, intercept = _from_z_head(W, b, mean, s)
    return coef, intercept, threshold


def fit_weight_balancing(X, y, *, seed, weight_decay=None, threshold=None):
    """Weight balancing (Alshammari et al. 2022), two stages on a linear head.

    Stage 1 is the lr_cv head (LogisticRegression with L2; its CV-chosen C is the
    stage-1 weight decay). Stage 2 fine-tunes it on standardised Z with
    class-balanced cross-entropy (class-balanced minibatches of 128, which in
    expectation is the CE reweighted by 1 / n_c) plus coupled weight decay and
    per-class MaxNorm (each row of W projected onto the ball of radius
    ``threshold`` after every step), SGD momentum 0.9, cosine decay from the
    learning rate of :func:`_step_sizes`, WB_STEPS steps. The MaxNorm
    radius is searched as a quantile (WB_NORM_QUANTILES) of the stage-1 row norms
    in Z space, the weight decay in WB_WEIGHT_DECAYS, by balanced accuracy on
    :func:`validation_split` (stage 1 refit with the same C on its training part).
    Passing ``weight_decay`` and ``threshold`` (a radius in Z space) skips the
    search; ``info`` reports the chosen values.
    """
    _torch_single_thread()
    C, _, model = lr_cv_head(X, y, seed=seed)
    classes, y_enc = _encode(y)
    quantile = None
    if weight_decay is None or threshold is None:
        train, val, split_model = _split_lr(X, y, seed, C)
        scores = {}
        for wd in WB_WEIGHT_DECAYS if weight_decay is None else (weight_decay,):
            for q in WB_NORM_QUANTILES if threshold is None else (None,):
                coef, intercept, _ = _wb_stage2(
                    X[train], y_enc[train], len(classes), split_model, seed=seed,
                    weight_decay=wd, quantile=q, threshold=threshold,
                )
                scores[(wd, q)] = _val_score(LinearPredictor(coef, intercept, classes), X, y, val)
        weight_decay, quantile = max(scores, key=scores.get)
    coef, intercept, threshold = _wb_stage2(
        X, y_enc, len(classes), model, seed=seed, weight_decay=weight_decay,
        quantile=quantile, threshold=threshold,
    )
    return LinearPredictor(coef, intercept, classes, C=C, weight_decay=weight_decay,
                           norm_quantile=quantile, threshold=round(threshold, 4))
