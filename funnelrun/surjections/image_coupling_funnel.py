"""The coupling funnel for images (Klein et al. 2021, "Funnels", A.7.1's last paragraph): a coupling
transform followed by dropping its untransformed channels, with p_phi for them.

An image x (B, C, H, W) of even height and width is squeezed to (B, 4C, H/2, W/2): channel 4c + k
holds offset k = 2i + j of each 2 x 2 tile of channel c (k = 3 the bottom-right pixel, as in
:mod:`~funnelrun.surjections.conv_funnel`). A channel coupling on the squeezed image transforms the
C bottom-right channels x_+ by F conditioned on the other 3C, x_- (its identity channels, which a
residual conv net reads), and the layer keeps z = F(x_+; x_-) (B, C, H/2, W/2), dropping x_-:

    V(x) = log p_phi(x_- | z) + log|det dF/dx_+|

(eq. 6: the coupling's Jacobian is block triangular, so its log-det is F's). p_phi is the convolutional
funnel's tile Gaussian (:class:`~funnelrun.surjections.conv_funnel.TileGaussian`: a diagonal Gaussian
over the 3C dropped values of a tile from the 3 x 3 neighbourhood of its pixel in z, N(0, I) at start).
The output shape is the convolutional funnel's, so F-NSF / F-Glow reach the same latent sizes with
``model.image.funnel=coupling``; F is an RQ spline (F-NSF) or Glow's affine map (F-Glow) from a residual
conv net, where the convolutional funnel's F is one linear map per tile. ``inverse`` samples x_- ~
p_phi(. | z) and inverts the coupling, so forward(inverse(z)) == z (the right-inverse condition, A.1)
and the likelihood is exact. The paper found this form needs more parameters than the convolutional
funnel and left it out of Table 2.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from funnelrun.surjections.conv_funnel import TileGaussian, gaussian_log_prob
from funnelrun.transforms.base import Transform
from funnelrun.transforms.image_coupling import ImageCoupling
from funnelrun.transforms.squeeze import squeeze, squeezed_shape, unsqueeze

ImageShape = tuple[int, int, int]


def kept_channels(channels: int) -> list[int]:
    """The squeezed channels 4c + 3 (each tile's bottom-right pixel) that the coupling transforms."""
    return [4 * c + 3 for c in range(channels)]


class ImageCouplingFunnel(Transform):
    """Drop the 3C identity channels of ``coupling`` (a channel coupling on the squeezed image of
    ``shape`` whose transformed channels are :func:`kept_channels`) under a tile Gaussian p_phi."""

    bijective = False

    def __init__(self, shape: ImageShape, coupling: ImageCoupling, hidden_features: int = 128, num_layers: int = 3):
        super().__init__()
        channels, height, width = shape
        if height % 2 or width % 2 or height * width < 4:
            raise ValueError(
                "the image coupling funnel squeezes 2 x 2 tiles: it needs an even height and width, got "
                f"{tuple(shape)}; use model.image.funnel=conv (it pads odd sizes)"
            )
        expected = torch.tensor(kept_channels(channels))
        transform_idx = getattr(coupling, "transform_idx", None)
        if transform_idx is None or not torch.equal(transform_idx.cpu(), expected):
            raise ValueError(f"the coupling of an image coupling funnel must transform the squeezed channels "
                             f"{expected.tolist()} (channel mask), got {transform_idx}")
        self.in_shape: ImageShape = (channels, height, width)
        self.squeezed_shape = squeezed_shape(self.in_shape)
        self.out_shape = (channels, height // 2, width // 2)
        self.coupling = coupling
        self.conditional = TileGaussian(channels, hidden_features, num_layers)

    def out_features(self, in_features: int) -> int:
        if in_features != math.prod(self.in_shape):
            raise ValueError(f"an image coupling funnel on images {self.in_shape} got {in_features} features")
        return math.prod(self.out_shape)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        y, logdet = self.coupling(squeeze(x))
        tiles = y.unflatten(1, (self.in_shape[0], 4))  # (B, C, 4, h, w): offsets 0-2 dropped, 3 kept
        z, dropped = tiles[:, :, 3], tiles[:, :, :3]
        mean, log_std = self.conditional(z)
        return z, logdet + gaussian_log_prob(dropped, mean, log_std).flatten(1).sum(1)

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        mean, log_std = self.conditional(z)
        dropped = mean + temperature * torch.exp(log_std) * torch.randn_like(mean)
        y = torch.cat([dropped, z.unsqueeze(2)], dim=2).flatten(1, 2)
        return unsqueeze(self.coupling.inverse(y))

