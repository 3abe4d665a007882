"""Structured random compressed sensing: A = (1/sqrt(H W)) P_Omega C_a D_s.

The operator of the LPN paper's compressed-sensing experiment (authors' code,
``lpn/operators/cs.py``), for an image x of n = C * H * W entries:

- D_s: multiply by i.i.d. random signs s in {-1, +1}, one per entry;
- C_a: circular 2-D convolution of each channel with its own filter a_c whose entries are
  i.i.d. N(0, 1) (the "Gaussian filter" of the paper is a *random* Gaussian filter, not a
  Gaussian-shaped blur: a low-pass filter would erase the high frequencies and make A
  useless for CS). With the 1/sqrt(H W) factor, E |DFT(a_c)_k|^2 / (H W) = 1, so
  E ||A x||^2 = ratio * ||x||^2;
- P_Omega: keep M = round(ratio * n) entries at random (sorted flat indices into C*H*W).

For a grayscale image 1/sqrt(H W) = 1/sqrt(n), the published scaling. The reference
convolves the flattened vector with a length-n 1-D circular convolution instead; both are
random convolutions with the same statistics, and the 2-D FFT is about 8x faster than a 1-D
FFT of length 2^18 here (0.5 ms vs 4 ms at 512^2). Storage is O(n): signs (n float32), the
filters' real FFT (C H (W/2 + 1) complex64) and the indices (M int64); A and A^T cost
O(n log n). A A^T is not a projection (|DFT(a)|^2 is not constant), so prox_l2 runs
warm-started CG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from pnp_lpn.operators.base import ForwardOperator, check_img_size


class CompressedSensing(ForwardOperator):
    """y = A x + noise with A = (1/sqrt(H W)) P_Omega C_a D_s; y of shape (B, M).

    :param img_size: (C, H, W); n = C * H * W.
    :param ratio: M / n in (0, 1].
    :param seed: seeds ``torch.Generator`` for s, a and Omega (same seed, same operator).
    :param kwargs: CG options of :class:`ForwardOperator` (cg_max_iter, cg_tol, warm_start).

    ``default_box`` (0, 1): with M < n the data leave an (n - M)-dimensional null space free, so
    :func:`pnp_lpn.solve` keeps iterates in the image range [0, 1] unless told otherwise. The
    noise level cannot be estimated from y (its entries have no spatial layout).

    ``default_continuation`` 20: the least-squares start lies far from any image when M << n, and
    an iteration whose prior step keeps the training noise level crawls from there (at M = n/16
    a learned prox needs about 100 ADMM iterations, docs/benchmarks.md), so :func:`pnp_lpn.solve`
    lets its first 20 prior steps denoise at raised noise levels unless told otherwise.
    """

    default_box: tuple[float, float] | None = (0.0, 1.0)
    default_continuation: int = 20

    def __init__(
        self,
        img_size: Sequence[int],
        ratio: float,
        seed: int = 0,
        noise_sigma: float = 0.0,
        device: torch.device | str = "cpu",
        **kwargs,
    ) -> None:
        size = check_img_size(img_size)
        n = math.prod(size)
        if not 0 < float(ratio) <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {ratio!r}")
        m = max(1, round(float(ratio) * n))
        super().__init__(size, (m,), noise_sigma=noise_sigma, device=device, **kwargs)
        self.n, self.ratio, self.seed = n, float(ratio), int(seed)
        gen = torch.Generator().manual_seed(self.seed)
        signs = torch.randint(0, 2, size, generator=gen).float() * 2 - 1
        filters = torch.randn(size, generator=gen, dtype=torch.float64)
        indices = torch.sort(torch.randperm(n, generator=gen)[:m]).values
        filters_fft = torch.fft.rfft2(filters) / math.sqrt(size[1] * size[2])
        self.register_buffer("signs", signs.to(device))
        # stored as real (..., 2) pairs: Module.to(float64) then gives complex128, where a complex
        # buffer would be cast to real (its imaginary part dropped)
        self.register_buffer("_filter_fft_real", torch.view_as_real(filters_fft.to(torch.complex64)).to(device))
        self.register_buffer("indices", indices.to(device))

    @property
    def filter_fft(self) -> Tensor:
        """The filters' scaled real FFT DFT(a_c) / sqrt(H W), complex (C, H, W // 2 + 1)."""
        return torch.view_as_complex(self._filter_fft_real)

    def _convolve(self, u: Tensor, transpose: bool) -> Tensor:
        """Per channel (1/sqrt(H W)) a_c (*) u_c, or the correlation for C_a^T, via real 2-D FFTs."""
        h = self.filter_fft.conj() if transpose else self.filter_fft
        return torch.fft.irfft2(torch.fft.rfft2(u) * h, s=u.shape[-2:])

    def _forward(self, x: Tensor) -> Tensor:
        return self._convolve(x * self.signs, transpose=False).reshape(x.shape[0], self.n)[:, self.indices]

    def _adjoint(self, y: Tensor) -> Tensor:
        full = y.new_zeros(y.shape[0], self.n)
        full[:, self.indices] = y
        return self._convolve(full.reshape(y.shape[0], *self.img_size), transpose=True) * self.signs

    def initial_point(self, y: Tensor) -> Tensor:
        """The PnP solvers' default start: the least-squares estimate (as in the LPN paper)."""
        return self.least_squares(y)

    def buffer_bytes(self) -> int:
        """Bytes held by the operator's tensors (the O(n) memory claim)."""
        return sum(b.numel() * b.element_size() for b in self.buffers())
