"""Benchmark tasks: an operator family, a noise level, and the images it is scored on.

Every task simulates its measurements once per split with a fixed seed (derived from the
task name), y = A x + noise_sigma * e, e ~ N(0, I), so every method sees the same data.

Images (held out from every shipped prior's training, see pnp_lpn.training.datasets):
- natural tasks: lam is chosen on crops of ``coins`` ("validation split") and scored on
  crops of ``chelsea`` (luma), the two images set aside from training as ``VALIDATION``.
  scikit-image/scikit-learn ship no other natural photos, and all the others are training
  images, which :func:`natural_crops` refuses.
- colour tasks (``*-color-*``): the natural tasks on r, g, b crops; lam is chosen on crops of
  ``chelsea`` (the one colour photo among the held-out ones) and scored on the left view of
  ``stereo_motorcycle``, a photo that no prior was trained, validated or selected on.
- CT tasks: lam is chosen on random phantoms ``ct_phantoms(n, size, seed=20_000)``; the test
  images are the Shepp-Logan phantom (scikit-image, resized) then phantoms with seed 30_000.
  The CT prior was trained on seed 0 (validation seed 10_000).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor

from ..operators import CompressedSensing, GaussianBlur, ParallelBeamCT
from ..training.datasets import VALIDATION, training_image_names
from ..data import CT_SEEDS, ct_phantoms, natural_image, shepp_logan

CT_VAL_SEED, CT_TEST_SEED = CT_SEEDS["bench-validation"], CT_SEEDS["bench-test"]


@dataclass(frozen=True)
class Task:
    """One benchmark problem.

    :param name: identifier used on the command line and in the tables.
    :param domain: "natural", "color" (r, g, b natural images) or "ct" (chooses the images and
        the LPN prior).
    :param noise_sigma: std of the Gaussian noise on the measurements (on the image for
        denoising tasks).
    :param operator: img_size (C, H, W) -> a pnp_lpn operator with this noise level;
        None for a denoising task (the denoiser is applied once, no solver, no lam).
    :param box: the solver's box constraint (None: none).
    :param max_iter: the reference iteration count (the LPN paper's, docs/benchmarks.md), capped by a preset.
    """

    name: str
    domain: str
    noise_sigma: float
    operator: Callable[..., object] | None
    box: tuple[float, float] | None = None
    max_iter: int = 20
    description: str = ""

    @property
    def is_denoising(self) -> bool:
        return self.operator is None

    @property
    def seed(self) -> int:
        """Seed of the measurement noise, fixed by the name."""
        return zlib.crc32(self.name.encode())


def _tasks() -> dict[str, Task]:
    tasks = [Task(f"deblur-b{b:g}-n{n:g}", "natural", n, partial(GaussianBlur, sigma_blur=b, noise_sigma=n),
                  max_iter=20, description=f"circular Gaussian blur sigma_b={b:g}, noise {n:g}")
             for b in (1.0, 2.0) for n in (0.02, 0.04)]
    tasks += [Task(f"cs-{k}", "natural", 0.001, partial(CompressedSensing, ratio=1 / k, seed=0, noise_sigma=0.001),
                   box=(0.0, 1.0), max_iter=80, description=f"compressed sensing M = n/{k}, noise 0.001, box [0, 1]")
              for k in (4, 16)]
    tasks += [Task(f"ct-{v}", "ct", 1.0, partial(ParallelBeamCT, n_angles=v, noise_sigma=1.0), box=(0.0, 1.0),
                   max_iter=15, description=f"parallel-beam CT, {v} views in [0, pi), sinogram noise 1.0, box [0, 1]")
              for v in (60, 200)]
    tasks += [Task(f"denoise-{s:g}", "natural", s, None, description=f"Gaussian denoising, sigma {s:g}")
              for s in (0.05, 0.1, 0.2, 0.3)]
    tasks += [Task(f"deblur-color-b{b:g}-n{n:g}", "color", n, partial(GaussianBlur, sigma_blur=b, noise_sigma=n),
                   max_iter=20, description=f"r, g, b: circular Gaussian blur sigma_b={b:g}, noise {n:g}")
              for b, n in ((1.0, 0.02), (2.0, 0.04))]
    tasks += [Task(f"denoise-color-{s:g}", "color", s, None, description=f"r, g, b: Gaussian denoising, sigma {s:g}")
              for s in (0.1, 0.2)]
    return {t.name: t for t in tasks}


TASKS: dict[str, Task] = _tasks()


def crop_positions(extent: int, size: int, n: int) -> list[int]:
    """n start offsets of crops of ``size`` spread over [0, extent - size] (the centre if n=1)."""
    fractions = [0.5] if n == 1 else np.linspace(0.2, 0.8, n)
    return [int(round(f * (extent - size))) for f in fractions]


def natural_crops(names: tuple[str, ...], size: int, n: int, color: bool = False) -> Tensor:
    """n crops (n, 1, size, size), or (n, 3, size, size) r, g, b with ``color``, taken
    round-robin from the named held-out images, along each image's diagonal."""
    used = sorted(set(names) & training_image_names())
    if used:
        raise ValueError(f"{used} are training images of the shipped priors; benchmark on the held-out "
                         f"images {', '.join(VALIDATION)}")
    per_image = -(-n // len(names))
    crops = []
    for name in names:
        img = natural_image(name, color=color)
        if min(img.shape[-2:]) < size:
            raise ValueError(f"crop size {size} exceeds image {name!r} of shape {tuple(img.shape[-2:])}")
        rows, cols = crop_positions(img.shape[-2], size, per_image), crop_positions(img.shape[-1], size, per_image)
        crops += [img[:, r : r + size, c : c + size] for r, c in zip(rows, cols)]
    order = [crops[i * per_image + j] for j in range(per_image) for i in range(len(names))]
    return torch.stack(order[:n])


def ct_images(split: str, size: int, n: int) -> Tensor:
    """(n, 1, size, size) CT images: validation phantoms, or Shepp-Logan then test phantoms."""
    if split == "val":
        return torch.stack(ct_phantoms(n, size, seed=CT_VAL_SEED))
    return torch.cat([shepp_logan(size), *[p[None] for p in ct_phantoms(n - 1, size, seed=CT_TEST_SEED)]])[:n]


@dataclass
class Split:
    """Images and their measurements for one task and split; ``operator()`` builds a fresh
    operator (no CG warm-start state carried between solves), None for denoising."""

    task: Task
    x: Tensor
    y: Tensor

    def operator(self):
        return None if self.task.is_denoising else self.task.operator(img_size=tuple(self.x.shape[1:]))


def make_split(task: Task, x: Tensor, split: str) -> Split:
    """Simulate y = A x + noise (y = x + noise for denoising) with the task's fixed seed."""
    gen = torch.Generator().manual_seed(task.seed + (0 if split == "val" else 1))
    clean = x if task.is_denoising else task.operator(img_size=tuple(x.shape[1:])).A(x)
    noise = torch.randn(clean.shape, generator=gen, dtype=clean.dtype)
    return Split(task, x, clean + task.noise_sigma * noise)
