"""2-D density plot: a valid PNG comes out without a display."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from funnelrun.training.plots import density_grid, plot_density_2d


def _std_normal_log_prob(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x**2).sum(dim=1) - math.log(2 * math.pi)


def test_density_grid_matches_gaussian() -> None:
    dens = density_grid(_std_normal_log_prob, ((-1.0, -1.0), (1.0, 1.0)), points_per_axis=21, chunk=50)
    assert dens.shape == (21, 21)
    assert dens[10, 10].item() == pytest.approx(1 / (2 * math.pi), rel=1e-5)
    assert dens[0, 0].item() < dens[10, 10].item()


def test_plot_density_2d_writes_png(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    data = torch.randn(2000, 2, generator=g)
    samples = torch.randn(2000, 2, generator=g)
    calls = []

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        calls.append(torch.is_grad_enabled())
        return _std_normal_log_prob(x)

    out = plot_density_2d(
        data, log_prob, samples, ((-4.0, -4.0), (4.0, 4.0)), tmp_path / "sub" / "density.png",
        points_per_axis=64, title="gaussian",
    )
    assert out == tmp_path / "sub" / "density.png"
    assert out.is_file() and out.stat().st_size > 1000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert calls and not any(calls)  # evaluated under no_grad
