"""Exact-prox priors: LPN and AE-LPN, their dihedral average, checkpoints and a deepinv explicit-prior adapter."""

from .aelpn import AELPN
from .base import ProxPrior, RegularizerResult, ScaledProx
from .deepinv_prior import DeepinvExplicitPrior
from .dihedral import DihedralPrior
from .lpn import LPN
from .pretrained import list_pretrained, load_pretrained

__all__ = ["AELPN", "DeepinvExplicitPrior", "DihedralPrior", "LPN", "ProxPrior", "RegularizerResult", "ScaledProx", "list_pretrained", "load_pretrained"]
