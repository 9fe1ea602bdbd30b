"""RealNVP with log-det based masking (Das et al. 2019, Sec. 3.2.2, Sec. 4.2): the stage-2 model.

The multi-scale RealNVP of :func:`~funnelrun.models.image_flows.build_image_realnvp` with factor-out,
whose squeeze in every level but the last is a :class:`~funnelrun.transforms.ldmask.LogDetSqueeze`:
the dimensions factored out after a level are those that contributed locally least log-det in a
trained full-dimensional RealNVP (stage 1, :mod:`funnelrun.pipelines.ldmask`), not a fixed channel
half. The factor-out stays the exact slice to the standard normal base of
:class:`~funnelrun.transforms.multiscale.MultiScale`.

With ``ldmask_source=conv_svd`` (the paper's "Implementation for Glow") the stage-2 model is instead
the multi-scale Glow of :func:`~funnelrun.models.image_flows.build_image_nsf` (ActNorm, 1 x 1
convolution, affine coupling) with factor-out, each level but the last ending in a
:class:`~funnelrun.transforms.ldmask_channels.LogDetChannelSplit`: channel-wise masks from the
per-channel scores of a full-dimensional Glow (:mod:`funnelrun.evaluation.channel_logdet`).

The builder makes placeholder masks of the right shapes; :func:`set_masks` installs the chosen ones,
and a checkpoint restores them (they are buffers in the state dict).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Mapping, Optional, Union, cast

import torch
from torch import Tensor

from funnelrun.models.flow import Flow
from funnelrun.models.image_flows import (
    ImageFlowConfig,
    can_squeeze,
    check_dimension_preserved,
    image_settings,
    nsf_level,
    realnvp_level,
)
from funnelrun.options import LDMaskSource
from funnelrun.transforms.base import Transform
from funnelrun.transforms.ldmask import LogDetSqueeze, local_logdet_mask, squeeze_permutation
from funnelrun.transforms.ldmask_channels import LogDetChannelSplit
from funnelrun.transforms.multiscale import ImageShape, MultiScale
from funnelrun.transforms.squeeze import Squeeze


def ldmask_level(shape: ImageShape, index: int, actnorm: bool, s: ImageFlowConfig) -> tuple[Transform, ImageShape]:
    """A RealNVP level whose squeeze (every level but the last) is a log-det squeeze."""
    level, out_shape = realnvp_level(shape, index, actnorm, s)
    if index < s.levels - 1:
        if not can_squeeze(shape):
            raise ValueError(f"log-det masking squeezes at every level but the last; level {index} gets the "
                             f"odd image shape {tuple(shape)}: use fewer model.image.levels")
        position = next(i for i, layer in enumerate(level.transforms) if isinstance(layer, Squeeze))
        level.transforms[position] = LogDetSqueeze(shape)  # checkerboard couplings keep the shape
    return level, out_shape


def glow_ldmask_level(shape: ImageShape, index: int, s: ImageFlowConfig) -> tuple[Transform, ImageShape]:
    """A Glow level (affine couplings) ending, at every level but the last, in a channel split."""
    level, out_shape = nsf_level(shape, index, True, s)
    if index < s.levels - 1:
        level.transforms.append(LogDetChannelSplit(out_shape[0]))
    return level, out_shape


def build_realnvp_ldmask(
    data_shape: tuple[int, ...],
    *,
    actnorm: bool = False,
    latent_dim: Optional[int] = None,
    image: Union[ImageFlowConfig, Mapping[str, Any], None] = None,
    stage1_steps: int = 0,
    ldmask_source: Union[LDMaskSource, str] = LDMaskSource.jacobian,
) -> Flow:
    """The multi-scale RealNVP on images ``data_shape`` (C, H, W) with log-det squeezes (placeholder
    masks); ``ldmask_source=conv_svd``: the multi-scale Glow with channel splits (ActNorm always,
    ``actnorm`` ignored). ``stage1_steps`` is read by the training run (stage 1), not by the model."""
    if len(data_shape) != 3:
        raise ValueError(f"log-det masking is for images (C, H, W), got the data shape {tuple(data_shape)}")
    check_dimension_preserved(data_shape, latent_dim)
    s = image_settings(image)
    if not s.factor_out or s.levels < 2:
        raise ValueError("log-det masking chooses what is factored out: set model.image.factor_out=true "
                         "and model.image.levels >= 2")
    if LDMaskSource(ldmask_source) is LDMaskSource.conv_svd:
        make_level = partial(glow_ldmask_level, s=s)
    else:
        make_level = partial(ldmask_level, actnorm=actnorm, s=s)
    levels = MultiScale(cast(ImageShape, tuple(data_shape)), s.levels, make_level, True)
    return Flow([levels], data_shape)


def logdet_squeezes(model: Flow) -> list[LogDetSqueeze]:
    """The model's log-det squeezes, level by level."""
    return [m for m in model.modules() if isinstance(m, LogDetSqueeze)]


def mask_layers(model: Flow) -> list[Union[LogDetSqueeze, LogDetChannelSplit]]:
    """The model's log-det squeezes or channel splits, level by level."""
    return [m for m in model.modules() if isinstance(m, (LogDetSqueeze, LogDetChannelSplit))]


def set_masks(model: Flow, masks: list[Tensor]) -> None:
    """Install ``masks`` (one per level but the last: each (C, H, W) at that level's input for the
    log-det squeezes, (C,) at its output for the channel splits)."""
    layers = mask_layers(model)
    if len(masks) != len(layers):
        raise ValueError(f"the model has {len(layers)} masked layers, got {len(masks)} masks")
    for layer, kept in zip(layers, masks):
        layer.set_mask(kept)


def masks_from_maps(level_maps: list[Tensor]) -> tuple[list[Tensor], Tensor]:
    """The masks of the log-det squeezes from the stage-1 maps L_d^(l) (one (C, H, W) map per level, in
    the data's pixel positions; Sec. 3.2.2): level l pools L_d^(l) over the 2 x 2 patches of the
    dimensions that reach it (Fig. 1). Also returns, per data dimension, the level after which it
    is factored out (the last level: it reaches the end of the flow)."""
    shape = tuple(level_maps[0].shape)
    position = torch.arange(level_maps[0].numel()).reshape(shape)  # data dimension at each place
    exit_level = torch.full(shape, len(level_maps) - 1, dtype=torch.long)
    masks = []
    for index, pixel_map in enumerate(level_maps[:-1]):
        kept = local_logdet_mask(pixel_map.reshape(-1)[position])
        masks.append(kept)
        channels, height, width = position.shape
        position = position.reshape(-1)[squeeze_permutation(kept)].reshape(4 * channels, height // 2, width // 2)
        exit_level.view(-1)[position[: 2 * channels].reshape(-1)] = index
        position = position[2 * channels:]
    return masks, exit_level


def channel_masks_from_scores(level_scores: list[Tensor]) -> list[Tensor]:
    """The masks of the channel splits from the stage-1 channel scores (one (C_l,) per level of the
    Glow without factor-out): at each level but the last, of the C channels that reach its end in the
    factored-out model, the C - C // 2 with the largest scores are kept (ties: the lower index is
    factored out). A kept channel c becomes channels 4c..4c+3 where the next level squeezes."""
    channel = torch.arange(len(level_scores[0]))  # the stage-1 channel of each stage-2 channel
    masks = []
    for index, scores in enumerate(level_scores[:-1]):
        kept = scores[channel].argsort(stable=True).argsort() >= len(channel) // 2
        masks.append(kept)
        channel = channel[kept]
        if len(level_scores[index + 1]) == 4 * len(scores):
            channel = (4 * channel[:, None] + torch.arange(4)).reshape(-1)
    return masks
