"""The prior step of a PnP iteration: v -> (prox_{tR}(v), R there) or a denoiser's output.

Continuation: the first K calls of a step may denoise at a raised noise level,

    s_k = c_k s,   c_k = C^(1 - k / K)   (k = 0, ..., K - 1; C = ``CONTINUATION_START``),

falling geometrically to the step's own level s (an exact-prox prior's MAP level
sigma_train sqrt(t), a generic denoiser's sigma_d), then every call is the step itself. A
stronger prior step early moves an iterate that starts far from any image (a least-squares
start where the data leave most of the image free) much further per iteration; the iteration
then goes on from there on the stated problem.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..priors.base import ProxPrior
from ..priors.inversion import rms

#: v -> (f(v), R(f(v)) of shape (B,) or None)
PriorStep = Callable[[Tensor], tuple[Tensor, Tensor | None]]

CONTINUATION_START = 5.0  # C: the first continued call denoises at C x the step's level


def continuation_factor(k: int, iterations: int) -> float:
    """c_k = C^(1 - k / K) for call k < K = ``iterations``, 1 from call K on (module docstring)."""
    return CONTINUATION_START ** (1 - k / iterations) if k < iterations else 1.0


class ScaledProxStep:
    """v -> (prox_{tR}(v), R) of an exact-prox prior for 0 < t < max_prox_weight (t < 1 for an
    LPN; any t for the solved prox of a ridge prior), each solve warm-started
    at the previous one's w; ``inner_iters`` counts the solver iterations. The first
    ``continuation`` calls are the prior's :meth:`~pnp_lpn.priors.ProxPrior.level_prox` at
    c_k sigma_train sqrt(t) (module docstring).

    The warm start already solves the new problem up to ||v - v_prev||, so the inner
    tolerance is a tenth of the smallest nonzero RMS change over the batch (at most 1e-4, at
    least a few float eps): a fixed tolerance would stop the outer iteration as soon as its
    steps fell below it. An image whose v did not move (held by the run-off guard) is already
    solved by its warm start and does not set the tolerance.
    """

    def __init__(self, prior: ProxPrior, t: float, continuation: int = 0):
        self.prior, self.t, self.w, self.v, self.inner_iters = prior, t, None, None, 0
        self.error_bound = 0.0  # largest certified RMS distance of a step's output to the exact prox
        self.continuation, self.calls = continuation, 0
        self.level = float(prior.sigma_train or 0.0) * math.sqrt(t)  # the MAP level of prox_{tR}

    def __call__(self, v: Tensor) -> tuple[Tensor, Tensor]:
        floor = 10 * torch.finfo(v.dtype).eps * float(rms(v).max())
        moved = rms(v - self.v) if self.v is not None else v.new_zeros(0)
        change = 0.1 * float(moved[moved > 0].min()) if bool((moved > 0).any()) else 1e-4
        tol = max(min(change, 1e-4), floor)
        if self.calls < self.continuation:
            level = continuation_factor(self.calls, self.continuation) * self.level
            res = self.prior.level_prox(v, level, w0=self.w, tol=tol)
        else:
            res = self.prior.scaled_prox_with_regularizer(v, self.t, w0=self.w, tol=tol)
        self.w, self.v, self.inner_iters, self.calls = res.w, v, self.inner_iters + res.n_iter, self.calls + 1
        if res.error_bound is not None:
            self.error_bound = max(self.error_bound, float(res.error_bound.max()))
        return res.z, res.reg

    def note(self) -> str:
        """What the solve says about its prior steps (t, inner iterations, certified accuracy)."""
        bound = (f", each within {self.error_bound:.2g} (RMS, certified) of the exact prox"
                 if self.prior.inner_solve else "")
        return (f"prior step: prox of t R with t = step * lam = {self.t:.4g}, "
                f"{self.inner_iters} inner solver iterations in total{bound}")


class DenoiserStep:
    """v -> (D(v, s_k), None) for a deepinv denoiser, in the network's dtype and back in v's:
    s_k = c_k sigma_d over the first ``continuation`` calls, then sigma_d."""

    def __init__(self, denoiser: torch.nn.Module, sigma_d: float | None, continuation: int = 0):
        self.denoiser, self.sigma_d, self.continuation, self.calls = denoiser, sigma_d, continuation, 0
        param = next(denoiser.parameters(), None)
        self.dtype = None if param is None else param.dtype

    def __call__(self, v: Tensor) -> tuple[Tensor, None]:
        sigma = self.sigma_d
        if self.calls < self.continuation:
            sigma = continuation_factor(self.calls, self.continuation) * sigma
        self.calls += 1
        return self.denoiser(v if self.dtype is None else v.to(self.dtype), sigma).to(v.dtype), None


def can_continue(prior, sigma_d: float | None) -> bool:
    """Whether the prior step can denoise at a raised level: an exact-prox prior with a
    sigma_train, or a deepinv denoiser given a noise level."""
    if isinstance(prior, ProxPrior):
        return prior.sigma_train is not None
    return isinstance(prior, torch.nn.Module) and sigma_d is not None


def make_prior_step(prior, sigma_d: float | None, t: float, continuation: int = 0) -> tuple[PriorStep, bool]:
    """(v -> (z, R(z) or None), whether R is available); t = tau lam is the weight of R in
    the prox of an exact-prox prior (generic denoisers get it through sigma_d); the first
    ``continuation`` calls denoise at raised levels (module docstring)."""
    if continuation and not can_continue(prior, sigma_d):
        raise ValueError("continuation needs a prior that denoises at several noise levels (a pnp_lpn prior with "
                         "sigma_train, or a deepinv denoiser with a noise level); pass continuation=0")
    if isinstance(prior, ProxPrior):
        plain = t == 1.0 and not prior.inner_solve and not continuation  # a solved prox gains from warm starts
        return (prior.prox_with_regularizer if plain else ScaledProxStep(prior, t, continuation)), True
    if isinstance(prior, torch.nn.Module) and hasattr(prior, "forward"):
        return DenoiserStep(prior, sigma_d, continuation), False
    if callable(prior):
        def step(v: Tensor):
            return prior(v), None
        return step, False
    raise ValueError(f"prior must be a pnp_lpn prior, a deepinv denoiser or a callable, got {type(prior).__name__}")
