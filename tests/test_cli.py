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


def test_solve_cs_continues_by_default_and_takes_a_continuation(tmp_path, capsys):
    from skimage.data import camera

    img = tmp_path / "img.npy"
    np.save(img, camera()[::8, ::8][:32, :32].astype(np.float32) / 255)
    base = ["solve", str(img), "--operator", "cs", "--ratio", "0.25", "--simulate", "--noise", "0.01", "--iters", "5"]
    for extra, expected in (([], "first 4 prior steps"), (["--continuation", "2"], "first 2 prior steps"),
                            (["--continuation", "0"], None)):
        out = tmp_path / f"out{len(extra)}{expected}"
        assert main(base + extra + ["--out", str(out)]) == 0
        notes = " ".join(json.loads((out / "history.json").read_text())["notes"])
        assert (expected in notes) if expected else "continuation" not in notes
    for bad in ("-1", "x"):
        with pytest.raises(SystemExit):
            main(base + ["--continuation", bad])
    assert "integer >= 0" in capsys.readouterr().err


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
    start = str(tmp_path / "a" / "prior.safetensors")
    run(3, "e", "--init", start)  # a fine-tuned prior names the checkpoint it started from
    assert read_metadata(tmp_path / "e" / "prior.safetensors")["training"]["init_from"] == start
    assert read_metadata(tmp_path / "a" / "prior.safetensors")["training"]["init_from"] is None
    assert "validation PSNR" in capsys.readouterr().out


def test_solve_errors_come_before_torch_and_write_nothing(tmp_path, capsys):
    """A missing file or a bad option value is one line, exit 2, before torch is imported, and
    --out is not created."""
    import subprocess
    import sys

    probe = ("import sys\nfrom pnp_lpn.cli import main\ntry:\n    rc = main(sys.argv[1:])\n"
             "except SystemExit as e:\n    rc = e.code\nprint(rc, 'torch' in sys.modules)")
    out = tmp_path / "out"
    for args, message in [(["missing.png", "--operator", "blur"], "missing.png: not found"),
                          ([str(tmp_path), "--operator", "inpainting"], "needs its mask"),
                          (["x.npy", "--operator", "ct", "--size", "0"], "integer >= 1")]:
        done = subprocess.run([sys.executable, "-c", probe, "solve", *args, "--out", str(out)], capture_output=True,
                              text=True, cwd=tmp_path)
        assert done.stdout.split() == ["2", "False"] and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and not out.exists()


def test_solve_sinogram_layout_is_checked_against_the_geometry(tmp_path, capsys):
    """A sinogram with another detector count is refused with the option that fixes it, and
    solved with --detectors; a transposed one is named as such."""
    import pnp_lpn as pl

    op = pl.operators.ParallelBeamCT(img_size=(1, 32, 32), n_angles=12, n_detectors=40, noise_sigma=0.5)
    sino = op(pl.data.shepp_logan(32))[0, 0].numpy()
    np.save(tmp_path / "sino.npy", sino)
    np.save(tmp_path / "sino_t.npy", sino.T)
    base = ["--operator", "ct", "--size", "32", "--views", "12", "--noise", "0.5", "--iters", "2",
            "--prior", "lpn-ct", "--quiet", "--out", str(tmp_path / "out")]
    fails(capsys, ["solve", str(tmp_path / "sino.npy"), *base], "(views, detectors) = (12, 46), got (12, 40)")
    fails(capsys, ["solve", str(tmp_path / "sino.npy"), *base], "pass --detectors 40")
    fails(capsys, ["solve", str(tmp_path / "sino_t.npy"), *base, "--detectors", "40"], "transposed")
    assert not (tmp_path / "out").exists()
    assert main(["solve", str(tmp_path / "sino.npy"), *base, "--detectors", "40"]) == 0
    assert np.load(tmp_path / "out" / "x.npy").shape == (32, 32)


def test_solve_inpainting_reads_the_mask_file_and_16_bit_images(tmp_path, capsys):
    """A 16-bit PNG enters as [0, 1] (said on stderr); the mask file decides which pixels are data:
    the result keeps the observed pixels close to y and fills the others."""
    from PIL import Image
    from skimage.data import camera

    clean = camera()[100:148, 200:248].astype(np.float64) / 255
    mask = (np.random.default_rng(0).random(clean.shape) < 0.6)
    y16 = np.round(clean * mask * 65535).astype(np.uint16)
    Image.fromarray(y16).save(tmp_path / "y.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    args = ["solve", str(tmp_path / "y.png"), "--operator", "inpainting", "--mask", str(tmp_path / "mask.png"),
            "--noise", "0.01", "--iters", "30", "--quiet", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "16-bit I;16" in err and "scaled by 1/65535" in err and f"mask keeps {mask.mean():.1%}" in err
    x = np.load(tmp_path / "out" / "x.npy")
    assert json.loads((tmp_path / "out" / "history.json").read_text())["box"] == [0.0, 1.0]  # Inpainting.default_box
    assert np.abs(x - clean)[mask].mean() < 0.02  # observed pixels: close to the data
    assert np.abs(x - clean)[~mask].mean() < 0.6 * np.abs(clean)[~mask].mean()  # missing ones: filled, not 0
    np.save(tmp_path / "small.npy", np.ones((8, 8), np.float32))
    fails(capsys, [*args[:4], "--mask", str(tmp_path / "small.npy"), *args[6:]], "the measurement's shape (48, 48)")
