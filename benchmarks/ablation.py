"""Ablation of the SAMNClassifier default training recipe on BANKING77-LT.

Grown from a first prototype study (same data split, PAVA, baseline, cache
mechanism and existing groups). Standalone: numpy/scipy/scikit-learn/torch only, not the
package (data.py only tells it where the shared data lie), so it measures this file's
re-implementation of the recipe. Every run is appended
to a JSONL cache, so re-invocations skip finished (config, IF, seed) runs, and
``--table-only`` renders one Markdown table per group from the cache.

Every row changes ONE thing of the recommended default (``DEFAULT`` below, "r0=7"):
X' = (X - mu) / s, unit class-mean directions, log-norm init log 7, bias 0 (free),
logit-adjusted ("la") loss, full-batch Adam lr 3e-3, 100 epochs, cosine decay, no L2,
exact tie handling. IF 100, 50 and 10, seeds 0-4. The test split is only reported.

Regenerate (one core, ~13 min in all; cache in $SAMN_ABLATION_CACHE, default
/tmp/samn_ablation_v2/results.jsonl):

    export OMP_NUM_THREADS=1
    python benchmarks/ablation.py --seeds 0 1 2 3 4 --groups baseline base normmap bias \
        loss ties kink solver init constraint l2 sens
    python benchmarks/ablation.py --seeds 0 1 2 3 4 --table-only

The lr x epochs grid of the prototype (``--groups grid``, 256 configs) is kept working but
is not part of the study: at three IFs and five seeds it alone would exceed the budget.

Model (norm_map="exp"): w_c = exp(q_c) v_c / ||v_c||, q = PAVA(a) non-increasing from
tail to head (classes sorted by count ascending; ties="exact": tied counts sorted by a
descending, which solves the partial-order projection exactly; ties="stable": tied counts
left in class-index order, the label-order-dependent variant of METHOD.md),
logits = X' W^T + b. Loss "la": cross_entropy(logits + log prior, y) at train time, raw
logits at test time.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import isotonic_regression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import KFold

torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# The shared data folder as data.py locates it: ../shared beside the repository.
from data import BANKING77_ROOT  # noqa: E402

DATA = BANKING77_ROOT / "minilm_embeddings.npz"
CACHE = os.environ.get("SAMN_ABLATION_CACHE", "/tmp/samn_ablation_v2/results.jsonl")
N_MAX = 35
PAPER_EPS = 1e-6


# --------------------------------------------------------------------------- data
def load():
    d = np.load(DATA)
    return d["X_train"], d["y_train"], d["X_test"], d["y_test"]


def make_lt(X, y, imb, seed):
    """Class of rank r keeps max(1, floor(N_MAX * imb**(-r/(C-1)))) random samples."""
    C = int(y.max()) + 1
    rng = np.random.default_rng(seed)
    perm = rng.permutation(C)
    idx = []
    for r, c in enumerate(perm):
        k = max(1, int(math.floor(N_MAX * imb ** (-r / (C - 1)))))
        idx.append(rng.choice(np.flatnonzero(y == c), k, replace=False))
    idx = np.concatenate(idx)
    return X[idx], y[idx]


def few_classes(counts):
    """Third of classes with the smallest counts; ties at the boundary are included."""
    C = len(counts)
    thr = np.sort(counts)[C // 3 - 1]
    return np.flatnonzero(counts <= thr)


def scores(pred, yt, few):
    bal = float(np.mean(pred == yt))  # test set is balanced: accuracy == balanced acc
    m = np.isin(yt, few)
    return bal, float(np.mean(pred[m] == yt[m]))


# --------------------------------------------------------------------------- PAVA
def pava_order(a_np, order, tie_id, increasing, exact):
    """Total order handed to PAVA. exact: tied counts re-sorted by value (descending for a
    non-increasing fit, ascending for a non-decreasing one), which makes total-order PAVA
    solve the partial-order projection exactly. Otherwise class-index order (stable)."""
    if not exact:
        return order
    a_ord = a_np[order]
    # lexsort: primary tie group (ascending count), secondary value
    perm = np.lexsort((a_ord if increasing else -a_ord, tie_id))
    return order[perm]


def project_np(a_np, order, tie_id, increasing, exact):
    full = pava_order(a_np, order, tie_id, increasing, exact)
    res = isotonic_regression(a_np[full], increasing=increasing)
    q = np.empty_like(a_np)
    q[full] = res.x
    return q, full, res.blocks


def split_equal_blocks(y_sorted, blocks):
    """Block boundaries with every block whose inputs are all exactly equal split into
    singletons. scipy's PAVA pools equal neighbours (no violation, a kink of the
    projection); the block-mean backward then averages their gradients, so entries that
    start equal stay equal forever. Splitting them is the other one-sided derivative:
    it lets equal entries separate in the allowed direction."""
    out = [0]
    for s, e in zip(blocks[:-1], blocks[1:]):
        if e - s > 1 and np.ptp(y_sorted[s:e]) == 0:
            out.extend(range(s + 1, e + 1))
        else:
            out.append(e)
    return np.asarray(out)


class MonotoneProject(torch.autograd.Function):
    """Euclidean projection of a onto {q: q monotone along `order`} (classes by count
    ascending; `tie_id` labels the tie groups of equal counts). increasing=False: q
    non-increasing from tail to head. Backward = block mean of the incoming gradient
    over scipy's blocks (split=False, as the package does) or over the blocks with
    all-equal blocks split into singletons (split=True, see split_equal_blocks)."""

    @staticmethod
    def forward(ctx, a, order, tie_id, increasing, exact, split=False):
        a_np = a.detach().cpu().double().numpy()
        q, full, blocks = project_np(a_np, order, tie_id, increasing, exact)
        ctx.full = full
        ctx.blocks = split_equal_blocks(a_np[full], blocks) if split else blocks
        return torch.as_tensor(q, dtype=a.dtype, device=a.device)

    @staticmethod
    def backward(ctx, g):
        g_np = g.detach().cpu().double().numpy()[ctx.full]
        b = ctx.blocks
        sums = np.add.reduceat(g_np, b[:-1])
        means = sums / np.diff(b)
        out_sorted = np.repeat(means, np.diff(b))
        out = np.empty_like(out_sorted)
        out[ctx.full] = out_sorted
        return (torch.as_tensor(out, dtype=g.dtype, device=g.device),
                None, None, None, None, None)


def tie_structure(counts):
    order = np.argsort(counts, kind="stable")
    _, tie_id = np.unique(counts[order], return_inverse=True)
    return order, tie_id


def paper_g(p):
    """The published map g(p) = exp(1 / (softplus(p) + 1e-6)): strictly decreasing, > 1."""
    return torch.exp(1.0 / (F.softplus(p) + PAPER_EPS))


def minmax(counts):
    span = counts.max() - counts.min()
    return (counts - counts.min()) / span if span > 0 else np.zeros_like(counts)


# --------------------------------------------------------------------------- model
DEFAULT = dict(
    param="samn",       # samn | free (plain W, b)
    constraint=True,    # PAVA projection on/off (samn only)
    norm_map="exp",     # exp: exp(q), q=PAVA_dec(a), a0=log r0
                        # paper: exp(1/(softplus(p)+1e-6)), p=PAVA_inc(s), s0=minmax(counts)
                        # softplus: softplus(q), q=PAVA_dec(a), a0=softplus^-1(r0)
    raw_x=False,        # True: the head sees raw X (no centring/scaling; not scale-invariant)
    bias="free",        # free | none (b = 0 fixed) | monotone (b + g(PAVA_inc(s')), s'0=minmax)
    ties="exact",       # exact | stable (tied counts in class-index order)
    kink="pool",        # pool: backward averages over scipy's blocks, incl. blocks of
                        #   exactly equal inputs (the package); split: such blocks are
                        #   split into singletons in the backward
    init="mean",        # mean | stage1 | zero (free only)
    r0=7.0,             # initial norm for init=mean (rows of X' have RMS norm 1)
    b_init="zero",      # zero | logprior | neglogprior
    s1_epochs=50,       # stage-1 epochs (init=stage1), same solver settings
    loss="la",          # la | ce | las (label-aware smoothing) | la+las
    las_head=0.4,       # label-aware smoothing eps of the most frequent class
    las_tail=0.1,       #   ... of the rarest class
    las_power=1.0,      #   eps_c = tail + (head-tail) * ((n_c-n_min)/(n_max-n_min))**power
    solver="adam",      # adam | sgd (momentum 0.9) | lbfgs
    lr=3e-3,
    batch=0,            # 0 = full batch
    epochs=100,
    sched="cos",        # cos | const
    lbfgs_iter=200,
    l2=0.0,             # l2/2 * sum ||w_c||^2 added to the mean loss
    tol=0.0,            # >0: stop when full-batch train loss has not improved by tol
    n_no_change=5,      #     for n_no_change epochs
    rename_check=False,  # also refit with permuted class ids; record changed predictions
)


class Head:
    def __init__(self, cfg, Xp, y, counts, seed):
        self.cfg = cfg
        C, d = len(counts), Xp.shape[1]
        self.order, self.tie_id = tie_structure(counts)
        self.exact = cfg["ties"] == "exact"
        self.logprior = torch.as_tensor(np.log(counts / counts.sum()), dtype=torch.float32)
        if cfg["b_init"] == "zero":
            b0 = torch.zeros(C)
        elif cfg["b_init"] == "logprior":
            b0 = self.logprior.clone()
        else:
            b0 = -self.logprior.clone()
        self.params = []
        if cfg["bias"] == "none":
            self.b = torch.zeros(C)
        else:
            self.b = b0.clone().requires_grad_(True)
            self.params.append(self.b)
        if cfg["bias"] == "monotone":
            self.sb = torch.as_tensor(minmax(counts), dtype=torch.float32).requires_grad_(True)
            self.params.append(self.sb)
        if cfg["loss"] in ("las", "la+las"):
            u = minmax(counts) ** cfg["las_power"]
            self.eps = torch.as_tensor(cfg["las_tail"] + (cfg["las_head"] - cfg["las_tail"]) * u,
                                       dtype=torch.float32)
        if cfg["param"] == "free":
            if cfg["init"] == "mean":
                M = class_means(Xp, y, C)
                W = cfg["r0"] * M / M.norm(dim=1, keepdim=True)
            else:
                W = torch.zeros(C, d)
            self.W = W.requires_grad_(True)
            self.params.append(self.W)
        else:
            M = class_means(Xp, y, C)
            self.V = (M / M.norm(dim=1, keepdim=True)).requires_grad_(True)
            if cfg["norm_map"] == "exp":
                a0 = math.log(cfg["r0"])
            elif cfg["norm_map"] == "softplus":
                a0 = cfg["r0"] + math.log(-math.expm1(-cfg["r0"]))  # softplus^-1(r0)
            if cfg["norm_map"] == "paper":
                self.a = torch.as_tensor(minmax(counts), dtype=torch.float32)
            else:
                self.a = torch.full((C,), a0)
            self.a.requires_grad_(True)
            self.params += [self.V, self.a]

    def _proj(self, v, increasing):
        if not self.cfg["constraint"]:
            return v
        return MonotoneProject.apply(v, self.order, self.tie_id, increasing, self.exact,
                                     self.cfg["kink"] == "split")

    def q(self):
        """The projected scalars of the norm map (PAVA output)."""
        return self._proj(self.a, self.cfg["norm_map"] == "paper")

    def norms(self):
        q = self.q()
        m = self.cfg["norm_map"]
        return torch.exp(q) if m == "exp" else F.softplus(q) if m == "softplus" else paper_g(q)

    def weight(self):
        if self.cfg["param"] == "free":
            return self.W
        return self.norms()[:, None] * self.V / self.V.norm(dim=1, keepdim=True)

    def bias(self):
        if self.cfg["bias"] == "monotone":
            return self.b + paper_g(self._proj(self.sb, True))
        return self.b

    def logits(self, X):
        return X @ self.weight().T + self.bias()

    def loss(self, X, y):
        z = self.logits(X)
        if self.cfg["loss"] in ("la", "la+las"):
            z = z + self.logprior
        if self.cfg["loss"] in ("las", "la+las"):
            # MiSLAS (Zhong et al. 2021) code: (1 - eps_y) * nll + eps_y * mean_k(-log p_k)
            logp = F.log_softmax(z, dim=1)
            eps = self.eps[y]
            nll = -logp.gather(1, y[:, None]).squeeze(1)
            out = ((1 - eps) * nll - eps * logp.mean(1)).mean()
        else:
            out = F.cross_entropy(z, y)
        if self.cfg["l2"] > 0:
            out = out + 0.5 * self.cfg["l2"] * (self.weight() ** 2).sum()
        return out

    def n_blocks(self):
        """PAVA blocks of the final norm scalars: scipy's count (equal neighbours pooled),
        the count with all-equal blocks split (only blocks pooled by a violation), and the
        count for the bias scalars. Without the constraint: the blocks that projecting
        the final scalars would give (does the unconstrained solution violate it?)."""
        if self.cfg["param"] == "free":
            return None, None, None
        inc = self.cfg["norm_map"] == "paper"
        a_np = self.a.detach().double().numpy()
        _, full, blocks = project_np(a_np, self.order, self.tie_id, inc, self.exact)
        nb = len(blocks) - 1
        nbs = len(split_equal_blocks(a_np[full], blocks)) - 1
        nbb = None
        if self.cfg["bias"] == "monotone":
            nbb = len(project_np(self.sb.detach().double().numpy(), self.order, self.tie_id,
                                 True, self.exact)[2]) - 1
        return nb, nbs, nbb


def class_means(Xp, y, C):
    M = torch.zeros(C, Xp.shape[1])
    M.index_add_(0, y, Xp)
    return M / torch.bincount(y, minlength=C)[:, None].float()


def train(head, Xp, y, cfg, epochs, seed):
    """Returns number of epochs/iterations run."""
    if cfg["solver"] == "lbfgs":
        opt = torch.optim.LBFGS(head.params, lr=1.0, max_iter=cfg["lbfgs_iter"],
                                max_eval=int(cfg["lbfgs_iter"] * 1.25),
                                tolerance_grad=1e-7, tolerance_change=1e-9,
                                history_size=20, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = head.loss(Xp, y)
            loss.backward()
            return loss

        opt.step(closure)
        return opt.state[opt._params[0]]["n_iter"]
    n = len(y)
    bs = n if cfg["batch"] in (0, None) or cfg["batch"] >= n else cfg["batch"]
    steps_per_epoch = math.ceil(n / bs)
    total = epochs * steps_per_epoch
    if cfg["solver"] == "sgd":
        opt = torch.optim.SGD(head.params, lr=cfg["lr"], momentum=0.9)
    else:
        opt = torch.optim.Adam(head.params, lr=cfg["lr"])
    g = torch.Generator().manual_seed(seed)
    step = 0
    best, stall = float("inf"), 0
    for ep in range(epochs):
        perm = torch.randperm(n, generator=g) if bs < n else torch.arange(n)
        for i in range(0, n, bs):
            if cfg["sched"] == "cos":
                for pg in opt.param_groups:
                    pg["lr"] = cfg["lr"] * 0.5 * (1 + math.cos(math.pi * step / total))
            idx = perm[i:i + bs]
            opt.zero_grad()
            head.loss(Xp[idx], y[idx]).backward()
            opt.step()
            step += 1
        if cfg["tol"] > 0:
            with torch.no_grad():
                value = head.loss(Xp, y).item()
            if value < best - cfg["tol"]:
                best, stall = value, 0
            else:
                stall += 1
                if stall >= cfg["n_no_change"]:
                    return ep + 1
    return epochs


def fit_predict(cfg, Xtr, ytr, Xte, seed):
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    C = int(ytr.max()) + 1
    counts = np.bincount(ytr, minlength=C).astype(float)
    if cfg["raw_x"]:
        mu, s = np.zeros(Xtr.shape[1], dtype=Xtr.dtype), 1.0
    else:
        mu = Xtr.mean(0)
        s = float(np.sqrt(((Xtr - mu) ** 2).sum(1).mean()))
    Xp = torch.as_tensor((Xtr - mu) / s, dtype=torch.float32)
    yt = torch.as_tensor(ytr, dtype=torch.long)
    info = {}
    if cfg["param"] == "samn" and cfg["init"] == "stage1":
        assert cfg["norm_map"] == "exp" and cfg["bias"] == "free", "stage1 only for the exp map"
        c1 = dict(cfg, param="free", init="zero", tol=0.0)
        h1 = Head(c1, Xp, yt, counts, seed)
        train(h1, Xp, yt, c1, cfg["s1_epochs"], seed)
        head = Head(cfg, Xp, yt, counts, seed)
        with torch.no_grad():
            W1 = h1.W.detach()
            nrm = W1.norm(dim=1).clamp_min(1e-12)
            head.V.copy_(W1 / nrm[:, None])
            head.a.copy_(torch.log(nrm))
            head.b.copy_(h1.b.detach())
    else:
        head = Head(cfg, Xp, yt, counts, seed)
    info["n_iter"] = int(train(head, Xp, yt, cfg, cfg["epochs"], seed))
    with torch.no_grad():
        W = head.weight()
        info["train_loss"] = float(head.loss(Xp, yt))
        info["train_acc"] = float((head.logits(Xp).argmax(1) == yt).float().mean())
        nrm = W.norm(dim=1).numpy()
        order = np.argsort(counts, kind="stable")
        info["norm_tail"] = float(nrm[order[: C // 3]].mean())
        info["norm_head"] = float(nrm[order[-(C // 3):]].mean())
        nb, nbs, nbb = head.n_blocks()
        if nb is not None:
            info["n_blocks"] = nb
            info["n_blocks_strict"] = nbs
            info["n_distinct_norms"] = int(len(np.unique(nrm)))
        if nbb is not None:
            info["n_blocks_bias"] = nbb
        Z = torch.as_tensor((Xte - mu) / s, dtype=torch.float32) @ W.T + head.bias()
        Z = Z.numpy()
    fit_s = time.perf_counter() - t0
    pred = Z.argmax(1)
    pred_pla = (Z - np.log(counts / counts.sum())).argmax(1)
    return pred, pred_pla, fit_s, info


def rename_check(cfg, Xs, ys, Xt, seed, pred, pred_pla):
    """Refit with class ids renamed by a random permutation; fraction of test predictions
    (mapped back to the original ids) that differ from the original fit."""
    C = int(ys.max()) + 1
    pi = np.random.default_rng(10_000 + seed).permutation(C)
    inv = np.argsort(pi)
    p2, p2_pla, _, info2 = fit_predict(cfg, Xs, pi[ys], Xt, seed)
    return dict(rename_changed=float(np.mean(inv[p2] != pred)),
                rename_changed_pla=float(np.mean(inv[p2_pla] != pred_pla)),
                rename_n_blocks=info2.get("n_blocks"))


# --------------------------------------------------------------------------- baseline
def baseline(Xtr, ytr, Xte):
    """LR with C by 3-fold CV + post-hoc logit adjustment.

    Stratified 3-fold is impossible when classes have 1-2 samples, so plain
    KFold(3, shuffle=True, random_state=0) is used and C is scored by balanced accuracy
    on each validation fold (classes missing from a training fold cannot be predicted).
    Two selection scores from the same fits: balanced acc of LR+LA predictions
    ("la-cv") and of plain LR predictions ("lr-cv").
    """
    grid = [0.1, 1, 10, 100, 1000]
    kf = KFold(3, shuffle=True, random_state=0)
    cv_la = {c: [] for c in grid}
    cv_lr = {c: [] for c in grid}
    t0 = time.perf_counter()
    for tr, va in kf.split(Xtr):
        cls, cnt = np.unique(ytr[tr], return_counts=True)
        lp = np.log(cnt / cnt.sum())
        for c in grid:
            m = LogisticRegression(C=c, max_iter=2000).fit(Xtr[tr], ytr[tr])
            z = m.decision_function(Xtr[va])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cv_lr[c].append(balanced_accuracy_score(ytr[va], cls[z.argmax(1)]))
                cv_la[c].append(balanced_accuracy_score(ytr[va], cls[(z - lp).argmax(1)]))
    cv_time = time.perf_counter() - t0
    counts = np.bincount(ytr)
    lp = np.log(counts / counts.sum())
    out = {}
    fits = {}
    for c in grid:
        t1 = time.perf_counter()
        m = LogisticRegression(C=c, max_iter=2000).fit(Xtr, ytr)
        z = m.decision_function(Xte)
        fits[c] = (z, time.perf_counter() - t1)
    c_la = max(grid, key=lambda c: np.mean(cv_la[c]))
    c_lr = max(grid, key=lambda c: np.mean(cv_lr[c]))
    for name, c in [("la-cv", c_la), ("lr-cv", c_lr)]:
        z, ft = fits[c]
        out[f"LR+LA (C by {name})"] = ((z - lp).argmax(1), cv_time + ft, {"C": c})
        out[f"LR plain (C by {name})"] = (z.argmax(1), cv_time + ft, {"C": c})
    for c in grid:  # test-set hindsight, for reference only
        z, ft = fits[c]
        out[f"LR+LA fixed C={c:g} (hindsight)"] = ((z - lp).argmax(1), ft, {"C": c})
    return out


# --------------------------------------------------------------------------- configs
def C_(name, **kw):
    cfg = dict(DEFAULT)
    for k in kw:
        assert k in DEFAULT, k
    cfg.update(kw)
    return name, cfg


DEFAULT_NAME = "default (r0=7)"


def groups(best):
    g = {}
    g["base"] = [C_(DEFAULT_NAME)]
    # 1. norm map from the PAVA output to the norm, with its initialisation
    g["normmap"] = [
        C_("(a) exp(q), q0 = log 7 [default]"),
        C_("(b) published g(p), p0 = minmax counts, on X'", norm_map="paper"),
        C_("(c) published g(p), p0 = minmax counts, on raw X", norm_map="paper", raw_x=True),
        C_("(d) softplus(q), q0 = softplus^-1(7)", norm_map="softplus"),
        # two-factor reference rows (not one-factor ablations)
        C_("[ref] (c) + monotone bias (published head as is)", norm_map="paper", raw_x=True,
           bias="monotone"),
        C_("[ref] published head + published stage-2 recipe (ce, SGD mom 0.9 lr 5e-4, "
           "batch 64, 20 ep, cos)", norm_map="paper", raw_x=True, bias="monotone", loss="ce",
           solver="sgd", lr=5e-4, batch=64, epochs=20),
    ]
    # 2. bias handling x loss
    g["bias"] = [C_(f"bias {b}, loss {loss}", bias=b, loss=loss)
                 for loss in ("la", "ce") for b in ("free", "none", "monotone")]
    # 3. loss (existing rows kept)
    g["loss"] = [
        C_("loss ce, b=0", loss="ce"),
        C_("loss las (label-aware smoothing 0.4/0.1, p=1)", loss="las"),
        C_("loss la + las", loss="la+las"),
        C_("loss ce, b=logprior", loss="ce", b_init="logprior"),
        C_("loss ce, stage1", loss="ce", init="stage1"),
        C_("loss ce, b=logprior, lr=1e-2", loss="ce", b_init="logprior", lr=1e-2),
    ]
    # 4. tie handling (+ renaming check). stage1 rows: a regime where the constraint binds.
    g["ties"] = [
        C_("exact ties [default]", rename_check=True),
        C_("stable argsort ties", ties="stable", rename_check=True),
        C_("stage1 init, exact ties", init="stage1", rename_check=True),
        C_("stage1 init, stable argsort ties", init="stage1", ties="stable", rename_check=True),
        C_("control: constraint off (float-noise floor)", constraint=False, rename_check=True),
    ]
    # 4b. the backward pass at a kink: entries that start exactly equal (the default
    # init: all log-norms log 7; the published init: tied counts) form one scipy block
    # and the block-mean backward keeps them equal forever.
    g["kink"] = [
        C_("backward pools equal entries [default]"),
        C_("backward splits all-equal blocks", kink="split", rename_check=True),
        C_("split, stable argsort ties", kink="split", ties="stable", rename_check=True),
        C_("split, no constraint (same a0; reference)", kink="split", constraint=False),
        C_("split, r0=3 lr=1e-2 ep=200", kink="split", r0=3.0, lr=1e-2, epochs=200),
        C_("(b) published g(p) on X', split", kink="split", norm_map="paper"),
    ]
    # 5. solver and schedule (existing rows kept)
    g["solver"] = (
        [C_(f"adam lr={lr:g}", lr=lr) for lr in (1e-3, 1e-2, 3e-2)]
        + [C_("adam const lr", sched="const")]
        + [C_(f"adam batch={b}", batch=b) for b in (64, 256)]
        + [C_(f"adam batch={b}, lr=1e-3", batch=b, lr=1e-3) for b in (64, 256)]
        + [C_(f"adam epochs={e}", epochs=e) for e in (50, 200, 400)]
        + [C_(f"sgd mom 0.9 full batch lr={lr:g} cos", solver="sgd", lr=lr) for lr in (0.1, 1.0)]
        + [C_(f"lbfgs iter={it}", solver="lbfgs", lbfgs_iter=it) for it in (100, 300, 500)]
    )
    # 6. initialisation incl. the own unconstrained stage 1 (existing rows kept)
    g["init"] = [C_(f"init r0={r}", r0=float(r)) for r in (1, 3, 5, 10, 14, 20)] + [
        C_("init b=-logprior", b_init="neglogprior"),
        C_("init stage1 (50 ep free + 100)", init="stage1", s1_epochs=50),
        C_("init stage1 (50 ep free + 100), lr=1e-2", init="stage1", s1_epochs=50, lr=1e-2),
    ]
    g["constraint"] = [
        C_("no constraint (q=a)", constraint=False),
        C_("free W (class-mean init)", param="free"),
        C_("free W (zero init)", param="free", init="zero"),
        C_("free W (zero init), lr=1e-2", param="free", init="zero", lr=1e-2),
        C_("r0=3 lr=1e-2 ep=200", r0=3.0, lr=1e-2, epochs=200),
        C_("r0=3 lr=1e-2 ep=200, no constraint", r0=3.0, lr=1e-2, epochs=200, constraint=False),
        C_("stage1 init, no constraint", init="stage1", constraint=False),
        C_("loss ce, no constraint", loss="ce", constraint=False),
        C_("lbfgs iter=300, no constraint", solver="lbfgs", lbfgs_iter=300, constraint=False),
    ]
    g["l2"] = (
        [C_(f"l2={l2:g}", l2=l2) for l2 in (1e-4, 1e-3, 1e-2)]
        + [C_("epochs=2000 (near convergence)", epochs=2000)]
        + [C_("epochs=2000, lr=1e-2", epochs=2000, lr=1e-2)]
        + [C_(f"epochs<=2000 tol={t:g}", epochs=2000, tol=t) for t in (1e-3, 1e-4)]
        + [C_("lbfgs iter=2000 (converged)", solver="lbfgs", lbfgs_iter=2000)]
        + [C_("lbfgs iter=2000 l2=1e-3", solver="lbfgs", lbfgs_iter=2000, l2=1e-3)]
    )
    grid = []
    for loss in ("la", "ce"):
        for con in (True, False):
            for iname, ikw in [("mean r0=1", dict(r0=1.0)), ("mean r0=3", dict(r0=3.0)),
                               ("mean r0=10", dict(r0=10.0)), ("stage1", dict(init="stage1"))]:
                for lr in (1e-3, 3e-3, 1e-2, 3e-2):
                    for ep in (50, 100, 200, 400):
                        grid.append(C_(f"grid {loss} con={int(con)} {iname} lr={lr:g} ep={ep}",
                                       loss=loss, constraint=con, lr=lr, epochs=ep, **ikw))
    g["grid"] = grid
    bname, bcfg = best if best else ("r0=7", dict(DEFAULT))
    sens = [C_(f"[{bname}] as is", **bcfg)]
    for k, fac in [("lr", 0.5), ("lr", 2), ("epochs", 0.5), ("epochs", 2)]:
        sens.append(C_(f"[{bname}] {k} x{fac:g}", **dict(bcfg, **{k: type(bcfg[k])(bcfg[k] * fac)})))
    if bcfg.get("batch", 0):
        for fac in (0.5, 2):
            sens.append(C_(f"[{bname}] batch x{fac:g}", **dict(bcfg, batch=int(bcfg["batch"] * fac))))
    else:
        sens += [C_(f"[{bname}] batch={b}", **dict(bcfg, batch=b)) for b in (512, 256, 128)]
    sens += [C_(f"[{bname}] r0 x{f:g}", **dict(bcfg, r0=bcfg["r0"] * f)) for f in (0.5, 2)]
    g["sens"] = sens
    return g


# --------------------------------------------------------------------------- driver
def key(name, cfg, imb, seed):
    return json.dumps([name, cfg, imb, seed], sort_keys=True)


def read_cache():
    rows = []
    if os.path.exists(CACHE):
        with open(CACHE) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    # last record wins per (group, name, IF, seed): reruns never double-count
    uniq = {(r["group"], r["name"], r["imb"], r["seed"]): r for r in rows}
    return list(uniq.values())


def run(args):
    X, y, Xt, yt = load()
    rows = read_cache()
    done = {r["key"] for r in rows}
    best = None
    if args.best:
        best = (args.best_name or "best", dict(DEFAULT, **json.loads(args.best)))
    G = groups(best)
    todo = []
    for gname in args.groups:
        if gname == "baseline":
            continue
        for name, cfg in G[gname]:
            todo.append((gname, name, cfg))
    t_start = time.time()
    for imb in args.ifs:
        for seed in args.seeds:
            Xs, ys = make_lt(X, y, imb, seed)
            counts = np.bincount(ys, minlength=77)
            few = few_classes(counts)
            bkey = json.dumps(["baseline", imb, seed])
            if "baseline" in args.groups and bkey not in done:
                for name, (pred, ft, info) in baseline(Xs, ys, Xt).items():
                    bal, fw = scores(pred, yt, few)
                    rec = dict(key=bkey if name == "LR+LA (C by la-cv)" else bkey + name,
                               group="baseline", name=name, imb=imb, seed=seed, bal=bal,
                               few=fw, fit_s=ft, info=info, n_train=len(ys))
                    append(rec)
                done.add(bkey)
                print(f"[{time.time()-t_start:6.0f}s] IF{imb} s{seed} baseline done", flush=True)
            for gname, name, cfg in todo:
                k = key(name, cfg, imb, seed)
                if k in done:
                    continue
                pred, pred_pla, ft, info = fit_predict(cfg, Xs, ys, Xt, seed)
                if cfg["rename_check"]:
                    info.update(rename_check(cfg, Xs, ys, Xt, seed, pred, pred_pla))
                bal, fw = scores(pred, yt, few)
                bal2, fw2 = scores(pred_pla, yt, few)
                rec = dict(key=k, group=gname, name=name, cfg=cfg, imb=imb, seed=seed, bal=bal,
                           few=fw, bal_pla=bal2, few_pla=fw2, fit_s=ft, info=info,
                           n_train=len(ys))
                append(rec)
                done.add(k)
                print(f"[{time.time()-t_start:6.0f}s] IF{imb} s{seed} {name[:40]:40s} "
                      f"bal={bal:.4f} few={fw:.4f} t={ft:.1f}s {info}", flush=True)


def append(rec):
    os.makedirs(os.path.dirname(CACHE), exist_ok=True)
    with open(CACHE, "a") as f:
        f.write(json.dumps(rec) + "\n")


GROUP_TITLES = {
    "baseline": "Baseline: LogisticRegression + post-hoc logit adjustment",
    "base": "The default",
    "normmap": "Group 1: norm map from the PAVA output to the norm (with its init)",
    "bias": "Group 2: bias handling x loss",
    "loss": "Group 3: loss",
    "ties": "Group 4: tie handling",
    "kink": "Group 4b: PAVA backward at exactly equal entries (added: explains #blocks = 1)",
    "solver": "Group 5: solver and schedule",
    "init": "Group 6: initialisation, incl. the own unconstrained stage 1",
    "constraint": "Constraint off / free head",
    "l2": "Convergence and L2",
    "sens": "Sensitivity of the default (x0.5 / x2)",
}


def table(args):
    rows = read_cache()
    seeds = set(args.seeds)
    ifs = list(args.ifs)
    rows = [r for r in rows if r["seed"] in seeds and r["imb"] in ifs and r["group"] != "grid"]
    agg = {}
    order = []
    for r in rows:
        for suffix, bk, fk in [("", "bal", "few"), (" + post-hoc LA", "bal_pla", "few_pla")]:
            if suffix and (r["group"] == "baseline" or r["cfg"]["loss"] not in ("ce", "las")):
                continue
            nm = (r["group"], r["name"] + suffix)
            if nm not in agg:
                agg[nm] = {}
                order.append(nm)
            info = r.get("info", {})
            agg[nm][(r["imb"], r["seed"])] = dict(
                bal=100 * r[bk], few=100 * r[fk], fit=r["fit_s"], nb=info.get("n_blocks"),
                nbs=info.get("n_blocks_strict"), nbb=info.get("n_blocks_bias"),
                con=r["cfg"]["constraint"] if "cfg" in r else True,
                ren=info.get("rename_changed_pla" if suffix else "rename_changed"))
    ref = agg.get(("base", DEFAULT_NAME), {})
    gorder = list(GROUP_TITLES)
    by_group = {}
    for nm in order:
        by_group.setdefault(nm[0], []).append(nm)
    out = []
    hdr = "| config | " + " | ".join(f"IF{i}" for i in ifs) + " | mean | few (mean) | #blocks | d vs default | fit s |"
    for gname in sorted(by_group, key=lambda t: gorder.index(t) if t in gorder else 99):
        has_ren = any(v["ren"] is not None for nm in by_group[gname] for v in agg[nm].values())
        out.append(f"\n### {GROUP_TITLES.get(gname, gname)}\n")
        out.append(hdr + (" renamed: % preds changed (mean / max) |" if has_ren else ""))
        out.append("|---" * (hdr.count("|") - 1 + has_ren) + "|")
        for nm in by_group[gname]:
            A = agg[nm]
            cells, means = [], []
            for imb in ifs:
                b = np.array([A[(imb, s)]["bal"] for s in sorted(seeds) if (imb, s) in A])
                if len(b) == 0:
                    cells.append("-")
                    continue
                ns = "" if len(b) == len(seeds) else f" (n={len(b)})"
                cells.append(f"{b.mean():.1f}±{b.std():.1f}{ns}")
                means.append(b.mean())
            mean = f"{np.mean(means):.1f}" if len(means) == len(ifs) else "-"
            few = np.mean([np.mean([v["few"] for (i, s), v in A.items() if i == imb])
                           for imb in ifs if any(k[0] == imb for k in A)])
            nbs = [v["nb"] for v in A.values() if v["nb"] is not None]
            nb = f"{np.mean(nbs):.1f}" if nbs else "-"
            strict = [v["nbs"] for v in A.values() if v["nbs"] is not None]
            if strict and np.mean(strict) != np.mean(nbs):
                nb += f" [{np.mean(strict):.1f}]"
            if nbs and not any(v["con"] for v in A.values()):
                nb = f"({nb})"
            nbbs = [v["nbb"] for v in A.values() if v["nbb"] is not None]
            if nbbs:
                nb += f" (bias {np.mean(nbbs):.1f})"
            d = "-"
            common = [k for k in A if k in ref]
            if common and len(common) == len(ref):
                diffs = {k: A[k]["bal"] - ref[k]["bal"] for k in common}
                per_seed = [np.mean([diffs[(i, s)] for i in ifs]) for s in sorted(seeds)]
                d = f"{np.mean(list(diffs.values())):+.2f} ± {np.std(per_seed):.2f}"
            fit = f"{np.mean([v['fit'] for v in A.values()]):.2f}"
            line = f"| {nm[1]} | " + " | ".join(cells) + f" | {mean} | {few:.1f} | {nb} | {d} | {fit} |"
            if has_ren:
                rs = [v["ren"] for v in A.values() if v["ren"] is not None]
                line += f" {100*np.mean(rs):.2f} / {100*np.max(rs):.2f} |" if rs else " - |"
            out.append(line)
    print("\n".join(out))


def grid_table(args):
    """lr x epochs blocks: mean balanced acc per IF (ce also with post-hoc LA)."""
    rows = [r for r in read_cache() if r["group"] == "grid" and r["seed"] in set(args.seeds)]
    acc = {}
    for r in rows:
        c = r["cfg"]
        init = "stage1" if c["init"] == "stage1" else f"mean r0={c['r0']:g}"
        variants = [(c["loss"], "bal")] + ([("ce+pLA", "bal_pla")] if c["loss"] == "ce" else [])
        for lname, bk in variants:
            k = (lname, c["constraint"], init, c["lr"], c["epochs"], r["imb"])
            acc.setdefault(k, []).append(100 * r[bk])
    blocks = sorted({k[:3] for k in acc}, key=lambda t: (t[0], not t[1], t[2]))
    lrs = sorted({k[3] for k in acc})
    eps = sorted({k[4] for k in acc})
    out = []
    for bl in blocks:
        out.append(f"\n**{bl[0]}, constraint={'on' if bl[1] else 'off'}, init {bl[2]}**"
                   f" ({' / '.join(f'IF{i}' for i in args.ifs)} mean balanced acc)\n")
        out.append("| lr \\ epochs | " + " | ".join(str(e) for e in eps) + " |")
        out.append("|---" * (len(eps) + 1) + "|")
        for lr in lrs:
            cells = []
            for e in eps:
                vals = [acc.get(bl + (lr, e, i)) for i in args.ifs]
                cells.append(" / ".join(f"{np.mean(v):.1f}" for v in vals) if all(vals) else "-")
            out.append(f"| {lr:g} | " + " | ".join(cells) + " |")
    print("\n".join(out))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--ifs", type=int, nargs="+", default=[100, 50, 10])
    p.add_argument("--groups", nargs="+", default=["baseline", "base"])
    p.add_argument("--best", default=None,
                   help="JSON dict of overrides of DEFAULT for the sens group (default: DEFAULT)")
    p.add_argument("--best-name", default="")
    p.add_argument("--table", action="store_true")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--grid-table", action="store_true")
    args = p.parse_args()
    if not (args.table_only or args.grid_table):
        run(args)
    if args.table or args.table_only:
        table(args)
    if args.grid_table:
        grid_table(args)


if __name__ == "__main__":
    main()
