"""A learned multi-scale bank of linear filters W with an exact adjoint and ||W|| <= 1.

For each scale s in ``scales`` the image is pooled by P_s (the mean over s x s blocks times s,
so P_s P_s^T = I and ||P_s|| = 1) and filtered by a chain of "valid" convolutions (no padding:
every output sees only pixels inside the image, so W has no boundary artefacts; kernel size
k, channels c_1, ..., c_L = F, the first layer zero-mean so W kills constant images):

    W x = [C_s P_s x]_s,        W^T g = sum_s P_s^T C_s^T g_s   (transposed convolutions).

W is divided by a certified bound B >= ||W||: the chain C_s is a block of the convolution
on the whole plane with the composite kernel K_s (F x C, size e = L (k - 1) + 1), whose norm
is sup_w ||K_s^(w)||_2 <= sup_w ||K_s^(w)||_F. |K_s^|^2 is a trigonometric polynomial of degree
e - 1 per axis, so its maximum over an N x N frequency grid under-estimates the supremum by at
most the factor cos(pi (e - 1) / N)^2 (N = 256 here), which B divides out:

    B^2 = sum_s max_grid ||K_s^||_F^2 / cos(pi (e - 1) / N)^2 >= ||W||^2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORM_GRID = 256


class FilterBank(nn.Module):
    """Multi-scale valid-convolution filter bank (see the module docstring).

    :param in_channels: C.
    :param channels: (c_1, ..., F), the chain's output channels (F filters per scale).
    :param kernel: k, odd kernel size of every layer.
    :param scales: pooling factors, e.g. (1, 2).
    """

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (4, 8, 32), kernel: int = 5,
                 scales: tuple[int, ...] = (1, 2)):
        super().__init__()
        self.in_channels, self.channels, self.kernel, self.scales = in_channels, tuple(channels), kernel, tuple(scales)
        self.chains = nn.ModuleList()
        for _ in self.scales:
            ins = (in_channels, *channels[:-1])
            layers = nn.ParameterList(
                nn.Parameter(torch.randn(c_out, c_in, kernel, kernel) / math.sqrt(c_in * kernel * kernel))
                for c_in, c_out in zip(ins, channels))
            self.chains.append(layers)

    @property
    def n_filters(self) -> int:
        """Number of output channels over all scales (F x number of scales)."""
        return self.channels[-1] * len(self.scales)

    @property
    def extent(self) -> int:
        """e, the size of the composite kernel of one chain."""
        return len(self.channels) * (self.kernel - 1) + 1

    def _raw_chains(self) -> list[list[Tensor]]:
        return [[k - k.mean((2, 3), keepdim=True) if i == 0 else k for i, k in enumerate(chain)]
                for chain in self.chains]

    def kernels(self) -> list[list[Tensor]]:
        """Each scale's chain of kernels, the whole divided by the norm bound B (B^(1/L) per layer)."""
        raw = self._raw_chains()
        scale = self.norm_bound(raw) ** (-1.0 / len(self.channels))
        return [[k * scale for k in chain] for chain in raw]

    def norm_bound(self, raw: list[list[Tensor]] | None = None) -> Tensor:
        """B >= ||W|| of the unnormalised chains (module docstring)."""
        chains = self._raw_chains() if raw is None else raw
        total = sum(torch.fft.fft2(_composite(chain, self.in_channels), s=(NORM_GRID, NORM_GRID)).abs().pow(2)
                    .sum((0, 1)).max() for chain in chains)
        return (total / math.cos(math.pi * (self.extent - 1) / NORM_GRID) ** 2).sqrt()

    def apply(self, kernels: list[list[Tensor]], x: Tensor) -> list[Tensor]:
        """W x as a list over scales of (B, F, H_s - e + 1, W_s - e + 1), H_s = H // s."""
        out = []
        for s, chain in zip(self.scales, kernels):
            h = F.avg_pool2d(x, s) * s if s > 1 else x
            for k in chain:
                h = F.conv2d(h, k)
            out.append(h)
        return out

    def adjoint(self, kernels: list[list[Tensor]], gs: list[Tensor], size: tuple[int, int]) -> Tensor:
        """W^T g for g as returned by :meth:`apply`, an image of spatial ``size``."""
        total = None
        for s, chain, g in zip(self.scales, kernels, gs):
            for k in reversed(chain):  # the transposed valid convolution as a full correlation (fast on CPUs)
                g = F.conv2d(g, k.flip(-1, -2).transpose(0, 1), padding=k.shape[-1] - 1)
            if s > 1:  # P_s^T: spread each value / s over its block; rows/columns beyond the blocks get 0
                g = F.interpolate(g, scale_factor=s, mode="nearest") / s
                g = F.pad(g, (0, size[1] - g.shape[-1], 0, size[0] - g.shape[-2]))
            total = g if total is None else total + g
        return total

    def min_size(self) -> int:
        """The smallest image side the bank accepts (every scale must leave >= 1 output pixel)."""
        return max(self.scales) * self.extent


def _composite(chain: list[Tensor], in_channels: int) -> Tensor:
    """The composite kernel (F, C, e, e) of a chain of valid convolutions (its impulse responses)."""
    e = len(chain) * (chain[0].shape[-1] - 1) + 1
    h = torch.zeros(in_channels, in_channels, 2 * e - 1, 2 * e - 1, dtype=chain[0].dtype, device=chain[0].device)
    h[range(in_channels), range(in_channels), e - 1, e - 1] = 1.0
    for k in chain:
        h = F.conv2d(h, k)
    return h.transpose(0, 1)  # (F, C, e, e), the flipped composite kernel: the same spectrum magnitude
