"""The MLP funnel layer (funnels paper §3): W x = R x_+ + W' x_- + b, V = log p(x_- | z) + log|det R|."""
from __future__ import annotations

import pytest
import torch

from funnelrun.distributions.conditional import ConditionalDiagonalGaussian
from funnelrun.evaluation.exactness import logdet_max_abs_err, roundtrip_max_abs_err
from funnelrun.surjections.funnel_mlp import ConditionalLULinear, FunnelMLP


def make_layer(in_features: int, out_features: int, seed: int = 0) -> FunnelMLP:
    dropped = in_features - out_features
    layer = FunnelMLP(in_features, out_features, ConditionalDiagonalGaussian(dropped, out_features, hidden_features=16))
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0.0, 0.4)  # random, far from the identity start: every check below can fail
    return layer.double().eval()


SIZES = [(2, 1), (5, 3), (6, 1)]


@pytest.mark.parametrize("in_features,out_features", SIZES)
def test_flags_and_sizes(in_features, out_features):
    layer = make_layer(in_features, out_features)
    assert layer.exact and not layer.bijective
    assert layer.out_features(in_features) == out_features
    z, contribution = layer(torch.randn(7, in_features, dtype=torch.float64))
    assert z.shape == (7, out_features) and contribution.shape == (7,)


@pytest.mark.parametrize("in_features,out_features", SIZES)
def test_forward_is_the_affine_map_r_x_kept_plus_w_prime_x_dropped(in_features, out_features):
    """z = W x + b with W's kept columns R (invertible, |det R| reported) and dropped columns W'."""
    layer = make_layer(in_features, out_features)
    dropped = in_features - out_features
    x = torch.randn(9, in_features, dtype=torch.float64)
    weight = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[0])
    bias = layer(torch.zeros(1, in_features, dtype=torch.float64))[0][0]
    z, contribution = layer(x)
    assert torch.allclose(z, x @ weight.T + bias, atol=1e-10)
    r, w_prime = weight[:, dropped:], weight[:, :dropped]
    assert w_prime.abs().max() > 0.05 and not torch.allclose(r, torch.eye(out_features, dtype=r.dtype), atol=0.05)
    with torch.no_grad():
        log_p = layer.conditional.log_prob(x[:, :dropped], z)
    assert torch.allclose(contribution, log_p + torch.linalg.slogdet(r)[1], atol=1e-10)


@pytest.mark.parametrize("in_features,out_features", SIZES)
def test_right_inverse_condition(in_features, out_features):
    """forward(inverse(z)) == z for every sample (funnels paper A.1): the likelihood is exact."""
    layer = make_layer(in_features, out_features)
    z = torch.randn(64, out_features, dtype=torch.float64) * 2
    x = layer.inverse(z)
    assert x.shape == (64, in_features)
    assert torch.allclose(layer(x)[0], z, atol=1e-10)


def test_kept_map_round_trips_and_its_logdet_matches_autograd():
    layer = make_layer(5, 3)
    x = torch.randn(16, 5, dtype=torch.float64)
    x_dropped, x_kept = x[:, :2], x[:, 2:]
    assert roundtrip_max_abs_err(layer.transform, x_kept, x_dropped) < 1e-10
    assert logdet_max_abs_err(layer.transform, x_kept, x_dropped) < 1e-10


def test_temperature_scales_the_std_of_the_dropped_samples():
    layer = make_layer(3, 2)
    z = torch.randn(1, 2, dtype=torch.float64).expand(4000, 2)
    torch.manual_seed(0)
    mean = layer.inverse(z, temperature=0.0)
    assert torch.equal(mean, layer.inverse(z, temperature=0.0))
    spread = lambda t: (layer.inverse(z, temperature=t)[:, 0] - mean[:, 0]).std().item()  # noqa: E731
    with torch.no_grad():
        assert spread(0.5) / spread(1.0) == pytest.approx(0.5, rel=0.1)


def test_conditional_lu_linear_needs_its_context():
    with pytest.raises(ValueError, match="context"):
        ConditionalLULinear(2, 1)(torch.randn(3, 2))


@pytest.mark.parametrize("out_features", [0, 4, 5])
def test_refuses_to_keep_or_grow_the_width(out_features):
    with pytest.raises(ValueError, match="between 1 and 3.*A.7.2"):
        FunnelMLP(4, out_features, ConditionalDiagonalGaussian(1, 1))
