"""``solve(y, operator, prior)``: PnP-ADMM / PnP-PGD with a monitored objective.

The problem stated and (for exact-prox priors) solved is

    F(x) = 1/2 ||A x - y||^2 + lam * R(x),

where R is the prior's learned regulariser. By default ``lam`` is also the ADMM penalty and
the inverse PGD step, so that the prior step is one call of f = prox_R; ``step`` sets them
apart (the prior step becomes the prox of (step lam) R, see :mod:`.iterations`).

When ``lam`` is not given it follows from MAP reasoning: a prox trained to denoise noise of
level s_t is prox of R ~ s_t^2 (-log p), and the MAP problem for measurement noise s_n is
1/2 ||A x - y||^2 + s_n^2 (-log p), so lam = s_n^2 / s_t^2. Any other deepinv denoiser (or
callable v -> z) is called at the matching noise level s_d = s_n sqrt(step) (= s_n / sqrt(lam)
at the default step); such priors have no R, so no objective. For them the same rule runs
the other way: given ``denoiser_sigma`` = s_d and no lam, lam = s_n^2 / s_d^2.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._checks import check_image, check_positive, compute_dtype, warn_at_caller
from ..priors.base import ProxPrior
from .iterations import METHODS, PriorStep, rms

RANGE_FACTOR = 10.0  # without a known data range: iterates beyond this x the start's scale get a warning
RISE_RTOL = 1e-6  # objective rises below this x its scale are float rounding, not increases
DRIFT_RTOL = 1e-3  # "diverging" also needs the objective this x its scale above its lowest value
LAM_IGNORES_DATA = 1e3  # lam above this x ||A||^2 leaves the data almost no weight: warn
SCALE_FRACTION = 0.5  # a start with more of its values outside the prior's trusted range: wrong scale
AUTO = "auto"  # solve's default box: the operator's default_box (see _choose_box)


@dataclass
class SolveResult:
    """Outcome of :func:`solve`.

    ``history`` maps "objective", "data_fidelity", "regularizer" (priors with an R only),
    "residual", "rel_change", "time" (and "dual_residual" for ADMM, "box_violation" for ADMM
    with a box) to per-iteration batch means; ``per_sample`` holds the same quantities as
    (n_iter, B) tensors.
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


def operator_noise_sigma(physics) -> float | None:
    """The Gaussian noise level of a deepinv physics, or None if unknown/zero."""
    sigma = getattr(getattr(physics, "noise_model", None), "sigma", None)
    if sigma is None:
        return None
    sigma = float(torch.as_tensor(sigma).float().mean())
    return sigma if sigma > 0 else None


def operator_norm_sq(physics, x_like: Tensor, n_iter: int = 50) -> float:
    """||A||^2: the operator's own ``norm_sq()`` if it has one, else a seeded power
    iteration on A^T A, cached on the operator object."""
    if hasattr(physics, "norm_sq"):
        return float(physics.norm_sq())
    cached = getattr(physics, "_pnp_lpn_norm_sq", None)
    if cached is not None:
        return cached
    g = torch.Generator(device="cpu").manual_seed(0)
    v = torch.randn(x_like[:1].shape, generator=g, dtype=x_like.dtype).to(x_like.device)
    norm = 0.0
    for _ in range(n_iter):
        v = v / v.norm()
        w = physics.A_adjoint(physics.A(v))
        norm = float((v * w).sum())
        v = w
    physics._pnp_lpn_norm_sq = norm
    return norm


class ScaledProxStep:
    """v -> (prox_{tR}(v), R) of an exact-prox prior for 0 < t < max_prox_weight (t < 1 for an
    LPN; any t for the solved prox of a ridge prior), each solve warm-started
    at the previous one's w; ``inner_iters`` counts the solver iterations.

    The warm start already solves the new problem up to ||v - v_prev||, so the inner
    tolerance is a tenth of the smallest nonzero RMS change over the batch (at most 1e-4, at
    least a few float eps): a fixed tolerance would stop the outer iteration as soon as its
    steps fell below it. An image whose v did not move (held by the run-off guard) is already
    solved by its warm start and does not set the tolerance.
    """

    def __init__(self, prior: ProxPrior, t: float):
        self.prior, self.t, self.w, self.v, self.inner_iters = prior, t, None, None, 0
        self.error_bound = 0.0  # largest certified RMS distance of a step's output to the exact prox

    def __call__(self, v: Tensor) -> tuple[Tensor, Tensor]:
        floor = 10 * torch.finfo(v.dtype).eps * float(rms(v).max())
        moved = rms(v - self.v) if self.v is not None else v.new_zeros(0)
        change = 0.1 * float(moved[moved > 0].min()) if bool((moved > 0).any()) else 1e-4
        res = self.prior.scaled_prox_with_regularizer(v, self.t, w0=self.w, tol=max(min(change, 1e-4), floor))
        self.w, self.v, self.inner_iters = res.w, v, self.inner_iters + res.n_iter
        if res.error_bound is not None:
            self.error_bound = max(self.error_bound, float(res.error_bound.max()))
        return res.z, res.reg


class RangeGuard:
    """Watches for iterates that run off where a learned R is unknown (it can fall without
    bound there, so the objective falls too and no objective test sees it).

    With the prior's ``data_range`` (lo, hi) known, an image whose iterate has a value outside
    the trusted range [lo - w/2, hi + w/2], w = hi - lo, is held: it keeps its previous iterate
    while the rest of the batch goes on. Without it the limit is a guess,
    +-RANGE_FACTOR x max(1, max |x0|, max |x_1|), and leaving it only warns (once): a
    legitimate minimiser can lie there too.
    """

    def __init__(self, data_range: tuple[float, float] | None, x0: Tensor):
        self.data_range = data_range
        if data_range is not None:
            lo, hi = data_range
            self.lo, self.hi = lo - (hi - lo) / 2, hi + (hi - lo) / 2
        else:
            self.hi = RANGE_FACTOR * max(1.0, float(x0.abs().max()))
            self.lo = -self.hi

    @property
    def stops(self) -> bool:
        """Whether leaving the range holds the image (the prior's range is known)."""
        return self.data_range is not None

    def outside(self, k: int, z: Tensor) -> Tensor:
        """(B,) bool on the CPU: images of iterate k with a value outside the range (the first
        iterate only widens a guessed range)."""
        if not self.stops and k == 1:
            self.hi = max(self.hi, RANGE_FACTOR * float(z.abs().max()))
            self.lo = -self.hi
        flat = z.flatten(1)
        return ((flat < self.lo) | (flat > self.hi)).any(1).cpu()

    def check_scale(self, x0: Tensor, notes: list[str]) -> None:
        """Warn (and note) when most of the start lies outside the trusted range of a prior with
        a ``data_range``: the data are then on another scale than the prior's training images
        (0..255, Hounsfield units, ...), and every iterate would be held at once."""
        if not self.stops:
            return
        outside = float(((x0 < self.lo) | (x0 > self.hi)).float().mean())
        if outside > SCALE_FRACTION:
            lo, hi = self.data_range
            msg = (f"solve: {outside:.0%} of the start x0 lies outside [{self.lo:.3g}, {self.hi:.3g}] (the prior's "
                   f"training range [{lo:.3g}, {hi:.3g}] widened by half its width; x0 spans "
                   f"[{float(x0.min()):.3g}, {float(x0.max()):.3g}]): y is probably on another scale than the "
                   f"prior's images; rescale it to [{lo:.3g}, {hi:.3g}] (e.g. y / 255 for 8-bit data)")
            warn_at_caller(msg)
            notes.append(msg)

    def message(self, k: int, images: list[int], batch: int) -> str:
        """What to say when ``images`` (indices into a batch of ``batch``) left at iteration k;
        without a data range this is said once, afterwards the range is open."""
        who = "the iterate" if batch == 1 else f"the iterate of image(s) {images} (of {batch})"
        where = f"{who} left [{self.lo:.3g}, {self.hi:.3g}] at iteration {k}"
        trained = "lo, hi" if not self.stops else "{:.3g}, {:.3g}".format(*self.data_range)
        advice = (f"box=({trained}) keeps iterates in range, and a smaller step (e.g. step=1/(2 lam): a larger ADMM "
                  "penalty, the prior step then the exact prox of R/2) damps the run-off")
        if self.stops:
            return (f"ran off: {where}, the prior's training range [{trained}] widened by half its width, where R "
                    f"is not learned and can fall without bound; returning iterate {k - 1} for it. {advice}")
        self.lo, self.hi = -math.inf, math.inf  # warn once
        return (f"solve: {where} ({RANGE_FACTOR:g} x the largest value of the start and the first iterate): a "
                "learned R can decrease without bound outside its training range, so a falling objective does "
                "not mean a good result; " + advice)


class HeldImages:
    """Images of a batch held at their last in-range iterate by the run-off guard.

    The solver state is batched, so a held image is still stepped with the others; after each
    step its state tensors (every attribute of batch size B) are put back, so it repeats the
    same discarded step and cannot blow up or leave values that other code would see. A step
    replaces its state tensors instead of writing into them (as ``_run`` relies on for z_prev
    too), so the snapshot is references, not copies.
    """

    def __init__(self, state, z0: Tensor):
        self.state, self.mask, self.x = state, torch.zeros(z0.shape[0], dtype=torch.bool), z0.clone()

    def snapshot(self) -> dict[str, Tensor]:
        b = self.mask.numel()
        return {k: v for k, v in vars(self.state).items() if isinstance(v, Tensor) and v.shape[:1] == (b,)}

    def hold(self, new: Tensor, z_prev: Tensor) -> None:
        """Hold the images ``new`` (B,) bool at ``z_prev``."""
        self.x[new.to(z_prev.device)] = z_prev[new.to(z_prev.device)]
        self.mask |= new

    def restore(self, saved: dict[str, Tensor]) -> None:
        """Put the held images' state back to ``saved`` (taken before the step)."""
        for name, before in saved.items():
            now = getattr(self.state, name)
            now[self.mask.to(now.device)] = before[self.mask.to(now.device)]


class RiseMonitor:
    """The divergence test on the batch-mean objective F_k.

    With s_k = mean data fidelity + lam mean |R| (the scale of F's terms), F_k > F_{k-1} +
    RISE_RTOL s_k counts as an increase (smaller rises are float rounding of F's sums), and the
    solve is diverging after ``patience`` increases in a row that leave F more than
    DRIFT_RTOL s_k above the lowest value it had. A converging ADMM can approach its limit from
    below, F rising by a shrinking amount (a 256^2 deblur with lpn-natural-gray: about 2e-5 s_k
    per step and 3e-4 s_k in all); that is not divergence. A diverging iteration leaves the
    band within a few steps (PGD with a step above 1/||A||^2 grows F geometrically).
    """

    def __init__(self, patience: int):
        self.patience, self.increases, self.prev, self.lowest = patience, 0, None, math.inf

    def diverging(self, obj: float, scale: float) -> bool:
        """Record F_k = ``obj`` with scale s_k = ``scale``; True when the solve is diverging."""
        rose = self.prev is not None and obj - self.prev > RISE_RTOL * scale
        self.increases = self.increases + 1 if rose else 0
        self.prev, self.lowest = obj, min(self.lowest, obj)
        return self.increases >= self.patience and obj - self.lowest > DRIFT_RTOL * scale


def _prior_step(prior, sigma_d: float | None, t: float) -> tuple[PriorStep, bool]:
    """(v -> (z, R(z) or None), whether R is available); t = tau lam is the weight of R in
    the prox of an exact-prox prior (generic denoisers get it through sigma_d)."""
    if isinstance(prior, ProxPrior):
        plain = t == 1.0 and not prior.inner_solve  # a solved prox gains from warm starts
        return (prior.prox_with_regularizer if plain else ScaledProxStep(prior, t)), True
    if isinstance(prior, torch.nn.Module) and hasattr(prior, "forward"):
        param = next(prior.parameters(), None)

        def step(v: Tensor):  # in the network's dtype, back in the solver's
            return prior(v if param is None else v.to(param.dtype), sigma_d).to(v.dtype), None
    elif callable(prior):
        def step(v: Tensor):
            return prior(v), None
    else:
        raise ValueError(f"prior must be a pnp_lpn prior, a deepinv denoiser or a callable, got {type(prior).__name__}")
    return step, False


def _initial_point(physics, y: Tensor) -> Tensor:
    """The operator's own ``initial_point(y)`` (FBP for CT, least squares for CS) or A^T y."""
    start = getattr(physics, "initial_point", None)
    return start(y) if start is not None else physics.A_adjoint(y)


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


def _default_lam(prior, physics, method: str, x0: Tensor, denoiser_sigma: float | None, notes: list[str],
                 step: float | None, s_n: float) -> float:
    s_t, name = getattr(prior, "sigma_train", None), "sigma_train"
    if s_t is None and denoiser_sigma is not None:
        s_t, name = check_positive(denoiser_sigma, "denoiser_sigma"), "denoiser_sigma"
    if s_t is None:
        raise ValueError("cannot derive lam (the prior has no training noise level; pass denoiser_sigma=... for a "
                         "generic denoiser); or pass lam=..., e.g. lam=noise_sigma**2 / prior_sigma**2")
    lam = s_n**2 / s_t**2
    notes.append(f"lam = noise_sigma^2 / {name}^2 = {s_n:g}^2 / {s_t:g}^2 = {lam:.4g} (MAP)")
    if method == "pgd" and step is None:
        norm_sq = operator_norm_sq(physics, x0)
        if lam < norm_sq * (1 - 1e-3):
            notes.append(f"PGD: lam raised to ||A||^2 = {norm_sq:.4g} so that the step 1/lam guarantees descent")
            lam = norm_sq
    return lam


def _check_stopping(max_iter, tol, tol_objective, patience) -> None:
    """ValueError unless max_iter, patience are integers >= 1 and tol, tol_objective finite >= 0."""
    for name, value in (("max_iter", max_iter), ("patience", patience)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    check_positive(tol, "tol", allow_zero=True)
    if tol_objective is not None:
        check_positive(tol_objective, "tol_objective", allow_zero=True)


def _check_box(box) -> tuple[float, float] | None:
    """``box`` as (lo, hi) floats, None for None/False, AUTO kept; ValueError otherwise."""
    if box is None or box is False or (isinstance(box, str) and box == AUTO):
        return None if box is False else box
    try:
        lo, hi = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box must be (lo, hi), None/False (no box) or 'auto', got {box!r}") from None
    if not (lo < hi and math.isfinite(lo - hi)):
        raise ValueError(f"box must be (lo, hi) with finite lo < hi, got {box!r}")
    return lo, hi


def _check_inputs(y, physics, prior, method, lam, x0, step) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate the inputs; (y, A^T y, x0) in the working dtype (y's, float32 for 16-bit y)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    if lam is not None:
        check_positive(lam, "lam")
    if step is not None:
        check_positive(step, "step")
    if not isinstance(y, Tensor):
        raise ValueError(f"y must be a torch.Tensor (B, ...), got {type(y).__module__}.{type(y).__name__}; "
                         "e.g. torch.from_numpy(y).float()")
    if not torch.is_floating_point(y) or y.ndim < 2:
        raise ValueError(f"y must be a floating-point tensor with a batch dimension, got {y.dtype} of shape "
                         f"{tuple(y.shape)}" + ("; e.g. y.float() / 255 for 8-bit data" if y.dtype == torch.uint8 else ""))
    if not torch.isfinite(y).all():
        raise ValueError("y contains NaN or Inf values")
    y = y.to(compute_dtype(y))
    try:
        x_adj = physics.A_adjoint(y)
        y_back = physics.A(x_adj)
    except (RuntimeError, ValueError, IndexError) as e:
        raise ValueError(f"y of shape {tuple(y.shape)} does not match the operator {type(physics).__name__}: {e}") from e
    if y_back.shape != y.shape:
        raise ValueError(f"y has shape {tuple(y.shape)} but the operator produces measurements of shape {tuple(y_back.shape)}")
    channels = getattr(prior, "in_channels", None)
    if channels is not None and x_adj.shape[1] != channels:
        raise ValueError(f"the prior expects {channels} channel(s) but the operator's images have {x_adj.shape[1]}")
    if x0 is not None:
        x0 = check_image(x0, "x0", shape=tuple(x_adj.shape[1:])).to(y.dtype)
        if x0.shape[0] != y.shape[0]:
            raise ValueError(f"x0 has batch size {x0.shape[0]} but y has {y.shape[0]}")
    return y, x_adj, x0


def _choose_box(box, physics, notes: list[str]) -> tuple[float, float] | None:
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


def _warn_large_lam(lam: float, physics, x_adj: Tensor, notes: list[str]) -> None:
    """Warn when a given lam exceeds LAM_IGNORES_DATA x ||A||^2: the data term's curvature
    (at most ||A||^2) is then below 0.1% of lam's, so y barely changes the result."""
    norm_sq = operator_norm_sq(physics, x_adj)
    if lam > LAM_IGNORES_DATA * norm_sq:
        msg = (f"solve: lam={lam:.4g} is more than {LAM_IGNORES_DATA:g} x ||A||^2 = {norm_sq:.4g}: the data term "
               "has almost no weight, so the result ignores y; the MAP choice is lam = noise_sigma^2 / "
               "sigma_train^2 (the default when lam is not given)")
        warn_at_caller(msg)
        notes.append(msg)


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
) -> SolveResult:
    """Reconstruct x from y = A x + noise by PnP-ADMM or PnP-PGD.

    :param y: measurements (B, ...) matching ``operator``.
    :param operator: a deepinv LinearPhysics (e.g. from :mod:`pnp_lpn.operators`).
    :param prior: an LPN/AE-LPN (objective monitored), any deepinv denoiser, or a callable.
    :param method: "admm" (penalty 1/step) or "pgd" (gradient step ``step``); see :mod:`.iterations`.
    :param lam: weight of R in F; default from the noise levels (module docstring): for a
        generic denoiser pass ``denoiser_sigma`` instead. An operator without a noise level
        gets one estimated from y (:func:`estimated_noise_sigma`, stated in ``result.notes``).
        A given lam above 1000 x ||A||^2 (the data term then has almost no weight) warns.
    :param max_iter: iteration limit.
    :param tol: stop when the relative change ||z_k - z_{k-1}|| / ||z_{k-1}|| and (ADMM) the
        relative primal residual ||x_k - z_k|| / ||z_k|| are <= tol for every image.
    :param x0: start; default the operator's ``initial_point(y)`` (FBP for CT, least squares for
        compressed sensing), else A^T y.
    :param callback: called as callback(k, z, info) after each iteration; True stops.
    :param box: (lo, hi), e.g. (0, 1): the constraint lo <= x <= hi. ADMM solves min F(x) s.t. the
        box, as a third (projection) block (:mod:`.iterations`): the returned x is the prior's
        output, where F is known, and meets the box up to the primal residual ("box_violation" in
        the history is its RMS distance to the box). PGD clips each iterate after the prior; R is
        then unknown (NaN) at iterations where the clip moved an image. None or False: no box.
        "auto" (default): the operator's ``default_box`` (compressed sensing, inpainting:
        (0, 1); the other operators: none), stated in ``result.notes``.
    :param denoiser_sigma: noise level passed to a generic denoiser; default noise_sigma sqrt(step)
        (noise_sigma / sqrt(lam) at the default step).
    :param tol_objective: also stop when the relative objective change is <= this (>= 0).
    :param patience: (integer >= 1) stop after this many consecutive objective increases that
        leave F above its lowest value (:class:`RiseMonitor`: rises below 1e-6 of the scale of
        F's terms are rounding, and F must end 1e-3 of that scale above its lowest) (PGD with
        step <= 1/||A||^2 never increases; not tested for ADMM with a box, whose iterates approach
        the box from outside, where F may lie lower) or at the first non-finite iterate; the best
        iterate (lowest objective) is returned. Run-off (:class:`RangeGuard`): a learned R can
        be unbounded below outside its training range, so the objective may fall while the
        iterate runs off. For a prior with a ``data_range`` (lo, hi) (every shipped LPN), an
        image whose iterate leaves [lo - w/2, hi + w/2], w = hi - lo, is held at its previous
        iterate (:class:`HeldImages`; "ran off" in ``stop_reason``) while the rest of the batch
        goes on; for other priors an iterate beyond ``RANGE_FACTOR`` (10) x max(1, max |x0|,
        max |x_1|) only warns (and adds a note).
    :param step: tau, the step of the data term: the PGD gradient step, or 1/penalty of ADMM.
        Default 1/lam, where the prior step is one call of the prior. A shorter step makes it
        the prox of t R with t = tau lam < 1: exact-prox priors solve it as a convex problem
        warm-started at the previous iteration (:meth:`ProxPrior.scaled_prox_with_regularizer`;
        several prior evaluations per iteration), generic denoisers are called at
        noise_sigma sqrt(tau). PGD with step <= 1/||A||^2 decreases F monotonically at any lam.
        tau lam > 1 is refused for exact-prox priors.

    Any floating dtype of y works: the solve runs in y's dtype (float32 for float16 /
    bfloat16 y), x0 is cast to it, a prior computes in its own parameters' dtype, and
    ``result.x`` comes back in y's dtype.
    """
    _check_stopping(max_iter, tol, tol_objective, patience)
    box, user_dtype = _check_box(box), getattr(y, "dtype", None)
    y, x_adj, x0 = _check_inputs(y, operator, prior, method, lam, x0, step)
    notes: list[str] = []
    if y.dtype != user_dtype:
        notes.append(f"y is {user_dtype}: solved in {y.dtype}, result.x returned as {user_dtype}")
    box = _choose_box(box, operator, notes)
    if x0 is None:
        x0 = _initial_point(operator, y)
    s_n = operator_noise_sigma(operator)
    if lam is None:
        s_n = s_n if s_n is not None else estimated_noise_sigma(operator, y, notes)
        lam = _default_lam(prior, operator, method, x0, denoiser_sigma, notes, step, s_n)
    else:
        _warn_large_lam(float(lam), operator, x_adj, notes)
    tau = 1.0 / lam if step is None else float(step)
    exact = isinstance(prior, ProxPrior)
    t_max = prior.max_prox_weight() if exact else math.inf
    if tau * lam > t_max * (1 + 1e-9):
        raise ValueError(f"step={tau:.4g} needs the prox of t R with t = step * lam = {tau * lam:.4g} > {t_max:.4g}, "
                         f"which this prior does not provide; use step <= {t_max:.4g}/lam = {t_max / lam:.4g}")
    if method == "pgd" and exact:
        norm_sq = operator_norm_sq(operator, x_adj)
        if tau * norm_sq > 1 + 1e-3:  # the power-iteration estimate is not exact
            msg = (f"PGD with step {tau:.4g} > 1/||A||^2 = {1 / norm_sq:.4g}: descent is not guaranteed and the "
                   f"objective may increase (use lam >= ||A||^2, step=1/||A||^2 or method='admm')")
            warn_at_caller(msg)
            notes.append(msg)
    if denoiser_sigma is None and s_n is not None:
        denoiser_sigma = s_n * math.sqrt(tau)
    t = 1.0 if step is None or abs(tau * lam - 1) <= 1e-9 else tau * lam
    prior_step, has_reg = _prior_step(prior, denoiser_sigma, t)
    if not has_reg:
        notes.append("prior has no regulariser: objective and regularizer are not monitored")
    guard = RangeGuard(getattr(prior, "data_range", None), x0)
    guard.check_scale(x0, notes)
    res = _run(METHODS[method](operator, y, prior_step, tau, x0, box), operator, y, method, float(lam), has_reg,
               max_iter, tol, tol_objective, patience, callback, progress, notes, guard, box is not None)
    res.step = tau
    if isinstance(prior_step, ScaledProxStep):
        bound = (f", each within {prior_step.error_bound:.2g} (RMS, certified) of the exact prox"
                 if prior.inner_solve else "")
        res.notes.append(f"prior step: prox of t R with t = step * lam = {prior_step.t:.4g}, "
                         f"{prior_step.inner_iters} inner solver iterations in total{bound}")
    res.x = res.x.to(user_dtype)
    return res


def _run(state, physics, y, method, lam, has_reg, max_iter, tol, tol_objective, patience,
         callback, progress, notes, guard: RangeGuard, boxed: bool) -> SolveResult:
    keys = ["data_fidelity", "residual", "rel_change", "time"] + (["regularizer", "objective"] if has_reg else [])
    keys += (["dual_residual"] + (["box_violation"] if boxed else [])) if method == "admm" else []
    watch_rise = not (boxed and method == "admm")
    rows: dict[str, list[Tensor]] = {k: [] for k in keys}
    best_x, best_obj, best_iter = state.z.clone(), torch.full((y.shape[0],), math.inf), 0
    reason, converged, prev_obj, rises = "max_iter reached", False, None, RiseMonitor(int(patience))
    held, ran_off = HeldImages(state, state.z), []
    t0 = time.perf_counter()
    bar = tqdm(range(1, max_iter + 1), disable=not progress, desc=f"PnP-{method.upper()}")
    for k in bar:
        z_prev, saved = state.z, held.snapshot() if guard.stops else {}
        out = state.step()
        z, live = out.z, ~held.mask
        if not torch.isfinite(z[live.to(z.device)]).all():
            reason = f"diverged: non-finite iterate at iteration {k}; returning the best iterate"
            break
        off = guard.outside(k, z) & live
        if off.any():
            msg = guard.message(k, off.nonzero().flatten().tolist(), off.numel())
            if guard.stops:
                held.hold(off, z_prev)
                ran_off.append(msg)
                msg = f"solve: {msg}"
            else:
                notes.append(msg)
            warn_at_caller(msg)
        if held.mask.all():
            reason = "; ".join(ran_off)
            break
        if held.mask.any():
            held.restore(saved)  # in place: z (= state.z) shows the held images' last in-range iterate
        Az = out.Az if out.Az is not None else physics.A(z)
        data = 0.5 * (Az - y).flatten(1).pow(2).sum(1)
        rel_change = rms(z - z_prev) / rms(z_prev).clamp_min(1e-12)
        row = {"data_fidelity": data, "rel_change": rel_change, **out.residuals,
               "time": torch.full_like(data, time.perf_counter() - t0)}
        obj = data + lam * out.reg if has_reg else data
        if has_reg:
            row.update(regularizer=out.reg, objective=obj)
        gone = held.mask.to(data.device)  # held images have no iterate from here on: NaN entries
        row = {key: torch.where(gone, torch.full_like(v, math.nan), v) if key != "time" else v
               for key, v in row.items()}
        obj = row.get("objective", row["data_fidelity"])
        for key in keys:
            rows[key].append(row[key].detach().cpu())
        # not(obj >= best): an unknown (NaN) objective on either side keeps the latest iterate,
        # as for denoisers without a regulariser
        better = (~(obj.cpu() >= best_obj) if has_reg else torch.ones_like(best_obj, dtype=torch.bool)) & ~held.mask
        best_obj = torch.where(better, obj.cpu(), best_obj)
        best_x[better.to(z.device)] = z[better.to(z.device)]
        best_iter = k if better.any() else best_iter
        if progress:  # the objective when known, else the data fidelity
            shown = obj if bool(torch.isfinite(obj).any()) else row["data_fidelity"]
            bar.set_postfix({"obj" if shown is obj and has_reg else "data": f"{float(shown.nanmean()):.4g}",
                             "change": f"{float(rel_change[~gone].max()):.2e}"})
        if callback is not None and callback(k, z, {key: row[key] for key in keys}):
            reason = f"stopped by callback at iteration {k}"
            break
        primal = out.residuals["residual"] / rms(z).clamp_min(1e-12) if method == "admm" else rel_change
        if bool(((rel_change <= tol) & (primal <= tol) | gone).all()):
            reason, converged = f"relative change and residual <= tol={tol:g}", True
            break
        if has_reg:
            mean_obj = float(obj.nanmean())
            if (tol_objective is not None and prev_obj is not None
                    and abs(mean_obj - prev_obj) <= tol_objective * abs(prev_obj)):
                reason, converged = f"relative objective change <= tol_objective={tol_objective:g}", True
                break
            scale = float(row["data_fidelity"].nanmean()) + lam * float(row["regularizer"].abs().nanmean())
            if watch_rise and rises.diverging(mean_obj, scale):
                reason = (f"diverging: objective increased {patience} times in a row (iteration {k}), to "
                          f"{mean_obj - rises.lowest:.3g} above its lowest; returning the best iterate")
                break
            prev_obj = mean_obj
    diverged = reason.startswith("diverg")
    if diverged:
        warn_at_caller(f"solve: {reason}")
    if ran_off and not reason.startswith("ran off"):
        reason = "; ".join([reason] + ran_off)
    mask = held.mask.to(state.z.device)
    x = torch.where(mask.view(-1, *[1] * (state.z.ndim - 1)), held.x, best_x if diverged else state.z)
    per_sample = {key: torch.stack(v) if v else torch.empty(0, y.shape[0]) for key, v in rows.items()}
    history = {key: [float(t.nanmean()) for t in v] for key, v in rows.items()}
    return SolveResult(x, history, per_sample, converged and not ran_off, len(rows["time"]), reason,
                       time.perf_counter() - t0, lam, method, best_iter if diverged else len(rows["time"]), notes)
