"""Optional dependencies: each module belongs to an extra of the ``pnp-lpn`` distribution
and is imported only by the code that needs it, with an ImportError naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

#: module -> (distribution that provides it, extra of pnp-lpn that installs it)
OPTIONAL: dict[str, tuple[str, str]] = {
    "astra": ("astra-toolbox", "ct"),
    "bm3d": ("bm3d", "baselines"),
    "msgpack": ("msgpack", "baselines"),
    "mlxtend": ("mlxtend", "train"),
    "sklearn": ("scikit-learn", "train"),
    "pywt": ("PyWavelets", "train"),
    "pydicom": ("pydicom", "dicom"),
}


def install_hint(module: str) -> str:
    """The pip command that installs ``module`` (a key of :data:`OPTIONAL`)."""
    return f"pip install 'pnp-lpn[{OPTIONAL[module][1]}]'"


def require(module: str, what: str) -> ModuleType:
    """``import module`` (or one of its submodules, "pywt.data"), or an ImportError saying that
    ``what`` needs it and which extra installs it."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{what} needs {OPTIONAL[top][0]} (not installed): {install_hint(top)}") from e
