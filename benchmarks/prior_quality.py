"""Held-out quality of trained priors: denoising PSNR across noise levels and drift.

    python benchmarks/prior_quality.py --data natural-gray --priors lpn-natural-gray \
        runs/my-prior/checkpoint.safetensors [--baselines bm3d dncnn] [--name TAG]

For every prior (a shipped name or a checkpoint path) on the validation images of ``--data``
(never drawn by the training sampler, see ``pnp_lpn.training.validation_images``), or on the
scikit-image photos named by ``--images`` (e.g. ``stereo_motorcycle``, a photo that no run
trained on nor was selected on):

- denoising PSNR of f(x + sigma n) at sigma in ``--sigmas`` (same noise for every prior),
  for sigma below the prior's training level also of its MAP denoiser there
  (``MAP@sigma``: ``prior.denoise(y, sigma)``, the exact prox of (sigma / sigma_train)^2 R),
  and at every other level of its rescaled prox (``rescaled@sigma``: f(s y) / s with
  s = sigma_train / sigma, the exact prox of R(s .) / s^2, ``pnp_lpn.RescaledPrior``; what
  ``prior.denoise`` does above the training level);
- drift: PSNR of f^k(x) against a *clean* x for k in ``--iterates``. A prox of a regulariser
  whose minimisers are natural images keeps clean images nearly fixed; a prior whose R is
  unbounded below off the data walks away from them, and long PnP runs then drift too.

- intensity offsets: PSNR of f(y + c) - c at sigma 0.1 for c = -0.5 and +0.5 (a prior that
  extrapolates sanely outside the [0, 1] training intensities loses little there), and the
  *constant-image basin*: mean R(f(y)) per pixel at the denoised images minus the lowest
  R(f(c 1)) per pixel over constants c in [-2, 2]. Constants are the flattest images, so a
  sane R puts them slightly below natural images (a basin of ~0.001-0.01 per pixel); a
  basin of order 1 or more means R has minimisers far outside the image range, which PnP
  iterates reach where the data leave many directions free (compressed sensing).
- out-of-range gain: ||f(c y)|| / ||c y|| for the noisy images y at sigma 0.1 scaled by c = 3
  and 10 (``gain x3``, ``gain x10``). A denoiser of images in [0, 1] has no reason to amplify
  inputs far outside that range (the MMSE denoiser maps every input into the convex hull of the
  data, a gain of ~1/c); a gain >= 1 there means f pushes such inputs further out, which is
  how PnP iterates run off where the data leave directions free (docs/solvers.md, "Run-off").

``--baselines`` adds reference rows for the PSNR columns, each given the true sigma: ``bm3d``
(the classical bar) and ``dncnn`` (scico's pretrained 17-layer blind DnCNN closest to sigma,
trained on 400 BSD images: what an unconstrained network reaches on these images). Outputs
of every row are scored unclipped.
``--color`` scores on r, g, b images instead (the colour validation image of ``natural-color``,
or the colour versions of ``--images``), each grey prior as ``pnp_lpn.OpponentColorPrior`` (the
grey prior on the luminance and colour-difference channels; still an exact prox) after a row
of the grey prior applied per r, g, b channel (the prox up to its training level, the
rescaled prox above it), and ``bm3d`` as colour BM3D; colour rows add ``denoise@sigma``,
``prior.denoise(y, sigma)`` (for ``OpponentColorPrior``: every opponent channel denoised at
sigma by the grey prior's ``denoise``, whatever ``--luma-scale``).
``--dihedral`` adds, for every prior, a row for its average over the 8 flips / rotations
(``pnp_lpn.DihedralPrior``: still an exact prox; 8x the cost).
Writes prior_quality_<name>.json and .md to --out (default out/bench/).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

#: --baselines choice -> table row name (each denoiser is given the true sigma)
BASELINE_ROWS = {"bm3d": "BM3D (oracle sigma)", "dncnn": "DnCNN-17 blind, closest sigma (scico weights)"}


def noisy_copies(images: list[torch.Tensor], sigma: float, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [im[None] + sigma * torch.randn(im[None].shape, generator=g) for im in images]


@torch.no_grad()
def mean_psnr(denoise, noisy: list[torch.Tensor], clean: list[torch.Tensor]) -> float:
    from pnp_lpn.metrics import psnr

    return sum(float(psnr(denoise(y), x[None])) for y, x in zip(noisy, clean)) / len(clean)


@torch.no_grad()
def drift(prior, clean: list[torch.Tensor], iterates: list[int]) -> dict[int, float]:
    """PSNR of f^k(x) against x for each k (one pass, recording the requested k)."""
    from pnp_lpn.metrics import psnr

    out = {k: 0.0 for k in iterates}
    for x in clean:
        z = x[None]
        for k in range(1, max(iterates) + 1):
            z = prior(z)
            if k in out:
                out[k] += float(psnr(z, x[None])) / len(clean)
    return out


@torch.no_grad()
def offset_scores(prior, noisy: list[torch.Tensor], clean: list[torch.Tensor]) -> dict[str, float]:
    """PSNR of f(y + c) - c for c = -0.5, +0.5, the constant-image basin and the out-of-range
    gains (module docstring)."""
    row = {f"shift {c:+g}": mean_psnr(lambda y, c=c: prior(y + c) - c, noisy, clean) for c in (-0.5, 0.5)}
    at_images = sum(float(prior.prox_with_regularizer(y)[1]) / y.numel() for y in noisy) / len(noisy)
    consts = torch.linspace(-2, 2, 17).view(-1, 1, 1, 1) * torch.ones(1, clean[0].shape[0], 64, 64)
    at_consts = prior.prox_with_regularizer(consts)[1] / consts[0].numel()
    row["R basin/px"] = at_images - float(at_consts.min())
    for c in (3, 10):
        row[f"gain x{c}"] = sum(float(prior(c * y).norm() / (c * y).norm()) for y in noisy) / len(noisy)
    return row


def per_channel_row(grey, label: str, noisy: dict, clean: list[torch.Tensor]) -> dict:
    """Denoising PSNR of a grey prior applied to each r, g, b channel separately (the prox at
    its training level, the rescaled prox above it): the baseline of ``OpponentColorPrior``."""
    from pnp_lpn import RescaledPrior

    def apply(f):
        return lambda y: f(y.transpose(0, 1)).transpose(0, 1)  # channels as a batch of grey images

    row = {"prior": label}
    for s, ys in noisy.items():
        above = grey.sigma_train is not None and s > grey.sigma_train
        row[f"{'rescaled' if above else 'psnr'}@{s}"] = mean_psnr(apply(RescaledPrior(grey, s) if above else grey), ys, clean)
    print(json.dumps(row))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="out/bench", help="output folder (default out/bench, ignored by git)")
    ap.add_argument("--data", default="natural-gray", help="named dataset whose validation images are used")
    ap.add_argument("--priors", nargs="+", required=True, help="shipped names or checkpoint paths")
    ap.add_argument("--sigmas", nargs="+", type=float, default=[0.05, 0.1, 0.2, 0.3])
    ap.add_argument("--iterates", nargs="+", type=int, default=[1, 5, 20])
    ap.add_argument("--baselines", nargs="*", default=[], choices=sorted(BASELINE_ROWS),
                    help="reference denoisers at the true sigma (bm3d is slow)")
    ap.add_argument("--dihedral", action="store_true", help="also score each prior averaged over the 8 orientations")
    ap.add_argument("--images", nargs="+", default=None,
                    help="score on these scikit-image photos (luma) instead of the validation images of --data")
    ap.add_argument("--color", action="store_true",
                    help="colour images; grey priors as OpponentColorPrior, bm3d as colour BM3D")
    ap.add_argument("--luma-scale", dest="luma_scale", type=float, default=None,
                    help="with --color: OpponentColorPrior's luma_scale (default: its default, 1/sqrt(3))")
    ap.add_argument("--name", default=None, help="results file tag (default: the dataset)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    out_dir = Path(args.out)
    torch.set_num_threads(args.threads)
    from pnp_lpn.training.datasets import validation_images

    from pnp_lpn.data import natural_image

    if args.images:
        clean = [natural_image(n, color=args.color) for n in args.images]
    else:
        clean = validation_images("natural-color" if args.color else args.data)
    noisy = {s: noisy_copies(clean, s) for s in args.sigmas}
    rows = []
    from pnp_lpn import DihedralPrior, OpponentColorPrior, RescaledPrior
    from pnp_lpn.baselines import make_denoiser

    for name in args.priors:
        base = make_denoiser(name)  # a shipped prior name or a prior file
        run = base.metadata.get("training", {})
        if args.color and base.in_channels == 1:
            rows.append(per_channel_row(base, f"{name} (per r, g, b channel)", noisy, clean))
            kw = {} if args.luma_scale is None else {"luma_scale": args.luma_scale}
            base, name = OpponentColorPrior(base, **kw), f"{name} (opponent colour{', luma x%g' % args.luma_scale if kw else ''})"
        for prior, label in [(base, name)] + ([(DihedralPrior(base), f"{name} + D4 average")] if args.dihedral else []):
            row = {"prior": label, "steps": run.get("steps_done", run.get("step"))}
            row.update({f"psnr@{s}": mean_psnr(prior, noisy[s], clean) for s in args.sigmas})
            s_t = prior.sigma_train
            below = [s for s in args.sigmas if s_t is not None and s < s_t]
            denoised = {s: mean_psnr(lambda y, s=s: prior.denoise(y, s), noisy[s], clean)
                        for s in (args.sigmas if args.color else below)}  # MAP@ below sigma_train, denoise@ (colour)
            row.update({f"MAP@{s}": denoised[s] for s in below})
            for s in [s for s in args.sigmas if s_t is not None and s != s_t]:
                row[f"rescaled@{s}"] = mean_psnr(RescaledPrior(prior, s), noisy[s], clean)
            if args.color:
                row.update({f"denoise@{s}": v for s, v in denoised.items()})
            row.update({f"f^{k}(x)": v for k, v in drift(prior, clean, args.iterates).items()})
            row.update(offset_scores(prior, noisy[0.1] if 0.1 in noisy else noisy_copies(clean, 0.1), clean))
            rows.append(row)
            print(json.dumps(row))
    for name in args.baselines:
        denoiser = make_denoiser(name)
        row = {"prior": BASELINE_ROWS[name]}
        row.update({f"psnr@{s}": mean_psnr(lambda y, s=s: denoiser(y, s), noisy[s], clean) for s in args.sigmas})
        rows.append(row)
        print(json.dumps(row))
    write(rows, args)


def write(rows: list[dict], args) -> None:
    tag = args.name or args.data
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"prior_quality_{tag}.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    cols = list(dict.fromkeys(c for r in rows for c in r if c != "prior"))
    where = (f"Scikit-image photos {', '.join(args.images)}" if args.images
             else f"Validation images of `{'natural-color' if args.color else args.data}`") + (" (r, g, b)" if args.color else "")
    lines = [f"{where}; command: `python benchmarks/prior_quality.py "
             f"--data {args.data}{' --images ' + ' '.join(args.images) if args.images else ''} "
             f"--priors {' '.join(args.priors)} --sigmas {' '.join(map(str, args.sigmas))} "
             f"--iterates {' '.join(map(str, args.iterates))}"
             f"{' --baselines ' + ' '.join(args.baselines) if args.baselines else ''}"
             f"{' --dihedral' if args.dihedral else ''}{' --color' if args.color else ''}"
             f"{f' --luma-scale {args.luma_scale:g}' if args.luma_scale is not None else ''}`", "",
             "| prior | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in rows:
        cells = [f"{r[c]:.2f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        lines.append(f"| {r['prior']} | " + " | ".join(cells) + " |")
    (out_dir / f"prior_quality_{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
