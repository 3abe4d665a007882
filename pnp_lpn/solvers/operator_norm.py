"""||A||^2 of a linear operator, from one place."""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

#: power-iteration estimates of operators without ``norm_sq()``, dropped with the operator
_POWER_ITERATION_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def operator_norm_sq(physics, x_like: Tensor, n_iter: int = 50) -> float:
    """||A||^2 = the largest eigenvalue of A^T A: the operator's own ``norm_sq()`` if it has
    one, else ``n_iter`` steps of a seeded power iteration v <- A^T A v / ||v|| from a
    standard normal v of x_like's shape (one image), estimate <v, A^T A v> with ||v|| = 1.
    The estimate is cached per operator object (a weak reference: nothing is set on it)."""
    if hasattr(physics, "norm_sq"):
        return float(physics.norm_sq())
    try:
        cached = _POWER_ITERATION_CACHE.get(physics)
    except TypeError:  # not weakly referenceable: no cache
        cached = None
    if cached is not None:
        return cached
    norm = _power_iteration(physics, x_like, n_iter)
    try:
        _POWER_ITERATION_CACHE[physics] = norm
    except TypeError:
        pass
    return norm


def _power_iteration(physics, x_like: Tensor, n_iter: int) -> float:
    g = torch.Generator(device="cpu").manual_seed(0)
    v = torch.randn(x_like[:1].shape, generator=g, dtype=x_like.dtype).to(x_like.device)
    norm = 0.0
    for _ in range(n_iter):
        v = v / v.norm()
        w = physics.A_adjoint(physics.A(v))
        norm = float((v * w).sum())
        v = w
    return norm
