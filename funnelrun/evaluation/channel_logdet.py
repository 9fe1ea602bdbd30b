"""Per-channel log-det of a trained full-dimensional Glow from the singular values of its 1 x 1
convolutions (Das et al. 2019, Sec. 3.2.2, "Implementation for Glow", eqs. 13-14).

A 1 x 1 convolution with weight W (C x C) adds H W log|det W| = H W sum_i log sigma_i(W) to the
log-det (eqs. 13-14); the paper takes log sigma_i as "the individual log-det contribution" of "each
channel dimension" but does not say which channel a singular value belongs to. Our reading: with
W = U diag(sigma) V^T, output channel c gets sum_i U_ci^2 log sigma_i, the c-th diagonal entry of
log (W W^T)^(1/2). The rows of U have unit norm, so the channels' contributions sum to log|det W|
(eq. 14); a diagonal W gives channel c log|W_cc|; and the fixed input permutation P of
:class:`~funnelrun.transforms.conv1x1.Conv1x1` (W P) leaves it unchanged. Output channels, because
what a level factors out are its output channels.

A channel's score at level l, the analogue of eq. 12 with channels for dimensions and per pixel (not
times H W): the contributions of the 1 x 1 convolutions up to the end of level l summed by channel
index (ActNorm and the couplings keep channel indices; a squeeze makes channel c the channels
4c..4c+3, which inherit its score). Only the 1 x 1 convolutions count: the log-dets of ActNorm and of
the couplings are not included.
"""
from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

from funnelrun.models.flow import Flow
from funnelrun.transforms.actnorm import ActNorm
from funnelrun.transforms.base import CompositeTransform
from funnelrun.transforms.conv1x1 import Conv1x1
from funnelrun.transforms.image_coupling import ImageCoupling
from funnelrun.transforms.multiscale import MultiScale
from funnelrun.transforms.squeeze import Squeeze


def channel_logdet(weight: Tensor) -> Tensor:
    """(C,): sum_i U_ci^2 log sigma_i for ``weight`` W = U diag(sigma) V^T (C x C), in float64."""
    u, sigma, _ = torch.linalg.svd(weight.detach().double())
    return (u.square() * sigma.log()).sum(dim=1)


@torch.no_grad()
def level_channel_scores(model: Flow) -> list[Tensor]:
    """The channel scores (C_l,) after each level of the model's multi-scale Glow (no factor-out)."""
    flows = [layer for layer in model.transform.transforms if isinstance(layer, MultiScale)]
    if len(flows) != 1 or flows[0].factored_shapes:
        raise ValueError("per-channel scores need one multi-scale flow without factor-out")
    total = torch.zeros(flows[0].in_shape[0], dtype=torch.float64)
    scores: list[Tensor] = []
    for level in cast(list[CompositeTransform], flows[0].levels):
        for step in level.transforms:
            if isinstance(step, Squeeze):
                total = total.repeat_interleave(4)
            elif isinstance(step, Conv1x1):
                total = total + channel_logdet(step.weight()).cpu()
            elif not isinstance(step, (ActNorm, ImageCoupling)):
                raise TypeError(f"no per-channel score for {type(step).__name__}: Glow layers only")
        scores.append(total)
    return scores
