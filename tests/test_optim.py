"""Our Adam and SGD follow torch.optim step for step (torch.optim costs ~1 s to import)."""

import subprocess
import sys

import pytest
import torch

from sklearn_samn._optim import SGD, Adam


def _run(make_ours, make_theirs, lrs):
    torch.manual_seed(0)
    start = [torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    ours = [p.clone().requires_grad_() for p in start]
    theirs = [p.clone().requires_grad_() for p in start]
    mine, reference = make_ours(ours), make_theirs(theirs)
    for lr in lrs:
        grads = [torch.randn_like(p) for p in start]
        for p, q, g in zip(ours, theirs, grads):
            p.grad, q.grad = g.clone(), g.clone()
        mine.step(lr)
        for group in reference.param_groups:
            group["lr"] = lr
        reference.step()
    return ours, theirs


@pytest.mark.parametrize(
    "make_ours, make_theirs",
    [
        (lambda p: Adam(p), lambda p: torch.optim.Adam(p, lr=1.0, foreach=False)),
        (lambda p: SGD(p), lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.9)),
    ],
    ids=["adam", "sgd"],
)
def test_updates_match_torch_optim(make_ours, make_theirs):
    lrs = [0.1 * 0.5 ** k for k in range(8)]  # a decaying schedule, like the fit's
    ours, theirs = _run(make_ours, make_theirs, lrs)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=1e-14, atol=1e-15)


def test_fit_imports_neither_torch_dynamo_nor_sympy():
    # Each costs ~0.5-1 s in a fresh process, more than a typical fit.
    code = (
        "import sys, numpy as np\n"
        "from sklearn_samn import SAMNClassifier\n"
        "SAMNClassifier(device='cpu', max_iter=3).fit(np.random.rand(40, 3), np.arange(40) % 2)\n"
        "print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"
