"""Classical denoisers behind the deepinv interface ``forward(x, sigma)``, x (B, C, H, W).

- :class:`TV`: total-variation denoising, the exact prox of ths * TV,
      u = argmin_u 1/2 ||u - x||^2 + ths * sum_pixels ||(D u)_p||_2,
  with D the forward differences (zero at the last row/column), solved by deepinv's
  ``TVDenoiser`` (Condat's over-relaxed Chambolle-Pock). The noise level maps to the
  weight as ``ths = weight * sigma`` (``weight`` = 1 by default: deepinv's own
  convention, since deepinv's PnP calls ``TVDenoiser(x, sigma)`` positionally). Linear
  in sigma on purpose: inside PnP-ADMM with penalty lam and sigma_d = s_n / sqrt(lam)
  the solved problem is 1/2 ||Ax - y||^2 + s_n sqrt(lam) weight TV(x), so lam still
  sets the regularisation (with ths ~ sigma^2 it would cancel out).
- :class:`BM3D`: the ``bm3d`` package (Dabov et al.; Makinen et al.), called on every
  image and channel as ``bm3d.bm3d(z, sigma_psd=sigma)``, and on r, g, b images (3 channels)
  as colour BM3D, ``bm3d.bm3d_rgb`` (the strong colour baseline, not per channel).
"""

from __future__ import annotations

import numpy as np
import torch
from deepinv.models import Denoiser, TVDenoiser
from torch import Tensor

from .._extras import require


class TV(Denoiser):
    """Total-variation prox with ths = weight * sigma (see the module docstring).

    deepinv's solver warm-starts from the previous call's primal/dual variables when the
    shape matches (a speed-up inside PnP loops); build a new instance for an unrelated
    problem to get results independent of earlier calls.

    :param n_it_max: Chambolle-Pock iterations per call (at most).
    :param crit: relative-change stopping tolerance of the inner solver.
    :param weight: ths / sigma.
    """

    def __init__(self, n_it_max: int = 100, crit: float = 1e-5, weight: float = 1.0):
        super().__init__()
        self.weight = float(weight)
        self.tv = TVDenoiser(n_it_max=n_it_max, crit=crit)

    def forward(self, x: Tensor, sigma: float | Tensor, **kwargs) -> Tensor:
        """prox_{ths TV}(x) with ths = weight * sigma; sigma a float or a (B,) tensor."""
        ths = self._handle_sigma(sigma, batch_size=x.shape[0], device=x.device, dtype=x.dtype)
        return self.tv(x, ths=self.weight * ths)


class BM3D(Denoiser):
    """BM3D from the ``bm3d`` package at noise std ``sigma`` (> 0): per image and channel, or
    colour BM3D (``bm3d_rgb``) for 3-channel images.

    :param profile: bm3d profile name ("np", "refilter", "vn", "high", "deb").
    """

    def __init__(self, profile: str = "np"):
        super().__init__()
        require("bm3d", "the BM3D baseline")
        self.profile = profile

    def forward(self, x: Tensor, sigma: float | Tensor, **kwargs) -> Tensor:
        """x (B, C, H, W) -> BM3D estimate, same shape and dtype; sigma float or (B,)."""
        import bm3d

        sig = self._handle_sigma(sigma, batch_size=x.shape[0], dtype=torch.float64).tolist()
        if min(sig) <= 0:
            raise ValueError(f"BM3D needs a positive noise level, got sigma={sig}")
        z = x.detach().cpu().double().numpy()
        if z.shape[1] == 3:  # colour BM3D: grouping on the luminance, filtering in an opponent colour space
            out = np.stack([bm3d.bm3d_rgb(z[i].transpose(1, 2, 0), sig[i], profile=self.profile).transpose(2, 0, 1)
                            for i in range(z.shape[0])])
        else:
            out = np.stack([np.stack([bm3d.bm3d(z[i, c], sigma_psd=sig[i], profile=self.profile)
                                      for c in range(z.shape[1])]) for i in range(z.shape[0])])
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)
