"""Batched inversion of a gradient map: find v with grad psi(v) = x.

For convex psi this is the minimiser of phi(v) = psi(v) - <x, v>, whose gradient is
grad psi(v) - x. The images of a batch are independent problems, so each gets its own
L-BFGS memory, curvature scaling and Armijo backtracking step (all vectorised over the
batch); an image stops moving once its RMS residual ||grad psi(v) - x|| / sqrt(n) is at
most ``tol``. Inverting a denoiser is ill-conditioned (it shrinks noise directions towards
the strong-convexity floor alpha), which is why a quasi-Newton method pays off here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

#: sufficient-decrease constant of the line search
ARMIJO = 1e-4


@dataclass
class Inversion:
    """v: preimage; z = grad psi(v); psi = psi(v) (B,); residual (B,) RMS of z - x; the number of
    L-BFGS iterations and of (batched) evaluations of grad psi, line-search trials included."""

    v: Tensor
    z: Tensor
    psi: Tensor
    residual: Tensor
    n_iter: int
    n_eval: int


def rms(t: Tensor) -> Tensor:
    """Per-sample root-mean-square over all but the first dimension, shape (B,)."""
    return t.flatten(1).pow(2).mean(1).sqrt()


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).flatten(1).sum(1)


def _bcast(t: Tensor, like: Tensor) -> Tensor:
    return t.view(-1, *([1] * (like.ndim - 1)))


def _lbfgs_direction(g: Tensor, pairs: list[tuple[Tensor, Tensor, Tensor]], scale: Tensor) -> Tensor:
    """-H g by the two-loop recursion, per image; rho = 0 marks a skipped pair."""
    q, alphas = g.clone(), []
    for s, y, rho in reversed(pairs):
        a = rho * _dot(s, q)
        q -= _bcast(a, q) * y
        alphas.append(a)
    r = _bcast(scale, q) * q
    for (s, y, rho), a in zip(pairs, reversed(alphas)):
        b = rho * _dot(y, r)
        r += _bcast(a - b, r) * s
    return -r


def invert_gradient(
    grad_and_value: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    x: Tensor,
    tol: float = 1e-4,
    max_iter: int = 500,
    history: int = 20,
    max_backtracks: int = 10,
    v0: Tensor | None = None,
) -> Inversion:
    """Solve grad psi(v) = x for v by per-image L-BFGS on psi(v) - <x, v>.

    :param grad_and_value: (v, rows) -> (grad psi(v), psi(v) of shape (b,)) without graph, for
        v (b, ...) holding the images ``rows`` (a (b,) index into the batch; per-image
        parameters of psi are picked with it). Only images still moving are evaluated.
    :param tol: target RMS residual per image (in the units of x).
    :param max_iter: maximum number of L-BFGS iterations.
    :param v0: start (shape of x); default x.
    """
    v = (x if v0 is None else v0).detach().clone()
    z, psi = grad_and_value(v, torch.arange(v.shape[0], device=v.device))
    phi, g = psi - _dot(x, v), z - x
    pairs: list[tuple[Tensor, Tensor, Tensor]] = []
    scale = torch.ones(phi.shape, dtype=v.dtype, device=v.device)
    stalled = torch.zeros_like(phi, dtype=torch.bool)  # line search failed: at the float floor
    n_iter, n_eval = 0, 1
    for n_iter in range(1, max_iter + 1):
        active = (rms(g) > tol) & ~stalled
        if not active.any():
            n_iter -= 1
            break
        d = _lbfgs_direction(g, pairs, scale) * _bcast(active.to(g.dtype), g)
        slope = _dot(g, d)
        bad = slope >= 0  # not a descent direction: fall back to steepest descent
        d = torch.where(_bcast(bad, d), -g * _bcast(active.to(g.dtype), g), d)
        slope = torch.where(bad, -_dot(g, g) * active, slope)
        accepted, (v_new, z_new, psi_new, phi_new), trials = _line_search(grad_and_value, x, (v, z, psi, phi), d,
                                                                           slope, ~active, max_backtracks)
        n_eval += trials
        stalled |= ~accepted
        g_new = z_new - x
        s, y = v_new - v, g_new - g
        sy = _dot(s, y)
        good = accepted & active & (sy > 1e-12 * _dot(s, s).sqrt() * _dot(y, y).sqrt())
        rho = torch.where(good, 1.0 / sy.clamp_min(1e-30), torch.zeros_like(sy))
        pairs = (pairs + [(s, y, rho)])[-history:]
        scale = torch.where(good, sy / _dot(y, y).clamp_min(1e-30), scale)
        v, z, psi, phi, g = v_new, z_new, psi_new, phi_new, g_new
    return Inversion(v, z, psi, rms(z - x), n_iter, n_eval)


def _line_search(grad_and_value: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], x: Tensor,
                 point: tuple[Tensor, Tensor, Tensor, Tensor], d: Tensor, slope: Tensor, done: Tensor,
                 max_backtracks: int) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor, Tensor], int]:
    """Backtracking from ``point`` = (v, z, psi, phi) along d, per image, step 1 first (with H = I
    it is v + (x - f(v))). A step a is accepted when

    - Armijo: phi(v + a d) <= phi + c a slope (c = 1e-4), or
    - approximate Wolfe (Hager and Zhang): phi(v + a d) <= phi + 1e-6 |phi| and
      phi'(a) <= (1 - 2 c) |slope|, with phi'(a) = <grad phi(v + a d), d>,

    the second for the last iterations, where phi's decrease is under its rounding error and only
    the gradient still resolves progress (for a quadratic both say a <= 2 (1 - c) a*). A rejected
    step a is replaced by the zero of the secant of phi' on [0, a], kept in [a / 10, a / 2].
    Images in ``done`` keep their point and are never evaluated. Returns (accepted, the new point,
    the number of trials: batched evaluations)."""
    v, phi = point[0], point[3]
    new = [t.clone() for t in point]
    accepted, step = done.clone(), torch.ones_like(phi, dtype=v.dtype)
    for trials in range(1, max_backtracks + 1):
        rows = (~accepted).nonzero().squeeze(1)
        a, s0 = step[rows], slope[rows]
        trial = v[rows] + _bcast(a, v) * d[rows]
        z_t, psi_t = grad_and_value(trial, rows)
        phi_t = psi_t - _dot(x[rows], trial)
        slope_t = _dot(z_t - x[rows], d[rows])
        armijo = phi_t <= phi[rows] + ARMIJO * a * s0
        wolfe = (phi_t <= phi[rows] + 1e-6 * phi[rows].abs()) & (slope_t <= -(1 - 2 * ARMIJO) * s0)
        ok = armijo | wolfe
        keep = rows[ok]
        for target, value in zip(new, (trial, z_t, psi_t, phi_t)):
            target[keep] = value[ok]
        accepted[keep] = True
        if accepted.all():
            break
        curved = slope_t > s0  # phi' grew along d: the secant through (0, s0), (a, slope_t) has a zero
        secant = torch.where(curved, a * s0 / (s0 - slope_t).clamp_max(-1e-30), a / 2)
        step[rows] = torch.minimum(torch.maximum(secant, a / 10), a / 2)
    return accepted, tuple(new), trials
