"""Image preprocessing as bijective layers, so their Jacobian is in every reported likelihood.

An image model sees uniformly dequantized n-bit images y = x_n + u in [0, 2^n)^D (integer scale,
:mod:`funnelrun.data.images`) and starts with :class:`Rescale` then :class:`Logit` (RealNVP, Dinh et
al. 2017, §4.1; Das et al. 2019, §4) or :class:`Centre` (Glow, Kingma & Dhariwal 2018). Then

    log p_model(y) = log p_base(z) + sum of contributions (these layers' included)

is a lower bound on log P(x_n) of the discrete image (Theis et al. 2016), and
BPD = -log p_model(y) / (D ln 2) (:func:`funnelrun.evaluation.metrics.bits_per_dim`): Rescale's
-D n ln 2 is the usual "+ D log 2^n" dequantization term of BPD written in nats.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from funnelrun.transforms.base import Transform, sum_except_batch, zero_contribution


def _per_example(x: Tensor, value: float) -> Tensor:
    return x.new_full((x.shape[0],), value)


class Rescale(Transform):
    """z = x / 2^bits: [0, 2^bits) to [0, 1). log|det| = -D * bits * ln 2 (D = features per example)."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = bits
        self.scale = 2.0**bits

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return x / self.scale, _per_example(x, -x[0].numel() * self.bits * math.log(2))

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        return z * self.scale

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class Logit(Transform):
    """z = logit(s) for x in [0, 1], with s = alpha + (1 - 2 alpha) x (``symmetric``, the default) or
    s = alpha + (1 - alpha) x (``symmetric=False``); alpha keeps s off 0 (and, symmetric, off 1).

    log|det| = sum over features of log(ds/dx) - log s - log(1 - s), ds/dx = 1 - 2 alpha or 1 - alpha.
    The symmetric form is the NSF and RealNVP images code's (alpha = 0.05 by default); the one-sided
    form is what RealNVP's §4.1 writes and Das et al. (2019, §4) use, logit(alpha + (1 - alpha) x / 256):
    there 1 - s = (1 - alpha)(1 - x) is computed as such, so s is never rounded to 1 for x < 1.
    """

    def __init__(self, alpha: float = 0.05, symmetric: bool = True):
        super().__init__()
        if not 0 < alpha < (0.5 if symmetric else 1.0):
            raise ValueError(f"logit alpha must be in (0, {0.5 if symmetric else 1}), got {alpha}")
        self.alpha = alpha
        self.symmetric = symmetric
        self.slope = 1 - 2 * alpha if symmetric else 1 - alpha

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        log_s = torch.log(self.alpha + self.slope * x)
        if self.symmetric:
            log_1ms = torch.log1p(-(self.alpha + self.slope * x))
        else:  # 1 - s = (1 - alpha)(1 - x)
            log_1ms = math.log(1 - self.alpha) + torch.log1p(-x)
        logdet = sum_except_batch(math.log(self.slope) - log_s - log_1ms)
        return log_s - log_1ms, logdet

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        return (torch.sigmoid(z) - self.alpha) / self.slope

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + ("" if self.symmetric else ", symmetric=False")


class Centre(Transform):
    """z = x - 1/2: [0, 1) to [-1/2, 1/2) (Glow's preprocessing after :class:`Rescale`); log|det| = 0."""

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return x - 0.5, zero_contribution(x)

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        return z + 0.5
