"""Conditioner networks: a residual MLP, a residual convolutional net for images, and MADE
(Germain et al. 2015), as in nflows.

The vector networks take an optional ``context`` (batch, context_features); a network built without
``context_features`` ignores it, one built with them requires it.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _require_context(context: Optional[Tensor]) -> Tensor:
    if context is None:
        raise ValueError("this network was built with context_features and needs a context")
    return context


def _near_zero_(layer: nn.Linear | nn.Conv2d) -> None:
    """Initialise a block's last layer near zero so the block starts close to the identity."""
    nn.init.uniform_(layer.weight, -1e-3, 1e-3)
    nn.init.uniform_(cast(Tensor, layer.bias), -1e-3, 1e-3)  # both layers are built with a bias


def _norm(features: int, use_batch_norm: bool) -> nn.Module:
    return nn.BatchNorm1d(features, eps=1e-3) if use_batch_norm else nn.Identity()


def mlp(
    in_features: int, out_features: int, hidden_features: int, depth: int, dropout: float = 0.0, zero_last: bool = False
) -> nn.Sequential:
    """``depth`` ReLU layers of ``hidden_features`` units (each followed by ``nn.Dropout`` when
    ``dropout > 0``), then a linear output layer; ``depth=0`` is one linear map. ``zero_last`` starts
    the output at zero (densities and maps that start at N(0, I) or the identity)."""
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden_features), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden_features
    last = nn.Linear(width, out_features)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class ResidualBlock(nn.Module):
    """x + Linear(Dropout(ReLU(BN(Linear(ReLU(BN(x))))))), gated by the context through a GLU."""

    def __init__(
        self,
        features: int,
        context_features: Optional[int] = None,
        dropout: float = 0.0,
        use_batch_norm: bool = False,
    ):
        super().__init__()
        self.norm_0 = _norm(features, use_batch_norm)
        self.linear_0 = nn.Linear(features, features)
        self.norm_1 = _norm(features, use_batch_norm)
        self.dropout = nn.Dropout(dropout)
        self.linear_1 = nn.Linear(features, features)
        _near_zero_(self.linear_1)
        self.context_layer = None if context_features is None else nn.Linear(context_features, features)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        h = self.linear_0(F.relu(self.norm_0(x)))
        h = self.linear_1(self.dropout(F.relu(self.norm_1(h))))
        if self.context_layer is not None:
            h = F.glu(torch.cat([h, self.context_layer(_require_context(context))], dim=1), dim=1)
        return x + h


class ResidualNet(nn.Module):
    """Residual MLP: Linear([x, context]) -> residual blocks -> Linear (nflows ``ResidualNet``)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: int,
        context_features: Optional[int] = None,
        num_blocks: int = 2,
        dropout: float = 0.0,
        use_batch_norm: bool = False,
    ):
        super().__init__()
        self.context_features = context_features
        self.initial_layer = nn.Linear(in_features + (context_features or 0), hidden_features)
        self.blocks = nn.ModuleList(
            ResidualBlock(hidden_features, context_features, dropout, use_batch_norm)
            for _ in range(num_blocks)
        )
        self.final_layer = nn.Linear(hidden_features, out_features)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        if self.context_features is None:
            context = None
        else:
            x = torch.cat([x, _require_context(context)], dim=1)
        h = self.initial_layer(x)
        for block in self.blocks:
            h = block(h, context)
        return self.final_layer(h)


class MaskedLinear(nn.Linear):
    """Linear layer whose unit of degree d_out sees inputs of degree d_in <= d_out (< if strict)."""

    mask: Tensor

    def __init__(self, in_degrees: Tensor, out_degrees: Tensor, strict: bool):
        super().__init__(len(in_degrees), len(out_degrees))
        connected = out_degrees[:, None] > in_degrees if strict else out_degrees[:, None] >= in_degrees
        self.register_buffer("mask", connected.to(self.weight.dtype))

        #: ``weight * mask`` while the masks are frozen (:meth:`MADE.masks_frozen`), else None
        self.frozen_weight: Optional[Tensor] = None

    def forward(self, x: Tensor, rows: Optional[slice] = None) -> Tensor:
        """``rows``: only those output units (the others are not computed)."""
        weight = self.weight * self.mask if self.frozen_weight is None else self.frozen_weight
        if rows is None:
            return F.linear(x, weight, self.bias)
        return F.linear(x, weight[rows], self.bias[rows])


class MaskedResidualBlock(nn.Module):
    """Residual block of two masked layers over hidden units of fixed degrees; context is added."""

    def __init__(
        self,
        degrees: Tensor,
        context_features: Optional[int] = None,
        dropout: float = 0.0,
        use_batch_norm: bool = False,
    ):
        super().__init__()
        features = len(degrees)
        self.norm_0 = _norm(features, use_batch_norm)
        self.linear_0 = MaskedLinear(degrees, degrees, strict=False)
        self.norm_1 = _norm(features, use_batch_norm)
        self.dropout = nn.Dropout(dropout)
        self.linear_1 = MaskedLinear(degrees, degrees, strict=False)
        _near_zero_(self.linear_1)
        self.context_layer = None if context_features is None else nn.Linear(context_features, features)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        h = self.linear_0(F.relu(self.norm_0(x)))
        if self.context_layer is not None:
            h = h + self.context_layer(_require_context(context))
        h = self.linear_1(self.dropout(F.relu(self.norm_1(h))))
        return x + h


Affine = tuple[Tensor, Tensor]  # (weight, bias) of a linear map


@dataclass
class _DegreeSortedWeights:
    """MADE's masked weights with the hidden units sorted by degree (built by
    :meth:`MADE.masks_frozen`). Output i (degree i + 1) depends only on hidden units of degree <= i,
    which sorting makes the first ``MADE.units_for_feature[i]``, and those see only inputs < i: the
    pass for feature i multiplies these prefixes alone. Over the D passes of an inversion the hidden
    layers cost about D / 3 full passes instead of D (sum of (i / D)^2)."""

    initial: Affine
    context: Optional[Affine]
    blocks: list[tuple[Affine, Optional[Affine], Affine]]  # linear_0, context_layer, linear_1
    final: Affine


def _masked(layer: MaskedLinear) -> Tensor:
    return layer.weight * layer.mask


def _sorted_affine(layer: nn.Linear, order: Tensor, *, outputs: bool, inputs: bool) -> Affine:
    """The layer's (masked) weight and bias with its hidden-unit outputs and/or inputs in ``order``
    (``index_select``: several times faster than ``w[order]`` for a 256 x 256 weight on CPU)."""
    weight: Tensor = _masked(layer) if isinstance(layer, MaskedLinear) else layer.weight
    bias: Tensor = layer.bias
    if outputs:
        weight, bias = weight.index_select(0, order), bias.index_select(0, order)
    if inputs:
        weight = weight.index_select(1, order)
    return weight, bias


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation (Germain et al. 2015) with residual blocks.

    Inputs have degrees 1..D, hidden units degrees cycling over 1..D-1 (0..D-1 with a context),
    and output i (degree i) depends only on inputs j < i and on the context. The output
    (batch, D * output_multiplier) viewed as (batch, D, output_multiplier) holds the parameters
    of feature i in row i.
    """

    hidden_order: Tensor

    def __init__(
        self,
        features: int,
        hidden_features: int,
        context_features: Optional[int] = None,
        num_blocks: int = 2,
        output_multiplier: int = 1,
        dropout: float = 0.0,
        use_batch_norm: bool = False,
    ):
        super().__init__()
        self.context_features = context_features
        input_degrees = torch.arange(1, features + 1)
        # Hidden degrees cycle over low..D-1 (nflows: low = 1). With a context, degree-0 units
        # (context only) exist too, so that feature 1 is conditioned on the context as well.
        low = 0 if context_features is not None else min(1, features - 1)
        hidden_degrees = torch.arange(hidden_features) % max(1, features - low) + low
        self.initial_layer = MaskedLinear(input_degrees, hidden_degrees, strict=False)
        self.context_layer = (
            None if context_features is None else nn.Linear(context_features, hidden_features)
        )
        self.blocks = nn.ModuleList(
            MaskedResidualBlock(hidden_degrees, context_features, dropout, use_batch_norm)
            for _ in range(num_blocks)
        )
        output_degrees = input_degrees.repeat_interleave(output_multiplier)
        self.final_layer = MaskedLinear(hidden_degrees, output_degrees, strict=True)
        self.output_multiplier = output_multiplier
        self.use_batch_norm = use_batch_norm
        # Not in the state dict (checkpoints keep their keys): the masks already encode the degrees.
        self.register_buffer("hidden_order", torch.argsort(hidden_degrees, stable=True), persistent=False)
        #: hidden units of degree <= i, i.e. those feature i's outputs depend on
        self.units_for_feature = [int((hidden_degrees <= i).sum()) for i in range(features)]
        self._sorted: Optional[_DegreeSortedWeights] = None

    def _degree_sorted_weights(self) -> _DegreeSortedWeights:
        order = self.hidden_order

        def hidden(layer: nn.Linear, inputs: bool = False) -> Affine:
            return _sorted_affine(layer, order, outputs=True, inputs=inputs)

        def optional(layer: Optional[nn.Linear]) -> Optional[Affine]:
            return None if layer is None else hidden(layer)

        return _DegreeSortedWeights(
            initial=hidden(self.initial_layer),
            context=optional(self.context_layer),
            blocks=[
                (
                    hidden(block.linear_0, inputs=True),
                    optional(block.context_layer),
                    hidden(block.linear_1, inputs=True),
                )
                for block in cast(list[MaskedResidualBlock], self.blocks)
            ],
            final=_sorted_affine(self.final_layer, order, outputs=False, inputs=True),
        )

    @contextmanager
    def masks_frozen(self) -> Iterator[None]:
        """Within the block the masked weights are formed once, not once per call: for the D
        sequential passes of an autoregressive inversion (gradients still flow to the weights).
        ``forward(x, feature=i)`` then uses the degree-sorted prefixes of
        :class:`_DegreeSortedWeights`; with batch norm (per-unit statistics, not sorted) every
        masked layer keeps ``weight * mask`` and the passes use all hidden units."""
        layers = [m for m in self.modules() if isinstance(m, MaskedLinear)] if self.use_batch_norm else []
        for layer in layers:
            layer.frozen_weight = _masked(layer)
        self._sorted = None if self.use_batch_norm else self._degree_sorted_weights()
        try:
            yield
        finally:
            self._sorted = None
            for layer in layers:
                layer.frozen_weight = None

    def _feature_pass(self, x: Tensor, context: Optional[Tensor], i: int) -> Tensor:
        """Feature i's outputs from the degree-sorted prefixes: the computation of :meth:`forward`
        (batch norm excepted) restricted to the hidden units output i depends on."""
        weights = self._sorted
        assert weights is not None, "called within masks_frozen() only"
        n = self.units_for_feature[i]
        w, b = weights.initial
        h = F.linear(x[:, :i], w[:n, :i], b[:n])
        if weights.context is not None:
            h = h + F.linear(_require_context(context), weights.context[0][:n], weights.context[1][:n])
        for block, ((w0, b0), block_context, (w1, b1)) in zip(cast(list[MaskedResidualBlock], self.blocks),
                                                                weights.blocks):
            t = F.linear(F.relu(h), w0[:n, :n], b0[:n])
            if block_context is not None:
                t = t + F.linear(_require_context(context), block_context[0][:n], block_context[1][:n])
            h = h + F.linear(block.dropout(F.relu(t)), w1[:n, :n], b1[:n])
        rows = slice(i * self.output_multiplier, (i + 1) * self.output_multiplier)
        return F.linear(h, weights.final[0][rows, :n], weights.final[1][rows])

    def forward(self, x: Tensor, context: Optional[Tensor] = None, feature: Optional[int] = None) -> Tensor:
        """(batch, D * output_multiplier); ``feature``: only feature i's outputs (batch, output_multiplier)."""
        if feature is not None and self._sorted is not None:
            return self._feature_pass(x, context, feature)
        h = self.initial_layer(x)
        if self.context_layer is None:
            context = None
        else:
            h = h + self.context_layer(_require_context(context))
        for block in self.blocks:
            h = block(h, context)
        if feature is None:
            return self.final_layer(h)
        rows = slice(feature * self.output_multiplier, (feature + 1) * self.output_multiplier)
        return self.final_layer(h, rows=rows)


class ConvResidualBlock(nn.Module):
    """x + Conv3x3(Dropout(ReLU(BN(Conv3x3(ReLU(BN(x))))))) on images (nflows ``ConvResidualBlock``)."""

    def __init__(self, channels: int, dropout: float = 0.0, use_batch_norm: bool = False):
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(channels, eps=1e-3)) if use_batch_norm else nn.Identity
        self.norm_0 = norm()
        self.conv_0 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.norm_1 = norm()
        self.dropout = nn.Dropout(dropout)
        self.conv_1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        _near_zero_(self.conv_1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_0(F.relu(self.norm_0(x)))
        h = self.conv_1(self.dropout(F.relu(self.norm_1(h))))
        return x + h


class ConvResidualNet(nn.Module):
    """Residual conv net: Conv1x1 -> residual blocks -> Conv1x1 (nflows ``ConvResidualNet``), the
    conditioner of the image coupling layers of NSF (Durkan et al. 2019, Sec. 5.3; funnels A.8)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        num_blocks: int = 2,
        dropout: float = 0.0,
        use_batch_norm: bool = False,
    ):
        super().__init__()
        self.initial_layer = nn.Conv2d(in_channels, hidden_channels, kernel_size=1)
        self.blocks = nn.Sequential(
            *(ConvResidualBlock(hidden_channels, dropout, use_batch_norm) for _ in range(num_blocks))
        )
        self.final_layer = nn.Conv2d(hidden_channels, out_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.final_layer(self.blocks(self.initial_layer(x)))
