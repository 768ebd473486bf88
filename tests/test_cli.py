"""python -m sklearn_samn: demo, fit, predict, evaluate, and its errors."""

import subprocess
import sys

import numpy as np
import pytest

from sklearn_samn import load
from sklearn_samn._cli import main

from .conftest import make_long_tailed_blobs


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "sklearn_samn", *map(str, args)],
        capture_output=True, text=True, timeout=300,
    )


@pytest.fixture
def files(tmp_path):
    X, y = make_long_tailed_blobs(counts=(150, 60, 25, 10, 4))
    np.savez(tmp_path / "train.npz", X=X, y=np.array(["a", "b", "c", "d", "e"])[y])
    X_test, y_test = make_long_tailed_blobs(counts=(20,) * 5, seed=0)
    np.savez(tmp_path / "test.npz", X_test=X_test, y_test=np.array(["a", "b", "c", "d", "e"])[y_test])
    return tmp_path


def test_fit_predict_evaluate_round_trip(files, capsys):
    model = files / "model.samn"
    assert main(["fit", str(files / "train.npz"), "--out", str(model),
                 "--set", "device=cpu", "--set", "random_state=0", "--set", "max_iter=30"]) == 0
    assert "saved to" in capsys.readouterr().out
    clf = load(model)
    assert clf.max_iter == 30 and clf.random_state == 0

    assert main(["predict", str(model), str(files / "test.npz")]) == 0
    printed = capsys.readouterr().out.split()
    X_test = np.load(files / "test.npz")["X_test"]
    assert printed == clf.predict(X_test).tolist()

    assert main(["predict", str(model), str(files / "test.npz"), "--out",
                 str(files / "p"), "--proba"]) == 0
    np.testing.assert_allclose(np.load(files / "p", allow_pickle=False), clf.predict_proba(X_test))

    assert main(["evaluate", str(model), str(files / "test.npz"), "--thresholds", "100,20"]) == 0
    table = capsys.readouterr().out
    for name in ("balanced", "many", "medium", "few"):
        assert name in table


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: ["fit", d / "missing.npz", "--out", d / "m.samn"], "no such file"),
        (lambda d: ["fit", d / "notnpz.npz", "--out", d / "m.samn"], "not a readable .npz"),
        (lambda d: ["fit", d / "noy.npz", "--out", d / "m.samn"], "no labels array"),
        (lambda d: ["fit", d / "nox.npz", "--out", d / "m.samn"], "no features array"),
        (lambda d: ["fit", d / "ragged.npz", "--out", d / "m.samn"], "labels of shape"),
        (lambda d: ["fit", d / "train.npz", "--out", d / "m.samn", "--set", "alpha=1"], "no parameter 'alpha'"),
        (lambda d: ["fit", d / "train.npz", "--out", d / "m.samn", "--set", "max_iter=0"], "fit failed"),
        (lambda d: ["predict", d / "notnpz.npz", d / "test.npz"], "not a valid sklearn-samn model"),
        (lambda d: ["predict", d / "good.samn", d / "narrow.npz"], "3 features, but the model was fitted on 8"),
        (lambda d: ["evaluate", d / "good.samn", d / "test.npz", "--thresholds", "many"], "--thresholds"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(files, make_args, message):
    (files / "notnpz.npz").write_text("not an archive")
    X, y = make_long_tailed_blobs()
    np.savez(files / "noy.npz", X=X)
    np.savez(files / "nox.npz", y=y)
    np.savez(files / "ragged.npz", X=X, y=y[:-1])
    np.savez(files / "narrow.npz", X=X[:, :3])
    assert main(["fit", str(files / "train.npz"), "--out", str(files / "good.samn"),
                 "--set", "device=cpu", "--set", "max_iter=3"]) == 0
    result = run_cli(*make_args(files))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_demo_prints_a_table_and_writes_a_picture(tmp_path):
    result = run_cli("demo", "--picture", tmp_path / "demo.png")
    assert result.returncode == 0, result.stderr
    assert "SAMNClassifier()" in result.stdout and "LogisticRegression()" in result.stdout
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
