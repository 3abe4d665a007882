"""pnp-lpn inspect: R of degraded versions, checked against a closed-form regulariser."""

import torch

from pnp_lpn.cli import main
from pnp_lpn.inspect import degraded_versions, inspect_prior

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
