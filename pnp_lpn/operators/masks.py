"""Masking operators: pixel inpainting and subsampled orthonormal Fourier (MRI-like).

Both have a diagonal normal operator A^T A (in the pixel / Fourier basis), so ||A||^2 and
the prox are closed form. Masks are real (H, W) or (C, H, W) tensors, usually 0/1; a
(H, W) mask is shared by all channels. Noise is added to every entry of y, observed or
not; A^T multiplies by the mask again, so unobserved entries never reach the solvers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from pnp_lpn.noise import haar_blocks_all, haar_diagonal, mad_sigma
from pnp_lpn.operators.base import ForwardOperator, check_img_size

PATTERNS = ("random", "variable-density", "radial")
MIN_NOISE_SAMPLES = 32  # entries (or 2 x 2 blocks) needed for a noise estimate


def _unobserved_sigma(y: Tensor, unobserved: Tensor) -> float | None:
    """MAD noise level of the entries of y where nothing was observed (pure noise there: the
    noise is added to every entry), or None when there are too few or they are all zero (data
    stored with zeros there)."""
    values = y[unobserved.expand_as(y)]
    if values.numel() < MIN_NOISE_SAMPLES or not bool((values != 0).any()):
        return None
    sigma = mad_sigma(values)
    return sigma if sigma > 0 else None


def _check_ratio(ratio: float) -> float:
    r = float(ratio)
    if not 0 < r <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio!r}")
    return r


def _check_mask(mask: object, img_size: tuple[int, int, int]) -> Tensor:
    """Return the mask as a float32 (C or 1, H, W) tensor."""
    c, h, w = img_size
    if not isinstance(mask, Tensor) or tuple(mask.shape) not in ((h, w), (c, h, w)):
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a tensor of shape ({h}, {w}) or ({c}, {h}, {w}), got {shape}")
    m = mask.detach().float()
    if not torch.isfinite(m).all():
        raise ValueError("mask contains NaN or Inf values")
    return m.reshape(-1, h, w)


def random_mask(shape: tuple[int, int], ratio: float, gen: torch.Generator) -> Tensor:
    """0/1 mask with exactly round(ratio * H * W) ones at uniformly random positions."""
    n = shape[0] * shape[1]
    m = torch.zeros(n)
    m[torch.randperm(n, generator=gen)[: max(1, round(_check_ratio(ratio) * n))]] = 1
    return m.reshape(shape)


def _centred_radius(shape: tuple[int, int]) -> Tensor:
    """Normalised frequency radius sqrt((ky / (H/2))^2 + (kx / (W/2))^2), DC at (H//2, W//2)."""
    h, w = shape
    ky = (torch.arange(h) - h // 2) / (h / 2)
    kx = (torch.arange(w) - w // 2) / (w / 2)
    return torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def variable_density_mask(
    shape: tuple[int, int], ratio: float, gen: torch.Generator, decay: float = 2.0, center_fraction: float = 0.25
) -> Tensor:
    """Centred 0/1 mask with round(ratio * H * W) samples.

    The ``center_fraction`` of the budget with the smallest radius is fully sampled (a
    disc around DC); the rest is drawn without replacement with probability proportional
    to (1 - r / r_max)^decay.
    """
    r = _centred_radius(shape).flatten()
    budget = max(1, round(_check_ratio(ratio) * r.numel()))
    order = torch.argsort(r, stable=True)
    n_centre = round(center_fraction * budget)
    rest = order[n_centre:]
    weights = (1 - r[rest] / r.max()).clamp_min(0) ** decay + 1e-12
    picked = rest[torch.multinomial(weights, budget - n_centre, replacement=False, generator=gen)]
    m = torch.zeros(r.numel())
    m[order[:n_centre]] = 1
    m[picked] = 1
    return m.reshape(shape)


def radial_mask(shape: tuple[int, int], n_lines: int) -> Tensor:
    """Centred 0/1 mask of ``n_lines`` lines through DC at angles pi k / n_lines (nearest grid points)."""
    if int(n_lines) < 1:
        raise ValueError(f"n_lines must be >= 1, got {n_lines!r}")
    h, w = shape
    theta = torch.arange(int(n_lines), dtype=torch.float64) * math.pi / int(n_lines)
    t = torch.arange(-max(h, w), max(h, w) + 0.5, 0.5, dtype=torch.float64)
    rows = torch.round(h // 2 + t[None, :] * torch.sin(theta)[:, None]).long().flatten()
    cols = torch.round(w // 2 + t[None, :] * torch.cos(theta)[:, None]).long().flatten()
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    m = torch.zeros(shape)
    m[rows[inside], cols[inside]] = 1
    return m


class Inpainting(ForwardOperator):
    """Pixel masking y = m * x + noise (elementwise); y has the image's shape.

    A^T y = m * y, A^T A = diag(m^2), so prox_l2 = (z + gamma m y) / (1 + gamma m^2) and
    ||A||^2 = max m^2. Without ``mask`` a 0/1 mask keeping round(ratio * H * W) pixels
    (all channels of a kept pixel) is drawn from ``torch.Generator().manual_seed(seed)``.

    ``default_box`` (0, 1): nothing constrains the unobserved pixels but the prior, so
    :func:`pnp_lpn.solve` keeps iterates in the image range unless told otherwise (128^2
    ``camera``, noise 0.01, ``lpn-natural-gray``, 100 iterations: 25.3 / 21.3 dB with the box at
    50% / 20% of the pixels, 23.8 / 8.7 dB and "ran off" without).

    ``default_continuation`` 20: the unobserved pixels start at 0, far from any image, and an
    iteration whose prior step keeps the training noise level fills them slowly, so
    :func:`pnp_lpn.solve` lets its first 20 prior steps denoise at raised levels unless told
    otherwise (``camera`` at 128^2, noise 0.01, 20% of the pixels, 100 iterations:
    ``wcrr-natural-gray`` 24.44 dB with it, 15.64 without; ``lpn-natural-gray`` 24.84 / 23.73;
    50% of the pixels: 28.48 / 28.68 and 29.18 / 29.23; docs/benchmarks.md).
    """

    default_box: tuple[float, float] | None = (0.0, 1.0)
    default_continuation: int = 20

    def __init__(
        self,
        img_size: Sequence[int],
        mask: Tensor | None = None,
        ratio: float = 0.5,
        seed: int = 0,
        noise_sigma: float = 0.0,
        device: torch.device | str = "cpu",
    ) -> None:
        size = check_img_size(img_size)
        if mask is None:
            mask = random_mask(size[1:], ratio, torch.Generator().manual_seed(int(seed)))
        m = _check_mask(mask, size)
        super().__init__(size, size, noise_sigma=noise_sigma, device=device)
        self.register_buffer("mask", m.to(device))

    def _forward(self, x: Tensor) -> Tensor:
        return self.mask * x

    def _adjoint(self, y: Tensor) -> Tensor:
        return self.mask * y

    def _prox(self, z: Tensor, y: Tensor, gamma: Tensor, **kwargs) -> Tensor:
        return (z + gamma * self.mask * y) / (1 + gamma * self.mask.square())

    def _compute_norm_sq(self, **kwargs) -> float:
        return float(self.mask.square().max())

    def estimate_noise_sigma(self, y: Tensor) -> float:
        """Noise level from y alone: MAD of the unobserved pixels (pure noise, since the noise is
        added to every entry), or, when they are stored as zeros, MAD of the finest Haar diagonal
        detail (:mod:`pnp_lpn.noise`) over the 2 x 2 blocks whose four pixels are observed."""
        y = self.check_y(y)
        sigma = _unobserved_sigma(y, self.mask == 0)
        if sigma is not None:
            return sigma
        full = haar_blocks_all(self.mask == 1).expand(y.shape[0], y.shape[1], -1, -1)
        if int(full.sum()) < MIN_NOISE_SAMPLES:
            raise ValueError(f"fewer than {MIN_NOISE_SAMPLES} fully observed 2 x 2 blocks and no noisy unobserved "
                             "pixels: the noise level of y cannot be estimated from y")
        return mad_sigma(haar_diagonal(y)[full])


class FourierSubsampling(ForwardOperator):
    """Subsampled orthonormal 2-D DFT per channel: y = m * F x + noise, stored as real.

    F = torch.fft.fft2(norm="ortho"); the mask ``m`` is in torch's unshifted layout (DC at
    [0, 0]). y is real of shape (B, C, H, W, 2) = torch.view_as_real of the complex
    coefficients (noise_sigma is the std of the real and of the imaginary part). With the
    real inner product, A^T y = Re F^H (m * y_complex). For a real image, F x at -k is the
    conjugate of F x at k, hence A^T A = F^H diag(D) F with D = (m^2 + m(-k)^2) / 2: a
    projection only for a symmetric mask, but diagonal anyway, so
    prox_l2 = F^H [F(z + gamma A^T y) / (1 + gamma D)] and ||A||^2 = max D exactly.

    :param mask: (H, W) or (C, H, W) mask in unshifted layout; if None, drawn from ``pattern``.
    :param pattern: "random" (round(ratio H W) uniform frequencies), "variable-density"
        (fully sampled centre + density (1 - r/r_max)^decay, see :func:`variable_density_mask`)
        or "radial" (``n_lines`` lines through DC; ``ratio`` ignored).
    """

    def __init__(
        self,
        img_size: Sequence[int],
        mask: Tensor | None = None,
        pattern: str = "variable-density",
        ratio: float = 0.25,
        n_lines: int = 32,
        seed: int = 0,
        noise_sigma: float = 0.0,
        device: torch.device | str = "cpu",
        decay: float = 2.0,
        center_fraction: float = 0.25,
    ) -> None:
        size = check_img_size(img_size)
        pattern_name = "custom" if mask is not None else pattern
        if mask is None:
            mask = self._pattern_mask(size[1:], pattern, ratio, n_lines, int(seed), decay, center_fraction)
        m = _check_mask(mask, size)
        super().__init__(size, (*size, 2), noise_sigma=noise_sigma, device=device)
        self.pattern = pattern_name
        m2 = m.square()
        symmetric = (m2 + torch.roll(m2.flip(-2, -1), shifts=(1, 1), dims=(-2, -1))) / 2
        self.register_buffer("mask", m.to(device))
        self.register_buffer("_normal_diag", symmetric[..., : size[2] // 2 + 1].contiguous().to(device))

    @staticmethod
    def _pattern_mask(
        shape: tuple[int, int],
        pattern: str,
        ratio: float,
        n_lines: int,
        seed: int,
        decay: float,
        center_fraction: float,
    ) -> Tensor:
        """Draw a centred pattern and return it in unshifted (DC at [0, 0]) layout."""
        gen = torch.Generator().manual_seed(seed)
        if pattern == "random":
            centred = random_mask(shape, ratio, gen)
        elif pattern == "variable-density":
            centred = variable_density_mask(shape, ratio, gen, decay, center_fraction)
        elif pattern == "radial":
            centred = radial_mask(shape, n_lines)
        else:
            raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
        return torch.fft.ifftshift(centred)

    def _forward(self, x: Tensor) -> Tensor:
        return torch.view_as_real(self.mask * torch.fft.fft2(x, norm="ortho"))

    def _adjoint(self, y: Tensor) -> Tensor:
        return torch.fft.ifft2(self.mask * torch.view_as_complex(y.contiguous()), norm="ortho").real

    def _prox(self, z: Tensor, y: Tensor, gamma: Tensor, **kwargs) -> Tensor:
        rhs = torch.fft.rfft2(z + gamma * self._adjoint(y), norm="ortho")
        return torch.fft.irfft2(rhs / (1 + gamma * self._normal_diag), s=z.shape[-2:], norm="ortho")

    def _compute_norm_sq(self, **kwargs) -> float:
        return float(self._normal_diag.max())

    def estimate_noise_sigma(self, y: Tensor) -> float:
        """Noise level from y alone: MAD of the unsampled coefficients (real and imaginary parts;
        pure noise, since the noise is added to every entry). k-space has no smoothness for a
        Haar estimate, so data stored with zeros there give a ValueError."""
        y = self.check_y(y)
        sigma = _unobserved_sigma(y, (self.mask == 0)[..., None])
        if sigma is None:
            raise ValueError("the unsampled k-space entries of y are zero or too few, so its noise level cannot be "
                             "estimated from y")
        return sigma
