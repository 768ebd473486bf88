"""Mutation check: plant known bugs one at a time and see whether the tests fail.

Copies the repository (the files ``git ls-files`` lists) into a temporary
directory, checks that the chosen test files pass there unmutated, then for each
mutant in ``MUTANTS`` replaces one exact piece of text in one file (asserting it
occurs exactly once), runs ``python -m pytest -x -q -n 0 <its test files>`` with the
copy as working directory (so the copy's package is the one imported), and
restores the file. A mutant is "killed" when pytest fails and "SURVIVED" when it
passes. Exit status 1 if any mutant survived (or the unmutated tests failed).

    python benchmarks/mutation_check.py               # every mutant, ~13 min on 2 cores
    python benchmarks/mutation_check.py --list        # names only
    python benchmarks/mutation_check.py --only stale-cpu-block offset-zeroed

To add a mutant, append a ``Mutant`` to ``MUTANTS``: a short name, what it plants,
the file, the exact text to replace (it must occur exactly once; the test suite
checks that every mutant still applies, so the list cannot rot silently), its
replacement, and the test files expected to catch it.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple


MUTANTS = [
    Mutant(
        name="offset-zeroed",
        what="logit-adjusted loss trains plain cross-entropy (log-prior offset zeroed)",
        path="sklearn_samn/_training.py",
        old="        return np.log(np.maximum(prior, 1e-12))\n",
        new="        return 0 * np.log(np.maximum(prior, 1e-12))\n",
        tests=("tests/test_objective.py", "tests/test_lbfgs.py"),
    ),
    Mutant(
        name="offset-sign-flipped",
        what="logit-adjusted loss subtracts log(prior) instead of adding it",
        path="sklearn_samn/_training.py",
        old="        return np.log(np.maximum(prior, 1e-12))\n",
        new="        return -np.log(np.maximum(prior, 1e-12))\n",
        tests=("tests/test_objective.py", "tests/test_lbfgs.py"),
    ),
    Mutant(
        name="prior-unweighted",
        what="the prior of the L-BFGS solver's logit-adjusted loss ignores sample_weight",
        path="sklearn_samn/_lbfgs.py",
        old=("                shift_t, inv_scale, "
             "logit_offset(loss, prior_offset_counts(counts, prior)),\n"),
        new=("                shift_t, inv_scale, logit_offset(\n"
             "                    loss, prior_offset_counts(\n"
             "                        np.bincount(y, minlength=n_classes), prior)),\n"),
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="prior-unweighted-adam",
        what="the prior of the Adam solver's logit-adjusted loss ignores sample_weight",
        path="sklearn_samn/_samn.py",
        old="                    self.loss, prior_offset_counts(train_counts, prior)\n",
        new=("                    self.loss, prior_offset_counts(\n"
             "                        np.bincount(y_encoded, minlength=n_classes), prior)\n"),
        tests=("tests/test_objective.py",),
    ),
    Mutant(
        name="prior-weight-unscaled",
        what="the class-embedding pseudo-rows weigh 1 whatever the sample weights",
        path="sklearn_samn/_prior.py",
        old="    return PRIOR_WEIGHT * float(positive.mean())\n",
        new="    return PRIOR_WEIGHT\n",
        tests=("tests/test_prior.py",),
    ),
    Mutant(
        name="prior-dropped-by-minibatches",
        what="Adam/SGD skip the class-embedding pseudo-rows",
        path="sklearn_samn/_training.py",
        old="                if last and prior_t is not None:\n",
        new="                if False:\n",
        tests=("tests/test_prior.py",),
    ),
    Mutant(
        name="no-cosine-decay",
        what="Adam/SGD keep the initial learning rate (cosine decay removed)",
        path="sklearn_samn/_training.py",
        old="                    optimizer.step(step_lr * cosine)\n",
        new="                    optimizer.step(step_lr)\n",
        tests=("tests/test_samn.py",),
    ),
    Mutant(
        name="gradient-test-ignored",
        what="L-BFGS ignores tol and stops only on the loss or max_iter",
        path="sklearn_samn/_lbfgs.py",
        old="    while float(grad.abs().max()) > tol:\n",
        new="    while True:\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="max-iter-not-reported",
        what="an L-BFGS fit cut short by max_iter reports convergence",
        path="sklearn_samn/_lbfgs.py",
        old="            return n_iter, False\n",
        new="            return n_iter, True\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="cap-ignored",
        what="the head does not clip its norms at max_norm",
        path="sklearn_samn/_training.py",
        old="            log_norms = torch.clamp(log_norms, max=math.log(self.max_norm))\n",
        new="            log_norms = log_norms + 0 * math.log(self.max_norm)\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="cv-takes-the-last-cap",
        what="the cross-validation keeps the last cap tried, not the best",
        path="sklearn_samn/_selection.py",
        old="        if best is None or score > best_score:\n",
        new="        if True:\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="stuck-norms-kept",
        what="a fit whose norms the projection's backward cannot move is never "
             "restarted (it stops short of the constrained optimum)",
        path="sklearn_samn/_lbfgs.py",
        old="    if not np.abs(allowed).max() > tol:\n",
        new="    if True:\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="minibatch-steps-unprojected",
        what="Adam and SGD step on the free log-norms without setting them to the ones "
             "used (norms above the cap, or pooled out of order, cannot move)",
        path="sklearn_samn/_training.py",
        old="    settle = isinstance(head, InvariantHead)\n",
        new="    settle = False\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="pooled-ties-unordered",
        what="equal log-norms may move apart against the order of the counts in the "
             "optimality test (any move of a tied group counts as allowed)",
        path="sklearn_samn/_lbfgs.py",
        old="    for g in np.flatnonzero(size > 1):\n",
        new="    for g in np.flatnonzero(size > 1e9):\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="short-directions-kept",
        what="a fit that stops short of the gradient test with one direction row far "
             "shorter than the others is not restarted from unit rows",
        path="sklearn_samn/_lbfgs.py",
        old="                                 or _reset_short_directions(head, tol)):\n",
        new="                                 ):\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="ties-not-counted",
        what="caps that tie the best never count towards the patience (the default "
             "path walks on through plateaus)",
        path="sklearn_samn/_selection.py",
        old="            if count_ties or score < best_score:\n",
        new="            if score < best_score:\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="decline-test-off",
        what="the single split's path never stops at a decline of more than one "
             "standard error (patience alone)",
        path="sklearn_samn/_lbfgs.py",
        old="        stop.update(z_below=_SINGLE_SPLIT_STOP_Z)\n",
        new="        pass\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="decline-at-the-wrong-strength",
        what="the decline test compares the caps' rows at the logit adjustment "
             "nearest 1, not at each cap's best strength",
        path="sklearn_samn/_selection.py",
        old="        right = pred[k] == y if z_below is not None else None\n",
        new="        right = pred[preference[0]] == y if z_below is not None else None\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="decline-stand-ins-unweighted",
        what="in the decline test a stand-in weighs as one class, not as the "
             "one-sample classes it stands for",
        path="sklearn_samn/_selection.py",
        old="            class_weight[stand_in] = n_single / stand_in.sum()\n",
        new="            class_weight[stand_in] = 1.0\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="credit-read-at-the-mean",
        what="single-sample classes are credited with the mean recall, not the trend's "
             "value at their own training weight",
        path="sklearn_samn/_selection.py",
        old="    line = recall.mean() + slope * (log_unscored - log_train.mean())\n",
        new="    line = recall.mean()\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="credit-weight-of-the-whole-class",
        what="the trend is read against a class's whole weight, not the weight its "
             "fold trained on",
        path="sklearn_samn/_lbfgs.py",
        old="np.log(train[scored])",
        new="np.log(weighted[scored])",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="stand-ins-keep-every-row",
        what="stand-ins keep all their training rows: they no longer show how a class "
             "with one sample fares",
        path="sklearn_samn/_lbfgs.py",
        old="        weight[train[train != keep]] = 0.0\n",
        new="        pass\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="stand-ins-by-label",
        what="stand-in classes chosen in the order of their labels, not of a row "
             "permutation: renaming classes changes the folds",
        path="sklearn_samn/_lbfgs.py",
        old="    return int(np.sum(counts == 1)), candidates[np.argsort(first[candidates])], row_rank\n",
        new="    return int(np.sum(counts == 1)), candidates, row_rank\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="stand-ins-count-once",
        what="the stand-ins count as one class in the score, not as the n_single "
             "classes they stand for",
        path="sklearn_samn/_selection.py",
        old="    return float((real.sum() + n_single * recall[stand_in].mean())\n",
        new="    return float((real.sum() + recall[stand_in].mean())\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="stand-ins-keep-their-count",
        what="the stand-ins keep their own count in the fold's norm order, not the "
             "rarest class's",
        path="sklearn_samn/_lbfgs.py",
        old="            counts_k[chosen] = rarest\n",
        new="            counts_k[chosen] = class_count[chosen]\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="armijo-only",
        what="the line search drops the approximate Wolfe condition: only the Armijo "
             "test accepts a step, also when values are within float32 rounding",
        path="sklearn_samn/_lbfgs.py",
        old="    return new_value <= value + noise and new_slope <= (2 * _DELTA - 1) * slope\n",
        new="    return False\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="final-start-from-the-folds",
        what="the final fit after the CV always starts from the folds' head, never "
             "from the class means at the chosen cap",
        path="sklearn_samn/_lbfgs.py",
        old='                "lower": [head, fresh], "folds": [head], "class_means": [fresh],\n',
        new='                "lower": [head], "folds": [head], "class_means": [fresh],\n',
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="final-start-higher-loss",
        what="the final fit starts from the candidate of higher loss",
        path="sklearn_samn/_lbfgs.py",
        old="        if grad is not None and (best is None or value < best[0]):\n",
        new="        if grad is not None and (best is None or value > best[0]):\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="singletons-held-out",
        what="classes with one sample are held out of training in a fold",
        path="sklearn_samn/_selection.py",
        old="        if members.shape[0] < 2:\n",
        new="        if members.shape[0] < 1:\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="stale-cpu-block",
        what="CPU streaming serves every second block twice (stale buffer)",
        path="sklearn_samn/_streaming.py",
        old=(
            "            for rows in selections:\n"
            "                yield _as_tensor(host_block(self.X, rows))\n"
        ),
        new=(
            "            previous = None\n"
            "            for k, rows in enumerate(selections):\n"
            "                block = _as_tensor(host_block(self.X, rows))\n"
            "                if k % 2 and previous is not None"
            " and previous.shape == block.shape:\n"
            "                    block = previous\n"
            "                previous = block\n"
            "                yield block\n"
        ),
        tests=("tests/test_streaming.py",),
    ),
    Mutant(
        name="gradient-not-unfolded",
        what="L-BFGS objective: the weight gradient accumulated against raw rows is "
             "used as the standardised one (the shift's term not taken off)",
        path="sklearn_samn/_lbfgs.py",
        old="        unfold_gradient(grad_w, grad_b, self.shift_t, self.inv_scale)\n",
        new="",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="validation-scores-unfolded",
        what="held-out rows scored raw by the standardised-space head",
        path="sklearn_samn/_lbfgs.py",
        old="            weights, bias = fold_standardisation(*head(), self.shift_t, "
            "self.inv_scale)\n",
        new="            weights, bias = head()\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="folded-bias-sign-flipped",
        what="the folded bias adds the shift's scores instead of taking them off",
        path="sklearn_samn/_training.py",
        old="    return folded, (bias.double() - correction).to(bias.dtype)\n",
        new="    return folded, (bias.double() + correction).to(bias.dtype)\n",
        tests=("tests/test_training.py",),
    ),
    Mutant(
        name="adam-gradient-not-unfolded",
        what="Adam/SGD steps take the raw-row weight gradient as the standardised one",
        path="sklearn_samn/_training.py",
        old="                    unfold_gradient(step[2], step[3], shift_t, inv_scale)\n",
        new="",
        tests=("tests/test_samn.py",),
    ),
    Mutant(
        name="views-sized-as-copies",
        what="blocks that are views of X sized as if each were copied (smaller blocks)",
        path="sklearn_samn/_training.py",
        old="    copies = batch_size < n_samples or not serves_views(X, device)\n",
        new="    copies = True\n",
        tests=("tests/test_streaming.py",),
    ),
    Mutant(
        name="statistics-in-large-chunks",
        what="the centre, scale and class means read X in chunks of 1/16 of its rows "
             "(float64 temporaries of 0.4x X), not 1/64",
        path="sklearn_samn/_samn.py",
        old="_STATISTICS_SHARE = 64\n",
        new="_STATISTICS_SHARE = 16\n",
        tests=("tests/test_streaming.py",),
    ),
    Mutant(
        name="blocks-of-half-X",
        what="block temporaries bounded by half the size of X, not a quarter",
        path="sklearn_samn/_training.py",
        old="_X_FRACTION = 4\n",
        new="_X_FRACTION = 2\n",
        tests=("tests/test_streaming.py",),
    ),
    Mutant(
        name="ties-by-index",
        what="PAVA order: stable argsort by count (ties by class index), not tie-exact",
        path="sklearn_samn/_pava.py",
        old="    order = counts.order(values, increasing=increasing)\n",
        new='    order = np.argsort(counts.counts, kind="stable")\n',
        tests=("tests/test_pava.py",),
    ),
    Mutant(
        name="backward-block-mean-at-ties",
        what="PAVA backward takes the block mean on blocks of exactly equal values too",
        path="sklearn_samn/_pava.py",
        old="    tied = np.repeat((sizes > 1) & (lowest == highest), sizes)\n",
        new="    tied = np.repeat((sizes > 1) & (lowest != lowest), sizes)\n",
        tests=("tests/test_pava.py",),
    ),
    Mutant(
        name="backward-identity",
        what="PAVA backward passes gradients through unchanged (no block mean)",
        path="sklearn_samn/_pava.py",
        old="                return mean.to(grad_output.device), None, None\n",
        new="                return grad_output.clone(), None, None\n",
        tests=("tests/test_pava.py",),
    ),
    Mutant(
        name="digest-skips-metadata",
        what="the model-file checksum covers the arrays only, not the metadata",
        path="sklearn_samn/_persistence.py",
        old="        sha.update(canonical.encode())\n",
        new="        canonical.encode()\n",
        tests=("tests/test_persistence.py",),
    ),
    Mutant(
        name="checksum-not-checked",
        what="load() does not compare the checksum",
        path="sklearn_samn/_persistence.py",
        old='    if covered != meta.get("sha256"):\n',
        new="    if False:\n",
        tests=("tests/test_persistence.py",),
    ),
    Mutant(
        name="float16-copied-whole",
        what="float16/integer NumPy arrays go through validate_data (a whole float64 copy)",
        path="sklearn_samn/_validation.py",
        old="            and X.dtype not in _NATIVE\n",
        new="            and False\n",
        tests=("tests/test_streaming.py",),
    ),
    Mutant(
        name="metrics-drop-outside-labels",
        what="per-class accuracy from the confusion matrix restricted to labels: a "
             "prediction outside labels drops its row instead of counting as a miss",
        path="sklearn_samn/metrics.py",
        old="    return recall_score(y_true, y_pred, labels=labels, average=None, "
            "zero_division=np.nan)\n",
        new=("    from sklearn.metrics import confusion_matrix\n"
             "    matrix = confusion_matrix(y_true, y_pred, labels=labels)\n"
             "    support = matrix.sum(axis=1)\n"
             "    with np.errstate(invalid='ignore', divide='ignore'):\n"
             "        return np.where(support > 0, np.diag(matrix) / support, np.nan)\n"),
        tests=("tests/test_metrics.py",),
    ),
    Mutant(
        name="embeddings-saved-by-position",
        what="save() keeps a DataFrame of class embeddings in its own column order, not "
             "X's feature order",
        path="sklearn_samn/_persistence.py",
        old='        in_feature_order(params.pop("class_embeddings"),\n'
            '                         getattr(estimator, "feature_names_in_", None)),\n',
        new='        params.pop("class_embeddings"),\n',
        tests=("tests/test_persistence.py",),
    ),
    Mutant(
        name="weightless-class-fitted",
        what="a class whose samples all weigh 0 is fitted (a random direction) instead "
             "of refused",
        path="sklearn_samn/_samn.py",
        old="        if np.any(train_counts == 0):\n",
        new="        if False:\n",
        tests=("tests/test_samn.py",),
    ),
    Mutant(
        name="strength-not-applied",
        what="the logit adjustment strength chosen by the CV is reported but the final "
             "head's bias is not moved by it",
        path="sklearn_samn/_lbfgs.py",
        old="            state[\"bias\"] = state[\"bias\"] + (1.0 - strength) * offset\n",
        new="            state[\"bias\"] = state[\"bias\"] + 0.0 * offset\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="fold-strength-sign-flipped",
        what="out of fold, a strength above 1 moves the scores towards the frequent "
             "classes instead of the rare ones",
        path="sklearn_samn/_lbfgs.py",
        old="            shifts = [None if s == 1.0 else (1.0 - s) * self.offset_t "
            "for s in strengths]\n",
        new="            shifts = [None if s == 1.0 else (s - 1.0) * self.offset_t "
            "for s in strengths]\n",
        tests=("tests/test_lbfgs.py",),
    ),
    Mutant(
        name="strength-ties-to-the-first",
        what="a tie between strengths goes to the first of the grid, not to the one "
             "nearest 1",
        path="sklearn_samn/_selection.py",
        old="        k = preference[np.argmax(by_strength[preference])]\n",
        new="        k = int(np.argmax(by_strength))\n",
        tests=("tests/test_lbfgs.py",),
    ),
]


def repository_files(root):
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in listed.split("\0") if name]


def copy_repository(root, destination):
    for name in repository_files(root):
        source = root / name
        if not source.is_file():  # deleted but not yet committed
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def apply(mutant, source):
    """``source`` with the mutant planted; it must apply exactly once."""
    count = source.count(mutant.old)
    if count != 1:
        raise ValueError(
            f"mutant {mutant.name!r}: its text occurs {count} times in "
            f"{mutant.path}, not once; update MUTANTS to the current source."
        )
    return source.replace(mutant.old, mutant.new)


def run_pytest(copy, tests, timeout):
    env = {
        **os.environ,
        # No bytecode caches: a mutant of the same size written in the same
        # second as the original could otherwise be served from a stale .pyc.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(copy),
    }
    # One process (-n 0): with -x most runs stop at their first failure, seconds
    # in, and starting pytest-xdist's workers would cost more than they save.
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p",
               "no:cacheprovider", *tests]
    start = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=copy, env=env, capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, ""
    lines = result.stdout.strip().splitlines()
    return result.returncode, time.perf_counter() - start, lines[-1] if lines else ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="mutants to run")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds per pytest run (default 900)")
    args = parser.parse_args(argv)
    if args.list:
        for mutant in MUTANTS:
            print(f"{mutant.name:<30} {mutant.path:<30} {mutant.what}")
        return 0
    mutants = MUTANTS
    if args.only:
        unknown = set(args.only) - {m.name for m in MUTANTS}
        if unknown:
            parser.error(f"unknown mutants: {sorted(unknown)}")
        mutants = [m for m in MUTANTS if m.name in args.only]

    with tempfile.TemporaryDirectory(prefix="samn-mutants-") as tmp:
        copy = Path(tmp)
        copy_repository(ROOT, copy)
        imported = subprocess.run(
            [sys.executable, "-c", "import sklearn_samn; print(sklearn_samn.__file__)"],
            cwd=copy, capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": str(copy)},
        ).stdout.strip()
        if not Path(imported).resolve().is_relative_to(copy.resolve()):
            raise RuntimeError(f"the copy imports sklearn_samn from {imported}")
        originals = {m.path: (copy / m.path).read_text() for m in mutants}
        for mutant in mutants:  # fail before any run if one no longer applies
            apply(mutant, originals[mutant.path])

        test_files = sorted({t for m in mutants for t in m.tests})
        code, seconds, summary = run_pytest(copy, test_files, args.timeout)
        print(f"unmutated: {' '.join(test_files)}: "
              f"{'pass' if code == 0 else 'FAIL'} ({summary}, {seconds:.0f} s)",
              flush=True)
        if code != 0:
            print("the unmutated tests fail: fix them before checking mutants")
            return 1

        survived = []
        for mutant in mutants:
            target = copy / mutant.path
            target.write_text(apply(mutant, originals[mutant.path]))
            try:
                code, seconds, summary = run_pytest(copy, mutant.tests, args.timeout)
            finally:
                target.write_text(originals[mutant.path])
            if code == "timeout":
                verdict = "timeout"
            elif code == 0:
                verdict = "SURVIVED"
                survived.append(mutant.name)
            else:
                verdict = "killed"
            print(f"{verdict:<9} {mutant.name:<28} {mutant.what} "
                  f"[{' '.join(mutant.tests)}: {summary}, {seconds:.0f} s]", flush=True)
    print(f"{len(mutants) - len(survived)} of {len(mutants)} mutants killed"
          + (f"; survived: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
