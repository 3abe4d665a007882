"""Paper reproduction (LPN, Fig. 1): a 1-D Laplacian prior learned three ways.

    python benchmarks/repro_laplacian_1d.py [--steps 2000] [--pm-steps 8000] [--lr-pm 1e-4]

x ~ Laplace(0, 1), y = x + N(0, 1). The MAP denoiser is prox of |x| with noise variance 1,
i.e. soft-thresholding at 1. We train the same 1-D LPN (scalars as 1x1 images) with
- L2 loss (-> MMSE denoiser, a smooth shrinkage),
- L1 loss (-> a posterior-median-like denoiser),
- proximal matching, continued from the L1 model with gamma 0.5 -> 0.1 (-> MAP),
and report max |f(y) - soft(y, 1)| on [-3, 3] and the learned R against |x| (both shifted
to R(0) = 0). Writes benchmarks/results/laplacian_1d.{json,png}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import pnp_lpn as pl
from pnp_lpn.training import TrainConfig, make_sampler, train

RESULTS = Path(__file__).parent / "results"
ARCH = dict(in_channels=1, channels=(128,), depth=3, beta=10.0, alpha=1e-3, kernel=1, quadratic_kernel=0)


def samples(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g) - 0.5
    return (-torch.sign(u) * torch.log1p(-2 * u.abs())).view(n, 1, 1, 1)  # Laplace(0, 1)


def fit(warmup: str, steps: int, pm_from: pl.LPN | None = None, lr_pm: float = 1e-4, batch: int = 2048) -> pl.LPN:
    torch.manual_seed(0)
    prior = pl.LPN(**ARCH, sigma_train=1.0)
    data = make_sampler(samples(200_000))
    if pm_from is None:  # pure warm-up loss for all steps
        cfg = TrainConfig(sigma=1.0, steps=steps, batch_size=2048, l1_fraction=1.0, warmup_loss=warmup, lr_l1=1e-3)
    else:  # proximal matching only, continued from a trained model
        prior.load_state_dict(pm_from.state_dict())
        cfg = TrainConfig(sigma=1.0, steps=steps, batch_size=batch, l1_fraction=0.0, lr_pm=lr_pm,
                          gamma_factor=0.1, gamma_multipliers=(5.0, 3.0, 2.0, 1.0))
    train(prior, data, cfg, progress=True)
    return prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="steps of the L2 and L1 fits")
    parser.add_argument("--pm-steps", dest="pm_steps", type=int, help="steps of the proximal-matching stage "
                        "(default: --steps)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr-pm", dest="lr_pm", type=float, default=1e-4)
    parser.add_argument("--pm-batch", dest="pm_batch", type=int, default=2048,
                        help="batch of the proximal-matching stage (its gradient is noisy at small gamma)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {"L2": fit("l2", args.steps), "L1": fit("l1", args.steps)}
    pm_steps = args.pm_steps or args.steps
    models["proximal matching"] = fit("l1", pm_steps, pm_from=models["L1"], lr_pm=args.lr_pm,
                                     batch=args.pm_batch)
    y = torch.linspace(-3, 3, 601).view(-1, 1, 1, 1)
    soft = torch.sign(y) * (y.abs() - 1).clamp_min(0)
    x_grid = torch.linspace(-2, 2, 81).view(-1, 1, 1, 1)
    out, curves = {}, {}
    for name, m in models.items():
        m.eval()
        f = m(y)
        r = m.regularizer(x_grid, tol=1e-5, max_iter=300)
        r = r - m.regularizer(torch.zeros(1, 1, 1, 1), tol=1e-5, max_iter=300)
        out[name] = {"max_abs_f_minus_soft": float((f - soft).abs().max()),
                     "max_abs_R_minus_absx": float((r - x_grid.flatten().abs()).abs().max())}
        curves[name] = (f.flatten(), r)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "laplacian_1d.json").write_text(json.dumps({"steps": args.steps, "pm_steps": pm_steps,
                                                          "lr_pm": args.lr_pm, "pm_batch": args.pm_batch, "arch": ARCH,
                                                          "results": out}, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(y.flatten(), soft.flatten(), "k--", label="soft threshold (MAP)")
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
    fig.savefig(RESULTS / "laplacian_1d.png", dpi=100)
    for name, r in out.items():
        print(f"{name:>18}: max|f - soft| on [-3, 3] = {r['max_abs_f_minus_soft']:.3f}, "
              f"max|R - |x|| on [-2, 2] = {r['max_abs_R_minus_absx']:.3f}")


if __name__ == "__main__":
    main()
