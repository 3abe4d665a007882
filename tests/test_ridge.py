"""Ridge priors (CRR / WCRR): filter bank, profiles, certified prox, implicit gradients."""

import math

import numpy as np
import pytest
import torch

import pnp_lpn as pl
from pnp_lpn.checkpoint import load_prior, save_prior
from pnp_lpn.priors.filters import FilterBank
from pnp_lpn.priors.ridge import RidgePrior, conjugate_gradient
from pnp_lpn.priors.spline import SplineProfiles


def _prior(rho: float, seed: int = 0) -> RidgePrior:
    """A small ridge prior with random (not initial) profiles, in float64."""
    torch.manual_seed(seed)
    p = RidgePrior(channels=(3, 6), kernel=3, scales=(1, 2), knots=21, span=3.0, rho=rho).double().eval()
    with torch.no_grad():
        p.profiles.raw_slopes.add_(0.05 * torch.randn_like(p.profiles.raw_slopes))
        p.mu_coef[0] = math.log(5.0)
    return p


def _spatial_bank(bank: FilterBank, x: torch.Tensor) -> list[torch.Tensor]:
    """Reference W x computed in space: each flip of the pooled image, extended with half-sample
    symmetric boundaries, through the chain of valid convolutions; (B, F, 4 H_s, W_s) per scale."""
    import torch.nn.functional as F

    out = []
    for s, chain in zip(bank.scales, bank._raw_chains()):
        z = F.avg_pool2d(x, s) * s if s > 1 else x
        pad = (bank.extent - 1) // 2

        def index(n):
            i = torch.arange(-pad, n + pad) % (2 * n)
            return torch.where(i < n, i, 2 * n - 1 - i)
        flips = [z, z.flip(-1), z.flip(-2), z.flip(-2, -1)]
        h = torch.cat([f.index_select(-2, index(z.shape[-2])).index_select(-1, index(z.shape[-1])) for f in flips])
        for k in chain:
            h = F.conv2d(h, k)
        out.append(torch.cat(h.chunk(4), -2) / bank.norm_bound())
    return out


@pytest.mark.parametrize("size,channels", [((23, 19), 1), ((3, 5), 1), ((11, 14), 3)])  # (3, 5): kernels wrap around
def test_filter_bank_matches_spatial_reference_adjoint_and_certified_norm(size, channels):
    torch.manual_seed(1)
    bank = FilterBank(channels, (3, 5), 3, (1, 2)).double()
    k = bank.kernels().detach()
    x = torch.randn(2, channels, *size, dtype=torch.float64)
    wx = k.apply(x)
    assert [tuple(r.shape) for r in wx] == [(2, 5, 2 * (size[0] // s), 2 * (size[1] // s)) for s in (1, 2)]
    with torch.no_grad():  # the torus holds the same responses in another layout: compare per-filter moments
        for fft, ref in zip(wx, _spatial_bank(bank, x)):
            for power in (1, 2, 3):
                torch.testing.assert_close(fft.pow(power).sum((-2, -1)), ref.pow(power).sum((-2, -1)))
    g = [torch.randn_like(r) for r in wx]
    lhs = sum((a * b).sum() for a, b in zip(wx, g))
    rhs = (x * k.adjoint(g, x.shape[-2:])).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12)
    # the streamed W^T fn(W x), filter by filter, equals the adjoint of the stacked responses
    weights = [torch.randn_like(r) for r in wx]
    streamed = k.transform(x, lambda i, f, r: weights[i][:, f:f + 1] * r.pow(2))
    torch.testing.assert_close(streamed, k.adjoint([w * r.pow(2) for w, r in zip(weights, wx)], x.shape[-2:]))
    for shape in (size, (40, 33)):  # power iteration on W^T W: the certified bound holds at every size
        v = torch.randn(1, channels, *shape, dtype=torch.float64)
        for _ in range(200):
            v = k.adjoint(k.apply(v), v.shape[-2:])
            norm_sq = float(v.norm())
            v = v / norm_sq
        assert norm_sq <= 1.0
    assert norm_sq > 0.3  # the bound is not vacuous


def test_filter_bank_filters_border_pixels_and_is_flip_invariant():
    """Symmetric boundaries: a corner pixel is seen by as many responses as an interior one,
    and R(F x) = R(x) for the left-right and up-down flips."""
    p = _prior(1.0)
    k = p.bank.kernels().detach()
    corner, centre = torch.zeros(1, 1, 16, 16, dtype=torch.float64), torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    corner[..., 0, 0], centre[..., 8, 8] = 1.0, 1.0
    energy = [sum(float(r.pow(2).sum()) for r in k.apply(e)) for e in (corner, centre)]
    assert energy[0] > 0.5 * energy[1]
    x = torch.rand(2, 1, 18, 14, dtype=torch.float64)  # sides multiples of the scales: pooling drops no row
    r = p.regularizer(x)
    for dims in ((-1,), (-2,), (-2, -1)):
        assert torch.allclose(p.regularizer(x.flip(dims)), r, rtol=1e-10)


def test_spline_profile_is_the_integral_of_its_derivative():
    torch.manual_seed(2)
    prof = SplineProfiles(3, knots=11, span=2.0, rho=1.0).double()
    with torch.no_grad():
        prof.raw_slopes.copy_(torch.randn_like(prof.raw_slopes))
    u = torch.linspace(-3, 3, 601, dtype=torch.float64).repeat(1, 3, 1)
    out = prof.evaluate(u, (0, 1, 2))
    assert float(prof.slopes().min()) >= -1.0
    eps = 1e-6
    d1 = (prof.evaluate(u + eps, (0,))[0] - prof.evaluate(u - eps, (0,))[0]) / (2 * eps)
    assert torch.allclose(d1, out[1], atol=1e-6)
    zero = prof.evaluate(torch.zeros(1, 3, 1, dtype=torch.float64), (0, 1))
    assert float(zero[0].abs().max()) <= 1e-15 and float(zero[1].abs().max()) <= 1e-15  # up to rounding of u - t_j
    assert float(out[2].min()) >= -1.0
    assert float(out[2][u.abs() > 2.0].abs().max()) == 0  # phi linear beyond the grid
    # phi' is the linear interpolation of its knot values, constant beyond the grid (numpy's interp)
    _, c, _ = prof.tables()
    knots = np.linspace(-2.0, 2.0, 11)
    for i in range(3):
        ref = np.interp(u[0, i].numpy(), knots, c[i].detach().numpy())
        assert np.allclose(out[1][0, i].detach().numpy(), ref, atol=1e-12)


def test_spline_evaluation_in_slices_matches_one_piece(monkeypatch):
    import pnp_lpn.priors.spline as spline

    torch.manual_seed(3)
    prof = SplineProfiles(4, knots=11, span=2.0, rho=1.0).double()
    u = 3 * torch.randn(2, 4, 9, 7, dtype=torch.float64)
    whole = prof.evaluate(u, (0, 1, 2))
    d1, total = prof.derivative_and_sum(u)
    monkeypatch.setattr(spline, "PIECE", 40)  # slices of 5 columns of the (2, 4, 63) view
    sliced = prof.evaluate(u, (0, 1, 2))
    for d in (0, 1, 2):
        assert torch.equal(sliced[d], whole[d])
    d1_sliced, total_sliced = prof.derivative_and_sum(u)
    assert torch.equal(d1_sliced, d1) and torch.equal(d1, whole[1])
    assert torch.allclose(total_sliced, whole[0].flatten(1).sum(1), rtol=1e-12)
    assert torch.allclose(total, total_sliced, rtol=1e-12)


@pytest.mark.parametrize("rho", [0.0, 1.0])
def test_energy_gradient_and_hessian(rho):
    p = _prior(rho)
    x = torch.rand(2, 1, 20, 20, dtype=torch.float64, requires_grad=True)
    parts = p.parts(2)
    grad, reg = p.energy_terms(parts, x)
    (auto,) = torch.autograd.grad(reg.sum(), x)
    assert torch.allclose(grad, auto, atol=1e-10)
    x = x.detach()
    v, eps = torch.randn_like(x), 1e-6
    fd = (p.energy_terms(parts, x + eps * v)[0] - p.energy_terms(parts, x - eps * v)[0]) / (2 * eps)
    assert torch.allclose(p.hessian_vector(parts, x, v), v + fd, atol=1e-6)


@pytest.mark.parametrize("rho", [0.0, 1.0])
def test_prox_certificate_against_high_precision_solve(rho):
    p = _prior(rho)
    y = torch.rand(3, 1, 16, 16, dtype=torch.float64)
    loose = p.scaled_prox_with_regularizer(y, 1.0, tol=1e-3)
    exact = p.solve_denoising(y, p.parts(3), tol=1e-12, max_iter=2000)
    assert float(exact.error_bound.max()) < 1e-7
    dist = (loose.z - exact.z).flatten(1).pow(2).mean(1).sqrt()  # <= the two bounds (triangle inequality)
    assert bool((dist <= loose.error_bound + exact.error_bound).all())
    assert float(dist.max()) > 1e-2 * float(loose.error_bound.max())  # the loose solve is not exact already


def test_convex_prox_is_firmly_nonexpansive_and_weak_one_lipschitz_bounded():
    crr, wcrr = _prior(0.0), _prior(1.0)
    torch.manual_seed(3)
    for _ in range(2):
        a, b = torch.rand(2, 1, 1, 16, 16, dtype=torch.float64)
        fa, fb = crr.prox(a), crr.prox(b)
        assert float((fa - fb).pow(2).sum()) <= float(((fa - fb) * (a - b)).sum()) + 1e-9
        wa, wb = wcrr.prox(a), wcrr.prox(b)
        m = float(wcrr.parts(1).modulus)
        assert float((wa - wb).norm()) <= float((a - b).norm()) / m + 1e-9


def test_weakly_convex_objective_is_midpoint_convex():
    p = _prior(1.0, seed=4)
    t_max = p.max_prox_weight()
    torch.manual_seed(5)
    for t in (0.5, 0.99 * t_max):
        parts = p.parts(1, t=t)
        for _ in range(5):
            a, b = torch.rand(2, 1, 1, 16, 16, dtype=torch.float64) * 2 - 0.5

            def energy(x):
                return 0.5 * float(x.pow(2).sum()) + float(p.energy_terms(parts, x)[1])
            assert energy((a + b) / 2) <= (energy(a) + energy(b)) / 2 + 1e-9


def test_regularizer_at_prox_output_and_potential_formula():
    p = _prior(1.0)
    v = torch.rand(2, 1, 20, 20, dtype=torch.float64)
    z, reg = p.prox_with_regularizer(v)
    assert torch.allclose(reg, p.regularizer(z), rtol=1e-10)
    psi = p.potential(v)
    formula = (v * z).flatten(1).sum(1) - 0.5 * z.flatten(1).pow(2).sum(1) - psi
    assert torch.allclose(formula, reg, atol=1e-7)
    half = p.scaled_prox_with_regularizer(v, 0.5, tol=1e-9)  # R itself, not the solve's weighted 0.5 R
    assert torch.allclose(half.reg, p.regularizer(half.z), rtol=1e-8)
    pre = p.regularizer(z, return_result=True).v  # the prox maps the preimage back to z
    assert torch.allclose(p.scaled_prox_with_regularizer(pre, 1.0, tol=1e-9).z, z, atol=1e-5)


def test_multi_sigma_denoise_matches_per_sigma_calls():
    p = _prior(1.0)
    y = torch.rand(3, 1, 20, 20, dtype=torch.float64)
    sigmas = torch.tensor([0.03, 0.1, 0.2], dtype=torch.float64)
    batch = p.denoise(y, sigmas, tol=1e-9)
    for i in range(3):
        single = p.denoise(y[i:i + 1], float(sigmas[i]), tol=1e-9)
        assert torch.allclose(batch[i:i + 1], single, atol=1e-7)
    assert torch.allclose(p(y, 0.1), p.denoise(y, 0.1))
    assert torch.allclose(p(y), p.prox(y))  # no sigma: the prox of R = R_{sigma_train}


def test_implicit_gradient_matches_finite_differences():
    p = _prior(1.0)
    y = torch.rand(1, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 1, 16, 16, dtype=torch.float64)
    p.train()
    loss = (p.denoise(y, 0.1, tol=1e-11) * w).sum()
    grad_y, grad_c = torch.autograd.grad(loss, [y, p.lam_coef])
    p.eval()
    eps, d = 1e-5, torch.randn_like(y)

    def value(yy):
        return float((p.denoise(yy, 0.1, tol=1e-12) * w).sum())
    fd = (value(y.detach() + eps * d) - value(y.detach() - eps * d)) / (2 * eps)
    assert abs(fd - float((grad_y * d).sum())) <= 1e-5 * max(1.0, abs(fd))
    eps = 1e-4
    with torch.no_grad():
        p.lam_coef[0] += eps
        up = value(y.detach())
        p.lam_coef[0] -= 2 * eps
        down = value(y.detach())
        p.lam_coef[0] += eps
    assert abs((up - down) / (2 * eps) - float(grad_c[0])) <= 1e-4 * max(1.0, abs(float(grad_c[0])))
    assert abs(float(grad_c[0])) > 1e-3  # the parameter matters


def test_conjugate_gradient_solves_spd_systems():
    torch.manual_seed(6)
    m = torch.randn(5, 5, dtype=torch.float64)
    a = m @ m.T + 5 * torch.eye(5, dtype=torch.float64)
    b = torch.randn(2, 1, 1, 5, dtype=torch.float64)
    u = conjugate_gradient(lambda v: v @ a, b, tol=1e-12)
    assert torch.allclose(u @ a, b, atol=1e-9)


def test_checkpoint_round_trip(tmp_path):
    p = _prior(1.0).float()
    path = save_prior(p, tmp_path / "ridge.safetensors")
    q = load_prior(path)
    assert isinstance(q, RidgePrior) and q.config() == p.config()
    y = torch.rand(1, 1, 20, 20)
    assert torch.allclose(q.denoise(y, 0.07), p.denoise(y, 0.07), atol=1e-6)


def test_tiny_training_run_lowers_the_loss():
    from pnp_lpn.training import TrainConfig, make_sampler, train

    torch.manual_seed(0)
    p = RidgePrior(channels=(3, 6), kernel=3, scales=(1,), knots=21, rho=1.0)
    imgs = torch.nn.functional.avg_pool2d(torch.rand(4, 1, 24, 24), 3, 1, 1)  # some structure to learn
    g = torch.Generator().manual_seed(1)
    noisy = imgs + 0.1 * torch.randn(imgs.shape, generator=g)

    def mse() -> float:
        with torch.no_grad():
            return float((p.denoise(noisy, 0.1) - imgs).pow(2).mean())
    before = mse()
    cfg = TrainConfig(sigma=0.1, sigma_range=(0.5, 1.5), steps=6, warmup_loss="l2", warmup_fraction=1.0,
                      batch_size=4, lr_warmup=5e-2, val_every=1000, ckpt_every=1000)
    train(p, make_sampler(imgs, 16), cfg, progress=False)
    assert mse() < 0.9 * before
    assert p.data_range is None  # an explicit R has no training range to guard


def test_solve_monitors_the_explicit_objective():
    p = _prior(0.0).float()
    op = pl.operators.GaussianBlur(img_size=(1, 16, 16), sigma_blur=1.0, noise_sigma=0.02)
    torch.manual_seed(7)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 16, 16), 3, 1, 1)
    y = op(x)
    res = pl.solve(y, op, p, method="pgd", lam=1.0, step=0.5, max_iter=8)  # prior step: prox of t R, t = 0.5
    obj = res.history["objective"]
    assert all(b <= a + 1e-5 * abs(a) for a, b in zip(obj, obj[1:]))  # PGD at step 1/||A||^2 descends
    data = 0.5 * float((op.A(res.x) - y).pow(2).sum())
    assert obj[-1] == pytest.approx(data + float(p.regularizer(res.x)), rel=1e-4)
    assert any("certified" in n for n in res.notes)


def test_float64_input_with_a_float32_prior_comes_back_in_float64():
    p = _prior(1.0).float()
    y = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    for out in (p(y), p.denoise(y, 0.05), p.prox_with_regularizer(y)[0], p.scaled_prox_with_regularizer(y, 0.5).z):
        assert out.dtype == torch.float64
    assert p.regularizer(y).dtype == torch.float64
    assert torch.allclose(p.denoise(y, 0.05), p.denoise(y.float(), 0.05).double(), atol=1e-6)


def test_inverse_sigma_weight_weights_each_sample_by_sigma_over_its_level():
    from pnp_lpn.training import TrainConfig, make_sampler, train

    imgs = torch.nn.functional.avg_pool2d(torch.rand(4, 1, 24, 24, generator=torch.Generator().manual_seed(3)), 3, 1, 1)
    sampler = make_sampler(imgs, 16)
    cfg = TrainConfig(sigma=0.1, sigma_range=(0.2, 2.0), steps=1, warmup_loss="l2", warmup_fraction=1.0,
                      batch_size=4, lr_warmup=1e-3, val_every=1000, ckpt_every=1000, inverse_sigma_weight=True)
    torch.manual_seed(0)
    p = RidgePrior(channels=(3, 6), kernel=3, scales=(1,), knots=21, rho=1.0)
    expected_prior = RidgePrior(channels=(3, 6), kernel=3, scales=(1,), knots=21, rho=1.0)
    expected_prior.load_state_dict(p.state_dict())
    hist = train(p, sampler, cfg, progress=False)
    g = torch.Generator().manual_seed(0 * 1_000_000_007 + 0 * 1009 + 0)  # batch 0 of seed 0, rank 0
    x = cfg.intensity_transform(sampler.sample(4, g), g)
    levels = cfg.noise_levels(4, g)
    y = x + levels * torch.randn(x.shape, generator=g)
    with torch.no_grad():
        mse = (expected_prior.denoise(y, levels.flatten()) - x).pow(2).flatten(1).mean(1)
    assert hist.loss[0] == pytest.approx(float((mse * 0.1 / levels.flatten()).mean()), rel=2e-3)  # solve tolerance
    assert abs(float(mse.mean()) - hist.loss[0]) > 0.05 * hist.loss[0]  # the weights matter here


def test_too_small_image_is_refused_with_the_minimum_size():
    p = _prior(1.0)
    with pytest.raises(ValueError, match="at least 2 pixels"):
        p.denoise(torch.rand(1, 1, 1, 5, dtype=torch.float64), 0.1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_denoise_and_training_gradient_match_cpu(monkeypatch):
    """The inner solve, its certificate and the implicit gradient on CUDA equal the CPU ones (float64)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    cpu = _prior(1.0)
    gpu = _prior(1.0).cuda()
    y = torch.rand(2, 1, 20, 18, dtype=torch.float64)
    sigma = torch.tensor([0.05, 0.2], dtype=torch.float64)
    torch.testing.assert_close(gpu.denoise(y.cuda(), sigma.cuda(), tol=1e-10).cpu(), cpu.denoise(y, sigma, tol=1e-10))
    grads = []
    for p, dev in ((cpu, "cpu"), (gpu, "cuda")):
        p.train()
        p.zero_grad()
        p.denoise(y.to(dev), sigma.to(dev), tol=1e-10).pow(2).sum().backward()
        grads.append(p.bank.chains[0][0].grad.cpu())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-8)
