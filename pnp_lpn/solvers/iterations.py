"""One step of PnP-ADMM and of PnP-PGD, each returning the prior's output and its R.

Both solve  F(x) = 1/2 ||A x - y||^2 + lam * R(x)  when the prior is an exact prox
f = prox_R (docs/maths.md, "What the PnP iterations minimise"), with a step tau (default 1/lam):

- ADMM (scaled form, penalty rho = 1/tau):
      x_{k+1} = argmin_x 1/2 ||A x - y||^2 + 1/(2 tau) ||x - (z_k - u_k)||^2   (operator's prox_l2)
      z_{k+1} = prox_{tau lam R}(x_{k+1} + u_k)
      u_{k+1} = u_k + x_{k+1} - z_{k+1}
  With a box [lo, hi] it solves min F(x) s.t. lo <= x <= hi in consensus form: the box is a
  third block w with the constraint x = w and its own scaled dual s,
      x_{k+1} = argmin_x 1/2 ||A x - y||^2 + 1/(2 tau) (||x - (z_k - u_k)||^2 + ||x - (w_k - s_k)||^2)
              = prox_l2 with step tau/2 at m = ((z_k - u_k) + (w_k - s_k)) / 2
      z_{k+1} = prox_{tau lam R}(x_{k+1} + u_k),   w_{k+1} = clip(x_{k+1} + s_k, lo, hi)
      u_{k+1} = u_k + x_{k+1} - z_{k+1},           s_{k+1} = s_k + x_{k+1} - w_{k+1}
  so z stays a prox output (R known at every iterate) and meets the box as x = z = w.
- PGD (step tau):
      z_{k+1} = prox_{tau lam R}(z_k - tau A^T (A z_k - y))
  F decreases monotonically when tau <= 1/||A||^2, for non-convex R too (exact prox and the
  descent lemma).

With tau = 1/lam the prior step is f itself (one call of the network). A shorter step makes
it the prox of t R with t = tau lam < 1, which an exact-prox prior solves as a small convex
problem (:meth:`pnp_lpn.priors.ProxPrior.scaled_prox_with_regularizer`), so ADMM may use a
penalty larger than lam and PGD a step below 1/||A||^2 whatever lam is.

The iterate reported (and monitored) is the prior's output z, a prox output, so R(z) comes
with it (see :meth:`pnp_lpn.priors.ProxPrior.prox_with_regularizer`); only PGD with a box clips
z after the prior, and R is then unknown (NaN) where the clip moved an image.
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
    """PnP-ADMM state (x, z, u) with penalty 1/``tau``; with ``box`` also (w, s), the box block."""

    def __init__(self, physics, y: Tensor, prior_step: PriorStep, tau: float, x0: Tensor, box=None):
        self.physics, self.y, self.prior_step, self.tau, self.box = physics, y, prior_step, tau, box
        self.z, self.u = x0.clone(), x0.new_zeros(x0.shape)
        if box is not None:
            self.w, self.s = x0.clamp(*box), x0.new_zeros(x0.shape)

    def step(self) -> StepOutput:
        if self.box is None:
            x = self.physics.prox_l2(self.z - self.u, self.y, self.tau)
        else:
            x = self.physics.prox_l2(0.5 * (self.z - self.u + self.w - self.s), self.y, self.tau / 2)
        z, reg = self.prior_step(x + self.u)
        change = z - self.z
        self.u = self.u + x - z
        self.z = z
        residuals = {"residual": rms(x - z)}
        if self.box is not None:
            w = (x + self.s).clamp(*self.box)
            change = change + w - self.w
            self.s = self.s + x - w
            self.w = w
            residuals = {"residual": torch.maximum(rms(x - z), rms(x - w)),
                         "box_violation": rms(z - z.clamp(*self.box))}
        return StepOutput(z, reg, {**residuals, "dual_residual": rms(change) / self.tau})


class PGD:
    """PnP-PGD state z with step ``tau``; ``box`` clips z after the prior."""

    def __init__(self, physics, y: Tensor, prior_step: PriorStep, tau: float, x0: Tensor, box=None):
        self.physics, self.y, self.prior_step, self.tau, self.box = physics, y, prior_step, tau, box
        self.z = x0.clone()
        self.Az = physics.A(self.z)

    def step(self) -> StepOutput:
        grad = self.physics.A_adjoint(self.Az - self.y)
        z, reg = apply_box(*self.prior_step(self.z - self.tau * grad), self.box)
        residual = rms(z - self.z)
        self.z, self.Az = z, self.physics.A(z)
        return StepOutput(z, reg, {"residual": residual}, Az=self.Az)


METHODS = {"admm": ADMM, "pgd": PGD}
