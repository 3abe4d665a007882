"""Studies: many slices in batches, resumable after a kill, split across torchrun processes."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import pnp_lpn as pl
from pnp_lpn.cli import main

N_SLICES, SIZE = 6, 32
#: a blur study simulated from clean slices: 3 batches of 2, 4 iterations each
STUDY = ["--operator", "blur", "--simulate", "--noise", "0.02", "--iters", "4", "--batch-size", "2", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
#: the CLI with every solve followed by a pause, so that a kill lands in the middle of the study
SLOW_CLI = """
import sys, time
import pnp_lpn.study.run as run
solve = run.solve
def slow(*args, **kwargs):
    result = solve(*args, **kwargs)
    time.sleep(2.0)
    return result
run.solve = slow
from pnp_lpn.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Path:
    from skimage.data import camera

    img = camera().astype(np.float32) / 255
    path = tmp_path_factory.mktemp("study") / "stack.npy"
    np.save(path, np.stack([img[40 * i:40 * i + SIZE, 100:100 + SIZE] for i in range(N_SLICES)]))
    return path


@pytest.fixture(scope="module")
def uninterrupted(stack) -> Path:
    """The study run once, start to end, in this process."""
    out = stack.parent / "uninterrupted"
    torch.set_num_threads(1)
    assert main(["solve", str(stack), *STUDY, "--out", str(out)]) == 0
    return out


def _rows(out: Path) -> list[dict]:
    with open(out / "summary.csv") as f:
        return list(csv.DictReader(f))


def _assert_same_results(a: Path, b: Path) -> None:
    rows_a, rows_b = _rows(a), _rows(b)
    assert [(r["slice"], r["status"], r["iterations"], r["batch"]) for r in rows_a] == \
           [(r["slice"], r["status"], r["iterations"], r["batch"]) for r in rows_b]
    for r in rows_a:
        np.testing.assert_allclose(np.load(a / r["output"]), np.load(b / r["output"]), atol=1e-5)


def test_summary_holds_every_slice_and_psnr_against_the_clean_slices(stack, uninterrupted):
    clean = np.load(stack)
    rows = _rows(uninterrupted)
    summary = json.loads((uninterrupted / "summary.json").read_text())
    assert summary["ok"] == N_SLICES and summary["error"] == 0 and len(summary["slices"]) == N_SLICES
    assert [r["slice"] for r in rows] == [f"stack_{i:04d}" for i in range(N_SLICES)]
    assert [int(r["batch"]) for r in rows] == [0, 0, 1, 1, 2, 2]
    for i, r in enumerate(rows):
        x = np.load(uninterrupted / r["output"])
        assert x.shape == (SIZE, SIZE) and r["status"] == "ok" and int(r["iterations"]) == 4
        mse = np.mean((np.clip(x, 0, 1) - clean[i]) ** 2)  # PSNR recomputed here, from the files
        assert float(r["psnr"]) == pytest.approx(10 * np.log10(1 / mse), abs=1e-3)
        assert float(r["psnr"]) > 25 and 0 < float(r["ssim"]) <= 1
        assert np.isfinite(float(r["objective"])) and float(r["wall_time_s"]) > 0
        assert r["stop_reason"] == "max_iter reached"


def test_study_equals_solve_on_each_batch_and_resumes_a_lost_slice(tmp_path):
    """The API on measurements: each output equals pl.solve on its batch; a slice whose row is
    gone (killed between its .npy and its row) is solved again with its batch, and nothing else."""
    op = pl.operators.GaussianBlur(img_size=(1, 24, 24), sigma_blur=1.0, noise_sigma=0.03)
    prior = pl.load_pretrained("lpn-natural-gray")
    y = op(torch.rand(5, 1, 24, 24, generator=torch.Generator().manual_seed(1)))
    np.save(tmp_path / "y.npy", y[:, 0].numpy())
    kwargs = dict(max_iter=3, tol=0.0)
    result = pl.solve_study(tmp_path / "y.npy", op, prior, tmp_path / "out", batch_size=2, progress=False, **kwargs)
    assert result.solved == 5 and result.n_ok == 5
    for k in range(3):
        direct = pl.solve(y[2 * k:2 * k + 2], op, prior, **kwargs).x
        for j in range(len(direct)):
            out = np.load(tmp_path / "out" / f"y_{2 * k + j:04d}.npy")
            np.testing.assert_allclose(out, direct[j, 0].numpy(), atol=1e-6)
    (tmp_path / "out" / ".study" / "rows" / "y_0003.json").unlink()
    (tmp_path / "out" / ".y_0001.npy.tmp-1").write_bytes(b"partial")  # a killed write
    again = pl.solve_study(tmp_path / "y.npy", op, prior, tmp_path / "out", batch_size=2, progress=False, **kwargs)
    assert again.solved == 2 and again.n_ok == 5
    assert not list((tmp_path / "out").glob(".*.tmp-*"))
    with pytest.raises(ValueError, match="other settings.*solve"):
        pl.solve_study(tmp_path / "y.npy", op, prior, tmp_path / "out", batch_size=2, progress=False, max_iter=4)


def test_killed_study_resumes_to_the_uninterrupted_result(stack, uninterrupted, tmp_path, capsys):
    out = tmp_path / "killed"
    args = ["solve", str(stack), *STUDY, "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CLI, *args], env=ENV, stderr=subprocess.DEVNULL)
    rows = out / ".study" / "rows"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(list(rows.glob("*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = sorted(p.stem for p in rows.glob("*.json"))
    assert finished == ["stack_0000", "stack_0001"], finished  # batch 0 done, batch 1 lost in flight
    assert not (out / "summary.csv").exists()
    assert sorted(p.name for p in out.glob("*.npy")) == ["stack_0000.npy", "stack_0001.npy"]
    assert main(args) == 0
    assert "(4 solved now)" in capsys.readouterr().out
    _assert_same_results(out, uninterrupted)


def test_torchrun_with_two_processes_equals_one(stack, uninterrupted, tmp_path):
    out = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "pnp_lpn.cli",
           "solve", str(stack), *STUDY, "--out", str(out)]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_same_results(out, uninterrupted)
    assert [int(r["process"]) for r in _rows(out)] == [0, 0, 1, 1, 0, 0]  # batch k on process k % 2
    assert json.loads((out / "summary.json").read_text())["processes"] == 2


def test_bad_and_missing_slices_are_reported_and_skipped(tmp_path, capsys):
    from skimage.data import camera

    folder = tmp_path / "slices"
    folder.mkdir()
    img = camera()[:SIZE, :SIZE]
    for i in range(3):
        from PIL import Image

        Image.fromarray(img[:, ::-1] if i else img).save(folder / f"s{i}.png")
    (folder / "s3.png").write_bytes(b"corrupt")
    np.save(folder / "s4.npy", np.zeros((SIZE, SIZE + 1), np.float32))
    (folder / "notes.txt").write_text("not a slice")
    assert main(["solve", str(folder), *STUDY, "--out", str(tmp_path / "out")]) == 1
    rows = {r["slice"]: r for r in _rows(tmp_path / "out")}
    assert list(rows) == ["s0", "s1", "s2", "s3", "s4"]
    assert [rows[s]["status"] for s in rows] == ["ok", "ok", "ok", "error", "error"]
    assert "not a readable image" in rows["s3"]["error"] and f"({SIZE}, {SIZE + 1})" in rows["s4"]["error"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.npy")) == ["s0.npy", "s1.npy", "s2.npy"]
    assert "2 failed" in capsys.readouterr().out
    files = [str(folder / "s0.png"), str(folder / "gone.png")]
    assert main(["solve", *files, *STUDY, "--out", str(tmp_path / "list")]) == 1
    gone = {r["slice"]: r for r in _rows(tmp_path / "list")}["gone"]
    assert gone["status"] == "error" and "not found" in gone["error"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_study_on_the_gpu_matches_the_cpu(tmp_path):
    y = np.random.default_rng(0).random((3, 24, 24), dtype=np.float32)
    outputs = {}
    for device in ("cpu", "cuda"):
        op = pl.operators.GaussianBlur(img_size=(1, 24, 24), sigma_blur=1.0, noise_sigma=0.03, device=device)
        prior = pl.load_pretrained("lpn-natural-gray", device=device)
        result = pl.solve_study(y, op, prior, tmp_path / device, batch_size=2, progress=False, max_iter=3, tol=0.0)
        assert result.n_ok == 3
        outputs[device] = [np.load(tmp_path / device / f"slice_{i:04d}.npy") for i in range(3)]
    for a, b in zip(outputs["cpu"], outputs["cuda"]):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_denoising_study_is_one_denoise_call_per_batch(tmp_path, capsys):
    """--operator denoise on a folder: each output equals prior.denoise(y, sigma) of its image."""
    rng = np.random.default_rng(3)
    noisy = [np.clip(rng.random((SIZE, SIZE)) * 0.5 + 0.25 + 0.1 * rng.standard_normal((SIZE, SIZE)), 0, 1)
             .astype(np.float32) for _ in range(3)]
    (tmp_path / "noisy").mkdir()
    for i, y in enumerate(noisy):
        np.save(tmp_path / "noisy" / f"n{i}.npy", y)
    assert main(["solve", str(tmp_path / "noisy"), "--operator", "denoise", "--noise", "0.1", "--batch-size", "2",
                 "--quiet", "--out", str(tmp_path / "out")]) == 0
    prior = pl.load_pretrained("lpn-natural-gray")
    with torch.no_grad():
        expected = prior.denoise(torch.from_numpy(np.stack(noisy))[:, None], 0.1)
    rows = _rows(tmp_path / "out")
    assert [r["stop_reason"] for r in rows] == ["prior.denoise at sigma 0.1"] * 3
    for i, r in enumerate(rows):
        np.testing.assert_allclose(np.load(tmp_path / "out" / r["output"]), expected[i, 0].numpy(), atol=1e-5)
