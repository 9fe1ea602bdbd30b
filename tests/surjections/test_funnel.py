"""The vector funnel (eq. 6) and the slice surjection."""
from __future__ import annotations

import pytest
import torch

from funnelrun.distributions.conditional import ConditionalDiagonalGaussian, ConditionalFlow
from funnelrun.evaluation.exactness import autograd_logdet, density_integral_2d
from funnelrun.models.nsf import flow_steps, spline_layer
from funnelrun.surjections import Funnel, Slice
from funnelrun.transforms.base import CompositeTransform


def _randomise(module: torch.nn.Module, std: float = 0.3, seed: int = 0) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, std)


def make_funnel(features: int, dropped: int, kind: str, conditional: str) -> Funnel:
    kept = features - dropped
    spline = dict(hidden_features=16, num_blocks=1, num_bins=5, tail_bound=3.0)
    transform = spline_layer(kind, kept, context_features=dropped, **spline)
    if conditional == "gaussian":
        cond = ConditionalDiagonalGaussian(dropped, context_features=kept, hidden_features=16)
    else:
        cond = ConditionalFlow(dropped, CompositeTransform(flow_steps(2, dropped, kind=kind, context_features=kept, **spline)))
    funnel = Funnel(features, dropped, cond, transform)
    _randomise(funnel)
    return funnel.double().eval()


CASES = [(2, 1, "autoregressive", "flow"), (5, 2, "coupling", "gaussian"), (5, 3, "autoregressive", "gaussian"), (4, 1, "coupling", "flow")]


@pytest.mark.parametrize("features,dropped,kind,conditional", CASES)
def test_sampling_shapes_and_right_inverse(features, dropped, kind, conditional):
    funnel = make_funnel(features, dropped, kind, conditional)
    z = torch.randn(64, features - dropped, dtype=torch.float64)
    x = funnel.inverse(z)
    assert x.shape == (64, features)
    # right-inverse condition (funnels paper A.1): forward(inverse(z)) == z for every sample
    z_again, contribution = funnel(x)
    assert torch.allclose(z_again, z, atol=1e-8)
    assert contribution.shape == (64,) and torch.isfinite(contribution).all()


@pytest.mark.parametrize("features,dropped,kind,conditional", CASES)
def test_contribution_is_log_p_dropped_plus_kept_logdet(features, dropped, kind, conditional):
    funnel = make_funnel(features, dropped, kind, conditional)
    x = torch.randn(8, features, dtype=torch.float64) * 2
    z, contribution = funnel(x)
    x_dropped, x_kept = x[:, :dropped], x[:, dropped:]
    logdet = autograd_logdet(funnel.transform, x_kept, x_dropped)
    with torch.no_grad():
        log_p = funnel.conditional.log_prob(x_dropped, z)
    assert torch.allclose(contribution, log_p + logdet, atol=1e-8)


def test_temperature_zero_gaussian_samples_the_mean():
    funnel = make_funnel(5, 2, "coupling", "gaussian")
    z = torch.randn(4, 3, dtype=torch.float64)
    a, b = funnel.inverse(z, temperature=0.0), funnel.inverse(z, temperature=0.0)
    assert torch.equal(a, b)


def test_slice_keeps_coordinates_and_scores_the_dropped_ones():
    cond = ConditionalDiagonalGaussian(2, context_features=3, hidden_features=8).double()
    _randomise(cond)
    layer = Slice(5, 2, cond)
    x = torch.randn(10, 5, dtype=torch.float64)
    z, contribution = layer(x)
    assert torch.equal(z, x[:, 2:])
    with torch.no_grad():
        assert torch.allclose(contribution, cond.log_prob(x[:, :2], x[:, 2:]))
    assert torch.equal(layer(layer.inverse(z))[0], z)


@pytest.mark.parametrize("dropped", [0, 3, 4])
def test_funnel_refuses_to_drop_nothing_or_everything(dropped):
    with pytest.raises(ValueError, match="must drop between 1 and 2"):
        Funnel(3, dropped, ConditionalDiagonalGaussian(1, 1))


def test_untrained_random_funnel_density_integrates_to_one():
    """2-D -> 1-D funnel with a standard normal on z: a proper density on R^2 (not only a bound)."""
    funnel = make_funnel(2, 1, "autoregressive", "flow").float()

    def log_prob(x):
        z, contribution = funnel(x)
        return -0.5 * z.pow(2).sum(1) - 0.5 * torch.log(torch.tensor(2 * torch.pi)) + contribution

    integral = density_integral_2d(log_prob, (-9.0, -9.0), (9.0, 9.0), points_per_axis=500)
    assert integral == pytest.approx(1.0, abs=0.01)
