"""Batched inversion of a gradient map: find v with grad psi(v) = x.

For convex psi this is the minimiser of the convex function phi(v) = psi(v) - <x, v>,
whose gradient is grad psi(v) - x. For a batch the objectives of the images are
independent, so minimising their sum with L-BFGS (strong-Wolfe line search) solves all of
them at once; we stop when every image's RMS residual ||grad psi(v) - x|| / sqrt(n) is
at most ``tol``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Inversion:
    """v: preimage; z = grad psi(v); psi = psi(v) (B,); residual (B,) RMS of z - x."""

    v: Tensor
    z: Tensor
    psi: Tensor
    residual: Tensor
    n_iter: int


def rms(t: Tensor) -> Tensor:
    """Per-sample root-mean-square over all but the first dimension, shape (B,)."""
    return t.flatten(1).pow(2).mean(1).sqrt()


def invert_gradient(
    grad_and_value: Callable[[Tensor], tuple[Tensor, Tensor]],
    x: Tensor,
    tol: float = 1e-4,
    max_iter: int = 500,
    check_every: int = 10,
) -> Inversion:
    """Solve grad psi(v) = x for v by L-BFGS on sum_b [psi(v_b) - <x_b, v_b>], from v0 = x.

    :param grad_and_value: v -> (grad psi(v), psi(v) of shape (B,)), without graph.
    :param tol: target RMS residual per image (in the units of x).
    :param max_iter: maximum number of L-BFGS iterations.
    """
    v = x.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [v], lr=1.0, max_iter=check_every, history_size=20,
        tolerance_grad=1e-12, tolerance_change=0.0, line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        g, psi = grad_and_value(v.detach())
        v.grad = g - x
        return (psi - (x * v.detach()).flatten(1).sum(1)).sum()

    n_iter = 0
    for _ in range(math.ceil(max_iter / check_every)):
        g, _ = grad_and_value(v.detach())
        if rms(g - x).max() <= tol:
            break
        opt.step(closure)
        n_iter = opt.state[v]["n_iter"]
    z, psi = grad_and_value(v.detach())
    return Inversion(v.detach(), z, psi, rms(z - x), n_iter)
