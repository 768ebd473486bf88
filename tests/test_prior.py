"""Class embeddings as a prior (``class_embeddings``) and ClassPriorPipeline."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_samn import (
    ClassPriorPipeline,
    SAMNClassifier,
    load,
    make_prior_pipeline,
    save,
)


def tail_problem(seed=0, n_features=16, counts=(40, 30, 20, 12, 8, 4, 2, 1, 1, 1),
                 separation=0.9):
    """Long-tailed blobs whose rarest classes have one or two noisy samples, and
    each class's true centre (plus a little noise) as its "name" embedding."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=separation, size=(len(counts), n_features))
    X = np.vstack([c + rng.normal(size=(n, n_features)) for c, n in zip(centres, counts)])
    y = np.repeat(np.arange(len(counts)), counts)
    X_test = np.vstack([c + rng.normal(size=(50, n_features)) for c in centres])
    y_test = np.repeat(np.arange(len(counts)), 50)
    names = centres + 0.1 * rng.normal(size=centres.shape)
    return X, y, X_test, y_test, names


def fit_quietly(clf, X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(X, y, **params)


# 1. what the prior does ------------------------------------------------------


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_the_prior_lifts_the_rare_classes(solver):
    X, y, X_test, y_test, names = tail_problem()
    plain = fit_quietly(SAMNClassifier(solver=solver, device="cpu", random_state=0), X, y)
    prior = fit_quietly(
        SAMNClassifier(solver=solver, class_embeddings=names, device="cpu",
                       random_state=0), X, y)
    rare = np.isin(y_test, [7, 8, 9])
    plain_rare = np.mean(plain.predict(X_test[rare]) == y_test[rare])
    prior_rare = np.mean(prior.predict(X_test[rare]) == y_test[rare])
    assert prior_rare >= plain_rare + 0.1, (plain_rare, prior_rare)
    assert balanced_accuracy_score(y_test, prior.predict(X_test)) > (
        balanced_accuracy_score(y_test, plain.predict(X_test)) + 0.02
    )


def test_real_counts_stay_real():
    X, y, _, _, names = tail_problem()
    clf = SAMNClassifier(class_embeddings=names, max_norm=8.0, device="cpu").fit(X, y)
    np.testing.assert_array_equal(clf.class_count_, np.bincount(y))
    norms = np.linalg.norm(clf.coef_, axis=1)
    order = np.argsort(clf.class_count_, kind="stable")
    assert np.all(np.diff(norms[order]) <= 1e-9 * norms.max())


def test_none_changes_nothing():
    X, y, _, _, _ = tail_problem()
    a = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    b = SAMNClassifier(class_embeddings=None, device="cpu", random_state=0).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)
    assert a.cv_results_["max_norm"].tolist() == b.cv_results_["max_norm"].tolist()


def test_pseudo_rows_are_training_rows_of_their_class():
    """With the loss and order that do not depend on counts (plain cross-entropy,
    the published variant with the real counts given), the prior is exactly one
    more row of each class: full-batch gradient steps follow the same path."""
    X, y, _, _, names = tail_problem(n_features=6)
    counts = np.bincount(y)
    params = dict(variant="paper", loss="cross_entropy", class_counts=counts,
                  solver="sgd", learning_rate_init=0.05, max_iter=20, tol=None,
                  device="cpu")
    with_prior = SAMNClassifier(class_embeddings=names, **params).fit(X, y)
    augmented = SAMNClassifier(**params).fit(
        np.vstack([X, names]), np.concatenate([y, np.arange(len(counts))]))
    np.testing.assert_allclose(with_prior.coef_, augmented.coef_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(with_prior.intercept_, augmented.intercept_,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(with_prior.loss_curve_, augmented.loss_curve_, rtol=1e-5)


def test_with_sample_weights_a_pseudo_row_weighs_their_mean():
    """Unequal sample weights: each pseudo-row is one more row of its class with
    the mean sample weight (the weights reach training scaled to at most 1;
    the pseudo-rows are scaled with them)."""
    X, y, _, _, names = tail_problem(n_features=6)
    counts = np.bincount(y)
    weights = np.where(np.arange(len(y)) % 2, 1.0, 3.0)
    params = dict(variant="paper", loss="cross_entropy", class_counts=counts,
                  solver="sgd", learning_rate_init=0.05, max_iter=20, tol=None,
                  device="cpu")
    with_prior = SAMNClassifier(class_embeddings=names, **params).fit(
        X, y, sample_weight=weights)
    augmented = SAMNClassifier(**params).fit(
        np.vstack([X, names]), np.concatenate([y, np.arange(len(counts))]),
        sample_weight=np.concatenate([weights, np.full(len(counts), weights.mean())]))
    np.testing.assert_allclose(with_prior.coef_, augmented.coef_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(with_prior.loss_curve_, augmented.loss_curve_, rtol=1e-5)


def test_the_pseudo_row_weighs_one_mean_sample():
    """Scaling every sample weight scales the pseudo-rows with them: same fit."""
    X, y, _, _, names = tail_problem()
    clf = SAMNClassifier(class_embeddings=names, max_norm=8.0, device="cpu")
    a = clf.fit(X, y).coef_
    b = clone(clf).fit(X, y, sample_weight=np.full(len(y), 3.0)).coef_
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch_size", [7, 32, None])
def test_minibatches_weigh_the_prior_once_a_pass(batch_size):
    """A pass in minibatches counts the pseudo-rows once: at a head that does
    not move (a learning rate of ~0) every batch size reports the loss of the
    rows and the pseudo-rows together, whatever the batch size."""
    X, y, _, _, names = tail_problem()
    common = dict(class_embeddings=names, max_norm=8.0, device="cpu", random_state=0,
                  tol=None, max_iter=1)
    still = SAMNClassifier(solver="sgd", learning_rate_init=1e-12, batch_size=batch_size,
                           **common).fit(X, y)
    start = SAMNClassifier(solver="sgd", learning_rate_init=1e-12, **common).fit(X, y)
    np.testing.assert_allclose(still.loss_curve_[0], start.loss_curve_[0], rtol=1e-5)
    without = SAMNClassifier(solver="sgd", learning_rate_init=1e-12, batch_size=batch_size,
                             **dict(common, class_embeddings=None)).fit(X, y)
    assert still.loss_curve_[0] != pytest.approx(without.loss_curve_[0], rel=1e-3)


def test_array_and_dict_give_the_same_model():
    X, y, _, _, names = tail_problem()
    labels = np.array([f"intent_{k:02d}" for k in range(names.shape[0])])
    y_str = labels[y]
    as_array = SAMNClassifier(class_embeddings=names, device="cpu", random_state=0)
    as_dict = SAMNClassifier(
        class_embeddings={**dict(zip(labels, names)), "unused_label": names[0]},
        device="cpu", random_state=0,
    )
    a, b = as_array.fit(X, y_str), as_dict.fit(X, y_str)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)


def test_a_dataframe_of_embeddings_is_read_by_its_index(tmp_path):
    """A table of class embeddings, indexed by label in any order, is matched to
    the classes by label (as a dict), never by position; it saves and loads."""
    pd = pytest.importorskip("pandas")
    X, y, X_test, _, names = tail_problem()
    order = np.random.default_rng(0).permutation(names.shape[0])
    table = pd.DataFrame(names[order], index=order)
    params = dict(max_norm=8.0, device="cpu", random_state=0)
    as_table = SAMNClassifier(class_embeddings=table, **params).fit(X, y)
    as_array = SAMNClassifier(class_embeddings=names, **params).fit(X, y)
    np.testing.assert_array_equal(as_table.coef_, as_array.coef_)
    save(as_table, tmp_path / "m.samn")
    back = load(tmp_path / "m.samn")
    np.testing.assert_array_equal(back.predict_proba(X_test), as_table.predict_proba(X_test))
    got = back.get_params()["class_embeddings"]
    assert sorted(got) == list(range(names.shape[0]))
    np.testing.assert_array_equal(got[3], names[3])
    pipe = make_prior_pipeline(StandardScaler(), SAMNClassifier(**params),
                               class_embeddings=table).fit(X, y)
    by_hand = make_prior_pipeline(StandardScaler(), SAMNClassifier(**params),
                                  class_embeddings=names).fit(X, y)
    np.testing.assert_array_equal(pipe.predict_proba(X_test), by_hand.predict_proba(X_test))
    repeated = pd.DataFrame(names, index=[0, 1, 2, 3, 4, 5, 6, 7, 8, 0])
    with pytest.raises(ValueError, match=r"index repeats the labels \[0\]"):
        SAMNClassifier(class_embeddings=repeated, **params).fit(X, y)


def test_named_columns_are_matched_to_the_features_of_X():
    """With a DataFrame X, a DataFrame of embeddings whose columns are X's
    features in another order is put in X's order (alone and in a pipeline,
    where no step warns about feature names); columns that are not X's
    features are an error, not read by position."""
    pd = pytest.importorskip("pandas")
    X, y, X_test, _, names = tail_problem()
    columns = [f"dim{k}" for k in range(X.shape[1])]
    X_df, X_test_df = pd.DataFrame(X, columns=columns), pd.DataFrame(X_test, columns=columns)
    shuffled = columns[::-1]
    table = pd.DataFrame(names, columns=columns)[shuffled]
    params = dict(max_norm=8.0, device="cpu", random_state=0)
    by_name = SAMNClassifier(class_embeddings=table, **params).fit(X_df, y)
    by_array = SAMNClassifier(class_embeddings=names, **params).fit(X_df, y)
    np.testing.assert_array_equal(by_name.coef_, by_array.coef_)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe = make_prior_pipeline(StandardScaler(), PCA(n_components=6, random_state=0),
                                   SAMNClassifier(**params), class_embeddings=table)
        pipe.fit(X_df, y)
        proba = pipe.predict_proba(X_test_df)
    by_hand = make_prior_pipeline(StandardScaler(), PCA(n_components=6, random_state=0),
                                  SAMNClassifier(**params), class_embeddings=names)
    np.testing.assert_allclose(by_hand.fit(X, y).predict_proba(X_test), proba, atol=1e-6)
    wrong = table.rename(columns={"dim3": "other"})
    with pytest.raises(ValueError, match=r"columns that X lacks \['other'\].*lacks \['dim3'\]"):
        SAMNClassifier(class_embeddings=wrong, **params).fit(X_df, y)
    with pytest.raises(ValueError, match=r"columns that X lacks \['other'\]"):
        make_prior_pipeline(StandardScaler(), SAMNClassifier(**params),
                            class_embeddings=wrong).fit(X_df, y)


def test_embeddings_outside_the_space_of_X_are_warned_about():
    """Embeddings that missed a transformation of X (a scaler in a plain
    Pipeline) make a warning that names the fix; sent through the same steps
    by ClassPriorPipeline, or given in the space of X, they make none."""
    X, y, _, _, names = tail_problem()
    X_raw, names_raw = 10 * X + 3, 10 * names + 3  # an encoder's rows, unscaled
    head = dict(max_norm=8.0, device="cpu", random_state=0)
    with pytest.warns(UserWarning, match="may not be in the space of X.*ClassPriorPipeline"):
        make_pipeline(StandardScaler(), SAMNClassifier(class_embeddings=names_raw, **head)
                      ).fit(X_raw, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_prior_pipeline(StandardScaler(), SAMNClassifier(**head),
                            class_embeddings=names_raw).fit(X_raw, y)
        SAMNClassifier(class_embeddings=names_raw, **head).fit(X_raw, y)


def test_embeddings_at_the_mean_of_X_are_warned_about_without_a_log_of_zero():
    from sklearn_samn._prior import warn_if_elsewhere

    shift = np.array([0.5, -1.0, 2.0])
    embeddings = np.vstack([shift, shift + 10.0, shift])  # two exactly at the mean
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.warns(UserWarning, match=r"median distance of 0 .*Farthest classes: "
                                             r"\['a', 'c', 'b'\]"):
            warn_if_elsewhere(embeddings, shift, 2.0, np.array(["a", "b", "c"]))


def test_read_only_embeddings_fit_without_a_warning():
    X, y, _, _, names = tail_problem()
    names.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SAMNClassifier(class_embeddings=names, max_norm=8.0, device="cpu").fit(X, y)


@settings(max_examples=8, deadline=None)
@given(st.permutations(range(10)), st.integers(0, 3))
def test_renaming_classes_renames_the_model(perm, seed):
    X, y, X_test, _, names = tail_problem(seed=seed, n_features=8)
    perm = np.asarray(perm)
    params = dict(max_norm=8.0, device="cpu", random_state=0)
    a = SAMNClassifier(class_embeddings=dict(zip(range(10), names)), **params).fit(X, y)
    b = SAMNClassifier(class_embeddings=dict(zip(perm.tolist(), names)), **params).fit(
        X, perm[y])
    # The same fit up to float32 rounding, which the L-BFGS path carries into the
    # last digits: the same predictions, coefficients close.
    assert np.mean(perm[a.predict(X_test)] == b.predict(X_test)) >= 0.99
    np.testing.assert_allclose(b.coef_[perm], a.coef_, atol=2e-2)


def test_a_model_with_a_prior_saves_and_loads(tmp_path):
    X, y, X_test, _, names = tail_problem()
    for prior in (names, {k: v for k, v in enumerate(names)}):
        clf = SAMNClassifier(class_embeddings=prior, max_norm=8.0, device="cpu").fit(X, y)
        save(clf, tmp_path / "m.samn")
        back = load(tmp_path / "m.samn")
        np.testing.assert_array_equal(back.predict_proba(X_test), clf.predict_proba(X_test))
        got = back.get_params()["class_embeddings"]
        if isinstance(prior, dict):
            assert sorted(got) == sorted(prior)
            np.testing.assert_array_equal(got[3], prior[3])
        else:
            np.testing.assert_array_equal(got, prior)



@pytest.mark.parametrize("extra", [np.zeros(3), "not a vector"])
def test_regression_save_names_an_extra_label_it_cannot_store(tmp_path, extra):
    """fit ignores labels that are not classes, whatever their vectors; save then
    failed with NumPy's "all input arrays must have the same shape"."""
    X, y, _, _, names = tail_problem()
    prior = {**dict(enumerate(names)), 99: extra}
    clf = SAMNClassifier(class_embeddings=prior, max_norm=8.0, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match=r"class_embeddings\[99\] cannot be stored in a "
                       r"model file: it is not a vector of 16 numbers.*Drop that label"):
        save(clf, tmp_path / "m.samn")
    assert not (tmp_path / "m.samn").exists()
    prior[99] = np.ones(16)  # an extra label with a proper vector is kept
    clf.set_params(class_embeddings=prior)
    save(clf, tmp_path / "m.samn")
    np.testing.assert_array_equal(load(tmp_path / "m.samn").class_embeddings[99], np.ones(16))

# 2. bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda n: n[:-1], r"shape \(10, 16\).*got shape \(9, 16\).*dict label"),
        (lambda n: n[:, :-1], r"shape \(10, 16\).*got shape \(10, 15\)"),
        (lambda n: np.where(np.arange(10)[:, None] == 8, np.nan, n),
         r"NaN or infinity.*classes \[8\]"),
        (lambda n: {k: v for k, v in enumerate(n) if k not in (2, 5)},
         r"no vector for the labels \[2, 5\]"),
        (lambda n: {**{k: v for k, v in enumerate(n)}, 4: n[4][:3]},
         r"class_embeddings\[4\] must be a vector of 16 values"),
        (lambda n: [["a"] * 16] * 10, r"class_embeddings must be numeric"),
    ],
)
def test_bad_class_embeddings_are_named(bad, message):
    X, y, _, _, names = tail_problem()
    with pytest.raises(ValueError, match=message):
        SAMNClassifier(class_embeddings=bad(names), device="cpu").fit(X, y)


# 3. pipelines -------------------------------------------------------------------


def test_the_pipeline_sends_the_embeddings_through_its_transformers():
    X, y, X_test, _, names = tail_problem()
    head = dict(max_norm=8.0, device="cpu", random_state=0)
    pipe = make_prior_pipeline(StandardScaler(), PCA(n_components=6, random_state=0),
                               SAMNClassifier(**head), class_embeddings=names).fit(X, y)
    front = make_pipeline(StandardScaler(), PCA(n_components=6, random_state=0)).fit(X)
    by_hand = SAMNClassifier(class_embeddings=front.transform(names), **head).fit(
        front.transform(X), y)
    np.testing.assert_allclose(pipe[-1].coef_, by_hand.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(pipe.predict(X_test), by_hand.predict(front.transform(X_test)))
    # The head keeps the parameter it was given; the pipeline holds the prior.
    assert pipe[-1].class_embeddings is None
    assert pipe.get_params()["class_embeddings"] is names


def test_the_pipeline_without_a_prior_is_a_pipeline():
    X, y, X_test, _, _ = tail_problem()
    steps = [("scale", StandardScaler()), ("samn", SAMNClassifier(max_norm=8.0, device="cpu"))]
    a = ClassPriorPipeline(steps).fit(X, y)
    b = make_pipeline(StandardScaler(), SAMNClassifier(max_norm=8.0, device="cpu")).fit(X, y)
    np.testing.assert_array_equal(a.predict(X_test), b.predict(X_test))


def test_grid_search_over_pca_with_the_prior_and_folds_that_lack_a_class():
    """A singleton class is missing from some folds' training part: the dict prior
    covers it, and GridSearchCV clones, fits and scores every candidate."""
    X, y, X_test, y_test, names = tail_problem(seed=1)
    pipe = make_prior_pipeline(
        StandardScaler(), PCA(random_state=0), SAMNClassifier(max_norm=8.0, device="cpu"),
        class_embeddings=dict(enumerate(names)),
    )
    search = GridSearchCV(pipe, {"pca__n_components": [4, 8, 12]},
                          cv=KFold(3, shuffle=True, random_state=0),
                          scoring="balanced_accuracy", error_score="raise")
    with warnings.catch_warnings():
        # A fold that holds out no row of the singleton class may still predict it.
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true",
                                UserWarning)
        fit_quietly(search, X, y)
    assert search.best_params_["pca__n_components"] in (4, 8, 12)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.get_params()["class_embeddings"].keys() == set(range(10))
    assert balanced_accuracy_score(y_test, search.predict(X_test)) > 0.6


def test_cross_validation_and_clone_keep_the_prior():
    X, y, _, _, names = tail_problem()
    pipe = make_prior_pipeline(StandardScaler(), SAMNClassifier(max_norm=8.0, device="cpu"),
                               class_embeddings=dict(enumerate(names)))
    copy = clone(pipe)
    assert copy.class_embeddings.keys() == pipe.class_embeddings.keys()
    scores = cross_val_score(pipe, X, y, cv=KFold(3, shuffle=True, random_state=0))
    assert np.all(scores > 0.5)


def _scaled_head_by_hand(X, y, names, weights, scaler_weight=None):
    """``coef_`` of StandardScaler then SAMNClassifier(max_norm=8) fitted step by
    step, the names sent through the fitted scaler: what the prior's pipeline
    must give."""
    front = StandardScaler().fit(X, sample_weight=scaler_weight)
    return SAMNClassifier(max_norm=8.0, device="cpu",
                          class_embeddings=front.transform(names)).fit(
        front.transform(X), y, sample_weight=weights).coef_


def test_the_pipeline_passes_fit_parameters_to_its_steps():
    X, y, _, _, names = tail_problem()
    pipe = make_prior_pipeline(StandardScaler(), SAMNClassifier(max_norm=8.0, device="cpu"),
                               class_embeddings=names)
    weights = np.where(y == 0, 0.5, 1.0)
    a = pipe.fit(X, y, samnclassifier__sample_weight=weights)[-1].coef_.copy()
    np.testing.assert_allclose(a, _scaled_head_by_hand(X, y, names, weights), rtol=1e-6,
                               atol=1e-9)
    with pytest.raises(ValueError, match="does not name a step"):
        pipe.fit(X, y, sample_weight=weights)


def test_regression_the_pipeline_routes_metadata_as_pipeline_does():
    """With metadata routing on, the prior's pipeline took ``step__param`` names
    only, the reverse of the same pipeline without a prior."""
    import sklearn

    X, y, _, _, names = tail_problem()
    weights = np.where(y == 0, 0.5, 1.0)
    with sklearn.config_context(enable_metadata_routing=True):
        for front_request in (False, True):
            pipe = make_prior_pipeline(
                StandardScaler().set_fit_request(sample_weight=front_request),
                SAMNClassifier(max_norm=8.0, device="cpu").set_fit_request(sample_weight=True),
                class_embeddings=names)
            a = pipe.fit(X, y, sample_weight=weights)[-1].coef_.copy()
            b = _scaled_head_by_hand(X, y, names, weights,
                                     scaler_weight=weights if front_request else None)
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
            with pytest.raises(TypeError, match="unexpected argument"):
                pipe.fit(X, y, samnclassifier__sample_weight=weights)


def test_regression_the_pipeline_routes_aliased_metadata_to_its_steps():
    """Metadata requested under another name (``set_fit_request(sample_weight=
    "front_w")``) raised a KeyError, or reached no earlier step at all, where a
    Pipeline routes it."""
    import sklearn

    X, y, _, _, names = tail_problem()
    weights = np.where(y == 0, 0.5, 1.0)
    front_weights = np.linspace(0.5, 2.0, y.shape[0])
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_prior_pipeline(
            StandardScaler().set_fit_request(sample_weight="front_w"),
            SAMNClassifier(max_norm=8.0, device="cpu").set_fit_request(
                sample_weight="head_w"),
            class_embeddings=names)
        a = pipe.fit(X, y, front_w=front_weights, head_w=weights)[-1].coef_.copy()
    np.testing.assert_allclose(pipe[0].mean_, np.average(X, axis=0, weights=front_weights),
                               rtol=1e-10)
    b = _scaled_head_by_hand(X, y, names, weights, scaler_weight=front_weights)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_regression_a_whole_slice_of_the_pipeline_keeps_its_prior():
    """``pipe[:]`` came back without class_embeddings (Pipeline slices pass on
    steps, memory and verbose only) and fitted without the prior, silently."""
    X, y, _, _, names = tail_problem()
    pipe = make_prior_pipeline(StandardScaler(), SAMNClassifier(max_norm=8.0, device="cpu"),
                               class_embeddings=names)
    whole = pipe[:]
    assert isinstance(whole, ClassPriorPipeline) and whole.class_embeddings is names
    np.testing.assert_allclose(whole.fit(X, y)[-1].coef_,
                               _scaled_head_by_hand(X, y, names, None), rtol=1e-6, atol=1e-9)
    assert pipe[:1].class_embeddings is None and pipe[1:].class_embeddings is None
    assert isinstance(pipe[-1], SAMNClassifier)


def test_regression_the_pipeline_takes_its_steps_as_a_tuple():
    """``self.steps[:-1] = ...`` failed on tuple steps, which Pipeline accepts."""
    X, y, _, _, names = tail_problem()
    steps = (("scale", StandardScaler()), ("head", SAMNClassifier(max_norm=8.0, device="cpu")))
    pipe = ClassPriorPipeline(steps, class_embeddings=names).fit(X, y)
    np.testing.assert_allclose(pipe[-1].coef_, _scaled_head_by_hand(X, y, names, None),
                               rtol=1e-6, atol=1e-9)


def test_regression_pipeline_embeddings_of_the_wrong_width_blame_the_embeddings():
    """It said "X has 3 features, but StandardScaler is expecting 8"."""
    X, y, _, _, names = tail_problem()
    pipe = make_prior_pipeline(StandardScaler(), SAMNClassifier(device="cpu"),
                               class_embeddings=names[:, :3])
    with pytest.raises(ValueError, match=r"class_embeddings must be in the space of the "
                       rf"pipeline's input X, {X.shape[1]} features a vector; got vectors "
                       r"of shape \(3,\)"):
        pipe.fit(X, y)


def test_the_pipeline_refuses_two_priors_and_heads_without_one():
    X, y, _, _, names = tail_problem()
    both = make_prior_pipeline(StandardScaler(), SAMNClassifier(class_embeddings=names),
                               class_embeddings=names)
    with pytest.raises(ValueError, match="Both the pipeline and its last step"):
        both.fit(X, y)
    from sklearn.linear_model import LogisticRegression

    other = make_prior_pipeline(StandardScaler(), LogisticRegression(),
                                class_embeddings=names)
    with pytest.raises(TypeError, match="class_embeddings parameter"):
        other.fit(X, y)


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda n: {0: ["a"] * 16, **{k: v for k, v in enumerate(n) if k}},
         r"class_embeddings\[0\] must be numeric"),
        (lambda n: {**{k: v for k, v in enumerate(n)}, 4: n[4][:3]},
         r"must all have the same length"),
        (lambda n: n[0], r"must be a 2-D array .* got an array of shape \(16,\)"),
        (lambda n: {}, r"empty dict"),
    ],
)
def test_the_pipeline_names_bad_class_embeddings(bad, message):
    X, y, _, _, names = tail_problem()
    pipe = make_prior_pipeline(StandardScaler(), SAMNClassifier(max_norm=8.0, device="cpu"),
                               class_embeddings=bad(names))
    with pytest.raises(ValueError, match=message):
        pipe.fit(X, y)


def test_fit_predict_uses_the_prior():
    X, y, _, _, names = tail_problem()
    pipe = make_prior_pipeline(StandardScaler(), SAMNClassifier(max_norm=8.0, device="cpu"),
                               class_embeddings=names)
    np.testing.assert_array_equal(pipe.fit_predict(X, y), pipe.fit(X, y).predict(X))


# 4. the README section -----------------------------------------------------------


def _readme_prior_blocks():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Class names as a prior", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```python\n(.*?)\n```", section, flags=re.M | re.S)


def test_readme_prior_section_code():
    """The encoder blocks compile (their models are not here); the pipeline block
    runs as written on data of the shapes it expects."""
    blocks = _readme_prior_blocks()
    assert len(blocks) == 3
    for index, block in enumerate(blocks):
        compile(block, f"README prior block {index + 1}", "exec")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 160))
    counts = np.array([120, 80, 50, 30, 12, 4])
    labels = [f"intent_{k}" for k in range(6)]
    train_labels = np.repeat(labels, counts)
    X = centres[np.repeat(np.arange(6), counts)] + rng.normal(size=(counts.sum(), 160))
    namespace = {"labels": labels, "names": centres, "X": X,
                 "train_labels": train_labels}
    fit_quietly_exec = compile(blocks[2], "README prior pipeline block", "exec")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # The block's GridSearchCV stratifies 5 folds; the rarest class has 4 rows.
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        exec(fit_quietly_exec, namespace)
    search = namespace["search"]
    assert search.best_params_["pca__n_components"] in (64, 128)
    assert search.best_estimator_[-1].class_embeddings is None
