"""The max-pool surjection (SurVAE): z is the 2 x 2 max, forward(inverse(z)) == z, and the density
with the index choice and half-normal non-max values is normalised."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from funnelrun.distributions.base import standard_normal_log_prob
from funnelrun.surjections.maxpool import MaxPool

pytestmark = pytest.mark.usefixtures("one_thread")


def _layer(shape, seed=0) -> MaxPool:
    torch.manual_seed(seed)
    layer = MaxPool(shape).double()
    with torch.no_grad():
        layer.log_scale.normal_(0.0, 0.3)
    return layer


@pytest.mark.parametrize("shape", [(3, 4, 4), (1, 8, 8), (2, 2, 6)])
def test_forward_is_max_pooling_and_right_inverse_holds(shape):
    layer = _layer(shape)
    x = torch.randn(4, *shape, dtype=torch.float64)
    with torch.no_grad():
        z, contribution = layer(x)
        assert torch.equal(z, F.max_pool2d(x, 2))
        assert torch.isfinite(contribution).all() and layer.out_features(math.prod(shape)) == z[0].numel()
        samples = layer.inverse(z)
        assert samples.shape == x.shape
        assert torch.equal(layer(samples)[0], z)  # forward(inverse(z)) == z


def test_contribution_counts_the_index_choice_and_three_half_normals():
    layer = MaxPool((1, 2, 2)).double()  # scale 1
    x = torch.tensor([[[[0.5, -1.0], [2.0, 1.0]]]], dtype=torch.float64)
    _, contribution = layer(x)
    gaps = torch.tensor([1.5, 3.0, 1.0], dtype=torch.float64)
    half_normal = math.log(2) - 0.5 * math.log(2 * math.pi) - 0.5 * gaps.pow(2)
    assert contribution.item() == pytest.approx(half_normal.sum().item() - math.log(4))


def test_density_with_a_standard_normal_latent_integrates_to_one():
    """Importance sampling of the 4-D density of a 1 x 2 x 2 image from a broad Gaussian."""
    layer = _layer((1, 2, 2))
    generator = torch.Generator().manual_seed(0)
    width = 3.0
    x = width * torch.randn(400_000, 4, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        z, contribution = layer(x.view(-1, 1, 2, 2))
    log_q = standard_normal_log_prob(x / width) - 4 * math.log(width)
    ratio = (standard_normal_log_prob(z) + contribution - log_q).exp()
    assert ratio.mean().item() == pytest.approx(1.0, abs=4 * ratio.std().item() / math.sqrt(len(ratio)) + 1e-3)


def test_odd_sizes_fail():
    with pytest.raises(ValueError, match="even height and width"):
        MaxPool((1, 7, 7))
