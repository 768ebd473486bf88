"""The name prior's pseudo-row weight chosen by the cap's cross-validation, on the
validation rows of prior_study's splits (never test).

The pseudo-rows are in the training part of every fold and never scored, and the
folds and stand-ins depend on the labels only, so the out-of-fold scores of fits
with different weights are scored on the same rows. ``w_by_cv`` fits the default
with each weight of ``WEIGHTS`` and keeps the one whose best out-of-fold balanced
accuracy (``cv_results_``) is highest (ties to the weight nearest 1): the weight
set by the data, at ``len(WEIGHTS)`` times the cost of a fit.

    python benchmarks/prior_weight_study.py [--seeds 0,1,2,3,4,5] [--jobs 2]
                                            [--out benchmarks/PRIOR_WEIGHT.md]
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prior_study  # noqa: E402

WEIGHTS = (0.5, 1.0, 2.0, 4.0)


def weight_by_cv(weights=WEIGHTS):
    def fit(X, y, E):
        fits = []
        for w in weights:
            model = prior_study.fitted(X, y, E, weight=w)
            fits.append((np.max(model.cv_results_["balanced_accuracy"]),
                         -abs(np.log(w)), model))
        best = max(fits, key=lambda f: f[:2])[2]
        return best.predict, best.max_norm_
    return fit


VARIANTS = {
    "w0.5": prior_study.VARIANTS["w0.5"],
    "w1": prior_study.VARIANTS["w1"],
    "w2": prior_study.VARIANTS["w2"],
    "w4": prior_study.samn(weight=4.0),
    "w_by_cv": weight_by_cv(),
    "lr_trick": prior_study.VARIANTS["lr_trick"],
}


def run(dataset, seeds):
    import torch

    torch.set_num_threads(1)
    prior_study.VARIANTS.update(VARIANTS)
    return prior_study.study(dataset, seeds, list(VARIANTS))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    from joblib import Parallel, delayed

    start = time.perf_counter()
    tables = Parallel(n_jobs=args.jobs)(
        delayed(run)(dataset, seeds) for dataset in ("banking77", "hwu64"))
    command = "python benchmarks/prior_weight_study.py" + (
        " " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    lines = [
        "# The name prior's weight chosen by the cross-validation (validation rows, not test)",
        "", f"Command: `{command}` ({(time.perf_counter() - start) / 60:.1f} min, "
        f"{args.jobs} process(es), 1 thread each)", "",
        f"- generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "- Splits, columns and rows as in `PRIOR.md` (validation rows of the training "
        "pools, IF 100/50/10). `w<k>` = `SAMNClassifier(class_embeddings=E)` with the "
        "pseudo-row weight k times one mean sample weight (the package uses 1); "
        "`w_by_cv` = the weight among " + ", ".join(f"{w:g}" for w in WEIGHTS)
        + " whose cross-validation scores best (fit s: all four fits); `lr_trick` = "
        "LogisticRegression(C=10) + one name row + logit adjustment.",
    ]
    lines += [line for table in tables for line in table]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
