"""pnp_lpn: plug-and-play reconstruction with learned proximal networks.

Priors (``LPN``, ``AELPN``) are exact proximal operators of learned regularisers, so the
PnP solvers (``solve``) minimise an objective they can evaluate at every iteration.

Names are imported on first use (``pl.solve`` loads torch then), so that the command line
checks its arguments and files before anything heavy is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

#: public name -> module that defines it (subpackages map to themselves)
_NAMES = {
    "AELPN": ".priors", "DihedralPrior": ".priors", "LPN": ".priors", "OpponentColorPrior": ".priors",
    "ProxPrior": ".priors", "RescaledPrior": ".priors", "RidgePrior": ".priors", "list_pretrained": ".priors", "load_pretrained": ".priors",
    "load_prior": ".priors.checkpoint", "save_prior": ".priors.checkpoint",
    "SolveResult": ".solvers", "solve": ".solvers",
    "StudyResult": ".study", "solve_study": ".study", "study_device": ".study",
    "data": ".data", "operators": ".operators", "training": ".training",
}

__all__ = [
    "AELPN", "DihedralPrior", "LPN", "OpponentColorPrior", "ProxPrior", "RescaledPrior", "RidgePrior", "__version__",
    "list_pretrained", "load_pretrained",
    "data", "load_prior", "operators", "save_prior", "SolveResult", "solve", "StudyResult", "solve_study",
    "study_device", "training",
]

if TYPE_CHECKING:
    from . import data, operators, training
    from .priors.checkpoint import load_prior, save_prior
    from .priors import (AELPN, LPN, DihedralPrior, OpponentColorPrior, ProxPrior, RescaledPrior, RidgePrior,
                         list_pretrained, load_pretrained)
    from .solvers import SolveResult, solve
    from .study import StudyResult, solve_study, study_device


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_NAMES[name], __name__)
    value = module if module.__name__ == f"{__name__}.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))
