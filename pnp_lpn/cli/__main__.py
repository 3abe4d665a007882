"""``python -m pnp_lpn.cli``: the same as ``pnp-lpn`` (used under torchrun)."""

from . import main

raise SystemExit(main())
