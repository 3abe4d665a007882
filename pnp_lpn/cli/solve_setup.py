"""``pnp-lpn solve``: the operator, prior and box a command line asks for, and its data checks."""

from __future__ import annotations

import argparse

import numpy as np

from .common import UsageError, check_file, check_prior, note

#: operators whose measurements are images
IMAGE_OPERATORS = ("blur", "inpainting", "denoise")


def reads_images(args: argparse.Namespace) -> bool:
    """Whether the input files hold images (image operators, or clean images with --simulate)."""
    return args.simulate or args.operator in IMAGE_OPERATORS


def image_shape(args: argparse.Namespace, data: np.ndarray | None) -> tuple[int, int, int]:
    """(C, H, W) of the image to reconstruct: from an image input, else from --size."""
    if reads_images(args):
        if args.color and (data.ndim != 3 or data.shape[0] != 3):
            raise UsageError(f"--color expects an r, g, b image (3, H, W), got an array of shape {data.shape}")
        if not args.color and data.ndim != 2:
            raise UsageError(f"expected a 2-D image, got an array of shape {data.shape}")
        return tuple(data.shape) if args.color else (1, *data.shape)
    return (1, args.size, args.size)


def check_args(args: argparse.Namespace) -> None:
    """Refuse option combinations that cannot work and files that do not exist, before anything is read."""
    check_prior(args.prior)
    check_file(args.mask, "--mask")
    if args.color and args.operator not in IMAGE_OPERATORS:
        raise UsageError(f"--color works with --operator {', '.join(IMAGE_OPERATORS)}, not {args.operator}")
    if args.operator in ("ct", "cs") and args.size is None and not args.simulate:
        raise UsageError(f"--size N is required for --operator {args.operator}")
    if args.detectors is not None and args.operator != "ct":
        raise UsageError("--detectors is a CT option (--operator ct)")
    if args.mask is not None and args.operator != "inpainting":
        raise UsageError("--mask is an inpainting option (--operator inpainting)")
    if args.operator == "inpainting" and not args.simulate and args.mask is None:
        raise UsageError("inpainting measured data needs its mask: --mask FILE (same size, 1 = observed pixel); "
                         "a random mask only makes sense with --simulate")
    if args.operator == "denoise":
        if not args.noise > 0:
            raise UsageError("--operator denoise needs the noise level: --noise SIGMA (> 0, images in [0, 1])")
        if args.prior == "tv":
            raise UsageError("--operator denoise needs an LPN / AE-LPN prior (it calls prior.denoise), not 'tv'")
    if args.dihedral and args.prior == "tv":
        raise UsageError("--dihedral averages an LPN / AE-LPN prior, not 'tv'")


def sinogram_problem(shape: tuple[int, ...], views: int, detectors: int) -> str | None:
    """Why a sinogram of ``shape`` does not fit (views, detectors), naming the option that fixes it."""
    if tuple(shape) == (views, detectors):
        return None
    head = f"expected a sinogram of shape (views, detectors) = ({views}, {detectors}), got {tuple(shape)}"
    if len(shape) != 2:
        return head
    if tuple(shape) == (detectors, views):
        return f"{head}: it looks transposed (detectors x views); save it as views x detectors"
    fixes = ([f"--detectors {shape[1]}"] if shape[1] != detectors else []) + (
        [f"--views {shape[0]}"] if shape[0] != views else [])
    return f"{head}: if that is the scanner's layout, pass {' '.join(fixes)}"


def measurement_problem(args: argparse.Namespace, shape: tuple[int, ...], operator) -> str | None:
    """Why measurements of ``shape`` do not fit ``operator`` (None if they do)."""
    expected = tuple(operator.meas_shape)
    if args.operator == "ct":
        return sinogram_problem(shape, *expected[1:])
    fits = tuple(shape) == expected or (expected[0] == 1 and tuple(shape) == expected[1:])
    if fits:
        return None
    what = "a vector of M values" if args.operator == "cs" else "an image"
    shown = expected[1:] if expected[0] == 1 else expected
    return f"--operator {args.operator} expects {what} of shape {shown}, got {tuple(shape)}"


def read_mask(args: argparse.Namespace, shape: tuple[int, int]) -> np.ndarray | None:
    """--mask as a float32 (H, W) array (None without --mask)."""
    if args.mask is None:
        return None
    from ..image_files import read_mask as read

    loaded = read(args.mask, shape)
    note("solve", loaded.note)
    return loaded.data


def make_operator(args: argparse.Namespace, size: tuple[int, int, int], mask: np.ndarray | None = None,
                  device: str = "cpu"):
    """The operator of --operator for images of ``size`` (C, H, W), on ``device``."""
    import torch

    from .. import operators as ops

    if args.operator == "blur":
        return ops.GaussianBlur(img_size=size, sigma_blur=args.sigma_blur, noise_sigma=args.noise, device=device)
    if args.operator == "inpainting":
        m = None if mask is None else torch.from_numpy(mask)
        return ops.Inpainting(img_size=size, mask=m, ratio=args.ratio, seed=args.seed, noise_sigma=args.noise,
                              device=device)
    if args.operator == "ct":
        return ops.ParallelBeamCT(img_size=size, n_angles=args.views, n_detectors=args.detectors,
                                  noise_sigma=args.noise, device=device)
    return ops.CompressedSensing(img_size=size, ratio=args.ratio, seed=args.seed, noise_sigma=args.noise,
                                 device=device)


def make_prior(args: argparse.Namespace, device: str = "cpu"):
    """The prior of --prior (with --dihedral, --color), on ``device``."""
    from ..priors.checkpoint import load_prior
    from ..priors import DihedralPrior, OpponentColorPrior, load_pretrained

    if args.prior == "tv":
        import deepinv

        return deepinv.models.TVDenoiser(n_it_max=50)
    name = args.prior
    prior = load_prior(name, device=device) if name.endswith(".safetensors") else load_pretrained(name, device=device)
    if prior.in_channels == 3 and not args.color:
        raise UsageError(f"{name} is a colour prior (r, g, b): pass --color to read the images in colour")
    prior = DihedralPrior(prior) if args.dihedral else prior
    return OpponentColorPrior(prior) if args.color and prior.in_channels == 1 else prior


def solve_box(args: argparse.Namespace, operator) -> tuple[float, float] | None:
    """--box: 'auto' is the operator's ``default_box`` ((0, 1) for cs and inpainting), and [0, 1]
    for ct (as in the benchmark tasks); none for blur."""
    if args.box != "auto":
        return args.box
    box = getattr(operator, "default_box", None)
    return (0.0, 1.0) if box is None and args.operator == "ct" else box
