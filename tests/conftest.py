import math

import pytest
import torch

from pnp_lpn.priors.base import ProxPrior


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def randomize(prior, scale: float = 1.0, seed: int = 0):
    """Give every parameter a random value of its natural size, then restore the convexity
    constraints: std scale/sqrt(fan_in) for free weights, 2 scale/fan_in for the
    non-negative ones (so activations neither vanish nor explode with depth), 0.1 scale
    for biases."""
    from pnp_lpn.priors.convex_net import NonNegConv2d

    nonneg = {id(m.weight) for m in prior.modules() if isinstance(m, NonNegConv2d)}
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in prior.parameters():
            fan_in = p[0].numel() if p.ndim else 1
            if id(p) in nonneg:
                std = 2 * scale / fan_in
            else:
                std = scale / math.sqrt(fan_in) if p.ndim > 1 else 0.1 * scale
            p.copy_(std * torch.randn(p.shape, generator=g, dtype=p.dtype))
    prior.project_weights()
    return prior


class QuadraticPrior(ProxPrior):
    """psi(v) = ||v||^2 / (2 (1 + mu)): f(v) = v / (1 + mu) = prox of R(x) = mu/2 ||x||^2."""

    def __init__(self, mu: float, in_channels: int = 1):
        super().__init__(in_channels)
        self.mu = mu

    def _potential(self, x):
        return x.flatten(1).pow(2).sum(1) / (2 * (1 + self.mu))

    def config(self):
        return {"mu": self.mu}


class SoftThresholdPrior(ProxPrior):
    """psi(v) = sum 1/2 (|v| - 1)_+^2: f(v) = soft(v, 1) = prox of R(x) = ||x||_1, so the prox
    of t R is soft(v, t) and R(z) = ||z||_1 exactly (closed forms for the tests)."""

    def _potential(self, x):
        return 0.5 * (x.abs() - 1).clamp_min(0).pow(2).flatten(1).sum(1)

    def config(self):
        return {}


def soft(v, t):
    return torch.sign(v) * (v.abs() - t).clamp_min(0)
