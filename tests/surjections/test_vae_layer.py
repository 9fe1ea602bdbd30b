"""The VAE layer: contribution = log p(x | z) - log q(z | x) for the z it returns (funnels A.4)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from funnelrun.surjections.vae import VAELayer


def _random_layer(**kwargs) -> VAELayer:
    torch.manual_seed(0)
    layer = VAELayer(3, 2, hidden_features=8, **kwargs).double()
    for p in layer.parameters():
        nn.init.normal_(p, std=0.3)
    return layer


def test_contribution_is_decoder_minus_encoder_log_density_at_the_sampled_latent():
    layer = _random_layer(depth=2).eval()
    x = torch.randn(10, 3, dtype=torch.float64)
    z, contribution = layer(x)
    mean, log_std = layer.encoder.net(x).chunk(2, dim=-1)
    log_q = torch.distributions.Normal(mean, log_std.exp()).log_prob(z).sum(1)
    mean_x, log_std_x = layer.decoder.net(z).chunk(2, dim=-1)
    log_p = torch.distributions.Normal(mean_x, log_std_x.exp()).log_prob(x).sum(1)
    assert z.shape == (10, 2) and layer.out_features(3) == 2
    assert torch.allclose(contribution, log_p - log_q, atol=1e-10)


def test_latent_is_reparameterised_so_the_encoder_gets_gradients():
    layer = _random_layer(depth=1)
    z, _ = layer(torch.randn(10, 3, dtype=torch.float64))
    z.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.encoder.parameters())


def test_inverse_samples_the_decoder_at_the_temperature():
    layer = _random_layer(depth=1).eval()
    z = torch.randn(6, 2, dtype=torch.float64)
    mean_x = layer.decoder.net(z).chunk(2, dim=-1)[0]
    assert torch.allclose(layer.inverse(z, temperature=0.0), mean_x)
    assert not torch.allclose(layer.inverse(z), mean_x)


def test_dropout_modules_follow_the_depth_and_only_when_asked():
    assert sum(isinstance(m, nn.Dropout) for m in VAELayer(3, 2, depth=3, dropout=0.1).modules()) == 6
    assert not any(isinstance(m, nn.Dropout) for m in VAELayer(3, 2, depth=3).modules())


def test_is_a_bound_and_refuses_what_it_cannot_do():
    layer = VAELayer(3, 2)
    assert layer.exact is False and layer.bijective is False
    with pytest.raises(ValueError, match="latent_dim"):
        VAELayer(3, 0)
    with pytest.raises(ValueError, match="context"):
        layer(torch.randn(2, 3), context=torch.randn(2, 1))
