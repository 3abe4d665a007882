"""Blur operators: kernel rule, deepinv conventions, boundary modes, FFT data step."""

import pytest
import torch
from deepinv.physics import BlurFFT, LinearPhysics
from deepinv.physics import Blur as DinvBlur

from pnp_lpn.operators import Blur, GaussianBlur
from pnp_lpn.operators.blur import gaussian_kernel, gaussian_kernel_size


@pytest.mark.parametrize("sigma, size", [(0.5, 5), (1.0, 5), (2.0, 7), (2.4, 7), (3.0, 9), (4.0, 13)])
def test_kernel_size_rule(sigma, size):
    """max(5, int(3 sigma)) rounded up to odd (the LPN reference rule, docs/operators.md "Blur")."""
    assert gaussian_kernel_size(sigma) == size
    k = gaussian_kernel(sigma)
    assert k.shape == (size, size)
    assert abs(float(k.sum()) - 1) < 1e-6
    torch.testing.assert_close(k, k.flip(0))
    assert k[size // 2, size // 2] == k.max()


def test_even_kernel_size_rejected():
    with pytest.raises(ValueError, match="odd"):
        GaussianBlur((1, 16, 16), sigma_blur=1.0, kernel_size=6)


def test_circular_matches_deepinv_blurfft_including_prox():
    """Same convolution convention (true convolution, centre h//2) and prox_l2 convention."""
    k = torch.rand(5, 4)
    k /= k.sum()
    x, z = torch.rand(2, 2, 20, 18), torch.rand(2, 2, 20, 18)
    ours = Blur(k, (2, 20, 18))
    ref = BlurFFT(img_size=(2, 20, 18), filter=k[None, None])
    y = ours.A(x)
    torch.testing.assert_close(y, ref.A(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.A_adjoint(y), ref.A_adjoint(y), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.prox_l2(z, y, 0.7), ref.prox_l2(z, y, 0.7), rtol=1e-4, atol=1e-5)


def test_zero_padding_matches_deepinv_blur_and_its_cg_prox():
    k = torch.rand(5, 4)
    k /= k.sum()
    x, z = torch.rand(1, 1, 20, 18), torch.rand(1, 1, 20, 18)
    ours = Blur(k, (1, 20, 18), padding="zeros")
    ref = DinvBlur(filter=k[None, None], padding="constant")
    y = ours.A(x)
    torch.testing.assert_close(y, ref.A(x), rtol=1e-5, atol=1e-6)
    # deepinv's generic CG prox (LinearPhysics.prox_l2) on our operator: same minimiser
    ref_prox = LinearPhysics.prox_l2(ours, z, y, 0.7, max_iter=100, tol=1e-6)
    torch.testing.assert_close(ours.prox_l2(z, y, 0.7, tol=1e-7), ref_prox, rtol=1e-4, atol=1e-5)


def test_valid_matches_deepinv_and_paddings_agree_inside():
    k = gaussian_kernel(1.0)
    x = torch.rand(1, 3, 24, 24)
    circ, zeros, valid = (GaussianBlur((3, 24, 24), 1.0, padding=p) for p in ("circular", "zeros", "valid"))
    torch.testing.assert_close(valid.A(x), DinvBlur(filter=k[None, None], padding="valid").A(x))
    assert valid.meas_shape == (3, 20, 20)
    torch.testing.assert_close(circ.A(x)[..., 2:-2, 2:-2], valid.A(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(zeros.A(x)[..., 2:-2, 2:-2], valid.A(x), rtol=1e-5, atol=1e-6)


def test_circular_norm_is_exact_max_of_kernel_spectrum():
    op = GaussianBlur((1, 32, 32), 2.0)
    assert abs(op.norm_sq() - 1.0) < 1e-6  # a normalised non-negative kernel has DC gain 1
    zeros = GaussianBlur((1, 32, 32), 2.0, padding="zeros")
    assert 0.95 < zeros.norm_sq() <= 1.0 + 1e-6


def test_zero_padding_warm_start_saves_iterations():
    op = GaussianBlur((1, 32, 32), 2.0, padding="zeros", noise_sigma=0.02)
    x = torch.rand(2, 1, 32, 32)
    y = op(x)
    op.prox_l2(x, y, 5.0)
    cold = op.last_cg_iterations
    op.prox_l2(x, y, 5.0)  # same problem: the stored solution already solves it
    assert op.last_cg_iterations < cold
    assert op.last_cg_iterations <= 1


def test_fft_prox_is_exact_where_cg_is_approximate():
    op = GaussianBlur((3, 32, 32), 2.0, noise_sigma=0.02)
    x, z = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    y, gamma = op(x), 10.0
    p = op.prox_l2(z, y, gamma)
    # optimality: (p - z) / gamma + A^T (A p - y) = 0
    grad = (p - z) / gamma + op.A_adjoint(op.A(p) - y)
    assert float(grad.norm()) < 1e-5 * float(((z - p) / gamma).norm())


def test_bad_kernel_raises_value_error():
    with pytest.raises(ValueError, match="2-D"):
        Blur(torch.rand(1, 3, 3), (1, 8, 8))
    with pytest.raises(ValueError, match="larger"):
        Blur(torch.rand(9, 3), (1, 8, 8))
    with pytest.raises(ValueError, match="padding"):
        Blur(torch.rand(3, 3), (1, 8, 8), padding="reflect")
    with pytest.raises(ValueError, match="sigma_blur"):
        GaussianBlur((1, 8, 8), sigma_blur=0.0)
