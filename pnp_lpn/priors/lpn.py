"""Learned proximal network (LPN): psi(x) = sum_{levels l} sum_{pixels} s_l(x) + alpha/2 ||x||^2.

s_l are the fields of a multi-scale input-convex network (:mod:`.convex_net`) with a
smooth softplus activation, so psi is convex, alpha-strongly convex and smooth, and
f = grad psi is exactly prox_R for a learned R (Fang, Buchanan & Sulam, ICLR 2024).
Because psi sums a convex field over pixels, the same network applies to any image size
and keeps the exact-prox property there (no patch averaging).
"""

from __future__ import annotations

from torch import Tensor

from .base import ProxPrior
from .convex_net import ConvexMultiscaleNet, Softplus


class LPN(ProxPrior):
    """Learned proximal network prior.

    :param in_channels: number of image channels C.
    :param channels: hidden width of each resolution level (length = number of levels;
        level l works at 2^-l of the input resolution).
    :param depth: convolutions per level.
    :param beta: softplus sharpness (larger is closer to ReLU).
    :param alpha: strong-convexity weight: psi includes alpha/2 ||x||^2, so f is injective.
    :param kernel: spatial size of the convolutions (odd; 1 for 1-D / per-pixel data).
    :param sigma_train: noise level the prior was trained at (metadata; see ``forward``).
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: tuple[int, ...] = (24, 64, 96, 128),
        depth: int = 2,
        beta: float = 20.0,
        alpha: float = 1e-3,
        sigma_train: float | None = None,
        kernel: int = 3,
    ):
        super().__init__(in_channels, sigma_train)
        self.channels, self.depth, self.beta, self.alpha = tuple(channels), int(depth), float(beta), float(alpha)
        self.kernel = int(kernel)
        self.net = ConvexMultiscaleNet(in_channels, self.channels, self.depth, Softplus(beta), bias=True, kernel=self.kernel)

    def _potential(self, x: Tensor) -> Tensor:
        psi = 0.5 * self.alpha * x.flatten(1).pow(2).sum(1)
        for field in self.net(x):
            psi = psi + field.flatten(1).sum(1)
        return psi

    def config(self) -> dict:
        return dict(in_channels=self.in_channels, channels=list(self.channels), depth=self.depth,
                    beta=self.beta, alpha=self.alpha, sigma_train=self.sigma_train, kernel=self.kernel)
