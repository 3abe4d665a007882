"""Benchmark outputs: results.csv, grid.csv, results.md, runs.json and figures."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from ..metrics import psnr
from .protocol import CSV_COLUMNS, BenchResult, Record
from .tasks import TASKS


def write_all(result: BenchResult, out: str | Path, command: str = "") -> list[Path]:
    """Write every output into ``out``; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_csv(result.records, out / "results.csv"), write_grid(result.records, out / "grid.csv"),
             write_markdown(result, out / "results.md", command), write_runs(result.records, out / "runs.json")]
    return paths + write_figures(result, out)


def write_csv(records: list[Record], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(r.row() for r in records)
    return path


def write_grid(records: list[Record], path: Path) -> Path:
    """One row per (task, method, lam) of the validation search, the chosen one marked."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "method", "lam", "val_psnr", "chosen"])
        writer.writerows([r.task, r.method, lam, score, lam == r.lam] for r in records for lam, score in r.grid)
    return path


def write_runs(records: list[Record], path: Path) -> Path:
    """Every run's table row, validation grid, per-iteration test PSNR and monitored
    objective, and the solver's notes and warnings (NaN written as null)."""
    def clean(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    runs = [{**{k: clean(v) for k, v in r.row().items()}, "grid": [[lam, clean(p)] for lam, p in r.grid],
             "psnr_per_iter": [clean(v) for v in r.psnr_trace],
             "objective_per_iter": [clean(v) for v in r.objective_trace], "notes": r.notes} for r in records]
    path.write_text(json.dumps(runs, indent=1))
    return path


def _fmt(v, digits: int = 2) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.{digits}f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2e}"
    return str(v)


def markdown_tables(records: list[Record]) -> str:
    """A PSNR / SSIM overview (methods x tasks) and one detail table per task."""
    tasks = list(dict.fromkeys(r.task for r in records))
    methods = list(dict.fromkeys(r.method for r in records))
    cell = {(r.task, r.method): f"{r.psnr:.2f} / {r.ssim:.3f}" for r in records}
    lines = ["PSNR (dB) / SSIM on the test images, mean over images:", "",
             "| method | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(cell.get((t, m), "") for t in tasks) + " |" for m in methods]
    for task in tasks:
        lines += ["", f"**{task}**: {TASKS[task].description}", "",
                  "| method | denoiser | lam (chosen) | sigma_d | val PSNR | PSNR | SSIM | iters | time (s) "
                  "| final objective | stop |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r.method} | {r.denoiser} | {_lam_cell(r)} | {_fmt(r.sigma_d, 3)} | {_fmt(r.val_psnr)} "
                  f"| {r.psnr:.2f} | {r.ssim:.3f} | {r.n_iter} | {_fmt(r.time_s)} | {_fmt(r.objective, 4)} "
                  f"| {r.stop_reason.split(';')[0]} |" for r in records if r.task == task]
    if any(_at_grid_edge(r) for r in records):
        lines += ["", "(edge): the chosen lam is the smallest or largest of the grid; a wider grid may score higher."]
    return "\n".join(lines) + "\n"


def _at_grid_edge(r: Record) -> bool:
    lams = [lam for lam, _ in r.grid]
    return len(lams) > 1 and r.lam in (min(lams), max(lams))


def _lam_cell(r: Record) -> str:
    return _fmt(r.lam, 4) + (" (edge)" if _at_grid_edge(r) else "")


def _boxed_tasks() -> str:
    """The tasks solved under the box [0, 1] by default, in words."""
    return "tasks with a box only (" + ", ".join(t.name for t in TASKS.values() if t.box) + ")"


def _images(c) -> str:
    """Where the benchmark images came from, in words."""
    if c.user_images is not None:
        split = c.user_images.split()
        return (f"centre crops of the images in {c.user_images.folder}: validation "
                f"{', '.join(split['val'][:c.n_val])}; test {', '.join(split['test'][:c.n_test])}")
    return (f"natural: validation crops of {', '.join(c.natural_val)}, test crops of {', '.join(c.natural_test)}; "
            f"colour: validation crops of {', '.join(c.color_val)}, test crops of {', '.join(c.color_test)}; CT: "
            "validation phantoms (seed 20000), test Shepp-Logan (+ phantoms seed 30000)")


def write_markdown(result: BenchResult, path: Path, command: str = "") -> Path:
    c = result.config
    head = [f"# Benchmark results ({command})" if command else "# Benchmark results", "",
            f"- images {c.size}x{c.size}; {c.n_val} validation / {c.n_test} test image(s) per task; {_images(c)}",
            f"- lam grid: default x {', '.join(f'{f:.3g}' for f in c.grid)}, chosen by mean validation PSNR; "
            f"iteration cap {c.max_iter or 'none (task reference counts)'}",
            f"- box constraint [0, 1] (solve's box=): {'all tasks (--box)' if c.box_all else _boxed_tasks()}; "
            "outputs clipped to [0, 1] before scoring; time = one batched test run", ""]
    path.write_text("\n".join(head) + "\n" + markdown_tables(result.records))
    return path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_figures(result: BenchResult, out: Path) -> list[Path]:
    """recon_<task>.png for every task, psnr_vs_iter.png and objective_vs_iter.png for the
    solver runs, denoise_robustness.png for the denoising tasks."""
    tasks = dict.fromkeys(r.task for r in result.records)
    paths = [recon_panel(result, task, out / f"recon_{task}.png") for task in tasks]
    solved = [r for r in result.records if r.psnr_trace]
    if solved:
        paths.append(curve_grid(solved, "psnr_trace", "test PSNR (dB)", out / "psnr_vs_iter.png"))
    monitored = [r for r in solved if any(np.isfinite(r.objective_trace))]
    if monitored:
        paths.append(curve_grid(monitored, "objective_trace", "F - min F (monitored)", out / "objective_vs_iter.png"))
    denoising = [r for r in result.records if r.solver == "denoise"]
    if denoising:
        paths.append(denoise_curve(denoising, out / "denoise_robustness.png"))
    return paths


def recon_panel(result: BenchResult, task: str, path: Path) -> Path:
    """Ground truth, the measurement when it is an image, and every method's first test image."""
    plt = _plt()
    split = result.splits[task]["test"]
    panels = [("ground truth", split.x[0])]
    if split.y.shape == split.x.shape:
        panels.append(("measurement", split.y[0]))
    panels += [(f"{r.method}\n{float(psnr(r.x[:1], split.x[:1])):.2f} dB", r.x[0])
               for r in result.records if r.task == task]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.4 * len(panels), 2.8), squeeze=False)
    for ax, (title, img) in zip(axes[0], panels):
        img = img.clamp(0, 1).permute(1, 2, 0).cpu().numpy()  # (H, W, C): grey or r, g, b
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{task}: {TASKS[task].description} (first test image)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curve_grid(records: list[Record], key: str, ylabel: str, path: Path) -> Path:
    """One subplot per task, one line per method; objectives are shifted by their minimum
    (each prior has its own R, so only the shape is comparable) and drawn in log scale."""
    plt = _plt()
    tasks = list(dict.fromkeys(r.task for r in records))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for r in (r for r in records if r.task == task):
            vals = np.asarray(getattr(r, key), dtype=float)
            if key == "objective_trace":
                vals = vals - np.nanmin(vals) + 1e-6 * max(abs(np.nanmin(vals)), 1e-12)
                ax.set_yscale("log")
            ax.plot(np.arange(1, len(vals) + 1), vals, label=r.method)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def denoise_curve(records: list[Record], path: Path) -> Path:
    """Test PSNR against the noise level: LPN (fixed training level) vs AE-LPN and baselines."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for method in dict.fromkeys(r.method for r in records):
        rows = sorted((TASKS[r.task].noise_sigma, r.psnr) for r in records if r.method == method)
        style = "-o" if "lpn" in method else "--."
        ax.plot(*zip(*rows), style, label=method)
    sigmas = sorted({TASKS[r.task].noise_sigma for r in records})
    ax.plot(sigmas, [-20 * np.log10(s) for s in sigmas], ":", color="gray", label="noisy input")
    ax.set_xlabel("noise sigma")
    ax.set_ylabel("test PSNR (dB)")
    ax.set_title("denoising across noise levels (priors trained at sigma 0.1)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
