"""Flow + learned low-dimensional prior (Das et al. 2019, §3.1): log_prob is their bound (11)."""
from __future__ import annotations

import torch
from torch import nn

from funnelrun.distributions.base import standard_normal_log_prob
from funnelrun.models.flow_vae import build_flow_vae
from funnelrun.surjections.vae import VAELayer
from funnelrun.transforms.base import CompositeTransform


def _model():
    torch.manual_seed(0)
    model = build_flow_vae((3,), latent_dim=1, num_steps=2, hidden_features=8, num_blocks=1, num_bins=4,
                           vae_hidden_features=8, vae_depth=1).double().eval()
    for p in model.parameters():
        nn.init.normal_(p, std=0.1)
    return model


def test_a_bijective_flow_then_a_vae_layer():
    model = _model()
    *flow, vae = model.transform.transforms
    assert all(t.bijective for t in flow) and isinstance(vae, VAELayer)
    assert model.exact is False and model.latent_dim == 1 and model.sample(4).shape == (4, 3)


def test_log_prob_is_bound_11_term_by_term():
    """log p(eps) + log p(z | eps) - log q(eps | z) + log|det df/dx|, with z = f(x) (eq. 11)."""
    model = _model()
    *flow, vae = model.transform.transforms
    x = torch.randn(8, 3, dtype=torch.float64)
    torch.manual_seed(1)
    log_p = model.log_prob(x)
    torch.manual_seed(1)
    z, logdet = CompositeTransform(flow)(x)
    eps, log_q = vae.encoder.sample_with_log_prob(z)
    bound_11 = standard_normal_log_prob(eps) + vae.decoder.log_prob(z, eps) - log_q + logdet
    assert torch.allclose(log_p, bound_11)
