"""Priors: convexity, exact gradient, batching, equivariance, regulariser, deepinv conformance."""

from functools import partial

import numpy as np
import pytest
import torch

import pnp_lpn as pl
from pnp_lpn.priors.convex_net import NonNegConv2d

from conftest import SoftThresholdPrior, randomize, soft

SMALL = dict(channels=(8, 12, 16), depth=2)
MIXTURE_LPN = pytest.param(partial(pl.LPN, mixture_kernel=3), id="LPN+mixture")
PRIORS = [pl.LPN, pl.AELPN, MIXTURE_LPN]


def make(cls, c=1, dtype=torch.float64, seed=0, **kw):
    return randomize(cls(in_channels=c, **{**SMALL, **kw}), seed=seed).to(dtype).eval()


@pytest.mark.parametrize("cls", PRIORS)
def test_projection_makes_hidden_weights_nonnegative(cls):
    prior = make(cls)
    nonneg = [m.weight for m in prior.modules() if isinstance(m, NonNegConv2d)]
    assert nonneg and all((w >= 0).all() for w in nonneg)
    assert any((w > 0).any() for w in nonneg)


@pytest.mark.parametrize("cls", PRIORS)
def test_potential_is_midpoint_convex(cls):
    prior = make(cls, c=2)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 2, 12, 10, generator=g, dtype=torch.float64)
    y = torch.randn(64, 2, 12, 10, generator=g, dtype=torch.float64)
    mid = prior.potential(0.5 * (x + y))
    avg = 0.5 * (prior.potential(x) + prior.potential(y))
    assert (mid <= avg + 1e-9 * avg.abs().max()).all()


@pytest.mark.parametrize("cls", [pl.LPN, pl.AELPN])
def test_unprojected_weights_can_break_convexity(cls):
    """The convexity test above is not vacuous: negative hidden weights fail it (the LPN's
    quadratic term is left out: it is convex for any weights and would mask the network)."""
    prior = make(cls, **({"quadratic_kernel": 0} if cls is pl.LPN else {}))
    with torch.no_grad():
        for m in prior.net.hidden:
            m.weight.copy_(-20 * m.weight.abs())
    g = torch.Generator().manual_seed(2)
    x = torch.randn(256, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randn(256, 1, 8, 8, generator=g, dtype=torch.float64)
    mid = prior.potential(0.5 * (x + y))
    avg = 0.5 * (prior.potential(x) + prior.potential(y))
    assert (mid > avg + 1e-9).any()


@pytest.mark.parametrize("cls", PRIORS)
def test_prox_is_gradient_of_potential(cls):
    """<f(x), d> equals the central finite difference of psi along d (float64)."""
    prior = make(cls)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 1, 9, 11, generator=g, dtype=torch.float64)
    d = torch.randn(3, 1, 9, 11, generator=g, dtype=torch.float64)
    h = 1e-5
    fd = (prior.potential(x + h * d) - prior.potential(x - h * d)) / (2 * h)
    directional = (prior.prox(x) * d).flatten(1).sum(1)
    torch.testing.assert_close(directional, fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cls", PRIORS)
def test_batch_equals_per_image(cls):
    prior = make(cls)
    x = torch.rand(4, 1, 16, 16, dtype=torch.float64)
    batch = prior(x, 0.1)
    single = torch.cat([prior(x[i : i + 1], 0.1) for i in range(4)])
    torch.testing.assert_close(batch, single, rtol=1e-10, atol=1e-10)
    # and the potential is per-sample (deepinv's ICNN broadcasts to (B, B))
    assert prior.potential(x).shape == (4,)


@pytest.mark.parametrize("cls", PRIORS)
@pytest.mark.parametrize("hw", [(1, 1), (7, 13), (33, 20), (64, 64)])
def test_any_image_size(cls, hw):
    prior = make(cls, c=3, dtype=torch.float32)
    x = torch.rand(2, 3, *hw)
    out = prior(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_output_does_not_shrink_with_image_size():
    """psi sums (not averages) over pixels: the centre of a constant image maps alike at 64^2 and 192^2."""
    prior = make(pl.LPN, dtype=torch.float64)
    small = prior(torch.full((1, 1, 96, 96), 0.3, dtype=torch.float64))[0, 0, 48, 48]
    large = prior(torch.full((1, 1, 192, 192), 0.3, dtype=torch.float64))[0, 0, 96, 96]
    torch.testing.assert_close(small, large, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("a,b", [(1.0, 0.0), (2.0, 0.0), (0.3, 0.5), (5.0, -1.0), (1.0, 2.5)])
def test_aelpn_is_affine_equivariant(a, b):
    prior = make(pl.AELPN, c=2, dtype=torch.float32)
    x = torch.rand(3, 2, 20, 17)
    torch.testing.assert_close(prior(a * x + b), a * prior(x) + b, rtol=1e-5, atol=1e-5 * max(1.0, abs(b)))


def test_lpn_is_not_affine_equivariant():
    """Sanity: the equivariance test above distinguishes AE-LPN from LPN."""
    prior = make(pl.LPN, dtype=torch.float32)
    x = torch.rand(2, 1, 16, 16)
    assert (prior(3.0 * x + 0.5) - (3.0 * prior(x) + 0.5)).abs().max() > 1e-2


# The AE-LPN's potential is piecewise quadratic (leaky-ReLU kinks), so f jumps across kinks
# and the inversion stalls at a small residual instead of reaching machine precision.
@pytest.mark.parametrize("cls,tol,rtol", [(pl.LPN, 1e-7, 1e-6), (pl.AELPN, 1e-3, 1e-3),
                                          pytest.param(partial(pl.LPN, mixture_kernel=3), 1e-7, 1e-6, id="LPN+mixture")])
def test_regularizer_at_prox_output_matches_inversion(cls, tol, rtol):
    prior = make(cls, alpha=0.05)
    v = torch.rand(3, 1, 12, 12, dtype=torch.float64)
    z, r_exact = prior.prox_with_regularizer(v)
    res = prior.regularizer(z, tol=tol / 10, max_iter=2000, return_result=True)
    assert (res.residual <= tol).all()
    torch.testing.assert_close(res.value, r_exact, rtol=rtol, atol=rtol * r_exact.abs().max().item())


@pytest.mark.parametrize("cls", PRIORS)
def test_prox_output_minimises_the_prox_objective(cls):
    """z = f(v) minimises u -> 1/2 ||u - v||^2 + R(u): perturbed points never do better.

    R at the perturbed points comes from inversion, an independent route to R."""
    prior = make(cls, alpha=0.05)
    v = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    z, r_z = prior.prox_with_regularizer(v)
    g = torch.Generator().manual_seed(4)
    u = z + 0.05 * torch.randn(16, 1, 8, 8, generator=g, dtype=torch.float64)
    r_u = prior.regularizer(u, tol=1e-8, max_iter=3000)
    obj = lambda p, r: 0.5 * (p - v).flatten(1).pow(2).sum(1) + r
    assert (obj(u, r_u) >= obj(z, r_z) - 1e-8).all()


@pytest.mark.parametrize("sigma", [None, 0.1, torch.tensor(0.1), torch.tensor([0.05, 0.1])])
def test_sigma_forms_are_accepted(sigma):
    prior = make(pl.LPN, dtype=torch.float32)
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(prior(x, sigma), prior(x))


def test_works_under_no_grad_and_inference_keeps_no_graph():
    prior = make(pl.LPN, dtype=torch.float32)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        out = prior(x)
    assert not out.requires_grad and out.grad_fn is None


def test_training_mode_keeps_graph_for_parameters():
    prior = make(pl.LPN, dtype=torch.float32).train()
    loss = prior(torch.rand(2, 1, 8, 8)).pow(2).sum()
    loss.backward()
    grads = [p.grad for p in prior.parameters()]
    assert all(gr is not None for gr in grads) and any(gr.abs().sum() > 0 for gr in grads)


@pytest.mark.parametrize("bad,match", [
    (torch.rand(1, 8, 8), "4 dimensions"),
    (torch.rand(1, 3, 8, 8), "channel"),
    (torch.randint(0, 255, (1, 1, 8, 8)), "floating-point"),
    (torch.full((1, 1, 8, 8), float("nan")), "NaN"),
    ([[1.0]], "torch.Tensor"),
])
@pytest.mark.parametrize("method", ["prox", "potential", "prox_with_regularizer", "regularizer"])
def test_bad_input_raises_value_error(bad, match, method):
    prior = make(pl.LPN, dtype=torch.float32)
    with pytest.raises(ValueError, match=match):
        getattr(prior, method)(bad)


def test_deepinv_pgd_with_pnp_matches_manual_iteration():
    """deepinv's own PGD with our prior as PnP denoiser = x <- f(x - eta A^T(Ax - y))."""
    import deepinv as dinv
    from deepinv.optim import PnP
    from deepinv.optim.data_fidelity import L2

    prior = make(pl.LPN, dtype=torch.float32, alpha=0.5)
    physics = dinv.physics.Denoising(dinv.physics.GaussianNoise(0.0))
    y = torch.rand(2, 1, 16, 16)
    eta, n = 0.5, 5
    model = dinv.optim.optim_builder(iteration="PGD", prior=PnP(denoiser=prior), data_fidelity=L2(),
                                     max_iter=n, early_stop=False, params_algo={"stepsize": eta, "g_param": 0.1})
    with torch.no_grad():
        out = model(y, physics)
    x = y.clone()
    for _ in range(n):
        x = prior(x - eta * (x - y))
    torch.testing.assert_close(out, x, rtol=1e-4, atol=1e-5)


def test_deepinv_admm_runs_with_prior():
    import deepinv as dinv
    from deepinv.optim import PnP
    from deepinv.optim.data_fidelity import L2

    prior = make(pl.AELPN, dtype=torch.float32)
    physics = dinv.physics.Denoising(dinv.physics.GaussianNoise(0.0))
    y = torch.rand(2, 1, 16, 16)
    model = dinv.optim.optim_builder(iteration="ADMM", prior=PnP(denoiser=prior), data_fidelity=L2(),
                                     max_iter=4, params_algo={"stepsize": 1.0, "g_param": 0.1})
    with torch.no_grad():
        out = model(y, physics)
    assert out.shape == y.shape and torch.isfinite(out).all()


def test_deepinv_explicit_prior_tracks_the_same_objective_as_solve():
    """deepinv PGD with the explicit adapter: same iterates as pnp_lpn.solve and a cost
    F = 1/2||Ax - y||^2 + lambda R(x) (R by inversion) equal to our monitored objective."""
    import deepinv as dinv
    from deepinv.optim.data_fidelity import L2

    from pnp_lpn.priors import DeepinvExplicitPrior

    prior = make(pl.LPN, alpha=0.3)
    physics = dinv.physics.Denoising(dinv.physics.GaussianNoise(0.0))
    y = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    eta, n = 0.8, 4
    model = dinv.optim.optim_builder(iteration="PGD", prior=DeepinvExplicitPrior(prior, tol=1e-9),
                                     data_fidelity=L2(), max_iter=n, early_stop=False,
                                     params_algo={"stepsize": eta, "lambda": 1 / eta})
    with torch.no_grad():
        out, metrics = model(y, physics, compute_metrics=True)
    ours = pl.solve(y, physics, prior, method="pgd", lam=1 / eta, max_iter=n, tol=0, x0=y.clone())
    torch.testing.assert_close(out, ours.x)
    torch.testing.assert_close(torch.tensor(metrics["cost"][0][-1], dtype=torch.float64),
                               torch.tensor(ours.history["objective"][-1], dtype=torch.float64), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="lambda"):
        DeepinvExplicitPrior(prior).prox(y, gamma=0.5)


def test_scale_only_aelpn_is_scale_but_not_shift_equivariant():
    prior = make(pl.AELPN, shift_equivariant=False, dtype=torch.float32)
    x = torch.rand(2, 1, 12, 12)
    torch.testing.assert_close(prior(3.0 * x), 3.0 * prior(x), rtol=1e-5, atol=1e-5)
    assert (prior(x + 0.5) - (prior(x) + 0.5)).abs().max() > 1e-3


@pytest.mark.parametrize("extra", [dict(abs_readout=True), dict(quadratic_kernel=3),
                                   dict(abs_readout=True, quadratic_kernel=5)])
def test_aelpn_options_keep_guarantees_and_start_at_identity(extra):
    torch.manual_seed(0)
    fresh = pl.AELPN(1, channels=(8, 12), depth=2, **extra).double().eval()
    x = torch.rand(2, 1, 10, 10, dtype=torch.float64)
    torch.testing.assert_close(fresh(x), x, rtol=0, atol=5e-2)  # untrained: f ~ identity
    assert (fresh(x) - x).abs().mean() < 1e-2
    prior = make(pl.AELPN, c=2, **extra)
    g = torch.Generator().manual_seed(7)
    a = torch.randn(64, 2, 8, 8, generator=g, dtype=torch.float64)
    b = torch.randn(64, 2, 8, 8, generator=g, dtype=torch.float64)
    assert (prior.potential(0.5 * (a + b)) <= 0.5 * (prior.potential(a) + prior.potential(b)) + 1e-9).all()
    torch.testing.assert_close(prior(2.5 * a - 0.3), 2.5 * prior(a) - 0.3)


def test_learned_quadratic_gradient_is_ktk():
    """grad of 1/2||Kx||^2 equals K^T K x computed with conv / transposed conv."""
    from torch.nn.functional import conv2d, conv_transpose2d

    from pnp_lpn.priors.convex_net import LearnedQuadratic

    q = LearnedQuadratic(2, 5).double()
    with torch.no_grad():
        q.conv.weight.normal_()
    x = torch.randn(3, 2, 11, 9, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(q(x).sum(), x)
    w = q.conv.weight
    torch.testing.assert_close(grad, conv_transpose2d(conv2d(x, w, padding=2), w, padding=2))
    with pytest.raises(ValueError, match="odd"):
        LearnedQuadratic(1, 4)


def test_untrained_lpn_starts_near_identity():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 24, 24)
    from pnp_lpn.metrics import psnr

    assert psnr(pl.LPN(1)(x), x).min() > 35  # quadratic term starts at K = identity
    assert pl.LPN(1, quadratic_kernel=0)(x).abs().max() < 0.05  # without it: f ~ alpha x


def test_checkpoint_written_before_the_quadratic_term_loads_without_it(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    old = make(pl.LPN, dtype=torch.float32, quadratic_kernel=0)
    path = pl.save_prior(old, tmp_path / "new.safetensors")
    meta = json.loads(safe_open(str(path), "pt").metadata()["pnp_lpn"])
    del meta["config"]["quadratic_kernel"]  # as written by versions without the argument
    del meta["sha256"]  # (nor the digest)
    save_file(load_file(str(path)), str(tmp_path / "old.safetensors"), metadata={"pnp_lpn": json.dumps(meta)})
    loaded = pl.load_prior(tmp_path / "old.safetensors")
    assert loaded.quadratic is None
    x = torch.rand(2, 1, 10, 10)
    torch.testing.assert_close(loaded(x), old(x))


def _orientations():
    """The 8 maps g of D4 with their inverses, written out independently of dihedral_views."""
    rot = lambda k: (lambda t: torch.rot90(t, k, (-2, -1)))
    out = []
    for k in range(4):
        out.append((rot(k), rot(-k)))
        out.append((lambda t, k=k: torch.rot90(t.flip(-1), k, (-2, -1)),
                    lambda t, k=k: torch.rot90(t, -k, (-2, -1)).flip(-1)))
    return out


@pytest.mark.parametrize("cls", [pl.LPN, pl.AELPN])
def test_dihedral_prior_is_the_average_of_the_rotated_proxes_and_equivariant(cls):
    base = make(cls)
    prior = pl.DihedralPrior(base)
    x = torch.rand(2, 1, 10, 13, dtype=torch.float64)  # not square: rotations change the shape
    manual = sum(inv(base(g(x))) for g, inv in _orientations()) / 8
    torch.testing.assert_close(prior(x), manual)
    for g, _ in _orientations():
        torch.testing.assert_close(prior(g(x)), g(prior(x)))
    assert (base(x.transpose(-1, -2)) - base(x).transpose(-1, -2)).abs().max() > 1e-6  # the base is not


def test_dihedral_prior_keeps_convexity_and_the_exact_regularizer():
    prior = pl.DihedralPrior(make(pl.LPN, alpha=0.05))
    g = torch.Generator().manual_seed(6)
    x, y = (torch.randn(32, 1, 9, 9, generator=g, dtype=torch.float64) for _ in range(2))
    mid, avg = prior.potential(0.5 * (x + y)), 0.5 * (prior.potential(x) + prior.potential(y))
    assert (mid <= avg + 1e-9 * avg.abs().max()).all()
    v = torch.rand(2, 1, 9, 9, dtype=torch.float64)
    z, r_exact = prior.prox_with_regularizer(v)
    res = prior.regularizer(z, tol=1e-8, max_iter=2000, return_result=True)
    assert (res.residual <= 1e-7).all()
    torch.testing.assert_close(res.value, r_exact, rtol=1e-6, atol=1e-6 * r_exact.abs().max().item())
    a, b = 2.0, 0.3  # the AE-LPN's affine equivariance survives the averaging
    ae = pl.DihedralPrior(make(pl.AELPN, dtype=torch.float32))
    xs = torch.rand(2, 1, 12, 12)
    torch.testing.assert_close(ae(a * xs + b), a * ae(xs) + b, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="ProxPrior"):
        pl.DihedralPrior(torch.nn.Identity())


def test_dihedral_prior_of_a_loaded_prior_is_in_eval_mode_and_keeps_no_graph():
    """Like every loaded prior: repeated application (PnP) must not chain autograd graphs."""
    prior = pl.DihedralPrior(pl.load_pretrained("lpn-mnist"))
    assert not prior.training
    z = torch.rand(1, 1, 16, 16)
    for _ in range(3):
        z = prior(z)
    assert not z.requires_grad and z.grad_fn is None
    assert pl.DihedralPrior(pl.LPN(**SMALL)).training  # a fresh (trainable) prior stays in training mode


@pytest.mark.parametrize("t", [1.0, 0.6, 0.2, 0.03])
def test_scaled_prox_is_soft_threshold_for_the_l1_prior(t):
    """prox of t ||.||_1 is soft(v, t): an independent closed form for every t."""
    prior = SoftThresholdPrior(1).double()
    v = 3 * torch.randn(2, 1, 8, 8, dtype=torch.float64)
    res = prior.scaled_prox_with_regularizer(v, t, tol=1e-10)
    torch.testing.assert_close(res.z, soft(v, t), atol=1e-8, rtol=0)
    torch.testing.assert_close(res.reg, res.z.abs().flatten(1).sum(1), atol=1e-7, rtol=0)
    assert (res.residual <= 1e-8).all()


def test_scaled_prox_of_an_lpn_minimises_its_objective():
    """For a random LPN (non-convex R): z = prox_{tR}(v) has R(z) equal to the inversion-based
    R (an independent path), t R(z) + 1/2 ||z - v||^2 is below its value at perturbed points,
    t = 1 is the plain prox, and a warm start reaches the same point."""
    prior = randomize(pl.LPN(1, channels=(6, 8), depth=2, alpha=0.1)).double().eval()
    v = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    t = 0.3
    res = prior.scaled_prox_with_regularizer(v, t, tol=1e-9)
    assert res.n_iter > 0 and (res.residual <= 1e-9).all()
    reg = prior.regularizer(res.z, tol=1e-9)
    torch.testing.assert_close(res.reg, reg, atol=1e-6, rtol=1e-6)

    def objective(z):
        return t * prior.regularizer(z, tol=1e-9) + 0.5 * (z - v).flatten(1).pow(2).sum(1)

    base = objective(res.z)
    for scale in (1e-2, 1e-1):
        d = scale * torch.randn_like(v)
        assert (objective(res.z + d) > base).all()
    torch.testing.assert_close(prior.scaled_prox_with_regularizer(v, 1.0).z, prior(v))
    warm = prior.scaled_prox_with_regularizer(v, t, w0=res.w + 0.01, tol=1e-9)
    torch.testing.assert_close(warm.z, res.z, atol=1e-7, rtol=0)
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="0 < t <= 1"):
            prior.scaled_prox_with_regularizer(v, bad)


def test_denoise_is_the_map_denoiser_below_the_training_level():
    """denoise(y, sigma) = prox of (sigma / sigma_train)^2 R: for the l1 prior soft(y, t), which is
    also what solve() reaches for A = I at its default (MAP) lam."""
    import deepinv as dinv

    prior = SoftThresholdPrior(1, sigma_train=0.1).double()
    y = 2 * torch.randn(1, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(prior.denoise(y, 0.05, tol=1e-10), soft(y, 0.25), atol=1e-6, rtol=0)
    torch.testing.assert_close(prior.denoise(y, 0.1), soft(y, 1.0))
    physics = dinv.physics.Denoising(dinv.physics.GaussianNoise(0.05))
    res = pl.solve(y, physics, prior, max_iter=500, tol=1e-10)
    assert res.lam == pytest.approx(0.25)
    torch.testing.assert_close(res.x, soft(y, 0.25), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="no sigma_train"):
        SoftThresholdPrior(1).denoise(y, 0.05)
    with pytest.raises(ValueError, match="finite number > 0"):
        prior.denoise(y, -0.1)


@pytest.mark.parametrize("sigma", [0.05, 0.2, 0.35])
def test_rescaled_prior_is_the_prox_of_the_rescaled_regularizer(sigma):
    """For R = ||.||_1 trained at 0.1, R_s(z) = R(s z) / s^2 = ||z||_1 / s with s = 0.1 / sigma (sigma / 0.1 times ||z||_1):
    the rescaled prior is soft(v, sigma / 0.1), with that R, and denoise uses it above the
    training level (closed forms)."""
    prior = pl.RescaledPrior(SoftThresholdPrior(1, sigma_train=0.1).double(), sigma)
    thr = sigma / 0.1
    v = 4 * torch.randn(2, 1, 8, 8, dtype=torch.float64)
    z, reg = prior.prox_with_regularizer(v)
    torch.testing.assert_close(z, soft(v, thr))
    torch.testing.assert_close(reg, thr * z.abs().flatten(1).sum(1))
    assert prior.sigma_train == sigma and prior.config()["rescaled_to_sigma"] == sigma
    if sigma > 0.1:
        torch.testing.assert_close(prior.base.denoise(v, sigma), soft(v, thr))


def test_rescaled_prior_of_an_lpn_is_exact_and_leaves_the_ae_lpn_unchanged():
    """f_s(v) = f(s v) / s; the output minimises 1/2 ||z - v||^2 + R(s z) / s^2 with R from the
    base's own inversion (an independent path); an AE-LPN (f(a v) = a f(v)) is unchanged."""
    base = randomize(pl.LPN(1, channels=(6, 8), depth=2, alpha=0.1), seed=3).double().eval()
    base.sigma_train = 0.1
    prior = pl.RescaledPrior(base, 0.25)
    s = 0.4
    v = torch.rand(2, 1, 10, 10, dtype=torch.float64)
    z, reg = prior.prox_with_regularizer(v)
    torch.testing.assert_close(z, base(s * v) / s)
    torch.testing.assert_close(reg, base.regularizer(s * z, tol=1e-10) / s**2, atol=1e-7, rtol=1e-6)
    objective = lambda x: 0.5 * (x - v).flatten(1).pow(2).sum(1) + base.regularizer(s * x, tol=1e-10) / s**2
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        assert (objective(z) <= objective(z + 1e-2 * torch.randn(z.shape, generator=g, dtype=z.dtype)) + 1e-9).all()
    ae = make(pl.AELPN, dtype=torch.float32)
    ae.sigma_train = 0.1
    xs = torch.rand(2, 1, 12, 12)
    torch.testing.assert_close(pl.RescaledPrior(ae, 0.3)(xs), ae(xs), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="sigma_train"):
        pl.RescaledPrior(SoftThresholdPrior(1), 0.2)
    with pytest.raises(ValueError, match="sigma"):
        pl.RescaledPrior(base, 0.0)
    with pytest.raises(TypeError, match="ProxPrior"):
        pl.RescaledPrior(torch.nn.Identity(), 0.2)


@pytest.mark.parametrize("c", [1 / 3**0.5, 1.0])
def test_opponent_color_prior_is_the_grey_prox_in_an_orthonormal_colour_basis(c):
    """For R = ||.||_1 and luminance scale c: f_c(v) = U^T [soft(U v, t)] with thresholds t = (1/c, 1, 1)
    and R_c(z) = ||t * U z||_1, with U the opponent transform written out here (rows luminance,
    r - b, r - 2 g + b); z minimises 1/2 ||z - v||^2 + R_c(z) (perturbation check); a grey image
    (r = g = b) has no colour difference and is denoised through its luminance only."""
    prior = pl.OpponentColorPrior(SoftThresholdPrior(1, sigma_train=0.1).double(), luma_scale=c)
    u = torch.tensor([[1.0, 1, 1], [1, 0, -1], [1, -2, 1]], dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    torch.testing.assert_close(u @ u.T, torch.eye(3, dtype=torch.float64))
    t = torch.tensor([1 / c, 1.0, 1.0], dtype=torch.float64).view(1, 3, 1, 1)
    to_u = lambda x: torch.einsum("ij,bjhw->bihw", u, x)
    v = 3 * torch.randn(2, 3, 6, 7, dtype=torch.float64)
    z, reg = prior.prox_with_regularizer(v)
    torch.testing.assert_close(z, torch.einsum("ji,bjhw->bihw", u, soft(to_u(v), t)))
    torch.testing.assert_close(reg, (t * to_u(z)).abs().flatten(1).sum(1))
    objective = lambda x: 0.5 * (x - v).flatten(1).pow(2).sum(1) + (t * to_u(x)).abs().flatten(1).sum(1)
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        assert (objective(z) <= objective(z + 1e-3 * torch.randn(z.shape, generator=g, dtype=z.dtype))).all()
    grey = torch.rand(1, 1, 5, 5, dtype=torch.float64).expand(1, 3, 5, 5)
    torch.testing.assert_close(prior(grey), (soft(3**0.5 * grey[:, :1], 1 / c) / 3**0.5).expand(1, 3, 5, 5))
    assert prior.in_channels == 3 and prior.sigma_train == 0.1 and prior.config()["luma_scale"] == c


@pytest.mark.parametrize("sigma, threshold", [(0.1, 1.0), (0.2, 2.0), (0.05, 0.25)])
def test_opponent_color_denoise_thresholds_every_opponent_channel_at_the_noise_level(sigma, threshold):
    """For R = ||.||_1 trained at 0.1, the grey denoise at sigma is soft-thresholding at (sigma / 0.1)^2
    below 0.1 (MAP) and sigma / 0.1 from 0.1 up (prox, rescaled prox); the colour denoise applies it
    to every opponent channel alike, whatever the luminance scale of the prox."""
    u = torch.tensor([[1.0, 1, 1], [1, 0, -1], [1, -2, 1]], dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    v = 3 * torch.randn(2, 3, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = torch.einsum("ji,bjhw->bihw", u, soft(torch.einsum("ij,bjhw->bihw", u, v), threshold))
    for c in (1 / 3**0.5, 1.0):
        prior = pl.OpponentColorPrior(SoftThresholdPrior(1, sigma_train=0.1).double(), luma_scale=c)
        torch.testing.assert_close(prior.denoise(v, sigma, tol=1e-9), expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="3"):
        prior.denoise(v[:, :1], sigma)


def test_opponent_color_prior_of_an_lpn_keeps_the_exact_regularizer_and_checks_its_input():
    prior = pl.OpponentColorPrior(make(pl.LPN, alpha=0.05))
    v = torch.rand(2, 3, 9, 9, dtype=torch.float64)
    z, r_exact = prior.prox_with_regularizer(v)
    res = prior.regularizer(z, tol=1e-8, max_iter=2000, return_result=True)
    assert (res.residual <= 1e-7).all()
    torch.testing.assert_close(res.value, r_exact, rtol=1e-6, atol=1e-6 * r_exact.abs().max().item())
    with pytest.raises(ValueError, match="3"):
        prior(torch.rand(1, 1, 9, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="grey"):
        pl.OpponentColorPrior(make(pl.LPN, c=3))
    with pytest.raises(TypeError, match="ProxPrior"):
        pl.OpponentColorPrior(torch.nn.Identity())
    with pytest.raises(ValueError, match="luma_scale"):
        pl.OpponentColorPrior(make(pl.LPN), luma_scale=0.0)


def test_gradient_inversion_reaches_tolerances_under_the_rounding_of_its_objective():
    """psi(v) = 1/2 v^T A v + 1e4 in float32: near the solution psi's decrease is under its float32
    rounding (Armijo cannot see progress), yet the gradient still resolves it, so the approximate
    Wolfe test of the line search carries the solve down to a residual of 1e-5."""
    from pnp_lpn.priors.inversion import invert_gradient

    g = torch.Generator().manual_seed(0)
    diag = torch.logspace(-1, 1, 64).view(1, 1, 8, 8)  # A = diag, condition number 100
    x = torch.randn(2, 1, 8, 8, generator=g)

    def grad_and_value(v, rows):
        return diag * v, (0.5 * (diag * v * v).flatten(1).sum(1) + 1e4).float()

    inv = invert_gradient(grad_and_value, x, tol=1e-5, max_iter=300)
    assert float(inv.residual.max()) <= 1e-5
    torch.testing.assert_close(inv.v, x / diag, rtol=1e-4, atol=1e-4)


def test_gradient_inversion_evaluates_only_the_images_still_moving():
    """psi_i(v) = a_i / 2 ||v||^2 + ||v||^4 / 4 per image: grad psi_i(v) = x_i solved per image
    (checked against the closed form along x_i), and an image that has converged is no longer
    passed to the map while the others continue."""
    from pnp_lpn.priors.inversion import invert_gradient

    a = torch.tensor([1.0, 0.05, 3.0], dtype=torch.float64)
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    seen: list[list[int]] = []

    def grad_and_value(v, rows):
        seen.append(rows.tolist())
        sq = v.flatten(1).pow(2).sum(1)
        coef = (a[rows] + sq).view(-1, 1, 1, 1)
        return coef * v, 0.5 * a[rows] * sq + 0.25 * sq**2

    inv = invert_gradient(grad_and_value, x, tol=1e-12, max_iter=200)
    # v = r x / ||x|| with a r + r^3 = ||x||: the real root, per image
    norm = x.flatten(1).norm(dim=1)
    for i in range(3):
        roots = torch.from_numpy(np.roots([1.0, 0.0, float(a[i]), -float(norm[i])]))
        r = float(roots[roots.imag.abs() < 1e-9].real.max())
        assert torch.allclose(inv.v[i], r * x[i] / norm[i], atol=1e-10)
    assert float(inv.residual.max()) <= 1e-12
    assert seen[0] == [0, 1, 2] and min(len(rows) for rows in seen) < 3
    assert inv.n_eval == len(seen) >= inv.n_iter + 1  # every call counted, the start included
