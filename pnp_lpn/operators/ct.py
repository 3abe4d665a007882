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
entry by entry in the tests), so the adjoint error is float32 round-off (~5e-7). On the CPU
they run as ASTRA's projector calls (single-threaded per call; the angle set is split into
chunks projected by parallel threads, ASTRA releases the GIL) for the first 100 slices an
operator projects, then as ASTRA's matrix R and its explicit transpose applied by torch's
multi-threaded sparse CSR x dense product, all slices of a call as the columns of one
product (16 bytes per non-zero: float32 values, int32 indices, for R and R^T; 1.3 GB at
512^2 with 180 views). Both compute the same R up to float32 summation order;
``cpu_matrix`` chooses (see :class:`ParallelBeamCT`). A and A^T are differentiable
(:class:`_Project`: the backward of R is R^T and of R^T is R; autograd and torch.func).
On device="cuda" the default keeps that exactness: the same ASTRA projection matrix (built
once on the CPU) is applied by torch as a sparse CSR matrix on the GPU, with its explicit
transpose as back-projection (memory: 12 bytes per non-zero - float32 value, int64 column
index - twice; about 0.5 GB at 256^2 with 180 views, 2 GB at 512^2). projector="cuda" uses
ASTRA's own GPU kernels instead, fed with GPU tensors through DLPack (no host copy, no
matrix): faster to set up and lighter, but its back-projector is voxel-driven, hence only
approximately the adjoint (measured: 35 % mismatch of <Au, v> and <u, A^T v> on white-noise
u, v; 0.5 % on smooth sinograms).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse
import torch
from torch import Tensor

from pnp_lpn._checks import check_positive
from pnp_lpn._extras import require
from pnp_lpn.operators.base import ForwardOperator, check_img_size

astra = require("astra", "the CT operator (ParallelBeamCT)")

CPU_PROJECTORS = ("linear", "line", "strip")
FILTERS = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")
MATRIX_AFTER = 100  # slices projected by ASTRA's calls before the CPU projector switches to the matrix
MATRIX_CHUNK_NNZ = 8_000_000  # matrix built by angle chunks of about this many non-zeros


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


def _astra_matrix(kind: str, shape: tuple[int, int], angles: np.ndarray, n_det: int,
                  det_width: float) -> scipy.sparse.csr_matrix:
    """ASTRA's projection matrix (len(angles) * n_det, H * W) of ``kind``, float32 values.

    Row a * n_det + d holds the weights of ray (a, d) over the row-major pixels. The zero
    weights ASTRA stores (up to 30 % of the entries for "strip") are dropped.
    """
    vol = astra.create_vol_geom(shape[0], shape[1])
    proj_id = astra.create_projector(kind, astra.create_proj_geom("parallel", det_width, n_det, angles), vol)
    matrix_id = astra.projector.matrix(proj_id)
    try:
        m = astra.matrix.get(matrix_id)
    finally:
        astra.matrix.delete(matrix_id)
        astra.projector.delete(proj_id)
    r = scipy.sparse.csr_matrix((m.data.astype(np.float32), m.indices, m.indptr), shape=m.shape)
    r.eliminate_zeros()
    return r


def matrix_nnz_estimate(shape: tuple[int, int], n_angles: int, det_width: float) -> int:
    """Upper estimate of the non-zeros of the projection matrix: n_angles * H * W * (1 + 1.5 / width).

    Non-zeros per pixel and view, measured (32^2 and 128^2): "linear" 1.72 / 2.98 / 0.90,
    "line" 1.27 / 2.12 / 0.64, "strip" 2.19 / 3.10 / 1.60 at detector width 1 / 0.6 / 2.
    """
    return math.ceil(n_angles * shape[0] * shape[1] * (1 + 1.5 / det_width))


class _SparseProjector:
    """ASTRA's projection matrix R (n_angles * n_det, H * W) and R^T as torch sparse CSR
    tensors on ``device``: forward and back-projection are exact transposes on any device.

    Built by chunks of at most ``MATRIX_CHUNK_NNZ`` estimated non-zeros (bounded transient
    memory). Indices are int32 on the CPU (MKL's threaded sparse x dense product; 2.5x faster
    than int64) and int64 on the GPU: 16 (CPU) or 24 (GPU) bytes per non-zero for R and R^T.
    """

    def __init__(
        self, kind: str, shape: tuple[int, int], angles: np.ndarray, n_det: int, det_width: float, device: torch.device
    ) -> None:
        self._args = (kind, shape, angles, n_det, det_width, device)
        n_chunks = math.ceil(matrix_nnz_estimate(shape, len(angles), det_width) / MATRIX_CHUNK_NNZ)
        bounds = np.linspace(0, len(angles), min(n_chunks, len(angles)) + 1).round().astype(int)
        r = scipy.sparse.vstack([_astra_matrix(kind, shape, angles[a:b], n_det, det_width)
                                 for a, b in zip(bounds[:-1], bounds[1:])], format="csr")
        index = np.int32 if device.type == "cpu" and r.nnz < 2**31 else np.int64
        self.r, self.rt = (self._to_torch(m, device, index) for m in (r, r.T.tocsr()))

    @staticmethod
    def _to_torch(m: scipy.sparse.csr_matrix, device: torch.device, index: type) -> Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            crow, col = (torch.from_numpy(a.astype(index, copy=False)) for a in (m.indptr, m.indices))
            return torch.sparse_csr_tensor(crow, col, torch.from_numpy(m.data), m.shape,
                                           check_invariants=False).to(device)

    def __reduce__(self):
        return type(self), self._args

    @property
    def nbytes(self) -> int:
        """Bytes held by R and R^T (values, column indices, row pointers)."""
        return sum(t.numel() * t.element_size() for m in (self.r, self.rt)
                   for t in (m.values(), m.col_indices(), m.crow_indices()))

    @staticmethod
    def _apply(m: Tensor, inputs: Tensor, out: Tensor) -> None:
        """out[k] = m @ inputs[k] (flattened): one sparse x dense product with the K inputs as columns.

        K = 1 uses the matrix-vector product (on the CPU 2x faster than a one-column product;
        from K = 2 on, one product with K columns costs about as much as one with two).
        """
        flat = inputs.reshape(len(inputs), -1)
        if len(inputs) == 1:
            out.view(1, -1)[0].copy_(m @ flat[0])
        else:
            out.copy_((m @ flat.T).T.reshape(out.shape))

    def forward(self, images: Tensor, out: Tensor) -> None:
        """out[k] = R images[k]; images (K, H, W), out (K, n_angles, n_det)."""
        self._apply(self.r, images, out)

    def backward(self, sinos: Tensor, out: Tensor) -> None:
        """out[k] = R^T sinos[k]."""
        self._apply(self.rt, sinos, out)


class _CpuProjector:
    """The CPU projector: ASTRA's projector calls for the first ``matrix_after`` slices, then
    ASTRA's projection matrix applied by torch (:class:`_SparseProjector`), if it is estimated
    to need at most 1/4 of the free memory then; otherwise ASTRA's calls throughout.

    Both compute the same R (the matrix is the one ASTRA's calls apply; results differ by
    float32 summation order). ``matrix_after``: 0 builds the matrix at construction, None never.
    """

    def __init__(self, astra_args: tuple, matrix_after: int | None, n_slices: int = 0) -> None:
        self._astra_args, self.matrix_after, self.n_slices = astra_args, matrix_after, n_slices
        self.astra = _AstraProjectors(*astra_args)
        self.matrix: _SparseProjector | None = None
        if matrix_after == 0:
            self.matrix = self._build_matrix()

    def __reduce__(self):
        return type(self), (self._astra_args, self.matrix_after, self.n_slices)

    def _build_matrix(self) -> _SparseProjector:
        kind, shape, angles, n_det, det_width, _ = self._astra_args
        return _SparseProjector(kind, shape, angles, n_det, det_width, torch.device("cpu"))

    def _matrix_fits(self) -> bool:
        """Whether R and R^T (16 bytes per estimated non-zero) fit in 1/4 of the free memory
        (taken as 16 GiB where the system does not report it)."""
        _, shape, angles, _, det_width, _ = self._astra_args
        needed = 16 * matrix_nnz_estimate(shape, len(angles), det_width)
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            free = 16 * 2**30
        return needed <= free / 4

    def _pick(self, n_slices: int) -> _AstraProjectors | _SparseProjector:
        """The projector for the next call on ``n_slices`` slices (builds the matrix when due)."""
        self.n_slices += n_slices
        if self.matrix is None and self.matrix_after is not None and self.n_slices > self.matrix_after:
            if self._matrix_fits():
                self.matrix = self._build_matrix()
            else:
                self.matrix_after = None
        return self.astra if self.matrix is None else self.matrix

    def forward(self, images: Tensor, out: Tensor) -> None:
        """out[k] = R images[k]; images (K, H, W), out (K, n_angles, n_det)."""
        self._pick(len(images)).forward(images, out)

    def backward(self, sinos: Tensor, out: Tensor) -> None:
        """out[k] = R^T sinos[k]."""
        self._pick(len(sinos)).backward(sinos, out)


class _Project(torch.autograd.Function):
    """t -> R t (``forward=True``) or R^T t through ``op``'s projector, differentiable.

    The map is linear, so its vector-Jacobian product is the transpose (backward of R is
    R^T and of R^T is R, themselves differentiable) and its Jacobian-vector product is the
    map applied to the tangent. vmap folds the mapped dimension into the batch.
    """

    @staticmethod
    def forward(t: Tensor, op: "ParallelBeamCT", forward: bool) -> Tensor:
        return op._project(t, forward)

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: Tensor) -> None:
        ctx.op, ctx.forward = inputs[1], inputs[2]

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        return _Project.apply(grad, ctx.op, not ctx.forward), None, None

    @staticmethod
    def jvp(ctx, tangent: Tensor, *_) -> Tensor:
        return _Project.apply(tangent, ctx.op, ctx.forward)

    @staticmethod
    def vmap(info, in_dims: tuple, t: Tensor, op: "ParallelBeamCT", forward: bool) -> tuple[Tensor, int | None]:
        if in_dims[0] is None:
            return _Project.apply(t, op, forward), None
        t = t.movedim(in_dims[0], 0)
        out = _Project.apply(t.reshape(-1, *t.shape[2:]), op, forward)
        return out.reshape(t.shape[0], t.shape[1], *out.shape[1:]), 0


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
        CPU projectors, run on the CPU by ASTRA's calls or as a sparse matrix (``cpu_matrix``)
        and as a sparse matrix on the GPU (exact adjoint on both); on the GPU also "cuda":
        ASTRA's GPU kernels (no matrix, approximate adjoint; see the module docstring).
    :param n_threads: CPU threads of ASTRA's projector calls, each projecting a chunk of the
        angles; default torch.get_num_threads().
    :param detector_width: bin width in pixel units.
    :param cpu_matrix: on the CPU, apply ASTRA's projection matrix with torch's threaded
        sparse product (same R, exact transpose; faster, memory 16 bytes per non-zero, see
        the module docstring): None (default) after the operator has projected
        ``MATRIX_AFTER`` = 100 slices (A or A^T) and if it is estimated to take at most 1/4
        of the free memory; True from construction; False never (ASTRA's calls).
    :param kwargs: CG options of :class:`ForwardOperator` (cg_max_iter, cg_tol, warm_start).

    ``default_box`` (0, 1): attenuation images are scaled to [0, 1] (docs/operators.md) and sparse
    views leave a null space free, so :func:`pnp_lpn.solve` keeps iterates in that range unless
    told otherwise (``box=None``), as the command line does.
    """

    default_box: tuple[float, float] | None = (0.0, 1.0)

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
        cpu_matrix: bool | None = None,
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
        if cpu_matrix not in (None, True, False):
            raise ValueError(f"cpu_matrix must be None, True or False, got {cpu_matrix!r}")
        if dev.type == "cpu":
            after = {None: MATRIX_AFTER, True: 0, False: None}[cpu_matrix]
            self._projectors = _CpuProjector((kind, size[1:], ang, n_det, self.detector_width, n_chunks), after)
        elif n_chunks:
            self._projectors = _AstraProjectors(kind, size[1:], ang, n_det, self.detector_width, n_chunks)
        else:
            self._projectors = _SparseProjector(kind, size[1:], ang, n_det, self.detector_width, dev)

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

    def _project(self, t: Tensor, forward: bool) -> Tensor:
        """R (forward) or R^T applied to each of the B*C slices of t in float32, in t's dtype.

        t: (B, C, H, W) -> (B, C, n_angles, n_det), or back. Not differentiable (a plain
        tensor hand-off to ASTRA or the sparse product); :class:`_Project` wraps it.
        """
        out_shape = self.meas_shape[1:] if forward else self.img_size[1:]
        slices = t.detach().reshape(-1, *t.shape[2:]).to(torch.float32).contiguous()
        out = torch.empty(slices.shape[0], *out_shape, dtype=torch.float32, device=t.device)
        (self._projectors.forward if forward else self._projectors.backward)(slices, out)
        return out.reshape(t.shape[0], self.img_size[0], *out_shape).to(t.dtype)

    def _forward(self, x: Tensor) -> Tensor:
        return _Project.apply(x, self, True)

    def _adjoint(self, y: Tensor) -> Tensor:
        return _Project.apply(y, self, False)

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
