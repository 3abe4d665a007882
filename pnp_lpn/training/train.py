"""Proximal-matching training of exact-prox priors (SPEC section 3).

Schedule over ``steps`` optimiser steps (Adam; ``project_weights()`` after every step):

- steps [0, warmup_steps): the warm-up loss ``warmup_loss`` (L1 or L2) at learning rate
  ``lr_warmup``; with ``anneal_warmup`` the rate follows a cosine from ``lr_warmup`` at step 0
  down to ``lr_pm`` at step warmup_steps:
  lr(s) = lr_pm + (lr_warmup - lr_pm) (1 + cos(pi s / warmup_steps)) / 2;
- the remaining steps: proximal-matching loss at learning rate ``lr_pm`` in equal stages
  with gamma = m * gamma_min for m in ``gamma_multipliers`` (default 8, 4, 2, 1), where
  gamma_min = ``gamma_factor`` * sqrt(C*P*P).

Pairs are (x, x + sigma * N(0, I)) with patches and noise drawn from a generator seeded by
(seed, step, rank): batch k is identical in an interrupted-and-resumed run and an
uninterrupted one, so resuming from a checkpoint ends exactly where the uninterrupted run
would. With torch.distributed initialised (e.g. under ``torchrun``), every process draws its
own batch and gradients are averaged with all_reduce before the step (data parallel).
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from dataclasses import InitVar, asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor
from tqdm.auto import tqdm

from ..metrics import psnr
from ..priors.checkpoint import load_tensors, read_metadata, save_prior, stored_config
from ..priors.base import ProxPrior
from .datasets import PatchSampler, make_sampler
from .losses import gamma_for, l1_loss, l2_loss, proximal_matching_loss

WARMUP_LOSSES = {"l1": l1_loss, "l2": l2_loss}
#: earlier names of TrainConfig fields -> their names now; accepted as keywords and read from
#: the training config stored in checkpoints
RENAMED_FIELDS = {"l1_fraction": "warmup_fraction", "lr_l1": "lr_warmup"}


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train` (all recorded in checkpoints)."""

    sigma: float = 0.1
    sigma_range: tuple[float, float] | None = None
    steps: int = 2000
    warmup_loss: str = "l1"
    batch_size: int = 32
    warmup_fraction: float = 0.5
    lr_warmup: float = 1e-3
    lr_pm: float = 1e-4
    anneal_warmup: bool = False
    intensity_shift: float = 0.0
    intensity_scale: float = 0.0
    gamma_factor: float = 0.08
    gamma_multipliers: tuple[float, ...] = (8.0, 4.0, 2.0, 1.0)
    seed: int = 0
    #: weight each sample's loss by sigma / its noise level (per-sample levels only): the MSE falls with
    #: the level, so without it the low levels hardly count; with it every level counts about alike in dB
    inverse_sigma_weight: bool = False
    val_every: int = 200
    ckpt_every: int = 200
    #: earlier names of ``warmup_fraction`` and ``lr_warmup`` (RENAMED_FIELDS); either wins over the new name
    l1_fraction: InitVar[float | None] = None
    lr_l1: InitVar[float | None] = None

    def __post_init__(self, l1_fraction: float | None, lr_l1: float | None) -> None:
        for old, value in (("l1_fraction", l1_fraction), ("lr_l1", lr_l1)):
            if value is not None:
                setattr(self, RENAMED_FIELDS[old], value)

    def noise_levels(self, batch: int, g: torch.Generator) -> Tensor:
        """Per-sample noise std (B, 1, 1, 1): ``sigma``, or uniform in sigma * ``sigma_range``."""
        if self.sigma_range is None:
            return torch.full((batch, 1, 1, 1), self.sigma)
        lo, hi = self.sigma_range
        return self.sigma * (lo + (hi - lo) * torch.rand(batch, 1, 1, 1, generator=g))

    def intensity_transform(self, x: Tensor, g: torch.Generator) -> Tensor:
        """a x + c per sample, a ~ U[1 - r, 1 + r] (r = ``intensity_scale``) and c ~ U[-s, s]
        (s = ``intensity_shift``); nothing is drawn from ``g`` for a zero r or s (x unchanged
        when both are 0). The pair becomes (a x + c, a x + c + noise): the prior learns to
        denoise over that range of levels and contrasts instead of extrapolating freely outside
        the [0, 1] training intensities (docs/training.md, "Intensity offsets")."""
        shape = (x.shape[0], *([1] * (x.ndim - 1)))
        if self.intensity_scale:
            x = x * (1 + self.intensity_scale * (torch.rand(shape, generator=g) * 2 - 1))
        if self.intensity_shift:
            x = x + self.intensity_shift * (torch.rand(shape, generator=g) * 2 - 1)
        return x

    def target_range(self, lo: float, hi: float) -> tuple[float, float]:
        """Range of the training targets a x + c for images with values in [lo, hi]
        (see :meth:`intensity_transform`): [min(a lo) - s, max(a hi) + s] over a in [1 - r, 1 + r]."""
        r, s = self.intensity_scale, self.intensity_shift
        return min((1 - r) * lo, (1 + r) * lo) - s, max((1 - r) * hi, (1 + r) * hi) + s

    @property
    def warmup_steps(self) -> int:
        """Number of warm-up steps: round(warmup_fraction * steps)."""
        return int(round(self.warmup_fraction * self.steps))

    def phase(self, step: int, sample_shape: tuple[int, ...]) -> tuple[str, float, float | None]:
        """(loss name, learning rate, gamma or None) at ``step``."""
        if step < self.warmup_steps:
            if not self.anneal_warmup:
                return self.warmup_loss, self.lr_warmup, None
            cos = 0.5 * (1.0 + math.cos(math.pi * step / self.warmup_steps))
            return self.warmup_loss, self.lr_pm + (self.lr_warmup - self.lr_pm) * cos, None
        stage_len = max(1, math.ceil((self.steps - self.warmup_steps) / len(self.gamma_multipliers)))
        stage = min((step - self.warmup_steps) // stage_len, len(self.gamma_multipliers) - 1)
        return "pm", self.lr_pm, self.gamma_multipliers[stage] * gamma_for(sample_shape, self.gamma_factor)


# the earlier names read as the fields they became (a dataclass InitVar would read as None)
for _old, _new in RENAMED_FIELDS.items():
    setattr(TrainConfig, _old, property(lambda self, _new=_new: getattr(self, _new), doc=f"The same as {_new}."))
TrainConfig.l1_steps = property(lambda self: self.warmup_steps, doc="The same as warmup_steps.")


def stored_train_config(config: dict) -> dict:
    """A training config as stored in a checkpoint, in today's field names (RENAMED_FIELDS) and
    with the defaults of fields added since it was written: every field of :class:`TrainConfig`."""
    return {**asdict(TrainConfig()), **{RENAMED_FIELDS.get(k, k): v for k, v in config.items()}}


@dataclass
class TrainHistory:
    """Per-step training loss and periodic validation PSNR (dB) with their steps and minutes."""

    loss: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_psnr: list[float] = field(default_factory=list)
    val_minutes: list[float] = field(default_factory=list)
    wall_time: float = 0.0


@torch.no_grad()
def validation_psnr(prior: ProxPrior, images: list[Tensor], sigma: float, seed: int = 1234) -> float:
    """Mean denoising PSNR of ``prior`` on ``images`` (C, H, W) at noise ``sigma`` (fixed noise)."""
    was_training = prior.training
    prior.eval()
    g = torch.Generator().manual_seed(seed)
    scores = []
    for im in images:
        x = im[None].to(next(prior.parameters()).device)
        y = x + sigma * torch.randn(x.shape, generator=g).to(x.device)
        scores.append(float(psnr(prior(y, sigma), x)))
    prior.train(was_training)
    return sum(scores) / len(scores)


class _StopOnSignal:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so an interrupted run saves a
    consistent checkpoint (never one taken half-way through an optimiser step)."""

    def __enter__(self) -> "_StopOnSignal":
        self.requested, self._old = False, {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _optimizer_tensors(opt: torch.optim.Adam) -> dict[str, Tensor]:
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"optim.{i}.{k}"] = torch.as_tensor(v)
    return out


def _restore_optimizer(opt: torch.optim.Adam, tensors: dict[str, Tensor]) -> None:
    state: dict[int, dict[str, Tensor]] = {}
    for key, v in tensors.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = v
    sd = opt.state_dict()
    sd["state"] = state
    opt.load_state_dict(sd)


def train(
    prior: ProxPrior,
    data: PatchSampler | Tensor | list[Tensor] | str,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    val_images: list[Tensor] | None = None,
    data_description: str = "",
    progress: bool = True,
    init_from: str | Path | None = None,
    **overrides,
) -> TrainHistory:
    """Train ``prior`` by a warm-up (L1 or L2 loss) then staged proximal matching; see the module docstring.

    A prior built without ``sigma_train`` gets ``config.sigma`` (stored in its checkpoints and
    used by :func:`pnp_lpn.solve` for its default lam), and one without ``data_range`` the range
    of its training targets (:meth:`TrainConfig.target_range` of the data's value range; stored
    too, and used by :func:`pnp_lpn.solve` to stop iterates that run off).

    :param data: a float tensor (N, C, H, W) of clean images or patches, a list of (C, H, W)
        images (patches of at most 40 pixels are drawn from either), a named dataset, or a
        :class:`PatchSampler`; anything else raises TypeError (see
        :func:`pnp_lpn.training.make_sampler`).
    :param config: hyper-parameters; keyword ``overrides`` replace single fields
        (e.g. ``sigma=0.05, steps=500``).
    :param out_dir: where ``checkpoint.safetensors`` (prior + optimiser + history) and
        ``history.json`` go. If it already holds a checkpoint of this run, training resumes
        from it. None: no checkpoints.
    :param val_images: (C, H, W) images for validation PSNR every ``val_every`` steps.
    :param init_from: a checkpoint of the same architecture whose weights start a new run
        (fine-tuning; ignored when resuming). Recorded in the metadata.
    """
    cfg = TrainConfig(**{**asdict(config or TrainConfig()), **overrides})
    data = _prepare(prior, data, cfg)
    rank, world = _rank_world()
    opt = torch.optim.Adam(prior.parameters(), lr=cfg.lr_warmup)
    hist, start = TrainHistory(), 0
    ckpt = Path(out_dir) / "checkpoint.safetensors" if out_dir is not None else None
    if ckpt is not None and ckpt.exists():
        start, hist = _resume(ckpt, prior, opt, cfg)
    elif init_from is not None:
        _check_architecture(Path(init_from), prior)
        prior.load_state_dict(load_tensors(init_from, "model."))
    prior.train()
    t0 = time.perf_counter() - hist.wall_time
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress or rank != 0,
               desc=f"train {type(prior).__name__}")

    def save(step: int) -> None:
        if ckpt is None or rank != 0:
            return
        hist.wall_time = time.perf_counter() - t0
        meta = {"training": {"config": asdict(cfg), "step": step, "data": data_description,
                             "world_size": world, "init_from": str(init_from) if init_from else None,
                             "history": asdict(hist)}}
        save_prior(prior, ckpt, meta, _optimizer_tensors(opt))
        (ckpt.parent / "history.json").write_text(json.dumps(meta["training"], indent=1))

    with _StopOnSignal() as stop:
        for step in bar:
            loss, lr = _training_loss(prior, cfg, data, step, rank)
            _optimiser_step(prior, opt, loss, lr, world)
            hist.loss.append(float(loss.detach()))
            done = step + 1
            if val_images and rank == 0 and (done % cfg.val_every == 0 or done == cfg.steps):
                hist.val_step.append(done)
                hist.val_psnr.append(validation_psnr(prior, val_images, cfg.sigma))
                hist.val_minutes.append((time.perf_counter() - t0) / 60)
                bar.set_postfix(loss=f"{hist.loss[-1]:.4f}", val_psnr=f"{hist.val_psnr[-1]:.2f}")
            if done % cfg.ckpt_every == 0 or done == cfg.steps or stop.requested:
                save(done)
            if stop.requested:
                raise KeyboardInterrupt(f"training interrupted after step {done}; rerun to resume")
    hist.wall_time = time.perf_counter() - t0
    prior.eval()
    return hist


def _prepare(prior: ProxPrior, data: PatchSampler | Tensor | list[Tensor] | str, cfg: TrainConfig) -> PatchSampler:
    """Check the run's inputs, give the prior its training level and range; the data's sampler."""
    if cfg.warmup_loss not in WARMUP_LOSSES:
        raise ValueError(f"warmup_loss must be one of {sorted(WARMUP_LOSSES)}, got {cfg.warmup_loss!r}")
    if not isinstance(prior, ProxPrior):
        raise TypeError(f"train needs an exact-prox prior (pl.LPN, pl.AELPN, ...), got {type(prior).__name__}")
    data = make_sampler(data)
    if data.channels != prior.in_channels:
        raise ValueError(f"data has {data.channels} channel(s), the prior expects {prior.in_channels}")
    if prior.sigma_train is None:  # the prior records the level it was trained at (solve's default lam)
        prior.sigma_train = cfg.sigma
    if prior.data_range is None and prior.range_limited:
        # the range of its clean targets (solve's run-off guard); an AE-LPN gets none (it commutes
        # with every a x + c, so no range is special to it), nor does an explicit R
        prior.data_range = cfg.target_range(*data.value_range())
    return data


def _training_loss(prior: ProxPrior, cfg: TrainConfig, data: PatchSampler, step: int,
                   rank: int) -> tuple[Tensor, float]:
    """(batch loss, learning rate) of ``step``: pairs drawn from a generator seeded by (seed, step,
    rank), the loss and rate of the schedule's phase at ``step``."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_000_007 + step * 1009 + rank)
    x = cfg.intensity_transform(data.sample(cfg.batch_size, g), g)
    levels = cfg.noise_levels(x.shape[0], g)
    y = x + levels * torch.randn(x.shape, generator=g)
    device = next(prior.parameters()).device
    x, y, levels = x.to(device), y.to(device), levels.flatten().to(device)
    kind, lr, gamma = cfg.phase(step, (data.channels, data.patch_size, data.patch_size))
    # a noise-conditional prior (one model for every sigma) denoises at each sample's level
    x_hat = prior.denoise(y, levels) if prior.conditional else prior.prox(y, True)
    per_sample = proximal_matching_loss(x_hat, x, gamma) if kind == "pm" else WARMUP_LOSSES[kind](x_hat, x)
    if cfg.inverse_sigma_weight:
        per_sample = per_sample * (cfg.sigma / levels)
    return per_sample.mean(), lr


def _optimiser_step(prior: ProxPrior, opt: torch.optim.Adam, loss: Tensor, lr: float, world: int) -> None:
    """One Adam step at rate ``lr`` on ``loss`` (gradients averaged over ``world`` processes),
    then the prior's convexity constraints restored."""
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=False)
    loss.backward()
    if world > 1:
        for p in prior.parameters():
            dist.all_reduce(p.grad)
            p.grad /= world
    opt.step()
    prior.project_weights()


def _architecture(config: dict) -> dict:
    """A prior's constructor arguments without ``sigma_train`` (metadata, not architecture)."""
    return {k: v for k, v in config.items() if k != "sigma_train"}


def _check_architecture(path: Path, prior: ProxPrior) -> dict:
    meta = read_metadata(path)
    same = _architecture(stored_config(meta)) == _architecture(prior.config())
    if meta["architecture"] != type(prior).__name__ or not same:
        raise ValueError(f"{path} holds a {meta['architecture']} {meta['config']}, not {prior.config()}; "
                         "use another out_dir or the same architecture")
    return meta


def _resume(ckpt: Path, prior: ProxPrior, opt: torch.optim.Adam, cfg: TrainConfig) -> tuple[int, TrainHistory]:
    meta = _check_architecture(ckpt, prior)
    saved = stored_train_config(meta["training"]["config"])
    start = meta["training"]["step"]
    if json.loads(json.dumps({**saved, "steps": cfg.steps})) != json.loads(json.dumps(asdict(cfg))):
        raise ValueError(f"{ckpt} was trained with different settings {saved}; resume with the same ones")
    if saved["steps"] != cfg.steps:  # lengthening / shortening: only if the steps done stay valid
        old = TrainConfig(**{**saved, "sigma_range": cfg.sigma_range, "gamma_multipliers": cfg.gamma_multipliers})
        shape = (prior.in_channels, 1, 1)
        if start > cfg.steps or any(old.phase(s, shape) != cfg.phase(s, shape) for s in range(start)):
            raise ValueError(f"{ckpt} has done {start} of {saved['steps']} steps; changing the total to "
                             f"{cfg.steps} would change the schedule of steps already taken")
    prior.load_state_dict(load_tensors(ckpt, "model."))
    _restore_optimizer(opt, load_tensors(ckpt, "optim."))
    h = meta["training"]["history"]
    hist = TrainHistory(**h)
    hist.loss = hist.loss[:start]
    return start, hist
