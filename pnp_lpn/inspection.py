"""Inspect a learned regulariser: R of clean images vs degraded versions (LPN paper, Fig. 3).

A prior that captured the data should give clean images lower R than noisy, blurred or
noisy-and-blurred versions of them, and R should grow with the strength of the degradation.
R at arbitrary points comes from convex inversion
(:meth:`pnp_lpn.priors.ProxPrior.regularizer`), whose achieved residual is reported.
R is defined up to a constant, so everything reports R(variant) - R(clean).

Degradations of x (B, C, H, W) at level t (:func:`perturb`):
noise x + t e (e ~ N(0, I)); blur G_t x (Gaussian, std t pixels, circular); mix
(1 - t) x + t x' with x' the next image of the batch (a convex combination of two images).
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


CURVE_LEVELS = {"noise": (0.0, 0.05, 0.1, 0.15, 0.2, 0.3), "blur": (0.0, 0.5, 1.0, 1.5, 2.0, 3.0),
                "mix": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)}


def perturb(x: Tensor, kind: str, level: float, seed: int = 0) -> Tensor:
    """x degraded by ``kind`` ("noise", "blur" or "mix", see the module docstring) at ``level``."""
    if kind == "noise":
        g = torch.Generator().manual_seed(seed)
        return x + level * torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    if kind == "blur":
        if level == 0:
            return x
        return GaussianBlur(img_size=tuple(x.shape[1:]), sigma_blur=level).to(x.device).A(x)
    if kind == "mix":
        return (1 - level) * x + level * torch.roll(x, 1, dims=0)
    raise ValueError(f"unknown degradation {kind!r}; use one of {', '.join(CURVE_LEVELS)}")


def perturbation_curves(prior: ProxPrior, x: Tensor, levels: dict[str, tuple[float, ...]] | None = None,
                        tol: float = 1e-4, seed: int = 0) -> dict[str, dict]:
    """R(perturb(x, kind, t)) - R(x) for every kind and level t.

    :returns: {kind: {"level": [t...], "R_minus_clean": (L, B) tensor, "residual": (L, B) tensor}}.
    """
    levels = levels or CURVE_LEVELS
    clean = prior.regularizer(x, tol=tol, return_result=True)
    out = {}
    for kind, ts in levels.items():  # level 0 is x itself: no second inversion
        res = [clean if t == 0 else prior.regularizer(perturb(x, kind, t, seed), tol=tol, return_result=True)
               for t in ts]
        out[kind] = {"level": list(ts), "R_minus_clean": torch.stack([r.value - clean.value for r in res]),
                     "residual": torch.stack([r.residual for r in res])}
    return out


def plot_curves(curves: dict[str, dict], path: str, title: str = "") -> None:
    """Mean +- std over images of R(degraded) - R(clean) against the level, one panel per kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"noise": "noise std", "blur": "blur std (pixels)", "mix": "weight of another image"}
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
    for ax, (kind, c) in zip(axes[0], curves.items()):
        d = c["R_minus_clean"].double().cpu()
        mean, std = d.mean(1).numpy(), d.std(1, correction=0).numpy()
        ax.plot(c["level"], mean, "o-")
        ax.fill_between(c["level"], mean - std, mean + std, alpha=0.25)
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set_xlabel(labels.get(kind, kind))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("R(degraded) - R(clean)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
