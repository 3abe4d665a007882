"""Baseline denoisers: DnCNN (scico weights) against a known score, TV and BM3D against the
libraries they wrap, the missing-weights message, and the registry."""

import importlib.util

import bm3d
import numpy as np
import pytest
import torch
from deepinv.models import TVDenoiser
from skimage.data import camera

from pnp_lpn.baselines import BM3D, TV, AdaptiveDnCNN, DnCNN, make_denoiser
from pnp_lpn.baselines import dncnn as dncnn_module
from pnp_lpn.metrics import psnr
from pnp_lpn.priors import ProxPrior


def _camera(size=None):
    x = torch.from_numpy(camera() / 255.0).float()[None, None]
    return x if size is None else x[..., 200 : 200 + size, 200 : 200 + size].contiguous()


def _noisy(x, sigma, seed=0):
    return x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def test_dncnn_17m_camera_score():
    """17M at sigma 0.1 on camera 512^2 takes 20.0 dB to 29.8 dB (docs/benchmarks.md, "Baseline denoisers")."""
    x = _camera()
    y = _noisy(x, 0.1)
    with torch.no_grad():
        out = DnCNN("17M")(y, 0.1)
    assert abs(float(psnr(y, x)) - 20.0) < 0.05
    assert abs(float(psnr(out, x)) - 29.8) < 0.3


def test_dncnn_kernel_layout_is_flax_cross_correlation():
    """A Flax HWIO kernel K applied to a delta at (c, c) gives out[o, c+1-i, c+1-j] = K[i, j, 0, o].
    (PSNR alone cannot see a spatially transposed kernel: 29.83 vs 29.84 dB on camera.)"""
    model = DnCNN("6M")
    kernel = dncnn_module.load_variables(dncnn_module.weights_path("6M"))["params"]["conv_start"]["kernel"]
    delta = torch.zeros(1, 1, 9, 9)
    delta[..., 4, 4] = 1.0
    with torch.no_grad():
        out = model.conv_start(delta)[0]
    expected = torch.from_numpy(kernel[::-1, ::-1, 0, :].copy()).permute(2, 0, 1)
    assert torch.allclose(out[:, 3:6, 3:6], expected) and float(out.abs().sum()) == pytest.approx(
        float(expected.abs().sum()), rel=1e-5)


def test_dncnn_is_translation_equivariant_and_per_channel():
    """Circular padding makes the network commute with circular shifts; channels are independent."""
    model = DnCNN("6M")
    y = _noisy(_camera(32), 0.1)
    with torch.no_grad():
        out = model(y)
        assert torch.allclose(model(y.roll((5, -3), (-2, -1))), out.roll((5, -3), (-2, -1)), atol=1e-5)
        two = model(torch.cat([y, y.flip(-1)], 1))
    assert torch.allclose(two[:, :1], out, atol=1e-6) and torch.allclose(two[:, 1:], model(y.flip(-1)), atol=1e-6)


def test_dncnn_noise_input_variant():
    model = DnCNN("6N")
    y = _noisy(_camera(32), 0.1).repeat(2, 1, 1, 1)
    with torch.no_grad():
        low, high = model(y, 0.02), model(y, 0.2)
        mixed = model(y, torch.tensor([0.02, 0.2]))
    assert not torch.allclose(low, high, atol=1e-3)
    assert torch.allclose(mixed[:1], low[:1], atol=1e-6) and torch.allclose(mixed[1:], high[1:], atol=1e-6)
    with pytest.raises(ValueError, match="sigma"):
        model(y)


def test_for_sigma_and_adaptive_choice():
    assert DnCNN.for_sigma(0.05).variant == "17L"
    assert DnCNN.for_sigma(0.12, depth=6).variant == "6M"
    assert DnCNN.for_sigma(0.3).variant == "17H"
    assert DnCNN.for_sigma(0.1, blind=False).variant == "17N"
    model = AdaptiveDnCNN(depth=6)
    y = _noisy(_camera(32), 0.1).repeat(2, 1, 1, 1)
    with torch.no_grad():
        out = model(y, torch.tensor([0.05, 0.3]))
        assert torch.equal(out[:1], model.models["L"](y[:1])) and torch.equal(out[1:], model.models["H"](y[1:]))


def test_missing_weights_name_the_install_command(monkeypatch, tmp_path):
    class Spec:
        submodule_search_locations = [str(tmp_path)]

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: Spec())
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps scico==0\.0\.7"):
        DnCNN("17M")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="scico"):
        DnCNN("6M")


def test_unknown_variant():
    with pytest.raises(ValueError, match="17M"):
        DnCNN("17X")


def test_tv_matches_deepinv_and_denoises():
    x = _camera(48)
    y = _noisy(x, 0.1)
    out = TV(n_it_max=60)(y, 0.1)
    assert torch.equal(out, TVDenoiser(n_it_max=60)(y, ths=0.1))
    assert torch.equal(TV(n_it_max=60, weight=2.0)(y, 0.1), TVDenoiser(n_it_max=60)(y, ths=0.2))
    assert float(psnr(out, x)) > float(psnr(y, x)) + 5


def test_tv_is_the_prox_of_ths_tv():
    """The output minimises 1/2||u - y||^2 + ths sum_p ||(D u)_p|| (forward differences)."""
    y = _noisy(_camera(32), 0.1)
    ths = 0.08
    u = TV(n_it_max=1000, crit=1e-9)(y, ths)

    def objective(v):
        dx = torch.nn.functional.pad(v[..., :, 1:] - v[..., :, :-1], (0, 1))
        dy = torch.nn.functional.pad(v[..., 1:, :] - v[..., :-1, :], (0, 0, 0, 1))
        return float(0.5 * (v - y).pow(2).sum() + ths * torch.sqrt(dx**2 + dy**2).sum())

    g = torch.Generator().manual_seed(1)
    base = objective(u)
    assert all(objective(u + 1e-3 * torch.randn(u.shape, generator=g)) > base for _ in range(5))
    assert objective(TV(n_it_max=1000, crit=1e-9)(y, 1.3 * ths)) > base


def test_bm3d_matches_library_and_denoises():
    x = _camera(32)
    y = _noisy(x, 0.1)
    out = BM3D()(y, 0.1)
    ref = bm3d.bm3d(y[0, 0].double().numpy(), sigma_psd=0.1)
    # bm3d itself is not bit-reproducible: repeated calls on the same input differ by up to ~1e-4
    assert out.dtype == y.dtype and np.abs(out[0, 0].numpy() - ref).max() < 1e-3
    assert float(psnr(out, x)) > float(psnr(y, x)) + 5
    with pytest.raises(ValueError, match="positive"):
        BM3D()(y, 0.0)


def test_bm3d_per_image_and_channel_and_colour_bm3d_on_rgb(monkeypatch):
    """Each (image, channel) plane goes to bm3d.bm3d with its image's sigma; a 3-channel image
    goes whole (H, W, 3) to colour BM3D, bm3d.bm3d_rgb."""
    def fake(z, sigma_psd, profile):
        assert z.shape == (8, 8)
        return z * sigma_psd

    def fake_rgb(z, sigma_psd, profile):
        assert z.shape == (8, 8, 3)
        return z * sigma_psd + np.array([0.0, 1.0, 2.0])

    monkeypatch.setattr(bm3d, "bm3d", fake)
    monkeypatch.setattr(bm3d, "bm3d_rgb", fake_rgb)
    sig = torch.tensor([0.1, 0.3]).view(2, 1, 1, 1)
    y = torch.rand(2, 2, 8, 8)
    assert torch.allclose(BM3D()(y, sig.flatten()), y * sig)
    y = torch.rand(2, 3, 8, 8)
    assert torch.allclose(BM3D()(y, sig.flatten()), y * sig + torch.arange(3.0).view(1, 3, 1, 1))


def test_registry():
    assert isinstance(make_denoiser("tv"), TV) and isinstance(make_denoiser("bm3d"), BM3D)
    assert isinstance(make_denoiser("dncnn"), AdaptiveDnCNN)
    assert make_denoiser("dncnn-6N").variant == "6N"
    prior = make_denoiser("lpn-natural-gray")
    assert isinstance(prior, ProxPrior) and prior.sigma_train == 0.1
    assert make_denoiser("tv") is not make_denoiser("tv")
    with pytest.raises(ValueError, match="bm3d"):
        make_denoiser("nlm")
