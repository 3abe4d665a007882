"""Parallel-beam CT on ASTRA: exact transpose, deepinv agreement, FBP, threads, CPU matrix, gradients, GPU."""

import copy
import math

import astra
import numpy as np
import pytest
import torch
from deepinv.physics import Tomography
from skimage.data import shepp_logan_phantom
from skimage.metrics import peak_signal_noise_ratio
from skimage.transform import resize

from pnp_lpn.operators import ParallelBeamCT

GPU = torch.cuda.is_available() and astra.use_cuda()


def _blobs(n: int) -> torch.Tensor:
    """Smooth non-symmetric phantom inside the inscribed circle, shape (1, 1, n, n)."""
    r, c = torch.meshgrid(torch.arange(n) / n, torch.arange(n) / n, indexing="ij")
    img = torch.exp(-((c - 0.35) ** 2 + (r - 0.6) ** 2) / 0.02) + 0.5 * torch.exp(
        -((c - 0.7) ** 2 + (r - 0.3) ** 2) / 0.005
    )
    return img[None, None].float()


def _phantom(n: int) -> torch.Tensor:
    return torch.from_numpy(resize(shepp_logan_phantom(), (n, n), anti_aliasing=True).astype(np.float32))[None, None]


@pytest.mark.parametrize("cpu_matrix", [False, True])
@pytest.mark.parametrize("projector", ["linear", "line", "strip"])
def test_back_projection_is_the_exact_matrix_transpose(projector, cpu_matrix):
    """Build A column by column and A^T column by column: B == A^T entry by entry (ASTRA's
    projector calls and the matrix path)."""
    op = ParallelBeamCT((1, 8, 8), n_angles=6, projector=projector, cpu_matrix=cpu_matrix)
    eye = torch.eye(64).reshape(64, 1, 8, 8)
    a = op.A(eye).reshape(64, -1).T  # (m, n)
    m = a.shape[0]
    b = op.A_adjoint(torch.eye(m).reshape(m, *op.meas_shape)).reshape(m, 64).T  # (n, m)
    torch.testing.assert_close(b, a.T, rtol=1e-6, atol=1e-6)
    assert op.adjointness_test(img_size=op.img_size, num_samples=4) < 1e-5


@pytest.mark.parametrize("cpu_matrix", [False, True])
def test_adjoint_at_realistic_size(cpu_matrix):
    op = ParallelBeamCT((1, 128, 128), n_angles=90, cpu_matrix=cpu_matrix)
    assert op.adjointness_test(img_size=op.img_size, num_samples=2) < 1e-5


def test_geometry_defaults():
    op = ParallelBeamCT((1, 64, 64), n_angles=30)
    assert op.n_detectors == math.ceil(64 * math.sqrt(2)) == 91
    assert op.meas_shape == (1, 30, 91)
    torch.testing.assert_close(op.angles, torch.arange(30, dtype=torch.float64) * math.pi / 30)
    # pixel size 1: an image of ones projects to its chord lengths (64 at angle 0)
    y = op.A(torch.ones(1, 1, 64, 64))
    assert float(y[0, 0, 0].max()) == pytest.approx(64, rel=1e-4)
    assert float(y[0, 0, 0].sum()) == pytest.approx(64 * 64, rel=1e-4)  # mass is conserved per view


def test_agrees_with_deepinv_tomography_circle_true():
    """Same scaling (unit pixels and bins); deepinv: degrees and (detectors, angles) layout."""
    x = _blobs(64)
    ours = ParallelBeamCT((1, 64, 64), n_angles=30, n_detectors=64)
    ref = Tomography(angles=30, img_width=64, circle=True, normalize=False)
    y_ref = ref.A(x).transpose(-1, -2)
    rel = float((ours.A(x) - y_ref).norm() / y_ref.norm())
    assert rel < 0.01  # measured 0.14 %


def test_fbp_shepp_logan_360_views():
    x = _phantom(256)
    op = ParallelBeamCT((1, 256, 256), n_angles=360)
    rec = op.fbp(op.A(x)).clamp(0, 1)
    psnr = peak_signal_noise_ratio(x[0, 0].numpy(), rec[0, 0].numpy(), data_range=1.0)
    assert psnr > 28.0  # measured 31.9 dB


@pytest.mark.parametrize("name", ["ram-lak", "shepp-logan", "cosine", "hamming", "hann"])
def test_fbp_filters_preserve_scale(name):
    x = _phantom(64)
    op = ParallelBeamCT((1, 64, 64), n_angles=90)
    rec = op.fbp(op.A(x), filter=name)
    assert float(rec.mean() / x.mean()) == pytest.approx(1.0, abs=0.01)
    assert float((rec - x).norm() / x.norm()) < 0.35


def test_fbp_scale_does_not_depend_on_detector_width():
    x = _phantom(64)
    for width in (0.7, 1.5):
        op = ParallelBeamCT((1, 64, 64), n_angles=90, n_detectors=math.ceil(91 / width), detector_width=width)
        assert float(op.fbp(op.A(x)).mean() / x.mean()) == pytest.approx(1.0, abs=0.01)


def test_threads_and_channels_agree_with_single_thread():
    x = torch.rand(2, 2, 32, 32)
    one = ParallelBeamCT((2, 32, 32), n_angles=25, n_threads=1)
    three = ParallelBeamCT((2, 32, 32), n_angles=25, n_threads=3)
    y = one.A(x)
    torch.testing.assert_close(three.A(x), y)
    torch.testing.assert_close(three.A_adjoint(y), one.A_adjoint(y), rtol=1e-5, atol=1e-3)
    single = ParallelBeamCT((1, 32, 32), n_angles=25)
    torch.testing.assert_close(single.A(x[:, 1:]), y[:, 1:])  # channels are projected separately


def test_float64_input_keeps_dtype():
    op = ParallelBeamCT((1, 16, 16), n_angles=8)
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    assert op.A(x).dtype == torch.float64
    assert op.A_adjoint(op.A(x)).dtype == torch.float64


def test_deepcopy_rebuilds_projectors():
    op = ParallelBeamCT((1, 16, 16), n_angles=8)
    x = torch.rand(1, 1, 16, 16)
    twin = copy.deepcopy(op)
    assert twin._projectors.astra.ids != op._projectors.astra.ids
    torch.testing.assert_close(twin.A(x), op.A(x))
    del twin  # frees only the copy's projectors
    assert op.A(x).shape == (1, 1, 8, 23)


def test_norm_sq_is_cached():
    op = ParallelBeamCT((1, 32, 32), n_angles=20)
    value = op.norm_sq()
    assert value > 0 and op.norm_sq() == value


def test_bad_arguments():
    with pytest.raises(ValueError, match="projector"):
        ParallelBeamCT((1, 16, 16), n_angles=4, projector="cuda")
    with pytest.raises(ValueError, match="angles"):
        ParallelBeamCT((1, 16, 16), angles=[0.0, float("nan")])
    with pytest.raises(ValueError, match="filter"):
        op = ParallelBeamCT((1, 16, 16), n_angles=4)
        op.fbp(op.A(torch.rand(1, 1, 16, 16)), filter="ramp")


@pytest.mark.skipif(GPU, reason="checks the error raised when no GPU is usable")
def test_cuda_request_without_gpu_names_the_cpu_alternative():
    with pytest.raises(RuntimeError, match="device='cpu'"):
        ParallelBeamCT((1, 16, 16), n_angles=4, device="cuda")


def test_sparse_matrix_path_equals_astra_threads_and_is_exactly_transposed():
    """The GPU default (ASTRA's matrix applied by torch) checked on the CPU: same sinogram as
    ASTRA's threaded projector, and <R u, v> = <u, R^T v> to float32 round-off."""
    from pnp_lpn.operators.ct import _SparseProjector

    op = ParallelBeamCT((1, 48, 40), n_angles=30)
    sparse = _SparseProjector("linear", (48, 40), op.angles.numpy(), op.n_detectors, 1.0, torch.device("cpu"))
    u, v = torch.randn(3, 48, 40), torch.randn(3, 30, op.n_detectors)
    ru, rtv = torch.empty_like(v), torch.empty_like(u)
    sparse.forward(u, ru)
    sparse.backward(v, rtv)
    torch.testing.assert_close(ru, op.A(u[:, None])[:, 0], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(rtv, op.A_adjoint(v[:, None])[:, 0], rtol=1e-5, atol=1e-4)
    lhs, rhs = (ru.double() * v).sum(), (u.double() * rtv).sum()
    assert abs(float(lhs - rhs)) < 1e-5 * float(lhs.abs())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_default_projector_is_the_cpu_operator():
    x = _phantom(128)
    cpu = ParallelBeamCT((1, 128, 128), n_angles=60)
    gpu = ParallelBeamCT((1, 128, 128), n_angles=60, device="cuda")
    y = gpu.A(x.cuda())
    assert y.is_cuda
    torch.testing.assert_close(y.cpu(), cpu.A(x), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(gpu.A_adjoint(y).cpu(), cpu.A_adjoint(y.cpu()), rtol=1e-4, atol=1e-3)
    assert gpu.adjointness_test(img_size=gpu.img_size, device="cuda") < 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="needs a CUDA GPU and a CUDA-enabled astra-toolbox")
def test_astra_gpu_kernels_agree_with_cpu():
    x = _phantom(128)
    cpu = ParallelBeamCT((1, 128, 128), n_angles=60)
    gpu = ParallelBeamCT((1, 128, 128), n_angles=60, device="cuda", projector="cuda")
    y = cpu.A(x)
    y_gpu = gpu.A(x.cuda())
    assert y_gpu.is_cuda
    assert float((y_gpu.cpu() - y).norm() / y.norm()) < 0.02
    back = cpu.A_adjoint(y)
    assert float((gpu.A_adjoint(y.cuda()).cpu() - back).norm() / back.norm()) < 0.05
    # voxel-driven back-projection: only approximately the adjoint (documented mismatch)
    assert gpu.adjointness_test(img_size=gpu.img_size, device="cuda") < 0.5
    rec = gpu.fbp(y_gpu).clamp(0, 1).cpu()
    assert peak_signal_noise_ratio(x[0, 0].numpy(), rec[0, 0].numpy(), data_range=1.0) > 20


def _dot(u: torch.Tensor, v: torch.Tensor) -> float:
    return float((u.double() * v.double()).sum())


@pytest.mark.parametrize("width", [1.0, 0.7])
def test_cpu_matrix_is_astras_projector(width):
    """The matrix path (torch sparse product) against ASTRA's projector calls, batch and channels:
    the same A and A^T to float32 round-off, and <A u, v> = <u, A^T v> against ASTRA's A^T."""
    kw = dict(img_size=(2, 48, 40), n_angles=30, n_detectors=math.ceil(63 / width), detector_width=width)
    calls, matrix = ParallelBeamCT(**kw, cpu_matrix=False), ParallelBeamCT(**kw, cpu_matrix=True)
    assert matrix._projectors.matrix is not None and calls._projectors.matrix is None
    u, v = torch.randn(3, 2, 48, 40), torch.randn(3, *calls.meas_shape)
    au, atv = matrix.A(u), matrix.A_adjoint(v)
    torch.testing.assert_close(au, calls.A(u), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(atv, calls.A_adjoint(v), rtol=1e-5, atol=1e-4)
    assert abs(_dot(au, v) - _dot(u, calls.A_adjoint(v))) < 1e-5 * abs(_dot(au, v))
    assert abs(_dot(calls.A(u), v) - _dot(u, atv)) < 1e-5 * abs(_dot(u, atv))


def test_cpu_default_switches_to_the_matrix_after_100_slices(monkeypatch):
    from pnp_lpn.operators import ct

    op = ParallelBeamCT((1, 24, 24), n_angles=10)
    x = torch.rand(50, 1, 24, 24)
    y = op.A(x)
    op.A_adjoint(y)  # 100 slices: still ASTRA's calls
    assert op._projectors.matrix is None
    torch.testing.assert_close(op.A(x[:1]), y[:1], rtol=1e-5, atol=1e-4)  # slice 101: the matrix
    assert op._projectors.matrix is not None and op._projectors.matrix.nbytes > 0
    monkeypatch.setattr(ct._CpuProjector, "_matrix_fits", lambda self: False)
    small = ParallelBeamCT((1, 24, 24), n_angles=10)
    small.A(torch.rand(101, 1, 24, 24))
    assert small._projectors.matrix is None and small._projectors.matrix_after is None  # memory: never
    with pytest.raises(ValueError, match="cpu_matrix"):
        ParallelBeamCT((1, 8, 8), n_angles=4, cpu_matrix="yes")


def test_matrix_nnz_estimate_bounds_astra():
    from pnp_lpn.operators.ct import _SparseProjector, matrix_nnz_estimate

    for kind in ("linear", "line", "strip"):
        for width in (1.0, 0.6, 2.0):
            op = ParallelBeamCT((1, 32, 32), n_angles=20, n_detectors=math.ceil(46 / width), detector_width=width)
            sparse = _SparseProjector(kind, (32, 32), op.angles.numpy(), op.n_detectors, width, torch.device("cpu"))
            assert sparse.r._nnz() <= matrix_nnz_estimate((32, 32), 20, width) < 3 * sparse.r._nnz()


@pytest.mark.parametrize("cpu_matrix", [False, True])
def test_gradients_are_the_adjoint(cpu_matrix):
    """grad_x <A x, w> = A^T w and grad_y <A^T y, v> = A v, by autograd and torch.func."""
    op = ParallelBeamCT((2, 12, 10), n_angles=7, cpu_matrix=cpu_matrix)
    x = torch.rand(2, 2, 12, 10, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, *op.meas_shape, dtype=torch.float64, requires_grad=True)
    w, v = torch.rand_like(y), torch.rand_like(x)
    gx, gy = torch.autograd.grad((op.A(x) * w).sum() + (op.A_adjoint(y) * v).sum(), (x, y))
    torch.testing.assert_close(gx, op.A_adjoint(w))
    torch.testing.assert_close(gy, op.A(v))
    torch.testing.assert_close(torch.func.grad(lambda t: (op.A(t) * w).sum())(x.detach()), op.A_adjoint(w))
    _, tangent = torch.func.jvp(op.A_adjoint, (y.detach(),), (w,))
    torch.testing.assert_close(tangent, op.A_adjoint(w))
    jac = torch.func.jacrev(op.A)(x.detach()[:1, :1].expand(1, 2, 12, 10).contiguous())
    jv = jac.flatten(0, 3).flatten(1) @ v[:1].flatten()
    torch.testing.assert_close(jv, op.A(v[:1]).flatten(), rtol=1e-5, atol=1e-5)  # float32 inside


def test_gradcheck_float64():
    """Finite differences in float64 (step 1: exact for a linear map up to float32 round-off),
    first and second order, through A, A^T and the FBP."""
    op = ParallelBeamCT((1, 8, 8), n_angles=5)
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, *op.meas_shape, dtype=torch.float64, requires_grad=True)
    kw = dict(eps=1.0, atol=1e-5, rtol=1e-4)
    assert torch.autograd.gradcheck(op.A, (x,), **kw)
    assert torch.autograd.gradgradcheck(op.A, (x,), **kw)
    assert torch.autograd.gradcheck(op.A_adjoint, (y,), **kw)
    assert torch.autograd.gradcheck(op.fbp, (y,), **kw)
