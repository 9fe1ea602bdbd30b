"""Samples and latent interpolations of a trained model (used by ``funnelrun-sample``,
:mod:`funnelrun.pipelines.sample`).

Temperature T scales the standard deviation of every Gaussian that is sampled (the base and the
funnels' p(x_dropped | z)); funnels paper Fig. 4. For images :func:`interpolations` decodes, at
temperature 0 (each funnel's p(x_dropped | z) at its mean), :data:`INTERPOLATION_STEPS` points of
the line between the latents of test images 2k and 2k + 1; only models that map data to their
latent deterministically (``exact``: flows and funnels) have such latents.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sized, cast

import torch
from torch import Tensor
from torch.utils.data import Dataset

from funnelrun.data.base import FunnelDataModule
from funnelrun.errors import FunnelrunError
from funnelrun.models.flow import Flow

#: samples shown in each image grid
GRID_IMAGES = 64
#: images per interpolation row, both ends included
INTERPOLATION_STEPS = 10


def scatter_plot(samples: torch.Tensor, bounds, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.2))
    *_, image = ax.hist2d(samples[:, 0].numpy(), samples[:, 1].numpy(), bins=150,
                          range=[[bounds[0][0], bounds[1][0]], [bounds[0][1], bounds[1][1]]], cmap="viridis")
    fig.colorbar(image, ax=ax, label="samples per bin")
    ax.set_title(title)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


@torch.no_grad()
def interpolations(model: Flow, datamodule: FunnelDataModule, pairs: int, steps: int = INTERPOLATION_STEPS) -> Tensor:
    """(pairs * steps, *data_shape): row k decodes (1 - t) z_2k + t z_2k+1, t = 0 .. 1, z_i the
    latent of test image i, at temperature 0."""
    if datamodule.test is None:
        datamodule.setup("test")
    test = cast(Dataset, datamodule.test)
    if len(cast(Sized, test)) < 2 * pairs:
        raise FunnelrunError(
            f"sample.interpolations={pairs} needs {2 * pairs} test images, the test split has {len(cast(Sized, test))}"
        )
    rows = [test[i] for i in range(2 * pairs)]
    x = torch.stack([r[0] if isinstance(r, (list, tuple)) else r for r in rows])
    z, _ = model.transform(x)
    start, end = z[0::2].unsqueeze(1), z[1::2].unsqueeze(1)  # (pairs, 1, *latent_shape)
    t = torch.linspace(0, 1, steps, dtype=z.dtype).view(1, steps, *[1] * (z.dim() - 1))
    path = (1 - t) * start + t * end
    return model.transform.inverse(path.reshape(pairs * steps, *z.shape[1:]), temperature=0.0)
