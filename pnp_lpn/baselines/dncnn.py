"""DnCNN with scico's pretrained Flax weights, re-implemented in torch (no JAX needed).

scico 0.0.7 (BSD-3) ships ``scico/data/flax/dncnn{6,17}{L,M,H,N}.mpk``: Flax variable
trees serialised with msgpack, arrays as msgpack extension type 1 holding
(shape, dtype name, raw bytes). The network (scico ``DnCNNNet``) is

    h = relu(conv_start(x));  h = relu(BN_k(conv_k(h)))  for k = 0 .. depth-3;
    out = x - conv_end(h)

with 3x3 convolutions, circular padding, no biases, BatchNorm in inference mode
(running mean/var, eps 1e-5). Flax kernels are HWIO, torch wants OIHW.

Variants: L / M / H are blind models trained at sigma 0.06 / 0.10 / 0.20 (data in
[0, 1]); N takes the noise level as a second input channel, a constant map of value
sigma, and was trained for sigma in [0, 0.2] (its output has two channels: the first is
the image). All models are single-channel; a C-channel image is denoised channel by channel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from deepinv.models import Denoiser
from torch import Tensor, nn

from .._extras import require
from ..data import package_file

VARIANTS = ("6L", "6M", "6H", "6N", "17L", "17M", "17H", "17N")
#: training noise level of the blind variants (scico/data/flax/README.rst)
BLIND_SIGMA = {"L": 0.06, "M": 0.10, "H": 0.20}
INSTALL_HINT = "pip install --no-deps scico==0.0.7"


def weights_path(variant: str) -> Path:
    """Path of scico's ``dncnn<variant>.mpk`` (found without importing scico, which pulls JAX)."""
    return package_file("scico", ("data", "flax", f"dncnn{variant}.mpk"), f"DnCNN weights dncnn{variant}.mpk",
                        f"{INSTALL_HINT} (no JAX needed)")


def _decode_array(code: int, data: bytes):
    import msgpack

    if code != 1:
        return msgpack.ExtType(code, data)
    shape, dtype, buf = msgpack.unpackb(data, raw=False)
    return np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape).copy()


def load_variables(path: str | Path) -> dict:
    """The Flax variable tree of a .mpk file: nested dicts of numpy arrays."""
    msgpack = require("msgpack", "reading DnCNN weights")
    return msgpack.unpackb(Path(path).read_bytes(), ext_hook=_decode_array, raw=False, strict_map_key=False)


def _closest_level(sigma: float) -> str:
    """"L", "M" or "H": the blind training level closest to sigma in log scale."""
    return min(BLIND_SIGMA, key=lambda k: abs(np.log(BLIND_SIGMA[k] / max(float(sigma), 1e-12))))


class DnCNN(Denoiser):
    """Pretrained DnCNN denoiser (scico weights), ``forward(x, sigma)`` with x (B, C, H, W).

    :param variant: one of ``VARIANTS``: depth 6 or 17, then L/M/H (blind, trained at
        sigma 0.06/0.10/0.20; the ``sigma`` argument of forward is ignored) or N (sigma is
        an input: a constant second channel).
    """

    def __init__(self, variant: str = "17M"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown DnCNN variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        self.variant = variant
        self.blind = not variant.endswith("N")
        variables = load_variables(weights_path(variant))
        params, stats = variables["params"], variables["batch_stats"]
        self.n_blocks = int(variant[:-1]) - 2
        self.conv_start = self._conv(params["conv_start"]["kernel"])
        self.blocks = nn.ModuleList(self._block(params[f"ConvBNBlock_{k}"], stats[f"ConvBNBlock_{k}"])
                                    for k in range(self.n_blocks))
        self.conv_end = self._conv(params["conv_end"]["kernel"])
        self.eval()
        self.requires_grad_(False)

    @staticmethod
    def _conv(kernel_hwio: np.ndarray) -> nn.Conv2d:
        h, w, c_in, c_out = kernel_hwio.shape
        conv = nn.Conv2d(c_in, c_out, (h, w), padding=(h // 2, w // 2), padding_mode="circular", bias=False)
        conv.weight.data.copy_(torch.from_numpy(kernel_hwio).permute(3, 2, 0, 1))
        return conv

    @classmethod
    def _block(cls, params: dict, stats: dict) -> nn.Sequential:
        conv = cls._conv(params["Conv_0"]["kernel"])
        bn = nn.BatchNorm2d(conv.out_channels, eps=1e-5)
        for name, value in [("weight", params["BatchNorm_0"]["scale"]), ("bias", params["BatchNorm_0"]["bias"]),
                            ("running_mean", stats["BatchNorm_0"]["mean"]),
                            ("running_var", stats["BatchNorm_0"]["var"])]:
            getattr(bn, name).data.copy_(torch.from_numpy(value))
        return nn.Sequential(conv, bn, nn.ReLU())

    @classmethod
    def for_sigma(cls, sigma: float, depth: int = 17, blind: bool = True) -> DnCNN:
        """The blind variant whose training level is closest to ``sigma`` (in log scale),
        or the noise-level-input variant N when ``blind=False``."""
        return cls(f"{depth}{_closest_level(sigma) if blind else 'N'}")

    def train(self, mode: bool = True) -> DnCNN:
        """Always inference mode: BatchNorm uses the stored running statistics."""
        return super().train(False)

    def _net(self, x: Tensor) -> Tensor:
        """x (N, 1 or 2, H, W) -> x[:, :1] - residual (N, 1, H, W)."""
        h = F.relu(self.conv_start(x))
        for block in self.blocks:
            h = block(h)
        return (x - self.conv_end(h))[:, :1]

    def forward(self, x: Tensor, sigma: float | Tensor | None = None, **kwargs) -> Tensor:
        """Denoise x (B, C, H, W) channel by channel; sigma (float or (B,)) is used by the N
        variants only and required there."""
        b, c, h, w = x.shape
        flat = x.reshape(b * c, 1, h, w)
        if not self.blind:
            if sigma is None:
                raise ValueError(f"DnCNN variant {self.variant} needs the noise level sigma")
            s = self._handle_sigma(sigma, batch_size=b, device=x.device, dtype=x.dtype)
            flat = torch.cat([flat, s.repeat_interleave(c).view(-1, 1, 1, 1).expand_as(flat)], 1)
        return self._net(flat).reshape(b, c, h, w)


class AdaptiveDnCNN(Denoiser):
    """The blind DnCNN (L, M or H) whose training level is closest to sigma, chosen at every
    call and per image: the PnP-friendly way to use the blind models, whose noise level
    cannot be set. (scico's N variants take sigma as an input but denoise worse than the
    matching blind model at sigma >= 0.1 in our checks, e.g. 17N 27.3 dB vs 17M 29.4 dB on
    a 256^2 camera crop at sigma 0.1; see docs/benchmarks.md.)

    :param depth: 6 or 17 layers.
    """

    def __init__(self, depth: int = 17):
        super().__init__()
        self.depth = int(depth)
        self.models = nn.ModuleDict({k: DnCNN(f"{depth}{k}") for k in BLIND_SIGMA})

    def forward(self, x: Tensor, sigma: float | Tensor, **kwargs) -> Tensor:
        """x (B, C, H, W), sigma float or (B,) -> denoised x."""
        sig = self._handle_sigma(sigma, batch_size=x.shape[0]).tolist()
        return torch.cat([self.models[_closest_level(s)](x[i : i + 1]) for i, s in enumerate(sig)])
