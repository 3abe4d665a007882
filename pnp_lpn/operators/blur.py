"""Convolution (blur) operators: y = k * x per channel, plus Gaussian noise.

Convention (same as deepinv.physics.functional.conv2d / filter_fft): a true convolution
y[i, j] = sum_{m, n} k[m, n] x[i - m + ch, j - n + cw] with the kernel centre at
(ch, cw) = (h // 2, w // 2). Boundary handling (``padding``):

- "circular": periodic image, y has the image's shape. A = F^-1 diag(K) F is diagonalised
  by the 2-D DFT (K = DFT of the kernel embedded in H x W and rolled so that its centre is
  at (0, 0)), so A^T = F^-1 diag(conj K) F, ||A||^2 = max |K|^2 and the prox is closed form.
- "zeros": zero boundary, y has the image's shape ("same" convolution). Exact adjoint by a
  transposed convolution and cropping; data step by warm-started CG.
- "valid": only the pixels whose support lies inside the image, y of shape
  (C, H - h + 1, W - w + 1); adjoint by a transposed convolution; data step by CG.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pnp_lpn._checks import check_positive
from pnp_lpn.operators.base import ForwardOperator, check_img_size

PADDINGS = ("circular", "zeros", "valid")


def gaussian_kernel_size(sigma_blur: float) -> int:
    """Reference size rule: max(5, int(3 * sigma_blur)), rounded up to the next odd integer."""
    size = max(5, int(3 * sigma_blur))
    return size + 1 - size % 2


def gaussian_kernel(sigma_blur: float, kernel_size: int | None = None) -> Tensor:
    """Isotropic (size, size) Gaussian exp(-(u^2 + v^2) / (2 sigma^2)) on an odd grid, summing to 1."""
    sigma = check_positive(sigma_blur, "sigma_blur")
    size = gaussian_kernel_size(sigma) if kernel_size is None else int(kernel_size)
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer (centred kernel), got {kernel_size!r}")
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    k = torch.outer(g, g)
    return (k / k.sum()).float()


def _check_kernel(kernel: object, img_size: tuple[int, int, int]) -> Tensor:
    if not isinstance(kernel, Tensor) or kernel.ndim != 2:
        raise ValueError("kernel must be a 2-D torch.Tensor (h, w), applied to every channel")
    if not torch.is_floating_point(kernel) or not torch.isfinite(kernel).all():
        raise ValueError(f"kernel must be a finite floating-point tensor, got dtype {kernel.dtype}")
    h, w = kernel.shape
    if h > img_size[1] or w > img_size[2]:
        raise ValueError(f"kernel of size {h}x{w} is larger than the image {img_size[1]}x{img_size[2]}")
    return kernel.detach().float()


class Blur(ForwardOperator):
    """y = k * x + noise_sigma * e, the same 2-D kernel ``k`` (h, w) for every channel.

    :param kernel: (h, w) float tensor (not normalised for you).
    :param img_size: (C, H, W).
    :param padding: "circular" (closed-form prox, default), "zeros" or "valid" (CG prox).
    :param kwargs: CG options of :class:`ForwardOperator` (cg_max_iter, cg_tol, warm_start).
    """

    def __init__(
        self,
        kernel: Tensor,
        img_size: Sequence[int],
        noise_sigma: float = 0.0,
        padding: str = "circular",
        device: torch.device | str = "cpu",
        **kwargs,
    ) -> None:
        size = check_img_size(img_size)
        k = _check_kernel(kernel, size)
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        h, w = k.shape
        meas = size if padding != "valid" else (size[0], size[1] - h + 1, size[2] - w + 1)
        super().__init__(size, meas, noise_sigma=noise_sigma, device=device, **kwargs)
        self.padding = padding
        # (left, right, top, bottom) zero padding that puts the centre (h//2, w//2) in place
        self._pad = (0, 0, 0, 0) if padding == "valid" else ((w - 1) // 2, w // 2, (h - 1) // 2, h // 2)
        self.register_buffer("kernel", k.to(device))
        if padding == "circular":
            embedded = F.pad(k, (0, size[2] - w, 0, size[1] - h))
            centred = torch.roll(embedded, shifts=(-(h // 2), -(w // 2)), dims=(0, 1))
            # real (..., 2) pairs: Module.to(float64) casts a complex buffer to real (dropping its
            # imaginary part) but this one to float64, i.e. complex128
            self.register_buffer("_kernel_fft_real", torch.view_as_real(torch.fft.rfft2(centred)).to(device))
        else:  # conv2d computes a correlation: flip the kernel, one group per channel
            self.register_buffer("_weight", k.flip(0, 1).expand(size[0], 1, h, w).contiguous().to(device))

    # ---- circular: diagonal in the Fourier domain ------------------------------------------
    @property
    def _kernel_fft(self) -> Tensor:
        """K: the real FFT of the centred kernel embedded in H x W, complex (H, W // 2 + 1)."""
        return torch.view_as_complex(self._kernel_fft_real)

    def _fourier_apply(self, x: Tensor, multiplier: Tensor) -> Tensor:
        """F^-1 (multiplier * F x) with real FFTs over the last two axes."""
        return torch.fft.irfft2(torch.fft.rfft2(x) * multiplier, s=x.shape[-2:])

    def _forward(self, x: Tensor) -> Tensor:
        if self.padding == "circular":
            return self._fourier_apply(x, self._kernel_fft)
        weight = self._weight.to(x.dtype)
        return F.conv2d(F.pad(x, self._pad), weight, groups=self.img_size[0])

    def _adjoint(self, y: Tensor) -> Tensor:
        if self.padding == "circular":
            return self._fourier_apply(y, self._kernel_fft.conj())
        full = F.conv_transpose2d(y, self._weight.to(y.dtype), groups=self.img_size[0])
        left, _, top, _ = self._pad
        return full[..., top : top + self.img_size[1], left : left + self.img_size[2]]

    def _prox(self, z: Tensor, y: Tensor, gamma: Tensor, **kwargs) -> Tensor:
        """Circular: x = F^-1 [(F z + gamma conj(K) F y) / (1 + gamma |K|^2)]; else CG."""
        if self.padding != "circular":
            return super()._prox(z, y, gamma, **kwargs)
        k = self._kernel_fft
        rhs = torch.fft.rfft2(z) + gamma * k.conj() * torch.fft.rfft2(y)
        return torch.fft.irfft2(rhs / (1 + gamma * k.abs().square()), s=z.shape[-2:])

    def _compute_norm_sq(self, **kwargs) -> float:
        """Circular: exact max |K|^2. Other paddings: power iteration (<= max |K|^2)."""
        if self.padding == "circular":
            return float(self._kernel_fft.abs().square().max())
        return super()._compute_norm_sq(**kwargs)


class GaussianBlur(Blur):
    """Isotropic Gaussian blur of width ``sigma_blur`` pixels.

    Kernel size (reference rule): max(5, int(3 * sigma_blur)) rounded up to odd, unless
    ``kernel_size`` (odd) is given; the kernel sums to 1, so ||A||^2 = 1 for circular padding.
    """

    def __init__(
        self,
        img_size: Sequence[int],
        sigma_blur: float,
        noise_sigma: float = 0.0,
        kernel_size: int | None = None,
        padding: str = "circular",
        device: torch.device | str = "cpu",
        **kwargs,
    ) -> None:
        super().__init__(
            gaussian_kernel(sigma_blur, kernel_size), img_size, noise_sigma=noise_sigma, padding=padding,
            device=device, **kwargs,
        )
        self.sigma_blur = float(sigma_blur)
