"""A colour prior from a grey one: the grey prior on the opponent colour channels.

With U the orthonormal 3 x 3 opponent-colour transform, applied at every pixel,

    (U x)_1 = (r + g + b) / sqrt(3)          (luminance),
    (U x)_2 = (r - b) / sqrt(2),  (U x)_3 = (r - 2 g + b) / sqrt(6)   (colour differences),

psi the grey prior's potential and c = (c_1, 1, 1) per-channel scales, the colour potential is

    psi_c(x) = sum_i psi(c_i (U x)_i) / c_i^2,      f_c(v) = grad psi_c(v) = U^T [f(c_i (U v)_i) / c_i]_i.

psi_c is convex (a sum of convex functions of linear maps of x), so f_c is exactly a prox,
of R_c(z) = sum_i R(c_i (U z)_i) / c_i^2: U is orthogonal, so 1/2 ||z - v||^2 =
1/2 ||U z - U v||^2 and the colour problem splits into three grey ones, each the prox of a
rescaled R (:mod:`.rescaled`). Denoising in a luminance / colour-difference
space is what colour BM3D does: the colour differences of natural images are smooth and
weak, so the grey prior flattens them far more than it would the r, g, b channels, and the
noise (white, so still white after U) is removed where the channels agree. Measured in
docs/priors.md ("Colour images").
The luminance spans [0, sqrt 3] for images in [0, 1]. Far above the range of the grey training
images R is not a sane regulariser: PnP-ADMM deblurring runs walked off to values of +-15 with
c_1 = 1, and on a saturated highlight still with c_1 = sqrt(3)/2 (luminance contrast 1.5, the
top of the natural presets' contrast augmentation) and 0.75. So by default the luminance is
scaled by c_1 = 1 / sqrt(3) (``luma_scale``) to the mean intensity (r + g + b) / 3, in [0, 1]
like the grey training images; it is then denoised as if its noise were sqrt(3) sigma, which
costs denoising PSNR in the prox and buys stable PnP runs. One-shot denoising has no such
trade-off and :meth:`OpponentColorPrior.denoise` does not pay it: white noise of std sigma
stays white with std sigma in every opponent channel, so it denoises each channel at sigma
with the grey prior's own ``denoise`` (luminance unscaled), measured in docs/priors.md.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_positive
from .base import ProxPrior, WrappedPrior

#: rows: luminance, red - blue, red - 2 green + blue; orthonormal
OPPONENT = torch.tensor([[1 / math.sqrt(3)] * 3,
                         [1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)],
                         [1 / math.sqrt(6), -2 / math.sqrt(6), 1 / math.sqrt(6)]], dtype=torch.float64)


def to_opponent(x: Tensor) -> Tensor:
    """U x per pixel: (B, 3, H, W) r, g, b -> (B, 3, H, W) luminance and two colour differences."""
    return torch.einsum("ij,bjhw->bihw", OPPONENT.to(x), x)


def from_opponent(z: Tensor) -> Tensor:
    """U^T z per pixel, the inverse of :func:`to_opponent` (U is orthogonal)."""
    return torch.einsum("ji,bjhw->bihw", OPPONENT.to(z), z)


class OpponentColorPrior(WrappedPrior):
    """A grey (1-channel) prior applied to the opponent colour channels of an r, g, b image:
    psi_c(x) = sum_i psi(c_i (U x)_i) / c_i^2, c = (luma_scale, 1, 1); an exact prox for
    (B, 3, H, W) images (the prox itself, U^T applied to the channel proxes, comes from autograd).

    :param base: a 1-channel :class:`ProxPrior` (e.g. ``load_pretrained("lpn-natural-gray")``).
    :param luma_scale: c_1, the factor on the luminance before the grey prior sees it (> 0; the
        default 1 / sqrt(3) maps it to the mean intensity, in [0, 1] for images in [0, 1]).
    """

    def __init__(self, base: ProxPrior, luma_scale: float = 1 / math.sqrt(3)):
        if isinstance(base, ProxPrior) and base.in_channels != 1:
            raise ValueError(f"OpponentColorPrior applies a grey (1-channel) prior to each opponent channel; "
                             f"this prior takes {base.in_channels} channels")
        super().__init__(base, in_channels=3)
        self.luma_scale = check_positive(luma_scale, "luma_scale")

    def _potential(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        c = torch.tensor([self.luma_scale, 1.0, 1.0], dtype=x.dtype, device=x.device)
        channels = (to_opponent(x) * c.view(1, 3, 1, 1)).reshape(3 * b, 1, h, w)
        return (self.base._potential(channels).view(b, 3) / c**2).sum(1)

    def denoise(self, y: Tensor, sigma: float, tol: float = 1e-5) -> Tensor:
        """Denoiser at noise level sigma for (B, 3, H, W) images, an exact prox:

            f(y) = U^T [ g_sigma((U y)_i) ]_i,     g_sigma = ``base.denoise(., sigma)``,

        the prox of sum_i R_sigma((U z)_i) with R_sigma the grey regulariser that g_sigma is the prox
        of (MAP below the training level, rescaled above; :meth:`ProxPrior.denoise`). U is
        orthonormal, so the noise has std sigma in every opponent channel and each is denoised at
        its own level; ``luma_scale`` (the prox's trade-off for PnP) plays no part here.
        """
        y = self._check(y)
        b, _, h, w = y.shape
        channels = self.base.denoise(to_opponent(y).reshape(3 * b, 1, h, w), sigma, tol=tol)
        return from_opponent(channels.reshape(b, 3, h, w))

    def config(self) -> dict:
        """The base prior's architecture and arguments, and ``luma_scale``."""
        return {**super().config(), "luma_scale": self.luma_scale}
