"""Inputs a real user brings: dtypes, missing noise levels, malformed checkpoints, bad solver
arguments, gradients through a frozen prior (docs/inputs.md). Property-based tests at the end."""

import json
import math
import warnings

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import pnp_lpn as pl
from pnp_lpn.noise import estimate_noise_sigma
from pnp_lpn.operators import CompressedSensing, FourierSubsampling, GaussianBlur, Inpainting
from pnp_lpn.solvers.solve import RiseMonitor


def tiny_lpn(**kw) -> pl.LPN:
    torch.manual_seed(0)
    return pl.LPN(1, channels=(4, 6), depth=1, sigma_train=0.1, **kw).eval()


def tiny_aelpn() -> pl.AELPN:
    torch.manual_seed(0)
    return pl.AELPN(1, channels=(4, 6), depth=1, sigma_train=0.1).eval()


def smooth_image(n: int = 64) -> torch.Tensor:
    u = torch.linspace(0, 1, n)
    return (0.5 + 0.3 * torch.sin(6 * u)[:, None] * torch.cos(4 * u)[None, :])[None, None]


# ---- noise level from the data -----------------------------------------------------------
@pytest.mark.parametrize("sigma", [0.005, 0.02, 0.1])
def test_noise_estimate_matches_known_sigma(sigma):
    g = torch.Generator().manual_seed(1)
    y = smooth_image(128) + sigma * torch.randn(1, 1, 128, 128, generator=g)
    assert estimate_noise_sigma(y) == pytest.approx(sigma, rel=0.1)


@pytest.mark.parametrize("make", [
    lambda: GaussianBlur((1, 64, 64), 1.0, noise_sigma=0.03),
    lambda: Inpainting((1, 64, 64), noise_sigma=0.03),
    lambda: FourierSubsampling((1, 64, 64), noise_sigma=0.03),
])
def test_operator_noise_estimates(make):
    op = make()
    torch.manual_seed(0)
    assert op.estimate_noise_sigma(op(smooth_image())) == pytest.approx(0.03, rel=0.1)


def test_inpainting_with_zeroed_holes_uses_observed_blocks():
    op = Inpainting((1, 128, 128), ratio=0.9, noise_sigma=0.03)
    torch.manual_seed(0)
    y = op.mask * op(smooth_image(128))  # holes stored as zeros, as real data are
    assert op.estimate_noise_sigma(y) == pytest.approx(0.03, rel=0.1)


def test_compressed_sensing_noise_cannot_be_estimated():
    op = CompressedSensing((1, 16, 16), 0.5)
    with pytest.raises(ValueError, match="no spatial layout"):
        op.estimate_noise_sigma(op.A(torch.rand(1, 1, 16, 16)))
    with pytest.raises(ValueError, match="lam=") as err:
        pl.solve(op.A(torch.rand(1, 1, 16, 16)), op, tiny_lpn(), max_iter=2)
    assert "noise_sigma" in str(err.value)


def test_solve_without_noise_level_says_what_it_estimated():
    op_noisy, op = GaussianBlur((1, 32, 32), 1.0, noise_sigma=0.05), GaussianBlur((1, 32, 32), 1.0)
    torch.manual_seed(0)
    y = op_noisy(smooth_image(32))
    res = pl.solve(y, op, tiny_lpn(), max_iter=3)
    est = estimate_noise_sigma(y)
    assert res.lam == pytest.approx(est**2 / 0.1**2)
    assert any(f"{est:.4g}" in n and "estimated from y" in n for n in res.notes)
    assert pl.solve(y, op, tiny_lpn(), lam=0.3, max_iter=3).lam == 0.3  # a given lam wins


# ---- dtypes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [tiny_lpn, tiny_aelpn])
def test_prior_methods_accept_any_float_dtype(make):
    prior = make()
    x = torch.rand(2, 1, 12, 12)
    ref_z, ref_r = prior.prox_with_regularizer(x)
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        xd = x.to(dtype)
        z, r = prior.prox_with_regularizer(xd)
        assert z.dtype == r.dtype == prior.prox(xd).dtype == prior.potential(xd).dtype == dtype
        tol = 1e-6 if dtype == torch.float64 else 5e-2
        torch.testing.assert_close(z.float(), ref_z, atol=tol, rtol=tol)
    d = prior.denoise(x.double(), 0.05)
    assert d.dtype == torch.float64 and torch.isfinite(d).all()
    assert prior.regularizer(x.double(), max_iter=50).dtype == torch.float64


def test_solve_with_float64_and_float16_y_and_a_float32_prior():
    op = GaussianBlur((1, 16, 16), 1.0, noise_sigma=0.02)
    torch.manual_seed(0)
    y = op(torch.rand(1, 1, 16, 16))
    ref = pl.solve(y, op, tiny_lpn(), max_iter=5, x0=y).x
    for dtype, tol in ((torch.float64, 1e-5), (torch.float16, 2e-2)):
        res = pl.solve(y.to(dtype), op, tiny_lpn(), max_iter=5, x0=y.double())
        assert res.x.dtype == dtype and res.x.shape == y.shape
        torch.testing.assert_close(res.x.float(), ref, atol=tol, rtol=tol)
    assert any("float16" in n for n in pl.solve(y.half(), op, tiny_lpn(), max_iter=2).notes)


@pytest.mark.parametrize("make", [
    lambda: CompressedSensing((1, 16, 16), 0.5, seed=3),
    lambda: GaussianBlur((1, 16, 16), 1.5),
])
def test_to_float64_keeps_the_operator(make):
    """A complex filter is not cast to real by Module.to(float64): A matches the float32 operator."""
    op32, op64 = make(), make().to(torch.float64)
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(op64.A(x), op32.A(x.float()).double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(op64.A_adjoint(op64.A(x)), op32.A_adjoint(op32.A(x.float())).double(),
                               rtol=1e-5, atol=1e-6)


# ---- the solver's arguments and stopping rule -----------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    (dict(patience=0), "patience"), (dict(patience=2.5), "patience"), (dict(patience=True), "patience"),
    (dict(tol=-1e-3), "tol"), (dict(tol=math.nan), "tol"), (dict(tol_objective=-1.0), "tol_objective"),
    (dict(box=(0, 1, 2)), "box"), (dict(box="yes"), "box"), (dict(box=(0, math.inf)), "box"),
])
def test_meaningless_solver_arguments_are_refused(kwargs, match):
    op = GaussianBlur((1, 8, 8), 1.0, noise_sigma=0.01)
    with pytest.raises(ValueError, match=match):
        pl.solve(torch.rand(1, 1, 8, 8), op, tiny_lpn(), **kwargs)


def test_huge_lam_warns_at_the_callers_line():
    op = GaussianBlur((1, 8, 8), 1.0, noise_sigma=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = pl.solve(torch.rand(1, 1, 8, 8), op, tiny_lpn(), lam=1e5, max_iter=2)
    hits = [w for w in caught if "ignores y" in str(w.message)]
    assert hits and hits[0].filename == __file__, [w.filename for w in caught]
    assert any("ignores y" in n for n in res.notes)


def test_colour_image_with_a_grey_prior_names_the_colour_wrapper():
    prior = tiny_lpn()
    with pytest.raises(ValueError, match=r"3 channel\(s\) but 1 .*OpponentColorPrior"):
        prior.prox(torch.rand(1, 3, 16, 16))
    op = GaussianBlur((3, 16, 16), 1.0, noise_sigma=0.02)
    with pytest.raises(ValueError, match="OpponentColorPrior"):
        pl.solve(op(torch.rand(1, 3, 16, 16)), op, prior, max_iter=2)
    wrapped = pl.OpponentColorPrior(prior)
    assert wrapped.prox(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_data_on_another_scale_than_the_prior_is_named():
    """0..255 data with a [0, 1] prior: a warning at the caller's line says to rescale."""
    prior = tiny_lpn()
    prior.data_range = (0.0, 1.0)
    op = GaussianBlur((1, 16, 16), 1.0, noise_sigma=5.0)
    torch.manual_seed(0)
    x = torch.rand(1, 1, 16, 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = pl.solve(op(255 * x), op, prior, max_iter=2)
    hits = [w for w in caught if "another scale" in str(w.message)]
    assert hits and hits[0].filename == __file__ and "y / 255" in str(hits[0].message)
    assert any("another scale" in n for n in res.notes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pl.solve(GaussianBlur((1, 16, 16), 1.0, noise_sigma=0.02)(x), GaussianBlur((1, 16, 16), 1.0, noise_sigma=0.02),
                 prior, max_iter=2)
    assert not [w for w in caught if "another scale" in str(w.message)]


def test_default_box_for_compressed_sensing_is_stated_and_can_be_turned_off():
    def op():  # a fresh operator each time: its CG data step warm-starts from its last solve
        return CompressedSensing((1, 16, 16), 0.25, noise_sigma=0.01)

    torch.manual_seed(0)
    y = op()(torch.rand(1, 1, 16, 16))
    auto = pl.solve(y, op(), tiny_lpn(), max_iter=5)
    explicit = pl.solve(y, op(), tiny_lpn(), max_iter=5, box=(0.0, 1.0))
    torch.testing.assert_close(auto.x, explicit.x, rtol=0, atol=0)
    assert any("box = (0, 1)" in n and "default_box" in n for n in auto.notes)
    for off in (None, False):
        res = pl.solve(y, op(), tiny_lpn(), max_iter=5, box=off)
        assert "box_violation" not in res.history and not any("box =" in n for n in res.notes)
    blur = GaussianBlur((1, 16, 16), 1.0, noise_sigma=0.01)  # no default box: no box
    assert "box_violation" not in pl.solve(blur(torch.rand(1, 1, 16, 16)), blur, tiny_lpn(), max_iter=2).history


def test_rise_monitor_ignores_rounding_and_a_converging_approach_from_below():
    # recorded: a 256^2 deblur with lpn-natural-gray (ADMM), F rising to its limit by shrinking steps
    values = [-271.386, -271.403, -271.405, -271.404, -271.396, -271.390, -271.384, -271.379, -271.375]
    monitor = RiseMonitor(patience=5)
    assert not any(monitor.diverging(v, scale=550.0) for v in values)
    flat = RiseMonitor(patience=2)  # rises of 1e-7 relative: rounding, never counted
    assert not any(flat.diverging(100.0 + 1e-5 * (k % 2), scale=100.0) for k in range(20)) and flat.increases <= 0
    growing = RiseMonitor(patience=5)
    flags = [growing.diverging(1.0 * 2.0**k, scale=2.0**k) for k in range(8)]
    assert flags.index(True) == 5  # the 5th increase in a row, far above the lowest value


def test_solver_warnings_point_at_the_caller():
    physics = pl.operators.GaussianBlur((1, 8, 8), 1.0, noise_sigma=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pl.solve(torch.rand(1, 1, 8, 8), physics, tiny_lpn(), method="pgd", lam=0.1, max_iter=2)
    assert caught and all(w.filename == __file__ for w in caught), [(w.filename, str(w.message)) for w in caught]


# ---- priors: NaN, gradients -----------------------------------------------------------------
def test_regularizer_of_broken_weights_is_an_error_not_nan():
    prior = tiny_aelpn()
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(torch.randn_like(p) * 10)
    with pytest.raises(ValueError, match="project_weights"):
        prior.regularizer(torch.rand(1, 1, 12, 12))
    prior.project_weights()
    assert torch.isfinite(prior.regularizer(torch.rand(1, 1, 12, 12), max_iter=30)).all()


def test_gradients_flow_through_a_frozen_prior():
    """Eval mode keeps the graph when the input requires grad: d prox / dx by finite differences."""
    prior = tiny_lpn().double()
    x = torch.rand(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    assert prior.prox(x).requires_grad
    assert torch.autograd.gradcheck(lambda t: prior.prox(t), (x,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(lambda t: prior.prox_with_regularizer(t)[1], (x,), eps=1e-6, atol=1e-5)
    assert not prior.prox(x.detach()).requires_grad  # no graph when nobody asks


# ---- training data ----------------------------------------------------------------------------
def test_train_accepts_a_tensor_or_a_list_of_images_and_names_what_else_to_pass():
    data = torch.rand(4, 1, 16, 16)
    for given in (data, list(data)):
        hist = pl.training.train(tiny_lpn(), given, steps=2, progress=False, batch_size=2)
        assert len(hist.loss) == 2
    with pytest.raises(TypeError, match=r"\(N, C, H, W\)"):
        pl.training.train(tiny_lpn(), {"x": data}, steps=2, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        pl.training.train(tiny_lpn(), data * math.nan, steps=2, progress=False)


# ---- checkpoints ---------------------------------------------------------------------------------
def _rewrite(path, out, edit_meta=None, edit_tensors=None):
    meta = json.loads(safe_open(str(path), "pt").metadata()["pnp_lpn"])
    tensors = load_file(str(path))
    raw = json.dumps(edit_meta(meta) if edit_meta else meta)
    if edit_tensors:
        edit_tensors(tensors)
    save_file(tensors, str(out), metadata={"pnp_lpn": raw})
    return out


def _without_digest(edit):
    def f(meta):
        meta.pop("sha256")
        return edit(meta) if edit else meta
    return f


def _set_tensor(name, value):
    def f(tensors):
        tensors[name] = value(tensors[name]) if name in tensors else value(None)
    return f


@pytest.mark.parametrize("edit_meta,edit_tensors,field", [
    (_without_digest(lambda m: {k: v for k, v in m.items() if k != "config"}), None, "config"),
    (_without_digest(lambda m: {**m, "config": [1, 2]}), None, "config"),
    (_without_digest(lambda m: {**m, "name": 3}), None, "name"),
    (_without_digest(lambda m: {**m, "config": {**m["config"], "widht": 3}}), None, "widht"),
    (_without_digest(lambda m: {**m, "config": {**m["config"], "depth": "two"}}), None, "depth"),
    (_without_digest(lambda m: {**m, "config": {**m["config"], "channels": [4.5, 6]}}), None, "channels"),
    (_without_digest(lambda m: {**m, "data_range": [1, 0]}), None, "data_range"),
    (_without_digest(lambda m: {**m, "format_version": "1"}), None, "format_version"),
    (_without_digest(lambda m: {**m, "architecture": "UNet"}), None, "architecture"),
    (_without_digest(None), _set_tensor("model.quadratic.conv.weight", lambda t: t * math.nan), "quadratic.conv.weight"),
    (_without_digest(None), _set_tensor("model.quadratic.conv.weight", lambda t: t[:1]), "quadratic.conv.weight"),
    (_without_digest(None), _set_tensor("model.quadratic.conv.weight", lambda t: t.double()), "quadratic.conv.weight"),
    (_without_digest(None), _set_tensor("model.extra", lambda t: torch.zeros(1)), "model.extra"),
    (None, _set_tensor("model.quadratic.conv.weight", lambda t: t + 1e-3), "sha256"),
    (lambda m: {**m, "config": {**m["config"], "alpha": 0.5}}, None, "sha256"),
])
def test_malformed_checkpoints_name_file_and_field(tmp_path, edit_meta, edit_tensors, field):
    path = pl.save_prior(tiny_lpn(), tmp_path / "prior.safetensors")
    bad = _rewrite(path, tmp_path / "bad.safetensors", edit_meta, edit_tensors)
    with pytest.raises(ValueError) as err:
        pl.load_prior(bad)
    assert str(bad) in str(err.value) and field in str(err.value), str(err.value)


def test_checkpoint_with_bad_json_or_negative_convex_weights(tmp_path):
    path = pl.save_prior(tiny_lpn(), tmp_path / "prior.safetensors")
    tensors = load_file(str(path))
    save_file(tensors, str(tmp_path / "json.safetensors"), metadata={"pnp_lpn": "{not json"})
    with pytest.raises(ValueError, match="not valid JSON"):
        pl.load_prior(tmp_path / "json.safetensors")
    name = next(k for k in tensors if "net." in k and k.endswith(".weight") and (tensors[k] > 0).all())
    bad = _rewrite(path, tmp_path / "neg.safetensors", _without_digest(None), _set_tensor(name, lambda t: -t))
    with pytest.raises(ValueError, match="negative entries"):
        pl.load_prior(bad)


def test_shipped_checkpoints_carry_a_digest():
    for line in pl.list_pretrained():
        name = line.split(":")[0]
        assert "sha256" in pl.load_pretrained(name).metadata, name


# ---- property-based ------------------------------------------------------------------------------
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAST = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
DTYPES = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16])
SIDES = st.integers(8, 32)
SPECIAL = st.sampled_from([None, math.nan, math.inf, -math.inf])


def _image(shape, dtype, scale, special, seed):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * scale
    if special is not None:
        x.view(-1)[seed % x.numel()] = special
    return x.to(dtype)


def _finite_or_clear_error(call, shape, dtype, special):
    """The contract: finite output of the right shape and dtype, or ValueError/TypeError with
    a message; NaN/Inf in means an error, never NaN out."""
    try:
        out = call()
    except (ValueError, TypeError) as e:
        assert str(e)
        return None
    assert special is None, "non-finite input was accepted"
    assert out.shape == shape and out.dtype == dtype
    assert torch.isfinite(out.float()).all()
    return out


OPERATORS = {
    "blur": lambda c, h, w: GaussianBlur((c, h, w), 1.0),
    "blur-zeros": lambda c, h, w: GaussianBlur((c, h, w), 1.0, padding="zeros"),
    "cs": lambda c, h, w: CompressedSensing((c, h, w), 0.4),
    "inpainting": lambda c, h, w: Inpainting((c, h, w)),
    "fourier": lambda c, h, w: FourierSubsampling((c, h, w), pattern="random"),
}


@FAST
@given(name=st.sampled_from(sorted(OPERATORS)), c=st.integers(1, 3), h=SIDES, w=SIDES, dtype=DTYPES,
       scale=st.sampled_from([1e-3, 1.0, 1e3]), special=SPECIAL, seed=st.integers(0, 99))
def test_property_operators(name, c, h, w, dtype, scale, special, seed):
    op = OPERATORS[name](c, h, w)
    x = _image((2, c, h, w), dtype, scale, special, seed)
    y = _finite_or_clear_error(lambda: op.A(x), (2, *op.meas_shape), dtype, special)
    if y is not None:
        _finite_or_clear_error(lambda: op.A_adjoint(y), x.shape, dtype, None)
        _finite_or_clear_error(lambda: op.prox_l2(x, y, 0.5), x.shape, dtype, None)


PRIORS = {"lpn": tiny_lpn(), "aelpn": tiny_aelpn(), "lpn-mixture": tiny_lpn(mixture_kernel=3),
          "dihedral": pl.priors.DihedralPrior(tiny_lpn()), "rescaled": pl.priors.RescaledPrior(tiny_lpn(), 0.2),
          "color": pl.priors.OpponentColorPrior(tiny_lpn())}


@FAST
@given(name=st.sampled_from(sorted(PRIORS)), h=SIDES, w=SIDES, dtype=DTYPES,
       scale=st.sampled_from([1e-2, 1.0, 10.0]), special=SPECIAL, seed=st.integers(0, 99),
       sigma=st.sampled_from([0.02, 0.1, 0.3]))
def test_property_prior_prox_and_denoise(name, h, w, dtype, scale, special, seed, sigma):
    prior = PRIORS[name]
    x = _image((1, prior.in_channels, h, w), dtype, scale, special, seed)
    _finite_or_clear_error(lambda: prior.prox(x), x.shape, dtype, special)
    _finite_or_clear_error(lambda: prior.denoise(x, sigma, tol=1e-3), x.shape, dtype, special)


@FAST
@given(name=st.sampled_from(["blur", "inpainting", "cs"]), h=st.integers(8, 20), dtype=DTYPES,
       scale=st.sampled_from([1e-2, 1.0, 1e2]), special=SPECIAL, seed=st.integers(0, 99))
def test_property_solve(name, h, dtype, scale, special, seed):
    op = OPERATORS[name](1, h, h)
    y = op.A(_image((1, 1, h, h), torch.float32, scale, None, seed)).to(dtype)
    if special is not None:
        y.view(-1)[0] = special
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = _finite_or_clear_error(lambda: pl.solve(y, op, PRIORS["lpn"], lam=0.05, max_iter=3).x,
                                     (1, 1, h, h), dtype, special)
    assert res is not None or special is not None


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_property_corrupted_checkpoint_bytes(tmp_path_factory, data):
    from pnp_lpn.priors.pretrained import _available

    src = _available()["lpn-mnist"].read_bytes()
    header_end = 8 + int.from_bytes(src[:8], "little")  # u64 header length, JSON header, tensor bytes
    raw = bytearray(src)
    for _ in range(data.draw(st.integers(1, 3))):
        lo, hi = data.draw(st.sampled_from([(0, 8), (8, header_end), (header_end, len(raw))]))
        raw[data.draw(st.integers(lo, hi - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.integers(0, 9)) == 0:
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    path = tmp_path_factory.mktemp("corrupt") / "prior.safetensors"
    path.write_bytes(bytes(raw))
    try:
        prior = pl.load_prior(path)
    except ValueError as e:
        assert str(path) in str(e)
        return
    x = torch.rand(1, 1, 12, 12)  # a file that loads (header bytes outside the digest) still works
    torch.testing.assert_close(prior(x), pl.load_pretrained("lpn-mnist")(x))
