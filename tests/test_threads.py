"""Torch threads under other processes' load: the free-core probe and its cap.

The split among fits of one process is tested in tests/test_parallel.py.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from sklearn_samn import SAMNClassifier, _threads

torch = pytest.importorskip("torch")
# The real free-core probe, not conftest's stand-in that finds every core free.
pytestmark = pytest.mark.real_thread_probe

BIG, SMALL = 1 << 30, 1000


@pytest.fixture
def two_torch_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize(
    "work, default, running, free, expected",
    [
        (BIG, 2, 1, None, 2),  # no probe: the process default
        (BIG, 2, 1, 2, 2),  # idle machine
        (BIG, 2, 1, 1, 1),  # one of two cores taken: one thread
        (BIG, 2, 1, 0, 1),  # every core taken: still one
        (BIG, 8, 1, 5, 5),
        (BIG, 8, 2, 6, 4),  # the split among fits comes first
        (BIG, 8, 2, 3, 3),
        (SMALL, 8, 1, 8, 1),  # small products: one thread whatever is free
    ],
)
def test_free_cores_cap_the_threads_of_a_fit(work, default, running, free, expected):
    assert _threads.fit_thread_count(work, default, running, free=free) == expected


def test_busy_core_leaves_a_large_fit_one_thread(monkeypatch, two_torch_threads):
    monkeypatch.setattr(_threads, "free_cores", lambda: 1)
    cpu = torch.device("cpu")
    with _threads.torch_threads_for(BIG, cpu) as n:
        assert n == torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    monkeypatch.setattr(_threads, "free_cores", lambda: 2)
    with _threads.torch_threads_for(BIG, cpu) as n:
        assert n == torch.get_num_threads() == 2


def test_fits_on_one_thread_do_not_probe(monkeypatch, two_torch_threads):
    def refuse():
        raise AssertionError("probed the cores")

    monkeypatch.setattr(_threads, "free_cores", refuse)
    with _threads.torch_threads_for(SMALL, torch.device("cpu")) as n:
        assert n == 1
    torch.set_num_threads(1)
    with _threads.torch_threads_for(BIG, torch.device("cpu")) as n:
        assert n == 1


def _fake_proc(monkeypatch, cpus, before, after, own=(0, 0)):
    """/proc/stat snapshots {cpu: (busy, total)} around the probe's sleep."""
    snapshots = iter([(before, own[0]), (after, own[1])])
    monkeypatch.setattr(_threads, "_allowed_cpus", lambda: cpus)
    monkeypatch.setattr(_threads, "_others_running", lambda: 1)
    monkeypatch.setattr(_threads, "_cpu_times", lambda: next(snapshots))
    monkeypatch.setattr(_threads.time, "sleep", lambda seconds: None)


@pytest.mark.parametrize(
    "cpus, after, own_ticks, expected",
    [
        ([0, 1], {0: (0, 3), 1: (0, 3)}, 0, 2),  # idle
        ([0, 1], {0: (3, 3), 1: (0, 3)}, 0, 1),  # one core spun by another process
        ([0, 1], {0: (3, 3), 1: (3, 3)}, 0, 0),  # both
        ([0, 1], {0: (3, 3), 1: (3, 3)}, 6, 2),  # busy with this process's own threads
        ([0, 1], {0: (3, 3), 1: (1, 3)}, 0, 1),  # a third of a core: counts as free
        ([0, 1], {0: (3, 3), 1: (2, 3)}, 0, 0),  # two thirds: taken
        ([1], {0: (3, 3), 1: (0, 3)}, 0, 1),  # a busy core outside the affinity
    ],
)
def test_free_cores_counts_cores_other_processes_keep_busy(
    monkeypatch, cpus, after, own_ticks, expected
):
    before = {0: (0, 0), 1: (0, 0)}
    _fake_proc(monkeypatch, cpus, before, after, own=(0, own_ticks))
    assert _threads.free_cores() == expected


def test_free_cores_with_nothing_else_running_answers_at_once(monkeypatch):
    def refuse():
        raise AssertionError("sampled /proc/stat")

    monkeypatch.setattr(_threads, "_allowed_cpus", lambda: [0, 1])
    monkeypatch.setattr(_threads, "_others_running", lambda: 0)
    monkeypatch.setattr(_threads, "_cpu_times", refuse)
    monkeypatch.setattr(_threads.time, "sleep", refuse)
    assert _threads.free_cores() == 2


@pytest.mark.parametrize("load, expected", [(0.1, 2), (1.2, 1), (3.0, 0)])
def test_free_cores_without_proc_stat_uses_the_load_average(monkeypatch, load, expected):
    monkeypatch.setattr(_threads, "_allowed_cpus", lambda: [0, 1])
    monkeypatch.setattr(_threads, "_others_running", lambda: None)
    monkeypatch.setattr(_threads, "_cpu_times", lambda: None)
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (load, load, load))
    assert _threads.free_cores() == expected


def test_free_cores_without_any_load_figure_counts_every_core(monkeypatch):
    def no_load():
        raise OSError("no load average here")

    monkeypatch.setattr(_threads, "_allowed_cpus", lambda: [0, 1, 2])
    monkeypatch.setattr(_threads, "_others_running", lambda: None)
    monkeypatch.setattr(_threads, "_cpu_times", lambda: None)
    monkeypatch.setattr(_threads.os, "getloadavg", no_load)
    assert _threads.free_cores() == 3


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc/stat")
def test_free_cores_sees_a_spinning_process():
    n_cpus = len(_threads._allowed_cpus())
    assert 0 <= _threads.free_cores() <= n_cpus
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        # However busy the machine is otherwise, the spinner takes a core.
        assert _threads._others_running() >= 1
        assert _threads.free_cores(seconds=0.2) <= n_cpus - 1
    finally:
        spinner.kill()
        spinner.wait()


def test_regression_the_probed_thread_count_does_not_change_the_fitted_bits(
    monkeypatch, two_torch_threads
):
    # Large enough for several threads; the probe may answer 1 or 2 from one
    # fit to the next. The blocks and the order of the fit's sums do not depend
    # on the thread count, so at this shape the bits do not either. (At others
    # MKL splits a long product's sum by thread count, and the last bits move:
    # SAMNClassifier's random_state docstring.)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8000, 128)).astype(np.float32)
    y = rng.integers(0, 50, size=8000)
    coefs = []
    for free in (1, 2):
        monkeypatch.setattr(_threads, "free_cores", lambda free=free: free)
        seen = []
        original = _threads.fit_thread_count

        def record(*args, **kwargs):
            seen.append(original(*args, **kwargs))
            return seen[-1]

        monkeypatch.setattr(_threads, "fit_thread_count", record)
        coefs.append(SAMNClassifier(device="cpu", random_state=0, max_iter=3).fit(X, y).coef_)
        monkeypatch.setattr(_threads, "fit_thread_count", original)
        assert seen[-1] == free  # the fit really ran on `free` threads
    np.testing.assert_array_equal(coefs[0], coefs[1])
