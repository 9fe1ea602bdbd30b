"""Flatten an image to a vector, so vector models (F-MLP, funnels paper A.9) run on images."""
from __future__ import annotations

import math
from typing import Optional

from torch import Tensor

from funnelrun.transforms.base import Transform, zero_contribution


class Flatten(Transform):
    """(B, C, H, W) -> (B, C * H * W) in row-major order; a bijection with log-det 0."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def out_features(self, in_features: int) -> int:
        if in_features != math.prod(self.shape):
            raise ValueError(f"Flatten of {self.shape} got {in_features} features")
        return in_features

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], -1), zero_contribution(x)

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        return z.reshape(z.shape[0], *self.shape)


class Unflatten(Flatten):
    """(B, prod(shape)) -> (B, *shape): :class:`Flatten`'s inverse, so an image layer can follow a flat latent."""

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], *self.shape), zero_contribution(x)

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        return z.reshape(z.shape[0], -1)
