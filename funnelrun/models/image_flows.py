"""Multi-scale flows on images (B, C, H, W): NSF (C), the affine baseline/Glow, and RealNVP.

- NSF (C) (Durkan et al. 2019, Sec. 5.3; funnels paper A.8, Table 7): ``levels`` levels, each a
  squeeze, then ``steps_per_level`` steps of ActNorm -> invertible 1 x 1 convolution -> coupling
  (rational-quadratic splines from a residual conv net with batch norm and dropout), then a 1 x 1
  convolution. ``affine=True`` puts affine couplings in the same architecture: the "baseline" of
  the funnels paper's Table 2, which is also what ``model=glow`` builds on images.
- RealNVP (Dinh et al. 2017, Sec. 3.6): per level ``steps_per_level`` affine couplings with
  checkerboard masks, a squeeze, ``steps_per_level`` with channel masks; the last level has
  ``steps_per_level + 1`` checkerboard couplings (3, 3 and 4 in that paper).

A level squeezes only an image of even height and width (MNIST's 7 x 7 is not squeezed again).
With ``factor_out`` half the channels leave for the base after every level but the last; without
(the funnels paper's CIFAR-10 models, A.8) squeezing only trades resolution for depth. Couplings
split channels, or pixels in a checkerboard where an image has one channel. The flow ends in a flat
latent (:class:`~funnelrun.transforms.multiscale.MultiScale`).
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from typing import Any, Mapping, Optional, Sequence, Union, cast

from funnelrun.models.flow import Flow
from funnelrun.options import FunnelKind, FunnelLayout, ImageFlowConfig
from funnelrun.transforms.actnorm import ActNorm
from funnelrun.transforms.base import CompositeTransform, Transform
from funnelrun.transforms.conv1x1 import Conv1x1
from funnelrun.transforms.image_coupling import ImageAffineCoupling, ImageCoupling, ImageRQSplineCoupling, MaskKind
from funnelrun.transforms.multiscale import ImageShape, MultiScale
from funnelrun.transforms.squeeze import Squeeze, squeezed_shape


def image_settings(image: Union[ImageFlowConfig, Mapping[str, Any], None]) -> ImageFlowConfig:
    """The ``image`` settings a builder receives (a dict from the config, or None: the defaults)."""
    settings = image if isinstance(image, ImageFlowConfig) else ImageFlowConfig(**(image or {}))
    return replace(settings, funnel=FunnelKind(settings.funnel), funnel_layout=FunnelLayout(settings.funnel_layout))


def can_squeeze(shape: ImageShape) -> bool:
    """Whether an image of ``shape`` (C, H, W) has an even height and width."""
    return shape[1] % 2 == 0 and shape[2] % 2 == 0


def image_coupling(shape: ImageShape, parity: bool, affine: bool, s: ImageFlowConfig,
                   mask: Optional[MaskKind] = None, transformed_channels: Optional[Sequence[int]] = None
                   ) -> ImageCoupling:
    """An RQ-spline (or affine) coupling; the mask splits channels unless the image has one
    (``transformed_channels``: these channels are transformed, the others condition them)."""
    mask = mask or (MaskKind.channel if shape[0] > 1 else MaskKind.checkerboard)
    common: dict[str, Any] = dict(
        mask=mask, parity=parity, hidden_channels=s.hidden_channels, num_blocks=s.num_res_blocks,
        dropout=s.dropout, use_batch_norm=s.batch_norm, transformed_channels=transformed_channels)
    if affine:
        return ImageAffineCoupling(shape, **common)
    return ImageRQSplineCoupling(shape, num_bins=s.num_bins, tail_bound=s.tail_bound, **common)


def flow_step(shape: ImageShape, index: int, affine: bool, s: ImageFlowConfig, seed: int = 0) -> list[Transform]:
    """One NSF (C) / Glow step: ActNorm -> 1 x 1 convolution -> coupling (mask parity by ``index``)."""
    return [ActNorm(shape[0]), Conv1x1(shape[0], seed=seed + index), image_coupling(shape, index % 2 == 0, affine, s)]


def nsf_level(shape: ImageShape, index: int, affine: bool, s: ImageFlowConfig) -> tuple[CompositeTransform, ImageShape]:
    """[Squeeze] -> ``steps_per_level`` steps -> 1 x 1 convolution, and the shape it outputs."""
    layers: list[Transform] = []
    if can_squeeze(shape):
        layers.append(Squeeze())
        shape = squeezed_shape(shape)
    seed = 1000 * (index + 1)
    for step in range(s.steps_per_level):
        layers += flow_step(shape, step, affine, s, seed=seed)
    layers.append(Conv1x1(shape[0], seed=seed + s.steps_per_level))
    return CompositeTransform(layers), shape


def multiscale_nsf(shape: ImageShape, affine: bool, s: ImageFlowConfig) -> MultiScale:
    """The ``s.levels``-level NSF (C) (or affine baseline) on images of ``shape``, to a flat latent."""
    return MultiScale(shape, s.levels, partial(nsf_level, affine=affine, s=s), s.factor_out)


def check_dimension_preserved(data_shape: tuple[int, ...], latent_dim: Optional[int]) -> None:
    features = math.prod(data_shape)
    if latent_dim is not None and latent_dim != features:
        raise ValueError(
            f"this flow preserves dimension: latent_dim must be null or {features} for images "
            f"{tuple(data_shape)}, got {latent_dim}; use a funnel model (model=f_nsf, f_glow or f_mlp)"
        )


def build_image_nsf(
    data_shape: tuple[int, ...],
    *,
    affine: bool = False,
    latent_dim: Optional[int] = None,
    image: Union[ImageFlowConfig, Mapping[str, Any], None] = None,
) -> Flow:
    """Multi-scale NSF (C) on images of ``data_shape`` (C, H, W); ``affine=True``: the affine baseline."""
    check_dimension_preserved(data_shape, latent_dim)
    return Flow([multiscale_nsf(cast(ImageShape, tuple(data_shape)), affine, image_settings(image))], data_shape)


def realnvp_level(
    shape: ImageShape, index: int, actnorm: bool, s: ImageFlowConfig
) -> tuple[CompositeTransform, ImageShape]:
    """Checkerboard couplings, then (all levels but the last) a squeeze and channel couplings."""
    last = index == s.levels - 1

    def couplings(shape: ImageShape, mask: MaskKind, count: int) -> list[Transform]:
        layers: list[Transform] = []
        for i in range(count):
            layers += [ActNorm(shape[0])] if actnorm else []
            layers.append(image_coupling(shape, i % 2 == 0, True, s, mask=mask))
        return layers

    layers = couplings(shape, MaskKind.checkerboard, s.steps_per_level + last)
    if not last and can_squeeze(shape):
        layers.append(Squeeze())
        shape = squeezed_shape(shape)
        layers += couplings(shape, MaskKind.channel, s.steps_per_level)
    return CompositeTransform(layers), shape


def build_image_realnvp(
    data_shape: tuple[int, ...],
    *,
    actnorm: bool = False,
    latent_dim: Optional[int] = None,
    image: Union[ImageFlowConfig, Mapping[str, Any], None] = None,
) -> Flow:
    """RealNVP on images of ``data_shape`` (C, H, W): affine couplings with checkerboard and channel
    masks (Dinh et al. 2017), residual conv nets with batch norm; ``actnorm`` adds ActNorm layers."""
    check_dimension_preserved(data_shape, latent_dim)
    s = image_settings(image)
    levels = MultiScale(cast(ImageShape, tuple(data_shape)), s.levels,
 partial(realnvp_level, actnorm=actnorm, s=s), s.factor_out)
    return Flow([levels], data_shape)
