"""A Pipeline that sends class embeddings through its transformers to its head."""

import numpy as np
from sklearn import get_config
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils.metadata_routing import process_routing

from ._prior import _numeric, in_feature_order
from ._validation import by_label


class ClassPriorPipeline(Pipeline):
    """Pipeline whose final classifier gets class embeddings in its own input space.

    Class embeddings (see ``SAMNClassifier(class_embeddings=...)``) live in the
    space of the raw features, but the last step of a pipeline sees them only
    after the earlier steps (a scaler, a PCA, ...). ``fit`` fits those steps on
    ``X`` as :class:`~sklearn.pipeline.Pipeline` does, sends
    ``class_embeddings`` through them with ``transform`` (they never take part
    in fitting a transformer), and fits the last step with the transformed
    embeddings as its ``class_embeddings``. The last step's own parameter is
    left as it was given (``None``), so cloning and grid searches see the
    estimator the user built.

    Parameters
    ----------
    steps : list of (str, estimator) tuples
        As for :class:`~sklearn.pipeline.Pipeline`. The last step must have a
        ``class_embeddings`` parameter (``SAMNClassifier``), left at ``None``.
    class_embeddings : array-like of shape (n_classes, n_features_in) or dict, default=None
        Class embeddings in the space of the ``X`` given to this pipeline: rows
        in the order of the sorted labels of ``y``, or a dict (or a pandas
        DataFrame indexed by label) mapping each label to its vector (a dict
        may hold labels that ``y`` lacks, as the training
        part of a cross-validation fold may lack a rare class: prefer it in
        cross-validation and grid searches). ``None`` fits a plain pipeline.
    memory : str or object with the joblib.Memory interface, default=None
        Caches the fitted transformers, as in :class:`~sklearn.pipeline.Pipeline`.
    verbose : bool, default=False
        Print the time of each step.

    Attributes
    ----------
    named_steps, classes_, n_features_in_, ...
        As for :class:`~sklearn.pipeline.Pipeline`.

    See Also
    --------
    make_prior_pipeline : Build one from estimators, naming the steps.
    sklearn_samn.SAMNClassifier : The head that uses the embeddings.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_samn import SAMNClassifier, make_prior_pipeline
    >>> rng = np.random.RandomState(0)
    >>> centres = rng.normal(size=(3, 8))
    >>> y = np.repeat([0, 1, 2], [40, 8, 2])
    >>> X = centres[y] + 0.5 * rng.normal(size=(50, 8))
    >>> names = {0: centres[0], 1: centres[1], 2: centres[2]}
    >>> pipe = make_prior_pipeline(
    ...     StandardScaler(), PCA(n_components=4),
    ...     SAMNClassifier(max_norm=8.0, device="cpu"), class_embeddings=names,
    ... ).fit(X, y)
    >>> pipe.predict(centres).tolist()
    [0, 1, 2]
    """

    def __init__(self, steps, *, class_embeddings=None, memory=None, verbose=False):
        super().__init__(steps, memory=memory, verbose=verbose)
        self.class_embeddings = class_embeddings

    def __getitem__(self, ind):
        """A step, or a sub-pipeline as :class:`~sklearn.pipeline.Pipeline`
        slices. A slice that keeps every step keeps ``class_embeddings``; any
        other has none: the embeddings live in the space of the first step's
        input, and a slice without the last step has no head to give them to."""
        sub = super().__getitem__(ind)
        if isinstance(ind, slice) and len(sub.steps) == len(self.steps):
            sub.set_params(class_embeddings=self.class_embeddings)
        return sub

    def fit(self, X, y=None, **params):
        """Fit the transformers on ``X``, then the last step with the embeddings
        sent through them.

        Parameters
        ----------
        X : iterable
            Training data, as the first step takes it.
        y : array-like of shape (n_samples,)
            Class labels.
        **params : dict
            ``<step>__<parameter>`` fit parameters of the steps (for example
            ``samnclassifier__sample_weight``). With scikit-learn's metadata
            routing enabled, plain names (``sample_weight``) routed by each
            step's ``set_fit_request``, as :class:`~sklearn.pipeline.Pipeline`
            routes them.

        Returns
        -------
        self : ClassPriorPipeline
        """
        if self.class_embeddings is None:
            return super().fit(X, y, **params)
        name, head = self.steps[-1]
        if head is None or head == "passthrough" or (
            "class_embeddings" not in head.get_params(deep=False)
        ):
            raise TypeError(
                "ClassPriorPipeline needs a last step with a class_embeddings "
                f"parameter, such as SAMNClassifier; got {head!r}."
            )
        if head.get_params(deep=False)["class_embeddings"] is not None:
            raise ValueError(
                f"Both the pipeline and its last step {name!r} were given "
                "class_embeddings. Give them to the pipeline only (in the space of "
                "the pipeline's input), which sends them through the earlier steps."
            )
        labels, vectors = _as_table(
            in_feature_order(self.class_embeddings, getattr(X, "columns", None))
        )
        width = getattr(X, "shape", None) or np.shape(X)
        if vectors.ndim != 2 or vectors.shape[1] != width[1]:
            raise ValueError(
                "class_embeddings must be in the space of the pipeline's input X, "
                f"{width[1]} features a vector; got vectors of shape "
                f"{vectors.shape[1:]}."
            )
        if get_config().get("enable_metadata_routing", False):
            head_params, front_params = self._routed_fit_params(name, params)
        else:
            head_params, front_params = self._split_fit_params(name, params)
        if len(self.steps) > 1:
            front = Pipeline(self.steps[:-1], memory=self.memory, verbose=self.verbose)
            Xt = front.fit_transform(X, y, **front_params)
            # The fitted transformers (clones, when memory caches them); steps
            # may come as a tuple, which Pipeline accepts.
            self.steps = [*front.steps, self.steps[-1]]
            if hasattr(X, "columns") and type(X).__module__.startswith("pandas"):
                # As X came: the steps fitted on named columns expect them.
                vectors = type(X)(vectors, columns=X.columns)
            vectors = np.asarray(front.transform(vectors))
        else:
            Xt = X
        prior = vectors if labels is None else dict(zip(labels, vectors))
        head.set_params(class_embeddings=prior)
        try:
            head.fit(Xt, y, **head_params)
        finally:
            head.set_params(class_embeddings=None)
        return self

    def _routed_fit_params(self, name, params):
        """``(head, front)`` fit parameters routed as Pipeline routes them, by each
        step's set_fit_request: the earlier steps get, under the caller's names
        (aliases included), what one of them requested, and route it among
        themselves."""
        routed = process_routing(self, "fit", **params)
        front = Pipeline(list(self.steps[:-1])).get_metadata_routing()
        requested = front.consumes("fit_transform", params)
        return dict(routed[name].fit), {key: params[key] for key in requested}

    @staticmethod
    def _split_fit_params(name, params):
        """``(head, front)`` fit parameters from ``<step>__<parameter>`` names; the
        front keeps its prefixes for the Pipeline of the earlier steps."""
        head_params, front_params = {}, {}
        for key, value in params.items():
            step, sep, param = key.partition("__")
            if not sep:
                raise ValueError(
                    f"Fit parameter {key!r} does not name a step: pass "
                    "<step>__<parameter>, for example "
                    f"{name}__sample_weight."
                )
            if step == name:
                head_params[param] = value
            else:
                front_params[key] = value
        return head_params, front_params

    def fit_predict(self, X, y=None, **params):
        """Fit, then predict ``X`` (the last step's predictions of its own
        training data)."""
        return self.fit(X, y, **params).predict(X)


def _as_table(class_embeddings):
    """``(labels, vectors)``: the dict's labels and stacked vectors, or
    ``(None, array)`` for an array in the order of the classes (a pandas
    DataFrame is the dict its index makes)."""
    class_embeddings = by_label(class_embeddings, "class_embeddings")
    if isinstance(class_embeddings, dict):
        labels = list(class_embeddings)
        if not labels:
            raise ValueError("class_embeddings is an empty dict.")
        rows = [_numeric(class_embeddings[k], f"class_embeddings[{k!r}]") for k in labels]
        try:
            vectors = np.stack(rows)
        except ValueError as error:
            raise ValueError(
                "The vectors of class_embeddings must all have the same length, "
                f"the number of features of X; {error}"
            ) from error
        return labels, vectors
    vectors = _numeric(class_embeddings, "class_embeddings")
    if vectors.ndim != 2:
        raise ValueError(
            "class_embeddings must be a 2-D array (n_classes, n_features) or a "
            f"dict label -> vector; got an array of shape {vectors.shape}."
        )
    return None, vectors


def make_prior_pipeline(*steps, class_embeddings=None, memory=None, verbose=False):
    """Build a :class:`ClassPriorPipeline` from estimators, naming the steps.

    The names are the lower-cased class names, as
    :func:`sklearn.pipeline.make_pipeline` gives them.

    Parameters
    ----------
    *steps : list of estimators
        The transformers, then the head (``SAMNClassifier``).
    class_embeddings : array-like or dict, default=None
        In the space of the pipeline's input; see :class:`ClassPriorPipeline`.
    memory, verbose
        As for :class:`ClassPriorPipeline`.

    Returns
    -------
    pipeline : ClassPriorPipeline

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_samn import SAMNClassifier, make_prior_pipeline
    >>> pipe = make_prior_pipeline(StandardScaler(), SAMNClassifier())
    >>> [name for name, _ in pipe.steps]
    ['standardscaler', 'samnclassifier']
    """
    named = make_pipeline(*steps).steps
    return ClassPriorPipeline(named, class_embeddings=class_embeddings, memory=memory,
                              verbose=verbose)
