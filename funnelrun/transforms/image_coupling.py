"""Coupling layers on images (B, C, H, W), conditioned by a residual convolutional network.

A mask splits the image into an identity part and a transformed part; the transformed elements go
through an elementwise map whose parameters the conditioner computes from the identity part:

- ``channel`` masks split the channels (NSF, Durkan et al. 2019, Sec. 5.3; Glow; funnels paper A.8):
  ``parity=True`` transforms the first ceil(C/2) channels, ``False`` the others;
- ``checkerboard`` masks split the pixels by (row + column) parity (RealNVP, Dinh et al. 2017, Sec.
  3.4), so that single-channel images can be coupled too;
- ``transformed_channels`` (channel masks only) names the transformed channels outright, the others
  being the identity part (the image coupling funnel's 3C-identity, C-transformed split).

The elementwise maps are those of the vector layers in :mod:`funnelrun.transforms.coupling`:
rational-quadratic splines (NSF Sec. 3.1) or Glow's affine map. The conditioner's last layer starts
at zero weights and identity biases, so each layer starts as the identity. With
``context_channels`` the conditioner also sees a context image (B, context_channels, H, W) stacked
on its input: a conditional coupling (VFlow's q(a | x), :mod:`funnelrun.models.image_vflow`).
"""
from __future__ import annotations

from enum import Enum
from typing import Optional, Sequence, cast

import torch
from torch import Tensor

from funnelrun.transforms.base import Transform, sum_except_batch
from funnelrun.transforms.coupling import AffineCoupling, RQSplineCoupling
from funnelrun.transforms.nets import ConvResidualNet, conditioner
from funnelrun.transforms.splines import identity_spline_params


class MaskKind(str, Enum):
    channel = "channel"
    checkerboard = "checkerboard"


class ImageCoupling(Transform):
    """Base image coupling on images of ``shape`` (C, H, W); subclasses set ``_elementwise``."""

    transform_idx: Tensor
    identity_idx: Tensor
    checkerboard: Tensor

    def __init__(
        self,
        shape: tuple[int, int, int],
        mask: MaskKind | str,
        parity: bool,
        identity_params: Tensor,
        hidden_channels: int,
        num_blocks: int,
        dropout: float,
        use_batch_norm: bool,
        context_channels: int = 0,
        transformed_channels: Optional[Sequence[int]] = None,
    ):
        super().__init__()
        channels, height, width = shape
        self.mask = MaskKind(mask)
        if self.mask is MaskKind.channel:
            if channels < 2:
                raise ValueError(f"a channel mask needs 2+ channels, got the image shape {tuple(shape)}; "
                                 "use a checkerboard mask")
            if transformed_channels is None:
                transformed = (torch.arange(channels) < (channels + 1) // 2) == parity
            else:
                transformed = torch.zeros(channels, dtype=torch.bool)
                transformed[torch.as_tensor(list(transformed_channels), dtype=torch.long)] = True
                if bool(transformed.all()) or not bool(transformed.any()):
                    raise ValueError(f"a channel coupling must transform some but not all of {channels} channels, "
                                     f"got transformed_channels={list(transformed_channels)}")
            self.register_buffer("transform_idx", torch.nonzero(transformed).reshape(-1))
            self.register_buffer("identity_idx", torch.nonzero(~transformed).reshape(-1))
            in_channels, out_channels = channels - len(self.transform_idx), len(self.transform_idx)
        else:
            rows, columns = torch.arange(height)[:, None], torch.arange(width)
            checkerboard = (rows + columns) % 2 == (0 if parity else 1)
            if not bool(checkerboard.any()):
                raise ValueError(f"this checkerboard mask transforms no pixel of the image shape {tuple(shape)}")
            self.register_buffer("checkerboard", checkerboard)
            in_channels = out_channels = channels
        self.conditioner = ConvResidualNet(
            in_channels + context_channels, out_channels * identity_params.numel(), hidden_channels, num_blocks,
            dropout, use_batch_norm,
        )
        with torch.no_grad():
            self.conditioner.final_layer.weight.zero_()
            cast(Tensor, self.conditioner.final_layer.bias).copy_(identity_params.repeat(out_channels))  # has one

    def _elementwise(
        self, x: Tensor, params: Tensor, inverse: bool, with_logdet: bool = True
    ) -> tuple[Tensor, Optional[Tensor]]:
        """Map x (B, n, H, W) with params (B, n, H, W, p); return outputs and per-element log-dets."""
        raise NotImplementedError

    def _couple(
        self, x: Tensor, context: Optional[Tensor], inverse: bool, with_logdet: bool = True
    ) -> tuple[Tensor, Optional[Tensor]]:
        if self.mask is MaskKind.channel:
            x_transform, conditioning = x.index_select(1, self.transform_idx), x.index_select(1, self.identity_idx)
        else:
            x_transform, conditioning = x, x.masked_fill(self.checkerboard, 0.0)
        if context is not None:
            conditioning = torch.cat([conditioning, context], dim=1)
        batch, n, height, width = x_transform.shape
        params = conditioner(self.conditioner, conditioning).view(batch, n, -1, height, width).movedim(2, -1)
        y, logabsdet = self._elementwise(x_transform, params, inverse, with_logdet)
        if self.mask is MaskKind.channel:
            z = x.index_copy(1, self.transform_idx, y)
        else:
            z = torch.where(self.checkerboard, y, x)
            logabsdet = None if logabsdet is None else logabsdet * self.checkerboard
        return z, None if logabsdet is None else sum_except_batch(logabsdet)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return cast(tuple[Tensor, Tensor], self._couple(x, context, inverse=False))  # with its log-det

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        return self._couple(z, context, inverse=True, with_logdet=False)[0]


class ImageRQSplineCoupling(ImageCoupling):
    """Rational-quadratic spline coupling on images (RQ-NSF (C), NSF Sec. 5.3); identity at start."""

    _elementwise = RQSplineCoupling._elementwise

    def __init__(
        self,
        shape: tuple[int, int, int],
        mask: MaskKind | str = MaskKind.channel,
        parity: bool = True,
        hidden_channels: int = 64,
        num_blocks: int = 3,
        dropout: float = 0.0,
        use_batch_norm: bool = True,
        num_bins: int = 8,
        tail_bound: float = 3.0,
        transformed_channels: Optional[Sequence[int]] = None,
    ):
        super().__init__(
            shape, mask, parity, identity_spline_params(num_bins), hidden_channels, num_blocks, dropout, use_batch_norm,
            transformed_channels=transformed_channels,
        )
        self.num_bins = num_bins
        self.tail_bound = tail_bound


class ImageAffineCoupling(ImageCoupling):
    """Affine coupling on images, z = s * x + t with Glow's s = sigmoid(raw + 2) + 1e-3 (RealNVP, Glow);
    conditioned on a context image of ``context_channels`` channels where that is > 0."""

    _elementwise = AffineCoupling._elementwise

    def __init__(
        self,
        shape: tuple[int, int, int],
        mask: MaskKind | str = MaskKind.channel,
        parity: bool = True,
        hidden_channels: int = 64,
        num_blocks: int = 3,
        dropout: float = 0.0,
        use_batch_norm: bool = True,
        context_channels: int = 0,
        transformed_channels: Optional[Sequence[int]] = None,
    ):
        super().__init__(
            shape, mask, parity, torch.zeros(2), hidden_channels, num_blocks, dropout, use_batch_norm, context_channels,
            transformed_channels,
        )
