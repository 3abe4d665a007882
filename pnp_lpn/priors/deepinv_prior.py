"""Expose an exact-prox prior to deepinv's optimisers as an *explicit* prior g = R.

deepinv's PnP wrapper treats a denoiser as an implicit prior (no cost). With this adapter,
``deepinv.optim`` algorithms get ``fn(x) = R(x)`` (by convex inversion, see
:meth:`ProxPrior.regularizer`), so their cost tracking and cost-based stopping work. The
prox is exact only at unit scale: prox_{gamma R} = f needs gamma = 1, i.e. deepinv's
``lambda * stepsize = 1`` (PGD: stepsize eta and lambda 1/eta minimise
1/2||Ax - y||^2 + (1/eta) R(x), as in :func:`pnp_lpn.solve`).
"""

from __future__ import annotations

from deepinv.optim import Prior
from torch import Tensor

from .base import ProxPrior


class DeepinvExplicitPrior(Prior):
    """deepinv ``Prior`` with g = R of ``prior``; ``tol``: RMS residual of the inversion."""

    def __init__(self, prior: ProxPrior, tol: float = 1e-4, max_iter: int = 500):
        super().__init__()
        self.prior, self.tol, self.max_iter = prior, tol, max_iter
        self.explicit_prior = True

    def fn(self, x: Tensor, *args, **kwargs) -> Tensor:
        """R(x), shape (B,)."""
        return self.prior.regularizer(x, tol=self.tol, max_iter=self.max_iter)

    def prox(self, x: Tensor, *args, gamma: float = 1.0, **kwargs) -> Tensor:
        """prox_{gamma R}(x) = f(x) for gamma = 1 (the only scale the network represents)."""
        if abs(float(gamma) - 1.0) > 1e-6:
            raise ValueError(f"an LPN is prox_R exactly, not prox_(gamma R) for gamma={float(gamma):g}: "
                             "set deepinv's lambda * stepsize = 1 (e.g. lambda = 1/stepsize)")
        return self.prior(x)
