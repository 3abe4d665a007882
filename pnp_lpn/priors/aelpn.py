"""Affine-equivariant LPN (AE-LPN): f(a x + b 1) = a f(x) + b 1 for all a > 0, real b.

With P the orthogonal projection onto the all-ones direction (Px = mean(x) 1 over all
C*H*W entries) and u = (I - P) x,

    psi(x) = sum_{levels l} sum_{pixels} relu(s_l(u))^2 + alpha ||u||^2 + 1/2 ||P x||^2,

where s_l are the fields of a multi-scale ICNN with no biases anywhere and a leaky-ReLU
activation, so every s_l is convex and positively 1-homogeneous. Then:

- convexity: relu(s) is convex and >= 0 and t -> t^2 is convex and non-decreasing on
  t >= 0, so relu(s)^2 is convex (squaring s itself would not be when s < 0);
- homogeneity: psi(c x) = c^2 psi(x), so f = grad psi is 1-homogeneous: f(a x) = a f(x);
- shift: u ignores b 1 and the last term passes the mean through, so f(x + b 1) = f(x) + b 1.

Why leaky ReLU and not SortPool (the AE-LPN paper's choice): SortPool outputs the min of
two channels, which is concave, so non-negative weights after it do not give a convex
potential unless each pair's weight on the max dominates the weight on the min. Leaky
ReLU is convex, non-decreasing and positively homogeneous, so the plain clamp W >= 0 is
a complete convexity certificate.

With ``shift_equivariant=False`` u = x and the last term is dropped (scale equivariance only).

The sum over pixels of squared per-pixel fields (rather than the square of one global sum)
keeps f independent of the image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import ProxPrior
from .convex_net import ConvexMultiscaleNet, LearnedQuadratic, LeakyReLU, NonNegConv2d


class AELPN(ProxPrior):
    """Affine-equivariant learned proximal network prior (scale- and shift-equivariant prox).

    :param in_channels: number of image channels C.
    :param channels: hidden width of each resolution level.
    :param depth: convolutions per level.
    :param slope: leaky-ReLU negative slope in [0, 1).
    :param alpha: strong-convexity weight on the mean-free part: alpha ||u||^2.
    :param kernel: spatial size of the convolutions (odd; 1 for 1-D / per-pixel data).
    :param sigma_train: noise level the prior was trained at (metadata only: the prox is
        scale-equivariant, so a caller's sigma carries no information it could use).
    :param shift_equivariant: False drops the mean projection (psi = sum relu(s(x))^2 +
        alpha ||x||^2): f is then only scale-equivariant, f(a x) = a f(x), which is the
        meaningful symmetry for scalars or data without a brightness offset.
    :param abs_readout: add w |u| (w >= 0, per channel, initialised to 1/sqrt(2)) to the
        full-resolution field: convex, non-negative and 1-homogeneous, so convexity and
        equivariance are kept; it keeps the field positive where the network alone would sit
        in relu's flat zero region (dead units: no gradient), and the prior starts at f = identity.
    """

    range_limited = False  # equivariant to every a x + c: no range is special

    def __init__(
        self,
        in_channels: int = 1,
        channels: tuple[int, ...] = (24, 64, 96, 128),
        depth: int = 2,
        slope: float = 0.2,
        alpha: float = 1e-3,
        sigma_train: float | None = None,
        kernel: int = 3,
        shift_equivariant: bool = True,
        abs_readout: bool = False,
        quadratic_kernel: int = 0,
    ):
        super().__init__(in_channels, sigma_train)
        self.channels, self.depth, self.slope, self.alpha = tuple(channels), int(depth), float(slope), float(alpha)
        self.kernel, self.shift_equivariant = int(kernel), bool(shift_equivariant)
        self.net = ConvexMultiscaleNet(in_channels, self.channels, self.depth, LeakyReLU(slope), bias=False, kernel=self.kernel)
        self.quadratic_kernel = int(quadratic_kernel)
        share = 0.5 if abs_readout and quadratic_kernel else 1.0  # of the identity at the start
        self.quadratic = LearnedQuadratic(in_channels, self.quadratic_kernel, share) if quadratic_kernel else None
        self.abs_readout = None
        if abs_readout:  # w |u| added to the full-resolution field, w >= 0: grad relu(w|u|)^2 = 2 w^2 u
            self.abs_readout = NonNegConv2d(in_channels, 1, 1)
            with torch.no_grad():
                self.abs_readout.weight.fill_((share / 2) ** 0.5)

    def _potential(self, x: Tensor) -> Tensor:
        if self.shift_equivariant:
            flat = x.flatten(1)
            mean = flat.mean(1)
            u = x - mean.view(-1, 1, 1, 1)
            psi = self.alpha * u.flatten(1).pow(2).sum(1) + 0.5 * flat.shape[1] * mean.pow(2)
        else:
            u, psi = x, self.alpha * x.flatten(1).pow(2).sum(1)
        if self.quadratic is not None:
            psi = psi + self.quadratic(u)
        fields = self.net(u)
        if self.abs_readout is not None:
            fields[0] = fields[0] + self.abs_readout(u.abs())
        for field in fields:
            psi = psi + F.relu(field).pow(2).flatten(1).sum(1)
        return psi

    def config(self) -> dict:
        """Constructor arguments (stored in checkpoints)."""
        return dict(in_channels=self.in_channels, channels=list(self.channels), depth=self.depth,
                    slope=self.slope, alpha=self.alpha, sigma_train=self.sigma_train, kernel=self.kernel,
                    shift_equivariant=self.shift_equivariant, abs_readout=self.abs_readout is not None,
                    quadratic_kernel=self.quadratic_kernel)
