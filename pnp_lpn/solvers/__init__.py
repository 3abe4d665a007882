"""PnP-ADMM, PnP-PGD and PnP-APGD with a monitored objective: ``solve(y, operator, prior)``."""

from .iterations import ADMM, APGD, PGD, ITERATIONS, Iteration
from .operator_norm import operator_norm_sq
from .result import SolveResult
from .solve import solve
from .weights import map_lam

__all__ = ["ADMM", "APGD", "ITERATIONS", "PGD", "Iteration", "SolveResult", "map_lam", "operator_norm_sq", "solve"]
