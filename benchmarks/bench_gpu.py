"""CPU vs GPU on the same machine: the CT operator, the LPN prox and a whole PnP-ADMM solve.

Writes gpu.{json,md} to --out (default out/bench/). Needs a CUDA GPU and an astra-toolbox
build with CUDA (``astra.use_cuda()``); exits with a message otherwise.

- CT (ParallelBeamCT, 180 views, 256^2 and 512^2): A, A^T and FBP on ASTRA's CPU projector
  (all cores) and on the GPU with each GPU projector: "linear" (the default: ASTRA's matrix
  as a torch sparse matrix, exact adjoint) and "cuda" (ASTRA's kernels through DLPack), with
  the relative difference of the GPU results from the CPU ones, the adjointness error
  (deepinv's adjointness_test, white-noise u, v) and the set-up time.
- LPN prox (lpn-ct: one forward and one backward of the potential) at 256^2 and 512^2.
- The demo's solve (Shepp-Logan 256^2, 60 views, noise 1, PnP-ADMM + lpn-ct, box (0, 1),
  30 iterations): wall time and PSNR on each device.

Usage: python benchmarks/bench_gpu.py [--quick]
GPU times synchronise before and after each call; each figure is the best of repeated runs
after a warm-up (``best_ms`` of bench_operators.py).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

from bench_operators import best_ms, save_results


def synced(fn):
    """fn wrapped so that its GPU work is finished when the call returns."""

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| computed on the CPU."""
    a, b = a.detach().cpu(), b.detach().cpu()
    return float((a - b).norm() / b.norm())


def bench_ct(size: int, n_angles: int, repeats: int) -> list[dict]:
    import time

    from pnp_lpn.operators import ParallelBeamCT

    x = torch.rand(1, 1, size, size)
    cpu = ParallelBeamCT((1, size, size), n_angles=n_angles)
    y = cpu.A(x)
    rows = [{"size": size, "n_angles": n_angles, "device": "cpu", "projector": cpu.projector_kind,
             "adjointness": float(cpu.adjointness_test(img_size=cpu.img_size)),
             **{f"{name}_ms": best_ms(fn, repeats) for name, fn in
                [("A", lambda: cpu.A(x)), ("At", lambda: cpu.A_adjoint(y)), ("fbp", lambda: cpu.fbp(y))]}}]
    xg, yg = x.cuda(), y.cuda()
    for projector in ("linear", "cuda"):
        t0 = time.perf_counter()
        gpu = ParallelBeamCT((1, size, size), n_angles=n_angles, device="cuda", projector=projector)
        setup_s = time.perf_counter() - t0
        rows.append({"size": size, "n_angles": n_angles, "device": "cuda", "projector": projector, "setup_s": setup_s,
                     "adjointness": float(gpu.adjointness_test(img_size=gpu.img_size, device="cuda")),
                     "rel_diff_A": rel(gpu.A(xg), y), "rel_diff_At": rel(gpu.A_adjoint(yg), cpu.A_adjoint(y)),
                     "rel_diff_fbp": rel(gpu.fbp(yg), cpu.fbp(y)),
                     **{f"{name}_ms": best_ms(synced(fn), repeats) for name, fn in
                        [("A", lambda: gpu.A(xg)), ("At", lambda: gpu.A_adjoint(yg)), ("fbp", lambda: gpu.fbp(yg))]}})
    return rows


def bench_prox(size: int, repeats: int) -> dict:
    from pnp_lpn.priors import load_pretrained

    prior = load_pretrained("lpn-ct")
    x = torch.rand(1, 1, size, size)
    prior_gpu = load_pretrained("lpn-ct").cuda()
    xg = x.cuda()
    row = {"size": size, "rel_diff": rel(prior_gpu(xg), prior(x))}
    row["cpu_ms"] = best_ms(lambda: prior(x), repeats)
    row["gpu_ms"] = best_ms(synced(lambda: prior_gpu(xg)), repeats)
    return row


def bench_solve(device: str, projector: str | None = None) -> dict:
    import time

    from pnp_lpn.data import shepp_logan
    from pnp_lpn.metrics import psnr
    from pnp_lpn.operators import ParallelBeamCT
    from pnp_lpn.priors import load_pretrained
    from pnp_lpn.solvers import solve

    torch.manual_seed(0)
    x = shepp_logan(256)
    op_cpu = ParallelBeamCT((1, 256, 256), n_angles=60, noise_sigma=1.0)
    y = op_cpu(x)
    op = ParallelBeamCT((1, 256, 256), n_angles=60, noise_sigma=1.0, device=device, projector=projector)
    prior = load_pretrained("lpn-ct").to(device)
    y = y.to(device)
    solve(y, op, prior, max_iter=2, box=(0.0, 1.0))  # warm-up (CUDA context, cuDNN plans)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = solve(y, op, prior, max_iter=30, tol=0.0, box=(0.0, 1.0))
    if device == "cuda":
        torch.cuda.synchronize()
    return {"device": device, "projector": op.projector_kind, "wall_s": time.perf_counter() - t0, "n_iter": res.n_iter,
            "psnr": float(psnr(res.x.cpu(), x)), "x": res.x.cpu()}


def markdown(out: dict) -> str:
    lines = [f"# CPU vs GPU ({out['gpu']}; CPU: {out['cpu_threads']} torch threads, {out['machine']})", "",
             "## CT operator (ParallelBeamCT, ms, best of repeats)", "",
             "| size | views | device | projector | A | A^T | FBP | adjointness error | rel. diff to CPU A / A^T / FBP "
             "| set-up (s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["ct"]:
        diff = (f"{r['rel_diff_A']:.1e} / {r['rel_diff_At']:.1e} / {r['rel_diff_fbp']:.1e}" if r["device"] == "cuda"
                else "-")
        setup = f"{r['setup_s']:.1f}" if "setup_s" in r else "-"
        lines.append(f"| {r['size']} | {r['n_angles']} | {r['device']} | {r['projector']} | {r['A_ms']:.2f} "
                     f"| {r['At_ms']:.2f} | {r['fbp_ms']:.2f} | {r['adjointness']:.1e} | {diff} | {setup} |")
    lines += ["", "## LPN prox (lpn-ct, ms)", "", "| size | cpu | gpu | speed-up | rel. diff |", "|---|---|---|---|---|"]
    for r in out["prox"]:
        lines.append(f"| {r['size']} | {r['cpu_ms']:.1f} | {r['gpu_ms']:.2f} | {r['cpu_ms'] / r['gpu_ms']:.0f}x "
                     f"| {r['rel_diff']:.1e} |")
    s = out["solve"]
    lines += ["", "## Demo solve (256^2, 60 views, PnP-ADMM + lpn-ct, 30 iterations, box (0, 1))", "",
              "| device | projector | wall time (s) | PSNR (dB) | rel. diff to CPU result |", "|---|---|---|---|---|"]
    lines += [f"| {r['device']} | {r['projector']} | {r['wall_s']:.2f} | {r['psnr']:.2f} | {r['rel_diff']:.1e} |"
              for r in s["runs"]]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/bench", help="output folder (default out/bench, ignored by git)")
    ap.add_argument("--quick", action="store_true", help="256^2 only, fewer repeats")
    args = ap.parse_args()
    import astra

    if not torch.cuda.is_available() or not astra.use_cuda():
        sys.exit("bench_gpu.py needs a CUDA GPU visible to torch and an astra-toolbox build with CUDA")
    repeats = 3 if args.quick else 10
    sizes = (256,) if args.quick else (256, 512)
    runs = [bench_solve("cpu"), bench_solve("cuda", "linear"), bench_solve("cuda", "cuda")]
    out = {"gpu": torch.cuda.get_device_name(), "cpu_threads": torch.get_num_threads(),
           "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                      f"astra {astra.__version__}",
           "ct": [row for n in sizes for row in bench_ct(n, 180, repeats)],
           "prox": [bench_prox(n, repeats) for n in sizes],
           "solve": {"runs": [{**{k: v for k, v in r.items() if k != "x"}, "rel_diff": rel(r["x"], runs[0]["x"])}
                              for r in runs]}}
    save_results("gpu", out, markdown(out), Path(args.out))


if __name__ == "__main__":
    main()
