"""The VAE baseline (funnels A.4): log_prob is the one-sample ELBO of eq. (16)."""
from __future__ import annotations

import torch
from torch import nn

from funnelrun.distributions.base import standard_normal_log_prob
from funnelrun.models.vae import build_vae
from funnelrun.surjections.vae import VAELayer


def _random_vae():
    torch.manual_seed(0)
    model = build_vae((2,), latent_dim=1, hidden_features=16, depth=2).double().eval()
    for p in model.parameters():
        nn.init.normal_(p, std=0.3)
    return model


def test_builds_a_bound_with_the_configured_latent():
    model = build_vae((3,), latent_dim=2, hidden_features=8, depth=1, dropout=0.2)
    (layer,) = model.transform.transforms
    assert isinstance(layer, VAELayer) and model.exact is False
    assert model.latent_dim == 2 and model.sample(4).shape == (4, 3)
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 2


def test_log_prob_averages_to_eq16_with_the_analytic_kl():
    """E_q[log p(x|z) + log p(z) - log q(z|x)] = E_q[log p(x|z)] - KL[q(z|x) || N(0, I)] (eq. 16)."""
    model, n = _random_vae(), 20_000
    layer = model.transform.transforms[0]
    x = torch.randn(1, 2, dtype=torch.float64).expand(n, 2)
    with torch.no_grad():
        elbo = model.log_prob(x).mean()
        mean, log_std = layer.encoder.net(x[:1]).chunk(2, dim=-1)
        q = torch.distributions.Normal(mean, log_std.exp())
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum()
        z = q.sample((n,)).reshape(n, 1)
        reconstruction = layer.decoder.log_prob(x, z).mean()
    assert abs(elbo - (reconstruction - kl)) < 0.05


def test_prior_sample_at_temperature_zero_is_the_decoder_mean_at_the_origin():
    model = _random_vae()
    origin_mean = model.transform.transforms[0].decoder.net(torch.zeros(1, 1, dtype=torch.float64))[:, :2]
    assert torch.allclose(model.sample(3, temperature=0.0), origin_mean.expand(3, 2))


def test_log_prob_is_the_layer_bound_plus_the_prior():
    model = _random_vae()
    x = torch.randn(5, 2, dtype=torch.float64)
    torch.manual_seed(1)
    z, contribution = model.transform.transforms[0](x)
    torch.manual_seed(1)
    assert torch.allclose(model.log_prob(x), standard_normal_log_prob(z) + contribution)
