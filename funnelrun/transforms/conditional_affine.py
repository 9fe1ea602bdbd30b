"""A context-dependent elementwise affine map: the conditional Gaussian "prior" of a conditional
flow (Glow's learned, class-conditional top prior, Kingma & Dhariwal 2018, §3, used as the last
layer of VFlow's q(a | x), Chen et al. 2020, §3.1)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from funnelrun.transforms.base import Transform
from funnelrun.transforms.nets import conditioner, mlp


class ConditionalAffine(Transform):
    """z = (x - mu(c)) * exp(-log_sigma(c)), log|det dz/dx| = -sum log_sigma(c), with mu and
    log_sigma from an MLP of the context ``c`` (``num_layers`` ReLU layers of ``hidden_features``).
    After a standard normal this is N(x; mu(c), sigma(c)^2). The last layer starts at zero, so the
    map starts as the identity for every context."""

    def __init__(self, features: int, context_features: int, hidden_features: int = 64, num_layers: int = 2):
        super().__init__()
        self.net = mlp(context_features, 2 * features, hidden_features, num_layers, zero_last=True)

    def _params(self, context: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        if context is None:
            raise ValueError("ConditionalAffine needs a context")
        mean, log_sigma = conditioner(self.net, context).chunk(2, dim=-1)
        return mean, log_sigma

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        mean, log_sigma = self._params(context)
        return (x - mean) * torch.exp(-log_sigma), -log_sigma.sum(dim=-1)

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        mean, log_sigma = self._params(context)
        return mean + z * torch.exp(log_sigma)
