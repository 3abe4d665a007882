"""pnp-lpn inspect: R of degraded versions, checked against a closed-form regulariser."""

import torch

from pnp_lpn.cli import main
from pnp_lpn.inspection import degraded_versions, inspect_prior

from conftest import QuadraticPrior


def test_inspect_matches_closed_form_regularizer():
    """For prox(v) = v / (1 + mu), R(x) = mu/2 ||x||^2 up to a constant: the reported
    differences must equal the closed form on every variant."""
    mu = 0.5
    x = torch.rand(2, 1, 24, 24, dtype=torch.float64)
    rows = inspect_prior(QuadraticPrior(mu), x, noise=0.1, blur=1.5, tol=1e-10)
    versions = degraded_versions(x, 0.1, 1.5)
    for r in rows:
        v = versions[r["variant"]][r["image"]]
        expected = mu / 2 * (v.pow(2).sum() - x[r["image"]].pow(2).sum())
        assert abs(r["R_minus_clean"] - float(expected)) < 1e-6 * max(1.0, abs(float(expected)))
        assert r["residual"] <= 1e-10
    assert {r["variant"] for r in rows} == {"clean", "noisy", "blurred", "noisy+blurred"}


def test_inspect_command_runs(capsys):
    assert main(["inspect", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "noisy+blurred" in out and "R - R(clean)" in out
    assert main(["inspect", "--list"]) == 0
    assert "lpn-ct" in capsys.readouterr().out


def test_perturbation_curves_match_closed_form_regularizer():
    from pnp_lpn.inspection import perturb, perturbation_curves

    mu = 0.5
    x = torch.rand(3, 1, 16, 16, dtype=torch.float64)
    levels = {"noise": (0.0, 0.1), "blur": (0.0, 1.0), "mix": (0.0, 0.3)}
    curves = perturbation_curves(QuadraticPrior(mu), x, levels, tol=1e-10)
    for kind, ts in levels.items():
        assert curves[kind]["level"] == list(ts)
        for i, t in enumerate(ts):
            v = perturb(x, kind, t)
            expected = mu / 2 * (v.pow(2).flatten(1).sum(1) - x.pow(2).flatten(1).sum(1))
            torch.testing.assert_close(curves[kind]["R_minus_clean"][i], expected, rtol=1e-6, atol=1e-8)
    assert (curves["mix"]["R_minus_clean"][0] == 0).all()
    torch.testing.assert_close(perturb(x, "mix", 0.5)[0], 0.5 * (x[0] + x[2]))


def test_inspect_curves_command_writes_figure(tmp_path, capsys, monkeypatch):
    import pnp_lpn.inspection

    monkeypatch.setattr(pnp_lpn.inspection, "CURVE_LEVELS", {"noise": (0.0, 0.1), "blur": (1.0,), "mix": (0.5,)})
    out = tmp_path / "curves.png"
    assert main(["inspect", "--prior", "lpn-mnist", "--data", "mnist", "--size", "12", "--max-images", "2",
                 "--curves", str(out)]) == 0
    assert out.stat().st_size > 0 and "noise" in capsys.readouterr().out
