"""The invertible 1 x 1 convolution (Glow, Kingma & Dhariwal 2018, Sec. 3.2).

Every pixel's channel vector is multiplied by the same C x C matrix W = P L U: a fixed random
permutation P, then the LU-parameterised map of :class:`~funnelrun.transforms.linear.LULinear`
(as nflows' ``OneByOneConvolution``; it starts as the permutation). The log-det is Glow's
H * W * sum log|diag U|.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from funnelrun.transforms.linear import LULinear


class Conv1x1(LULinear):
    """Invertible 1 x 1 convolution on images (B, C, H, W); ``seed`` draws the fixed permutation."""

    permutation: Tensor
    inverse_permutation: Tensor

    def __init__(self, channels: int, seed: int = 0):
        super().__init__(channels)
        generator = torch.Generator().manual_seed(seed)
        permutation = torch.randperm(channels, generator=generator)
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        pixels = x.index_select(1, self.permutation).movedim(1, -1)  # (B, H, W, C)
        z, logdet = super().forward(pixels)
        return z.movedim(-1, 1), logdet * x[0, 0].numel()

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        pixels = super().inverse(z.movedim(1, -1).reshape(-1, z.shape[1]))
        x = pixels.reshape(z.shape[0], *z.shape[2:], z.shape[1]).movedim(-1, 1)
        return x.index_select(1, self.inverse_permutation)
