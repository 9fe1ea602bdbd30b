"""Image VAEs (funnels A.8, A.9): ResNet and MLP architectures, a bound with a learned decoder std
per channel, and the importance-weighted estimate above it."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal, Normal

from funnelrun.distributions.base import standard_normal_log_prob
from funnelrun.evaluation.importance import importance_weighted_log_prob
from funnelrun.models.image_vae import ResNetDecoder, ResNetEncoder, build_image_vae
from funnelrun.models.vae import build_vae
from funnelrun.surjections.image_vae import ImageVAELayer

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(channels=[4, 8, 8], blocks_per_stage=1)


def _layer(model) -> ImageVAELayer:
    (layer,) = model.transform.transforms
    return layer


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 7, 5), (1, 28, 28)])
def test_resnet_vae_maps_any_image_size_to_the_latent_and_back(shape):
    torch.manual_seed(0)
    model = build_vae(shape, latent_dim=3, **SMALL)
    layer = _layer(model)
    assert isinstance(layer.encoder, ResNetEncoder) and isinstance(layer.decoder, ResNetDecoder)
    assert model.exact is False and model.latent_dim == 3
    x = torch.randn(4, *shape)
    z, contribution = layer(x)
    assert z.shape == (4, 3) and contribution.shape == (4,)
    assert torch.isfinite(model.log_prob(x)).all()
    assert model.eval().sample(5).shape == (5, *shape)
    # every stage after the first halves the resolution: 28 -> 14 -> 7
    downsampling = [m for m in layer.encoder.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert len(downsampling) == 2 * 2  # two stages, a strided conv and a strided shortcut each


def test_mlp_vae_has_table_8_parameter_counts():
    """784 -> 512 -> 512 -> 512 -> LS and back, plus one decoder std for MNIST's one channel."""
    for latent_dim, params in ((4, 1_861_401), (16, 1_879_857)):
        model = build_vae((1, 28, 28), latent_dim=latent_dim, image_arch="mlp", hidden_features=512, depth=3)
        assert sum(p.numel() for p in model.parameters()) == params


def test_resnet18_layout_has_eight_blocks_per_network():
    model = build_image_vae((3, 32, 32), latent_dim=48)
    blocks = [m for m in _layer(model).encoder if m.__class__.__name__ == "BasicBlock"]
    assert len(blocks) == 8 and isinstance(_layer(model).encoder[-1], nn.Linear)


def test_decoder_density_uses_the_learned_std_per_channel():
    torch.manual_seed(0)
    model = build_vae((3, 4, 4), latent_dim=2, **SMALL).double().eval()
    layer = _layer(model)
    with torch.no_grad():
        layer.log_std.copy_(torch.tensor([-1.0, 0.0, 0.7]))
    x, z = torch.randn(5, 3, 4, 4, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    mean = layer.decoder(z)
    by_hand = Normal(mean, torch.tensor([-1.0, 0.0, 0.7]).exp().view(1, 3, 1, 1)).log_prob(x).sum((1, 2, 3))
    assert torch.allclose(layer.decoder_log_prob(x, z), by_hand)
    # x ~ p(x | z) at temperature T: the decoder mean plus T * sigma_c noise
    z = torch.zeros(4000, 2, dtype=torch.float64)
    with torch.no_grad():
        noise = layer.inverse(z, temperature=0.5) - layer.decoder(z)
        assert torch.equal(layer.inverse(z[:3], temperature=0.0), layer.decoder(z[:3]))
    std = noise.transpose(0, 1).reshape(3, -1).std(dim=1)
    assert torch.allclose(std, 0.5 * torch.tensor([-1.0, 0.0, 0.7], dtype=torch.float64).exp(), rtol=0.03)


def test_log_prob_is_decoder_density_plus_prior_minus_encoder_density():
    torch.manual_seed(0)
    model = build_vae((1, 6, 6), latent_dim=2, **SMALL).double().eval()
    layer, x = _layer(model), torch.randn(5, 1, 6, 6, dtype=torch.float64)
    torch.manual_seed(1)
    log_p = model.log_prob(x)
    torch.manual_seed(1)
    mean, log_std = layer.encoder(x).chunk(2, dim=-1)
    z = mean + log_std.exp() * torch.randn_like(mean)
    log_q = Normal(mean, log_std.exp()).log_prob(z).sum(-1)
    assert torch.allclose(log_p, layer.decoder_log_prob(x, z) + standard_normal_log_prob(z) - log_q)


def test_importance_weighted_estimate_is_above_the_bound_on_average():
    torch.manual_seed(0)
    model = build_vae((1, 8, 8), latent_dim=4, **SMALL).eval()
    x = torch.randn(64, 1, 8, 8)
    elbo = model.log_prob(x).detach().double()
    estimate = importance_weighted_log_prob(model, x, num_samples=32)
    assert torch.isfinite(elbo).all() and torch.isfinite(estimate).all()
    assert estimate.mean() > elbo.mean()


def test_exact_posterior_gives_the_analytic_marginal():
    """z ~ N(0, 1), x | z ~ N(W z + B, sigma^2 I) on a (1, 1, 2) image with a linear MLP VAE whose
    encoder is the exact posterior: every importance-weighted estimate is log p(x) exactly."""
    w, b, sigma = torch.tensor([[1.0], [-0.5]], dtype=torch.float64), torch.tensor([0.3, -0.2]), 0.5
    model = build_vae((1, 1, 2), latent_dim=1, image_arch="mlp", depth=0).double().eval()
    layer = _layer(model)
    s2 = 1.0 / (1.0 + (w**2).sum() / sigma**2)
    with torch.no_grad():
        layer.decoder[0].weight.copy_(w)
        layer.decoder[0].bias.copy_(b)
        layer.log_std.fill_(math.log(sigma))
        layer.encoder[1].weight.copy_(torch.cat([s2 * w.T / sigma**2, torch.zeros(1, 2, dtype=torch.float64)]))
        layer.encoder[1].bias.copy_(torch.stack([-s2 * (w.T @ b.double())[0] / sigma**2, 0.5 * torch.log(s2)]))
    marginal = MultivariateNormal(b.double(), w @ w.T + sigma**2 * torch.eye(2, dtype=torch.float64))
    x = marginal.sample((32,))
    for s in (1, 5):
        estimate = importance_weighted_log_prob(model, x.view(32, 1, 1, 2), num_samples=s)
        assert torch.allclose(estimate, marginal.log_prob(x), atol=1e-9)


@pytest.mark.parametrize("arch", ["resnet", "mlp"])
def test_gradients_reach_every_parameter(arch):
    torch.manual_seed(0)
    model = build_vae((2, 8, 8), latent_dim=3, image_arch=arch, hidden_features=16, depth=2, dropout=0.1, **SMALL)
    (-model.log_prob(torch.randn(8, 2, 8, 8)).mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("bad", [dict(channels=[]), dict(channels=[4, 0]), dict(blocks_per_stage=0)])
def test_bad_resnet_layouts_are_refused_with_the_key(bad):
    with pytest.raises(ValueError, match="model.channels"):
        build_vae((1, 8, 8), latent_dim=2, **{**SMALL, **bad})
