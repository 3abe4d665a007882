"""Speed of a ridge prior's solved prox against an LPN prox, as ratios measured in one run.

    python benchmarks/bench_ridge_speed.py --ridge wcrr-natural-gray --lpn lpn-natural-gray [--size 256]

On one noisy 256^2 photo (scikit-image's ``camera`` at sigma 0.1; any photo works, the time
depends on the image only through the solver's iteration count): the LPN prox (one backward
pass), the ridge prox from a cold start, the ridge prox warm-started at the solution for a
nearby input (what a PnP iteration sees: v moved by 1 % RMS), and ``denoise(y, sigma)`` at
sigma 0.05 / 0.1 / 0.2 (one inner solve each, any sigma), with the solver's iterations and its
evaluations of grad E (line-search trials included: the cost). Cases alternate over ``--repeats``
rounds and the fastest round of each case is reported (the cost without interference: on a
shared machine single timings drift by +-40 %), so a load change hits every case alike.
Writes ridge_speed.json and .md to --out (default out/bench/).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import pnp_lpn as pl


def load(spec: str):
    return pl.load_prior(spec) if Path(spec).exists() else pl.load_pretrained(spec)


def cases(ridge, lpn, y: torch.Tensor) -> dict:
    """name -> zero-argument callable returning (inner iterations, evaluations of grad E): (0, 0) for the LPN."""
    warm = ridge.scaled_prox_with_regularizer(y, 1.0)
    g = torch.Generator().manual_seed(1)
    nearby = y + 0.01 * float(y.pow(2).mean().sqrt()) * torch.randn(y.shape, generator=g)
    def counts(res) -> tuple[int, int]:
        return res.n_iter, res.n_eval

    table = {"lpn prox": lambda: (lpn.prox(y), (0, 0))[1],
             "ridge prox (cold)": lambda: counts(ridge.scaled_prox_with_regularizer(y, 1.0)),
             "ridge prox (warm, PnP)": lambda: counts(ridge.scaled_prox_with_regularizer(nearby, 1.0, w0=warm.w))}
    for s in (0.05, 0.1, 0.2):
        table[f"ridge denoise sigma {s}"] = lambda s=s: counts(ridge.solve_denoising(y, ridge.parts(1, s)))
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ridge", default="wcrr-natural-gray")
    ap.add_argument("--lpn", default="lpn-natural-gray")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="out/bench")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ridge, lpn = load(args.ridge), load(args.lpn)
    x = pl.data.natural_image("camera")[None, ..., :args.size, :args.size]
    y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    table = cases(ridge, lpn, y)
    times: dict[str, list[float]] = {k: [] for k in table}
    iters: dict[str, tuple[int, int]] = {}
    with torch.no_grad():
        for _ in range(args.repeats):
            for name, fn in table.items():
                t0 = time.perf_counter()
                iters[name] = fn()
                times[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    base = best["lpn prox"]
    lines = [f"{args.size}^2, {args.threads} threads, fastest of {args.repeats} alternating rounds", "",
             "| case | seconds | / LPN prox | inner iterations | evaluations of grad E |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v:.3f} | {v / base:.1f} | {iters[k][0]} | {iters[k][1]} |" for k, v in best.items()]
    text = "\n".join(lines)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ridge_speed.json").write_text(json.dumps({"best_s": best, "all_s": times, "iters": iters, "args": vars(args)}, indent=1))
    (out / "ridge_speed.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
