"""Image quality metrics used everywhere in the package (one definition each).

PSNR matches scikit-image's peak_signal_noise_ratio with data_range 1; SSIM is
scikit-image's structural_similarity (Gaussian-free 7x7 window, data_range 1) computed
per image and channel-averaged, so every benchmark row uses the same SSIM.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def psnr(x_hat: Tensor, x: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image PSNR in dB, shape (B,): 10 log10(data_range^2 / mean (x_hat - x)^2)."""
    mse = (x_hat - x).flatten(1).pow(2).mean(1).clamp_min(1e-20)
    return 10.0 * torch.log10(data_range**2 / mse)


def ssim(x_hat: Tensor, x: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image SSIM, shape (B,), by skimage.metrics.structural_similarity (channel mean)."""
    from skimage.metrics import structural_similarity

    a, b = x_hat.detach().cpu().double().numpy(), x.detach().cpu().double().numpy()
    scores = [np.mean([structural_similarity(a[i, c], b[i, c], data_range=data_range) for c in range(a.shape[1])])
              for i in range(a.shape[0])]
    return torch.tensor(scores)
