"""Variational data augmentation (VFlow, Chen et al. 2020, §3.1).

Forward samples a ~ q(a | x), a conditional flow over ``augment_dim`` = D_Z dimensions, and outputs
the augmented vector concat(x, a) for a (D_X + D_Z)-dimensional flow. On images (B, C, H, W) a has
``augment_dim`` channels (B, D_Z, H, W) and is concatenated along the channels (§6: a C-channel flow
becomes a (C + D_Z)-channel one). The contribution is

    -log q(a | x),

so that the flow's log p(x, a) plus this term is the one-sample estimate of VFlow's ELBO, eq. (3):
log p(x) >= E_q[log p(x, a) - log q(a | x)]. It is a bound: ``exact = False``; VFlow evaluates
log p(x) by importance sampling, eq. (5) (:mod:`funnelrun.evaluation.importance`).
Inverse (generative direction) drops a.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from funnelrun.distributions.conditional import ConditionalFlow
from funnelrun.transforms.base import Transform


class Augment(Transform):
    """Append ``q.features`` coordinates (vectors) or channels (images) sampled from ``q(a | x)``,
    a conditional flow on x, along dimension 1."""

    exact = False
    bijective = False

    def __init__(self, q: ConditionalFlow):
        super().__init__()
        if q.features < 1:
            raise ValueError(f"augmentation needs at least one extra dimension, got {q.features}")
        self.q = q

    @property
    def augment_dim(self) -> int:
        return self.q.features

    def out_features(self, in_features: int) -> int:
        return in_features + math.prod(self.q.shape)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if context is not None:
            raise ValueError("Augment takes no context")
        a, log_q = self.q.sample_with_log_prob(x)
        return torch.cat([x, a], dim=1), -log_q

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        if context is not None:
            raise ValueError("Augment takes no context")
        return z[:, : z.shape[1] - self.augment_dim]
