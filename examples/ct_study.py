"""Sparse-view CT study: filtered back-projection against PnP-ADMM with the shipped CT prior.

For every number of views (default 30, 60, 120) and every test phantom (the Shepp-Logan
phantom, as in ``pnp-lpn demo``, plus random phantoms drawn with a held-out seed), the script
simulates a parallel-beam scan with Gaussian noise on the sinogram (std 1, as the demo),
then reconstructs it with

- FBP (Ram-Lak), the classical reference,
- PnP-ADMM + the shipped ``lpn-ct`` prior at the MAP weight lam = noise^2 / sigma_train^2,
- PnP-ADMM + total variation (``--with-tv``), at the same lam (TV has no training noise level,
  so the solver cannot derive one; 0.1 is the convention the benchmark uses).

Both solve under the constraint 0 <= x <= 1 (``box=(0, 1)``, as the demo does; ``--no-box``
turns it off). It prints one row per case (PSNR, SSIM, iterations, wall time and, for the LPN,
the monitored objective F = 1/2 ||Ax - y||^2 + lam R(x) at the returned image) and writes to
``--out``:

- ``results.csv``: the table;
- ``recon.png``: reconstructions of every phantom for one view count (``--panel-views``);
- ``curves.png``: objective, data fidelity and PSNR against the iteration.

Run (from the repository root; ~2 minutes on one CPU core):

    .venv/bin/python examples/ct_study.py --threads 1
    .venv/bin/python examples/ct_study.py --views 60 --size 256 --with-tv --device cuda

Test images are never training data: the CT prior was trained on ``ct_phantoms(seed=0)`` and
validated on seed 10000, ``pnp-lpn bench`` uses seeds 20000 / 30000; this study draws its
random phantoms from seed 40000 (``--seed-phantoms``).
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np
import torch

import pnp_lpn as pl
from pnp_lpn.baselines import make_denoiser
from pnp_lpn.data import CT_SEEDS, ct_phantoms, shepp_logan
from pnp_lpn.metrics import psnr, ssim
from pnp_lpn.solvers.weights import map_lam

#: seeds of the random phantoms already used elsewhere (training, training validation, bench, ...)
USED_SEEDS = tuple(seed for use, seed in CT_SEEDS.items() if use != "ct-study-example")
#: noise level the generic denoisers (TV) are centred on, as in ``pnp-lpn bench``
GENERIC_SIGMA = 0.1
COLUMNS = ("phantom", "views", "method", "lam", "psnr", "ssim", "n_iter", "time_s", "objective", "stop_reason")


def study_images(size: int, n_random: int, seed: int) -> dict[str, torch.Tensor]:
    """name -> (1, 1, size, size) image: Shepp-Logan, then ``n_random`` held-out phantoms."""
    if seed in USED_SEEDS:
        raise ValueError(f"seed {seed} draws phantoms used for training/validation/benchmarking; pick another")
    images = {"shepp-logan": shepp_logan(size)}
    for i, p in enumerate(ct_phantoms(n_random, size, seed=seed)):
        images[f"phantom-{seed}-{i}"] = p[None]
    return images


def reconstruct_all(args: argparse.Namespace) -> tuple[list[dict], dict, dict]:
    """Run every (phantom, views, method); returns the table rows, the per-iteration curves
    and the reconstructions (keyed by (phantom, views, method))."""
    device = torch.device(args.device)
    images = {k: v.to(device) for k, v in study_images(args.size, args.n_random, args.seed_phantoms).items()}
    prior = pl.load_pretrained(args.prior, device=device)
    box = None if args.no_box else (0.0, 1.0)
    rows, curves, recons = [], {}, {}
    for views in args.views:
        for i, (name, x) in enumerate(images.items()):
            op = pl.operators.ParallelBeamCT(img_size=tuple(x.shape[1:]), n_angles=views, noise_sigma=args.noise,
                                             device=device)
            torch.manual_seed(args.seed + 1000 * views + i)  # op(x) draws the noise from torch's generator
            y = op(x)

            t0 = time.perf_counter()
            x_fbp = op.fbp(y)
            rows.append(_row(name, views, "fbp", x_fbp, x, math.nan, 1, time.perf_counter() - t0))
            recons[name, views, "fbp"] = x_fbp

            methods = [("lpn-admm", prior, args.lam)]
            if args.with_tv:  # a fresh TV per solve: deepinv's TV warm-starts from its previous call
                methods.append(("tv-admm", make_denoiser("tv"), args.lam or map_lam(args.noise, GENERIC_SIGMA)))
            for method, denoiser, lam in methods:
                trace = []

                def track(k, z, info, x=x, trace=trace):
                    trace.append(float(psnr(z.clamp(0, 1), x)))  # PSNR of every iterate (not used by the solver)

                res = pl.solve(y, op, denoiser, method="admm", lam=lam, max_iter=args.max_iter, tol=args.tol,
                               box=box, callback=track)
                known = res.history.get("objective", [])
                # F at the returned image: the iterate best_iter (the last one unless the solve diverged)
                at_x = known[res.best_iter - 1] if known and res.best_iter >= 1 else math.nan
                rows.append(_row(name, views, method, res.x, x, res.lam, res.n_iter, res.wall_time, at_x,
                                 res.stop_reason))
                curves[name, views, method] = {"objective": known, "data_fidelity": res.history["data_fidelity"],
                                               "psnr": trace}
                recons[name, views, method] = res.x
    return rows, curves, {"images": images, "recons": recons}


def _row(name, views, method, x_hat, x, lam, n_iter, time_s, objective=math.nan, stop_reason=""):
    x_hat = x_hat.clamp(0, 1)
    return {"phantom": name, "views": views, "method": method, "lam": lam, "psnr": float(psnr(x_hat, x)),
            "ssim": float(ssim(x_hat, x)), "n_iter": n_iter, "time_s": time_s, "objective": objective,
            "stop_reason": stop_reason.split(";")[0]}


def print_table(rows: list[dict]) -> None:
    head = (f"{'phantom':<18} {'views':>5} {'method':<9} {'lam':>8} {'PSNR':>6} {'SSIM':>6} {'iters':>5} "
            f"{'time s':>7} {'F(x)':>14}  stop")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['phantom']:<18} {r['views']:>5} {r['method']:<9} {r['lam']:>8.3g} {r['psnr']:>6.2f} "
              f"{r['ssim']:>6.3f} {r['n_iter']:>5} {r['time_s']:>7.2f} {r['objective']:>14.8g}  {r['stop_reason']}")
    print("F(x) = 1/2||Ax - y||^2 + lam R(x) at the returned image, as monitored by the solver (LPN only).")


def write_csv(rows: list[dict], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_recons(rows: list[dict], data: dict, views: int, path: Path) -> Path:
    """One row per phantom: ground truth, then every method at ``views`` views."""
    plt = _plt()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    score = {(r["phantom"], r["method"]): r["psnr"] for r in rows if r["views"] == views}
    names = list(data["images"])
    fig, axes = plt.subplots(len(names), 1 + len(methods), figsize=(2.6 * (1 + len(methods)), 2.7 * len(names)),
                             squeeze=False)
    for ax_row, name in zip(axes, names):
        panels = [(name, data["images"][name])]
        panels += [(f"{m} {score[name, m]:.2f} dB", data["recons"][name, views, m]) for m in methods]
        for ax, (title, img) in zip(ax_row, panels):
            ax.imshow(img[0, 0].clamp(0, 1).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.suptitle(f"sparse-view CT, {views} views", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(curves: dict, path: Path) -> Path:
    """Rows: monitored objective F, data fidelity, PSNR of the iterate; one column per phantom;
    colour = views, line style = method."""
    plt = _plt()
    names = list(dict.fromkeys(k[0] for k in curves))
    views = sorted({k[1] for k in curves})
    colour = {v: plt.cm.viridis(i / max(1, len(views) - 1) * 0.85) for i, v in enumerate(views)}
    style = {"lpn-admm": "-", "tv-admm": "--"}
    fig, axes = plt.subplots(3, len(names), figsize=(5 * len(names), 9.5), squeeze=False)
    for col, name in enumerate(names):
        ax_obj, ax_data, ax_psnr = axes[:, col]
        any_objective = False
        for (phantom_name, v, method), c in curves.items():
            if phantom_name != name:
                continue
            kw = {"color": colour[v], "linestyle": style.get(method, ":"), "label": f"{v} views, {method}"}
            it = np.arange(1, len(c["data_fidelity"]) + 1)
            obj = np.asarray(c["objective"], dtype=float)
            if obj.size and np.isfinite(obj).any():  # shifted: each view count has its own scale
                ax_obj.plot(it, obj - obj[np.isfinite(obj)][0], **kw)
                any_objective = True
            ax_data.semilogy(it, c["data_fidelity"], **kw)
            ax_psnr.plot(np.arange(1, len(c["psnr"]) + 1), c["psnr"], **kw)
        ax_obj.set_title(f"{name}: F - F(first point), F = 1/2||Ax-y||^2 + lam R(x)", fontsize=9)
        ax_data.set_title(f"{name}: data fidelity 1/2||Ax-y||^2", fontsize=9)
        ax_psnr.set_title(f"{name}: PSNR of the iterate (dB)", fontsize=9)
        ax_psnr.set_xlabel("iteration")
        ax_psnr.legend(fontsize=7)
        if any_objective:
            ax_obj.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--views", type=_ints, default=[30, 60, 120], help="comma-separated view counts (default 30,60,120)")
    p.add_argument("--size", type=int, default=128, help="image size N (N x N; the prior was trained at 128)")
    p.add_argument("--n-random", type=int, default=1, help="random held-out phantoms besides Shepp-Logan")
    p.add_argument("--seed-phantoms", type=int, default=CT_SEEDS["ct-study-example"], help="seed of the random phantoms")
    p.add_argument("--noise", type=float, default=1.0, help="Gaussian noise std on the sinogram (demo: 1)")
    p.add_argument("--prior", default="lpn-ct", help="shipped prior (pnp_lpn.list_pretrained())")
    p.add_argument("--lam", type=float, default=None, help="weight of R (default: MAP, noise^2 / sigma_train^2)")
    p.add_argument("--max-iter", type=int, default=30, help="ADMM iterations (at most)")
    p.add_argument("--tol", type=float, default=1e-4, help="stopping tolerance of the solver")
    p.add_argument("--with-tv", action="store_true", help="also run PnP-ADMM with TV")
    p.add_argument("--no-box", action="store_true", help="solve without the constraint 0 <= x <= 1")
    p.add_argument("--panel-views", type=int, default=None,
                   help="view count shown in recon.png (default: the middle one)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: ASTRA's GPU projector")
    p.add_argument("--threads", type=int, default=0, help="torch / ASTRA CPU threads (0: torch default)")
    p.add_argument("--seed", type=int, default=0, help="seed of the measurement noise")
    p.add_argument("--out", default="out/ct_study", help="output folder")
    args = p.parse_args(argv)
    if args.panel_views is None:
        args.panel_views = args.views[len(args.views) // 2]
    if args.panel_views not in args.views:
        p.error(f"--panel-views {args.panel_views} is not one of --views {args.views}")
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows, curves, data = reconstruct_all(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_csv(rows, out / "results.csv"), plot_recons(rows, data, args.panel_views, out / "recon.png"),
             plot_curves(curves, out / "curves.png")]
    print(f"sparse-view CT, {args.size}^2, sinogram noise {args.noise:g}, prior {args.prior}, "
          f"box {'off' if args.no_box else '[0, 1]'}, at most {args.max_iter} ADMM iterations")
    print_table(rows)
    print(f"{len(rows)} reconstructions in {time.perf_counter() - t0:.0f} s; wrote {', '.join(map(str, paths))}")
    return rows


if __name__ == "__main__":
    main()
