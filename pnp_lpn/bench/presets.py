"""Benchmark configurations: ``quick`` (minutes on 2 CPU cores) and ``full`` (study-sized)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .methods import METHODS, method_names, user_families
from .tasks import TASKS
from .user_images import UserImages


@dataclass(frozen=True)
class BenchConfig:
    """What to run.

    :param tasks: task names (keys of ``TASKS``).
    :param methods: method names (``METHODS`` and those of ``priors``); a denoising task runs each family once.
    :param size: crop / phantom size N (images N x N).
    :param n_val: validation images per task (lam is chosen on their mean PSNR).
    :param n_test: test images per task (scored).
    :param grid: factors applied to each method's default lam (log-spaced, 1 = default).
    :param max_iter: cap on each task's reference iteration count (None: no cap).
    :param natural_val: held-out natural images for the validation crops.
    :param natural_test: held-out natural images for the test crops.
    :param color_val: colour photos for the validation crops of the colour tasks.
    :param color_test: colour photos for their test crops.
    :param box_all: solve every task under the box constraint [0, 1]; by default only the tasks
        with a box (compressed sensing and CT) do.
    :param priors: user priors as (name, prior file) pairs; each adds the methods
        ``<name>-admm`` and ``<name>-pgd`` (list them in ``methods`` to run them).
    :param user_images: the user's folder of images, used by every task instead of the built-in
        images (:mod:`.user_images`); ``n_val`` / ``n_test`` then cap the images of each split.
    """

    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    size: int
    n_val: int
    n_test: int
    grid: tuple[float, ...]
    max_iter: int | None = None
    natural_val: tuple[str, ...] = ("coins",)
    natural_test: tuple[str, ...] = ("chelsea",)
    color_val: tuple[str, ...] = ("chelsea",)
    color_test: tuple[str, ...] = ("stereo_motorcycle",)
    box_all: bool = False
    priors: tuple[tuple[str, str], ...] = ()
    user_images: UserImages | None = None

    def __post_init__(self):
        user_families(self.priors)  # names are valid and free
        names = method_names(self.priors)
        unknown = [t for t in self.tasks if t not in TASKS] + [m for m in self.methods if m not in names]
        if unknown:
            raise ValueError(f"unknown task(s)/method(s) {unknown}; tasks: {', '.join(TASKS)}; "
                             f"methods: {', '.join(names)}")
        if self.size < 16 or self.n_val < 1 or self.n_test < 1 or not self.grid:
            raise ValueError("need size >= 16, n_val >= 1, n_test >= 1 and a non-empty grid")

    def with_overrides(self, **changes) -> BenchConfig:
        """A copy with the non-None entries of ``changes`` replaced."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


BENCH_PRESETS: dict[str, BenchConfig] = {
    "quick": BenchConfig(
        tasks=("deblur-b1-n0.02", "cs-4", "ct-60", "denoise-0.05", "denoise-0.1", "denoise-0.2", "denoise-0.3"),
        methods=METHODS, size=64, n_val=1, n_test=1, grid=(10**-0.5, 1.0, 10**0.5), max_iter=25),
    "full": BenchConfig(
        tasks=tuple(TASKS), methods=METHODS, size=128, n_val=2, n_test=2,
        grid=(0.1, 10**-0.5, 1.0, 10**0.5, 10.0)),
}
#: the same dict under its earlier name
PRESETS = BENCH_PRESETS
