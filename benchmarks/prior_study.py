"""How the class-embedding prior enters the fit: a study on validation rows, never on test.

For each dev set (BANKING77, HWU64), imbalance factor (100, 50, 10) and seed
(0-2 by default), builds the long-tailed training set from the training pool
with ``make_long_tailed`` and draws a validation set from the *training* rows
the long-tailed subset did not use (up to 20 per class). Each variant is
fitted on the long-tailed set and scored on those validation rows (balanced
accuracy, and the accuracy on the rarest third of the classes). The test
split is not read.

    python benchmarks/prior_study.py [--seeds 0,1,2] [--imbalance 100,50,10]
                                     [--variants a,b] [--jobs 2]
                                     [--by-count] [--out PRIOR.md]

Variants set the private switches of ``sklearn_samn._prior`` (design choices,
not user knobs) or the estimator's parameters.
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baselines  # noqa: E402
import data  # noqa: E402

import sklearn_samn._lbfgs as lbfgs_module  # noqa: E402
import sklearn_samn._prior as prior_module  # noqa: E402
import sklearn_samn._selection as selection_module  # noqa: E402
from sklearn_samn import SAMNClassifier  # noqa: E402
from sklearn_samn.datasets import make_long_tailed  # noqa: E402
from sklearn_samn.metrics import per_class_accuracy  # noqa: E402

IMBALANCE = (100, 50, 10)
ROOTS = {"banking77": data.BANKING77_ROOT, "hwu64": data.HWU64_ROOT}


def split(dataset, imbalance_ratio, seed, per_class=20):
    arrays = data._load_intents(str(data._resolve(ROOTS[dataset])))
    X, y = arrays["X_train"], arrays["y_train"]
    X_lt, y_lt, kept = make_long_tailed(X, y, imbalance_ratio=imbalance_ratio,
                                        random_state=seed)
    rest = np.setdiff1d(np.arange(len(y)), kept)
    rng = np.random.RandomState(1000 + seed)
    val = np.concatenate([
        rng.permutation(rest[y[rest] == c])[:per_class] for c in np.unique(y)
    ])
    return X_lt, y_lt, X[val], y[val], arrays["class_name_embeddings"]


def few_shot(y_lt, y_val, pred):
    counts = np.bincount(y_lt, minlength=y_val.max() + 1)
    order = np.argsort(counts, kind="stable")
    few = order[: len(order) // 3]
    mask = np.isin(y_val, few)
    return float(np.mean([np.mean(pred[mask & (y_val == c)] == c) for c in few]))


def fitted(X, y, E, **switches):
    """``SAMNClassifier`` fitted on ``X, y`` with the names ``E`` (unless
    ``use_prior=False``), the pseudo-row ``weight``, module switches (names
    starting with ``_``) set for the fit only, and other estimator parameters."""
    params = {k: v for k, v in switches.items() if not k.startswith("_")
              and k not in ("use_prior", "weight")}
    modules = {k: next(m for m in (prior_module, lbfgs_module, selection_module)
                       if hasattr(m, k)) for k in switches if k.startswith("_")}
    saved = [(modules[k], k, getattr(modules[k], k)) for k in modules]
    saved.append((prior_module, "PRIOR_WEIGHT", prior_module.PRIOR_WEIGHT))
    try:
        for k, module in modules.items():
            setattr(module, k, switches[k])
        prior_module.PRIOR_WEIGHT = switches.get("weight", 1.0)
        model = SAMNClassifier(
            device="cpu", random_state=0,
            class_embeddings=E if switches.get("use_prior", True) else None,
            **params,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(X, y)
    finally:
        for module, k, v in saved:
            setattr(module, k, v)


def samn(**switches):
    def fit(X, y, E):
        model = fitted(X, y, E, **switches)
        return model.predict, getattr(model, "max_norm_", None)
    return fit


def lr_trick():
    """LogisticRegression(C=10) + one name row per class + post-hoc logit
    adjustment with the real counts (baselines.fit_lr_la_name)."""
    def fit(X, y, E):
        return baselines.fit_lr_la_name(X, y, E, seed=0).predict, None
    return fit


VARIANTS = {
    "no_prior": samn(use_prior=False),
    "w1": samn(),
    "w1_offset_with_prior": samn(_OFFSET_WITH_PRIOR=True),
    "w1_centred": samn(_CENTRE=True),
    "w0.5": samn(weight=0.5),
    "w2": samn(weight=2.0),
    "w1_adam": samn(solver="adam"),
    "lr_trick": lr_trick(),
    "w1_no_credit": samn(_CREDIT_UNSCORED=False, _STAND_INS=False),
    **{f"{name}_start_{start}": samn(_FINAL_START=start, **options)
       for name, options in (("no_prior", {"use_prior": False}), ("w1", {}))
       for start in ("folds", "class_means")},
    "w1_credit_rarest": samn(_CREDIT_RULE="rarest", _STAND_INS=False),
    "no_prior_credit_rarest": samn(use_prior=False, _CREDIT_RULE="rarest",
                                     _STAND_INS=False),
    "no_prior_no_credit": samn(use_prior=False, _CREDIT_UNSCORED=False,
                                 _STAND_INS=False),
    # The trend credit instead of stand-ins (the rule before).
    "w1_trend": samn(_STAND_INS=False),
    "no_prior_trend": samn(use_prior=False, _STAND_INS=False),
    **{f"w1_cap{cap:g}": samn(max_norm=cap) for cap in (4.0, 5.66, 8.0, 11.3, 16.0, 22.6)},
}


def study(dataset, seeds, names, imbalance=IMBALANCE):
    """The table of one dataset: Markdown lines."""
    table = {name: {} for name in names}
    for ir in imbalance:
        for seed in seeds:
            X, y, Xv, yv, E = split(dataset, ir, seed)
            for name in names:
                start = time.perf_counter()
                predict, cap = VARIANTS[name](X, y, E)
                pred = predict(Xv)
                bal = balanced_accuracy_score(yv, pred)
                table[name].setdefault(ir, []).append(
                    (bal, few_shot(y, yv, pred), time.perf_counter() - start, cap))
                print(f"{dataset} IF{ir} seed{seed} {name}: {100 * bal:.2f} "
                      f"cap={cap}", file=sys.stderr, flush=True)
    lines = [f"\n### {dataset} (validation rows, seeds {','.join(map(str, seeds))})\n",
             "| variant | " + " | ".join(f"IF{ir}" for ir in imbalance)
             + f" | mean | few IF{imbalance[0]} | few mean | fit s |",
             "|---|" + "---|" * (len(imbalance) + 4)]
    for name in names:
        per_ir = [np.mean([r[0] for r in table[name][ir]]) for ir in imbalance]
        few = [np.mean([r[1] for r in table[name][ir]]) for ir in imbalance]
        secs = np.mean([r[2] for ir in imbalance for r in table[name][ir]])
        lines.append(
            f"| {name} | " + " | ".join(f"{100 * v:.2f}" for v in per_ir)
            + f" | {100 * np.mean(per_ir):.2f} | {100 * few[0]:.1f} | "
            f"{100 * np.mean(few):.1f} | {secs:.1f} |")
    return lines


def by_count(dataset, imbalance_ratio, seed, caps=(8.0, 11.3, 22.6, 45.3)):
    """Where a cap helps and hurts: recall by training count, out of fold (the
    folds of the default's cross-validation, fitted with ``SAMNClassifier(max_norm=
    cap, class_embeddings=E)`` and the full counts) and on the validation rows
    (the fit on every row). Singletons are never held out, so their CV column is
    empty."""
    from sklearn_samn._selection import long_tail_folds

    X, y, Xv, yv, E = split(dataset, imbalance_ratio, seed)
    counts = np.bincount(y)
    fold = long_tail_folds(y, np.ones(len(y)), 5, np.random.RandomState(0))
    bins = [(1, 1), (2, 3), (4, 8), (9, 10**6)]
    lines = [f"\n### {dataset} IF {imbalance_ratio} seed {seed}: recall (%) by training "
             "count\n",
             "| cap | CV balanced | val balanced | "
             + " | ".join(f"n {lo}-{hi if hi < 10**6 else 'max'} "
                          f"({int(np.sum((counts >= lo) & (counts <= hi)))} classes) CV / val"
                          for lo, hi in bins) + " |",
             "|---|---|---|" + "---|" * len(bins)]
    for cap in caps:
        pred = np.full(len(y), -1)
        for k in range(5):
            train, test = fold != k, fold == k
            model = SAMNClassifier(max_norm=cap, class_embeddings=E, class_counts=counts,
                                   device="cpu").fit(X[train], y[train])
            pred[test] = model.predict(X[test])
        val = SAMNClassifier(max_norm=cap, class_embeddings=E, device="cpu").fit(
            X, y).predict(Xv)
        cv_recall = {c: np.mean(pred[(fold >= 0) & (y == c)] == c)
                     for c in np.unique(y[fold >= 0])}
        val_recall = {c: np.mean(val[yv == c] == c) for c in np.unique(yv)}
        cells = []
        for lo, hi in bins:
            members = [c for c in range(len(counts)) if lo <= counts[c] <= hi]
            scored = [cv_recall[c] for c in members if c in cv_recall]
            cv_cell = f"{100 * np.mean(scored):.0f}" if scored else "-"
            cells.append(f"{cv_cell} / {100 * np.mean([val_recall[c] for c in members]):.0f}")
        lines.append(f"| {cap:g} | {100 * np.mean(list(cv_recall.values())):.1f} | "
                     f"{100 * np.mean(list(val_recall.values())):.1f} | "
                     + " | ".join(cells) + " |")
    return lines


def against_trick(dataset, seeds, imbalance=(100, 50)):
    """Recall by training count on the validation rows: the default with the
    names, the same at a fixed cap of 11.3, and the trick (``lr_trick``)."""
    bins = [(1, 1), (2, 3), (4, 8), (9, 10**6)]
    models = {
        "w1": VARIANTS["w1"],
        "w1_cap11.3": VARIANTS["w1_cap11.3"],
        "lr_trick": VARIANTS["lr_trick"],
    }
    recall = {}
    for ir in imbalance:
        for seed in seeds:
            X, y, Xv, yv, E = split(dataset, ir, seed)
            counts = np.bincount(y, minlength=E.shape[0])
            for name, fit in models.items():
                pred = fit(X, y, E)[0](Xv)
                per_class = per_class_accuracy(yv, pred, labels=np.arange(len(counts)))
                for lo, hi in bins:
                    members = (counts >= lo) & (counts <= hi)
                    recall.setdefault((ir, name, lo), []).append(
                        (per_class[members].mean() if members.any() else np.nan,
                         int(members.sum())))
    lines = [f"\n### {dataset}: the default with the names against the trick, validation "
             f"recall (%) by training count (seeds {','.join(map(str, seeds))}; classes per "
             "group, mean over seeds, in brackets)\n",
             "| IF | variant | " + " | ".join(
                 f"n {lo}-{hi if hi < 10**6 else 'max'}" for lo, hi in bins) + " |",
             "|---|---|" + "---|" * len(bins)]
    for ir in imbalance:
        for name in models:
            cells = []
            for lo, _ in bins:
                values = recall[(ir, name, lo)]
                cells.append(f"{100 * np.nanmean([v for v, _ in values]):.1f} "
                             f"[{np.mean([n for _, n in values]):.0f}]")
            lines.append(f"| {ir} | {name} | " + " | ".join(cells) + " |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--datasets", default="banking77,hwu64")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--jobs", type=int, default=1,
                        help="datasets run in parallel processes (one thread each)")
    parser.add_argument("--imbalance", default="100,50,10",
                        help="imbalance factors, comma-separated")
    parser.add_argument("--by-count", action="store_true",
                        help="add recall by training count at four caps (IF 100, seed 0), "
                             "and the default against the trick by training count")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.variants.split(",")
    datasets = args.datasets.split(",")
    from joblib import Parallel, delayed

    tables = Parallel(n_jobs=args.jobs)(
        delayed(study)(dataset, seeds, names,
                       tuple(int(v) for v in args.imbalance.split(",")))
        for dataset in datasets)
    diagnosis = Parallel(n_jobs=args.jobs)(
        delayed(by_count)(dataset, 100, 0) for dataset in datasets
    ) if args.by_count else []
    trick = Parallel(n_jobs=args.jobs)(
        delayed(against_trick)(dataset, seeds) for dataset in datasets
    ) if args.by_count else []
    lines = [line for table in tables for line in table]
    if diagnosis:
        lines += ["\n## Where the cap helps and hurts, with the prior (IF 100, seed 0)\n",
                  "Recall by training count at four fixed caps: out of fold in the "
                  "default's 5 folds (`CV`), and on the validation rows for the fit on "
                  "every row (`val`). The classes with one sample are never held out, so "
                  "these folds have no recall for them; the default's cross-validation "
                  "scores stand-ins for them (frequent classes cut to one training row)."]
        lines += [line for table in diagnosis for line in table]
    if trick:
        lines += ["\n## Where the trick is ahead: the classes with one sample\n",
                  "Validation recall by training count for the default with the names "
                  "(`w1`), the same at a fixed cap of 11.3, and `lr_trick`, at IF 100 and 50. "
                  "The trick is ahead on the classes with one sample (column `n 1-1`), "
                  "where its name row is half of what a class has; SAMN is level or ahead "
                  "on those with nine or more."]
        lines += [line for table in trick for line in table]
    head = [
        "# How the class-embedding prior enters the fit (validation rows, not test)",
        "",
        f"Command: `python benchmarks/prior_study.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`",
        "",
        f"- generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; 1 thread per "
        f"process, {args.jobs} process(es) at a time",
        "- Each long-tailed training set (IF 100/50/10, seeds as below) is scored on up to "
        "20 rows per class drawn from the training pool rows it did not use; the test "
        "split is never read. Balanced accuracy in %, mean over seeds; few = the rarest "
        "third of the classes; fit s = mean fit time of a variant (including its CV).",
        "- Variants: `no_prior` = SAMNClassifier(); `w1` = class_embeddings with the "
        "default (pseudo-row weight 1); `w0.5`/`w2` = weight halved/doubled; "
        "`w1_offset_with_prior` = the pseudo-rows counted in the logit offset; "
        "`w1_centred` = embeddings re-centred on the mean of X; `w1_adam` = "
        "solver='adam'; `w1_trend` / `no_prior_trend` = singletons credited with the "
        "trend of the held-out classes' recall against training count instead of "
        "scoring stand-ins (the rule before); `w1_no_credit` = singletons not counted "
        "in the CV score; `no_prior_no_credit` = the same without the prior; "
        "`w1_credit_rarest` / `no_prior_credit_rarest` = singletons credited with the "
        "recall of the rarest held-out classes (the rule before the trend); "
        "`<no_prior|w1>_start_folds` / `_start_class_means` = the final fit always starts "
        "from the folds' mean head / from the class means at the chosen cap (the default "
        "starts from the one of lower training loss); `w1_cap<r>` = a fixed cap r "
        "(no CV, not a rule: the curve the CV is choosing on); `lr_trick` = LogisticRegression(C=10) "
        "+ one name row per class + post-hoc logit adjustment with the real counts.",
    ]
    text = "\n".join(head + lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
