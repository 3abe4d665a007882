"""APGD (FISTA with monotone restart): lower F than PGD, monotone, restarts, weights (run-off holding:
test_solvers.py)."""

import pytest
import torch

import pnp_lpn as pl
from conftest import QuadraticPrior
from test_solvers import blur_physics, normal_equations


def deblur_problem(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    physics = blur_physics(sigma=(1.5, 1.5))
    x = torch.rand(batch, 1, 16, 16, dtype=torch.float64, generator=g)
    return physics.A(x) + 0.02 * torch.randn(batch, 1, 16, 16, dtype=torch.float64, generator=g), physics


def test_apgd_ends_no_higher_than_pgd_with_a_ridge_prior():
    """Same lam, step 1/||A||^2 and iterations: the accelerated objective ends at or below PGD's,
    and never rises on the way."""
    prior = pl.RidgePrior(channels=(3, 6), kernel=3, scales=(1,), rho=0.0).double().eval()
    y, physics = deblur_problem()
    kw = dict(lam=0.1, step=1.0, max_iter=30, tol=0)
    pgd = pl.solve(y, physics, prior, method="pgd", **kw)
    apgd = pl.solve(y, physics, prior, method="apgd", **kw)
    assert pgd.n_iter == apgd.n_iter == 30 and apgd.method == "apgd"
    obj = apgd.per_sample["objective"]
    assert (obj[-1] <= pgd.per_sample["objective"][-1]).all()
    assert (obj[1:] <= obj[:-1]).all()
    assert "restarted" in apgd.history


def test_apgd_restarts_and_stays_monotone_on_a_strongly_convex_problem():
    """F = 1/2 ||Ax - y||^2 + mu/2 ||x||^2 is strongly convex: plain FISTA overshoots and F
    rises; the restart rejects those steps, F never rises and the minimiser is reached."""
    mu = 1.0
    y, physics = deblur_problem()
    res = pl.solve(y, physics, QuadraticPrior(mu), method="apgd", lam=1.0, max_iter=400, tol=1e-10)
    obj = res.per_sample["objective"]
    assert res.per_sample["restarted"].sum() > 0
    assert (obj[1:] <= obj[:-1]).all()
    ref = normal_equations(physics, y, mu)
    assert (res.x - ref).norm() / ref.norm() < 1e-6, res.stop_reason


def test_apgd_weights_and_refusals():
    """The default lam is raised to ||A||^2 (a gradient method); an LPN's prox weight stays
    <= 1; a denoiser without R cannot drive the restart."""
    physics = blur_physics(noise=0.02, dtype=torch.float32)
    y = physics(torch.rand(1, 1, 16, 16))
    prior = pl.LPN(1, channels=(4,), depth=1, sigma_train=0.1).eval()
    res = pl.solve(y, physics, prior, method="apgd", max_iter=2)
    assert res.lam == pytest.approx(1.0, rel=1e-3) and any("APGD: lam raised" in n for n in res.notes)
    with pytest.raises(ValueError, match="step <= 1/lam"):
        pl.solve(y, physics, prior, method="apgd", lam=0.05, step=30.0, max_iter=2)
    with pytest.raises(ValueError, match="regulariser"):
        pl.solve(y, physics, lambda v: v, method="apgd", lam=1.0, max_iter=2)
