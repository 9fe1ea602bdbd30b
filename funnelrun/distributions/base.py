"""The base density of a flow: a standard normal over the latent."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

_LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over every dimension but the batch one."""
    return -0.5 * (z.reshape(z.shape[0], -1).pow(2).sum(dim=1) + z[0].numel() * _LOG_2PI)


class StandardNormal(nn.Module):
    """N(0, I) over a latent of shape ``shape``; ``temperature`` scales the sampling std."""

    _device_anchor: Tensor

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor) -> Tensor:
        return standard_normal_log_prob(z)

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        anchor = self._device_anchor
        return temperature * torch.randn(n, *self.shape, device=anchor.device, dtype=anchor.dtype)
