"""The funnel layer for vectors (Klein et al. 2021, "Funnels", eq. 6).

Forward (inference surjection): split x into the dropped part x_- = x[:, :m] and the kept part
x_+ = x[:, m:]; map the kept part with a diffeomorphism conditioned on the dropped part,
z = F^{-1}_{theta(x_-, x_+)}(x_+), and report

    V(x) = log p_phi(x_- | z) + log|det dz/dx_+|.

Inverse (generative direction, eq. 3): sample x_- ~ p_phi(x_- | z), then invert F given x_-.
forward(inverse(z)) == z for every sample (the right-inverse condition, A.1), so the likelihood is
exact: ``exact = True``. With F = identity this is the slice surjection (A.3).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from funnelrun.distributions.conditional import Conditional
from funnelrun.transforms.base import Transform, zero_contribution


class Funnel(Transform):
    """Drop the first ``dropped`` of ``features`` coordinates, keep and transform the rest."""

    bijective = False

    def __init__(self, features: int, dropped: int, conditional: Conditional, transform: Optional[Transform] = None):
        super().__init__()
        if not 0 < dropped < features:
            raise ValueError(
                f"a funnel must drop between 1 and {features - 1} of {features} dimensions, got {dropped}; "
                "lower the dimension reduction (or raise latent_dim)"
            )
        self.features = features
        self.dropped = dropped
        self.conditional = conditional
        self.transform = transform

    def out_features(self, in_features: int) -> int:
        return in_features - self.dropped

    @staticmethod
    def _join(a: Tensor, context: Optional[Tensor]) -> Tensor:
        return a if context is None else torch.cat([a, context], dim=-1)

    def kept_map(self, x_kept: Tensor, x_dropped: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """z = F^{-1}(x_+ ; x_-) and log|det dz/dx_+| (the bijective part of the funnel)."""
        if self.transform is None:
            return x_kept, zero_contribution(x_kept)
        return self.transform(x_kept, self._join(x_dropped, context))

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        x_dropped, x_kept = x[:, : self.dropped], x[:, self.dropped :]
        z, logdet = self.kept_map(x_kept, x_dropped, context)
        log_p_dropped = self.conditional.log_prob(x_dropped, self._join(z, context))
        return z, log_p_dropped + logdet

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        x_dropped = self.conditional.sample(self._join(z, context), temperature)
        if self.transform is None:
            x_kept = z
        else:
            x_kept = self.transform.inverse(z, self._join(x_dropped, context))
        return torch.cat([x_dropped, x_kept], dim=-1)
