"""Whole studies: every slice of a stack, folder or file list reconstructed in batches,
resumably, split across the processes of a torchrun launch (docs/studies.md).

The names are imported on first use, so that ``pnp_lpn.study.slices`` (file listing) loads
without torch.
"""

from __future__ import annotations

import importlib

_NAMES = {"Denoising": "denoising", "study_device": "launch", "StudyResult": "run", "solve_study": "run", "Slice": "slices",
          "is_study": "slices", "list_slices": "slices"}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
