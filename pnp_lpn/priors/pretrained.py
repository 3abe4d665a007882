"""Pretrained priors shipped inside the package (``weights/NAME.safetensors``), loaded offline."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from .base import ProxPrior
from .checkpoint import load_prior, read_metadata


def _weights_dir() -> Path:
    return Path(str(resources.files("pnp_lpn.priors") / "weights"))


def _available() -> dict[str, Path]:
    return {p.stem: p for p in sorted(_weights_dir().glob("*.safetensors"))}


def list_pretrained() -> list[str]:
    """Names of the shipped checkpoints, each as "name: one-line description"."""
    out = []
    for name, path in _available().items():
        meta = read_metadata(path)
        train = meta.get("training", {})
        psnr, steps = train.get("val_psnr") or [], train.get("steps_done")
        known = isinstance(psnr, list) and psnr and isinstance(psnr[-1], (int, float))  # a free-form record
        score = f" [{steps} steps, validation PSNR {psnr[-1]:.2f} dB]" if known else ""
        out.append(f"{name}: {meta.get('description', meta['architecture'])}{score}")
    return out


def load_pretrained(name: str, device: str | torch.device = "cpu") -> ProxPrior:
    """Load the shipped prior ``name`` (see :func:`list_pretrained`) in eval mode."""
    available = _available()
    if name not in available:
        known = ", ".join(available) or "none shipped in this version"
        raise ValueError(f"unknown pretrained prior {name!r}; available: {known}")
    return load_prior(available[name], device=device)
