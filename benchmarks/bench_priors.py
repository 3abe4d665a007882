"""Prior benchmark: prox time / peak memory, and regulariser inversion vs scipy fmin_cg.

    python benchmarks/bench_priors.py [--prior lpn-natural-gray] [--threads 2]

1. Prox of the default LPN on one grey image at 256^2 and 512^2: the inference path (one
   backward pass, no graph) vs an evaluation with create_graph=True (what the reference
   code does at inference). Each case runs in a fresh subprocess so that the peak resident
   memory (ru_maxrss) belongs to that case alone.
2. R(x) at 8 images of 64^2: our batched L-BFGS inversion vs the published method, scipy's
   fmin_cg on psi(v) - <x, v> one image at a time (gtol 1e-5). Time and achieved RMS
   residual ||f(v) - x|| / sqrt(n).

Writes priors.json and priors.md to --out (default out/bench/).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch



def make_prior(name: str | None):
    import pnp_lpn as pl

    if name and name.endswith(".safetensors"):
        return pl.load_prior(name)
    if name:
        return pl.load_pretrained(name)
    torch.manual_seed(0)
    return pl.LPN(in_channels=1).eval()


def prox_case(size: int, create_graph: bool, prior_name: str | None, repeats: int = 3) -> dict:
    """Time and peak RSS of the prox at size^2 (run inside a fresh process)."""
    prior = make_prior(prior_name)
    x = torch.rand(1, 1, size, size)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    prior.prox(x, create_graph=create_graph)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        prior.prox(x, create_graph=create_graph)
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"size": size, "create_graph": create_graph, "time_s": min(times), "peak_rss_mb": peak / 1024,
            "rss_increase_mb": (peak - base) / 1024}


def fmin_cg_inversion(prior, x: torch.Tensor, gtol: float = 1e-5) -> tuple[torch.Tensor, float]:
    """Published route: scipy fmin_cg on psi(v) - <x, v> for one image; returns (v, seconds)."""
    from scipy.optimize import fmin_cg

    shape = x.shape

    def fun(v):
        t = torch.from_numpy(v).float().view(shape)
        return float(prior.potential(t) - (x * t).sum())

    def grad(v):
        t = torch.from_numpy(v).float().view(shape)
        return (prior.prox(t) - x).double().flatten().numpy()

    t0 = time.perf_counter()
    v = fmin_cg(fun, x.double().flatten().numpy(), fprime=grad, gtol=gtol, disp=False)
    return torch.from_numpy(v).float().view(shape), time.perf_counter() - t0


def inversion_cases(prior_name: str | None) -> dict:
    from pnp_lpn.priors.inversion import rms
    from pnp_lpn.training.datasets import natural_images

    prior = make_prior(prior_name)
    img = natural_images("val")[0][0]
    g = torch.Generator().manual_seed(0)
    crops = []
    for _ in range(8):
        i, j = (int(torch.randint(s - 64, (1,), generator=g)) for s in img.shape)
        crops.append(img[i : i + 64, j : j + 64])
    x = torch.stack(crops)[:, None]
    t0 = time.perf_counter()
    res = prior.regularizer(x, tol=1e-4, max_iter=500, return_result=True)
    ours = {"time_s": time.perf_counter() - t0, "max_rms_residual": float(res.residual.max()), "n_iter": res.n_iter}
    total, residuals = 0.0, []
    for i in range(8):
        v, sec = fmin_cg_inversion(prior, x[i : i + 1])
        total += sec
        residuals.append(float(rms(prior.prox(v) - x[i : i + 1])))
    ref = {"time_s": total, "max_rms_residual": max(residuals)}
    return {"batched_lbfgs": ours, "scipy_fmin_cg": ref, "speedup": ref["time_s"] / ours["time_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/bench", help="output folder (default out/bench, ignored by git)")
    parser.add_argument("--prior", default=None, help="shipped prior name or a .safetensors path (default: untrained default LPN)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one prox case in this process
    args = parser.parse_args()
    out_dir = Path(args.out)
    torch.set_num_threads(args.threads)
    if args.case:
        size, cg = args.case.split(":")
        print(json.dumps(prox_case(int(size), cg == "1", args.prior)))
        return
    prox = []
    for size in (256, 512):
        for cg in (0, 1):
            cmd = [sys.executable, __file__, "--case", f"{size}:{cg}", "--threads", str(args.threads)]
            cmd += ["--prior", args.prior] if args.prior else []
            prox.append(json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout))
    inv = inversion_cases(args.prior)
    out = {"prior": args.prior or "LPN() default, untrained", "threads": args.threads, "prox": prox, "inversion": inv}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "priors.json").write_text(json.dumps(out, indent=1))
    lines = [f"Prior: {out['prior']}, {args.threads} CPU threads", "",
             "| size | create_graph | prox time (s) | peak RSS (MB) | RSS increase (MB) |", "|---|---|---|---|---|"]
    lines += [f"| {p['size']}^2 | {p['create_graph']} | {p['time_s']:.3f} | {p['peak_rss_mb']:.0f} | {p['rss_increase_mb']:.0f} |"
              for p in prox]
    ours, ref = inv["batched_lbfgs"], inv["scipy_fmin_cg"]
    lines += ["", "R(x) for 8 images of 64^2 (tol: RMS residual 1e-4; fmin_cg gtol 1e-5):", "",
              "| method | time (s) | max RMS residual |", "|---|---|---|",
              f"| batched L-BFGS (ours) | {ours['time_s']:.2f} | {ours['max_rms_residual']:.1e} |",
              f"| scipy fmin_cg per image | {ref['time_s']:.2f} | {ref['max_rms_residual']:.1e} |",
              "", f"speed-up: {inv['speedup']:.1f}x"]
    (out_dir / "priors.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
