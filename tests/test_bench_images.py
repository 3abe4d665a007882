"""pnp-lpn bench --images: the benchmark protocol on a user's folder."""

import numpy as np
from PIL import Image

from pnp_lpn.bench import BENCH_PRESETS, run_benchmark
from pnp_lpn.bench.user_images import UserImages
from pnp_lpn.cli import main

SIZES = [(40, 44), (30, 50), (36, 36), (48, 30), (32, 40), (45, 45), (33, 60), (50, 34)]


def _folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "mine"
    folder.mkdir()
    pixels = {}
    for i, shape in enumerate(SIZES):
        pixels[f"img{i}"] = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(pixels[f"img{i}"]).save(folder / f"img{i}.png")
    return folder, pixels


def test_validation_and_test_split_and_centre_crops(tmp_path):
    """2 of 8 images validate, 6 are scored, none in both; the task images are the centre 28 x 28
    crops of the files, cut here independently."""
    folder, pixels = _folder(tmp_path)
    images = UserImages(str(folder))
    split = images.split()
    assert len(split["val"]) == 2 and len(split["test"]) == 6
    assert sorted(split["val"] + split["test"]) == sorted(pixels) and split == UserImages(str(folder)).split()
    config = BENCH_PRESETS["quick"].with_overrides(tasks=("deblur-b1-n0.02",), methods=("tv-admm",), size=28, n_val=2,
                                             n_test=6, grid=(1.0,), max_iter=2, user_images=images)
    result = run_benchmark(config, progress=False)
    for part in ("val", "test"):
        x = result.splits["deblur-b1-n0.02"][part].x
        for img, name in zip(x, split[part]):
            p = pixels[name]
            top, left = (p.shape[0] - 28) // 2, (p.shape[1] - 28) // 2
            np.testing.assert_allclose(img[0].numpy(), p[top:top + 28, left:left + 28] / 255, atol=1e-6)
    assert result.records[0].n_test == 6


def test_cli_bench_images_runs_and_refuses_small_images(tmp_path, capsys):
    folder, _ = _folder(tmp_path)
    out = tmp_path / "out"
    args = ["bench", "--images", str(folder), "--tasks", "ct-60", "--methods", "fbp", "--size", "30", "--quiet",
            "--out", str(out)]
    assert main(args) == 0
    assert "centre crops of the images in" in (out / "results.md").read_text()
    assert main(args[:-5] + ["--size", "31", "--quiet", "--out", str(tmp_path / "none")]) == 2
    assert "smaller than the crop size 31" in capsys.readouterr().err and not (tmp_path / "none").exists()
