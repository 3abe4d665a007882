"""``pnp-lpn solve``: reconstruct from measurements stored as .npy/.png, from the shell.

Operators: blur (y is an image), inpainting (y is an image, the mask a file or random),
denoise (y is an image with Gaussian noise of std --noise: one call of prior.denoise, the MAP
denoiser below the prior's training level, its prox at it, the rescaled prox above; no iterations),
ct (y is a sinogram (n_angles, n_detectors); --size gives the image size),
cs (y is a vector of M values; --size, --ratio and --seed rebuild the operator).
With --simulate, the input is a clean image and the measurements are simulated first
(the PSNR of the reconstruction is then printed). With --color (blur, inpainting, denoise), images
keep their r, g, b channels and a grey prior is applied as OpponentColorPrior (exact prox).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

OPERATORS = ("blur", "inpainting", "denoise", "ct", "cs")
#: operators whose measurements are images
IMAGE_OPERATORS = ("blur", "inpainting", "denoise")


def add_solve_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("solve", help="reconstruct an image from measurements",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="measurements (.npy, or .png for image-shaped data), or a clean image with --simulate")
    p.add_argument("--operator", choices=OPERATORS, required=True)
    p.add_argument("--simulate", action="store_true", help="input is a clean image: simulate y first")
    p.add_argument("--noise", type=float, default=0.0, help="measurement noise std (also sets the default lam)")
    p.add_argument("--size", type=int, help="image size N for ct/cs (N x N)")
    p.add_argument("--sigma-blur", dest="sigma_blur", type=float, default=1.0)
    p.add_argument("--views", type=int, default=200, help="ct: number of angles in [0, pi)")
    p.add_argument("--ratio", type=float, default=0.25, help="cs/inpainting: fraction of measurements kept")
    p.add_argument("--seed", type=int, default=0, help="cs/inpainting: operator seed; denoise --simulate: noise seed")
    p.add_argument("--prior", default="lpn-natural-gray", help="shipped prior name, a .safetensors file, or 'tv'")
    p.add_argument("--dihedral", action="store_true",
                   help="average the LPN/AE-LPN prior over the 8 flips/rotations (DihedralPrior: still an exact "
                        "prox with a monitored objective; ~+0.2 dB denoising, 8x the cost per iteration)")
    p.add_argument("--color", action="store_true",
                   help="blur/inpainting/denoise: keep r, g, b (a grey LPN/AE-LPN prior runs on the opponent colour channels, "
                        "OpponentColorPrior); without it colour inputs are averaged to grey")
    p.add_argument("--method", choices=("admm", "pgd"), default="admm")
    p.add_argument("--lam", type=float, help="regularisation weight (default: noise^2 / prior sigma^2)")
    p.add_argument("--step", type=float, help="data step tau (PGD step, 1/ADMM penalty; default 1/lam); below "
                   "1/lam the prior step is the exact prox of (tau lam) R, several prior calls each")
    p.add_argument("--box", type=_box, default="auto",
                   help="LO,HI: solve under the constraint LO <= x <= HI (ADMM: a box block, the result meets it "
                        "up to the history's box_violation; PGD: each iterate clipped); --box=-0.1,1 for a negative "
                        "LO; 'none': no box (default: 0,1 for ct and cs, as in the benchmark tasks, none otherwise). "
                        "Without a box a solve whose iterates leave the prior's training range stops as 'ran off'")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--out", default="solve_out", help="output folder")
    return p


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


def read_array(path: str, color: bool = False) -> np.ndarray:
    """A .npy array as stored, or an image: grey (H, W) (colour averaged), or with ``color``
    r, g, b (3, H, W) (a grey image repeated)."""
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False).astype(np.float32)
    from skimage.io import imread

    img = imread(path)
    img = img[..., :3] if img.ndim == 3 else img
    scale = 255.0 if img.dtype == np.uint8 else 1.0
    if color:
        img = np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img
        return (img.transpose(2, 0, 1) / scale).astype(np.float32)
    return ((img.mean(-1) if img.ndim == 3 else img) / scale).astype(np.float32)


def _image_size(args, data: np.ndarray) -> tuple[int, int, int]:
    """(C, H, W) of the image to reconstruct, checked against --operator, --color and --size."""
    if args.color and args.operator not in IMAGE_OPERATORS:
        raise SystemExit(f"error: --color works with --operator {', '.join(IMAGE_OPERATORS)}, not {args.operator}")
    if args.simulate or args.operator in IMAGE_OPERATORS:
        if args.color and (data.ndim != 3 or data.shape[0] != 3):
            raise SystemExit(f"error: --color expects an r, g, b image (3, H, W), got an array of shape {data.shape}")
        if not args.color and data.ndim != 2:
            raise SystemExit(f"error: expected a 2-D image, got an array of shape {data.shape}")
        return tuple(data.shape) if args.color else (1, *data.shape)
    if args.size is None:
        raise SystemExit(f"error: --size N is required for --operator {args.operator}")
    return (1, args.size, args.size)


def _operator(args, data: np.ndarray):
    from . import operators as ops

    size = _image_size(args, data)
    if args.operator == "blur":
        return ops.GaussianBlur(img_size=size, sigma_blur=args.sigma_blur, noise_sigma=args.noise)
    if args.operator == "inpainting":
        return ops.Inpainting(img_size=size, ratio=args.ratio, seed=args.seed, noise_sigma=args.noise)
    if args.operator == "ct":
        return ops.ParallelBeamCT(img_size=size, n_angles=args.views, noise_sigma=args.noise)
    return ops.CompressedSensing(img_size=size, ratio=args.ratio, seed=args.seed, noise_sigma=args.noise)


def _prior(name: str, dihedral: bool = False, color: bool = False):
    from .checkpoint import load_prior
    from .priors import DihedralPrior, OpponentColorPrior, load_pretrained

    if name == "tv":
        if dihedral:
            raise SystemExit("error: --dihedral averages an LPN / AE-LPN prior, not 'tv'")
        import deepinv

        return deepinv.models.TVDenoiser(n_it_max=50)
    prior = load_prior(name) if name.endswith(".safetensors") else load_pretrained(name)
    prior = DihedralPrior(prior) if dihedral else prior
    return OpponentColorPrior(prior) if color and prior.in_channels == 1 else prior


def run_solve(args: argparse.Namespace) -> int:
    from .metrics import psnr
    from .solvers import solve

    data = read_array(args.input, args.color)
    if args.operator == "denoise":
        return _run_denoise(args, data)
    op = _operator(args, data)
    x_true = None
    if args.simulate:
        x_true = torch.from_numpy(data).reshape(1, *op.img_size)
        y = op(x_true)
    else:
        y = torch.from_numpy(data).reshape(1, *op.meas_shape)
    box = ((0.0, 1.0) if args.operator in ("ct", "cs") else None) if args.box == "auto" else args.box
    result = solve(y, op, _prior(args.prior, args.dihedral, args.color), method=args.method, lam=args.lam,
                   max_iter=args.iters, tol=args.tol, progress=True, step=args.step, box=box)
    out = _write_image(result.x, args)
    record = {"lam": result.lam, "step": result.step, "method": result.method, "box": box,
              "stop_reason": result.stop_reason, "notes": result.notes, "history": result.history}
    (out / "history.json").write_text(json.dumps(record, indent=1))
    _convergence_plot(result, out / "convergence.png")
    msg = f"{result.n_iter} iterations ({result.stop_reason}), lam {result.lam:.4g}"
    if x_true is not None:
        msg += f", PSNR {float(psnr(result.x.clamp(0, 1), x_true)):.2f} dB"
    print(f"{msg}\nwrote {out}/x.npy, x.png, history.json, convergence.png")
    return 0


def _write_image(x: torch.Tensor, args: argparse.Namespace) -> Path:
    """Save a (1, C, H, W) result as --out/x.npy (unclipped) and x.png (clipped to [0, 1])."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x_out = x[0] if args.color else x[0, 0]  # (3, H, W) or (H, W)
    np.save(out / "x.npy", x_out.cpu().numpy())
    img = x_out.clamp(0, 1).cpu().numpy()
    img = img.transpose(1, 2, 0) if args.color else img
    from skimage.io import imsave

    imsave(out / "x.png", (img * 255).round().astype(np.uint8), check_contrast=False)
    return out


def _run_denoise(args: argparse.Namespace, data: np.ndarray) -> int:
    """--operator denoise: x = prior.denoise(y, --noise), one exact-prox call, no iterations."""
    from .metrics import psnr

    if not args.noise > 0:
        raise SystemExit("error: --operator denoise needs the noise level: --noise SIGMA (> 0, images in [0, 1])")
    size = _image_size(args, data)
    if args.prior == "tv":
        raise SystemExit("error: --operator denoise needs an LPN / AE-LPN prior (it calls prior.denoise), not 'tv'")
    prior = _prior(args.prior, args.dihedral, args.color)
    x_true = torch.from_numpy(data).reshape(1, *size) if args.simulate else None
    if x_true is not None:
        y = x_true + args.noise * torch.randn(x_true.shape, generator=torch.Generator().manual_seed(args.seed))
    else:
        y = torch.from_numpy(data).reshape(1, *size)
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
