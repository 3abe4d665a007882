"""Which denoiser works best inside PnP-ADMM? A small benchmark on deblurring and denoising.

Every denoiser of ``--methods`` is plugged into the same solver (``pl.solve(method="admm")``)
on one deblurring task (circular Gaussian blur sigma_b = 1, noise 0.02) and is also applied
once, as a plain denoiser, to noisy images (``--denoise-levels``, default 0.05 to 0.3: one
call per image, so cheap; the shipped priors were trained at 0.1).

For deblurring, lam is chosen on a validation image (a crop of scikit-image's ``coins``)
among ``lam_0 * --grid``, where lam_0 = noise^2 / 0.1^2 is the MAP weight ``pl.solve`` uses
for the shipped priors (trained at noise 0.1; TV and DnCNN get the same by convention), and
the chosen value is scored once on a different test image (a crop of ``chelsea``). Both
images are held out from the training of the shipped priors.

This protocol is exactly what ``pnp-lpn bench`` does, so the script is a thin wrapper around
the harness's public functions (docs/benchmarks.md): it builds a ``BenchConfig``, runs
``run_benchmark`` and writes the outputs with ``write_all``. ``--methods`` takes denoiser
names (as ``pnp_lpn.baselines.make_denoiser``); ``bm3d`` is available but off by default
(about 1-2 s per call on one CPU core).

Outputs in ``--out``: ``results.csv`` (one row per task and method), ``grid.csv`` (every
validation run), ``results.md``, ``runs.json`` and figures: ``recon_<task>.png`` (the test
image, every method), ``psnr_vs_iter.png``, ``objective_vs_iter.png`` (LPN priors, whose
objective is monitored), ``denoise_robustness.png``.

Run (from the repository root; ~1 minute on one CPU core):

    .venv/bin/python examples/denoiser_benchmark.py --threads 1
    .venv/bin/python examples/denoiser_benchmark.py --methods lpn-natural-gray,tv,bm3d,dncnn \\
        --task deblur-b2-n0.04 --grid 0.1,0.316,1,3.16 --size 256
"""

from __future__ import annotations

import argparse
import time

import torch

from pnp_lpn.bench import TASKS, BenchConfig, run_benchmark, write_all
from pnp_lpn.bench.methods import FAMILIES
from pnp_lpn.bench.report import markdown_tables

DEFAULT_METHODS = ("lpn-natural-gray", "aelpn-natural-gray", "tv", "dncnn")
#: denoiser name (``make_denoiser``) -> the harness's method name on natural images
HARNESS_METHOD = {names["natural"]: f"{family}-admm" for family, names in FAMILIES.items() if "natural" in names}


def _names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(s) for s in _names(text))


def make_config(args: argparse.Namespace) -> BenchConfig:
    """The harness configuration: the deblurring task, the denoising task(s), the methods."""
    unknown = [m for m in args.methods if m not in HARNESS_METHOD]
    if unknown:
        raise SystemExit(f"unknown denoiser(s) {unknown}; choose from {', '.join(HARNESS_METHOD)}")
    tasks = [args.task] + [f"denoise-{s:g}" for s in args.denoise_levels]
    missing = [t for t in tasks if t not in TASKS]
    if missing:
        raise SystemExit(f"no harness task {missing}; available: {', '.join(TASKS)}")
    return BenchConfig(tasks=tuple(tasks), methods=tuple(HARNESS_METHOD[m] for m in args.methods), size=args.size,
                       n_val=1, n_test=1, grid=args.grid, max_iter=args.max_iter)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", type=_names, default=DEFAULT_METHODS,
                   help=f"comma-separated denoisers among {', '.join(HARNESS_METHOD)} "
                        f"(default {','.join(DEFAULT_METHODS)})")
    p.add_argument("--task", default="deblur-b1-n0.02", choices=[t for t in TASKS if t.startswith("deblur")],
                   help="deblurring task of the harness (default: blur sigma 1, noise 0.02)")
    p.add_argument("--denoise-levels", type=_floats, default=(0.05, 0.1, 0.2, 0.3),
                   help="plain-denoising noise levels among 0.05,0.1,0.2,0.3 (default all; the shipped "
                        "priors were trained at 0.1)")
    p.add_argument("--size", type=int, default=128, help="crop size N (N x N)")
    p.add_argument("--grid", type=_floats, default=(10**-0.5, 1.0, 10**0.5),
                   help="factors of lam_0 tried on the validation image (default 0.316,1,3.16)")
    p.add_argument("--max-iter", type=int, default=20, help="ADMM iterations (the harness's reference: 20)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--out", default="out/denoiser_benchmark", help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = make_config(args)
    t0 = time.perf_counter()
    result = run_benchmark(config, progress=not args.quiet)  # choose lam on the validation crop, score the test crop
    paths = write_all(result, args.out, "examples/denoiser_benchmark.py")
    print(markdown_tables(result.records))  # flags a lam chosen at the grid's edge with (edge)
    print(f"{len(result.records)} runs in {time.perf_counter() - t0:.0f} s; wrote {len(paths)} files to {args.out}/")
    return result


if __name__ == "__main__":
    main()
