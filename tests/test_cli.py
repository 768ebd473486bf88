"""python -m sklearn_samn: demo, fit, predict, evaluate, and its errors."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from sklearn_samn import SAMNClassifier, load
from sklearn_samn._cli import main
from sklearn_samn.metrics import shot_accuracy

from .conftest import make_long_tailed_blobs


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "sklearn_samn", *map(str, args)],
        capture_output=True, text=True, timeout=300,
    )


LABELS = np.array(["a", "b", "c", "d", "e"])


@pytest.fixture
def files(tmp_path):
    X, y = make_long_tailed_blobs(counts=(150, 60, 25, 10, 4))
    np.savez(tmp_path / "train.npz", X=X, y=LABELS[y])
    X_test, y_test = make_long_tailed_blobs(counts=(20,) * 5, seed=0)
    np.savez(tmp_path / "test.npz", X_test=X_test, y_test=LABELS[y_test])
    return tmp_path


@pytest.fixture
def both(tmp_path):
    """One archive with a training and a test pair that score differently."""
    X, y = make_long_tailed_blobs(counts=(150, 60, 25, 10, 4), separation=1.0, seed=1)
    X_test, y_test = make_long_tailed_blobs(counts=(30,) * 5, separation=1.0, seed=2)
    path = tmp_path / "both.npz"
    np.savez(path, X_train=X, y_train=LABELS[y], X_test=X_test, y_test=LABELS[y_test])
    return path


def printed_scores(text):
    """The metric table printed by ``evaluate``, as a dict."""
    rows = [line.split() for line in text.strip().splitlines()[1:]]
    return {name: float(value) for name, value in rows}


def fit_cli(train, model, *extra):
    return main(["fit", str(train), "--out", str(model), "--set", "device=cpu",
                 "--set", "random_state=0", "--set", "max_iter=30", *map(str, extra)])


def test_fit_predict_evaluate_round_trip(files, capsys):
    model = files / "model.samn"
    assert fit_cli(files / "train.npz", model) == 0
    assert "saved to" in capsys.readouterr().out
    clf = load(model)
    assert clf.max_iter == 30 and clf.random_state == 0

    assert main(["predict", str(model), str(files / "test.npz")]) == 0
    printed = capsys.readouterr().out.split()
    with np.load(files / "test.npz") as archive:
        X_test, y_test = archive["X_test"], archive["y_test"]
    assert printed == clf.predict(X_test).tolist()

    assert main(["predict", str(model), str(files / "test.npz"), "--out",
                 str(files / "p"), "--proba"]) == 0
    np.testing.assert_allclose(np.load(files / "p", allow_pickle=False), clf.predict_proba(X_test))
    capsys.readouterr()

    assert main(["evaluate", str(model), str(files / "test.npz"), "--thresholds", "100,20"]) == 0
    expected = shot_accuracy(y_test, clf.predict(X_test), class_counts=clf.class_count_,
                             labels=clf.classes_, thresholds=(100, 20))
    scores = printed_scores(capsys.readouterr().out)
    assert list(scores) == ["balanced", "many", "medium", "few"]
    np.testing.assert_allclose(list(scores.values()), list(expected.values()), atol=5e-5)


def test_regression_evaluate_on_train_and_test_archive_scores_the_test_arrays(both, capsys):
    model = both.parent / "model.samn"
    assert fit_cli(both, model) == 0
    clf = load(model)
    capsys.readouterr()
    assert main(["evaluate", str(model), str(both)]) == 0
    printed = printed_scores(capsys.readouterr().out)["balanced"]
    with np.load(both) as archive:
        on = {part: shot_accuracy(archive[f"y_{part}"], clf.predict(archive[f"X_{part}"]),
                                  class_counts=clf.class_count_, labels=clf.classes_)
              for part in ("train", "test")}
    assert round(on["test"]["balanced"], 4) != round(on["train"]["balanced"], 4)
    assert printed == pytest.approx(on["test"]["balanced"], abs=5e-5)


def test_regression_evaluate_counts_test_classes_the_model_never_saw(files, capsys):
    """A test class absent from training counts, as misses, in the balanced
    figure (it used to be dropped), and is few-shot (training count 0)."""
    with np.load(files / "train.npz") as archive:
        X, y = archive["X"], archive["y"]
    np.savez(files / "four.npz", X=X[y != "e"], y=y[y != "e"])
    model = files / "four.samn"
    assert fit_cli(files / "four.npz", model) == 0
    capsys.readouterr()
    assert main(["evaluate", str(model), str(files / "test.npz")]) == 0
    scores = printed_scores(capsys.readouterr().out)
    clf = load(model)
    with np.load(files / "test.npz") as archive:
        y_test, pred = archive["y_test"], clf.predict(archive["X_test"])
    assert scores["balanced"] == pytest.approx(balanced_accuracy_score(y_test, pred), abs=5e-5)
    assert scores["balanced"] <= 0.8
    expected = shot_accuracy(y_test, pred, labels=[*clf.classes_, "e"],
                             class_counts=[*clf.class_count_, 0])
    assert scores["few"] == pytest.approx(expected["few"], abs=5e-5)
    assert np.mean(pred[y_test == "e"] == "e") == 0.0


def test_regression_a_counts_dict_names_integer_labels_as_they_print(files, capsys):
    """JSON keys are strings: '{"0": 300, ...}' could not count the labels 0, 1, ..."""
    with np.load(files / "train.npz") as archive:
        X, y = archive["X"], archive["y"]
    codes = np.searchsorted(LABELS, y)
    np.savez(files / "ints.npz", X=X, y=codes)
    counts = {str(c): 10 * (5 - c) for c in range(5)}
    model = files / "ints.samn"
    assert fit_cli(files / "ints.npz", model, "--set", f"class_counts={json.dumps(counts)}") == 0
    np.testing.assert_array_equal(load(model).class_count_, [50, 40, 30, 20, 10])


def test_fit_reads_the_training_pair_and_predict_the_test_pair(both, capsys):
    model = both.parent / "model.samn"
    assert fit_cli(both, model) == 0
    with np.load(both) as archive:
        X_train, y_train, X_test = archive["X_train"], archive["y_train"], archive["X_test"]
    clf = load(model)
    reference = SAMNClassifier(device="cpu", random_state=0, max_iter=30).fit(X_train, y_train)
    np.testing.assert_array_equal(clf.coef_, reference.coef_)
    capsys.readouterr()
    assert main(["predict", str(model), str(both)]) == 0
    assert capsys.readouterr().out.split() == clf.predict(X_test).tolist()


def test_key_options_name_the_arrays_to_read(both, capsys):
    model = both.parent / "model.samn"
    # Train on the test pair and score the training pair, by name.
    assert fit_cli(both, model, "--x-key", "X_test", "--y-key", "y_test") == 0
    with np.load(both) as archive:
        X_train, y_train = archive["X_train"], archive["y_train"]
        X_test, y_test = archive["X_test"], archive["y_test"]
    clf = load(model)
    reference = SAMNClassifier(device="cpu", random_state=0, max_iter=30).fit(X_test, y_test)
    np.testing.assert_array_equal(clf.coef_, reference.coef_)
    capsys.readouterr()
    assert main(["evaluate", str(model), str(both), "--x-key", "X_train"]) == 0
    expected = shot_accuracy(y_train, clf.predict(X_train), class_counts=clf.class_count_,
                             labels=clf.classes_)
    assert printed_scores(capsys.readouterr().out)["balanced"] == pytest.approx(
        expected["balanced"], abs=5e-5)
    assert main(["predict", str(model), str(both), "--x-key", "X_train"]) == 0
    assert capsys.readouterr().out.split() == clf.predict(X_train).tolist()


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: ["fit", d / "missing.npz", "--out", d / "m.samn"], "no such file"),
        (lambda d: ["fit", d / "notnpz.npz", "--out", d / "m.samn"], "not a readable .npz"),
        (lambda d: ["fit", d / "noy.npz", "--out", d / "m.samn"], "no labels array"),
        (lambda d: ["fit", d / "nox.npz", "--out", d / "m.samn"], "no features array"),
        (lambda d: ["fit", d / "ragged.npz", "--out", d / "m.samn"], "labels (y) of shape"),
        (lambda d: ["fit", d / "train.npz", "--out", d / "m.samn", "--set", "alpha=1"], "no parameter 'alpha'"),
        (lambda d: ["fit", d / "train.npz", "--out", d / "m.samn", "--set", "max_iter=0"], "fit failed"),
        (lambda d: ["predict", d / "good.samn", d / "narrow.npz"], "3 features, but the model was fitted on 8"),
        (lambda d: ["evaluate", d / "good.samn", d / "test.npz", "--thresholds", "many"], "--thresholds"),
        # The training and test pairs of one archive.
        (lambda d: ["fit", d / "mismatched.npz", "--out", d / "m.samn"],
         "mismatched pair: X_train with y_test; X_train goes with y_train"),
        (lambda d: ["fit", d / "plain_and_train.npz", "--out", d / "m.samn"],
         "ambiguous: holds both X/y and X_train/y_train"),
        (lambda d: ["evaluate", d / "good.samn", d / "plain_and_test.npz"],
         "ambiguous: holds both X/y and X_test/y_test"),
        (lambda d: ["fit", d / "test.npz", "--out", d / "m.samn"],
         "holds X_test but no train features; this command reads X or X_train"),
        (lambda d: ["evaluate", d / "good.samn", d / "train_only.npz"],
         "holds X_train but no test features; this command reads X or X_test"),
        (lambda d: ["predict", d / "good.samn", d / "train_only.npz"],
         "holds X_train but no test features"),
        (lambda d: ["evaluate", d / "good.samn", d / "test.npz", "--x-key", "X_val"],
         "no array named 'X_val' (--x-key); found X_test, y_test"),
        (lambda d: ["predict", d / "good.samn", d / "test.npz", "--proba"],
         "--proba writes class probabilities to a .npy file; give the file with --out"),
        # Regressions: NaN in X was a traceback; reversed thresholds blamed the data.
        (lambda d: ["fit", d / "nan.npz", "--out", d / "m.samn"], "X contains NaN (first in row 3)"),
        (lambda d: ["predict", d / "good.samn", d / "nan.npz"], "X contains NaN (first in row 3)"),
        (lambda d: ["evaluate", d / "good.samn", d / "nan.npz"], "X contains NaN (first in row 3)"),
        (lambda d: ["evaluate", d / "good.samn", d / "test.npz", "--thresholds", "20,100"],
         "--thresholds takes 'thirds' or MANY,FEW (e.g. 100,20); got '20,100': FEW must not "
         "exceed MANY"),
        # Regressions: "expected one named None"; X with y_train called ambiguous;
        # NaN named for an infinity in an earlier row.
        (lambda d: ["fit", d / "custom.npz", "--out", d / "m.samn", "--x-key", "features"],
         "no labels array known to go with features (only X... pairs with y...); name it "
         "with --y-key (found features, labels)"),
        (lambda d: ["fit", d / "x_with_y_train.npz", "--out", d / "m.samn"],
         "mismatched pair: X with y_train; X goes with y"),
        (lambda d: ["fit", d / "inf_then_nan.npz", "--out", d / "m.samn"],
         "X contains infinity (first in row 0)"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(files, make_args, message, capsys):
    (files / "notnpz.npz").write_text("not an archive")
    X, y = make_long_tailed_blobs()
    np.savez(files / "noy.npz", X=X)
    np.savez(files / "nox.npz", y=y)
    np.savez(files / "ragged.npz", X=X, y=y[:-1])
    np.savez(files / "narrow.npz", X=X[:, :3])
    np.savez(files / "mismatched.npz", X_train=X, y_test=y)
    np.savez(files / "plain_and_train.npz", X=X, y=y, X_train=X, y_train=y)
    np.savez(files / "plain_and_test.npz", X=X, y=y, X_test=X, y_test=y)
    np.savez(files / "train_only.npz", X_train=X, y_train=y)
    X_nan = X.copy()
    X_nan[3, 2] = np.nan
    np.savez(files / "nan.npz", X=X_nan, y=y)
    np.savez(files / "custom.npz", features=X, labels=y)
    np.savez(files / "x_with_y_train.npz", X=X, y_train=y)
    X_inf = X_nan.copy()
    X_inf[0, 1] = np.inf
    np.savez(files / "inf_then_nan.npz", X=X_inf, y=y)
    assert main(["fit", str(files / "train.npz"), "--out", str(files / "good.samn"),
                 "--set", "device=cpu", "--set", "max_iter=3"]) == 0
    capsys.readouterr()
    # In this process, not a subprocess (each costs a second of imports): an
    # uncaught exception would fail the test, and a warning, which a user's
    # terminal would show as more lines, is recorded and must not happen.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            status = main([str(a) for a in make_args(files)])
        except SystemExit as exit_:
            status = exit_.code
    stderr = capsys.readouterr().err
    assert status != 0
    assert not caught, [str(w.message) for w in caught]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], stderr


def test_regression_reversed_thresholds_blame_the_option_not_the_data(files, capsys):
    assert fit_cli(files / "train.npz", files / "good.samn") == 0
    capsys.readouterr()
    assert main(["evaluate", str(files / "good.samn"), str(files / "test.npz"),
                 "--thresholds", "20,100"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "FEW must not exceed MANY" in lines[0]
    assert "test.npz" not in lines[0]


def test_regression_text_file_as_model_is_not_a_model_file_and_no_pickle_advice(files):
    (files / "notes.samn").write_text("a model, honest\n")
    result = run_cli("predict", files / "notes.samn", files / "test.npz")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "is not a sklearn-samn model file" in lines[0]
    assert "pickle" not in lines[0]


def test_usage_errors_are_one_line_too():
    result = run_cli()
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "error:" in lines[0], result.stderr


@pytest.mark.parametrize(
    "args", [["fit"], ["predict", "m.samn"], ["evaluate", "m", "t", "--bogus"], ["unknown"]],
)
def test_usage_errors_of_each_command_are_one_line(args, capsys):
    # In process (argparse exits with 2): the subprocess above checks the
    # exit code a shell sees.
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "--help" in lines[0], lines


def test_error_messages_spanning_lines_are_joined(capsys, monkeypatch):
    from sklearn_samn import _cli

    def fail(args):
        raise _cli.CommandError("first line\nsecond line")

    monkeypatch.setattr(_cli, "_cmd_demo", fail)
    assert main(["demo"]) == 1
    assert capsys.readouterr().err == "sklearn_samn demo: error: first line second line\n"


def test_regression_demo_picture_in_a_missing_folder_is_one_line_before_the_fits(
        tmp_path, capsys, monkeypatch):
    """It printed a 32-line traceback after the fits."""
    import sklearn_samn._demo

    monkeypatch.setattr(sklearn_samn._demo, "run_demo", _refuse)
    picture = tmp_path / "missing" / "x.png"
    assert main(["demo", "--picture", str(picture)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write the picture" in err[0] and "no folder" in err[0]


def test_regression_demo_picture_format_matplotlib_lacks_is_one_line_before_the_fits(
        tmp_path, capsys, monkeypatch):
    """matplotlib's ValueError for an unknown format was a 33-line traceback
    after both fits."""
    pytest.importorskip("matplotlib")
    import sklearn_samn._demo

    monkeypatch.setattr(sklearn_samn._demo, "run_demo", _refuse)
    assert main(["demo", "--picture", str(tmp_path / "x.xyz")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib writes" in err[0] and "not 'xyz'" in err[0]


def _refuse(*args, **kwargs):
    raise AssertionError("the demo ran")


def test_demo_prints_a_table_and_writes_a_picture(tmp_path):
    result = run_cli("demo", "--picture", tmp_path / "demo.png")
    assert result.returncode == 0, result.stderr
    # Each model is named as it was fitted.
    assert "SAMNClassifier(random_state=0)" in result.stdout
    assert "LogisticRegression(max_iter=5000)" in result.stdout
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
