"""Test images that install with the dependencies (offline), and which of them are held out.

- :func:`shepp_logan`: the Shepp-Logan phantom (scikit-image); never trained on.
- :func:`ct_phantoms`: random CT phantoms, reproducible from a seed. Each (values in [0, 1])
  is a smooth background field (Gaussian-filtered white noise) inside a large body ellipse,
  plus 4-14 inner ellipses with random centre, axes, rotation and signed intensity, times a
  random global contrast in [0.6, 1]. ``CT_SEEDS`` lists the seeds already in use.
- :func:`natural_image`: a scikit-image photo as luma (or r, g, b); ``HELD_OUT_NATURAL`` are the photos
  no shipped prior was trained on (evaluate natural-image priors on these, or on your own).
- :func:`package_file`: a data file inside an installed wheel, found without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import Tensor

__all__ = ["ct_phantoms", "natural_image", "package_file", "random_phantom", "shepp_logan"]

#: natural images that no shipped prior was trained on (the training validation images)
HELD_OUT_NATURAL = ("coins", "chelsea")
#: seeds of ct_phantoms() used by this package; a new study should draw from another seed
CT_SEEDS = {"train": 0, "train-validation": 10_000, "bench-validation": 20_000, "bench-test": 30_000,
            "ct-study-example": 40_000, "pnp-runs-benchmark": 50_000}


def package_file(package: str, parts: tuple[str, ...], what: str, hint: str) -> Path:
    """The file ``parts`` (relative to the package folder) inside an installed package, found
    without importing the package (scico's ``__init__`` pulls JAX, sporco's pyfftw).

    :param what: what the file is, for the error message.
    :param hint: the install command that provides it, for the error message.
    :raises FileNotFoundError: naming the path looked at (or the missing package) and ``hint``.
    """
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0], *parts) if locations else None
    if path is None or not path.is_file():
        where = f" (looked for {path})" if path is not None else f" (package {package} not found)"
        raise FileNotFoundError(f"{what} is missing{where}; it ships in the {package} wheel: {hint}  "
                                f"({package} is never imported)")
    return path


def shepp_logan(size: int) -> Tensor:
    """Shepp-Logan phantom (scikit-image) resized to size x size, as (1, 1, size, size) in [0, 1]."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    img = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)
    return torch.from_numpy(np.clip(img, 0, 1).astype(np.float32))[None, None]


def natural_image(name: str, color: bool = False) -> Tensor:
    """The scikit-image image ``name`` as luma (1, H, W) in [0, 1] (ITU-R 601, as the training data),
    or with ``color`` as r, g, b (3, H, W) (a grey source is then repeated in the three channels).

    ``name`` is a function of ``skimage.data`` that needs no download (e.g. "coins",
    "chelsea"); for the stereo pair "stereo_motorcycle" the left view is returned.
    """
    import skimage.data

    hint = f"bundled photos never trained on: {', '.join(HELD_OUT_NATURAL)}, stereo_motorcycle"
    loader = getattr(skimage.data, name, None)
    if loader is None or not callable(loader):
        raise ValueError(f"skimage.data has no image {name!r}; {hint}")
    try:
        img = loader()
    except Exception as e:  # e.g. an image that scikit-image would have to download
        raise ValueError(f"skimage.data.{name}() failed ({type(e).__name__}: {e}); nothing is downloaded "
                         f"here, use a bundled image ({hint})") from e
    img = img[0] if isinstance(img, tuple) else img
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        raise ValueError(f"skimage.data.{name}() is not an image; {hint}")
    a = np.asarray(img, dtype=np.float32) / 255.0
    a = a[..., :3] if a.ndim == 3 else a  # drop an alpha channel
    if color:
        a = np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
    if a.ndim == 3:
        a = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    return torch.from_numpy(np.ascontiguousarray(a))[None]


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
