"""Squeezing: trade spatial resolution for channels (RealNVP, Dinh et al. 2017, Sec. 3.6).

Each 2 x 2 patch of every channel becomes 4 channels: (C, H, W) -> (4C, H/2, W/2). Output channel
4c + 2i + j holds the pixel at offset (i, j) of each patch of input channel c (the layout of nflows'
``SqueezeTransform``). A permutation of the coordinates: log-det 0.
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor

from funnelrun.transforms.base import Transform, zero_contribution


def squeezed_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The (C, H, W) shape after a squeeze; raises ``ValueError`` for an odd height or width."""
    channels, height, width = shape
    if height % 2 or width % 2:
        raise ValueError(f"a squeeze needs an even height and width, got the image shape {tuple(shape)}")
    return 4 * channels, height // 2, width // 2


def squeeze(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2), channel 4c + 2i + j holding offset (i, j) of channel c."""
    batch, channels, height, width = x.shape
    squeezed_shape((channels, height, width))
    z = x.reshape(batch, channels, height // 2, 2, width // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return z.reshape(batch, 4 * channels, height // 2, width // 2)


def unsqueeze(z: Tensor) -> Tensor:
    """The inverse of :func:`squeeze`: (B, 4C, H, W) -> (B, C, 2H, 2W)."""
    batch, channels, height, width = z.shape
    x = z.reshape(batch, channels // 4, 2, 2, height, width).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(batch, channels // 4, 2 * height, 2 * width)


class Squeeze(Transform):
    """Space-to-depth with factor 2: (B, C, H, W) -> (B, 4C, H/2, W/2), log-det 0."""

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return squeeze(x), zero_contribution(x)

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        return unsqueeze(z)


class Unsqueeze(Transform):
    """Depth-to-space, the inverse of :class:`Squeeze`: (B, 4C, H, W) -> (B, C, 2H, 2W), log-det 0.
    Closes a block that runs on the squeezed image, so the next layer sees the original layout
    (the funnels authors' A.9 F-NSF: "no squeezing" between funnels)."""

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if x.shape[1] % 4:
            raise ValueError(f"an unsqueeze needs a multiple of 4 channels, got {x.shape[1]}")
        return unsqueeze(x), zero_contribution(x)

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        return squeeze(z)
