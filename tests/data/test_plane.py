"""Plane datasets: samplers, exact densities, and the seeded data module."""
from __future__ import annotations

import math

import pytest
import torch

from funnelrun.data import (
    PLANE_SAMPLERS,
    PlaneDataModule,
    checkerboard,
    checkerboard_log_density,
    four_circles,
    four_circles_log_density,
)
from funnelrun.data.plane import four_circles_log_density_quadrature
from funnelrun.evaluation.exactness import density_integral_2d


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", sorted(PLANE_SAMPLERS))
def test_sampler_shape_dtype_determinism(name: str) -> None:
    sampler = PLANE_SAMPLERS[name]
    a, b, c = sampler(1001, _gen(0)), sampler(1001, _gen(0)), sampler(1001, _gen(1))
    assert a.shape == (1001, 2) and a.dtype == torch.float32
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.std(dim=0).min() > 0.5  # spread out, not collapsed


@pytest.mark.parametrize("name", sorted(PLANE_SAMPLERS))
def test_sampler_leaves_global_rng_alone(name: str) -> None:
    state = torch.get_rng_state()
    PLANE_SAMPLERS[name](100, _gen(0))
    assert torch.equal(state, torch.get_rng_state())


def test_four_circles_geometry() -> None:
    x = four_circles(20_000, _gen(0)).double()
    centres = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    dist_to_ring = ((x[:, None] - centres).norm(dim=-1) - 2.0).abs().min(dim=1).values
    assert dist_to_ring.max() < 0.6  # 0.1 noise: nothing far from a ring
    assert dist_to_ring.mean() < 0.1


def test_checkerboard_on_support() -> None:
    x = checkerboard(50_000, _gen(3))
    assert (x.abs() <= 4).all()
    assert torch.isfinite(checkerboard_log_density(x)).all()
    u = torch.floor(x.double() / 2)  # unit cells of side-2 squares; support has even parity
    assert ((u[:, 0] + u[:, 1]) % 2 == 0).float().mean() > 0.999
    # 8 squares, roughly equally filled
    counts = torch.unique(u, dim=0, return_counts=True)[1]
    assert len(counts) == 8 and counts.min() > 0.9 * counts.float().mean()


def test_checkerboard_log_density_values() -> None:
    pts = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [3.0, -3.0], [1.0, -3.0], [5.0, 1.0]])
    lp = checkerboard_log_density(pts)
    assert lp[0] == pytest.approx(-math.log(32)) and lp[3] == pytest.approx(-math.log(32))
    assert lp[1] == -math.inf and lp[2] == -math.inf and lp[4] == -math.inf


def test_four_circles_mean_log_likelihood() -> None:
    x = four_circles(100_000, _gen(2024))
    mean = four_circles_log_density(x.double()).mean().item()
    assert mean == pytest.approx(-2.870, abs=0.02)


def test_four_circles_closed_form_matches_quadrature() -> None:
    x = torch.cat([four_circles(300, _gen(7)), 5 * torch.rand(100, 2, generator=_gen(8)) - 2.5])
    closed = four_circles_log_density(x.double())
    quad = four_circles_log_density_quadrature(x.double(), n_theta=4096)
    assert torch.allclose(closed, quad, atol=1e-9)


@pytest.mark.parametrize(
    "log_density, half_width, points",
    [(four_circles_log_density, 4.5, 300), (checkerboard_log_density, 5.0, 200)],  # grid on the edges
)
def test_true_density_integrates_to_one(log_density, half_width: float, points: int) -> None:
    total = density_integral_2d(log_density, (-half_width, -half_width), (half_width, half_width), points)
    assert total == pytest.approx(1.0, abs=1e-3)


def test_data_module_splits_and_determinism() -> None:
    dm = PlaneDataModule("two_moons", n_train=1000, n_val=300, n_test=200, seed=5)
    again = PlaneDataModule("two_moons", n_train=1000, n_val=300, n_test=200, seed=5)
    other = PlaneDataModule("two_moons", n_train=1000, n_val=300, n_test=200, seed=6)
    assert dm.train_data.shape == (1000, 2) and dm.val_data.shape == (300, 2) and dm.test_data.shape == (200, 2)
    assert torch.equal(dm.test_data, again.test_data) and torch.equal(dm.train_data, again.train_data)
    assert not torch.equal(dm.test_data, other.test_data)
    assert not torch.equal(dm.train_data[:200], dm.val_data[:200])
    assert not torch.equal(dm.val_data[:200], dm.test_data)
    # the test split does not depend on the split sizes of the others
    bigger = PlaneDataModule("two_moons", n_train=50, n_val=10, n_test=200, seed=5)
    assert torch.equal(bigger.test_data, dm.test_data)


def test_data_module_leaves_global_rng_alone() -> None:
    torch.manual_seed(0)
    state = torch.get_rng_state()
    dm = PlaneDataModule("four_circles", n_train=512, n_val=100, n_test=100)
    dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()
    assert torch.equal(state, torch.get_rng_state())


def test_training_order_ignores_global_rng() -> None:
    dm = PlaneDataModule("four_circles", n_train=512, n_val=100, n_test=100, batch_size=128)
    torch.manual_seed(1)
    first = torch.cat(list(dm.train_dataloader()))
    torch.manual_seed(2)
    second = torch.cat(list(dm.train_dataloader()))
    assert torch.equal(first, second)


def test_data_module_attributes() -> None:
    dm = PlaneDataModule("four_circles", n_train=2000, n_val=100, n_test=100)
    assert dm.data_shape == (2,) and dm.data_dim == 2 and dm.bits is None
    assert dm.true_log_density is four_circles_log_density
    assert PlaneDataModule("two_spirals", n_train=100).true_log_density is None
    (xmin, ymin), (xmax, ymax) = dm.bounds
    lo, hi = dm.train_data.min(0).values, dm.train_data.max(0).values
    assert xmin < lo[0] - 0.5 and ymin < lo[1] - 0.5 and xmax > hi[0] + 0.5 and ymax > hi[1] + 0.5
    assert xmax - xmin < 2 * (hi[0] - lo[0]) + 2  # a margin, not a huge box


def test_dataloaders_sizes_and_shuffle() -> None:
    dm = PlaneDataModule("eight_gaussians", n_train=1000, n_val=300, n_test=250, batch_size=64, eval_batch_size=128)
    train = list(dm.train_dataloader())
    assert len(train) == 1000 // 64 and all(b.shape == (64, 2) for b in train)  # drop_last
    assert not torch.equal(torch.cat(train), dm.train_data[: 64 * len(train)])  # shuffled
    assert torch.equal(torch.cat(list(dm.train_dataloader())), torch.cat(train))  # seeded shuffle
    val, test = list(dm.val_dataloader()), list(dm.test_dataloader())
    assert [len(b) for b in val] == [128, 128, 44]
    assert [len(b) for b in test] == [128, 122]
    assert torch.equal(torch.cat(test), dm.test_data)  # in order, nothing dropped


def test_bad_name() -> None:
    with pytest.raises(ValueError, match="four_circles"):
        PlaneDataModule("three_circles")
