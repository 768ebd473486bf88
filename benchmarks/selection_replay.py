"""Rules for choosing the cap, replayed on recorded cross-validation paths (validation rows, not test).

For each dev set (BANKING77, HWU64), imbalance factor (100, 50, 10), seed and
with or without the class-name prior, on the splits of ``prior_study.py``:

1. the default fit is run with the path walked to the end of the grid (no
   early stop), and every cap's out-of-fold scores (the head's balanced
   logits), labels, weights and singleton bookkeeping are recorded; then again
   with the classes of one sample credited by the trend instead of scored
   through stand-ins (``_lbfgs._STAND_INS = False``, the rule before), whose
   path the ``credit: ...`` rules read;
2. one fit per cap of the grid, at that fixed cap, is scored on the
   validation rows drawn from the training pool (the test split is not read).

Everything here is at the logit adjustment strength 1 (the loss's own): the
recorded paths, the fixed-cap fits and the ``default (real fit)`` row. The
shipped default also chooses the strength with the cap: the row ``default
with the logit adjustment strength chosen too`` shows what that adds.

A rule is then a function of the recorded path alone: it picks a cap, and
scores that cap's fixed fit. So dozens of rules cost seconds once the paths
are recorded, and every rule is judged on the same fits. (The default's
final fit starts from the folds' mean head, a fixed-cap fit from the class
means: the row ``default (real fit)`` shows how close the replay is.)

    python benchmarks/selection_replay.py [--seeds 0,1,2,3,4,5] [--jobs 2]
                                          [--imbalance 100,50,10] [--datasets a,b]
                                          [--names both|without|with]
                                          [--out SELECTION_REPLAY.md]
"""

import argparse
import contextlib
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.special import log_softmax  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prior_study  # noqa: E402

# The package's rule on a list of scores: the best cap, stopping after `patience`
# caps in a row that do not beat it (ties to the smaller cap).
from selection_study import default_pick as walk  # noqa: E402

import sklearn_samn._lbfgs as lbfgs_module  # noqa: E402
import sklearn_samn._selection as selection_module  # noqa: E402
from sklearn_samn import SAMNClassifier  # noqa: E402

GRID = tuple(selection_module.MAX_NORM_GRID)


@contextlib.contextmanager
def _recording(path):
    """Inside: the cross-validation walks the whole grid, and each cap appends
    ``(y, scores, sample_weight, unscored)`` of its out-of-fold rows to ``path``
    (the head's scores of every held-out block, as the package predicts from)."""
    scores = []
    block_scores = lbfgs_module.HeadObjective._block_scores
    balanced_accuracy = selection_module.balanced_accuracy
    patience = selection_module._PATIENCE
    strengths = selection_module._LOGIT_ADJUSTMENTS

    def keep_scores(self, xb, weights, bias):
        out = block_scores(self, xb, weights, bias)
        scores.append(out.cpu().numpy())
        return out

    def record_step(y, pred, sample_weight, unscored=None):
        path.append((y.copy(), np.concatenate(scores), sample_weight.copy(), unscored))
        scores.clear()
        return balanced_accuracy(y, pred, sample_weight, unscored)

    try:
        lbfgs_module.HeadObjective._block_scores = keep_scores
        selection_module.balanced_accuracy = record_step
        selection_module._PATIENCE = len(GRID)
        selection_module._LOGIT_ADJUSTMENTS = (1.0,)
        yield
    finally:
        lbfgs_module.HeadObjective._block_scores = block_scores
        selection_module.balanced_accuracy = balanced_accuracy
        selection_module._PATIENCE = patience
        selection_module._LOGIT_ADJUSTMENTS = strengths


@contextlib.contextmanager
def _strength_one():
    """Inside: the default keeps the loss's logit adjustment (strength 1), as
    the fixed-cap fits that the rules are scored on do."""
    strengths = selection_module._LOGIT_ADJUSTMENTS
    try:
        selection_module._LOGIT_ADJUSTMENTS = (1.0,)
        yield
    finally:
        selection_module._LOGIT_ADJUSTMENTS = strengths


def record(dataset, seed, imbalance=prior_study.IMBALANCE, priors=(False, True)):
    """Recorded paths and fixed-cap validation scores of one (dataset, seed),
    without and with the class-name prior (``priors``)."""
    import torch

    torch.set_num_threads(1)
    cases = []
    for ir in imbalance:
        X, y, X_val, y_val, E = prior_study.split(dataset, ir, seed)
        for prior in priors:
            params = dict(device="cpu", random_state=0,
                          class_embeddings=E if prior else None)
            path, path_trend = [], []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                shipped = SAMNClassifier(**params).fit(X, y)
                with _strength_one():
                    real = SAMNClassifier(**params).fit(X, y)
                with _recording(path):
                    SAMNClassifier(**params).fit(X, y)
                lbfgs_module._STAND_INS = False
                try:
                    with _recording(path_trend):
                        SAMNClassifier(**params).fit(X, y)
                finally:
                    lbfgs_module._STAND_INS = True
                fixed = [
                    balanced_accuracy_score(
                        y_val, SAMNClassifier(max_norm=cap, **params).fit(X, y).predict(X_val))
                    for cap in GRID
                ]
            assert len(path) == len(path_trend) == len(GRID)
            cases.append(dict(dataset=dataset, seed=seed, imbalance=ir, prior=prior,
                              path=path, path_trend=path_trend, fixed=np.array(fixed),
                              real_default=balanced_accuracy_score(y_val, real.predict(X_val)),
                              shipped=balanced_accuracy_score(y_val, shipped.predict(X_val)),
                              real_cap=real.max_norm_))
            print(f"{dataset} IF{ir} seed{seed} prior={prior}: recorded",
                  file=sys.stderr, flush=True)
    return cases


# ------------------------------------------------------------ the replayed rules
def _per_class(y, values, weight):
    classes = np.unique(y)
    total = np.bincount(y, weights=weight)[classes]
    return classes, np.bincount(y, weights=weight * values)[classes] / total


def _line(x, r, at, w=None):
    """Weighted least-squares line of ``r`` against ``x``, read at ``at``."""
    w = np.ones_like(x) if w is None else w
    mean = np.average(x, weights=w)
    centred = x - mean
    spread = np.sum(w * centred * centred)
    level = np.average(r, weights=w)
    if spread <= 1e-12:
        return level
    return level + np.sum(w * centred * (r - level)) / spread * (at - mean)


def _credits(kind, recall, log_train, log_unscored, held):
    if kind == "trend":
        return _line(log_train, recall, log_unscored)
    if kind == "rarest":
        return recall[log_train == log_train.min()].mean()
    if kind == "trend_rarer_half":
        rarer = log_train <= np.median(log_train)
        return _line(log_train[rarer], recall[rarer], log_unscored)
    if kind == "trend_held_weighted":
        return _line(log_train, recall, log_unscored, held)
    if kind == "quadratic":
        design = np.vstack([np.ones_like(log_train), log_train, log_train ** 2]).T
        b = np.linalg.lstsq(design, recall, rcond=None)[0]
        return b[0] + b[1] * log_unscored + b[2] * log_unscored ** 2
    raise KeyError(kind)


def criterion(step, measure="accuracy", credit="trend"):
    """Score of one cap: the class-balanced mean of ``measure`` (higher is
    better), singletons credited with ``credit`` (``None``: not counted)."""
    y, logits, weight, unscored = step
    stand_ins = unscored is not None and unscored[0] == "stand_ins"
    # A stand-in's rows carry the label n_classes * (1 + fold) + class.
    truth = np.where(y >= unscored[2], y % unscored[2], y) if stand_ins else y
    if measure == "accuracy":
        values = (logits.argmax(axis=1) == truth).astype(float)
    else:
        log_p = log_softmax(logits.astype(np.float64), axis=1)
        if measure == "log_likelihood":
            values = log_p[np.arange(len(y)), truth]
        else:  # minus the Brier score
            p = np.exp(log_p)
            values = 2 * p[np.arange(len(y)), truth] - (p * p).sum(axis=1) - 1
    classes, recall = _per_class(y, values, weight)
    if stand_ins:
        # The one-sample classes count with the stand-ins' mean, as in the
        # package (the credit rules apply to the path without stand-ins).
        if credit is None:
            return recall[classes < unscored[2]].mean()
        return selection_module.with_stand_ins(classes, recall, *unscored[1:])
    if credit is None or unscored is None or unscored[0] == 0:
        return recall.mean()
    n_unscored, log_train, log_unscored = unscored
    held = np.bincount(y, weights=weight)[classes]
    guess = _credits(credit, recall, log_train[classes], log_unscored, held)
    if measure == "accuracy":
        guess = float(np.clip(guess, 0.0, 1.0))
    return (recall.sum() + n_unscored * guess) / (recall.shape[0] + n_unscored)


def _smoothed(scores):
    padded = np.pad(scores, 1, mode="edge")
    return np.convolve(padded, np.ones(3) / 3, mode="valid")


# Rules on the default's path (stand-ins for the classes with one sample).
RULES = {
    "default (stand-ins, patience 3)": lambda s: walk([criterion(x) for x in s]),
    "no credit (stand-ins left out)": lambda s: walk([criterion(x, credit=None) for x in s]),
    "patience 1": lambda s: walk([criterion(x) for x in s], 1),
    "patience 2": lambda s: walk([criterion(x) for x in s], 2),
    "patience 4": lambda s: walk([criterion(x) for x in s], 4),
    "whole grid, best": lambda s: int(np.argmax([criterion(x) for x in s])),
    "3-cap moving average": lambda s: walk(_smoothed(np.array([criterion(x) for x in s]))),
    "balanced log-likelihood (stand-ins)": lambda s: int(np.argmax(
        [criterion(x, "log_likelihood") for x in s])),
    "balanced Brier (stand-ins)": lambda s: int(np.argmax(
        [criterion(x, "brier") for x in s])),
}
# Rules on the path without stand-ins, the classes with one sample credited
# from the held-out classes' recall.
TREND_RULES = {
    "credit: trend (the rule before)": lambda s: walk([criterion(x) for x in s]),
    "credit: rarest held-out classes": lambda s: walk([criterion(x, credit="rarest") for x in s]),
    "credit: trend of the rarer half": lambda s: walk(
        [criterion(x, credit="trend_rarer_half") for x in s]),
    "credit: trend weighted by held-out rows": lambda s: walk(
        [criterion(x, credit="trend_held_weighted") for x in s]),
    "credit: quadratic in log count": lambda s: walk(
        [criterion(x, credit="quadratic") for x in s]),
}


def replay(cases, seeds):
    """Markdown lines: mean validation balanced accuracy of each rule."""
    groups = sorted({(c["dataset"], c["prior"]) for c in cases})
    first = seeds[: len(seeds) // 2] or seeds
    lines = ["| rule | " + " | ".join(
        f"{d} {'with' if p else 'without'} names (seeds {first[0]}-{first[-1]} / rest)"
        for d, p in groups) + " |", "|---|" + "---|" * len(groups)]

    def cell(values_by_seed):
        all_ = np.mean([v for vs in values_by_seed.values() for v in vs])
        a = np.mean([v for s, vs in values_by_seed.items() if s in first for v in vs])
        rest = [v for s, vs in values_by_seed.items() if s not in first for v in vs]
        b = f"{100 * np.mean(rest):.2f}" if rest else "-"
        return f"{100 * all_:.2f} ({100 * a:.2f} / {b})"

    picks = {name: lambda c, rule=rule: c["fixed"][rule(c["path"])]
             for name, rule in RULES.items()}
    picks.update({name: lambda c, rule=rule: c["fixed"][rule(c["path_trend"])]
                  for name, rule in TREND_RULES.items()})
    picks["default (real fit)"] = lambda c: c["real_default"]
    picks["default with the logit adjustment strength chosen too (as shipped)"] = \
        lambda c: c["shipped"]
    picks["oracle (best cap per split, hindsight)"] = lambda c: c["fixed"].max()
    for k, cap in enumerate(GRID):
        if 4 <= cap <= 32:
            picks[f"fixed cap {cap:.3g} (not a rule)"] = lambda c, k=k: c["fixed"][k]
    rows = {}
    for name, pick in picks.items():
        for group in groups:
            values = {}
            for c in cases:
                if (c["dataset"], c["prior"]) == group:
                    values.setdefault(c["seed"], []).append(pick(c))
            rows.setdefault(name, []).append(cell(values))
    for name, cells in rows.items():
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--datasets", default="banking77,hwu64")
    parser.add_argument("--imbalance", default="100,50,10")
    parser.add_argument("--names", choices=("both", "without", "with"), default="both",
                        help="fit without the class-name prior, with it, or both")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    from joblib import Parallel, delayed

    imbalance = tuple(int(v) for v in args.imbalance.split(","))
    priors = {"both": (False, True), "without": (False,), "with": (True,)}[args.names]
    start = time.perf_counter()
    cases = [c for part in Parallel(n_jobs=args.jobs)(
        delayed(record)(dataset, seed, imbalance, priors)
        for dataset in args.datasets.split(",") for seed in seeds) for c in part]
    head = [
        "# Rules for choosing the cap, replayed on recorded paths (validation rows, not test)",
        "",
        f"Command: `python benchmarks/selection_replay.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`"
        f" ({(time.perf_counter() - start) / 60:.1f} min, {args.jobs} process(es), 1 thread each)",
        "",
        f"- generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "- The splits of `prior_study.py` (validation rows from the training pool). Each cell: balanced accuracy in %, mean over IF 100/50/10 and "
        "all seeds, then (first half of the seeds / the rest). A rule sees only the "
        "recorded cross-validation path of the default fit (every cap of the grid); "
        "its cap is scored by the fit at that fixed cap.",
        "- `default (stand-ins, patience 3)` is the package's rule; `no credit` leaves "
        "the stand-ins (and so the classes with one sample) out of the score; "
        "`credit: ...` read a second path, recorded without stand-ins, and credit the "
        "classes with one sample (never held out) from the held-out classes' recall "
        "(`credit: trend` is the rule before the stand-ins); `patience k` and `whole grid` change when the path stops; "
        "`balanced log-likelihood` / `Brier` choose the cap with the best class-balanced "
        "out-of-fold log-likelihood / Brier score of the head's balanced probabilities, "
        "instead of its balanced accuracy. `oracle` and `fixed cap` are not rules: the "
        "first reads the validation rows, the second is a constant read off these sets.",
        "",
    ]
    same = sum(GRID[walk([criterion(x) for x in c["path"]])] == c["real_cap"] for c in cases)
    head.append(f"- The replayed default rule picks the real default's cap in {same} of "
                f"{len(cases)} splits.\n")
    text = "\n".join(head + replay(cases, seeds) + [
        "",
        "Read against the `default` row, per column. The oracle shows how much a perfect "
        "choice of the cap could add; a rule counts as better only where it gains on "
        "both halves of the seeds in all four columns.",
    ])
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
