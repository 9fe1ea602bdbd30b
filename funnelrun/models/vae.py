"""The VAE baseline of the funnels paper (A.4): MLP encoder and decoder with Gaussian outputs.

The model is one :class:`~funnelrun.surjections.vae.VAELayer` and a standard normal prior on its
latent, so ``log_prob`` is the one-sample ELBO of eq. (16) with the decoder density of eq. (17), and
``exact`` is False: evaluation reports an importance-weighted estimate beside it. Images
(``data_shape == (C, H, W)``) get the image VAEs of :mod:`funnelrun.models.image_vae` instead.
"""
from __future__ import annotations

from typing import Sequence

from funnelrun.models.flow import Flow
from funnelrun.models.image_vae import ImageArch, build_image_vae
from funnelrun.surjections.vae import VAELayer


def build_vae(
    data_shape: tuple[int, ...],
    *,
    latent_dim: int = 1,
    hidden_features: int = 128,
    depth: int = 3,
    dropout: float = 0.0,
    image_arch: ImageArch = ImageArch.resnet,
    channels: Sequence[int] = (64, 128, 256, 512),
    blocks_per_stage: int = 2,
) -> Flow:
    """A VAE on vectors of ``data_shape == (D,)`` with a ``latent_dim``-dimensional N(0, I) prior;
    encoder and decoder are MLPs of ``depth`` ReLU layers of ``hidden_features`` units.

    On images the VAE of ``image_arch`` (``channels`` and ``blocks_per_stage`` configure the ResNet;
    see :func:`~funnelrun.models.image_vae.build_image_vae`)."""
    if len(data_shape) == 3:
        return build_image_vae(
            data_shape, latent_dim=latent_dim, image_arch=image_arch, channels=channels,
            blocks_per_stage=blocks_per_stage, hidden_features=hidden_features, depth=depth, dropout=dropout,
        )
    (features,) = data_shape
    return Flow([VAELayer(features, latent_dim, hidden_features, depth, dropout)], data_shape)
