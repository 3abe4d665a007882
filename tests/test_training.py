"""Training: losses by hand, convexity kept, resume equivalence, checkpoints, data-parallel run."""

import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pnp_lpn as pl
from pnp_lpn.checkpoint import load_prior, read_metadata, save_prior
from pnp_lpn.priors.convex_net import NonNegConv2d
from pnp_lpn.training import PatchSampler, TrainConfig, proximal_matching_loss, train
from pnp_lpn.training.losses import gamma_for, l1_loss, l2_loss
from pnp_lpn.training.train import stored_train_config

TINY = dict(channels=(4, 6), depth=1)


def test_losses_against_hand_computation():
    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, -1.0, 1.0]]).view(2, 1, 2, 2)
    # ||x_hat - x||^2 = 1 and 4; gamma = 2: 1 - exp(-1/4), 1 - exp(-1)
    torch.testing.assert_close(proximal_matching_loss(x_hat, x, 2.0), torch.tensor([1 - math.exp(-0.25), 1 - math.exp(-1.0)]))
    torch.testing.assert_close(l1_loss(x_hat, x), torch.tensor([0.25, 1.0]))
    torch.testing.assert_close(l2_loss(x_hat, x), torch.tensor([0.25, 1.0]))
    assert gamma_for((1, 40, 40)) == pytest.approx(0.08 * 40)
    with pytest.raises(ValueError):
        proximal_matching_loss(x_hat, x, 0.0)
    with pytest.raises(ValueError, match="shape"):
        l1_loss(x_hat, x[:1])


def test_schedule_warmup_then_staged_gamma():
    cfg = TrainConfig(steps=100, warmup_fraction=0.2)
    g = gamma_for((1, 8, 8))
    assert cfg.phase(0, (1, 8, 8)) == ("l1", cfg.lr_warmup, None)
    assert cfg.phase(19, (1, 8, 8))[0] == "l1"
    stages = [cfg.phase(s, (1, 8, 8))[2] for s in (20, 40, 60, 99)]
    assert stages == pytest.approx([8 * g, 4 * g, 2 * g, g])


def test_earlier_field_names_are_accepted_and_read():
    from pnp_lpn.training import presets

    cfg = TrainConfig(steps=100, l1_fraction=0.2, lr_l1=5e-3)
    assert (cfg.warmup_fraction, cfg.lr_warmup, cfg.warmup_steps) == (0.2, 5e-3, 20)
    assert (cfg.l1_fraction, cfg.lr_l1, cfg.l1_steps) == (0.2, 5e-3, 20)
    assert cfg == TrainConfig(steps=100, warmup_fraction=0.2, lr_warmup=5e-3)
    assert stored_train_config({"l1_fraction": 0.2, "lr_l1": 5e-3, "steps": 100}) == \
        stored_train_config({"warmup_fraction": 0.2, "lr_warmup": 5e-3, "steps": 100})
    assert presets.PRESETS is presets.TRAINING_PRESETS


def test_annealed_warmup_follows_a_cosine_from_lr_warmup_to_lr_pm():
    cfg = TrainConfig(steps=100, warmup_fraction=0.5, lr_warmup=1e-3, lr_pm=1e-4, anneal_warmup=True)
    lrs = [cfg.phase(s, (1, 8, 8))[1] for s in range(50)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[25] == pytest.approx(0.5 * (1e-3 + 1e-4))
    assert lrs[-1] == pytest.approx(1e-4 + 0.9e-3 * (1 + math.cos(math.pi * 49 / 50)) / 2)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert cfg.phase(50, (1, 8, 8))[:2] == ("pm", 1e-4)
    # an annealed run cannot be lengthened: the warm-up rates of the steps done would change
    assert TrainConfig(steps=200, warmup_fraction=0.5, anneal_warmup=True).phase(25, (1, 8, 8))[1] != lrs[25]


def test_intensity_transform_draws_one_bounded_offset_and_contrast_per_sample():
    x = torch.rand(64, 1, 5, 5)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert TrainConfig().intensity_transform(x, g) is x and torch.equal(g.get_state(), state)  # off: no draw
    shifted = TrainConfig(intensity_shift=0.5).intensity_transform(x, g)
    offsets = shifted - x
    torch.testing.assert_close(offsets, offsets[:, :, :1, :1].expand_as(offsets))  # constant per sample
    c = offsets[:, 0, 0, 0]
    assert c.abs().max() <= 0.5 and c.min() < -0.25 and c.max() > 0.25  # spread over [-0.5, 0.5]
    ratios = TrainConfig(intensity_scale=0.5).intensity_transform(x, g) / x
    torch.testing.assert_close(ratios, ratios[:, :, :1, :1].expand_as(ratios))  # one contrast per sample
    a = ratios[:, 0, 0, 0]
    assert (a - 1).abs().max() <= 0.5 and a.min() < 0.75 and a.max() > 1.25


def _sampler():
    g = torch.Generator().manual_seed(0)
    return PatchSampler([torch.rand(1, 24, 24, generator=g) for _ in range(3)], 12)


def _cfg(**kw):
    return TrainConfig(**{**dict(steps=6, batch_size=4, warmup_fraction=0.5, ckpt_every=3, val_every=3), **kw})


def test_training_keeps_convexity_and_lowers_loss():
    torch.manual_seed(0)
    prior = pl.LPN(1, **TINY)
    hist = train(prior, _sampler(), _cfg(steps=30, warmup_fraction=1.0, lr_warmup=1e-2), progress=False)
    assert all((m.weight >= 0).all() for m in prior.modules() if isinstance(m, NonNegConv2d))
    assert sum(hist.loss[-5:]) < sum(hist.loss[:5])
    assert not prior.training


class _InterruptAt(PatchSampler):
    """Sends this process SIGINT while drawing batch ``at`` (as a user pressing Ctrl-C)."""

    def __init__(self, base, at):
        self.__dict__.update(base.__dict__)
        self.calls, self.at = 0, at

    def sample(self, batch_size, generator):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return super().sample(batch_size, generator)


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    torch.manual_seed(1)
    reference = pl.LPN(1, **TINY)
    init = {k: v.clone() for k, v in reference.state_dict().items()}
    train(reference, _sampler(), _cfg(), out_dir=tmp_path / "a", progress=False)

    prior = pl.LPN(1, **TINY)
    prior.load_state_dict(init)
    with pytest.raises(KeyboardInterrupt):
        train(prior, _InterruptAt(_sampler(), at=2), _cfg(), out_dir=tmp_path / "b", progress=False)
    assert read_metadata(tmp_path / "b" / "checkpoint.safetensors")["training"]["step"] == 2
    resumed = pl.LPN(1, **TINY)  # fresh weights: everything must come from the checkpoint
    hist = train(resumed, _sampler(), _cfg(), out_dir=tmp_path / "b", progress=False)
    assert len(hist.loss) == 6
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0)
    # built without sigma_train, the prior now records the training level, and so do its files
    assert resumed.sigma_train == 0.1
    assert read_metadata(tmp_path / "b" / "checkpoint.safetensors")["config"]["sigma_train"] == 0.1


def test_run_can_be_lengthened_when_the_steps_done_keep_their_schedule(tmp_path):
    torch.manual_seed(1)
    init = pl.LPN(1, **TINY).state_dict()
    reference = pl.LPN(1, **TINY)
    reference.load_state_dict(init)
    train(reference, _sampler(), _cfg(steps=4, warmup_fraction=1.0), out_dir=tmp_path / "a", progress=False)
    prior = pl.LPN(1, **TINY)
    prior.load_state_dict(init)
    train(prior, _sampler(), _cfg(steps=2, warmup_fraction=1.0), out_dir=tmp_path / "b", progress=False)
    hist = train(prior, _sampler(), _cfg(steps=4, warmup_fraction=1.0), out_dir=tmp_path / "b", progress=False)
    assert len(hist.loss) == 4
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(prior.state_dict()[k], v, rtol=0, atol=0)
    # 2 warm-up + 2 proximal-matching steps cannot become the first 4 warm-up steps of 8
    train(pl.LPN(1, **TINY), _sampler(), _cfg(steps=4), out_dir=tmp_path / "c", progress=False)
    with pytest.raises(ValueError, match="schedule of steps already taken"):
        train(pl.LPN(1, **TINY), _sampler(), _cfg(steps=8), out_dir=tmp_path / "c", progress=False)


def test_checkpoint_with_the_earlier_field_names_resumes(tmp_path):
    """Checkpoints written before the rename store l1_fraction / lr_l1 (the shipped priors do):
    a run resumes from one as from a current checkpoint."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(1)
    init = pl.LPN(1, **TINY).state_dict()
    reference, prior = pl.LPN(1, **TINY), pl.LPN(1, **TINY)
    reference.load_state_dict(init)
    prior.load_state_dict(init)
    train(reference, _sampler(), _cfg(steps=4, warmup_fraction=1.0), out_dir=tmp_path / "a", progress=False)
    train(prior, _sampler(), _cfg(steps=2, warmup_fraction=1.0), out_dir=tmp_path / "b", progress=False)
    ckpt = tmp_path / "b" / "checkpoint.safetensors"
    meta = read_metadata(ckpt)
    config = meta["training"]["config"]
    config["l1_fraction"], config["lr_l1"] = config.pop("warmup_fraction"), config.pop("lr_warmup")
    save_file(load_file(str(ckpt)), str(ckpt), metadata={"pnp_lpn": json.dumps(meta)})
    prior = pl.LPN(1, **TINY)  # fresh weights: everything must come from the checkpoint
    hist = train(prior, _sampler(), _cfg(steps=4, warmup_fraction=1.0), out_dir=tmp_path / "b", progress=False)
    assert len(hist.loss) == 4
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(prior.state_dict()[k], v, rtol=0, atol=0)


def test_resume_refuses_other_settings(tmp_path):
    train(pl.LPN(1, **TINY), _sampler(), _cfg(), out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different settings"):
        train(pl.LPN(1, **TINY), _sampler(), _cfg(sigma=0.2), out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="architecture|holds"):
        train(pl.AELPN(1, **TINY), _sampler(), _cfg(), out_dir=tmp_path, progress=False)


@pytest.mark.parametrize("cls", [pl.LPN, pl.AELPN])
def test_checkpoint_round_trip_with_metadata(tmp_path, cls):
    prior = cls(2, **TINY, sigma_train=0.05)
    path = save_prior(prior, tmp_path / "p.safetensors", {"data": "unit test", "steps": 0})
    loaded = load_prior(path)
    x = torch.rand(2, 2, 9, 9)
    torch.testing.assert_close(loaded(x), prior.eval()(x))
    meta = loaded.metadata
    assert meta["architecture"] == cls.__name__ and meta["config"]["sigma_train"] == 0.05
    assert meta["data"] == "unit test" and meta["package_version"] == pl.__version__


def test_trainer_records_the_range_of_its_targets(tmp_path):
    """data_range = range of the targets a x + c, a in [1 - r, 1 + r], c in [-s, s], over the
    data's values [lo, hi]: [min(a lo) - s, max(a hi) + s]; kept in the checkpoint; none for an
    AE-LPN (it commutes with every a x + c)."""
    cfg = TrainConfig(intensity_scale=0.5, intensity_shift=0.25)
    assert cfg.target_range(0.2, 1.0) == pytest.approx((0.1 - 0.25, 1.5 + 0.25))
    assert cfg.target_range(-1.0, 2.0) == pytest.approx((-1.5 - 0.25, 3.0 + 0.25))
    assert TrainConfig().target_range(0.2, 1.0) == (0.2, 1.0)
    g = torch.Generator().manual_seed(0)
    images = [0.3 + 0.4 * torch.rand(1, 16, 16, generator=g), 0.1 + 0.5 * torch.rand(1, 16, 16, generator=g)]
    lo, hi = float(images[1].min()), max(float(images[0].max()), float(images[1].max()))
    prior = pl.LPN(1, **TINY)
    train(prior, PatchSampler(images, 8), _cfg(steps=2, intensity_scale=0.5), out_dir=tmp_path, progress=False)
    assert prior.data_range == pytest.approx((0.5 * lo, 1.5 * hi))
    assert load_prior(tmp_path / "checkpoint.safetensors").data_range == pytest.approx((0.5 * lo, 1.5 * hi))
    ae = pl.AELPN(1, **TINY)
    train(ae, PatchSampler(images, 8), _cfg(steps=2), progress=False)
    assert ae.data_range is None and load_prior(save_prior(ae, tmp_path / "ae.safetensors")).data_range is None
    rescaled = pl.RescaledPrior(pl.LPN(1, **TINY, sigma_train=0.1), 0.2)
    assert rescaled.data_range is None
    prior.sigma_train = 0.1
    assert pl.RescaledPrior(prior, 0.2).data_range == pytest.approx((lo, 3 * hi))  # s = 1/2: f_s sees v / 2


def test_shipped_priors_carry_their_training_range():
    for name in ("lpn-natural-gray", "lpn-natural-gray-mixed", "lpn-ct", "lpn-mnist"):
        prior = pl.load_pretrained(name)
        assert prior.data_range is not None and prior.data_range[0] < 0.01 and prior.data_range[1] > 0.99, name
    assert pl.load_pretrained("lpn-natural-gray").data_range == (-0.5, 2.0)  # contrast [0.5, 1.5], offsets +-0.5
    assert pl.load_pretrained("aelpn-natural-gray").data_range is None


def test_corrupted_or_mismatched_checkpoints_are_rejected(tmp_path):
    path = save_prior(pl.LPN(1, **TINY), tmp_path / "p.safetensors")
    raw = path.read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="safetensors"):
        load_prior(bad)
    # weights that do not fit the stored architecture
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(path))
    meta = json.loads(__import__("safetensors").safe_open(str(path), "pt").metadata()["pnp_lpn"])
    meta["config"]["channels"] = [5, 6]
    meta.pop("sha256")  # without the digest (which reports any change first) the shapes are compared
    save_file(tensors, str(tmp_path / "mismatch.safetensors"), metadata={"pnp_lpn": json.dumps(meta)})
    with pytest.raises(ValueError, match="do not match"):
        load_prior(tmp_path / "mismatch.safetensors")
    with pytest.raises(FileNotFoundError):
        load_prior(tmp_path / "missing.safetensors")
    for bad_range in ([1.0, 0.0], [0.0, float("inf")], "0 to 1"):
        meta = json.loads(__import__("safetensors").safe_open(str(path), "pt").metadata()["pnp_lpn"])
        meta["data_range"] = bad_range
        save_file(tensors, str(tmp_path / "range.safetensors"), metadata={"pnp_lpn": json.dumps(meta)})
        with pytest.raises(ValueError, match="data_range"):
            load_prior(tmp_path / "range.safetensors")


def test_loading_uses_no_pickle():
    src = (Path(pl.__file__).parent).rglob("*.py")
    assert not any(re.search(r"pickle\.loads?\(|torch\.load\(", p.read_text()) for p in src)


def test_unknown_pretrained_name_lists_available():
    with pytest.raises(ValueError, match="available"):
        pl.load_pretrained("no-such-prior")
    assert isinstance(pl.list_pretrained(), list)


DDP_SCRIPT = r"""
import sys, torch, torch.distributed as dist
import pnp_lpn as pl
from pnp_lpn.training import PatchSampler, TrainConfig, train
dist.init_process_group("gloo")
torch.manual_seed(0)
g = torch.Generator().manual_seed(0)
sampler = PatchSampler([torch.rand(1, 24, 24, generator=g) for _ in range(3)], 12)
prior = pl.LPN(1, channels=(4, 6), depth=1)
train(prior, sampler, TrainConfig(steps=4, batch_size=4, warmup_fraction=0.5), progress=False)
flat = torch.cat([p.detach().flatten() for p in prior.parameters()])
torch.save(flat, f"{sys.argv[1]}/rank{dist.get_rank()}.pt")
dist.destroy_process_group()
"""


def test_data_parallel_training_with_two_processes(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517", str(script), str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    torch.testing.assert_close(r0, r1, rtol=0, atol=0)  # gradients were averaged: replicas agree


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_training_checkpoint_loads_on_cpu(tmp_path):
    """A run on CUDA writes a checkpoint that a CPU-only machine loads and resumes."""
    prior = pl.LPN(1, **TINY).cuda()
    train(prior, _sampler(), _cfg(steps=4, warmup_fraction=1.0), out_dir=tmp_path, progress=False)
    loaded = load_prior(tmp_path / "checkpoint.safetensors")
    x = torch.rand(1, 1, 12, 12)
    torch.testing.assert_close(loaded(x), prior.cpu().eval()(x), rtol=1e-4, atol=1e-5)
    cpu_prior = pl.LPN(1, **TINY)
    hist = train(cpu_prior, _sampler(), _cfg(steps=6, warmup_fraction=1.0), out_dir=tmp_path, progress=False)
    assert len(hist.loss) == 6


#: shipped priors made by an earlier version of their preset (docs/priors.md says why they stay)
OLDER_PRESET = {"aelpn-natural-gray"}


def test_shipped_priors_match_the_preset_they_name():
    """A preset is the exact recipe of the shipped prior that names it: same architecture,
    constructor arguments and training settings (catches a preset edited without retraining)."""
    from dataclasses import asdict

    from pnp_lpn.priors.pretrained import _available
    from pnp_lpn.training.presets import TRAINING_PRESETS

    checked = 0
    for name, path in _available().items():
        meta = read_metadata(path)
        data = meta["training"]["data"] or ""
        preset = data.split(":")[0].removeprefix("preset ")
        if name in OLDER_PRESET or preset not in TRAINING_PRESETS:
            continue
        p = TRAINING_PRESETS[preset]
        assert meta["architecture"] == p.architecture.__name__, name
        for key, value in p.prior_kwargs.items():
            assert json.loads(json.dumps(meta["config"][key])) == json.loads(json.dumps(value)), (name, key)
        stored = stored_train_config(meta["training"]["config"])  # earlier names, later fields
        assert json.loads(json.dumps(stored)) == json.loads(json.dumps(asdict(p.config))), name
        checked += 1
    assert checked >= 3  # lpn-natural-gray, lpn-ct, lpn-mnist
