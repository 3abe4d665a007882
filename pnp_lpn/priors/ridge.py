"""Learned (weakly) convex ridge regularisers: explicit R, exact prox by an inner solve.

    R_sigma(x) = lam(sigma) sum_i sum_p phi_i(mu(sigma) (W x)_ip) / mu(sigma)^2

with W a multi-scale filter bank, ||W|| <= 1 (:mod:`.filters`), and learned profiles phi_i
with phi_i'' >= -rho (:mod:`.spline`): rho = 0 gives a convex R ("CRR"), rho = 1 a weakly
convex one ("WCRR", lam(sigma) < 1 / rho). lam and mu depend on the noise level through
log lam, log mu quadratic in l = log(sigma / sigma_ref) (for rho > 0, lam = sigmoid(.) / rho),
so one model denoises every sigma:

    D_sigma(y) = argmin_x E(x) = 1/2 ||x - y||^2 + R_sigma(x).

E is m-strongly convex with m = 1 - lam rho ||W||^2 >= 1 - lam rho and has
grad E = x - y + (lam / mu) W^T phi'(mu W x) and Hessian I + lam W^T diag(phi''(mu W x)) W, so
the minimiser is unique and, for any x, ||x - D_sigma(y)|| <= ||grad E(x)|| / m: the inner
solver (batched L-BFGS, warm-startable) reports that certified distance.

As an exact-prox prior (:class:`~.base.ProxPrior`) the prior's R is R at ``sigma_train``
(sigma_ref) and its prox f = prox_R = D_{sigma_ref}; its potential is
psi(v) = 1/2 ||v||^2 - min_x (1/2 ||x - v||^2 + R(x)) (the Moreau envelope identity), so the
generic formula R(f(v)) = <v, f(v)> - 1/2 ||f(v)||^2 - psi(v) holds. R itself is explicit
(:meth:`RidgePrior.regularizer` needs no inversion) and the prox of t R exists for every
t < 1 / (lam(sigma_ref) rho) (every t > 0 for rho = 0).

Gradients through a solve (training, or an input that requires grad) use implicit
differentiation: the output z* - grad E(z*) equals z* and its backward multiplies the incoming
gradient by the inverse Hessian (conjugate gradients), which is d z* / d(theta, y).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import check_positive
from .base import ProxPrior, RegularizerResult, ScaledProx
from .filters import BankKernels, FilterBank
from .inversion import invert_gradient
from .spline import SplineProfiles, Tables


@dataclass
class RidgeParts:
    """The regulariser's parameters for one solve: the bank's normalised kernels, the profiles'
    interval tables (:meth:`.SplineProfiles.interval_tables`), per-sample weight w = t lam (B,) and scale mu (B,),
    and the strong-convexity modulus m (B,) of E."""

    kernels: BankKernels
    tables: Tables
    weight: Tensor
    mu: Tensor
    modulus: Tensor

    def select(self, rows: Tensor) -> RidgeParts:
        """The parts of the samples ``rows`` (a (b,) index)."""
        return RidgeParts(self.kernels, self.tables, self.weight[rows], self.mu[rows], self.modulus[rows])

    def detach(self) -> RidgeParts:
        """The same parts without autograd history."""
        return RidgeParts(self.kernels.detach(), tuple(t.detach() for t in self.tables), self.weight.detach(),
                          self.mu.detach(), self.modulus.detach())


class RidgePrior(ProxPrior):
    """Learned ridge regulariser (module docstring); ``rho=0`` convex (CRR), ``rho=1`` weakly
    convex (WCRR).

    :param in_channels: image channels C.
    :param channels: filter chain channels, the last is the number of filters per scale.
    :param kernel: kernel size of each chain layer.
    :param scales: pooling factors of the filter bank.
    :param knots: grid points of each profile's derivative.
    :param span: half-width of the profile grid (in units of mu W x).
    :param rho: curvature bound of the profiles (phi'' >= -rho).
    :param sigma_train: sigma_ref, the level whose regulariser is the prior's R (solve's default lam).
    """

    conditional = True
    range_limited = False  # R is explicit everywhere
    inner_solve = True

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (4, 8, 8), kernel: int = 5,
                 scales: tuple[int, ...] = (1, 2), knots: int = 161, span: float = 32.0, rho: float = 0.0,
                 sigma_train: float | None = 0.1):
        super().__init__(in_channels, sigma_train)
        self.bank = FilterBank(in_channels, channels, kernel, scales)
        self.profiles = SplineProfiles(self.bank.n_filters, knots, span, rho, init_slope=20.0)
        self.rho = float(rho)
        # log lam (or logit of rho lam) and log mu as quadratics in l = log(sigma / sigma_ref)
        self.lam_coef = nn.Parameter(torch.tensor([0.0 if rho > 0 else 1.5, 0.0, 0.0]))
        self.mu_coef = nn.Parameter(torch.tensor([math.log(40.0), -1.0, 0.0]))
        self._config = dict(in_channels=in_channels, channels=list(channels), kernel=kernel, scales=list(scales),
                            knots=knots, span=span, rho=rho, sigma_train=sigma_train)
        # default certified RMS distance of a solve to the exact minimiser (80 dB under a unit-range
        # image; the implicit gradient of training needs no more) and iteration cap
        self.inner_tol, self.inner_max_iter = 1e-4, 500

    def config(self) -> dict:
        """Constructor arguments."""
        return dict(self._config, sigma_train=self.sigma_train)

    # ----- the noise-level functions ------------------------------------------------
    def _reference(self) -> float:
        if self.sigma_train is None:
            raise ValueError("this ridge prior has no sigma_train (its reference noise level)")
        return float(self.sigma_train)

    def lam_mu(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """(lam(sigma), mu(sigma)) for a (B,) tensor of noise levels."""
        ell = torch.log(sigma / self._reference())
        powers = torch.stack([torch.ones_like(ell), ell, ell * ell], -1)
        p, q = powers @ self.lam_coef, powers @ self.mu_coef
        lam = torch.sigmoid(p) / self.rho if self.rho > 0 else torch.exp(p)
        return lam, torch.exp(q)

    def max_prox_weight(self) -> float:
        """Largest t for which the prox of t R is defined (m > 0): 1 / (lam(sigma_ref) rho)."""
        if self.rho == 0:
            return math.inf
        lam, _ = self.lam_mu(self.lam_coef.new_tensor([self._reference()]))
        return float(1.0 / (lam.detach() * self.rho))

    def parts(self, batch: int, sigma: float | Tensor | None = None, t: float = 1.0,
              graph: bool | None = None) -> RidgeParts:
        """The regulariser of ``t R_sigma`` (``sigma`` None: sigma_ref) for a batch of ``batch``;
        differentiable in the parameters when ``graph`` (default: in training mode under grad mode)."""
        if graph is None:
            graph = self.training and torch.is_grad_enabled()
        with torch.set_grad_enabled(graph):
            return self._parts(batch, sigma, t)

    def _parts(self, batch: int, sigma: float | Tensor | None, t: float) -> RidgeParts:
        ref = self.lam_coef.new_tensor(self._reference())
        s = ref.expand(batch) if sigma is None else torch.as_tensor(sigma, dtype=ref.dtype, device=ref.device)
        if s.numel() not in (1, batch):
            raise ValueError(f"sigma must be a number or a ({batch},) tensor, got shape {tuple(s.shape)}")
        s = s.reshape(-1).expand(batch)
        if not bool((s > 0).all()):
            raise ValueError("the noise level sigma must be > 0")
        lam, mu = self.lam_mu(s)
        weight = t * lam
        modulus = 1.0 - weight * self.rho
        if not bool((modulus > 0).all()):
            raise ValueError(f"t R is not weakly convex enough for a unique prox at t={t:g} (needs t < "
                             f"{self.max_prox_weight():.4g})")
        return RidgeParts(self.bank.kernels(), self.profiles.interval_tables(), weight, mu, modulus)

    # ----- energy -------------------------------------------------------------------
    def energy_terms(self, parts: RidgeParts, x: Tensor, value: bool = True) -> tuple[Tensor, Tensor | None]:
        """(grad R, R) of the weighted regulariser at x: (B, C, H, W) and (B,) float64 (None unless
        ``value``): grad R = (w / mu) W^T phi'(W (mu x)), R = (w / mu^2) sum phi(W (mu x)), one
        filter at a time (:meth:`.BankKernels.transform`)."""
        sums = []

        def derivative(i: int, f: int, r: Tensor) -> Tensor:
            first = i * self.bank.channels[-1] + f  # scale i's filters use profiles i F .. (i + 1) F - 1
            if not value:
                return self.profiles.evaluate(r, (1,), first=first, tables=parts.tables)[1]
            d1, total = self.profiles.derivative_and_sum(r, first=first, tables=parts.tables)
            sums.append(total)
            return d1
        w, mu = parts.weight.view(-1, 1, 1, 1), parts.mu.view(-1, 1, 1, 1)
        grad = parts.kernels.transform(mu * x, derivative) * (w / mu)
        reg = sum(sums) * (parts.weight / parts.mu**2).to(torch.float64) if value else None
        return grad, reg

    def hessian(self, parts: RidgeParts, x: Tensor) -> Callable[[Tensor], Tensor]:
        """v -> (I + w W^T diag(phi''(mu W x)) W) v, the Hessian of E at x (the curvatures
        phi''(mu W x) evaluated once, for every product)."""
        f = self.bank.channels[-1]
        responses = parts.kernels.apply(parts.mu.view(-1, 1, 1, 1) * x)
        curvatures = [self.profiles.evaluate(r, (2,), first=i * f, tables=parts.tables)[2]
                      for i, r in enumerate(responses)]
        weight = parts.weight.view(-1, 1, 1, 1)

        def apply(v: Tensor) -> Tensor:
            return v + parts.kernels.transform(v, lambda i, j, r: curvatures[i][:, j:j + 1] * r) * weight
        return apply

    def hessian_vector(self, parts: RidgeParts, x: Tensor, v: Tensor) -> Tensor:
        """The Hessian of E at x applied to v (:meth:`hessian`)."""
        return self.hessian(parts, x)(v)

    # ----- the inner solve ------------------------------------------------------------
    def solve_denoising(self, y: Tensor, parts: RidgeParts, x0: Tensor | None = None, tol: float | None = None,
                        max_iter: int | None = None) -> ScaledProx:
        """argmin_x 1/2 ||x - y||^2 + R(x) for the weighted R of ``parts``, with gradients by
        implicit differentiation when y or the parameters need them (module docstring).

        Returns z, R(z) (B,), ``w`` = z (the warm start of a next solve), the RMS gradient
        norm of E at z (``residual``), the certified RMS distance to the exact minimiser
        ``error_bound`` = residual / m, the L-BFGS iteration count and its evaluations of grad E.
        """
        tol = self.inner_tol if tol is None else tol
        max_iter = self.inner_max_iter if max_iter is None else max_iter
        frozen = parts.detach()
        yd = y.detach()

        def grad_and_value(x: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:  # E(x) in float64: its decrease is tiny
            g, reg = self.energy_terms(frozen.select(rows), x)
            r = x - yd[rows]
            return r + g, 0.5 * r.flatten(1).pow(2).sum(1, dtype=torch.float64) + reg

        with torch.no_grad():  # E = psi - <0, x> with psi = 1/2 ||x - y||^2 + R: the residual is grad E
            inv = invert_gradient(grad_and_value, torch.zeros_like(yd), tol * frozen.modulus.min().item(),
                                  max_iter, v0=yd if x0 is None else x0.to(yd.dtype))
        z = inv.v
        needs_graph = torch.is_grad_enabled() and (y.requires_grad or self.training)
        if needs_graph:  # the backward's linear solve as precise as the forward one (at most 1e-4 relative)
            z = self._implicit_output(z, y, parts, frozen, cg_tol=min(1e-4, 10 * tol))
        if needs_graph:
            _, reg = self.energy_terms(parts, z)
        else:  # the solver's last E(z) less the data term: no further evaluation
            reg = inv.psi - 0.5 * (z - yd).flatten(1).pow(2).sum(1, dtype=torch.float64)
        return ScaledProx(z, reg.to(y.dtype), inv.v, inv.residual, inv.n_iter,
                          error_bound=inv.residual / frozen.modulus, n_eval=inv.n_eval)

    def _implicit_output(self, z_star: Tensor, y: Tensor, parts: RidgeParts, frozen: RidgeParts,
                         cg_tol: float) -> Tensor:
        """z* - grad E(z*; theta, y): equal to z* in value, its backward applies H^{-1} (CG)."""
        with torch.enable_grad():
            g, _ = self.energy_terms(parts, z_star, value=False)
            out = z_star - (z_star - y + g)

        def inverse_hessian(grad: Tensor) -> Tensor:
            with torch.no_grad():
                return conjugate_gradient(self.hessian(frozen, z_star), grad, tol=cg_tol)

        out.register_hook(inverse_hessian)
        return out

    # ----- ProxPrior interface ----------------------------------------------------------
    def _check(self, x: Tensor) -> Tensor:
        x = super()._check(x)
        if min(x.shape[-2:]) < self.bank.min_size():
            raise ValueError(f"images must be at least {self.bank.min_size()} pixels on each side for this ridge "
                             f"prior (its coarsest scale pools {self.bank.min_size()} x {self.bank.min_size()} "
                             f"blocks), got {tuple(x.shape[-2:])}")
        return x

    def _prox_and_potential(self, x: Tensor, create_graph: bool | None) -> tuple[Tensor, Tensor]:
        """(prox_R(x), psi(x)) with psi(x) = 1/2 ||x||^2 - 1/2 ||z - x||^2 - R(z), z = prox_R(x)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() if create_graph is None else bool(create_graph)):
            res = self.solve_denoising(x, self.parts(x.shape[0]))
        psi = 0.5 * x.flatten(1).pow(2).sum(1) - 0.5 * (res.z - x).flatten(1).pow(2).sum(1) - res.reg
        return res.z, psi

    def _potential(self, x: Tensor) -> Tensor:
        return self._prox_and_potential(x, False)[1]

    def prox_with_regularizer(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """(z, R(z)) with z = prox_R(v); R evaluated explicitly."""
        res = self.solve_denoising(self._check(v), self.parts(v.shape[0]))
        return res.z.to(v.dtype), res.reg.to(v.dtype)

    def regularizer(self, x: Tensor, tol: float = 1e-4, max_iter: int = 500,
                    return_result: bool = False) -> Tensor | RegularizerResult:
        """R(x), explicit (no inversion; ``tol`` and ``max_iter`` are unused). The preimage
        of x under the prox is v = x + grad R(x) (exact: the prox's optimality condition)."""
        xc = self._check(x)
        grad, value = self.energy_terms(self.parts(x.shape[0]), xc)
        value = value.to(x.dtype)
        if return_result:
            return RegularizerResult(value, (xc + grad).to(x.dtype), torch.zeros_like(value), 0)
        return value

    def scaled_prox_with_regularizer(self, v: Tensor, t: float, w0: Tensor | None = None, tol: float = 1e-4,
                                     max_iter: int = 500) -> ScaledProx:
        """prox_{tR}(v) for 0 < t < :meth:`max_prox_weight`, warm-started at ``w0`` (a previous
        result's ``w``); ``tol`` bounds the certified RMS distance to the exact prox."""
        t = check_positive(t, "the prox weight t")
        res = self.solve_denoising(self._check(v), self.parts(v.shape[0], t=t), x0=w0, tol=tol, max_iter=max_iter)
        res.z, res.reg = res.z.to(v.dtype), (res.reg / t).to(v.dtype)  # the solve's regulariser is t R
        return res

    def denoise(self, y: Tensor, sigma: float | Tensor, tol: float | None = None) -> Tensor:
        """D_sigma(y), the learned denoiser at noise level sigma (a number or a (B,) tensor):
        the exact prox of R_sigma (module docstring), one inner solve at any sigma, certified within
        ``tol`` (RMS; default ``inner_tol``) of the exact prox."""
        return self.solve_denoising(self._check(y), self.parts(y.shape[0], sigma), tol=tol).z.to(y.dtype)

    def level_prox(self, v: Tensor, sigma: float, w0: Tensor | None = None, tol: float = 1e-4) -> ScaledProx:
        """D_sigma(v) warm-started at ``w0`` (a previous result's ``w``), certified within ``tol``,
        with ``reg`` the prior's own R (at sigma_ref) at the output, explicit."""
        res = self.solve_denoising(self._check(v), self.parts(v.shape[0], sigma), x0=w0, tol=tol)
        res.z = res.z.to(v.dtype)
        res.reg = self.regularizer(res.z).to(v.dtype)
        return res

    def forward(self, x: Tensor, sigma: float | Tensor | None = None, **kwargs) -> Tensor:
        """D_sigma(x) when ``sigma`` is given (deepinv's denoiser call), else prox_R(x)."""
        return self.prox(x) if sigma is None else self.denoise(x, sigma)

    def project_weights(self) -> None:
        """Nothing to restore: the constraints hold for every parameter value."""


def conjugate_gradient(apply: Callable[[Tensor], Tensor], b: Tensor, tol: float = 1e-6, max_iter: int = 200) -> Tensor:
    """Solve A u = b per image for a symmetric positive definite A (``apply``), batched CG,
    stopping when every image's ||A u - b|| <= tol ||b||."""
    u = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r.flatten(1).pow(2).sum(1)
    target = tol**2 * rr
    for _ in range(max_iter):
        if bool((rr <= target).all()):
            break
        ap = apply(p)
        alpha = rr / (p * ap).flatten(1).sum(1).clamp_min(1e-30)
        u = u + alpha.view(-1, 1, 1, 1) * p
        r = r - alpha.view(-1, 1, 1, 1) * ap
        rr_new = r.flatten(1).pow(2).sum(1)
        p = r + (rr_new / rr.clamp_min(1e-30)).view(-1, 1, 1, 1) * p
        rr = rr_new
    return u
