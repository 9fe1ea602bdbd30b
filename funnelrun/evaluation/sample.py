"""``funnelrun-sample``: draw samples from a trained model at one or more temperatures.

    funnelrun-sample model=f_nsf data=four_circles ckpt_path=<run>/checkpoints/last.ckpt \\
        sample.num_samples=5000 'sample.temperatures=[0.5,0.75,1.0]'

Takes the same overrides as ``funnelrun`` (they must match the run that wrote the checkpoint) and
writes, into a new directory ``<checkpoint's run dir>/samples/<time>/`` (or ``sample.out_dir``),
``samples_T<temperature>.pt`` (a tensor of shape (num_samples, *data_shape)) and, for 2-D data, a
scatter plot per temperature. Temperature T scales the standard deviation of every Gaussian that
is sampled (the base and the funnels' p(x_dropped | z)).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import torch

from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.loading import load_model


def _out_dir(ckpt_path: Optional[str], out_dir: Optional[str]) -> Path:
    if out_dir is not None:
        root = Path(out_dir)
    elif ckpt_path not in (None, "last"):
        root = Path(ckpt_path).expanduser().resolve().parent.parent / "samples"
    else:
        root = Path("samples")
    path = root / time.strftime("%Y-%m-%d_%H-%M-%S") / f"{time.time_ns() % 1_000_000_000:09d}"
    path.mkdir(parents=True, exist_ok=False)  # a new directory: never overwrites earlier samples
    return path


def _scatter(samples: torch.Tensor, bounds, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.hist2d(samples[:, 0].numpy(), samples[:, 1].numpy(), bins=150,
              range=[[bounds[0][0], bounds[1][0]], [bounds[0][1], bounds[1][1]]], cmap="viridis")
    ax.set_title(title)
    ax.set_aspect("equal")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def run_sample(argv: list[str]) -> Path:
    cfg, datamodule, model = load_model(argv)
    if cfg.ckpt_path is None:
        raise FunnelrunError("funnelrun-sample needs ckpt_path=<run>/checkpoints/<file>.ckpt (a trained model)")
    out = _out_dir(cfg.ckpt_path, cfg.sample.out_dir)
    with torch.no_grad():
        for temperature in cfg.sample.temperatures:
            samples = model.sample(cfg.sample.num_samples, temperature=float(temperature))
            torch.save(samples, out / f"samples_T{temperature}.pt")
            if datamodule.data_dim == 2 and datamodule.bounds is not None:
                _scatter(samples, datamodule.bounds, out / f"samples_T{temperature}.png", f"{cfg.name}, T = {temperature}")
    print(f"{cfg.sample.num_samples} samples at T = {list(cfg.sample.temperatures)} in {out}", flush=True)
    return out


def main(argv: Optional[list[str]] = None) -> None:
    try:
        run_sample(sys.argv[1:] if argv is None else argv)
    except FunnelrunError as exc:
        print(f"funnelrun-sample: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
