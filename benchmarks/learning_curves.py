"""Learning curves of training runs: validation PSNR against minutes and steps, and loss.

    python benchmarks/learning_curves.py runs/natural-gray runs/ct ... [--out out/bench]

Reads each run's ``history.json`` (written by ``pnp-lpn train``) and writes
learning_curves.png and learning_curves.md to --out (default out/bench/) (one row per run: steps done,
wall minutes, last and best validation PSNR).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np



def smooth(values: list[float], window: int = 100) -> np.ndarray:
    """Running mean over ``window`` steps (shorter at the start)."""
    v = np.asarray(values, dtype=float)
    c = np.cumsum(np.insert(v, 0, 0.0))
    lo = np.maximum(np.arange(1, len(v) + 1) - window, 0)
    return (c[1:] - c[lo]) / (np.arange(1, len(v) + 1) - lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="out/bench", help="output folder (default out/bench, ignored by git)")
    ap.add_argument("runs", nargs="+", help="folders holding history.json")
    ap.add_argument("--name", default="learning_curves")
    args = ap.parse_args()
    out_dir = Path(args.out)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    rows = ["| run | steps | minutes | last val PSNR | best val PSNR |", "|---|---|---|---|---|"]
    for run in args.runs:
        info = json.loads((Path(run) / "history.json").read_text())
        h, label = info["history"], Path(run).name
        axes[0].plot(h["val_minutes"], h["val_psnr"], "o-", ms=3, label=label)
        axes[1].plot(h["val_step"], h["val_psnr"], "o-", ms=3, label=label)
        axes[2].semilogy(smooth(h["loss"]), label=label)
        last, best = (f"{h['val_psnr'][-1]:.2f}", f"{max(h['val_psnr']):.2f}") if h["val_psnr"] else ("-", "-")
        rows.append(f"| {label} | {info['step']} | {h['wall_time'] / 60:.0f} | {last} | {best} |")
    for ax, xl in zip(axes, ["wall minutes", "step", "step"]):
        ax.set_xlabel(xl)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation PSNR (dB)")
    axes[2].set_ylabel("training loss (running mean of 100)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / f"{args.name}.png", dpi=110)
    cmd = "python benchmarks/learning_curves.py " + " ".join(args.runs)
    (out_dir / f"{args.name}.md").write_text(f"Command: `{cmd}`\n\n" + "\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
