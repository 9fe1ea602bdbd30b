"""The generative funnel layer (Klein et al. 2021, "Funnels", A.2, eq. 9).

A generative surjection: the generative direction maps a larger latent z = (z_{1:n}, z_{n+1:m}) to
the data x in R^n by a diffeomorphism of z_{1:n} conditioned on z_{n+1:m},
x = G_theta(z_{1:n}; z_{n+1:m}), and drops z_{n+1:m}. In the inference direction (``forward``)
z_{n+1:m} ~ q(z_{n+1:m} | x) is sampled (a conditional density with ``sample_with_log_prob``), and G
maps x to z_{1:n} = G^{-1}(x; z_{n+1:m}) given it; the layer outputs concat(z_{1:n}, z_{n+1:m}) and
reports the one-sample estimate of eq. 9,

    V(x) = E_q[ log|det dG^{-1}(x; z_{n+1:m}) / dx| - log q(z_{n+1:m} | x) ],

a lower bound on the layer's log-likelihood contribution (the gap is the KL divergence of q from
the model's posterior of z_{n+1:m}): ``exact = False``. As for VFlow
(:class:`~funnelrun.surjections.augment.Augment`, of which this is the form whose augmented
coordinates condition a bijection of x), the test log-likelihood is the importance-weighted estimate
of :mod:`funnelrun.evaluation.importance` (every call draws fresh z_{n+1:m}). ``inverse`` is
deterministic: x = G(z_{1:n}; z_{n+1:m}), so inverse(forward(x)) == x for every sample of q.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from funnelrun.distributions.conditional import ConditionalDiagonalGaussian, ConditionalFlow
from funnelrun.transforms.base import Transform


class GenerativeFunnel(Transform):
    """Append ``augment_dim`` coordinates a ~ ``q(a | x)`` and map x by ``transform`` (G^{-1}, a
    conditional bijection of x's ``features`` coordinates) with context a."""

    exact = False
    bijective = False

    def __init__(self, features: int, augment_dim: int, q: ConditionalFlow | ConditionalDiagonalGaussian,
                 transform: Transform):
        super().__init__()
        if features < 1 or augment_dim < 1:
            raise ValueError(
                f"a generative funnel needs data (features >= 1) and at least one sampled dimension, got "
                f"features={features}, augment_dim={augment_dim}"
            )
        self.features = features
        self.augment_dim = augment_dim
        self.q = q
        self.transform = transform

    def out_features(self, in_features: int) -> int:
        return in_features + self.augment_dim

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if context is not None:
            raise ValueError("GenerativeFunnel takes no context")
        a, log_q = self.q.sample_with_log_prob(x)
        z, logdet = self.transform(x, a)
        return torch.cat([z, a], dim=1), logdet - log_q

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        if context is not None:
            raise ValueError("GenerativeFunnel takes no context")
        z_kept, a = z[:, : self.features], z[:, self.features :]
        return self.transform.inverse(z_kept, a)
