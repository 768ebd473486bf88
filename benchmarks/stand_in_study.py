"""Stand-ins for the one-sample classes in the cap-selection CV, against the trend
credit, on the validation rows of prior_study's splits (never test).

With stand-ins (``_lbfgs._STAND_INS``, the default here), each fold turns
ceil(n_single / n_folds) classes with more than n_folds samples into classes
with one training row; their other rows are scored under labels of their own,
and the classes with one sample count in the CV score with the stand-ins' mean
recall. ``*_trend`` variants credit them with the trend of the held-out
classes' recall against training count instead (the rule before). IF 10 has
no one-sample classes: both are the same there.

    python benchmarks/stand_in_study.py banking77 0,1,2,3,4,5
    python benchmarks/stand_in_study.py hwu64 6,7,8,9,10,11
"""
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prior_study  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402

VARIANTS = {
    "no_prior_trend": prior_study.samn(use_prior=False, _STAND_INS=False),
    "w1_trend": prior_study.samn(_STAND_INS=False),
    "no_prior": prior_study.samn(use_prior=False),
    "w1": prior_study.samn(),
}


def main(dataset, seeds):
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    results = {}
    for ir in (100, 50, 10):
        for seed in seeds:
            X, y, X_val, y_val, E = prior_study.split(dataset, ir, seed)
            for name, fit in VARIANTS.items():
                start = time.perf_counter()
                predict, cap = fit(X, y, E)
                seconds = time.perf_counter() - start
                score = 100 * balanced_accuracy_score(y_val, predict(X_val))
                results.setdefault(name, []).append((ir, score, cap, seconds))
                print(f"{dataset} IF{ir} seed{seed} {name}: {score:.2f} cap {cap:.1f} "
                      f"{seconds:.1f}s", flush=True)
    for name, rows in results.items():
        per_ir = " ".join(f"IF{ir} {np.mean([r[1] for r in rows if r[0] == ir]):.2f}"
                          for ir in (100, 50, 10))
        print("SUMMARY", dataset, name, f"mean {np.mean([r[1] for r in rows]):.2f}", per_ir,
              f"fit {np.mean([r[3] for r in rows]):.1f}s", [round(r[2], 1) for r in rows])


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2].split(",")])
