"""Command line: ``pnp-lpn demo | solve | train | bench | inspect`` (each with --help)."""

from __future__ import annotations

import argparse
import sys


def _train(args: argparse.Namespace) -> int:
    from .checkpoint import save_prior
    from .training.datasets import make_sampler, natural_images
    from .training.presets import PRESETS
    from .training.train import train

    preset = PRESETS[args.preset]
    overrides = {k: getattr(args, k) for k in ("steps", "batch_size", "sigma", "seed") if getattr(args, k) is not None}
    config = preset.config.__class__(**{**preset.config.__dict__, **overrides})
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    prior = preset.architecture(**preset.prior_kwargs, sigma_train=config.sigma)
    sampler = make_sampler(preset.dataset, preset.patch_size)
    val = natural_images("val", gray=prior.in_channels == 1) if preset.dataset.startswith("natural") else None
    history = train(prior, sampler, config, out_dir=args.out, val_images=val,
                    data_description=f"preset {args.preset}: {preset.description}")
    final = save_prior(prior, f"{args.out}/prior.safetensors", {
        "name": args.preset, "description": preset.description,
        "training": {"config": config.__dict__, "steps": config.steps, "wall_time_s": history.wall_time,
                     "val_step": history.val_step, "val_psnr": history.val_psnr,
                     "val_minutes": history.val_minutes, "data": preset.dataset}})
    last = f"{history.val_psnr[-1]:.2f} dB" if history.val_psnr else "n/a"
    print(f"wrote {final} (validation PSNR {last}, {history.wall_time / 60:.1f} min)")
    return 0


def _not_yet(name: str):
    def run(args: argparse.Namespace) -> int:
        print(f"pnp-lpn {name}: not implemented in this version yet", file=sys.stderr)
        return 2

    return run


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
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.set_defaults(func=_train)

    for name, text in [("demo", "sparse-view CT demo with the shipped prior"),
                       ("solve", "reconstruct an image from measurements"),
                       ("bench", "benchmark PnP denoisers"), ("inspect", "evaluate a learned regulariser")]:
        sub.add_parser(name, help=text).set_defaults(func=_not_yet(name))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
