"""The VAE baseline of the funnels paper (A.4): MLP encoder and decoder with Gaussian outputs.

The model is one :class:`~funnelrun.surjections.vae.VAELayer` and a standard normal prior on its
latent, so ``log_prob`` is the one-sample ELBO of eq. (16) with the decoder density of eq. (17), and
``exact`` is False: evaluation reports an importance-weighted estimate beside it.
"""
from __future__ import annotations

from funnelrun.models.flow import Flow
from funnelrun.surjections.vae import VAELayer


def build_vae(
    data_shape: tuple[int, ...],
    *,
    latent_dim: int = 1,
    hidden_features: int = 128,
    depth: int = 3,
    dropout: float = 0.0,
) -> Flow:
    """A VAE on vectors of ``data_shape == (D,)`` with a ``latent_dim``-dimensional N(0, I) prior;
    encoder and decoder are MLPs of ``depth`` ReLU layers of ``hidden_features`` units."""
    (features,) = data_shape
    return Flow([VAELayer(features, latent_dim, hidden_features, depth, dropout)], data_shape)
