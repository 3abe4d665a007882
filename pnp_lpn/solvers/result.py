"""``SolveResult``: what :func:`pnp_lpn.solve` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class SolveResult:
    """Outcome of :func:`pnp_lpn.solve`.

    ``history`` maps "objective", "data_fidelity", "regularizer" (priors with an R only),
    "residual", "rel_change", "time" and the iteration's own fields ("dual_residual" for ADMM,
    "box_violation" for ADMM with a box, "restarted" for APGD) to per-iteration batch means;
    ``per_sample`` holds the same quantities as (n_iter, B) tensors.
    """

    x: Tensor
    history: dict[str, list[float]]
    per_sample: dict[str, Tensor]
    converged: bool
    n_iter: int
    stop_reason: str
    wall_time: float
    lam: float
    method: str
    best_iter: int = 0
    notes: list[str] = field(default_factory=list)
    step: float | None = None
