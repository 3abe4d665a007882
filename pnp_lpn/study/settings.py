"""What a study was run with, recorded in its folder so that a rerun with other settings is refused."""

from __future__ import annotations

import hashlib

import torch


def _digest(tensors: list[torch.Tensor]) -> str:
    """A short hash of the tensors' values (device independent)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    return h.hexdigest()[:16]


def describe_operator(operator) -> dict:
    """Class, shapes, noise level and a hash of the operator's buffers and view angles."""
    tensors = [b for b in operator.buffers()] if hasattr(operator, "buffers") else []
    angles = getattr(operator, "angles", None)
    tensors += [angles] if isinstance(angles, torch.Tensor) else []
    return {"class": type(operator).__name__, "img_size": list(getattr(operator, "img_size", ())),
            "meas_shape": list(getattr(operator, "meas_shape", ())),
            "noise_sigma": float(getattr(operator, "noise_sigma", 0.0) or 0.0), "buffers": _digest(tensors)}


def describe_prior(prior) -> dict:
    """Class and a hash of the prior's weights."""
    tensors = list(prior.state_dict().values()) if isinstance(prior, torch.nn.Module) else []
    return {"class": type(prior).__name__, "weights": _digest(tensors)}


def study_settings(operator, prior, batch_size: int, simulate: bool, seed: int, solve_kwargs: dict) -> dict:
    """Everything that decides a study's results (JSON-ready)."""
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(solve_kwargs.items())}
    return {"operator": describe_operator(operator), "prior": describe_prior(prior), "batch_size": int(batch_size),
            "simulate": bool(simulate), "seed": int(seed) if simulate else None, "solve": kwargs}
