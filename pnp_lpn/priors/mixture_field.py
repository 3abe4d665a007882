"""A convex patch-mixture field: the potential of a Gaussian-mixture patch denoiser, learned.

Why this shape. For a patch prior that is a mixture of Gaussians (means mu_k, covariances C_k,
weights pi_k), Tweedie's formula makes the MMSE denoiser at noise sigma the gradient of

    psi(y) = 1/2 ||y||^2 + sigma^2 log p_sigma(y) = sigma^2 log sum_k exp(q_k(y) / sigma^2) + const,
    q_k(y) = 1/2 y^T W_k y + m_k^T y + c_k,   W_k = C_k (C_k + sigma^2 I)^-1  (PSD),

a log-sum-exp of convex quadratics: convex, and a "quadratic minus a bump" where the quadratics
cross (a flat-bottomed q_k with small W_k wins for weak patches, a pass-through one for strong
patches), which is the shape a plain ICNN cannot build (docs/experiments.md, `exp-free`).

The field. A P x P frame (convolution, F = C P^2 filters, scaled by 1/P) gives coefficients
c(x) of shape (B, F, H, W); with K = P^2 components, per pixel

    s(x) = tau * logsumexp_k [ (1/2 sum_j w_kj c_j^2 + sum_j v_kj c_j + b_k) / tau ],

w_kj >= 0 (kept by projection, like the ICNN's hidden weights), v, b, the frame and tau > 0
free. Each bracket is a convex quadratic of x for any frame, and log-sum-exp is convex and
non-decreasing in each argument, so s is convex in x for every parameter value; summed over
pixels it is a convex potential term for images of any size.

The start ("zonal DCT selection"). The frame is the orthonormal P x P DCT; component (a, b)
keeps the zone {(u, v): u <= a, v <= b} of DCT frequencies (w = 1 there, 0 elsewhere) and pays
lambda per kept non-DC frequency, b_k = -lambda (|zone| - 1), lambda = 1/2 (t sigma)^2 / P^2,
with tau = 1/2 sigma^2 / P^2. At tau -> 0, f = grad sum s chooses per window the zone with the
most energy above t sigma per kept frequency and projects onto it: a sliding-window
best-zone thresholding denoiser. Untrained, with t = 2 and sigma = 0.1, it scores 26.5 / 27.5
dB on the two natural-gray validation photos (the ICNN preset needed 1000 steps for 27.6).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .convex_net import NonNegConv2d


def dct_frame(size: int) -> Tensor:
    """Orthonormal 2-D DCT-II basis of size x size patches: (size^2, 1, size, size), filter
    u * size + v is the separable product of the 1-D cosines of frequencies u (rows) and v."""
    n = torch.arange(size, dtype=torch.float64)
    basis = torch.stack([math.sqrt((1 if k == 0 else 2) / size) * torch.cos(math.pi * (n + 0.5) * k / size)
                         for k in range(size)])
    return torch.einsum("ai,bj->abij", basis, basis).reshape(size * size, 1, size, size).float()


def zonal_selection(size: int, lam: float) -> tuple[Tensor, Tensor]:
    """Start weights of the zonal DCT components: (w (size^2, size^2) with w[a*size+b, u*size+v] =
    1 iff u <= a and v <= b, biases (size^2,) = -lam * (zone size - 1))."""
    u = torch.arange(size)
    inside = (u[:, None, None, None] >= u[None, None, :, None]) & (u[None, :, None, None] >= u[None, None, None, :])
    w = inside.reshape(size * size, size * size).float()  # [a, b, u, v] -> [a*size+b, u*size+v]
    return w, -lam * (w.sum(1) - 1.0)


class MixtureField(nn.Module):
    """Convex per-pixel field s(x): (B, C, H, W) -> (B, H, W); see the module docstring.

    :param channels: image channels C.
    :param kernel: frame size P (odd); K = P^2 components over F = C P^2 frame coefficients.
    :param sigma: noise level that sets the start (lambda and tau).
    :param threshold: t, the start's keep threshold in units of sigma.
    """

    def __init__(self, channels: int, kernel: int, sigma: float = 0.1, threshold: float = 2.0):
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"the mixture field needs an odd frame size >= 1, got {kernel}")
        if not sigma > 0:
            raise ValueError(f"the mixture field's start needs a noise level sigma > 0, got {sigma}")
        filters, components = channels * kernel * kernel, kernel * kernel
        self.scale = 1.0 / kernel  # frame = scale * weight, so Adam steps stay small relative to the filters
        self.frame = nn.Conv2d(channels, filters, kernel, padding=kernel // 2, bias=False)
        self.quad = NonNegConv2d(filters, components, 1)  # w >= 0
        self.lin = nn.Conv2d(filters, components, 1, bias=True)  # v, b
        self.log_tau = nn.Parameter(torch.tensor(math.log(0.5 * sigma**2 / kernel**2)))
        w, b = zonal_selection(kernel, 0.5 * (threshold * sigma) ** 2 / kernel**2)
        with torch.no_grad():  # block-diagonal: filter c P^2 + j is DCT filter j on channel c (a tight frame)
            self.frame.weight.zero_()
            dct = dct_frame(kernel)[:, 0]
            for c in range(channels):
                self.frame.weight[c * components:(c + 1) * components, c] = dct
            self.quad.weight.copy_(w.repeat(1, channels)[:, :, None, None])
            self.lin.weight.zero_()
            self.lin.bias.copy_(b)

    def forward(self, x: Tensor) -> Tensor:
        c = self.scale * self.frame(x)
        q = 0.5 * self.quad(c * c) + self.lin(c)
        tau = self.log_tau.exp()
        return tau * torch.logsumexp(q / tau, dim=1)
