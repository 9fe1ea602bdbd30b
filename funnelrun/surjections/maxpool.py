"""The max-pool surjection (Nielsen et al. 2020, "SurVAE Flows", Sec. 4.2), a funnel alternative.

Each 2 x 2 tile of every channel of x (B, C, H, W) keeps only its maximum: z (B, C, H/2, W/2).
The generative direction picks which of the 4 positions holds the maximum uniformly and puts the
other three values below it, at max - g with g half-normal of a learned per-channel scale. Every x
(without ties, which have probability 0) comes from exactly one index choice, so the exact
log-likelihood contribution is

    V(x) = sum over tiles and channels [ log p(non-max values | max) - log 4 ],

log p(non-max values | max) = sum of the three half-normal log-densities of max - value.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from funnelrun.surjections.conv_funnel import from_tiles, to_tiles
from funnelrun.transforms.base import Transform

_LOG_HALF_NORMAL_CONSTANT = math.log(2.0) - 0.5 * math.log(2 * math.pi)


class MaxPool(Transform):
    """2 x 2 max pooling on images of ``shape`` (C, H, W) with even H and W -> (C, H/2, W/2)."""

    bijective = False

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        channels, height, width = shape
        if height % 2 or width % 2:
            raise ValueError(f"the max-pool surjection needs an even height and width, got {tuple(shape)}")
        self.in_shape = tuple(shape)
        self.out_shape = (channels, height // 2, width // 2)
        #: log of the half-normal scale of (max - non-max value), per channel
        self.log_scale = nn.Parameter(torch.zeros(channels))

    def out_features(self, in_features: int) -> int:
        if in_features != math.prod(self.in_shape):
            raise ValueError(f"a max-pool surjection on images {self.in_shape} got {in_features} features")
        return math.prod(self.out_shape)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        tiles = to_tiles(x)  # (B, C, 4, h, w)
        z, index = tiles.max(dim=2)
        log_scale = self.log_scale.view(1, -1, 1, 1, 1)
        gaps = (z.unsqueeze(2) - tiles) * torch.exp(-log_scale)
        log_p = _LOG_HALF_NORMAL_CONSTANT - log_scale - 0.5 * gaps.pow(2)
        non_max = torch.ones_like(tiles).scatter_(2, index.unsqueeze(2), 0.0)
        log_p = (log_p * non_max).flatten(1).sum(1) - z[0].numel() * math.log(4.0)
        return z, log_p

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        batch, channels, height, width = z.shape
        scale = temperature * torch.exp(self.log_scale).view(1, -1, 1, 1, 1)
        gaps = scale * torch.randn(batch, channels, 4, height, width, dtype=z.dtype, device=z.device).abs()
        index = torch.randint(4, (batch, channels, 1, height, width), device=z.device)
        gaps = gaps.scatter(2, index, 0.0)
        return from_tiles(z.unsqueeze(2) - gaps)
