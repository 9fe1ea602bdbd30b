"""Has a checkerboard VFlow's q(a | x) collapsed to noise? Reads finished runs, prints one line each.

    .venv/bin/python scripts/vflow_collapse.py outputs/vflow_checkerboard/VFlow*-seed*

For each run (its config.yaml and checkpoints/last.ckpt), on 4,000 test points of the checkerboard:
- ``R2``: the fraction of the variance of a ~ q(a | x) that the square holding x explains (between-square
  variance over total). 0 means a says nothing about which of the 8 squares x lies in; VFlow §5's
  solution ("a pile of pies", one per mode, told apart by a) needs it well above 0.
- ``-log q``: the mean of -log q(a | x) against the entropy of N(0, I) in D_Z dimensions; equal values and
  R2 near 0 mean q(a | x) is the standard normal whatever x is.
- the test log-likelihood the run reported.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from funnelrun import load_run
from funnelrun.surjections.augment import Augment


def square_of(x: torch.Tensor) -> torch.Tensor:
    """Index of the 2 x 2 cell of [-4, 4]^2 that holds each point (the checkerboard's squares)."""
    return (torch.floor(x[:, 0] / 2) + 2) * 4 + (torch.floor(x[:, 1] / 2) + 2)


def explained_fraction(values: torch.Tensor, groups: torch.Tensor) -> float:
    """Between-group variance over total variance, summed over the columns of ``values``."""
    total = ((values - values.mean(0)) ** 2).sum()
    within = sum(((values[groups == g] - values[groups == g].mean(0)) ** 2).sum() for g in groups.unique())
    return float(1 - within / total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    for run in args.runs:
        loaded = load_run(run, checkpoint="last")
        if loaded.config.data.get("name") != "checkerboard":
            raise SystemExit(f"{run}: not a checkerboard run (data.name={loaded.config.data.get('name')})")
        model, datamodule = loaded.model, loaded.datamodule
        augments = [m for m in model.modules() if isinstance(m, Augment)]
        if not augments:
            raise SystemExit(f"{run}: the model has no augmentation q(a | x) (not a VFlow)")
        x = datamodule.test_data[:4000]
        torch.manual_seed(0)
        with torch.no_grad():
            a, log_q = augments[0].q.sample_with_log_prob(x)
        entropy = 0.5 * a.shape[1] * (1 + math.log(2 * math.pi))
        metrics = json.loads((run / "metrics.json").read_text())
        print(f"{run.name}: R2 {explained_fraction(a, square_of(x)):.3f}, -log q {-log_q.mean().item():.3f} "
              f"(N(0, I): {entropy:.3f}), test log-lik {-metrics['test/nll']:.4f}")


if __name__ == "__main__":
    main()
