"""Small seeded solve problems whose results are pinned by tests/test_solvers_pinned.py."""

from __future__ import annotations

import math

import deepinv as dinv
import torch
from deepinv.physics.functional.blur import gaussian_blur

import pnp_lpn as pl
from conftest import QuadraticPrior, randomize


def _blur(n: int = 16, sigma: float = 1.0, noise: float = 0.0, dtype=torch.float64):
    kernel = gaussian_blur(sigma=(sigma, sigma)).to(dtype)
    return dinv.physics.BlurFFT(img_size=(1, n, n), filter=kernel, noise_model=dinv.physics.GaussianNoise(noise))


def _lpn_deblur(batch: int = 2):
    torch.manual_seed(0)
    prior = randomize(pl.LPN(1, channels=(8, 12), depth=2, alpha=0.1), scale=0.3).double().eval()
    physics = _blur(sigma=1.5)
    x = torch.rand(batch, 1, 16, 16, dtype=torch.float64)
    y = physics.A(x) + 0.02 * torch.randn(batch, 1, 16, 16, dtype=torch.float64)
    return y, physics, prior


def _mask_physics():
    mask = (torch.arange(64, dtype=torch.float64).reshape(1, 1, 8, 8) % 2 == 0).double()
    return mask, dinv.physics.LinearPhysics(A=lambda x: mask * x, A_adjoint=lambda y: mask * y)


def admm():
    y, physics, prior = _lpn_deblur()
    return (y, physics, prior), dict(method="admm", lam=0.5, max_iter=25, tol=0)


def admm_box():
    y, physics, prior = _lpn_deblur()
    return (y, physics, prior), dict(method="admm", lam=0.5, max_iter=25, tol=0, box=(0.0, 1.0))


def pgd():
    y, physics, prior = _lpn_deblur()
    return (y, physics, prior), dict(method="pgd", lam=1.0, max_iter=20, tol=1e-6)


def pgd_box():
    y, physics, prior = _lpn_deblur()
    return (y, physics, prior), dict(method="pgd", lam=1.0, max_iter=10, tol=0, box=(0.0, 1.0))


def pgd_scaled_prox():
    y, physics, prior = _lpn_deblur(batch=1)
    return (y, physics, prior), dict(method="pgd", lam=0.05, step=1.0, max_iter=8, tol=0)


def admm_default_lam():
    torch.manual_seed(1)
    physics = _blur(noise=0.02, dtype=torch.float32)
    prior = randomize(pl.LPN(1, channels=(6,), depth=1, sigma_train=0.1), scale=0.3).eval()
    y = physics(torch.rand(1, 1, 16, 16))
    return (y, physics, prior), dict(method="admm", max_iter=6, tol_objective=1e-3)


def pgd_default_lam():
    (y, physics, prior), _ = admm_default_lam()
    return (y, physics, prior), dict(method="pgd", max_iter=6)


def generic_denoiser():
    torch.manual_seed(2)
    physics = dinv.physics.Inpainting(img_size=(1, 16, 16), mask=0.7, noise_model=dinv.physics.GaussianNoise(0.05))
    y = physics(torch.rand(2, 1, 16, 16))
    return (y, physics, dinv.models.TVDenoiser(n_it_max=20)), dict(method="admm", denoiser_sigma=0.1, max_iter=8)


def generic_callable_pgd():
    torch.manual_seed(3)
    physics = _blur(noise=0.01)
    y = physics(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    return (y, physics, lambda v: 0.9 * v + 0.05), dict(method="pgd", lam=2.0, step=0.5, max_iter=7)


def run_off_batch():
    torch.manual_seed(4)
    mask, physics = _mask_physics()
    x_true = 0.2 + 0.6 * torch.rand(2, 1, 8, 8, dtype=torch.float64)
    x0 = torch.cat([x_true[:1], x_true[1:] * mask])
    prior = QuadraticPrior(-0.2)
    prior.data_range = (0.0, 1.0)
    return (physics.A(x_true), physics, prior), dict(method="admm", lam=1.0, max_iter=40, tol=1e-8, x0=x0)


def run_off_pgd_all():
    torch.manual_seed(5)
    mask, physics = _mask_physics()
    x_true = 0.2 + 0.6 * torch.rand(1, 1, 8, 8, dtype=torch.float64)
    prior = QuadraticPrior(-0.2)
    prior.data_range = (0.0, 1.0)
    return (physics.A(x_true), physics, prior), dict(method="pgd", lam=1.0, max_iter=40, x0=x_true.clone())


def run_off_warning():
    torch.manual_seed(6)
    _, physics = _mask_physics()
    x_true = 0.2 + 0.6 * torch.rand(1, 1, 8, 8, dtype=torch.float64)
    return (physics.A(x_true), physics, QuadraticPrior(-0.2)), dict(method="admm", lam=1.0, max_iter=40,
                                                                     x0=x_true.clone())


def diverging_pgd():
    torch.manual_seed(7)
    physics = dinv.physics.LinearPhysics(A=lambda x: 3 * x, A_adjoint=lambda y: 3 * y)
    y = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    return (y, physics, QuadraticPrior(0.01)), dict(method="pgd", lam=1.0, max_iter=200, x0=y.clone())


def ridge_admm():
    torch.manual_seed(8)
    prior = pl.RidgePrior(channels=(3, 6), kernel=3, scales=(1,), knots=41, span=4.0, rho=0.0).double().eval()
    physics = _blur(sigma=1.0)
    y = physics.A(torch.rand(1, 1, 16, 16, dtype=torch.float64)) + 0.02 * torch.randn(1, 1, 16, 16, dtype=torch.float64)
    return (y, physics, prior), dict(method="admm", lam=0.05, max_iter=6, tol=0)


def callback_stop():
    y, physics, prior = _lpn_deblur(batch=1)
    return (y, physics, prior), dict(method="admm", lam=0.5, max_iter=20, callback=lambda k, z, info: k >= 4)


CASES = {f.__name__: f for f in (admm, admm_box, pgd, pgd_box, pgd_scaled_prox, admm_default_lam, pgd_default_lam,
                                 generic_denoiser, generic_callable_pgd, run_off_batch, run_off_pgd_all,
                                 run_off_warning, diverging_pgd, ridge_admm, callback_stop)}


def summary(res) -> dict:
    """What the pins compare: checksums of x, the stop, and the last history entries."""
    x = res.x.double()
    last = {k: v[-1] for k, v in res.history.items() if k != "time" and v}
    return dict(x_sum=float(x.sum()), x_sq=float(x.pow(2).sum()), n_iter=res.n_iter, stop_reason=res.stop_reason,
                converged=res.converged, best_iter=res.best_iter, lam=res.lam, step=res.step,
                keys=sorted(res.history), last=last, n_notes=len(res.notes))


def is_nan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)
