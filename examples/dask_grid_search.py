"""Grid search across machines: joblib's dask backend and a dask cluster.

The same ``GridSearchCV`` as on one machine; ``joblib.parallel_config(backend=
"dask")`` sends its fits to the workers of a dask cluster. Here the cluster is
a ``LocalCluster`` of 2 worker processes with 1 thread each, started by the
script; on long-tailed digits it picks the number of PCA components in front
of ``SAMNClassifier()`` and reports the torch threads of every worker.

Needs ``dask.distributed`` (``pip install "dask[distributed]"``); without it,
it says so and exits.

    python examples/dask_grid_search.py

On a real cluster
-----------------
Start a scheduler and workers on the machines, e.g.::

    dask scheduler                                   # on the scheduler host
    dask worker tcp://scheduler:8786 --nworkers 4 --nthreads 1   # on each worker host

and connect to it instead of starting a ``LocalCluster``::

    client = Client("tcp://scheduler:8786")
    with joblib.parallel_config(backend="dask"):
        search.fit(X, y)

Every worker needs the same versions of sklearn-samn, torch, scikit-learn,
joblib and dask as the client (``client.get_versions(check=True)`` checks
some of them); scorers and other functions defined in your script travel by
value, packages do not. The data travel from the client to the workers with
each task; for large arrays, ``joblib.parallel_config(backend="dask",
scatter=[X, y])`` sends them once. dask's nanny starts each worker process
with ``OMP_NUM_THREADS=1`` and ``MKL_NUM_THREADS=1`` (its
``distributed.nanny.pre-spawn-environ`` setting), so every task trains on one
torch thread and a worker runs ``--nthreads`` fits at once: give each host as
many worker threads in total as it has cores. For fewer, larger fits with more
torch threads each, set the variables where the worker starts; they take
precedence over dask's setting::

    OMP_NUM_THREADS=8 MKL_NUM_THREADS=8 dask worker tcp://scheduler:8786 --nthreads 1
"""

import logging
import os
import warnings

from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_samn import SAMNClassifier
from sklearn_samn.datasets import make_long_tailed


def torch_threads(estimator, X, y):
    """A scorer that reports the torch CPU threads of the worker that scores."""
    import torch

    return torch.get_num_threads()


def worker_threads():
    """The thread settings of one worker process (run there by ``client.run``)."""
    import torch

    return os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()


def main():
    try:
        import joblib
        from dask.distributed import Client, LocalCluster
    except ImportError:
        print('dask.distributed is not installed (pip install "dask[distributed]"); '
              "nothing to do.")
        return

    X, y = load_digits(return_X_y=True)
    X_lt, y_lt, _ = make_long_tailed(X, y, imbalance_ratio=10, random_state=0)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), PCA(random_state=0),
                      SAMNClassifier(random_state=0)),
        {"pca__n_components": [16, 32]},
        # Rare classes have too few samples for stratified folds.
        cv=KFold(3, shuffle=True, random_state=0),
        scoring={"balanced": "balanced_accuracy", "threads": torch_threads},
        refit="balanced",
    )
    # Processes, not threads: each worker has its own torch. Starting the
    # nanny sets OMP_NUM_THREADS=1 (and MKL_, OPENBLAS_) in this process too.
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                     dashboard_address=None, silence_logs=logging.ERROR) as cluster,
        Client(cluster) as client,
    ):
        with joblib.parallel_config(backend="dask"), warnings.catch_warnings():
            # Folds that miss a rare class warn about it; that is expected here.
            warnings.simplefilter("ignore", UserWarning)
            search.fit(X_lt, y_lt)
        workers = client.run(worker_threads)

    print(f"{len(y_lt)} long-tailed digits, grid search on {len(workers)} dask workers")
    print("n_components  CV balanced  torch threads in the task")
    for n, score, threads in zip(
        search.cv_results_["param_pca__n_components"],
        search.cv_results_["mean_test_balanced"],
        search.cv_results_["mean_test_threads"],
    ):
        print(f"{n:>12}  {score:>11.3f}  {threads:>25.0f}")
    print(f"best: {search.best_params_}, CV balanced accuracy {search.best_score_:.3f}")
    print("torch threads per dask worker:")
    for address, (omp, threads) in sorted(workers.items()):
        print(f"  {address}: OMP_NUM_THREADS={omp}, torch.get_num_threads()={threads}")


if __name__ == "__main__":
    main()
