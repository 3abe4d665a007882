"""Per-sample denoising losses, each (B, C, H, W) x (B, C, H, W) -> (B,).

Proximal matching (Fang et al. 2024): l_gamma(x_hat, x) = 1 - exp(-||x_hat - x||_2^2 / gamma^2),
the norm over all C*H*W entries. As gamma -> 0 its minimiser over denoisers tends to the
MAP denoiser (the prox of -log p), where L2 gives the posterior mean and L1 a median.
gamma must grow with the dimension n = C*H*W: the reference uses
gamma = c * sqrt(n) with c = 0.08 at the last stage (see :func:`gamma_for`).
"""

from __future__ import annotations

import math

from torch import Tensor


def _diff(x_hat: Tensor, x: Tensor) -> Tensor:
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat has shape {tuple(x_hat.shape)} but x has {tuple(x.shape)}")
    return (x_hat - x).flatten(1)


def proximal_matching_loss(x_hat: Tensor, x: Tensor, gamma: float) -> Tensor:
    """1 - exp(-||x_hat - x||^2 / gamma^2) per sample, shape (B,)."""
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    return 1.0 - (-_diff(x_hat, x).pow(2).sum(1) / gamma**2).exp()


def l1_loss(x_hat: Tensor, x: Tensor) -> Tensor:
    """Mean absolute error per sample, shape (B,)."""
    return _diff(x_hat, x).abs().mean(1)


def l2_loss(x_hat: Tensor, x: Tensor) -> Tensor:
    """Mean squared error per sample, shape (B,)."""
    return _diff(x_hat, x).pow(2).mean(1)


def gamma_for(shape: tuple[int, ...], factor: float = 0.08) -> float:
    """gamma = factor * sqrt(C*H*W) for samples of shape (C, H, W) (or any sample shape)."""
    return factor * math.sqrt(math.prod(shape))
