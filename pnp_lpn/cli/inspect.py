"""``pnp-lpn inspect``: R of clean vs degraded images for a learned regulariser."""

from __future__ import annotations

import argparse

from .common import UsageError, check_prior, note, nonnegative_float, positive_int

DESCRIPTION = ("Print R(variant) - R(clean) for noisy, blurred and noisy+blurred versions of images (a prior that "
               "captured the data ranks clean images lowest). R at arbitrary points comes from convex inversion; "
               "its residual is shown.")


def add_parser(sub, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    return sub.add_parser("inspect", help="evaluate a learned regulariser on clean vs degraded images",
                          description=DESCRIPTION, parents=parents)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="*",
                   help="image files (.png/.tif/.npy/..., default: the held-out validation images)")
    p.add_argument("--prior", default="lpn-natural-gray",
                   help="shipped prior name or .safetensors file")
    p.add_argument("--list", action="store_true", help="list the shipped priors and exit")
    p.add_argument("--data", default="natural-gray",
                   help="validation set when no images are given (natural-gray, ct, mnist)")
    p.add_argument("--size", type=positive_int, default=96, help="crop size")
    p.add_argument("--noise", type=nonnegative_float, default=0.1)
    p.add_argument("--blur", type=nonnegative_float, default=1.5, help="Gaussian blur sigma (pixels)")
    p.add_argument("--max-images", dest="max_images", type=positive_int, default=16,
                   help="use at most this many images")
    p.add_argument("--curves", metavar="PNG", help="instead of the table, sweep noise / blur / mixing with another "
                   "image over several levels and save the curves of R - R(clean) (LPN paper, Fig. 3)")


def _read_images(paths: list[str]) -> list:
    """The grey images of ``paths`` as numpy arrays (notes on stderr), checked before torch loads."""
    from ..image_files import read_input

    images = []
    for path in paths:
        loaded = read_input(path)
        if loaded.data.ndim != 2:
            raise UsageError(f"{path}: expected a 2-D grey image, got an array of shape {loaded.data.shape}")
        note("inspect", loaded.note)
        images.append(loaded.data)
    return images


def run(args: argparse.Namespace) -> int:
    check_prior(args.prior)
    arrays = _read_images(args.images)
    import torch

    from ..priors.checkpoint import load_prior
    from ..inspection import inspect_prior
    from ..priors import list_pretrained, load_pretrained
    from ..training.datasets import validation_images

    if args.list:
        print("\n".join(list_pretrained()) or "no shipped priors")
        return 0
    imgs = [torch.from_numpy(a)[None] for a in arrays] if arrays else validation_images(args.data)
    crops = [im[:, : args.size, : args.size] for im in imgs if min(im.shape[-2:]) >= args.size][: args.max_images]
    if not crops:
        raise UsageError(f"no image is at least {args.size} x {args.size}; pass a smaller --size")
    crops = torch.stack(crops)
    prior = load_prior(args.prior) if args.prior.endswith(".safetensors") else load_pretrained(args.prior)
    if args.curves:
        return _curves(prior, crops, args)
    rows = inspect_prior(prior, crops, noise=args.noise, blur=args.blur)
    print(f"R(variant) - R(clean) for {args.prior} (noise {args.noise:g}, blur sigma {args.blur:g}):")
    print(f"{'image':>5} {'variant':>14} {'R - R(clean)':>14} {'inversion residual':>19}")
    for r in rows:
        print(f"{r['image']:>5} {r['variant']:>14} {r['R_minus_clean']:>14.4g} {r['residual']:>19.1e}")
    return 0


def _curves(prior, crops, args: argparse.Namespace) -> int:
    from ..inspection import perturbation_curves, plot_curves

    curves = perturbation_curves(prior, crops)
    print(f"mean R(degraded) - R(clean) over {len(crops)} images for {args.prior}:")
    for kind, c in curves.items():
        means = c["R_minus_clean"].mean(1)
        print(f"{kind:>6}: " + "  ".join(f"{t:g}: {float(m):.4g}" for t, m in zip(c["level"], means))
              + f"  (max inversion residual {float(c['residual'].max()):.1e})")
    plot_curves(curves, args.curves, title=f"{args.prior} on {len(crops)} held-out images")
    print(f"wrote {args.curves}")
    return 0
