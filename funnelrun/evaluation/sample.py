"""``funnelrun-sample``: draw samples from a trained model at one or more temperatures.

    funnelrun-sample model=f_nsf data=four_circles ckpt_path=<run>/checkpoints/last.ckpt \\
        sample.num_samples=5000 'sample.temperatures=[0.5,0.75,1.0]'

Takes the same overrides as ``funnelrun`` (they must match the run that wrote the checkpoint) and
writes, into a new directory ``<checkpoint's run dir>/samples/<time>/`` (or ``sample.out_dir``),
``samples_T<temperature>.pt`` (a tensor of shape (num_samples, *data_shape)) and, for 2-D data, a
scatter plot per temperature. Temperature T scales the standard deviation of every Gaussian that
is sampled (the base and the funnels' p(x_dropped | z)); funnels paper Fig. 4.

For images, ``samples_T<temperature>.png`` shows the first :data:`GRID_IMAGES` samples as n-bit
images, and ``sample.interpolations=<n>`` writes ``interpolations.png`` (and ``.pt``): n rows, row k
decoding :data:`INTERPOLATION_STEPS` points of the line between the latents of test images 2k and
2k + 1, at temperature 0 (each funnel's p(x_dropped | z) at its mean). Only models that map data
to their latent deterministically (``exact``: flows and funnels) have such latents; for bound models
(VAEs, VFlow) the interpolations are skipped with a message.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from funnelrun.data.base import FunnelDataModule
from funnelrun.errors import FunnelrunError
from funnelrun.evaluation.image_grid import save_image_grid
from funnelrun.evaluation.loading import load_model
from funnelrun.models.flow import Flow

#: samples shown in each image grid
GRID_IMAGES = 64
#: images per interpolation row, both ends included
INTERPOLATION_STEPS = 10


def new_output_dir(ckpt_path: Optional[str], out_dir: Optional[str], kind: str = "samples") -> Path:
    """A new directory ``<out_dir or checkpoint's run dir/kind>/<time>/<ns>``: never an earlier one."""
    if out_dir is not None:
        root = Path(out_dir)
    elif ckpt_path not in (None, "last"):
        root = Path(ckpt_path).expanduser().resolve().parent.parent / kind
    else:
        root = Path(kind)
    path = root / time.strftime("%Y-%m-%d_%H-%M-%S") / f"{time.time_ns() % 1_000_000_000:09d}"
    path.mkdir(parents=True, exist_ok=False)  # a new directory: never overwrites earlier outputs
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


@torch.no_grad()
def interpolations(model: Flow, datamodule: FunnelDataModule, pairs: int, steps: int = INTERPOLATION_STEPS) -> Tensor:
    """(pairs * steps, *data_shape): row k decodes (1 - t) z_2k + t z_2k+1, t = 0 .. 1, z_i the
    latent of test image i, at temperature 0."""
    if datamodule.test is None:
        datamodule.setup("test")
    if len(datamodule.test) < 2 * pairs:
        raise FunnelrunError(
            f"sample.interpolations={pairs} needs {2 * pairs} test images, the test split has {len(datamodule.test)}"
        )
    rows = [datamodule.test[i] for i in range(2 * pairs)]
    x = torch.stack([r[0] if isinstance(r, (list, tuple)) else r for r in rows])
    z, _ = model.transform(x)
    start, end = z[0::2].unsqueeze(1), z[1::2].unsqueeze(1)  # (pairs, 1, *latent_shape)
    t = torch.linspace(0, 1, steps, dtype=z.dtype).view(1, steps, *[1] * (z.dim() - 1))
    path = (1 - t) * start + t * end
    return model.transform.inverse(path.reshape(pairs * steps, *z.shape[1:]), temperature=0.0)


def run_sample(argv: list[str]) -> Path:
    cfg, datamodule, model = load_model(argv)
    if cfg.ckpt_path is None:
        raise FunnelrunError("funnelrun-sample needs ckpt_path=<run>/checkpoints/<file>.ckpt (a trained model)")
    if cfg.sample.interpolations < 0:
        raise FunnelrunError(f"sample.interpolations={cfg.sample.interpolations} must be at least 0 (pairs of test images)")
    images = len(datamodule.data_shape) == 3
    out = new_output_dir(cfg.ckpt_path, cfg.sample.out_dir)
    with torch.no_grad():
        for temperature in cfg.sample.temperatures:
            samples = model.sample(cfg.sample.num_samples, temperature=float(temperature))
            torch.save(samples, out / f"samples_T{temperature}.pt")
            if datamodule.data_dim == 2 and datamodule.bounds is not None:
                _scatter(samples, datamodule.bounds, out / f"samples_T{temperature}.png", f"{cfg.name}, T = {temperature}")
            if images:
                save_image_grid(samples[:GRID_IMAGES], datamodule.bits, out / f"samples_T{temperature}.png")
    if cfg.sample.interpolations > 0:
        if not images:
            print("sample.interpolations skipped: interpolation rows are drawn for image data only", flush=True)
        elif not model.exact:
            print(
                "sample.interpolations skipped: this model samples its latent (exact: false, e.g. a VAE "
                "encoder); interpolations need a deterministic map from data to latent (flows, funnels)",
                flush=True,
            )
        else:
            rows = interpolations(model, datamodule, cfg.sample.interpolations)
            torch.save(rows, out / "interpolations.pt")
            save_image_grid(rows, datamodule.bits, out / "interpolations.png", ncol=INTERPOLATION_STEPS)
    print(f"{cfg.sample.num_samples} samples at T = {list(cfg.sample.temperatures)} in {out}", flush=True)
    return out


def main(argv: Optional[list[str]] = None) -> None:
    try:
        run_sample(sys.argv[1:] if argv is None else argv)
    except FunnelrunError as exc:
        print(f"funnelrun-sample: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
