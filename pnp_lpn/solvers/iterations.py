"""One step of PnP-ADMM and of PnP-PGD, each returning the prior's output and its R.

Both solve  F(x) = 1/2 ||A x - y||^2 + lam * R(x)  when the prior is an exact prox
f = prox_R (SPEC section 5):

- ADMM (scaled form, penalty rho = lam):
      x_{k+1} = argmin_x 1/2 ||A x - y||^2 + lam/2 ||x - (z_k - u_k)||^2   (operator's prox_l2)
      z_{k+1} = f(x_{k+1} + u_k)
      u_{k+1} = u_k + x_{k+1} - z_{k+1}
  z = prox_{(lam R)/lam}, so the penalty is the regularisation weight.
- PGD (step eta = 1/lam):
      z_{k+1} = f(z_k - eta A^T (A z_k - y))
  which minimises 1/2 ||A x - y||^2 + (1/eta) R(x); F decreases monotonically when
  eta <= 1/||A||^2, i.e. lam >= ||A||^2.

The iterate reported (and monitored) is always the prior's output z, a prox output, so R(z)
comes for free from the prior (see :meth:`pnp_lpn.priors.ProxPrior.prox_with_regularizer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..priors.inversion import rms

#: v -> (f(v), R(f(v)) of shape (B,) or None)
PriorStep = Callable[[Tensor], tuple[Tensor, Tensor | None]]


def apply_box(z: Tensor, reg: Tensor | None, box: tuple[float, float] | None) -> tuple[Tensor, Tensor | None]:
    """Clip z to [lo, hi]. R is known only at prox outputs, so for images that the clip
    changed R(z) becomes NaN (unknown) rather than a value of another point."""
    if box is None:
        return z, reg
    clipped = z.clamp(*box)
    if reg is not None:
        reg = torch.where(rms(clipped - z) > 0, torch.full_like(reg, float("nan")), reg)
    return clipped, reg


@dataclass
class StepOutput:
    """z: new iterate (prior output), reg: R(z) or None, residuals: name -> (B,) tensors,
    Az: A z when the step computed it anyway (saves one operator call in monitoring)."""

    z: Tensor
    reg: Tensor | None
    residuals: dict[str, Tensor]
    Az: Tensor | None = None


class ADMM:
    """PnP-ADMM state (x, z, u) with penalty ``lam``; ``box`` clips z after the prior."""

    def __init__(self, physics, y: Tensor, prior_step: PriorStep, lam: float, x0: Tensor, box=None):
        self.physics, self.y, self.prior_step, self.lam, self.box = physics, y, prior_step, lam, box
        self.z, self.u = x0.clone(), x0.new_zeros(x0.shape)

    def step(self) -> StepOutput:
        x = self.physics.prox_l2(self.z - self.u, self.y, 1.0 / self.lam)
        z, reg = apply_box(*self.prior_step(x + self.u), self.box)
        dual = self.lam * rms(z - self.z)
        self.u = self.u + x - z
        self.z = z
        return StepOutput(z, reg, {"residual": rms(x - z), "dual_residual": dual})


class PGD:
    """PnP-PGD state z with step 1/``lam``; ``box`` clips z after the prior."""

    def __init__(self, physics, y: Tensor, prior_step: PriorStep, lam: float, x0: Tensor, box=None):
        self.physics, self.y, self.prior_step, self.eta, self.box = physics, y, prior_step, 1.0 / lam, box
        self.z = x0.clone()
        self.Az = physics.A(self.z)

    def step(self) -> StepOutput:
        grad = self.physics.A_adjoint(self.Az - self.y)
        z, reg = apply_box(*self.prior_step(self.z - self.eta * grad), self.box)
        residual = rms(z - self.z)
        self.z, self.Az = z, self.physics.A(z)
        return StepOutput(z, reg, {"residual": residual}, Az=self.Az)


METHODS = {"admm": ADMM, "pgd": PGD}
