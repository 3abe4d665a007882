"""The convex patch-mixture field: its start against an explicit best-zone DCT denoiser,
convexity only through the projection, and clear errors."""

import math

import numpy as np
import pytest
import torch
from scipy.fft import dctn, idctn

import pnp_lpn as pl
from pnp_lpn.priors.mixture_field import MixtureField


def best_zone_denoiser(x: np.ndarray, size: int, lam: float) -> np.ndarray:
    """Sliding-window zonal selection written out: in every zero-padded size x size window,
    c = DCT(window) / size; keep the zone {u <= a, v <= b} maximising 1/2 sum_zone c^2 - lam
    (|zone| - 1); add idct(c on the zone) / size back into the window."""
    r = size // 2
    xp = np.pad(x, r)
    out = np.zeros_like(xp)
    u, v = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    zones = [(u <= a) & (v <= b) for a in range(size) for b in range(size)]
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            c = dctn(xp[i : i + size, j : j + size], norm="ortho") / size
            scores = [0.5 * (c[z] ** 2).sum() - lam * (z.sum() - 1) for z in zones]
            keep = zones[int(np.argmax(scores))]
            out[i : i + size, j : j + size] += idctn(np.where(keep, c, 0.0), norm="ortho") / size
    return out[r:-r, r:-r]


@pytest.mark.parametrize("size", [3, 5])
def test_start_is_sliding_window_best_zone_selection(size):
    """At tau -> 0 the started field's gradient is the explicit best-zone denoiser above."""
    sigma, t = 0.1, 2.0
    field = MixtureField(1, size, sigma=sigma, threshold=t).double()
    with torch.no_grad():
        field.log_tau.fill_(math.log(1e-12))
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 1, 9, 8, generator=g, dtype=torch.float64) + 0.1 * torch.randn(1, 1, 9, 8, generator=g,
                                                                                          dtype=torch.float64))
    x.requires_grad_(True)
    (f,) = torch.autograd.grad(field(x).sum(), x)
    ref = best_zone_denoiser(x.detach()[0, 0].numpy(), size, 0.5 * (t * sigma) ** 2 / size**2)
    np.testing.assert_allclose(f[0, 0].numpy(), ref, atol=1e-6)  # the frame is stored in float32
    assert np.abs(ref - x.detach()[0, 0].numpy()).max() > 0.05  # the selection did remove something


def test_negative_quadratic_weights_break_convexity():
    """Convexity comes from w >= 0: the midpoint test catches a field with w <= 0."""
    field = MixtureField(1, 3).double()
    with torch.no_grad():
        field.quad.weight.copy_(-field.quad.weight.abs() - 0.5)
    g = torch.Generator().manual_seed(1)
    x, y = (torch.randn(64, 1, 6, 6, generator=g, dtype=torch.float64) for _ in range(2))
    pot = lambda z: field(z).flatten(1).sum(1)
    assert (pot(0.5 * (x + y)) > 0.5 * (pot(x) + pot(y)) + 1e-9).any()
    field.quad.project()
    assert (pot(0.5 * (x + y)) <= 0.5 * (pot(x) + pot(y)) + 1e-9).all()


def test_multichannel_frame_is_block_diagonal_dct():
    """Filter c P^2 + j applies DCT filter j to channel c only, so an image with one channel
    set to zero gets the same field as the single-channel field of the other channel."""
    two, one = MixtureField(2, 3).double(), MixtureField(1, 3).double()
    x = torch.rand(2, 1, 7, 7, dtype=torch.float64)
    both = torch.cat([x, torch.zeros_like(x)], 1)
    torch.testing.assert_close(two.frame(both)[:, :9], one.frame(x))
    assert two.frame(both)[:, 9:].abs().max() == 0


def test_lpn_with_mixture_round_trips_through_a_checkpoint(tmp_path):
    prior = pl.LPN(1, channels=(4, 6), depth=1, quadratic_kernel=0, mixture_kernel=5, sigma_train=0.05)
    path = pl.save_prior(prior, tmp_path / "mix.safetensors")
    loaded = pl.load_prior(path)
    assert loaded.mixture_kernel == 5
    x = torch.rand(1, 1, 12, 12)
    torch.testing.assert_close(loaded(x), prior(x))


@pytest.mark.parametrize("kw,match", [(dict(kernel=4), "odd frame size"), (dict(kernel=3, sigma=0.0), "sigma > 0")])
def test_bad_arguments_are_explained(kw, match):
    with pytest.raises(ValueError, match=match):
        MixtureField(1, **kw)
