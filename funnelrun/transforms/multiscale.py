"""The multi-scale architecture (RealNVP, Dinh et al. 2017, Sec. 3.6; Glow, Kingma & Dhariwal 2018).

Levels of image layers run one after the other. With ``factor_out``, after every level but the last
the first C // 2 channels leave the flow and go straight to the base distribution (a slice with a
standard-normal p_phi, funnels paper A.8); without it every dimension runs through every level and
only squeezing trades resolution for depth (the funnels paper's CIFAR-10 models, A.8). The output
is one flat latent (B, latent_dim): the factored-out parts, flattened in order, then the flattened
output of the last level, so :class:`~funnelrun.models.flow.Flow` puts its standard normal on it
unchanged. ``inverse`` splits the flat latent back.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, cast

import torch
from torch import Tensor, nn

from funnelrun.transforms.base import Transform

ImageShape = tuple[int, int, int]
#: builds level ``index`` for inputs of a shape; returns the level and the shape it outputs
LevelBuilder = Callable[[ImageShape, int], tuple[Transform, ImageShape]]


class MultiScale(Transform):
    """``num_levels`` levels from ``make_level`` on images of ``shape``, to a flat latent."""

    def __init__(self, shape: ImageShape, num_levels: int, make_level: LevelBuilder, factor_out: bool):
        super().__init__()
        if num_levels < 1:
            raise ValueError(f"a multi-scale flow needs 1+ levels, got {num_levels}")
        self.in_shape = tuple(shape)
        levels: list[Transform] = []
        self.factored_shapes: list[ImageShape] = []
        for index in range(num_levels):
            level, shape = make_level(shape, index)
            levels.append(level)
            if factor_out and index < num_levels - 1:
                channels, height, width = shape
                if channels < 2:
                    raise ValueError(f"level {index} outputs {tuple(shape)}: one channel cannot be factored out")
                self.factored_shapes.append((channels // 2, height, width))
                shape = (channels - channels // 2, height, width)
        self.final_shape = tuple(shape)
        self.levels = nn.ModuleList(levels)

    @property
    def exact(self) -> bool:  # type: ignore[override]
        return all(level.exact for level in self.levels)

    @property
    def bijective(self) -> bool:  # type: ignore[override]
        return all(level.bijective for level in self.levels)

    def _part_sizes(self) -> list[int]:
        return [math.prod(s) for s in self.factored_shapes] + [math.prod(self.final_shape)]

    def out_features(self, in_features: int) -> int:
        if in_features != math.prod(self.in_shape):
            raise ValueError(f"a multi-scale flow on images {self.in_shape} got {in_features} features")
        return sum(self._part_sizes())

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])
        parts = []
        for index, level in enumerate(self.levels):
            x, contribution = level(x, context)
            total = total + contribution
            if index < len(self.factored_shapes):
                factored = self.factored_shapes[index][0]
                parts.append(x[:, :factored].flatten(1))
                x = x[:, factored:]
        parts.append(x.flatten(1))
        return torch.cat(parts, dim=1), total

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        parts = z.split(self._part_sizes(), dim=1)
        x = parts[-1].reshape(z.shape[0], *self.final_shape)
        for index in reversed(range(len(self.levels))):
            if index < len(self.factored_shapes):
                factored = parts[index].reshape(z.shape[0], *self.factored_shapes[index])
                x = torch.cat([factored, x], dim=1)
            x = cast(Transform, self.levels[index]).inverse(x, context, temperature)
        return x
