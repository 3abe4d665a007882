"""Noise level of measurements from the measurements themselves (no clean reference).

Robust median-absolute-deviation (MAD) estimator of Donoho & Johnstone (1994) on the finest
Haar diagonal detail. For an array y (..., H, W), cropped to even H and W, each 2 x 2 block
[[a, b], [c, d]] gives the diagonal (HH) coefficient

    h = (a - b - c + d) / 2,

an orthonormal combination, so white Gaussian noise of std sigma gives h ~ N(0, sigma^2)
exactly, while a locally linear signal (a + d = b + c) gives h = 0. Then

    sigma_hat = median(|h|) / 0.6745,

0.6745 = Phi^-1(3/4) being the median of |N(0, 1)|. The median ignores the minority of
blocks where edges or texture make h large.

Assumptions: the noise is additive, white (independent between neighbouring entries),
Gaussian and of one level everywhere; the signal is smooth at the finest scale in most
2 x 2 blocks (true of photographs, phantoms and sinograms; a fine texture over most of the
image biases sigma_hat upwards). It does not apply to measurements without a spatial
layout (compressed-sensing vectors, k-space), where neighbouring entries are unrelated.
"""

from __future__ import annotations

import torch
from torch import Tensor

MAD_TO_SIGMA = 0.6745  # median of |N(0, 1)|
MIN_SIDE = 4  # smallest H, W with a useful number (>= 4) of 2 x 2 blocks


def mad_sigma(values: Tensor) -> float:
    """median(|values|) / 0.6745: the std of zero-mean Gaussian ``values`` (robust to a
    minority of outliers)."""
    if values.numel() == 0:
        raise ValueError("no values to estimate the noise level from")
    return float(values.detach().abs().flatten().double().median()) / MAD_TO_SIGMA


def haar_diagonal(y: Tensor) -> Tensor:
    """Finest Haar diagonal detail (a - b - c + d) / 2 of each 2 x 2 block of the last two axes."""
    h, w = y.shape[-2] // 2 * 2, y.shape[-1] // 2 * 2
    y = y[..., :h, :w]
    return (y[..., 0::2, 0::2] - y[..., 0::2, 1::2] - y[..., 1::2, 0::2] + y[..., 1::2, 1::2]) / 2


def haar_blocks_all(mask: Tensor) -> Tensor:
    """Bool (..., H // 2, W // 2): whether all four entries of each 2 x 2 block of ``mask`` are
    true (the blocks that :func:`haar_diagonal` reads)."""
    h, w = mask.shape[-2] // 2 * 2, mask.shape[-1] // 2 * 2
    m = mask[..., :h, :w].bool()
    return m[..., 0::2, 0::2] & m[..., 0::2, 1::2] & m[..., 1::2, 0::2] & m[..., 1::2, 1::2]


def estimate_noise_sigma(y: Tensor) -> float:
    """Std of white Gaussian noise in ``y`` (..., H, W) (an image or a sinogram, the batch
    pooled): sigma_hat = median(|HH|) / 0.6745 (module docstring).

    Raises ValueError for fewer than two spatial axes, sides below 4, or non-finite input.
    """
    if not isinstance(y, Tensor) or not torch.is_floating_point(y):
        raise ValueError(f"the noise estimate needs a floating-point tensor, got {type(y).__name__}")
    if y.ndim < 3 or min(y.shape[-2:]) < MIN_SIDE:
        raise ValueError("the noise estimate needs measurements with two spatial axes of at least "
                         f"{MIN_SIDE} entries (B, ..., H, W), got shape {tuple(y.shape)}")
    if not torch.isfinite(y).all():
        raise ValueError("y contains NaN or Inf values")
    return mad_sigma(haar_diagonal(y.double()))
