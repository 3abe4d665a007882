"""Structured random compressed sensing: O(n) memory, seeding, scaling, least squares."""

import math
import time

import pytest
import torch

from pnp_lpn.operators import CompressedSensing


def test_memory_is_linear_at_512():
    op = CompressedSensing((1, 512, 512), ratio=0.25, seed=0)
    n = 512 * 512
    assert op.buffer_bytes() < 10 * n * 8  # a dense A would need M * n * 4 = 69 GB
    x = torch.rand(2, 1, 512, 512)
    start = time.perf_counter()
    y = op.A(x)
    back = op.A_adjoint(y)
    assert time.perf_counter() - start < 5.0
    assert y.shape == (2, round(0.25 * n))
    assert back.shape == x.shape


def test_same_seed_same_operator_other_seed_differs():
    x = torch.rand(1, 2, 16, 12)
    a, b, c = (CompressedSensing((2, 16, 12), ratio=0.3, seed=s) for s in (7, 7, 8))
    torch.testing.assert_close(a.A(x), b.A(x), rtol=0, atol=0)
    assert not torch.allclose(a.A(x), c.A(x))
    assert not torch.equal(a.indices, c.indices)


def test_structure_signs_indices_and_count():
    op = CompressedSensing((3, 10, 10), ratio=0.1, seed=1)
    assert op.meas_shape == (30,)
    assert torch.equal(op.indices, torch.sort(torch.unique(op.indices)).values)
    assert set(op.signs.unique().tolist()) == {-1.0, 1.0}


def test_definition_against_explicit_circular_convolution():
    """A x = (1/sqrt(H W)) [a_c (*) (s x)_c] at the kept flat indices, (*) circular 2-D convolution."""
    c, h, w = 2, 6, 5
    op = CompressedSensing((c, h, w), ratio=0.5, seed=2)
    a = torch.fft.irfft2(op.filter_fft.to(torch.complex128) * math.sqrt(h * w), s=(h, w))
    x = torch.rand(1, c, h, w, dtype=torch.float64)
    u = op.signs.double() * x[0]
    conv = torch.zeros(c, h, w, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            for k in range(h):
                for m in range(w):
                    conv[:, i, j] += a[:, k, m] * u[:, (i - k) % h, (j - m) % w]
    expected = conv.flatten()[op.indices] / math.sqrt(h * w)
    torch.testing.assert_close(op.A(x), expected[None])
    assert float(a.std()) == pytest.approx(1.0, abs=0.3)  # i.i.d. N(0, 1) entries


def test_scaling_keeps_energy_fraction_ratio():
    """E ||A x||^2 = ratio ||x||^2: the 1/sqrt(n) normalisation of the random convolution."""
    op = CompressedSensing((1, 64, 64), ratio=0.25, seed=0)
    x = torch.randn(8, 1, 64, 64)
    energy = op.A(x).pow(2).sum(1) / x.flatten(1).pow(2).sum(1)
    assert float(energy.mean()) == pytest.approx(0.25, rel=0.1)


def test_least_squares_fits_noiseless_data():
    op = CompressedSensing((1, 32, 32), ratio=0.25, seed=0)
    x = torch.rand(2, 1, 32, 32)
    y = op.A(x)
    x_ls = op.least_squares(y, max_iter=200, tol=1e-6)
    assert float((op.A(x_ls) - y).norm() / y.norm()) < 1e-3
    # minimum-norm solution: no larger than the truth, which also fits the data
    assert float(x_ls.norm()) <= float(x.norm())


def test_prox_uses_warm_started_cg():
    op = CompressedSensing((1, 32, 32), ratio=0.25, seed=0, noise_sigma=0.001)
    x = torch.rand(1, 1, 32, 32)
    y = op(x)
    first = op.prox_l2(x, y, 2.0)
    cold = op.last_cg_iterations
    again = op.prox_l2(x, y, 2.0)
    assert op.last_cg_iterations < cold
    torch.testing.assert_close(again, first, rtol=1e-4, atol=1e-5)
    assert op.cg_max_iter == 100 and op.cg_tol == 1e-6  # per-call overrides leave settings alone
    op.prox_l2(x, y, 2.0, max_iter=3, tol=1e-2)
    assert op.cg_max_iter == 100 and op.cg_tol == 1e-6


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.5])
def test_bad_ratio(ratio):
    with pytest.raises(ValueError, match="ratio"):
        CompressedSensing((1, 8, 8), ratio=ratio)
