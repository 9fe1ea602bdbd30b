"""Models with a known log-likelihood, for tests of bounds and their estimates."""
from __future__ import annotations

import math

import torch
from torch.distributions import MultivariateNormal

from funnelrun.models.flow import Flow
from funnelrun.models.vae import build_vae

W = torch.tensor([[1.0], [-0.5]], dtype=torch.float64)  # decoder mean W z + B
B = torch.tensor([0.3, -0.2], dtype=torch.float64)
SIGMA = 0.5  # decoder std


def linear_gaussian_vae(mean_shift: float = 0.0, log_std_shift: float = 0.0) -> tuple[Flow, MultivariateNormal]:
    """z ~ N(0, 1), x | z ~ N(W z + B, SIGMA^2 I): a VAE with linear encoder and decoder (depth 0)
    whose encoder is the exact posterior N(m(x), s^2), s^2 = 1 / (1 + |W|^2 / SIGMA^2),
    m(x) = s^2 W^T (x - B) / SIGMA^2, moved by the shifts; returns it and the marginal of x."""
    model = build_vae((2,), latent_dim=1, depth=0).double().eval()
    layer = model.transform.transforms[0]
    s2 = 1.0 / (1.0 + (W**2).sum() / SIGMA**2)
    with torch.no_grad():
        decoder, encoder = layer.decoder.net[0], layer.encoder.net[0]
        decoder.weight.copy_(torch.cat([W, torch.zeros_like(W)]))
        decoder.bias.copy_(torch.cat([B, torch.full((2,), math.log(SIGMA), dtype=torch.float64)]))
        encoder.weight.copy_(torch.cat([s2 * W.T / SIGMA**2, torch.zeros(1, 2, dtype=torch.float64)]))
        encoder.bias.copy_(
            torch.stack([-s2 * (W.T @ B)[0] / SIGMA**2 + mean_shift, 0.5 * torch.log(s2) + log_std_shift])
        )
    marginal = MultivariateNormal(B, W @ W.T + SIGMA**2 * torch.eye(2, dtype=torch.float64))
    return model, marginal
