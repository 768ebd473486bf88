"""Train on a GPU when there is one; the fitted model is NumPy and predicts anywhere.

``device="auto"`` (the default) picks CUDA when torch sees a GPU. This example
fits the same head on the CPU and, if available, on the GPU, compares their
predictions, and shows that the GPU-fitted model's state is plain NumPy.

    python examples/gpu.py
"""

import pickle
import time

import numpy as np
import torch

from sklearn_samn import SAMNClassifier
from sklearn_samn.datasets import make_long_tailed


def main():
    rng = np.random.default_rng(0)
    n_classes, n_features = 100, 64
    centres = rng.normal(scale=0.6, size=(n_classes, n_features))
    y = np.repeat(np.arange(n_classes), 200)
    X = (centres[y] + rng.normal(size=(len(y), n_features))).astype(np.float32)
    X_lt, y_lt, _ = make_long_tailed(X, y, imbalance_ratio=100, random_state=0)
    y_test = np.repeat(np.arange(n_classes), 30)
    X_test = (centres[y_test] + rng.normal(size=(len(y_test), n_features))).astype(np.float32)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if len(devices) == 1:
        print("No CUDA device visible to torch: fitting on the CPU only.")
    fitted = {}
    for device in devices:
        start = time.perf_counter()
        fitted[device] = SAMNClassifier(device=device, random_state=0).fit(X_lt, y_lt)
        print(f"{device}: fit in {time.perf_counter() - start:.2f} s, "
              f"test accuracy {fitted[device].score(X_test, y_test):.3f}, "
              f"device_ = {fitted[device].device_!r}")
    if "cuda" in fitted:
        agree = np.mean(fitted["cuda"].predict(X_test) == fitted["cpu"].predict(X_test))
        print(f"CPU and GPU predictions agree on {100 * agree:.1f}% of the test set")
    model = fitted[devices[-1]]
    print("coef_ is", type(model.coef_).__name__, model.coef_.dtype, model.coef_.shape)
    restored = pickle.loads(pickle.dumps(model))
    assert np.array_equal(restored.predict(X_test), model.predict(X_test))


if __name__ == "__main__":
    main()
