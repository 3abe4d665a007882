"""Random CT phantoms: a body ellipse with smooth texture and random inner ellipses.

Each phantom (values in [0, 1]) is built from
- a smooth background field (Gaussian-filtered white noise) inside a large body ellipse,
- 4-14 inner ellipses with random centre, axes, rotation and signed intensity,
- a random global contrast in [0.6, 1].
The Shepp-Logan phantom is not part of the training set (it is the demo's test image).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import Tensor


def _ellipse(grid: tuple[np.ndarray, np.ndarray], cx: float, cy: float, a: float, b: float, theta: float) -> np.ndarray:
    yy, xx = grid
    c, s = np.cos(theta), np.sin(theta)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def random_phantom(size: int, rng: np.random.Generator) -> np.ndarray:
    """One (size, size) float32 phantom in [0, 1]."""
    grid = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    body = _ellipse(grid, *rng.uniform(-0.08, 0.08, 2), *rng.uniform(0.7, 0.95, 2), rng.uniform(0, np.pi))
    texture = gaussian_filter(rng.standard_normal((size, size)), sigma=size * rng.uniform(0.02, 0.08))
    texture *= rng.uniform(0.02, 0.08) / (texture.std() + 1e-12)
    img = body * (rng.uniform(0.15, 0.45) + texture)
    for _ in range(rng.integers(4, 15)):
        mask = _ellipse(grid, *rng.uniform(-0.6, 0.6, 2), *rng.uniform(0.03, 0.35, 2), rng.uniform(0, np.pi))
        img = img + body * mask * rng.choice([-1.0, 1.0], p=[0.3, 0.7]) * rng.uniform(0.05, 0.5)
    return np.clip(img * rng.uniform(0.6, 1.0), 0.0, 1.0).astype(np.float32)


def ct_phantoms(n: int, size: int = 128, seed: int = 0) -> list[Tensor]:
    """``n`` phantoms as (1, size, size) tensors, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(random_phantom(size, rng))[None] for _ in range(n)]
