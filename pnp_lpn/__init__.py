"""pnp_lpn: plug-and-play reconstruction with learned proximal networks.

Priors (``LPN``, ``AELPN``) are exact proximal operators of learned regularisers, so the
PnP solvers (``solve``) minimise an objective they can evaluate at every iteration.
"""

from . import data, operators, training
from ._version import __version__
from .checkpoint import load_prior, save_prior
from .priors import (AELPN, LPN, DihedralPrior, OpponentColorPrior, ProxPrior, RescaledPrior, list_pretrained,
                     load_pretrained)
from .solvers import SolveResult, solve

__all__ = [
    "AELPN", "DihedralPrior", "LPN", "OpponentColorPrior", "ProxPrior", "RescaledPrior", "__version__",
    "list_pretrained", "load_pretrained",
    "data", "load_prior", "operators", "save_prior", "SolveResult", "solve", "training",
]
