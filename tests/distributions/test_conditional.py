"""Conditional densities used for the dropped coordinates of funnels."""
from __future__ import annotations

import pytest
import torch

from funnelrun.distributions import ConditionalDiagonalGaussian, ConditionalFlow, StandardNormal
from funnelrun.models.nsf import flow_steps
from funnelrun.transforms.base import CompositeTransform


def test_standard_normal_matches_torch():
    base = StandardNormal((3,))
    z = torch.randn(7, 3)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    assert torch.allclose(base.log_prob(z), expected, atol=1e-6)
    assert base.sample(5, temperature=0.0).abs().max() == 0


def test_diagonal_gaussian_matches_torch_normal():
    torch.manual_seed(0)
    cond = ConditionalDiagonalGaussian(2, context_features=3, hidden_features=8)
    for p in cond.parameters():
        torch.nn.init.normal_(p, std=0.3)
    c, x = torch.randn(6, 3), torch.randn(6, 2)
    mean, log_std = cond.net(c).chunk(2, dim=-1)
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(x).sum(1)
    assert torch.allclose(cond.log_prob(x, c), expected, atol=1e-5)
    assert cond.sample(c).shape == (6, 2)


def test_conditional_flow_is_normalised_for_each_context():
    torch.manual_seed(0)
    flow = ConditionalFlow(
        1, CompositeTransform(flow_steps(2, 1, kind="autoregressive", context_features=2, hidden_features=8,
                                         num_blocks=1, num_bins=6, tail_bound=3.0))
    ).double()
    for p in flow.parameters():
        torch.nn.init.normal_(p, std=0.3)
    grid = torch.linspace(-12, 12, 20001, dtype=torch.float64)[:, None]
    for context in torch.randn(3, 2, dtype=torch.float64):
        with torch.no_grad():
            density = flow.log_prob(grid, context.expand(grid.shape[0], 2)).exp()
        assert torch.trapezoid(density, grid[:, 0]).item() == pytest.approx(1.0, abs=1e-3)
