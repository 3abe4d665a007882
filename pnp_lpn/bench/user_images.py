"""Benchmarks on the user's own images: a folder split once into validation and test images.

The images of the folder (any file :func:`pnp_lpn.image_files.read_input` reads, in natural name order)
are split by a permutation seeded with 0: round(val_fraction * n) (at least 1) validation
images, on which each method's lam is chosen, and the rest as test images, which are scored.
Every task takes the centre N x N crop of each image (grey, or r, g, b for the colour tasks):
natural tasks blur / subsample them, CT tasks project them, so a folder of CT slices gives the
CT variant of the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..image_files import range_note
from ..study.slices import list_slices


@dataclass(frozen=True)
class UserImages:
    """A folder of clean images and the fraction of them used for validation."""

    folder: str
    val_fraction: float = 0.25

    def __post_init__(self):
        if not Path(self.folder).is_dir():
            raise ValueError(f"--images {self.folder}: not a folder")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"the validation fraction must lie in (0, 1), got {self.val_fraction!r}")
        if len(self.names()) < 2:
            raise ValueError(f"--images {self.folder}: needs at least 2 images (validation and test), "
                             f"found {len(self.names())}")

    def names(self) -> list[str]:
        """The image names (file stems) in natural order."""
        return [s.name for s in list_slices(self.folder, 2)]

    def split(self) -> dict[str, list[str]]:
        """{"val": names, "test": names}, each in natural order."""
        names = self.names()
        n_val = max(1, round(self.val_fraction * len(names)))
        chosen = set(np.random.default_rng(0).permutation(len(names))[:n_val].tolist())
        return {"val": [n for i, n in enumerate(names) if i in chosen],
                "test": [n for i, n in enumerate(names) if i not in chosen]}

    def images(self, split: str, size: int, color: bool, n: int) -> Tensor:
        """(k, C, size, size) centre crops of the first k = min(n, len) images of ``split``."""
        names = self.split()[split][:n]
        return torch.stack([torch.from_numpy(_centre_crop(self.folder, name, size, color)) for name in names])


@lru_cache(maxsize=512)
def _read(folder: str, name: str, color: bool) -> np.ndarray:
    """The image ``name`` of ``folder`` as (C, H, W) in [0, 1]."""
    (image,) = [s for s in list_slices(folder, 2) if s.name == name]
    data = image.load(color).data
    if (problem := range_note(data)) is not None:
        raise ValueError(f"{image.path}: benchmark images must lie in [0, 1]; {problem}")
    return data if color else data[None]


def _centre_crop(folder: str, name: str, size: int, color: bool) -> np.ndarray:
    img = _read(folder, name, color)
    h, w = img.shape[-2:]
    if min(h, w) < size:
        raise ValueError(f"{folder}/{name}: image of {h} x {w} is smaller than the crop size {size}; pass --size "
                         f"<= {min(h, w)}")
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[:, top:top + size, left:left + size])
