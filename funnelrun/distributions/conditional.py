"""Conditional densities p_phi(x | context), used by funnels for the dropped coordinates and by
stochastic layers (VAE encoder and decoder, VFlow's q(a | x)).

Both implement ``log_prob(x, context) -> (batch,)``, ``sample(context, temperature) -> x`` and
``sample_with_log_prob(context) -> (x, log p(x | context))`` with a reparameterised x.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from funnelrun.distributions.base import standard_normal_log_prob
from funnelrun.transforms.base import Transform
from funnelrun.transforms.nets import mlp


class ConditionalDiagonalGaussian(nn.Module):
    """Diagonal-Gaussian ansatz: an MLP maps the context to a mean and a log standard deviation
    (funnels paper A.6: three ReLU layers of 128 units for BSDS300). ``num_layers=0`` makes the
    map linear; ``dropout > 0`` puts an ``nn.Dropout`` after every hidden ReLU. The last layer
    starts at zero, so the density starts as N(0, I) for every context."""

    def __init__(
        self,
        features: int,
        context_features: int,
        hidden_features: int = 128,
        num_layers: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.net = mlp(context_features, 2 * features, hidden_features, num_layers, dropout, zero_last=True)
        self.features = features

    def _params(self, context: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = self.net(context).chunk(2, dim=-1)
        return mean, log_std

    def log_prob(self, x: Tensor, context: Tensor) -> Tensor:
        mean, log_std = self._params(context)
        eps = (x - mean) * torch.exp(-log_std)
        return standard_normal_log_prob(eps) - log_std.sum(dim=-1)

    def sample(self, context: Tensor, temperature: float = 1.0) -> Tensor:
        mean, log_std = self._params(context)
        return mean + temperature * torch.exp(log_std) * torch.randn_like(mean)

    def sample_with_log_prob(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """A reparameterised sample x ~ p(. | context) and log p(x | context), in one pass of the net."""
        mean, log_std = self._params(context)
        eps = torch.randn_like(mean)
        return mean + torch.exp(log_std) * eps, standard_normal_log_prob(eps) - log_std.sum(dim=-1)


class ConditionalFlow(nn.Module):
    """A normalizing flow over ``features`` dimensions conditioned on a context:
    log p(x | c) = log N(T(x; c); 0, I) + log|det dT/dx| (funnels paper A.5, A.6).

    ``shape`` is that of one x, ``(features,)`` unless given: images (``features`` channels, H, W)
    for the image VFlow's q(a | x) (:mod:`funnelrun.models.image_vflow`)."""

    def __init__(self, features: int, transform: Transform, shape: Optional[tuple[int, ...]] = None):
        super().__init__()
        self.features = features
        self.transform = transform
        self.shape = (features,) if shape is None else tuple(shape)

    def log_prob(self, x: Tensor, context: Tensor) -> Tensor:
        z, logdet = self.transform(x, context)
        return standard_normal_log_prob(z) + logdet

    def sample(self, context: Tensor, temperature: float = 1.0) -> Tensor:
        eps = temperature * torch.randn(context.shape[0], *self.shape, device=context.device, dtype=context.dtype)
        return self.transform.inverse(eps, context)

    def sample_with_log_prob(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """A reparameterised sample x = T^{-1}(eps; c), eps ~ N(0, I), and log p(x | c) (VFlow §3.1:
        gradients reach the flow's parameters through the inverse)."""
        x = self.sample(context)
        return x, self.log_prob(x, context)


#: what a funnel's p(x_dropped | z) is (``log_prob(x, context)``, ``sample(context, temperature)``)
Conditional = ConditionalDiagonalGaussian | ConditionalFlow
