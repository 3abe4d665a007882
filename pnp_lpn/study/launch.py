"""Where a study runs: one process, or one of WORLD_SIZE processes started by torchrun.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; each process then takes every WORLD_SIZE-th
batch and runs on GPU LOCAL_RANK when CUDA is available, else on the CPU. The processes only
wait for each other (a gloo barrier; no tensor is exchanged), so gloo serves GPU runs too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch

#: how long a finished process waits at the barrier for the others (a study can take hours)
BARRIER_TIMEOUT = timedelta(days=2)


@dataclass(frozen=True)
class Launch:
    """This process's share of a study."""

    rank: int
    world_size: int
    device: torch.device
    started_group: bool = False

    def owns(self, batch_index: int) -> bool:
        """Whether this process solves batch ``batch_index`` (round robin over the processes)."""
        return batch_index % self.world_size == self.rank


def study_device() -> torch.device:
    """cuda:LOCAL_RANK when CUDA is available, else the CPU (build operators and priors here)."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    return torch.device("cpu")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def launch() -> Launch:
    """This process's rank and device; joins the process group when started by torchrun."""
    world, rank = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0)
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is not in [0, WORLD_SIZE={world})")
    started = False
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
            started = True
    return Launch(rank, world, study_device(), started)


def wait_for_all(launch: Launch) -> None:
    """Block until every process has reached this point (no-op for one process)."""
    if launch.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def close(launch: Launch) -> None:
    """Leave the process group if :func:`launch` joined it."""
    if launch.started_group:
        import torch.distributed as dist

        dist.destroy_process_group()
