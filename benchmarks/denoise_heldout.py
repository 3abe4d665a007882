"""Denoising on photos that no shipped prior trained on or was selected on, against BM3D and DnCNN.

    python benchmarks/denoise_heldout.py --priors wcrr-natural-gray lpn-natural-gray \
        [--sigmas 0.05 0.1 0.2] [--size 256] [--out out/bench]

Test photos: the grey versions of the sporco and mahotas photos (in no training set but
``natural-gray-extra``), scikit-image's ``stereo_motorcycle`` (left view), and three photos from the
gradio and glymur wheels (a cheetah, the Eiffel tower at dusk, a glass of beer; in no training set),
centre crops of ``--size``; model selection used other photos (``coins``, ``chelsea``). Noise is
seeded per (photo, sigma), the same for every method. Rows: ``bm3d`` (given the true sigma), ``dncnn`` (scico's blind 17-layer
DnCNN closest to sigma), and every prior's ``denoise(y, sigma)``; an LPN's MAP denoiser below its
training level costs ~75 prox calls per image, so ``--skip-slow`` leaves those cells empty.
Also prints the wall time of one call per method at 256^2 relative to an LPN prox (``--timing``).
Writes denoise_heldout.json and .md to --out. ``--export DIR`` instead writes the clean crops as
DIR/<photo>.npy (float32, [0, 1]), a held-out folder for ``pnp-lpn bench --images DIR``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import pnp_lpn as pl
from pnp_lpn.metrics import psnr
from pnp_lpn.training.datasets import EXTRA_PACKAGED, _load_packaged, _to_tensor

PHOTOS = [(pkg, folder, n) for pkg, folder, names in EXTRA_PACKAGED for n in names]
#: photos after stereo_motorcycle (appended, so the first eight keep their noise seeds)
MORE_PHOTOS = [("gradio", ("media_assets", "images"), "cheetah.jpg"),
               ("gradio", ("media_assets", "images"), "tower.jpg"), ("glymur", ("data",), "goodstuff.j2k")]


def test_photos(size: int) -> dict[str, torch.Tensor]:
    """name -> (1, 1, size, size) grey centre crop of every test photo."""
    import skimage.data

    raw = {name: _load_packaged(pkg, folder, name) for pkg, folder, name in PHOTOS}
    raw["stereo_motorcycle"] = skimage.data.stereo_motorcycle()[0]
    raw.update({name: _load_packaged(pkg, folder, name) for pkg, folder, name in MORE_PHOTOS})
    out = {}
    for name, img in raw.items():
        x = _to_tensor(np.asarray(img), gray=True)
        h, w = x.shape[-2:]
        top, left = (h - size) // 2, (w - size) // 2
        out[name] = x[None, :, top:top + size, left:left + size].float()
    return out


def noisy(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return x + sigma * torch.randn(x.shape, generator=g)


def methods(priors: list[str], skip_slow: bool) -> dict:
    """name -> callable (y, sigma) -> x or None (not run)."""
    from pnp_lpn.baselines.classical import BM3D
    from pnp_lpn.baselines.dncnn import DnCNN

    table = {"bm3d": lambda y, s: BM3D()(y, s),
             "dncnn": lambda y, s: DnCNN.for_sigma(s)(y, s)}
    for spec in priors:
        is_file = Path(spec).exists()
        prior = pl.load_prior(spec) if is_file else pl.load_pretrained(spec)

        def run(y, s, prior=prior):
            slow = not prior.conditional and prior.sigma_train is not None and s < prior.sigma_train
            return None if (slow and skip_slow) else prior.denoise(y, s)
        label = str(Path(spec).with_suffix("")) if is_file else spec  # runs/a/prior, runs/b/prior
        if label in table:
            raise SystemExit(f"--priors names {spec!r} twice")
        table[label] = run
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--priors", nargs="+", default=["lpn-natural-gray"])
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--skip-slow", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="out/bench")
    ap.add_argument("--export", default=None, help="write the clean crops to this folder as .npy and stop")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    photos = test_photos(args.size)
    if args.export:
        Path(args.export).mkdir(parents=True, exist_ok=True)
        for name, x in photos.items():
            np.save(Path(args.export) / f"{Path(name).stem}.npy", x[0, 0].numpy())
        print(f"{len(photos)} photos ({args.size}^2) written to {args.export}")
        return
    table = methods(args.priors, args.skip_slow)
    scores: dict[str, dict[str, list[float]]] = {m: {str(s): [] for s in args.sigmas} for m in table}
    times: dict[str, float] = {m: 0.0 for m in table}
    for i, (name, x) in enumerate(photos.items()):
        for j, s in enumerate(args.sigmas):
            y = noisy(x, s, seed=1000 * i + j)
            for m, fn in table.items():
                t0 = time.perf_counter()
                with torch.no_grad():
                    out = fn(y, s)
                times[m] += time.perf_counter() - t0
                if out is not None:
                    scores[m][str(s)].append(float(psnr(out, x)))
            print(name, s, {m: round(v[str(s)][-1], 2) for m, v in scores.items() if v[str(s)]}, flush=True)
    write(scores, times, photos, args)


def write(scores: dict, times: dict, photos: dict, args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mean = {m: {s: (sum(v) / len(v) if len(v) == len(photos) else None) for s, v in row.items()}
            for m, row in scores.items()}
    (out / "denoise_heldout.json").write_text(json.dumps({"photos": list(photos), "size": args.size,
                                                          "psnr": scores, "mean": mean, "seconds": times}, indent=1))
    head = "| method | " + " | ".join(f"sigma {s}" for s in args.sigmas) + " | seconds |"
    lines = [f"Mean PSNR (dB) over {len(photos)} photos ({', '.join(photos)}), {args.size}^2 centre crops.", "",
             head, "|" + "---|" * (len(args.sigmas) + 2)]
    for m, row in mean.items():
        cells = " | ".join("-" if v is None else f"{v:.2f}" for v in row.values())
        lines.append(f"| {m} | {cells} | {times[m]:.0f} |")
    text = "\n".join(lines)
    (out / "denoise_heldout.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
