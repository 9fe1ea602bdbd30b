"""Channel-wise log-det based factor-out (Das et al. 2019, Sec. 3.2.2, "Implementation for Glow").

:class:`LogDetChannelSplit` ends a Glow level: it reorders the level's C output channels so that the
C // 2 with the smaller per-channel log-det score (mask False) come first, each group in channel
order; the multi-scale architecture's factor-out (the first C // 2 channels to the base) then
gaussianizes those and the kept ones go on to more flow layers. A permutation: log-det 0. Its mask
is a buffer, so ``load_state_dict`` restores it.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from funnelrun.transforms.linear import Permutation


class LogDetChannelSplit(Permutation):
    """Channels factored (``kept`` False) first, then kept; the default mask keeps the last C - C // 2
    (the fixed split of Glow) for a model whose masks are set later."""

    kept: Tensor

    def __init__(self, channels: int, kept: Optional[Tensor] = None):
        super().__init__(torch.arange(channels))
        self.register_buffer("kept", torch.zeros(channels, dtype=torch.bool))
        self.set_mask(torch.arange(channels) >= channels // 2 if kept is None else kept)

    def set_mask(self, kept: Tensor) -> None:
        """Use ``kept`` (C,), True on the C - C // 2 channels that stay in the flow."""
        channels = self.kept.numel()
        if tuple(kept.shape) != (channels,) or int(kept.sum()) != channels - channels // 2:
            raise ValueError(f"a channel mask for {channels} channels keeps {channels - channels // 2} of them, "
                             f"got the shape {tuple(kept.shape)} keeping {int(kept.sum())}")
        order = kept.to(torch.bool).cpu().long().argsort(stable=True)
        self.permutation.copy_(order)
        self.inverse_permutation.copy_(order.argsort())
        self.kept.copy_(kept)
