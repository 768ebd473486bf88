import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from sklearn_samn import SAMNClassifier, _threads

# Scripts run in subprocesses (examples, benchmarks) import the package of this
# checkout, not whichever copy is installed (an editable install of another
# worktree, say).
_ROOT = str(Path(__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_ROOT, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
)


def make_long_tailed_blobs(
    counts=(60, 30, 15, 8, 4), n_features=8, separation=3.0, seed=0
):
    """Gaussian blobs, one per class, with the given (long-tailed) counts."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=separation, size=(len(counts), n_features))
    X = np.vstack(
        [c + rng.normal(size=(n, n_features)) for c, n in zip(centres, counts)]
    )
    y = np.repeat(np.arange(len(counts)), counts)
    return X, y


@pytest.fixture
def long_tailed():
    return make_long_tailed_blobs()


@pytest.fixture
def fast_clf():
    """A CPU classifier small enough for many fits per test."""

    def make(**params):
        params = {"device": "cpu", "random_state": 0, "max_iter": 30, **params}
        return SAMNClassifier(**params)

    return make


@pytest.fixture(autouse=True)
def _quiet_convergence():
    # Short fits are the point of most tests; convergence is tested on its own.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(autouse=True)
def _every_core_free(request, monkeypatch):
    """The free-core probe answers "every core" in this process's tests.

    A large fit uses as many torch threads as the probe finds cores free of
    other processes, and with the thread count the way BLAS splits a long
    sum, so the last bits of ``coef_`` (``SAMNClassifier``'s ``random_state``
    docstring). Tests that compare two fits bit for bit would fail whenever
    another process (a second pytest worker, say) loads the machine between
    them. The probe itself is tested in tests/test_threads.py, which is
    marked ``real_thread_probe``.
    """
    if request.node.get_closest_marker("real_thread_probe") is None:
        monkeypatch.setattr(_threads, "free_cores",
                            lambda seconds=None: len(_threads._allowed_cpus()))


_BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class _NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "torch":
                raise ImportError("No module named 'torch' (blocked by the test)")

    sys.meta_path.insert(0, _NoTorch())
    """
)


def run_without_torch(code):
    """Run ``code`` in a fresh interpreter where ``import torch`` fails."""
    return subprocess.run(
        [sys.executable, "-c", _BLOCK_TORCH + textwrap.dedent(code)],
        capture_output=True, text=True, timeout=300,
    )
