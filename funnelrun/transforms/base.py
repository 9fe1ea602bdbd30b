"""The one layer contract (SurVAE view, DESIGN.md).

Every layer maps data toward the latent and reports its log-likelihood contribution:

    forward(x, context=None) -> (z, contribution)    # contribution has shape (batch,)
    inverse(z, context=None, temperature=1.0) -> x   # generative direction

For a bijection the contribution is log|det dz/dx|. Surjections (funnels, slices) contribute
log p(x_dropped | z) + log|det J_kept| and sample what they dropped in ``inverse``.
``exact`` says whether the contribution is the exact log-likelihood term (True for bijections and
funnels) or only a bound (stochastic layers such as a VAE encoder).
"""
from __future__ import annotations

from typing import Optional, Sequence, cast

import torch
from torch import Tensor, nn


class Transform(nn.Module):
    """Base class of every layer: a map from ``in_dim`` features toward the latent."""

    #: True when ``forward`` returns the exact log-likelihood contribution (no bound).
    exact: bool = True
    #: True when the layer is a bijection (round trip and autograd log-det apply).
    bijective: bool = True

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        raise NotImplementedError

    def out_features(self, in_features: int) -> int:
        """Number of features this layer outputs for ``in_features`` inputs (vector data)."""
        return in_features


class CompositeTransform(Transform):
    """A chain of layers; contributions add up (the context is passed to every layer)."""

    def __init__(self, transforms: Sequence[Transform]):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    @property
    def exact(self) -> bool:  # type: ignore[override]
        return all(t.exact for t in self.transforms)

    @property
    def bijective(self) -> bool:  # type: ignore[override]
        return all(t.bijective for t in self.transforms)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, contribution = t(x, context)
            total = total + contribution
        return x, total

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        for t in reversed(cast(list[Transform], self.transforms)):
            z = t.inverse(z, context, temperature)
        return z

    def out_features(self, in_features: int) -> int:
        for t in cast(list[Transform], self.transforms):
            in_features = t.out_features(in_features)
        return in_features


def sum_except_batch(x: Tensor) -> Tensor:
    """Sum every dimension but the first: per-example totals of per-element log-terms."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def zero_contribution(x: Tensor) -> Tensor:
    """A zero contribution of shape (batch,), for volume-preserving layers."""
    return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
