"""Log-determinant based squeezing (Das et al. 2019, Sec. 3.2.2, Fig. 1).

A squeeze trades each 2 x 2 patch of every channel for 4 channels. Here the patch's 4 elements are
ranked by a per-dimension log-det map L_d (eq. 12): its local max and min (max-pooling and
min-pooling of the patch), and of the two others the larger and the smaller. The two locally larger
("black" in Fig. 1) are kept for more flow layers, the two locally smaller ("white") are factored out
first. Every patch keeps two pixels, so the kept half still covers the whole image (the paper's
requirement 2) while it holds the dimensions that contribute most log-det (requirement 1).

:class:`LogDetSqueeze` is that squeeze as a layer: (C, H, W) -> (4C, H/2, W/2) whose first 2C channels
hold the factored ("white") elements and the last 2C the kept ("black") ones, so the multi-scale
architecture's factor-out (the first half of the channels to the base) drops the white ones. A
permutation: log-det 0. Its mask is a buffer, so ``load_state_dict`` restores it.
"""
from __future__ import annotations

from typing import Optional, cast

import torch
from torch import Tensor

from funnelrun.transforms.base import Transform, zero_contribution
from funnelrun.transforms.squeeze import squeeze, squeezed_shape, unsqueeze


def local_logdet_mask(logdet: Tensor) -> Tensor:
    """Bool (C, H, W): True on the 2 largest entries of each 2 x 2 patch of each channel of ``logdet``
    (C, H, W): the patch max (max-pooling) and the larger of the two between max and min. Ties go to
    the lower patch offset (row-major) being factored out."""
    channels, height, width = logdet.shape
    _, h, w = squeezed_shape((channels, height, width))
    patches = squeeze(logdet[None])[0].reshape(channels, 4, h, w)
    rank = patches.argsort(dim=1, stable=True).argsort(dim=1)  # 0: patch min ... 3: patch max
    return unsqueeze((rank >= 2).reshape(1, 4 * channels, h, w))[0]


def squeeze_permutation(kept: Tensor) -> Tensor:
    """For the mask ``kept`` (C, H, W), one patch element of 2 per channel: the flat input index of each
    flat output element of the log-det squeeze (factored elements first, then kept; within a patch in
    row-major order)."""
    channels, height, width = kept.shape
    _, h, w = squeezed_shape((channels, height, width))
    per_patch = squeeze(kept[None].long())[0].reshape(channels, 4, h, w)
    if not bool((per_patch.sum(dim=1) == 2).all()):
        raise ValueError("a log-det squeeze mask keeps exactly 2 elements of every 2 x 2 patch")
    index = squeeze(torch.arange(kept.numel()).reshape(1, channels, height, width))[0].reshape(channels, 4, h, w)
    ordered = index.gather(1, per_patch.argsort(dim=1, stable=True))  # factored (0) before kept (1)
    factored, kept_part = ordered[:, :2].reshape(2 * channels, h, w), ordered[:, 2:].reshape(2 * channels, h, w)
    return torch.cat([factored, kept_part]).reshape(-1)


def default_mask(shape: tuple[int, int, int]) -> Tensor:
    """A placeholder mask (the bottom row of every patch kept) for a model whose masks are loaded later."""
    channels, height, width = shape
    rows = torch.arange(height)[:, None].expand(height, width)
    return (rows % 2 == 1).expand(channels, height, width).clone()


class LogDetSqueeze(Transform):
    """Squeeze images of ``shape`` (C, H, W) by the mask ``kept`` (default: :func:`default_mask`)."""

    kept: Tensor
    permutation: Tensor

    def __init__(self, shape: tuple[int, int, int], kept: Optional[Tensor] = None):
        super().__init__()
        self.in_shape = cast(tuple[int, int, int], tuple(shape))
        self.out_shape = squeezed_shape(self.in_shape)
        self.register_buffer("kept", torch.zeros(self.in_shape, dtype=torch.bool))
        self.register_buffer("permutation", torch.zeros(self.kept.numel(), dtype=torch.long))
        self.set_mask(default_mask(self.in_shape) if kept is None else kept)

    def set_mask(self, kept: Tensor) -> None:
        """Use ``kept`` (C, H, W), True where an element stays in the flow (e.g. :func:`local_logdet_mask`)."""
        if tuple(kept.shape) != self.in_shape:
            raise ValueError(f"a mask for images {self.in_shape} got the shape {tuple(kept.shape)}")
        self.permutation.copy_(squeeze_permutation(kept.to(torch.bool).cpu()))
        self.kept.copy_(kept)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        z = x.flatten(1).index_select(1, self.permutation)
        return z.reshape(x.shape[0], *self.out_shape), zero_contribution(x)

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        flat = z.flatten(1)
        x = flat.new_empty(flat.shape).index_copy_(1, self.permutation, flat)
        return x.reshape(z.shape[0], *self.in_shape)
