"""The generic PnP loop: an iteration steps, a monitor watches (no method-specific code)."""

from __future__ import annotations

from .iterations import Iteration
from .monitor import Monitor
from .result import SolveResult


def run(iteration: Iteration, monitor: Monitor) -> SolveResult:
    """Step ``iteration`` until ``monitor`` stops it (or its ``max_iter`` is reached)."""
    for k in monitor.bar:
        monitor.before_step()
        if monitor.observe(k, iteration.step()):
            break
    return monitor.result()
