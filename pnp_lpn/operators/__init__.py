"""Forward operators (deepinv LinearPhysics) with exact adjoints, ||A||^2 and data steps.

Every operator maps images (B, C, H, W) to measurements (B, *meas_shape), adds Gaussian
noise of std ``noise_sigma`` when called (``op(x)``), validates its inputs, and offers
``norm_sq()`` (cached ||A||^2), ``prox_l2(z, y, gamma)`` (closed form where one exists) and
``least_squares(y)``. See docs/operators.md for conventions and measured numbers.

``ParallelBeamCT`` is imported on first use: it needs astra-toolbox (``pip install 'pnp-lpn[ct]'``).
"""

from typing import TYPE_CHECKING

from pnp_lpn.operators.base import ForwardOperator
from pnp_lpn.operators.blur import Blur, GaussianBlur
from pnp_lpn.operators.compressed_sensing import CompressedSensing
from pnp_lpn.operators.masks import FourierSubsampling, Inpainting

if TYPE_CHECKING:
    from pnp_lpn.operators.ct import ParallelBeamCT

__all__ = [
    "Blur",
    "CompressedSensing",
    "FourierSubsampling",
    "ForwardOperator",
    "GaussianBlur",
    "Inpainting",
    "ParallelBeamCT",
]


def __getattr__(name: str):
    if name != "ParallelBeamCT":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pnp_lpn.operators.ct import ParallelBeamCT

    globals()[name] = ParallelBeamCT
    return ParallelBeamCT


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"ParallelBeamCT"})
