"""Model selection with n_jobs > 1 and on dask: thread budgets and equal results.

joblib's default ``loky`` backend starts its worker processes with
``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ... set to ``cpu_count() // n_jobs``
(unless the parent process sets them), and torch takes its default thread
count from them, so ``n_jobs`` workers use ``n_jobs * (cpu_count() // n_jobs)``
threads at most. dask's nanny starts its workers with these variables set to 1.
The ``threading`` backend runs the fits in threads of one process, which
``sklearn_samn._threads`` accounts for.
"""

import os
import threading

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score

from sklearn_samn import SAMNClassifier

from .conftest import make_long_tailed_blobs

torch = pytest.importorskip("torch")

# The variables joblib sets for its loky workers (and, some of them, dask's
# nanny for its workers and for the process that runs the nanny).
_THREAD_VARS = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "NUMEXPR_NUM_THREADS",
)
PARAM_GRID = {"loss": ["logit_adjusted", "cross_entropy"], "learning_rate_init": [3e-3, 3e-2]}


def torch_threads(estimator, X, y):
    """A scorer that reports the torch CPU threads of the process that scores."""
    return torch.get_num_threads()


def process_id(estimator, X, y):
    """A scorer that reports the id of the process that scores."""
    return os.getpid()


def per_worker_cap(n_jobs):
    return max(1, (os.cpu_count() or 1) // n_jobs)


def _clf():
    return SAMNClassifier(device="cpu", max_iter=20, random_state=0)


def _data():
    return make_long_tailed_blobs(counts=(80, 40, 20, 10))


def _search():
    return GridSearchCV(_clf(), PARAM_GRID, cv=2, scoring="balanced_accuracy")


def _torch_threads_in_new_thread():
    out = []
    worker = threading.Thread(target=lambda: out.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    return out[0]


@pytest.fixture
def joblib_default_thread_env(monkeypatch):
    """Leave the workers' thread variables to joblib, as in a fresh shell."""
    for var in _THREAD_VARS:
        monkeypatch.delenv(var, raising=False)


def _with_torch_threads(n):
    # torch.set_num_threads also sets the default of threads started later.
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def two_torch_threads():
    """A default of 2 torch threads, so that a leak to 1 shows whatever the machine."""
    yield from _with_torch_threads(2)


@pytest.fixture
def four_torch_threads():
    yield from _with_torch_threads(4)


@pytest.fixture
def idle_machine(monkeypatch):
    """Other processes leave every core free: the split among fits alone.

    (How other processes' load limits the threads: tests/test_threads.py.)
    """
    monkeypatch.setattr("sklearn_samn._threads.free_cores", lambda: 64)


@pytest.fixture
def restore_environ():
    # dask's nanny sets OMP_NUM_THREADS=1 and others in the process that runs
    # it, i.e. here for a LocalCluster; put the environment back afterwards.
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_loky_workers_get_their_share_of_the_cores(joblib_default_thread_env):
    X, y = _data()
    with joblib.parallel_config(backend="loky"):
        threads = cross_val_score(_clf(), X, y, cv=2, n_jobs=2, scoring=torch_threads)
        pids = cross_val_score(_clf(), X, y, cv=2, n_jobs=2, scoring=process_id)
    assert os.getpid() not in pids  # the fits ran in worker processes
    assert np.all(threads >= 1)
    assert np.all(threads <= per_worker_cap(2)), threads


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_grid_search_n_jobs_2_equals_n_jobs_1(backend):
    X, y = _data()
    serial = _search().fit(X, y)
    with joblib.parallel_config(backend=backend):
        parallel = _search().set_params(n_jobs=2).fit(X, y)
    assert parallel.best_params_ == serial.best_params_
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_allclose(parallel.cv_results_[key], serial.cv_results_[key],
                                   rtol=0, atol=1e-12)


def test_threading_backend_leaves_torch_threads_as_it_found_them(two_torch_threads):
    # Fits in threads of one process: a fit that starts while another has set
    # one thread must not restore 1 as "its" previous value.
    X, y = _data()
    before = _torch_threads_in_new_thread()
    for _ in range(3):
        with joblib.parallel_config(backend="threading"):
            cross_val_score(_clf(), X, y, cv=4, n_jobs=2)
        assert _torch_threads_in_new_thread() == before


def test_concurrent_fits_in_threads_share_the_cores(four_torch_threads, idle_machine):
    from sklearn_samn._threads import torch_threads_for

    cpu = torch.device("cpu")
    default = _torch_threads_in_new_thread()
    assert default == 4
    big, small = 1 << 30, 1000
    first_in, second_done = threading.Event(), threading.Event()
    seen = {}

    def first():
        with torch_threads_for(big, cpu) as n:
            seen["first"] = (n, torch.get_num_threads())
            first_in.set()
            second_done.wait(30)
        seen["first_after"] = torch.get_num_threads()

    def second():
        first_in.wait(30)
        with torch_threads_for(big, cpu) as n:
            seen["second"] = (n, torch.get_num_threads())
        with torch_threads_for(small, cpu) as n:
            seen["second_small"] = (n, torch.get_num_threads())
        seen["second_after"] = torch.get_num_threads()
        second_done.set()

    workers = [threading.Thread(target=first), threading.Thread(target=second)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert seen["first"] == (4, 4)  # alone: all of the default
    assert seen["second"] == (2, 2)  # started while the first runs: half
    assert seen["second_small"] == (1, 1)
    assert seen["first_after"] == seen["second_after"] == default
    assert _torch_threads_in_new_thread() == default
    before = torch.get_num_threads()
    with torch_threads_for(big, torch.device("meta")) as n:  # not the CPU: untouched
        assert n is None and torch.get_num_threads() == before


def test_one_fit_at_a_time_is_a_plain_save_and_restore(four_torch_threads, idle_machine):
    from sklearn_samn import _threads

    cpu = torch.device("cpu")
    with _threads.torch_threads_for(1 << 30, cpu) as n:
        assert n == torch.get_num_threads() == 4
        with _threads.torch_threads_for(1000, cpu) as inner:  # nested: not a second fit
            assert inner == torch.get_num_threads() == 1
        assert torch.get_num_threads() == 4
    with _threads.torch_threads_for(1000, cpu) as n:
        assert n == torch.get_num_threads() == 1
    assert torch.get_num_threads() == 4
    assert _threads._running == 0


@pytest.mark.slow  # about 15 s: a local dask cluster of 2 worker processes
def test_dask_grid_search_equals_loky(restore_environ):
    pytest.importorskip("distributed")
    import logging

    from distributed import Client, LocalCluster

    X, y = _data()
    with joblib.parallel_config(backend="loky"):
        local = _search().set_params(n_jobs=2).fit(X, y)
    search = _search().set_params(
        scoring={"balanced_accuracy": "balanced_accuracy", "threads": torch_threads},
        refit="balanced_accuracy",
    )
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                     dashboard_address=None, silence_logs=logging.ERROR) as cluster,
        Client(cluster),
        joblib.parallel_config(backend="dask"),
    ):
        search.fit(X, y)
    assert search.best_params_ == local.best_params_
    np.testing.assert_allclose(search.cv_results_["mean_test_balanced_accuracy"],
                               local.cv_results_["mean_test_score"], rtol=0, atol=1e-12)
    # 2 workers x 1 thread on this machine: each task's torch gets its share.
    for split in (0, 1):
        assert np.all(search.cv_results_[f"split{split}_test_threads"] <= per_worker_cap(2))
