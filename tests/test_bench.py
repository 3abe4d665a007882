"""Benchmark harness: tasks, method selection, the validation protocol and its outputs (tiny sizes)."""

import csv
import json

import pytest
import torch

from pnp_lpn.bench import BENCH_PRESETS, PRESETS, TASKS, BenchConfig, run_benchmark, write_all
from pnp_lpn.bench.methods import default_lam, methods_for, parse_method
from pnp_lpn.bench.protocol import CSV_COLUMNS, task_images
from pnp_lpn.bench.tasks import make_split, natural_crops
from pnp_lpn.cli import main

TINY = BenchConfig(tasks=("deblur-b1-n0.02",), methods=("lpn-admm", "tv-admm"), size=32, n_val=1, n_test=1,
                   grid=(0.5, 2.0), max_iter=2)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.set_num_threads(1)
    result = run_benchmark(TINY, progress=False)
    out = tmp_path_factory.mktemp("bench")
    return result, out, write_all(result, out, "test")


def test_tiny_run_outputs(tiny_run):
    result, out, paths = tiny_run
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS and [r["method"] for r in rows] == ["lpn-admm", "tv-admm"]
    assert all(r["n_iter"] == "2" and float(r["psnr"]) > 15 and 0 < float(r["ssim"]) <= 1 for r in rows)
    md = (out / "results.md").read_text()
    assert "| lpn-admm |" in md and "lam (chosen)" in md and "deblur-b1-n0.02" in md
    assert md.count(" (edge) |") == 2  # a two-value grid: every choice is at its edge, and flagged
    runs = json.loads((out / "runs.json").read_text())
    assert len(runs[0]["psnr_per_iter"]) == 2 and len(runs[0]["objective_per_iter"]) == 2
    assert runs[1]["objective_per_iter"] == [] and runs[1]["objective"] is None
    assert {p.name for p in paths} >= {"recon_deblur-b1-n0.02.png", "psnr_vs_iter.png", "objective_vs_iter.png"}


def test_lam_is_the_best_validation_value(tiny_run):
    result, out, _ = tiny_run
    with (out / "grid.csv").open() as f:
        grid = list(csv.DictReader(f))
    for rec in result.records:
        rows = [g for g in grid if g["method"] == rec.method]
        centre = default_lam(parse_method(rec.method), TASKS[rec.task], result.splits[rec.task]["val"])
        assert [float(g["lam"]) for g in rows] == pytest.approx([0.5 * centre, 2 * centre])
        assert all(float(g["lam"]) == float(f"{float(g['lam']):.6g}") for g in rows)  # no 99.99999999999999
        best = max(rows, key=lambda g: float(g["val_psnr"]))
        assert [g["chosen"] for g in rows].count("True") == 1 and best["chosen"] == "True"
        assert rec.lam == pytest.approx(float(best["lam"])) and rec.val_psnr == pytest.approx(float(best["val_psnr"]))
    assert default_lam(parse_method("lpn-admm"), TASKS["deblur-b1-n0.02"], None) == pytest.approx(0.02**2 / 0.1**2)


def test_splits_are_held_out_and_reproducible():
    task = TASKS["deblur-b1-n0.02"]
    val, test = (task_images(task, s, TINY) for s in ("val", "test"))
    assert not torch.equal(val, test) and val.shape == (1, 1, 32, 32)
    assert torch.equal(make_split(task, test, "test").y, make_split(task, test, "test").y)
    assert not torch.equal(make_split(task, test, "test").y, make_split(task, test, "val").y)
    with pytest.raises(ValueError, match="training images"):
        natural_crops(("camera",), 32, 1)
    ct = task_images(TASKS["ct-60"], "test", BenchConfig(**{**TINY.__dict__, "n_test": 2}))
    assert ct.shape == (2, 1, 32, 32) and float(ct.max()) <= 1


def test_methods_per_task():
    names = ("lpn-admm", "lpn-pgd", "aelpn-admm", "bm3d-admm", "fbp")
    assert [m.name for m in methods_for(TASKS["ct-60"], names)] == ["lpn-admm", "lpn-pgd", "bm3d-admm", "fbp"]
    assert [m.name for m in methods_for(TASKS["cs-4"], names)] == ["lpn-admm", "lpn-pgd", "aelpn-admm", "bm3d-admm"]
    den = methods_for(TASKS["denoise-0.2"], names)
    assert [m.name for m in den] == ["lpn", "aelpn", "bm3d"] and not any(m.tuned for m in den)


def test_a_user_prior_file_is_benchmarked_like_the_shipped_one(tmp_path):
    from importlib.resources import files

    shipped = str(files("pnp_lpn.priors") / "weights" / "lpn-natural-gray.safetensors")
    copy = tmp_path / "mine.safetensors"
    copy.write_bytes(open(shipped, "rb").read())
    args = ["bench", "--tasks", "deblur-b1-n0.02,denoise-0.1", "--methods", "lpn-admm,mine-admm", "--size", "32",
            "--iters", "2", "--grid", "1", "--threads", "1", "--quiet", "--out", str(tmp_path / "out"),
            "--prior", f"mine={copy}"]
    assert main(args) == 0
    with (tmp_path / "out" / "results.csv").open() as f:
        rows = {(r["task"], r["method"]): r for r in csv.DictReader(f)}
    assert set(rows) == {("deblur-b1-n0.02", "lpn-admm"), ("deblur-b1-n0.02", "mine-admm"),
                         ("denoise-0.1", "lpn"), ("denoise-0.1", "mine")}
    for task, a, b in [("deblur-b1-n0.02", "lpn-admm", "mine-admm"), ("denoise-0.1", "lpn", "mine")]:
        assert rows[task, a]["psnr"] == rows[task, b]["psnr"] and rows[task, b]["denoiser"] == str(copy)
    assert f"--prior mine={copy}" in (tmp_path / "out" / "results.md").read_text()
    cfg = TINY.with_overrides(priors=(("mine", str(copy)),))
    assert [m.name for m in methods_for(TASKS["ct-60"], ("mine-pgd", "fbp"), cfg.priors)] == ["mine-pgd", "fbp"]
    with pytest.raises(ValueError, match="taken"):
        TINY.with_overrides(priors=(("lpn", str(copy)),))
    with pytest.raises(ValueError, match="unknown"):
        TINY.with_overrides(methods=("mine-admm",))  # not registered


def test_a_prior_file_without_training_level_gets_the_generic_lam_centre(tmp_path):
    import pnp_lpn as pl

    path = pl.save_prior(pl.LPN(1, channels=(4,), depth=1), tmp_path / "bare.safetensors")  # no sigma_train
    priors = (("bare", str(path)),)
    task = TASKS["cs-4"]
    split = make_split(task, natural_crops(("coins",), 32, 1), "val")
    assert default_lam(parse_method("bare-admm", priors), task, split) == pytest.approx(task.noise_sigma**2 / 0.1**2)


def test_config_validation_and_presets():
    assert set(BENCH_PRESETS) == {"quick", "full"} and set(BENCH_PRESETS["full"].tasks) == set(TASKS)
    assert PRESETS is BENCH_PRESETS  # the earlier name
    with pytest.raises(ValueError, match="unknown"):
        TINY.with_overrides(methods=("lpn-lbfgs",))
    assert TINY.with_overrides(size=48, grid=None).size == 48


def test_cli_bench_ct_and_denoising(tmp_path, capsys):
    args = ["bench", "--tasks", "ct-60,denoise-0.2", "--methods", "lpn-admm,fbp,aelpn-admm", "--size", "32",
            "--iters", "2", "--grid", "1", "--threads", "1", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 0
    with (tmp_path / "results.csv").open() as f:
        rows = [(r["task"], r["method"], r["solver"]) for r in csv.DictReader(f)]
    assert rows == [("ct-60", "lpn-admm", "admm"), ("ct-60", "fbp", "fbp"),
                    ("denoise-0.2", "lpn", "denoise"), ("denoise-0.2", "aelpn", "denoise")]
    assert (tmp_path / "denoise_robustness.png").exists() and "runs in" in capsys.readouterr().out
    assert "--preset quick --tasks ct-60,denoise-0.2" in (tmp_path / "results.md").read_text()


def test_cli_bench_help_and_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--help"])
    assert e.value.code == 0 and "--preset" in capsys.readouterr().out
    assert main(["bench", "--tasks", "deblur-b9", "--quiet"]) == 2
    assert "unknown" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--prior", "mine.safetensors"])
    assert "NAME=FILE.safetensors" in capsys.readouterr().err


def test_box_reaches_the_solver(monkeypatch):
    """Deblurring runs unclipped, compressed sensing in [0, 1], and --box clips every task."""
    import pnp_lpn.bench.methods as methods
    from pnp_lpn.bench.protocol import evaluate

    boxes, original = [], methods.solve

    def recording_solve(*args, box=None, **kwargs):
        boxes.append(box)
        return original(*args, box=box, **kwargs)

    monkeypatch.setattr(methods, "solve", recording_solve)
    config = TINY.with_overrides(grid=(1.0,), max_iter=1)
    boxed = config.with_overrides(box_all=True)
    for name, cfg in [("deblur-b1-n0.02", config), ("cs-16", config), ("deblur-b1-n0.02", boxed)]:
        task = TASKS[name]
        splits = {s: make_split(task, task_images(task, s, cfg), s) for s in ("val", "test")}
        evaluate(task, parse_method("tv-admm"), splits, cfg)
    assert boxes == [None, None, (0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (0.0, 1.0)]


def test_colour_tasks_use_rgb_crops_and_the_opponent_colour_prior(tmp_path):
    """Colour tasks: r, g, b crops of chelsea (val) and stereo_motorcycle (test); the LPN family
    runs as OpponentColorPrior (its denoising score equals that prior's denoise applied by hand); DnCNN
    (grey weights) is left out."""
    import pnp_lpn as pl
    from pnp_lpn.metrics import psnr

    task = TASKS["denoise-color-0.1"]
    val, test = (task_images(task, s, TINY) for s in ("val", "test"))
    assert val.shape == test.shape == (1, 3, 32, 32) and not torch.equal(val, test)
    assert (val[:, 0] - val[:, 1]).abs().max() > 0.01  # really colour
    names = ("lpn-admm", "tv-admm", "dncnn-admm", "bm3d-admm")
    assert [m.name for m in methods_for(TASKS["deblur-color-b1-n0.02"], names)] == ["lpn-admm", "tv-admm", "bm3d-admm"]
    args = ["bench", "--tasks", "deblur-color-b1-n0.02,denoise-color-0.1", "--methods", "lpn-admm,tv-admm",
            "--size", "32", "--iters", "2", "--grid", "1", "--threads", "1", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 0
    with (tmp_path / "results.csv").open() as f:
        rows = {(r["task"], r["method"]): r for r in csv.DictReader(f)}
    assert set(rows) == {("deblur-color-b1-n0.02", "lpn-admm"), ("deblur-color-b1-n0.02", "tv-admm"),
                         ("denoise-color-0.1", "lpn"), ("denoise-color-0.1", "tv")}
    split = make_split(task, test, "test")
    with torch.no_grad():
        by_hand = pl.OpponentColorPrior(pl.load_pretrained("lpn-natural-gray")).denoise(split.y, 0.1).clamp(0, 1)
    assert float(rows["denoise-color-0.1", "lpn"]["psnr"]) == pytest.approx(float(psnr(by_hand, split.x).mean()), abs=0.01)
    assert float(rows["deblur-color-b1-n0.02", "lpn-admm"]["psnr"]) > 20
    assert (tmp_path / "recon_deblur-color-b1-n0.02.png").exists()
