"""The generative funnel (funnels paper A.2, eq. 9): a ~ q(a | x), z_{1:n} = G^{-1}(x; a); the
contribution log|det dG^{-1}/dx| - log q(a | x) (a bound), inverse(forward(x)) == x, and the
importance-weighted density of a model built on it integrates to one."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from funnelrun.distributions.conditional import ConditionalFlow
from funnelrun.evaluation.exactness import autograd_logdet, density_integral_2d
from funnelrun.evaluation.importance import importance_weighted_log_prob
from funnelrun.models.nsf import flow_steps
from funnelrun.models.vflow import build_vflow
from funnelrun.surjections.generative_funnel import GenerativeFunnel
from funnelrun.transforms.base import CompositeTransform

pytestmark = pytest.mark.usefixtures("one_thread")
NET = dict(hidden_features=8, num_blocks=1, num_bins=4, tail_bound=3.0)


def _layer(features: int = 3, augment_dim: int = 2, kind: str = "coupling") -> GenerativeFunnel:
    torch.manual_seed(0)
    q = ConditionalFlow(augment_dim, CompositeTransform(
        flow_steps(1, augment_dim, kind="affine", context_features=features, **NET)))
    g_inverse = CompositeTransform(flow_steps(2, features, kind=kind, context_features=augment_dim, **NET))
    layer = GenerativeFunnel(features, augment_dim, q, g_inverse).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer


@pytest.mark.parametrize("kind", ["coupling", "affine", "autoregressive"])
def test_inverse_of_forward_is_the_data_and_the_sample_is_kept(kind):
    layer = _layer(kind=kind)
    x = torch.randn(6, 3, dtype=torch.float64)
    with torch.no_grad():
        z, contribution = layer(x)
        z_other, _ = layer(x)
    assert z.shape == (6, 5) and layer.out_features(3) == 5 and layer.exact is False
    assert not torch.allclose(z[:, 3:], z_other[:, 3:])  # a fresh a ~ q(a | x) on every call
    assert torch.allclose(layer.inverse(z), x, atol=1e-10)  # the generative direction is deterministic
    assert torch.isfinite(contribution).all()


def test_contribution_is_g_inverse_log_det_given_a_minus_log_q():
    layer = _layer()
    x = torch.randn(5, 3, dtype=torch.float64)
    torch.manual_seed(1)
    with torch.no_grad():
        z, contribution = layer(x)
    a = z[:, 3:]
    with torch.no_grad():
        log_q = layer.q.log_prob(a, x)
        assert torch.allclose(layer.transform(x, a)[0], z[:, :3], atol=1e-12)
    expected = autograd_logdet(layer.transform, x, a) - log_q
    assert torch.allclose(contribution, expected, atol=1e-8)


def test_vflow_with_a_generative_funnel_is_a_normalised_bound_model():
    """model=vflow model.augment_layer=generative_funnel on 2-D data: the layer is there, log_prob is a
    bound, and the importance-weighted density integrates to ~1 over a box holding its mass."""
    torch.manual_seed(0)
    model = build_vflow((2,), augment_dim=2, num_steps=1, hidden_features=8, num_blocks=1,
                        augment_layer="generative_funnel").double().eval()
    assert type(model.transform.transforms[0]).__name__ == "GenerativeFunnel" and model.exact is False
    x = torch.randn(64, 2, dtype=torch.float64)
    elbo = model.log_prob(x)
    iwae = importance_weighted_log_prob(model, x, num_samples=64)
    assert iwae.mean() > elbo.mean()  # IWBO tightens the one-sample bound
    integral = density_integral_2d(lambda g: importance_weighted_log_prob(model, g.double(), 32, chunk_size=32),
                                   (-6.0, -6.0), (6.0, 6.0), points_per_axis=60)
    assert integral == pytest.approx(1.0, abs=0.05)


def test_generative_funnel_needs_vectors_and_a_sampled_dimension():
    with pytest.raises(ValueError, match="generative_funnel needs vector data"):
        build_vflow((1, 4, 4), augment_layer="generative_funnel")
    with pytest.raises(ValueError, match="generative_funnel needs vector data"):
        build_vflow((2,), augment_dim=0, augment_layer="generative_funnel")
    with pytest.raises(ValueError, match="at least one sampled dimension"):
        GenerativeFunnel(2, 0, nn.Identity(), CompositeTransform([]))
