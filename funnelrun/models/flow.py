"""A model = layers + base distribution: log p(x) = log p_base(z) + sum of layer contributions."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from funnelrun.distributions.base import StandardNormal
from funnelrun.transforms.base import CompositeTransform, Transform


class Flow(nn.Module):
    """A (possibly dimension-reducing) flow from data of shape ``data_shape`` to a standard normal latent.

    ``exact`` is True only when every layer's contribution is exact (no bound).
    """

    def __init__(self, layers: list[Transform], data_shape: tuple[int, ...]):
        super().__init__()
        self.transform = CompositeTransform(layers)
        self.data_shape = tuple(data_shape)
        self.latent_dim = self.transform.out_features(self.data_dim)
        self.base = StandardNormal((self.latent_dim,))

    @property
    def data_dim(self) -> int:
        return math.prod(self.data_shape)

    #: whether this model's conditioner nets may train in bf16/fp16 (``trainer.precision=bf16-mixed``,
    #: :func:`funnelrun.transforms.nets.conditioner_precision`; every log-det stays fp32): set by the
    #: builders whose models tests/training/test_precision.py shows move log p by at most 1e-3 nats
    #: per dimension (the vector NSF and F-NSF); False for the others
    mixed_precision_safe: bool = False

    @property
    def exact(self) -> bool:
        return self.transform.exact

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) per example, in nats."""
        z, contribution = self.transform(x)
        return self.base.log_prob(z) + contribution

    def forward(self, x: Tensor) -> Tensor:
        return self.log_prob(x)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """Draw ``n`` samples; ``temperature`` scales the std of every Gaussian that is sampled."""
        z = self.base.sample(n, temperature)
        return self.transform.inverse(z, temperature=temperature)

    def _require_exact(self, what: str) -> None:
        if not self.exact:
            raise TypeError(
                f"{what} needs a model that maps data to its latent deterministically (exact: a flow or a "
                f"funnel); this one samples part of its latent (a VAE encoder or a VFlow augmentation)"
            )

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """The latent z of ``x``, shape (batch, latent_dim): the deterministic map of every layer
        (a funnel keeps part of its input and drops the rest). Exact models only."""
        self._require_exact("encode")
        z, _ = self.transform(x)
        return z

    @torch.no_grad()
    def decode(self, z: Tensor, temperature: float = 0.0) -> Tensor:
        """Data of shape (batch, *data_shape) from latents ``z``: every layer's inverse, each funnel's
        dropped part drawn from p(x_dropped | z) at ``temperature`` (0, the default: its mean, so
        decoding is deterministic; 1: a sample). For a bijective flow ``decode(encode(x)) == x``;
        for a funnel ``encode(decode(z)) == z`` (the right inverse). Exact models only."""
        self._require_exact("decode")
        return self.transform.inverse(z, temperature=temperature)
