"""Benchmark harness (``pnp-lpn bench``): LPN / AE-LPN against TV, BM3D, DnCNN and FBP on
deblurring, compressed sensing, sparse-view CT and denoising, with lam chosen on a
validation split. See docs/benchmarks.md."""

from .methods import METHODS, Method
from .presets import BENCH_PRESETS, PRESETS, BenchConfig
from .protocol import BenchResult, Record, run_benchmark
from .report import write_all
from .tasks import TASKS, Task

__all__ = ["BENCH_PRESETS", "METHODS", "TASKS", "BenchConfig", "BenchResult", "Method", "Record", "Task",
           "run_benchmark", "write_all"]
