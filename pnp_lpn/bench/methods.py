"""Benchmark methods: a denoiser family and how it is used (PnP solver, FBP, or plain).

A method name is ``<family>-<solver>`` (``lpn-admm``, ``bm3d-admm``, ...) or ``fbp``.
Families resolve per domain to a :func:`pnp_lpn.baselines.make_denoiser` name: ``lpn`` is
``lpn-natural-gray`` on natural images and ``lpn-ct`` on CT; ``aelpn`` exists for natural
images only; ``wcrr`` and ``crr`` (the weakly convex and convex ridge regularisers
``wcrr-natural-gray``, ``crr-natural-gray``, one model for every noise level, trained on photos)
run on every domain. On colour (r, g, b) tasks a grey exact-prox prior runs as
:class:`pnp_lpn.OpponentColorPrior` and ``bm3d`` is colour BM3D; ``dncnn`` (grey weights) is
left out there. A user prior file joins as a family of its own (:func:`user_families`, any domain).
On a denoising task each family is applied once, as ``<family>`` with solver "denoise", at
the true noise level.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..baselines import make_denoiser
from ..priors import OpponentColorPrior, ProxPrior
from ..solvers import solve
from ..solvers import ITERATIONS, operator_norm_sq
from ..solvers.weights import denoiser_sigma, descent_lam, map_lam
from .tasks import Split, Task

#: family -> domain -> denoiser name
FAMILIES: dict[str, dict[str, str]] = {
    "lpn": {"natural": "lpn-natural-gray", "color": "lpn-natural-gray", "ct": "lpn-ct"},
    "aelpn": {"natural": "aelpn-natural-gray", "color": "aelpn-natural-gray"},
    "wcrr": {"natural": "wcrr-natural-gray", "color": "wcrr-natural-gray", "ct": "wcrr-natural-gray"},
    "crr": {"natural": "crr-natural-gray", "color": "crr-natural-gray", "ct": "crr-natural-gray"},
    "tv": {"natural": "tv", "color": "tv", "ct": "tv"},
    "bm3d": {"natural": "bm3d", "color": "bm3d", "ct": "bm3d"},
    "dncnn": {"natural": "dncnn", "ct": "dncnn"},
}
METHODS = ("lpn-admm", "lpn-pgd", "aelpn-admm", "aelpn-pgd", "wcrr-admm", "wcrr-pgd", "crr-admm", "crr-pgd", "tv-admm",
           "bm3d-admm", "dncnn-admm", "fbp")
#: noise level a generic denoiser is centred on (sigma_d = noise sqrt(step) = noise / sqrt(lam) at the grid centre)
GENERIC_SIGMA = 0.1


SOLVERS = ("admm", "pgd")


def user_families(priors: tuple[tuple[str, str], ...]) -> dict[str, dict[str, str]]:
    """FAMILIES plus one family per user prior (name, prior file), used on every domain."""
    families = dict(FAMILIES)
    for name, path in priors:
        if name in families or name == "fbp" or not name or name.endswith(tuple(f"-{s}" for s in SOLVERS)):
            raise ValueError(f"prior name {name!r} is empty, taken or ends in a solver name; built-in: "
                             f"{', '.join(FAMILIES)}, fbp")
        families[name] = {"natural": path, "color": path, "ct": path}
    return families


def method_names(priors: tuple[tuple[str, str], ...] = ()) -> tuple[str, ...]:
    """METHODS plus ``<name>-admm`` and ``<name>-pgd`` for every user prior."""
    return METHODS + tuple(f"{name}-{s}" for name, _ in priors for s in SOLVERS)


@dataclass(frozen=True)
class Method:
    """``family`` (a key of FAMILIES, a user prior's name, or "fbp"), ``solver`` ("admm",
    "pgd", "fbp", "denoise") and ``denoisers``: (domain, denoiser name or prior file) pairs."""

    family: str
    solver: str
    denoisers: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.family if self.solver in ("fbp", "denoise") else f"{self.family}-{self.solver}"

    @property
    def tuned(self) -> bool:
        """Whether lam is chosen on the validation split (PnP solvers only)."""
        return self.solver in ("admm", "pgd")


def parse_method(name: str, priors: tuple[tuple[str, str], ...] = ()) -> Method:
    """The :class:`Method` called ``name``; ``priors``: the user priors (name, prior file)."""
    if name not in method_names(priors):
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(method_names(priors))}")
    if name == "fbp":
        return Method("fbp", "fbp")
    family, solver = name.rsplit("-", 1)
    return Method(family, solver, tuple(user_families(priors)[family].items()))


def methods_for(task: Task, names: tuple[str, ...], priors: tuple[tuple[str, str], ...] = ()) -> list[Method]:
    """The methods among ``names`` that apply to ``task`` (one per family for denoising)."""
    methods = [parse_method(n, priors) for n in names]
    if task.is_denoising:
        families = {m.family: m.denoisers for m in methods if m.family != "fbp"}
        return [Method(f, "denoise", d) for f, d in families.items() if task.domain in dict(d)]
    return [m for m in methods if (m.family == "fbp" and task.domain == "ct") or task.domain in dict(m.denoisers)]


def denoiser_name(method: Method, task: Task) -> str:
    return "fbp" if method.family == "fbp" else dict(method.denoisers)[task.domain]


def make_task_denoiser(method: Method, task: Task):
    """The method's denoiser for ``task``: a grey exact-prox prior on a colour task runs on
    the opponent colour channels (:class:`pnp_lpn.OpponentColorPrior`)."""
    prior = make_denoiser(denoiser_name(method, task))
    if task.domain == "color" and isinstance(prior, ProxPrior) and prior.in_channels == 1:
        return OpponentColorPrior(prior)
    return prior


@dataclass
class Outcome:
    """One reconstruction of a split: x (B, C, H, W) and what the solver reported."""

    x: Tensor
    n_iter: int
    time_s: float
    objective: float = math.nan
    stop_reason: str = ""
    history: dict[str, list[float]] = field(default_factory=dict)
    sigma_d: float = math.nan
    notes: list[str] = field(default_factory=list)


def default_lam(method: Method, task: Task, split: Split) -> float:
    """The centre of the lam grid: the value ``solve`` uses when lam is None, i.e.
    noise^2 / sigma_train^2 (sigma_train = 0.1 for generic denoisers and for prior files
    without a recorded training level, :func:`pnp_lpn.solvers.weights.map_lam`), raised to
    ||A||^2 for a gradient method (PGD: descent guarantee, :func:`~pnp_lpn.solvers.weights.descent_lam`)."""
    prior = make_task_denoiser(method, task)
    lam = map_lam(task.noise_sigma, getattr(prior, "sigma_train", None) or GENERIC_SIGMA)
    iteration = ITERATIONS.get(method.solver)
    if iteration is not None and iteration.gradient_step:
        lam = descent_lam(lam, operator_norm_sq(split.operator(), split.x))
    return lam


def reconstruct(method: Method, task: Task, split: Split, lam: float | None, max_iter: int,
                box: tuple[float, float] | None = None, callback: Callable | None = None) -> Outcome:
    """Run ``method`` on ``split`` (lam, box ignored by fbp/denoise). ``time_s`` covers the
    reconstruction only (not building the operator or loading the denoiser); warnings
    raised meanwhile are kept in ``notes``."""
    operator = split.operator()
    prior = None if method.solver == "fbp" else make_task_denoiser(method, task)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        out = _run(method, task, split, operator, prior, lam, max_iter, box, callback)
        out.time_s = time.perf_counter() - t0
    out.notes += [m for m in dict.fromkeys(str(w.message) for w in caught) if m not in out.notes]
    return out


def _denoise(prior, y: Tensor, sigma: float) -> Tensor:
    """Generic denoisers at sigma; exact-prox priors through ``ProxPrior.denoise``: their MAP
    denoiser below the training level, the prox at it, the rescaled prox above it."""
    if not isinstance(prior, ProxPrior):
        return prior(y, sigma)
    if prior.sigma_train is None:
        return prior(y)
    return prior.denoise(y, sigma)


@torch.no_grad()
def _run(method: Method, task: Task, split: Split, operator, prior, lam, max_iter, box, callback) -> Outcome:
    if method.solver == "fbp":
        return Outcome(operator.fbp(split.y), 1, 0.0)
    generic = not isinstance(prior, ProxPrior)
    if method.solver == "denoise":
        return Outcome(_denoise(prior, split.y, task.noise_sigma), 1, 0.0,
                       sigma_d=task.noise_sigma if generic else math.nan)
    res = solve(split.y, operator, prior, method=method.solver, lam=lam, max_iter=max_iter, box=box,
                callback=callback)
    objective = res.history.get("objective", [math.nan])[-1]
    sigma_d = denoiser_sigma(task.noise_sigma, res.step) if generic else math.nan
    return Outcome(res.x, res.n_iter, 0.0, objective, res.stop_reason, res.history, sigma_d, res.notes)
