"""Command line: ``python -m sklearn_samn {demo,fit,predict,evaluate}``."""

import argparse
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from ._persistence import load, save
from ._samn import SAMNClassifier
from .metrics import _with_unseen, shot_accuracy

# Which arrays of an .npz each command reads: "fit" the training pair,
# "predict" and "evaluate" the test pair; X always pairs with y, X_train with
# y_train, X_test with y_test.
_ROLE_KEYS = {"train": ("X", "X_train"), "test": ("X", "X_test")}
_OTHER_ROLE = {"train": "test", "test": "train"}


class CommandError(Exception):
    """A problem to report in one line, without a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _pair(key):
    """The other half of a pair: X_train <-> y_train, X <-> y."""
    head, sep, suffix = key.partition("_")
    other = {"X": "y", "y": "X"}.get(head)
    return None if other is None else other + sep + suffix


def _found(files):
    return ", ".join(sorted(files)) or "nothing"


def _choose_keys(path, files, *, role, need_y, x_key, y_key):
    """The names of the features and labels arrays to read, or a clear error."""
    hint = "name the arrays with --x-key" + (" and --y-key" if need_y else "")
    for option, key in (("--x-key", x_key), ("--y-key", y_key)):
        if key is not None and key not in files:
            raise CommandError(
                f"{path}: no array named {key!r} ({option}); found {_found(files)}."
            )
    if x_key is None:
        x_key = _role_features(path, files, role, with_y=need_y and y_key is None,
                               hint=hint)
    if not need_y or y_key is not None:
        return x_key, y_key
    y_key = _pair(x_key)
    if y_key is None:
        raise CommandError(
            f"{path}: no labels array known to go with {x_key} (only X... pairs with "
            f"y...); name it with --y-key (found {_found(files)})."
        )
    if y_key not in files:
        strays = sorted(k for k in files if k == "y" or k.startswith("y_"))
        if strays:
            raise CommandError(
                f"{path}: mismatched pair: {x_key} with {' / '.join(strays)}; "
                f"{x_key} goes with {y_key}; {hint} to pair them anyway."
            )
        raise CommandError(
            f"{path}: no labels array; expected one named {y_key} to go with "
            f"{x_key} (found {_found(files)})."
        )
    return x_key, y_key


def _role_features(path, files, role, *, with_y, hint):
    """The features array of ``role``: the plain name or the role's suffixed one."""
    plain, suffixed = _ROLE_KEYS[role]
    plain_names, suffixed_names = [plain], [suffixed]
    if with_y:
        plain_names.append(_pair(plain))
        suffixed_names.append(_pair(suffixed))
    found_plain = [k for k in plain_names if k in files]
    found_suffixed = [k for k in suffixed_names if k in files]
    # Ambiguous when both features arrays are there, or a whole pair and part of
    # the other; X with y_train alone is a mismatched pair (_choose_keys says so).
    if found_plain and found_suffixed and (
        (plain in files and suffixed in files)
        or len(found_plain) == len(plain_names)
        or len(found_suffixed) == len(suffixed_names)
    ):
        raise CommandError(
            f"{path}: ambiguous: holds both {'/'.join(found_plain)} and "
            f"{'/'.join(found_suffixed)}; "
            f"{hint} (e.g. --x-key {suffixed})."
        )
    if plain in files:
        return plain
    if suffixed in files:
        return suffixed
    other = _ROLE_KEYS[_OTHER_ROLE[role]][1]
    if other in files:
        raise CommandError(
            f"{path}: holds {other} but no {role} features; this command reads "
            f"{plain} or {suffixed}; {hint} to use {other}."
        )
    raise CommandError(
        f"{path}: no features array; expected one named {plain} or {suffixed} "
        f"(found {_found(files)})."
    )


def _load_arrays(path, *, role, need_y, x_key=None, y_key=None):
    """``(X, y)`` from an ``.npz``: the ``role`` ("train" or "test") pair.

    ``fit`` reads X/y or X_train/y_train, ``predict`` and ``evaluate`` read
    X/y or X_test/y_test; ``x_key``/``y_key`` (the ``--x-key``/``--y-key``
    options) name other arrays.
    """
    if Path(path).is_file() and not zipfile.is_zipfile(path):
        raise CommandError(f"{path}: not a readable .npz file (not a zip archive).")
    try:
        with np.load(path, allow_pickle=False) as archive:
            x_key, y_key = _choose_keys(
                path, set(archive.files), role=role, need_y=need_y,
                x_key=x_key, y_key=y_key,
            )
            X = archive[x_key]
            y = archive[y_key] if need_y else None
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file.") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CommandError(f"{path}: not a readable .npz file ({error}).") from None
    except ValueError as error:
        raise CommandError(f"{path}: cannot read it without pickle ({error}).") from None
    if X.ndim != 2:
        raise CommandError(
            f"{path}: {x_key} must be 2-D (samples x features); got shape {X.shape}."
        )
    if y is not None and y.shape != (X.shape[0],):
        raise CommandError(
            f"{path}: {X.shape[0]} rows of features ({x_key}) but labels ({y_key}) "
            f"of shape {y.shape}."
        )
    if X.dtype.kind in "fc" and not np.all(np.isfinite(X)):
        row = int(np.flatnonzero(~np.all(np.isfinite(X), axis=1))[0])
        kind = "NaN" if np.isnan(X[row]).any() else "infinity"
        raise CommandError(f"{path}: {x_key} contains {kind} (first in row {row}).")
    return X, y


def _load_model(path):
    try:
        return load(path)
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file.") from None
    except ValueError as error:
        raise CommandError(str(error)) from None


def _check_features(model, X, path):
    if X.shape[1] != model.n_features_in_:
        raise CommandError(
            f"{path}: {X.shape[1]} features, but the model was fitted on "
            f"{model.n_features_in_}."
        )


def _parse_params(pairs):
    """``["max_iter=50", "device=cpu"]`` -> dict, values parsed as JSON when they can be."""
    params = {}
    valid = SAMNClassifier().get_params()
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CommandError(f"--set takes key=value; got {pair!r}.")
        if key not in valid:
            raise CommandError(
                f"--set {key}: SAMNClassifier has no parameter {key!r}; "
                f"parameters: {', '.join(sorted(valid))}."
            )
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _thresholds(text):
    """``--thresholds``: "thirds" or MANY,FEW with FEW <= MANY."""
    if text == "thirds":
        return "thirds"
    usage = f"--thresholds takes 'thirds' or MANY,FEW (e.g. 100,20); got {text!r}"
    try:
        many, few = (float(v) for v in text.split(","))
    except ValueError:
        raise CommandError(f"{usage}.") from None
    if not (np.isfinite(many) and np.isfinite(few)):
        raise CommandError(f"{usage}: both must be finite numbers.")
    if few > many:
        raise CommandError(
            f"{usage}: FEW must not exceed MANY (the many-shot threshold comes first)."
        )
    return (many, few)


def _cmd_fit(args):
    X, y = _load_arrays(args.train, role="train", need_y=True,
                        x_key=args.x_key, y_key=args.y_key)
    params = _parse_params(args.set)
    # JSON keys are strings: a dict of counts or embeddings names the labels as
    # they print ("3" for the label 3).
    by_text = {str(label): label for label in np.unique(y).tolist()}
    for key in ("class_counts", "class_embeddings"):
        if isinstance(params.get(key), dict):
            params[key] = {by_text.get(k, k): v for k, v in params[key].items()}
    try:
        clf = SAMNClassifier(**params).fit(X, y)
    except (ValueError, TypeError, FloatingPointError, ImportError) as error:
        raise CommandError(f"fit failed: {error}") from None
    try:
        save(clf, args.out)
    except OSError as error:
        raise CommandError(f"cannot write {args.out}: {error}") from None
    print(
        f"fitted SAMNClassifier on {X.shape[0]} samples x {X.shape[1]} features, "
        f"{len(clf.classes_)} classes, {clf.n_iter_} "
        f"{'L-BFGS iterations' if clf.solver == 'lbfgs' else 'passes'} on {clf.device_}; "
        f"saved to {args.out}"
    )


def _cmd_predict(args):
    if args.proba and not args.out:
        raise CommandError("--proba writes class probabilities to a .npy file; "
                           "give the file with --out FILE.")
    model = _load_model(args.model)
    X, _ = _load_arrays(args.data, role="test", need_y=False, x_key=args.x_key)
    _check_features(model, X, args.data)
    try:
        pred = model.predict(X)
    except ValueError as error:
        raise CommandError(f"{args.data}: {error}") from None
    if args.out:
        result = model.predict_proba(X) if args.proba else pred
        try:
            with open(args.out, "wb") as handle:
                np.save(handle, result)
        except OSError as error:
            raise CommandError(f"cannot write {args.out}: {error}") from None
        print(f"wrote {'probabilities' if args.proba else 'predictions'} of "
              f"{X.shape[0]} samples to {args.out}")
    else:
        for label in pred:
            print(label)


def _cmd_evaluate(args):
    thresholds = _thresholds(args.thresholds)
    model = _load_model(args.model)
    X, y = _load_arrays(args.data, role="test", need_y=True,
                        x_key=args.x_key, y_key=args.y_key)
    _check_features(model, X, args.data)
    try:
        # Test classes the model never saw count, as misses, with a training count of 0.
        labels, counts = _with_unseen(model.classes_, model.class_count_, y)
        scores = shot_accuracy(
            y, model.predict(X), class_counts=counts, labels=labels, thresholds=thresholds,
        )
    except ValueError as error:
        raise CommandError(f"{args.data}: {error}") from None
    print(f"{'metric':<12}{'accuracy':>10}")
    for name, value in scores.items():
        print(f"{name:<12}{value:>10.4f}")


def _cmd_demo(args):
    from ._demo import run_demo

    # Before the fits, not after them: a picture that cannot be written.
    folder = os.path.dirname(os.path.abspath(args.picture)) if args.picture else None
    if folder is not None and not os.path.isdir(folder):
        raise CommandError(f"cannot write the picture {args.picture}: no folder {folder}")
    suffix = os.path.splitext(args.picture)[1][1:].lower() if args.picture else ""
    formats = _picture_formats()
    if suffix and formats is not None and suffix not in formats:
        raise CommandError(
            f"cannot write the picture {args.picture}: matplotlib writes "
            f"{', '.join(sorted(formats))}, not {suffix!r}"
        )
    try:
        run_demo(picture=args.picture, out=sys.stdout)
    except OSError as error:
        raise CommandError(f"cannot write the picture {args.picture}: {error}") from None


def _picture_formats():
    """The file formats matplotlib can write, or None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        return None
    return set(FigureCanvasAgg.get_supported_filetypes())


def _add_key_options(parser, pair, *, y=True):
    parser.add_argument("--x-key", metavar="NAME",
                        help=f"name of the features array in the .npz (default: X or {pair[0]})")
    if y:
        parser.add_argument("--y-key", metavar="NAME",
                            help=f"name of the labels array (default: the one paired "
                                 f"with the features: y or {pair[1]})")


def build_parser():
    parser = _Parser(
        prog="python -m sklearn_samn",
        description="Long-tailed classifier heads with monotone weight norms (SAMN).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="fit on bundled long-tailed digits; print a table, draw a picture")
    demo.add_argument("--picture", default="samn_demo.png",
                      help="where to write the picture (default: samn_demo.png; '' for none)")
    demo.set_defaults(func=_cmd_demo)

    fit = sub.add_parser("fit", help="fit a head on TRAIN.npz (X/y or X_train/y_train) and save it")
    fit.add_argument("train", help=".npz with X (n_samples x n_features) and y, or X_train and y_train")
    fit.add_argument("--out", required=True, help="model file to write (no pickle)")
    fit.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="a SAMNClassifier parameter, e.g. --set max_iter=200 (repeatable)")
    _add_key_options(fit, ("X_train", "y_train"))
    fit.set_defaults(func=_cmd_fit)

    predict = sub.add_parser("predict", help="predict labels for X.npz (X or X_test)")
    predict.add_argument("model", help="model file written by 'fit' or sklearn_samn.save")
    predict.add_argument("data", help=".npz with X or X_test")
    predict.add_argument("--out", help="write a .npy instead of printing one label per line")
    predict.add_argument("--proba", action="store_true",
                         help="with --out: write class probabilities (columns in classes_ order)")
    _add_key_options(predict, ("X_test", "y_test"), y=False)
    predict.set_defaults(func=_cmd_predict)

    evaluate = sub.add_parser("evaluate", help="balanced and many/medium/few accuracy on TEST.npz")
    evaluate.add_argument("model", help="model file")
    evaluate.add_argument("data", help=".npz with X and y, or X_test and y_test")
    evaluate.add_argument("--thresholds", default="100,20",
                          help="MANY,FEW training-count thresholds or 'thirds' (default 100,20)")
    _add_key_options(evaluate, ("X_test", "y_test"))
    evaluate.set_defaults(func=_cmd_evaluate)
    return parser


def _one_line(text):
    return " ".join(str(text).split())


def main(argv=None):
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        args.func(args)
    except CommandError as error:
        print(f"sklearn_samn {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    if args.command == "demo":
        print(f"demo done in {time.perf_counter() - start:.1f} s")
    return 0
