"""Shared plumbing of the forward operators: validation, ||A||^2, CG data steps.

Every operator is a linear map A: R^(C, H, W) -> R^meas_shape (applied per batch item)
with additive Gaussian noise, y = A x + sigma * e. Subclasses implement the unchecked maps
``_forward`` (A) and ``_adjoint`` (A^T); this class validates inputs once at the public
entry points (A, A_adjoint, prox_l2) and supplies iterative fall-backs (power iteration for
||A||^2, conjugate gradients for the prox and the least-squares start) that subclasses with
a closed form override.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from deepinv.physics import GaussianNoise, LinearPhysics
from torch import Tensor

from pnp_lpn._checks import check_image, check_positive, compute_dtype
from pnp_lpn.noise import estimate_noise_sigma


def check_measurement(y: object, name: str, shape: tuple[int, ...]) -> Tensor:
    """Check that ``y`` is a finite floating (B, *shape) tensor and return it."""
    expected = f"(B, {', '.join(map(str, shape))})"
    if not isinstance(y, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {expected}, got {type(y).__name__}")
    if y.ndim != len(shape) + 1 or tuple(y.shape[1:]) != tuple(shape):
        raise ValueError(f"{name} must have shape {expected}, got {tuple(y.shape)}")
    if not torch.is_floating_point(y):
        raise ValueError(f"{name} must be a floating-point tensor (e.g. float32), got dtype {y.dtype}")
    if not torch.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return y.to(compute_dtype(y))


def check_img_size(img_size: Sequence[int]) -> tuple[int, int, int]:
    """Return ``img_size`` as a (C, H, W) tuple of positive ints, or raise ValueError."""
    size = tuple(img_size)
    if len(size) != 3 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"img_size must be (C, H, W) with positive ints, got {img_size!r}")
    return size


def batch_dot(u: Tensor, v: Tensor) -> Tensor:
    """Per-sample inner product <u_b, v_b>, shape (B, 1, ..., 1) for broadcasting."""
    return (u * v).sum(dim=tuple(range(1, u.ndim)), keepdim=True)


def conjugate_gradient(
    apply_op: Callable[[Tensor], Tensor],
    b: Tensor,
    x0: Tensor | None = None,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> tuple[Tensor, int]:
    """Solve M x = b for a symmetric positive (semi-)definite M, batched over dim 0.

    Stops when every sample has ||b - M x|| <= tol * ||b||, or after ``max_iter``
    iterations. No damping term is added to the denominators (deepinv's version adds 1e-8,
    which biases the steps once residuals are small). Returns (x, iterations used).
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b.clone() if x0 is None else b - apply_op(x)
    p = r.clone()
    rr = batch_dot(r, r)
    stop = tol**2 * batch_dot(b, b)
    tiny = torch.finfo(b.dtype).tiny
    for it in range(max_iter):
        if bool((rr <= stop).all()):
            return x, it
        mp = apply_op(p)
        alpha = rr / batch_dot(p, mp).clamp_min(tiny)
        x = x + alpha * p
        r = r - alpha * mp
        rr_new = batch_dot(r, r)
        p = r + (rr_new / rr.clamp_min(tiny)) * p
        rr = rr_new
    return x, max_iter


def gamma_view(gamma: float | Tensor, batch: int, ndim: int, like: Tensor) -> Tensor:
    """Return the prox step gamma >= 0 (a number, 0-d or (B,) tensor) as (B, 1, ..., 1)."""
    g = torch.as_tensor(gamma, dtype=like.dtype, device=like.device)
    if g.ndim > 1 or (g.ndim == 1 and g.numel() not in (1, batch)):
        raise ValueError(f"gamma must be a number or a tensor of shape ({batch},), got shape {tuple(g.shape)}")
    if not (torch.isfinite(g).all() and (g >= 0).all()):
        raise ValueError(f"gamma must be finite and >= 0, got {gamma!r}")
    return g.reshape(-1, *([1] * (ndim - 1))).expand(batch, *([1] * (ndim - 1)))


class ForwardOperator(LinearPhysics):
    """Base class: y = A x + noise_sigma * e with e ~ N(0, I), x of shape (B, *img_size).

    :param img_size: (C, H, W) of one image.
    :param meas_shape: shape of one measurement (without batch).
    :param noise_sigma: standard deviation of the Gaussian measurement noise (>= 0).
    :param device: where buffers live; inputs must be on the same device.
    :param cg_max_iter: iteration cap of the CG data step (operators without closed form).
    :param cg_tol: relative residual tolerance of the CG data step.
    :param warm_start: start each CG data step from the previous solution when its shape
        matches (a good guess inside ADMM); otherwise CG starts from z.

    Any floating dtype is accepted: float16 / bfloat16 inputs are computed in float32 and the
    maps return the input's dtype. ``default_box`` is the box that :func:`pnp_lpn.solve` uses
    when it is given none (None here: no box; operators whose null space lets iterates leave
    the image range declare (0, 1)).
    """

    default_box: tuple[float, float] | None = None

    def __init__(
        self,
        img_size: Sequence[int],
        meas_shape: Sequence[int],
        noise_sigma: float = 0.0,
        device: torch.device | str = "cpu",
        cg_max_iter: int = 100,
        cg_tol: float = 1e-6,
        warm_start: bool = True,
    ) -> None:
        sigma = check_positive(noise_sigma, "noise_sigma", allow_zero=True)
        super().__init__(img_size=check_img_size(img_size), noise_model=GaussianNoise(sigma=sigma), device=device)
        self.meas_shape = tuple(int(s) for s in meas_shape)
        self.cg_max_iter = int(cg_max_iter)
        self.cg_tol = check_positive(cg_tol, "cg_tol")
        self.warm_start = bool(warm_start)
        self.last_cg_iterations: int | None = None
        self._norm_sq: float | None = None
        self._last_prox: Tensor | None = None

    # ---- maps implemented by subclasses (inputs already validated) -------------------
    def _forward(self, x: Tensor) -> Tensor:
        """A x for x of shape (B, *img_size); returns (B, *meas_shape)."""
        raise NotImplementedError

    def _adjoint(self, y: Tensor) -> Tensor:
        """A^T y for y of shape (B, *meas_shape); returns (B, *img_size)."""
        raise NotImplementedError

    # ---- validation --------------------------------------------------------------------
    @property
    def _device(self) -> torch.device:
        return self._device_holder.device

    def _check_device(self, t: Tensor, name: str) -> Tensor:
        if t.device != self._device:
            raise ValueError(f"{name} is on {t.device} but the operator is on {self._device}; move one of them")
        return t

    def check_x(self, x: object, name: str = "x") -> Tensor:
        """Validate an image batch of shape (B, *img_size)."""
        x = check_image(x, name, channels=self.img_size[0], shape=self.img_size)
        return self._check_device(x.to(compute_dtype(x)), name)

    def check_y(self, y: object, name: str = "y") -> Tensor:
        """Validate a measurement batch of shape (B, *meas_shape)."""
        return self._check_device(check_measurement(y, name, self.meas_shape), name)

    # ---- public maps -----------------------------------------------------------------------
    @property
    def noise_sigma(self) -> float:
        """Standard deviation of the Gaussian measurement noise."""
        return float(self.noise_model.sigma)

    def A(self, x: Tensor, **kwargs) -> Tensor:
        """Noise-free measurements A x, shape (B, *meas_shape)."""
        return self._forward(self.check_x(x)).to(x.dtype)

    def A_adjoint(self, y: Tensor, **kwargs) -> Tensor:
        """Adjoint A^T y, shape (B, *img_size)."""
        return self._adjoint(self.check_y(y)).to(y.dtype)

    def A_adjoint_A(self, x: Tensor, **kwargs) -> Tensor:
        """Normal operator A^T A x."""
        return self._adjoint(self._forward(self.check_x(x))).to(x.dtype)

    def A_A_adjoint(self, y: Tensor, **kwargs) -> Tensor:
        """A A^T y."""
        return self._forward(self._adjoint(self.check_y(y))).to(y.dtype)

    def estimate_noise_sigma(self, y: Tensor) -> float:
        """The noise level of ``y`` estimated from y alone (:mod:`pnp_lpn.noise`: median of the
        finest Haar diagonal detail / 0.6745), for measurements with two spatial axes (images,
        sinograms); ValueError for others (subclasses with a better source override this)."""
        y = self.check_y(y)
        if len(self.meas_shape) < 2:
            raise ValueError(f"{type(self).__name__} measurements of shape {self.meas_shape} have no spatial layout, "
                             "so their noise level cannot be estimated from y")
        return estimate_noise_sigma(y)

    # ---- ||A||^2 ----------------------------------------------------------------------------
    def norm_sq(self) -> float:
        """||A||_2^2 = largest eigenvalue of A^T A (closed form or power iteration), cached."""
        if self._norm_sq is None:
            self._norm_sq = float(self._compute_norm_sq())
        return self._norm_sq

    def _compute_norm_sq(self, max_iter: int = 40, tol: float = 1e-6) -> float:
        """Largest eigenvalue of A^T A by Lanczos from a seeded random start.

        Lanczos (a power iteration that keeps the whole Krylov basis, fully
        re-orthogonalised) converges far faster than the plain power method when the top
        eigenvalues cluster (compressed sensing: 30 Lanczos steps match 1000 power steps).
        The Ritz value grows towards ||A||^2 from below; it stops when it changes by less
        than ``tol`` (relative) or after ``max_iter`` products with A^T A. Memory: max_iter
        image-sized vectors.
        """
        gen = torch.Generator().manual_seed(0)
        v = torch.randn((1, *self.img_size), generator=gen).to(self._device)
        v = v / v.norm()
        basis: list[Tensor] = []
        diag: list[float] = []
        off: list[float] = []
        ritz = 0.0
        for _ in range(max_iter):
            basis.append(v)
            w = self._adjoint(self._forward(v))
            diag.append(float((w * v).sum()))
            for _ in range(2):  # classical Gram-Schmidt, twice is enough
                for u in basis:
                    w = w - (w * u).sum() * u
            sub = torch.tensor(off, dtype=torch.float64)
            t = torch.diag(torch.tensor(diag, dtype=torch.float64)) + torch.diag(sub, 1) + torch.diag(sub, -1)
            ritz, previous = float(torch.linalg.eigvalsh(t)[-1]), ritz
            beta = float(w.norm())
            if abs(ritz - previous) <= tol * ritz or beta <= 1e-12 * ritz:
                break
            off.append(beta)
            v = w / beta
        return ritz

    # ---- data steps -----------------------------------------------------------------------
    def prox_l2(self, z: Tensor, y: Tensor, gamma: float | Tensor, **kwargs) -> Tensor:
        """argmin_x  1/2 ||A x - y||^2 + 1/(2 gamma) ||x - z||^2  (deepinv's convention).

        Equivalently x solves (I + gamma A^T A) x = z + gamma A^T y. ``gamma`` is a number or
        a (B,) tensor. Keyword arguments ``max_iter`` / ``tol`` override the CG settings for
        this call only (no state is changed); other deepinv keywords are ignored. Returns z's dtype.
        """
        dtype = z.dtype if isinstance(z, Tensor) else None
        z = self.check_x(z, "z")
        y = self.check_y(y, "y")
        if y.shape[0] != z.shape[0]:
            raise ValueError(f"z and y must have the same batch size, got {z.shape[0]} and {y.shape[0]}")
        return self._prox(z, y, gamma_view(gamma, z.shape[0], z.ndim, z), **kwargs).to(dtype)

    def _prox(self, z: Tensor, y: Tensor, gamma: Tensor, max_iter: int | None = None, tol: float | None = None,
              **kwargs) -> Tensor:
        """CG on (I + gamma A^T A) x = z + gamma A^T y, warm-started from the last solution."""
        x0 = self._last_prox
        if not (self.warm_start and x0 is not None and x0.shape == z.shape and x0.dtype == z.dtype):
            x0 = z
        x, self.last_cg_iterations = conjugate_gradient(
            lambda v: v + gamma * self._adjoint(self._forward(v)),
            z + gamma * self._adjoint(y),
            x0=x0,
            max_iter=self.cg_max_iter if max_iter is None else int(max_iter),
            tol=self.cg_tol if tol is None else float(tol),
        )
        self._last_prox = x.detach()
        return x

    def initial_point(self, y: Tensor) -> Tensor:
        """The PnP solvers' default start: A^T y (overridden where a better one is cheap)."""
        return self.A_adjoint(y)

    def least_squares(self, y: Tensor, max_iter: int = 50, tol: float = 1e-5) -> Tensor:
        """Minimum-norm least-squares estimate: CG on A^T A x = A^T y from x = 0 (CGNR).

        Early stopping (``max_iter``) regularises noisy data; a useful x0 for the solvers.
        """
        dtype, y = y.dtype, self.check_y(y)
        x, self.last_cg_iterations = conjugate_gradient(
            lambda v: self._adjoint(self._forward(v)), self._adjoint(y), max_iter=max_iter, tol=tol
        )
        return x.to(dtype)

    def A_dagger(self, y: Tensor, max_iter: int = 50, tol: float = 1e-5, **kwargs) -> Tensor:
        """Pseudo-inverse estimate, i.e. :meth:`least_squares` (other deepinv keywords are ignored)."""
        return self.least_squares(y, max_iter=max_iter, tol=tol)
