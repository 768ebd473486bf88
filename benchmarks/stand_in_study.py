"""Stand-ins for the one-sample classes in the cap-selection CV (_lbfgs._SIMULATE_SINGLETONS),
scored on the validation rows of prior_study's splits (never test).

In each fold, ceil(n_single / n_folds) classes with more than n_folds samples keep one
training row (label-free choice: classes and the kept row in the order of a row
permutation); their other rows are scored under labels of their own, and the classes
with one sample count in the CV score with the stand-ins' mean recall instead of the
trend credit. IF 10 has no one-sample classes: the switch changes nothing there.

    python benchmarks/stand_in_study.py banking77 0,1,2,3,4,5
    python benchmarks/stand_in_study.py hwu64 6,7,8,9,10,11
"""
import sys, time, warnings, numpy as np
from pathlib import Path
root = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, root); sys.path.insert(0, root + "/benchmarks")
warnings.simplefilter("ignore")
import sklearn_samn; assert sklearn_samn.__file__.startswith(root), sklearn_samn.__file__
import prior_study as P
from sklearn.metrics import balanced_accuracy_score as bas
import torch; torch.set_num_threads(1)
dataset = sys.argv[1]; seeds = [int(s) for s in sys.argv[2].split(",")]
V = {"no_prior": P.samn(use_prior=False), "w1": P.samn(),
     "no_prior_sim": P.samn(use_prior=False, _SIMULATE_SINGLETONS=True), "w1_sim": P.samn(_SIMULATE_SINGLETONS=True)}
res = {}
for IF in (100, 50, 10):
    for seed in seeds:
        X, y, Xv, yv, E = P.split(dataset, IF, seed)
        for name, fit in V.items():
            if IF == 10 and name.endswith("_sim"):
                res.setdefault(name, []).append((IF, seed, res[name[:-4]][-1][2], res[name[:-4]][-1][3], 0)); continue
            t = time.time(); predict, cap = fit(X, y, E); t = time.time() - t
            res.setdefault(name, []).append((IF, seed, 100 * bas(yv, predict(Xv)), cap, t))
            print(dataset, IF, seed, name, f"{res[name][-1][2]:.2f} cap {cap:.1f} {t:.1f}s", flush=True)
for name, rows in res.items():
    a = np.array([r[2] for r in rows]); caps = [round(r[3], 1) for r in rows]
    print("SUMMARY", dataset, name, f"mean {a.mean():.2f}", " ".join(f"IF{IF} {np.mean([r[2] for r in rows if r[0]==IF]):.2f}" for IF in (100,50,10)), caps)
