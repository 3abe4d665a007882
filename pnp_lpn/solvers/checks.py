"""Validation of :func:`pnp_lpn.solve`'s arguments."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_image, check_positive, colour_hint, compute_dtype
from .iterations import ITERATIONS

AUTO = "auto"  # solve's default box: the operator's default_box


def check_stopping(max_iter, tol, tol_objective, patience) -> None:
    """ValueError unless max_iter, patience are integers >= 1 and tol, tol_objective finite >= 0."""
    for name, value in (("max_iter", max_iter), ("patience", patience)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    check_positive(tol, "tol", allow_zero=True)
    if tol_objective is not None:
        check_positive(tol_objective, "tol_objective", allow_zero=True)


def check_continuation(continuation, max_iter: int) -> int | str:
    """``continuation`` as an integer 0 <= K < max_iter (None/False: 0), AUTO kept; ValueError otherwise."""
    if continuation is None or continuation is False or (isinstance(continuation, str) and continuation == AUTO):
        return 0 if continuation is None or continuation is False else continuation
    if (isinstance(continuation, bool) or not isinstance(continuation, (int, float)) or int(continuation) != continuation
            or not 0 <= continuation < max_iter):
        raise ValueError(f"continuation must be 'auto', None or an integer 0 <= K < max_iter={max_iter} (the "
                         f"iterations before the stated problem is stepped), got {continuation!r}")
    return int(continuation)


def check_box(box) -> tuple[float, float] | str | None:
    """``box`` as (lo, hi) floats, None for None/False, AUTO kept; ValueError otherwise."""
    if box is None or box is False or (isinstance(box, str) and box == AUTO):
        return None if box is False else box
    try:
        lo, hi = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box must be (lo, hi), None/False (no box) or 'auto', got {box!r}") from None
    if not (lo < hi and math.isfinite(lo - hi)):
        raise ValueError(f"box must be (lo, hi) with finite lo < hi, got {box!r}")
    return lo, hi


def check_inputs(y, physics, prior, method, lam, x0, step) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate the inputs; (y, A^T y, x0) in the working dtype (y's, float32 for 16-bit y)."""
    if method not in ITERATIONS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(ITERATIONS)}")
    if lam is not None:
        check_positive(lam, "lam")
    if step is not None:
        check_positive(step, "step")
    y = _check_measurements(y)
    try:
        x_adj = physics.A_adjoint(y)
        y_back = physics.A(x_adj)
    except (RuntimeError, ValueError, IndexError) as e:
        raise ValueError(f"y of shape {tuple(y.shape)} does not match the operator {type(physics).__name__}: {e}") from e
    if y_back.shape != y.shape:
        raise ValueError(f"y has shape {tuple(y.shape)} but the operator produces measurements of shape {tuple(y_back.shape)}")
    channels = getattr(prior, "in_channels", None)
    if channels is not None and x_adj.shape[1] != channels:
        raise ValueError(f"the prior expects {channels} channel(s) but the operator's images have {x_adj.shape[1]}"
                         f"{colour_hint(channels, x_adj.shape[1])}")
    if x0 is not None:
        x0 = check_image(x0, "x0", shape=tuple(x_adj.shape[1:])).to(y.dtype)
        if x0.shape[0] != y.shape[0]:
            raise ValueError(f"x0 has batch size {x0.shape[0]} but y has {y.shape[0]}")
    return y, x_adj, x0


def _check_measurements(y) -> Tensor:
    """y as a finite floating tensor with a batch dimension, in the working dtype."""
    if not isinstance(y, Tensor):
        raise ValueError(f"y must be a torch.Tensor (B, ...), got {type(y).__module__}.{type(y).__name__}; "
                         "e.g. torch.from_numpy(y).float()")
    if not torch.is_floating_point(y) or y.ndim < 2:
        raise ValueError(f"y must be a floating-point tensor with a batch dimension, got {y.dtype} of shape "
                         f"{tuple(y.shape)}" + ("; e.g. y.float() / 255 for 8-bit data" if y.dtype == torch.uint8 else ""))
    if not torch.isfinite(y).all():
        raise ValueError("y contains NaN or Inf values")
    return y.to(compute_dtype(y))
