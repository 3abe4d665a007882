"""Test images: shapes, ranges, reproducibility, and that held-out means held out."""

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


def test_natural_gray_0_4_is_the_earlier_photo_set():
    new, old = datasets.make_sampler("natural-gray"), datasets.make_sampler("natural-gray-0.4")
    assert len(old.images) == 17 and len(new.images) == 20
    assert all(torch.equal(a, b) for a, b in zip(old.images, new.images))  # the three extra come last
    assert {tuple(im.shape) for im in new.images[17:]} == {(1, 512, 512), (1, 600, 512)}
