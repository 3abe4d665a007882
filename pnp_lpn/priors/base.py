"""Base class of exact-prox priors: a convex potential psi and its gradient f = grad psi.

By Gribonval & Nikolova (2020), f = grad psi with psi convex is exactly the proximal
operator of some function R: f = prox_R. Everything below follows from psi alone:

- prox:                f(v) = grad psi(v)                       (one backward pass)
- R at a prox output:  R(f(v)) = <v, f(v)> - 1/2 ||f(v)||^2 - psi(v)   (up to a constant)
- R at any x:          find v with f(v) = x, i.e. minimise psi(v) - <x, v>, then as above.
- prox of t R, 0<t<=1: f(w) with (1 - t) f(w) + t w = v, i.e. w minimises the strongly convex
                       (1 - t) psi(w) + t/2 ||w||^2 - <v, w>  (docs/maths.md, "The prox of t R").

Subclasses implement :meth:`_potential` (x -> psi(x) of shape (B,)) and keep their
constrained parameters in modules with a ``project()`` method.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from deepinv.models import Denoiser
from torch import Tensor

from .._checks import check_image, check_positive, compute_dtype
from .convex_net import NonNegConv2d
from .inversion import invert_gradient


@dataclass
class ScaledProx:
    """prox_{tR}(v) from :meth:`ProxPrior.scaled_prox_with_regularizer`: ``z`` (same shape as v),
    ``reg`` = R(z) (B,), ``w`` the warm start of a next solve (an LPN's point w with z = f(w);
    a ridge prior's z), the RMS residual (B,) of the solved equation ((1 - t) f(w) + t w = v;
    for a ridge prior grad E(z) = 0), the number of solver iterations ``n_iter``, where the
    problem's strong convexity is known the certified RMS distance (B,) of z to the exact prox
    ``error_bound`` (None otherwise), and ``n_eval`` the solver's evaluations (its cost; 0 without
    a solve)."""

    z: Tensor
    reg: Tensor
    w: Tensor
    residual: Tensor
    n_iter: int
    error_bound: Tensor | None = None
    n_eval: int = 0


@dataclass
class RegularizerResult:
    """R evaluated by inversion: ``value`` (B,), the preimage ``v`` with f(v) ~ x, the
    achieved RMS residual ``residual`` (B,) = ||f(v) - x|| / sqrt(n), and ``n_iter``."""

    value: Tensor
    v: Tensor
    residual: Tensor
    n_iter: int


class ProxPrior(Denoiser):
    """A denoiser that is the exact proximal operator of a learned regulariser.

    ``forward(x, sigma=None)`` returns f(x) = prox_R(x). The noise level ``sigma`` is
    accepted in every form deepinv passes (float, 0-d tensor, (B,) tensor) and ignored:
    the prox is fixed by training (see ``sigma_train``), and a caller changes the
    regularisation strength through the solver's ``lam`` instead, or denoises at a lower
    level with :meth:`denoise`.

    ``data_range`` (lo, hi) is the range of the clean images the prior was trained on (set by
    the trainer, stored in checkpoints; None when unknown). R is learned only near it: far
    outside, R can decrease without bound, so :func:`pnp_lpn.solve` holds an image whose
    iterate leaves it by more than half its width.
    """

    #: forward(x, sigma) and denoise use sigma: one model for every noise level
    conditional: bool = False
    #: R is learned only near the training range ``data_range`` (solve's run-off guard)
    range_limited: bool = True
    #: the prox is computed by an iterative solve (warm starts pay off)
    inner_solve: bool = False

    def __init__(self, in_channels: int, sigma_train: float | None = None):
        super().__init__()
        if int(in_channels) != in_channels or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        self.in_channels = int(in_channels)
        self.sigma_train = sigma_train
        self.data_range: tuple[float, float] | None = None

    # ----- to implement ------------------------------------------------------------
    def _potential(self, x: Tensor) -> Tensor:
        """psi(x) for a checked input (B, C, H, W) -> (B,)."""
        raise NotImplementedError

    def config(self) -> dict:
        """Constructor arguments (JSON-serialisable), stored in checkpoints."""
        raise NotImplementedError

    def max_prox_weight(self) -> float:
        """Largest t for which :meth:`scaled_prox_with_regularizer` gives the prox of t R (1 here:
        the network is the prox of R and smaller weights are solved for)."""
        return 1.0

    # ----- public API ----------------------------------------------------------------
    def potential(self, x: Tensor) -> Tensor:
        """psi(x), shape (B,), in x's dtype (computed in the parameters' dtype)."""
        return self._potential(self._check(x)).to(x.dtype)

    def prox(self, x: Tensor, create_graph: bool | None = None) -> Tensor:
        """f(x) = grad psi(x), same shape and dtype as x (computed in the parameters' dtype).

        :param create_graph: keep the graph of the gradient (needed to train through it, or to
            differentiate f(x) in x). Default: True in training mode and whenever x requires
            grad under grad mode (gradients flow through a frozen prior), else False (one plain
            backward pass).
        """
        return self._prox_and_potential(self._check(x), create_graph)[0].to(x.dtype)

    def forward(self, x: Tensor, sigma: float | Tensor | None = None, **kwargs) -> Tensor:
        """The prox f(x); ``sigma`` is ignored (see the class docstring)."""
        return self.prox(x)

    def prox_with_regularizer(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """(z, R(z)) with z = f(v), R(z) = <v, z> - 1/2 ||z||^2 - psi(v): exact, no inversion.
        Both in v's dtype; the graph is kept when v requires grad under grad mode."""
        vc = self._check(v)
        z, psi = self._prox_and_potential(vc, create_graph=_asks_for_graph(vc))
        return z.to(v.dtype), self._regularizer_at_output(vc, z, psi).to(v.dtype)

    def regularizer(
        self,
        x: Tensor,
        tol: float = 1e-4,
        max_iter: int = 500,
        return_result: bool = False,
    ) -> Tensor | RegularizerResult:
        """R(x) at an arbitrary x, shape (B,), by batched convex inversion.

        Minimises the strongly convex psi(v) - <x, v> (whose gradient is f(v) - x) with
        L-BFGS from v0 = x until the RMS residual ||f(v) - x|| / sqrt(n) <= ``tol`` for
        every image, then returns R at z = f(v) by the exact formula. With
        ``return_result=True`` the preimage and achieved residuals come back too (in x's dtype).

        Raises ValueError when the weights break the convexity constraints (then f is not a
        prox and R does not exist: :meth:`project_weights` restores them) or when the inversion
        ends at a non-finite point.
        """
        dtype, x = x.dtype if isinstance(x, Tensor) else None, self._check(x)
        self._require_convex("regularizer")
        inv = invert_gradient(lambda v, rows: self._prox_and_potential(v, False), x, tol, max_iter)
        value = self._regularizer_at_output(inv.v, inv.z, inv.psi)
        _require_finite(value, inv.residual, "regularizer")
        if return_result:
            return RegularizerResult(value.to(dtype), inv.v.to(dtype), inv.residual.to(dtype), inv.n_iter)
        return value.to(dtype)

    def scaled_prox_with_regularizer(
        self, v: Tensor, t: float, w0: Tensor | None = None, tol: float = 1e-4, max_iter: int = 500
    ) -> ScaledProx:
        """prox_{tR}(v) = argmin_x t R(x) + 1/2 ||x - v||^2 for 0 < t <= 1, and R there.

        Writing x = f(w), the gradient of t R(f(w)) + 1/2 ||f(w) - v||^2 in w is
        H(w) (t (w - f(w)) + f(w) - v) with H = hess psi > 0, so the prox is z = f(w) for the
        w solving (1 - t) f(w) + t w = v: the minimiser of the strongly convex
        (1 - t) psi(w) + t/2 ||w||^2 - <v, w>, found by the L-BFGS of :meth:`regularizer`
        from ``w0`` (default v; pass the previous w inside an iteration). Exact up to ``tol``
        (RMS residual of that equation) for non-convex R as well (docs/maths.md). t = 1 is
        the plain prox f(v) without a solve; smaller t costs more prior evaluations (t -> 0
        is the inversion behind :meth:`regularizer`). Tensors come back in v's dtype.
        """
        dtype, v = v.dtype if isinstance(v, Tensor) else None, self._check(v)
        if not 0.0 < float(t) <= 1.0:
            raise ValueError(f"the prox of t R is available for 0 < t <= 1 only, got t={t!r}")
        if float(t) == 1.0:
            z, reg = self.prox_with_regularizer(v)
            return ScaledProx(z.to(dtype), reg.to(dtype), v.to(dtype), torch.zeros(v.shape[0], device=v.device), 0)
        t = float(t)
        self._require_convex("the prox of t R")
        w0 = None if w0 is None else w0.to(v.dtype)

        def grad_and_value(w: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:  # the same map for every image
            z, psi = self._prox_and_potential(w, create_graph=False)
            return (1 - t) * z + t * w, (1 - t) * psi + 0.5 * t * w.flatten(1).pow(2).sum(1)

        inv = invert_gradient(grad_and_value, v, tol, max_iter, v0=w0)
        # f(w) and psi(w) again rather than (inv.z - t w) / (1 - t): that division loses accuracy as t -> 1
        z, reg = self.prox_with_regularizer(inv.v)
        _require_finite(reg, inv.residual, "the prox of t R")
        return ScaledProx(z.to(dtype), reg.to(dtype), inv.v.to(dtype), inv.residual, inv.n_iter, n_eval=inv.n_eval)

    def denoise(self, y: Tensor, sigma: float, tol: float = 1e-5) -> Tensor:
        """Denoiser at noise level sigma built from this prior, exact prox in every case.

        - sigma < sigma_train: the MAP denoiser of the learned prior. The prox was trained at
          sigma_train, so R ~ sigma_train^2 (-log p), and argmin_x 1/2 ||x - y||^2 +
          sigma^2 (-log p(x)) is the prox of t R with t = (sigma / sigma_train)^2 (the default
          lam of :func:`pnp_lpn.solve` for A = I), solved by :meth:`scaled_prox_with_regularizer`
          to the RMS residual ``tol`` (about the RMS error of the result).
        - sigma = sigma_train: the prox f itself.
        - sigma > sigma_train: the MAP denoiser would need t > 1, which the network does not
          give; this returns the rescaled prox f(s y) / s, s = sigma_train / sigma, the exact
          prox of R(s .) / s^2 (:class:`~pnp_lpn.priors.rescaled.RescaledPrior`: the image is
          scaled so that its noise is at the training level, denoised, and scaled back).
        """
        if self.sigma_train is None:
            raise ValueError("this prior has no sigma_train; use scaled_prox_with_regularizer(y, t) with your own t, "
                             "or RescaledPrior")
        sigma = check_positive(sigma, "the noise level sigma of denoise")
        if sigma > self.sigma_train * (1 + 1e-9):
            s, x = self.sigma_train / sigma, self._check(y)
            create_graph = self.training or _asks_for_graph(x)
            return _gradient_and_value(lambda u: self._potential(s * u) / s**2, x, create_graph)[0].to(y.dtype)
        t = min((sigma / self.sigma_train) ** 2, 1.0)
        return self.scaled_prox_with_regularizer(y, t, tol=tol).z

    def level_prox(self, v: Tensor, sigma: float, w0: Tensor | None = None, tol: float = 1e-4) -> ScaledProx:
        """The prior's denoiser at noise level ``sigma`` (:meth:`denoise`) as a step of an
        iteration (the continuation of :func:`pnp_lpn.solve`): ``z`` is the exact prox of the
        regulariser this prior has at that level, ``reg`` is R(z) for this prior's own R where
        known without a further solve (NaN here: z is another regulariser's prox), ``w`` the warm
        start of a next call (v here: :meth:`denoise` needs none above ``sigma_train``)."""
        z = self.denoise(v, sigma, tol=tol)
        unknown = torch.full((v.shape[0],), float("nan"), dtype=z.dtype, device=z.device)
        return ScaledProx(z, unknown, v, torch.zeros_like(unknown), 0)

    @torch.no_grad()
    def project_weights(self) -> None:
        """Restore the convexity constraints after an optimiser step."""
        for m in self.modules():
            if isinstance(m, NonNegConv2d):
                m.project()

    def constraint_violations(self) -> list[str]:
        """Names of the weights that break the convexity constraints (negative entries in a
        non-negative layer); empty for a valid prior."""
        return [f"{name}.weight" for name, m in self.named_modules()
                if isinstance(m, NonNegConv2d) and bool((m.weight < 0).any())]

    # ----- internals ------------------------------------------------------------------
    def _check(self, x: Tensor) -> Tensor:
        """x checked as a finite (B, in_channels, H, W) float tensor, cast to the parameters'
        dtype (float64 or float16 input with a float32 prior computes in float32; a prior
        without parameters computes in x's dtype, float32 for 16-bit x)."""
        x = check_image(x, channels=self.in_channels)
        param = next(self.parameters(), None)
        dtype = compute_dtype(x) if param is None else param.dtype
        return x if x.dtype == dtype else x.to(dtype)

    def _require_convex(self, what: str) -> None:
        bad = self.constraint_violations()
        if bad:
            raise ValueError(f"{what} needs a convex potential, but {len(bad)} non-negative weight(s) have negative "
                             f"entries ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}): f is then not a "
                             "prox and R does not exist; call prior.project_weights() after changing weights")

    def _prox_and_potential(self, x: Tensor, create_graph: bool | None) -> tuple[Tensor, Tensor]:
        """(grad psi(x), psi(x)); works under torch.no_grad() (deepinv's solvers use it).
        ``create_graph`` None: True in training mode or when x requires grad under grad mode."""
        if create_graph is None:
            create_graph = self.training or _asks_for_graph(x)
        return _gradient_and_value(self._potential, x, create_graph)

    @staticmethod
    def _regularizer_at_output(v: Tensor, z: Tensor, psi: Tensor) -> Tensor:
        inner = (v * z).flatten(1).sum(1)
        return inner - 0.5 * z.flatten(1).pow(2).sum(1) - psi

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())


def _gradient_and_value(potential, x: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
    """(grad potential(x), potential(x)) by one backward pass, also under torch.no_grad()."""
    with torch.enable_grad():
        xg = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        psi = potential(xg)
        (grad,) = torch.autograd.grad(psi.sum(), xg, create_graph=create_graph)
    if not create_graph:
        psi = psi.detach()
    return grad, psi


def _asks_for_graph(x: Tensor) -> bool:
    """Whether a caller differentiates through x: it requires grad and grad mode is on."""
    return x.requires_grad and torch.is_grad_enabled()


def _require_finite(value: Tensor, residual: Tensor, what: str) -> None:
    """ValueError when an inversion ended at a non-finite R or residual (never NaN out)."""
    if not (torch.isfinite(value).all() and torch.isfinite(residual).all()):
        raise ValueError(f"{what}: the convex inversion diverged (R = {value.tolist()}, residual = "
                         f"{residual.tolist()}); the potential is not strongly convex near this input "
                         "(weights changed without project_weights(), or values far outside the training range)")


class WrappedPrior(ProxPrior):
    """An exact-prox prior whose potential is built from ``base``'s by a map that keeps it
    convex (an average over orientations, a rescaling, a colour transform). The base's
    parameters are shared, not copied; the wrapper starts in the base's train/eval mode (a
    loaded prior stays in eval: no second-order graph per call). Save ``prior.base`` to keep
    the weights (the wrappers have none).
    """

    def __init__(self, base: ProxPrior, in_channels: int | None = None, sigma_train: float | None = None):
        if not isinstance(base, ProxPrior):
            raise TypeError(f"{type(self).__name__} wraps an exact-prox prior (ProxPrior), got {type(base).__name__}")
        super().__init__(in_channels or base.in_channels, base.sigma_train if sigma_train is None else sigma_train)
        self.base, self.data_range = base, base.data_range
        self.train(base.training)

    def config(self) -> dict:
        """The base prior's architecture and arguments (the wrapper adds none)."""
        return {"wrapper": type(self).__name__, "base": type(self.base).__name__, **self.base.config()}
