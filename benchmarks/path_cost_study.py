"""Where the default's cap selection spends its time, and two ways to spend less.

The default chooses its norm cap by walking the caps of
``_selection.MAX_NORM_GRID`` (cross-validation on the training set; one
validation split above 10,000 rows) and stops after ``_selection._PATIENCE``
caps that do not beat the best or, on the single split, at the first cap whose
``z`` (below) is under -1. At the large shapes of ``speed.py`` that walk is
most of ``fit``. ``--stop-rule patience3`` records the walk of patience alone
(``_lbfgs._SINGLE_SPLIT_STOP_Z = None``, the default before the ``z`` rule),
which ``stop_rule_replay.py`` replays. This study reports:

1. ``cost``: for one default fit per synthetic shape, the objective evaluations
   (each one pass over the rows it sums) and their seconds at each cap of the
   walk and in the final fit, with the cap's out-of-fold score and how
   significant its difference from the best cap so far is: a weighted McNemar
   statistic ``z = D / sqrt(sum_i a_i^2 delta_i^2)`` over the validation rows,
   where ``delta_i`` is the change in whether row ``i`` is classified right
   (-1, 0, 1) and ``a_i`` its weight in the balanced accuracy (the classes
   with one sample, scored through stand-ins, weigh as many classes as they
   stand for; classes the single split cannot score are left out of ``z``).
   ``cost_real``: the same on
   ``single_split.py``'s real problems (BANKING77 and HWU64's full training
   sets pooled, IF 1 and 2, seeds up to the fifth of ``--seeds``).
2. ``carry``: each fold's L-BFGS keeping its correction pairs from one cap to
   the next (``_lbfgs._CARRY_CURVATURE``, a study switch, off by default)
   against the default, on the splits of ``prior_study.py`` (BANKING77-LT and
   HWU64-LT, IF 100/50/10, validation rows of the training pools, never test),
   without and with the class names: balanced accuracy, fit time, evaluations
   and the caps chosen; and on the synthetic shapes (scored on fresh rows from
   the true class means, as in ``single_split.py``).

    python benchmarks/path_cost_study.py --sections cost,carry_synthetic --large \
        --out benchmarks/PATH_COST.md
    python benchmarks/path_cost_study.py --sections carry,cost_real \
        --seeds 0,1,2,3,4,5 --jobs 2 --out benchmarks/PATH_COST_CARRY.md

The synthetic sections fit with all cores and time the fits: run them alone,
not beside the parallel ``carry`` section, whose workers would take cores.
"""
import argparse
import os
import platform
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import single_split  # noqa: E402
import timing  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402

from sklearn_samn import SAMNClassifier, _lbfgs, _selection, _threads  # noqa: E402

DATASETS = ("banking77", "hwu64")
IMBALANCE = (100, 50, 10)


class Recorder:
    """Counts the objective's evaluations and predictions of a fit, by phase,
    keeps the predictions each cap's score was computed from, and the free
    cores the fit's thread probe saw (``free``; empty for fits small enough
    for one thread, which do not probe)."""

    def __init__(self):
        self.events = []
        self.scored = []
        self.free = []

    def __enter__(self):
        self._saved = (_lbfgs.HeadObjective.__call__, _lbfgs.HeadObjective.predict,
                       _selection.balanced_accuracy, _threads.free_cores)
        call, predict, score, free_cores = self._saved
        recorder = self

        def seen_free_cores(*args, **kwargs):
            recorder.free.append(free_cores(*args, **kwargs))
            return recorder.free[-1]

        def counted_call(objective, head):
            start = time.perf_counter()
            value = call(objective, head)
            recorder.events.append(("evaluation", objective.rows.n_rows,
                                    head.max_norm, time.perf_counter() - start))
            return value

        def counted_predict(objective, head, rows, strengths=(1.0,)):
            start = time.perf_counter()
            out = predict(objective, head, rows, strengths)
            recorder.events.append(("prediction", rows.n_rows, head.max_norm,
                                    time.perf_counter() - start))
            return out

        def kept_score(y, pred, sample_weight, unscored=None):
            recorder.scored.append((y, np.array(pred), sample_weight, unscored))
            return score(y, pred, sample_weight, unscored)

        _lbfgs.HeadObjective.__call__ = counted_call
        _lbfgs.HeadObjective.predict = counted_predict
        _selection.balanced_accuracy = kept_score
        _threads.free_cores = seen_free_cores
        return self

    def __exit__(self, *exc):
        (_lbfgs.HeadObjective.__call__, _lbfgs.HeadObjective.predict,
         _selection.balanced_accuracy, _threads.free_cores) = self._saved

    def evaluations(self):
        return sum(1 for event in self.events if event[0] == "evaluation")


def path_significance(model, scored):
    """``(cap, score, z)`` for each cap the walk tried (``z``: against the best
    cap before it, NaN at the first)."""
    # One score per strength of the logit adjustment at each cap (a single
    # one where the loss's offset is the same for every class).
    per_cap = len(scored) // len(model.cv_results_["max_norm"])
    strengths = _selection._LOGIT_ADJUSTMENTS if per_cap > 1 else (1.0,)
    preference = np.argsort([abs(s - 1.0) for s in strengths], kind="stable")
    rows, best = [], None
    for k, cap in enumerate(model.cv_results_["max_norm"]):
        group = scored[k * per_cap:(k + 1) * per_cap]
        y, _, weight, unscored = group[0]
        scores = np.array([_selection.balanced_accuracy(*g) for g in group])
        pick = preference[np.argmax(scores[preference])]
        right = (group[pick][1] == y).astype(float)
        z = np.nan
        if best is not None:
            z = _selection.decline_z(_selection.row_weights(y, weight, unscored), right,
                                     best[1])
        if best is None or scores[pick] > best[0]:
            best = (scores[pick], right)
        rows.append((float(cap), float(scores[pick]), z))
    return rows


def _cores(recorder):
    """The free cores the fit's probe saw, or that it did not probe."""
    return ("one thread, no probe" if not recorder.free
            else "free cores " + ", ".join(map(str, recorder.free)))


def fit_counted(X, y, carry=False, seed=0, **params):
    saved = _lbfgs._CARRY_CURVATURE
    _lbfgs._CARRY_CURVATURE = carry
    try:
        with Recorder() as recorder:
            start = time.perf_counter()
            model = SAMNClassifier(random_state=seed, device="cpu", **params).fit(X, y)
            seconds = time.perf_counter() - start
    finally:
        _lbfgs._CARRY_CURVATURE = saved
    return model, seconds, recorder


def synthetic_problems(large):
    shapes = dict(single_split.SYNTHETIC)
    if large:
        shapes.update(single_split.LARGE)
    for name, (n, d, c, ratio, options) in shapes.items():
        yield name, single_split.synthetic_problem(n, d, c, ratio, options), 0


def real_problems(seeds):
    """``single_split.py``'s real problems: BANKING77's and HWU64's full
    training sets pooled, long-tailed by IF 1 and 2 (above 10,000 rows: the
    single-split path), fitted with ``random_state=seed`` as there."""
    for ratio in (1, 2):
        for seed in seeds:
            yield (f"BANKING77 + HWU64 full, IF {ratio}, seed {seed}",
                   single_split.real_problem(ratio, seed), seed)


def cost_section(problems, title="the synthetic shapes"):
    lines = [f"## cost: where one default fit spends its time, {title}", "",
             "One default fit (`SAMNClassifier(random_state=seed)`, all cores) per problem. "
             "`evaluations`: passes of the objective (value and gradient) over the rows "
             "of the phase; `s`: their seconds, predictions of the held-out rows "
             "included; `z`: the significance of the cap's difference from the best "
             "cap before it (see the script's docstring; below -2: a significant "
             "decline).", "",
             "| problem | phase | cap | evaluations | L-BFGS iterations | s | "
             "out-of-fold balanced acc % | z |", "|---|---|---|---|---|---|---|---|"]
    summary = []
    for name, (X, y, X_val, y_val), seed in problems:
        model, seconds, recorder = fit_counted(X, y, seed=seed)
        path = path_significance(model, recorder.scored)
        n_iter = dict(zip(model.cv_results_["max_norm"], model.cv_results_["n_iter"]))
        for cap, score, z in path:
            events = [e for e in recorder.events if e[2] == cap and e[1] < X.shape[0]]
            lines.append(
                f"| {name} | CV | {cap:.3g} | "
                f"{sum(e[0] == 'evaluation' for e in events)} | {n_iter[cap]} | "
                f"{sum(e[3] for e in events):.2f} | {100 * score:.2f} | "
                f"{'' if np.isnan(z) else f'{z:+.1f}'} |")
        final = [e for e in recorder.events if e[1] == X.shape[0]]
        lines.append(f"| {name} | final fit | {model.max_norm_:.3g} | {len(final)} | "
                     f"{model.n_iter_} | {sum(e[3] for e in final):.2f} | | |")
        chosen = [cap for cap, _, _ in path].index(model.max_norm_)
        after = [cap for cap, _, z in path[chosen + 1:] if z < -2]
        summary.append(
            f"- {name}: fit {seconds:.1f} s ({_cores(recorder)}), "
            f"{recorder.evaluations()} evaluations; "
            f"{len(path)} caps walked, {model.max_norm_:.3g} chosen (cap "
            f"{chosen + 1}); "
            + (f"the first decline below z = -2 after it is at cap {after[0]:.3g}"
               if after else "no decline after it reaches z = -2"))
        print(summary[-1], flush=True)
    return lines + [""] + summary + [""]


def carry_task(dataset, ratio, seed):
    # Imported here: prior_study sets OMP_NUM_THREADS=1 for its own runs, which
    # would hold the synthetic sections' fits in this process to one thread.
    import prior_study
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    X, y, X_val, y_val, E = prior_study.split(dataset, ratio, seed)
    rows = []
    for names in (False, True):
        for carry in (False, True):
            model, seconds, recorder = fit_counted(
                X, y, carry=carry, class_embeddings=E if names else None)
            rows.append({
                "dataset": dataset, "IF": ratio, "seed": seed, "names": names,
                "carry": carry, "seconds": seconds,
                "evaluations": recorder.evaluations(),
                "cap": model.max_norm_, "strength": model.logit_adjustment_,
                "score": 100 * balanced_accuracy_score(y_val, model.predict(X_val)),
            })
    return rows


def carry_section(seeds, jobs):
    tasks = [(d, r, s) for d in DATASETS for r in IMBALANCE for s in seeds]
    results = Parallel(n_jobs=jobs)(delayed(carry_task)(*task) for task in tasks)
    rows = [row for result in results for row in result]
    lines = ["## carry: correction pairs kept from cap to cap, dev sets", "",
             f"Splits of `prior_study.py`, seeds {', '.join(map(str, seeds))}, "
             "IF 100/50/10, validation rows of the training pools (never test); one "
             "torch thread per fit, fits in parallel. `diff`: paired mean difference "
             "(carry minus default) ± standard error over the splits; `caps moved`: "
             "splits where the chosen cap differs.", "",
             "| dataset | names | default % | carry % | diff | default fit s | carry fit s "
             "| evaluations (default / carry) | caps moved |",
             "|---|---|---|---|---|---|---|---|---|"]
    for dataset in DATASETS:
        for names in (False, True):
            pick = [r for r in rows if r["dataset"] == dataset and r["names"] == names]
            base = [r for r in pick if not r["carry"]]
            carry = [r for r in pick if r["carry"]]
            diff = np.array([c["score"] - b["score"] for b, c in zip(base, carry)])
            lines.append(
                f"| {dataset} | {'with' if names else 'without'} | "
                f"{np.mean([r['score'] for r in base]):.2f} | "
                f"{np.mean([r['score'] for r in carry]):.2f} | "
                f"{diff.mean():+.2f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.2f} | "
                f"{np.mean([r['seconds'] for r in base]):.2f} | "
                f"{np.mean([r['seconds'] for r in carry]):.2f} | "
                f"{np.mean([r['evaluations'] for r in base]):.0f} / "
                f"{np.mean([r['evaluations'] for r in carry]):.0f} | "
                f"{sum(b['cap'] != c['cap'] for b, c in zip(base, carry))} of {len(base)} |")
            print(lines[-1], flush=True)
    lines += ["", "Every split:", "",
              "| dataset | IF | seed | names | default: % / s / evaluations / cap | "
              "carry: % / s / evaluations / cap |", "|---|---|---|---|---|---|"]
    for b, c in zip(rows[0::2], rows[1::2]):
        lines.append(
            f"| {b['dataset']} | {b['IF']} | {b['seed']} | {'with' if b['names'] else 'without'} "
            f"| {b['score']:.2f} / {b['seconds']:.2f} / {b['evaluations']} / {b['cap']:.3g} "
            f"| {c['score']:.2f} / {c['seconds']:.2f} / {c['evaluations']} / {c['cap']:.3g} |")
    return lines + [""]


def carry_synthetic_section(problems):
    lines = ["## carry: the synthetic shapes", "",
             "All cores, one fit each; scored on fresh rows from the true class means.",
             "", "| problem | rule | fit s | free cores seen | evaluations | caps walked | "
             "cap | balanced acc % |", "|---|---|---|---|---|---|---|---|"]
    for name, (X, y, X_val, y_val), _ in problems:
        for carry in (False, True):
            model, seconds, recorder = fit_counted(X, y, carry=carry)
            score = 100 * balanced_accuracy_score(y_val, model.predict(X_val))
            lines.append(f"| {name} | {'carry' if carry else 'default'} | {seconds:.2f} | "
                         f"{_cores(recorder)} | {recorder.evaluations()} | {len(model.cv_results_['max_norm'])} | "
                         f"{model.max_norm_:.3g} | {score:.2f} |")
            print(lines[-1], flush=True)
    return lines + [""]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true",
                        help="add 40k x 1,024 x 1,000 and the ImageNet-LT shapes")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--sections", default="carry,cost,carry_synthetic")
    parser.add_argument("--stop-rule", choices=("default", "patience3"), default="default")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.stop_rule == "patience3":
        _lbfgs._SINGLE_SPLIT_STOP_Z = None
    sections = args.sections.split(",")
    started = time.perf_counter()
    body = []
    if "carry" in sections:
        body += carry_section([int(s) for s in args.seeds.split(",")], args.jobs)
    problems = list(synthetic_problems(args.large)) \
        if {"cost", "carry_synthetic"} & set(sections) else []
    if "cost" in sections:
        body += cost_section(problems)
    if "cost_real" in sections:
        body += cost_section(real_problems([int(s) for s in args.seeds.split(",")][:5]),
                             "real embeddings")
    if "carry_synthetic" in sections:
        body += carry_synthetic_section(problems)
    command = "python benchmarks/path_cost_study.py " + " ".join(sys.argv[1:])
    header = [
        "# Where the cap selection spends its time, and two ways to spend less", "",
        f"Command: `{command}`", "",
        f"- generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; wall time "
        f"{(time.perf_counter() - started) / 60:.1f} min",
        f"- Python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} cores, {timing.host()}",
        "- " + " ".join(__doc__.split("\n\n")[0].split()), "",
    ]
    text = "\n".join(header + body)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
