"""Adam and SGD with momentum, as ``torch.optim`` computes them, in a few lines.

``torch.optim.Optimizer`` imports ``torch._dynamo`` on first use, which costs
about a second in a fresh process (measured: 1.1 s of a 1.1 s first fit on
200 x 8), more than a whole fit of most heads. These two update rules are all
the training loop needs; they follow ``torch.optim.Adam`` (``foreach=False``)
and ``torch.optim.SGD`` step for step, which ``tests/test_optim.py`` checks.
"""

import math

import torch


class Adam:
    """Adam (Kingma and Ba, 2015) with torch's defaults: betas (0.9, 0.999), eps 1e-8."""

    def __init__(self, params, betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, lr):
        """Update every parameter with its ``.grad``, at learning rate ``lr``."""
        self.steps += 1
        correction1 = 1 - self.beta1**self.steps
        correction2_sqrt = math.sqrt(1 - self.beta2**self.steps)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            g = p.grad
            m.lerp_(g, 1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = (v.sqrt() / correction2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-lr / correction1)


class SGD:
    """SGD with momentum (heavy ball, no dampening), as ``torch.optim.SGD``."""

    def __init__(self, params, momentum=0.9):
        self.params = list(params)
        self.momentum = momentum
        self.buffers = [None] * len(self.params)

    @torch.no_grad()
    def step(self, lr):
        """Update every parameter with its ``.grad``, at learning rate ``lr``."""
        for i, p in enumerate(self.params):
            g = p.grad
            if self.buffers[i] is None:
                self.buffers[i] = g.detach().clone()
            else:
                self.buffers[i].mul_(self.momentum).add_(g)
            p.add_(self.buffers[i], alpha=-lr)
