"""A learned multi-scale filter bank W with symmetric boundaries, an exact adjoint and ||W|| <= 1.

For each scale s in ``scales`` the image is pooled by P_s (the mean over s x s blocks times s,
so P_s P_s^T = I and ||P_s|| = 1); the pooled image z is flipped by each f of the group
G = {identity, left-right, up-down, both}, extended by p = (e - 1) / 2 pixels with
half-sample symmetric boundaries (E: z_{-1-i} = z_i, z_{n+i} = z_{n-1-i}, as in the DCT-II) and
filtered by a chain of "valid" convolutions (kernel size k, channels c_1, ..., c_L = F, composite
kernel K of size e = L (k - 1) + 1, the first layer zero-mean so W kills constant images):

    W x = [C E F_f P_s x]_{s, f},        W^T g = sum_s P_s^T sum_f F_f E^T C^T g_{s,f}.

Every response has the pooled image's size, so pixels at the border are filtered like the
others, and W is closed under the flips (its filters are {f(K_j)}), so R(F_f x) = R(x) when the
image sides are multiples of every scale.

W is divided by a certified bound B >= ||W||. For z of size n x m let S z be its periodic
symmetric extension on the 2n x 2m torus (blocks z, F_lr z, F_ud z, F_both z, ||S z||^2 =
4 ||z||^2); E F_f z is S z seen around block f, so sum_f ||C E F_f z||^2 = ||K * S z||^2 (circular
convolution). Summing this over the flipped banks f(K), whose four sums are equal, gives

    sum_f ||C E F_f z||^2 <= (1/4) sup_w sum_g ||K^(g w)||_F^2 ||S z||^2 = sup_w P(w) ||z||^2,

with P(w) = sum_{g in G} ||K^(g w)||_F^2 (g w: w with flipped signs), the same sup that bounds the
flip-closed bank on the whole plane, so the symmetric boundary costs nothing. P is a
trigonometric polynomial of degree e - 1 per axis, so its maximum over an N x N frequency
grid under-estimates the supremum by at most the factor cos(pi (e - 1) / N)^2 (N = 256 here):

    B^2 = sum_s max_grid P_s / cos(pi (e - 1) / N)^2 >= ||W||^2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORM_GRID = 256
FLIPS = 4  # |G|: identity, left-right, up-down, both


class FilterBank(nn.Module):
    """Multi-scale, flip-closed filter bank with symmetric boundaries (module docstring).

    :param in_channels: C.
    :param channels: (c_1, ..., F), the chain's output channels (F free filters per scale, each
        used with its |G| = 4 flips).
    :param kernel: k, odd kernel size of every layer.
    :param scales: pooling factors, e.g. (1, 2).
    """

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (4, 8, 8), kernel: int = 5,
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
        """Number of free filters over all scales (F x number of scales): one profile each."""
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
        total = 0.0
        for chain in chains:
            power = torch.fft.fft2(_composite(chain, self.in_channels), s=(NORM_GRID, NORM_GRID)).abs().pow(2).sum((0, 1))
            total = total + _flip_frequencies(power).max()
        return (total / math.cos(math.pi * (self.extent - 1) / NORM_GRID) ** 2).sqrt()

    def apply(self, kernels: list[list[Tensor]], x: Tensor) -> list[Tensor]:
        """W x as a list over scales of (B, F, 4, H_s, W_s) (the flips on dim 2), H_s = H // s."""
        pad, out = (self.extent - 1) // 2, []
        for s, chain in zip(self.scales, kernels):
            z = F.avg_pool2d(x, s) * s if s > 1 else x
            h = symmetric_pad(torch.cat(_flipped(z)), pad)  # (4B, C, H_s + 2p, W_s + 2p), flip-major
            for k in chain:
                h = F.conv2d(h, k)
            out.append(h.unflatten(0, (FLIPS, x.shape[0])).permute(1, 2, 0, 3, 4))
        return out

    def adjoint(self, kernels: list[list[Tensor]], gs: list[Tensor], size: tuple[int, int]) -> Tensor:
        """W^T g for g as returned by :meth:`apply`, an image of spatial ``size``."""
        pad, total = (self.extent - 1) // 2, None
        for s, chain, g in zip(self.scales, kernels, gs):
            h = g.permute(2, 0, 1, 3, 4).flatten(0, 1)
            for k in reversed(chain):  # the transposed valid convolution as a full correlation (fast on CPUs)
                h = F.conv2d(h, k.flip(-1, -2).transpose(0, 1), padding=k.shape[-1] - 1)
            h = symmetric_pad_adjoint(h, pad, g.shape[-2:])
            z = sum(_flipped(h.unflatten(0, (FLIPS, g.shape[0]))[i], i) for i in range(FLIPS))
            if s > 1:  # P_s^T: spread each value / s over its block; rows/columns beyond the blocks get 0
                z = F.interpolate(z, scale_factor=s, mode="nearest") / s
                z = F.pad(z, (0, size[1] - z.shape[-1], 0, size[0] - z.shape[-2]))
            total = z if total is None else total + z
        return total

    def min_size(self) -> int:
        """The smallest image side the bank accepts (every scale must leave >= 1 pooled pixel)."""
        return max(self.scales)


_FLIP_DIMS = ((), (-1,), (-2,), (-2, -1))


def _flipped(z: Tensor, which: int | None = None) -> list[Tensor] | Tensor:
    """The flips F_f z of G (all four, or the one numbered ``which``); each flip is its own inverse."""
    if which is not None:
        return z.flip(_FLIP_DIMS[which]) if _FLIP_DIMS[which] else z
    return [_flipped(z, i) for i in range(FLIPS)]


def _symmetric_index(n: int, pad: int, device: torch.device) -> Tensor:
    """Source indices of the half-sample symmetric extension of a length-n axis by ``pad``."""
    i = torch.arange(-pad, n + pad, device=device) % (2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def symmetric_pad(z: Tensor, pad: int) -> Tensor:
    """E z: half-sample symmetric extension of the last two axes by ``pad`` on every side
    (any pad, the extension being 2n-periodic)."""
    rows = _symmetric_index(z.shape[-2], pad, z.device)
    cols = _symmetric_index(z.shape[-1], pad, z.device)
    return z.index_select(-2, rows).index_select(-1, cols)


def symmetric_pad_adjoint(h: Tensor, pad: int, size: tuple[int, int]) -> Tensor:
    """E^T h: every extended pixel's value added back to its source pixel (``size`` = (n, m))."""
    rows = _symmetric_index(size[0], pad, h.device)
    cols = _symmetric_index(size[1], pad, h.device)
    out = h.new_zeros(*h.shape[:-1], size[1]).index_add_(-1, cols, h)
    return out.new_zeros(*h.shape[:-2], size[0], size[1]).index_add_(-2, rows, out)


def _flip_frequencies(power: Tensor) -> Tensor:
    """P(w) = sum_g power(g w) on the N x N DFT grid (sign flips: index k -> -k mod N)."""
    lr = power.flip(-1).roll(1, -1)
    return power + lr + power.flip(-2).roll(1, -2) + lr.flip(-2).roll(1, -2)


def _composite(chain: list[Tensor], in_channels: int) -> Tensor:
    """The composite kernel (F, C, e, e) of a chain of valid convolutions (its impulse responses)."""
    e = len(chain) * (chain[0].shape[-1] - 1) + 1
    h = torch.zeros(in_channels, in_channels, 2 * e - 1, 2 * e - 1, dtype=chain[0].dtype, device=chain[0].device)
    h[range(in_channels), range(in_channels), e - 1, e - 1] = 1.0
    for k in chain:
        h = F.conv2d(h, k)
    return h.transpose(0, 1)  # (F, C, e, e), the flipped composite kernel: the same spectrum magnitude
