"""The weights of a PnP solve: lam, the step tau, the prox weight t and the denoiser's sigma.

The problem is F(x) = 1/2 ||A x - y||^2 + lam R(x).

- **lam (MAP)**: a prox trained to denoise noise of level s_t is the prox of
  R ~ s_t^2 (-log p), and the MAP problem for measurement noise s_n is
  1/2 ||A x - y||^2 + s_n^2 (-log p), so lam = s_n^2 / s_t^2 (:func:`map_lam`). A generic
  denoiser has no s_t: given its level s_d, the same rule gives lam = s_n^2 / s_d^2.
- **step** tau: the gradient step of PGD/APGD, 1/penalty of ADMM; default 1/lam.
- **prox weight** t = tau lam: the prior step is prox_{t R} (t = 1 at the default step: one
  call of the prior).
- **denoiser sigma**: a generic denoiser stands for prox_{t R} with R ~ s_n^2 / lam (-log p),
  i.e. a denoiser at s_d^2 = t s_n^2 / lam = tau s_n^2: s_d = s_n sqrt(tau).
- **descent**: a proximal gradient step decreases F when tau <= 1/||A||^2; at the default
  step that asks lam >= ||A||^2 (:func:`descent_lam`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_positive, warn_at_caller
from .operator_norm import operator_norm_sq

LAM_IGNORES_DATA = 1e3  # lam above this x ||A||^2 leaves the data almost no weight: warn
DESCENT_RTOL = 1e-3  # ||A||^2 from a power iteration is not exact: tolerance of the descent rules


@dataclass(frozen=True)
class Weights:
    """lam, the step tau, the prox weight t of the prior step and the denoiser level s_d."""

    lam: float
    step: float
    prox_weight: float
    denoiser_sigma: float | None


def map_lam(noise_sigma: float, prior_sigma: float) -> float:
    """lam = s_n^2 / s_t^2: the MAP weight for noise ``noise_sigma`` and a prior trained (or
    a denoiser run) at ``prior_sigma``."""
    return noise_sigma**2 / prior_sigma**2


def descent_lam(lam: float, norm_sq: float) -> float:
    """lam raised to ||A||^2 when below it, so that the default step 1/lam is a descent step."""
    return norm_sq if lam < norm_sq * (1 - DESCENT_RTOL) else lam


def denoiser_sigma(noise_sigma: float, step: float) -> float:
    """s_d = s_n sqrt(tau): the level at which a generic denoiser stands for prox_{tau lam R}."""
    return noise_sigma * math.sqrt(step)


def solve_weights(lam: float, step: float | None, noise_sigma: float | None, sigma_d: float | None) -> Weights:
    """:class:`Weights` of a solve: tau = ``step`` (default 1/lam), t = tau lam (exactly 1 at
    the default step or within 1e-9 of it), s_d = ``sigma_d`` or s_n sqrt(tau) (None when
    neither is known)."""
    tau = 1.0 / lam if step is None else float(step)
    t = 1.0 if step is None or abs(tau * lam - 1) <= 1e-9 else tau * lam
    if sigma_d is None and noise_sigma is not None:
        sigma_d = denoiser_sigma(noise_sigma, tau)
    return Weights(lam, tau, t, sigma_d)


def prior_sigma(prior, sigma_d: float | None) -> tuple[float, str]:
    """(s_t, its name) of the MAP rule: the prior's ``sigma_train``, else the given denoiser
    level; ValueError when neither is known."""
    s_t = getattr(prior, "sigma_train", None)
    if s_t is not None:
        return s_t, "sigma_train"
    if sigma_d is not None:
        return check_positive(sigma_d, "denoiser_sigma"), "denoiser_sigma"
    raise ValueError("cannot derive lam (the prior has no training noise level; pass denoiser_sigma=... for a "
                     "generic denoiser); or pass lam=..., e.g. lam=noise_sigma**2 / prior_sigma**2")


def default_lam(prior, noise_sigma: float, sigma_d: float | None, notes: list[str]) -> float:
    """The MAP lam (:func:`map_lam`) of ``prior`` for noise ``noise_sigma``, stated in ``notes``."""
    s_t, name = prior_sigma(prior, sigma_d)
    lam = map_lam(noise_sigma, s_t)
    notes.append(f"lam = noise_sigma^2 / {name}^2 = {noise_sigma:g}^2 / {s_t:g}^2 = {lam:.4g} (MAP)")
    return lam


def raise_for_descent(lam: float, physics, x_like: Tensor, notes: list[str], method: str = "pgd") -> float:
    """:func:`descent_lam` with ||A||^2 of ``physics``; a raise is stated in ``notes``."""
    norm_sq = operator_norm_sq(physics, x_like)
    raised = descent_lam(lam, norm_sq)
    if raised != lam:
        notes.append(f"{method.upper()}: lam raised to ||A||^2 = {norm_sq:.4g} so that the step 1/lam guarantees "
                     "descent")
    return raised


def warn_large_lam(lam: float, physics, x_like: Tensor, notes: list[str]) -> None:
    """Warn when a given lam exceeds LAM_IGNORES_DATA x ||A||^2: the data term's curvature
    (at most ||A||^2) is then below 0.1% of lam's, so y barely changes the result."""
    norm_sq = operator_norm_sq(physics, x_like)
    if lam > LAM_IGNORES_DATA * norm_sq:
        _warn_and_note(f"solve: lam={lam:.4g} is more than {LAM_IGNORES_DATA:g} x ||A||^2 = {norm_sq:.4g}: the data "
                       "term has almost no weight, so the result ignores y; the MAP choice is lam = noise_sigma^2 / "
                       "sigma_train^2 (the default when lam is not given)", notes)


def warn_non_descent_step(step: float, physics, x_like: Tensor, notes: list[str], method: str = "pgd") -> None:
    """Warn when a gradient step exceeds 1/||A||^2 (up to the power iteration's accuracy)."""
    norm_sq = operator_norm_sq(physics, x_like)
    if step * norm_sq > 1 + DESCENT_RTOL:
        _warn_and_note(f"{method.upper()} with step {step:.4g} > 1/||A||^2 = {1 / norm_sq:.4g}: descent is not "
                       "guaranteed and the objective may increase (use lam >= ||A||^2, step=1/||A||^2 or "
                       "method='admm')", notes)


def check_prox_weight(weights: Weights, max_weight: float) -> None:
    """ValueError when the prior step needs prox_{tR} with t above what the prior provides."""
    t, lam = weights.step * weights.lam, weights.lam
    if t > max_weight * (1 + 1e-9):
        raise ValueError(f"step={weights.step:.4g} needs the prox of t R with t = step * lam = {t:.4g} > "
                         f"{max_weight:.4g}, which this prior does not provide; use step <= {max_weight:.4g}/lam = "
                         f"{max_weight / lam:.4g}")


def _warn_and_note(msg: str, notes: list[str]) -> None:
    warn_at_caller(msg)
    notes.append(msg)


def operator_noise_sigma(physics) -> float | None:
    """The Gaussian noise level of a deepinv physics, or None if unknown/zero."""
    sigma = getattr(getattr(physics, "noise_model", None), "sigma", None)
    if sigma is None:
        return None
    sigma = float(torch.as_tensor(sigma).float().mean())
    return sigma if sigma > 0 else None


def estimated_noise_sigma(physics, y: Tensor, notes: list[str]) -> float:
    """The noise level of y estimated from y: the operator's ``estimate_noise_sigma(y)`` when it
    has one, else :func:`pnp_lpn.noise.estimate_noise_sigma` for image-shaped y (median
    absolute Haar diagonal detail / 0.6745); the value used goes to ``notes``."""
    from ..noise import estimate_noise_sigma

    try:
        estimate = getattr(physics, "estimate_noise_sigma", None)
        sigma = estimate(y) if estimate is not None else estimate_noise_sigma(y)
    except ValueError as e:
        raise ValueError(f"cannot derive lam: the operator has no noise_sigma and {e}; pass lam=..., or build the "
                         "operator with noise_sigma=...") from e
    if not sigma > 0:
        raise ValueError("cannot derive lam: the operator has no noise_sigma and y looks noise-free (estimated noise "
                         "level 0); pass lam=..., or build the operator with noise_sigma=...")
    notes.append(f"noise_sigma = {sigma:.4g} estimated from y (median |Haar diagonal detail| / 0.6745, "
                 "pnp_lpn.noise); pass lam=... or build the operator with noise_sigma=... to override")
    return sigma
