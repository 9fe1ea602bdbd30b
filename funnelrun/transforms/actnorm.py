"""Activation normalisation (Glow, Kingma & Dhariwal 2018, Sec. 3.1)."""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor, nn

from funnelrun.transforms.base import Transform


class ActNorm(Transform):
    """z = x * exp(log_scale) + shift per feature (dimension 1: features or image channels).

    The first forward in training mode sets the parameters so that this batch comes out with
    zero mean and unit standard deviation per feature. The ``initialized`` buffer is saved with
    the state dict, so a reloaded layer is not re-initialised. For inputs (B, C, *spatial) the
    log-det is sum(log_scale) times the number of spatial positions.
    """

    initialized: Tensor

    def __init__(self, features: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.shift = nn.Parameter(torch.zeros(features))
        self.register_buffer("initialized", torch.tensor(False))
        #: host-side copy of ``initialized`` once it is known to be set: forward then reads no
        #: device value (a GPU would wait for the queue to drain at every step)
        self._known_initialized = False

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args)
        self._known_initialized = False  # the loaded buffer decides again, once

    def _shaped(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return self.log_scale.view(shape), self.shift.view(shape)

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        reduce_dims = [0, *range(2, x.dim())]
        if x.numel() // x.shape[1] < 2:
            raise ValueError("ActNorm's data-dependent initialisation needs 2+ values per feature")
        std = x.std(dim=reduce_dims)
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.shift.copy_(-x.mean(dim=reduce_dims) * self.log_scale.exp())
        self.initialized.fill_(True)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if self.training and not self._known_initialized:
            if not bool(self.initialized):
                self._initialize(x)
            self._known_initialized = True
        log_scale, shift = self._shaped(x)
        positions = math.prod(x.shape[2:])
        logdet = self.log_scale.sum() * positions * x.new_ones(x.shape[0])
        return x * log_scale.exp() + shift, logdet

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        log_scale, shift = self._shaped(z)
        return (z - shift) * torch.exp(-log_scale)
