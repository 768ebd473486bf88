"""How often the default's fits restart from unit direction rows.

``_lbfgs._reset_short_directions`` restarts a fit that stopped short of the
gradient test with a direction row under ``_lbfgs._SHORT_DIRECTION`` of the
longest. This counts, over default fits (cross-validation folds at every cap
and final fits alike), how many stops it checked and how many it restarted,
on the problems of ``run.py`` and the two smaller synthetic shapes of
``speed.py``: BANKING77-LT and HWU64-LT (IF 100/50/10, seeds 0-4, without and
with the class names), digits and the Gaussian problem (seeds 0-4), the
stage-1 features (seeds 0-2), the CIFAR-100-LT and 30,000 x 384 x 300 shapes.
A count of zero means the restart changes none of those fits, so figures
recorded before it stand. Problems whose data are absent are skipped.

    python benchmarks/restart_check.py        # ~5 min on 2 cores
"""
import collections
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402

from sklearn_samn import SAMNClassifier, _lbfgs  # noqa: E402


def problems():
    for dataset in ("banking77", "hwu64"):
        try:
            names = data.class_name_embeddings(dataset)
        except FileNotFoundError:
            continue
        for ratio in (100, 50, 10):
            for seed in range(5):
                X, y = getattr(data, dataset)(ratio, seed)[:2]
                yield dataset, X, y, None
                yield f"{dataset} with names", X, y, names
    for dataset in ("digits", "gaussian"):
        for ratio in (100, 50, 10):
            for seed in range(5):
                yield dataset, *getattr(data, dataset)(ratio, seed)[:2], None
    for ratio in (100, 50, 10):
        for seed in range(3):
            try:
                problem = data.stage1_features(ratio, seed)
            except FileNotFoundError:
                break
            yield "stage-1 features", problem.X_train, problem.y_train, None
    yield "cifar100_lt shape", *data.synthetic_features(*data.SHAPES["cifar100_lt"]), None
    yield "30k x 384 x 300", *data.synthetic_features(30_000, 384, 300, 100), None


def main():
    warnings.simplefilter("ignore")
    counts = collections.defaultdict(collections.Counter)
    check = _lbfgs._reset_short_directions
    current = [None]

    def counted(head, tol):
        restarted = check(head, tol)
        counts[current[0]]["restarted" if restarted else "checked, kept"] += 1
        return restarted

    _lbfgs._reset_short_directions = counted
    start = time.perf_counter()
    try:
        for name, X, y, names in problems():
            current[0] = name
            SAMNClassifier(random_state=0, class_embeddings=names).fit(X, y)
    finally:
        _lbfgs._reset_short_directions = check
    for name, counter in counts.items():
        print(f"{name}: {counter['checked, kept'] + counter['restarted']} stops checked, "
              f"{counter['restarted']} restarted")
    total = sum(counts.values(), collections.Counter())
    print(f"all: {total['checked, kept'] + total['restarted']} stops checked, "
          f"{total['restarted']} restarted ({time.perf_counter() - start:.0f} s)")
    return 1 if total["restarted"] else 0


if __name__ == "__main__":
    sys.exit(main())
