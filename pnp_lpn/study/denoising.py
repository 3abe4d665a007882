"""Denoising studies: y = x + noise_sigma e, each batch one ``prior.denoise`` call (no solver)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from .._checks import check_positive
from ..solvers import SolveResult


class Denoising:
    """The measurement model of a denoising study, y = x + noise_sigma e (A = I), in the place of
    an operator: :func:`pnp_lpn.solve_study` then calls ``prior.denoise(y, noise_sigma)`` (the
    MAP denoiser below the prior's training level, its prox at it, the rescaled prox above)."""

    def __init__(self, img_size: Sequence[int], noise_sigma: float, device: torch.device | str = "cpu"):
        self.img_size = tuple(int(s) for s in img_size)
        self.meas_shape = self.img_size
        self.noise_sigma = check_positive(noise_sigma, "noise_sigma")
        self._device = torch.device(device)

    def A(self, x: Tensor) -> Tensor:
        """The identity (the noise-free measurement of x is x)."""
        return x

    def buffers(self) -> Iterator[Tensor]:
        """No tensors (for the study's settings record)."""
        return iter(())

    def reconstruct(self, y: Tensor, prior) -> SolveResult:
        """``prior.denoise(y, noise_sigma)`` as a one-step result (data fidelity 1/2 ||x - y||^2)."""
        t0 = time.perf_counter()
        with torch.no_grad():
            x = prior.denoise(y, self.noise_sigma)
        data = 0.5 * (x - y).flatten(1).pow(2).sum(1).cpu()
        wall = time.perf_counter() - t0
        return SolveResult(x, {"data_fidelity": [float(data.mean())]}, {"data_fidelity": data[None]}, True, 1,
                           f"prior.denoise at sigma {self.noise_sigma:g}", wall, float("nan"), "denoise")
