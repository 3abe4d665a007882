"""Learned one-dimensional profiles phi_i with curvature bounded below (ridge regularisers).

Each of ``n`` profiles is given by its derivative phi_i', a continuous piecewise-linear
function on the uniform grid t_k = -T + k h (k = 0..K-1, K odd, h = 2T / (K - 1)) with

    phi_i'(t_mid) = phi_i'(0) = 0,   slope a_ik = (phi_i'(t_{k+1}) - phi_i'(t_k)) / h >= -rho,

and constant beyond the grid (phi_i is linear there). So

- phi_i'' = a_ik on [t_k, t_{k+1}] and 0 outside [-T, T]: phi_i'' >= -rho everywhere
  (rho = 0: phi_i convex; rho = 1: phi_i + t^2 / 2 convex, "1-weakly convex");
- phi_i(0) = 0 = phi_i'(0), phi_i is the exact integral of phi_i' (piecewise quadratic).

The slope bound is applied inside :meth:`SplineProfiles.slopes` (a clamp of the free
parameters), so every parameter value gives a valid profile.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SplineProfiles(nn.Module):
    """``n`` profiles phi_i on ``knots`` grid points over [-``span``, ``span``], phi_i'' >= -``rho``.

    :param n: number of profiles (one per filter channel).
    :param knots: K, odd, >= 3.
    :param span: T, half-width of the grid.
    :param rho: the curvature bound (>= 0).
    :param init_slope: the initial slope s inside [-1, 1]. Outside, phi' starts constant (a
        Huber-like start, rho = 0) or, for rho > 0, falls at the steepest allowed slope -rho
        back to 0 and stays there (a truncated-quadratic-like start: large responses, edges,
        cost a bounded amount). s is also the scale of the slopes' parameters (slope = s x
        parameter), so an optimiser's step moves every slope by the same fraction of the start.
    """

    def __init__(self, n: int, knots: int = 41, span: float = 4.0, rho: float = 0.0, init_slope: float = 1.0):
        super().__init__()
        if knots < 3 or knots % 2 == 0:
            raise ValueError(f"knots must be odd and >= 3, got {knots}")
        if rho < 0:
            raise ValueError(f"rho must be >= 0, got {rho}")
        self.n, self.knots, self.span, self.rho = n, knots, float(span), float(rho)
        self.h = 2 * self.span / (knots - 1)
        self.gain = float(init_slope)
        t = torch.linspace(-self.span, self.span, knots, dtype=torch.float64)
        target = init_slope * t.clamp(-1, 1)  # phi' at the knots; for rho > 0 falling back to 0 beyond |t| = 1
        if rho > 0:
            target = target.sign() * (init_slope - rho * (t.abs() - 1).clamp_min(0)).clamp_min(0).minimum(target.abs())
        start = (target.diff() / self.h / init_slope).float()
        self.raw_slopes = nn.Parameter(start.repeat(n, 1))

    def slopes(self) -> Tensor:
        """a (n, K - 1) = gain x parameters, clamped to >= -rho."""
        return (self.gain * self.raw_slopes).clamp_min(-self.rho)

    def tables(self) -> tuple[Tensor, Tensor, Tensor]:
        """(a, c, Phi): slopes (n, K-1), phi' at the knots (n, K), phi at the knots (n, K)."""
        a = self.slopes()
        mid = self.knots // 2
        steps = self.h * a
        c = torch.cat([a.new_zeros(self.n, 1), steps.cumsum(1)], 1)
        c = c - c[:, mid:mid + 1]
        areas = self.h * (c[:, :-1] + c[:, 1:]) / 2
        phi = torch.cat([a.new_zeros(self.n, 1), areas.cumsum(1)], 1)
        return a, c, phi - phi[:, mid:mid + 1]

    def max_curvature(self) -> Tensor:
        """max_i,t phi_i''(t) (>= 0), a bound used for step sizes."""
        return self.slopes().max().clamp_min(0)

    def evaluate(self, u: Tensor, order: tuple[int, ...] = (0, 1), first: int = 0) -> dict[int, Tensor]:
        """phi^(d)(u) for d in ``order`` (0: phi, 1: phi', 2: phi''), u of shape (B, n', ...)
        holding the inputs of profiles ``first`` .. ``first + n' - 1``.

        Within interval k with offset s = clamp(u - t_k, 0, h) and excess e = u - t_k - s
        (nonzero only beyond the grid): phi'(u) = c_k + a_k s,
        phi(u) = Phi_k + c_k s + a_k s^2 / 2 + phi'(u) e, phi''(u) = a_k if e = 0 else 0.
        """
        n = u.shape[1]
        if first + n > self.n:
            raise ValueError(f"profiles {first}..{first + n - 1} requested, only {self.n} exist")
        a, c, phi = (t[first:first + n] for t in self.tables())
        b, shape = u.shape[0], u.shape
        flat = u.reshape(b, n, -1)
        k = torch.floor((flat + self.span) / self.h).clamp(0, self.knots - 2).long()
        offset = flat - (k.to(flat.dtype) * self.h - self.span)
        s = offset.clamp(0, self.h)
        excess = offset - s

        def pick(table: Tensor) -> Tensor:
            return torch.gather(table.to(flat.dtype).unsqueeze(0).expand(b, -1, -1), 2, k)

        ak, ck = pick(a), pick(c)
        d1 = ck + ak * s
        out = {}
        if 0 in order:
            out[0] = (pick(phi) + ck * s + 0.5 * ak * s * s + d1 * excess).reshape(shape)
        if 1 in order:
            out[1] = d1.reshape(shape)
        if 2 in order:
            out[2] = torch.where(excess == 0, ak, torch.zeros_like(ak)).reshape(shape)
        return out
