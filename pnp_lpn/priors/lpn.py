"""Learned proximal network (LPN):

    psi(x) = sum_{levels l} sum_{pixels} s_l(x) + alpha/2 ||x||^2 [+ 1/2 ||K x||^2] [+ sum_{pixels} m(x)].

s_l are the fields of a multi-scale input-convex network (:mod:`.convex_net`) with a
smooth softplus activation; the optional terms are a learned convex quadratic and a convex
patch-mixture field m (:mod:`.mixture_field`). So psi is convex, alpha-strongly convex and smooth, and
f = grad psi is exactly prox_R for a learned R (Fang, Buchanan & Sulam, ICLR 2024).
Because psi sums a convex field over pixels, the same network applies to any image size
and keeps the exact-prox property there (no patch averaging).
"""

from __future__ import annotations

from torch import Tensor

from .base import ProxPrior
from .convex_net import ConvexMultiscaleNet, LearnedQuadratic, Softplus
from .mixture_field import MixtureField


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
    :param quadratic_kernel: if > 0 (odd), psi includes 1/2 ||K x||^2 with K a learned
        convolution of that size (:class:`.convex_net.LearnedQuadratic`), started at the
        identity: the untrained prior is f(x) ~ x, and J_f >= K^T K (a learned linear smoother
        that the network adds detail to). Without it the network must build the identity part
        of a denoiser out of softplus kinks: a 600-step probe reached 27.0 dB at sigma 0.05
        and kept 27.2 dB of a clean image (31.1 with it), and repeated application collapsed
        clean images (see docs/priors.md). 0 leaves it out (checkpoints written before it existed).
    :param mixture_kernel: if > 0 (odd), psi includes the convex patch-mixture field of that frame
        size (:class:`.mixture_field.MixtureField`, started as sliding-window zonal DCT selection at
        ``sigma_train``, 0.1 if unset): the learned Gaussian-mixture patch denoiser that the ICNN
        adds detail to. In the natural-gray preset it is worth +0.46 dB at sigma 0.1 on an untouched
        photo and made compressed sensing at M = n/16 work (docs/experiments.md). 0 leaves it out.
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
        quadratic_kernel: int = 5,
        mixture_kernel: int = 0,
    ):
        super().__init__(in_channels, sigma_train)
        self.channels, self.depth, self.beta, self.alpha = tuple(channels), int(depth), float(beta), float(alpha)
        self.kernel = int(kernel)
        self.net = ConvexMultiscaleNet(in_channels, self.channels, self.depth, Softplus(beta), bias=True, kernel=self.kernel)
        self.quadratic_kernel = int(quadratic_kernel)
        self.quadratic = LearnedQuadratic(in_channels, self.quadratic_kernel) if self.quadratic_kernel else None
        self.mixture_kernel = int(mixture_kernel)
        self.mixture = MixtureField(in_channels, self.mixture_kernel, sigma_train or 0.1) if self.mixture_kernel else None

    def _potential(self, x: Tensor) -> Tensor:
        psi = 0.5 * self.alpha * x.flatten(1).pow(2).sum(1)
        if self.quadratic is not None:
            psi = psi + self.quadratic(x)
        if self.mixture is not None:
            psi = psi + self.mixture(x).flatten(1).sum(1)
        for field in self.net(x):
            psi = psi + field.flatten(1).sum(1)
        return psi

    def config(self) -> dict:
        """Constructor arguments (stored in checkpoints)."""
        return dict(in_channels=self.in_channels, channels=list(self.channels), depth=self.depth,
                    beta=self.beta, alpha=self.alpha, sigma_train=self.sigma_train, kernel=self.kernel,
                    quadratic_kernel=self.quadratic_kernel, mixture_kernel=self.mixture_kernel)
