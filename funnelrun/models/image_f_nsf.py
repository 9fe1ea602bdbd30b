"""F-NSF and F-Glow on images (funnels paper A.8, A.9, Tables 2 and 4).

Funnel layers halve the height and width, each a 2 x 2 stride-2 convolutional funnel (A.7.1; an odd
size is zero-padded by the funnel itself, its padded zeros left out of p_phi, so the likelihood
stays exact), a max-pool surjection or a coupling funnel (a coupling on the squeezed image whose
3C untransformed channels are dropped, A.7.1's last paragraph; both even sizes only). ``latent_dim``
picks the number of funnels: on MNIST (1, 28, 28) 3 funnels give 16 and 4 give 4 (A.9); null means
two funnels, a latent one sixteenth of the data size (CIFAR-10: 3 x 8 x 8 = 192, Table 2). ``affine=True`` puts affine
couplings everywhere: F-Glow, the funnel of the affine baseline. Two layouts
(:class:`~funnelrun.models.image_flows.FunnelLayout`, ``image.funnel_layout``):

- ``first_step`` (A.8, Table 2): the first NSF step (ActNorm -> 1 x 1 convolution -> coupling) on the
  data image, the funnels back to back, then the rest of the multi-scale NSF
  (:func:`~funnelrun.models.image_flows.multiscale_nsf`) on the reduced image.
- ``interleaved`` (A.9, Table 4, the authors' ``funnel_conv_deeper`` in
  ``experiments/image_generation.py``, whose parameter count is Table 8's): per funnel, one NSF step
  and a 1 x 1 convolution, ActNorm, the funnel, then ``steps_per_level`` NSF steps and a 1 x 1
  convolution. Each of these runs of steps works on the squeezed image when its height and width are
  even and unsqueezes at its end, so every funnel sees the data's channels ("no squeezing", A.9); on
  MNIST the 7 x 7 image after the second funnel is not squeezed (its couplings use checkerboard
  masks) and the third funnel pads it to 8 x 8 (the authors pad it before the steps, which leaves
  zeros inside the flow, an inexact likelihood). ``image.levels`` is unused: the funnels count the blocks.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Union

from funnelrun.models.flow import Flow
from funnelrun.models.image_flows import (
    FunnelKind,
    FunnelLayout,
    ImageFlowConfig,
    can_squeeze,
    flow_step,
    image_coupling,
    image_settings,
    multiscale_nsf,
)
from funnelrun.surjections.conv_funnel import ConvFunnel
from funnelrun.surjections.image_coupling_funnel import ImageCouplingFunnel, kept_channels
from funnelrun.surjections.maxpool import MaxPool
from funnelrun.transforms.actnorm import ActNorm
from funnelrun.transforms.base import CompositeTransform, Transform
from funnelrun.transforms.conv1x1 import Conv1x1
from funnelrun.transforms.flatten import Flatten
from funnelrun.transforms.multiscale import ImageShape
from funnelrun.transforms.squeeze import Squeeze, Unsqueeze, squeezed_shape

#: funnels when latent_dim is null: a latent 1/16 of the data size, as in the funnels paper's Table 2
DEFAULT_FUNNELS = 2


def _funnel_applies(shape: ImageShape, kind: FunnelKind) -> bool:
    _, height, width = shape
    if kind is FunnelKind.conv:  # odd sizes are zero-padded
        return height * width >= 2
    return min(height, width) >= 2 and height % 2 == 0 and width % 2 == 0  # max-pool, coupling: 2 x 2 tiles


def funnel_output_shapes(shape: ImageShape, kind: FunnelKind | str) -> list[ImageShape]:
    """The image shapes after 1, 2, ... funnels of ``kind``, while another one applies and leaves
    at least 2 values for the flow after it."""
    shapes = []
    while _funnel_applies(shape, FunnelKind(kind)):
        channels, height, width = shape
        shape = (channels, (height + 1) // 2, (width + 1) // 2)
        if math.prod(shape) < 2:
            break
        shapes.append(shape)
    return shapes


def unsqueezed_steps(shape: ImageShape, num_steps: int, affine: bool, s: ImageFlowConfig, seed: int) -> Transform:
    """``num_steps`` NSF steps and a 1 x 1 convolution on images of ``shape``: between a squeeze and an
    unsqueeze when the height and width are even (the authors' A.9 blocks), else on ``shape`` itself."""
    squeezed = can_squeeze(shape)
    inner = squeezed_shape(shape) if squeezed else shape
    layers: list[Transform] = [Squeeze()] if squeezed else []
    for step in range(num_steps):
        layers += flow_step(inner, step, affine, s, seed=seed)
    layers.append(Conv1x1(inner[0], seed=seed + num_steps))
    if squeezed:
        layers.append(Unsqueeze())
    return CompositeTransform(layers)


def _funnel(shape: ImageShape, s: ImageFlowConfig, affine: bool) -> ConvFunnel | MaxPool | ImageCouplingFunnel:
    if s.funnel is FunnelKind.conv:
        return ConvFunnel(shape, s.conditional_hidden_features)
    if s.funnel is FunnelKind.coupling:
        coupling = image_coupling(squeezed_shape(shape), True, affine, s, transformed_channels=kept_channels(shape[0]))
        return ImageCouplingFunnel(shape, coupling, s.conditional_hidden_features)
    return MaxPool(shape)


def build_image_f_nsf(
    data_shape: tuple[int, ...],
    *,
    affine: bool = False,
    latent_dim: Optional[int] = None,
    image: Union[ImageFlowConfig, Mapping[str, Any], None] = None,
) -> Flow:
    """F-NSF on images of ``data_shape`` (C, H, W) to a ``latent_dim``-D latent (null: two funnels).

    Raises ``ValueError`` listing the reachable latent sizes when ``latent_dim`` is not one of them.
    """
    s = image_settings(image)
    shape: ImageShape = tuple(data_shape)  # type: ignore[assignment]
    reachable = [math.prod(out) for out in funnel_output_shapes(shape, s.funnel)]
    if latent_dim is None:
        num_funnels = DEFAULT_FUNNELS
    else:
        num_funnels = reachable.index(latent_dim) + 1 if latent_dim in reachable else 0
    if not 0 < num_funnels <= len(reachable):
        raise ValueError(
            f"latent_dim={latent_dim} is not reachable from images {shape} with {s.funnel.value} "
            f"funnels, which halve the height and width: the reachable sizes are {reachable} "
            f"(1, 2, ... funnels){'' if latent_dim is not None else '; null means two funnels'}"
        )
    if s.funnel_layout is FunnelLayout.interleaved:
        layers: list[Transform] = []
        for index in range(num_funnels):
            seed = 1000 * (index + 1)
            layers.append(unsqueezed_steps(shape, 1, affine, s, seed=seed))
            funnel = _funnel(shape, s, affine)
            layers += [ActNorm(shape[0]), funnel]
            shape = funnel.out_shape
            layers.append(unsqueezed_steps(shape, s.steps_per_level, affine, s, seed=seed + 100))
        layers.append(Flatten(shape))
        return Flow(layers, data_shape)
    layers = flow_step(shape, 0, affine, s)  # the first NSF step (A.8)
    for _ in range(num_funnels):
        funnel = _funnel(shape, s, affine)
        layers.append(funnel)
        shape = funnel.out_shape
    layers.append(multiscale_nsf(shape, affine, s))
    return Flow(layers, data_shape)
