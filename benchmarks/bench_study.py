"""Study throughput: slices per second of batched CT PnP-ADMM solves; writes study.{json,md} to --out.

A stack of ``--slices`` phantoms (``pnp_lpn.data.ct_phantoms``), measured by ParallelBeamCT
(``--views`` views, noise ``--noise``), is reconstructed by ``pl.solve`` (PnP-ADMM with
``pl.load_pretrained("lpn-ct")``, box (0, 1), exactly ``--iters`` iterations: tol 0) in
batches of each ``--batch-sizes`` value, on the CPU and, when CUDA is available, on the GPU.
Per device and batch size: wall time, slices per second, the time a 512-slice study would
take at that rate, mean PSNR, and peak memory (GPU: torch.cuda.max_memory_allocated of the
timed solves; CPU: the process's resident high-water mark so far). Set-up (operator, with
its projection matrix on both devices, and one warm-up solve) is timed separately.

Usage: python benchmarks/bench_study.py [--size 512] [--views 60] [--iters 100] [--slices 16]
       [--batch-sizes 1 4 16] [--devices cpu cuda] [--threads 2]
Check on a small CPU run: --size 128 --slices 4 --batch-sizes 1 4 --iters 10 --devices cpu
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import torch

from bench_operators import save_results


def make_study(size: int, n_slices: int, views: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Phantoms x (N, 1, size, size) and their noisy sinograms y (N, 1, views, n_det), on the CPU."""
    from pnp_lpn.data import ct_phantoms
    from pnp_lpn.operators import ParallelBeamCT

    x = torch.stack(ct_phantoms(n_slices, size, seed=0))
    op = ParallelBeamCT((1, size, size), n_angles=views, noise_sigma=noise, cpu_matrix=False)
    torch.manual_seed(0)
    return x, op(x)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_device(device: str, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> list[dict]:
    """One row per batch size: solve all slices in batches of that size on ``device``."""
    import pnp_lpn as pl
    from pnp_lpn.metrics import psnr
    from pnp_lpn.operators import ParallelBeamCT

    start = time.perf_counter()
    kw = {"cpu_matrix": True} if device == "cpu" else {}
    op = ParallelBeamCT((1, args.size, args.size), n_angles=args.views, noise_sigma=args.noise, device=device, **kw)
    prior = pl.load_pretrained("lpn-ct").to(device)
    y_dev = y.to(device)
    pl.solve(y_dev[:1], op, prior, max_iter=2, tol=0.0, box=(0.0, 1.0))  # warm-up (CUDA context, kernels)
    synchronize(device)
    setup_s = time.perf_counter() - start
    rows = []
    for batch in args.batch_sizes:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        parts = [pl.solve(y_dev[i:i + batch], op, prior, max_iter=args.iters, tol=0.0, box=(0.0, 1.0)).x
                 for i in range(0, len(y_dev), batch)]
        synchronize(device)
        wall = time.perf_counter() - start
        rec = torch.cat(parts).cpu()
        peak = (torch.cuda.max_memory_allocated() if device == "cuda"
                else 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        rows.append({"device": device, "batch": batch, "slices": len(y_dev), "wall_s": wall,
                     "slices_per_s": len(y_dev) / wall, "study_512_s": 512 * wall / len(y_dev),
                     "psnr": float(psnr(rec, x).mean()), "peak_bytes": peak, "setup_s": setup_s})
    return rows


def to_markdown(results: dict) -> str:
    a = results["args"]
    lines = [f"# Study throughput ({results['machine']})", "",
             f"{a['slices']} slices of {a['size']}^2, {a['views']} views, noise {a['noise']}, PnP-ADMM + lpn-ct, "
             f"{a['iters']} iterations, box (0, 1); torch threads {a['threads']}.", "",
             f"Command: `{results['command']}`", "",
             "| device | batch | wall (s) | slices / s | 512 slices (s) | mean PSNR (dB) | peak memory | set-up (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        kind = "GPU allocated" if r["device"] == "cuda" else "process RSS"
        lines.append(f"| {r['device']} | {r['batch']} | {r['wall_s']:.2f} | {r['slices_per_s']:.3f} "
                     f"| {r['study_512_s']:.0f} | {r['psnr']:.2f} | {r['peak_bytes'] / 2**20:.0f} MiB ({kind}) "
                     f"| {r['setup_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/bench", help="output folder (default out/bench, ignored by git)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--views", type=int, default=60)
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"],
                        default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    if "cuda" in args.devices and not torch.cuda.is_available():
        sys.exit("--devices cuda needs a CUDA GPU visible to torch")
    torch.set_num_threads(args.threads)
    x, y = make_study(args.size, args.slices, args.views, args.noise)
    gpu = f", {torch.cuda.get_device_name()}" if "cuda" in args.devices else ""
    results = {"machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}{gpu}",
               "args": vars(args), "command": "python benchmarks/bench_study.py " + " ".join(sys.argv[1:]),
               "rows": [row for device in args.devices for row in run_device(device, x, y, args)]}
    save_results("study", results, to_markdown(results), Path(args.out))


if __name__ == "__main__":
    main()
