"""``pnp-lpn solve``: reconstruct from measurements stored in files, from the shell.

Operators: blur (y is an image), inpainting (y is an image, the mask a file: --mask, or random
with --simulate), denoise (y is an image with Gaussian noise of std --noise: one call of
prior.denoise, the MAP denoiser below the prior's training level, its prox at it, the rescaled
prox above; no iterations), ct (y is a sinogram, views x detectors; --size gives the image size,
--views and --detectors the geometry), cs (y is a vector of M values; --size, --ratio and --seed
rebuild the operator).

Files: images (1-bit, 8/16-bit grey, grey + alpha, palette, RGB, RGBA; integers scaled by their bit
depth's maximum to [0, 1], alpha dropped), .npy/.npz arrays, DICOM slices (RescaleSlope and
RescaleIntercept applied). What was done to each file is said on stderr.

Studies: several files, a folder, or a .npy stack (slices first) are reconstructed slice by slice
in batches (--batch-size); --out then holds one .npy per slice and summary.csv / summary.json.
A rerun with the same command skips the finished slices; under torchrun the slices are split
across the processes (docs/studies.md).

With --simulate, the input is a clean image and the measurements are simulated first (the PSNR of
the reconstruction is then printed). With --color (blur, inpainting, denoise), images keep their
r, g, b channels and a grey prior is applied as OpponentColorPrior (exact prox).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .common import UsageError, bounded_int, nonnegative_float, note, positive_float, positive_int
from .solve_setup import (check_args, image_shape, make_operator, make_prior, measurement_problem, read_mask,
                          reads_images, solve_box)

OPERATORS = ("blur", "inpainting", "denoise", "ct", "cs")


def add_parser(sub, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    return sub.add_parser("solve", help="reconstruct an image (or a study of slices) from measurements",
                          description=__doc__, parents=parents, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="+", help="measurements (an image, .npy/.npz or DICOM file), or a clean image with "
                   "--simulate; several files, a folder or a 3-D .npy stack make a study")
    p.add_argument("--operator", choices=OPERATORS, required=True)
    p.add_argument("--simulate", action="store_true", help="input is a clean image: simulate y first")
    p.add_argument("--noise", type=nonnegative_float, default=0.0,
                   help="measurement noise std (also sets the default lam)")
    p.add_argument("--size", type=positive_int, help="image size N for ct/cs (N x N)")
    p.add_argument("--sigma-blur", dest="sigma_blur", type=positive_float, default=1.0)
    p.add_argument("--views", type=positive_int, default=200, help="ct: number of angles in [0, pi)")
    p.add_argument("--detectors", type=positive_int,
                   help="ct: detector bins of the sinogram (default ceil(sqrt(2) N), every ray through the image)")
    p.add_argument("--mask", help="inpainting: mask image or array of the measurement's size, "
                   "1 (white) = observed pixel, 0 = missing (default with --simulate: random, --ratio, --seed)")
    p.add_argument("--ratio", type=float, default=0.25, help="cs/inpainting: fraction of measurements kept")
    p.add_argument("--seed", type=int, default=0,
                   help="cs/inpainting: operator seed; --simulate: noise seed")
    p.add_argument("--prior", default="lpn-natural-gray",
                   help="shipped prior name, a .safetensors file, or 'tv'")
    p.add_argument("--dihedral", action="store_true",
                   help="average the LPN/AE-LPN prior over the 8 flips/rotations (DihedralPrior: still an exact "
                        "prox with a monitored objective; ~+0.2 dB denoising, 8x the cost per iteration)")
    p.add_argument("--color", action="store_true",
                   help="blur/inpainting/denoise: keep r, g, b (a grey LPN/AE-LPN prior runs on the opponent colour "
                        "channels, OpponentColorPrior); without it colour inputs are averaged to grey")
    p.add_argument("--method", choices=("admm", "pgd"), default="admm")
    p.add_argument("--lam", type=positive_float, help="regularisation weight (default: noise^2 / prior sigma^2)")
    p.add_argument("--step", type=positive_float, help="data step tau (PGD step, 1/ADMM penalty; default 1/lam); "
                   "below 1/lam the prior step is the exact prox of (tau lam) R, several prior calls each")
    p.add_argument("--box", type=_box, default="auto",
                   help="LO,HI: solve under the constraint LO <= x <= HI (ADMM: a box block, the result meets it "
                        "up to the history's box_violation; PGD: each iterate clipped); --box=-0.1,1 for a negative "
                        "LO; 'none': no box (default: 0,1 for ct, cs and inpainting, as in the benchmark tasks, "
                        "none for blur). Without a box a solve whose iterates leave the prior's training range "
                        "stops as 'ran off'")
    p.add_argument("--continuation", type=_continuation, default="auto",
                   help="K: the first K prior steps denoise at 5x down to 1x the step's noise level, then the stated "
                        "problem (0: off; default 'auto': 20 for cs and inpainting, whose starts are far from any "
                        "image, at most 4/5 of --iters; none for the other operators)")
    p.add_argument("--iters", type=positive_int, default=50)
    p.add_argument("--tol", type=nonnegative_float, default=1e-5)
    p.add_argument("--out", default="solve_out", help="output folder")
    p.add_argument("--batch-size", dest="batch_size", type=positive_int, default=8,
                   help="study: slices solved together")
    p.add_argument("--reference", help="study: clean slices (same kinds of input) for PSNR / SSIM in the summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _box(text: str) -> tuple[float, float] | str | None:
    """'auto', 'none' or 'LO,HI' with LO < HI."""
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (e.g. 0,1), 'auto' or 'none', got {text!r}") from None
    if not lo < hi:
        raise argparse.ArgumentTypeError(f"the box needs LO < HI, got {text!r}")
    return lo, hi


def _continuation(text: str) -> int | str:
    """'auto' or an integer K >= 0."""
    return text if text == "auto" else bounded_int(text, 0)


def run(args: argparse.Namespace) -> int:
    check_args(args)
    from ..study.slices import is_study

    if is_study(args.input, slice_ndim=_slice_ndim(args)):
        from .solve_study import run_study

        return run_study(args, _slice_ndim(args))
    if args.reference is not None:
        raise UsageError("--reference is for studies (several slices); with one image use --simulate for a PSNR")
    return _run_single(args)


def _slice_ndim(args: argparse.Namespace) -> int:
    """Dimensions of one input: 3 for colour images, 1 for cs vectors, else 2."""
    if reads_images(args):
        return 3 if args.color else 2
    return 1 if args.operator == "cs" else 2


def read_single(args: argparse.Namespace, path: str) -> np.ndarray:
    """One input file as float32, with its note (and a range note for images) on stderr."""
    from ..image_files import range_note, read_input

    loaded = read_input(path, color=args.color)
    note("solve", loaded.note)
    if reads_images(args) and (msg := range_note(loaded.data)):
        note("solve", f"{Path(path).name}: {msg}")
    return loaded.data


def _run_single(args: argparse.Namespace) -> int:
    data = read_single(args, args.input[0])
    size = image_shape(args, data)
    mask = read_mask(args, size[1:])
    import torch

    if args.operator == "denoise":
        return _run_denoise(args, data, size)
    op = make_operator(args, size, mask)
    x_true = torch.from_numpy(data).reshape(1, *op.img_size) if args.simulate else None
    if x_true is None and (problem := measurement_problem(args, data.shape, op)):
        raise UsageError(f"{args.input[0]}: {problem}")
    if args.simulate:
        from ..study.run import simulate_measurements

        y = simulate_measurements(op, x_true, [args.seed])
    else:
        y = torch.from_numpy(data).reshape(1, *op.meas_shape)
    box = solve_box(args, op)
    from ..solvers import solve

    result = solve(y, op, make_prior(args), method=args.method, lam=args.lam, max_iter=args.iters, tol=args.tol,
                   progress=not args.quiet, step=args.step, box=box, continuation=args.continuation)
    out = _write_image(result.x, args)
    record = {"lam": result.lam, "step": result.step, "method": result.method, "box": box,
              "continuation": args.continuation,
              "stop_reason": result.stop_reason, "notes": result.notes, "history": result.history}
    (out / "history.json").write_text(json.dumps(record, indent=1))
    _convergence_plot(result, out / "convergence.png")
    msg = f"{result.n_iter} iterations ({result.stop_reason}), lam {result.lam:.4g}"
    if x_true is not None:
        from ..metrics import psnr

        msg += f", PSNR {float(psnr(result.x.clamp(0, 1), x_true)):.2f} dB"
    print(f"{msg}\nwrote {out}/x.npy, x.png, history.json, convergence.png")
    return 0


def _write_image(x, args: argparse.Namespace) -> Path:
    """Save a (1, C, H, W) result as --out/x.npy (unclipped) and x.png (clipped to [0, 1])."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x_out = x[0] if args.color else x[0, 0]  # (3, H, W) or (H, W)
    np.save(out / "x.npy", x_out.cpu().numpy())
    img = x_out.clamp(0, 1).cpu().numpy()
    img = img.transpose(1, 2, 0) if args.color else img
    from PIL import Image

    Image.fromarray((img * 255).round().astype(np.uint8)).save(out / "x.png")
    return out


def _run_denoise(args: argparse.Namespace, data: np.ndarray, size: tuple[int, int, int]) -> int:
    """--operator denoise: x = prior.denoise(y, --noise), one exact-prox call, no iterations."""
    import torch

    from ..metrics import psnr

    x_true = torch.from_numpy(data).reshape(1, *size) if args.simulate else None
    if x_true is not None:
        y = x_true + args.noise * torch.randn(x_true.shape, generator=torch.Generator().manual_seed(args.seed))
    else:
        y = torch.from_numpy(data).reshape(1, *size)
    prior = make_prior(args)
    with torch.no_grad():
        x = prior.denoise(y, args.noise)
    out = _write_image(x, args)
    msg = f"denoised at sigma {args.noise:g} with {args.prior}"
    if x_true is not None:
        msg += f": PSNR {float(psnr(y.clamp(0, 1), x_true)):.2f} -> {float(psnr(x.clamp(0, 1), x_true)):.2f} dB"
    print(f"{msg}\nwrote {out}/x.npy, x.png")
    return 0


def _convergence_plot(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("objective", "residual", "rel_change") if k in result.history]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5))
    for ax, key in zip(np.atleast_1d(axes), keys):
        vals = np.asarray(result.history[key])
        if key == "objective":
            vals = vals - np.nanmin(vals) + 1e-3 * abs(np.nanmin(vals)) + 1e-12
            key = "objective - min"
        ax.semilogy(np.arange(1, len(vals) + 1), vals)
        ax.set_title(key)
        ax.set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
