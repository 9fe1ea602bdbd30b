"""Density plots for 2-D flows: data | model density | model samples (funnels paper, Fig. 2)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

BoundsLike = Sequence[Sequence[float]]


@torch.no_grad()
def density_grid(
    log_prob: Callable[[Tensor], Tensor],
    bounds: BoundsLike,
    points_per_axis: int = 200,
    chunk: int = 10_000,
    device: Optional[torch.device] = None,
) -> Tensor:
    """exp(log_prob) on a ``points_per_axis``² grid over ``bounds``; shape (ny, nx), on the CPU."""
    (xmin, ymin), (xmax, ymax) = bounds
    xs = torch.linspace(float(xmin), float(xmax), points_per_axis)
    ys = torch.linspace(float(ymin), float(ymax), points_per_axis)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    if device is not None:
        grid = grid.to(device)
    parts = [log_prob(part).detach().double().cpu() for part in grid.split(chunk)]
    dens = torch.cat(parts).exp().nan_to_num(nan=0.0, posinf=0.0)
    return dens.reshape(points_per_axis, points_per_axis)


def plot_density_2d(
    data: Tensor,
    log_prob: Callable[[Tensor], Tensor],
    samples: Tensor,
    bounds: BoundsLike,
    path: Union[str, Path],
    points_per_axis: int = 200,
    title: Optional[str] = None,
    device: Optional[torch.device] = None,
) -> Path:
    """Save a PNG with three panels: data histogram, model density on a grid, sample histogram.

    ``log_prob`` maps a (batch, 2) float32 tensor to (batch,) log densities; it is evaluated in
    chunks under ``torch.no_grad`` (grid points are moved to ``device`` when given). Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    (xmin, ymin), (xmax, ymax) = bounds
    extent = (float(xmin), float(xmax), float(ymin), float(ymax))
    hist_range = [[extent[0], extent[1]], [extent[2], extent[3]]]
    dens = density_grid(log_prob, bounds, points_per_axis, device=device)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    try:
        for ax, points, name in ((axes[0], data, "data"), (axes[2], samples, "model samples")):
            pts = points.detach().float().cpu().numpy()
            *_, image = ax.hist2d(pts[:, 0], pts[:, 1], bins=max(points_per_axis // 2, 10), range=hist_range,
                                  cmap="viridis")
            fig.colorbar(image, ax=ax, label="examples per bin")
            ax.set_title(f"{name} ({len(pts):,})")
        image = axes[1].imshow(dens.numpy(), origin="lower", extent=extent, aspect="auto", cmap="viridis")
        fig.colorbar(image, ax=axes[1], label="p(x)")
        axes[1].set_title("model density")
        for ax in axes:
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
            ax.set_xlabel("$x_1$")
            ax.set_ylabel("$x_2$")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
