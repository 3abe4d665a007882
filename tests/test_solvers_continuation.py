"""solve's continuation: the first K prior steps denoise at raised noise levels, then the stated problem."""

from __future__ import annotations

import math

import pytest
import torch

import pnp_lpn as pl
from conftest import SoftThresholdPrior, soft
from pnp_lpn.operators import CompressedSensing, GaussianBlur, Inpainting
from pnp_lpn.solvers.prior_step import CONTINUATION_START, ScaledProxStep, continuation_factor
from test_ridge import _prior


class LevelRecorder(torch.nn.Module):
    """A deepinv-style denoiser that records the noise level of each call and shrinks by it."""

    def __init__(self):
        super().__init__()
        self.sigmas: list[float] = []

    def forward(self, x, sigma):
        self.sigmas.append(float(sigma))
        return x / (1 + sigma)


def _cs(noise: float = 0.01):
    torch.manual_seed(0)
    op = CompressedSensing((1, 16, 16), 0.25, seed=1, noise_sigma=noise)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 16, 16, dtype=torch.float64), 3, 1, 1)
    return op.to(torch.float64), op.to(torch.float64)(x)


def test_continuation_factor_falls_geometrically_to_one():
    k_max = 4
    c = [continuation_factor(k, k_max) for k in range(k_max + 2)]
    assert c[0] == pytest.approx(CONTINUATION_START)
    assert all(c[k + 1] / c[k] == pytest.approx(CONTINUATION_START ** (-1 / k_max)) for k in range(k_max - 1))
    assert c[k_max:] == [1.0, 1.0]


def _inpainting():
    op = Inpainting((1, 16, 16), ratio=0.3, noise_sigma=0.01, seed=2).to(torch.float64)
    return op, op(torch.rand(1, 1, 16, 16, dtype=torch.float64))


@pytest.mark.parametrize("problem", [_cs, _inpainting])
def test_cs_and_inpainting_continue_a_denoiser_by_default_and_not_when_told(problem):
    op, y = problem()
    rec = LevelRecorder()
    res = pl.solve(y, op, rec, denoiser_sigma=0.1, max_iter=30, tol=0)
    k = min(op.default_continuation, 30 * 4 // 5)
    assert rec.sigmas[:k] == pytest.approx([0.1 * continuation_factor(i, k) for i in range(k)])
    assert rec.sigmas[k:] == pytest.approx([0.1] * (30 - k))
    assert any("continuation" in n and f"first {k} prior steps" in n for n in res.notes)
    off = LevelRecorder()
    res = pl.solve(y, op, off, denoiser_sigma=0.1, max_iter=30, tol=0, continuation=0)
    assert off.sigmas == pytest.approx([0.1] * 30) and not any("continuation" in n for n in res.notes)


def test_operators_without_a_default_do_not_continue_unless_asked():
    op = GaussianBlur((1, 16, 16), sigma_blur=1.0, noise_sigma=0.02).to(torch.float64)
    y = op(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    rec = LevelRecorder()
    pl.solve(y, op, rec, denoiser_sigma=0.1, max_iter=6, tol=0)
    assert rec.sigmas == pytest.approx([0.1] * 6)
    rec = LevelRecorder()
    pl.solve(y, op, rec, denoiser_sigma=0.1, max_iter=6, tol=0, continuation=3)
    assert rec.sigmas[:3] == pytest.approx([0.1 * continuation_factor(i, 3) for i in range(3)])


def test_no_convergence_test_during_the_continuation():
    op = GaussianBlur((1, 16, 16), sigma_blur=1.0, noise_sigma=0.02).to(torch.float64)
    y = op(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    assert pl.solve(y, op, LevelRecorder(), denoiser_sigma=0.1, max_iter=20, tol=10.0).n_iter == 1
    res = pl.solve(y, op, LevelRecorder(), denoiser_sigma=0.1, max_iter=20, tol=10.0, continuation=5)
    assert res.n_iter == 6 and res.converged


def test_exact_prox_steps_of_the_continuation_are_rescaled_proxes():
    # the rescaled prox of R = ||.||_1 at level c sigma_train is soft(v, c): a closed form
    prior = SoftThresholdPrior(1, sigma_train=0.1).double()
    v = torch.randn(2, 1, 8, 8, dtype=torch.float64) * 4
    step = ScaledProxStep(prior, 1.0, continuation=3)
    for k in range(4):
        z, reg = step(v)
        assert torch.allclose(z, soft(v, continuation_factor(k, 3)))
        assert bool(reg.isnan().all()) if k < 3 else torch.allclose(reg, z.abs().flatten(1).sum(1))


def test_ridge_continuation_reports_the_objective_and_reaches_the_same_minimiser():
    prior = _prior(0.0)  # convex: one minimiser of F
    op, y = _cs()
    plain = pl.solve(y, op, prior, lam=5e-2, max_iter=150, tol=0, continuation=0)
    continued = pl.solve(y, op, prior, lam=5e-2, max_iter=150, tol=0, continuation=10)
    assert float((continued.x - plain.x).pow(2).mean().sqrt()) < 1e-5
    data = 0.5 * (op.A(continued.x) - y).pow(2).sum()
    assert continued.history["objective"][-1] == pytest.approx(float(data + 5e-2 * prior.regularizer(continued.x)),
                                                               rel=1e-6)
    assert all(math.isfinite(f) for f in continued.history["objective"][:10])  # explicit R during the ramp too


def test_level_prox_of_a_ridge_prior_is_its_denoiser_with_its_own_r():
    prior = _prior(1.0)
    v = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    res = prior.level_prox(v, 0.3, tol=1e-9)
    assert torch.allclose(res.z, prior.denoise(v, 0.3, tol=1e-9), atol=1e-7)
    assert torch.allclose(res.reg, prior.regularizer(res.z))


@pytest.mark.parametrize("bad", [-1, 30, 2.5, True, "x"])
def test_bad_continuation_is_refused(bad):
    op, y = _cs()
    with pytest.raises(ValueError, match="continuation"):
        pl.solve(y, op, LevelRecorder(), denoiser_sigma=0.1, max_iter=30, continuation=bad)


def test_a_plain_callable_cannot_continue():
    op, y = _cs()
    res = pl.solve(y, op, lambda v: 0.9 * v, lam=1.0, max_iter=3)  # auto: no continuation, said so
    assert any("no continuation" in n for n in res.notes)
    with pytest.raises(ValueError, match="continuation needs a prior"):
        pl.solve(y, op, lambda v: 0.9 * v, lam=1.0, max_iter=3, continuation=2)
