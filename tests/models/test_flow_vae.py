"""Flow + learned low-dimensional prior (Das et al. 2019, §3.1): log_prob is their bound (11)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from funnelrun.distributions.base import standard_normal_log_prob
from funnelrun.evaluation.exactness import autograd_logdet
from funnelrun.evaluation.importance import importance_weighted_log_prob
from funnelrun.models.flow_vae import build_flow_vae
from funnelrun.models.image_vae import ConvEncoder
from funnelrun.surjections.image_vae import ImageVAELayer
from funnelrun.surjections.vae import VAELayer
from funnelrun.transforms.base import CompositeTransform
from funnelrun.transforms.multiscale import MultiScale


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


# -- images (§4.1): a multi-scale RealNVP, then a convolutional VAE on its latent image ------------
IMAGE = dict(levels=2, hidden_channels=8, num_res_blocks=1, steps_per_level=1, factor_out=False, dropout=0.0)


def _image_model(shape=(1, 8, 8), latent_dim=None):
    torch.manual_seed(0)
    return build_flow_vae(shape, latent_dim=latent_dim, image=IMAGE).double().eval()


def test_on_images_a_realnvp_then_a_conv_vae_on_its_latent_image():
    model = _image_model()
    flow, unflatten, vae = model.transform.transforms
    assert isinstance(flow, MultiScale) and not flow.factored_shapes and isinstance(vae, ImageVAELayer)
    assert vae.data_shape == flow.final_shape == (4, 4, 4)  # 8 x 8 squeezed once, no factor-out
    convs = [m for m in vae.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert isinstance(vae.encoder, ConvEncoder) and [c.out_channels for c in convs] == [3, 32, 32]  # §4.1
    assert model.exact is False and model.latent_dim == 64 // 4  # null: D / 4
    assert model.sample(3).shape == (3, 1, 8, 8)


def test_on_images_log_prob_is_bound_11_and_the_flow_log_det_is_autograds():
    model = _image_model((1, 4, 4), latent_dim=3)
    flow, unflatten, vae = model.transform.transforms
    x = torch.randn(4, 1, 4, 4, dtype=torch.float64)
    torch.manual_seed(1)
    log_p = model.log_prob(x)
    torch.manual_seed(1)
    with torch.no_grad():
        y, logdet = flow(x)
        eps, bound_term = vae(unflatten(y)[0])
    assert torch.allclose(log_p, standard_normal_log_prob(eps) + bound_term + logdet)
    assert torch.allclose(logdet, autograd_logdet(flow, x), atol=1e-8)
    assert importance_weighted_log_prob(model, x, num_samples=64).mean() > log_p.mean()


def test_on_images_factor_out_and_a_latent_as_large_as_the_data_fail():
    with pytest.raises(ValueError, match="factor_out=false"):
        build_flow_vae((1, 8, 8), latent_dim=4, image=dict(IMAGE, factor_out=True))
    with pytest.raises(ValueError, match="between 1 and 63"):
        build_flow_vae((1, 8, 8), latent_dim=64, image=IMAGE)
