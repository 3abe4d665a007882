"""Solver benchmark: per-iteration cost breakdown, monitoring overhead, ADMM vs PGD.

    python benchmarks/bench_solvers.py [--prior lpn-natural-gray] [--threads 2]

For deblurring (256^2, Gaussian sigma_b 1, noise 0.02, FFT data step) and CT (256^2, 180
views, sinogram noise 1, CG data step) it times, with the same prior:
- the data step (operator prox_l2, CG from a cold start), the prior's prox, the R formula
  and A z + data fidelity: monitoring costs the R formula plus A z (ADMM only; PGD reuses
  the A z of its next gradient), relative to the iteration time of a real solve;
- full solves with ADMM and PGD at the default lam to tolerance 1e-4, at most 50 iterations;
  for deblurring also PGD at ADMM's (MAP) lam with step 1/||A||^2, whose prior step is the
  exact prox of (step lam) R (an inner convex solve): it must reach ADMM's objective.

Writes solvers.json and solvers.md to --out (default out/bench/).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import pnp_lpn as pl
from pnp_lpn.metrics import psnr
from pnp_lpn.training.datasets import natural_images



def timed(fn, repeats: int = 5) -> float:
    """Median wall time of fn() over ``repeats`` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def task(name: str, size: int):
    img = natural_images("val")[0][:, :size, :size][None]
    if name == "blur":
        op = pl.operators.GaussianBlur(img_size=(1, size, size), sigma_blur=1.0, noise_sigma=0.02)
    else:
        op = pl.operators.ParallelBeamCT(img_size=(1, size, size), n_angles=180, noise_sigma=1.0)
    torch.manual_seed(0)
    return img, op, op(img)


def breakdown(op, y, prior, lam: float, n_iter: int = 8) -> dict:
    """Per-iteration costs: data step (cold CG start), prior prox, and the monitoring pieces.

    Monitoring = the R formula <v, z> - 1/2 ||z||^2 - psi(v) (psi comes with the prox) plus,
    for ADMM, A z and the data fidelity. The overhead is relative to the mean iteration time of
    a real ADMM / PGD solve of ``n_iter`` iterations.
    """
    from pnp_lpn.priors.base import ProxPrior

    z = op.initial_point(y)
    warm, op.warm_start = getattr(op, "warm_start", False), False
    data = timed(lambda: op.prox_l2(z, y, 1.0 / lam))
    op.warm_start = warm
    prox = timed(lambda: prior.prox(z))
    zz, psi = prior._prox_and_potential(z, create_graph=False)
    formula = timed(lambda: ProxPrior._regularizer_at_output(z, zz, psi))
    fidelity = timed(lambda: 0.5 * (op.A(zz) - y).pow(2).sum())
    out = {"data_step_s": data, "prox_s": prox, "R_formula_s": formula, "A_z_fidelity_s": fidelity}
    for method, monitor in (("admm", formula + fidelity), ("pgd", formula)):
        res = pl.solve(y, op, prior, method=method, lam=max(lam, op.norm_sq()) if method == "pgd" else lam,
                       max_iter=n_iter, tol=0)
        per_iter = res.wall_time / res.n_iter
        out[f"{method}_iteration_s"] = per_iter
        out[f"monitor_overhead_{method}_pct"] = 100 * monitor / per_iter
    return out


def solves(img, op, y, prior, map_lam: float | None) -> dict:
    """ADMM and PGD at the default lam; with ``map_lam`` also PGD at that lam with step 1/||A||^2."""
    runs = {"admm": {}, "pgd": {}}
    if map_lam is not None:
        runs["pgd, step 1/||A||^2"] = {"method": "pgd", "lam": map_lam, "step": 1 / op.norm_sq()}
    out = {}
    for name, kwargs in runs.items():
        res = pl.solve(y, op, prior, **{"method": name, **kwargs}, max_iter=50, tol=1e-4)
        out[name] = {"n_iter": res.n_iter, "converged": res.converged, "time_s": res.wall_time, "lam": res.lam,
                     "step": res.step, "objective": res.history["objective"][-1],
                     "psnr": float(psnr(res.x.clamp(0, 1), img)), "stop_reason": res.stop_reason}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/bench", help="output folder (default out/bench, ignored by git)")
    parser.add_argument("--prior", default="lpn-natural-gray")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    out_dir = Path(args.out)
    torch.set_num_threads(args.threads)
    prior = pl.load_pretrained(args.prior)
    results = {"prior": args.prior, "threads": args.threads, "size": args.size}
    for name in ("blur", "ct"):
        img, op, y = task(name, args.size)
        lam = op.noise_sigma**2 / prior.sigma_train**2
        results[name] = {"breakdown": breakdown(op, y, prior, lam), "solves": solves(img, op, y, prior, lam if name == "blur" else None)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "solvers.json").write_text(json.dumps(results, indent=1))
    lines = [f"Prior {args.prior}, {args.size}^2, {args.threads} threads", "",
             "| task | data step (s) | prox (s) | R formula (s) | A z + fidelity (s) | ADMM iteration (s) | "
             "monitoring ADMM (%) | PGD iteration (s) | monitoring PGD (%) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in ("blur", "ct"):
        b = results[name]["breakdown"]
        lines.append(f"| {name} | {b['data_step_s']:.4f} | {b['prox_s']:.4f} | {b['R_formula_s']:.5f} | "
                     f"{b['A_z_fidelity_s']:.4f} | {b['admm_iteration_s']:.3f} | {b['monitor_overhead_admm_pct']:.1f} | "
                     f"{b['pgd_iteration_s']:.3f} | {b['monitor_overhead_pgd_pct']:.2f} |")
    lines += ["", "| task | method | lam | step | iterations | converged | time (s) | objective | PSNR (dB) | stop reason |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("blur", "ct"):
        for method, r in results[name]["solves"].items():
            lines.append(f"| {name} | {method} | {r['lam']:.4g} | {r['step']:.4g} | {r['n_iter']} | {r['converged']} | "
                         f"{r['time_s']:.1f} | {r['objective']:.6g} | {r['psnr']:.2f} | {r['stop_reason']} |")
    (out_dir / "solvers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
