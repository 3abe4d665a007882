"""CT on the CPU: ParallelBeamCT against one raw ASTRA projector call per slice; writes ct_cpu.{json,md} to --out.

For each size (180 views, default detectors) and batch size K: milliseconds per call of
A and A^T on K slices for raw ASTRA (``astra.projector.direct_FP/BP``, one projector over
all angles, one call per slice: what ASTRA gives a user), ParallelBeamCT with
``cpu_matrix=True`` (ASTRA's matrix applied by torch's threaded sparse product; the default
after 100 projected slices) and with ``cpu_matrix=False`` (ASTRA's calls, angle chunks in
threads); the speed-up of the matrix path over raw ASTRA; the matrix's non-zeros, memory
(R and R^T) and build time; its adjointness error and its difference to raw ASTRA.

Usage: python benchmarks/bench_ct_cpu.py [--threads 2] [--sizes 256 512] [--batches 1 8]
Timings interleave the contenders round by round (blocks of calls) and keep each one's best
(least disturbed by other processes); read the ratios, which come from one run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import time
from collections.abc import Callable
from pathlib import Path

import astra
import numpy as np
import torch

from bench_operators import save_results


def interleaved_best_ms(fns: dict[str, Callable[[], object]], rounds: int, block_s: float = 0.3) -> dict:
    """Best wall time (ms) of each fn over ``rounds`` rounds; a round runs each fn in turn, in a
    block of consecutive calls (>= 2 calls and >= ``block_s`` seconds).

    A change of load during the run affects every contender alike; blocks keep one
    contender's after-effects (e.g. OpenMP threads spinning after a parallel product) out of
    all but the first call of the next one.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()
            block: list[float] = []
            while len(block) < 2 or sum(block) < block_s:
                start = time.perf_counter()
                fn()
                block.append(time.perf_counter() - start)
            times[name] += block
    return {name: 1e3 * min(t) for name, t in times.items()}


class RawAstra:
    """One ASTRA projector over all angles; A / A^T loop over the slices, one call each."""

    def __init__(self, size: int, angles: np.ndarray, n_det: int) -> None:
        vol = astra.create_vol_geom(size, size)
        self.id = astra.create_projector("linear", astra.create_proj_geom("parallel", 1.0, n_det, angles), vol)

    def forward(self, images: np.ndarray, out: np.ndarray) -> None:
        for img, sino in zip(images, out):
            astra.projector.direct_FP(self.id, img, out=sino)

    def backward(self, sinos: np.ndarray, out: np.ndarray) -> None:
        for sino, vol in zip(sinos, out):
            astra.projector.direct_BP(self.id, sino, out=vol)


def bench_size(size: int, n_angles: int, batches: list[int], repeats: int) -> dict:
    """Rows (one per batch size) and the matrix facts for one image size."""
    from pnp_lpn.operators import ParallelBeamCT

    start = time.perf_counter()
    ours = ParallelBeamCT((1, size, size), n_angles=n_angles, cpu_matrix=True)
    build_s = time.perf_counter() - start
    calls = ParallelBeamCT((1, size, size), n_angles=n_angles, cpu_matrix=False)
    raw = RawAstra(size, ours.angles.numpy(), ours.n_detectors)
    matrix = ours._projectors.matrix
    facts = {"size": size, "n_angles": n_angles, "n_detectors": ours.n_detectors, "nnz": matrix.r._nnz(),
             "matrix_bytes": matrix.nbytes, "build_s": build_s,
             "adjoint_error": float(ours.adjointness_test(img_size=ours.img_size, num_samples=4)), "rows": []}
    for k in batches:
        x = torch.rand(k, 1, size, size)
        y = calls.A(x)
        y_raw, x_raw = np.empty((k, *y.shape[2:]), np.float32), np.empty((k, size, size), np.float32)
        x_np, y_np = x[:, 0].numpy(), y[:, 0].numpy()
        ms = interleaved_best_ms({
            "raw_A": lambda: raw.forward(x_np, y_raw), "raw_At": lambda: raw.backward(y_np, x_raw),
            "matrix_A": lambda: ours.A(x), "matrix_At": lambda: ours.A_adjoint(y),
            "calls_A": lambda: calls.A(x), "calls_At": lambda: calls.A_adjoint(y),
        }, repeats)
        rel = float((ours.A(x)[:, 0] - torch.from_numpy(y_raw)).norm() / y.norm())
        facts["rows"].append({"batch": k, **ms, "speedup_A": ms["raw_A"] / ms["matrix_A"],
                              "speedup_At": ms["raw_At"] / ms["matrix_At"], "rel_diff_A_vs_raw": rel})
    astra.projector.delete(raw.id)
    return facts


def to_markdown(results: dict) -> str:
    lines = [f"# CT on the CPU ({results['machine']}, torch threads {results['threads']}, best of "
             f"{results['repeats']} interleaved rounds, ms per call on the batch)", "",
             f"Command: `{results['command']}`", "",
             "| size | batch | raw ASTRA A | raw A^T | matrix A | matrix A^T | speed-up A | speed-up A^T "
             "| ASTRA calls A | calls A^T |", "|---|---|---|---|---|---|---|---|---|---|"]
    for f in results["sizes"]:
        for r in f["rows"]:
            lines.append(f"| {f['size']}^2 | {r['batch']} | {r['raw_A']:.1f} | {r['raw_At']:.1f} | {r['matrix_A']:.1f} "
                         f"| {r['matrix_At']:.1f} | {r['speedup_A']:.2f}x | {r['speedup_At']:.2f}x "
                         f"| {r['calls_A']:.1f} | {r['calls_At']:.1f} |")
    lines += ["", "| size | views | non-zeros | matrix memory (R + R^T) | build | adjoint error | max rel. diff A "
              "vs raw |", "|---|---|---|---|---|---|---|"]
    for f in results["sizes"]:
        diff = max(r["rel_diff_A_vs_raw"] for r in f["rows"])
        lines.append(f"| {f['size']}^2 | {f['n_angles']} | {f['nnz'] / 1e6:.1f} M "
                     f"| {f['matrix_bytes'] / 2**20:.0f} MiB | {f['build_s']:.1f} s | {f['adjoint_error']:.1e} "
                     f"| {diff:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/bench", help="output folder (default out/bench, ignored by git)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--views", type=int, default=180)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"machine": f"{platform.processor() or platform.machine()}, {multiprocessing.cpu_count()} CPUs",
               "threads": args.threads, "repeats": args.repeats,
               "command": (f"python benchmarks/bench_ct_cpu.py --threads {args.threads} --sizes "
                           f"{' '.join(map(str, args.sizes))} --batches {' '.join(map(str, args.batches))} "
                           f"--views {args.views} --repeats {args.repeats}"),
               "sizes": [bench_size(s, args.views, args.batches, args.repeats) for s in args.sizes]}
    save_results("ct_cpu", results, to_markdown(results), Path(args.out))


if __name__ == "__main__":
    main()
