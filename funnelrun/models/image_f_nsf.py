"""F-NSF and F-Glow on images (funnels paper A.8, A.9, Table 2).

The first NSF step (ActNorm -> 1 x 1 convolution -> coupling) runs on the data image; then funnel
layers halve the height and width, each a 2 x 2 stride-2 convolutional funnel (A.7.1, zero-padding
odd sizes as A.9 does for MNIST's 7 x 7) or a max-pool surjection (even sizes only); then the rest of
the multi-scale NSF (:func:`~funnelrun.models.image_flows.multiscale_nsf`) runs on the reduced image.
``latent_dim`` picks the number of funnels: on MNIST (1, 28, 28) 3 funnels give 16 and 4 give 4
(A.9); null means two funnels, a latent one sixteenth of the data size (CIFAR-10: 3 x 8 x 8 = 192,
Table 2). ``affine=True`` puts affine couplings everywhere: F-Glow, the funnel of the affine baseline.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Union

from funnelrun.models.flow import Flow
from funnelrun.models.image_flows import FunnelKind, ImageFlowConfig, flow_step, image_settings, multiscale_nsf
from funnelrun.surjections.conv_funnel import ConvFunnel
from funnelrun.surjections.maxpool import MaxPool
from funnelrun.transforms.base import Transform
from funnelrun.transforms.multiscale import ImageShape

#: funnels when latent_dim is null: a latent 1/16 of the data size, as in the funnels paper's Table 2
DEFAULT_FUNNELS = 2


def _funnel_applies(shape: ImageShape, kind: FunnelKind) -> bool:
    _, height, width = shape
    if kind is FunnelKind.conv:  # odd sizes are zero-padded
        return height * width >= 2
    return min(height, width) >= 2 and height % 2 == 0 and width % 2 == 0


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
    layers: list[Transform] = flow_step(shape, 0, affine, s)  # the first NSF step (A.8)
    for _ in range(num_funnels):
        if s.funnel is FunnelKind.conv:
            funnel: ConvFunnel | MaxPool = ConvFunnel(shape, s.conditional_hidden_features)
        else:
            funnel = MaxPool(shape)
        layers.append(funnel)
        shape = funnel.out_shape
    layers.append(multiscale_nsf(shape, affine, s))
    return Flow(layers, data_shape)
