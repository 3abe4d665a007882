"""Command line: ``pnp-lpn demo | solve | train | bench | inspect`` (each with --help)."""

from __future__ import annotations

import argparse
import os
import sys


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import torch

    from .checkpoint import export_prior
    from .training.datasets import make_sampler, validation_images
    from .training.presets import PRESETS
    from .training.train import train

    preset = PRESETS[args.preset]
    fields = ("steps", "batch_size", "sigma", "seed", "intensity_shift", "intensity_scale")
    overrides = {k: getattr(args, k) for k in fields if getattr(args, k) is not None}
    config = replace(preset.config, **overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: data-parallel training
        import torch.distributed as dist

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(config.seed)  # the initial weights (the batches are seeded inside train)
    prior = preset.architecture(**preset.prior_kwargs, sigma_train=config.sigma).to(device)
    sampler = make_sampler(preset.dataset, preset.patch_size)
    val = validation_images(preset.dataset)
    try:
        history = train(prior, sampler, config, out_dir=args.out, val_images=val, init_from=args.init,
                        data_description=f"preset {args.preset}: {preset.description}")
    except KeyboardInterrupt as e:
        print(f"\n{e}", file=sys.stderr)
        return 130
    final = export_prior(f"{args.out}/checkpoint.safetensors", f"{args.out}/prior.safetensors",
                         args.preset, preset.description)
    last = f"{history.val_psnr[-1]:.2f} dB" if history.val_psnr else "n/a"
    print(f"wrote {final} (validation PSNR {last}, {history.wall_time / 60:.1f} min)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    s = run_demo(size=args.size, views=args.views, noise=args.noise, prior=args.prior, max_iter=args.iters,
                 out=args.out, progress=not args.quiet)
    data, obj = s["data_fidelity"], s["objective"]
    print(f"sparse-view CT, {args.views} views, {args.size}^2, sinogram noise {args.noise:g}")
    print(f"  FBP                 PSNR {s['psnr_fbp']:.2f} dB")
    print(f"  PnP-ADMM + {args.prior}  PSNR {s['psnr_pnp']:.2f} dB  ({s['n_iter']} iterations, lam {s['lam']:.3g}, "
          f"{s['wall_time_s']:.1f} s; {s['stop_reason']})")
    every = max(1, len(data) // 10)
    for name, trace in (("data fidelity 1/2||Ax-y||^2", data), ("objective F = 1/2||Ax-y||^2 + lam R(x)", obj)):
        print(f"  {name} per iteration:")
        print("   " + " ".join(f"{v:.7g}" for v in trace[::every]) + f" ... {trace[-1]:.7g}")
    print(f"  RMS distance of the result to the box [0, 1]: {s['box_violation'][-1]:.1e}")
    print(f"  figure: {s['figure']}")
    return 0


def _solve(args: argparse.Namespace) -> int:
    from .cli_solve import run_solve

    return run_solve(args)


def _bench(args: argparse.Namespace) -> int:
    from .cli_bench import run_bench

    return run_bench(args)


def _inspect(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import load_prior
    from .inspect import inspect_prior
    from .priors import list_pretrained, load_pretrained
    from .training.datasets import validation_images

    if args.list:
        print("\n".join(list_pretrained()) or "no shipped priors")
        return 0
    prior = load_prior(args.prior) if args.prior.endswith(".safetensors") else load_pretrained(args.prior)
    if args.images:
        from .cli_solve import read_array

        imgs = [torch.from_numpy(read_array(p))[None] for p in args.images]
    else:
        imgs = validation_images(args.data)
    crops = torch.stack([im[:, : args.size, : args.size] for im in imgs if min(im.shape[-2:]) >= args.size])
    crops = crops[: args.max_images]
    if len(crops) == 0:
        raise SystemExit(f"error: no image is at least {args.size} x {args.size}; pass a smaller --size")
    if args.curves:
        return _inspect_curves(prior, crops, args)
    rows = inspect_prior(prior, crops, noise=args.noise, blur=args.blur)
    print(f"R(variant) - R(clean) for {args.prior} (noise {args.noise:g}, blur sigma {args.blur:g}):")
    print(f"{'image':>5} {'variant':>14} {'R - R(clean)':>14} {'inversion residual':>19}")
    for r in rows:
        print(f"{r['image']:>5} {r['variant']:>14} {r['R_minus_clean']:>14.4g} {r['residual']:>19.1e}")
    return 0


def _inspect_curves(prior, crops, args: argparse.Namespace) -> int:
    from .inspect import perturbation_curves, plot_curves

    curves = perturbation_curves(prior, crops)
    print(f"mean R(degraded) - R(clean) over {len(crops)} images for {args.prior}:")
    for kind, c in curves.items():
        means = c["R_minus_clean"].mean(1)
        print(f"{kind:>6}: " + "  ".join(f"{t:g}: {float(m):.4g}" for t, m in zip(c["level"], means))
              + f"  (max inversion residual {float(c['residual'].max()):.1e})")
    plot_curves(curves, args.curves, title=f"{args.prior} on {len(crops)} held-out images")
    print(f"wrote {args.curves}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .training.presets import PRESETS

    parser = argparse.ArgumentParser(prog="pnp-lpn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a prior from a preset (resumable)",
                       description="Train an LPN/AE-LPN prior by proximal matching. Rerunning the same "
                                   "command with the same --out resumes from the last checkpoint.")
    p.add_argument("--preset", choices=sorted(PRESETS), required=True)
    p.add_argument("--out", required=True, help="output folder (checkpoint.safetensors, prior.safetensors)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--sigma", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--intensity-shift", dest="intensity_shift", type=float,
                   help="per-sample intensity offsets in [-s, s] added to the training pairs")
    p.add_argument("--intensity-scale", dest="intensity_scale", type=float,
                   help="per-sample contrast factors in [1 - r, 1 + r] applied to the training pairs")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--init", help="start from the weights of this checkpoint (same architecture)")
    p.set_defaults(func=_train)

    p = sub.add_parser("demo", help="sparse-view CT demo with the shipped prior",
                       description="Simulate a sparse-view parallel-beam CT scan of the Shepp-Logan phantom, "
                                   "reconstruct it with FBP and with PnP-ADMM + a shipped LPN, print PSNRs and "
                                   "the monitored objective, save a figure.")
    p.add_argument("--size", type=int, default=256, help="image size N (N x N)")
    p.add_argument("--views", type=int, default=60, help="number of projection angles in [0, pi)")
    p.add_argument("--noise", type=float, default=1.0, help="Gaussian noise std on the sinogram")
    p.add_argument("--prior", default="lpn-ct", help="shipped prior (see pnp_lpn.list_pretrained())")
    p.add_argument("--iters", type=int, default=30, help="ADMM iterations")
    p.add_argument("--out", default="demo_out", help="output folder for the figure")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_demo)

    from .cli_solve import add_solve_parser

    add_solve_parser(sub).set_defaults(func=_solve)

    from .cli_bench import add_bench_parser

    add_bench_parser(sub).set_defaults(func=_bench)
    p = sub.add_parser("inspect", help="evaluate a learned regulariser on clean vs degraded images",
                       description="Print R(variant) - R(clean) for noisy, blurred and noisy+blurred versions of "
                                   "images (a prior that captured the data ranks clean images lowest). "
                                   "R at arbitrary points comes from convex inversion; its residual is shown.")
    p.add_argument("images", nargs="*", help=".npy/.png images (default: the held-out validation images)")
    p.add_argument("--prior", default="lpn-natural-gray", help="shipped prior name or .safetensors file")
    p.add_argument("--list", action="store_true", help="list the shipped priors and exit")
    p.add_argument("--data", default="natural-gray", help="validation set when no images are given (natural-gray, ct, mnist)")
    p.add_argument("--size", type=int, default=96, help="crop size")
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--blur", type=float, default=1.5, help="Gaussian blur sigma (pixels)")
    p.add_argument("--max-images", dest="max_images", type=int, default=16, help="use at most this many images")
    p.add_argument("--curves", metavar="PNG", help="instead of the table, sweep noise / blur / mixing with another "
                   "image over several levels and save the curves of R - R(clean) (LPN paper, Fig. 3)")
    p.set_defaults(func=_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
