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

Other processes are a second limit. OpenMP threads wait for each other at
every barrier, spinning; when another process keeps a core busy, a fit whose
threads include one on that core runs at that thread's share of it: with one
of 2 cores spun by another process, 2 threads took 2.6-3.6x their idle time
and one thread 1.0-1.4x (``benchmarks/THREADS.md``). So a fit that would use
more than one thread first counts the cores of its affinity that other
processes leave free (:func:`free_cores`: all of them when nothing else is in
``/proc/loadavg``'s run queue, else a 30 ms sample of ``/proc/stat``) and uses
at most that many. The count is taken once, when the fit starts.
"""

import contextlib
import math
import os
import threading
import time

# Below this many multiply-adds per block product, extra intra-op threads
# cost more in synchronisation than they save (and collapse when another
# process competes for the cores), so small problems train on one thread.
_SMALL_PRODUCT = 1 << 22

_lock = threading.Lock()
_running = 0  # fits (outermost calls) running in this process
_default = None  # torch threads of the process when the first of them started
_local = threading.local()  # .depth: calls open in this thread


# How long free_cores() watches the cores. /proc/stat counts in 10 ms ticks,
# so this gives each core about 3 ticks: enough to tell a core that another
# process keeps busy from an idle one, and small beside the fits that probe
# (those whose block products are large enough for several threads).
_PROBE_SECONDS = 0.03


def fit_thread_count(work, default, running, free=None):
    """Torch threads for one fit.

    Parameters
    ----------
    work : int
        Multiply-adds of one minibatch product.
    default : int
        Torch threads of the process when no fit is running.
    running : int
        Fits running in this process, this one included.
    free : int or None, default=None
        Cores that other processes leave free (:func:`free_cores`); ``None``
        for no limit.

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
    >>> fit_thread_count(1 << 30, default=2, running=1, free=1)
    1
    """
    if work < _SMALL_PRODUCT:
        return 1
    share = max(1, default // max(1, running))
    if free is not None:
        share = min(share, max(1, free))
    return share


def _allowed_cpus():
    """Ids of the CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return list(range(os.cpu_count() or 1))


def _cpu_times():
    """``({cpu id: (busy, total) ticks}, this process's busy ticks)`` from
    ``/proc``, or ``None`` where there is no ``/proc/stat``."""
    try:
        with open("/proc/stat") as handle:
            lines = [line.split() for line in handle if line.startswith("cpu")]
        with open("/proc/self/stat") as handle:
            # Fields after the command name, which may hold spaces: utime and
            # stime are the 14th and 15th fields of the line.
            own = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    cpus = {}
    for fields in lines:
        if fields[0] == "cpu":
            continue
        # user nice system idle iowait irq softirq steal (guest is in user).
        ticks = [int(v) for v in fields[1:9]]
        idle = ticks[3] + ticks[4]
        cpus[int(fields[0][3:])] = (sum(ticks) - idle, sum(ticks))
    return cpus, int(own[11]) + int(own[12])


def _others_running():
    """Tasks running or waiting for a core now, this process's own threads
    left out (``/proc/loadavg``); ``None`` without ``/proc``."""
    try:
        with open("/proc/loadavg") as handle:
            running = int(handle.read().split()[3].split("/")[0])
        tasks = os.listdir("/proc/self/task")
    except (OSError, ValueError, IndexError):
        return None
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat") as handle:
                running -= handle.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
    return running


def free_cores(seconds=_PROBE_SECONDS):
    """Cores of this process's affinity that other processes leave free, now.

    Linux: when nothing but this process runs (``/proc/loadavg``), every
    core, at once; otherwise the busy time of those cores over ``seconds``
    (``/proc/stat``), less this process's own; a core counts as taken when
    other work keeps it busy more than half the time. Elsewhere: the 1-minute load average
    (``os.getloadavg``), which includes this process's recent work, so it
    errs towards fewer threads. Without either, every core counts as free.

    Parameters
    ----------
    seconds : float, default=0.03
        How long to watch the cores.

    Returns
    -------
    int
        Between 0 and the number of cores the process may use.
    """
    cpus = _allowed_cpus()
    others = _others_running()
    if others is not None and others <= 0:
        return len(cpus)
    before = _cpu_times()
    if before is not None:
        time.sleep(seconds)
        after = _cpu_times()
        busy = total = 0.0
        for cpu in cpus:
            if cpu in before[0] and cpu in after[0]:
                busy += after[0][cpu][0] - before[0][cpu][0]
                total += after[0][cpu][1] - before[0][cpu][1]
        if total > 0:
            others = max(0.0, busy - (after[1] - before[1]))
            taken = others / total * len(cpus)
            return max(0, len(cpus) - math.floor(taken + 0.5))
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return len(cpus)
    return max(0, len(cpus) - math.floor(load + 0.5))


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
        if n_threads > 1:
            n_threads = fit_thread_count(work, default, running, free=free_cores())
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
