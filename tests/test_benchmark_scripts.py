"""Benchmark scripts run end to end: the prepared GPU check (on the CPU here: a dry
run of its logic), the thread benchmark (its quick mode)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# The scripts run from a temporary folder: put this checkout's package first,
# not whichever sklearn_samn is installed.
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}


def benchmark_module(name):
    """Import a script of benchmarks/ as a module, leaving ``sys.path`` and the
    environment as they were (the scripts set OMP_NUM_THREADS for their own runs)."""
    import importlib

    saved_path, saved_env = list(sys.path), dict(os.environ)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path[:] = saved_path
        os.environ.clear()
        os.environ.update(saved_env)


def test_gpu_check_dry_run_on_the_cpu(tmp_path):
    out = tmp_path / "GPU_CHECK.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
         "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    assert "Agreement PASSED" in report
    # Agreement: 2 batch sizes; timings: 2 shapes; each resident and streamed.
    assert report.count("| resident |") == 4 and report.count("| streamed |") == 4


def test_gpu_check_without_cuda_says_so(tmp_path):
    code = (
        "import sys, torch; torch.cuda.is_available = lambda: False; "
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
        "import gpu_check; sys.exit(gpu_check.main([]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
        cwd=tmp_path, env=ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no CUDA device" in result.stdout


def test_structured_synthetic_features_keep_class_means_in_their_subspace():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import data
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    X, y, X_test, y_test, centres = data.synthetic_features(
        3_000, 256, 40, 10, class_rank=8, separation=7.0, n_test_per_class=50,
        return_centres=True,
    )
    assert X.dtype == np.float32 and X.shape == (3_000, 256)
    assert np.linalg.matrix_rank(centres.astype(np.float64), tol=1e-4) == 8
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    mean_distance = distances[np.triu_indices(40, 1)].mean()
    assert 5.5 < mean_distance < 7.5  # expected squared distance is 7 ** 2
    # The oracle knows the true means: far above chance (2.5%) on learnable classes.
    assert np.mean(data.oracle_predict(X_test, centres) == y_test) > 0.8
    # The same call without class_rank gives the isotropic problem, unchanged.
    iso = data.synthetic_features(3_000, 256, 40, 10, return_centres=True)
    assert np.linalg.matrix_rank(iso[2].astype(np.float64), tol=1e-4) == 40


def test_threads_benchmark_quick_run_writes_its_table(tmp_path):
    # About 10 s, a core spun for 3 of them.
    out = tmp_path / "THREADS.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "threads.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    assert "Command: `python benchmarks/threads.py --quick --out" in report
    table = [line for line in report.splitlines() if line.startswith("| small") or
             line.startswith("| large")]
    assert len(table) == 12  # 2 shapes x idle/busy x old/new/one
    for line in table:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[1] in ("idle", "busy") and cells[2] in ("old", "new", "one")
        kept, runs = map(int, cells[4].split("/"))
        assert runs == 1 and 0 <= kept <= runs  # --quick: one round
        assert float(cells[6]) > 0  # median of all runs, in seconds


def test_prior_study_quick_run_writes_its_table(tmp_path):
    """The study of how class embeddings enter the fit, on one seed of HWU64-LT
    IF 100's validation rows (skipped without the shared data)."""
    import pytest

    if not (ROOT / ".." / "shared" / "data" / "hwu64" / "minilm_embeddings.npz").exists():
        pytest.skip("../shared/data/hwu64 is not here")
    out = tmp_path / "PRIOR.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "prior_study.py"), "--seeds", "0",
         "--imbalance", "100", "--datasets", "hwu64", "--variants", "no_prior,w1,lr_trick",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    assert "the test split is never read" in report
    rows = {line.split("|")[1].strip(): line for line in report.splitlines()
            if line.startswith("| ") and not line.startswith("| variant")}
    assert set(rows) == {"no_prior", "w1", "lr_trick"}
    mean = {name: float(line.split("|")[3]) for name, line in rows.items()}
    # The names lift the long tail by several points on HWU64's validation rows.
    assert mean["w1"] > mean["no_prior"] + 2, report


def test_selection_replay_scores_like_the_package():
    """The replayed rule's criterion is the package's credited balanced accuracy,
    so a rule replayed on recorded paths is judged on what fit computes."""
    selection_replay = benchmark_module("selection_replay")
    from sklearn_samn._selection import balanced_accuracy

    rng = np.random.default_rng(0)
    n_classes = 12
    for _ in range(20):
        y = rng.integers(0, n_classes, size=300)
        logits = rng.normal(size=(300, n_classes)) + 2 * np.eye(n_classes)[y]
        weight = rng.uniform(0.5, 2.0, size=300)
        log_train = np.log(rng.uniform(1, 50, size=n_classes))
        unscored = (int(rng.integers(0, 6)), log_train, 0.0)
        step = (y, logits, weight, unscored)
        expected = balanced_accuracy(y, logits.argmax(axis=1), weight, unscored)
        assert np.isclose(selection_replay.criterion(step), expected, rtol=0, atol=1e-12)
        assert np.isclose(selection_replay.criterion(step, credit=None),
                          balanced_accuracy(y, logits.argmax(axis=1), weight), atol=1e-12)
    # With stand-ins (labels from n_classes on, n_classes * (1 + fold) + class):
    # the same score as the package's, from the logits.
    y = rng.integers(0, n_classes, size=300)
    logits = rng.normal(size=(300, n_classes)) + 2 * np.eye(n_classes)[y]
    virtual = np.where(np.arange(300) < 40, n_classes * 2 + y, y)
    pred = np.where((virtual >= n_classes) & (logits.argmax(axis=1) == y), virtual,
                    np.where(virtual >= n_classes, -1, logits.argmax(axis=1)))
    weight = rng.uniform(0.5, 2.0, size=300)
    unscored = ("stand_ins", 5, n_classes)
    assert np.isclose(selection_replay.criterion((virtual, logits, weight, unscored)),
                      balanced_accuracy(virtual, pred, weight, unscored), atol=1e-12)
    # The walk stops after `patience` caps that do not beat the best, ties to the smaller.
    assert selection_replay.walk([0.5, 0.7, 0.7, 0.6, 0.6, 0.9], patience=3) == 1
    assert selection_replay.walk([0.5, 0.7, 0.7, 0.6, 0.6, 0.9], patience=4) == 5


def test_selection_replay_quick_run_writes_its_table(tmp_path):
    """Record one seed of HWU64-LT IF 100 with the class names and replay the
    rules (skipped without the shared data)."""
    import pytest

    if not (ROOT / ".." / "shared" / "data" / "hwu64" / "minilm_embeddings.npz").exists():
        pytest.skip("../shared/data/hwu64 is not here")
    out = tmp_path / "REPLAY.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "selection_replay.py"), "--seeds", "0",
         "--imbalance", "100", "--datasets", "hwu64", "--names", "with", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    # The replayed default picks the real cap.
    assert "picks the real default's cap in 1 of 1 splits" in report, report
    rows = [line for line in report.splitlines() if line.startswith("| default (")]
    # Two default rows (stand-ins; real fit), one column: HWU64 with names.
    assert len(rows) == 2 and all(len(r.split("|")) == 4 for r in rows), rows
    assert "hwu64 with names" in report


def test_tail_study_name_pull_adds_the_stated_term():
    """tail_study's name pull adds ``-(w r / W) sum_c f_c <u_c, z_c>`` to the
    objective and its gradient (checked in float64), and is gone after its
    context closes."""
    import torch

    tail_study = benchmark_module("tail_study")
    from sklearn_samn._lbfgs import BlockRows, HeadObjective
    from sklearn_samn._prior import prior_rows_on_device
    from sklearn_samn._streaming import RowStream
    from sklearn_samn._training import build_head, rows_on_device

    rng = np.random.default_rng(0)
    counts = np.array([30, 20, 9, 1])
    y = np.repeat(np.arange(4), counts)
    X = rng.normal(size=(len(y), 5)).astype(np.float32)
    E = rng.normal(size=(4, 5))
    shift, scale, weight, cap = X.mean(axis=0), 2.0, 0.5, 4.0
    cpu = torch.device("cpu")
    y_t, w_t, shift_t, inv_scale = rows_on_device(y, np.ones(len(y)), shift, scale, cpu)
    total = len(y) + 4 * weight
    objective = HeadObjective(
        RowStream(X, cpu, max_rows=16), BlockRows(len(y), 16, cpu), y_t, w_t, shift_t,
        inv_scale, np.zeros(4), total, prior_rows_on_device((E, weight), cpu),
    )
    state = {"directions": rng.normal(size=(4, 5)), "log_norms": np.log([1.0, 2, 3, 4]),
             "bias": rng.normal(size=4)}
    head = build_head("invariant", state, counts, max_norm=cap)
    original = HeadObjective.__call__
    plain = objective(head)
    plain_grad = head.directions.grad.clone()
    for fading, share in ((False, np.ones(4)), (True, 1.0 / counts)):
        with tail_study.name_pull(fading):
            pulled = objective(head)
            pulled_grad = head.directions.grad.clone()
        directions = torch.tensor(state["directions"], requires_grad=True)
        z = torch.tensor((E - shift.astype(np.float32)) / scale)
        unit = directions / directions.norm(dim=1, keepdim=True)
        term = -(weight * cap / total) * ((unit * z).sum(dim=1) * torch.tensor(share)).sum()
        term.backward()
        assert np.isclose(pulled - plain, term.item(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(pulled_grad - plain_grad, directions.grad.numpy(),
                                   rtol=1e-4, atol=1e-6)
        assert HeadObjective.__call__ is original


def test_default_ablation_rows_change_what_they_say():
    """The ablation's patched rows do what their descriptions say, and leave the
    package's functions as they found them after the fit."""
    import pytest
    import torch

    from sklearn_samn import _samn, _training

    from .conftest import make_long_tailed_blobs

    ablation = benchmark_module("default_ablation")
    values = torch.tensor([0.3, 1.0, 2.0], dtype=torch.float64)
    counts = np.array([1, 5, 10])
    # The package's order pools these into one block: rarer must be larger.
    np.testing.assert_allclose(
        _training.monotone_projection_torch(values, counts, increasing=False), [1.1] * 3)
    np.testing.assert_allclose(ablation._free_norms(values, counts, False), values)
    np.testing.assert_allclose(ablation._one_norm(values, counts, False), [1.1] * 3)
    # Reversed: the more frequent class may have the larger norm, so nothing pools.
    np.testing.assert_allclose(ablation._reversed_order(values, counts, False), values)
    X = np.random.default_rng(0).normal(loc=3.0, size=(50, 4))
    shift, scale = ablation._uncentred(X, np.ones(50))
    np.testing.assert_array_equal(shift, 0.0)
    assert scale == pytest.approx(np.sqrt(np.mean(np.sum(X ** 2, axis=1))))

    saved = (_training.monotone_projection_torch, _samn._weighted_centre_and_scale)
    X, y = make_long_tailed_blobs()
    for row in ("free_norms", "uncentred", "cap8"):
        predict, at_cap = ablation.fit_predict(row, X, y, None, False)
        assert predict(X).shape == y.shape
        assert 0.0 <= at_cap <= 1.0
    assert (_training.monotone_projection_torch, _samn._weighted_centre_and_scale) == saved


def test_default_ablation_tau_rows_fix_the_strength_for_the_fit_only():
    """The tau rows: the default's cross-validation keeps one strength (the cap
    still chosen at it), the fitted model reports it, and the default's own
    grid is back after the fit."""
    from sklearn_samn import _selection

    from .conftest import make_long_tailed_blobs

    ablation = benchmark_module("default_ablation")
    X, y = make_long_tailed_blobs()
    grid = _selection._LOGIT_ADJUSTMENTS
    fitted = []
    real_fitted = ablation.prior_study.fitted

    def keep(*args, **kwargs):
        fitted.append(real_fitted(*args, **kwargs))
        return fitted[-1]

    ablation.prior_study.fitted = keep
    try:
        for row, tau in (("tau_0.9", 0.9), ("tau_1", 1.0), ("tau_1.1", 1.1)):
            predict, _ = ablation.fit_predict(row, X, y, None, False)
            model = fitted[-1]
            assert model.logit_adjustment_ == tau
            assert set(model.cv_results_["logit_adjustment"]) == {tau}
            np.testing.assert_array_equal(predict(X), model.predict(X))
            assert _selection._LOGIT_ADJUSTMENTS == grid
    finally:
        ablation.prior_study.fitted = real_fitted


def test_pooled_intents_put_hwu64_after_banking77():
    """``data.banking77_hwu64``: HWU64's labels follow BANKING77's 77, its rows and
    name embeddings keep their labels, and the long-tailed pool is drawn as
    ``banking77``'s is (skipped without the shared data)."""
    import pytest

    for name in ("banking77", "hwu64"):
        if not (ROOT / ".." / "shared" / "data" / name / "minilm_embeddings.npz").exists():
            pytest.skip(f"../shared/data/{name} is not here")
    data = benchmark_module("data")
    X, y, X_test, y_test = data.banking77_hwu64(100, 0)
    E = data.class_name_embeddings("banking77_hwu64")
    _, _, H_test, h_test = data.hwu64(100, 0)
    _, _, B_test, b_test = data.banking77(100, 0)
    assert E.shape == (140, 384) and set(np.unique(y)) == set(range(140))
    np.testing.assert_array_equal(y_test, np.concatenate([b_test, h_test + 77]))
    np.testing.assert_array_equal(X_test, np.vstack([B_test, H_test]))
    np.testing.assert_array_equal(E[77:], data.class_name_embeddings("hwu64"))
    counts = np.bincount(y)
    assert counts.max() == 35 and counts.min() == 1


def test_default_ablation_table_pairs_two_change_rows_with_their_one_change_row():
    ablation = benchmark_module("default_ablation")
    nan = float("nan")

    def splits(*accuracies):
        return [(100, seed, acc, 0.5, 1.0, nan) for seed, acc in enumerate(accuracies)]

    scores = {"default": splits(0.70, 0.72), "no_cap": splits(0.66, 0.70),
              "no_cap_free_norms": splits(0.56, 0.60)}
    lines = ablation.table("banking77", False, scores, [0, 1], imbalance=(100,))
    rows = {line.split("|")[1].strip(): line.split("|")[4].strip()
            for line in lines if line.startswith("| ") and not line.startswith("| row")}
    assert rows["default"] == "-"
    assert rows["no_cap"] == "-3.00 ± 1.00"
    assert rows["no_cap_free_norms"] == "-13.00 ± 1.00; minus `no_cap`: -10.00 ± 0.00"


def _stop_of(scores, patience, count_ties):
    """Caps a walk over ``scores`` tries under a stopping rule (a plain replay)."""
    best, waited = -np.inf, 0
    for k, score in enumerate(scores):
        if score > best:
            best, waited = score, 0
        elif count_ties or score < best:
            waited += 1
            if waited >= patience:
                return k + 1
    return len(scores)


def test_single_split_study_rules_stop_as_named_and_leave_the_default(monkeypatch):
    import pytest

    from sklearn_samn import SAMNClassifier, _lbfgs, _selection

    from .conftest import make_long_tailed_blobs

    study = benchmark_module("single_split")
    # Blobs on which the z test stops the default's walk after 4 caps, patience
    # 3 alone after 6, the first decline after 4 and patience 2 after 5.
    X, y = make_long_tailed_blobs(counts=(80, 40, 20, 10, 5, 3, 2, 1), separation=0.8,
                                  seed=3)
    monkeypatch.setattr(_lbfgs, "_SINGLE_SPLIT_ABOVE", len(y) - 1)
    patience, stop_z = _selection._PATIENCE, _lbfgs._SINGLE_SPLIT_STOP_Z
    rules = {"patience 3": (3, True), "first decline": (1, False), "patience 2": (2, False)}
    assert set(rules) | {"z < -1, else patience 3 (default)"} == set(study.RULES)
    tried, results = {}, {}
    for label, rule in study.RULES.items():
        model, seconds = study.fit_with(rule, X, y, 0)
        scores = model.cv_results_["balanced_accuracy"]
        tried[label], results[label] = scores.shape[0], scores
        if label in rules:
            assert tried[label] == _stop_of(scores, *rules[label])
        assert tried[label] < len(_selection.MAX_NORM_GRID)
        assert seconds > 0
        assert _lbfgs._SINGLE_SPLIT_PATIENCE is None and _selection._PATIENCE == patience
        assert _lbfgs._SINGLE_SPLIT_STOP_Z == stop_z
    assert tried == {"z < -1, else patience 3 (default)": 4, "patience 3": 6,
                     "first decline": 4, "patience 2": 5}
    # The default stops earlier than patience 3 on the same walk.
    np.testing.assert_array_equal(results["patience 3"][:4],
                                  results["z < -1, else patience 3 (default)"])
    default = SAMNClassifier(random_state=0).fit(X, y).cv_results_["max_norm"]
    assert default.shape[0] == tried["z < -1, else patience 3 (default)"]
    # The real problem's rows: a fifth of every class held out, never trained on,
    # the rest kept at a share that falls with a random rank.
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    train, validation = study.real_rows(labels, 2, 0)
    assert not set(train) & set(validation)
    np.testing.assert_array_equal(np.bincount(labels[validation]), [2, 4, 6, 8])
    kept = np.bincount(labels[train]) / np.array([8, 16, 24, 32])
    assert kept.max() == 1 and 0.5 <= kept.min() <= 0.55
    if not (ROOT / ".." / "shared" / "data" / "hwu64" / "minilm_embeddings.npz").exists():
        pytest.skip("../shared/data is not here")
    X_train, y_train, X_val, y_val = study.real_problem(2, 0)
    assert X_train.shape[0] > 10_000  # the single-split path
    assert np.unique(y_train).shape[0] == np.unique(y_val).shape[0] == 140


def test_norm_shape_study_refits_the_biases_logistic_regression_found():
    """With LogisticRegression's weights fixed, the refit of the biases lands on
    its (unpenalised) intercept, up to the constant a softmax ignores."""
    from sklearn.linear_model import LogisticRegression

    from .conftest import make_long_tailed_blobs

    study = benchmark_module("norm_shape_study")
    X, y = make_long_tailed_blobs(counts=(40, 20, 10, 5, 2), separation=1.5, seed=1)
    model = LogisticRegression(C=10.0, tol=1e-10, max_iter=10_000).fit(X, y)
    b = study.refit_biases(X @ model.coef_.T, y, 5)
    np.testing.assert_allclose(b - b.mean(), model.intercept_ - model.intercept_.mean(),
                               atol=1e-4)
    # Recall by group: a class with one sample, two with 2-8, two with 9 or more.
    counts = np.array([1, 3, 8, 9, 30])
    y_val = np.repeat(np.arange(5), 2)
    pred = np.array([0, 1, 1, 1, 2, 0, 3, 3, 4, 0])
    assert study.recall_by_group(y_val, pred, counts) == {"1": 50.0, "2-8": 75.0,
                                                          "9+": 75.0}


def test_path_cost_study_weighs_rows_as_the_cv_score_and_counts_each_cap(monkeypatch):
    import pytest

    from sklearn_samn import _lbfgs, _selection

    from .conftest import make_long_tailed_blobs

    study = benchmark_module("path_cost_study")
    rng = np.random.default_rng(0)
    # The row weights (the package's) reproduce the CV's score: sum of weights of the rows
    # classified right, with and without stand-ins (labels from 6 on).
    y = np.repeat(np.arange(9), [9, 7, 5, 4, 3, 3, 4, 2, 3])
    weight = rng.uniform(0.5, 2.0, y.shape[0])
    for _ in range(20):
        pred = np.where(rng.random(y.shape[0]) < 0.6, y, rng.integers(0, 9, y.shape[0]))
        for unscored in (None, ("stand_ins", 4, 6)):
            right = pred == y
            assert np.sum(_selection.row_weights(y, weight, unscored) * right) == \
                pytest.approx(_selection.balanced_accuracy(y, pred, weight, unscored))

    X, y = make_long_tailed_blobs(counts=(60, 30, 15, 8, 4, 2), separation=1.5, seed=2)
    monkeypatch.setattr(_lbfgs, "_SINGLE_SPLIT_ABOVE", len(y) - 1)
    originals = (_lbfgs.HeadObjective.__call__, _selection.balanced_accuracy)
    model, seconds, recorder = study.fit_counted(X, y)
    assert (_lbfgs.HeadObjective.__call__, _selection.balanced_accuracy) == originals
    path = study.path_significance(model, recorder.scored)
    np.testing.assert_allclose([p[1] for p in path], model.cv_results_["balanced_accuracy"])
    assert np.isnan(path[0][2]) and np.all(np.isfinite([p[2] for p in path[1:]]))
    # Every evaluation is counted: one per L-BFGS step at least, with the
    # CV's evaluations on the training part only.
    cv = [e for e in recorder.events if e[0] == "evaluation" and e[1] < len(y)]
    assert len(cv) >= model.cv_results_["n_iter"].sum() + len(path)
    problem = [("blobs", (X, y, X, y), 0)]
    assert any("| blobs | CV |" in line for line in study.cost_section(problem))
    rows = [line for line in study.carry_synthetic_section(problem)
            if line.startswith("| blobs")]
    assert len(rows) == 2 and _lbfgs._CARRY_CURVATURE is False


def test_path_cost_study_writes_its_report(monkeypatch, tmp_path):
    study = benchmark_module("path_cost_study")
    # A small shape in place of speed.py's, on the folds' path (below 10,000 rows).
    monkeypatch.setattr(study.single_split, "SYNTHETIC", {"tiny": (600, 8, 6, 10, {})})
    out = tmp_path / "PATH_COST.md"
    monkeypatch.setattr(sys, "argv", ["path_cost_study.py", "--sections",
                                      "cost,carry_synthetic", "--out", str(out)])
    study.main()
    report = out.read_text()
    assert report.startswith("# Where the cap selection spends its time")
    assert "Command: `python benchmarks/path_cost_study.py --sections cost," in report
    assert report.count("| tiny | CV |") >= 2 and report.count("| tiny | final fit |") == 1
    assert "| tiny | default |" in report and "| tiny | carry |" in report


def test_restart_check_counts_the_stops_it_checks(monkeypatch, capsys):
    from sklearn_samn import _lbfgs

    from .conftest import make_long_tailed_blobs

    study = benchmark_module("restart_check")
    X, y = make_long_tailed_blobs(counts=(40, 20, 10, 5, 2), separation=1.5, seed=1)
    monkeypatch.setattr(study, "problems", lambda: iter([("blobs", X, y, None)]))
    check = _lbfgs._reset_short_directions
    assert study.main() == 0
    out = capsys.readouterr().out
    assert "blobs: " in out and ", 0 restarted" in out and "all: " in out
    assert _lbfgs._reset_short_directions is check
    # A restart is counted, and makes the exit status 1.
    fired = iter([True])
    monkeypatch.setattr(_lbfgs, "_reset_short_directions",
                        lambda head, tol: next(fired, False))
    assert study.main() == 1
    assert "1 restarted" in capsys.readouterr().out


def test_stop_rule_replay_stops_as_named_and_checks_the_record(monkeypatch, tmp_path):
    study = benchmark_module("stop_rule_replay")
    header = ("| problem | phase | cap | evaluations | L-BFGS iterations | s | "
              "out-of-fold balanced acc % | z |\n|---|---|---|---|---|---|---|---|\n")
    # Scores and z as path_cost_study.py prints them: 2.83 ties 2 to two decimals but
    # is ahead (z "+0.0"); after 4, the declines are -0.5, -1.3 and -2.5 standard errors.
    walk = [("2", "50.00", ""), ("2.83", "50.00", "+0.0"), ("4", "50.20", "+1.5"),
            ("5.66", "50.10", "-0.5"), ("8", "49.90", "-1.3"), ("11.3", "49.70", "-2.5")]
    rows = "".join(f"| toy | CV | {cap} | 3 | 2 | 1.00 | {score} | {z} |\n"
                   for cap, score, z in walk)
    record = tmp_path / "RECORD.md"
    record.write_text(header + rows + "| toy | final fit | 4 | 5 | 4 | 2.00 | | |\n")
    caps = study.read_walks([record])["toy"]["caps"]
    assert [c["cap"] for c in caps] == ["2", "2.83", "4", "5.66", "8", "11.3"]
    assert study.replay(caps) == (6, "4")
    assert study.replay(caps, patience=2) == (5, "4")
    assert study.replay(caps, first_decline=True) == (4, "4")
    assert study.replay(caps, z_below=1.0) == (5, "4")
    assert study.replay(caps, z_below=2.0) == (6, "4")
    # The report: every rule of every walk, and the summary.
    monkeypatch.setattr(study, "SOURCES", (record,))
    out = tmp_path / "REPLAY.md"
    monkeypatch.setattr(sys, "argv", ["stop_rule_replay.py", "--out", str(out)])
    study.main()
    text = out.read_text()
    assert "| toy | z < -1, else patience 3 (default now) | 5 of 6 | 4 | same | 15 | 5.00 | 1.00 |  |" in text
    assert "| first decline | 0 of 1 | 2 | 2.0 of 6.0 (33%) |" in text
    # A record that is not patience 3's walk (its final fit at another cap) is refused.
    record.write_text(header + rows + "| toy | final fit | 2.83 | 5 | 4 | 2.00 | | |\n")
    with pytest.raises(SystemExit, match="not a patience-3 walk"):
        study.main()
