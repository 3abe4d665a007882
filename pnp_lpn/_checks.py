"""Input validation shared by priors, operators and solvers.

Every public entry point calls one of these before touching torch, so that bad input
fails with a message naming what was wrong and what is expected.
"""

from __future__ import annotations

import os
import sys
import warnings

import torch
from torch import Tensor

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep


def colour_hint(expected: int, got: int) -> str:
    """The hint for an r, g, b image given to a grey prior (else "")."""
    return "; for colour images wrap a grey prior: pl.OpponentColorPrior(prior)" if (expected, got) == (1, 3) else ""


def check_image(
    x: object,
    name: str = "x",
    channels: int | None = None,
    shape: tuple[int, ...] | None = None,
    finite: bool = True,
) -> Tensor:
    """Check that ``x`` is a finite floating (B, C, H, W) tensor and return it.

    :param channels: required C, or None for any.
    :param shape: required (C, H, W), or None for any.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have 4 dimensions (B, C, H, W), got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must be a floating-point tensor (e.g. float32), got dtype {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} has {x.shape[1]} channel(s) but {channels} are expected (shape {tuple(x.shape)})"
                         f"{colour_hint(channels, x.shape[1])}")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"{name} must have shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    if finite and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return x


def check_positive(value: float, name: str, allow_zero: bool = False) -> float:
    """Return ``float(value)`` if it is finite and > 0 (>= 0 when ``allow_zero``)."""
    v = float(value)
    ok = v >= 0 if allow_zero else v > 0
    if not (ok and v == v and v != float("inf")):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return v


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype to compute in for a floating tensor: its own, or float32 for float16 /
    bfloat16 (FFTs and many CPU kernels have no half-precision version, and sums of many
    terms lose too much in it)."""
    return torch.float32 if torch.finfo(x.dtype).bits < 32 else x.dtype


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first frame outside pnp_lpn and torch: the user's
    line that called into the library (torch's decorators such as ``@torch.no_grad()`` add
    frames of their own, so a fixed stacklevel would point inside torch)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith((_PACKAGE_DIR, _TORCH_DIR)):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
