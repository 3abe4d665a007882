"""The weight rules (lam, step, prox weight, denoiser sigma) and ||A||^2 without side effects."""

import deepinv as dinv
import pytest
import torch

from pnp_lpn.solvers import operator_norm_sq
from pnp_lpn.solvers.weights import denoiser_sigma, descent_lam, map_lam, solve_weights


def test_weight_rules():
    assert map_lam(0.02, 0.1) == pytest.approx(0.04)
    assert descent_lam(0.04, 1.0) == 1.0 and descent_lam(2.0, 1.0) == 2.0
    assert descent_lam(0.9995, 1.0) == 0.9995  # within the power iteration's accuracy: kept
    w = solve_weights(0.04, None, 0.02, None)  # default step 1/lam: the plain prox, s_d = s_n / sqrt(lam)
    assert (w.step, w.prox_weight) == (25.0, 1.0) and w.denoiser_sigma == pytest.approx(0.1)
    w = solve_weights(0.04, 1.0, 0.02, None)
    assert w.prox_weight == pytest.approx(0.04) and w.denoiser_sigma == denoiser_sigma(0.02, 1.0) == 0.02
    assert solve_weights(0.04, 1.0, 0.02, 0.3).denoiser_sigma == 0.3
    assert solve_weights(0.04, None, None, None).denoiser_sigma is None


def test_operator_norm_sq_is_cached_without_touching_the_operator():
    calls = []

    def forward(x):
        calls.append(1)
        return 3 * x

    physics = dinv.physics.LinearPhysics(A=forward, A_adjoint=lambda y: 3 * y)
    before = set(vars(physics))
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    assert operator_norm_sq(physics, x) == pytest.approx(9.0)
    n = len(calls)
    assert operator_norm_sq(physics, x) == pytest.approx(9.0) and len(calls) == n  # cached
    assert set(vars(physics)) == before
