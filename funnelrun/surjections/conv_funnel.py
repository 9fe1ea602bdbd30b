"""The convolutional kernel funnel (Klein et al. 2021, "Funnels", A.7.1 eqs. 18-21, A.8).

A C -> C channel convolution with kernel width = stride = 2 and no padding maps each 2 x 2 tile of
the image x (B, C, H, W) to one pixel of z (B, C, H/2, W/2). Splitting each tile into its kept
part, the bottom-right pixel x_+ (C values), and its dropped part x_- (the other 3C values),

    z = J x_+ + W' x_- + b,

where J is the C x C matrix of the bottom-right kernel element (eq. 20, LU-parameterised) and W'
holds the other three kernel elements: the funnel of eq. 6 whose F is this affine map of x_+
conditioned on x_- (:class:`~funnelrun.surjections.funnel_mlp.ConditionalLULinear` per tile). The
contribution is

    V(x) = log p_phi(x_- | z) + (number of tiles) * log|det J|          (eq. 18 with eq. 20)

with p_phi a diagonal Gaussian whose mean and log-std for the 3C dropped values of a tile come from
an MLP (three ReLU layers of 128 units, A.8) fed the 3 x 3 neighbourhood of that tile's pixel in z
(9C inputs; zero beyond the border): a 3 x 3 convolution then 1 x 1 convolutions, shared by all tiles.
``inverse`` samples x_- of every tile from p_phi(. | z), then solves x_+ = J^-1 (z - W' x_- - b)
tile by tile in parallel (eq. 21), so forward(inverse(z)) == z (the right-inverse condition, A.1)
and the likelihood is exact.

Odd sizes (MNIST's 7 x 7 in A.9) are first zero-padded to even ones: one row at the top, one column
at the left, so that the kept bottom-right pixel of every tile is a real pixel. The padded zeros are
constants, not data: they enter z through W' (a fixed shift of the kept pixel's map, which keeps the
map invertible), and they are left out of log p_phi. Marginalising a diagonal Gaussian over them is
dropping their factors, so V(x) is the exact log-likelihood term of the unpadded x, and sampling
sets them to zero before solving for x_+. ``inverse`` crops them away.
"""
from __future__ import annotations

import math
from typing import Optional, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from funnelrun.surjections.funnel_mlp import ConditionalLULinear
from funnelrun.transforms.base import Transform
from funnelrun.transforms.nets import conditioner
from funnelrun.transforms.squeeze import squeeze, unsqueeze

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
ImageShape = tuple[int, int, int]


def to_tiles(x: Tensor) -> Tensor:
    """(B, C, 2h, 2w) -> (B, C, 4, h, w); position 2i + j is offset (i, j), 3 the bottom-right."""
    return squeeze(x).unflatten(1, (x.shape[1], 4))


def from_tiles(tiles: Tensor) -> Tensor:
    """The inverse of :func:`to_tiles`."""
    return unsqueeze(tiles.flatten(1, 2))


def gaussian_log_prob(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Elementwise log N(x; mean, exp(log_std)^2)."""
    return -0.5 * ((x - mean) * torch.exp(-log_std)).pow(2) - log_std - _LOG_SQRT_2PI


class TileGaussian(nn.Module):
    """p_phi(x_- | z): a diagonal Gaussian over each tile's 3C dropped values given the 3 x 3
    neighbourhood of its pixel in z (A.8). The last layer starts at zero: N(0, I) at start."""

    def __init__(self, channels: int, hidden_features: int = 128, num_layers: int = 3):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"p_phi needs 1+ hidden layers (the first sees the 3 x 3 neighbourhood), got {num_layers}")
        layers: list[nn.Module] = [nn.Conv2d(channels, hidden_features, kernel_size=3, padding=1), nn.ReLU()]
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(hidden_features, hidden_features, kernel_size=1), nn.ReLU()]
        last = nn.Conv2d(hidden_features, 2 * 3 * channels, kernel_size=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(cast(Tensor, last.bias))  # built with a bias
        self.net = nn.Sequential(*layers, last)
        self.channels = channels

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-std, each (B, C, 3, h, w) like the dropped tile values."""
        mean, log_std = conditioner(self.net, z).unflatten(1, (2, self.channels, 3)).unbind(1)
        return mean, log_std


class ConvFunnel(Transform):
    """The 2 x 2, stride-2 convolutional funnel on images of ``shape`` (C, H, W) -> (C, ceil(H/2), ceil(W/2))."""

    bijective = False
    real_dropped: Tensor

    def __init__(self, shape: ImageShape, hidden_features: int = 128, num_layers: int = 3):
        super().__init__()
        channels, height, width = shape
        if height * width < 2:
            raise ValueError(f"a 2 x 2 convolutional funnel drops nothing from the 1 x 1 images {tuple(shape)}")
        self.in_shape = tuple(shape)
        self.padding = (width % 2, 0, height % 2, 0)  # F.pad order: left, right, top, bottom
        self.out_shape = (channels, (height + 1) // 2, (width + 1) // 2)
        #: J (eq. 20), W' and the bias b, shared by every tile
        self.kept_map = ConditionalLULinear(channels, 3 * channels)
        self.conditional = TileGaussian(channels, hidden_features, num_layers)
        real = to_tiles(F.pad(torch.ones(1, 1, height, width), self.padding))[:, :, :3]
        self.register_buffer("real_dropped", real.bool())  # (1, 1, 3, h, w): False where padded

    def out_features(self, in_features: int) -> int:
        if in_features != math.prod(self.in_shape):
            raise ValueError(f"a convolutional funnel on images {self.in_shape} got {in_features} features")
        return math.prod(self.out_shape)

    @staticmethod
    def per_pixel(dropped: Tensor) -> Tensor:
        """Dropped tile values (B, C, 3, h, w) as a context per pixel (B, h, w, 3C)."""
        return dropped.flatten(1, 2).movedim(1, -1)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The (zero-padded) image's dropped tile values x_- (B, C, 3, h, w) and kept pixels x_+ (B, C, h, w)."""
        tiles = to_tiles(F.pad(x, self.padding))
        return tiles[:, :, :3], tiles[:, :, 3]

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        dropped, kept = self.split(x)
        z, logdet = self.kept_map(kept.movedim(1, -1), self.per_pixel(dropped))  # z = J x_+ + W' x_- + b
        z = z.movedim(-1, 1)
        mean, log_std = self.conditional(z)
        log_p = (gaussian_log_prob(dropped, mean, log_std) * self.real_dropped).flatten(1).sum(1)
        return z, log_p + logdet * z[0, 0].numel()

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        mean, log_std = self.conditional(z)
        dropped = (mean + temperature * torch.exp(log_std) * torch.randn_like(mean)) * self.real_dropped
        kept = self.kept_map.inverse(z.movedim(1, -1), self.per_pixel(dropped)).movedim(-1, 1)  # eq. 21
        x = from_tiles(torch.cat([dropped, kept.unsqueeze(2)], dim=2))
        left, _, top, _ = self.padding
        return x[:, :, top:, left:]
