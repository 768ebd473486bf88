"""Torch CPU thread budget of a fit, safe when several fits share a process.

``torch.set_num_threads`` is half process-wide, half per thread: with the
OpenMP builds that PyPI ships, it sets the calling thread's OpenMP team size
*and* a process-wide default that every thread adopts the first time it runs a
torch op. Fits running in threads of one process (joblib's ``threading``
backend, a dask worker with several threads, a ``ThreadPoolExecutor``) then
interfere if each saves and restores "its" previous value: a thread that
starts while another fit has set one thread reads 1 as its previous value and
writes it back last, so that the process, main thread included, is left with
one torch thread after the search. And each of ``k`` concurrent fits of a
large problem would use all ``N`` threads: ``k * N`` threads on ``N`` cores.

:func:`torch_threads_for` keeps a count of the fits running in the process:
the first to start records the process default ``N``; every fit uses one
thread for a small problem and ``max(1, N // running)`` otherwise; each fit
puts its thread back to ``N``, so the process default is ``N`` again when the
last one ends. One fit at a time behaves exactly as a plain save and restore.
Separate processes (joblib's ``loky`` backend, dask worker processes) are
limited from outside, by the ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` that
joblib and dask's nanny set for their workers, which torch reads as its
default.
"""

import contextlib
import threading

# Below this many multiply-adds per block product, extra intra-op threads
# cost more in synchronisation than they save (and collapse when another
# process competes for the cores), so small problems train on one thread.
_SMALL_PRODUCT = 1 << 22

_lock = threading.Lock()
_running = 0  # fits (outermost calls) running in this process
_default = None  # torch threads of the process when the first of them started
_local = threading.local()  # .depth: calls open in this thread


def fit_thread_count(work, default, running):
    """Torch threads for one fit.

    Parameters
    ----------
    work : int
        Multiply-adds of one minibatch product.
    default : int
        Torch threads of the process when no fit is running.
    running : int
        Fits running in this process, this one included.

    Returns
    -------
    int

    Examples
    --------
    >>> fit_thread_count(1 << 30, default=8, running=1)
    8
    >>> fit_thread_count(1 << 30, default=8, running=3)
    2
    >>> fit_thread_count(1000, default=8, running=1)
    1
    """
    if work < _SMALL_PRODUCT:
        return 1
    return max(1, default // max(1, running))


@contextlib.contextmanager
def torch_threads_for(work, device):
    """Set this thread's torch CPU threads for one fit, then restore them.

    Drop-in replacement for ``sklearn_samn._device.torch_threads_for``.

    Parameters
    ----------
    work : int
        Multiply-adds of one minibatch product.
    device : torch.device

    Yields
    ------
    n_threads : int or None
        The torch threads the fit uses on the CPU; ``None`` on a GPU, where
        nothing is changed.
    """
    global _running, _default
    import torch

    if device.type != "cpu":
        yield None
        return
    nested = getattr(_local, "depth", 0) > 0
    with _lock:
        if not nested:
            if _running == 0:
                _default = torch.get_num_threads()
            _running += 1
        default, running = _default, _running
    # Back to the process default, not to this thread's previous value, which
    # another fit may have lowered; a nested call restores its caller's.
    restore = torch.get_num_threads() if nested else default
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        n_threads = fit_thread_count(work, default, running)
        if torch.get_num_threads() != n_threads:
            torch.set_num_threads(n_threads)
        yield n_threads
    finally:
        _local.depth -= 1
        if torch.get_num_threads() != restore:
            torch.set_num_threads(restore)
        if not nested:
            with _lock:
                _running -= 1
