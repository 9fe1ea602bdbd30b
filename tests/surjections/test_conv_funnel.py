"""The convolutional funnel (funnels paper A.7.1, A.8): it is the 2 x 2 stride-2 convolution, it
satisfies the right-inverse condition, and its density is normalised (padded sizes included)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from funnelrun.distributions.base import standard_normal_log_prob
from funnelrun.surjections.conv_funnel import ConvFunnel

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomised(shape, std=0.3, seed=0) -> ConvFunnel:
    torch.manual_seed(seed)
    funnel = ConvFunnel(shape, hidden_features=8).double()
    with torch.no_grad():
        for p in funnel.parameters():
            p.add_(torch.randn_like(p) * std)
    return funnel


def _kernel(funnel: ConvFunnel) -> tuple[torch.Tensor, torch.Tensor]:
    """The (C, C, 2, 2) kernel and bias: J (eq. 20) bottom-right, W' elsewhere."""
    channels = funnel.in_shape[0]
    lower, upper, _ = funnel.kept_map._factors()
    others = funnel.kept_map.context_weight.view(channels, channels, 3)
    kernel = torch.cat([others, (lower @ upper).unsqueeze(-1)], dim=-1).view(channels, channels, 2, 2)
    return kernel, funnel.kept_map.bias


@pytest.mark.parametrize("shape", [(3, 4, 4), (1, 8, 8), (2, 5, 6), (1, 7, 7)])
def test_is_a_stride_two_convolution_of_the_zero_padded_image(shape):
    funnel = _randomised(shape)
    x = torch.randn(3, *shape, dtype=torch.float64)
    with torch.no_grad():
        z, _ = funnel(x)
        kernel, bias = _kernel(funnel)
        padded = F.pad(x, (shape[2] % 2, 0, shape[1] % 2, 0))  # one zero row on top, column on the left
        assert torch.allclose(z, F.conv2d(padded, kernel, bias, stride=2), atol=1e-12)
    assert z.shape == (3, *funnel.out_shape)
    assert funnel.out_features(math.prod(shape)) == math.prod(funnel.out_shape)


@pytest.mark.parametrize("shape", [(3, 4, 4), (1, 8, 8), (2, 5, 6), (1, 7, 7)])
def test_right_inverse_condition(shape):
    funnel = _randomised(shape)
    z = torch.randn(16, *funnel.out_shape, dtype=torch.float64)
    with torch.no_grad():
        x = funnel.inverse(z)
        z_again, contribution = funnel(x)
    assert x.shape == (16, *shape)
    assert torch.allclose(z_again, z, atol=1e-10)  # forward(inverse(z)) == z (A.1)
    assert torch.isfinite(contribution).all()


def test_temperature_zero_samples_the_mean():
    funnel = _randomised((2, 4, 4))
    z = torch.randn(3, 2, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(funnel.inverse(z, temperature=0.0), funnel.inverse(z, temperature=0.0))


def _grid_integral(log_prob, dim: int, half_width: float, points: int, chunk: int = 100_000) -> float:
    """Midpoint-rule integral of exp(log_prob) over the cube [-half_width, half_width]^dim."""
    edges = torch.linspace(-half_width, half_width, points + 1, dtype=torch.float64)
    mids = (edges[1:] + edges[:-1]) / 2
    grid = torch.cartesian_prod(*[mids] * dim).reshape(-1, dim)
    total = sum(log_prob(grid[i : i + chunk]).exp().sum().item() for i in range(0, len(grid), chunk))
    return total * (edges[1] - edges[0]).item() ** dim


@pytest.mark.parametrize(
    "shape,points",
    [((1, 1, 2), 200), ((1, 1, 3), 64), ((1, 2, 2), 26)],
    ids=["2-D, padded row", "3-D, padded row and column", "4-D"],
)
def test_density_with_a_standard_normal_latent_integrates_to_one(shape, points):
    """p(x) = N(z) p_phi(x_- | z) |det J|^tiles is a normalised density on R^(C H W), also where padded
    zeros enter the kept pixel's map but not p_phi (A.9's padding, made exact)."""
    funnel = _randomised(shape, std=0.2)

    @torch.no_grad()
    def log_prob(flat):
        z, contribution = funnel(flat.view(-1, *shape))
        return standard_normal_log_prob(z) + contribution

    assert _grid_integral(log_prob, math.prod(shape), 7.0, points) == pytest.approx(1.0, abs=5e-3)


def test_too_small_an_image_fails():
    with pytest.raises(ValueError, match="drops nothing"):
        ConvFunnel((3, 1, 1))
