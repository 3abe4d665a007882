"""A learned multi-scale filter bank W with symmetric boundaries, an exact adjoint and ||W|| <= 1.

For each scale s in ``scales`` the image is pooled by P_s (the mean over s x s blocks times s,
so P_s P_s^T = I and ||P_s|| = 1). The pooled n x m image z is extended to its periodic
symmetric extension S z on the 2n x 2m torus (blocks z, F_lr z, F_ud z, F_both z, the flips of
z; ||S z||^2 = 4 ||z||^2) and convolved circularly with F composite kernels K (F x C, size
e = L (k - 1) + 1, the impulse responses of a chain of L convolutions with kernel size k and
channels c_1, ..., c_L = F, the first layer zero-mean so W kills constant images):

    W x = [K * S P_s x]_s,        W^T g = sum_s P_s^T S^T (K~ * g_s),

computed by FFTs on the torus (K~: K reflected, the conjugate spectrum; S^T folds the four
blocks back, flipped). Each response block is the chain applied to a flipped copy of z with
half-sample symmetric boundaries, so border pixels are filtered like the others, W is
closed under the flips (its filters are {f(K_j)}), and R(F_f x) = R(x) when the image sides
are multiples of every scale (a flip of z translates S z on the torus).

W is divided by a certified bound B >= ||W||. Summing ||K' * S z||^2 over the flipped banks
K' = f(K), whose four sums are equal (a flip of K is a flip of the torus), gives

    ||K * S z||^2 <= (1/4) sup_w sum_g ||K^(g w)||_F^2 ||S z||^2 = sup_w P(w) ||z||^2,

with P(w) = sum_{g in G} ||K^(g w)||_F^2 (G the four sign flips of the frequency w), the bound of
the flip-closed bank on the whole plane, so the symmetric boundary costs nothing. P is a
trigonometric polynomial of degree e - 1 per axis, so its maximum over an N x N frequency
grid under-estimates the supremum by at most the factor cos(pi (e - 1) / N)^2 (N = 256 here):

    B^2 = sum_s max_grid P_s / cos(pi (e - 1) / N)^2 >= ||W||^2.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORM_GRID = 256


class FilterBank(nn.Module):
    """Multi-scale, flip-closed filter bank with symmetric boundaries (module docstring).

    :param in_channels: C.
    :param channels: (c_1, ..., F), the chain's output channels (F free filters per scale, each
        used with its 4 flips).
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

    def _composites(self) -> list[Tensor]:
        return [_composite(chain, self.in_channels) for chain in self._raw_chains()]

    def kernels(self) -> BankKernels:
        """W: each scale's composite kernel (F, C, e, e), divided by the norm bound B."""
        composites = self._composites()
        bound = self.norm_bound(composites)
        return BankKernels([k / bound for k in composites], self.scales)

    def norm_bound(self, composites: list[Tensor] | None = None) -> Tensor:
        """B >= ||W|| of the unnormalised composite kernels (module docstring)."""
        total = 0.0
        for k in self._composites() if composites is None else composites:
            power = torch.fft.fft2(k, s=(NORM_GRID, NORM_GRID)).abs().pow(2).sum((0, 1))
            total = total + _flip_frequencies(power).max()
        return (total / math.cos(math.pi * (self.extent - 1) / NORM_GRID) ** 2).sqrt()

    def min_size(self) -> int:
        """The smallest image side the bank accepts (every scale must leave >= 1 pooled pixel)."""
        return max(self.scales)


class BankKernels:
    """W for one set of normalised composite kernels (a list over scales of (F, C, e, e)), with
    their spectra on the torus of each image size met, computed once."""

    def __init__(self, composites: list[Tensor], scales: tuple[int, ...]):
        self.composites, self.scales = composites, scales
        self._spectra: dict[tuple[int, int, int], Tensor] = {}

    def detach(self) -> BankKernels:
        """The same kernels without autograd history."""
        return BankKernels([k.detach() for k in self.composites], self.scales)

    def spectrum(self, i: int, size: tuple[int, int]) -> Tensor:
        """rfft2 of scale i's kernels placed on the 2n x 2m torus, centre at the origin: (F, C, 2n, m + 1)."""
        key = (i, int(size[0]), int(size[1]))
        if key not in self._spectra:
            self._spectra[key] = torch.fft.rfft2(_on_torus(self.composites[i], (2 * key[1], 2 * key[2])))
        return self._spectra[key]

    def apply(self, x: Tensor) -> list[Tensor]:
        """W x as a list over scales of (B, F, 2 H_s, 2 W_s) responses on the torus, H_s = H // s."""
        out = []
        for i in range(len(self.scales)):
            zf, spec, size = self._forward(x, i)
            # inverted filter by filter: the inverse real FFT copies its input, and one filter's copy is
            # small enough to come from the allocator's free lists (docs/benchmarks.md, ridge prox speed)
            out.append(torch.cat([_response(zf, spec[f], size) for f in range(spec.shape[0])], 1))
        return out

    def adjoint(self, gs: list[Tensor], size: tuple[int, int]) -> Tensor:
        """W^T g for g as returned by :meth:`apply`, an image of spatial ``size``."""
        total = 0.0
        for i, g in enumerate(gs):
            spec = self.spectrum(i, (g.shape[-2] // 2, g.shape[-1] // 2))
            gf = torch.fft.rfft2(g)
            # summed filter by filter: faster than one large product
            total = total + self._backward(i, sum(gf[:, f:f + 1] * spec[f].conj() for f in range(g.shape[1])), size)
        return total

    def transform(self, x: Tensor, fn: Callable[[int, int, Tensor], Tensor]) -> Tensor:
        """W^T fn(W x) with fn applied to one response at a time: ``fn(i, f, r)`` gets the
        response r (B, 1, 2 H_s, 2 W_s) of scale i's filter f and returns a map of r's shape. Equal
        to ``adjoint([cat_f fn(i, f, r_if)]_i)`` but without the full response stack: each filter's
        temporaries are small enough for the allocator to reuse (docs/benchmarks.md, ridge prox speed)."""
        total = 0.0
        for i in range(len(self.scales)):
            zf, spec, size = self._forward(x, i)
            acc = 0.0
            for f in range(spec.shape[0]):
                g = torch.fft.rfft2(fn(i, f, _response(zf, spec[f], size)))
                acc = acc + g * spec[f].conj()
            total = total + self._backward(i, acc, x.shape[-2:])
        return total

    def _forward(self, x: Tensor, i: int) -> tuple[Tensor, Tensor, tuple[int, int]]:
        """(rfft2 S P_s x (B, C, 2 H_s, W_s + 1), scale i's spectra (F, C, 2 H_s, W_s + 1), the torus
        size (2 H_s, 2 W_s)) for scale s = ``scales[i]``."""
        s = self.scales[i]
        z = F.avg_pool2d(x, s) * s if s > 1 else x
        spec = self.spectrum(i, z.shape[-2:])
        return torch.fft.rfft2(symmetric_extension(z)), spec, (2 * z.shape[-2], 2 * z.shape[-1])

    def _backward(self, i: int, acc: Tensor, size: tuple[int, int]) -> Tensor:
        """P_s^T S^T irfft2(acc): scale i's summed back-projection (B, C, 2 H_s, W_s + 1 spectrum) as an
        image of spatial ``size``."""
        n = acc.shape[-2]
        z = symmetric_extension_adjoint(torch.fft.irfft2(acc, s=(n, 2 * (acc.shape[-1] - 1))))
        s = self.scales[i]
        if s > 1:  # P_s^T: spread each value / s over its block; rows/columns beyond the blocks get 0
            z = F.interpolate(z, scale_factor=s, mode="nearest") / s
            z = F.pad(z, (0, size[1] - z.shape[-1], 0, size[0] - z.shape[-2]))
        return z


def _response(zf: Tensor, spec: Tensor, size: tuple[int, int]) -> Tensor:
    """One filter's response (B, 1, *size) on the torus: the inverse FFT of zf (B, C, ...) times the
    filter's spectrum (C, ...), summed over the channels."""
    out = zf * spec
    return torch.fft.irfft2(out if out.shape[1] == 1 else out.sum(1, keepdim=True), s=size)


def symmetric_extension(z: Tensor) -> Tensor:
    """S z: the 2n x 2m periodic symmetric extension of the last two axes (blocks z, F_lr z / F_ud z, F_both z)."""
    top = torch.cat([z, z.flip(-1)], -1)
    return torch.cat([top, top.flip(-2)], -2)


def symmetric_extension_adjoint(g: Tensor) -> Tensor:
    """S^T g: the four n x m blocks of g added back, each flipped to z's orientation."""
    n, m = g.shape[-2] // 2, g.shape[-1] // 2
    rows = g[..., :n, :] + g[..., n:, :].flip(-2)
    return rows[..., :m] + rows[..., m:].flip(-1)


def _on_torus(k: Tensor, shape: tuple[int, int]) -> Tensor:
    """k (..., e, e) as an array of ``shape`` with k's centre at index (0, 0), wrapped around
    (entries that land on one place add up, so small tori stay exact)."""
    e, pad = k.shape[-1], k.shape[-1] // 2
    rows = (torch.arange(e, device=k.device) - pad) % shape[0]
    cols = (torch.arange(e, device=k.device) - pad) % shape[1]
    out = k.new_zeros(*k.shape[:-1], shape[1]).index_add(-1, cols, k)
    return out.new_zeros(*k.shape[:-2], shape[0], shape[1]).index_add(-2, rows, out)


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
