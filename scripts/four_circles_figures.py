"""Issue figures for four circles: NSF and F-NSF (1-D latent) test log-likelihood with the shipped
configs and no overrides, beside the true mean test log-likelihood of the generating density.

    .venv/bin/python scripts/four_circles_figures.py [--out-root outputs/figures] [extra overrides...]

Runs `funnelrun model=nsf data=four_circles` and `funnelrun model=f_nsf data=four_circles` as
subprocesses (so each is exactly what a user runs), then prints a Markdown table with the test
log-likelihood, the gap to the truth, steps and wall time.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from funnelrun.data.plane import PlaneDataModule, four_circles_log_density


def true_test_log_likelihood() -> float:
    """Mean exact log density of the generating process over the shipped test split."""
    dm = PlaneDataModule("four_circles")
    return four_circles_log_density(dm.test_data.double()).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-root", default="outputs/figures")
    parser.add_argument("--models", nargs="+", default=["nsf", "f_nsf"])
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    funnelrun = Path(sys.executable).with_name("funnelrun")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for model in args.models:
        run_dir = Path(args.out_root) / f"{stamp}-{model}"
        start = time.perf_counter()
        subprocess.run(
            [str(funnelrun), f"model={model}", "data=four_circles", f"hydra.run.dir={run_dir}", *args.overrides],
            check=True,
        )
        wall = time.perf_counter() - start
        metrics = json.loads((run_dir / "metrics.json").read_text())
        rows.append((model, metrics, wall, run_dir))
    truth = true_test_log_likelihood()
    print(f"\nfour circles, true mean test log-likelihood (exact density, {torch.__version__}): {truth:.4f}")
    print("| model | latent dim | test log-lik (nats) | gap to truth | exact | steps | train s | wall s | run dir |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model, m, wall, run_dir in rows:
        ll = -m["test/nll"]
        print(f"| {model} | {m['latent_dim']} | {ll:.4f} | {truth - ll:.4f} | {m['exact']} | {m['steps']} | "
              f"{m['train_seconds']:.0f} | {wall:.0f} | {run_dir} |")


if __name__ == "__main__":
    main()
