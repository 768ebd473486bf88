"""How the class-embedding prior enters the fit: a study on validation rows, never on test.

For each dev set (BANKING77, HWU64), imbalance factor (100, 50, 10) and seed
(0-2 by default), builds the long-tailed training set from the training pool
with ``make_long_tailed`` and draws a validation set from the *training* rows
the long-tailed subset did not use (up to 20 per class). Each variant is
fitted on the long-tailed set and scored on those validation rows (balanced
accuracy, and the accuracy on the rarest third of the classes). The test
split is not read.

    python benchmarks/prior_study.py [--seeds 0,1,2] [--variants a,b] [--out PRIOR.md]

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


def samn(**switches):
    params = {k: v for k, v in switches.items() if not k.startswith("_")
              and k not in ("use_prior", "weight")}

    def fit(X, y, E):
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
                model.fit(X, y)
            return model.predict, getattr(model, "max_norm_", None)
        finally:
            for module, k, v in saved:
                setattr(module, k, v)
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
    "w1_no_credit": samn(_CREDIT_UNSCORED=False),
    "w1_cap_without_prior": samn(_PRIOR_IN_CV=False),
    "w1_cv_x3": samn(_CV_REPEATS=3),
    "w1_paired": samn(_RULE="paired"),
    "no_prior_paired": samn(use_prior=False, _RULE="paired"),
    "no_prior_cv_x3": samn(use_prior=False, _CV_REPEATS=3),
    "w1_one_se": samn(_RULE="one_se"),
    "w1_one_se_no_credit": samn(_RULE="one_se", _CREDIT_UNSCORED=False),
    "no_prior_one_se": samn(use_prior=False, _RULE="one_se"),
    "w1_hold_singletons": samn(_HOLD_OUT_SINGLETONS=True),
    "no_prior_no_credit": samn(use_prior=False, _CREDIT_UNSCORED=False),
    **{f"w1_cap{cap:g}": samn(max_norm=cap) for cap in (4.0, 5.66, 8.0, 11.3, 16.0, 22.6)},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--datasets", default="banking77,hwu64")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.variants.split(",")
    lines = []
    for dataset in args.datasets.split(","):
        table = {name: {} for name in names}
        for ir in IMBALANCE:
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
        lines += [f"\n### {dataset} (validation rows, seeds {args.seeds})\n",
                  "| variant | IF100 | IF50 | IF10 | mean | few IF100 | few mean | fit s |",
                  "|---|---|---|---|---|---|---|---|"]
        for name in names:
            per_ir = [np.mean([r[0] for r in table[name][ir]]) for ir in IMBALANCE]
            few = [np.mean([r[1] for r in table[name][ir]]) for ir in IMBALANCE]
            secs = np.mean([r[2] for ir in IMBALANCE for r in table[name][ir]])
            lines.append(
                f"| {name} | " + " | ".join(f"{100 * v:.2f}" for v in per_ir)
                + f" | {100 * np.mean(per_ir):.2f} | {100 * few[0]:.1f} | "
                f"{100 * np.mean(few):.1f} | {secs:.1f} |")
    head = [
        "# How the class-embedding prior enters the fit (validation rows, not test)",
        "",
        f"Command: `python benchmarks/prior_study.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`",
        "",
        f"- generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; 1 thread per process",
        "- Each long-tailed training set (IF 100/50/10, seeds as below) is scored on up to "
        "20 rows per class drawn from the training pool rows it did not use; the test "
        "split is never read. Balanced accuracy in %, mean over seeds; few = the rarest "
        "third of the classes; fit s = mean fit time of a variant (including its CV).",
        "- Variants: `no_prior` = SAMNClassifier(); `w1` = class_embeddings with the "
        "default (pseudo-row weight 1); `w0.5`/`w2` = weight halved/doubled; "
        "`w1_offset_with_prior` = the pseudo-rows counted in the logit offset; "
        "`w1_centred` = embeddings re-centred on the mean of X; `w1_adam` = "
        "solver='adam'; `w1_no_credit` = singletons not credited in the CV score; "
        "`w1_cap_without_prior` = the cap chosen by a CV without the pseudo-rows; "
        "`w1_hold_singletons` = singletons' one sample held out too (their class left "
        "with its name); `*one_se*` = the smallest cap within one standard error of the "
        "best; `w1_cap<r>` = a fixed cap r (no CV); `lr_trick` = LogisticRegression(C=10) "
        "+ one name row per class + post-hoc logit adjustment with the real counts.",
    ]
    text = "\n".join(head + lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
