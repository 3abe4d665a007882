"""``pnp-lpn train``: train a prior from a preset (resumable; data parallel under torchrun)."""

from __future__ import annotations

import argparse
import os
import sys

from .common import check_file, positive_float, positive_int

DESCRIPTION = ("Train a prior from a preset: an LPN/AE-LPN by warm-up then proximal matching, a ridge prior (CRR/WCRR) "
               "by denoising MSE through its solved prox. Rerunning the same command with the same --out resumes from "
               "the last checkpoint.")


def add_parser(sub, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    return sub.add_parser("train", help="train a prior from a preset (resumable)", description=DESCRIPTION,
                          parents=parents)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..training.presets import TRAINING_PRESETS

    p.add_argument("--preset", choices=sorted(TRAINING_PRESETS), required=True)
    p.add_argument("--out", required=True, help="output folder (checkpoint.safetensors, prior.safetensors)")
    p.add_argument("--steps", type=positive_int)
    p.add_argument("--batch-size", dest="batch_size", type=positive_int)
    p.add_argument("--sigma", type=positive_float)
    p.add_argument("--seed", type=int)
    p.add_argument("--intensity-shift", dest="intensity_shift", type=float,
                   help="per-sample intensity offsets in [-s, s] added to the training pairs")
    p.add_argument("--intensity-scale", dest="intensity_scale", type=float,
                   help="per-sample contrast factors in [1 - r, 1 + r] applied to the training pairs")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--init", help="start from the weights of this checkpoint (same architecture)")


def run(args: argparse.Namespace) -> int:
    check_file(args.init, "--init")
    from dataclasses import replace

    import torch

    from ..priors.checkpoint import export_prior
    from ..training.datasets import make_sampler, validation_images
    from ..training.presets import TRAINING_PRESETS
    from ..training.train import train

    preset = TRAINING_PRESETS[args.preset]
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
