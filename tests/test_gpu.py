"""CUDA fits: skipped on machines without a GPU."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from sklearn_samn import SAMNClassifier

from .conftest import make_long_tailed_blobs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_cuda_fit_agrees_with_cpu_fit():
    X, y = make_long_tailed_blobs(counts=(200, 100, 50, 20, 10), n_features=16)
    params = dict(random_state=0, max_iter=30)
    cpu = SAMNClassifier(device="cpu", **params).fit(X, y)
    gpu = SAMNClassifier(device="cuda", **params).fit(X, y)
    assert gpu.device_.startswith("cuda")
    assert type(gpu.coef_) is np.ndarray and type(gpu.intercept_) is np.ndarray
    assert np.mean(gpu.predict(X) == cpu.predict(X)) >= 0.995
    np.testing.assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), atol=1e-2)


def test_cuda_fitted_pickle_predicts_on_cpu_only_process(tmp_path):
    X, y = make_long_tailed_blobs()
    clf = SAMNClassifier(device="cuda", random_state=0, max_iter=10).fit(X, y)
    path = tmp_path / "clf.pkl"
    path.write_bytes(pickle.dumps(clf))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "expected.npy", clf.predict(X))
    code = (
        "import pickle, numpy as np\n"
        f"clf = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        f"X = np.load({str(tmp_path / 'X.npy')!r})\n"
        f"assert (clf.predict(X) == np.load({str(tmp_path / 'expected.npy')!r})).all()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert result.returncode == 0, result.stderr


def test_streamed_and_resident_x_give_the_same_fit(monkeypatch):
    # X larger than the device's share goes through pinned, double-buffered
    # copies; the fit must not depend on how rows reach the GPU.
    X, y = make_long_tailed_blobs(counts=(400, 200, 100, 40, 20), n_features=16)
    params = dict(device="cuda", random_state=0, max_iter=20)
    monkeypatch.setattr("sklearn_samn._training._block_rows", lambda *a, **k: 64)
    resident = SAMNClassifier(**params).fit(X, y)
    monkeypatch.setattr("sklearn_samn._streaming._RESIDENT_FRACTION", 0.0)
    for batch_size in (None, 100):
        streamed = SAMNClassifier(**params, batch_size=batch_size).fit(X, y)
        if batch_size is None:
            np.testing.assert_allclose(streamed.coef_, resident.coef_, rtol=1e-5, atol=1e-6)
        assert np.mean(streamed.predict(X) == y) > 0.9
    streamed = SAMNClassifier(**params).fit(X.astype(np.float32), y)
    np.testing.assert_allclose(streamed.coef_, resident.coef_, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", [False, True], ids=["pinned", "resident"])
def test_row_stream_serves_exact_blocks_and_survives_an_early_stop(mode):
    from sklearn_samn._streaming import RowStream

    rng = np.random.default_rng(0)
    X = rng.normal(size=(1_000, 24))  # float64: converted block by block
    device = torch.device("cuda")
    stream = RowStream(X, device, max_rows=128, resident=mode)
    selections = [slice(s, s + 128) for s in range(0, 1_000, 128)]
    selections[3] = np.arange(384, 512, 2)  # sorted indices, a shorter block
    # Stop after one block: copies issued ahead must not outlive their buffers.
    blocks = stream.blocks(selections)
    next(blocks)
    blocks.close()
    for rows, block in zip(selections, stream.blocks(selections)):
        np.testing.assert_array_equal(block.cpu().numpy(), X[rows].astype(np.float32))



@pytest.mark.parametrize("batch_size", [None, 200], ids=["full_batch", "minibatch"])
@pytest.mark.parametrize("resident", [True, False], ids=["resident", "pinned"])
def test_cuda_coef_equals_the_cpu_coef_on_every_streaming_path(
    resident, batch_size, monkeypatch
):
    # coef_, not accuracy: a stale block (one served twice) keeps accuracy at
    # 1.0 while moving coef_ by 15%. 64-row blocks on the GPU (several per
    # step, both pinned buffers cycled; index tensors on the device for a
    # resident minibatch) against one block per step on the CPU.
    from sklearn_samn import _streaming

    X, y = make_long_tailed_blobs(counts=(400, 200, 100, 40, 20), n_features=16)
    X32, X16 = X.astype(np.float32), X.astype(np.float16)
    params = dict(solver="adam", max_iter=20, random_state=0, batch_size=batch_size)
    monkeypatch.setattr("sklearn_samn._training._block_rows", lambda *a, **k: 10**9)
    cpu = SAMNClassifier(device="cpu", **params).fit(X32, y).coef_
    cpu16 = SAMNClassifier(device="cpu", **params).fit(X16.astype(np.float32), y).coef_
    monkeypatch.setattr("sklearn_samn._training._block_rows", lambda *a, **k: 64)
    monkeypatch.setattr(_streaming, "_RESIDENT_FRACTION", 1.0 if resident else 0.0)
    modes = []
    init = _streaming.RowStream.__init__

    def record_mode(self, *args, **kwargs):
        init(self, *args, **kwargs)
        modes.append(self.mode)

    monkeypatch.setattr(_streaming.RowStream, "__init__", record_mode)
    inputs = {
        "float32": (X32, cpu),
        "float64": (X32.astype(np.float64), cpu),
        "float16": (X16, cpu16),
    }
    for name, (X_in, expected) in inputs.items():
        gpu = SAMNClassifier(device="cuda", **params).fit(X_in, y)
        assert gpu.device_.startswith("cuda")
        np.testing.assert_allclose(gpu.coef_, expected, rtol=1e-4, atol=1e-6,
                                   err_msg=name)
    assert modes == ["resident" if resident else "pinned"] * len(inputs)


def test_cuda_projection_backward_repeats_bit_for_bit_and_matches_the_cpu():
    # The block sums of the PAVA backward run on the host, in index order:
    # CUDA's index_add_ adds with atomics in no fixed order.
    from sklearn_samn._pava import monotone_projection_torch

    rng = np.random.RandomState(0)
    counts = rng.randint(1, 5, size=4096)  # many ties: large pooled blocks
    values = torch.tensor(rng.randn(4096), dtype=torch.float32)
    incoming = torch.tensor(rng.randn(4096), dtype=torch.float32)

    def gradient(device):
        v = values.to(device).requires_grad_()
        out = monotone_projection_torch(v, counts, increasing=False)
        (out * incoming.to(device)).sum().backward()
        return v.grad.cpu()

    cpu = gradient("cpu")
    for _ in range(3):
        assert torch.equal(gradient("cuda"), cpu)
