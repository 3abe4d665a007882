"""Command line: every subcommand has --help; demo and solve run end to end (small sizes)."""

import json

import numpy as np
import torch
import pytest

from pnp_lpn.cli import main


def fails(capsys, args: list[str], message: str) -> None:
    """The command ends with exit code 2 and one error line on stderr (its last) that contains ``message``."""
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if ": error" in line]
    assert errors == lines[-1:] and message in errors[0] and "Traceback" not in "".join(lines), lines


@pytest.mark.parametrize("cmd", ["demo", "solve", "train", "bench", "inspect"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0 and "usage" in capsys.readouterr().out


def test_demo_runs_small(tmp_path, capsys):
    assert main(["demo", "--size", "64", "--views", "20", "--iters", "2", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "FBP" in out and "PSNR" in out and (tmp_path / "ct_demo.png").exists()


@pytest.mark.parametrize("extra", [[], ["--dihedral"], ["--method", "pgd", "--step", "1"]])
def test_solve_simulated_blur(tmp_path, capsys, extra):
    from skimage.data import camera

    img = tmp_path / "img.npy"
    np.save(img, camera()[:48, :48].astype(np.float32) / 255)
    args = ["solve", str(img), "--operator", "blur", "--simulate", "--noise", "0.02", "--iters", "3",
            "--out", str(tmp_path / "out")] + extra
    assert main(args) == 0
    hist = json.loads((tmp_path / "out" / "history.json").read_text())
    assert len(hist["history"]["objective"]) == 3 and (tmp_path / "out" / "x.png").exists()
    if "--step" in extra:  # PGD at the MAP lam with the exact prox of (step lam) R
        assert hist["step"] == 1.0 and hist["lam"] < 1 and "inner solver iterations" in hist["notes"][-1]
    assert "PSNR" in capsys.readouterr().out


def test_solve_color_keeps_rgb_with_the_opponent_colour_prior(tmp_path, capsys):
    """--color: a png photo stays r, g, b, the grey prior runs as OpponentColorPrior, and the
    output is a colour image; --color with a CT operator or a grey array is refused."""
    from skimage.data import astronaut
    from skimage.io import imread, imsave

    img = tmp_path / "img.png"
    imsave(img, astronaut()[100:148, 180:228])
    assert main(["solve", str(img), "--operator", "blur", "--simulate", "--noise", "0.02", "--iters", "3", "--color",
                 "--out", str(tmp_path / "out")]) == 0
    assert imread(tmp_path / "out" / "x.png").shape == (48, 48, 3)
    assert np.load(tmp_path / "out" / "x.npy").shape == (3, 48, 48)
    assert "PSNR" in capsys.readouterr().out
    fails(capsys, ["solve", str(img), "--operator", "ct", "--size", "48", "--color"], "--color works with")
    grey = tmp_path / "grey.npy"
    np.save(grey, np.zeros((48, 48), np.float32))
    fails(capsys, ["solve", str(grey), "--operator", "blur", "--simulate", "--color"], "r, g, b image")


def test_solve_denoise_is_one_denoise_call_of_the_prior(tmp_path, capsys):
    """--operator denoise: x = prior.denoise(y, --noise) for a noisy image (colour: the opponent
    colour prior's denoise); with --simulate the printed PSNR rises; no noise level or 'tv' is refused."""
    import re

    import torch
    from skimage.data import astronaut, camera

    import pnp_lpn as pl

    rgb = astronaut()[100:140, 180:220].astype(np.float32).transpose(2, 0, 1) / 255
    noisy = rgb + 0.1 * np.random.default_rng(0).standard_normal(rgb.shape).astype(np.float32)
    np.save(tmp_path / "noisy.npy", noisy)
    assert main(["solve", str(tmp_path / "noisy.npy"), "--operator", "denoise", "--noise", "0.1", "--color",
                 "--out", str(tmp_path / "rgb")]) == 0
    with torch.no_grad():
        expected = pl.OpponentColorPrior(pl.load_pretrained("lpn-natural-gray")).denoise(torch.from_numpy(noisy)[None], 0.1)
    np.testing.assert_allclose(np.load(tmp_path / "rgb" / "x.npy"), expected[0].numpy(), atol=1e-5)
    np.save(tmp_path / "clean.npy", camera()[:48, :48].astype(np.float32) / 255)
    assert main(["solve", str(tmp_path / "clean.npy"), "--operator", "denoise", "--simulate", "--noise", "0.2",
                 "--out", str(tmp_path / "grey")]) == 0
    before, after = map(float, re.search(r"PSNR ([\d.]+) -> ([\d.]+) dB", capsys.readouterr().out).groups())
    assert after > before + 3 and np.load(tmp_path / "grey" / "x.npy").shape == (48, 48)
    fails(capsys, ["solve", str(tmp_path / "clean.npy"), "--operator", "denoise"], "--noise SIGMA")
    fails(capsys, ["solve", str(tmp_path / "clean.npy"), "--operator", "denoise", "--noise", "0.1", "--prior", "tv"],
          "not 'tv'")


def test_solve_ct_keeps_the_unit_box_unless_told_otherwise(tmp_path, capsys):
    from pnp_lpn.data import shepp_logan

    img = tmp_path / "phantom.npy"
    np.save(img, shepp_logan(48)[0, 0].numpy())
    base = ["solve", str(img), "--operator", "ct", "--simulate", "--views", "20", "--noise", "0.5", "--iters", "2",
            "--prior", "lpn-ct"]
    for extra, box in (([], [0.0, 1.0]), (["--box", "none"], None), (["--box=-0.1,1.2"], [-0.1, 1.2])):
        out = tmp_path / f"out{len(extra)}{box}"
        assert main(base + extra + ["--out", str(out)]) == 0
        hist = json.loads((out / "history.json").read_text())
        assert hist["box"] == box
        if box is not None:  # ADMM returns the prior's output: in the box up to the recorded violation
            x = np.load(out / "x.npy")
            outside = np.sqrt(np.mean((x - x.clip(*box)) ** 2))
            assert outside == pytest.approx(hist["history"]["box_violation"][-1], rel=1e-4, abs=1e-7)
            assert outside < 0.05
    for bad in ("1,0", "0;1"):
        with pytest.raises(SystemExit):
            main(base + ["--box", bad])
    assert "LO" in capsys.readouterr().err


def test_solve_ct_needs_size(tmp_path, capsys):
    sino = tmp_path / "sino.npy"
    np.save(sino, np.zeros((10, 20), np.float32))
    fails(capsys, ["solve", str(sino), "--operator", "ct"], "--size")


def test_train_seed_fixes_the_initial_weights_too(tmp_path, capsys):
    from pnp_lpn.checkpoint import load_tensors, read_metadata

    def run(seed, name, *extra):
        out = tmp_path / name
        assert main(["train", "--preset", "natural-gray", "--steps", "1", "--batch-size", "2", "--seed", str(seed),
                     "--out", str(out), *extra]) == 0
        return load_tensors(out / "prior.safetensors", "model.")

    a, b, c = run(3, "a"), run(3, "b"), run(4, "c")  # same process: the global RNG has moved between runs
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    run(3, "d", "--intensity-shift", "0.25")
    assert read_metadata(tmp_path / "d" / "prior.safetensors")["training"]["config"]["intensity_shift"] == 0.25
    assert "validation PSNR" in capsys.readouterr().out
