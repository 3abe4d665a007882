"""The prior step of a PnP iteration: v -> (prox_{tR}(v), R there) or a denoiser's output."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..priors.base import ProxPrior
from ..priors.inversion import rms

#: v -> (f(v), R(f(v)) of shape (B,) or None)
PriorStep = Callable[[Tensor], tuple[Tensor, Tensor | None]]


class ScaledProxStep:
    """v -> (prox_{tR}(v), R) of an exact-prox prior for 0 < t < max_prox_weight (t < 1 for an
    LPN; any t for the solved prox of a ridge prior), each solve warm-started
    at the previous one's w; ``inner_iters`` counts the solver iterations.

    The warm start already solves the new problem up to ||v - v_prev||, so the inner
    tolerance is a tenth of the smallest nonzero RMS change over the batch (at most 1e-4, at
    least a few float eps): a fixed tolerance would stop the outer iteration as soon as its
    steps fell below it. An image whose v did not move (held by the run-off guard) is already
    solved by its warm start and does not set the tolerance.
    """

    def __init__(self, prior: ProxPrior, t: float):
        self.prior, self.t, self.w, self.v, self.inner_iters = prior, t, None, None, 0
        self.error_bound = 0.0  # largest certified RMS distance of a step's output to the exact prox

    def __call__(self, v: Tensor) -> tuple[Tensor, Tensor]:
        floor = 10 * torch.finfo(v.dtype).eps * float(rms(v).max())
        moved = rms(v - self.v) if self.v is not None else v.new_zeros(0)
        change = 0.1 * float(moved[moved > 0].min()) if bool((moved > 0).any()) else 1e-4
        res = self.prior.scaled_prox_with_regularizer(v, self.t, w0=self.w, tol=max(min(change, 1e-4), floor))
        self.w, self.v, self.inner_iters = res.w, v, self.inner_iters + res.n_iter
        if res.error_bound is not None:
            self.error_bound = max(self.error_bound, float(res.error_bound.max()))
        return res.z, res.reg

    def note(self) -> str:
        """What the solve says about its prior steps (t, inner iterations, certified accuracy)."""
        bound = (f", each within {self.error_bound:.2g} (RMS, certified) of the exact prox"
                 if self.prior.inner_solve else "")
        return (f"prior step: prox of t R with t = step * lam = {self.t:.4g}, "
                f"{self.inner_iters} inner solver iterations in total{bound}")


def make_prior_step(prior, sigma_d: float | None, t: float) -> tuple[PriorStep, bool]:
    """(v -> (z, R(z) or None), whether R is available); t = tau lam is the weight of R in
    the prox of an exact-prox prior (generic denoisers get it through sigma_d)."""
    if isinstance(prior, ProxPrior):
        plain = t == 1.0 and not prior.inner_solve  # a solved prox gains from warm starts
        return (prior.prox_with_regularizer if plain else ScaledProxStep(prior, t)), True
    if isinstance(prior, torch.nn.Module) and hasattr(prior, "forward"):
        param = next(prior.parameters(), None)

        def step(v: Tensor):  # in the network's dtype, back in the solver's
            return prior(v if param is None else v.to(param.dtype), sigma_d).to(v.dtype), None
    elif callable(prior):
        def step(v: Tensor):
            return prior(v), None
    else:
        raise ValueError(f"prior must be a pnp_lpn prior, a deepinv denoiser or a callable, got {type(prior).__name__}")
    return step, False
