"""Saving and loading fitted SAMNClassifiers without pickle.

A model file is a NumPy ``.npz`` archive holding the fitted arrays and one JSON
document (parameters, fitted scalars, format version, and a SHA-256 digest of
the whole content: the other metadata and every array). It is read with
``allow_pickle=False``, so loading a file received from someone else cannot
run code.

The digest detects accidental damage (a truncated download, flipped bits, a
hand edit of a number): anything that changes the content without recomputing
the digest. It carries no key, so it is no signature: whoever edits a file on
purpose can recompute it. Trust a model file as much as its source.
"""

import hashlib
import json
import os
import zipfile
from numbers import Integral, Real

import numpy as np

from ._prior import in_feature_order
from ._samn import SAMNClassifier
from ._validation import by_label

__all__ = ["save", "load"]

FORMAT = "sklearn-samn-model"
# Version 3 adds the class_embeddings parameter (stored as an array).
FORMAT_VERSION = 3
# Version 1 files hold a digest of the arrays only; they still load.
_ARRAYS_ONLY_DIGEST_VERSION = 1

_ARRAYS = ("classes_", "coef_", "intercept_", "class_count_", "loss_curve_")
# The cap and the cross-validation path are optional entries (the metadata's
# "max_norm_", arrays "cv_results.<key>"): files written before they were
# saved load without those attributes. So is "logit_adjustment_"; files
# written before it was chosen load with the strength their heads were fitted
# at (1, or 0 for plain cross-entropy).
_CV_RESULTS = "cv_results."


def _json_scalar(value, what):
    """A label or count as a JSON value, or a clear error."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"Cannot save {what} {value!r} of type {type(value).__name__}.")


def _plain_array(array, what):
    """``array`` as a non-object NumPy array that needs no pickle."""
    array = np.asarray(array)
    if array.dtype == object:
        values = array.tolist()
        if all(isinstance(v, str) for v in values):
            return np.array(values, dtype=str)
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            return np.array(values, dtype=np.int64)
        raise TypeError(
            f"Cannot save {what} of mixed or non-basic types without pickle; "
            "use joblib/pickle for this model."
        )
    return array


def _digest(meta, arrays):
    """SHA-256 of the metadata (all but its digest) and the arrays.

    The metadata enter as canonical JSON (sorted keys, no spaces), so that a
    file's digest does not depend on how its JSON was laid out. ``meta=None``
    gives the arrays-only digest of format version 1.
    """
    sha = hashlib.sha256()
    if meta is not None:
        content = {key: value for key, value in meta.items() if key != "sha256"}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        sha.update(canonical.encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        sha.update(name.encode())
        sha.update(str(array.dtype).encode())
        sha.update(str(array.shape).encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def save(estimator, path):
    """Save a fitted :class:`SAMNClassifier` to ``path`` without pickle.

    Parameters
    ----------
    estimator : SAMNClassifier
        A fitted estimator.
    path : str or path-like
        Destination file; written as it is named (``numpy.savez`` would add
        ``.npz`` to a name without it, this does not).

    Returns
    -------
    None

    Raises
    ------
    TypeError
        If ``estimator`` is not a SAMNClassifier, or holds labels or
        parameters that need pickle (mixed-type labels, a ``RandomState``
        instance as ``random_state``).

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import tempfile, os
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_samn import SAMNClassifier, save, load
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SAMNClassifier(device="cpu", random_state=0).fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "iris.samn")
    >>> save(clf, path)
    >>> bool(np.array_equal(load(path).predict_proba(X), clf.predict_proba(X)))
    True
    """
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(estimator, SAMNClassifier):
        raise TypeError(
            f"save() stores SAMNClassifier models; got {type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    params = estimator.get_params()
    if params["random_state"] is not None and not isinstance(
        params["random_state"], Integral
    ):
        raise TypeError(
            "Cannot save random_state given as a RandomState instance without "
            "pickle; set random_state to an int or None first."
        )
    # A pandas Series or DataFrame is saved as the dict its index makes.
    counts = by_label(params.pop("class_counts"), "class_counts")
    if isinstance(counts, dict):
        counts = {"dict": [[_json_scalar(k, "class_counts label"),
                            _json_scalar(v, "class_counts count")]
                           for k, v in counts.items()]}
    elif counts is not None:
        counts = {"array": [_json_scalar(v, "class_counts count")
                            for v in np.asarray(counts).tolist()]}
    # A DataFrame's named columns were matched to X's feature names by the fit:
    # stored in that order, since the file keeps the vectors, not the names.
    embeddings = by_label(
        in_feature_order(params.pop("class_embeddings"),
                         getattr(estimator, "feature_names_in_", None)),
        "class_embeddings",
    )
    params = {k: _json_scalar(v, f"parameter {k}") if v is not None else None
              for k, v in params.items()}
    params["class_counts"] = counts

    arrays = {name: _plain_array(getattr(estimator, name), name) for name in _ARRAYS}
    # The prior's vectors go in the archive as one array; a dict's labels, in
    # the metadata.
    if isinstance(embeddings, dict):
        params["class_embeddings"] = {
            "dict": [_json_scalar(k, "class_embeddings label") for k in embeddings]
        }
        arrays["param.class_embeddings"] = _stacked(embeddings, estimator.n_features_in_)
    elif embeddings is not None:
        params["class_embeddings"] = {"array": True}
        arrays["param.class_embeddings"] = np.asarray(embeddings, dtype=np.float64)
    else:
        params["class_embeddings"] = None
    if hasattr(estimator, "feature_names_in_"):
        arrays["feature_names_in_"] = _plain_array(
            estimator.feature_names_in_, "feature_names_in_"
        )
    for key, value in estimator._head_state.items():
        arrays[f"head_state.{key}"] = np.asarray(value)
    cv_results = getattr(estimator, "cv_results_", None)
    for key, value in (cv_results or {}).items():
        arrays[_CV_RESULTS + key] = np.asarray(value)
    max_norm = getattr(estimator, "max_norm_", None)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "params": params,
        "n_features_in_": int(estimator.n_features_in_),
        "n_iter_": int(estimator.n_iter_),
        "device_": str(estimator.device_),
        "head_variant": estimator._head_variant,
        "max_norm_": None if max_norm is None else float(max_norm),
        "logit_adjustment_": float(estimator.logit_adjustment_),
        "cv_results_": cv_results is not None,
    }
    meta["sha256"] = _digest(meta, arrays)
    with open(path, "wb") as handle:
        np.savez(handle, __meta__=np.array(json.dumps(meta)), **arrays)


def _corrupt(path, why):
    return ValueError(f"{path} is not a valid sklearn-samn model file: {why}")


def _not_a_model(path, why):
    return ValueError(
        f"{path} is not a sklearn-samn model file ({why}); model files are "
        "written by sklearn_samn.save or 'python -m sklearn_samn fit'."
    )


def load(path):
    """Load a :class:`SAMNClassifier` saved by :func:`save`.

    Nothing in the file is unpickled or executed.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    estimator : SAMNClassifier
        The fitted estimator, ready to predict (torch is not needed).

    Raises
    ------
    ValueError
        If the file is not a model file, was truncated or altered (any
        change to its arrays or metadata that did not recompute the
        checksum), or was written by a newer format version. Files of format
        version 1 load too; their checksum covers the arrays only.

    See Also
    --------
    save : Write a model file.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn.datasets import load_wine
    >>> from sklearn_samn import SAMNClassifier, save, load
    >>> X, y = load_wine(return_X_y=True)
    >>> path = os.path.join(tempfile.mkdtemp(), "wine.samn")
    >>> save(SAMNClassifier(device="cpu", random_state=0).fit(X, y), path)
    >>> clf = load(path)
    >>> clf.classes_.tolist(), clf.coef_.shape
    ([0, 1, 2], (3, 13))
    """
    # np.load reads anything that is not a zip or .npy file as a pickle, and
    # its refusal then suggests allow_pickle: say what the file is not instead.
    if isinstance(path, (str, os.PathLike)) and os.path.isfile(path):
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if magic != b"PK\x03\x04":
            raise _not_a_model(path, "it is not an .npz archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise _corrupt(
                path, "it holds an object array, which only pickle can read"
            ) from None
        raise _corrupt(path, f"it cannot be read as an archive ({error})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as error:
        raise _corrupt(path, f"it cannot be read as an archive ({error})") from None
    if "__meta__" not in contents:
        raise _corrupt(path, "it holds no sklearn-samn metadata")
    try:
        meta = json.loads(str(contents.pop("__meta__")))
    except json.JSONDecodeError as error:
        raise _corrupt(path, f"its metadata is not JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _corrupt(path, "its metadata does not name the sklearn-samn format")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer sklearn-samn (format version "
            f"{meta['format_version']}); upgrade sklearn-samn to load it."
        )
    if meta.get("format_version") == _ARRAYS_ONLY_DIGEST_VERSION:
        covered, what = _digest(None, contents), "its arrays do"
    else:
        covered, what = _digest(meta, contents), "its metadata and arrays do"
    if covered != meta.get("sha256"):
        raise _corrupt(path, f"{what} not match their recorded checksum "
                             "(the file was altered or damaged)")
    try:
        return _rebuild(meta, contents)
    except (KeyError, TypeError, ValueError) as error:
        raise _corrupt(path, f"inconsistent contents ({error})") from None


def _stacked(embeddings, n_features):
    """A dict's vectors as one float64 array, or an error that names the label
    whose vector cannot be stored. ``fit`` ignores labels that are not classes,
    whatever their vectors; the file keeps them, so each must be a vector of
    ``n_features`` numbers."""
    vectors = []
    for label, vector in embeddings.items():
        try:
            vector = np.asarray(vector, dtype=np.float64)
        except (TypeError, ValueError):
            vector = None
        if vector is None or vector.shape != (n_features,):
            raise ValueError(
                f"class_embeddings[{label!r}] cannot be stored in a model file: "
                f"it is not a vector of {n_features} numbers, as the classes' are "
                "(fit ignores labels that are not classes, but the file keeps "
                "every vector as one array). Drop that label, or save with pickle "
                "or joblib."
            )
        vectors.append(vector)
    return np.stack(vectors)


def _rebuild(meta, arrays):
    params = dict(meta["params"])
    counts = params.pop("class_counts")
    if counts is not None:
        counts = (
            {k: v for k, v in counts["dict"]} if "dict" in counts else counts["array"]
        )
    embeddings = params.pop("class_embeddings", None)
    if embeddings is not None:
        vectors = arrays["param.class_embeddings"]
        embeddings = (
            dict(zip(embeddings["dict"], vectors)) if "dict" in embeddings else vectors
        )
    estimator = SAMNClassifier(class_counts=counts, class_embeddings=embeddings, **params)
    for name in _ARRAYS:
        setattr(estimator, name, arrays[name])
    estimator.loss_curve_ = [float(v) for v in estimator.loss_curve_]
    if "feature_names_in_" in arrays:
        estimator.feature_names_in_ = arrays["feature_names_in_"].astype(object)
    estimator.n_features_in_ = int(meta["n_features_in_"])
    estimator.n_iter_ = int(meta["n_iter_"])
    estimator.device_ = str(meta["device_"])
    estimator._head_variant = str(meta["head_variant"])
    if "max_norm_" in meta:
        estimator.max_norm_ = None if meta["max_norm_"] is None else float(meta["max_norm_"])
    # Files written before the strength was chosen hold heads fitted at 1.
    estimator.logit_adjustment_ = float(meta.get(
        "logit_adjustment_", 1.0 if estimator.loss == "logit_adjusted" else 0.0))
    if "cv_results_" in meta:
        estimator.cv_results_ = {
            name[len(_CV_RESULTS):]: value for name, value in arrays.items()
            if name.startswith(_CV_RESULTS)
        } if meta["cv_results_"] else None
    estimator._head_state = {
        name.split(".", 1)[1]: value
        for name, value in arrays.items()
        if name.startswith("head_state.")
    }
    n_classes = len(estimator.classes_)
    expected = {
        "coef_": (n_classes, estimator.n_features_in_),
        "intercept_": (n_classes,),
        "class_count_": (n_classes,),
    }
    for name, shape in expected.items():
        if getattr(estimator, name).shape != shape:
            raise ValueError(f"{name} has shape {getattr(estimator, name).shape}, "
                             f"expected {shape}")
    if not all(np.all(np.isfinite(getattr(estimator, n))) for n in ("coef_", "intercept_")):
        raise ValueError("coef_ or intercept_ is not finite")
    return estimator
