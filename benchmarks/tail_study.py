"""Why the simple name trick leads on classes with one sample: a study on validation rows.

``prior_study.py --by-count`` found where the default with the class names
(``SAMNClassifier(class_embeddings=E)``) trails the trick (LogisticRegression
C = 10 + one name row per class + post-hoc logit adjustment): on the classes
with one training sample. This script asks whether the cause is the
direction SAMN learns for those classes, with two experiments on the splits
of ``prior_study.py`` (validation rows of the training pools, never test):

1. ``directions``: fit SAMN at a fixed cap of 11.3 and the trick, then give
   the singleton classes of the SAMN head another direction, their norm and
   bias kept: the prototype (the mean of the class's sample and name, centred
   on the mean of X), or the trick's direction. Reports balanced accuracy,
   the singletons' recall, and the cosine of each head's singleton directions
   with the prototype.
2. ``name pull``: a form of the prior that is not in the package. A pseudo-row
   stops pulling its class's direction once it is fitted (its softmax
   gradient vanishes), which at a large cap happens at once for a class with
   one sample. The variant adds the pull of the name row as if it were never
   fitted, ``-(w r / W) sum_c f_c <u_c, z_c>`` (``w`` the pseudo-row's weight,
   ``r`` the cap, ``W`` the objective's total weight, ``u_c`` the class's unit
   direction, ``z_c`` its standardised name embedding): ``f_c = 1``
   (``name_pull``) or ``1 / n_c`` (``name_pull_fading``, the pull fades with
   the class's count).

    python benchmarks/tail_study.py [--seeds 0,1,2,3,4,5] [--jobs 2] [--out TAIL.md]
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
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baselines  # noqa: E402
import prior_study  # noqa: E402

import sklearn_samn._lbfgs as lbfgs_module  # noqa: E402
from sklearn_samn import SAMNClassifier  # noqa: E402
from sklearn_samn.metrics import per_class_accuracy  # noqa: E402

IMBALANCE = (100, 50, 10)
CAP = 11.3
VARIANTS = ("w1", "name_pull", "name_pull_fading",
            f"w1_cap{CAP:g}", f"name_pull_cap{CAP:g}", f"name_pull_fading_cap{CAP:g}",
            "lr_trick")
HEADS = ("samn", "samn + prototype directions", "samn + trick's directions", "lr_trick")


@contextlib.contextmanager
def name_pull(fading):
    """Every HeadObjective with pseudo-rows also gets the name pull (see the
    module docstring) while the context is open."""
    import torch

    original = lbfgs_module.HeadObjective.__call__

    def objective(self, head):
        value = original(self, head)
        if self.prior is None:
            return value
        x, _, weight = self.prior
        z = x if self.shift_t is None else (x - self.shift_t) * self.inv_scale
        unit = head.directions / head.directions.norm(dim=1, keepdim=True)
        share = torch.ones(z.shape[0], dtype=z.dtype)
        if fading:
            share = torch.as_tensor(1.0 / np.maximum(head.counts.counts, 1), dtype=z.dtype)
        scale = float(weight[0]) * head.max_norm / self.total_weight
        term = -scale * ((unit * z).sum(dim=1) * share).sum()
        term.backward()  # adds to the gradient the original call left
        return value + float(term.detach())

    lbfgs_module.HeadObjective.__call__ = objective
    try:
        yield
    finally:
        lbfgs_module.HeadObjective.__call__ = original


def fit_samn(X, y, E, max_norm="auto"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SAMNClassifier(device="cpu", random_state=0, class_embeddings=E,
                              max_norm=max_norm).fit(X, y)


def fit_variant(name, X, y, E):
    """``predict`` of a variant of VARIANTS."""
    if name == "lr_trick":
        return baselines.fit_lr_la_name(X, y, E, seed=0).predict
    cap = CAP if name.endswith(f"_cap{CAP:g}") else "auto"
    pull = name_pull(fading="fading" in name) if name.startswith("name_pull") \
        else contextlib.nullcontext()
    with pull:
        return fit_samn(X, y, E, cap).predict


def unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def directions(X, y, Xv, yv, E):
    """Experiment 1 on one split: ``{head: (balanced, singleton recall, cosine)}``."""
    counts = np.bincount(y, minlength=E.shape[0])
    single = np.flatnonzero(counts == 1)
    model = fit_samn(X, y, E, CAP)
    trick = baselines.fit_lr_la_name(X, y, E, seed=0)
    mean = X.astype(np.float64).mean(axis=0)
    coef = model.coef_
    bias = model.intercept_ + coef @ mean  # the bias of the centred rows
    prototype = np.array([(X[y == c].sum(axis=0) + E[c]) / (counts[c] + 1)
                          for c in range(len(counts))]) - mean
    norms = np.linalg.norm(coef, axis=1, keepdims=True)

    def scored(new_coef, predict=None):
        pred = predict(Xv) if predict else ((Xv - mean) @ new_coef.T + bias).argmax(axis=1)
        recall = per_class_accuracy(yv, pred, labels=np.arange(len(counts)))
        cosine = np.mean(np.sum(unit(new_coef[single]) * unit(prototype[single]), axis=1))
        return balanced_accuracy_score(yv, pred), recall[single].mean(), cosine

    out = {"samn": scored(coef), "lr_trick": scored(trick.coef_, trick.predict)}
    for head, new in (("samn + prototype directions", unit(prototype)),
                      ("samn + trick's directions", unit(trick.coef_))):
        swapped = coef.copy()
        swapped[single] = norms[single] * new[single]
        out[head] = scored(swapped)
    return out


def case(dataset, seed):
    """Both experiments on one dataset and seed, every imbalance factor."""
    variants, heads = {}, {}
    for ir in IMBALANCE:
        X, y, Xv, yv, E = prior_study.split(dataset, ir, seed)
        counts = np.bincount(y, minlength=E.shape[0])
        for name in VARIANTS:
            pred = fit_variant(name, X, y, E)(Xv)
            recall = per_class_accuracy(yv, pred, labels=np.arange(len(counts)))
            variants[(ir, name)] = (
                balanced_accuracy_score(yv, pred),
                recall[counts == 1].mean() if np.any(counts == 1) else np.nan,
                recall[counts >= 9].mean(),
            )
            print(f"{dataset} IF{ir} seed{seed} {name}: "
                  f"{100 * variants[(ir, name)][0]:.2f}", file=sys.stderr, flush=True)
        if np.any(counts == 1):
            heads[ir] = directions(X, y, Xv, yv, E)
    return dataset, seed, variants, heads


def tables(dataset, results):
    """Markdown lines of one dataset from the cases of ``results``."""
    mine = [r for r in results if r[0] == dataset]
    seeds = ",".join(str(r[1]) for r in mine)
    lines = [f"\n### {dataset}: the name pull (validation rows, seeds {seeds})\n",
             "| variant | " + " | ".join(f"IF{ir}" for ir in IMBALANCE)
             + " | mean | recall n = 1 (IF 100, 50) | recall n ≥ 9 (IF 100, 50) |",
             "|---|" + "---|" * (len(IMBALANCE) + 3)]
    for name in VARIANTS:
        per_ir = [np.mean([r[2][(ir, name)][0] for r in mine]) for ir in IMBALANCE]
        single = np.nanmean([r[2][(ir, name)][1] for r in mine for ir in IMBALANCE[:2]])
        many = np.mean([r[2][(ir, name)][2] for r in mine for ir in IMBALANCE[:2]])
        lines.append(f"| {name} | " + " | ".join(f"{100 * v:.2f}" for v in per_ir)
                     + f" | {100 * np.mean(per_ir):.2f} | {100 * single:.1f} | "
                     f"{100 * many:.1f} |")
    irs = sorted({ir for r in mine for ir in r[3]}, reverse=True)
    lines += [f"\n### {dataset}: singleton directions swapped, cap {CAP:g} "
              f"(validation rows, IF {', '.join(map(str, irs))}, seeds {seeds})\n",
              "| head | balanced | recall n = 1 | cosine of the singletons' directions "
              "with their prototype |",
              "|---|---|---|---|"]
    for head in HEADS:
        values = np.array([r[3][ir][head] for r in mine for ir in irs])
        lines.append(f"| {head} | {100 * values[:, 0].mean():.2f} | "
                     f"{100 * values[:, 1].mean():.1f} | {values[:, 2].mean():.3f} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--datasets", default="banking77,hwu64")
    parser.add_argument("--jobs", type=int, default=1,
                        help="(dataset, seed) cases run in parallel processes (one "
                             "thread each)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from joblib import Parallel, delayed

    started = time.perf_counter()
    datasets = args.datasets.split(",")
    results = Parallel(n_jobs=args.jobs)(
        delayed(case)(dataset, int(seed))
        for dataset in datasets for seed in args.seeds.split(","))
    head = [
        "# Why the name trick leads on the classes with one sample (validation rows, "
        "not test)",
        "",
        f"Command: `python benchmarks/tail_study.py"
        f"{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`",
        "",
        f"- generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; 1 thread per "
        f"process, {args.jobs} process(es) at a time; "
        f"{(time.perf_counter() - started) / 60:.1f} min",
        "- Splits of `prior_study.py`: each long-tailed training set is scored on up to "
        "20 rows per class from the training pool rows it did not use. Balanced "
        "accuracy and recall in %, mean over seeds (and over IF where a column says so).",
        "- `w1` = `SAMNClassifier(class_embeddings=E)` (the default); `name_pull` / "
        "`name_pull_fading` = the same with the pull of each name row as if it were "
        "never fitted, for every class / divided by the class's count (module "
        f"docstring; not in the package); `_cap{CAP:g}` = at a fixed cap instead of "
        "the cross-validated one; `lr_trick` = LogisticRegression(C=10) + one name row "
        "per class + post-hoc logit adjustment.",
        "- Swapped directions: the fitted SAMN head at the fixed cap, with the "
        "directions of the classes that have one sample replaced by their prototype "
        "(the mean of the sample and the name, centred on the mean of X) or by the "
        "trick's, their norms and biases kept.",
    ]
    lines = head + [line for dataset in datasets for line in tables(dataset, results)]
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
