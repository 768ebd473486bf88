"""Display objects, drawn with the Agg backend."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklearn_samn import SAMNClassifier  # noqa: E402
from sklearn_samn.plotting import NormProfileDisplay, ShotAccuracyDisplay  # noqa: E402

from .conftest import make_long_tailed_blobs  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def fitted():
    X, y = make_long_tailed_blobs(counts=(200, 80, 30, 12, 5))
    clf = SAMNClassifier(device="cpu", random_state=0, max_iter=20).fit(X, y)
    return clf, X, y


def test_norm_profile_draws_norms_in_count_order_with_reference(fitted):
    clf, X, y = fitted
    free = LogisticRegression(max_iter=1000).fit(X, y)
    display = NormProfileDisplay.from_estimator(clf, reference=free)
    order = np.argsort(clf.class_count_)
    np.testing.assert_allclose(display.line_.get_xdata(), clf.class_count_[order])
    np.testing.assert_allclose(
        display.line_.get_ydata(), np.linalg.norm(clf.coef_, axis=1)[order]
    )
    np.testing.assert_allclose(
        display.reference_line_.get_ydata(), np.linalg.norm(free.coef_, axis=1)[order]
    )
    assert display.ax_.get_xscale() == "log"
    labels = [t.get_text() for t in display.ax_.get_legend().get_texts()]
    assert labels == ["SAMN (monotone)", "LogisticRegression"]


def test_norm_profile_accepts_pipelines_and_an_axes(fitted):
    _, X, y = fitted
    pipe = make_pipeline(StandardScaler(), SAMNClassifier(device="cpu", max_iter=5)).fit(X, y)
    fig, ax = plt.subplots()
    display = NormProfileDisplay.from_estimator(pipe, ax=ax)
    assert display.ax_ is ax and display.figure_ is fig
    assert display.reference_line_ is None


def test_norm_profile_errors(fitted):
    clf, X, y = fitted
    with pytest.raises(ValueError, match="needs a fitted head with coef_"):
        NormProfileDisplay.from_estimator(SAMNClassifier())
    other = LogisticRegression().fit(X, (y > 2).astype(int))
    with pytest.raises(ValueError, match="same classes"):
        NormProfileDisplay.from_estimator(clf, reference=other)


def test_shot_accuracy_display(fitted):
    clf, X, y = fitted
    display = ShotAccuracyDisplay.from_predictions(
        y, clf.predict(X), class_counts=clf.class_count_, labels=clf.classes_,
        thresholds=(100, 20),
    )
    assert display.groups.tolist() == ["many", "medium", "medium", "few", "few"]
    np.testing.assert_allclose(display.scatter_.get_offsets()[:, 0], clf.class_count_)
    texts = [t.get_text() for t in display.ax_.texts]
    assert any(t.startswith("few") for t in texts) and any(t.startswith("many") for t in texts)
    with pytest.raises(ValueError, match="labels are needed"):
        ShotAccuracyDisplay.from_predictions(y, y, class_counts=[1, 2, 3, 4, 5])


def test_regression_shot_accuracy_display_reads_a_series_and_keeps_every_true_class():
    """A Series of counts (``y.value_counts()``) was refused without ``labels``
    as if it were an array, and a class of ``y_true`` missing from a dict of
    counts was dropped from the plot silently."""
    pd = pytest.importorskip("pandas")
    y_true, y_pred = ["a", "a", "b", "b", "c", "c"], ["a", "a", "b", "a", "c", "a"]
    counts = pd.Series({"c": 5, "a": 500, "b": 50})
    display = ShotAccuracyDisplay.from_predictions(y_true, y_pred, class_counts=counts)
    assert display.groups.tolist() == ["many", "medium", "few"]
    np.testing.assert_allclose(display.class_counts, [500, 50, 5])
    np.testing.assert_allclose(display.accuracy, [1.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="no count for labels \\['z'\\]"):
        ShotAccuracyDisplay.from_predictions(["a", "z"], ["a", "a"],
                                             class_counts={"a": 500, "b": 5})
    plt.close("all")


def _labels_inside_figure(display, dpi):
    figure = display.figure_
    figure.set_dpi(dpi)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    box = figure.bbox
    for label in (display.ax_.xaxis.label, display.ax_.yaxis.label):
        extent = label.get_window_extent(renderer)
        assert label.get_text()
        assert (box.x0 <= extent.x0 and extent.x1 <= box.x1
                and box.y0 <= extent.y0 and extent.y1 <= box.y1), (label.get_text(), extent, box)


@pytest.mark.parametrize("dpi", [60, 80, 100, 200])
def test_regression_shot_accuracy_axis_labels_are_not_cut_off(fitted, dpi):
    clf, X, y = fitted
    display = ShotAccuracyDisplay.from_predictions(
        y, clf.predict(X), class_counts=clf.class_count_, labels=clf.classes_,
    )
    _labels_inside_figure(display, dpi)


@pytest.mark.parametrize("dpi", [60, 80, 200])
def test_norm_profile_axis_labels_are_not_cut_off(fitted, dpi):
    clf, _, _ = fitted
    _labels_inside_figure(NormProfileDisplay.from_estimator(clf), dpi)
