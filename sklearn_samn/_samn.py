"""SAMNClassifier: a linear head with class-frequency-monotone weight norms."""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.sparse import csr_matrix
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ._device import check_device_string
from ._prior import (
    centred,
    check_class_embeddings,
    prior_offset_counts,
    prior_weight,
    warn_if_elsewhere,
)
from ._validation import (
    check_sliceable_array,
    class_counts_array,
    finite_block,
    is_sliceable_array,
)

# float64 temporaries of one chunk of rows (a converted block of X, its class
# scores) stay near this size however many rows are scored or summarised.
_CHUNK_BYTES = 4 << 20
# The statistics of X (centre, scale, class means) read it in chunks of at most
# 1/64 of its rows: each chunk's float64 temporaries (up to three at once, each
# twice a float32 chunk) stay under a tenth of X, so a small X is not copied
# whole in all but name (benchmarks/speed.py's memory probe).
_STATISTICS_SHARE = 64

# Initial norm of every class of the "invariant" variant trained without a cap
# (solver="adam"/"sgd"; inputs standardised to unit root-mean-square row norm).
# There the final logit scale is the effective regulariser, and the budget
# (lr 3e-3, 100 cosine passes) moves the norms little from here. Chosen on
# validation rows of BANKING77-LT that the test set never touched:
# benchmarks/select_initial_norm.py. The default L-BFGS solver caps the norms
# instead, at a value chosen by cross-validation (_selection.py).
_INITIAL_NORM = 7.0


class SAMNClassifier(ClassifierMixin, BaseEstimator):
    """Linear classifier head whose weight norms are monotone in class frequency.

    Self-Adaptive Monotonic Normalisation (SAMN) trains a linear head on
    precomputed features, for example the embeddings of a frozen backbone,
    under the constraint that the rarer a class, the larger or equal the
    norm of its weight vector. The constraint is imposed by projecting
    per-class scalars onto the monotone cone with the Pool Adjacent Violators
    Algorithm inside the forward pass; the backward pass uses the exact
    Jacobian of that projection. The head is regularised by a cap on its
    class norms, which ``fit`` chooses itself by cross-validation on the
    training data, so there is no regularisation strength to tune. Training
    runs in PyTorch (on a GPU when there is one); the fitted model is plain
    NumPy and predicts without torch.

    Read more in the README and in ``docs/method.md``.

    Parameters
    ----------
    variant : {"invariant", "paper"}, default="invariant"
        Parametrisation of the head.

        - ``"invariant"``: the head sees ``(X - mean) / scale``, where
          ``scale`` is the root-mean-square norm of the centred rows, so the
          fit does not depend on the scale or offset of ``X``. Class ``c``
          has weight ``exp(q_c) * v_c / ||v_c||`` with ``q`` the projection of
          free log-norms onto the values non-increasing in class count, and a
          free bias. Without ``coef_init`` the directions start at the class
          means and all norms at the same value.
        - ``"paper"``: the published parametrisation on raw ``X``: weight
          ``g(p_c) * v_c / ||v_c||`` and bias ``bias_c + g(p'_c)`` with
          ``g(p) = exp(1 / (softplus(p) + 1e-6))``, ``p = PAVA(s)`` and
          ``p' = PAVA(s')`` non-decreasing from tail to head, ``s`` and ``s'``
          initialised to the class counts min-max normalised to ``[0, 1]``,
          directions and bias from ``coef_init`` and ``intercept_init``
          (class means and zeros without them). It is not scale-invariant.
          It follows the published code except at ties, where it keeps this
          library's handling (see Notes): the published code breaks ties in
          class count by class index (a stable argsort before PAVA), which
          makes the fit depend on how tied classes are labelled, and
          averages the gradient over every pooled block (``METHOD.md``),
          so that equal scalars pooled together (tied counts start equal)
          get equal gradients and stay equal. Here a block of exactly equal
          values passes gradients through unchanged. Without tied counts
          the two differ only where scalars of different classes are
          exactly equal, which the published initialisation never gives.
          The published recipe pairs it with ``loss="cross_entropy"``,
          ``solver="sgd"``, ``batch_size=64``, ``max_iter=20`` and a learning
          rate of 5e-4 per step, i.e. ``learning_rate_init=5e-4 * n_samples /
          64`` (``learning_rate_init`` is per pass).

    loss : {"logit_adjusted", "cross_entropy"}, default="logit_adjusted"
        Training loss. ``"logit_adjusted"`` (balanced softmax) adds the log
        of the training class prior to the logits inside the loss only, so
        that the fitted head scores classes as if they were balanced.
        ``"cross_entropy"`` is the plain softmax cross-entropy.

    solver : {"lbfgs", "adam", "sgd"}, default="lbfgs"
        Optimiser. ``"lbfgs"``: full-batch L-BFGS, run until the gradient
        test ``tol`` is met (each gradient is accumulated over blocks of rows,
        so memory does not grow with the data). ``"adam"`` or ``"sgd"`` (with
        momentum 0.9): a fixed budget of ``max_iter`` passes, in minibatches
        with ``batch_size``, with a cosine decay of the learning rate from
        ``learning_rate_init`` to zero; with no cap their regulariser is that
        budget and the initial norm 7 of every class.

    max_norm : "auto", float or None, default="auto"
        Cap on the class norms in the standardised space of the
        ``"invariant"`` variant (rows of unit root-mean-square norm), the
        regulariser of a head trained to convergence. ``"auto"``: with
        ``solver="lbfgs"`` and ``variant="invariant"``, chosen by ``cv``-fold
        cross-validation on the training data among caps a factor sqrt(2)
        apart from 2 to 64 (balanced accuracy of the out-of-fold
        predictions; see ``cv_results_``); otherwise no cap. The same
        cross-validation chooses, with the cap and from the same out-of-fold
        scores, the strength of the logit adjustment among 0.9 to 1.2 in
        steps of 0.05 (``logit_adjustment_``; 1 is the loss's own). The final
        fit on every row then starts from the folds' mean head or from the
        class means at the chosen cap, whichever has the lower loss. A float
        fixes the cap (and the strength at 1); ``None`` trains without one.

    cv : int, default=5
        Number of folds of the internal cross-validation of
        ``max_norm="auto"``. Every class spreads its samples over the folds;
        a class with a single sample is never held out (it could not be
        learnt from the rest); it counts in the score with the recall of
        stand-ins: in each fold a few frequent classes keep one training row,
        and their other rows are scored. Above
        10,000 samples only the first fold is held out (a single validation
        split of ``1 / cv`` of every class), as scikit-learn's gradient
        boosting switches to a validation split at that size. That split's
        path also stops at the first cap more than one standard error below
        the best (a paired test on the held-out rows).

    learning_rate_init : float, default=3e-3
        Adam and SGD only. Initial learning rate per pass over the data. With
        minibatches each step uses ``learning_rate_init * batch_size /
        n_samples``, so that the distance the head moves in a pass (with no L2
        penalty, the budget that regularises it) does not depend on
        ``batch_size``.

    batch_size : int or None, default=None
        Adam and SGD only. Rows per optimiser step. ``None`` takes one
        full-batch step per pass (its gradient accumulated over chunks of
        rows, so memory does not grow with the data); an int trains in
        shuffled minibatches.

    max_iter : int, default=100
        ``"lbfgs"``: most L-BFGS iterations of each fit (every fold and cap
        of the cross-validation, and the final fit); a final fit that reaches
        it warns with ``ConvergenceWarning``. ``"adam"``/``"sgd"``: the
        number of passes over the data, which is also the length of the
        learning-rate schedule.

    tol : float or None, default=1e-4
        ``"lbfgs"``: stop when no component of the gradient of the mean
        training loss exceeds ``tol`` (or the loss stops decreasing at
        float32 precision). ``"adam"``/``"sgd"``: stop when the mean training
        loss of a pass has not improved by at least ``tol`` for
        ``n_iter_no_change`` consecutive passes, and warn with
        ``ConvergenceWarning`` if that never happens. ``None``: run all
        ``max_iter`` iterations.

    n_iter_no_change : int, default=10
        Adam and SGD only: passes without improvement before training stops.

    class_counts : array-like of shape (n_classes,) or dict, default=None
        Class frequencies that define the monotone order, for when the
        training set does not follow the natural distribution (for example a
        re-sampled or balanced subset of long-tailed data). An array in the
        order of ``classes_`` or a dict mapping every label to its count (a
        pandas Series, such as ``y.value_counts()``, maps its index). A dict
        may hold more labels, which are not used: prefer it in
        cross-validation, where a fold may lack a rare class.
        ``None`` uses the (sample-weighted) counts of ``y``, with counts
        that differ only by rounding (balanced weights) taken as equal. The
        logit-adjusted loss always uses the distribution of the training set
        itself.

    class_embeddings : array-like of shape (n_classes, n_features) or dict, default=None
        A prior for the classes with few samples: each class's embedding by the
        encoder that made ``X`` (its name or description through a sentence
        encoder, a CLIP-like text tower's "a photo of a {name}", ...), in the
        space of the ``X`` given to ``fit``. An array in the order of
        ``classes_``, or a dict (or a pandas DataFrame indexed by label) mapping
        every label of ``y`` to its vector (it may hold more labels, which are
        not used: prefer it in cross-validation, where a fold may lack a rare
        class). Each embedding
        is one more training row of its class, weighted as one average sample
        of ``X``; it stays in the training part of every fold of the internal
        cross-validation, and the standardisation, the monotone order
        (``class_count_``) and the logit adjustment use the real rows only.
        In a pipeline whose earlier steps transform ``X``, give them to
        :class:`~sklearn_samn.ClassPriorPipeline` instead, which sends them
        through those steps. ``None``: no prior.

    warm_start : bool, default=False
        Whether to start from the previous fit's head when ``fit`` is called
        again (its norms only with a fixed ``max_norm`` or ``None``, as for
        ``coef_init``). ``coef_init`` takes precedence.

    device : str, default="auto"
        ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``
        or ``"cuda:N"``.

    random_state : int, RandomState instance or None, default=None
        Seeds the minibatch shuffling and any random initialisation. With an
        int, two fits on the CPU with the same torch threads give
        bit-identical ``coef_``. A large fit uses fewer threads while other
        processes keep cores busy (README, "Parallel model selection"), and
        BLAS may split a long sum differently across another number of
        threads: on a busy machine two fits can then differ by rounding
        (entries of ``coef_`` up to 2e-7 apart, its largest 0.09, at
        50,000 x 128 x 10 after two Adam passes). After
        ``torch.set_num_threads(1)`` every fit uses one thread and repeats
        bit for bit.

    verbose : int, default=0
        ``0`` is silent; ``1`` prints progress to stderr: with ``"lbfgs"``
        one line per cap of the cross-validation and one for the final fit,
        each with its seconds (the caps after the chosen one, which the
        selection tries before it stops, can be a large share of ``fit``),
        with ``"adam"`` or ``"sgd"`` one line per pass.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.

    coef_ : ndarray of shape (n_classes, n_features)
        Effective weights: ``decision_function`` of class ``c`` is
        ``X @ coef_[c] + intercept_[c]``. Their row norms obey the monotone
        constraint.

    intercept_ : ndarray of shape (n_classes,)
        Effective intercepts.

    class_count_ : ndarray of shape (n_classes,)
        The class frequencies that define the monotone order.

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit``. Defined only when ``X`` has
        feature names that are all strings.

    max_norm_ : float or None
        The cap on the class norms of the fitted head (chosen, given, or
        ``None``).

    logit_adjustment_ : float
        The strength of the logit adjustment in the fitted scores: the
        intercepts are those of the fitted head minus ``logit_adjustment_ - 1``
        times the log of the training prior. 1 (the loss's own adjustment)
        unless ``max_norm="auto"`` chose another with the cap (see
        ``cv_results_``); 0 for ``loss="cross_entropy"``.

    cv_results_ : dict or None
        With ``max_norm="auto"`` and ``solver="lbfgs"``: ``"max_norm"``, the
        caps tried in order, ``"balanced_accuracy"``, their out-of-fold
        balanced accuracy at the best logit adjustment strength,
        ``"logit_adjustment"``, that strength, and ``"n_iter"``, the L-BFGS
        iterations the folds took at each cap (arrays of the same length).
        The path stops after three caps in a row that do not improve on the
        best or, on a single validation split, at the first cap more than one
        standard error below it. ``None`` otherwise.

    n_iter_ : int
        L-BFGS iterations of the final fit (``"lbfgs"``), or passes over the
        data (``"adam"``, ``"sgd"``).

    loss_curve_ : list of float
        Mean weighted training loss after each iteration or pass.

    device_ : str
        The device the last ``fit`` ran on.

    See Also
    --------
    sklearn.linear_model.LogisticRegression : Linear head with an L2 penalty.
    sklearn.linear_model.SGDClassifier : Linear models fitted by SGD.

    Notes
    -----
    Classes with equal counts are not ordered among themselves: the
    projection is exact on the partial order that ties leave (PAVA after
    sorting tied classes by value), and renaming tied classes does not
    change the model. In the backward pass, a pooled block whose inputs are
    all exactly equal (feasible, pooled only because its values tie) takes
    the identity, its one-sided derivative towards the feasible side, rather
    than the block mean, so that equal starting values can separate. Both
    choices hold for ``variant="paper"`` too, where the published code
    breaks count ties by class index and always takes the block mean.
    ``benchmarks/ABLATION.md`` (groups 4 and 4b) measures both choices.

    ``predict_proba`` returns the head's softmax. With the logit-adjusted loss
    those are probabilities under a balanced class prior; multiply by the
    prior of the target population and renormalise for other priors.

    References
    ----------
    S. Zhang, C. Li and T. Zhu, "Why Not Hyperparameter-Friendly
    Optimisation? A Monotonic Adaptive Norm Rescaling Approach For
    Long-Tailed Recognition", CVPR 2026.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_samn import SAMNClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    >>> clf.coef_.shape
    (10, 64)
    >>> round(clf.score(X, y), 2) >= 0.95
    True
    """

    _parameter_constraints = {
        "variant": [StrOptions({"invariant", "paper"})],
        "loss": [StrOptions({"logit_adjusted", "cross_entropy"})],
        "solver": [StrOptions({"lbfgs", "adam", "sgd"})],
        "max_norm": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither"),
                     None],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "class_counts": [None, "array-like", dict],
        "class_embeddings": [None, "array-like", dict],
        "warm_start": ["boolean"],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        variant="invariant",
        loss="logit_adjusted",
        solver="lbfgs",
        max_norm="auto",
        cv=5,
        learning_rate_init=3e-3,
        batch_size=None,
        max_iter=100,
        tol=1e-4,
        n_iter_no_change=10,
        class_counts=None,
        class_embeddings=None,
        warm_start=False,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.variant = variant
        self.loss = loss
        self.solver = solver
        self.max_norm = max_norm
        self.cv = cv
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.class_counts = class_counts
        self.class_embeddings = class_embeddings
        self.warm_start = warm_start
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, coef_init=None, intercept_init=None):
        """Fit the head on features ``X`` and labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features of any numeric dtype. Training computes in
            float32 and reads ``X`` in blocks of rows, converting one block at
            a time: float32 input is not copied, input of any other dtype
            (float64, float16, ints, ...) is never copied whole, and a
            ``np.memmap`` or another 2-D array-like that slices (an HDF5 or
            zarr dataset, a dask array) is streamed from where it lies
            rather than loaded. (A pandas DataFrame goes through
            scikit-learn's checks, which convert it whole unless it is
            float32 or float64.)
        y : array-like of shape (n_samples,)
            Class labels (ints, strings, ...).
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Non-negative weights, with some weight on every class of ``y``
            (drop the samples of a class you weigh 0); ``None`` (or one
            number) weighs every sample alike. Only their ratios matter.
        coef_init : array-like of shape (n_classes, n_features), default=None
            Initial weights, e.g. the backbone's own classifier, in the order
            of ``classes_``. With ``max_norm="auto"`` only their directions
            are used (the cross-validation sets the norms); with a fixed cap
            or ``None`` their norms too (clipped at the cap). For two classes
            the ``(1, n_features)`` shape of scikit-learn's binary linear
            models is accepted too. A zero row
            starts from its class mean's direction instead (an all-zero
            ``coef_init`` starts where a fit without it does).
        intercept_init : array-like of shape (n_classes,), default=None
            Initial intercepts (``(1,)`` for scikit-learn's binary form).

        Returns
        -------
        self : SAMNClassifier
            The fitted estimator.
        """
        # Validation resets n_features_in_ and feature_names_in_ first; every
        # other fitted attribute is set at the end. A fit that fails (a
        # warm start refused, say) puts those two back, so the previous model
        # stays whole.
        previous = {name: vars(self)[name] for name in _INPUT_ATTRIBUTES
                    if name in vars(self)}
        try:
            check_device_string(self.device)
            if is_sliceable_array(X):
                X = check_sliceable_array(X, self, reset=True)
                if y is None:
                    # validate_data's words, for the arrays it does not read.
                    raise ValueError(
                        f"This {type(self).__name__} estimator requires y to be "
                        "passed, but the target y is None."
                    )
                y = column_or_1d(y, warn=True)
                check_consistent_length(X, y)
                for rows in _chunks(X.shape[0], X.shape[1]):
                    finite_block(np.asarray(X[rows]))
            else:
                X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
            _check_float32_range(X)
            check_classification_targets(y)
            classes, y_encoded = np.unique(y, return_inverse=True)
            if classes.shape[0] < 2:
                raise ValueError(
                    "SAMNClassifier needs samples of at least 2 classes in the "
                    f"data, but the data contains only one class: {classes[0]!r}."
                )
            n_classes, n_features = classes.shape[0], X.shape[1]
            sample_weight = _check_sample_weight(sample_weight, X.shape[0])
            train_counts = np.bincount(
                y_encoded, weights=sample_weight, minlength=n_classes
            )
            if np.any(train_counts == 0):
                raise ValueError(
                    "sample_weight is zero for every sample of the classes "
                    f"{classes[train_counts == 0].tolist()}: nothing can be learnt about "
                    "them (their direction would be arbitrary). Drop their samples or give "
                    "them weight."
                )
            class_count = _check_class_counts(self.class_counts, classes, train_counts)
            # The fit is invariant to the scale of the weights, which reach the
            # training loop in float32: at most 1, so that neither tiny nor huge
            # weights underflow or overflow there.
            sample_weight = sample_weight / sample_weight.max()
            init = _check_init(coef_init, intercept_init, n_classes, n_features)
            embeddings = check_class_embeddings(
                self.class_embeddings, classes, n_features,
                getattr(self, "feature_names_in_", None),
            )
            prior = None if embeddings is None else (embeddings, prior_weight(sample_weight))

            # Imports torch: kept out of module scope so that prediction needs none.
            try:
                from ._lbfgs import train_head_lbfgs
                from ._training import (
                    build_head,
                    effective_weights,
                    head_state,
                    logit_offset,
                    train_head,
                )
            except ImportError as error:
                raise ImportError(
                    "SAMNClassifier.fit needs PyTorch (pip install torch); a fitted "
                    "model predicts without it."
                ) from error
            from ._device import resolve_device, torch_generator

            device = resolve_device(self.device)
            random_state = check_random_state(self.random_state)

            if self.variant == "invariant":
                shift, scale = _weighted_centre_and_scale(X, sample_weight)
                _check_float32_precision(shift, scale)
            else:
                shift, scale = np.zeros(n_features), 1.0
            max_norm = self._resolved_max_norm()
            if prior is not None:
                if self.variant == "invariant":
                    warn_if_elsewhere(prior[0], shift, scale, classes)
                prior = (centred(prior[0], shift), prior[1])

            warm = init is None and self.warm_start and hasattr(self, "coef_")
            if warm and (
                not np.array_equal(classes, self.classes_)
                or self.coef_.shape[1] != n_features
            ):
                raise ValueError(
                    "warm_start=True needs the classes and number of features of the "
                    f"previous fit ({len(self.classes_)} classes, "
                    f"{self.coef_.shape[1]} features); got {n_classes} classes "
                    f"{classes!r} and {n_features} features."
                )
            if warm and self.variant == "paper" == self._head_variant:
                # The published norm map is not invertible on coef_ alone.
                previous = self._head_state

                def initial_state(weight):
                    return previous
            else:
                if warm:
                    init = (self.coef_, self.intercept_)
                # A given cap is the start of every norm; with "cv" each fold's
                # path sets its own start.
                initial_norm = max_norm if isinstance(max_norm, Real) else _INITIAL_NORM

                def initial_state(weight):
                    return _initial_state(
                        self.variant, init, X, y_encoded, weight, n_classes,
                        shift, scale, class_count, random_state, initial_norm, prior,
                    )

            if self.solver == "lbfgs":
                if self.batch_size is not None:
                    raise ValueError(
                        "batch_size is for the minibatch solvers: solver='lbfgs' "
                        "trains on the full batch; use solver='adam' or 'sgd' with "
                        f"batch_size={self.batch_size}."
                    )
                state, info = train_head_lbfgs(
                    self.variant, initial_state, X, y_encoded, sample_weight,
                    class_count=class_count, shift=shift, scale=scale, loss=self.loss,
                    max_norm=max_norm, n_folds=self.cv, tol=self.tol or 0.0,
                    max_iter=self.max_iter, device=device, random_state=random_state,
                    verbose=self.verbose, prior=prior,
                )
                max_norm = info["max_norm"]
                loss_curve, converged = info["loss_curve"], info["converged"]
                n_iter = info["n_iter"]
                strength = info["logit_adjustment"]
                cv_results = info.get("cv_results")
            else:
                head = build_head(
                    self.variant, initial_state(sample_weight), class_count,
                    max_norm=max_norm, device=device,
                )
                loss_curve, converged = train_head(
                    head,
                    X,
                    y_encoded,
                    sample_weight,
                    shift=shift,
                    scale=scale,
                    logit_offset=logit_offset(
                        self.loss, prior_offset_counts(train_counts, prior)
                    ),
                    solver=self.solver,
                    learning_rate_init=self.learning_rate_init,
                    batch_size=self.batch_size,
                    max_iter=self.max_iter,
                    tol=self.tol,
                    n_iter_no_change=self.n_iter_no_change,
                    device=device,
                    generator=torch_generator(random_state),
                    verbose=self.verbose,
                    prior=prior,
                )
                state = head_state(head)
                n_iter = len(loss_curve)
                strength = 1.0 if self.loss == "logit_adjusted" else 0.0
                cv_results = None

            weights, bias = effective_weights(self.variant, state, class_count, max_norm)
            self.classes_ = classes
            # A copy: never the caller's class_counts array itself.
            self.class_count_ = np.array(class_count, dtype=np.float64)
            self.coef_ = weights / scale
            self.intercept_ = bias - self.coef_ @ shift
            self.max_norm_ = max_norm
            self.cv_results_ = cv_results
            self.logit_adjustment_ = strength
            self.n_iter_ = n_iter
            self.loss_curve_ = loss_curve
            self.device_ = str(device)
            self._head_state = state
            self._head_variant = self.variant
            if converged is False:
                unit = "L-BFGS iterations" if self.solver == "lbfgs" else "passes"
                warnings.warn(
                    f"SAMNClassifier stopped after max_iter={self.max_iter} {unit} "
                    f"before meeting tol={self.tol}. Increase max_iter for a "
                    "converged fit.",
                    ConvergenceWarning,
                    stacklevel=2,
                )
            return self
        except BaseException:
            for name in _INPUT_ATTRIBUTES:
                vars(self).pop(name, None)
            vars(self).update(previous)
            raise

    def _resolved_max_norm(self):
        """The cap to train with: a float, ``None`` (no cap) or ``"cv"``."""
        if self.max_norm != "auto":
            if self.variant == "paper" and self.max_norm is not None:
                raise ValueError(
                    "max_norm caps the norms of variant='invariant'; the "
                    "published parametrisation has no cap. Use max_norm=None "
                    "or 'auto' with variant='paper'."
                )
            return self.max_norm
        if self.solver == "lbfgs" and self.variant == "invariant":
            return "cv"
        return None

    def _map_scores(self, X, transform):
        """Apply ``transform`` to ``X @ coef_.T + intercept_``, chunk by chunk."""
        check_is_fitted(self)
        sliceable = is_sliceable_array(X)
        if sliceable:
            X = check_sliceable_array(X, self, reset=False)
        else:
            X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        out = None
        for rows in _chunks(X.shape[0], max(X.shape[1], len(self.classes_))):
            block = np.asarray(X[rows], dtype=np.float64)
            if sliceable:
                finite_block(block)
            scores = block @ self.coef_.T
            result = transform(scores + self.intercept_)
            if out is None:
                out = np.empty((X.shape[0],) + result.shape[1:], dtype=result.dtype)
            out[rows] = result
        return out

    def decision_function(self, X):
        """Class scores ``X @ coef_.T + intercept_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            For two classes, the score of ``classes_[1]`` minus that of
            ``classes_[0]``, as in scikit-learn's binary classifiers.
        """
        check_is_fitted(self)
        if len(self.classes_) == 2:
            return self._map_scores(X, lambda s: s[:, 1] - s[:, 0])
        return self._map_scores(X, lambda s: s)

    def predict_proba(self, X):
        """Class probabilities, the softmax of the class scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        return self._map_scores(X, lambda s: softmax(s, axis=1))

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, computed stably.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        return self._map_scores(X, lambda s: log_softmax(s, axis=1))

    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        indices = self._map_scores(X, lambda s: np.argmax(s, axis=1))
        return self.classes_[indices]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.classifier_tags.multi_label = False
        return tags


# Set by the input validation at the start of fit (see fit).
_INPUT_ATTRIBUTES = ("n_features_in_", "feature_names_in_")


def _check_sample_weight(sample_weight, n_samples):
    if sample_weight is None:
        return np.ones(n_samples, dtype=np.float64)
    if isinstance(sample_weight, Real):
        # One weight for every sample, as scikit-learn's estimators take it.
        sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
    sample_weight = np.asarray(sample_weight, dtype=np.float64)
    if sample_weight.ndim != 1 or sample_weight.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), one weight per "
            f"sample; got shape {sample_weight.shape}."
        )
    if not np.all(np.isfinite(sample_weight)):
        raise ValueError("sample_weight contains NaN or infinity.")
    if np.any(sample_weight < 0):
        raise ValueError("Negative values in sample_weight are not allowed.")
    if not np.any(sample_weight > 0):
        raise ValueError("sample_weight is zero for every sample; nothing to fit.")
    return sample_weight


def _check_class_counts(class_counts, classes, train_counts):
    if class_counts is None:
        return _tie_rounding_noise(train_counts.astype(np.float64))
    # A dict may count labels that y lacks: the training part of a
    # cross-validation fold may lack a rare class.
    return class_counts_array(class_counts, classes.tolist(), allow_extra=True)


def _tie_rounding_noise(counts, rtol=1e-9):
    """Weighted counts that differ by summation rounding only, made equal.

    ``compute_sample_weight("balanced", y)`` gives every class the same
    weighted count up to about 1e-13: left as they are, those last bits
    would order the classes and the monotone constraint would follow them.
    Counts within ``rtol`` of their neighbour in sorted order become their
    group's mean (integer counts, the unweighted case, never change).
    """
    order = np.argsort(counts, kind="stable")
    ranked = counts[order]
    gaps = np.diff(ranked) > rtol * max(ranked[-1], np.finfo(np.float64).tiny)
    group = np.concatenate([[0], np.cumsum(gaps)])
    tied = np.empty_like(counts)
    tied[order] = (np.bincount(group, weights=ranked) / np.bincount(group))[group]
    return tied


def _check_init(coef_init, intercept_init, n_classes, n_features):
    """Validate a warm-start head; return ``(coef, intercept)`` or ``None``."""
    if coef_init is None and intercept_init is None:
        return None
    if coef_init is None:
        raise ValueError("intercept_init needs coef_init as well.")
    coef = np.array(coef_init, dtype=np.float64)
    binary = n_classes == 2 and coef.shape == (1, n_features)
    if coef.shape != (n_classes, n_features) and not binary:
        raise ValueError(
            f"coef_init must have shape ({n_classes}, {n_features}) "
            f"(n_classes, n_features); got {coef.shape}."
        )
    if intercept_init is None:
        intercept = np.zeros(coef.shape[0])
    else:
        intercept = np.array(intercept_init, dtype=np.float64)
        if intercept.shape != (coef.shape[0],):
            raise ValueError(
                f"intercept_init must have shape ({coef.shape[0]},); got "
                f"{intercept.shape}."
            )
    for name, value in (("coef_init", coef), ("intercept_init", intercept)):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} contains NaN or infinity.")
    if binary:
        # scikit-learn's binary form scores classes_[1] minus classes_[0].
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return coef, intercept


def _check_float32_range(X):
    """Refuse finite values of ``X`` that float32, in which training computes,
    cannot hold; read block by block, without a copy of ``X``."""
    if np.dtype(X.dtype).itemsize <= 4 or np.dtype(X.dtype).kind not in "fc":
        return  # float16/32 and all integers fit in float32's range
    limit = float(np.finfo(np.float32).max)
    for rows in _chunks(X.shape[0], X.shape[1]):
        block = np.asarray(X[rows])
        largest = max(abs(float(block.max())), abs(float(block.min())))
        if largest > limit:
            raise ValueError(
                f"X holds values up to {largest:.3g} in absolute value, beyond the "
                f"range of float32 (about {limit:.2g}), in which training computes. "
                "Rescale X, for example divide it by its largest absolute value; "
                "with variant='invariant' (the default) the fit does not depend on "
                "the scale of X."
            )


def _check_float32_precision(shift, scale):
    """Refuse an ``X`` whose spread float32 cannot resolve, and warn when its
    mean is so far from zero, against its spread, that reading it in float32
    loses more than half the digits of the centred values.

    ``shift`` and ``scale`` are the weighted mean row of ``X`` and the
    root-mean-square distance of its rows from it (float64, from all of
    ``X``). Training reads blocks of ``X`` in float32, as they are, and
    scores them with the centring folded into the head
    (``_training.fold_standardisation``): a row's scores carry the float32
    rounding of its raw values, as its centred values would.
    """
    eps, tiny = np.finfo(np.float32).eps, np.finfo(np.float32).tiny
    if scale < tiny / eps:
        raise ValueError(
            f"X's rows lie within {scale:.3g} of their mean, too small a spread for "
            "float32, in which training computes. Multiply X by a constant; with "
            "variant='invariant' (the default) the fit does not depend on the scale "
            "of X."
        )
    offset = float(np.max(np.abs(shift))) / scale
    if offset > 1 / np.sqrt(eps):
        warnings.warn(
            f"X's mean is {offset:.3g} times the spread of its rows from it; training "
            "reads X in float32, which keeps about "
            f"{max(0.0, np.log10(1 / (eps * offset))):.1f} significant digits of the "
            "centred values. Centre X first (for example with StandardScaler).",
            UserWarning, stacklevel=4,
        )


def _chunks(n_rows, width, *, share=None):
    """Slices of rows holding about ``_CHUNK_BYTES`` of float64 ``width``-wide
    temporaries; with ``share``, also at most ``n_rows / share`` rows."""
    size = _CHUNK_BYTES // (8 * width)
    if share is not None:
        size = min(size, n_rows // share)
    size = max(64, size)
    for start in range(0, n_rows, size):
        yield slice(start, min(start + size, n_rows))


def _weighted_centre_and_scale(X, sample_weight):
    """Weighted mean row and root-mean-square norm of the centred rows.

    Accumulated in float64 chunk by chunk, without a float64 copy of ``X``.
    """
    total = sample_weight.sum()
    mean = np.zeros(X.shape[1])
    for rows in _chunks(X.shape[0], X.shape[1], share=_STATISTICS_SHARE):
        mean += sample_weight[rows] @ np.asarray(X[rows], dtype=np.float64)
    mean /= total
    sq = 0.0
    for rows in _chunks(X.shape[0], X.shape[1], share=_STATISTICS_SHARE):
        centred = np.asarray(X[rows], dtype=np.float64) - mean
        sq += sample_weight[rows] @ np.einsum("ij,ij->i", centred, centred)
    scale = float(np.sqrt(sq / total))
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return mean, scale


def _class_means(X, y, sample_weight, n_classes, shift, scale, prior=None):
    """Weighted class means of ``(X - shift) / scale``, with the pseudo-rows of
    ``prior`` (``(embeddings, weight)``, one row per class) among the rows."""
    sums = np.zeros((n_classes, X.shape[1]))
    for rows in _chunks(X.shape[0], X.shape[1], share=_STATISTICS_SHARE):
        chunk = (np.asarray(X[rows], dtype=np.float64) - shift) / scale
        # Weighted one-hot rows times the block: the per-class sums in one product.
        members = np.arange(chunk.shape[0])
        one_hot = csr_matrix(
            (sample_weight[rows], (y[rows], members)),
            shape=(n_classes, chunk.shape[0]),
        )
        sums += one_hot @ chunk
    weights = np.bincount(y, weights=sample_weight, minlength=n_classes)
    if prior is not None:
        embeddings, weight = prior
        sums += weight * (embeddings - shift) / scale
        weights = weights + weight
    return sums / np.maximum(weights, np.finfo(np.float64).tiny)[:, None]


def _zero_rows(directions):
    """Rows of (near) zero norm: no direction to train from."""
    norms = np.linalg.norm(directions, axis=1)
    return norms <= 1e-12 * max(norms.max(), 1e-300)


def _usable_directions(directions, class_means, random_state):
    """Replace rows of (near) zero norm by the class means, else at random.

    ``class_means`` is ``None`` or a callable returning the class means in the
    head's space, called only when some row needs it (it costs a pass over
    ``X``). A class whose row is zero would otherwise keep a zero weight: its
    direction gets no gradient and its log-norm starts at minus infinity.
    Rows whose class mean is zero too get a random direction.
    """
    directions = np.array(directions, dtype=np.float64)
    bad = _zero_rows(directions)
    if np.any(bad) and class_means is not None:
        means = class_means()
        directions[bad] = means[bad]
        bad &= _zero_rows(means)
    if np.any(bad):
        directions[bad] = random_state.standard_normal((bad.sum(), directions.shape[1]))
    return directions


def _initial_state(
    variant, init, X, y, sample_weight, n_classes, shift, scale, class_count,
    random_state, initial_norm=None, prior=None,
):
    """Initial head parameters, float64 NumPy, in the head's input space.

    Rows of ``coef_init`` that are zero start from the class mean's direction
    with the median norm of the other rows (the default norm if all are zero),
    so an all-zero ``coef_init`` starts where a fit without it does.
    """
    if init is not None:
        coef, intercept = init
        # Express the given raw-space head in the head's (standardised) space.
        directions = coef * scale
        bias = intercept + coef @ shift
        zero = _zero_rows(directions)
        directions = _usable_directions(
            directions,
            lambda: _class_means(X, y, sample_weight, n_classes, shift, scale, prior),
            random_state,
        )
    else:
        directions = _class_means(X, y, sample_weight, n_classes, shift, scale, prior)
        bias = np.zeros(n_classes)
        directions = _usable_directions(directions, None, random_state)

    if variant == "invariant":
        if init is not None and not zero.all():
            norms = np.linalg.norm(coef * scale, axis=1)
            floor = max(norms.max(), 1.0) * 1e-8
            log_norms = np.log(np.maximum(norms, floor))
            log_norms[zero] = np.median(log_norms[~zero])
        else:
            log_norms = np.full(n_classes, np.log(initial_norm or _INITIAL_NORM))
        # Unit directions: Adam's steps then move directions and log-norms on
        # the same scale whatever the norms of the class means.
        directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
        return {"directions": directions, "log_norms": log_norms, "bias": bias}

    span = class_count.max() - class_count.min()
    scaled = (class_count - class_count.min()) / span if span > 0 else np.zeros(n_classes)
    return {
        "directions": directions,
        "norm_scalars": scaled.copy(),
        "bias": bias,
        "bias_scalars": scaled.copy(),
    }
