"""X is read in blocks: memmaps and sliceable array-likes are never loaded whole."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn.datasets import make_classification

from sklearn_samn import SAMNClassifier, _training
from sklearn_samn._streaming import RowStream, serves_views
from sklearn_samn._training import _block_rows, _epoch_blocks

from .conftest import make_long_tailed_blobs


class Sliceable:
    """A 2-D array-like that slices (like an HDF5 dataset) and refuses np.asarray."""

    def __init__(self, array):
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.reads = []

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        if not isinstance(rows, slice):
            rows = np.asarray(rows)
            # What h5py demands of an index list.
            assert np.all(np.diff(rows) > 0), "indices must be increasing"
        self.reads.append(rows)
        return self.array[rows]

    def __array__(self, *args, **kwargs):
        raise AssertionError("X was loaded whole")


@pytest.mark.parametrize("batch_size", [None, 16])
def test_sliceable_array_like_is_read_in_blocks(batch_size, monkeypatch):
    X, y = make_long_tailed_blobs()
    monkeypatch.setattr("sklearn_samn._training._block_rows", lambda *a, **k: 10)
    monkeypatch.setattr("sklearn_samn._samn._CHUNK_BYTES", 8)  # 64-row chunks
    solver = {} if batch_size is None else {"solver": "adam"}
    params = dict(device="cpu", random_state=0, max_iter=5, batch_size=batch_size,
                  **solver)
    reference = SAMNClassifier(**params).fit(X, y)
    sliced = Sliceable(X)
    clf = SAMNClassifier(**params).fit(sliced, y)
    np.testing.assert_array_equal(clf.coef_, reference.coef_)
    sizes = [len(range(*r.indices(len(X)))) if isinstance(r, slice) else len(r)
             for r in sliced.reads]
    assert max(sizes) <= 64 < len(X)
    np.testing.assert_array_equal(clf.predict(Sliceable(X)), reference.predict(X))
    np.testing.assert_array_equal(
        clf.predict_proba(Sliceable(X)), reference.predict_proba(X)
    )


def test_sliceable_array_like_gets_the_usual_errors():
    X, y = make_long_tailed_blobs()
    bad = X.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        SAMNClassifier(device="cpu").fit(Sliceable(bad), y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        SAMNClassifier(device="cpu").fit(Sliceable(X), y[:-1])
    clf = SAMNClassifier(device="cpu", max_iter=2).fit(Sliceable(X), y)
    assert clf.n_features_in_ == X.shape[1]
    with pytest.raises(ValueError, match="expecting 8 features"):
        clf.predict(Sliceable(X[:, :3]))
    bad_rows = X[:20].copy()
    bad_rows[3, 0] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        clf.predict(Sliceable(bad_rows))


def test_memmap_float32_is_not_copied(tmp_path):
    X, y = make_long_tailed_blobs()
    path = tmp_path / "X.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    X_mm = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    stream = RowStream(X_mm, torch.device("cpu"), max_rows=50)
    (block,) = stream.blocks([slice(0, 50)])
    assert np.shares_memory(block.numpy(), X_mm)
    clf = SAMNClassifier(device="cpu", random_state=0, max_iter=5).fit(X_mm, y)
    ref = SAMNClassifier(device="cpu", random_state=0, max_iter=5).fit(
        X.astype(np.float32), y
    )
    np.testing.assert_array_equal(clf.coef_, ref.coef_)


def test_blocks_of_a_pass_cover_every_row_once():
    generator = torch.Generator().manual_seed(0)
    order, full = _epoch_blocks(103, 103, 10, generator)
    assert order is None and full[-1][0] == slice(100, 103)
    assert [last for _, last, _ in full] == [False] * 10 + [True]
    order, mini = _epoch_blocks(103, 25, 10, generator)
    np.testing.assert_array_equal(np.sort(order), np.arange(103))
    assert sum(last for _, last, _ in mini) == 5  # ceil(103 / 25) steps
    spans = [span for span, _, _ in mini]
    assert spans[0].start == 0 and spans[-1].stop == 103
    assert all(a.stop == b.start for a, b in zip(spans, spans[1:]))
    for span, _, step_rows in mini:
        rows = order[span]
        assert np.all(np.diff(rows) > 0) and len(rows) <= 10 and step_rows in (25, 3)


def test_block_temporaries_stay_small_next_to_X():
    # Logits plus, when blocks are copies, a row buffer per row; never more
    # than a quarter of X unless that is under 256 KiB of float32.
    for n, d, c in [(10_847, 64, 100), (115_846, 2048, 1000), (500, 4, 300),
                    (569, 384, 77)]:
        for copies in (True, False):
            rows = _block_rows(n, d, c, copies=copies)
            per_row = c + d * copies
            temporaries = rows * per_row
            assert temporaries <= max(0.25 * n * d, 64 * per_row, (256 << 10) / 4)
            assert 4 * temporaries <= 2 * (8 << 20)
    # Small problems run in one block; above the floor, a quarter of X bounds it.
    assert _block_rows(213, 64, 10) >= 213
    assert _block_rows(1138, 384, 77) == 1138 * 384 // 4 // (77 + 384)
    # Views of X cost only their logits: larger blocks in the same memory.
    assert _block_rows(10_847, 64, 100, copies=False) == 10_847 * 64 // 4 // 100
    assert _block_rows(10_847, 64, 100) == 10_847 * 64 // 4 // (100 + 64)


def test_serves_views_exactly_when_blocks_are_views_of_X():
    cpu = torch.device("cpu")
    X = np.arange(24, dtype=np.float32).reshape(6, 4)
    assert serves_views(X, cpu)
    assert not serves_views(X.astype(np.float64), cpu)
    assert not serves_views(np.asfortranarray(X), cpu)
    assert not serves_views(X[:, :2], cpu)  # strided columns
    assert not serves_views(X, torch.device("cuda"))
    # What the stream serves agrees: a view where it says so, else a copy.
    for array in (X, X.astype(np.float64), np.asfortranarray(X)):
        block = next(RowStream(array, cpu, max_rows=3).blocks([slice(0, 3)]))
        shares = np.shares_memory(block.numpy(), array)
        assert shares == serves_views(array, cpu)


def test_training_sizes_its_blocks_by_what_it_copies(monkeypatch):
    seen = []
    original = _training._block_rows

    def recording(*args, **kwargs):
        seen.append(kwargs.get("copies", True))
        return original(*args, **kwargs)

    monkeypatch.setattr("sklearn_samn._training._block_rows", recording)
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4,
                               n_classes=3, random_state=0)
    X32 = X.astype(np.float32)
    for data, params, copies in [
        (X32, {}, False),  # full batch over a float32 array: views
        (X, {}, True),  # float64: each block converted
        (X32, {"batch_size": 64}, True),  # minibatches gather shuffled rows
    ]:
        seen.clear()
        SAMNClassifier(solver="adam", max_iter=1, random_state=0, **params).fit(data, y)
        assert seen == [copies]


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 2_000_000),
    d=st.integers(1, 8192),
    c=st.integers(2, 100_000),
    copies=st.booleans(),
)
def test_property_block_rows_within_the_memory_bounds(n, d, c, copies):
    rows = _block_rows(n, d, c, copies=copies)
    per_row = c + d * copies  # float32 logits, and a row buffer for a copy
    temporaries = 4 * rows * per_row
    assert rows >= 64
    # Under the 8 MB budget and under a quarter of X (or the 256 KiB floor),
    # unless 64 rows alone exceed them.
    assert temporaries <= max(8 << 20, 4 * 64 * per_row)
    assert temporaries <= max(n * d, 256 << 10, 4 * 64 * per_row)


def test_statistics_of_X_allocate_a_small_share_of_it():
    # The centre, scale and class means read X in float64 chunks. Freed
    # chunks can stay resident in the heap, so a chunk of 1/16 of the rows
    # (three float64 temporaries: 0.375x X) counted towards the fit's peak;
    # at most 1/64 keeps them under a tenth of X.
    import tracemalloc

    from sklearn_samn._samn import _class_means, _weighted_centre_and_scale

    rng = np.random.default_rng(0)
    X = rng.normal(size=(8192, 64)).astype(np.float32)
    y = rng.integers(0, 10, size=8192)
    weight = np.ones(8192)
    tracemalloc.start()
    try:
        shift, scale = _weighted_centre_and_scale(X, weight)
        _, centre_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        _class_means(X, y, weight, 10, shift, scale)
        _, means_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert centre_peak < 0.15 * X.nbytes
    assert means_peak - before < 0.15 * X.nbytes


_BUDGET_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from sklearn_samn import SAMNClassifier

    path, n, d, budget, kind = sys.argv[1:]
    n, d, budget = int(n), int(d), int(budget)
    y = np.load(path + ".y.npy")
    if kind == "float64":
        X = np.fromfile(path, dtype=np.float32).reshape(n, d).astype(np.float64)
    else:
        X = np.memmap(path, dtype=np.float32, mode="r", shape=(n, d))
    # Imports, torch's threads and first-call set-up happen before the budget.
    SAMNClassifier(device="cpu", max_iter=2).fit(np.asarray(X[:500]), y[:500])
    import torch
    torch.randn(512, 512) @ torch.randn(512, 512)  # starts the OpenMP team

    def private_data():
        for line in open("/proc/self/status"):
            if line.startswith("VmData"):
                return int(line.split()[1]) * 1024

    # RLIMIT_DATA caps private writable memory (what a copy of X would take);
    # the pages of a read-only memmap are the file's and do not count.
    resource.setrlimit(
        resource.RLIMIT_DATA, (private_data() + budget, resource.RLIM_INFINITY)
    )
    for batch_size in (None, 4096):
        # The default (L-BFGS, the cap chosen on a validation split) and Adam.
        solver = {} if batch_size is None else {"solver": "adam"}
        clf = SAMNClassifier(
            device="cpu", max_iter=2, batch_size=batch_size, random_state=0, **solver
        ).fit(X, y)
        accuracy = np.mean(clf.predict(X) == y)
        print(f"batch_size={batch_size}: fitted, accuracy {accuracy:.3f}")
    try:
        np.array(X, dtype=np.float32)
    except MemoryError:
        print("a float32 copy of X does not fit in the budget")
    """
)


@pytest.fixture(scope="module")
def big_features(tmp_path_factory):
    """192 MiB of float32 features on disk, with labels next to them."""
    n, d = 786_432, 64
    path = tmp_path_factory.mktemp("big") / "X.f32"
    rng = np.random.default_rng(0)
    y = np.minimum(rng.geometric(0.3, n) - 1, 9)
    centres = rng.normal(scale=2.0, size=(10, d)).astype(np.float32)
    X = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, d))
    for start in range(0, n, 131_072):
        rows = slice(start, start + 131_072)
        noise = rng.standard_normal((len(y[rows]), d), dtype=np.float32)
        X[rows] = centres[y[rows]] + noise
    X.flush()
    del X
    np.save(str(path) + ".y.npy", y)
    return path, n, d


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs RLIMIT_DATA")
@pytest.mark.parametrize("kind", ["memmap", "float64"])
def test_fit_and_predict_within_a_memory_budget_smaller_than_X(big_features, kind):
    # memmap: X is 192 MiB on disk, the budget 128 MiB of private memory (the
    # per-row vectors alone, labels, weights, shuffles, the validation split's
    # row indices, predictions, take ~60). float64: X is 384 MiB in memory; a
    # float32 copy (192 MiB) would not fit.
    path, n, d = big_features
    result = subprocess.run(
        [sys.executable, "-c", _BUDGET_SCRIPT, str(path), str(n), str(d),
         str(128 << 20), kind],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "batch_size=None: fitted" in result.stdout
    assert "batch_size=4096: fitted" in result.stdout
    assert "does not fit in the budget" in result.stdout
    accuracies = [float(line.split()[-1]) for line in result.stdout.splitlines()
                  if "accuracy" in line]
    assert min(accuracies) > 0.95


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_scoring_many_rows_allocates_chunks_not_an_n_by_c_matrix(method, monkeypatch):
    import tracemalloc

    X, y = make_long_tailed_blobs(counts=(60, 40, 30, 20, 10) * 4, n_features=8)
    clf = SAMNClassifier(device="cpu", max_iter=3, random_state=0).fit(X, y)
    n_rows, n_classes = 200_000, len(clf.classes_)
    X_big = np.random.default_rng(0).standard_normal((n_rows, 8))
    monkeypatch.setattr("sklearn_samn._samn._CHUNK_BYTES", 1 << 20)
    tracemalloc.start()
    result = getattr(clf, method)(X_big)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n_by_c = n_rows * n_classes * 8  # 32 MB
    assert peak - result.nbytes < 8 << 20 < n_by_c


@pytest.mark.parametrize("dtype", [np.float16, np.int16, np.uint8])
def test_other_numeric_dtypes_are_read_in_blocks_not_copied_to_float64(
    dtype, tmp_path
):
    # Regression: a float16 (or integer) array went through validate_data and
    # was copied whole to float64, four times the size of a float16 memmap.
    import tracemalloc

    n, d = 50_000, 128
    rng = np.random.default_rng(0)
    y = np.minimum(rng.geometric(0.3, n) - 1, 9)
    centres = rng.normal(scale=2.0, size=(10, d))
    values = centres[y] + rng.standard_normal((n, d))
    if np.dtype(dtype).kind in "iu":
        values = np.clip(np.round(20 * values + 100), 0, 255)
    path = tmp_path / "X.bin"
    mm = np.memmap(path, dtype=dtype, mode="w+", shape=(n, d))
    mm[:] = values
    mm.flush()
    del mm
    X = np.memmap(path, dtype=dtype, mode="r", shape=(n, d))
    float32_copy = n * d * 4  # half of the float64 copy that was made before
    params = dict(device="cpu", solver="adam", max_iter=2, random_state=0)
    SAMNClassifier(**params).fit(np.asarray(X[:500]), y[:500])  # first-call set-up

    tracemalloc.start()
    try:
        clf = SAMNClassifier(**params).fit(X, y)
        _, fit_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        proba = clf.predict_proba(X)
        _, predict_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fit_peak < float32_copy, (fit_peak, float32_copy)
    assert predict_peak - proba.nbytes < float32_copy, (predict_peak, float32_copy)

    as_float32 = np.asarray(X, dtype=np.float32)
    # Fortran order: blocks of it are converted copies too, so the fit runs
    # the same blocks (views of a C-ordered float32 X would be larger).
    reference = SAMNClassifier(**params).fit(np.asfortranarray(as_float32), y)
    np.testing.assert_array_equal(clf.coef_, reference.coef_)
    np.testing.assert_array_equal(clf.intercept_, reference.intercept_)
    np.testing.assert_array_equal(proba, reference.predict_proba(as_float32))
    # An ndarray (not a memmap) of the same dtype takes the same path.
    in_memory = SAMNClassifier(**params).fit(np.array(X[:2000]), y[:2000])
    np.testing.assert_array_equal(
        in_memory.coef_,
        SAMNClassifier(**params).fit(np.asfortranarray(as_float32[:2000]), y[:2000]).coef_,
    )


def test_float16_blocks_get_the_usual_errors():
    X, y = make_long_tailed_blobs()
    bad = X.astype(np.float16)
    bad[5, 1] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        SAMNClassifier(device="cpu").fit(bad, y)
    clf = SAMNClassifier(device="cpu", solver="adam", max_iter=2).fit(
        X.astype(np.float16), y
    )
    with pytest.raises(ValueError, match="expecting 8 features"):
        clf.predict(X[:, :3].astype(np.int32))


def _memmap(path, array):
    mm = np.memmap(path, dtype=array.dtype, mode="w+", shape=array.shape)
    mm[:] = array
    mm.flush()
    return np.memmap(path, dtype=array.dtype, mode="r", shape=array.shape)


@pytest.mark.parametrize("batch_size", [None, 200], ids=["full_batch", "minibatch"])
def test_every_cpu_streaming_path_gives_the_one_block_coef(
    batch_size, tmp_path, monkeypatch
):
    # Regression: a stale block buffer (every second block served twice) left
    # accuracy at 1.0 while coef_ moved by 15%. Tiny blocks must give the fit
    # that one block per step gives, on every input the host path serves:
    # views (float32), converted copies (float64, float16, Fortran order) and
    # memmaps, read by slices (full batch) or sorted indices (minibatches).
    X, y = make_long_tailed_blobs(counts=(400, 200, 100, 40, 20), n_features=16)
    X32 = X.astype(np.float32)
    X16 = X.astype(np.float16)
    params = dict(device="cpu", solver="adam", max_iter=20, random_state=0,
                  batch_size=batch_size)
    monkeypatch.setattr("sklearn_samn._training._block_rows", lambda *a, **k: 10**9)
    reference = SAMNClassifier(**params).fit(X32, y).coef_
    reference16 = SAMNClassifier(**params).fit(X16.astype(np.float32), y).coef_
    monkeypatch.setattr("sklearn_samn._training._block_rows", lambda *a, **k: 64)
    inputs = {
        "float32": (X32, reference),
        "float64": (X32.astype(np.float64), reference),
        "float32 Fortran order": (np.asfortranarray(X32), reference),
        "float32 memmap": (_memmap(tmp_path / "X32", X32), reference),
        "float64 memmap": (_memmap(tmp_path / "X64", X32.astype(np.float64)), reference),
        "float16 memmap": (_memmap(tmp_path / "X16", X16), reference16),
    }
    for name, (X_in, expected) in inputs.items():
        coef = SAMNClassifier(**params).fit(X_in, y).coef_
        np.testing.assert_allclose(coef, expected, rtol=1e-4, atol=1e-6, err_msg=name)

def test_float32_range_check_reads_a_sliceable_X_in_blocks(monkeypatch):
    monkeypatch.setattr("sklearn_samn._samn._CHUNK_BYTES", 64 * 8 * 8)  # 64-row blocks
    monkeypatch.setattr("sklearn_samn._training.train_head", None)  # never reached
    X, y = make_long_tailed_blobs()
    X[-1, 0] = 1e39
    sliceable = Sliceable(X)
    with pytest.raises(ValueError, match="beyond the range of float32"):
        SAMNClassifier(device="cpu").fit(sliceable, y)
    assert all(isinstance(rows, slice) and rows.stop - rows.start <= 64
               for rows in sliceable.reads)
