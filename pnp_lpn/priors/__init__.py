"""Exact-prox priors: LPN and AE-LPN; learned ridge regularisers (CRR / WCRR, explicit R); the
dihedral average, rescaling and colour version; checkpoints and a deepinv explicit-prior adapter."""

from .aelpn import AELPN
from .base import ProxPrior, RegularizerResult, ScaledProx, WrappedPrior
from .color import OpponentColorPrior
from .deepinv_prior import DeepinvExplicitPrior
from .dihedral import DihedralPrior
from .lpn import LPN
from .pretrained import list_pretrained, load_pretrained
from .rescaled import RescaledPrior
from .ridge import RidgePrior

__all__ = [
    "AELPN", "DeepinvExplicitPrior", "DihedralPrior", "LPN", "OpponentColorPrior", "ProxPrior", "RegularizerResult",
    "RescaledPrior", "RidgePrior", "ScaledProx", "WrappedPrior", "list_pretrained", "load_pretrained",
]
