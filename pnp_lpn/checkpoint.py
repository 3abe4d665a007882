"""Prior checkpoints (safetensors with JSON metadata): the names of
:mod:`pnp_lpn.priors.checkpoint`, where the format is defined and checked."""

from .priors.checkpoint import (ARCHITECTURES, FORMAT, FORMAT_VERSION, digest, export_prior, load_prior,
                                load_tensors, read_metadata, save_prior, stored_config)

__all__ = ["ARCHITECTURES", "FORMAT", "FORMAT_VERSION", "digest", "export_prior", "load_prior", "load_tensors",
           "read_metadata", "save_prior", "stored_config"]
