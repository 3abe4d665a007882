"""Dihedral averaging of an exact-prox prior: the same prior seen in all 8 orientations.

With D4 the 8 flips / quarter-turn rotations g of the pixel grid (orthogonal, linear),

    psi_D(x) = 1/8 sum_{g in D4} psi(g x),      f_D(x) = grad psi_D(x) = 1/8 sum_g g^T f(g x).

Each psi o g is convex, so psi_D is convex (and alpha-strongly convex if psi is): f_D is
again exactly the prox of a learned regulariser R_D, evaluated by the same formulas
(R_D(f_D(v)) = <v, f_D(v)> - 1/2 ||f_D(v)||^2 - psi_D(v)). f_D commutes with every g,
and with brightness / contrast changes when the base prior does (g permutes pixels). This
is the "self-ensemble" of image denoising, but the average of the 8 outputs is itself a
prox, so PnP keeps its objective. Price: 8 evaluations of the base prior per call.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import WrappedPrior


def dihedral_views(x: Tensor) -> list[Tensor]:
    """The 8 images g x, g in D4, of x (B, C, H, W): 0-3 quarter turns of x and of x flipped
    left-right (each (B, C, H, W) or (B, C, W, H))."""
    flipped = x.flip(-1)
    return [torch.rot90(v, k, (-2, -1)) for v in (x, flipped) for k in range(4)]


class DihedralPrior(WrappedPrior):
    """``base`` averaged over the 8 orientations: psi_D(x) = 1/8 sum_g psi_base(g x).

    :param base: any :class:`ProxPrior` (LPN, AE-LPN, a loaded checkpoint).
    """

    def _potential(self, x: Tensor) -> Tensor:
        return torch.stack([self.base._potential(v) for v in dihedral_views(x)]).mean(0)
