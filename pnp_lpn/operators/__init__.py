"""Forward operators (deepinv LinearPhysics) with exact adjoints, ||A||^2 and data steps.

Every operator maps images (B, C, H, W) to measurements (B, *meas_shape), adds Gaussian
noise of std ``noise_sigma`` when called (``op(x)``), validates its inputs, and offers
``norm_sq()`` (cached ||A||^2), ``prox_l2(z, y, gamma)`` (closed form where one exists) and
``least_squares(y)``. See docs/operators.md for conventions and measured numbers.
"""

from pnp_lpn.operators.base import ForwardOperator
from pnp_lpn.operators.blur import Blur, GaussianBlur
from pnp_lpn.operators.compressed_sensing import CompressedSensing
from pnp_lpn.operators.ct import ParallelBeamCT
from pnp_lpn.operators.masks import FourierSubsampling, Inpainting

__all__ = [
    "Blur",
    "CompressedSensing",
    "FourierSubsampling",
    "ForwardOperator",
    "GaussianBlur",
    "Inpainting",
    "ParallelBeamCT",
]
