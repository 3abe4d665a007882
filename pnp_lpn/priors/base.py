"""Base class of exact-prox priors: a convex potential psi and its gradient f = grad psi.

By Gribonval & Nikolova (2020), f = grad psi with psi convex is exactly the proximal
operator of some function R: f = prox_R. Everything below follows from psi alone:

- prox:                f(v) = grad psi(v)                       (one backward pass)
- R at a prox output:  R(f(v)) = <v, f(v)> - 1/2 ||f(v)||^2 - psi(v)   (up to a constant)
- R at any x:          find v with f(v) = x, i.e. minimise psi(v) - <x, v>, then as above.

Subclasses implement :meth:`_potential` (x -> psi(x) of shape (B,)) and keep their
constrained parameters in modules with a ``project()`` method.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from deepinv.models import Denoiser
from torch import Tensor

from .._checks import check_image
from .convex_net import NonNegConv2d
from .inversion import invert_gradient


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
    regularisation strength through the solver's ``lam`` instead.
    """

    def __init__(self, in_channels: int, sigma_train: float | None = None):
        super().__init__()
        if int(in_channels) != in_channels or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        self.in_channels = int(in_channels)
        self.sigma_train = sigma_train

    # ----- to implement ------------------------------------------------------------
    def _potential(self, x: Tensor) -> Tensor:
        """psi(x) for a checked input (B, C, H, W) -> (B,)."""
        raise NotImplementedError

    def config(self) -> dict:
        """Constructor arguments (JSON-serialisable), stored in checkpoints."""
        raise NotImplementedError

    # ----- public API ----------------------------------------------------------------
    def potential(self, x: Tensor) -> Tensor:
        """psi(x), shape (B,)."""
        return self._potential(self._check(x))

    def prox(self, x: Tensor, create_graph: bool | None = None) -> Tensor:
        """f(x) = grad psi(x), same shape as x.

        :param create_graph: keep the graph of the gradient (needed to train through it).
            Default: True in training mode, False in eval mode (one plain backward pass).
        """
        return self._prox_and_potential(self._check(x), create_graph)[0]

    def forward(self, x: Tensor, sigma: float | Tensor | None = None, **kwargs) -> Tensor:
        """The prox f(x); ``sigma`` is ignored (see the class docstring)."""
        return self.prox(x)

    def prox_with_regularizer(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """(z, R(z)) with z = f(v), R(z) = <v, z> - 1/2 ||z||^2 - psi(v): exact, no inversion."""
        v = self._check(v)
        z, psi = self._prox_and_potential(v, create_graph=False)
        return z, self._regularizer_at_output(v, z, psi)

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
        ``return_result=True`` the preimage and achieved residuals come back too.
        """
        x = self._check(x)
        inv = invert_gradient(lambda v: self._prox_and_potential(v, False), x, tol, max_iter)
        value = self._regularizer_at_output(inv.v, inv.z, inv.psi)
        if return_result:
            return RegularizerResult(value, inv.v, inv.residual, inv.n_iter)
        return value

    @torch.no_grad()
    def project_weights(self) -> None:
        """Restore the convexity constraints after an optimiser step."""
        for m in self.modules():
            if isinstance(m, NonNegConv2d):
                m.project()

    # ----- internals ------------------------------------------------------------------
    def _check(self, x: Tensor) -> Tensor:
        return check_image(x, channels=self.in_channels)

    def _prox_and_potential(self, x: Tensor, create_graph: bool | None) -> tuple[Tensor, Tensor]:
        """(grad psi(x), psi(x)); works under torch.no_grad() (deepinv's solvers use it)."""
        if create_graph is None:
            create_graph = self.training
        with torch.enable_grad():
            xg = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
            psi = self._potential(xg)
            (grad,) = torch.autograd.grad(psi.sum(), xg, create_graph=create_graph)
        if not create_graph:
            psi = psi.detach()
        return grad, psi

    @staticmethod
    def _regularizer_at_output(v: Tensor, z: Tensor, psi: Tensor) -> Tensor:
        inner = (v * z).flatten(1).sum(1)
        return inner - 0.5 * z.flatten(1).pow(2).sum(1) - psi

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())
