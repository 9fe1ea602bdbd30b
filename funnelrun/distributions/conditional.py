"""Conditional densities p_phi(x | context), used by funnels for the dropped coordinates.

Both implement ``log_prob(x, context) -> (batch,)`` and ``sample(context, temperature) -> x``.
"""
from __future__ import annotations


import torch
from torch import Tensor, nn

from funnelrun.distributions.base import standard_normal_log_prob
from funnelrun.transforms.base import Transform


class ConditionalDiagonalGaussian(nn.Module):
    """Diagonal-Gaussian ansatz: an MLP maps the context to a mean and a log standard deviation
    (funnels paper A.6: three ReLU layers of 128 units for BSDS300)."""

    def __init__(self, features: int, context_features: int, hidden_features: int = 128, num_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        width = context_features
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_features), nn.ReLU()]
            width = hidden_features
        last = nn.Linear(width, 2 * features)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)
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


class ConditionalFlow(nn.Module):
    """A normalizing flow over ``features`` dimensions conditioned on a context:
    log p(x | c) = log N(T(x; c); 0, I) + log|det dT/dx| (funnels paper A.5, A.6)."""

    def __init__(self, features: int, transform: Transform):
        super().__init__()
        self.features = features
        self.transform = transform

    def log_prob(self, x: Tensor, context: Tensor) -> Tensor:
        z, logdet = self.transform(x, context)
        return standard_normal_log_prob(z) + logdet

    def sample(self, context: Tensor, temperature: float = 1.0) -> Tensor:
        eps = temperature * torch.randn(context.shape[0], self.features, device=context.device, dtype=context.dtype)
        return self.transform.inverse(eps, context)


