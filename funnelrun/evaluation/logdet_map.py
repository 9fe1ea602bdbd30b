"""Per-dimension log-det of a trained full-dimensional RealNVP (Das et al. 2019, Sec. 3.2.2, eq. 12).

Every layer of the image RealNVP (checkerboard and channel affine couplings, ActNorm, squeezes) has
a Jacobian that is triangular in some order with diagonal entries dy_i/dx_i, so its log-det is the
sum over dimensions of log|dy_i/dx_i|: the layer's contribution of dimension i. Summed over the
layers up to level l, each term carried along to the position its dimension had in the image (the
squeezes only move dimensions), this is L_d^(l) of eq. 12 as a (C, H, W) map of the data's pixels.

How the diagonal is computed, exactly: a coupling's transformed element y_i depends on the
transformed elements only through x_i (its conditioner sees the identity part only), and an
identity element has dy_i/dx_i = 1. So the Jacobian-vector product with the indicator m of the
transformed elements gives (J m)_i = dy_i/dx_i on every transformed element: one forward-mode pass
per coupling, exact for any elementwise coupling (affine or spline). ActNorm's is log|scale| of the
channel. The maps of the layers sum to the layer's log-det (tested).
"""
from __future__ import annotations

from typing import cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from funnelrun.models.flow import Flow
from funnelrun.transforms.actnorm import ActNorm
from funnelrun.transforms.base import CompositeTransform, Transform
from funnelrun.transforms.image_coupling import ImageCoupling, MaskKind
from funnelrun.transforms.multiscale import MultiScale
from funnelrun.transforms.squeeze import Squeeze, squeeze


def elementwise_logdet(layer: Transform, x: Tensor) -> tuple[Tensor, Tensor]:
    """The layer's output and its log|dy_i/dx_i| per element (B, C, H, W), in the output's layout."""
    if isinstance(layer, Squeeze):
        return squeeze(x), x.new_zeros(x.shape[0], 4 * x.shape[1], x.shape[2] // 2, x.shape[3] // 2)
    if isinstance(layer, ActNorm):
        return layer(x)[0], layer.log_scale.view(1, -1, 1, 1).expand_as(x)
    if isinstance(layer, ImageCoupling):
        transformed = torch.zeros_like(x, dtype=torch.bool)
        if layer.mask is MaskKind.channel:
            transformed[:, layer.transform_idx] = True
        else:
            transformed[:] = layer.checkerboard
        # torch.func.jvp's annotated return type also covers has_aux=True's triple
        y, derivative = torch.func.jvp(lambda v: layer(v)[0], (x,), (transformed.to(x.dtype),))  # type: ignore[misc]
        return y, torch.where(transformed, derivative.abs().log(), torch.zeros_like(x))
    raise TypeError(f"no per-dimension log-det for {type(layer).__name__}: RealNVP layers only")


def level_logdet_maps(model: Flow, x: Tensor) -> list[Tensor]:
    """Eq. 12 per example after each level of the model's multi-scale flow (no factor-out): one
    (B, C, H, W) map per level, in the data's pixel positions. Preprocessing layers (rescale, logit)
    come before the flow f_theta and are not counted."""
    maps: list[Tensor] = []
    for layer in model.transform.transforms:
        if not isinstance(layer, MultiScale):
            x = layer(x)[0]
            continue
        if layer.factored_shapes:
            raise ValueError("per-dimension log-det maps need a flow without factor-out (every level sees every pixel)")
        position = torch.arange(x[0].numel(), device=x.device).reshape(1, *x.shape[1:])
        total = torch.zeros_like(x)
        for level in cast(list[CompositeTransform], layer.levels):
            for step in cast(list[Transform], level.transforms):
                if isinstance(step, Squeeze):
                    x, total, position = squeeze(x), squeeze(total), squeeze(position)
                else:
                    x, logdet = elementwise_logdet(step, x)
                    total = total + logdet
            in_pixels = torch.zeros_like(total.flatten(1)).index_copy(1, position.reshape(-1), total.flatten(1))
            maps.append(in_pixels.reshape(x.shape[0], *layer.in_shape))
    return maps


@torch.no_grad()
def mean_level_logdet_maps(model: Flow, loader: DataLoader) -> list[Tensor]:
    """:func:`level_logdet_maps` averaged over every example of ``loader`` (float64), model in eval mode."""
    model.eval()
    sums, count = None, 0
    for batch in loader:
        maps = [m.double().sum(dim=0) for m in level_logdet_maps(model, batch)]
        sums = maps if sums is None else [s + m for s, m in zip(sums, maps)]
        count += batch.shape[0]
    if sums is None:
        raise ValueError("no examples to average the log-det maps over")
    return [s / count for s in sums]
