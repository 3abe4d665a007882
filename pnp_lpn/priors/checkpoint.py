"""Prior checkpoints: safetensors files with JSON metadata in their header (no pickle).

A file holds the prior's parameters under ``model.<name>``, optionally the optimiser state
under ``optim.<...>`` (training checkpoints), and one metadata entry ``pnp_lpn`` with a
JSON object: format and package version, the architecture and its constructor
arguments, the range of its clean training images (``data_range``; null when unknown), a
``sha256`` digest of the architecture, config, data range and every tensor (absent in older
files), and whatever the trainer records under ``training`` (and ``name`` / ``description``).

Loading checks everything before a prior is returned, each failure a ValueError naming the
file and the field or tensor: the JSON and the type of every known field, the config (no
unknown arguments, each of its type) against the architecture's constructor, the digest (any
corrupted byte), and every tensor against the architecture's state dict (names, shapes,
dtypes, finite values, the convexity constraints).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import Tensor

from .._version import __version__
from .aelpn import AELPN
from .base import ProxPrior
from .lpn import LPN
from .ridge import RidgePrior

__all__ = ["ARCHITECTURES", "FORMAT", "FORMAT_VERSION", "digest", "export_prior", "load_prior", "load_tensors",
           "read_metadata", "save_prior", "stored_config"]

FORMAT = "pnp_lpn-prior"
FORMAT_VERSION = 1
ARCHITECTURES: dict[str, type[ProxPrior]] = {"LPN": LPN, "AELPN": AELPN, "RidgePrior": RidgePrior}
# Arguments added with a non-neutral default: the value that reproduces files written before.
LEGACY_CONFIG: dict[str, dict] = {"LPN": {"quadratic_kernel": 0}}
# The metadata fields and their JSON types; required ones first.
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {"format": str, "format_version": int, "architecture": str,
                                                       "config": dict}
OPTIONAL_FIELDS: dict[str, type | tuple[type, ...]] = {"package_version": str, "data_range": (list, type(None)),
                                                       "name": str, "description": str, "training": dict,
                                                       "sha256": str}


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
    meta["sha256"] = digest(meta, tensors)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata={"pnp_lpn": json.dumps(meta)})
    tmp.replace(path)  # atomic: an interrupted save never leaves a truncated checkpoint
    return path


def digest(meta: dict, tensors: dict[str, Tensor]) -> str:
    """sha256 of the architecture, config and data range (canonical JSON) and of every tensor
    (name, dtype, shape and bytes, in name order): what a loaded prior is made of."""
    h = hashlib.sha256(json.dumps([meta.get("architecture"), meta.get("config"), meta.get("data_range")],
                                  sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def read_metadata(path: str | Path) -> dict:
    """The JSON metadata of a checkpoint, validated: one of ours, every known field of the right
    type, a config that the architecture accepts (ValueError naming the field)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("pnp_lpn")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e})") from e
    if raw is None:
        raise ValueError(f"{path} is a safetensors file but has no pnp_lpn metadata")
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{path}: the pnp_lpn metadata is not valid JSON ({e})") from None
    _check_fields(meta, path)
    if meta["format"] != FORMAT or meta["architecture"] not in ARCHITECTURES:
        raise ValueError(f"{path}: unknown format {meta['format']!r} / architecture {meta['architecture']!r} "
                         f"(expected {FORMAT!r} and one of {sorted(ARCHITECTURES)})")
    if meta["format_version"] > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer pnp_lpn (format {meta['format_version']}); upgrade")
    _check_config(meta["architecture"], meta["config"], path)
    _data_range(meta, path)
    return meta


def _check_fields(meta: object, path: Path) -> None:
    """ValueError unless ``meta`` is a JSON object with the required fields and every field of
    REQUIRED_FIELDS / OPTIONAL_FIELDS of its type. Other fields are what a caller of
    :func:`save_prior` recorded (its ``metadata``): kept as they are."""
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: the pnp_lpn metadata must be a JSON object, got {type(meta).__name__}")
    missing = [k for k in REQUIRED_FIELDS if k not in meta]
    if missing:
        raise ValueError(f"{path}: metadata field(s) {missing} missing")
    for name, kind in {**REQUIRED_FIELDS, **OPTIONAL_FIELDS}.items():
        if name in meta and (not isinstance(meta[name], kind) or isinstance(meta[name], bool)):
            raise ValueError(f"{path}: metadata field {name!r} must be of type "
                             f"{getattr(kind, '__name__', kind)}, got {meta[name]!r}")


def _check_config(arch: str, config: dict, path: Path) -> None:
    """ValueError naming the field unless every key of ``config`` is an argument of the
    architecture's constructor with a value of its default's type (bool; int; finite number;
    list of ints for a tuple; None or a finite number > 0 for a None default)."""
    params = inspect.signature(ARCHITECTURES[arch]).parameters
    unknown = sorted(set(config) - set(params))
    if unknown:
        raise ValueError(f"{path}: config field(s) {unknown} are not arguments of {arch}; known: {sorted(params)}")
    for name, value in config.items():
        default = params[name].default
        if default is inspect.Parameter.empty or _json_type_ok(value, default):
            continue
        raise ValueError(f"{path}: config field {name!r} = {value!r} has the wrong type for {arch} "
                         f"(default {default!r})")


def _json_type_ok(value: object, default: object) -> bool:
    """Whether a JSON ``value`` fits an argument whose default is ``default``."""
    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return number(value)
    if isinstance(default, (tuple, list)):
        return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if default is None:
        return value is None or (number(value) and value > 0)
    return True


def stored_config(meta: dict) -> dict:
    """The constructor arguments in ``meta``, with defaults filled in for arguments added to the
    architecture after the file was written (so older checkpoints still compare equal); an
    argument in ``LEGACY_CONFIG`` gets the value that files written before it existed mean."""
    arch = meta["architecture"]
    params = inspect.signature(ARCHITECTURES[arch]).parameters
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **LEGACY_CONFIG.get(arch, {}), **meta["config"]}


def load_tensors(path: str | Path, prefix: str) -> dict[str, Tensor]:
    """Tensors stored under ``prefix`` (prefix stripped); ValueError for an unreadable file."""
    return {k[len(prefix):]: v for k, v in _load_all(path).items() if k.startswith(prefix)}


def _load_all(path: str | Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: the tensors cannot be read, the file is truncated or corrupted ({e})") from e


def load_prior(path: str | Path, device: str | torch.device = "cpu") -> ProxPrior:
    """Rebuild the prior stored at ``path`` in eval mode; every field and tensor is checked
    first (module docstring), so a malformed or corrupted file raises ValueError naming it."""
    meta = read_metadata(path)
    tensors = _load_all(path)
    if "sha256" in meta and digest(meta, tensors) != meta["sha256"]:
        raise ValueError(f"{path}: sha256 digest mismatch: the file's weights or config were changed or corrupted "
                         "after it was written")
    try:
        prior = ARCHITECTURES[meta["architecture"]](**stored_config(meta))
    except (ValueError, TypeError, RuntimeError) as e:
        raise ValueError(f"{path}: config {meta['config']} does not build a {meta['architecture']}: {e}") from e
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    _check_state(prior, state, path)
    prior.load_state_dict(state, strict=True)
    bad = prior.constraint_violations()
    if bad:
        raise ValueError(f"{path}: tensor(s) {bad} have negative entries, but the architecture needs them >= 0 "
                         "(convexity); the file is corrupted")
    prior.metadata = meta
    prior.data_range = _data_range(meta, path)
    return prior.to(device).eval()


def _check_state(prior: ProxPrior, state: dict[str, Tensor], path: str | Path) -> None:
    """ValueError naming the tensor unless ``state`` has exactly the prior's state-dict names,
    each with its shape and dtype and finite values."""
    expected = prior.state_dict()
    missing = sorted(f"model.{k}" for k in set(expected) - set(state))
    unknown = sorted(f"model.{k}" for k in set(state) - set(expected))
    if missing or unknown:
        raise ValueError(f"{path}: weights do not match the stored {type(prior).__name__} config: missing tensors "
                         f"{missing}, unexpected tensors {unknown}")
    for name, ref in expected.items():
        t = state[name]
        if t.shape != ref.shape or t.dtype != ref.dtype:
            raise ValueError(f"{path}: weights do not match the stored {type(prior).__name__} config: tensor "
                             f"model.{name} is {t.dtype} {tuple(t.shape)}, the architecture needs {ref.dtype} "
                             f"{tuple(ref.shape)}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"{path}: tensor model.{name} contains NaN or Inf values; the file is corrupted")


def _data_range(meta: dict, path: str | Path) -> tuple[float, float] | None:
    """The stored (lo, hi) training range, None if the file has none."""
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
    state), with its name, description and a summary of the training run in the metadata
    (its settings, steps, data, validation scores and the checkpoint it started from, if any)."""
    meta = read_metadata(checkpoint)
    train = meta.get("training", {})
    hist = train.get("history") if isinstance(train.get("history"), dict) else {}  # a free-form record
    summary = {"config": train.get("config"), "steps_done": train.get("step"), "data": train.get("data"),
               "world_size": train.get("world_size"), "wall_time_s": hist.get("wall_time"),
               "val_step": hist.get("val_step"), "val_psnr": hist.get("val_psnr"),
               "val_minutes": hist.get("val_minutes"), "init_from": train.get("init_from")}
    prior = load_prior(checkpoint)
    return save_prior(prior, out, {"name": name, "description": description, "training": summary})
