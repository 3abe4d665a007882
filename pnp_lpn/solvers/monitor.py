"""The monitor of a solve: history, best iterate, run-off guard, divergence and stopping tests.

Each iterate z_k (with R(z_k) when the prior has one) is recorded as per-image rows of the
data fidelity 1/2 ||A z_k - y||^2, F(z_k) = data + lam R(z_k), the relative change
||z_k - z_{k-1}|| / ||z_{k-1}|| and the iteration's residuals; images held by the run-off
guard get NaN rows. The solve stops at a non-finite iterate, when every image is held, when a
callback asks, at convergence (relative change and the iteration's primal residual <= tol for
every image still iterating), at a relative change of the mean F <= tol_objective, or when
:class:`RiseMonitor` calls F diverging.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._checks import warn_at_caller
from ..priors.inversion import rms
from .iterations import Iteration, StepOutput
from .result import SolveResult
from .run_off import RunOff

RISE_RTOL = 1e-6  # objective rises below this x its scale are float rounding, not increases
DRIFT_RTOL = 1e-3  # "diverging" also needs the objective this x its scale above its lowest value


@dataclass
class Stopping:
    """When a solve stops: ``max_iter``, ``tol``, ``tol_objective``, ``patience`` (see
    :func:`pnp_lpn.solve`), a ``callback(k, z, info)`` returning True to stop, a progress bar;
    no convergence, objective or divergence test in the first ``continuation`` iterations
    (their prior steps denoise at raised levels: another problem)."""

    max_iter: int
    tol: float
    tol_objective: float | None = None
    patience: int = 5
    callback: Callable[[int, Tensor, dict], bool | None] | None = None
    progress: bool = False
    continuation: int = 0


class RiseMonitor:
    """The divergence test on the batch-mean objective F_k.

    With s_k = mean data fidelity + lam mean |R| (the scale of F's terms), F_k > F_{k-1} +
    RISE_RTOL s_k counts as an increase (smaller rises are float rounding of F's sums), and the
    solve is diverging after ``patience`` increases in a row that leave F more than
    DRIFT_RTOL s_k above the lowest value it had. A converging ADMM can approach its limit from
    below, F rising by a shrinking amount; that is not divergence. A diverging iteration leaves
    the band within a few steps (PGD with a step above 1/||A||^2 grows F geometrically).
    """

    def __init__(self, patience: int):
        self.patience, self.increases, self.prev, self.lowest = patience, 0, None, math.inf

    def diverging(self, obj: float, scale: float) -> bool:
        """Record F_k = ``obj`` with scale s_k = ``scale``; True when the solve is diverging."""
        rose = self.prev is not None and obj - self.prev > RISE_RTOL * scale
        self.increases = self.increases + 1 if rose else 0
        self.prev, self.lowest = obj, min(self.lowest, obj)
        return self.increases >= self.patience and obj - self.lowest > DRIFT_RTOL * scale


class BestIterate:
    """Per image the iterate with the lowest objective (with no objective: the latest one)."""

    def __init__(self, z0: Tensor, has_reg: bool):
        self.x, self.obj, self.iter, self.has_reg = z0.clone(), torch.full((z0.shape[0],), math.inf), 0, has_reg

    def update(self, k: int, z: Tensor, obj: Tensor, held: Tensor) -> None:
        # not(obj >= best): an unknown (NaN) objective on either side keeps the latest iterate
        better = (~(obj.cpu() >= self.obj) if self.has_reg else torch.ones_like(self.obj, dtype=torch.bool)) & ~held
        self.obj = torch.where(better, obj.cpu(), self.obj)
        self.x[better.to(z.device)] = z[better.to(z.device)]
        self.iter = k if better.any() else self.iter


class Monitor:
    """Watches an :class:`~.iterations.Iteration` run: :meth:`before_step`, then
    :meth:`observe` each step's output (True: stop), then :meth:`result`."""

    def __init__(self, iteration: Iteration, lam: float, has_reg: bool, stopping: Stopping, run_off: RunOff,
                 notes: list[str]):
        self.it, self.lam, self.has_reg, self.stopping, self.run_off, self.notes = (
            iteration, lam, has_reg, stopping, run_off, notes)
        self.keys = (["data_fidelity", "residual", "rel_change", "time"]
                     + (["regularizer", "objective"] if has_reg else []) + list(iteration.history_fields))
        self.rows: dict[str, list[Tensor]] = {k: [] for k in self.keys}
        self.best, self.rises = BestIterate(iteration.z, has_reg), RiseMonitor(int(stopping.patience))
        self.reason, self.converged, self.prev_obj, self.z_prev = "max_iter reached", False, None, iteration.z
        self.t0 = time.perf_counter()
        self.bar = tqdm(range(1, stopping.max_iter + 1), disable=not stopping.progress,
                        desc=f"PnP-{iteration.name.upper()}")

    def before_step(self) -> None:
        self.z_prev = self.it.z
        self.run_off.before_step()

    def observe(self, k: int, out: StepOutput) -> bool:
        """Record iterate k; True when the solve stops there (``reason`` says why)."""
        live = ~self.run_off.held.mask
        if not torch.isfinite(out.z[live.to(out.z.device)]).all():
            self.reason = f"diverged: non-finite iterate at iteration {k}; returning the best iterate"
            return True
        if self.run_off.check(k, out.z, self.z_prev):
            self.reason = "; ".join(self.run_off.messages)
            return True
        row = self._record(out)
        obj = row.get("objective", row["data_fidelity"])
        self.best.update(k, out.z, obj, self.run_off.held.mask)
        self._show(row, obj)
        return self._stops(k, out, row, obj)

    def _record(self, out: StepOutput) -> dict[str, Tensor]:
        """The row of iterate z: data fidelity, relative change, residuals, time, R and F;
        NaN for held images."""
        z, y = out.z, self.it.y
        Az = out.Az if out.Az is not None else self.it.physics.A(z)
        data = 0.5 * (Az - y).flatten(1).pow(2).sum(1)
        rel_change = rms(z - self.z_prev) / rms(self.z_prev).clamp_min(1e-12)
        row = {"data_fidelity": data, "rel_change": rel_change, **out.residuals,
               "time": torch.full_like(data, time.perf_counter() - self.t0)}
        if self.has_reg:
            row.update(regularizer=out.reg, objective=data + self.lam * out.reg)
        gone = self.run_off.held.mask.to(data.device)  # held images have no iterate from here on
        row = {key: torch.where(gone, torch.full_like(v, math.nan), v) if key != "time" else v
               for key, v in row.items()}
        for key in self.keys:
            self.rows[key].append(row[key].detach().cpu())
        return row

    def _show(self, row: dict[str, Tensor], obj: Tensor) -> None:
        """The progress bar: the objective when known, else the data fidelity; the largest change."""
        if not self.stopping.progress:
            return
        shown = obj if bool(torch.isfinite(obj).any()) else row["data_fidelity"]
        live = ~self.run_off.held.mask.to(obj.device)
        self.bar.set_postfix({"obj" if shown is obj and self.has_reg else "data": f"{float(shown.nanmean()):.4g}",
                              "change": f"{float(row['rel_change'][live].max()):.2e}"})

    def _stops(self, k: int, out: StepOutput, row: dict[str, Tensor], obj: Tensor) -> bool:
        """The callback, convergence and objective tests after iterate k."""
        s = self.stopping
        if s.callback is not None and s.callback(k, out.z, {key: row[key] for key in self.keys}):
            self.reason = f"stopped by callback at iteration {k}"
            return True
        if k <= s.continuation:
            return False
        rel_change, gone = row["rel_change"], self.run_off.held.mask.to(obj.device)
        primal = self.it.primal_residual(out, rel_change)
        if bool(((rel_change <= s.tol) & (primal <= s.tol) | gone).all()):
            self.reason, self.converged = f"relative change and residual <= tol={s.tol:g}", True
            return True
        return self.has_reg and self._objective_stops(k, row, obj)

    def _objective_stops(self, k: int, row: dict[str, Tensor], obj: Tensor) -> bool:
        """Relative change of the mean F <= tol_objective, or F diverging (:class:`RiseMonitor`;
        not for iterations whose F may rise)."""
        mean_obj, tol_objective = float(obj.nanmean()), self.stopping.tol_objective
        if (tol_objective is not None and self.prev_obj is not None
                and abs(mean_obj - self.prev_obj) <= tol_objective * abs(self.prev_obj)):
            self.reason, self.converged = f"relative objective change <= tol_objective={tol_objective:g}", True
            return True
        scale = float(row["data_fidelity"].nanmean()) + self.lam * float(row["regularizer"].abs().nanmean())
        if not self.it.objective_may_rise and self.rises.diverging(mean_obj, scale):
            self.reason = (f"diverging: objective increased {self.stopping.patience} times in a row (iteration {k}), "
                           f"to {mean_obj - self.rises.lowest:.3g} above its lowest; returning the best iterate")
            return True
        self.prev_obj = mean_obj
        return False

    def result(self) -> SolveResult:
        """The returned x (per image: the held iterate, else the best one after divergence, else
        the last), the history and the stop."""
        diverged = self.reason.startswith("diverg")
        if diverged:
            warn_at_caller(f"solve: {self.reason}")
        reason, ran_off = self.reason, self.run_off.messages
        if ran_off and not reason.startswith("ran off"):
            reason = "; ".join([reason] + ran_off)
        z, held = self.it.z, self.run_off.held
        mask = held.mask.to(z.device).view(-1, *[1] * (z.ndim - 1))
        x = torch.where(mask, held.x, self.best.x if diverged else z)
        batch = z.shape[0]
        per_sample = {key: torch.stack(v) if v else torch.empty(0, batch) for key, v in self.rows.items()}
        history = {key: [float(t.nanmean()) for t in v] for key, v in self.rows.items()}
        n = len(self.rows["time"])
        return SolveResult(x, history, per_sample, self.converged and not ran_off, n, reason,
                           time.perf_counter() - self.t0, self.lam, self.it.name,
                           self.best.iter if diverged else n, self.notes)
