"""A flow with a learned low-dimensional prior (Das et al. 2019, "Dimensionality Reduction Flows", §3.1).

A bijective flow f maps x to y = f(x) of the same dimension; a VAE layer then infers a smaller latent
eps ~ q(eps | y) with decoder p(y | eps) and prior N(0, I). ``Flow.log_prob`` adds the base density and
the contributions of both parts, which is exactly that paper's lower bound (11) with one sample of
eps (the paper's z is our y):

    log N(eps; 0, I) + [log p(y | eps) - log q(eps | y)] + log|det df/dx|
    (base)             (VAE layer contribution)           (flow contributions)

so the model trains on (11) with no extra code, and ``exact`` is False; evaluation adds the
importance-weighted estimate (:mod:`funnelrun.evaluation.importance`) beside the bound.

- Vectors: the flow is :func:`~funnelrun.models.nsf.build_nsf`'s, so ``model=flow_vae`` compares with
  ``model=f_nsf`` at the same latent size; the VAE has MLP encoder and decoder.
- Images (§4.1): the flow is the multi-scale RealNVP of
  :func:`~funnelrun.models.image_flows.build_image_realnvp` (the paper's flow, §4) without factor-out,
  so its latent y is one image, the last level's (C', H', W'); the VAE is convolutional on that image
  (:class:`~funnelrun.models.image_vae.ConvEncoder`: 3 x 3 convolutions with 3, 32, 32 filters and a
  fully-connected layer to eps; the decoder mirrors it with transposed convolutions; a learned std per
  channel of y, :class:`~funnelrun.surjections.image_vae.ImageVAELayer`). ``latent_dim`` null: D / 4,
  the CIFAR-10 model of the paper's Fig. 2(b).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence, cast

from funnelrun.models.flow import Flow
from funnelrun.models.image_flows import build_image_realnvp, image_settings
from funnelrun.models.image_vae import ConvDecoder, ConvEncoder
from funnelrun.models.nsf import build_nsf
from funnelrun.surjections.image_vae import ImageVAELayer
from funnelrun.surjections.vae import VAELayer
from funnelrun.transforms.flatten import Unflatten
from funnelrun.transforms.multiscale import MultiScale

#: images, latent_dim null: eps has a quarter of the data's dimensions (Das et al. Fig. 2(b), CIFAR-10)
DEFAULT_IMAGE_REDUCTION = 4


def build_flow_vae(
    data_shape: tuple[int, ...],
    *,
    latent_dim: Optional[int] = 1,
    vae_hidden_features: int = 128,
    vae_depth: int = 3,
    vae_dropout: float = 0.0,
    vae_channels: Sequence[int] = (3, 32, 32),
    actnorm: bool = False,
    image: Optional[Mapping[str, Any]] = None,
    **nsf_kwargs: Any,
) -> Flow:
    """The NSF ``build_nsf(data_shape, **nsf_kwargs)`` on vectors of ``data_shape == (D,)``, then a
    :class:`~funnelrun.surjections.vae.VAELayer` from D to ``latent_dim`` dimensions whose encoder
    and decoder have ``vae_depth`` ReLU layers of ``vae_hidden_features`` units. On images
    ``data_shape == (C, H, W)``: :func:`build_image_flow_vae` (the vector-only arguments are ignored)."""
    if len(data_shape) == 3:
        return build_image_flow_vae(data_shape, latent_dim=latent_dim, vae_channels=vae_channels, actnorm=actnorm,
                                    image=image)
    if latent_dim is None:
        raise ValueError("model=flow_vae on vectors needs model.latent_dim (the VAE's latent size), got null")
    (features,) = data_shape
    flow = build_nsf(data_shape, **nsf_kwargs)
    vae = VAELayer(features, latent_dim, vae_hidden_features, vae_depth, vae_dropout)
    return Flow([*flow.transform.transforms, vae], data_shape)


def build_image_flow_vae(
    data_shape: tuple[int, ...],
    *,
    latent_dim: Optional[int] = None,
    vae_channels: Sequence[int] = (3, 32, 32),
    actnorm: bool = False,
    image: Optional[Mapping[str, Any]] = None,
) -> Flow:
    """The multi-scale RealNVP of the ``image`` settings on images of ``data_shape`` (C, H, W), without
    factor-out, then a convolutional VAE from its latent image to ``latent_dim`` (null: D / 4) dimensions."""
    s = image_settings(image)
    features = math.prod(data_shape)
    if s.factor_out:
        raise ValueError("the image flow-VAE models the flow's whole latent with one convolutional VAE: set "
                         "model.image.factor_out=false")
    if latent_dim is None:
        latent_dim = max(features // DEFAULT_IMAGE_REDUCTION, 1)
    if not 0 < latent_dim < features:
        raise ValueError(f"the flow-VAE's latent_dim must be between 1 and {features - 1} (a lower-dimensional "
                         f"noise space than the {features}-D data), got {latent_dim}")
    (levels,) = build_image_realnvp(data_shape, actnorm=actnorm, image=s).transform.transforms
    assert isinstance(levels, MultiScale)
    shape = cast(tuple[int, int, int], levels.final_shape)
    vae = ImageVAELayer(ConvEncoder(shape, latent_dim, vae_channels), ConvDecoder(shape, latent_dim, vae_channels),
                        shape, latent_dim)
    return Flow([levels, Unflatten(shape), vae], data_shape)
