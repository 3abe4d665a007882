"""Paper reproduction (LPN, Fig. 1): a 1-D Laplacian prior learned three ways.

    python benchmarks/repro_laplacian_1d.py [--steps 2000] [--pm-steps 2000] [--pm-batch 32768]
                                            [--gammas 0.5 0.3 0.2 0.1] [--lr-pm 1e-4] [--threads 1]

x ~ Laplace(0, 1), y = x + N(0, 1). The MAP denoiser is prox of |x| with noise variance 1,
i.e. soft-thresholding at 1. We train the same 1-D LPN (scalars as 1x1 images) with
- L2 loss (-> MMSE denoiser, a smooth shrinkage),
- L1 loss (-> a posterior-median-like denoiser),
- proximal matching, continued from the L1 model, in equal stages at gamma 0.5, 0.3, 0.2, 0.1
  (-> MAP as gamma -> 0).

At a finite gamma, proximal matching does not aim at the MAP denoiser but at the mode of the
posterior smoothed by its kernel (:func:`pm_optimum`, computed by quadrature): at gamma 0.1 it
still gives f(1) = 0.11 where soft-thresholding gives 0. So the script reports both
max |f(y) - soft(y, 1)| and max |f(y) - f_gamma(y)| on [-3, 3] (how well training reached its
own target), max |f_gamma - soft| (the part no training can remove at that gamma), and the
learned R against |x| (both shifted to R(0) = 0). Writes
laplacian_1d.{json,png} to --out (default out/bench/).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import pnp_lpn as pl
from pnp_lpn.training import TrainConfig, make_sampler, train

ARCH = dict(in_channels=1, channels=(128,), depth=3, beta=10.0, alpha=1e-3, kernel=1, quadratic_kernel=0)
GAMMAS = (0.5, 0.3, 0.2, 0.1)


def samples(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g) - 0.5
    return (-torch.sign(u) * torch.log1p(-2 * u.abs())).view(n, 1, 1, 1)  # Laplace(0, 1)


def pm_optimum(y: torch.Tensor, gamma: float) -> torch.Tensor:
    """Proximal matching's target at a finite gamma for this prior and noise (same shape as y):

        f_gamma(y) = argmax_t  int p(x | y) exp(-(t - x)^2 / gamma^2) dx,   p(x | y) ~ exp(-|x| - (x - y)^2 / 2),

    by quadrature (x on a 0.005 grid over [-12, 12], t on a 0.002 grid over [-5, 5]). It tends to the
    posterior mode soft(y, 1) as gamma -> 0; max |f_gamma - soft| on [-3, 3] is 0.31 / 0.18 / 0.11 / 0.06
    at gamma 0.5 / 0.2 / 0.1 / 0.05, always at |y| = 1, where the posterior has its kink."""
    x = torch.linspace(-12, 12, 4801, dtype=torch.float64)
    t = torch.linspace(-5, 5, 5001, dtype=torch.float64)
    log_post = -x.abs()[None] - (x[None] - y.double().flatten()[:, None]) ** 2 / 2
    post = (log_post - log_post.max(1, keepdim=True).values).exp()
    kernel = (-(t[:, None] - x[None]) ** 2 / gamma**2).exp()
    return t[(post @ kernel.T).argmax(1)].to(y.dtype).view_as(y)


def fit(warmup: str, steps: int, pm_from: pl.LPN | None = None, lr_pm: float = 1e-4, batch: int = 2048,
        gammas: tuple[float, ...] = GAMMAS) -> pl.LPN:
    """Train the 1-D LPN with ``warmup`` loss for ``steps`` steps, or (``pm_from`` given) continue that
    model with proximal matching in equal stages at each gamma of ``gammas``."""
    torch.manual_seed(0)
    prior = pl.LPN(**ARCH, sigma_train=1.0)
    data = make_sampler(samples(200_000))
    if pm_from is None:  # pure warm-up loss for all steps
        cfg = TrainConfig(sigma=1.0, steps=steps, batch_size=2048, warmup_fraction=1.0, warmup_loss=warmup, lr_warmup=1e-3)
    else:  # proximal matching only, continued from a trained model
        prior.load_state_dict(pm_from.state_dict())
        cfg = TrainConfig(sigma=1.0, steps=steps, batch_size=batch, warmup_fraction=0.0, lr_pm=lr_pm,
                          gamma_factor=gammas[-1], gamma_multipliers=tuple(g / gammas[-1] for g in gammas))
    train(prior, data, cfg, progress=True)
    return prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/bench", help="output folder (default out/bench, ignored by git)")
    parser.add_argument("--steps", type=int, default=2000, help="steps of the L2 and L1 fits")
    parser.add_argument("--pm-steps", dest="pm_steps", type=int, default=2000,
                        help="steps of the proximal-matching stages (all of them together)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr-pm", dest="lr_pm", type=float, default=1e-4)
    parser.add_argument("--pm-batch", dest="pm_batch", type=int, default=32768,
                        help="batch of the proximal-matching stage (its gradient is noisy at small gamma)")
    parser.add_argument("--gammas", type=float, nargs="+", default=list(GAMMAS),
                        help="the proximal-matching stages' gammas, decreasing")
    args = parser.parse_args()
    out_dir = Path(args.out)
    torch.set_num_threads(args.threads)
    gammas = tuple(args.gammas)
    models = {"L2": fit("l2", args.steps), "L1": fit("l1", args.steps)}
    models["proximal matching"] = fit("l1", args.pm_steps, pm_from=models["L1"], lr_pm=args.lr_pm,
                                     batch=args.pm_batch, gammas=gammas)
    y = torch.linspace(-3, 3, 601).view(-1, 1, 1, 1)
    soft = torch.sign(y) * (y.abs() - 1).clamp_min(0)
    target = pm_optimum(y, gammas[-1])
    gap = float((target - soft).abs().max())  # what no training at the last gamma removes
    x_grid = torch.linspace(-2, 2, 81).view(-1, 1, 1, 1)
    out, curves = {}, {}
    for name, m in models.items():
        m.eval()
        f = m(y)
        r = m.regularizer(x_grid, tol=1e-5, max_iter=300)
        r = r - m.regularizer(torch.zeros(1, 1, 1, 1), tol=1e-5, max_iter=300)
        out[name] = {"max_abs_f_minus_soft": float((f - soft).abs().max()),
                     "max_abs_f_minus_pm_optimum": float((f - target).abs().max()),
                     "max_abs_R_minus_absx": float((r - x_grid.flatten().abs()).abs().max())}
        curves[name] = (f.flatten(), r)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "laplacian_1d.json").write_text(json.dumps({
        "steps": args.steps, "pm_steps": args.pm_steps, "lr_pm": args.lr_pm, "pm_batch": args.pm_batch,
        "gammas": gammas, "arch": ARCH, "max_abs_pm_optimum_minus_soft": gap,
        "results": out}, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(y.flatten(), soft.flatten(), "k--", label="soft threshold (MAP)")
    ax[0].plot(y.flatten(), target.flatten(), "k:", label=f"proximal-matching optimum, gamma {gammas[-1]:g}")
    ax[1].plot(x_grid.flatten(), x_grid.flatten().abs(), "k--", label="|x|")
    for name, (f, r) in curves.items():
        ax[0].plot(y.flatten(), f, label=name)
        ax[1].plot(x_grid.flatten(), r, label=name)
    ax[0].set_title("learned prox f(y)")
    ax[1].set_title("learned R(x) - R(0)")
    for a in ax:
        a.legend()
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "laplacian_1d.png", dpi=100)
    for name, r in out.items():
        print(f"{name:>18}: on [-3, 3] max|f - soft| = {r['max_abs_f_minus_soft']:.3f}, max|f - f_gamma| = "
              f"{r['max_abs_f_minus_pm_optimum']:.3f}; max|R - |x|| on [-2, 2] = {r['max_abs_R_minus_absx']:.3f}")
    print(f"gamma = {gammas[-1]:g}: max|f_gamma - soft| = {gap:.3f} (no training at this gamma removes it)")


if __name__ == "__main__":
    main()
