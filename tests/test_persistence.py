"""save/load: pickle-free model files."""

import hashlib
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from sklearn_samn import SAMNClassifier, load, save
from sklearn_samn._persistence import _digest

from .conftest import make_long_tailed_blobs, run_without_torch


@pytest.fixture
def fitted():
    X, y = make_long_tailed_blobs()
    names = np.array(["card", "loan", "fraud", "atm", "fx"])[y]
    clf = SAMNClassifier(
        device="cpu", random_state=0, max_iter=10,
        class_counts={"card": 600, "loan": 300, "fraud": 150, "atm": 80, "fx": 40},
    ).fit(X, names)
    return clf, X


@pytest.mark.parametrize("variant", ["invariant", "paper"])
def test_round_trip_gives_identical_predictions(tmp_path, variant):
    X, y = make_long_tailed_blobs()
    clf = SAMNClassifier(variant=variant, device="cpu", random_state=0, max_iter=5).fit(X, y)
    save(clf, tmp_path / "m.samn")
    loaded = load(tmp_path / "m.samn")
    for method in ("predict", "predict_proba", "decision_function", "predict_log_proba"):
        np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(clf, method)(X))
    assert loaded.get_params() == clf.get_params()
    assert loaded.loss_curve_ == clf.loss_curve_
    assert loaded.n_iter_ == clf.n_iter_ and loaded.device_ == clf.device_
    for key, value in clf._head_state.items():
        np.testing.assert_array_equal(loaded._head_state[key], value)


def test_round_trip_keeps_string_labels_dict_counts_and_feature_names(tmp_path, fitted):
    clf, X = fitted
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf.fit(frame, clf.predict(X))
    save(clf, tmp_path / "m.samn")
    loaded = load(tmp_path / "m.samn")
    assert loaded.class_counts == clf.class_counts
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    np.testing.assert_array_equal(loaded.feature_names_in_, clf.feature_names_in_)
    np.testing.assert_array_equal(loaded.predict(frame), clf.predict(frame))
    # A warm start from the loaded model works like one from the original.
    loaded.set_params(warm_start=True, max_iter=1).fit(frame, clf.predict(frame))


@pytest.mark.parametrize("max_norm", ["auto", 8.0, None])
def test_regression_round_trip_keeps_the_cap_and_the_cv_path(tmp_path, max_norm):
    X, y = make_long_tailed_blobs()
    clf = SAMNClassifier(max_norm=max_norm, device="cpu", random_state=0, max_iter=10)
    clf.fit(X, y)
    save(clf, tmp_path / "m.samn")
    loaded = load(tmp_path / "m.samn")
    assert loaded.max_norm_ == clf.max_norm_
    assert loaded.logit_adjustment_ == clf.logit_adjustment_
    if clf.cv_results_ is None:
        assert loaded.cv_results_ is None
    else:
        assert sorted(loaded.cv_results_) == sorted(clf.cv_results_)
        for key, value in clf.cv_results_.items():
            np.testing.assert_array_equal(loaded.cv_results_[key], value)


def test_regression_embeddings_with_named_columns_keep_their_features(tmp_path):
    """A DataFrame of class embeddings whose named columns are X's features in
    another order: the file stores the vectors in X's feature order, so a refit
    of the loaded model is the original fit (it used to pair each value with
    another feature)."""
    from sklearn.base import clone

    X, y = make_long_tailed_blobs()
    columns = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=columns)
    means = np.stack([X[y == c].mean(axis=0) for c in range(5)])
    table = pd.DataFrame(means, columns=columns)[columns[::-1]]
    clf = SAMNClassifier(class_embeddings=table, max_norm=8.0, device="cpu",
                         random_state=0).fit(frame, y)
    save(clf, tmp_path / "m.samn")
    loaded = load(tmp_path / "m.samn")
    np.testing.assert_array_equal(np.stack([loaded.class_embeddings[c] for c in range(5)]),
                                  means)
    np.testing.assert_array_equal(clone(loaded).fit(frame, y).coef_, clf.coef_)


def test_loaded_model_predicts_without_torch(tmp_path, fitted):
    clf, X = fitted
    save(clf, tmp_path / "m.samn")
    np.save(tmp_path / "X.npy", X)
    result = run_without_torch(
        f"""
        import numpy as np, sklearn_samn
        clf = sklearn_samn.load({str(tmp_path / 'm.samn')!r})
        print(",".join(clf.predict(np.load({str(tmp_path / 'X.npy')!r})[:3])))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ",".join(clf.predict(X[:3]))


def test_file_holds_no_pickle(tmp_path, fitted):
    clf, _ = fitted
    save(clf, tmp_path / "m.samn")
    with np.load(tmp_path / "m.samn", allow_pickle=False) as archive:
        for name in archive.files:
            assert archive[name].dtype != object


def test_truncated_file_is_a_clear_error(tmp_path, fitted):
    clf, _ = fitted
    save(clf, tmp_path / "m.samn")
    data = (tmp_path / "m.samn").read_bytes()
    (tmp_path / "cut.samn").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid sklearn-samn model file"):
        load(tmp_path / "cut.samn")


def _rewrite(path, out, change):
    with np.load(path, allow_pickle=False) as archive:
        contents = {name: archive[name] for name in archive.files}
    change(contents)
    with open(out, "wb") as handle:
        np.savez(handle, **contents)


def test_tampered_arrays_are_detected(tmp_path, fitted):
    clf, _ = fitted
    save(clf, tmp_path / "m.samn")

    def scale_coef(contents):
        contents["coef_"] = contents["coef_"] * 2

    _rewrite(tmp_path / "m.samn", tmp_path / "t.samn", scale_coef)
    with pytest.raises(ValueError, match="checksum"):
        load(tmp_path / "t.samn")


def _edit_meta(change, *, recompute_digest=False):
    def edit(contents):
        meta = json.loads(str(contents["__meta__"]))
        change(meta)
        if recompute_digest:
            arrays = {k: v for k, v in contents.items() if k != "__meta__"}
            meta["sha256"] = _digest(meta, arrays)
        contents["__meta__"] = np.array(json.dumps(meta))

    return edit


def test_tampered_metadata_is_detected(tmp_path, fitted):
    clf, _ = fitted
    save(clf, tmp_path / "m.samn")

    def break_format(meta):
        meta["format"] = "something-else"

    _rewrite(tmp_path / "m.samn", tmp_path / "t.samn", _edit_meta(break_format))
    with pytest.raises(ValueError, match="does not name the sklearn-samn format"):
        load(tmp_path / "t.samn")

    # Past the checksum (whoever edits on purpose can recompute it), the
    # contents are still checked for consistency.
    def inconsistent(meta):
        meta["n_features_in_"] = 3

    _rewrite(tmp_path / "m.samn", tmp_path / "u.samn",
             _edit_meta(inconsistent, recompute_digest=True))
    with pytest.raises(ValueError, match="inconsistent contents"):
        load(tmp_path / "u.samn")


def _set_class_count(meta):
    meta["params"]["class_counts"]["dict"][0][1] = 1


def _set_loss(meta):
    meta["params"]["loss"] = "cross_entropy"


def _set_n_iter(meta):
    meta["n_iter_"] += 1


def _set_other_fields(meta):
    meta["params"]["max_iter"] = 7
    meta["device_"] = "cuda:0"
    meta["head_variant"] = "paper"


@pytest.mark.parametrize(
    "change", [_set_class_count, _set_loss, _set_n_iter, _set_other_fields],
    ids=["class_counts", "loss", "n_iter_", "other fields"],
)
def test_edited_metadata_fails_the_checksum(tmp_path, fitted, change):
    # Regression: the checksum covered the arrays only, so these edits loaded.
    clf, _ = fitted
    save(clf, tmp_path / "m.samn")
    _rewrite(tmp_path / "m.samn", tmp_path / "t.samn", _edit_meta(change))
    with pytest.raises(ValueError, match="metadata and arrays do not match their "
                                         "recorded checksum"):
        load(tmp_path / "t.samn")
    # The same edit with the checksum recomputed loads: it guards against
    # accidental damage, not against someone who rewrites the file on purpose.
    _rewrite(tmp_path / "m.samn", tmp_path / "f.samn",
             _edit_meta(change, recompute_digest=True))
    load(tmp_path / "f.samn")


def test_digest_ignores_the_layout_of_the_json(tmp_path, fitted):
    clf, X = fitted
    save(clf, tmp_path / "m.samn")

    def relayout(contents):
        meta = json.loads(str(contents["__meta__"]))
        reordered = dict(reversed(list(meta.items())))
        contents["__meta__"] = np.array(json.dumps(reordered, indent=2))

    _rewrite(tmp_path / "m.samn", tmp_path / "r.samn", relayout)
    np.testing.assert_array_equal(load(tmp_path / "r.samn").predict(X), clf.predict(X))


def _version_1_digest(arrays):
    """The digest that format version 1 wrote: the arrays only."""
    sha = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        sha.update(name.encode())
        sha.update(str(array.dtype).encode())
        sha.update(str(array.shape).encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def test_format_version_1_files_still_load(tmp_path, fitted):
    clf, X = fitted
    save(clf, tmp_path / "m.samn")

    def as_version_1(contents):
        meta = json.loads(str(contents["__meta__"]))
        arrays = {k: v for k, v in contents.items() if k != "__meta__"}
        meta["format_version"] = 1
        meta["sha256"] = _version_1_digest(arrays)
        contents["__meta__"] = np.array(json.dumps(meta))

    _rewrite(tmp_path / "m.samn", tmp_path / "v1.samn", as_version_1)
    loaded = load(tmp_path / "v1.samn")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.n_iter_ == clf.n_iter_

    def without_the_strength(contents):
        meta = json.loads(str(contents["__meta__"]))
        del meta["logit_adjustment_"]
        meta["sha256"] = _version_1_digest(
            {k: v for k, v in contents.items() if k != "__meta__"})
        contents["__meta__"] = np.array(json.dumps(meta))

    # Written before the strength was chosen: heads fitted at the loss's own.
    _rewrite(tmp_path / "v1.samn", tmp_path / "old.samn", without_the_strength)
    assert load(tmp_path / "old.samn").logit_adjustment_ == 1.0

    def scale_coef(contents):
        contents["coef_"] = contents["coef_"] * 2

    _rewrite(tmp_path / "v1.samn", tmp_path / "v1t.samn", scale_coef)
    with pytest.raises(ValueError, match="arrays do not match their recorded checksum"):
        load(tmp_path / "v1t.samn")


def test_files_that_are_not_models(tmp_path):
    (tmp_path / "text.samn").write_text("hello")
    with pytest.raises(ValueError, match="is not a sklearn-samn model file"):
        load(tmp_path / "text.samn")
    np.savez(tmp_path / "plain.npz", X=np.ones(3))
    with pytest.raises(ValueError, match="no sklearn-samn metadata"):
        load(tmp_path / "plain.npz")
    with zipfile.ZipFile(tmp_path / "evil.samn", "w") as archive:
        archive.writestr("__meta__.npy", b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="not a valid sklearn-samn model file"):
        load(tmp_path / "evil.samn")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.samn")


@pytest.mark.parametrize(
    "contents",
    [b"hello\nworld\n", b"\x80\x04K\x01.", np.lib.format.MAGIC_PREFIX + b"\x01\x00"],
    ids=["text", "pickle", "npy-header"],
)
def test_regression_non_archive_is_not_a_model_file_and_never_suggests_pickle(
    tmp_path, contents
):
    # np.load treats a file that is neither .npz nor .npy as a pickle, and its
    # refusal suggested allow_pickle, against the no-pickle design.
    (tmp_path / "m.samn").write_bytes(contents)
    with pytest.raises(ValueError, match="is not a sklearn-samn model file") as error:
        load(tmp_path / "m.samn")
    assert "pickle" not in str(error.value)


def test_plain_npy_array_is_not_a_model_file(tmp_path):
    with open(tmp_path / "a.npy", "wb") as handle:
        np.save(handle, np.ones(3))
    with pytest.raises(ValueError, match="is not a sklearn-samn model file"):
        load(tmp_path / "a.npy")


def test_object_pickled_array_is_refused(tmp_path, fitted):
    clf, _ = fitted
    save(clf, tmp_path / "m.samn")

    def add_object(contents):
        contents["coef_"] = np.array([object()], dtype=object)

    with np.load(tmp_path / "m.samn", allow_pickle=False) as archive:
        contents = {name: archive[name] for name in archive.files}
    add_object(contents)
    with open(tmp_path / "o.samn", "wb") as handle:
        np.savez(handle, **contents)
    with pytest.raises(ValueError, match="object array, which only pickle can read"):
        load(tmp_path / "o.samn")


def test_save_refuses_what_it_cannot_store(tmp_path):
    X, y = make_long_tailed_blobs()
    with pytest.raises(TypeError, match="stores SAMNClassifier"):
        save(object(), tmp_path / "x.samn")
    clf = SAMNClassifier(device="cpu", random_state=np.random.RandomState(0), max_iter=2)
    clf.fit(X, y)
    with pytest.raises(TypeError, match="RandomState instance"):
        save(clf, tmp_path / "x.samn")
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        save(SAMNClassifier(), tmp_path / "x.samn")
