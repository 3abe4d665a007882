"""Do PnP runs with a prior converge, and where to? (the numbers in docs/priors.md)

    python benchmarks/pnp_runs.py deblur lpn-natural-gray runs/my-prior/checkpoint.safetensors
    python benchmarks/pnp_runs.py ct --size 128 --views 60 --iters 30 lpn-ct

deblur: Gaussian blur 1 px, noise 0.02, 128^2 crops of the held-out coins / chelsea; ADMM at
0.3, 1, 3 x the MAP lam and PGD at lam = ||A||^2 = 1, 100 iterations, no box.
ct: Shepp-Logan + one held-out phantom (seed 50000), parallel-beam CT, sinogram noise 1,
ADMM at the MAP lam with and without box (0, 1).
``--dihedral`` wraps every prior in ``pl.DihedralPrior`` (average over the 8 orientations).
Prints PSNR per image, iterations and the stop reason of every run.
"""

from __future__ import annotations

import argparse

import torch

import pnp_lpn as pl
from pnp_lpn.baselines import make_denoiser
from pnp_lpn.metrics import psnr


def load(name: str, dihedral: bool = False):
    """A shipped prior name or a prior file, optionally averaged over the 8 orientations."""
    prior = make_denoiser(name)
    return pl.DihedralPrior(prior) if dihedral else prior


def report(label: str, r, x) -> None:
    scores = [round(float(v), 2) for v in psnr(r.x.clamp(0, 1), x)]
    print(f"{label}: PSNR {scores}, {r.n_iter} iterations, {r.stop_reason}")


def deblur(priors: list[str], dihedral: bool) -> None:
    from pnp_lpn.training.datasets import validation_images

    x = torch.stack([im[:, :128, :128] for im in validation_images("natural-gray")])
    op = pl.operators.GaussianBlur(img_size=(1, 128, 128), sigma_blur=1.0, noise_sigma=0.02)
    torch.manual_seed(0)
    y = op(x)
    for name in priors:
        prior = load(name, dihedral)
        for f in (0.3, 1.0, 3.0):
            lam = 0.02**2 / 0.1**2 * f
            report(f"{name} admm lam={lam:.3g}", pl.solve(y, op, prior, method="admm", lam=lam, max_iter=100, tol=1e-5), x)
        report(f"{name} pgd lam=1", pl.solve(y, op, prior, method="pgd", lam=1.0, max_iter=100, tol=1e-5), x)


def ct(priors: list[str], dihedral: bool, size: int, views: int, iters: int) -> None:
    from pnp_lpn.data import CT_SEEDS, ct_phantoms, shepp_logan

    x = torch.cat([shepp_logan(size), ct_phantoms(1, size, seed=CT_SEEDS["pnp-runs-benchmark"])[0][None]])
    op = pl.operators.ParallelBeamCT(img_size=(1, size, size), n_angles=views, noise_sigma=1.0)
    torch.manual_seed(0)
    y = op(x)
    print(f"fbp: PSNR {[round(float(v), 2) for v in psnr(op.fbp(y).clamp(0, 1), x)]}")
    for name in priors:
        prior = load(name, dihedral)
        for box in ((0.0, 1.0), None):
            r = pl.solve(y, op, prior, method="admm", max_iter=iters, tol=1e-4, box=box)
            report(f"{name} admm {'box' if box else 'no box'}", r, x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("task", choices=["deblur", "ct"])
    ap.add_argument("priors", nargs="+", help="shipped names or checkpoint paths")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--views", type=int, default=60)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dihedral", action="store_true", help="average each prior over the 8 orientations")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.task == "deblur":
        deblur(args.priors, args.dihedral)
    else:
        ct(args.priors, args.dihedral, args.size, args.views, args.iters)


if __name__ == "__main__":
    main()
