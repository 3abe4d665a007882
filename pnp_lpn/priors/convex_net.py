"""A fully convolutional, multi-scale input-convex network (ICNN).

Level l works at resolution 2^-l. With x_l the input averaged down to that level
(x_0 = x, x_l = avgpool_2(x_{l-1}), linear in x):

    z_{0,1}   = act(A_{0} x_0 + b)                       (first layer: A unconstrained)
    z_{l,1}   = act(W z_{l-1,depth} (stride 2) + A x_l + b)   for l >= 1
    z_{l,k+1} = act(W z_{l,k} + A x_l + b)               for k >= 1
    s_l       = U_l z_{l,depth}                          (1x1 conv to one field)

with every W and every readout U_l elementwise >= 0 (restored by ``ProxPrior.project_weights()`` after an
optimiser step, never inside forward), A and b unconstrained, and ``act`` convex and
non-decreasing. Each entry of z and s is then a convex function of x: a non-negative
combination of convex functions, plus an affine function, composed with a convex
non-decreasing map. Zero padding of hidden states and average pooling are linear with
non-negative coefficients, so they keep convexity too.

The network returns the per-level fields s_l of shape (B, 1, H_l, W_l); callers sum them
over pixels, so a potential built on it is defined for any image size and its gradient
does not shrink with the image size (docs/maths.md, "Learned proximal networks": sum, not mean).
With ``bias=False`` and a positively 1-homogeneous activation (leaky ReLU) every s_l is
positively 1-homogeneous in x: s(c x) = c s(x) for c > 0 (used by the AE-LPN).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NonNegConv2d(nn.Conv2d):
    """Convolution whose weights are kept >= 0 by :meth:`project` (no bias).

    Initialised at exp(N(log_init, 0.1^2)), i.e. close to zero, so that the network starts
    near an affine map of x (the reference LPN initialisation).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, log_init: float = -10.0):
        super().__init__(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        with torch.no_grad():
            self.weight.normal_(log_init, 0.1).exp_()

    @torch.no_grad()
    def project(self) -> None:
        """Clamp the weights to the non-negative orthant (Euclidean projection)."""
        self.weight.clamp_(min=0.0)


class LearnedQuadratic(nn.Module):
    """q(x) = 1/2 ||K x||^2 per sample, (B, C, H, W) -> (B,): a convex quadratic for any K.

    K is an unconstrained convolution C -> 4C (odd ``kernel``, zero padding), so grad q =
    K^T K x is a learned symmetric positive semi-definite filter. Filter 4c of K starts as
    sqrt(``gain``) times the identity on channel c (the others small), so grad q starts at
    ``gain`` times the identity.
    """

    def __init__(self, channels: int, kernel: int, gain: float = 1.0):
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"the quadratic term needs an odd kernel size >= 1, got {kernel}")
        self.conv = nn.Conv2d(channels, 4 * channels, kernel, padding=kernel // 2, bias=False)
        with torch.no_grad():
            self.conv.weight.normal_(0.0, 1e-2)
            for c in range(channels):
                self.conv.weight[4 * c].zero_()
                self.conv.weight[4 * c, c, kernel // 2, kernel // 2] = gain**0.5

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * self.conv(x).flatten(1).pow(2).sum(1)


class Softplus(nn.Module):
    """softplus_beta(t) = log(1 + exp(beta t)) / beta: convex, increasing, smooth."""

    def __init__(self, beta: float):
        super().__init__()
        self.beta = float(beta)

    def forward(self, t: Tensor) -> Tensor:
        return F.softplus(t, beta=self.beta)


class LeakyReLU(nn.Module):
    """max(t, slope t) with 0 <= slope < 1: convex, non-decreasing, positively 1-homogeneous."""

    def __init__(self, slope: float):
        super().__init__()
        if not 0.0 <= slope < 1.0:
            raise ValueError(f"leaky-ReLU slope must be in [0, 1) to stay convex and monotone, got {slope}")
        self.slope = float(slope)

    def forward(self, t: Tensor) -> Tensor:
        return F.leaky_relu(t, self.slope)


class ConvexMultiscaleNet(nn.Module):
    """Multi-scale ICNN: x (B, C, H, W) -> list of fields s_l (B, 1, ceil(H/2^l), ceil(W/2^l)).

    :param in_channels: C.
    :param channels: hidden width per level; its length is the number of levels.
    :param depth: convolutions per level (the first of levels >= 1 has stride 2).
    :param activation: the convex non-decreasing activation module.
    :param bias: whether the input (skip) convolutions carry biases.
    :param kernel: spatial size of every convolution (odd).
    """

    def __init__(
        self,
        in_channels: int,
        channels: tuple[int, ...],
        depth: int,
        activation: nn.Module,
        bias: bool = True,
        kernel: int = 3,
    ):
        super().__init__()
        if depth < 1 or not channels:
            raise ValueError(f"need depth >= 1 and at least one level, got depth={depth}, channels={channels}")
        self.act = activation
        self.depth = depth
        self.skips = nn.ModuleList()  # A: unconstrained, acts on the (pooled) input
        self.hidden = nn.ModuleList()  # W: non-negative, acts on the previous hidden state
        self.readouts = nn.ModuleList()  # U_l: non-negative 1x1 to one field per level
        prev = None
        for width in channels:
            for k in range(depth):
                conv = nn.Conv2d(in_channels, width, kernel, padding=kernel // 2, bias=bias)
                nn.init.normal_(conv.weight, 0.0, 1.0 / math.sqrt(in_channels * kernel * kernel))
                self.skips.append(conv)
                if prev is not None:
                    self.hidden.append(NonNegConv2d(prev, width, kernel, stride=2 if k == 0 else 1))
                prev = width
            self.readouts.append(NonNegConv2d(width, 1, 1))

    def forward(self, x: Tensor) -> list[Tensor]:
        fields = []
        skips, hidden = iter(self.skips), iter(self.hidden)
        z = None
        x_l = x
        for level, readout in enumerate(self.readouts):
            if level > 0:
                x_l = F.avg_pool2d(x_l, 2, ceil_mode=True)
            for _ in range(self.depth):
                pre = next(skips)(x_l)
                if z is not None:
                    pre = pre + next(hidden)(z)
                z = self.act(pre)
            fields.append(readout(z))
        return fields
