"""Test images: shapes, ranges, reproducibility, and that held-out means held out."""

import importlib.util

import pytest
import torch

from pnp_lpn import data
from pnp_lpn.training import datasets


def test_shepp_logan_and_natural_image_shapes_and_range():
    x = data.shepp_logan(64)
    assert x.shape == (1, 1, 64, 64) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1 and float(x.max()) > 0.9
    coins = data.natural_image("coins")
    chelsea = data.natural_image("chelsea")  # colour source, returned as luma
    assert coins.shape == (1, 303, 384) and chelsea.shape[0] == 1
    assert 0 <= float(chelsea.min()) and float(chelsea.max()) <= 1
    moto = data.natural_image("stereo_motorcycle")  # left view of the stereo pair
    rgb = data.natural_image("chelsea", color=True)
    assert rgb.shape == (3, 300, 451) and data.natural_image("coins", color=True).shape == (3, 303, 384)
    torch.testing.assert_close(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2], chelsea[0])  # ITU-R 601 luma
    assert moto.shape == (1, 500, 741) and "stereo_motorcycle" not in datasets.training_image_names()
    with pytest.raises(ValueError, match="no image 'nope'"):
        data.natural_image("nope")
    with pytest.raises(ValueError, match="not an image"):
        data.natural_image("lbp_frontal_face_cascade_filename")  # a function of skimage.data returning a path


def test_ct_phantoms_reproducible_from_seed_and_distinct_across_seeds():
    a, b = data.ct_phantoms(3, 32, seed=7), data.ct_phantoms(3, 32, seed=7)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert all(p.shape == (1, 32, 32) and float(p.min()) >= 0 and float(p.max()) <= 1 for p in a)
    assert not torch.equal(a[0], data.ct_phantoms(1, 32, seed=8)[0])
    assert len(set(data.CT_SEEDS.values())) == len(data.CT_SEEDS)


def test_held_out_images_are_not_training_images():
    training = datasets.training_image_names()
    assert not training & set(data.HELD_OUT_NATURAL)
    assert datasets.VALIDATION == list(data.HELD_OUT_NATURAL)


def test_photo_sets_grow():
    sets = [datasets.make_sampler(n).images for n in ("natural-gray-small", "natural-gray", "natural-gray-extra")]
    assert [len(s) for s in sets] == [17, 20, 27]
    for old, new in zip(sets, sets[1:]):  # each set extends the one before; the new photos come last
        assert all(torch.equal(a, b) for a, b in zip(old, new))
    assert {tuple(im.shape) for im in sets[1][17:]} == {(1, 512, 512), (1, 600, 512)}
    assert {tuple(im.shape) for im in sets[2][20:]} == {(1, 574, 702), (1, 512, 768), (1, 768, 1024), (1, 377, 300)}
    assert all(float(im.min()) >= 0 and float(im.max()) <= 1 and im.std() > 0.05 for im in sets[2][20:])
    with pytest.raises(ValueError, match="photo_set must be one of"):
        datasets.natural_images("train", photo_set="0.3")
    # the earlier names (the package version that introduced a set) still work
    assert all(torch.equal(a, b) for a, b in zip(datasets.make_sampler("natural-gray-0.4").images, sets[0]))
    assert len(datasets.natural_images("train", photo_set="0.5")) == 20


def test_wide_photo_set_adds_twenty_photos_and_no_test_photo():
    standard = datasets.make_sampler("natural-gray").images
    wide = datasets.make_sampler("natural-gray-wide").images
    assert len(wide) == 40 and all(torch.equal(a, b) for a, b in zip(standard, wide))
    assert all(float(im.min()) >= 0 and float(im.max()) <= 1 and im.std() > 0.05 for im in wide[20:])
    assert {tuple(im.shape) for im in wide[20:26]} == {(1, 256, 256), (1, 254, 266), (1, 1500, 1085), (1, 643, 960)}
    # the photos of benchmarks/denoise_heldout.py (sporco, mahotas) are not in it
    extra = datasets.make_sampler("natural-gray-extra").images[20:]
    assert not any(a.shape == b.shape and torch.equal(a, b) for a in extra for b in wide)


def test_missing_photo_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps sporco"):
        datasets.natural_images("train", photo_set="extra")


