"""``pnp-lpn demo``: the sparse-view CT demo with a shipped prior."""

from __future__ import annotations

import argparse

from .common import nonnegative_float, positive_int

DESCRIPTION = ("Simulate a sparse-view parallel-beam CT scan of the Shepp-Logan phantom, reconstruct it with FBP "
               "and with PnP-ADMM + a shipped LPN, print PSNRs and the monitored objective, save a figure.")


def add_parser(sub, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    return sub.add_parser("demo", help="sparse-view CT demo with the shipped prior", description=DESCRIPTION,
                          parents=parents)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=positive_int, default=256, help="image size N (N x N)")
    p.add_argument("--views", type=positive_int, default=60, help="number of projection angles in [0, pi)")
    p.add_argument("--noise", type=nonnegative_float, default=1.0, help="Gaussian noise std on the sinogram")
    p.add_argument("--prior", default="lpn-ct", help="shipped prior (see pnp_lpn.list_pretrained())")
    p.add_argument("--iters", type=positive_int, default=30, help="ADMM iterations")
    p.add_argument("--out", default="demo_out", help="output folder for the figure")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

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
