"""The benchmark loop: for every (task, method), choose lam on the validation split, then
score the test split with that lam.

Protocol: lam takes each value ``default * factor`` of the preset's grid (default = what
``solve`` uses when lam is None, see :func:`.methods.default_lam`); the value with the best
mean validation PSNR is kept, and the test images are reconstructed once with it.
Reconstructions are clipped to [0, 1] before scoring; PSNR and SSIM come from
:mod:`pnp_lpn.metrics`. FBP and plain denoising have no parameter to tune.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import Tensor
from tqdm.auto import tqdm

from ..metrics import psnr, ssim
from .methods import Method, default_lam, denoiser_name, methods_for, reconstruct
from .presets import BenchConfig
from .tasks import TASKS, Split, Task, ct_images, make_split, natural_crops

CSV_COLUMNS = ("task", "method", "denoiser", "solver", "lam", "sigma_d", "val_psnr", "psnr", "ssim", "n_iter",
               "time_s", "objective", "n_test", "stop_reason")


@dataclass
class Record:
    """Scores of one (task, method) on the test split (means over the test images).

    ``time_s`` is the wall time of the one batched test run (all ``n_test`` images);
    ``objective`` the last monitored F = 1/2||Ax-y||^2 + lam R(x) (LPN priors; NaN when not
    monitored or unknown at the last iterate); ``sigma_d`` the noise level given to a
    generic denoiser. ``grid`` holds (lam, mean validation PSNR) pairs, ``psnr_trace`` and
    ``objective_trace`` the per-iteration test values, ``x`` the test reconstructions.
    """

    task: str
    method: str
    denoiser: str
    solver: str
    lam: float
    sigma_d: float
    val_psnr: float
    psnr: float
    ssim: float
    n_iter: int
    time_s: float
    objective: float
    n_test: int
    stop_reason: str
    grid: list[tuple[float, float]] = field(default_factory=list)
    psnr_trace: list[float] = field(default_factory=list)
    objective_trace: list[float] = field(default_factory=list)
    x: Tensor | None = None
    notes: list[str] = field(default_factory=list)

    def row(self) -> dict:
        return {c: getattr(self, c) for c in CSV_COLUMNS}


def task_images(task: Task, split: str, config: BenchConfig) -> Tensor:
    """(n, C, N, N) clean images of ``split`` ("val" or "test") for ``task`` (C = 3 on colour tasks)."""
    n = config.n_val if split == "val" else config.n_test
    if config.user_images is not None:
        return config.user_images.images(split, config.size, task.domain == "color", n)
    if task.domain == "ct":
        return ct_images(split, config.size, n)
    if task.domain == "color":
        return natural_crops(config.color_val if split == "val" else config.color_test, config.size, n, color=True)
    return natural_crops(config.natural_val if split == "val" else config.natural_test, config.size, n)


def _mean_psnr(x_hat: Tensor, x: Tensor) -> float:
    return float(psnr(x_hat.clamp(0, 1), x).mean())


def choose_lam(method: Method, task: Task, val: Split, config: BenchConfig, max_iter: int,
               box: tuple[float, float] | None) -> list[tuple[float, float]]:
    """(lam, mean validation PSNR) for each grid value; lam = default * factor rounded to 6
    significant digits (the value used is the value recorded: 100, not 99.99999999999999)."""
    centre = default_lam(method, task, val)
    lams = [float(f"{centre * f:.6g}") for f in config.grid]
    return [(lam, _mean_psnr(reconstruct(method, task, val, lam, max_iter, box).x, val.x)) for lam in lams]


def best_of(grid: list[tuple[float, float]]) -> tuple[float, float]:
    """The (lam, PSNR) pair with the highest PSNR (NaN counts as worst; first on ties);
    (nan, nan) for an empty grid."""
    if not grid:
        return math.nan, math.nan
    return max(grid, key=lambda g: -math.inf if math.isnan(g[1]) else g[1])


def evaluate(task: Task, method: Method, splits: dict[str, Split], config: BenchConfig) -> Record:
    """Tune (if the method has a lam) and score one method on one task."""
    max_iter = min(task.max_iter, config.max_iter or task.max_iter)
    box = (0.0, 1.0) if config.box_all else task.box
    grid = choose_lam(method, task, splits["val"], config, max_iter, box) if method.tuned else []
    lam, val_psnr = best_of(grid)
    test = splits["test"]
    trace: list[float] = []

    def track(k: int, z: Tensor, info: dict) -> None:
        trace.append(_mean_psnr(z, test.x))

    out = reconstruct(method, task, test, lam if method.tuned else None, max_iter, box,
                      track if method.tuned else None)
    x = out.x.clamp(0, 1)
    return Record(task.name, method.name, denoiser_name(method, task), method.solver, lam, out.sigma_d, val_psnr,
                  float(psnr(x, test.x).mean()), float(ssim(x, test.x).mean()), out.n_iter, out.time_s,
                  out.objective, test.x.shape[0], out.stop_reason, grid, trace,
                  out.history.get("objective", []), x, out.notes)


@dataclass
class BenchResult:
    """The configuration, the data every method saw (task -> "val"/"test" -> Split) and
    one :class:`Record` per (task, method)."""

    config: BenchConfig
    splits: dict[str, dict[str, Split]]
    records: list[Record]


def run_benchmark(config: BenchConfig, progress: bool = True) -> BenchResult:
    """Every applicable (task, method) pair of ``config``, in one loop."""
    tasks = [TASKS[name] for name in config.tasks]
    splits = {t.name: {s: make_split(t, task_images(t, s, config), s) for s in ("val", "test")} for t in tasks}
    jobs = [(t, m) for t in tasks for m in methods_for(t, config.methods, config.priors)]
    records = []
    bar = tqdm(jobs, disable=not progress, desc="bench")
    for task, method in bar:
        bar.set_postfix_str(f"{task.name} / {method.name}")
        records.append(evaluate(task, method, splits[task.name], config))
    return BenchResult(config, splits, records)
