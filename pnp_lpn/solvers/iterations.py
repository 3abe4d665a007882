"""PnP iterations: one step each, returning the prior's output and its R.

All solve  F(x) = 1/2 ||A x - y||^2 + lam * R(x)  when the prior is an exact prox
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
- APGD (FISTA with monotone restart, step tau), per image:
      theta_{k+1} = (1 + sqrt(1 + 4 theta_k^2)) / 2,   beta_k = (theta_k - 1) / theta_{k+1}
      v_k = z_k + beta_k (z_k - z_{k-1})
      u_k = prox_{tau lam R}(v_k - tau A^T (A v_k - y))
      z_{k+1} = u_k, theta as above          if F(u_k) <= F(z_k)
      z_{k+1} = z_k, theta_{k+1} = 1         otherwise (restart: the next step is a PGD step)
  F(z_k) never increases (for any tau; with tau <= 1/||A||^2 the restart step is a descent
  step, so the iteration does not stall). A v_k is not a prox output, so the gradient step
  is taken there and F is evaluated only at prox outputs u_k, where R comes with the prior.

With tau = 1/lam the prior step is f itself (one call of the network). A shorter step makes
it the prox of t R with t = tau lam < 1, which an exact-prox prior solves as a small convex
problem (:meth:`pnp_lpn.priors.ProxPrior.scaled_prox_with_regularizer`), so ADMM may use a
penalty larger than lam and PGD a step below 1/||A||^2 whatever lam is.

The iterate reported (and monitored) is the prior's output z, a prox output, so R(z) comes
with it (see :meth:`pnp_lpn.priors.ProxPrior.prox_with_regularizer`); only PGD/APGD with a box
clip z after the prior, and R is then unknown (NaN) where the clip moved an image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..priors.inversion import rms
from .prior_step import PriorStep


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
    """z: new iterate (prior output), reg: R(z) or None, residuals: name -> (B,) tensors
    ("residual" and the iteration's ``history_fields``), Az: A z when the step computed it
    anyway (saves one operator call in monitoring)."""

    z: Tensor
    reg: Tensor | None
    residuals: dict[str, Tensor]
    Az: Tensor | None = None


class Iteration:
    """The state of a PnP iteration and what it declares to the solver's monitor.

    - :meth:`start`: the state at the start x0 (called by the constructor);
    - :meth:`step`: one iteration, replacing (never writing into) its state tensors;
    - ``batch_state``: the names of the state tensors with a batch dimension (put back for
      images held by the run-off guard; distinct tensors, none a view of another);
    - ``history_fields``: its residuals beyond "residual" recorded in the history;
    - ``objective_may_rise``: whether F may rise near a limit (no divergence test then);
    - ``gradient_step``: whether the step tau is a gradient step on the data term (descent
      needs tau <= 1/||A||^2);
    - ``needs_objective``: whether the step itself needs R (a prior with a regulariser);
    - :meth:`primal_residual`: the relative residual that, with the relative change, must
      fall to tol for convergence.
    """

    name: ClassVar[str]
    gradient_step: ClassVar[bool] = False
    needs_objective: ClassVar[bool] = False
    z: Tensor

    def __init__(self, physics, y: Tensor, prior_step: PriorStep, tau: float, x0: Tensor, box=None,
                 lam: float | None = None):
        self.physics, self.y, self.prior_step, self.tau, self.box = physics, y, prior_step, tau, box
        self.lam = 1.0 / tau if lam is None else lam
        self.start(x0)

    def start(self, x0: Tensor) -> None:
        """Set the state at the start x0."""
        self.z = x0.clone()

    @property
    def batch_state(self) -> tuple[str, ...]:
        return ("z",)

    @property
    def history_fields(self) -> tuple[str, ...]:
        return ()

    @property
    def objective_may_rise(self) -> bool:
        return False

    def step(self) -> StepOutput:
        raise NotImplementedError

    def primal_residual(self, out: StepOutput, rel_change: Tensor) -> Tensor:
        """(B,): the relative change itself unless the iteration has a residual of its own."""
        return rel_change


def relative_residual(out: StepOutput) -> Tensor:
    """||residual|| / ||z|| per image."""
    return out.residuals["residual"] / rms(out.z).clamp_min(1e-12)


class ADMM(Iteration):
    """PnP-ADMM state (x, z, u) with penalty 1/``tau``; with ``box`` also (w, s), the box block."""

    name = "admm"

    def start(self, x0: Tensor) -> None:
        self.z, self.u = x0.clone(), x0.new_zeros(x0.shape)
        if self.box is not None:
            self.w, self.s = x0.clamp(*self.box), x0.new_zeros(x0.shape)

    @property
    def batch_state(self) -> tuple[str, ...]:
        return ("z", "u") if self.box is None else ("z", "u", "w", "s")

    @property
    def history_fields(self) -> tuple[str, ...]:
        return ("dual_residual",) if self.box is None else ("dual_residual", "box_violation")

    @property
    def objective_may_rise(self) -> bool:
        """With a box the iterates approach it from outside, where F may lie lower."""
        return self.box is not None

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

    def primal_residual(self, out: StepOutput, rel_change: Tensor) -> Tensor:
        """||x_k - z_k|| / ||z_k|| (with a box the larger of the two blocks' residuals)."""
        return relative_residual(out)


class PGD(Iteration):
    """PnP-PGD state z with step ``tau``; ``box`` clips z after the prior."""

    name = "pgd"
    gradient_step = True

    def start(self, x0: Tensor) -> None:
        self.z = x0.clone()
        self.Az = self.physics.A(self.z)

    @property
    def batch_state(self) -> tuple[str, ...]:
        return ("z", "Az")

    def step(self) -> StepOutput:
        grad = self.physics.A_adjoint(self.Az - self.y)
        z, reg = apply_box(*self.prior_step(self.z - self.tau * grad), self.box)
        residual = rms(z - self.z)
        self.z, self.Az = z, self.physics.A(z)
        return StepOutput(z, reg, {"residual": residual}, Az=self.Az)


def _per_image(values: Tensor, like: Tensor) -> Tensor:
    """(B,) values shaped to broadcast against ``like`` (B, ...)."""
    return values.view(-1, *[1] * (like.ndim - 1))


class APGD(Iteration):
    """Accelerated PnP proximal gradient (FISTA) with monotone restart, step ``tau``, per image
    (module docstring). State: z, A z, the last move dz = z_k - z_{k-1} and A dz, theta, and
    F, R at z; ``box`` clips the prior's output (an unknown F there is accepted)."""

    name = "apgd"
    gradient_step = True
    needs_objective = True

    def start(self, x0: Tensor) -> None:
        self.z = x0.clone()
        self.Az = self.physics.A(self.z)
        self.dz, self.dAz = torch.zeros_like(self.z), torch.zeros_like(self.Az)
        batch = x0.shape[0]
        self.theta = x0.new_ones(batch)
        self.F, self.reg = x0.new_full((batch,), math.inf), x0.new_full((batch,), math.nan)

    @property
    def batch_state(self) -> tuple[str, ...]:
        return ("z", "Az", "dz", "dAz", "theta", "F", "reg")

    @property
    def history_fields(self) -> tuple[str, ...]:
        return ("restarted",)

    def step(self) -> StepOutput:
        theta = 0.5 * (1 + torch.sqrt(1 + 4 * self.theta**2))
        beta = (self.theta - 1) / theta
        v = self.z + _per_image(beta, self.z) * self.dz
        Av = self.Az + _per_image(beta, self.Az) * self.dAz  # A v by linearity: no extra operator call
        u, reg = apply_box(*self.prior_step(v - self.tau * self.physics.A_adjoint(Av - self.y)), self.box)
        if reg is None:
            raise ValueError("APGD restarts on the objective and needs a prior with a regulariser")
        Au = self.physics.A(u)
        F = 0.5 * (Au - self.y).flatten(1).pow(2).sum(1) + self.lam * reg
        accept = ~(F > self.F)  # an unknown (NaN) F is accepted
        z = torch.where(_per_image(accept, u), u, self.z)
        Az = torch.where(_per_image(accept, Au), Au, self.Az)
        self.dz, self.dAz, self.z, self.Az = z - self.z, Az - self.Az, z, Az
        self.theta = torch.where(accept, theta, torch.ones_like(theta))
        self.F, self.reg = torch.where(accept, F, self.F), torch.where(accept, reg, self.reg)
        residuals = {"residual": rms(u - v), "restarted": (~accept).to(u.dtype)}
        return StepOutput(z, self.reg, residuals, Az=Az)

    def primal_residual(self, out: StepOutput, rel_change: Tensor) -> Tensor:
        """||u_k - v_k|| / ||z_{k+1}||: the fixed-point residual of the prox-gradient map at v_k
        (nonzero at a restart, where z does not move)."""
        return relative_residual(out)


ITERATIONS: dict[str, type[Iteration]] = {cls.name: cls for cls in (ADMM, PGD, APGD)}
