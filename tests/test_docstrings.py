"""Every public object documents itself with a runnable example."""

import inspect

import pytest

import sklearn_samn
from sklearn_samn import datasets, metrics, plotting

PUBLIC = [
    getattr(module, name)
    for module in (sklearn_samn, datasets, metrics, plotting)
    for name in module.__all__
    if not inspect.ismodule(getattr(module, name))
]


@pytest.mark.parametrize("obj", PUBLIC, ids=lambda o: o.__name__)
def test_public_object_has_numpydoc_sections_and_a_doctest(obj):
    doc = inspect.getdoc(obj)
    assert doc, f"{obj.__name__} has no docstring"
    assert "Examples\n--------" in doc and ">>>" in doc
    if inspect.isclass(obj) or inspect.signature(obj).parameters:
        assert "Parameters\n----------" in doc
    if not inspect.isclass(obj):
        assert "Returns\n-------" in doc or "None" in doc


def test_estimator_documents_every_parameter_and_attribute():
    doc = inspect.getdoc(sklearn_samn.SAMNClassifier)
    for name in sklearn_samn.SAMNClassifier().get_params():
        assert f"\n{name} :" in doc, name
    for attribute in ("classes_", "coef_", "intercept_", "class_count_", "n_features_in_",
                      "feature_names_in_", "n_iter_", "loss_curve_", "device_"):
        assert f"\n{attribute} :" in doc, attribute
