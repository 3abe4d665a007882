"""Prior checkpoints: safetensors files with JSON metadata in their header (no pickle).

A file holds the prior's parameters under ``model.<name>``, optionally the optimiser state
under ``optim.<...>`` (training checkpoints), and one metadata entry ``pnp_lpn`` with a
JSON object: format and package version, the architecture and its constructor
arguments, the range of its clean training images (``data_range``, since 0.11; null when
unknown), and whatever the trainer records (sigma, data, steps, losses, wall time, ...).
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import Tensor

from ._version import __version__
from .priors.aelpn import AELPN
from .priors.base import ProxPrior
from .priors.lpn import LPN

FORMAT = "pnp_lpn-prior"
FORMAT_VERSION = 1
ARCHITECTURES: dict[str, type[ProxPrior]] = {"LPN": LPN, "AELPN": AELPN}
# Arguments added with a non-neutral default: the value that reproduces files written before.
LEGACY_CONFIG: dict[str, dict] = {"LPN": {"quadratic_kernel": 0}}


def save_prior(
    prior: ProxPrior,
    path: str | Path,
    metadata: dict | None = None,
    extra_tensors: dict[str, Tensor] | None = None,
) -> Path:
    """Write ``prior`` (and optional extra tensors, e.g. optimiser state) to ``path``."""
    arch = type(prior).__name__
    if arch not in ARCHITECTURES:
        raise ValueError(f"cannot save a {arch}; known architectures: {sorted(ARCHITECTURES)}")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__,
            "architecture": arch, "config": prior.config(),
            "data_range": None if prior.data_range is None else [float(v) for v in prior.data_range],
            **(metadata or {})}
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in prior.state_dict().items()}
    tensors.update({k: v.detach().cpu().contiguous() for k, v in (extra_tensors or {}).items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata={"pnp_lpn": json.dumps(meta)})
    tmp.replace(path)  # atomic: an interrupted save never leaves a truncated checkpoint
    return path


def read_metadata(path: str | Path) -> dict:
    """The JSON metadata of a checkpoint, validated to be one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("pnp_lpn")
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e})") from e
    if raw is None:
        raise ValueError(f"{path} is a safetensors file but has no pnp_lpn metadata")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT or meta.get("architecture") not in ARCHITECTURES:
        raise ValueError(f"{path}: unknown format {meta.get('format')!r} / architecture {meta.get('architecture')!r}")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer pnp_lpn (format {meta['format_version']}); upgrade")
    return meta


def stored_config(meta: dict) -> dict:
    """The constructor arguments in ``meta``, with defaults filled in for arguments added to the
    architecture after the file was written (so older checkpoints still compare equal); an
    argument in ``LEGACY_CONFIG`` gets the value that files written before it existed mean."""
    arch = meta["architecture"]
    params = inspect.signature(ARCHITECTURES[arch]).parameters
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **LEGACY_CONFIG.get(arch, {}), **meta["config"]}


def load_tensors(path: str | Path, prefix: str) -> dict[str, Tensor]:
    """Tensors stored under ``prefix`` (prefix stripped)."""
    return {k[len(prefix):]: v for k, v in load_file(str(path)).items() if k.startswith(prefix)}


def load_prior(path: str | Path, device: str | torch.device = "cpu") -> ProxPrior:
    """Rebuild the prior stored at ``path`` in eval mode; rejects mismatched files clearly."""
    meta = read_metadata(path)
    prior = ARCHITECTURES[meta["architecture"]](**stored_config(meta))
    state = load_tensors(path, "model.")
    try:
        prior.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not match the stored {meta['architecture']} config: {e}") from e
    prior.metadata = meta
    prior.data_range = _data_range(meta, path)
    return prior.to(device).eval()


def _data_range(meta: dict, path: str | Path) -> tuple[float, float] | None:
    """The stored (lo, hi) training range, None if the file has none (written before 0.11)."""
    value = meta.get("data_range")
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: data_range must be [lo, hi], got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{path}: data_range must be finite with lo < hi, got {value!r}")
    return lo, hi


def export_prior(checkpoint: str | Path, out: str | Path, name: str, description: str) -> Path:
    """Write a shippable prior file from a training checkpoint: weights only (no optimiser
    state), with its name, description and a summary of the training run in the metadata."""
    meta = read_metadata(checkpoint)
    train = meta.get("training", {})
    hist = train.get("history", {})
    summary = {"config": train.get("config"), "steps_done": train.get("step"), "data": train.get("data"),
               "world_size": train.get("world_size"), "wall_time_s": hist.get("wall_time"),
               "val_step": hist.get("val_step"), "val_psnr": hist.get("val_psnr"),
               "val_minutes": hist.get("val_minutes")}
    prior = load_prior(checkpoint)
    return save_prior(prior, out, {"name": name, "description": description, "training": summary})
