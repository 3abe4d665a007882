"""Contract shared by every forward operator: adjoint, batching, validation, prox, ||A||^2."""

import pytest
import torch
from deepinv.optim.utils import conjugate_gradient as dinv_cg

from pnp_lpn.operators import (
    Blur,
    CompressedSensing,
    FourierSubsampling,
    ForwardOperator,
    GaussianBlur,
    Inpainting,
    ParallelBeamCT,
)


def _kernel(h, w, seed):
    """A random non-symmetric blur kernel summing to 1."""
    k = torch.rand(h, w, generator=torch.Generator().manual_seed(seed))
    return k / k.sum()


FACTORIES = {
    "gaussian-blur-circular": lambda: GaussianBlur((3, 24, 20), sigma_blur=1.5, noise_sigma=0.01),
    "blur-zeros": lambda: Blur(_kernel(4, 5, seed=1), (2, 24, 20), padding="zeros"),
    "blur-valid": lambda: Blur(_kernel(3, 5, seed=2), (1, 24, 20), padding="valid"),
    "compressed-sensing": lambda: CompressedSensing((2, 24, 20), ratio=0.3, seed=3, noise_sigma=0.001),
    "inpainting": lambda: Inpainting((3, 24, 20), ratio=0.4, seed=4),
    "fourier-random": lambda: FourierSubsampling((2, 24, 20), pattern="random", ratio=0.3, seed=5),
    "fourier-variable-density": lambda: FourierSubsampling((1, 24, 20), ratio=0.3, seed=6),
    "fourier-radial": lambda: FourierSubsampling((1, 24, 20), pattern="radial", n_lines=6),
    "ct": lambda: ParallelBeamCT((2, 24, 20), n_angles=15, noise_sigma=0.1),
}


@pytest.fixture(params=list(FACTORIES), scope="module")
def op(request):
    return FACTORIES[request.param]()


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def test_adjointness_below_1e5(op):
    assert op.adjointness_test(img_size=op.img_size, num_samples=8) < 1e-5


def test_shapes_and_noise(op):
    x = torch.rand(2, *op.img_size)
    y_clean = op.A(x)
    assert y_clean.shape == (2, *op.meas_shape)
    assert op.A_adjoint(y_clean).shape == x.shape
    noise = op(x) - y_clean
    if op.noise_sigma > 0:
        assert abs(float(noise.std()) / op.noise_sigma - 1) < 0.2
    else:
        assert noise.abs().max() == 0


def test_batch_equals_per_image(op):
    x = torch.rand(3, *op.img_size)
    y = op.A(x)
    z = torch.rand_like(x)
    for i in range(3):
        torch.testing.assert_close(op.A(x[i : i + 1]), y[i : i + 1], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(op.A_adjoint(y[i : i + 1]), op.A_adjoint(y)[i : i + 1], rtol=1e-5, atol=1e-5)
    gamma = 1.0 / op.norm_sq()
    op.warm_start = False  # CG stopping depends on the whole batch; compare with a cold start
    batch = op.prox_l2(z, y, gamma, tol=1e-7, max_iter=200)
    single = op.prox_l2(z[1:2], y[1:2], gamma, tol=1e-7, max_iter=200)
    op.warm_start = True
    torch.testing.assert_close(single, batch[1:2], rtol=1e-4, atol=1e-4)


def test_prox_l2_matches_reference_cg(op):
    """argmin 1/2||Ax-y||^2 + 1/(2 gamma)||x-z||^2 solves (I + gamma A^T A) x = z + gamma A^T y."""
    x = torch.rand(2, *op.img_size)
    y = op(x)
    z = torch.rand_like(x)
    gamma = torch.tensor([0.3, 3.0]) / op.norm_sq()  # condition numbers 1.3 and 4
    g = gamma.view(2, 1, 1, 1)
    ref = dinv_cg(lambda v: v + g * op.A_adjoint(op.A(v)), z + g * op.A_adjoint(y), max_iter=500, tol=1e-7, eps=0.0)
    assert _rel(op.prox_l2(z, y, gamma, tol=1e-7, max_iter=500), ref) < 1e-4
    assert _rel(op.prox_l2(z[:1], y[:1], gamma[0], tol=1e-7, max_iter=500), ref[:1]) < 1e-4


def test_prox_l2_with_zero_gamma_returns_z(op):
    z = torch.rand(1, *op.img_size)
    torch.testing.assert_close(op.prox_l2(z, op.A(z), 0.0), z)


def test_norm_sq_is_cached_and_tight(op):
    value = op.norm_sq()
    assert op.norm_sq() == value
    v = torch.randn(4, *op.img_size)
    rayleigh = op.A(v).flatten(1).pow(2).sum(1) / v.flatten(1).pow(2).sum(1)
    assert float(rayleigh.max()) <= value * (1 + 1e-4)
    power = ForwardOperator._compute_norm_sq(op, max_iter=500, tol=1e-8)
    assert abs(power - value) <= 2e-3 * value


def test_least_squares_reduces_residual(op):
    x = torch.rand(1, *op.img_size)
    y = op.A(x)
    x_ls = op.least_squares(y, max_iter=30)
    assert float((op.A(x_ls) - y).norm()) < 0.2 * float(y.norm())


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda s: torch.rand(*s), "4 dimensions"),
        (lambda s: torch.rand(1, s[0] + 1, *s[1:]), "channel"),
        (lambda s: torch.rand(1, s[0], s[1] + 1, s[2]), "shape"),
        (lambda s: torch.ones(1, *s, dtype=torch.int64), "floating-point"),
        (lambda s: torch.full((1, *s), float("nan")), "NaN"),
        (lambda s: torch.full((1, *s), float("inf")), "NaN or Inf"),
        (lambda s: [[0.0]], "torch.Tensor"),
    ],
)
def test_bad_images_raise_value_error(op, bad, match):
    with pytest.raises(ValueError, match=match):
        op.A(bad(op.img_size))
    with pytest.raises(ValueError, match=match):
        op.prox_l2(bad(op.img_size), op.A(torch.rand(1, *op.img_size)), 1.0)


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda s: torch.rand(*s), "shape"),
        (lambda s: torch.rand(1, *s[:-1], s[-1] + 1), "shape"),
        (lambda s: torch.ones(1, *s, dtype=torch.int32), "floating-point"),
        (lambda s: torch.full((1, *s), float("nan")), "NaN"),
    ],
)
def test_bad_measurements_raise_value_error(op, bad, match):
    with pytest.raises(ValueError, match=match):
        op.A_adjoint(bad(op.meas_shape))


def test_bad_gamma_and_batch_mismatch(op):
    z = torch.rand(2, *op.img_size)
    y = op.A(z)
    with pytest.raises(ValueError, match="gamma"):
        op.prox_l2(z, y, -1.0)
    with pytest.raises(ValueError, match="gamma"):
        op.prox_l2(z, y, torch.ones(3))
    with pytest.raises(ValueError, match="batch"):
        op.prox_l2(z[:1], y, 1.0)


def test_bad_construction_raises_value_error():
    with pytest.raises(ValueError, match="img_size"):
        GaussianBlur((24, 24), sigma_blur=1.0)
    with pytest.raises(ValueError, match="noise_sigma"):
        Inpainting((1, 8, 8), noise_sigma=-0.1)
