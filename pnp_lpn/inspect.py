"""Inspect a learned regulariser: R of clean images vs degraded versions (LPN paper, Fig. 3).

A prior that captured the data should give clean images lower R than noisy, blurred or
noisy-and-blurred versions of them. R at arbitrary points comes from convex inversion
(:meth:`pnp_lpn.priors.ProxPrior.regularizer`), whose achieved residual is reported.
R is defined up to a constant, so rows report R(variant) - R(clean).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .operators import GaussianBlur
from .priors.base import ProxPrior


def degraded_versions(x: Tensor, noise: float, blur: float, seed: int = 0) -> dict[str, Tensor]:
    """{"clean", "noisy", "blurred", "noisy+blurred"} versions of x (B, C, H, W)."""
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    blurred = GaussianBlur(img_size=tuple(x.shape[1:]), sigma_blur=blur).to(x.device).A(x)
    return {"clean": x, "noisy": x + noise * e, "blurred": blurred, "noisy+blurred": blurred + noise * e}


def inspect_prior(prior: ProxPrior, x: Tensor, noise: float = 0.1, blur: float = 1.5, tol: float = 1e-4,
                  seed: int = 0) -> list[dict]:
    """One row per (image, variant): R(variant) - R(clean) and the inversion residual."""
    rows = []
    reference = None
    for name, v in degraded_versions(x, noise, blur, seed).items():
        res = prior.regularizer(v, tol=tol, return_result=True)
        reference = res.value if reference is None else reference
        for i in range(x.shape[0]):
            rows.append({"image": i, "variant": name, "R": float(res.value[i]),
                         "R_minus_clean": float(res.value[i] - reference[i]), "residual": float(res.residual[i])})
    return rows
