"""The image VAEs of the funnels paper: one :class:`~funnelrun.surjections.image_vae.ImageVAELayer`
(Gaussian encoder, Gaussian decoder with a learned std per channel) and a N(0, I) prior.

Three architectures (``model.image_arch``):

- ``resnet`` (A.8, Table 2): a ResNet18-style encoder [He et al. 2016] — a 3x3 stem, then stages of
  residual basic blocks (two 3x3 convolutions with batch norm; the first block of every stage after
  the first halves the resolution with stride 2) — and a single linear layer to the latent's mean
  and log std. The decoder mirrors it: a linear layer from the latent, the same stages in reverse
  with transposed convolutions doubling the resolution, and a 3x3 convolution to the image mean.
  ``channels=(64, 128, 256, 512)``, ``blocks_per_stage=2`` is ResNet18's layout.
- ``mlp`` (A.9, Table 4): encoder and decoder of the same structure on the flattened image,
  D -> hidden -> ... -> latent with ReLUs (784 -> 512 -> 512 -> 512 -> LS for MNIST:
  ``hidden_features=512, depth=3``; with the per-channel std this is Table 8's 1,861,401
  parameters for LS = 4).
- ``conv`` (Das et al. 2019, §4.1, the VAE prior of a flow-VAE): 3 x 3 convolutions with ``channels``
  filters (3, 32, 32 there; every one after the first at stride 2) and a linear layer to the latent;
  the decoder mirrors it with transposed convolutions.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, cast

from torch import Tensor, nn

from funnelrun.models.flow import Flow
from funnelrun.options import ImageArch
from funnelrun.surjections.image_vae import ImageVAELayer
from funnelrun.transforms.nets import mlp


def _downsampled(size: int) -> int:
    """Output size of a 3x3 (padding 1) or 1x1 (padding 0) convolution with stride 2."""
    return (size - 1) // 2 + 1


class BasicBlock(nn.Module):
    """ResNet's basic block: ReLU(x' + BN(conv(Dropout(ReLU(BN(conv(x))))))), x' the (projected) input.

    ``stride=2`` halves the resolution (encoder); ``upsample_to=(h, w)`` doubles it to exactly
    (h, w) with transposed convolutions (decoder)."""

    def __init__(
        self, in_ch: int, out_ch: int, stride: int = 1, upsample_to: tuple[int, int] | None = None, dropout: float = 0.0
    ):
        super().__init__()
        self.upsample_to = upsample_to
        if upsample_to is not None:
            self.conv_0 = nn.Conv2d(in_ch, in_ch, 3, padding=1, bias=False)
            self.conv_1: nn.Module = nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, bias=False)
            self.shortcut: nn.Module = nn.ConvTranspose2d(in_ch, out_ch, 1, stride=2, bias=False)
            self.norm_0 = nn.BatchNorm2d(in_ch)
        else:
            self.conv_0 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
            self.conv_1 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
            self.norm_0 = nn.BatchNorm2d(out_ch)
            changes = stride != 1 or in_ch != out_ch
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False) if changes else nn.Identity()
        self.norm_1 = nn.BatchNorm2d(out_ch)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def _up(self, layer: nn.Module, h: Tensor) -> Tensor:
        return layer(h, output_size=self.upsample_to) if self.upsample_to is not None else layer(h)

    def forward(self, x: Tensor) -> Tensor:
        h = self.dropout(self.norm_0(self.conv_0(x)).relu())
        h = self.norm_1(self._up(self.conv_1, h))
        return (h + self._up(self.shortcut, x)).relu()


def _stage_sizes(data_shape: tuple[int, int, int], stages: int) -> list[tuple[int, int]]:
    """(H, W) after each encoder stage: the first keeps the resolution, every later one halves it."""
    sizes = [tuple(data_shape[1:])]
    for _ in range(stages - 1):
        sizes.append(tuple(_downsampled(s) for s in sizes[-1]))
    return cast(list[tuple[int, int]], sizes)


class ResNetEncoder(nn.Sequential):
    """Image (B, C, H, W) -> (B, 2 * latent_dim): stem, residual stages, one linear layer."""

    def __init__(
        self, data_shape: tuple[int, int, int], latent_dim: int, channels: Sequence[int], blocks_per_stage: int,
        dropout: float,
    ):
        sizes = _stage_sizes(data_shape, len(channels))
        layers: list[nn.Module] = [
            nn.Conv2d(data_shape[0], channels[0], 3, padding=1, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU()
        ]
        width = channels[0]
        for i, out_ch in enumerate(channels):
            for b in range(blocks_per_stage):
                stride = 2 if i > 0 and b == 0 else 1
                layers.append(BasicBlock(width, out_ch, stride=stride, dropout=dropout))
                width = out_ch
        h, w = sizes[-1]
        super().__init__(*layers, nn.Flatten(), nn.Linear(width * h * w, 2 * latent_dim))


class ResNetDecoder(nn.Sequential):
    """Latent (B, latent_dim) -> image mean (B, C, H, W): the encoder's mirror image."""

    def __init__(
        self, data_shape: tuple[int, int, int], latent_dim: int, channels: Sequence[int], blocks_per_stage: int,
        dropout: float,
    ):
        sizes = _stage_sizes(data_shape, len(channels))
        h, w = sizes[-1]
        layers: list[nn.Module] = [nn.Linear(latent_dim, channels[-1] * h * w), nn.Unflatten(1, (channels[-1], h, w)),
                                   nn.ReLU()]
        for i in reversed(range(len(channels))):
            for b in range(blocks_per_stage):
                last = b == blocks_per_stage - 1
                if last and i > 0:
                    layers.append(BasicBlock(channels[i], channels[i - 1], upsample_to=sizes[i - 1], dropout=dropout))
                else:
                    layers.append(BasicBlock(channels[i], channels[i], dropout=dropout))
        super().__init__(*layers, nn.Conv2d(channels[0], data_shape[0], 3, padding=1))


def _check_channels(channels: Sequence[int]) -> None:
    if len(channels) < 1 or min(channels) < 1:
        raise ValueError(
            f"a convolutional VAE needs at least one layer and positive filter counts, got {list(channels)}"
        )


class ConvEncoder(nn.Sequential):
    """Image (B, C, H, W) -> (B, 2 * latent_dim): 3 x 3 convolutions with ``channels`` filters and ReLUs
    (the first at stride 1, the others at stride 2), then one linear layer (Das et al. 2019, §4.1:
    filters 3, 32, 32, then a fully-connected layer to the latent size)."""

    def __init__(self, data_shape: tuple[int, int, int], latent_dim: int, channels: Sequence[int]):
        sizes = _stage_sizes(data_shape, len(channels))
        layers: list[nn.Module] = []
        width = data_shape[0]
        for i, out_ch in enumerate(channels):
            layers += [nn.Conv2d(width, out_ch, 3, stride=1 if i == 0 else 2, padding=1), nn.ReLU()]
            width = out_ch
        h, w = sizes[-1]
        super().__init__(*layers, nn.Flatten(), nn.Linear(width * h * w, 2 * latent_dim))


class ConvDecoder(nn.Sequential):
    """Latent (B, latent_dim) -> image mean (B, C, H, W): :class:`ConvEncoder` mirrored, a linear layer,
    then 3 x 3 transposed convolutions ("deconvolutional layers", §4.1) doubling the resolution back,
    and a 3 x 3 convolution to the image's channels."""

    def __init__(self, data_shape: tuple[int, int, int], latent_dim: int, channels: Sequence[int]):
        sizes = _stage_sizes(data_shape, len(channels))
        h, w = sizes[-1]
        layers: list[nn.Module] = [nn.Linear(latent_dim, channels[-1] * h * w),
                                   nn.Unflatten(1, (channels[-1], h, w)), nn.ReLU()]
        for i in reversed(range(1, len(channels))):
            layers += [_Upsample(channels[i], channels[i - 1], sizes[i - 1]), nn.ReLU()]
        super().__init__(*layers, nn.Conv2d(channels[0], data_shape[0], 3, padding=1))


class _Upsample(nn.ConvTranspose2d):
    """A stride-2 3 x 3 transposed convolution to exactly ``size`` (H, W)."""

    def __init__(self, in_ch: int, out_ch: int, size: tuple[int, int]):
        super().__init__(in_ch, out_ch, 3, stride=2, padding=1)
        self.size = size

    def forward(self, x: Tensor, output_size: Optional[list[int]] = None) -> Tensor:
        return super().forward(x, output_size=list(self.size))


def build_image_vae(
    data_shape: tuple[int, int, int],
    *,
    latent_dim: int,
    image_arch: ImageArch = ImageArch.resnet,
    channels: Sequence[int] = (64, 128, 256, 512),
    blocks_per_stage: int = 2,
    hidden_features: int = 512,
    depth: int = 3,
    dropout: float = 0.0,
) -> Flow:
    """A VAE on images of ``data_shape == (C, H, W)`` with a ``latent_dim``-dimensional N(0, I) prior.

    ``resnet`` uses ``channels`` (one residual stage per entry) and ``blocks_per_stage``; ``mlp``
    uses ``hidden_features`` and ``depth`` (ReLU layers of the encoder and of the decoder).
    ``dropout > 0`` follows every hidden ReLU (MLP) or the first convolution of every block (ResNet).
    """
    data_shape = cast(tuple[int, int, int], tuple(data_shape))
    if ImageArch(image_arch) is ImageArch.conv:
        _check_channels(channels)
        encoder: nn.Module = ConvEncoder(data_shape, latent_dim, channels)
        decoder: nn.Module = ConvDecoder(data_shape, latent_dim, channels)
    elif ImageArch(image_arch) is ImageArch.resnet:
        if len(channels) < 1 or min(channels) < 1 or blocks_per_stage < 1:
            raise ValueError(
                f"a ResNet VAE needs at least one stage, positive channel counts and blocks_per_stage >= 1; got "
                f"model.channels={list(channels)}, model.blocks_per_stage={blocks_per_stage}"
            )
        encoder = ResNetEncoder(data_shape, latent_dim, channels, blocks_per_stage, dropout)
        decoder = ResNetDecoder(data_shape, latent_dim, channels, blocks_per_stage, dropout)
    else:
        features = math.prod(data_shape)
        encoder = nn.Sequential(nn.Flatten(), *mlp(features, 2 * latent_dim, hidden_features, depth, dropout))
        decoder = nn.Sequential(*mlp(latent_dim, features, hidden_features, depth, dropout),
                                nn.Unflatten(1, data_shape))
    return Flow([ImageVAELayer(encoder, decoder, data_shape, latent_dim)], data_shape)
