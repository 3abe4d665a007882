"""Solvers: known minimisers, monotone PGD objective, residuals, generic denoisers, bad input."""

import math
import warnings

import deepinv as dinv
from deepinv.physics.functional.blur import gaussian_blur
import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch

import pnp_lpn as pl
from conftest import QuadraticPrior, SoftThresholdPrior, randomize, soft


def blur_physics(n=16, sigma=(1.0, 1.0), noise=0.0, dtype=torch.float64):
    kernel = gaussian_blur(sigma=sigma).to(dtype)
    return dinv.physics.BlurFFT(img_size=(1, n, n), filter=kernel, noise_model=dinv.physics.GaussianNoise(noise))


def normal_equations(physics, y, reg):
    """Independent reference: CG on (A^T A + reg I) x = A^T y with scipy, in float64."""
    shape = physics.A_adjoint(y).shape

    def matvec(v):
        x = torch.from_numpy(v).reshape(shape)
        return (physics.A_adjoint(physics.A(x)) + reg * x).flatten().numpy()

    n = int(np.prod(shape))
    op = sla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    sol, info = sla.cg(op, physics.A_adjoint(y).flatten().numpy(), rtol=1e-12, maxiter=2000)
    assert info == 0
    return torch.from_numpy(sol).reshape(shape)


@pytest.mark.parametrize("method", ["admm", "pgd"])
def test_quadratic_prior_reaches_normal_equation_solution(method):
    physics = blur_physics()
    x_true = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    y = physics.A(x_true) + 0.01 * torch.randn(2, 1, 16, 16, dtype=torch.float64)
    mu, lam = 0.3, 1.5  # F = 1/2 ||Ax - y||^2 + lam * mu/2 ||x||^2 ; lam >= ||A||^2 = 1 for PGD
    ref = normal_equations(physics, y, lam * mu)
    res = pl.solve(y, physics, QuadraticPrior(mu), method=method, lam=lam, max_iter=3000, tol=1e-10)
    err = (res.x - ref).norm() / ref.norm()
    assert err < 1e-3, f"{method}: relative error {err:.2e} after {res.n_iter} iterations ({res.stop_reason})"
    # the monitored regulariser is the closed form mu/2 ||z||^2 (through the generic formula)
    torch.testing.assert_close(res.per_sample["regularizer"][-1], mu / 2 * res.x.flatten(1).pow(2).sum(1))


def test_pgd_objective_never_increases_with_lpn():
    prior = randomize(pl.LPN(1, channels=(8, 12, 16), depth=2, alpha=0.1)).double().eval()
    physics = blur_physics(sigma=(1.5, 1.5))
    y = physics.A(torch.rand(2, 1, 16, 16, dtype=torch.float64)) + 0.02 * torch.randn(2, 1, 16, 16, dtype=torch.float64)
    lam = 1.0  # = ||A||^2 for a normalised blur kernel
    res = pl.solve(y, physics, prior, method="pgd", lam=lam, max_iter=60, tol=0)
    obj = res.per_sample["objective"]
    assert res.n_iter == 60
    assert (obj[1:] <= obj[:-1] + 1e-10 * obj[:-1].abs()).all()
    assert obj[-1].sum() < obj[0].sum()


def ista(physics, y, lam, n_iter=5000):
    """Independent reference for the LASSO 1/2 ||Ax - y||^2 + lam ||x||_1: plain ISTA, step 1
    (||A|| = 1 for a normalised blur)."""
    x = physics.A_adjoint(y)
    for _ in range(n_iter):
        x = soft(x - physics.A_adjoint(physics.A(x) - y), lam)
    return x


@pytest.mark.parametrize("method,step", [("pgd", 1.0), ("admm", None), ("admm", 1.0), ("admm", 4.0)])
def test_l1_prior_with_any_step_reaches_the_lasso_minimiser(method, step):
    """The prior step prox_{step lam R} (exact scaled prox when step < 1/lam) makes every
    variant converge to the same LASSO minimiser, computed independently by ISTA."""
    physics = blur_physics(sigma=(0.6, 0.6))  # well conditioned: ISTA converges in a few hundred steps
    y = physics.A(soft(torch.randn(2, 1, 16, 16, dtype=torch.float64), 1.0)) + 0.01 * torch.randn(2, 1, 16, 16, dtype=torch.float64)
    lam = 0.05
    ref = ista(physics, y, lam, n_iter=3000)
    res = pl.solve(y, physics, SoftThresholdPrior(1), method=method, lam=lam, step=step, max_iter=1000, tol=1e-10)
    err = (res.x - ref).norm() / ref.norm()
    assert err < 1e-4, f"{method}, step {step}: relative error {err:.2e} ({res.stop_reason})"
    assert res.step == pytest.approx(1 / lam if step is None else step)
    assert any("inner solver iterations" in n for n in res.notes) == (step is not None)
    if method == "pgd":
        obj = res.per_sample["objective"]
        assert (obj[1:] <= obj[:-1] + 1e-10 * obj[:-1].abs()).all()


def test_admm_with_a_box_reaches_the_constrained_lasso_minimiser():
    """min 1/2 ||Ax - y||^2 + lam ||x||_1 s.t. 0 <= x <= 0.4. Independent reference: projected ISTA,
    whose prox of lam |.| + box is exactly clip(soft(v, lam)) (both separable per pixel). ADMM's
    box block must reach it with R known (finite) at every iterate."""
    physics = blur_physics(sigma=(0.6, 0.6))
    x_true = soft(torch.randn(2, 1, 16, 16, dtype=torch.float64), 0.5)
    y = physics.A(x_true) + 0.01 * torch.randn(2, 1, 16, 16, dtype=torch.float64)
    lam, box = 0.05, (0.0, 0.4)
    ref = physics.A_adjoint(y).clamp(*box)
    for _ in range(3000):
        ref = soft(ref - physics.A_adjoint(physics.A(ref) - y), lam).clamp(*box)
    assert (ref == 0).any() and (ref == box[1]).any()  # both bounds are active at the minimiser
    res = pl.solve(y, physics, SoftThresholdPrior(1), method="admm", lam=lam, box=box, max_iter=3000, tol=1e-10)
    err = (res.x - ref).norm() / ref.norm()
    assert err < 1e-4, f"relative error {err:.2e} ({res.stop_reason})"
    reg = res.per_sample["regularizer"]
    assert torch.isfinite(reg).all()
    torch.testing.assert_close(reg[-1], res.x.flatten(1).abs().sum(1))
    viol = res.per_sample["box_violation"]
    assert viol[0].max() > 1e-3 and viol[-1].max() < 1e-8  # infeasible early, feasible at the end
    f_ref = 0.5 * (physics.A(ref) - y).flatten(1).pow(2).sum(1) + lam * ref.flatten(1).abs().sum(1)
    torch.testing.assert_close(res.per_sample["objective"][-1], f_ref, rtol=1e-6, atol=0)


def test_pgd_with_short_step_descends_at_small_lam_with_lpn():
    """lam far below ||A||^2: the default step 1/lam warns; step = 1/||A||^2 uses the exact
    prox of (step lam) R and the objective never increases."""
    prior = randomize(pl.LPN(1, channels=(8, 12, 16), depth=2, alpha=0.1)).double().eval()
    physics = blur_physics(sigma=(1.5, 1.5))
    y = physics.A(torch.rand(2, 1, 16, 16, dtype=torch.float64)) + 0.02 * torch.randn(2, 1, 16, 16, dtype=torch.float64)
    with pytest.warns(UserWarning, match="descent is not guaranteed"):
        pl.solve(y, physics, prior, method="pgd", lam=0.05, max_iter=2)
    res = pl.solve(y, physics, prior, method="pgd", lam=0.05, step=1.0, max_iter=30, tol=0)
    obj = res.per_sample["objective"]
    assert res.n_iter == 30
    assert (obj[1:] <= obj[:-1] + 1e-9 * obj[:-1].abs()).all()
    with pytest.raises(ValueError, match="step <= 1/lam"):
        pl.solve(y, physics, prior, method="pgd", lam=0.05, step=30.0, max_iter=2)


def test_admm_residuals_vanish_and_history_is_complete():
    prior = randomize(pl.AELPN(1, channels=(8, 12), depth=2, alpha=0.2)).double().eval()
    physics = blur_physics()
    y = physics.A(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    res = pl.solve(y, physics, prior, method="admm", lam=2.0, max_iter=300, tol=1e-7)
    keys = {"objective", "data_fidelity", "regularizer", "residual", "dual_residual", "rel_change", "time"}
    assert keys <= set(res.history)
    assert all(np.isfinite(v).all() and len(v) == res.n_iter for v in res.history.values())
    assert res.history["residual"][-1] < 1e-6 * res.history["residual"][0] or res.converged
    assert res.history["residual"][-1] < 1e-5


def test_generic_deepinv_denoiser_and_deepinv_operator():
    physics = dinv.physics.Inpainting(img_size=(1, 16, 16), mask=0.7, noise_model=dinv.physics.GaussianNoise(0.05))
    x = torch.rand(2, 1, 16, 16)
    y = physics(x)
    res = pl.solve(y, physics, dinv.models.TVDenoiser(n_it_max=20), method="admm", lam=1.0, max_iter=10)
    assert "objective" not in res.history and "regularizer" not in res.history
    assert res.x.shape == x.shape and np.isfinite(res.history["residual"]).all()
    assert any("no regulariser" in n for n in res.notes)


def test_batch_equals_per_sample():
    prior = randomize(pl.LPN(1, channels=(8, 12), depth=1, alpha=0.1)).double().eval()
    physics = blur_physics()
    y = physics.A(torch.rand(3, 1, 16, 16, dtype=torch.float64))
    batch = pl.solve(y, physics, prior, lam=0.5, max_iter=15, tol=0)
    for i in range(3):
        single = pl.solve(y[i : i + 1], physics, prior, lam=0.5, max_iter=15, tol=0)
        torch.testing.assert_close(batch.x[i : i + 1], single.x, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(batch.per_sample["objective"][:, i], single.per_sample["objective"][:, 0])


def test_default_lam_from_noise_levels():
    physics = blur_physics(noise=0.02, dtype=torch.float32)
    prior = pl.LPN(1, channels=(4,), depth=1, sigma_train=0.1).eval()
    y = physics(torch.rand(1, 1, 16, 16))
    res = pl.solve(y, physics, prior, method="admm", max_iter=2)
    assert res.lam == pytest.approx(0.02**2 / 0.1**2)
    res = pl.solve(y, physics, prior, method="pgd", max_iter=2)
    assert res.lam == pytest.approx(1.0, rel=1e-3)  # raised to ||A||^2 for descent
    # an operator without a noise level: estimated from y (pnp_lpn.noise), said in the notes
    res = pl.solve(y, blur_physics(dtype=torch.float32), prior, max_iter=2)
    from pnp_lpn.noise import estimate_noise_sigma
    assert res.lam == pytest.approx(estimate_noise_sigma(y) ** 2 / 0.1**2)
    assert any("estimated from y" in note for note in res.notes)
    with pytest.raises(ValueError, match="noise-free"):  # nothing to estimate from: lam is needed
        pl.solve(torch.ones_like(y), blur_physics(dtype=torch.float32), prior, max_iter=2)


def test_generic_denoiser_lam_from_its_noise_level():
    """Without sigma_train the rule runs backwards: lam = noise^2 / denoiser_sigma^2, and the
    denoiser is then called at exactly denoiser_sigma."""
    physics = blur_physics(noise=0.02, dtype=torch.float32)
    y = physics(torch.rand(1, 1, 16, 16))
    seen = []

    class Recorder(dinv.models.Denoiser):
        def forward(self, x, sigma=None):
            seen.append(float(sigma))
            return x

    res = pl.solve(y, physics, Recorder(), denoiser_sigma=0.05, max_iter=2)
    assert res.lam == pytest.approx(0.02**2 / 0.05**2)
    assert seen and all(s == pytest.approx(0.05) for s in seen)
    seen.clear()  # an explicit step: the denoiser runs at noise_sigma sqrt(step)
    pl.solve(y, physics, Recorder(), lam=0.1, step=4.0, max_iter=2)
    assert seen and all(s == pytest.approx(0.02 * 2.0) for s in seen)
    with pytest.raises(ValueError, match="denoiser_sigma"):
        pl.solve(y, physics, Recorder(), max_iter=2)


def test_diverging_pgd_stops_and_returns_best_iterate():
    physics = dinv.physics.LinearPhysics(A=lambda x: 3 * x, A_adjoint=lambda y: 3 * y)
    y = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    with pytest.warns(UserWarning):
        res = pl.solve(y, physics, QuadraticPrior(0.01), method="pgd", lam=1.0, max_iter=200, x0=y.clone())
    assert res.stop_reason.startswith("diverg") and not res.converged
    assert res.n_iter < 200
    best = min(res.history["objective"])
    assert res.best_iter == res.history["objective"].index(best) + 1


class _UnknownRThenBlowUp(QuadraticPrior):
    """R unknown (NaN, as at box-clipped iterates) and a non-finite output at call ``at``."""

    def __init__(self, at):
        super().__init__(0.1)
        self.calls, self.at = 0, at

    def prox_with_regularizer(self, v):
        self.calls += 1
        z, r = super().prox_with_regularizer(v)
        return (z * math.inf if self.calls == self.at else z), r * math.nan


def test_divergence_with_unknown_objective_returns_last_finite_iterate():
    physics = dinv.physics.LinearPhysics(A=lambda x: 2 * x, A_adjoint=lambda y: 2 * y)
    y = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    with pytest.warns(UserWarning):
        res = pl.solve(y, physics, _UnknownRThenBlowUp(at=4), method="admm", lam=1.0, max_iter=10, x0=y.clone())
    assert res.stop_reason.startswith("diverged") and res.best_iter == 3
    assert not torch.equal(res.x, y) and torch.isfinite(res.x).all()


@pytest.mark.parametrize("kwargs,match", [
    (dict(method="fista"), "unknown method"),
    (dict(lam=0.0), "lam"),
    (dict(lam=-1.0), "lam"),
    (dict(max_iter=0), "max_iter"),
    (dict(box=(1.0, 0.0)), "box"),
])
def test_bad_arguments(kwargs, match):
    physics = blur_physics(dtype=torch.float32)
    y = physics.A(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match=match):
        pl.solve(y, physics, QuadraticPrior(0.1), **{"lam": 1.0, **kwargs})


def test_bad_measurements_and_prior_mismatch():
    physics = blur_physics(dtype=torch.float32)
    y = physics.A(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="NaN"):
        pl.solve(torch.full_like(y, float("nan")), physics, QuadraticPrior(0.1), lam=1.0)
    with pytest.raises(ValueError, match="shape|match"):
        pl.solve(torch.rand(1, 1, 20, 20), physics, QuadraticPrior(0.1), lam=1.0)
    with pytest.raises(ValueError, match="channel"):
        pl.solve(y, physics, QuadraticPrior(0.1, in_channels=3), lam=1.0)


CUDA = torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("method", ["admm", "pgd"])
def test_gpu_solve_matches_cpu(method, monkeypatch):
    """The same LPN solve on CUDA tensors gives the CPU iterates (float64, exact FFT blur)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    physics = blur_physics(n=24, noise=0.05)
    prior = randomize(pl.LPN(1, channels=(4, 6), depth=1)).double()
    x = torch.rand(1, 1, 24, 24, dtype=torch.float64)
    y = physics.A(x) + 0.05 * torch.randn_like(x)
    cpu = pl.solve(y, physics, prior, method=method, lam=2.0, max_iter=15)
    gpu = pl.solve(y.cuda(), physics.to("cuda"), prior.cuda(), method=method, lam=2.0, max_iter=15)
    assert gpu.x.is_cuda and gpu.n_iter == cpu.n_iter
    torch.testing.assert_close(gpu.x.cpu(), cpu.x, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gpu.history["objective"], cpu.history["objective"], rtol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("projector,max_db", [("linear", 0.05), ("cuda", 0.3)])
def test_gpu_ct_solve_reaches_cpu_quality(projector, max_db):
    """PnP-ADMM with the shipped CT prior on the GPU: the same PSNR as on the CPU, to 0.05 dB
    with the default projector (the same matrix) and to 0.3 dB with ASTRA's GPU kernels (they
    discretise the line integrals differently)."""
    import astra
    from pnp_lpn.data import shepp_logan
    from pnp_lpn.metrics import psnr
    from pnp_lpn.operators import ParallelBeamCT

    if projector == "cuda" and not astra.use_cuda():
        pytest.skip("astra-toolbox without CUDA")
    x = shepp_logan(128)
    op = ParallelBeamCT((1, 128, 128), n_angles=60, noise_sigma=0.5)
    y = op(x)
    prior = pl.load_pretrained("lpn-ct")
    cpu = pl.solve(y, op, prior, max_iter=20, box=(0.0, 1.0))
    op_gpu = ParallelBeamCT((1, 128, 128), n_angles=60, noise_sigma=0.5, device="cuda", projector=projector)
    gpu = pl.solve(y.cuda(), op_gpu, prior.cuda(), max_iter=20, box=(0.0, 1.0))
    assert gpu.x.is_cuda
    p_cpu, p_gpu = float(psnr(cpu.x, x)), float(psnr(gpu.x.cpu(), x))
    assert p_cpu > 24 and abs(p_gpu - p_cpu) < max_db, (p_cpu, p_gpu)


def test_run_off_with_an_unbounded_regulariser_warns():
    """R(x) = -0.1 ||x||^2 (f = 1.25 x) is unbounded below on the null space of a pixel mask:
    the objective keeps falling while the masked pixels grow by 1.25 per ADMM iteration, so
    no objective test can see it. Once they pass 10x the start's range the solve must say so."""
    mask = (torch.arange(64, dtype=torch.float64).reshape(1, 1, 8, 8) % 2 == 0).double()
    physics = dinv.physics.LinearPhysics(A=lambda x: mask * x, A_adjoint=lambda y: mask * y)
    x_true = 0.2 + 0.6 * torch.rand(1, 1, 8, 8, dtype=torch.float64)
    y = physics.A(x_true)
    with pytest.warns(UserWarning, match="left") as caught:
        res = pl.solve(y, physics, QuadraticPrior(-0.2), method="admm", lam=1.0, max_iter=40, x0=x_true.clone())
    assert sum("left" in str(w.message) for w in caught) == 1  # once, not at every iteration
    assert any("left" in n for n in res.notes)
    objective = res.history["objective"]
    assert all(b < a for a, b in zip(objective, objective[1:]))  # falling all along
    assert float(res.x.abs().max()) > 10 * 1.25 * float(x_true.abs().max())


def test_run_off_outside_the_prior_data_range_stops():
    """The same run-off with a prior that knows its training range [0, 1]: the first iterate
    outside [-0.5, 1.5] stops the solve, and the previous iterate comes back."""
    mask = (torch.arange(64, dtype=torch.float64).reshape(1, 1, 8, 8) % 2 == 0).double()
    physics = dinv.physics.LinearPhysics(A=lambda x: mask * x, A_adjoint=lambda y: mask * y)
    x_true = 0.2 + 0.6 * torch.rand(1, 1, 8, 8, dtype=torch.float64)
    prior = QuadraticPrior(-0.2)
    prior.data_range = (0.0, 1.0)
    seen = []
    with pytest.warns(UserWarning, match="ran off"):
        res = pl.solve(physics.A(x_true), physics, prior, method="admm", lam=1.0, max_iter=40, x0=x_true.clone(),
                       callback=lambda k, z, info: seen.append(z.clone()))
    assert res.stop_reason.startswith("ran off") and not res.converged
    assert "box=(0, 1)" in res.stop_reason
    assert res.n_iter == len(seen) == len(res.history["objective"]) >= 1
    torch.testing.assert_close(res.x, seen[-1])
    assert all(-0.5 <= float(z.min()) and float(z.max()) <= 1.5 for z in seen)


@pytest.mark.parametrize("method", ["admm", "apgd"])
def test_run_off_holds_only_the_image_that_left(method):
    """A batch of two: image 0 has content on the mask's null space and runs off as above,
    image 1 has none there and stays in range. Image 0 is held at its last in-range iterate
    (its declared batch state put back every step), image 1 goes on to the end: each equals
    its own solve (batch = per sample)."""
    mask = (torch.arange(64, dtype=torch.float64).reshape(1, 1, 8, 8) % 2 == 0).double()
    physics = dinv.physics.LinearPhysics(A=lambda x: mask * x, A_adjoint=lambda y: mask * y)
    x_true = 0.2 + 0.6 * torch.rand(2, 1, 8, 8, dtype=torch.float64)
    x0 = torch.cat([x_true[:1], x_true[1:] * mask])
    prior = QuadraticPrior(-0.2)
    prior.data_range = (0.0, 1.0)
    kw = dict(method=method, lam=1.0, max_iter=40, tol=1e-8)
    with pytest.warns(UserWarning, match=r"ran off: the iterate of image\(s\) \[0\] \(of 2\)"):
        both = pl.solve(physics.A(x_true), physics, prior, x0=x0, **kw)
    with pytest.warns(UserWarning, match="ran off"):
        alone0 = pl.solve(physics.A(x_true[:1]), physics, prior, x0=x0[:1], **kw)
    alone1 = pl.solve(physics.A(x_true[1:]), physics, prior, x0=x0[1:], **kw)
    assert alone1.converged and not both.converged
    assert both.stop_reason.startswith("relative change") and "ran off" in both.stop_reason
    torch.testing.assert_close(both.x[:1], alone0.x)
    torch.testing.assert_close(both.x[1:], alone1.x)
    obj = both.per_sample["objective"]
    assert both.n_iter > alone0.n_iter and torch.isnan(obj[alone0.n_iter:, 0]).all()
    torch.testing.assert_close(obj[:alone0.n_iter, 0], alone0.per_sample["objective"][:, 0])
    torch.testing.assert_close(obj[:alone1.n_iter, 1], alone1.per_sample["objective"][:, 0])


def test_scaled_prox_tolerance_ignores_images_that_did_not_move():
    """The inner tolerance follows the smallest *nonzero* change of v: an image held by the
    run-off guard repeats its v, and must not force every inner solve to the float floor."""
    from pnp_lpn.solvers.solve import ScaledProxStep

    tols = []

    class Recording(QuadraticPrior):
        def scaled_prox_with_regularizer(self, v, t, w0=None, tol=1e-4, max_iter=500):
            tols.append(tol)
            return super().scaled_prox_with_regularizer(v, t, w0=w0, tol=tol, max_iter=max_iter)

    step = ScaledProxStep(Recording(0.5), 0.5)
    v = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    step(v)
    moved = v.clone()
    moved[1] += 1e-3
    step(moved)
    assert tols[0] == 1e-4 and tols[1] == pytest.approx(1e-4, rel=1e-6)  # 0.1 x the RMS change 1e-3 of image 1


@pytest.mark.parametrize("data_range", [None, (0.0, 1.0)])
def test_no_range_warning_for_a_solve_that_stays_in_range(data_range):
    physics = blur_physics()
    y = physics.A(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    prior = QuadraticPrior(0.1)
    prior.data_range = data_range
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = pl.solve(y, physics, prior, method="admm", lam=1.0, max_iter=30)
    assert not any("left" in n for n in res.notes) and not res.stop_reason.startswith("ran off")
