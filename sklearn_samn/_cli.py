"""Command line: ``python -m sklearn_samn {demo,fit,predict,evaluate}``."""

import argparse
import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from ._persistence import load, save
from ._samn import SAMNClassifier
from .metrics import shot_accuracy

_X_KEYS = ("X", "X_train", "X_test")
_Y_KEYS = ("y", "y_train", "y_test")


class CommandError(Exception):
    """A problem to report in one line, without a traceback."""


def _load_arrays(path, *, need_y):
    """``(X, y)`` from an ``.npz`` with arrays named X/y (or X_train/y_train, ...)."""
    if Path(path).is_file() and not zipfile.is_zipfile(path):
        raise CommandError(f"{path}: not a readable .npz file (not a zip archive).")
    try:
        with np.load(path, allow_pickle=False) as archive:
            files = set(archive.files)
            x_key = next((k for k in _X_KEYS if k in files), None)
            y_key = next((k for k in _Y_KEYS if k in files), None)
            if x_key is None:
                raise CommandError(
                    f"{path}: no features array; expected one named "
                    f"{' or '.join(_X_KEYS)} (found {sorted(files) or 'nothing'})."
                )
            if need_y and y_key is None:
                raise CommandError(
                    f"{path}: no labels array; expected one named {' or '.join(_Y_KEYS)}."
                )
            X = archive[x_key]
            y = archive[y_key] if y_key is not None else None
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file.") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CommandError(f"{path}: not a readable .npz file ({error}).") from None
    except ValueError as error:
        raise CommandError(f"{path}: cannot read it without pickle ({error}).") from None
    if X.ndim != 2:
        raise CommandError(f"{path}: features must be 2-D (samples x features); got shape {X.shape}.")
    if y is not None and y.shape != (X.shape[0],):
        raise CommandError(
            f"{path}: {X.shape[0]} rows of features but labels of shape {y.shape}."
        )
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
    if text == "thirds":
        return "thirds"
    try:
        many, few = (float(v) for v in text.split(","))
    except ValueError:
        raise CommandError(
            f"--thresholds takes 'thirds' or MANY,FEW (e.g. 100,20); got {text!r}."
        ) from None
    return (many, few)


def _cmd_fit(args):
    X, y = _load_arrays(args.train, need_y=True)
    params = _parse_params(args.set)
    try:
        clf = SAMNClassifier(**params).fit(X, y)
    except (ValueError, TypeError) as error:
        raise CommandError(f"fit failed: {error}") from None
    try:
        save(clf, args.out)
    except OSError as error:
        raise CommandError(f"cannot write {args.out}: {error}") from None
    print(
        f"fitted SAMNClassifier on {X.shape[0]} samples x {X.shape[1]} features, "
        f"{len(clf.classes_)} classes, {clf.n_iter_} passes on {clf.device_}; "
        f"saved to {args.out}"
    )


def _cmd_predict(args):
    model = _load_model(args.model)
    X, _ = _load_arrays(args.data, need_y=False)
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
    model = _load_model(args.model)
    X, y = _load_arrays(args.data, need_y=True)
    _check_features(model, X, args.data)
    try:
        scores = shot_accuracy(
            y, model.predict(X), class_counts=model.class_count_,
            labels=model.classes_, thresholds=_thresholds(args.thresholds),
        )
    except ValueError as error:
        raise CommandError(f"{args.data}: {error}") from None
    print(f"{'metric':<12}{'accuracy':>10}")
    for name, value in scores.items():
        print(f"{name:<12}{value:>10.4f}")


def _cmd_demo(args):
    from ._demo import run_demo

    run_demo(picture=args.picture, out=sys.stdout)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_samn",
        description="Long-tailed classifier heads with monotone weight norms (SAMN).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="fit on bundled long-tailed digits; print a table, draw a picture")
    demo.add_argument("--picture", default="samn_demo.png",
                      help="where to write the picture (default: samn_demo.png; '' for none)")
    demo.set_defaults(func=_cmd_demo)

    fit = sub.add_parser("fit", help="fit a head on TRAIN.npz (arrays X and y) and save it")
    fit.add_argument("train", help=".npz with X (n_samples x n_features) and y")
    fit.add_argument("--out", required=True, help="model file to write (no pickle)")
    fit.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="a SAMNClassifier parameter, e.g. --set max_iter=200 (repeatable)")
    fit.set_defaults(func=_cmd_fit)

    predict = sub.add_parser("predict", help="predict labels for X.npz")
    predict.add_argument("model", help="model file written by 'fit' or sklearn_samn.save")
    predict.add_argument("data", help=".npz with X")
    predict.add_argument("--out", help="write a .npy instead of printing one label per line")
    predict.add_argument("--proba", action="store_true",
                         help="with --out: write class probabilities (columns in classes_ order)")
    predict.set_defaults(func=_cmd_predict)

    evaluate = sub.add_parser("evaluate", help="balanced and many/medium/few accuracy on TEST.npz")
    evaluate.add_argument("model", help="model file")
    evaluate.add_argument("data", help=".npz with X and y")
    evaluate.add_argument("--thresholds", default="100,20",
                          help="MANY,FEW training-count thresholds or 'thirds' (default 100,20)")
    evaluate.set_defaults(func=_cmd_evaluate)
    return parser


def main(argv=None):
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        args.func(args)
    except CommandError as error:
        print(f"sklearn_samn {args.command}: error: {error}", file=sys.stderr)
        return 1
    if args.command == "demo":
        print(f"demo done in {time.perf_counter() - start:.1f} s")
    return 0
