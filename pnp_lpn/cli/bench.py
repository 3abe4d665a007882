"""``pnp-lpn bench``: LPN / AE-LPN against TV, BM3D, DnCNN (and FBP for CT) on deblurring,
compressed sensing, sparse-view CT and denoising. For every (task, method) lam is chosen
on validation images, then the test images are scored; results.csv, grid.csv,
results.md, runs.json and figures go to --out. With --images DIR every task runs on the
centre crops of the folder's images (a validation split chooses lam, the rest is scored;
a folder of CT slices with --tasks ct-60,ct-200 is the CT variant). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from .common import UsageError, check_prior


def _names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _prior(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path.endswith(".safetensors"):
        raise argparse.ArgumentTypeError(f"expected NAME=FILE.safetensors, got {text!r}")
    return name, path


def add_parser(sub, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    return sub.add_parser("bench", help="benchmark PnP denoisers", description=__doc__, parents=parents,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..bench import BENCH_PRESETS, METHODS, TASKS

    p.add_argument("--preset", choices=sorted(BENCH_PRESETS), default="quick",
                   help="quick: 64^2, 1+1 images, 3-value grid, <= 25 iterations; full: all tasks, 128^2, "
                        "2+2 images, 5-value grid, reference iteration counts")
    p.add_argument("--tasks", type=_names, help=f"comma-separated subset of: {', '.join(TASKS)}")
    p.add_argument("--methods", type=_names, help=f"comma-separated subset of: {', '.join(METHODS)}")
    p.add_argument("--prior", type=_prior, action="append", dest="priors", metavar="NAME=FILE",
                   help="also benchmark a prior file written by `pnp-lpn train` (repeatable): adds the methods "
                        "NAME-admm and NAME-pgd, run on every task of the preset unless --methods is given")
    p.add_argument("--size", type=int, help="image size N (overrides the preset)")
    p.add_argument("--iters", type=int, dest="max_iter", help="iteration cap (overrides the preset)")
    p.add_argument("--n-val", type=int, dest="n_val", help="validation images per task")
    p.add_argument("--n-test", type=int, dest="n_test", help="test images per task")
    p.add_argument("--grid", type=lambda s: tuple(float(v) for v in _names(s)),
                   help="comma-separated factors of the default lam, e.g. 0.1,1,10")
    p.add_argument("--images", metavar="DIR",
                   help="benchmark on the images of DIR (centre crops of --size; any image, .npy or DICOM file "
                        "in [0, 1]) instead of the built-in ones: a seeded split into validation images (lam) "
                        "and test images (scores); --n-val / --n-test cap them")
    p.add_argument("--val-fraction", dest="val_fraction", type=float, default=0.25,
                   help="with --images: fraction of the images used for validation (default 0.25, at least 1)")
    p.add_argument("--box", action="store_const", const=True, dest="box_all",
                   help="solve every task under the box constraint [0, 1] (default: only compressed sensing and CT)")
    p.add_argument("--out", help="output folder (default out/bench/<preset>, ignored by git)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (preset and overrides)."""
    parts = ["pnp-lpn", "bench", "--preset", args.preset]
    for flag, key in [("--tasks", "tasks"), ("--methods", "methods"), ("--size", "size"), ("--iters", "max_iter"),
                      ("--n-val", "n_val"), ("--n-test", "n_test"), ("--grid", "grid")]:
        value = getattr(args, key)
        if value is not None:
            parts += [flag, ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
                      if isinstance(value, tuple) else str(value)]
    for name, path in args.priors or ():
        parts += ["--prior", f"{name}={path}"]
    if args.images is not None:
        parts += ["--images", args.images, "--val-fraction", f"{args.val_fraction:g}"]
    return shlex.join(parts + (["--box"] if args.box_all else []))


def _image_counts(args: argparse.Namespace) -> dict:
    """n_val, n_test and the user's images: with --images, every image of each split unless capped."""
    if args.images is None:
        return {"n_val": args.n_val, "n_test": args.n_test}
    from ..bench.user_images import UserImages

    images = UserImages(args.images, args.val_fraction)
    split = images.split()
    return {"user_images": images, "n_val": args.n_val or len(split["val"]),
            "n_test": args.n_test or len(split["test"])}


def run(args: argparse.Namespace) -> int:
    if args.images is not None and not Path(args.images).is_dir():
        raise UsageError(f"--images {args.images}: not a folder")
    for _, path in args.priors or ():
        check_prior(path, "--prior")
    import torch

    from ..bench import BENCH_PRESETS, METHODS, run_benchmark, write_all
    from ..bench.methods import method_names

    if args.threads:
        torch.set_num_threads(args.threads)
    priors = tuple(args.priors or ())
    methods = args.methods
    if priors and methods is None:
        methods = BENCH_PRESETS[args.preset].methods + method_names(priors)[len(METHODS):]
    config = BENCH_PRESETS[args.preset].with_overrides(tasks=args.tasks, methods=methods, size=args.size,
                                                 max_iter=args.max_iter, grid=args.grid, box_all=args.box_all,
                                                 priors=priors or None, **_image_counts(args))
    out = args.out or f"out/bench/{args.preset}"
    t0 = time.perf_counter()
    result = run_benchmark(config, progress=not args.quiet)
    paths = write_all(result, out, _command(args))
    from ..bench.report import markdown_tables

    print(markdown_tables(result.records))
    print(f"{len(result.records)} runs in {time.perf_counter() - t0:.0f} s; wrote {len(paths)} files to {out}/")
    return 0
