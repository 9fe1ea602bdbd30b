"""The VAE layer: a stochastic map from x to a smaller latent z (SurVAE view; funnels paper A.4).

Forward samples z ~ q(z | x) with the reparameterisation trick and reports the one-sample bound term

    contribution = log p(x | z) - log q(z | x),

so that a :class:`~funnelrun.models.flow.Flow` adding log p(z) of the next layers (or of the base)
gives the one-sample estimate of the ELBO, funnels paper eq. (16):
log p(x) >= E_q[log p(x | z)] - KL[q(z | x) || p(z)] = E_q[log p(x | z) + log p(z) - log q(z | x)].
Both q(z | x) and p(x | z) are diagonal Gaussians whose mean and standard deviation come from MLPs
(eq. 17: the decoder g(z) = [mu(z), sigma(z)]). Inverse samples x ~ p(x | z) at the temperature.
The contribution is a bound, not the exact term: ``exact = False``.
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor

from funnelrun.distributions.conditional import ConditionalDiagonalGaussian
from funnelrun.transforms.base import Transform


class VAELayer(Transform):
    """Encoder q(z | x) and decoder p(x | z) between ``features`` and ``latent_dim`` dimensions.

    Each is a diagonal Gaussian from an MLP of ``depth`` ReLU layers of ``hidden_features`` units,
    each followed by ``nn.Dropout(dropout)`` when ``dropout > 0`` (``depth=0``: a linear map).

    Example:
        >>> import torch
        >>> layer = VAELayer(2, 1, hidden_features=16, depth=1)
        >>> z, bound_term = layer(torch.randn(5, 2))
        >>> z.shape, bound_term.shape
        (torch.Size([5, 1]), torch.Size([5]))
    """

    exact = False
    bijective = False

    def __init__(self, features: int, latent_dim: int, hidden_features: int = 64, depth: int = 2, dropout: float = 0.0):
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"a VAE layer needs latent_dim >= 1, got {latent_dim}")
        self.features = features
        self.latent_dim = latent_dim
        self.encoder = ConditionalDiagonalGaussian(latent_dim, features, hidden_features, depth, dropout)
        self.decoder = ConditionalDiagonalGaussian(features, latent_dim, hidden_features, depth, dropout)

    def out_features(self, in_features: int) -> int:
        return self.latent_dim

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if context is not None:
            raise ValueError("VAELayer takes no context")
        z, log_q = self.encoder.sample_with_log_prob(x)
        return z, self.decoder.log_prob(x, z) - log_q

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        if context is not None:
            raise ValueError("VAELayer takes no context")
        return self.decoder.sample(z, temperature)
