"""Inpainting and Fourier subsampling: masks, closed-form normal operator and prox."""

import pytest
import torch

from pnp_lpn.operators import FourierSubsampling, Inpainting
from pnp_lpn.operators.masks import radial_mask, variable_density_mask


def test_inpainting_mask_count_seed_and_channels():
    op = Inpainting((3, 20, 16), ratio=0.3, seed=1)
    assert op.mask.shape == (1, 20, 16)
    assert int(op.mask.sum()) == round(0.3 * 320)
    assert torch.equal(op.mask, Inpainting((3, 20, 16), ratio=0.3, seed=1).mask)
    assert not torch.equal(op.mask, Inpainting((3, 20, 16), ratio=0.3, seed=2).mask)
    x = torch.rand(1, 3, 20, 16)
    assert torch.equal(op.A(x) == 0, (op.mask == 0).expand(1, 3, 20, 16) | (x == 0))


def test_inpainting_accepts_user_mask_per_channel():
    mask = (torch.rand(2, 8, 8) > 0.5).float()
    op = Inpainting((2, 8, 8), mask=mask)
    x = torch.rand(1, 2, 8, 8)
    torch.testing.assert_close(op.A(x), mask * x)
    with pytest.raises(ValueError, match="mask"):
        Inpainting((2, 8, 8), mask=torch.ones(3, 8, 8))


def test_fourier_measurements_are_masked_orthonormal_fft():
    op = FourierSubsampling((2, 16, 12), pattern="random", ratio=0.4, seed=0)
    x = torch.rand(1, 2, 16, 12)
    y = torch.view_as_complex(op.A(x).contiguous())
    torch.testing.assert_close(y, op.mask * torch.fft.fft2(x, norm="ortho"))
    full = FourierSubsampling((2, 16, 12), mask=torch.ones(16, 12))
    torch.testing.assert_close(full.A_adjoint(full.A(x)), x, rtol=1e-5, atol=1e-6)  # orthonormal: A^T A = I


def test_fourier_asymmetric_mask_normal_operator_and_norm():
    """For a real image only the symmetrised mask (m(k)^2 + m(-k)^2) / 2 acts: A^T A is not a projection."""
    mask = torch.zeros(8, 8)
    mask[0, 1] = 1  # frequency (0, 1) without its mirror (0, -1)
    op = FourierSubsampling((1, 8, 8), mask=mask)
    assert op.norm_sq() == pytest.approx(0.5)
    x = torch.randn(1, 1, 8, 8)
    half = op.A_adjoint(op.A(x))
    torch.testing.assert_close(op.A_adjoint(op.A(half)), 0.5 * half, rtol=1e-5, atol=1e-6)


def test_variable_density_mask_has_full_centre_and_exact_count():
    m = variable_density_mask((32, 32), 0.25, torch.Generator().manual_seed(0), center_fraction=0.25)
    assert int(m.sum()) == 256
    assert m[14:19, 14:19].all()  # the disc around DC (16, 16) holds 64 samples
    op = FourierSubsampling((1, 32, 32), ratio=0.25, seed=0)
    assert op.mask[0, 0, 0] == 1  # DC, unshifted layout
    assert int(op.mask.sum()) == 256


def test_radial_mask_lines_through_centre():
    m = radial_mask((33, 33), n_lines=4)
    assert m[16, :].all() and m[:, 16].all()  # 0 and 90 degrees
    assert all(m[16 + k, 16 + k] for k in range(-16, 17))  # 45 degrees
    op = FourierSubsampling((1, 32, 32), pattern="radial", n_lines=10)
    assert op.pattern == "radial" and op.mask[0, 0, 0] == 1
    assert 0.1 < float(op.mask.mean()) < 0.4


def test_fourier_prox_is_closed_form_on_asymmetric_random_mask():
    op = FourierSubsampling((1, 16, 16), pattern="random", ratio=0.3, seed=3, noise_sigma=0.05)
    x, z = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    y, gamma = op(x), 4.0
    p = op.prox_l2(z, y, gamma)
    grad = (p - z) / gamma + op.A_adjoint(op.A(p) - y)
    assert float(grad.norm()) < 1e-5 * float(((z - p) / gamma).norm())


def test_bad_pattern():
    with pytest.raises(ValueError, match="pattern"):
        FourierSubsampling((1, 8, 8), pattern="spiral")
    with pytest.raises(ValueError, match="n_lines"):
        FourierSubsampling((1, 8, 8), pattern="radial", n_lines=0)
