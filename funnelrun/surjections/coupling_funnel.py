"""The funnel layer whose F is a coupling layer over all D features (Klein et al. 2021, eq. 6, A.6).

A coupling layer y = c(x) on D features whose identity features A are the m coordinates to drop
maps the kept ones, x_B, by F conditioned on x_A (every kept coordinate is transformed); with
``unconditional`` couplings (NSF's UCI layers) it also maps x_A elementwise, y_A = s(x_A). The layer
keeps z = y_B and scores y_A under p_phi(y_A | z):

    V(x) = log p_phi(y_A | z) + log|det dy/dx|,   log|det dy/dx| = log|det dF/dx_B| [+ sum log s'(x_A)]

since the Jacobian of c is block triangular. This is the funnel of eq. 6 (with the slice's p_phi
seeing s(x_A) where there is an s, an invertible reparameterisation of x_A), and what the funnels
authors' UCI code builds (a coupling transform whose identity features are dropped, then a flow or
Gaussian p_phi over them). ``inverse`` samples y_A ~ p_phi(. | z) and inverts the coupling, so
forward(inverse(z)) == z (the right-inverse condition, A.1) and the likelihood is exact.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from funnelrun.distributions.conditional import Conditional
from funnelrun.transforms.base import Transform
from funnelrun.transforms.coupling import Coupling


def dropped_first_mask(features: int, dropped: int) -> Tensor:
    """A coupling mask whose identity features (0) are the first ``dropped`` coordinates."""
    if not 0 < dropped < features:
        raise ValueError(
            f"a funnel must drop between 1 and {features - 1} of {features} dimensions, got {dropped}; "
            "lower the dimension reduction (or raise latent_dim)"
        )
    return (torch.arange(features) >= dropped).long()


class CouplingFunnel(Transform):
    """Keep the transformed features of ``coupling``, drop its identity features under ``conditional``
    (p_phi, with ``log_prob(y_A, z)`` and ``sample(z, temperature)``)."""

    bijective = False

    def __init__(self, coupling: Coupling, conditional: Conditional):
        super().__init__()
        self.coupling = coupling
        self.conditional = conditional
        self.dropped = coupling.identity_idx.numel()

    def out_features(self, in_features: int) -> int:
        return in_features - self.dropped

    @staticmethod
    def _join(z: Tensor, context: Optional[Tensor]) -> Tensor:
        return z if context is None else torch.cat([z, context], dim=-1)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        y, logdet = self.coupling(x, context)
        z = y.index_select(1, self.coupling.transform_idx)
        y_dropped = y.index_select(1, self.coupling.identity_idx)
        return z, logdet + self.conditional.log_prob(y_dropped, self._join(z, context))

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        y_dropped = self.conditional.sample(self._join(z, context), temperature)
        y = torch.cat([y_dropped, z], dim=1).index_select(1, self.coupling.output_order)
        return self.coupling.inverse(y, context)
