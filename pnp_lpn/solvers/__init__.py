"""PnP-ADMM and PnP-PGD with a monitored objective: ``solve(y, operator, prior)``."""

from .iterations import ADMM, PGD
from .solve import SolveResult, operator_norm_sq, solve

__all__ = ["ADMM", "PGD", "SolveResult", "operator_norm_sq", "solve"]
