"""An exact-prox prior moved to another noise level by rescaling intensities.

A prior trained at noise level sigma_t gives f = prox_R. For a target level sigma let
s = sigma_t / sigma and

    psi_s(x) = psi(s x) / s^2,      f_s(v) = grad psi_s(v) = f(s v) / s.

psi_s is convex (and keeps psi's strong-convexity and smoothness constants: its Hessian at x
is psi's at s x), so f_s is again exactly a prox, of

    R_s(z) = R(s z) / s^2:      f_s(v) = argmin_z 1/2 ||z - v||^2 + R(s z) / s^2

(substitute u = s z: the objective is 1/s^2 (1/2 ||u - s v||^2 + R(u)), minimised by u = f(s v)).
In words: scale the noisy image by s, so its noise is sigma_t, denoise at the training level,
and scale back. For a prior trained with contrast changes (the ``intensity_scale`` of the
natural-image presets) a contrast-s image at noise sigma_t is inside the training
distribution, which is why this works above the training level, where the MAP denoiser of
the same R would need the prox of t R with t > 1 (not available). It is not the MAP denoiser
of R itself: R_s is a different member of the family {R(s .) / s^2}, and an AE-LPN (f(s v) =
s f(v)) is unchanged by it. For the soft-thresholding prior R = ||.||_1, R_s = ||.||_1 / s:
the threshold grows like sigma.
"""

from __future__ import annotations

from torch import Tensor

from .._checks import check_positive
from .base import ProxPrior, WrappedPrior


class RescaledPrior(WrappedPrior):
    """``base`` moved to noise level ``sigma``: psi_s(x) = psi(s x) / s^2, s = sigma_train / sigma.

    :param base: a :class:`ProxPrior` with ``sigma_train`` set (every shipped prior).
    :param sigma: the noise level it should denoise (> 0); becomes this prior's ``sigma_train``
        (so :func:`pnp_lpn.solve`'s default lam follows it).
    """

    def __init__(self, base: ProxPrior, sigma: float):
        if isinstance(base, ProxPrior) and base.sigma_train is None:
            raise ValueError("RescaledPrior needs a base prior with sigma_train (the level it was trained at); "
                             "this one has none")
        sigma = check_positive(sigma, "RescaledPrior's noise level sigma")
        super().__init__(base, sigma_train=sigma)
        self.scale = base.sigma_train / sigma
        if base.data_range is not None:  # f_s sees s v where f saw v
            self.data_range = (base.data_range[0] / self.scale, base.data_range[1] / self.scale)

    def _potential(self, x: Tensor) -> Tensor:
        return self.base._potential(self.scale * x) / self.scale**2

    def config(self) -> dict:
        """The base prior's architecture and arguments, and the target noise level."""
        return {**super().config(), "rescaled_to_sigma": self.sigma_train}
