"""Proximal-matching training of exact-prox priors (losses, data, trainer, presets)."""

from .datasets import PatchSampler, make_sampler, natural_images
from .losses import gamma_for, l1_loss, l2_loss, proximal_matching_loss
from .train import TrainConfig, TrainHistory, train, validation_psnr

__all__ = [
    "PatchSampler", "TrainConfig", "TrainHistory", "gamma_for", "l1_loss", "l2_loss",
    "make_sampler", "natural_images", "proximal_matching_loss", "train", "validation_psnr",
]
