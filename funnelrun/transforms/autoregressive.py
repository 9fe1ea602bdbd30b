"""Masked autoregressive rational-quadratic spline (RQ-NSF (AR), Durkan et al. 2019, Sec. 3.3).

Feature i is transformed by a spline whose parameters MADE (Germain et al. 2015) computes from
features j < i and the context: one network pass forward, ``features`` passes to invert.
"""
from __future__ import annotations

from typing import Optional, cast

import torch
from torch import Tensor

from funnelrun.transforms.base import Transform, sum_except_batch
from funnelrun.transforms.nets import MADE
from funnelrun.transforms.splines import (
    identity_spline_params,
    packed_rational_quadratic_spline,
    spline_params_per_feature,
)


class RQSplineAutoregressive(Transform):
    """Autoregressive RQ spline flow layer; starts as the identity (MADE final layer zeroed)."""

    def __init__(
        self,
        features: int,
        context_features: Optional[int] = None,
        hidden_features: int = 64,
        num_blocks: int = 2,
        dropout: float = 0.0,
        num_bins: int = 8,
        tail_bound: float = 3.0,
        use_batch_norm: bool = False,
    ):
        super().__init__()
        self.features = features
        self.num_bins = num_bins
        self.tail_bound = tail_bound
        self.made = MADE(
            features,
            hidden_features,
            context_features,
            num_blocks,
            output_multiplier=spline_params_per_feature(num_bins),
            dropout=dropout,
            use_batch_norm=use_batch_norm,
        )
        with torch.no_grad():
            self.made.final_layer.weight.zero_()
            self.made.final_layer.bias.copy_(identity_spline_params(num_bins).repeat(features))

    def _spline(
        self, inputs: Tensor, conditioning: Tensor, context: Optional[Tensor], inverse: bool
    ) -> tuple[Tensor, Tensor]:
        params = self.made(conditioning, context).view(inputs.shape[0], self.features, -1)
        return cast(tuple[Tensor, Tensor], packed_rational_quadratic_spline(  # with its log-det
            inputs, params, self.num_bins, inverse=inverse, tail_bound=self.tail_bound
        ))

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        z, logabsdet = self._spline(x, x, context, inverse=False)
        return z, sum_except_batch(logabsdet)

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        # Pass i computes feature i alone (it needs only features < i, already exact): MADE's outputs
        # for feature i and a spline on one column, with the masked weights formed once for all passes.
        x = torch.zeros_like(z)
        with self.made.masks_frozen():
            for i in range(self.features):
                params = self.made(x, context, feature=i).unsqueeze(1)
                x_i, _ = packed_rational_quadratic_spline(
                    z[:, i : i + 1], params, self.num_bins, inverse=True, tail_bound=self.tail_bound,
                    with_logdet=False,
                )
                x = torch.cat((x[:, :i], x_i, x[:, i + 1 :]), dim=1)
        return x
