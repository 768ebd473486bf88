"""scikit-learn's estimator checks, run on SAMNClassifier."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_samn import SAMNClassifier

EXPECTED_FAILED_CHECKS = {
    # The same reason scikit-learn gives for SGDClassifier: minibatches of a
    # weighted set and of the set with repeated rows are not the same batches.
    "check_sample_weight_equivalence_on_dense_data": (
        "sample_weight is not equivalent to removing/repeating samples."
    ),
}


@parametrize_with_checks(
    [SAMNClassifier(device="cpu", random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_parameter_constraints_cover_every_parameter():
    assert set(SAMNClassifier._parameter_constraints) == set(
        SAMNClassifier().get_params()
    )
