"""Baseline denoisers for comparisons (deepinv ``Denoiser``s, offline): TV, BM3D, and
DnCNN with scico's pretrained weights; :func:`make_denoiser` builds any of them, or a
shipped LPN prior, by name."""

from .classical import BM3D, TV
from .dncnn import AdaptiveDnCNN, DnCNN
from .registry import BASELINES, denoiser_names, make_denoiser

__all__ = ["BASELINES", "BM3D", "TV", "AdaptiveDnCNN", "DnCNN", "denoiser_names", "make_denoiser"]
