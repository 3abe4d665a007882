"""``make_denoiser(name)``: every denoiser the benchmark compares, by name."""

from __future__ import annotations

from collections.abc import Callable

from deepinv.models import Denoiser

from .classical import BM3D, TV
from .dncnn import VARIANTS, AdaptiveDnCNN, DnCNN

#: generic denoisers (no regulariser; PnP passes them sigma_d = noise_sigma / sqrt(lam))
BASELINES: dict[str, Callable[[], Denoiser]] = {
    "tv": TV,
    "bm3d": BM3D,
    "dncnn": AdaptiveDnCNN,
    **{f"dncnn-{v}": (lambda v=v: DnCNN(v)) for v in VARIANTS},
}


def denoiser_names() -> list[str]:
    """Baseline names and the shipped prior names accepted by :func:`make_denoiser`."""
    from ..priors import list_pretrained

    return list(BASELINES) + [entry.split(":")[0] for entry in list_pretrained()]


def make_denoiser(name: str) -> Denoiser:
    """A fresh denoiser: "tv", "bm3d", "dncnn" (closest blind 17-layer variant per call),
    "dncnn-<variant>" (e.g. "dncnn-17M", "dncnn-17N"), a shipped prior name
    ("lpn-natural-gray", "aelpn-natural-gray", "lpn-ct", see pnp_lpn.list_pretrained()), or
    the path of a prior file written by the trainer (``*.safetensors``)."""
    if name in BASELINES:
        return BASELINES[name]()
    from ..priors import load_pretrained

    if name in denoiser_names():
        return load_pretrained(name)
    if name.endswith(".safetensors"):
        from ..priors.checkpoint import load_prior

        return load_prior(name)
    raise ValueError(f"unknown denoiser {name!r}; choose one of {', '.join(denoiser_names())} "
                     "or give a prior file (*.safetensors)")
