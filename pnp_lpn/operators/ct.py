"""2-D parallel-beam CT on astra-toolbox: line integrals, exact adjoint, FBP.

Geometry and scaling: an H x W image of unit pixels centred on the rotation axis, a line
detector of ``n_detectors`` bins of width ``detector_width`` (default 1 = pixel size),
angles in radians. y[a, d] is the line integral of the image along the ray of angle a
through bin d (in pixel units), so a constant image of value 1 has projections equal to the
chord lengths in pixels. The sinogram layout is (n_angles, n_detectors).

Relation to deepinv.physics.Tomography (torch Radon, angles in degrees, sinogram layout
(n_detectors, n_angles)): with ``circle=True`` it uses N detector bins of unit width and the
same scaling, so ``ParallelBeamCT(n_detectors=N)(x)`` equals ``Tomography(circle=True,
normalize=False)(x)`` transposed, up to interpolation error (about 0.1 % on smooth images).
With ``circle=False`` deepinv pads the image to ceil(sqrt(2) N) and rotates about a point
offset by half a pixel; see docs/operators.md.

CPU projectors ("linear" default, "line", "strip") are ASTRA's sparse projection matrices:
the back-projection is the exact matrix transpose of the forward projection (verified
entry by entry in the tests), so the adjoint error is float32 round-off (~5e-7). The
angle set is split into chunks projected by parallel threads (ASTRA releases the GIL).
On device="cuda" the default keeps that exactness: the same ASTRA projection matrix (built
once on the CPU) is applied by torch as a sparse CSR matrix on the GPU, with its explicit
transpose as back-projection (memory: 12 bytes per non-zero - float32 value, int64 column
index - twice; about 0.5 GB at 256^2 with 180 views, 2 GB at 512^2). projector="cuda" uses ASTRA's own GPU kernels instead, fed with
GPU tensors through DLPack (no host copy, no matrix): faster to set up and lighter, but its
back-projector is voxel-driven, hence only approximately the adjoint (measured: 35 % mismatch
of <Au, v> and <u, A^T v> on white-noise u, v; 0.5 % on smooth sinograms).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import astra
import numpy as np
import torch
from torch import Tensor

from pnp_lpn._checks import check_positive
from pnp_lpn.operators.base import ForwardOperator, check_img_size

CPU_PROJECTORS = ("linear", "line", "strip")
FILTERS = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")


def fbp_filter(n_pad: int, name: str = "ram-lak") -> Tensor:
    """Frequency response (n_pad // 2 + 1,) of the FBP filter for a real FFT of length n_pad.

    The ramp is the DFT of the band-limited spatial Ram-Lak kernel h[0] = 1/4,
    h[k odd] = -1 / (pi k)^2 (unit detector spacing), which has no DC bias; it is multiplied
    by a window of the frequency f in cycles per bin (|f| <= 1/2): Shepp-Logan sinc(f),
    cosine cos(pi f), Hamming 0.54 + 0.46 cos(2 pi f), Hann cos^2(pi f).
    """
    if name not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {name!r}")
    k = torch.arange(n_pad, dtype=torch.float64)
    k = torch.where(k <= n_pad // 2, k, k - n_pad)
    h = torch.where(k % 2 == 1, -1 / (math.pi * k) ** 2, torch.zeros_like(k))
    h[0] = 0.25
    ramp = torch.fft.rfft(h).real
    f = torch.fft.rfftfreq(n_pad, dtype=torch.float64)
    windows = {
        "ram-lak": torch.ones_like(f),
        "shepp-logan": torch.sinc(f),
        "cosine": torch.cos(math.pi * f),
        "hamming": 0.54 + 0.46 * torch.cos(2 * math.pi * f),
        "hann": torch.cos(math.pi * f) ** 2,
    }
    return ramp * windows[name]


class _AstraProjectors:
    """ASTRA projector objects for consecutive chunks of the angle set.

    Created once, freed when garbage-collected; a (deep) copy rebuilds its own.
    """

    def __init__(
        self, kind: str, shape: tuple[int, int], angles: np.ndarray, n_det: int, det_width: float, n_chunks: int
    ) -> None:
        self._args = (kind, shape, angles, n_det, det_width, n_chunks)
        self._delete = astra.projector.delete  # kept so that __del__ works at interpreter exit
        vol = astra.create_vol_geom(shape[0], shape[1])
        bounds = np.linspace(0, len(angles), n_chunks + 1).round().astype(int)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        self.ids = [
            astra.create_projector(kind, astra.create_proj_geom("parallel", det_width, n_det, angles[s]), vol)
            for s in self.slices
        ]

    def __reduce__(self):
        return type(self), self._args

    def __del__(self) -> None:
        ids = getattr(self, "ids", None)
        if ids:
            self._delete(ids)

    def _each_chunk(self, fn) -> None:
        """Run fn(i) for every angle chunk i, in parallel threads when there are several."""
        if len(self.ids) == 1:
            fn(0)
            return
        with ThreadPoolExecutor(len(self.ids)) as pool:
            list(pool.map(fn, range(len(self.ids))))

    def forward(self, images: Tensor, out: Tensor) -> None:
        """out[k] = A images[k]; images (K, H, W), out (K, n_angles, n_det), float32 contiguous.

        Each chunk writes its own rows (angles) of every sinogram.
        """

        def project(i: int) -> None:
            for img, sino in zip(images, out):
                astra.projector.direct_FP(self.ids[i], img, out=sino[self.slices[i]])

        self._each_chunk(project)

    def backward(self, sinos: Tensor, out: Tensor) -> None:
        """out[k] = A^T sinos[k] = sum over chunks of the chunk's back-projection."""
        partial = out[None] if len(self.ids) == 1 else out.new_empty(len(self.ids), *out.shape)

        def back_project(i: int) -> None:
            for sino, vol in zip(sinos, partial[i]):
                astra.projector.direct_BP(self.ids[i], sino[self.slices[i]], out=vol)

        self._each_chunk(back_project)
        if len(self.ids) > 1:
            torch.sum(partial, dim=0, out=out)


class _SparseProjector:
    """ASTRA's projection matrix R (n_angles * n_det, H * W) and R^T as torch sparse CSR
    tensors on ``device``: forward and back-projection are exact transposes on any device."""

    def __init__(
        self, kind: str, shape: tuple[int, int], angles: np.ndarray, n_det: int, det_width: float, device: torch.device
    ) -> None:
        self._args = (kind, shape, angles, n_det, det_width, device)
        vol = astra.create_vol_geom(shape[0], shape[1])
        proj_id = astra.create_projector(kind, astra.create_proj_geom("parallel", det_width, n_det, angles), vol)
        matrix_id = astra.projector.matrix(proj_id)
        try:
            r = astra.matrix.get(matrix_id).astype(np.float32).tocsr()
        finally:
            astra.matrix.delete(matrix_id)
            astra.projector.delete(proj_id)
        self.r, self.rt = (self._to_torch(m, device) for m in (r, r.T.tocsr()))

    @staticmethod
    def _to_torch(m, device: torch.device) -> Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                           torch.from_numpy(m.indices.astype(np.int64)), torch.from_numpy(m.data),
                                           m.shape, check_invariants=False).to(device)

    def __reduce__(self):
        return type(self), self._args

    @staticmethod
    def _apply(m: Tensor, inputs: Tensor, out: Tensor) -> None:
        """out[k] = m @ inputs[k] (flattened), for the K stacked inputs at once."""
        out.copy_((m @ inputs.reshape(len(inputs), -1).T).T.reshape(out.shape))

    def forward(self, images: Tensor, out: Tensor) -> None:
        """out[k] = R images[k]; images (K, H, W), out (K, n_angles, n_det)."""
        self._apply(self.r, images, out)

    def backward(self, sinos: Tensor, out: Tensor) -> None:
        """out[k] = R^T sinos[k]."""
        self._apply(self.rt, sinos, out)


def _check_cuda(astra_kernels: bool) -> None:
    if not torch.cuda.is_available():
        raise RuntimeError("device='cuda' needs a CUDA GPU visible to torch, and none is; use device='cpu' "
                           "(ASTRA's CPU projector, same geometry and scaling)")
    if astra_kernels and not astra.use_cuda():
        raise RuntimeError("this astra-toolbox build cannot use the GPU (astra.use_cuda() is False); use "
                           "projector='linear' (ASTRA's matrix applied on the GPU by torch) or device='cpu'")


class ParallelBeamCT(ForwardOperator):
    """y = R x + noise: 2-D parallel-beam ray transform, sinogram (B, C, n_angles, n_detectors).

    :param img_size: (C, H, W); every channel is projected separately, in float32.
    :param n_angles: number of views, uniformly spaced in [0, pi) (ignored if ``angles`` given).
    :param n_detectors: detector bins; default ceil(sqrt(H^2 + W^2)), so that rays through the
        image corners are recorded.
    :param angles: explicit view angles in radians.
    :param device: "cpu" or "cuda" / "cuda:k"; fixed at construction (``.to()`` does not
        switch the projector).
    :param projector: "linear" (default; Joseph-type interpolation), "line" or "strip": ASTRA's
        CPU projectors, run by ASTRA threads on the CPU and as a sparse matrix on the GPU
        (exact adjoint on both); on the GPU also "cuda": ASTRA's GPU kernels (no matrix,
        approximate adjoint; see the module docstring).
    :param n_threads: CPU threads, each projecting a chunk of the angles; default
        torch.get_num_threads().
    :param detector_width: bin width in pixel units.
    :param kwargs: CG options of :class:`ForwardOperator` (cg_max_iter, cg_tol, warm_start).
    """

    def __init__(
        self,
        img_size: Sequence[int] = (1, 256, 256),
        n_angles: int = 200,
        n_detectors: int | None = None,
        angles: Sequence[float] | np.ndarray | Tensor | None = None,
        noise_sigma: float = 0.0,
        device: torch.device | str = "cpu",
        projector: str | None = None,
        n_threads: int | None = None,
        detector_width: float = 1.0,
        **kwargs,
    ) -> None:
        size = check_img_size(img_size)
        ang = self._angles(n_angles, angles)
        n_det = math.ceil(math.hypot(size[1], size[2])) if n_detectors is None else int(n_detectors)
        if n_det < 1:
            raise ValueError(f"n_detectors must be >= 1, got {n_detectors!r}")
        dev = torch.device(device)
        kind, n_chunks = self._projector_kind(dev, projector, n_threads, len(ang))
        super().__init__(size, (size[0], len(ang), n_det), noise_sigma=noise_sigma, device=dev, **kwargs)
        self.angles = torch.from_numpy(ang)
        self.n_detectors, self.projector_kind = n_det, kind
        self.detector_width = check_positive(detector_width, "detector_width")
        self._projectors = (_AstraProjectors(kind, size[1:], ang, n_det, self.detector_width, n_chunks) if n_chunks
                            else _SparseProjector(kind, size[1:], ang, n_det, self.detector_width, dev))

    @staticmethod
    def _angles(n_angles: int, angles: Sequence[float] | np.ndarray | Tensor | None) -> np.ndarray:
        if angles is None:
            if int(n_angles) < 1:
                raise ValueError(f"n_angles must be >= 1, got {n_angles!r}")
            return np.linspace(0, np.pi, int(n_angles), endpoint=False)
        ang = np.asarray(angles.cpu() if isinstance(angles, Tensor) else angles, dtype=np.float64)
        if ang.ndim != 1 or ang.size == 0 or not np.isfinite(ang).all():
            raise ValueError("angles must be a non-empty 1-D sequence of finite numbers (radians)")
        return ang

    @staticmethod
    def _projector_kind(dev: torch.device, projector: str | None, n_threads: int | None, n_angles: int):
        """Return (ASTRA projector type, number of angle chunks; 0: sparse matrix) for the device."""
        if dev.type == "cuda":
            if projector not in (None, "cuda", *CPU_PROJECTORS):
                raise ValueError(f"on device='cuda' the projector must be 'cuda' or one of {CPU_PROJECTORS}, "
                                 f"got {projector!r}")
            _check_cuda(astra_kernels=projector == "cuda")
            if projector != "cuda":
                return projector or "linear", 0
            if dev.index is not None:
                astra.set_gpu_index(dev.index)
            return "cuda", 1
        if dev.type != "cpu":
            raise ValueError(f"device must be 'cpu' or 'cuda', got {dev}")
        if projector is None:
            projector = "linear"
        if projector not in CPU_PROJECTORS:
            raise ValueError(f"on device='cpu' the projector must be one of {CPU_PROJECTORS}, got {projector!r}")
        threads = torch.get_num_threads() if n_threads is None else int(n_threads)
        if threads < 1:
            raise ValueError(f"n_threads must be >= 1, got {n_threads!r}")
        return projector, min(threads, n_angles)

    def _run(self, t: Tensor, out_shape: tuple[int, ...], forward: bool) -> Tensor:
        """Apply R (forward) or R^T to each of the B*C slices of t in float32, keep t's dtype."""
        c = self.img_size[0]
        slices = t.reshape(-1, *t.shape[2:]).to(torch.float32).contiguous()
        out = torch.empty(slices.shape[0], *out_shape, dtype=torch.float32, device=t.device)
        (self._projectors.forward if forward else self._projectors.backward)(slices, out)
        return out.reshape(t.shape[0], c, *out_shape).to(t.dtype)

    def _forward(self, x: Tensor) -> Tensor:
        return self._run(x, self.meas_shape[1:], forward=True)

    def _adjoint(self, y: Tensor) -> Tensor:
        return self._run(y, self.img_size[1:], forward=False)

    def initial_point(self, y: Tensor) -> Tensor:
        """The PnP solvers' default start: the Ram-Lak FBP."""
        return self.fbp(y)

    def fbp(self, y: Tensor, filter: str = "ram-lak") -> Tensor:
        """Filtered back-projection x = (pi / n_angles) R^T (h * y), h the ramp filter.

        Each detector row is zero-padded to n_pad = max(64, 2^ceil(log2(2 n_det))) and
        filtered in the frequency domain (see :func:`fbp_filter` for the windows). Assumes
        views uniformly covering [0, pi). Exact in the continuum for unit pixels and any
        detector width (the 1/width of the back-projection cancels the width in the filter).
        """
        y = self.check_y(y)
        n_det = self.n_detectors
        n_pad = max(64, 2 ** math.ceil(math.log2(2 * n_det)))
        response = fbp_filter(n_pad, filter).to(device=y.device, dtype=y.dtype)
        filtered = torch.fft.irfft(torch.fft.rfft(y, n=n_pad) * response, n=n_pad)[..., :n_det]
        return self._adjoint(filtered.contiguous()) * (math.pi / len(self.angles))
