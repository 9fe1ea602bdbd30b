"""The image VAE layer: a stochastic map from an image x of shape (C, H, W) to a latent vector z
(SurVAE view; funnels paper A.4 and A.8).

The encoder q(z | x) is a diagonal Gaussian whose mean and log standard deviation come from a
network of the image; the decoder p(x | z) = N(x; mu(z), diag(sigma_c^2)) has a network mean and a
*learned standard deviation per channel* sigma_c, a parameter independent of z (funnels paper §4,
"a learnable standard deviation for each channel at the output of the decoder"). As for
:class:`~funnelrun.surjections.vae.VAELayer`, forward samples z ~ q(z | x) with the
reparameterisation trick and reports the one-sample bound term

    contribution = log p(x | z) - log q(z | x),

so the model's ``log_prob`` is the one-sample ELBO (eq. 16) and, called S times, feeds the
importance-weighted estimate of :mod:`funnelrun.evaluation.importance` (every call draws fresh z).
``exact = False``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from funnelrun.distributions.base import standard_normal_log_prob
from funnelrun.transforms.base import Transform


class ImageVAELayer(Transform):
    """Gaussian encoder ``encoder: (B, C, H, W) -> (B, 2 * latent_dim)`` (mean, log std) and Gaussian
    decoder with mean ``decoder: (B, latent_dim) -> (B, C, H, W)`` and std ``exp(log_std[c])``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> enc = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> dec = nn.Sequential(nn.Linear(1, 4), nn.Unflatten(1, (1, 2, 2)))
        >>> z, bound_term = ImageVAELayer(enc, dec, (1, 2, 2), latent_dim=1)(torch.randn(5, 1, 2, 2))
        >>> z.shape, bound_term.shape
        (torch.Size([5, 1]), torch.Size([5]))
    """

    exact = False
    bijective = False

    def __init__(self, encoder: nn.Module, decoder: nn.Module, data_shape: tuple[int, int, int], latent_dim: int):
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"a VAE layer needs latent_dim >= 1, got {latent_dim}")
        self.encoder = encoder
        self.decoder = decoder
        self.data_shape = tuple(data_shape)
        self.latent_dim = latent_dim
        #: log sigma_c of the decoder, one per channel (starts at sigma = 1)
        self.log_std = nn.Parameter(torch.zeros(data_shape[0]))

    def out_features(self, in_features: int) -> int:
        return self.latent_dim

    def _decoder_std(self, mean: Tensor) -> Tensor:
        return self.log_std.exp().view(1, -1, 1, 1).expand_as(mean)

    def decoder_log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x | z) per example: sum over pixels of log N(x; mu(z), sigma_c^2)."""
        mean = self.decoder(z)
        eps = (x - mean) / self._decoder_std(mean)
        log_std_sum = self.log_std.sum() * (x[0].numel() // self.data_shape[0])
        return standard_normal_log_prob(eps) - log_std_sum

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if context is not None:
            raise ValueError("ImageVAELayer takes no context")
        mean, log_std = self.encoder(x).chunk(2, dim=-1)
        eps = torch.randn_like(mean)
        z = mean + log_std.exp() * eps
        log_q = standard_normal_log_prob(eps) - log_std.sum(dim=-1)
        return z, self.decoder_log_prob(x, z) - log_q

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        if context is not None:
            raise ValueError("ImageVAELayer takes no context")
        mean = self.decoder(z)
        return mean + temperature * self._decoder_std(mean) * torch.randn_like(mean)
