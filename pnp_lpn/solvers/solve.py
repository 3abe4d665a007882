"""``solve(y, operator, prior)``: PnP-ADMM / PnP-PGD / PnP-APGD with a monitored objective.

The problem stated and (for exact-prox priors) solved is

    F(x) = 1/2 ||A x - y||^2 + lam * R(x),

where R is the prior's learned regulariser. By default ``lam`` is also the ADMM penalty and
the inverse (A)PGD step, so that the prior step is one call of f = prox_R; ``step`` sets them
apart (the prior step becomes the prox of (step lam) R, see :mod:`.iterations`). lam, the
step, the prox weight and a generic denoiser's noise level follow the rules of
:mod:`.weights` (MAP lam = s_n^2 / s_t^2 when lam is not given). The iteration
(:mod:`.iterations`) steps and the monitor (:mod:`.monitor`) watches, in the loop of
:mod:`.loop`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..priors.base import ProxPrior
from .checks import AUTO, check_box, check_continuation, check_inputs, check_stopping
from .iterations import ITERATIONS
from .loop import run
from .monitor import DRIFT_RTOL, RISE_RTOL, Monitor, RiseMonitor, Stopping
from .operator_norm import operator_norm_sq
from .prior_step import CONTINUATION_START, ScaledProxStep, can_continue, make_prior_step
from .result import SolveResult
from .run_off import RANGE_FACTOR, SCALE_FRACTION, HeldImages, RangeGuard, RunOff
from .weights import (LAM_IGNORES_DATA, Weights, check_prox_weight, default_lam, estimated_noise_sigma,
                      operator_noise_sigma, raise_for_descent, solve_weights, warn_large_lam, warn_non_descent_step)

__all__ = ["AUTO", "DRIFT_RTOL", "LAM_IGNORES_DATA", "RANGE_FACTOR", "RISE_RTOL", "SCALE_FRACTION", "HeldImages",
           "RangeGuard", "RiseMonitor", "ScaledProxStep", "SolveResult", "estimated_noise_sigma",
           "operator_noise_sigma", "operator_norm_sq", "solve"]


def initial_point(physics, y: Tensor) -> Tensor:
    """The operator's own ``initial_point(y)`` (FBP for CT, least squares for CS) or A^T y."""
    start = getattr(physics, "initial_point", None)
    return start(y) if start is not None else physics.A_adjoint(y)


def choose_box(box, physics, notes: list[str]) -> tuple[float, float] | None:
    """The box of ``box='auto'``: the operator's ``default_box`` (None: no box); the choice
    goes to ``notes``. (A prior's ``data_range`` is the range of its training targets, e.g.
    [-0.5, 2] with intensity offsets, not the images' range, so it does not set the box.)"""
    if not (isinstance(box, str) and box == AUTO):
        return box
    chosen = getattr(physics, "default_box", None)
    if chosen is None:
        return None
    chosen = (float(chosen[0]), float(chosen[1]))
    notes.append(f"box = ({chosen[0]:g}, {chosen[1]:g}) from {type(physics).__name__}.default_box: iterates are "
                 "kept in the image range (box=None turns this off)")
    return chosen


def choose_continuation(continuation: int | str, physics, prior, sigma_d: float | None, max_iter: int,
                        notes: list[str]) -> int:
    """K, the continued prior steps: a given K, or for ``'auto'`` the operator's
    ``default_continuation`` (0 when it has none or the prior cannot denoise at other levels),
    at most 4/5 of max_iter; the choice goes to ``notes``."""
    if continuation == AUTO:
        k = min(int(getattr(physics, "default_continuation", 0) or 0), max_iter * 4 // 5)
        if k and not can_continue(prior, sigma_d):
            notes.append(f"no continuation ({type(physics).__name__}.default_continuation): the prior does not "
                         "denoise at other noise levels")
            return 0
        source = f"{type(physics).__name__}.default_continuation"
    else:
        k, source = continuation, "continuation"
    if k:
        notes.append(f"continuation ({source}): the first {k} prior steps denoise at {CONTINUATION_START:g} x down "
                     "to 1 x the step's noise level (continuation=0 turns this off)")
    return k


@torch.no_grad()
def solve(
    y: Tensor,
    operator,
    prior,
    method: str = "admm",
    lam: float | None = None,
    max_iter: int = 100,
    tol: float = 1e-5,
    x0: Tensor | None = None,
    callback: Callable[[int, Tensor, dict], bool | None] | None = None,
    progress: bool = False,
    box: tuple[float, float] | bool | str | None = AUTO,
    denoiser_sigma: float | None = None,
    tol_objective: float | None = None,
    patience: int = 5,
    step: float | None = None,
    continuation: int | str | None = AUTO,
) -> SolveResult:
    """Reconstruct x from y = A x + noise by PnP-ADMM, PnP-PGD or PnP-APGD.

    :param y: measurements (B, ...) matching ``operator``.
    :param operator: a deepinv LinearPhysics (e.g. from :mod:`pnp_lpn.operators`).
    :param prior: an LPN/AE-LPN (objective monitored), any deepinv denoiser, or a callable.
    :param method: "admm" (penalty 1/step), "pgd" (gradient step ``step``) or "apgd" (accelerated
        proximal gradient, FISTA with monotone restart: momentum z_k + beta_k (z_k - z_{k-1})
        before the gradient step, and a step that would raise F(z) is rejected and restarts
        the momentum, so F never rises; it needs a prior with an R, e.g. ``pl.RidgePrior``,
        whose solved prox takes any step, or an LPN with step <= 1/lam); see :mod:`.iterations`.
    :param lam: weight of R in F; default from the noise levels (:mod:`.weights`): for a
        generic denoiser pass ``denoiser_sigma`` instead. An operator without a noise level
        gets one estimated from y (:func:`.weights.estimated_noise_sigma`, stated in ``result.notes``).
        A given lam above 1000 x ||A||^2 (the data term then has almost no weight) warns.
    :param max_iter: iteration limit.
    :param tol: stop when the relative change ||z_k - z_{k-1}|| / ||z_{k-1}|| and the
        iteration's relative residual (ADMM: primal ||x_k - z_k|| / ||z_k||; APGD: the
        prox-gradient fixed-point residual ||u_k - v_k|| / ||z_k||) are <= tol for every image.
    :param x0: start; default the operator's ``initial_point(y)`` (FBP for CT, least squares for
        compressed sensing), else A^T y.
    :param callback: called as callback(k, z, info) after each iteration; True stops.
    :param box: (lo, hi), e.g. (0, 1): the constraint lo <= x <= hi. ADMM solves min F(x) s.t. the
        box, as a third (projection) block (:mod:`.iterations`): the returned x is the prior's
        output, where F is known, and meets the box up to the primal residual ("box_violation" in
        the history is its RMS distance to the box). PGD and APGD clip each iterate after the prior; R is
        then unknown (NaN) at iterations where the clip moved an image. None or False: no box.
        "auto" (default): the operator's ``default_box`` (compressed sensing, inpainting:
        (0, 1); the other operators: none), stated in ``result.notes``.
    :param denoiser_sigma: noise level passed to a generic denoiser; default noise_sigma sqrt(step)
        (noise_sigma / sqrt(lam) at the default step).
    :param tol_objective: also stop when the relative objective change is <= this (>= 0).
    :param patience: (integer >= 1) stop after this many consecutive objective increases that
        leave F above its lowest value (:class:`.monitor.RiseMonitor`: rises below 1e-6 of the scale of
        F's terms are rounding, and F must end 1e-3 of that scale above its lowest) (PGD with
        step <= 1/||A||^2 and APGD never increase; not tested for ADMM with a box, whose iterates approach
        the box from outside, where F may lie lower) or at the first non-finite iterate; the best
        iterate (lowest objective) is returned. Run-off (:class:`.run_off.RangeGuard`): a learned R can
        be unbounded below outside its training range, so the objective may fall while the
        iterate runs off. For a prior with a ``data_range`` (lo, hi) (every shipped LPN), an
        image whose iterate leaves [lo - w/2, hi + w/2], w = hi - lo, is held at its previous
        iterate (:class:`.run_off.HeldImages`; "ran off" in ``stop_reason``) while the rest of the batch
        goes on; for other priors an iterate beyond ``RANGE_FACTOR`` (10) x max(1, max |x0|,
        max |x_1|) only warns (and adds a note).
    :param step: tau, the step of the data term: the (A)PGD gradient step, or 1/penalty of ADMM.
        Default 1/lam, where the prior step is one call of the prior. A shorter step makes it
        the prox of t R with t = tau lam < 1: exact-prox priors solve it as a convex problem
        warm-started at the previous iteration (:meth:`ProxPrior.scaled_prox_with_regularizer`;
        several prior evaluations per iteration), generic denoisers are called at
        noise_sigma sqrt(tau). PGD with step <= 1/||A||^2 decreases F monotonically at any lam
        (at the default step (A)PGD raises a MAP lam to ||A||^2 for that; a longer step warns).
        tau lam > 1 is refused for exact-prox priors.
    :param continuation: K, the number of first iterations whose prior step denoises at a raised
        noise level, c_k s with c_k = 5^(1 - k/K) falling to 1 (s the step's level: sigma_train
        sqrt(tau lam) for an exact-prox prior, whose step is then its ``level_prox``; sigma_d for
        a deepinv denoiser; :mod:`.prior_step`), before the stated problem is stepped. These
        iterations are recorded but not tested for convergence or divergence, and F is NaN
        there unless the prior's R is explicit (ridge priors). 0 or None: off. "auto"
        (default): the operator's ``default_continuation`` (compressed sensing and inpainting:
        20, their starts are far from any image; the other operators: none), at most 4/5 of
        max_iter (a short run gains most from it), stated in ``result.notes``.

    Any floating dtype of y works: the solve runs in y's dtype (float32 for float16 /
    bfloat16 y), x0 is cast to it, a prior computes in its own parameters' dtype, and
    ``result.x`` comes back in y's dtype.
    """
    check_stopping(max_iter, tol, tol_objective, patience)
    continuation = check_continuation(continuation, max_iter)
    box, user_dtype = check_box(box), getattr(y, "dtype", None)
    y, x_adj, x0 = check_inputs(y, operator, prior, method, lam, x0, step)
    notes: list[str] = []
    if y.dtype != user_dtype:
        notes.append(f"y is {user_dtype}: solved in {y.dtype}, result.x returned as {user_dtype}")
    box = choose_box(box, operator, notes)
    x0 = initial_point(operator, y) if x0 is None else x0
    iteration_class = ITERATIONS[method]
    weights = _weights(operator, prior, y, x_adj, method, (lam, step, denoiser_sigma), notes)
    continuation = choose_continuation(continuation, operator, prior, weights.denoiser_sigma, max_iter, notes)
    prior_step, has_reg = make_prior_step(prior, weights.denoiser_sigma, weights.prox_weight, continuation)
    if not has_reg:
        if iteration_class.needs_objective:
            raise ValueError(f"method={method!r} needs the objective, so a prior with a regulariser (a pnp_lpn "
                             "prior); use method='admm' or 'pgd' for a generic denoiser")
        notes.append("prior has no regulariser: objective and regularizer are not monitored")
    guard = RangeGuard(getattr(prior, "data_range", None), x0)
    guard.check_scale(x0, notes)
    iteration = iteration_class(operator, y, prior_step, weights.step, x0, box, lam=weights.lam)
    stopping = Stopping(max_iter, tol, tol_objective, patience, callback, progress, continuation)
    res = run(iteration, Monitor(iteration, weights.lam, has_reg, stopping, RunOff(guard, iteration, notes), notes))
    res.step = weights.step
    if isinstance(prior_step, ScaledProxStep) and (prior_step.t != 1.0 or prior.inner_solve):  # not a plain prox
        res.notes.append(prior_step.note())
    res.x = res.x.to(user_dtype)
    return res


def _weights(physics, prior, y: Tensor, x_like: Tensor, method: str,
             given: tuple[float | None, float | None, float | None], notes: list[str]) -> Weights:
    """The solve's :class:`~.weights.Weights` from the given (lam, step, denoiser_sigma): lam
    by the MAP rule when not given (raised to ||A||^2 for a gradient method at its default
    step), with the warnings and notes of :mod:`.weights`; ValueError for a prox weight the
    prior does not provide."""
    lam, step, sigma_d = given
    gradient_step = ITERATIONS[method].gradient_step
    s_n = operator_noise_sigma(physics)
    if lam is None:
        s_n = s_n if s_n is not None else estimated_noise_sigma(physics, y, notes)
        lam = default_lam(prior, s_n, sigma_d, notes)
        if gradient_step and step is None:
            lam = raise_for_descent(lam, physics, x_like, notes, method)
    else:
        warn_large_lam(float(lam), physics, x_like, notes)
    weights = solve_weights(float(lam), step, s_n, sigma_d)
    exact = isinstance(prior, ProxPrior)
    check_prox_weight(weights, prior.max_prox_weight() if exact else math.inf)
    if gradient_step and exact:
        warn_non_descent_step(weights.step, physics, x_like, notes, method)
    return weights
